"""benchmarks/input_neighbours.py: the agreement counts only the neighbours that share a clip's value."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from input_neighbours import most_shared_pairs, shared_fraction  # noqa: E402


def test_agreement_counts_the_neighbours_that_share_a_clips_value():
    # two groups of three clips, each clip's two neighbours in its own group
    neighbours = np.array([[1, 2], [0, 2], [1, 0], [4, 5], [3, 5], [4, 3]])
    assert shared_fraction(neighbours, np.array([0, 0, 0, 1, 1, 1])) == 1.0
    # clip 2 labelled apart from its group: its 2 neighbours and the 2 pairs that hold it disagree
    assert shared_fraction(neighbours, np.array([0, 0, 9, 1, 1, 1])) == round(8 / 12, 4)


def test_the_most_shared_pairs_come_first_with_each_share_of_the_labels_neighbours():
    # clips 0-2 are "a", 3-5 "b", 6-7 "c"; two of a's six neighbours are b's clips, one of b's six is a's
    neighbours = np.array([[1, 3], [0, 4], [1, 0], [4, 0], [3, 5], [4, 3], [7, 6], [6, 7]])
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    pairs = most_shared_pairs(neighbours, labels, ["a", "b", "c"], top=3)
    assert pairs[:2] == [{"label": "a", "neighbour": "b", "share": round(2 / 6, 4)},
                         {"label": "b", "neighbour": "a", "share": round(1 / 6, 4)}]
    assert pairs[2]["share"] == 0.0
