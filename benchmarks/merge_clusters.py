"""Over-cluster, then merge: does a model trained with K' > K clusters, its clusters merged into K
groups without labels, cluster the test split better than one trained with K?

Motivation (docs/accuracy.md): Categorical UVAC's embedding holds the digit (a linear probe reads
83 % of synth_digits' test clips from it) but its K = 10 clusters sit in a local optimum that puts
two digits in one cluster. With more clusters than classes each digit can take clusters of its
own; the merge then joins clusters that belong together. Each merge is unsupervised, computed on
the training split only, from an affinity between clusters:

  neighbours   A = P' S P, P the training clips' cluster posteriors (N, K'), S the symmetrised graph
               of each clip's nearest training clips in the run's neighbour space: clusters whose
               clips are neighbours of each other belong together
  posterior    A = P' P: clusters that share clips' probability mass belong together

normalised as A_ab / sqrt(A_aa A_bb), and cut into K groups by spectral clustering of the K' x K'
affinity (and, for comparison, average-linkage agglomeration on 1 - A). A test clip takes the group
with the most posterior mass. Also reported: the accuracy when each cluster goes to its majority
test label (a ceiling no merge can pass).

    .venv/bin/python benchmarks/merge_clusters.py data/features/synth_digits /tmp/run_k20 --k 10
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.cluster import AgglomerativeClustering, SpectralClustering

from common import OUT_DIR, load_run_model, write_report  # benchmarks/common.py
from uvac.metrics import label_scores
from uvac.pretext import SPACE as PRETEXT
from uvac.training import training_neighbours
from uvac.pipeline import load_split


def normalised(a: np.ndarray) -> np.ndarray:
    """A_ab / sqrt(A_aa A_bb): 1 on the diagonal, whatever the clusters' sizes."""
    d = np.sqrt(np.clip(np.diag(a), 1e-12, None))
    return a / d[:, None] / d[None, :]


def neighbour_graph(nearest: np.ndarray) -> sparse.csr_matrix:
    """(N, N) 0/1 adjacency: i and j are linked when either is among the other's nearest clips."""
    n = len(nearest)
    graph = sparse.csr_matrix((np.ones(nearest.size), (np.repeat(np.arange(n), nearest.shape[1]), nearest.ravel())),
                              shape=(n, n))
    return ((graph + graph.T) > 0).astype(np.float64)


def cluster_affinities(p_train: np.ndarray, graph: sparse.csr_matrix) -> dict[str, np.ndarray]:
    """The normalised K' x K' affinities between clusters, from the training clips' posteriors."""
    return {"neighbours": normalised(p_train.T @ (graph @ p_train)), "posterior": normalised(p_train.T @ p_train)}


def merged(proba: np.ndarray, group: np.ndarray, k: int) -> np.ndarray:
    """Each clip's group: the one holding most of its posterior mass."""
    return np.stack([proba[:, group == g].sum(1) for g in range(k)], 1).argmax(1)


def groups_of(affinity: np.ndarray, k: int, how: str, seed: int) -> np.ndarray:
    """The group (0..k-1) of each of the K' clusters."""
    if how == "spectral":
        return SpectralClustering(k, affinity="precomputed", random_state=seed).fit_predict(np.clip(affinity, 0, None))
    return AgglomerativeClustering(k, metric="precomputed", linkage="average").fit_predict(1 - affinity)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("features", type=Path)
    ap.add_argument("runs", type=Path, nargs="+", help="run directories holding model.pt (uvac or cat_uvac)")
    ap.add_argument("--k", type=int, default=10, help="the number of groups to merge into")
    ap.add_argument("--neighbours", type=int, default=10, help="nearest training clips per clip in the graph")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    train, test = load_split(args.features, "train"), load_split(args.features, "test")
    n_classes = len(np.unique(test["label_id"]))
    if (test["label_id"] < 0).any() or n_classes != args.k:
        raise SystemExit(f"{args.features}: the merge is scored against labels, so every test clip needs one and "
                         f"--k must be their number of classes ({n_classes}), got --k {args.k}")
    rows, nearest_by_space = [], {}
    for run_dir in args.runs:
        est = load_run_model(run_dir, train["x"].shape[1:], kinds=("uvac", "cat_uvac"))
        p_train, p_test = est.predict_proba(train["x"]), est.predict_proba(test["x"])
        cfg = dataclasses.replace(est.config, neighbour_count=args.neighbours, progress=False)
        # the run's own neighbour space; a pretext encoder's embedding also depends on its seed, epochs and batch
        space = (cfg.neighbour_space, *((cfg.seed, cfg.pretext_epochs, cfg.pretext_batch_size)
                                        if cfg.neighbour_space == PRETEXT else ()))
        if space not in nearest_by_space:
            nearest_by_space[space] = training_neighbours(train["x"], train["mask"], cfg)
        affinities = cluster_affinities(p_train, neighbour_graph(nearest_by_space[space]))

        clusters = p_test.argmax(1)
        majority = np.array([np.bincount(test["label_id"][clusters == c]).argmax() if (clusters == c).any() else -1
                             for c in range(p_test.shape[1])])
        row = {"run": str(run_dir), "k_trained": p_test.shape[1], "clusters_used_test": int(len(np.unique(clusters))),
               "majority_ceiling": round(float((majority[clusters] == test["label_id"]).mean()), 4), "merged": {}}
        for name, affinity in affinities.items():
            for how in ("spectral", "average"):
                scores, _ = label_scores(test["label_id"], merged(p_test, groups_of(affinity, args.k, how, seed=0), args.k),
                                         args.k)
                row["merged"][f"{name}/{how}"] = {"accuracy": round(scores["accuracy"], 4), "nmi": round(scores["nmi"], 4)}
        rows.append(row)
        print(f"{run_dir}  K'={row['k_trained']}  ceiling {100 * row['majority_ceiling']:.2f} %  "
              + "  ".join(f"{key} {100 * v['accuracy']:.2f} %" for key, v in row["merged"].items()))
    write_report(args.out or OUT_DIR / f"merge_clusters_{args.features.name}.json",
                 {"features": str(args.features), "k": args.k, "neighbours": args.neighbours, "rows": rows})


if __name__ == "__main__":
    main()
