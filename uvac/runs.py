"""One training run: a method variant × dataset × K × seed, from feature cache to run directory.

    results/runs/<dataset>/<method>/k<K>/seed<s>/
        checkpoint.pt     resumable training state (kept after the run; a re-run resumes from it)
        model.pt          the fitted estimator (weights only)
        history.csv/.jsonl per-epoch losses, KL terms, lr, tau, cluster usage
        embeddings.npz    test split: clip_id, label_id, z (latent means), proba, cluster
        metrics.json      test accuracy / NMI, cluster usage, device (the full metric set: evaluate rule)
    results/runs/<dataset>/pretext_e<E>_b<B>_seed<s>.npz
                          the pretext embedding of the training clips (uvac.pretext), made once for every
                          method with pretext_epochs E and pretext_batch_size B that reads it, and the runs
                          of seed s
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import pretext
from .estimators import CategoricalUVAC, LinearVAE, UVAC
from .io import atomic_path, write_json
from .metrics import label_scores
from .params import check_k, pretext_settings
from .pipeline import load_split
from .training import resolve_device

ESTIMATORS = {"uvac": UVAC, "cat_uvac": CategoricalUVAC, "linear_vae": LinearVAE}


def make_estimator(method: dict, k: int, seed: int, train: dict, threads: int | None = None):
    """A params.yaml method variant (plus the execution settings of `train:`) as an estimator;
    threads overrides train.threads (0: torch's default)."""
    settings = {key: value for key, value in method.items() if key not in ("model", "latent_dim")}
    settings.update(seed=seed, device=train["device"], amp=train["amp"], compile=train["compile"],
                    checkpoint_every=train["checkpoint_every"],
                    threads=train["threads"] if threads is None else threads,
                    progress=sys.stderr.isatty())
    return ESTIMATORS[method["model"]](k, method["latent_dim"], **settings)


def latents(est, x) -> tuple[np.ndarray, np.ndarray]:
    """(latent means, cluster posterior) of clips, the posterior (N, 0) for a model without one."""
    proba = est.predict_proba(x) if hasattr(est, "predict_proba") else np.zeros((len(x), 0), np.float32)
    return est.transform(x), proba


def train_run(features_dir: Path, method: dict, k: int, seed: int, train: dict, run_dir: Path,
              pretext_file: Path | None = None) -> dict:
    """Fit on the training split (all clips for split method `all`), embed and score the test split.
    pretext_file: the training clips' pretext embedding from pretext_run, for a method that reads it
    (else the fit makes it)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    data, test = load_split(features_dir, "train", lazy=True), load_split(features_dir, "test", lazy=True)
    check_k(k, len(test["clip_id"]), Path(features_dir).name)
    est = make_estimator(method, k, seed, train)
    speakers = clip_speakers(features_dir, data["clip_id"]) if method.get("speaker_centred") else None
    embedding = None if pretext_file is None else \
        load_pretext(pretext_file, data["clip_id"], seed=seed, **pretext_settings(method))
    est.fit(data["x"], data["mask"], run_dir=run_dir, speakers=speakers, pretext_embedding=embedding)
    est.save(run_dir / "model.pt")

    z, proba = latents(est, test["x"])
    out = {"z": z, "cluster": est.predict(test["x"]), "proba": proba}
    return write_run_outputs(run_dir, test, out, k=k, seed=seed,
                             extra={"epochs": method["epochs"], "device": str(resolve_device(est.config.device))})


def pretext_run(features_dir: Path, seed: int, train: dict, out: Path, *, epochs: int, batch_size: int) -> None:
    """The pretext embedding of a feature cache's training clips, as the fit of a method with these
    pretext settings (uvac.params.pretext_settings) and seed would make it (same clips, device and
    threads), saved to out (.npz) with the clip ids, settings and seed that load_pretext checks."""
    data = load_split(features_dir, "train", lazy=True)
    if train["threads"]:
        torch.set_num_threads(train["threads"])
    embedding = pretext.pretext_embedding(data["x"], data["mask"], epochs=epochs, seed=seed, batch_size=batch_size,
                                          device=resolve_device(train["device"]), progress=sys.stderr.isatty())
    with atomic_path(out) as tmp:
        np.savez(tmp, clip_id=data["clip_id"], embedding=embedding, epochs=epochs, batch_size=batch_size, seed=seed)


def load_pretext(path: Path, clip_ids: np.ndarray, *, epochs: int, batch_size: int, seed: int) -> np.ndarray:
    """The embedding pretext_run saved, refused unless it was made for these training clips (in this
    order), pretext settings and seed."""
    with np.load(path) as saved:
        made = {key: int(saved[key]) if key in saved else None for key in ("epochs", "batch_size", "seed")}
        saved_ids, embedding = saved["clip_id"], saved["embedding"]
    if made != {"epochs": epochs, "batch_size": batch_size, "seed": seed}:
        raise ValueError(f"{path}: a pretext embedding of {made['epochs']} epochs of batches of {made['batch_size']} "
                         f"with seed {made['seed']}; the run needs {epochs} epochs of batches of {batch_size} with "
                         f"seed {seed}")
    if not np.array_equal(saved_ids, clip_ids):
        raise ValueError(f"{path}: made for {len(saved_ids)} other training clips (or in another order) than the "
                         f"feature cache's {len(clip_ids)}; make it again from this cache")
    return embedding


def clip_speakers(features_dir: Path, clip_ids: np.ndarray) -> np.ndarray:
    """Each clip's speaker, from the feature cache's manifest; refused where a clip has none."""
    manifest = Path(features_dir) / "manifest.parquet"
    table = pd.read_parquet(manifest, columns=["clip_id", "speaker"]).set_index("clip_id")["speaker"]
    speakers = table.reindex(clip_ids)
    if speakers.isna().any():
        missing = speakers.index[speakers.isna()]
        raise ValueError(f"{manifest}: speaker_centred needs the speaker of every training clip; {len(missing)} of "
                         f"{len(speakers)} have none (e.g. {missing[0]!r}). Use a dataset whose files name their "
                         f"speakers, or set speaker_centred: false")
    return speakers.to_numpy()


def write_run_outputs(run_dir: Path, test: dict, out: dict, *, k: int, seed: int, extra: dict) -> dict:
    """embeddings.npz (test clips: z, proba, cluster) and metrics.json (cluster usage, accuracy,
    NMI), the same for a trained model and a baseline."""
    clusters = out["cluster"]
    with atomic_path(run_dir / "embeddings.npz") as tmp:
        np.savez(tmp, clip_id=test["clip_id"], label_id=test["label_id"], z=out["z"], proba=out["proba"],
                 cluster=clusters)
    used = np.bincount(clusters, minlength=k)
    metrics = {"n_test": len(clusters), "k": k, "seed": seed, "clusters_used": int((used > 0).sum()),
               "largest_cluster_share": round(float(used.max() / len(clusters)), 4), **extra}
    scores, _ = label_scores(test["label_id"], clusters, k)
    metrics.update({key: None if v is None else round(v, 4) for key, v in scores.items() if key != "n_classes"})
    write_json(run_dir / "metrics.json", metrics)
    return metrics
