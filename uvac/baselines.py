"""The papers' baselines, fitted like a model run and written in the same run-directory layout.

    kmeans       K-means (n_init restarts) on the flattened normalised input features
    gmm_em       a Gaussian mixture fitted by EM (diagonal covariances) on the same features
    pca_kmeans   PCA to n_components, then K-means (the linear-VAE study's baseline)
    labels       "None (labels)": the true labels taken as the clustering

Each is fitted on the training split (all clips for split method `all`) and assigns the test
split, as the VAEs do, so every method is scored on the same clips.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture

from .params import check_k
from .pipeline import load_split
from .runs import write_run_outputs


def flat(x: np.ndarray) -> np.ndarray:
    """(N, ...) features as (N, D) rows: the `input` space of the metrics."""
    return np.ascontiguousarray(x.reshape(len(x), -1))


def fit_predict(method: dict, k: int, seed: int, x_train: np.ndarray, x_test: np.ndarray,
                labels_test: np.ndarray) -> dict:
    """Clusters of the test clips (and z / proba where the method has them)."""
    model = method["model"]
    n = len(x_test)
    out = {"z": np.zeros((n, 0), np.float32), "proba": np.zeros((n, 0), np.float32)}
    if model == "labels":
        if (labels_test < 0).any():
            raise ValueError("method 'labels' needs every test clip labelled; this dataset has unlabelled clips")
        out["cluster"] = labels_test.astype(np.int64)
    elif model == "kmeans":
        km = KMeans(k, n_init=method["n_init"], random_state=seed).fit(flat(x_train))
        out["cluster"] = km.predict(flat(x_test))
    elif model == "gmm_em":
        gmm = GaussianMixture(k, covariance_type=method["covariance_type"], n_init=method["n_init"],
                              random_state=seed).fit(flat(x_train))
        out["proba"] = gmm.predict_proba(flat(x_test)).astype(np.float32)
        out["cluster"] = out["proba"].argmax(1)
    elif model == "pca_kmeans":
        pca = PCA(method["n_components"], random_state=seed).fit(flat(x_train))
        z_train = pca.transform(flat(x_train))
        km = KMeans(k, n_init=method["n_init"], random_state=seed).fit(z_train)
        out["z"] = pca.transform(flat(x_test)).astype(np.float32)
        out["cluster"] = km.predict(out["z"])
    else:
        raise ValueError(f"unknown baseline model {model!r} (known: labels, kmeans, gmm_em, pca_kmeans)")
    out["cluster"] = np.asarray(out["cluster"], dtype=np.int64)
    return out


def baseline_run(features_dir: Path, method: dict, k: int, seed: int, run_dir: Path) -> dict:
    """Fit a baseline and write embeddings.npz and metrics.json, as runs.train_run does for a VAE."""
    train, test = load_split(features_dir, "train"), load_split(features_dir, "test")
    check_k(k, len(test["clip_id"]), Path(features_dir).name)
    out = fit_predict(method, k, seed, train["x"], test["x"], test["label_id"])
    # No wall time in metrics.json, which must be byte-identical across runs (times: logs/benchmarks/).
    return write_run_outputs(Path(run_dir), test, out, k=k, seed=seed, extra={"device": "cpu"})
