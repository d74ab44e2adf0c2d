"""Each clip's nearest other clips in the input, for the neighbour-consistency remedy (SCAN, Van Gansbeke
et al. 2020): a clip and one of its nearest training clips should share a cluster.

Distances are taken in a PCA of the flattened input, fitted a block of rows at a time
(IncrementalPCA), so that a feature cache read from disk is never loaded whole. In the space
"log_cmn" the input is first taken to log magnitudes less each band's mean over the clip's active
frames (cepstral mean normalisation): a speaker's or a channel's fixed spectral colouring no longer
decides who a clip's neighbours are (benchmarks/input_neighbours.py --space log_cmn). In the space
"log_cmn_stretched" each clip's active frames are then stretched in time over all its frames, so that
a slow and a quick speaker's word line up too. In the space "log_cmn_loud_stretched" the normalisation
and the stretch use only each clip's loud span (loud_span), so that the silence and noise around a word,
which differ with its onset, leave the word's frames alone (benchmarks/input_neighbours.py).
"""
from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA, IncrementalPCA
from sklearn.neighbors import NearestNeighbors

from uvac.clip_store import CHUNK_ROWS


def row_blocks(n: int, rows: int) -> list[tuple[int, int]]:
    """(start, stop) of consecutive blocks of at least `rows` rows (the last one takes the remainder)."""
    edges = list(range(0, n, rows))[:max(1, n // rows)] + [n]
    return list(zip(edges[:-1], edges[1:]))


NEIGHBOUR_SPACES = ("input", "log_cmn", "log_cmn_stretched", "log_cmn_loud_stretched")
LOG_FLOOR = 1e-3  # the input lies in [0, 1]; the floor keeps near-silent bins from dominating the log
LOUD_SHARE = 0.1  # a frame is loud when its mean over bins is at least this share of the loudest frame's
GROUP_SHRINKAGE = 0.5  # whiten_groups: share of each group's covariance replaced by a multiple of the identity


def log_cmn(x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """(N, 1, F, T) spectrograms → log magnitudes less each band's mean over the clip's active frames
    (mask (N, T); None: all active); padded frames are 0."""
    log = np.log(np.asarray(x, np.float32) + LOG_FLOOR)
    active = np.ones((len(log), 1, 1, log.shape[-1]), bool) if mask is None \
        else np.asarray(mask).astype(bool)[:, None, None, :]
    mean = np.where(active, log, 0).sum(-1, keepdims=True) / np.maximum(active.sum(-1, keepdims=True), 1)
    return np.where(active, log - mean, 0).astype(np.float32)


def loud_span(x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """(N, C, F, T) → (N, T) bool: each clip's frames from its first to its last loud frame (mean over
    bins at least LOUD_SHARE of the loudest active frame's), among its active frames (mask (N, T);
    None: all active). A clip with nothing loud keeps its active frames."""
    level = np.asarray(x, np.float32).mean(axis=(1, 2))
    active = np.ones(level.shape, bool) if mask is None else np.asarray(mask).astype(bool)
    peak = np.where(active, level, -np.inf).max(axis=1, keepdims=True)
    loud = active & (level >= LOUD_SHARE * peak) & (peak > 0)
    frames = np.arange(level.shape[1])
    first, last = loud.argmax(axis=1), level.shape[1] - 1 - loud[:, ::-1].argmax(axis=1)
    span = (frames >= first[:, None]) & (frames <= last[:, None])
    return np.where(loud.any(axis=1, keepdims=True), span, active)


def stretch_active(x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """(N, C, F, T) → each clip's active frames (mask (N, T); None: all active), in order, linearly
    interpolated onto all T frames: every clip then spans the same frames whatever its length. A clip
    with no active frame is taken whole."""
    x = np.asarray(x, np.float32)
    frames = x.shape[-1]
    out = np.empty_like(x)
    for i, clip in enumerate(x):
        active = np.flatnonzero(mask[i]) if mask is not None and np.any(mask[i]) else np.arange(frames)
        position = np.linspace(0, len(active) - 1, frames)
        low = np.floor(position).astype(int)
        high = np.minimum(low + 1, len(active) - 1)
        weight = (position - low).astype(np.float32)
        out[i] = clip[..., active[low]] * (1 - weight) + clip[..., active[high]] * weight
    return out


def to_space(x: np.ndarray, mask: np.ndarray | None, space: str) -> np.ndarray:
    """Clips (N, 1, F, T) as the neighbours are mined in `space` (one of NEIGHBOUR_SPACES)."""
    if space == "input":
        return np.asarray(x, np.float32)
    if len(x.shape) != 4:
        raise ValueError(f"neighbour_space {space} needs spectrograms (N, 1, bins, frames), got shape {tuple(x.shape)}")
    if space == "log_cmn_loud_stretched":
        mask = loud_span(x, mask)
    cmn = log_cmn(x, mask)
    return cmn if space == "log_cmn" else stretch_active(cmn, mask)


def mine_neighbours(x, n_neighbours: int = 5, n_components: int = 100, space: str = "input",
                    mask=None) -> np.ndarray:
    """(N, n_neighbours) indices of each clip's nearest other clips, nearest first, in the PCA
    (n_components, fewer where the data have fewer rows or columns) of the flattened clips of x,
    an array or an NpzRows, as they are (space "input") or after log_cmn with mask ("log_cmn"), then
    stretch_active ("log_cmn_stretched"), or both on each clip's loud_span ("log_cmn_loud_stretched")."""
    n, dims = len(x), int(np.prod(x.shape[1:]))
    check_neighbour_count(n, n_neighbours)
    if space not in NEIGHBOUR_SPACES:
        raise ValueError(f"neighbour_space must be one of {', '.join(NEIGHBOUR_SPACES)}, got {space!r}")

    def rows(start: int, stop: int) -> np.ndarray:
        block = to_space(x[start:stop], None if mask is None else mask[start:stop], space)
        return block.reshape(stop - start, -1)

    blocks = row_blocks(n, max(CHUNK_ROWS, n_components))
    pca = IncrementalPCA(min(n_components, dims, min(stop - start for start, stop in blocks)))
    for start, stop in blocks:
        pca.partial_fit(rows(start, stop))
    return nearest_others(np.concatenate([pca.transform(rows(start, stop)) for start, stop in blocks]), n_neighbours)


def check_neighbour_count(n: int, n_neighbours: int) -> None:
    if not 1 <= n_neighbours < n:
        raise ValueError(f"neighbour consistency needs 1 <= neighbour_count < the {n} training clips, "
                         f"got neighbour_count={n_neighbours}")


def check_other_group_count(groups: np.ndarray, n_neighbours: int) -> None:
    largest = np.unique(groups, return_counts=True)[1].max()
    if not 1 <= n_neighbours <= len(groups) - largest:
        raise ValueError(f"neighbours of other speakers: needs 1 <= neighbour_count <= the {len(groups) - largest} "
                         f"clips outside the largest speaker's {largest}, got neighbour_count={n_neighbours}")


def nearest_others(points: np.ndarray, n_neighbours: int) -> np.ndarray:
    """(N, n_neighbours) indices of each point's nearest other points (N, D), nearest first."""
    nearest = NearestNeighbors(n_neighbors=n_neighbours + 1).fit(points).kneighbors(points, return_distance=False)
    return drop_self(nearest)


def drop_self(nearest: np.ndarray) -> np.ndarray:
    """Each row's neighbours without the row itself (usually first, but not always among exact duplicates)."""
    n, width = nearest.shape
    others = nearest != np.arange(n)[:, None]
    others[others.sum(1) == width, -1] = False  # the row was not among its nearest: drop the farthest instead
    return nearest[others].reshape(n, width - 1)


def centre_groups(x: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """x less the mean of its group's rows, row by row (each speaker's mean taken out)."""
    x = x.astype(np.float32, copy=True)
    for group in np.unique(groups):
        x[groups == group] -= x[groups == group].mean(axis=0)
    return x


def check_whitening_axes(dims: int, clips: int, width: int) -> None:
    """Refuse more principal axes than `clips` rows of `width` columns have (whiten_groups)."""
    if not 1 <= dims <= min(clips, width):
        raise ValueError(f"speaker whitening keeps between 1 and min(clips, embedding width) = {min(clips, width)} "
                         f"principal axes, got {dims}")


def whiten_groups(x: np.ndarray, groups: np.ndarray, dims: int, shrinkage: float = GROUP_SHRINKAGE) -> np.ndarray:
    """(N, dims): x less each group's mean, on the first `dims` principal axes of all groups, with each group's
    covariance there whitened. A speaker's voice does more than shift the embedding: it stretches it along
    its own axes (on fsdd, one speaker's "two" forms a cluster of its own after centring), and whitening
    each speaker's share undoes that too (docs/accuracy.md). Each group's covariance C is first shrunk to
    (1 - shrinkage) C + shrinkage tr(C)/dims I, so that a group of fewer clips than dims stays invertible."""
    check_whitening_axes(dims, *x.shape)
    centred = centre_groups(x, groups)
    projected = PCA(dims, svd_solver="full").fit_transform(centred.astype(np.float64))
    for group in np.unique(groups):
        members = groups == group
        rows = projected[members]
        covariance = np.cov(rows, rowvar=False) if len(rows) > 1 else np.zeros((dims, dims))
        scale = np.trace(covariance) / dims
        if scale == 0:  # a single clip, or identical ones: centred to zero, nothing to whiten
            continue
        values, vectors = np.linalg.eigh((1 - shrinkage) * covariance + shrinkage * scale * np.eye(dims))
        projected[members] = rows @ vectors @ np.diag(values ** -0.5) @ vectors.T
    return projected.astype(np.float32)


def nearest_of_other_groups(points: np.ndarray, groups: np.ndarray, n_neighbours: int = 1,
                            rows: int = 1024) -> np.ndarray:
    """(N, n_neighbours) indices of each row's nearest rows (Euclidean) among the rows of other groups,
    nearest first, `rows` rows at a time (no N x N matrix)."""
    groups = np.asarray(groups)
    check_other_group_count(groups, n_neighbours)
    sq = (points ** 2).sum(axis=1)
    nearest = []
    for start in range(0, len(points), rows):
        block = slice(start, start + rows)
        distances = sq[block, None] + sq[None, :] - 2 * points[block] @ points.T
        distances[groups[block, None] == groups[None, :]] = np.inf
        top = np.argpartition(distances, n_neighbours - 1, axis=1)[:, :n_neighbours]
        order = np.take_along_axis(distances, top, axis=1).argsort(axis=1, kind="stable")
        nearest.append(np.take_along_axis(top, order, axis=1))
    return np.concatenate(nearest)
