"""Training from a feature cache on disk: rows read on demand, the same numbers as from memory."""
from __future__ import annotations

import numpy as np
import pytest

from uvac.clip_store import NpzRows
from uvac.estimators import UVAC
from uvac.pipeline import load_split

SHAPE = (1, 16, 32)


def cache(tmp_path, n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, *SHAPE), dtype=np.float32)
    mask = np.ones((n, SHAPE[-1]), np.float32)
    mask[::4, 25:] = 0
    path = tmp_path / "train.npz"
    np.savez(path, x=x, mask=mask, clip_id=np.array([f"c{i}" for i in range(n)]), label_id=np.arange(n) % 3)
    return path, x, mask


def test_rows_match_the_array_for_every_kind_of_index(tmp_path):
    path, x, _ = cache(tmp_path)
    rows = NpzRows(path)
    assert rows.shape == x.shape and rows.dtype == np.float32 and len(rows) == len(x)
    for index in (7, -1, slice(3, 11), slice(None, None, 6), np.array([5, 0, 39, 5, -2]), np.arange(0)):
        assert np.array_equal(rows[index], x[index]), index
    assert np.array_equal(np.asarray(rows), x)
    with pytest.raises(IndexError, match="out of range"):
        rows[np.array([40])]


def test_compressed_or_missing_arrays_are_refused_by_name(tmp_path):
    path = tmp_path / "packed.npz"
    np.savez_compressed(path, x=np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match=r"packed\.npz.*compressed"):
        NpzRows(path)
    with pytest.raises(KeyError, match="no array 'z'"):
        NpzRows(cache(tmp_path)[0], "z")


def test_a_truncated_cache_names_the_file(tmp_path):
    path, _, _ = cache(tmp_path)
    rows = NpzRows(path)
    data = path.read_bytes()
    path.write_bytes(data[: rows.offset + 5 * rows.row_bytes + 10])  # cut while open: reads run short
    with pytest.raises(EOFError, match=r"train\.npz.*truncated"):
        rows[:]
    with pytest.raises(ValueError, match=r"train\.npz.*truncated"):  # cut before opening: no zip directory
        NpzRows(path)


def test_training_from_disk_equals_training_from_memory(tmp_path):
    path, x, mask = cache(tmp_path)
    settings = dict(epochs=2, batch_size=8, progress=False, threads=1, seed=3)
    in_memory = UVAC(3, 4, **settings).fit(x, mask)
    split = load_split(tmp_path, "train", lazy=True)
    assert isinstance(split["x"], NpzRows) and np.array_equal(split["mask"], mask)
    from_disk = UVAC(3, 4, **settings).fit(split["x"], split["mask"])
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in in_memory.history_]
    assert strip == [{k: v for k, v in row.items() if k != "seconds"} for row in from_disk.history_]
    assert np.array_equal(in_memory.transform(x), from_disk.transform(split["x"]))


def test_nan_in_a_cache_is_found_before_training(tmp_path):
    path, x, mask = cache(tmp_path)
    x[33, 0, 4, 4] = np.nan
    np.savez(path, x=x, mask=mask)
    with pytest.raises(ValueError, match="NaN"):
        UVAC(3, 4, epochs=1, progress=False).fit(NpzRows(path), mask)
