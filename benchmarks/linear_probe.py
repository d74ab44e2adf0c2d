"""How much of the label a linear classifier reads from trained runs' embeddings, beside the input.

Clustering accuracy mixes two failures: an embedding that does not hold the classes, and a
clustering that does not find them. A supervised probe separates them: logistic regression fitted
on the training split's embedding with its labels, scored on the test split. Reported for the
flattened input (reduced by PCA to --input-components dimensions, as K-means sees it) and for
what each run's saved model gives a clip (results/runs/<dataset>/<method>/k<K>/seed<s>/model.pt,
re-embedded here): its latent means and, for UVAC and Categorical UVAC, its cluster posterior
beside them (Categorical UVAC's z is conditioned on y, so z alone leaves the cluster out); with
that run's clustering accuracy from its metrics.json. Cluster accuracy maps clusters to labels on
the test clips themselves (as the papers do), the probe on the training split. With --recluster,
the run's latent means are also clustered afresh (K-means and a full-covariance GaussianMixture
fitted on the training split, Ward and spectral clustering on training and test together), to
tell an embedding that holds the classes but clusters by something else from a poor clustering step.

    .venv/bin/python benchmarks/linear_probe.py data/features/fsdd results/runs/fsdd/cat_uvac_info/k10/seed*
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.cluster import AgglomerativeClustering, KMeans, SpectralClustering
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.mixture import GaussianMixture
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from common import OUT_DIR, load_run_model, write_report  # benchmarks/common.py
from uvac.metrics import label_scores
from uvac.pipeline import load_split
from uvac.runs import latents


def probe_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> float:
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    return round(float(probe.fit(train_x, train_y).score(test_x, test_y)), 4)


def recluster_accuracy(z_train: np.ndarray, z_test: np.ndarray, test_y: np.ndarray, k: int, seed: int = 0) -> dict:
    """Test clustering accuracy of other clusterers on the same (standardised) latent means."""
    scaler = StandardScaler().fit(z_train)
    z_train, z_test = scaler.transform(z_train), scaler.transform(z_test)
    both, n = np.vstack([z_train, z_test]), len(z_test)
    clusters = {
        "kmeans": KMeans(k, n_init=10, random_state=seed).fit(z_train).predict(z_test),
        "gmm_full": GaussianMixture(k, covariance_type="full", n_init=3, random_state=seed).fit(z_train).predict(z_test),
        "ward": AgglomerativeClustering(k).fit_predict(both)[-n:],
        "spectral": SpectralClustering(k, affinity="nearest_neighbors", n_neighbors=10,
                                       random_state=seed).fit_predict(both)[-n:],
    }
    return {name: round(label_scores(test_y, c, k)[0]["accuracy"], 4) for name, c in clusters.items()}


def run_embeddings(run_dir: Path, train_x, test_x) -> tuple[np.ndarray, np.ndarray, int]:
    """Latent means, and the cluster posterior beside them where the model has one; and the latent size."""
    est = load_run_model(run_dir, train_x.shape[1:])
    return *(np.hstack(latents(est, x)) for x in (train_x, test_x)), est.latent_dim


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("features", type=Path, help="a feature cache with train and test splits, e.g. data/features/fsdd")
    ap.add_argument("runs", type=Path, nargs="*", help="run directories holding model.pt and metrics.json")
    ap.add_argument("--input-components", type=int, default=100, help="PCA dimensions of the input probe")
    ap.add_argument("--recluster", action="store_true", help="also cluster each run's latent means afresh")
    ap.add_argument("--out", type=Path, default=None, help="report path (default results/benchmarks/linear_probe_<dataset>.json)")
    args = ap.parse_args()

    train, test = load_split(args.features, "train"), load_split(args.features, "test")
    if (train["label_id"] < 0).any() or (test["label_id"] < 0).any():
        raise SystemExit(f"{args.features}: some clips have no label; a probe needs every clip labelled")
    flat_train, flat_test = (s["x"].reshape(len(s["x"]), -1) for s in (train, test))
    if not 1 <= args.input_components <= min(flat_train.shape):
        raise SystemExit(f"--input-components {args.input_components}: expected 1 .. {min(flat_train.shape)} "
                         f"(the training split of {args.features} has {len(flat_train)} clips)")
    pca = PCA(args.input_components, random_state=0).fit(flat_train)
    rows = [{"embedding": f"input, PCA to {args.input_components}", "dims": args.input_components,
             "probe_accuracy": probe_accuracy(pca.transform(flat_train), train["label_id"],
                                              pca.transform(flat_test), test["label_id"])}]
    for run_dir in args.runs:
        z_train, z_test, latent_dim = run_embeddings(run_dir, train["x"], test["x"])
        metrics = json.loads((run_dir / "metrics.json").read_text())
        rows.append({"embedding": str(run_dir), "dims": z_train.shape[1],
                     "probe_accuracy": probe_accuracy(z_train, train["label_id"], z_test, test["label_id"]),
                     "clustering_accuracy": metrics.get("accuracy")})
        if args.recluster and metrics.get("accuracy") is not None:  # K equals the number of classes
            rows[-1]["recluster_accuracy"] = recluster_accuracy(z_train[:, :latent_dim], z_test[:, :latent_dim],
                                                                test["label_id"], metrics["k"])
    for row in rows:
        print(f"{row['embedding']:<60} dims {row['dims']:>4}  probe {100 * row['probe_accuracy']:6.2f} %"
              + (f"  clustering {100 * row['clustering_accuracy']:6.2f} %" if row.get("clustering_accuracy") else "")
              + "".join(f"  {name} {100 * acc:6.2f} %" for name, acc in row.get("recluster_accuracy", {}).items()))
    write_report(args.out or OUT_DIR / f"linear_probe_{args.features.name}.json",
                 {"features": str(args.features), "n_train": len(flat_train), "n_test": len(flat_test), "rows": rows})


if __name__ == "__main__":
    main()
