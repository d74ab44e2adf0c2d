"""The training loop and the estimators: learning, determinism, resume, divergence, remedies, persistence."""
import logging
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_info

import uvac.training as training
from uvac.estimators import UVAC, CategoricalUVAC, LinearVAE
from uvac.models import MODELS
from uvac.models.categorical import categorical_kl_paid
from uvac.models.cluster_remedies import (consistency_kl, kl_uniform, neighbour_disagreement, shifted_and_warped,
                                          unequal_usage_minus_information)
from uvac.neighbours import (NEIGHBOUR_SPACES, centre_groups, mine_neighbours, nearest_of_other_groups, nearest_others,
                             whiten_groups)
from uvac.pretext import pretext_embedding
from uvac.runs import clip_speakers
from uvac.training import TrainConfig, train

SHAPE = (1, 16, 32)  # tiny spectrograms: the real architecture, a fraction of the cost


def spectrograms(n=16, seed=0):
    """Three kinds of clips (a low, a middle and a high band), with a padded tail in some."""
    rng = np.random.default_rng(seed)
    x = 0.1 * rng.random((n, *SHAPE), dtype=np.float32)
    for i in range(n):
        band = 4 * (i % 3) + 2
        x[i, 0, band:band + 3] += 0.8
    mask = np.ones((n, SHAPE[2]), np.float32)
    mask[::4, 24:] = 0
    x[mask[:, None, None, :].repeat(SHAPE[1], 2) == 0] = 0
    return np.clip(x, 0, 1), mask


def quick(**kw):
    return TrainConfig(**{"epochs": 2, "batch_size": 8, "progress": False, "threads": 1, **kw})


