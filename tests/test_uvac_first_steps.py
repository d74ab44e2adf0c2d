"""benchmarks/uvac_first_steps.py keeps the pretext embedding: computed and saved once, then read back."""
import sys
from pathlib import Path

import numpy as np
import pytest

import uvac.pretext as pretext

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from uvac_first_steps import keep_embedding  # noqa: E402


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
