"""Reliability (issue 5): checkpoints and saved models are opened safely.

- a model.pt of another model kind, another K or another input shape is refused by the estimator
  `load` with a message naming the file, what was expected and what was found;
- a tampered file (a pickle whose __reduce__ runs a command) is refused by torch.load(weights_only=True)
  in every loader of ours, and its payload never runs;
- a truncated or otherwise damaged file is refused with an error naming the file.

Models here are built, not trained (save() needs weights, not a fit), so every test takes milliseconds.
"""
from __future__ import annotations

import builtins
import os
import pickle
import shlex

import numpy as np
import pytest
import torch

from uvac import cluster
from uvac.estimators import UVAC, CategoricalUVAC, LinearVAE
from uvac.models import MODELS
from uvac.training import TrainConfig, train

SHAPE = (1, 16, 32)


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def saved(cls, path, k=3, shape=SHAPE, latent_dim=4):
    """A model.pt as save() writes it, for an untrained model of this class."""
    est = cls(k, latent_dim)
    torch.manual_seed(0)
    est.model_ = MODELS[cls.kind](shape, k, latent_dim)
    est.history_ = [{"epoch": 1, "loss": 1.0}]
    if cls is LinearVAE:
        est.cluster_centers_ = np.zeros((k, latent_dim), np.float32)
    est.save(path)
    return path


def spectrograms(n=16):
    x = np.random.default_rng(0).random((n, *SHAPE), dtype=np.float32)
    return x, np.ones((n, SHAPE[2]), np.float32)


def quick(**kw):
    return TrainConfig(**{"epochs": 1, "batch_size": 8, "progress": False, "threads": 1, **kw})


# --- another model kind, K or input shape ------------------------------------------------------

@pytest.mark.parametrize("made_by, opened_by, kw, label, found, expected", [
    (UVAC, CategoricalUVAC, {}, "model kind", "'uvac'", "'cat_uvac'"),
    (CategoricalUVAC, UVAC, {}, "model kind", "'cat_uvac'", "'uvac'"),
    (UVAC, LinearVAE, {}, "model kind", "'uvac'", "'linear_vae'"),
    (LinearVAE, UVAC, {}, "model kind", "'linear_vae'", "'uvac'"),
    (UVAC, UVAC, {"n_clusters": 5}, "number of clusters K", "3", "5"),
    (CategoricalUVAC, CategoricalUVAC, {"n_clusters": 10}, "number of clusters K", "3", "10"),
    (UVAC, UVAC, {"input_shape": (1, 16, 64)}, "input shape", "[1, 16, 32]", "[1, 16, 64]"),
    (CategoricalUVAC, CategoricalUVAC, {"input_shape": (1, 128, 99)}, "input shape", "[1, 16, 32]", "[1, 128, 99]"),
])
def test_load_refuses_another_kind_k_or_shape_naming_file_expected_and_found(
        tmp_path, made_by, opened_by, kw, label, found, expected):
    shape = (26,) if made_by is LinearVAE else SHAPE
    path = saved(made_by, tmp_path / "model.pt", shape=shape)
    with pytest.raises(ValueError) as err:
        opened_by.load(path, **kw)
    message = str(err.value)
    assert str(path) in message
    assert f"{label} {found}, but {expected} was expected" in message
    # and the same file opens with what it really holds
    again = made_by.load(path, n_clusters=3, input_shape=shape)
    assert (again.n_clusters, list(again.model_.input_shape)) == (3, list(shape))


def test_resume_refuses_a_checkpoint_of_another_k_naming_it(tmp_path):
    x, mask = spectrograms()
    train(MODELS["uvac"](SHAPE, 3, 4), x, mask, quick(), run_dir=tmp_path)
    with pytest.raises(ValueError) as err:
        train(MODELS["uvac"](SHAPE, 4, 4), x, mask, quick(), run_dir=tmp_path)
    assert str(tmp_path / "checkpoint.pt") in str(err.value)
    assert "number of clusters K 3, but 4 was expected" in str(err.value)


# --- tampered files: the payload must never run ----------------------------------------------------

