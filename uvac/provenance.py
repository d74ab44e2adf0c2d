"""What made a table or figure (DESIGN.md §7): resolved params and their hash, code version,
package versions, device, seeds and the hashes of the data manifests.

Stored as a sidecar `<stem>.provenance.json` beside the file (one for table1.csv and table1.md),
embedded in PNG metadata (text chunk `uvac:provenance`), and printed by `uvac provenance FILE`.
"""
from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from . import __version__
from .io import atomic_path, write_json
from .params import digest

PNG_KEY = "uvac:provenance"
PACKAGES = ("numpy", "scipy", "pandas", "pyarrow", "scikit-learn", "torch", "librosa", "soundfile", "soxr",
            "matplotlib", "snakemake", "dvc")


def code_version(where: Path | str = ".") -> dict:
    """git commit and dirty flag of the checkout that ran the code (None outside a checkout)."""
    def git(*args):
        proc = subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True)
        return proc.stdout.strip() if proc.returncode == 0 else None
    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"uvac": __version__, "git_commit": commit, "git_dirty": None if commit is None else bool(status)}


def package_versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def collect(params: dict, *, seeds: list[int], manifests: dict[str, Path], devices: list[str]) -> dict:
    """The provenance record of one artifact. `params` is exactly what the rule's params: held."""
    return {
        "params": params,
        "params_hash": digest(params),
        "code": code_version(),
        "packages": package_versions(),
        "device": {"training": sorted(set(devices)), "host": platform.platform(), "machine": platform.machine()},
        "seeds": sorted(set(seeds)),
        "data_manifests": {name: {"path": str(p), "sha256": file_sha256(p)} for name, p in sorted(manifests.items())},
    }


def sidecar(path: Path | str) -> Path:
    path = Path(path)
    return path.with_name(f"{path.stem}.provenance.json")


def write_sidecar(path: Path | str, record: dict) -> Path:
    out = sidecar(path)
    write_json(out, record)
    return out


def save_figure(fig, path: Path | str, record: dict, dpi: int = 120) -> None:
    """PNG with the record in its metadata, and the sidecar; both written atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, metadata={PNG_KEY: json.dumps(record, sort_keys=True, default=str)})
    write_sidecar(path, record)


def read(path: Path | str) -> dict:
    """The record of a table or figure: its sidecar, else (a PNG copied alone) its PNG metadata."""
    path = Path(path)
    if path.name.endswith(".provenance.json"):
        return json.loads(path.read_text())
    if sidecar(path).exists():
        return json.loads(sidecar(path).read_text())
    if path.suffix.lower() == ".png" and path.exists():
        from PIL import Image
        with Image.open(path) as image:
            text = image.text.get(PNG_KEY) if hasattr(image, "text") else None
        if text:
            return json.loads(text)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    raise ValueError(f"{path}: no provenance found (no {sidecar(path).name} beside it and no '{PNG_KEY}' PNG metadata)")


def for_runs(params: dict, run_dirs: list[Path], features_dirs: list[Path]) -> dict:
    """The record of an artifact made from runs: their seeds and training devices, and the
    manifests of the feature caches they read."""
    metrics = [json.loads((Path(d) / "metrics.json").read_text()) for d in run_dirs]
    return collect(params, seeds=[m["seed"] for m in metrics], devices=[m.get("device", "unknown") for m in metrics],
                   manifests={Path(f).name: Path(f) / "manifest.parquet" for f in features_dirs})
