"""benchmarks/input_neighbours.py: the agreement counts only the neighbours that share a clip's value."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from input_neighbours import shared_fraction  # noqa: E402


def test_agreement_counts_the_neighbours_that_share_a_clips_value():
    # two groups of three clips, each clip's two neighbours in its own group
    neighbours = np.array([[1, 2], [0, 2], [1, 0], [4, 5], [3, 5], [4, 3]])
    assert shared_fraction(neighbours, np.array([0, 0, 0, 1, 1, 1])) == 1.0
    # clip 2 labelled apart from its group: its 2 neighbours and the 2 pairs that hold it disagree
    assert shared_fraction(neighbours, np.array([0, 0, 9, 1, 1, 1])) == round(8 / 12, 4)