@pytest.fixture(autouse=True)
def restore_torch_threads():
    """threads=1 keeps these tiny runs fast on a busy 2-core machine; give other tests their threads back."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def fresh(kind="uvac", k=3, seed=0):
    torch.manual_seed(seed)
    return MODELS[kind](SHAPE, k, 4)


def without_time(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


# --- learning and determinism ----------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["uvac", "cat_uvac"])
def test_a_tiny_model_overfits_a_small_batch(kind):
    x = np.zeros((8, *SHAPE), np.float32)
    for i in range(8):
        x[i, 0, 2 * i:2 * i + 2, 4 * i:] = 1  # binary targets, so BCE can approach 0
    history = train(fresh(kind, k=8), x, None, quick(epochs=30, lr_start=5e-3, lr_end=5e-3))
    first, last = history[0]["recon"], history[-1]["recon"]
    assert last < 0.35 * first, (first, last)


def test_linear_vae_learns():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((64, 2)) @ rng.standard_normal((2, 26))).astype(np.float32)  # rank 2
    torch.manual_seed(0)
    history = train(MODELS["linear_vae"]((26,), 5, 4), x, None,
                    quick(epochs=30, batch_size=32, recon="mse", lr_start=1e-2, lr_end=1e-3))
    assert history[-1]["recon"] < 0.3 * history[0]["recon"]
    assert history[-1]["clusters_used"] is None


def test_same_seed_gives_an_identical_history_on_cpu():
    x, mask = spectrograms()
    runs = []
    for _ in range(2):
        model = fresh("cat_uvac")
        runs.append((without_time(train(model, x, mask, quick(seed=3))), model.state_dict()))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(runs[0][1][k], runs[1][1][k]) for k in runs[0][1])
    other = without_time(train(fresh("cat_uvac"), x, mask, quick(seed=4)))
    assert other != runs[0][0]


def test_compile_is_left_out_on_cpu_and_says_so(caplog):
    """Compiling measured no gain on CPU and costs tens of seconds: a CPU run ignores it, visibly."""
    x, mask = spectrograms()
    eager = without_time(train(fresh("cat_uvac"), x, mask, quick(seed=3)))
    with caplog.at_level(logging.INFO, logger="uvac.training"):
        asked = without_time(train(fresh("cat_uvac"), x, mask, quick(seed=3, compile=True)))
    assert asked == eager
    assert "compile: applies on CUDA only" in caplog.text


def test_history_rows_and_files(tmp_path):
    x, mask = spectrograms()
    history = train(fresh("cat_uvac"), x, mask, quick(), run_dir=tmp_path)
    row = history[-1]
    for key in ("epoch", "loss", "recon", "kl_z", "kl_y", "lr", "tau", "kl_weight", "usage_entropy",
                "mean_entropy", "clusters_used", "seconds"):
        assert key in row
    assert 0 <= row["mean_entropy"] <= math.log(3) + 1e-6 and 0 <= row["usage_entropy"] <= math.log(3) + 1e-6
    assert history[0]["lr"] == 5e-3 and history[-1]["lr"] == pytest.approx(5e-4)
    assert history[0]["tau"] == 1.0 and history[-1]["tau"] == pytest.approx(0.5)
    lines = (tmp_path / "history.jsonl").read_text().splitlines()
    assert len(lines) == 2
    assert (tmp_path / "history.csv").read_text().splitlines()[0].startswith("phase,epoch,loss")


# --- checkpoints and resume ------------------------------------------------------------------------

def interrupt_at(monkeypatch, epoch_label):
    """Make the loop die (as on a killed job) when it starts the given epoch."""
    real = training.run_epoch

    def dying(*args, where, **kw):
        if where.startswith(epoch_label):
            raise KeyboardInterrupt
        return real(*args, where=where, **kw)

    monkeypatch.setattr(training, "run_epoch", dying)


@pytest.mark.parametrize("kind, settings", [("uvac", {}), ("cat_uvac", {"neighbour_weight": 5.0, "neighbour_count": 3}),
                                            ("uvac", {"lr_warmup_steps": 5})])  # the warmup spans the interruption
def test_resume_after_an_interruption_equals_an_uninterrupted_run(kind, settings, tmp_path, monkeypatch):
    x, mask = spectrograms()
    cfg = quick(epochs=4, checkpoint_every=2, **settings)  # neighbours: their draws resume too
    straight = fresh(kind)
    expected = train(straight, x, mask, cfg, run_dir=tmp_path / "straight")

    with monkeypatch.context() as m:
        interrupt_at(m, "epoch 3/")
        with pytest.raises(KeyboardInterrupt):
            train(fresh(kind), x, mask, cfg, run_dir=tmp_path / "resumed")
    assert torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)["epoch"] == 2

    resumed = fresh(kind, seed=99)  # its own init is irrelevant: the checkpoint replaces it
    history = train(resumed, x, mask, cfg, run_dir=tmp_path / "resumed")
    assert without_time(history) == without_time(expected)
    assert all(torch.equal(v, resumed.state_dict()[k]) for k, v in straight.state_dict().items())
    assert len((tmp_path / "resumed" / "history.jsonl").read_text().splitlines()) == 4


def test_checkpoint_is_weights_only_and_complete(tmp_path):
    x, mask = spectrograms()
    train(fresh(), x, mask, quick(), run_dir=tmp_path)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["meta"] == {"kind": "uvac", "n_clusters": 3, "latent_dim": 4, "input_shape": list(SHAPE)}
    assert state["epoch"] == 2 and {"model", "optimizer", "rng", "config", "history"} <= set(state)
    assert not list(tmp_path.glob("*.tmp"))


def test_resume_refuses_another_model_or_other_settings(tmp_path):
    x, mask = spectrograms()
    train(fresh(k=3), x, mask, quick(), run_dir=tmp_path)
    with pytest.raises(ValueError, match="number of clusters"):
        train(fresh(k=4), x, mask, quick(), run_dir=tmp_path)
    with pytest.raises(ValueError, match="model kind"):
        train(fresh("cat_uvac", k=3), x, mask, quick(), run_dir=tmp_path)
    with pytest.raises(ValueError, match="lr_start"):
        train(fresh(k=3), x, mask, quick(lr_start=1e-3), run_dir=tmp_path)
    with pytest.raises(ValueError, match="clips"):
        train(fresh(k=3), x[:12], mask[:12], quick(), run_dir=tmp_path)


def test_nan_stops_training_naming_epoch_and_batch_and_keeps_the_good_checkpoint(tmp_path, monkeypatch):
    x, mask = spectrograms()
    cfg = quick(epochs=4, checkpoint_every=1)
    with monkeypatch.context() as m:
        interrupt_at(m, "epoch 3/")
        with pytest.raises(KeyboardInterrupt):
            train(fresh(), x, mask, cfg, run_dir=tmp_path)
    good = (tmp_path / "checkpoint.pt").read_bytes()
    bad = x.copy()
    bad[5, 0, 3, 7] = np.nan
    with pytest.raises(FloatingPointError, match=r"epoch 3/4, batch [12]/2.*last good checkpoint"):
        train(fresh(), bad, mask, cfg, run_dir=tmp_path)
    assert (tmp_path / "checkpoint.pt").read_bytes() == good
    with pytest.raises(FloatingPointError, match=r"epoch 1/2, batch [12]/2.*no checkpoint"):
        train(fresh(), bad, mask, quick())


# --- remedies against collapse ---------------------------------------------------------------------

def test_pretraining_fits_the_prior_to_the_autoencoder_latents():
    x, mask = spectrograms()
    cfg = quick(pretrain_epochs=2)
    model = fresh()
    torch.set_num_threads(cfg.threads)  # what train() does before calling pretrain()
    torch.manual_seed(cfg.seed)
    rows = training.pretrain(model, torch.as_tensor(x), torch.as_tensor(mask), cfg, torch.device("cpu"),
                             torch.Generator().manual_seed(0))
    assert [r["phase"] for r in rows] == ["pretrain", "pretrain"]
    mu, _ = training.infer(model, x)
    gmm = GaussianMixture(3, covariance_type="diag", random_state=cfg.seed).fit(mu)
    assert np.allclose(model.prior_mu.detach().numpy(), gmm.means_, atol=1e-5)
    assert np.allclose(model.prior_logvar.exp().detach().numpy(), gmm.covariances_, rtol=1e-4)
    _, logvar = model.eval().encode(torch.as_tensor(x))
    assert torch.allclose(logvar, logvar[:1].expand_as(logvar))  # q's variance starts at the narrowest component's
    start = np.maximum(np.log(gmm.covariances_.min(0)), cfg.logvar_clamp[0] + 1)
    assert torch.allclose(logvar[0], torch.as_tensor(start, dtype=torch.float32))


def test_pretraining_that_collapses_the_latents_says_so(monkeypatch):
    x, mask = spectrograms()
    collapsed = (1000 + 1e-3 * np.random.default_rng(0).standard_normal((len(x), 4))).astype(np.float32)
    monkeypatch.setattr(training, "infer", lambda *a: (collapsed, None))  # float32 cancellation fails the EM
    with pytest.raises(ValueError, match=r"pre-training: the GaussianMixture .* 16 latent means after 1 autoencoder"
                                         r" epochs \(spread per dimension \[0\.00\d.*largest \|mean\| 1e\+03\): too little spread for 3 components"):
        train(fresh(), x, mask, quick(epochs=1, pretrain_epochs=1))


def test_pretraining_runs_inside_train_and_changes_the_result():
    x, mask = spectrograms()
    plain = train(fresh(), x, mask, quick(epochs=1))
    history = train(fresh(), x, mask, quick(epochs=1, pretrain_epochs=1))
    assert [r["phase"] for r in history] == ["pretrain", "train"]
    assert without_time(history[1:]) != without_time(plain)


def test_warm_start_lr_sets_the_rate_of_the_epochs_before_the_full_loss():
    x, mask = spectrograms()
    warm = train(fresh(), x, mask, quick(pretrain_epochs=2, warm_start_lr=3e-3, lr_start=1e-4, lr_end=1e-5))
    assert [(r["phase"], r["lr"]) for r in warm] == [("pretrain", 3e-3)] * 2 + [("train", 1e-4), ("train", 1e-5)]
    same_start = train(fresh(), x, mask, quick(pretrain_epochs=2, lr_start=3e-3, lr_end=3e-4))
    assert without_time(warm[:2]) == without_time(same_start[:2])  # the optimizer ran at it, not only the log
    assert without_time(warm[2:]) != without_time(same_start[2:])
    with pytest.raises(ValueError, match="warm_start_lr .* needs pretrain_epochs or cluster_init_epochs >= 1"):
        TrainConfig(warm_start_lr=1e-3)
    with pytest.raises(ValueError, match="warm_start_lr must be >= 0, got -0.1"):
        TrainConfig(warm_start_lr=-0.1, pretrain_epochs=1)


def test_lr_warmup_shrinks_the_first_steps_of_the_full_loss():
    """Adam's first step moves each weight by about the rate whatever its gradient; with the warmup, by
    a warmup_steps-th of it, and the steps after stay smaller while the rate rises."""
    x, mask = spectrograms()

    def largest_moves(**settings):  # of any weight, at each of the 4 steps (2 epochs of 2 batches)
        model, moves = fresh(), []
        before = [p.detach().clone() for p in model.parameters()]
        real_step = torch.optim.Adam.step

        def step(optimizer, *a, **kw):
            out = real_step(optimizer, *a, **kw)
            moves.append(max(float((p.detach() - b).abs().max()) for p, b in zip(model.parameters(), before)))
            for p, b in zip(model.parameters(), before):
                b.copy_(p.detach())
            return out
        with pytest.MonkeyPatch.context() as m:
            m.setattr(torch.optim.Adam, "step", step)
            train(model, x, mask, quick(lr_start=1e-3, lr_end=1e-3, **settings))
        return moves

    plain, warm = largest_moves(), largest_moves(lr_warmup_steps=4)
    assert plain[0] == pytest.approx(1e-3, rel=0.01)
    assert warm[0] == pytest.approx(0.25e-3, rel=0.01)
    assert warm[1] < plain[1] and warm[2] < plain[2]
    with pytest.raises(ValueError, match="lr_warmup_steps must be >= 0, got -1"):
        TrainConfig(lr_warmup_steps=-1)


def test_kl_warmup_ramps_the_kl_weight():
    x, mask = spectrograms()
    history = train(fresh(), x, mask, quick(epochs=3, kl_warmup_epochs=2))
    assert [r["kl_weight"] for r in history] == [0.5, 1.0, 1.0]
    plain = train(fresh(), x, mask, quick(epochs=1))
    assert history[0]["loss"] == pytest.approx(history[0]["recon"] + 0.5 * history[0]["kl"], rel=1e-4)
    assert history[0]["loss"] != plain[0]["loss"]


def test_free_bits_leave_the_categorical_kl_unpaid_below_the_threshold():
    x, mask = spectrograms()
    k, lam = 3, 0.5
    model = fresh("cat_uvac", k=k)
    torch.manual_seed(1)
    with torch.no_grad():
        out = model.loss(torch.from_numpy(x), torch.from_numpy(mask), lam=lam, free_bits=math.log(k))
    # every clip's KL(q(y|x) || uniform) <= log K, so a batch pays its usage KL plus exactly log K
    usage = kl_uniform(out["log_probs"].exp().mean(0).log())
    assert float(out["loss"]) == pytest.approx(float(out["recon"] + lam * (out["kl_z"] + usage + math.log(k))), rel=1e-5)
    history = train(fresh("cat_uvac", k=k), x, mask, quick(epochs=1, free_bits=math.log(k), lam=lam))
    plain = train(fresh("cat_uvac", k=k), x, mask, quick(epochs=1, lam=lam))
    assert without_time(history) != without_time(plain)


def test_free_bits_never_pay_for_confidence_but_always_for_unequal_usage():
    k, free = 4, math.log(4)
    in_cluster_0 = torch.full((8, k), -3.0).index_fill_(1, torch.tensor([0]), 3.0).requires_grad_()
    one_each = torch.full((8, k), -3.0)
    one_each[torch.arange(8), torch.arange(8) % k] = 3.0  # two clips per cluster
    one_each.requires_grad_()
    for logits in (in_cluster_0, one_each):  # free_bits 0 is the paper's term
        log_q = F.log_softmax(logits, 1)
        assert categorical_kl_paid(log_q).item() == pytest.approx(kl_uniform(log_q).mean().item())
    # confident and balanced: the whole KL tells about x, so it is free
    paid = categorical_kl_paid(F.log_softmax(one_each, 1), free_bits=free)
    paid.backward()
    assert paid.item() == pytest.approx(free, rel=1e-5)
    assert float(one_each.grad.abs().max()) < 1e-6
    # confident in one cluster: the same per-clip KL, all of it unequal usage, paid and pushed back
    log_q = F.log_softmax(in_cluster_0, 1)
    paid = categorical_kl_paid(log_q, free_bits=free)
    paid.backward()
    assert paid.item() == pytest.approx(kl_uniform(log_q[0]).item() + free, rel=1e-5)
    assert float(in_cluster_0.grad[:, 0].min()) > 1e-4  # gradient descent lowers the crowded cluster


def test_info_weight_charges_unequal_usage_and_pays_for_informative_assignments():
    k = 4
    in_cluster_0 = torch.full((8, k), -30.0).index_fill_(1, torch.tensor([0]), 30.0)
    one_each = torch.full((8, k), -30.0)
    one_each[torch.arange(8), torch.arange(8) % k] = 30.0  # two clips per cluster
    term = lambda logits: unequal_usage_minus_information(F.log_softmax(logits, 1))
    assert term(torch.zeros(8, k)).item() == pytest.approx(0.0, abs=1e-6)  # the collapse earns nothing
    assert term(one_each).item() == pytest.approx(-math.log(k), rel=1e-5)
    assert term(in_cluster_0).item() == pytest.approx(math.log(k), rel=1e-5)
    leaning = (in_cluster_0 / 20).requires_grad_()  # leaning towards cluster 0, not yet saturated
    term(leaning).backward()
    assert float(leaning.grad[:, 0].min()) > 1e-4  # gradient descent lowers the crowded cluster


def test_info_weight_adds_its_term_to_the_categorical_loss():
    x, mask = spectrograms()
    k, weight = 3, 100.0
    losses = {}
    for w in (0.0, weight):
        model = fresh("cat_uvac", k=k)
        torch.manual_seed(1)
        with torch.no_grad():
            losses[w] = model.loss(torch.from_numpy(x), torch.from_numpy(mask), info_weight=w)
    assert float(losses[0.0]["recon"]) == float(losses[weight]["recon"])  # same draws
    extra = weight * unequal_usage_minus_information(losses[0.0]["log_probs"])
    assert float(losses[weight]["loss"]) == pytest.approx(float(losses[0.0]["loss"] + extra), rel=1e-5)
    history = train(fresh("cat_uvac", k=k), x, mask, quick(epochs=1, info_weight=weight))
    plain = train(fresh("cat_uvac", k=k), x, mask, quick(epochs=1))
    assert without_time(history) != without_time(plain)


def test_views_shift_time_by_whole_frames_and_stretch_frequency_about_the_lowest_bin(monkeypatch):
    x = torch.zeros(2, 1, 40, 30)
    x[:, 0, 10, 12] = 1.0  # one lit bin: frequency 10, frame 12
    assert torch.allclose(shifted_and_warped(x, 0.0, 0), x, atol=1e-5)
    torch.manual_seed(0)
    shifted = shifted_and_warped(x, 0.0, 5)
    for clip in shifted[:, 0]:
        f, t = divmod(int(clip.argmax()), 30)
        assert f == 10 and abs(t - 12) <= 5 and float(clip.max()) == pytest.approx(1.0, abs=1e-5)
        assert float(clip.sum()) == pytest.approx(1.0, abs=1e-5)  # moved whole, not smeared
    monkeypatch.setattr(torch, "rand", lambda b, device=None: torch.ones(b))  # the largest stretch
    stretched = shifted_and_warped(x, 0.2, 0)[0, 0]
    assert int(stretched[:, 12].argmax()) == 8  # view bin i reads input bin (i + 0.5) * 1.2 - 0.5: 10 -> 8.25


def test_consistency_weight_adds_the_views_disagreement_to_the_categorical_loss():
    x, mask = spectrograms()
    log_q = F.log_softmax(torch.randn(16, 3), 1)
    assert consistency_kl(log_q, log_q).item() == pytest.approx(0.0, abs=1e-6)
    assert consistency_kl(log_q, F.log_softmax(torch.randn(16, 3), 1)).item() > 0
    outs, grads = {}, {}
    for w in (0.0, 10.0):
        model = fresh("cat_uvac")
        torch.manual_seed(1)  # the same Gumbel and z draws; the view's draws come after them
        outs[w] = model.loss(torch.from_numpy(x), torch.from_numpy(mask), consistency_weight=w)
        outs[w]["loss"].backward()
        grads[w] = torch.cat([p.grad.flatten() for p in model.h.parameters()])
    assert "consistency" not in outs[0.0] and outs[10.0]["consistency"].item() > 0
    assert outs[10.0]["loss"].item() == pytest.approx((outs[0.0]["loss"] + 10 * outs[10.0]["consistency"]).item(), rel=1e-5)
    assert not torch.allclose(grads[0.0], grads[10.0])  # the term trains the cluster encoder h
    history = train(fresh("cat_uvac"), x, mask, quick(epochs=1, consistency_weight=10.0))
    assert history[0]["consistency"] > 0
    assert without_time(history) == without_time(train(fresh("cat_uvac"), x, mask, quick(epochs=1, consistency_weight=10.0)))


def test_neighbour_disagreement_is_minus_the_log_chance_that_a_clip_and_its_neighbour_share_a_cluster():
    confident = F.log_softmax(torch.tensor([[20.0, 0.0, 0.0]]), 1)
    apart = F.log_softmax(torch.tensor([[0.0, 20.0, 0.0]]), 1)
    assert neighbour_disagreement(confident, confident).item() == pytest.approx(0.0, abs=1e-6)
    assert neighbour_disagreement(confident, apart).item() > 15  # stable where the product underflows
    log_q, log_n = F.log_softmax(torch.randn(8, 3), 1), F.log_softmax(torch.randn(8, 3), 1)
    expected = -(log_q.exp() * log_n.exp()).sum(1).log().mean()
    assert neighbour_disagreement(log_q, log_n).item() == pytest.approx(expected.item(), rel=1e-5)


def test_neighbour_weight_adds_the_neighbours_disagreement_and_trains_on_mined_neighbours(monkeypatch):
    x, mask = spectrograms()
    xt, mt = torch.from_numpy(x), torch.from_numpy(mask)
    outs = {}
    for w in (0.0, 10.0):
        torch.manual_seed(1)
        outs[w] = fresh("cat_uvac").loss(xt, mt, neighbour_weight=w, x_neighbour=xt.flip(0))
    assert "neighbours" not in outs[0.0] and outs[10.0]["neighbours"].item() > 0
    assert outs[10.0]["loss"].item() == pytest.approx((outs[0.0]["loss"] + 10 * outs[10.0]["neighbours"]).item(), rel=1e-5)
    with pytest.raises(ValueError, match="x_neighbour"):
        fresh("cat_uvac").loss(xt, mt, neighbour_weight=1.0)

    # the loop hands each clip one of its neighbour_count mined neighbours, a new draw each step
    seen, real_batch = [], training.neighbour_batch

    def spy(x_, neighbours, idx):
        xn = real_batch(x_, neighbours, idx)
        seen.append((idx.clone(), neighbours, xn))
        return xn
    monkeypatch.setattr(training, "neighbour_batch", spy)
    history = train(fresh("cat_uvac"), x, mask, quick(epochs=2, neighbour_weight=10.0, neighbour_count=3))
    assert all(row["neighbours"] > 0 for row in history)
    assert len(seen) == 4 and seen[0][1].shape == (16, 3)
    for idx, neighbours, xn in seen:
        for clip, near in zip(idx.tolist(), xn):
            assert any(torch.equal(near, xt[j]) for j in neighbours[clip].tolist()) and not torch.equal(near, xt[clip])
    monkeypatch.undo()
    assert without_time(history) == without_time(
        train(fresh("cat_uvac"), x, mask, quick(epochs=2, neighbour_weight=10.0, neighbour_count=3)))


def test_uvac_takes_the_cluster_remedies_on_its_responsibilities_at_the_latent_mean():
    """info, consistency and neighbours weigh UVAC's gamma at z = mu, what predict reads, as they weigh q(y|x)."""
    x, mask = spectrograms()
    xt, mt = torch.from_numpy(x), torch.from_numpy(mask)
    remedies = {"info_weight": 7.0, "consistency_weight": 5.0, "neighbour_weight": 3.0}
    outs = {}
    for name, settings in (("plain", {}), ("remedies", remedies)):
        torch.manual_seed(1)
        outs[name] = fresh("uvac").loss(xt, mt, **settings, x_neighbour=xt.flip(0))
    plain, with_remedies = outs["plain"], outs["remedies"]
    assert plain["recon"].item() == with_remedies["recon"].item()  # the same draws up to the remedies
    model = fresh("uvac")
    log_gamma = model.cluster_log_probs(model.encode(xt)[0])
    assert torch.allclose(with_remedies["log_probs"], log_gamma)
    neighbours = neighbour_disagreement(log_gamma, model.cluster_log_probs(model.encode(xt.flip(0))[0]))
    assert with_remedies["neighbours"].item() == pytest.approx(neighbours.item(), rel=1e-5)
    assert with_remedies["consistency"].item() > 0
    extra = (7.0 * unequal_usage_minus_information(log_gamma) + 5.0 * with_remedies["consistency"]
             + 3.0 * with_remedies["neighbours"])
    assert with_remedies["loss"].item() == pytest.approx((plain["loss"] + extra).item(), rel=1e-5)
    history = train(fresh("uvac"), x, mask, quick(epochs=2, neighbour_count=3, pretrain_epochs=1, **remedies))
    trained = [row for row in history if row["phase"] == "train"]  # the loop mined and passed the neighbours
    assert len(trained) == 2 and all(math.isfinite(row["neighbours"] + row["consistency"]) for row in trained)


