"""`uvac cluster` and `uvac predict`: a user's folder of recordings in, clusters to listen to out.

    OUT/
        assignments.csv  one row per clip: file, start_s, end_s, cluster, probability (+ label)
        metrics.json     silhouette, DBI, CHI in the method's space; accuracy and NMI with labels
        model.pt         the fitted model (weights only) and cluster.json beside it: the feature
                         and method settings `uvac predict` needs to place new recordings
        report.html      + report_files/: t-SNE map, cluster sizes, representative clips
        cache/           raw/, interim/<key>/, features/<key>/, runs/<key>/: keyed by the settings,
                         so a re-run with the same arguments (and unchanged files) reuses them

The data stages are the pipeline's (a folder dataset of DESIGN.md §2, split method `all`), the
VAEs are the estimators of uvac.estimators built from a params.yaml `methods:` entry, and
K-means runs on the flattened features as in uvac.baselines. Every file is written atomically.
"""
from __future__ import annotations

import copy
import json
import logging
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import pairwise_distances_argmin

from . import features as F
from . import pipeline
from .baselines import flat
from .datasets.indexers import audio_files
from .evaluation import SPACES, score_clusters
from .io import atomic_path, write_json
from .models.layers import conv_out
from .params import digest, validate
from .provenance import file_sha256
from .runs import ESTIMATORS, make_estimator
from .training import check_meta, load_state

log = logging.getLogger("uvac")

MODELS = ("uvac", "cat_uvac", "linear_vae", "kmeans")  # params.yaml `model:` values `uvac cluster` can fit
DEFAULT_METHOD = "uvac_pretrain"  # paper-settings uvac put every fsdd-dev clip in one cluster by epoch 2
DEFAULT_MAX_EPOCHS = 10      # the papers' 500 epochs take hours on a CPU; --epochs overrides
SILHOUETTE_CAP = 5000        # silhouette is O(N^2): a seeded sample beyond this, unless params set one
STFT_MAX_SECONDS = 1.0       # the paper's STFT grid up to 1 s clips, log-mel beyond (DESIGN.md §2)
DATASET = "cluster_input"    # key of the folder dataset when its config is validated with params.yaml
SETTINGS_FILE = "cluster.json"


# --- settings ---------------------------------------------------------------------------------

def parse_labels(spec: str) -> dict:
    """--labels subfolder | none | regex:PATTERN | csv:FILE as the folder dataset's `labels:`."""
    how, _, arg = spec.partition(":")
    if spec in ("subfolder", "none"):
        return {"from": spec, "pattern": None, "csv": None}
    if how == "regex" and arg:
        try:
            pattern = re.compile(arg)
        except re.error as exc:
            raise ValueError(f"--labels regex:{arg}: not a valid regular expression ({exc})") from None
        if "label" not in pattern.groupindex:
            raise ValueError(f"--labels regex:{arg}: needs a named group 'label', e.g. regex:^(?P<label>\\d)_")
        return {"from": "regex", "pattern": arg, "csv": None}
    if how == "csv" and arg:
        path = Path(arg).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"--labels csv:{arg}: {path} not found (expected a CSV with columns file,label)")
        return {"from": "csv", "pattern": None, "csv": str(path)}
    raise ValueError(f"--labels: expected subfolder, none, regex:PATTERN or csv:FILE, got {spec!r}")


