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


def load_run_model(run_dir: Path, input_shape, kinds: tuple[str, ...] | None = None):
    """The trained model of a run directory (run_dir/model.pt), refused with the path named unless
    it is there and of one of `kinds` (None: any model kind). Imports torch only when called."""
    from uvac.runs import ESTIMATORS
    from uvac.training import load_state

    kinds = kinds or tuple(ESTIMATORS)
    model_file = Path(run_dir) / "model.pt"
    if not model_file.is_file():
        raise SystemExit(f"{model_file}: not found; give directories of trained runs ({', '.join(kinds)})")
    kind = load_state(model_file)["meta"]["kind"]
    if kind not in kinds:
        raise SystemExit(f"{model_file}: a {kind} model; this needs one of {', '.join(kinds)}")
    return ESTIMATORS[kind].load(model_file, input_shape=input_shape)
