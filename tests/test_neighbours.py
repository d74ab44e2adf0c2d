"""uvac.neighbours: each clip's nearest other clips, nearest first, the same from an array and from a
feature cache read block by block."""
import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from uvac.clip_store import CHUNK_ROWS, NpzRows
from uvac.neighbours import drop_self, mine_neighbours, row_blocks


def test_mined_neighbours_are_the_nearest_other_clips_nearest_first():
    # two well-separated groups of three clips, spread along one axis of a (1, 2, 3) spectrogram
    x = np.zeros((6, 1, 2, 3), np.float32)
    x[:, 0, 0, 0] = [0.0, 0.1, 0.3, 10.0, 10.2, 10.5]
    neighbours = mine_neighbours(x, n_neighbours=2)
    assert [sorted(row) for row in neighbours.tolist()] == [[1, 2], [0, 2], [0, 1], [4, 5], [3, 5], [3, 4]]
    assert neighbours[:, 0].tolist() == [1, 0, 1, 4, 3, 4]


def test_blockwise_pca_keeps_the_exact_neighbours_and_a_cache_gives_what_an_array_gives(tmp_path):
    # more rows than one block, and fewer dimensions than components: the PCA is a rotation, so
    # distances and hence neighbours are those of the raw rows
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2 * CHUNK_ROWS + 37, 1, 4, 6)).astype(np.float32)
    exact = NearestNeighbors(n_neighbors=4).fit(x.reshape(len(x), -1)).kneighbors(return_distance=False)
    from_array = mine_neighbours(x, n_neighbours=4)
    assert np.array_equal(from_array, exact)
    np.savez(tmp_path / "cache.npz", x=x)
    assert np.array_equal(mine_neighbours(NpzRows(tmp_path / "cache.npz"), n_neighbours=4), from_array)


def test_blocks_cover_every_row_once_and_none_is_short():
    assert row_blocks(600, 256) == [(0, 256), (256, 600)]
    assert row_blocks(512, 256) == [(0, 256), (256, 512)]
    assert row_blocks(40, 256) == [(0, 40)]


def test_a_clip_is_never_its_own_neighbour_even_among_duplicates():
    # rows 0 and 1 are identical: a search may list 1 before 0 for row 0, or leave 0 out altogether
    nearest = np.array([[1, 0, 2], [0, 2, 3], [2, 1, 0], [3, 2, 1]])
    assert drop_self(nearest).tolist() == [[1, 2], [0, 2], [1, 0], [2, 1]]
    x = np.repeat(np.arange(4, dtype=np.float32), 3)[:, None, None, None]  # each value three times
    neighbours = mine_neighbours(x, n_neighbours=2)
    assert (neighbours != np.arange(12)[:, None]).all()
    assert (x[neighbours, 0, 0, 0] == x[:, 0, 0, 0, None]).all()  # its two duplicates are its nearest


def test_too_many_neighbours_for_the_clips_is_refused_with_the_setting_named():
    with pytest.raises(ValueError, match="neighbour_count=5"):
        mine_neighbours(np.zeros((5, 1, 2, 2), np.float32), n_neighbours=5)
