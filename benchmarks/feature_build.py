"""Feature caching: clips per second of the STFT cache build, against the naive loop, same run.

Default (issue 6 target): writes a dataset of `--clips` real WAV files (`--rate` Hz, 16-bit PCM,
1 s each, 10 classes in subfolders) with soundfile, then times

  pipeline  uvac.pipeline.build_interim + build_features on it as a `folder` dataset — the real
            stages: index, decode with soundfile, soxr HQ to 16 kHz, trim/pad, activity mask,
            STFT n_fft 320 hop 160 magnitude (bins 1..128), per-clip normalisation, split, write
            waves/*.npy, clips.parquet, {train,val,test}.npz and manifest.parquet;
  naive     the loop researchers write, one process: per file librosa.load(path, sr=16000)
            (resampling, soxr_hq) then abs(librosa.stft(y, n_fft=320, hop_length=160, center=False)),
            kept in memory (it writes nothing; the pipeline writes every cache file).

and checks the features are the same: the max absolute difference of the un-normalised magnitude
(the pipeline's uvac.features.spectrogram on its cached waveforms vs the naive one) and of the
normalised cache (x in the .npz files vs uvac.features.normalize_per_clip applied to the naive
magnitude). Target: pipeline/naive >= 5. Prints a table; writes results/benchmarks/feature_build.json.

    .venv/bin/python benchmarks/feature_build.py [--clips 3000] [--rate 22050] [--workers 2]

`--stand-ins` instead times the build of each full-size synthetic stand-in of params.yaml (and
fsdd-dev where present) and the K-means accuracy on it (results/benchmarks/feature_build_datasets.json).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from common import write_report  # benchmarks/common.py

REPO = Path(__file__).resolve().parents[1]
FSDD_DEV = REPO.parent / "shared" / "data" / "fsdd-dev"
OUT_DIR = REPO / "results" / "benchmarks"
TARGET_RATIO = 5.0
SR, N_FFT, HOP, N_BINS = 16000, 320, 160, 128


def folder_cfg(source: Path) -> dict:
    """The synth_digits / fsdd preprocessing (params.yaml) on a folder of recordings."""
    return {"type": "folder", "source": str(source), "labels": {"from": "subfolder", "pattern": None, "csv": None},
            "sample_rate": SR, "clip_seconds": 1.0, "long_files": {"mode": "trim", "max_segments": None},
            "features": {"kind": "stft", "n_fft": N_FFT, "hop": HOP, "n_bins": N_BINS},
            "normalize": "per_clip", "split": {"method": "random", "fractions": [0.8, 0.1, 0.1]}, "subset": None}


def write_dataset(root: Path, n_clips: int, rate: int, seed: int = 0) -> list[str]:
    """n_clips 1 s 16-bit WAV files in 10 class folders: a class-pitched harmonic tone with a random
    envelope, onset and noise. Returns the relative paths."""
    import soundfile as sf
    rng = np.random.default_rng(seed)
    t = np.arange(rate) / rate
    files = []
    for i in range(n_clips):
        label = i % 10
        f0 = 110.0 * 2 ** (label / 4) * rng.uniform(0.95, 1.05)
        tone = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi)) / h for h in range(1, 6))
        onset, length = rng.uniform(0.0, 0.3), rng.uniform(0.3, 0.7)
        env = np.clip((t - onset) / 0.02, 0, 1) * np.clip((onset + length - t) / 0.05, 0, 1)
        wave = 0.3 * env * tone + 0.01 * rng.standard_normal(rate)
        rel = f"class{label}/clip{i:05d}.wav"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / rel, (0.9 * wave / np.abs(wave).max()).astype(np.float32), rate, subtype="PCM_16")
        files.append(rel)
    return files


def naive(root: Path, files: list[str]) -> np.ndarray:
    """The researcher's loop: librosa.load with resampling, librosa.stft magnitude, one file at a time."""
    import librosa
    out = []
    for rel in files:
        y, _ = librosa.load(root / rel, sr=SR)
        y = librosa.util.fix_length(y, size=SR)  # 1 s (the files are 1 s already)
        mag = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP, center=False))
        out.append(mag[1:N_BINS + 1])
    return np.stack(out)


