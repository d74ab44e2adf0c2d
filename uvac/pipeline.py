"""The data stages: raw audio → interim clips → feature caches (DESIGN.md §2–3).

Each stage is a plain function of (dataset config, paths); Snakemake rules call them through
~10-line adapters, and `uvac` commands and tests call them directly.
"""
from __future__ import annotations

import hashlib
import logging
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from . import features as F
from . import splits
from .audio import Rejected, cut, decode
from .datasets.indexers import INDEXERS
from .clip_store import NpzRows
from .io import atomic_path, write_json

log = logging.getLogger("uvac")

CHUNK_FILES = 256  # files decoded per worker task; each task writes one waveform part
SYNTHETIC = ("synth_digits", "synth_scenes", "synth_music")


# --- raw ---------------------------------------------------------------------------------------

def prepare_raw(name: str, cfg: dict, raw_dir: Path, *, seed: int, download: dict, workers: int = 1) -> dict:
    """Make the dataset's audio available and record where it is in raw_dir/source.json.

    Synthetic sets are generated; `source:` a folder is used in place; `source:` an archive is
    extracted; otherwise the pinned files are downloaded (resumably) and extracted.
    """
    raw_dir = Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    kind = cfg["type"]
    if kind in SYNTHETIC:
        from .datasets.synth import GENERATORS
        GENERATORS[kind](raw_dir / "generated", cfg["generator"]["n_per_class"], seed, workers)
        info = {"how": "generated", "root": str((raw_dir / "generated").resolve())}
    elif cfg["source"] is not None and Path(cfg["source"]).is_dir():
        info = {"how": "local folder", "root": str(Path(cfg["source"]).resolve())}
    elif cfg["source"] is not None:
        archive = Path(cfg["source"])
        if not archive.is_file():
            raise FileNotFoundError(f"datasets.{name}.source: {archive} is neither a folder nor an archive file")
        info = {"how": "local archive", "archives": [_extract(archive, raw_dir, download)]}
        info["root"] = str((raw_dir / "extracted").resolve())
    elif kind == "folder":
        raise ValueError(f"datasets.{name}.source: a folder dataset needs the path of its recordings")
    else:
        info = {"how": "downloaded", "archives": _download_all(name, kind, raw_dir, download)}
        info["root"] = str((raw_dir / "extracted").resolve())
    write_json(raw_dir / "source.json", info)
    log.info("%s: audio %s at %s", name, info["how"], info["root"])
    return info


def _extract(archive: Path, raw_dir: Path, download: dict) -> dict:
    from .download import file_digest
    from .extract import safe_extract
    stem = archive.name
    for suffix in (".zip", ".tgz", ".tar.gz", ".tar.bz2", ".tar.xz", ".tar"):
        stem = stem.removesuffix(suffix)
    target = raw_dir / "extracted" / stem  # one folder per archive: TAU2019 has 23 zips
    if not target.exists():
        safe_extract(archive, target, max_bytes=int(download["max_extract_gib"] * 2**30))
    return {"file": str(archive), "sha256": file_digest(archive, "sha256")}


def _download_all(name: str, kind: str, raw_dir: Path, download: dict) -> list[dict]:
    from .datasets.sources import SOURCES
    from .download import fetch
    out = []
    for remote in SOURCES[kind].files:
        dest = fetch(list(remote.urls), raw_dir / "downloads" / remote.filename, size=remote.size,
                     md5=remote.md5, sha256=remote.sha256, retries=download["retries"],
                     timeout_s=download["timeout_s"],
                     hint=f"datasets.{name}.source: /path/to/{remote.filename} (or the extracted folder)")
        out.append(_extract(dest, raw_dir, download))
    return out


# --- interim: decoded, resampled, cut clips ---------------------------------------------------

