"""uvac.neighbours: each clip's nearest other clips, nearest first, the same from an array and from a
feature cache read block by block; in log_cmn space a fixed per-band colouring no longer decides them,
in log_cmn_stretched space neither does the speaking rate, and in log_cmn_loud_stretched space neither
does the quiet around the word; whitening each speaker's share undoes a voice's stretch."""
import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.neighbors import NearestNeighbors

from uvac.clip_store import CHUNK_ROWS, NpzRows
from uvac.metrics import unsupervised_accuracy
from uvac.neighbours import (LOG_FLOOR, LOUD_SHARE, centre_groups, drop_self, log_cmn, loud_span, mine_neighbours,
                             nearest_of_other_groups, row_blocks, stretch_active, whiten_groups)


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


def test_log_cmn_takes_out_a_per_band_gain_and_ignores_padded_frames():
    rng = np.random.default_rng(0)
    clip = rng.uniform(0.05, 0.5, (1, 1, 4, 6)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 0, 0]])
    gain = np.array([1.0, 2.0, 0.5, 1.5])[None, None, :, None]  # on (x + floor), a shift of the log
    coloured = ((clip + LOG_FLOOR) * gain - LOG_FLOOR).astype(np.float32)
    padded = clip.copy()
    padded[..., 4:] = 0.9
    plain = log_cmn(clip, mask)
    np.testing.assert_allclose(log_cmn(coloured, mask), plain, atol=1e-5)
    np.testing.assert_array_equal(log_cmn(padded, mask), plain)
    assert np.allclose(plain[..., :4].mean(-1), 0, atol=1e-6) and not plain[..., 4:].any()
    assert np.abs(log_cmn(padded) - plain).max() > 0.1  # without the mask the padded frames would count


def test_in_log_cmn_space_neighbours_follow_the_pattern_not_the_speakers_colouring():
    # two time patterns x two speakers' fixed per-band colourings, two noisy clips of each pair:
    # a clip's nearest is its twin; its second nearest says which of pattern or colouring decides
    rng = np.random.default_rng(0)
    frames = np.arange(10)
    patterns = [np.tile(-2 + 0.8 * np.sin(frames / 2), (8, 1)), np.tile(-2 + 0.8 * np.cos(frames / 1.3), (8, 1))]
    colourings = [np.linspace(0, -2.5, 8)[:, None], np.linspace(-2.5, 0, 8)[:, None]]
    pairs = [(p, s) for p in range(2) for s in range(2) for _ in range(2)]
    x = np.stack([np.exp(patterns[p] + colourings[s] + rng.normal(0, 0.05, (8, 10))) - LOG_FLOOR
                  for p, s in pairs]).astype(np.float32)[:, None]
    pattern, speaker = np.array(pairs).T
    second = {space: mine_neighbours(x, 2, space=space)[:, 1] for space in ("input", "log_cmn")}
    assert (speaker[second["input"]] == speaker).all() and (pattern[second["input"]] != pattern).all()
    assert (pattern[second["log_cmn"]] == pattern).all()
    with pytest.raises(ValueError, match="neighbour_space must be one of input, log_cmn, log_cmn_stretched, log_cmn_loud_stretched, got 'cepstrum'"):
        mine_neighbours(x, 2, space="cepstrum")
    with pytest.raises(ValueError, match=r"log_cmn needs spectrograms \(N, 1, bins, frames\), got shape \(8, 80\)"):
        mine_neighbours(x.reshape(8, 80), 2, space="log_cmn")