def run_cache(args) -> dict:
    from uvac import features as F, pipeline

    with tempfile.TemporaryDirectory(prefix="uvac-bench-") as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        files = write_dataset(tmp / "audio", args.clips, args.rate)
        write_s = time.perf_counter() - t
        print(f"wrote {len(files)} WAV files at {args.rate} Hz in {write_s:.1f} s (not timed)")
        cfg = folder_cfg(tmp / "audio")

        naive(tmp / "audio", files[:2])  # warm-up: librosa/numba imports and first-call caches
        t = time.perf_counter()
        ref = naive(tmp / "audio", files)
        naive_s = time.perf_counter() - t
        print(f"naive loop: {naive_s:.2f} s")

        t = time.perf_counter()
        interim = pipeline.build_interim("bench", cfg, tmp / "audio", tmp / "interim", seed=0, workers=args.workers)
        t_interim = time.perf_counter() - t
        feats = pipeline.build_features("bench", cfg, tmp / "interim", tmp / "features", seed=0, workers=args.workers)
        pipe_s = time.perf_counter() - t
        print(f"pipeline: {pipe_s:.2f} s (interim {t_interim:.2f} s, features {pipe_s - t_interim:.2f} s)")

        # identical features? un-normalised: the pipeline's spectrogram of its cached waveforms
        clips = pd.read_parquet(tmp / "interim" / "clips.parquet")
        row_of = {f: i for i, f in enumerate(files)}
        diff_raw = 0.0
        for part, group in clips.groupby("part"):
            waves = np.load(tmp / "interim" / "waves" / f"part-{part:05d}.npy")
            group = group.sort_values("row")
            spec = F.spectrogram(waves[group["row"].to_numpy()], cfg["features"], SR)
            diff_raw = max(diff_raw, float(np.abs(spec - ref[[row_of[f] for f in group["source"]]]).max()))
        # normalised: the cache itself vs the same normalisation applied to the naive magnitude
        diff_norm, n_cached = 0.0, 0
        for split in ("train", "val", "test"):
            data = pipeline.load_split(tmp / "features", split)
            idx = [row_of[c] for c in data["clip_id"]]
            expect = F.normalize_per_clip(ref[idx], data["mask"])
            diff_norm = max(diff_norm, float(np.abs(data["x"][:, 0] - expect).max()))
            n_cached += len(idx)
        assert n_cached == len(files) == feats["clips"], (n_cached, len(files), feats["clips"])

    pipe_rate, naive_rate = len(files) / pipe_s, len(files) / naive_s
    return {
        "benchmark": "feature_build", "clips": len(files), "native_rate": args.rate, "target_rate": SR,
        "features": cfg["features"], "normalize": cfg["normalize"], "workers": args.workers,
        "pipeline_s": round(pipe_s, 3), "pipeline_interim_s": round(t_interim, 3),
        "pipeline_features_s": round(pipe_s - t_interim, 3), "naive_s": round(naive_s, 3),
        "pipeline_clips_per_s": round(pipe_rate, 1), "naive_clips_per_s": round(naive_rate, 1),
        "ratio": round(pipe_rate / naive_rate, 2), "target_ratio": TARGET_RATIO,
        "met": bool(pipe_rate / naive_rate >= TARGET_RATIO),
        "max_abs_diff_magnitude": diff_raw, "max_abs_diff_normalised": diff_norm,
        "magnitude_max": float(ref.max()), "rejected": interim["rejected"],
        "naive": "librosa.load(sr=16000, res_type soxr_hq) + abs(librosa.stft(n_fft=320, hop=160, center=False)), one process",
    }


def machine() -> dict:
    return {"cpu_count": os.cpu_count(), "load_avg": [round(x, 2) for x in os.getloadavg()],
            "platform": platform.platform(), "python": platform.python_version()}


def print_cache(r: dict) -> None:
    print()
    print(f"{'':<10} {'seconds':>9} {'clips/s':>9}")
    print(f"{'naive':<10} {r['naive_s']:>9.2f} {r['naive_clips_per_s']:>9.1f}")
    print(f"{'pipeline':<10} {r['pipeline_s']:>9.2f} {r['pipeline_clips_per_s']:>9.1f}   "
          f"(workers {r['workers']}: interim {r['pipeline_interim_s']:.2f} s, features {r['pipeline_features_s']:.2f} s)")
    print(f"ratio {r['ratio']:.2f}x (target >= {r['target_ratio']:g}x: {'met' if r['met'] else 'NOT met'}); "
          f"max |diff| magnitude {r['max_abs_diff_magnitude']:.2e} (max magnitude {r['magnitude_max']:.1f}), "
          f"normalised {r['max_abs_diff_normalised']:.2e}")


# --- --stand-ins: build time of each synthetic stand-in and its K-means difficulty --------------

