"""uvac.pretext: the contrastive encoder whose embedding the neighbour_space "pretext" mines. Its views
are reproducible from the seed, its loss is SimCLR's, its input is read the same from an array and a
feature cache, and on clips whose channel colouring and vocal tract change with the speaker its
neighbours follow the word better than the input's do."""
import math

import numpy as np
import pytest
import torch

from uvac.clip_store import NpzRows
from uvac.neighbours import LOG_FLOOR, mine_neighbours, nearest_others
from uvac.pretext import MAX_BINS, TEMPERATURE, log_input, nt_xent, pretext_embedding, random_views, run_mask


def two_words(seed=0, n=64, bins=32, frames=24):
    """A rising and a falling sweep ("words"), each said by four speakers with their own smooth channel
    colouring and vocal-tract stretch, at a random onset: (x in [0, 1], word labels)."""
    rng = np.random.default_rng(seed)
    words, speakers = np.arange(n) % 2, (np.arange(n) // 2) % 4
    band = np.linspace(0, np.pi, bins)[:, None]
    colour = [np.exp(rng.uniform(-1.5, 1.5) * np.cos(band)) for _ in range(4)]
    tract = rng.uniform(0.85, 1.15, 4)
    x = np.zeros((n, 1, bins, frames), np.float32)
    for i in range(n):
        start = rng.integers(0, 6)
        path = np.linspace(6, 22, 14) if words[i] == 0 else np.linspace(22, 6, 14)
        x[i, 0, np.round(path * tract[speakers[i]]).astype(int), start + np.arange(14)] = 0.5
        x[i, 0] = (x[i, 0] + 0.05) * colour[speakers[i]]
    return x / x.max(), words


def same_word(neighbours, words):
    return float((words[neighbours] == words[:, None]).mean())


def test_views_are_drawn_from_the_generator_alone_and_keep_the_shape():
    x = log_input(two_words()[0][:8])
    first = random_views(x, torch.Generator().manual_seed(3))
    again = random_views(x, torch.Generator().manual_seed(3))
    other = random_views(x, torch.Generator().manual_seed(4))
    assert first.shape == x.shape and torch.equal(first, again) and not torch.allclose(first, other)
    assert torch.isfinite(first).all() and first.min() >= math.log(LOG_FLOOR) - 2  # gain moves the floor by <= 1


def test_a_run_mask_silences_one_run_no_longer_than_asked():
    masks = run_mask(torch.Generator().manual_seed(0), 200, 30, 6)
    widths = masks.sum(1)
    assert widths.max() <= 6 and widths.min() == 0 and len(set(widths.tolist())) == 7
    for row in masks[widths > 0]:  # one contiguous run
        where = torch.nonzero(row).flatten()
        assert (where[-1] - where[0] + 1) == len(where)


def test_nt_xent_is_chance_when_every_view_is_alike_and_small_when_partners_stand_out():
    same = torch.ones(4, 8)
    assert nt_xent(same, same).item() == pytest.approx(math.log(7))  # 1 partner among 2 * 4 - 1 views
    a = torch.eye(4, 8)  # partners identical, all others orthogonal: cosine 1 against 0
    assert nt_xent(a, a).item() == pytest.approx(math.log(1 + 6 * math.exp(-1 / TEMPERATURE)))
    assert nt_xent(a, a.roll(1, 0)).item() > math.log(7)  # each partner is the one view it is orthogonal to


def test_log_input_pools_bins_floors_padding_and_reads_a_cache_as_an_array(tmp_path):
    x = np.random.default_rng(0).uniform(0, 1, (5, 1, 128, 10)).astype(np.float32)
    mask = np.ones((5, 10), np.float32)
    mask[2, 6:] = 0
    out = log_input(x, mask)
    assert out.shape == (5, 1, MAX_BINS, 10)
    assert torch.allclose(out[0, 0, 0], torch.log(torch.from_numpy(x[0, 0, :2] + LOG_FLOOR)).mean(0))
    assert (out[2, ..., 6:] == math.log(LOG_FLOOR)).all() and (out[2, ..., :6] > math.log(LOG_FLOOR)).all()
    np.savez(tmp_path / "cache.npz", x=x)
    assert torch.equal(log_input(NpzRows(tmp_path / "cache.npz"), mask), out)


def test_the_embedding_is_reproducible_leaves_the_global_generator_alone_and_has_unit_rows():
    x = two_words(n=24)[0]
    torch.manual_seed(11)
    state = torch.random.get_rng_state()
    first = pretext_embedding(x, None, epochs=2, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert np.array_equal(first, pretext_embedding(x, None, epochs=2, seed=5))
    assert not np.array_equal(first, pretext_embedding(x, None, epochs=2, seed=6))
    assert np.allclose(np.linalg.norm(first, axis=1), 1, atol=1e-5)


def test_pretext_neighbours_follow_the_word_where_the_speakers_channel_misleads_the_input():
    x, words = two_words()
    in_input = same_word(mine_neighbours(x, 3), words)
    in_pretext = same_word(nearest_others(pretext_embedding(x, None, epochs=20, seed=0), 3), words)
    assert in_input < 0.9 and in_pretext > max(0.9, in_input + 0.05)  # 0.98 against 0.86 here; seeds vary by a few points