def test_stretch_active_lines_up_a_quick_and_a_slow_clip_and_ignores_padded_frames():
    # a rise over 4 active frames and over 10, in 12 frames: stretched, both are the same rise over all 12
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (3, 1, 2, 12)).astype(np.float32)
    mask = np.zeros((3, 12), bool)
    for i, n in enumerate([4, 10]):
        x[i, 0, :, :n] = np.linspace(0, 1, n)
        mask[i, :n] = True
    stretched = stretch_active(x, mask)
    np.testing.assert_allclose(stretched[:2], np.broadcast_to(np.linspace(0, 1, 12), (2, 1, 2, 12)), atol=1e-6)
    np.testing.assert_array_equal(stretched[2], x[2])  # no active frame: taken whole
    np.testing.assert_array_equal(stretch_active(x), x)  # no mask: every frame is active already
    repadded = x.copy()
    repadded[0, ..., 4:] = 5.0
    np.testing.assert_array_equal(stretch_active(repadded, mask)[0], stretched[0])


def test_in_log_cmn_stretched_space_neighbours_follow_the_word_not_the_speaking_rate():
    # two words (a pattern and its reverse in time) x two rates (6 and 16 active frames of 16), two
    # noisy clips of each pair: a clip's second nearest says which of word or rate decides
    rng = np.random.default_rng(0)
    bands, frames = 8, 16
    band = np.linspace(0, 1, bands)[:, None]
    words = [lambda u: np.sin(3 * u + 4 * band), lambda u: np.sin(3 * (1 - u) + 4 * band)]
    pairs = [(w, r) for w in range(2) for r in range(2) for _ in range(2)]
    x = np.zeros((len(pairs), 1, bands, frames), np.float32)
    mask = np.zeros((len(pairs), frames), bool)
    for i, (w, r) in enumerate(pairs):
        n = [6, 16][r]
        log = -2 + 0.8 * words[w](np.linspace(0, 1, n)) + rng.normal(0, 0.05, (bands, n))
        x[i, 0, :, :n] = np.exp(log) - LOG_FLOOR
        mask[i, :n] = True
    word, rate = np.array(pairs).T
    second = {space: mine_neighbours(x, 2, space=space, mask=mask)[:, 1] for space in ("input", "log_cmn_stretched")}
    assert (rate[second["input"]] == rate).all() and (word[second["input"]] != word).all()
    assert (word[second["log_cmn_stretched"]] == word).all()


def test_loud_span_runs_from_the_first_to_the_last_loud_active_frame():
    level = np.array([[0.01, 0.5, 0.02, 0.4, 0.01, 0.9],   # loud at 1 and 3; frame 5 is padding
                      [0.2, 0.2, 0.2, 0.2, 0.2, 0.2],      # all equally loud
                      [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])     # silent: nothing is loud
    x = np.broadcast_to(level[:, None, None, :], (3, 1, 4, 6)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]], bool)
    assert loud_span(x, mask).astype(int).tolist() == [[0, 1, 1, 1, 0, 0], [1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]]
    assert loud_span(x)[0].astype(int).tolist() == [0, 1, 1, 1, 1, 1]  # no mask: frame 5 is loud too
    just_below = x.copy()
    just_below[0, ..., 3] = 0.5 * LOUD_SHARE * 0.99
    assert loud_span(just_below, mask)[0].astype(int).tolist() == [0, 1, 0, 0, 0, 0]


def test_in_log_cmn_loud_stretched_space_neighbours_follow_the_word_not_the_quiet_around_it():
    # two words (a pattern and its reverse in time), each 6 frames long, starting at frame 0 or 10 of
    # 16 active frames, the rest quiet noise; two noisy clips of each pair: stretched over all active
    # frames the onset decides a clip's second nearest, stretched over the loud span the word does
    rng = np.random.default_rng(0)
    bands, frames, length = 8, 16, 6
    band = np.linspace(0, 1, bands)[:, None]
    words = [lambda u: np.sin(3 * u + 4 * band), lambda u: np.sin(3 * (1 - u) + 4 * band)]
    pairs = [(w, o) for w in range(2) for o in range(2) for _ in range(2)]
    x = np.exp(-6 + rng.normal(0, 0.05, (len(pairs), 1, bands, frames))).astype(np.float32)
    for i, (w, o) in enumerate(pairs):
        start = [0, 10][o]
        x[i, 0, :, start:start + length] = np.exp(-1 + 0.8 * words[w](np.linspace(0, 1, length))
                                                  + rng.normal(0, 0.05, (bands, length)))
    mask = np.ones((len(pairs), frames), bool)
    word, onset = np.array(pairs).T
    second = {space: mine_neighbours(x, 2, space=space, mask=mask)[:, 1]
              for space in ("log_cmn_stretched", "log_cmn_loud_stretched")}
    assert (onset[second["log_cmn_stretched"]] == onset).all() and (word[second["log_cmn_stretched"]] != word).all()
    assert (word[second["log_cmn_loud_stretched"]] == word).all()