def _decode_chunk(task):
    """Worker: decode one chunk of files, write its clips as one .npy part, return metadata."""
    index, root, rows, cfg, part_path = task
    sr = cfg["sample_rate"]
    clip_len = int(round(cfg["clip_seconds"] * sr))
    clips, rejected, waves = [], [], []
    for row in rows:
        path = Path(root) / row["file"]
        try:
            decoded = decode(path, sr)
        except Rejected as exc:
            rejected.append({"file": row["file"], "reason": str(exc)})
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        segmented = cfg["long_files"]["mode"] == "segment"
        for k, (start, clip, n_real) in enumerate(cut(decoded.wave, clip_len, cfg["long_files"]["mode"],
                                                      cfg["long_files"]["max_segments"])):
            clips.append({
                "clip_id": f"{row['file']}#{k}" if segmented else row["file"],
                "source": row["file"], "sha256": digest, "label": row["label"],
                "speaker": row["speaker"], "fold": row["fold"],
                "native_rate": decoded.native_rate, "channels": decoded.channels,
                "duration_s": round(decoded.duration_s, 6), "start_s": start / sr,
                "n_samples": n_real, "part": index, "row": len(waves),
            })
            waves.append(clip)
    if waves:
        with atomic_path(part_path) as tmp:
            np.save(tmp, np.stack(waves))
    return clips, rejected


def _pool(workers: int):
    return ProcessPoolExecutor(max_workers=max(1, workers))


def build_interim(name: str, cfg: dict, root: Path, out_dir: Path, *, seed: int, workers: int = 1) -> dict:
    """Index, subset, decode and cut every file; write waves/part-*.npy, clips.parquet, rejected.csv."""
    t0 = time.perf_counter()
    root, out_dir = Path(root), Path(out_dir)
    files, rejected = INDEXERS[cfg["type"]](root, cfg)
    files = splits.subset_files(files.reset_index(drop=True), cfg["subset"], seed)
    parts = out_dir / "waves"
    parts.mkdir(parents=True, exist_ok=True)
    records = files.to_dict("records")
    tasks = [(i, str(root), records[s:s + CHUNK_FILES], cfg, parts / f"part-{i:05d}.npy")
             for i, s in enumerate(range(0, len(records), CHUNK_FILES))]
    clips, bad = [], [rejected.assign(stage="index")]
    with _pool(workers) as pool:
        for chunk_clips, chunk_bad in tqdm(pool.map(_decode_chunk, tasks), total=len(tasks),
                                           desc=f"{name}: decode", unit="chunk", disable=None):
            clips.extend(chunk_clips)
            bad.append(pd.DataFrame(chunk_bad, columns=["file", "reason"]).assign(stage="decode"))
    rejected = pd.concat(bad, ignore_index=True)
    clips = pd.DataFrame(clips)
    if clips.empty:
        raise ValueError(f"{name}: no usable clip among {len(files)} files; see the reasons:\n"
                         + rejected.head(20).to_string(index=False))
    with atomic_path(out_dir / "rejected.csv") as tmp:
        rejected.to_csv(tmp, index=False)
    with atomic_path(out_dir / "clips.parquet") as tmp:  # written last: marks the stage complete
        clips.to_parquet(tmp, index=False)
    summary = {"dataset": name, "files": len(files) + int((rejected["stage"] == "index").sum()),
               "files_used": int(clips["source"].nunique()), "clips": len(clips),
               "rejected": len(rejected), "seconds": round(time.perf_counter() - t0, 2)}
    for row in rejected.itertuples():
        log.warning("%s: rejected %s: %s", name, row.file, row.reason)
    log.info("%s: %d clips from %d files, %d rejected (%.1f s)", name, summary["clips"],
             summary["files_used"], summary["rejected"], summary["seconds"])
    return summary


# --- features ----------------------------------------------------------------------------------

def _feature_chunk(task):
    """Worker: features of one waveform part (spectrogram + mask, or MFCC statistics)."""
    part_path, n_real, cfg = task
    waves = np.load(part_path, mmap_mode="r")
    feat, sr = cfg["features"], cfg["sample_rate"]
    if feat["kind"] == "mfcc_stats":
        return F.mfcc_stats(np.asarray(waves), n_real, sr, feat["n_mfcc"]), None
    mask = F.activity_mask(n_real, waves.shape[1], feat["n_fft"], feat["hop"])
    spec = F.spectrogram(np.asarray(waves), feat, sr)
    if cfg["normalize"] == "per_clip":
        spec = F.normalize_per_clip(spec, mask)
    return spec, mask