def test_the_loop_mines_neighbours_in_the_configured_space_with_the_clips_mask(monkeypatch):
    x, mask = spectrograms()
    seen, real_batch = [], training.neighbour_batch
    monkeypatch.setattr(training, "neighbour_batch", lambda x_, nb, idx: seen.append(nb) or real_batch(x_, nb, idx))
    for space in NEIGHBOUR_SPACES:
        train(fresh("cat_uvac"), x, mask, quick(epochs=1, neighbour_weight=1.0, neighbour_count=3, neighbour_space=space))
        assert np.array_equal(seen[-1].numpy(), mine_neighbours(x, 3, space=space, mask=mask))
    assert not np.array_equal(seen[0].numpy(), seen[-1].numpy())  # the space matters on these clips
    train(fresh("cat_uvac"), x, mask, quick(epochs=1, neighbour_weight=1.0, neighbour_count=3, neighbour_space="pretext",
                                            pretext_epochs=2, seed=4))
    embedding = pretext_embedding(x, mask, epochs=2, seed=4)  # the encoder trained with the run's seed
    assert np.array_equal(seen[-1].numpy(), nearest_others(embedding, 3))


def test_speaker_centred_neighbours_are_the_nearest_of_other_speakers_in_the_centred_embedding(monkeypatch):
    x, mask = spectrograms()
    speakers = np.array(["a", "b"] * 8)
    seen, real_batch = [], training.neighbour_batch
    monkeypatch.setattr(training, "neighbour_batch", lambda x_, nb, idx: seen.append(nb) or real_batch(x_, nb, idx))
    cfg = quick(epochs=1, neighbour_weight=1.0, neighbour_count=3, neighbour_space="pretext", pretext_epochs=2,
                seed=4, speaker_centred=True)
    train(fresh("cat_uvac"), x, mask, cfg, speakers=speakers)
    embedding = pretext_embedding(x, mask, epochs=2, seed=4)
    centred = centre_groups(embedding, speakers)
    centred /= np.linalg.norm(centred, axis=1, keepdims=True)
    assert np.allclose(np.linalg.norm(training.pretext_points(x, mask, cfg, speakers=speakers), axis=1), 1)
    assert np.array_equal(seen[-1].numpy(), nearest_of_other_groups(centred, speakers, 3))
    assert (speakers[seen[-1].numpy()] != speakers[:, None]).all()
    # with speaker_whitening, the same neighbours are drawn from each speaker's whitened share instead
    whitened_cfg = replace(cfg, speaker_whitening=4)
    train(fresh("cat_uvac"), x, mask, whitened_cfg, speakers=speakers)
    whitened = whiten_groups(embedding, speakers, 4)
    whitened /= np.linalg.norm(whitened, axis=1, keepdims=True)
    assert np.allclose(training.pretext_points(x, mask, whitened_cfg, speakers=speakers), whitened, atol=1e-6)
    assert np.array_equal(seen[-1].numpy(), nearest_of_other_groups(whitened, speakers, 3))
    with pytest.raises(ValueError, match="speaker_centred needs the speaker of each of the 16 training clips; got none"):
        train(fresh("cat_uvac"), x, mask, cfg)
    with pytest.raises(ValueError, match="16 training clips; got 16, 1 missing"):
        train(fresh("cat_uvac"), x, mask, cfg, speakers=np.array(["a", "b"] * 7 + ["a", None], object))
    with pytest.raises(ValueError, match="the 8 clips outside the largest speaker's 8, got neighbour_count=9"):
        train(fresh("cat_uvac"), x, mask, quick(neighbour_weight=1.0, neighbour_count=9, neighbour_space="pretext",
                                                speaker_centred=True), speakers=speakers)
    # called directly (benchmarks/merge_clusters.py), the same refusals come before the encoder's epochs
    monkeypatch.setattr(training.pretext, "pretext_embedding", lambda *a, **k: pytest.fail("the encoder ran first"))
    with pytest.raises(ValueError, match="speaker_centred needs the speaker of each of the 16 training clips; got none"):
        training.pretext_points(x, mask, cfg)
    with pytest.raises(ValueError, match="the 8 clips outside the largest speaker's 8, got neighbour_count=9"):
        training.training_neighbours(x, mask, quick(neighbour_count=9, neighbour_space="pretext", speaker_centred=True),
                                     speakers=speakers)
    with pytest.raises(ValueError, match="between 1 and min\\(clips, embedding width\\) = 16 principal axes, got 17"):
        training.pretext_points(x, mask, replace(cfg, speaker_whitening=17), speakers=speakers)
    with pytest.raises(ValueError, match="1 <= neighbour_count < the 16 training clips, got neighbour_count=16"):
        training.training_neighbours(x, mask, quick(neighbour_count=16, neighbour_space="pretext"))


