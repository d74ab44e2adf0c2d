"""benchmarks/linear_probe.py's re-clustering of latent means: it must find classes where they are the clusters."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from linear_probe import recluster_accuracy  # noqa: E402


def test_every_clusterer_finds_separated_classes_and_none_finds_classes_the_clusters_ignore():
    rng = np.random.default_rng(0)
    centres = 10 * np.eye(3)
    labels_train, labels_test = np.repeat(np.arange(3), 30), np.repeat(np.arange(3), 20)
    z_train = centres[labels_train] + rng.normal(size=(90, 3))
    z_test = centres[labels_test] + rng.normal(size=(60, 3))
    assert recluster_accuracy(z_train, z_test, labels_test, 3) == {"kmeans": 1.0, "gmm_full": 1.0, "ward": 1.0,
                                                                   "spectral": 1.0}
    shuffled = rng.permutation(labels_test)  # the same clusters, labels that do not follow them
    assert max(recluster_accuracy(z_train, z_test, shuffled, 3).values()) < 0.6
