"""uvac.pretext: the contrastive encoder whose embedding the neighbour_space "pretext" mines. Its views
are reproducible from the seed, its loss is SimCLR's, its input is read the same from an array and a
feature cache, and on clips whose channel colouring and vocal tract change with the speaker its
neighbours follow the word better than the input's do. The pipeline makes it once for the runs that
read it, and a run reading it trains exactly as one that makes its own."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from uvac import runs
from uvac.clip_store import NpzRows
from uvac.neighbours import LOG_FLOOR, mine_neighbours, nearest_others
from uvac.params import uses_pretext
from uvac.pretext import (MAX_BINS, TEMPERATURE, PretextEncoder, log_input, nt_xent, pretext_embedding, random_views,
                          run_mask)
from uvac.training import TrainConfig, pretext_points


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
    assert not np.array_equal(first, pretext_embedding(x, None, epochs=2, seed=5, batch_size=8))  # 3 steps an epoch, not 1
    with pytest.raises(ValueError, match="pretext_batch_size must be >= 2 .*got 1"):
        TrainConfig(pretext_batch_size=1)


def test_pretext_neighbours_follow_the_word_where_the_speakers_channel_misleads_the_input():
    x, words = two_words()
    in_input = same_word(mine_neighbours(x, 3), words)
    in_pretext = same_word(nearest_others(pretext_embedding(x, None, epochs=20, seed=0), 3), words)
    assert in_input < 0.9 and in_pretext > max(0.9, in_input + 0.05)  # 0.98 against 0.86 here; seeds vary by a few points


# --- the embedding made once and shared by runs (rule pretext, uvac.runs) ---------------------------------

def two_word_cache(tmp_path):
    """A feature cache of two_words clips (train and test alike), each clip's speaker in its manifest."""
    x, words = two_words(n=24)
    cache = tmp_path / "features" / "two_words"
    cache.mkdir(parents=True)
    ids = np.array([f"c{i:02d}" for i in range(len(x))])
    for split in ("train", "test"):
        np.savez(cache / f"{split}.npz", x=x, mask=np.ones((len(x), x.shape[3]), np.float32), clip_id=ids,
                 label_id=words)
    pd.DataFrame({"clip_id": ids, "speaker": [f"s{(i // 2) % 4}" for i in range(len(x))]}).to_parquet(
        cache / "manifest.parquet")
    return cache


PRETEXT_METHOD = {"model": "uvac", "latent_dim": 4, "epochs": 2, "batch_size": 8, "pretrain_epochs": 1,
                  "neighbour_weight": 1.0, "neighbour_count": 3, "neighbour_space": "pretext", "pretext_epochs": 2,
                  "speaker_centred": True, "cluster_init_epochs": 2}
TRAIN = {"device": "cpu", "amp": False, "compile": False, "checkpoint_every": 10, "threads": 1}


def test_a_run_reading_the_shared_embedding_equals_one_that_makes_its_own(tmp_path, monkeypatch):
    cache = two_word_cache(tmp_path)
    assert uses_pretext(PRETEXT_METHOD) and not uses_pretext({**PRETEXT_METHOD, "neighbour_space": "input",
                                                               "cluster_init_epochs": 0})
    assert uses_pretext({**PRETEXT_METHOD, "neighbour_weight": 0.0})  # the cluster initialisation alone
    own = runs.train_run(cache, PRETEXT_METHOD, 3, 1, TRAIN, tmp_path / "own")
    runs.pretext_run(cache, 1, TRAIN, tmp_path / "pretext_e2_b256_seed1.npz", epochs=2, batch_size=256)
    monkeypatch.setattr(runs.pretext, "pretext_embedding", lambda *a, **k: pytest.fail("the run made it again"))
    shared = runs.train_run(cache, PRETEXT_METHOD, 3, 1, TRAIN, tmp_path / "shared",
                            pretext_file=tmp_path / "pretext_e2_b256_seed1.npz")
    assert shared == own
    assert (tmp_path / "shared/history.csv").read_text().splitlines()[0] == \
        (tmp_path / "own/history.csv").read_text().splitlines()[0]
    histories = [pd.read_csv(tmp_path / run / "history.csv").drop(columns="seconds") for run in ("own", "shared")]
    assert list(histories[0]["phase"].unique()) == ["pretrain", "cluster_init", "train"]
    pd.testing.assert_frame_equal(*histories)
    with np.load(tmp_path / "own/embeddings.npz") as a, np.load(tmp_path / "shared/embeddings.npz") as b:
        assert np.array_equal(a["z"], b["z"]) and np.array_equal(a["proba"], b["proba"])


def test_a_shared_embedding_made_for_other_clips_settings_or_seed_is_refused_by_name(tmp_path):
    cache = two_word_cache(tmp_path)
    made = tmp_path / "pretext_e2_b8_seed1.npz"
    runs.pretext_run(cache, 1, TRAIN, made, epochs=2, batch_size=8)
    with np.load(made) as saved:
        ids, embedding = saved["clip_id"], saved["embedding"]
    assert embedding.shape == (24, PretextEncoder().dim) and np.allclose(np.linalg.norm(embedding, axis=1), 1, atol=1e-5)
    assert np.array_equal(runs.load_pretext(made, ids, epochs=2, batch_size=8, seed=1), embedding)
    with pytest.raises(ValueError, match=r"pretext_e2_b8_seed1.npz: a pretext embedding of 2 epochs of batches of 8 "
                                         r"with seed 1; the run needs 3 epochs of batches of 8 with seed 1"):
        runs.load_pretext(made, ids, epochs=3, batch_size=8, seed=1)
    with pytest.raises(ValueError, match="the run needs 2 epochs of batches of 256 with seed 1"):
        runs.load_pretext(made, ids, epochs=2, batch_size=256, seed=1)
    with pytest.raises(ValueError, match="the run needs 2 epochs of batches of 8 with seed 0"):
        runs.load_pretext(made, ids, epochs=2, batch_size=8, seed=0)
    with pytest.raises(ValueError, match=r"pretext_e2_b8_seed1.npz: made for 24 other training clips \(or in another "
                                         r"order\) than the feature cache's 24"):
        runs.load_pretext(made, ids[::-1], epochs=2, batch_size=8, seed=1)
    cfg = TrainConfig(neighbour_space="pretext", neighbour_weight=1.0)
    with pytest.raises(ValueError, match=r"one row per training clip, shape \(23, D\); got \(24, 512\)"):
        pretext_points(np.zeros((23, 1, 4, 4), np.float32), None, cfg, embedding=embedding)