class ShellPayload:
    """Unpickling this calls os.system: what a hostile model.pt from the internet would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(self.marker)}",)


class ExecPayload(ShellPayload):
    def __reduce__(self):
        return builtins.exec, (f"open({self.marker!r}, 'w').write('pwned')",)


def tampered(path, payload, fmt):
    """A checkpoint-shaped file with the payload where the weights should be, in torch's zip
    format or as a legacy plain pickle (torch.load reads both)."""
    state = {"format": 1, "meta": {"kind": "uvac", "n_clusters": 3, "latent_dim": 4, "input_shape": list(SHAPE)},
             "model": payload, "config": {}, "history": []}
    if fmt == "zip":
        torch.save(state, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(state, f, protocol=2)
    return path


def _vae_load(cls):
    return lambda path: cls.load(path)


def _resume(path):
    """train() resuming from run_dir/checkpoint.pt (the tampered file)."""
    x, mask = spectrograms()
    train(MODELS["uvac"](SHAPE, 3, 4), x, mask, quick(), run_dir=path.parent)


LOADERS = {"UVAC.load": _vae_load(UVAC), "CategoricalUVAC.load": _vae_load(CategoricalUVAC),
           "LinearVAE.load": _vae_load(LinearVAE), "KMeansClusters.load": cluster.KMeansClusters.load,
           "cluster.model_kind": cluster.model_kind, "train (resume)": _resume}


@pytest.mark.parametrize("fmt", ["zip", "legacy pickle"])
@pytest.mark.parametrize("payload", [ShellPayload, ExecPayload])
def test_the_tampered_files_are_live(tmp_path, payload, fmt):
    """Control: opened the unsafe way, these files do run their payload (so the refusals below mean something)."""
    marker = tmp_path / "pwned"
    path = tampered(tmp_path / "evil.pt", payload(marker), fmt)
    try:
        torch.load(path, weights_only=False)
    except RuntimeError:  # a plain pickle: torch reads it as its magic number, running it, then gives up
        assert fmt == "legacy pickle"
    assert marker.exists()


@pytest.mark.parametrize("loader", list(LOADERS))
@pytest.mark.parametrize("fmt", ["zip", "legacy pickle"])
@pytest.mark.parametrize("payload", [ShellPayload, ExecPayload])
def test_a_tampered_checkpoint_is_refused_and_its_payload_never_runs(tmp_path, loader, fmt, payload):
    marker = tmp_path / "pwned"
    path = tampered(tmp_path / ("checkpoint.pt" if loader == "train (resume)" else "model.pt"), payload(marker), fmt)
    with pytest.raises((pickle.UnpicklingError, ValueError)) as err:
        LOADERS[loader](path)
    assert not marker.exists(), f"{loader} ran the payload of {path}"
    chain = f"{err.value} {err.value.__cause__ or ''} {err.value.__context__ or ''}"
    assert "Weights only load failed" in chain  # refused by torch.load(weights_only=True), not by luck


# --- truncated and damaged files ------------------------------------------------------------------

def test_cluster_model_kind_names_a_truncated_file(tmp_path):
    path = saved(UVAC, tmp_path / "model.pt")
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(ValueError, match=f"--model {path}: not a model saved by uvac"):
        cluster.model_kind(path)


def _damage(path, how):
    data = path.read_bytes()
    if how == "truncated to half":
        path.write_bytes(data[:len(data) // 2])
    elif how == "truncated to 100 bytes":
        path.write_bytes(data[:100])
    elif how == "zero bytes":
        path.write_bytes(b"")
    elif how == "weights of another K than its metadata":
        state = torch.load(path, weights_only=True)
        other = MODELS["uvac"](SHAPE, 5, 4).state_dict()
        torch.save({**state, "model": other}, path)
    elif how == "no weights":
        state = torch.load(path, weights_only=True)
        torch.save({k: v for k, v in state.items() if k != "model"}, path)


DAMAGE = ["truncated to half", "truncated to 100 bytes", "zero bytes",
          "weights of another K than its metadata", "no weights"]


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_model_file_is_refused_naming_it(tmp_path, how):
    path = _damage(saved(UVAC, tmp_path / "model.pt"), how) or tmp_path / "model.pt"
    with pytest.raises(ValueError) as err:
        UVAC.load(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("how", ["truncated to half", "zero bytes"])
def test_a_damaged_training_checkpoint_is_refused_naming_it(tmp_path, how):
    x, mask = spectrograms()
    train(MODELS["uvac"](SHAPE, 3, 4), x, mask, quick(), run_dir=tmp_path)
    path = tmp_path / "checkpoint.pt"
    _damage(path, how)
    with pytest.raises(ValueError) as err:
        train(MODELS["uvac"](SHAPE, 3, 4), x, mask, quick(), run_dir=tmp_path)
    assert str(path) in str(err.value)


def test_kmeans_load_refuses_a_vae_model_naming_it(tmp_path):
    path = saved(UVAC, tmp_path / "model.pt")
    with pytest.raises(ValueError) as err:
        cluster.KMeansClusters.load(path)
    assert str(path) in str(err.value) and "kind" in str(err.value)
