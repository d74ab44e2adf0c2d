"""benchmarks/uvac_first_steps.py: the pretext embedding computed and saved once, then read back; where the
training clips stand in the cluster posterior."""
import sys
from pathlib import Path

import numpy as np
import pytest

import uvac.pretext as pretext
from uvac import training

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from uvac_first_steps import cluster_state, keep_embedding  # noqa: E402


def test_the_embedding_is_computed_once_saved_and_then_read_from_the_file(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(pretext, "pretext_embedding", lambda x, mask=None, **kw: calls.append(kw) or x * 2.0)
    path, x = tmp_path / "embedding.npy", np.arange(6, dtype=np.float32).reshape(3, 2)
    keep_embedding(path, 3)
    assert np.array_equal(pretext.pretext_embedding(x, None, epochs=4, seed=1), x * 2)
    assert calls == [{"epochs": 4, "seed": 1}] and np.array_equal(np.load(path), x * 2)
    assert np.array_equal(pretext.pretext_embedding(x + 1, None, epochs=4, seed=1), x * 2)  # read, not computed
    assert len(calls) == 1
    keep_embedding(path, 5)
    with pytest.raises(SystemExit, match=r"embedding.npy: 3 rows; expected the 5 training clips' embedding"):
        pretext.pretext_embedding(np.zeros((5, 2), np.float32))


def test_cluster_state_reads_clusters_and_margins_from_the_cluster_posterior(monkeypatch):
    log_q = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.4, 0.1], [0.2, 0.7, 0.1]]))
    mu = np.arange(8, dtype=np.float32).reshape(4, 2)
    monkeypatch.setattr(training, "infer", lambda model, x: (mu, log_q))
    state = cluster_state(None, None, np.array([1, 2, 1, 0]), 3)
    assert state["clusters"].tolist() == [0, 2, 0, 1] and state["clusters_used"] == 3
    assert state["accuracy"] == 1.0  # clusters 0, 2, 1 are labels 1, 2, 0
    margins = np.log([0.7 / 0.2, 0.6 / 0.3, 0.5 / 0.4, 0.7 / 0.2])
    assert state["median_margin"] == round(float(np.median(margins)), 3)
    assert state["mu"] is mu
