"""Clustering metrics (DESIGN.md §5), from scikit-learn and scipy.

Every metric of a run is computed on the test split in a named space: `input` (the flattened
normalised features), `z` (latent means), `q(y|x)` (Categorical UVAC's cluster posterior) or
`pca` (the PCA projection of the linear-VAE study's baseline). Degenerate clusterings are
reported, not raised: a metric that is undefined comes back as None with the reason in `notes`.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import (calinski_harabasz_score, davies_bouldin_score, normalized_mutual_info_score,
                             silhouette_score)
from sklearn.metrics.cluster import contingency_matrix


def matched_correct(labels: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """Per clip: is its cluster the one matched to its label by the best one-to-one matching of
    clusters to labels (Hungarian algorithm)?"""
    _, labels_idx = np.unique(labels, return_inverse=True)
    cluster_values, clusters_idx = np.unique(clusters, return_inverse=True)
    rows, cols = linear_sum_assignment(contingency_matrix(labels_idx, clusters_idx), maximize=True)
    label_of_cluster = np.full(len(cluster_values), -1)
    label_of_cluster[cols] = rows
    return label_of_cluster[clusters_idx] == labels_idx


def unsupervised_accuracy(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Accuracy after the best one-to-one matching of clusters to labels."""
    return float(matched_correct(labels, clusters).mean())


def label_scores(labels: np.ndarray, clusters: np.ndarray, k: int) -> tuple[dict, list[str]]:
    """Hungarian accuracy and NMI (arithmetic normalisation) on the labelled clips, only where
    K equals the number of classes (the papers leave them blank otherwise)."""
    labelled = labels >= 0
    n_classes = len(np.unique(labels[labelled]))
    out = {"n_classes": n_classes, "accuracy": None, "nmi": None}
    if not labelled.any():
        return out, ["no labels: accuracy and NMI need labelled clips"]
    if k != n_classes:
        return out, [f"accuracy and NMI left blank: K = {k} differs from the {n_classes} classes"]
    y, c = labels[labelled], clusters[labelled]
    out["accuracy"] = unsupervised_accuracy(y, c)
    out["nmi"] = float(normalized_mutual_info_score(y, c, average_method="arithmetic"))
    return out, []


def geometry_scores(points: np.ndarray, clusters: np.ndarray, *, space: str,
                    silhouette_sample: int | None, seed: int) -> tuple[dict, list[str]]:
    """Silhouette (Euclidean), Davies-Bouldin and Calinski-Harabasz of a clustering of `points`.

    With silhouette_sample = N < len(points), the silhouette uses a seeded sample of N clips
    (its O(N^2) cost dominates on large test sets); DBI and CHI always use every clip.
    """
    points = np.asarray(points).reshape(len(points), -1)  # float32 stays float32: no 3 GB copy of an input space
    if not np.issubdtype(points.dtype, np.floating):
        points = points.astype(np.float64)
    out = {"silhouette": None, "dbi": None, "chi": None, "silhouette_n": None}
    used = len(np.unique(clusters))
    if used < 2 or used >= len(points):
        return out, [f"{space}: {used} cluster(s) in use for {len(points)} clips; silhouette, DBI and CHI are undefined"]
    out["dbi"] = float(davies_bouldin_score(points, clusters))
    out["chi"] = float(calinski_harabasz_score(points, clusters))
    idx = np.arange(len(points))
    if silhouette_sample is not None and silhouette_sample < len(points):
        idx = np.sort(np.random.default_rng(seed).choice(len(points), silhouette_sample, replace=False))
    used_in_sample = len(np.unique(clusters[idx]))
    if used_in_sample < 2 or used_in_sample >= len(idx):
        return out, [f"{space}: {used_in_sample} cluster(s) in the silhouette sample of {len(idx)}; silhouette undefined"]
    out["silhouette"] = float(silhouette_score(points[idx], clusters[idx], metric="euclidean"))
    out["silhouette_n"] = int(len(idx))
    return out, []
