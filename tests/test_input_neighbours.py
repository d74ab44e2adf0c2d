"""benchmarks/input_neighbours.py: mined neighbours are each clip's nearest other clips, and the
agreement counts only the neighbours that share a clip's value."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from input_neighbours import mine_neighbours, shared_fraction  # noqa: E402


def test_mined_neighbours_are_the_nearest_other_clips_and_agreement_counts_shared_values():
    # two well-separated groups of three clips, spread along one axis of a (1, 2, 3) spectrogram
    offsets = np.array([0.0, 0.1, 0.3, 10.0, 10.2, 10.5], np.float32)
    x = np.zeros((6, 1, 2, 3), np.float32)
    x[:, 0, 0, 0] = offsets
    neighbours = mine_neighbours(x, n_neighbours=2)
    assert neighbours.shape == (6, 2)
    assert [sorted(row) for row in neighbours.tolist()] == [[1, 2], [0, 2], [0, 1], [4, 5], [3, 5], [3, 4]]
    assert neighbours[:, 0].tolist() == [1, 0, 1, 4, 3, 4]  # nearest first

    assert shared_fraction(neighbours, np.array([0, 0, 0, 1, 1, 1])) == 1.0
    # clip 2 labelled apart from its group: its 2 neighbours and the 2 pairs that hold it disagree
    assert shared_fraction(neighbours, np.array([0, 0, 9, 1, 1, 1])) == round(8 / 12, 4)
