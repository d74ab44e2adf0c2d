"""How far a method's seeds agree, and what their agreement is worth, from finished runs' test clusterings.

Seeds of one method can differ by ten points of accuracy. From each run's embeddings.npz (the test
clips' cluster, posterior and label, as `rule train` writes it) this reports:

  - each seed's accuracy (clusters matched to labels on the test clips, as the pipeline does);
  - the adjusted Rand index between each pair of seeds' clusterings (1: the same partition);
  - the accuracy of a consensus of the seeds: evidence accumulation (Fred and Jain 2005), average-
    linkage clustering of 1 - the share of seeds that put two clips in one cluster;
  - for each --confidence threshold, the accuracy of the clips whose largest posterior probability
    is above it, and of the rest: self-labelling (SCAN's second stage, Van Gansbeke et al. 2020)
    trains on the confident clips' clusters, so it can only help where those are mostly right.

    .venv/bin/python benchmarks/seed_agreement.py results/runs/synth_digits/uvac_neighbours/k10/seed*
"""
from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
from sklearn.cluster import AgglomerativeClustering
from sklearn.metrics import adjusted_rand_score

from common import OUT_DIR, write_report  # benchmarks/common.py
from uvac.metrics import matched_correct, unsupervised_accuracy


def consensus_clusters(clusterings: list[np.ndarray], k: int) -> np.ndarray:
    """Evidence accumulation: average linkage on the share of clusterings that split each pair of clips.
    The matrix is N x N: meant for test splits of a few thousand clips."""
    together = np.mean([c[:, None] == c[None, :] for c in clusterings], axis=0)
    return AgglomerativeClustering(k, metric="precomputed", linkage="average").fit_predict(1 - together)


def confident_accuracy(labels: np.ndarray, clusters: np.ndarray, proba: np.ndarray, threshold: float) -> dict:
    """Share of clips above the threshold, and the accuracy above and below it (None where no clip is)."""
    correct, confident = matched_correct(labels, clusters), proba.max(1) > threshold

    def rate(mask):
        return round(float(correct[mask].mean()), 4) if mask.any() else None

    return {"threshold": threshold, "share": round(float(confident.mean()), 4),
            "accuracy_confident": rate(confident), "accuracy_rest": rate(~confident)}


def percent(share: float | None) -> str:
    return "—" if share is None else f"{100 * share:.2f} %"


def load_run(run_dir: Path) -> dict:
    path = run_dir / "embeddings.npz"
    if not path.exists():
        raise SystemExit(f"{path}: not found; give directories of finished runs (results/runs/<dataset>/<method>/k<K>/seed<s>)")
    with np.load(path) as npz:
        run = {key: npz[key] for key in ("clip_id", "label_id", "cluster", "proba")}
    if (run["label_id"] < 0).any():
        raise SystemExit(f"{path}: some test clips have no label; accuracy needs every clip labelled")
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path, nargs="+", help="run directories of one method and dataset, one per seed")
    ap.add_argument("--confidence", type=float, nargs="*", default=[0.9, 0.99], help="posterior thresholds")
    ap.add_argument("--out", type=Path, default=None,
                    help="report path (default results/benchmarks/seed_agreement_<dataset>_<method>.json)")
    args = ap.parse_args()

    runs = [load_run(run_dir) for run_dir in args.runs]
    for run_dir, run in zip(args.runs[1:], runs[1:]):
        if not np.array_equal(run["clip_id"], runs[0]["clip_id"]):
            raise SystemExit(f"{run_dir}: its test clips differ from {args.runs[0]}'s; give runs of one dataset and split")
    labels, k = runs[0]["label_id"], runs[0]["proba"].shape[1]
    seeds = [{"run": str(run_dir), "accuracy": round(unsupervised_accuracy(labels, run["cluster"]), 4),
              "confidence": [confident_accuracy(labels, run["cluster"], run["proba"], t) for t in args.confidence]}
             for run_dir, run in zip(args.runs, runs)]
    pairs = [round(adjusted_rand_score(a["cluster"], b["cluster"]), 4) for a, b in itertools.combinations(runs, 2)]
    consensus = round(unsupervised_accuracy(labels, consensus_clusters([r["cluster"] for r in runs], k)), 4)

    for seed in seeds:
        print(f"{seed['run']}: accuracy {percent(seed['accuracy'])}" + "".join(
            f"; p > {c['threshold']}: {percent(c['share'])} of clips, right {percent(c['accuracy_confident'])}"
            f" (the rest {percent(c['accuracy_rest'])})" for c in seed["confidence"]))
    print(f"seeds' mean accuracy {percent(np.mean([s['accuracy'] for s in seeds]))}, consensus {percent(consensus)}; "
          f"adjusted Rand index between seeds {pairs}")
    dataset, method = args.runs[0].resolve().parts[-4:-2]
    write_report(args.out or OUT_DIR / f"seed_agreement_{dataset}_{method}.json",
                 {"runs": seeds, "pairwise_ari": pairs, "consensus_accuracy": consensus, "k": k})


if __name__ == "__main__":
    main()
