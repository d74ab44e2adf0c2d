"""Shared fixtures: real audio files written with soundfile, and a scratch copy of the workflow."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

REPO = Path(__file__).resolve().parents[1]
FSDD_DEV = REPO.parent / "shared" / "data" / "fsdd-dev"


def tone(rate: int, seconds: float, freq: float = 440.0, channels: int = 1, amp: float = 0.5) -> np.ndarray:
    """A sine in every channel (channel c scaled by 1/(c+1) so a mix-down is checkable)."""
    t = np.arange(int(round(rate * seconds))) / rate
    wave = amp * np.sin(2 * np.pi * freq * t)
    return np.stack([wave / (c + 1) for c in range(channels)], axis=1).astype(np.float32)


def write_audio(path: Path, rate: int = 16000, seconds: float = 0.5, *, freq: float = 440.0,
                channels: int = 1, subtype: str | None = None, format: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), tone(rate, seconds, freq, channels), rate, subtype=subtype, format=format)
    return path


@pytest.fixture
def workflow_copy(tmp_path) -> Path:
    """The Snakefile, rules, scripts, params and overlays copied into a scratch working directory."""
    dest = tmp_path / "wf"
    dest.mkdir()
    for item in ("Snakefile", "params.yaml", "workflow", "config", "profiles"):
        src = REPO / item
        if src.is_symlink():
            (dest / item).symlink_to(src.readlink())
        elif src.is_dir():
            shutil.copytree(src, dest / item)
        else:
            shutil.copy(src, dest / item)
    return dest


@pytest.fixture
def bare_workflow(workflow_copy) -> Path:
    """The workflow copy with no tables and no figures in its params.yaml, so that only what a
    test names is built (an overlay cannot empty a mapping: overlays merge key by key)."""
    params = yaml.safe_load((workflow_copy / "params.yaml").read_text())
    params.update(tables={}, figures={**params["figures"], "tsne": {}, "latent_vs_pca": {}, "gumbel_softmax": None})
    (workflow_copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return workflow_copy


def write_overlay(path: Path, overlay: dict) -> Path:
    path.write_text(yaml.safe_dump(overlay))
    return path


def folder_dataset(source: Path, labels: dict | None = None, **overrides) -> dict:
    """A complete folder-dataset config (16 kHz, 1 s, paper STFT grid) for tests."""
    cfg = {
        "type": "folder", "source": str(source),
        "labels": labels or {"from": "subfolder", "pattern": None, "csv": None},
        "sample_rate": 16000, "clip_seconds": 1.0,
        "long_files": {"mode": "trim", "max_segments": None},
        "features": {"kind": "stft", "n_fft": 320, "hop": 160, "n_bins": 128},
        "normalize": "per_clip", "split": {"method": "random", "fractions": [0.6, 0.2, 0.2]},
        "subset": None,
    }
    cfg.update(overrides)
    return cfg


def job_counts(output: str) -> dict:
    """Parse Snakemake's 'Job stats' table of a dry run."""
    table = output.split("Job stats:")[1].split("total")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}
