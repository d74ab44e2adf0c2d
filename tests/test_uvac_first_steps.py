"""benchmarks/uvac_first_steps.py: the pretext embedding made and saved once, then read back; where the
training clips stand in the cluster posterior."""
import argparse
import sys
from pathlib import Path

import numpy as np
import pytest

from uvac import runs, training

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from common import kept_pretext  # noqa: E402
from uvac_first_steps import cluster_state  # noqa: E402


def test_the_pretext_file_is_made_once_then_read_and_checked(tmp_path, monkeypatch):
    """--pretext of uvac_first_steps.py and remedy_trials.py (benchmarks/common.py: kept_pretext)."""
    cache = tmp_path / "features"
    cache.mkdir()
    ids = np.array(["a", "b", "c"])
    np.savez(cache / "train.npz", x=np.zeros((3, 1, 4, 5), np.float32), mask=np.ones((3, 5), np.float32),
             clip_id=ids, label_id=np.arange(3))
    calls = []
    monkeypatch.setattr(runs.pretext, "pretext_embedding",
                        lambda x, mask=None, **kw: calls.append(kw) or np.eye(3, 4, dtype=np.float32))
    method = {"pretext_epochs": 4, "neighbour_space": "pretext", "cluster_init_epochs": 5}
    train = {"device": "cpu", "threads": 0}
    args = argparse.Namespace(features=cache, method="m", pretext=tmp_path / "pretext_e4_b256_seed1.npz")
    assert kept_pretext(argparse.Namespace(features=cache, pretext=None), method, 1, train, ids) is None and not calls
    with pytest.raises(SystemExit, match="--pretext: method 'm' reads no pretext embedding \\(neighbour_space 'input'\\)"):
        kept_pretext(args, {**method, "neighbour_space": "input", "cluster_init_epochs": 0}, 1, train, ids)
    assert np.array_equal(kept_pretext(args, method, 1, train, ids), np.eye(3, 4))
    assert [(c["epochs"], c["batch_size"], c["seed"]) for c in calls] == [(4, 256, 1)]
    assert np.array_equal(kept_pretext(args, method, 1, train, ids), np.eye(3, 4)) and len(calls) == 1  # read back
    with pytest.raises(ValueError, match="pretext_e4_b256_seed1.npz: a pretext embedding of 4 epochs of batches of 256 "
                                         "with seed 1; the run needs 4 epochs of batches of 256 with seed 2"):
        kept_pretext(args, method, 2, train, ids)


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