def build(name: str, cfg: dict, seed: int, workers: int, root: Path) -> dict:
    from uvac import pipeline
    times = {}
    t = time.perf_counter()
    info = pipeline.prepare_raw(name, cfg, root / "raw" / name, seed=seed, download={}, workers=workers)
    times["raw_s"] = time.perf_counter() - t
    t = time.perf_counter()
    interim = pipeline.build_interim(name, cfg, info["root"], root / "interim" / name, seed=seed, workers=workers)
    times["interim_s"] = time.perf_counter() - t
    t = time.perf_counter()
    feats = pipeline.build_features(name, cfg, root / "interim" / name, root / "features" / name, seed=seed, workers=workers)
    times["features_s"] = time.perf_counter() - t
    times = {k: round(v, 2) for k, v in times.items()}
    return {"dataset": name, "how": info["how"], "clips": feats["clips"], "rejected": interim["rejected"],
            "shape": feats["shape"], **times, "total_s": round(sum(times.values()), 2)}


def kmeans_accuracy(features_dir: Path, seed: int = 0) -> dict:
    """K-means (k = classes, n_init 10) on the flattened normalised features of the test split and of all clips."""
    from sklearn.cluster import KMeans
    from uvac import pipeline
    from uvac.metrics import unsupervised_accuracy
    if (features_dir / "features.parquet").exists():
        table = pd.read_parquet(features_dir / "features.parquet")
        parts = {"all": (table.filter(like="mfcc").to_numpy(), table["label_id"].to_numpy())}
    else:
        loaded = {s: pipeline.load_split(features_dir, s) for s in ("train", "val", "test")}
        parts = {"test": (loaded["test"]["x"].reshape(len(loaded["test"]["x"]), -1), loaded["test"]["label_id"]),
                 "all": (np.concatenate([d["x"].reshape(len(d["x"]), -1) for d in loaded.values()]),
                         np.concatenate([d["label_id"] for d in loaded.values()]))}
    out = {}
    for part, (x, y) in parts.items():
        clusters = KMeans(n_clusters=len(np.unique(y)), n_init=10, random_state=seed).fit_predict(x)
        out[f"kmeans_acc_{part}"] = round(unsupervised_accuracy(y, clusters), 4)
        out[f"n_{part}"] = len(y)
    return out


def run_stand_ins(args) -> None:
    from uvac import params as P
    params = P.load(REPO / "params.yaml")  # full-size stand-ins, not the demo overlay
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets:
            cfg = dict(params["datasets"][name])
            if name == "fsdd":
                if not FSDD_DEV.is_dir():
                    print(f"skipping fsdd: {FSDD_DEV} not present")
                    continue
                cfg["source"] = str(FSDD_DEV)
            row = build(name, cfg, params["seed"], args.workers, Path(tmp))
            row.update(kmeans_accuracy(Path(tmp) / "features" / name, params["seed"]))
            rows.append(row)
            print(json.dumps(row))
            shutil.rmtree(Path(tmp) / "interim" / name)
    print(pd.DataFrame(rows).to_string(index=False))
    out = Path(args.out or OUT_DIR / "feature_build_datasets.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"workers": args.workers, **machine(), "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=3000, help="WAV files in the timed dataset (default 3000)")
    ap.add_argument("--rate", type=int, default=22050, help="native sample rate of the WAV files (default 22050)")
    ap.add_argument("--workers", type=int, default=os.cpu_count(), help="pipeline decoding/feature processes")
    ap.add_argument("--out", default=None, help="JSON path (default results/benchmarks/feature_build.json)")
    ap.add_argument("--stand-ins", action="store_true", help="time the synthetic stand-ins' builds instead")
    ap.add_argument("--datasets", nargs="+", default=["synth_digits", "synth_scenes", "synth_music", "fsdd"],
                    help="with --stand-ins: which datasets")
    args = ap.parse_args()
    if args.stand_ins:
        return run_stand_ins(args)
    before = machine()
    result = run_cache(args)
    result["load_avg_before_after"] = [before["load_avg"], machine()["load_avg"]]
    result["targets"] = [{
        "target": f"feature cache build >= {TARGET_RATIO:g}x the naive librosa loop ({result['clips']} clips, "
                  f"{result['native_rate']} Hz -> {SR} Hz, stft, {result['workers']} workers), identical features",
        "figure": f"{result['ratio']:.2f}x ({result['pipeline_clips_per_s']:.0f} vs {result['naive_clips_per_s']:.0f} "
                  f"clips/s; max abs diff {result['max_abs_diff_magnitude']:.1e} magnitude, "
                  f"{result['max_abs_diff_normalised']:.1e} normalised)",
        "met": result["met"]}]
    print_cache(result)
    write_report(args.out or OUT_DIR / "feature_build.json", result)


if __name__ == "__main__":
    main()