def feature_settings(model: str, sample_rate: int, clip_seconds: float) -> tuple[dict, str]:
    """(features, normalize) for a user's folder: MFCC statistics for the linear VAE; else the
    paper's 20 ms / 10 ms STFT grid for clips up to 1 s and a 128-band log-mel beyond."""
    if model == "linear_vae":
        return {"kind": "mfcc_stats", "n_mfcc": 13}, "dataset"
    if clip_seconds <= STFT_MAX_SECONDS:
        n_fft = int(round(0.02 * sample_rate))
        if n_fft // 2 < 128:
            raise ValueError(f"--sample-rate {sample_rate}: the STFT grid of clips up to 1 s (20 ms window, "
                             "128 bins above DC) needs at least 12800 Hz")
        return {"kind": "stft", "n_fft": n_fft, "hop": n_fft // 2, "n_bins": 128}, "per_clip"
    n_fft = int(round(0.06 * sample_rate))
    return {"kind": "logmel", "n_fft": n_fft, "hop": n_fft // 2, "n_mels": 128}, "per_clip"


def folder_config(source: Path, labels: dict, *, model: str, sample_rate: int, clip_seconds: float) -> dict:
    """A complete folder-dataset config (DESIGN.md §2): long files cut into clips, every clip clustered."""
    if not 1000 <= sample_rate <= 192000:
        raise ValueError(f"--sample-rate: expected 1000..192000 Hz, got {sample_rate}")
    if not 0 < clip_seconds <= 600:
        raise ValueError(f"--clip-seconds: expected a length in (0, 600] seconds, got {clip_seconds}")
    feats, normalize = feature_settings(model, sample_rate, clip_seconds)
    clip_len = int(round(clip_seconds * sample_rate))
    if feats["kind"] != "mfcc_stats":
        if feats["n_fft"] > clip_len:
            raise ValueError(f"--clip-seconds {clip_seconds}: shorter than one analysis window ({feats['n_fft']} samples)")
        frames = F.n_frames(clip_len, feats["n_fft"], feats["hop"])
        if model in ("uvac", "cat_uvac") and conv_out(frames) < 1:
            raise ValueError(f"--clip-seconds {clip_seconds}: {frames} frames per clip; the {model} encoder's "
                             "four stride-2 convolutions need at least 16 (use 0.2 s or more)")
    return {"type": "folder", "source": str(source), "labels": labels, "sample_rate": int(sample_rate),
            "clip_seconds": float(clip_seconds), "long_files": {"mode": "segment", "max_segments": None},
            "features": feats, "normalize": normalize, "split": {"method": "all", "fractions": None},
            "subset": None}


def method_settings(params: dict, name: str, epochs: int | None) -> dict:
    """A params.yaml `methods:` entry with a CPU-sized epoch count: --epochs, else the method's
    capped at DEFAULT_MAX_EPOCHS; pre-training epochs (uvac_pretrain) are capped at the same."""
    methods = params["methods"]
    usable = sorted(m for m, spec in methods.items() if spec["model"] in MODELS)
    if name not in methods or methods[name]["model"] not in MODELS:
        raise ValueError(f"--method: expected one of {usable} (methods of params.yaml whose model "
                         f"uvac cluster can fit), got {name!r}")
    method = copy.deepcopy(methods[name])
    if "epochs" in method:
        if epochs is not None and epochs < 1:
            raise ValueError(f"--epochs: expected a number >= 1, got {epochs}")
        method["epochs"] = int(epochs) if epochs is not None else min(method["epochs"], DEFAULT_MAX_EPOCHS)
        if method.get("pretrain_epochs"):
            method["pretrain_epochs"] = min(method["pretrain_epochs"], method["epochs"])
    return method


def check_params(params: dict, cfg: dict) -> None:
    """Validate the folder config like any params.yaml dataset (schema and cross-key checks)."""
    validate({**params, "datasets": {**params["datasets"], DATASET: cfg}}, source="uvac cluster settings")


def check_out(source: Path, out: Path) -> None:
    """Refuse an OUT inside DIR: its report WAVs would be clustered as recordings next time."""
    if out.resolve().is_relative_to(source.resolve()):
        raise ValueError(f"--out {out}: must not lie inside the recordings folder {source} "
                         "(its audio excerpts would be read as recordings); choose another folder")


# --- cached data stages -------------------------------------------------------------------------

def folder_fingerprint(root: Path, labels: dict) -> list:
    """Every file under root (and a label CSV elsewhere) with size and mtime: a changed, added or
    removed recording makes a new cache key instead of reusing stale clips."""
    audio, other = audio_files(root)
    paths = sorted(audio + other)
    if labels["csv"]:
        paths.append(Path(labels["csv"]))
    return [(str(p.relative_to(root)) if p.is_relative_to(root) else str(p), p.stat().st_size, p.stat().st_mtime_ns)
            for p in paths]


def build_data(cfg: dict, cache: Path, *, name: str, seed: int, workers: int) -> dict:
    """raw → interim → features of the folder, each stage reused when its key matches."""
    root = Path(cfg["source"]).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{cfg['source']}: not a folder (expected a directory of recordings)")
    cache = Path(cache)
    pipeline.prepare_raw(name, cfg, cache / "raw", seed=seed, download={})
    interim_key = digest({"source": str(root), "files": folder_fingerprint(root, cfg["labels"]),
                          **{k: cfg[k] for k in ("labels", "sample_rate", "clip_seconds", "long_files", "subset")}})
    interim = cache / "interim" / interim_key
    reused = {}
    if (interim / "clips.parquet").exists():  # written last by build_interim: the stage completed
        n_bad = len(pd.read_csv(interim / "rejected.csv"))
        log.info("%s: reusing decoded clips in %s (same files and settings; %d file(s) rejected, see "
                 "rejected.csv there)", name, interim, n_bad)
        reused["interim"] = True
    else:
        pipeline.build_interim(name, cfg, root, interim, seed=seed, workers=workers)
        reused["interim"] = False
    features_key = digest({"interim": interim_key, **{k: cfg[k] for k in ("features", "normalize", "split")}})
    features = cache / "features" / features_key
    if (features / "manifest.parquet").exists():  # written last by build_features
        log.info("%s: reusing features in %s", name, features)
        reused["features"] = True
    else:
        pipeline.build_features(name, cfg, interim, features, seed=seed, workers=workers)
        reused["features"] = False
    return {"interim": interim, "features": features, "features_key": features_key, "reused": reused}


def load_clips(data: dict, cfg: dict) -> dict:
    """x, mask, label_id of every clip and a table aligned with them: file, start/end, label, and
    where its decoded waveform lies (part, row) for the report's excerpts."""
    split = pipeline.load_split(data["features"], "all")
    manifest = pd.read_parquet(data["features"] / "manifest.parquet")
    where = pd.read_parquet(data["interim"] / "clips.parquet")[["clip_id", "part", "row"]]
    table = manifest.merge(where, on="clip_id", how="left", validate="one_to_one")
    table = table.set_index("clip_id").loc[split["clip_id"]].reset_index()
    sr = cfg["sample_rate"]
    table["end_s"] = (table["start_s"] + table["n_samples"] / sr).round(6)
    table["start_s"] = table["start_s"].round(6)
    return {**split, "table": table}


def mfcc_raw(interim: Path, cfg: dict) -> tuple[np.ndarray, np.ndarray]:
    """Un-normalised MFCC statistics of every clip (in feature-cache order) and their clip ids:
    the linear VAE's z-scoring must use the statistics of the recordings it was trained on."""
    clips = pd.read_parquet(Path(interim) / "clips.parquet").sort_values(["part", "row"])
    out = []
    for part, group in clips.groupby("part", sort=True):
        waves = np.load(Path(interim) / "waves" / f"part-{part:05d}.npy", mmap_mode="r")
        out.append(F.mfcc_stats(np.asarray(waves), group["n_samples"].to_numpy(), cfg["sample_rate"],
                                cfg["features"]["n_mfcc"]))
    return np.concatenate(out), clips["clip_id"].to_numpy(str)


# --- models ---------------------------------------------------------------------------------------

class KMeansClusters:
    """K-means on the flattened features (as the kmeans baseline), kept so that new clips can be
    placed later: predict = nearest centre. Saved like the estimators, weights only."""

    kind = "kmeans"

    def __init__(self, n_clusters: int, n_init: int = 10, seed: int = 0):
        self.n_clusters, self.n_init, self.seed = int(n_clusters), int(n_init), int(seed)

    def fit(self, X, mask=None, run_dir=None):
        X = np.asarray(X, dtype=np.float32)
        self.input_shape = [int(s) for s in X.shape[1:]]
        km = KMeans(self.n_clusters, n_init=self.n_init, random_state=self.seed).fit(flat(X))
        self.cluster_centers_ = km.cluster_centers_.astype(np.float32)
        return self

    def transform(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if list(X.shape[1:]) != self.input_shape:
            raise ValueError(f"this K-means model was fitted on clips of shape {tuple(self.input_shape)}, "
                             f"got {X.shape[1:]}")
        return flat(X)

    def predict(self, X) -> np.ndarray:
        return pairwise_distances_argmin(self.transform(X), self.cluster_centers_)

    def save(self, path) -> None:
        state = {"format": 1, "meta": {"kind": self.kind, "n_clusters": self.n_clusters,
                                       "input_shape": self.input_shape},
                 "config": {"n_init": self.n_init, "seed": self.seed},
                 "centers": torch.from_numpy(self.cluster_centers_)}
        with atomic_path(path) as tmp:
            torch.save(state, tmp)

    @classmethod
    def load(cls, path, n_clusters: int | None = None, input_shape=None):
        state = load_state(path)
        meta = state["meta"]
        check_meta(meta, {"kind": cls.kind}, path)
        for key, want in (("n_clusters", n_clusters), ("input_shape", input_shape)):
            if want is not None and meta[key] != (list(want) if key == "input_shape" else want):
                raise ValueError(f"{path} holds K-means with {key} {meta[key]}, but {want} was expected")
        est = cls(meta["n_clusters"], **state["config"])
        est.input_shape, est.cluster_centers_ = meta["input_shape"], state["centers"].numpy()
        return est


ESTIMATOR_CLASSES = {**ESTIMATORS, "kmeans": KMeansClusters}


def model_kind(path: Path) -> str:
    """The model kind recorded in a saved model, with a clear error for anything else."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--model {path}: no such file")
    try:
        kind = load_state(path)["meta"]["kind"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"--model {path}: not a model saved by uvac ({exc})") from exc
    if kind not in ESTIMATOR_CLASSES:
        raise ValueError(f"--model {path}: a {kind!r} model; uvac cluster handles {sorted(ESTIMATOR_CLASSES)}")
    return kind


def fit_model(kind: str, method: dict, x, mask, *, k: int, seed: int, train: dict, threads: int, run_dir: Path):
    """Fit one method on every clip; a VAE checkpoints into run_dir each epoch and resumes from it."""
    if kind == "kmeans":
        log.info("fitting K-means (k = %d, n_init %d) on %d clips of %d features", k, method["n_init"], len(x),
                 flat(x[:1]).shape[1])
        t0 = time.perf_counter()
        est = KMeansClusters(k, method["n_init"], seed).fit(x)
        log.info("K-means done (%.1f s)", time.perf_counter() - t0)
        return est
    if (Path(run_dir) / "checkpoint.pt").exists():
        log.info("resuming the interrupted training from %s", Path(run_dir) / "checkpoint.pt")
    log.info("training %s (k = %d) for %d epochs on %d clips", kind, k, method["epochs"], len(x))
    return make_estimator(method, k, seed, {**train, "checkpoint_every": 1}, threads).fit(x, mask, run_dir=run_dir)


def assign(est, kind: str, x) -> dict:
    """Clusters, the posterior where the model has one, and the points of each of the method's
    metric spaces (uvac.evaluation.SPACES: input for K-means, z for the VAEs, also q(y|x) for cat_uvac)."""
    if kind in ("kmeans", "linear_vae"):
        points = {"input" if kind == "kmeans" else "z": est.transform(x)}
        cluster, proba = est.predict(x), None
    else:
        z, log_proba = est._infer(x)  # one pass for both (transform + predict_proba would encode twice)
        proba = np.exp(log_proba)
        points, cluster = {"z": z, "q(y|x)": proba}, proba.argmax(1)
    return {"cluster": np.asarray(cluster), "proba": proba, "spaces": {s: points[s] for s in SPACES[kind]}}


def score(out: dict, label_id: np.ndarray, k: int, *, silhouette_sample: int | None, seed: int) -> dict:
    """uvac.evaluation.score_clusters over every clip, with the cluster sizes; the first space's
    silhouette / DBI / CHI are repeated at the top level."""
    clusters = out["cluster"]
    if silhouette_sample is None and len(clusters) > SILHOUETTE_CAP:
        silhouette_sample = SILHOUETTE_CAP
    result = score_clusters(clusters, label_id, k, out["spaces"], silhouette_sample=silhouette_sample, seed=seed)
    result["clips"] = result.pop("n_test")
    result["cluster_sizes"] = np.bincount(clusters, minlength=k).tolist()
    first = next(iter(out["spaces"]))
    result.update(space=first, **{m: result["spaces"][first][m] for m in ("silhouette", "dbi", "chi")})
    return result


# --- outputs --------------------------------------------------------------------------------------

def write_assignments(path: Path, table: pd.DataFrame, out: dict, labelled: bool) -> pd.DataFrame:
    """assignments.csv: file, clip start/end (s), cluster, probability (blank where the method has
    no posterior: kmeans, linear_vae) and, with labels, the label."""
    rows = pd.DataFrame({"file": table["path"], "start_s": table["start_s"], "end_s": table["end_s"],
                         "cluster": out["cluster"].astype(int),
                         "probability": (out["proba"].max(1).round(4) if out["proba"] is not None
                                         else np.full(len(table), np.nan))})
    if labelled:
        rows["label"] = table["label"]
    rows = rows.sort_values(["file", "start_s"], kind="stable")
    with atomic_path(path) as tmp:
        rows.to_csv(tmp, index=False)
    return rows


def copy_atomic(src: Path, dest: Path) -> None:
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)


def _summary_line(metrics: dict) -> str:
    acc = "" if metrics["accuracy"] is None else f", accuracy {100 * metrics['accuracy']:.1f} %, NMI {metrics['nmi']:.3f}"
    sil = "n/a" if metrics["silhouette"] is None else f"{metrics['silhouette']:.3f}"
    return (f"{metrics['clips']} clips in {metrics['clusters_used']} of {metrics['k']} clusters{acc}, "
            f"silhouette {sil} (space {metrics['space']})")


# --- the two commands -----------------------------------------------------------------------------

def _limit_threads(threads: int):
    """torch and the OpenMP/BLAS pools of scikit-learn and numpy at `threads` (0: the libraries'
    defaults). Fixed, not load-dependent: CPU results may differ in the last bits with the thread count."""
    from contextlib import nullcontext

    from threadpoolctl import threadpool_limits
    if not threads:
        return nullcontext()
    torch.set_num_threads(threads)
    return threadpool_limits(limits=threads)


def cluster_folder(source, k: int, *, threads: int = 0, **kwargs) -> dict:
    """Cluster every clip of a folder of recordings and write OUT (see the module docstring)."""
    with _limit_threads(threads):
        return _cluster_folder(source, k, threads=torch.get_num_threads(), **kwargs)


def predict_folder(model, source, *, threads: int = 0, **kwargs) -> dict:
    """Assign the clips of new recordings to the clusters of a `uvac cluster` run, without training."""
    with _limit_threads(threads):
        return _predict_folder(model, source, **kwargs)


def _cluster_folder(source, k: int, *, params: dict, params_path: str, method_name: str | None = None,
                    out=None, model_path=None, labels: str = "none", epochs: int | None = None,
                    clip_seconds: float = 1.0, sample_rate: int = 16000, seed: int = 0, examples: int = 3,
                    workers: int = 1, threads: int = 0) -> dict:
    t_start = time.perf_counter()
    source = Path(source).expanduser()
    if not source.is_dir():
        raise FileNotFoundError(f"DIR {source}: not a folder (expected a directory of recordings)")
    out = Path(out) if out is not None else Path(f"uvac-cluster-{source.resolve().name}")
    check_out(source, out)
    if int(k) < 2:
        raise ValueError(f"--k: expected a number of clusters >= 2, got {k}")
    given_kind = model_kind(Path(model_path)) if model_path is not None else None
    if method_name is None:
        method_name = given_kind if given_kind is not None else DEFAULT_METHOD
    method = method_settings(params, method_name, epochs)
    kind = method["model"]
    if given_kind is not None and given_kind != kind:
        raise ValueError(f"--model {model_path} holds a {given_kind} model but --method {method_name} is {kind}; "
                         f"pass --method {given_kind} (or leave --method out)")
    cfg = folder_config(source.resolve(), parse_labels(labels), model=kind, sample_rate=sample_rate,
                        clip_seconds=clip_seconds)
    check_params(params, cfg)
    name = source.resolve().name or "recordings"
    epochs_text = "".join(f", {key.replace('_', ' ')} {method[key]}" for key in ("pretrain_epochs", "epochs")
                          if method.get(key))
    log.info("clustering %s into k = %d with %s (settings: %s methods.%s%s) -> %s", source, k, method_name,
             params_path, method_name, epochs_text, out)

    data = build_data(cfg, out / "cache", name=name, seed=seed, workers=workers)
    clips = load_clips(data, cfg)
    x, mask, table = clips["x"], clips["mask"], clips["table"]
    if k > len(x):
        raise ValueError(f"--k {k}: more clusters than the {len(x)} clips found in {source}")
    labelled = bool((clips["label_id"] >= 0).any())
    mfcc_norm = None
    if cfg["features"]["kind"] == "mfcc_stats":
        raw, ids = mfcc_raw(data["interim"], cfg)
        mean, std = raw.mean(axis=0), raw.std(axis=0) + F.EPS
        assert np.array_equal(ids, clips["clip_id"]), "MFCC rows out of the feature cache's order"
        mfcc_norm = {"mean": mean.tolist(), "std": std.tolist()}

    cls = ESTIMATOR_CLASSES[kind]
    if model_path is not None:
        run_key = digest({"features": data["features_key"], "model_sha256": file_sha256(Path(model_path))})
        est = cls.load(model_path, n_clusters=k, input_shape=x.shape[1:])
        log.info("using the given model %s (no training)", model_path)
        model_reused, trained_file = True, Path(model_path)
    else:
        run_key = digest({"features": data["features_key"], "method": method, "k": int(k), "seed": int(seed)})
        run_dir = out / "cache" / "runs" / run_key
        trained_file = run_dir / "model.pt"
        if trained_file.exists():
            est = cls.load(trained_file, n_clusters=k, input_shape=x.shape[1:])
            log.info("reusing the model trained earlier with the same data and settings: %s", trained_file)
            model_reused = True
        else:
            t_fit = time.perf_counter()
            est = fit_model(kind, method, x, mask, k=k, seed=seed, train=params["train"], threads=threads,
                            run_dir=run_dir)
            est.save(trained_file)
            write_json(run_dir / "fit.json", {"fit_seconds": round(time.perf_counter() - t_fit, 1)})
            model_reused = False
    fit_file = trained_file.parent / "fit.json"  # the time of the original fit, also when reused
    fit_seconds = json.loads(fit_file.read_text())["fit_seconds"] if model_path is None and fit_file.exists() else None
    result = assign(est, kind, x)

    metrics = score(result, clips["label_id"], k, silhouette_sample=params["evaluate"]["silhouette_sample"], seed=seed)
    metrics.update(method=method_name, model=kind, seed=seed, epochs=method.get("epochs"),
                   pretrain_epochs=method.get("pretrain_epochs"), labels=cfg["labels"],
                   files=int(table["path"].nunique()),
                   rejected=int(len(pd.read_csv(data["interim"] / "rejected.csv"))),
                   reused={**data["reused"], "model": model_reused}, fit_seconds=fit_seconds)

    out.mkdir(parents=True, exist_ok=True)
    assignments = write_assignments(out / "assignments.csv", table, result, labelled)
    write_json(out / "metrics.json", metrics)
    copy_atomic(trained_file, out / "model.pt")
    settings = {"format": 1, "dataset": cfg, "method": method_name, "method_settings": method, "model": kind,
                "k": int(k), "seed": int(seed), "input_shape": [int(s) for s in x.shape[1:]],
                "features_key": data["features_key"], "run_key": run_key, "mfcc_norm": mfcc_norm,
                "model_sha256": file_sha256(out / "model.pt"), "params": str(params_path)}
    write_json(out / SETTINGS_FILE, settings)  # after model.pt: predict checks the two belong together

    from .html_report import build_report
    build_report(out, run_dir=out / "cache" / "runs" / run_key, table=table, result=result, metrics=metrics,
                 interim=data["interim"], cfg=cfg, method_name=method_name, source=source, examples=examples,
                 tsne=params["figures"], seed=seed)
    metrics["seconds"] = round(time.perf_counter() - t_start, 1)
    log.info("%s: %s; wrote %s (assignments.csv, metrics.json, model.pt, report.html) in %.1f s",
             name, _summary_line(metrics), out, metrics["seconds"])
    assert len(assignments) == len(x)
    return metrics


def load_run(model: Path) -> tuple[Path, dict]:
    """The model file and the settings `uvac cluster` saved beside it (OUT or OUT/model.pt)."""
    model = Path(model)
    path = model / "model.pt" if model.is_dir() else model
    settings_path = path.parent / SETTINGS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"--model {model}: no model file (expected the OUT folder of `uvac cluster` or its model.pt)")
    if not settings_path.is_file():
        raise FileNotFoundError(f"--model {model}: no {SETTINGS_FILE} beside {path.name}; predict needs the feature "
                                "settings that `uvac cluster` saves there (pass the OUT folder of a cluster run)")
    settings = json.loads(settings_path.read_text())
    if file_sha256(path) != settings["model_sha256"]:
        raise ValueError(f"--model {model}: {path.name} and {SETTINGS_FILE} come from different runs "
                         "(interrupted or copied separately); re-run `uvac cluster` to write both")
    return path, settings


def _predict_folder(model, source, *, out=None, labels: str = "none", workers: int = 1) -> dict:
    t_start = time.perf_counter()
    path, settings = load_run(model)
    source = Path(source).expanduser()
    if not source.is_dir():
        raise FileNotFoundError(f"DIR {source}: not a folder (expected a directory of recordings)")
    out = Path(out) if out is not None else Path(f"uvac-predict-{source.resolve().name}")
    check_out(source, out)
    cfg = {**settings["dataset"], "source": str(source.resolve()), "labels": parse_labels(labels)}
    kind, k = settings["model"], settings["k"]
    name = source.resolve().name or "recordings"
    log.info("assigning the recordings of %s to the %d clusters of %s (%s)", source, k, path, settings["method"])
    data = build_data(cfg, out / "cache", name=name, seed=settings["seed"], workers=workers)
    clips = load_clips(data, cfg)
    x = clips["x"]
    if settings["mfcc_norm"] is not None:  # z-score with the training recordings' statistics
        raw, ids = mfcc_raw(data["interim"], cfg)
        assert np.array_equal(ids, clips["clip_id"]), "MFCC rows out of the feature cache's order"
        norm = settings["mfcc_norm"]
        x = ((raw - np.asarray(norm["mean"], np.float32)) / np.asarray(norm["std"], np.float32)).astype(np.float32)
    est = ESTIMATOR_CLASSES[kind].load(path, n_clusters=k, input_shape=settings["input_shape"])
    result = assign(est, kind, x)
    labelled = bool((clips["label_id"] >= 0).any())
    out.mkdir(parents=True, exist_ok=True)
    write_assignments(out / "assignments.csv", clips["table"], result, labelled)
    metrics = score(result, clips["label_id"], k, silhouette_sample=None, seed=settings["seed"])
    metrics.update(model=str(path.resolve()), method=settings["method"], labels=cfg["labels"],
                   files=int(clips["table"]["path"].nunique()), reused=data["reused"],
                   rejected=int(len(pd.read_csv(data["interim"] / "rejected.csv"))),
                   seconds=round(time.perf_counter() - t_start, 1))
    write_json(out / "metrics.json", metrics)
    log.info("%s: %s; wrote %s (assignments.csv, metrics.json)", name, _summary_line(metrics), out)
    return metrics