def test_the_cluster_initialisation_teaches_q_y_the_kmeans_clusters_of_the_pretext_embedding():
    x, mask = spectrograms(n=48)
    cfg = quick(epochs=1, neighbour_space="pretext", pretext_epochs=2, cluster_init_epochs=30, lr_start=3e-3, seed=1)
    model, perm_gen = fresh("cat_uvac"), torch.Generator().manual_seed(1)
    embedding = training.pretext_points(x, mask, cfg)
    history = training.init_clusters(model, torch.from_numpy(x), torch.from_numpy(mask), cfg, torch.device("cpu"),
                                     perm_gen, embedding)
    assert [row["phase"] for row in history] == ["cluster_init"] * 30
    assert history[-1]["loss"] < 0.25 * history[0]["loss"]
    taught = KMeans(3, n_init=10, random_state=1).fit_predict(embedding)
    _, log_q = training.infer(model, torch.from_numpy(x))
    assert (log_q.argmax(1) == taught).mean() >= 0.9  # the clusters themselves, not a relabelling of them
    uvac = fresh("uvac")  # the responsibilities of UVAC's latent means learn them too
    training.init_clusters(uvac, torch.from_numpy(x), torch.from_numpy(mask), cfg, torch.device("cpu"), perm_gen, embedding)
    assert (training.infer(uvac, torch.from_numpy(x))[1].argmax(1) == taught).mean() >= 0.9
    # in the loop: the initialisation's epochs come first, then the full loss's, from one seed
    run = train(fresh("cat_uvac"), x, mask, quick(epochs=2, neighbour_space="pretext", pretext_epochs=2,
                                                  cluster_init_epochs=2, seed=1))
    assert [row["phase"] for row in run] == ["cluster_init", "cluster_init", "train", "train"]
    again = train(fresh("cat_uvac"), x, mask, quick(epochs=2, neighbour_space="pretext", pretext_epochs=2,
                                                    cluster_init_epochs=2, seed=1))
    assert without_time(run) == without_time(again)