def build_features(name: str, cfg: dict, interim_dir: Path, out_dir: Path, *, seed: int, workers: int = 1) -> dict:
    """Split, compute features, normalise without test leakage, write the caches and manifest."""
    t0 = time.perf_counter()
    interim_dir, out_dir = Path(interim_dir), Path(out_dir)
    clips = pd.read_parquet(interim_dir / "clips.parquet")
    sources = clips.drop_duplicates("source").set_index("source")
    clips["split"] = clips["source"].map(splits.assign(sources, cfg["split"], seed))
    labels = sorted(clips["label"].dropna().unique())
    clips["label_id"] = clips["label"].map({lab: i for i, lab in enumerate(labels)}).fillna(-1).astype(int)

    tasks = [(interim_dir / "waves" / f"part-{p:05d}.npy", g.sort_values("row")["n_samples"].to_numpy(), cfg)
             for p, g in clips.groupby("part", sort=True)]
    chunks = []
    with _pool(workers) as pool:
        for result in tqdm(pool.map(_feature_chunk, tasks), total=len(tasks),
                           desc=f"{name}: features", unit="chunk", disable=None):
            chunks.append(result)
    clips = clips.sort_values(["part", "row"]).reset_index(drop=True)
    x = np.concatenate([c[0] for c in chunks])
    train = (clips["split"] == "train") | (clips["split"] == "all")

    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg["features"]["kind"] == "mfcc_stats":
        mean, std = x[train.to_numpy()].mean(axis=0), x[train.to_numpy()].std(axis=0) + F.EPS
        x = (x - mean) / std
        table = clips[["clip_id", "split", "label", "label_id"]].copy()
        names = F.mfcc_stat_names(cfg["features"]["n_mfcc"])
        table[names] = x.astype(np.float32)
        with atomic_path(out_dir / "features.parquet") as tmp:
            table.to_parquet(tmp, index=False)
        clips["active_frames"] = -1
        shape = list(x.shape[1:])
    else:
        mask = np.concatenate([c[1] for c in chunks])
        if cfg["normalize"] == "dataset":
            stats = F.fit_dataset_norm(x[train.to_numpy()], mask[train.to_numpy()])
            x = F.apply_dataset_norm(x, mask, stats)
        clips["active_frames"] = mask.sum(axis=1).astype(int)
        for split in sorted(clips["split"].unique()):
            sel = (clips["split"] == split).to_numpy()
            with atomic_path(out_dir / f"{split}.npz") as tmp:
                np.savez(tmp, x=x[sel][:, None].astype(np.float32), mask=mask[sel].astype(np.float32),
                         clip_id=clips.loc[sel, "clip_id"].to_numpy(dtype=str),
                         label_id=clips.loc[sel, "label_id"].to_numpy())
        shape = [1, *x.shape[1:]]
    manifest = clips.drop(columns=["part", "row"]).rename(columns={"source": "path"})
    with atomic_path(out_dir / "manifest.parquet") as tmp:  # written last: marks the stage complete
        manifest.to_parquet(tmp, index=False)
    summary = {"dataset": name, "clips": len(clips), "shape": shape, "labels": labels,
               "splits": clips["split"].value_counts().sort_index().to_dict(),
               "seconds": round(time.perf_counter() - t0, 2)}
    log.info("%s: features %s for %d clips (%.1f s)", name, shape, len(clips), summary["seconds"])
    return summary


def load_split(features_dir: Path, split: str, *, lazy: bool = False) -> dict:
    """One split of a feature cache: x (N,1,F,T) and mask (N,T) for spectrograms, x (N,26) and
    mask None for MFCC statistics; clip_id and label_id always.

    A dataset split with method `all` has one split, returned whatever split is asked for.
    With lazy, a spectrogram x stays on disk as NpzRows (read batch by batch by the training loop).
    """
    features_dir = Path(features_dir)
    table = features_dir / "features.parquet"
    if table.exists():
        df = pd.read_parquet(table)
        if split in set(df["split"]):
            df = df[df["split"] == split]
        elif set(df["split"]) != {"all"}:
            raise ValueError(f"{features_dir}: no split {split!r} (has {sorted(set(df['split']))})")
        x = df.drop(columns=["clip_id", "split", "label", "label_id"]).to_numpy(np.float32, copy=True)
        return {"x": x, "mask": None, "clip_id": df["clip_id"].to_numpy(str), "label_id": df["label_id"].to_numpy()}
    path = features_dir / f"{split}.npz"
    if not path.exists() and (features_dir / "all.npz").exists():
        path = features_dir / "all.npz"
    if not path.exists():
        raise FileNotFoundError(f"{features_dir}: no {split}.npz; build the features first (rule features)")
    with np.load(path) as data:
        split_data = {k: data[k] for k in data.files if not (lazy and k == "x")}
    if lazy:
        split_data["x"] = NpzRows(path, "x")
    return split_data
