"""Score one run on the test split in each of its method's spaces (DESIGN.md §5).

    results/runs/<dataset>/<method>/k<K>/seed<s>/scores.json
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .io import write_json
from .metrics import geometry_scores, label_scores
from .pipeline import load_split

# Where each model's clusters are judged: the papers score labels, K-means and GMM-EM on the
# input features and the VAEs on their latent; Categorical UVAC's silhouette of 0.97 has no
# stated space, so it is scored both on z and on q(y|x).
SPACES = {"labels": ["input"], "kmeans": ["input"], "gmm_em": ["input"], "pca_kmeans": ["pca"],
          "uvac": ["z"], "linear_vae": ["z"], "cat_uvac": ["z", "q(y|x)"]}


def flat(x: np.ndarray) -> np.ndarray:
    """(N, ...) features as (N, D) rows: the `input` space of the metrics (as uvac.baselines.flat;
    not imported from there, because uvac.baselines pulls in torch and scikit-learn's estimators,
    seconds of start-up for every evaluate job)."""
    return np.ascontiguousarray(x.reshape(len(x), -1))


def space_points(space: str, embeddings, features_dir: Path, test: dict | None = None) -> np.ndarray:
    """The test clips as points of a named space, rows in the order of embeddings.npz.

    `test`: the test split already loaded (load_split(features_dir, "test")), so that callers
    placing several runs of one dataset in the input space read its features once."""
    if space == "input":
        test = load_split(features_dir, "test") if test is None else test
        if not np.array_equal(test["clip_id"], embeddings["clip_id"]):
            raise ValueError(f"{features_dir}: the test split no longer matches the run's embeddings; re-run the run")
        return flat(test["x"])
    return embeddings["proba"] if space == "q(y|x)" else embeddings["z"]


def score_clusters(clusters: np.ndarray, label_id: np.ndarray, k: int, spaces: dict, *,
                   silhouette_sample: int | None, seed: int) -> dict:
    """Accuracy, NMI and, for each named space's points, silhouette / DBI / CHI of one clustering;
    a collapse (one cluster in use) and every undefined metric are noted, not raised."""
    labels, notes = label_scores(label_id, clusters, k)
    scores = {**labels, "k": k, "n_test": int(len(clusters)), "clusters_used": int(len(np.unique(clusters))),
              "spaces": {}}
    scores["collapsed"] = scores["clusters_used"] == 1
    for space, points in spaces.items():
        geometry, more = geometry_scores(points, clusters, space=space, silhouette_sample=silhouette_sample, seed=seed)
        scores["spaces"][space] = geometry
        notes += more
    scores["notes"] = notes
    return scores


def score_run(run_dir: Path, features_dir: Path, *, model: str, k: int, silhouette_sample: int | None, seed: int) -> dict:
    """scores.json of one run: score_clusters in each of its model's spaces."""
    run_dir = Path(run_dir)
    with np.load(run_dir / "embeddings.npz") as data:
        emb = {key: data[key] for key in data.files}
    spaces = {space: space_points(space, emb, features_dir) for space in SPACES[model]}
    scores = score_clusters(emb["cluster"], emb["label_id"], k, spaces, silhouette_sample=silhouette_sample, seed=seed)
    write_json(run_dir / "scores.json", scores)
    return scores