def test_init_lr_end_decays_the_rate_of_the_cluster_initialisation():
    x, mask = spectrograms(n=48)
    settings = dict(epochs=1, neighbour_space="pretext", pretext_epochs=2, cluster_init_epochs=3, seed=1,
                    warm_start_lr=4e-3, lr_start=1e-4, lr_end=1e-4)
    decayed = train(fresh("cat_uvac"), x, mask, quick(init_lr_end=1e-3, **settings))
    assert [(r["phase"], r["lr"]) for r in decayed] == [("cluster_init", 4e-3), ("cluster_init", pytest.approx(2e-3)),
                                                        ("cluster_init", pytest.approx(1e-3)), ("train", 1e-4)]
    constant = train(fresh("cat_uvac"), x, mask, quick(**settings))
    assert [r["lr"] for r in constant[:3]] == [4e-3] * 3
    assert without_time(decayed[:1]) == without_time(constant[:1])  # the same first epoch, at the same rate
    assert without_time(decayed[1:3]) != without_time(constant[1:3])  # then the optimizer runs at the lower rate
    with pytest.raises(ValueError, match="init_lr_end is the rate the cluster initialisation decays to: it needs "
                                         "cluster_init_epochs >= 1, got 0.001 without it"):
        TrainConfig(init_lr_end=1e-3)
    with pytest.raises(ValueError, match="init_lr_end must be >= 0, got -1"):
        TrainConfig(init_lr_end=-1, neighbour_space="pretext", cluster_init_epochs=1)