def test_centring_takes_each_speakers_mean_out_and_the_nearest_of_other_speakers_cross():
    # two speakers, each offset far along the first axis; within a speaker the label sits on the second
    speakers = np.array(["a", "a", "b", "b"])
    x = np.array([[0.0, 0.0], [0.0, 1.0], [10.0, 0.0], [10.0, 1.0]])
    centred = centre_groups(x, speakers)
    assert np.allclose(centred, [[0, -0.5], [0, 0.5], [0, -0.5], [0, 0.5]])
    # the nearest clip at all is of the same speaker; the nearest of another speaker has the label
    assert nearest_of_other_groups(x, speakers, rows=3)[:, 0].tolist() == [2, 3, 0, 1]
    assert nearest_of_other_groups(centred, speakers, 2, rows=3).tolist() == [[2, 3], [3, 2], [0, 1], [1, 0]]
    # a row never finds itself or its own speaker, even where that is nearest
    assert nearest_of_other_groups(np.array([[0.0], [0.1], [5.0]]), np.array([1, 1, 2]))[:, 0].tolist() == [2, 2, 1]
    with pytest.raises(ValueError, match="the 2 clips outside the largest speaker's 2, got neighbour_count=3"):
        nearest_of_other_groups(x, speakers, 3)


def test_whitening_each_speaker_undoes_a_voice_that_stretches_the_embedding_not_only_shifts_it():
    """Two words, each speaker saying each 20 times, apart along x. Speaker b's voice also spreads its clips
    far along y (as fsdd's George spreads his "two", docs/accuracy.md): centred, K-means splits b's spread
    instead of the words; each speaker's share whitened, it finds the words."""
    rng = np.random.default_rng(0)
    word = np.repeat([0, 1], 20)
    a = np.stack([2.0 * word - 1, np.zeros(40)], 1) + 0.2 * rng.standard_normal((40, 2))
    b = np.stack([2.0 * word - 1, np.zeros(40)], 1) + [0.2, 3.0] * rng.standard_normal((40, 2)) + [30.0, -7.0]
    x, speakers, words = np.concatenate([a, b]), np.repeat(["a", "b"], 40), np.concatenate([word, word])
    words_found = lambda points: unsupervised_accuracy(words, KMeans(2, n_init=10, random_state=0).fit_predict(points))
    assert words_found(centre_groups(x, speakers)) < 0.75
    whitened = whiten_groups(x, speakers, 2, shrinkage=0.0)
    for speaker in ("a", "b"):  # each speaker's share: mean 0, identity covariance
        rows = whitened[speakers == speaker]
        assert np.allclose(rows.mean(0), 0, atol=1e-5) and np.allclose(np.cov(rows, rowvar=False), np.eye(2), atol=1e-4)
    assert words_found(whitened) == 1.0
    assert words_found(whiten_groups(x, speakers, 2)) == 1.0  # shrunk halfway to the identity, as in training
    # a lone clip is centred to the origin and left there; more axes than the data has are refused
    lone = whiten_groups(np.concatenate([x, [[5.0, 5.0]]]), np.append(speakers, "c"), 2)
    assert np.isfinite(lone).all() and np.allclose(lone[-1], 0, atol=1e-5)
    with pytest.raises(ValueError, match="between 1 and min\\(clips, embedding width\\) = 2 principal axes, got 3"):
        whiten_groups(x, speakers, 3)
