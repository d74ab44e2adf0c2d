"""benchmarks/seed_agreement.py: the consensus of seeds and the accuracy of confident clips."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from seed_agreement import confident_accuracy, consensus_clusters  # noqa: E402

from uvac.metrics import matched_correct, unsupervised_accuracy  # noqa: E402


def test_consensus_of_seeds_each_wrong_on_different_clips_is_right_everywhere():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 25)
    seeds, misplaced = [], rng.permutation(100).reshape(5, 20)
    for wrong in misplaced[:3]:  # relabelled clusters, each seed sending its own 20 clips to random other clusters
        clusters = rng.permutation(4)[labels]
        clusters[wrong] = (clusters[wrong] + rng.integers(1, 4, len(wrong))) % 4
        seeds.append(clusters)
    assert all(unsupervised_accuracy(labels, c) < 0.85 for c in seeds)
    assert unsupervised_accuracy(labels, consensus_clusters(seeds, 4)) == 1.0


def test_confident_accuracy_matches_clusters_on_all_clips_and_splits_at_the_threshold():
    labels = np.array([0, 0, 0, 1, 1, 1])
    clusters = np.array([5, 5, 7, 7, 7, 5])  # cluster 5 is label 0, 7 is label 1: clips 2 and 5 are wrong
    assert matched_correct(labels, clusters).tolist() == [True, True, False, True, True, False]
    proba = np.array([[0.99, 0.01]] * 3 + [[0.6, 0.4]] * 3)
    assert confident_accuracy(labels, clusters, proba, 0.9) == {
        "threshold": 0.9, "share": 0.5, "accuracy_confident": round(2 / 3, 4), "accuracy_rest": round(2 / 3, 4)}
    assert confident_accuracy(labels, clusters, proba, 0.995)["accuracy_confident"] is None