def test_the_pretext_settings_are_refused_where_they_do_not_apply():
    x, mask = spectrograms()
    with pytest.raises(ValueError, match="cluster_init_epochs applies to a cluster posterior.*\\(model: linear_vae\\)"):
        train(MODELS["linear_vae"]((26,), 3, 4), np.zeros((16, 26), np.float32), None,
              quick(neighbour_space="pretext", cluster_init_epochs=1))
    for setting in ({"speaker_centred": True}, {"cluster_init_epochs": 2}):
        with pytest.raises(ValueError, match="need neighbour_space 'pretext', got 'log_cmn'"):
            TrainConfig(neighbour_space="log_cmn", **setting)
    with pytest.raises(ValueError, match="cluster_init_epochs must be >= 0, got -1"):
        TrainConfig(cluster_init_epochs=-1)
    with pytest.raises(ValueError, match="speaker_whitening acts on the speaker-centred embedding: it needs "
                                         "speaker_centred, got speaker_whitening=4 without it"):
        TrainConfig(neighbour_space="pretext", speaker_whitening=4)
    with pytest.raises(ValueError, match="speaker_whitening must be >= 0, got -1"):
        TrainConfig(neighbour_space="pretext", speaker_centred=True, speaker_whitening=-1)


def test_neighbour_mining_keeps_to_the_threads_the_job_declared(monkeypatch):
    """Several jobs on one machine each mine with PCA; BLAS would otherwise take every core in each."""
    x, mask = spectrograms()
    blas_threads, real_mine = [], training.mine_neighbours

    def mine(*args, **kw):
        blas_threads.append({pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"})
        return real_mine(*args, **kw)

    monkeypatch.setattr(training, "mine_neighbours", mine)
    train(fresh("cat_uvac"), x, mask, quick(epochs=1, neighbour_weight=1.0, neighbour_count=3, threads=1))
    assert blas_threads == [{1}]


def test_remedies_are_refused_where_they_do_not_apply():
    x, mask = spectrograms()
    with pytest.raises(ValueError, match="only uvac"):
        train(fresh("cat_uvac"), x, mask, quick(pretrain_epochs=1))
    with pytest.raises(ValueError, match="free_bits applies to .* cat_uvac"):
        train(fresh("uvac"), x, mask, quick(free_bits=0.5))
    for remedy in ("free_bits", "info_weight", "consistency_weight", "neighbour_weight"):
        with pytest.raises(ValueError, match=f"{remedy} applies to .* \\(model: linear_vae\\)"):
            train(MODELS["linear_vae"]((26,), 3, 4), np.zeros((16, 26), np.float32), None, quick(**{remedy: 0.5}))
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="consistency_warp"):
        TrainConfig(consistency_warp=1.0)
    with pytest.raises(ValueError, match="neighbour_count"):
        TrainConfig(neighbour_count=0)
    with pytest.raises(ValueError, match="16 training clips, got neighbour_count=16"):
        train(fresh("cat_uvac"), x, mask, quick(neighbour_weight=1.0, neighbour_count=16))
    with pytest.raises(ValueError, match="16 training clips, got neighbour_count=16"):
        train(fresh("cat_uvac"), x, mask, quick(neighbour_weight=1.0, neighbour_count=16, neighbour_space="pretext"))
    with pytest.raises(ValueError, match="pretext_epochs must be >= 1, got 0"):
        TrainConfig(pretext_epochs=0)
    with pytest.raises(ValueError, match="neighbour_space must be one of input, log_cmn, log_cmn_stretched, log_cmn_loud_stretched, pretext, got 'log'"):
        TrainConfig(neighbour_space="log")


# --- estimators --------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [UVAC, CategoricalUVAC])
def test_estimator_round_trip(cls, tmp_path):
    x, mask = spectrograms()
    est = cls(n_clusters=3, latent_dim=4, epochs=1, batch_size=8, progress=False, threads=1).fit(x, mask)
    labels, proba, z = est.predict(x), est.predict_proba(x), est.transform(x)
    assert labels.shape == (16,) and set(labels) <= {0, 1, 2}
    assert proba.shape == (16, 3) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert z.shape == (16, 4)
    assert np.array_equal(labels, proba.argmax(1))

    est.save(tmp_path / "model.pt")
    loaded = cls.load(tmp_path / "model.pt", n_clusters=3, input_shape=SHAPE)
    assert np.array_equal(loaded.predict(x), labels)
    assert np.array_equal(loaded.transform(x), z)
    assert loaded.history_ == est.history_

    other = CategoricalUVAC if cls is UVAC else UVAC
    with pytest.raises(ValueError, match="model kind"):
        other.load(tmp_path / "model.pt")
    with pytest.raises(ValueError, match="number of clusters"):
        cls.load(tmp_path / "model.pt", n_clusters=5)
    with pytest.raises(ValueError, match="input shape"):
        cls.load(tmp_path / "model.pt", input_shape=(1, 16, 64))
    with pytest.raises(ValueError, match="fitted on clips of shape"):
        loaded.predict(np.zeros((2, 1, 16, 64), np.float32))


def test_categorical_paper_settings_are_the_default():
    assert (CategoricalUVAC(10).config.lr_start, CategoricalUVAC(10).config.lr_end) == (5e-4, 5e-5)
    assert (UVAC(10).config.lr_start, UVAC(10).config.epochs, UVAC(10).latent_dim) == (5e-3, 500, 10)
    assert (LinearVAE().n_clusters, LinearVAE().latent_dim, LinearVAE().config.epochs) == (5, 4, 20)


def test_linear_vae_estimator(tmp_path):
    rng = np.random.default_rng(0)
    centres = 3 * rng.standard_normal((5, 26))
    x = (centres[rng.integers(0, 5, 200)] + 0.3 * rng.standard_normal((200, 26))).astype(np.float32)
    est = LinearVAE(epochs=5, progress=False, threads=1).fit(x)
    labels = est.predict(x)
    assert set(labels) == set(range(5))
    assert not hasattr(est, "predict_proba")
    # runs.train_run hands every estimator the speakers keyword; a linear VAE takes it and needs none
    assert np.array_equal(LinearVAE(epochs=5, progress=False, threads=1).fit(x, speakers=None).predict(x), labels)
    est.save(tmp_path / "lin.pt")
    assert np.array_equal(LinearVAE.load(tmp_path / "lin.pt").predict(x), labels)
    with pytest.raises(ValueError, match="model kind"):
        UVAC.load(tmp_path / "lin.pt")


def test_fit_resumes_a_finished_run_instead_of_training_again(tmp_path):
    x, mask = spectrograms()
    settings = {"latent_dim": 4, "epochs": 2, "batch_size": 8, "progress": False, "threads": 1}
    first = UVAC(3, **settings).fit(x, mask, run_dir=tmp_path)
    again = UVAC(3, **settings).fit(x, mask, run_dir=tmp_path)
    assert np.array_equal(first.transform(x), again.transform(x))
    assert again.history_ == first.history_


def test_estimators_validate_their_input():
    est = UVAC(3, latent_dim=4, epochs=1, progress=False)
    x, mask = spectrograms()
    with pytest.raises(ValueError, match="NaN"):
        est.fit(np.where(np.arange(x.size).reshape(x.shape) == 7, np.nan, x))
    with pytest.raises(ValueError, match=r"\(N, 1, frequency bins, frames\)"):
        est.fit(x[:, 0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        est.fit(x * 2)
    with pytest.raises(ValueError, match="mask must have shape"):
        est.fit(x, mask[:, :10])
    with pytest.raises(ValueError, match="only 0"):
        est.fit(x, mask * 2)
    with pytest.raises(RuntimeError, match="not fitted"):
        est.predict(x)
    with pytest.raises(TypeError, match="unknown training setting"):
        UVAC(3, learning_rate=1.0)


def test_the_speakers_of_a_run_come_from_the_manifest_in_the_clips_order_and_a_missing_one_is_refused(tmp_path):
    pd.DataFrame({"clip_id": ["c1", "c2", "c3"], "speaker": ["jo", "al", None]}).to_parquet(tmp_path / "manifest.parquet")
    assert clip_speakers(tmp_path, np.array(["c2", "c1"])).tolist() == ["al", "jo"]
    with pytest.raises(ValueError, match=r"manifest.parquet: speaker_centred needs the speaker of every training clip; "
                                         r"1 of 2 have none \(e.g. 'c3'\)"):
        clip_speakers(tmp_path, np.array(["c1", "c3"]))
