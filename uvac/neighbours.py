"""Each clip's nearest other clips in the input, for the neighbour-consistency remedy (SCAN, Van Gansbeke
et al. 2020): a clip and one of its nearest training clips should share a cluster.

Distances are taken in a PCA of the flattened input, fitted a block of rows at a time
(IncrementalPCA), so that a feature cache read from disk is never loaded whole.
"""
from __future__ import annotations

import numpy as np
from sklearn.decomposition import IncrementalPCA
from sklearn.neighbors import NearestNeighbors

from uvac.clip_store import CHUNK_ROWS


def row_blocks(n: int, rows: int) -> list[tuple[int, int]]:
    """(start, stop) of consecutive blocks of at least `rows` rows (the last one takes the remainder)."""
    edges = list(range(0, n, rows))[:max(1, n // rows)] + [n]
    return list(zip(edges[:-1], edges[1:]))


def mine_neighbours(x, n_neighbours: int = 5, n_components: int = 100) -> np.ndarray:
    """(N, n_neighbours) indices of each clip's nearest other clips, nearest first, in the PCA
    (n_components, fewer where the data have fewer rows or columns) of the flattened clips of x,
    an array or an NpzRows."""
    n, dims = len(x), int(np.prod(x.shape[1:]))
    if not 1 <= n_neighbours < n:
        raise ValueError(f"neighbour consistency needs 1 <= neighbour_count < the {n} training clips, "
                         f"got neighbour_count={n_neighbours}")
    blocks = row_blocks(n, max(CHUNK_ROWS, n_components))
    pca = IncrementalPCA(min(n_components, dims, min(stop - start for start, stop in blocks)))
    for start, stop in blocks:
        pca.partial_fit(np.asarray(x[start:stop], np.float32).reshape(stop - start, -1))
    reduced = np.concatenate([pca.transform(np.asarray(x[start:stop], np.float32).reshape(stop - start, -1))
                              for start, stop in blocks])
    nearest = NearestNeighbors(n_neighbors=n_neighbours + 1).fit(reduced).kneighbors(reduced, return_distance=False)
    return drop_self(nearest)


def drop_self(nearest: np.ndarray) -> np.ndarray:
    """Each row's neighbours without the row itself (usually first, but not always among exact duplicates)."""
    n, width = nearest.shape
    others = nearest != np.arange(n)[:, None]
    others[others.sum(1) == width, -1] = False  # the row was not among its nearest: drop the farthest instead
    return nearest[others].reshape(n, width - 1)
