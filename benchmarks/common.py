"""Shared by the benchmark scripts: where reports go and how they are written."""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path

from uvac.io import write_json

OUT_DIR = Path("results/benchmarks")


def machine() -> dict:
    """What the figures depend on: cores, load at the time, Python."""
    return {"cpu_count": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2),
            "python": platform.python_version(), "platform": platform.platform()}


def write_report(path: str | Path, report: dict) -> None:
    """Write a benchmark's JSON atomically (with the machine it ran on) and say where."""
    write_json(path, {**report, "machine": machine()})
    print(f"wrote {path}")
