"""The training loop on a CUDA GPU: bfloat16 autocast really runs and learns, compiled steps (CUDA
graphs) compute the eager loss, learn, and do not recompile each epoch, weights and results move
between GPU and CPU, and an interrupted GPU run resumes from its checkpoint.

Skipped where torch sees no GPU (as on CI). On a GPU machine: `pytest tests/test_cuda.py`.
"""
import math

import numpy as np
import pytest
import torch
import torch._dynamo.utils
import torch._inductor.config

from test_training import fresh, interrupt_at, quick, spectrograms, without_time
from uvac.estimators import UVAC, CategoricalUVAC
from uvac.training import infer, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

NEIGHBOURS = {"neighbour_weight": 5.0, "neighbour_count": 3}


def conv_output_dtypes(model, x, mask, cfg) -> set:
    """The dtypes the first convolution produced while `train` ran with cfg."""
    seen = set()
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    handle = conv.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype))
    try:
        train(model, x, mask, cfg)
    finally:
        handle.remove()
    return seen


@pytest.mark.parametrize("amp, dtype", [(True, torch.bfloat16), (False, torch.float32)])
def test_amp_switches_the_convolutions_to_bfloat16_on_cuda(amp, dtype):
    x, mask = spectrograms()
    assert conv_output_dtypes(fresh("uvac"), x, mask, quick(epochs=1, device="cuda", amp=amp)) == {dtype}


@pytest.mark.parametrize("kind, settings", [("uvac", {}), ("cat_uvac", NEIGHBOURS)])
def test_bfloat16_training_on_cuda_learns_and_its_weights_infer_alike_on_cpu(kind, settings):
    x, mask = spectrograms(64)
    model = fresh(kind)
    history = train(model, x, mask, quick(epochs=30, lr_start=5e-3, lr_end=5e-3, device="cuda", amp=True, **settings))
    assert next(model.parameters()).is_cuda
    assert all(math.isfinite(row["loss"]) for row in history)
    assert history[-1]["recon"] < 0.8 * history[0]["recon"], (history[0]["recon"], history[-1]["recon"])

    mu_gpu, log_p_gpu = infer(model, x)
    mu_cpu, log_p_cpu = infer(model.cpu(), x)
    # float32 on both; cuDNN may use TF32 convolutions, hence a tolerance rather than equality
    assert np.allclose(mu_gpu, mu_cpu, atol=2e-2), np.abs(mu_gpu - mu_cpu).max()
    assert np.allclose(np.exp(log_p_gpu), np.exp(log_p_cpu), atol=2e-2)


def compiled_training(kind, x, mask, cfg):
    """The history of a compiled run, and how many graphs Dynamo compiled for it."""
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    history = train(fresh(kind), x, mask, cfg)
    return history, torch._dynamo.utils.counters["stats"]["unique_graphs"]


@pytest.mark.parametrize("kind, settings", [("uvac", {"pretrain_epochs": 2}), ("cat_uvac", NEIGHBOURS)])
def test_compiled_cuda_training_computes_the_eager_loss_learns_and_compiles_once(kind, settings, monkeypatch):
    x, mask = spectrograms(60)  # 60 clips in batches of 8: a smaller last batch each epoch
    cfg = dict(lr_start=5e-3, lr_end=5e-3, kl_warmup_epochs=3, device="cuda", amp=True, **settings)
    compiled, graphs = compiled_training(kind, x, mask, quick(epochs=6, compile=True, **cfg))
    _, graphs_in_two_epochs = compiled_training(kind, x, mask, quick(epochs=2, compile=True, **cfg))
    assert all(math.isfinite(row["loss"]) for row in compiled)
    assert compiled[-1]["recon"] < 0.8 * compiled[0]["recon"]
    # tau and the KL weight change every epoch, and do not recompile: later epochs only replay
    assert graphs == graphs_in_two_epochs > 0

    # one batch of all 60 clips: the first epoch's loss is that of the initial weights, and with
    # the eager random streams the compiled step computes the eager loss, up to fused rounding
    monkeypatch.setattr(torch._inductor.config, "fallback_random", True)
    one_batch = dict(cfg, batch_size=64, epochs=1, pretrain_epochs=0)
    eager = train(fresh(kind), x, mask, quick(**one_batch))
    same_draws, _ = compiled_training(kind, x, mask, quick(**one_batch, compile=True))
    assert same_draws[0]["loss"] == pytest.approx(eager[0]["loss"], rel=1e-2)


@pytest.mark.parametrize("kind, settings", [("uvac", {}), ("cat_uvac", NEIGHBOURS)])
def test_an_interrupted_cuda_run_resumes_from_its_checkpoint(kind, settings, tmp_path, monkeypatch):
    x, mask = spectrograms()
    cfg = quick(epochs=4, checkpoint_every=2, device="cuda", **settings)
    with monkeypatch.context() as m:
        interrupt_at(m, "epoch 3/")
        with pytest.raises(KeyboardInterrupt):
            train(fresh(kind), x, mask, cfg, run_dir=tmp_path)
    before = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert before["epoch"] == 2

    history = train(fresh(kind, seed=99), x, mask, cfg, run_dir=tmp_path)
    # the first two epochs are the checkpoint's own record, not a rerun (CUDA kernels need not be
    # bit-exact, so a rerun would show); the last two continue from its weights
    assert without_time(history[:2]) == without_time(before["history"])
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    assert all(math.isfinite(row["loss"]) for row in history)


@pytest.mark.parametrize("cls", [UVAC, CategoricalUVAC])
def test_an_estimator_fitted_on_cuda_saves_a_file_that_opens_anywhere(cls, tmp_path):
    x, mask = spectrograms()
    est = cls(n_clusters=3, latent_dim=4, epochs=2, batch_size=8, progress=False, device="cuda").fit(x, mask)
    est.save(tmp_path / "model.pt")
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    assert all(t.device.type == "cpu" for t in saved["model"].values())  # opens on a machine without a GPU

    loaded = cls.load(tmp_path / "model.pt", n_clusters=3)
    assert next(loaded.model_.parameters()).is_cuda  # its settings say cuda
    assert np.array_equal(loaded.predict(x), est.predict(x))
