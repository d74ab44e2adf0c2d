"""benchmarks/pretext_start.py: the start it reports is the one training makes, centred or whitened."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from pretext_start import start_scores  # noqa: E402


def test_the_start_is_scored_in_the_points_training_makes_centred_or_whitened():
    # two words apart along x, 20 clips of each per speaker; speaker b's clips also spread far along y
    rng = np.random.default_rng(1)
    word = np.repeat([0, 1], 20)
    a = np.stack([2.0 * word - 1, np.zeros(40)], 1) + 0.2 * rng.standard_normal((40, 2))
    b = np.stack([2.0 * word - 1, np.zeros(40)], 1) + [0.2, 3.0] * rng.standard_normal((40, 2)) + [30.0, -7.0]
    embedding = np.concatenate([a, b]).astype(np.float32)
    labels, speakers = np.concatenate([word, word]), np.repeat(["a", "b"], 40)
    centred = start_scores(embedding, labels, speakers, seed=0, speaker_whitening=0, neighbours=3)
    whitened = start_scores(embedding, labels, speakers, seed=0, speaker_whitening=2, neighbours=3)
    assert centred["kmeans_start_accuracy"] < 0.95 and whitened["kmeans_start_accuracy"] == 1.0  # rows at unit length, as trained
    assert whitened["other_speaker_neighbours_same_label"] > 0.9
