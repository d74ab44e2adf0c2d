"""benchmarks/merge_clusters.py: clusters merged by their affinities, without labels."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from merge_clusters import cluster_affinities, groups_of, merged, neighbour_graph  # noqa: E402


@pytest.mark.parametrize("how", ["spectral", "average"])
def test_clusters_whose_clips_are_neighbours_merge_and_the_rest_stay_apart(how):
    # 4 clusters of 5 clips each (confident posteriors); every clip's nearest clips lie in its own
    # cluster and in its partner cluster (0 with 1, 2 with 3), never across the pairs
    rng = np.random.default_rng(0)
    cluster = np.repeat(np.arange(4), 5)
    proba = np.eye(4)[cluster] * 0.9 + 0.025
    partner = cluster ^ 1
    nearest = np.stack([np.r_[rng.choice(np.flatnonzero((cluster == c) & (np.arange(20) != i)), 1),
                              rng.choice(np.flatnonzero(cluster == partner[i]), 2, replace=False)]
                        for i, c in enumerate(cluster)])
    graph = neighbour_graph(nearest)
    assert (graph != graph.T).nnz == 0 and graph.diagonal().sum() == 0
    affinity = cluster_affinities(proba, graph)["neighbours"]
    np.testing.assert_allclose(np.diag(affinity), 1.0)
    group = groups_of(affinity, 2, how, seed=0)
    assert group[0] == group[1] != group[2] == group[3]
    assert (merged(proba, group, 2) == group[cluster]).all()


def test_the_posterior_affinity_joins_clusters_that_share_clips_mass():
    # clips of clusters 0 and 1 are unsure between the two; clusters 2 and 3 are confident
    proba = np.array([[0.5, 0.45, 0.03, 0.02], [0.45, 0.5, 0.03, 0.02], [0.02, 0.03, 0.9, 0.05], [0.03, 0.02, 0.05, 0.9]])
    group = groups_of(cluster_affinities(proba, neighbour_graph(np.array([[1], [0], [3], [2]])))["posterior"], 3,
                      "average", seed=0)
    assert group[0] == group[1] and len({group[0], group[2], group[3]}) == 3
    assert merged(proba, group, 3).tolist() == [group[0], group[0], group[2], group[3]]
