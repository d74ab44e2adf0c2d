"""scikit-learn-style faces of the three models: fit / predict / transform / predict_proba / save / load.

    est = UVAC(n_clusters=10, epochs=500).fit(x_train, mask_train, run_dir="results/runs/...")
    labels = est.predict(x_test)         # cluster ids
    z = est.transform(x_test)            # latent means
    est.save("model.pt"); est = UVAC.load("model.pt", n_clusters=10, input_shape=(1, 128, 99))

Inputs are numpy arrays or feature-cache rows (`uvac.clip_store.NpzRows`, read a batch at a
time), validated here with messages that say what was expected. Keyword
arguments beyond n_clusters and latent_dim are TrainConfig fields; each class starts from its
paper's settings. Saved files are weights-only checkpoints (`torch.load(weights_only=True)`).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
from sklearn.cluster import KMeans

from uvac.clip_store import NpzRows, chunks
from uvac.io import atomic_path
from uvac.models import MODELS
from uvac.training import FORMAT, TrainConfig, check_meta, config_dict, infer, load_state, resolve_device, train

INFER_BATCH = 256


class _VAEEstimator:
    kind: str = ""
    paper_settings: dict = {}

    def __init__(self, n_clusters: int, latent_dim: int = 10, **train_cfg):
        if int(n_clusters) < 1 or int(latent_dim) < 1:
            raise ValueError(f"n_clusters and latent_dim must be >= 1, got {n_clusters} and {latent_dim}")
        self.n_clusters, self.latent_dim = int(n_clusters), int(latent_dim)
        unknown = sorted(set(train_cfg) - {f.name for f in dataclasses.fields(TrainConfig)})
        if unknown:
            raise TypeError(f"unknown training setting(s) {unknown}; see uvac.training.TrainConfig")
        self.config = TrainConfig(**{**self.paper_settings, **train_cfg})

    # --- fitting ---------------------------------------------------------------------------

    def fit(self, X, mask=None, run_dir=None, speakers=None, pretext_embedding=None):
        """Train on X (and its frame mask); with run_dir, checkpoints go there and a run resumes.
        speakers: each clip's speaker, for the setting speaker_centred; pretext_embedding: X's pretext
        embedding where it was made already (uvac.training.train)."""
        X, mask = self._check(X, mask)
        torch.manual_seed(self.config.seed)
        self.model_ = MODELS[self.kind](X.shape[1:], self.n_clusters, self.latent_dim)
        self.history_ = train(self.model_, X, mask, self.config, run_dir, speakers=speakers,
                              pretext_embedding=pretext_embedding)
        return self

    def transform(self, X) -> np.ndarray:
        """Latent means mu of q(z|x), shape (N, latent_dim)."""
        return self._infer(X)[0]

    # --- persistence -------------------------------------------------------------------------

    def save(self, path) -> None:
        """Weights-only file: model weights, metadata (kind, K, d, input shape), settings and history."""
        state = {"format": FORMAT, "meta": self._model().metadata(),
                 "model": {k: v.cpu() for k, v in self.model_.state_dict().items()},
                 "config": config_dict(self.config), "history": self.history_, **self._extra_state()}
        with atomic_path(path) as tmp:
            torch.save(state, tmp)

    @classmethod
    def load(cls, path, n_clusters: int | None = None, input_shape=None):
        """Open a file from save() or a training checkpoint; refuse one made for another model
        kind, or (when given) another number of clusters or input shape."""
        state = load_state(path, "cpu", ("meta", "model", "config", "history"))
        expected = {"kind": cls.kind}
        if n_clusters is not None:
            expected["n_clusters"] = int(n_clusters)
        if input_shape is not None:
            expected["input_shape"] = [int(s) for s in input_shape]
        check_meta(state["meta"], expected, path)
        meta = state["meta"]
        est = cls(meta["n_clusters"], meta["latent_dim"], **state["config"])
        est.model_ = MODELS[cls.kind](meta["input_shape"], meta["n_clusters"], meta["latent_dim"])
        try:
            est.model_.load_state_dict(state["model"])
        except RuntimeError as exc:
            raise ValueError(f"{path}: its weights do not fit a {cls.kind} of {meta} ({exc})") from None
        est.model_.to(resolve_device(est.config.device))
        est.history_ = state["history"]
        est._load_extra_state(state, path)
        return est

    def _extra_state(self) -> dict:
        return {}

    def _load_extra_state(self, state, path) -> None:
        pass

    # --- helpers -------------------------------------------------------------------------------

    def _model(self):
        if not hasattr(self, "model_"):
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet; call fit(X) or load(path) first")
        return self.model_

    def _infer(self, X):
        model = self._model()
        X, _ = self._check(X, None, shape=model.input_shape)
        return infer(model, X, INFER_BATCH)

    def _check(self, X, mask, shape=None):
        """Validate at the boundary: dimensions, finiteness, value range, and the mask's shape and values.

        A feature cache (NpzRows) is checked block by block and stays on disk."""
        if not isinstance(X, NpzRows):
            X = np.asarray(X, dtype=np.float32)
        ndim = 2 if self.kind == "linear_vae" else 4
        what = "(N, features)" if ndim == 2 else "(N, 1, frequency bins, frames)"
        if X.ndim != ndim or len(X) == 0:
            raise ValueError(f"{type(self).__name__} expects a non-empty array {what}, got shape {X.shape}")
        if shape is not None and tuple(X.shape[1:]) != tuple(shape):
            raise ValueError(f"this model was fitted on clips of shape {tuple(shape)}, got {X.shape[1:]}")
        lo, hi = np.inf, -np.inf
        for block in chunks(X):
            if not np.isfinite(block.sum(dtype=np.float64)):
                raise ValueError("X contains NaN or infinite values")
            lo, hi = min(lo, block.min()), max(hi, block.max())
        if self.config.recon == "bce" and ndim == 4 and (lo < 0 or hi > 1):
            raise ValueError(f"recon='bce' needs spectrograms scaled into [0, 1]; X spans [{lo}, {hi}]")
        if mask is not None:
            if ndim == 2:
                raise ValueError("feature vectors take no frame mask; pass mask=None")
            mask = np.asarray(mask)
            if mask.shape != (X.shape[0], X.shape[3]):
                raise ValueError(f"mask must have shape (N, frames) = {(X.shape[0], X.shape[3])}, got {mask.shape}")
            if not np.isin(mask, (0, 1)).all():
                raise ValueError("mask must hold only 0 (padding) and 1 (audio)")
        return X, mask


class _ClusterPosterior:
    """predict / predict_proba from the model's own cluster posterior."""

    def predict(self, X) -> np.ndarray:
        return self.predict_proba(X).argmax(1)

    def predict_proba(self, X) -> np.ndarray:
        return np.exp(self._infer(X)[1])


class UVAC(_ClusterPosterior, _VAEEstimator):
    """UVAC with a Gaussian-mixture prior; predict_proba = responsibilities gamma at z = mu."""

    kind = "uvac"


class CategoricalUVAC(_ClusterPosterior, _VAEEstimator):
    """Categorical UVAC; predict_proba = q(y|x), predict = argmax of the logits. Paper: lr 5e-4 -> 5e-5."""

    kind = "cat_uvac"
    paper_settings = {"lr_start": 5e-4, "lr_end": 5e-5}


class LinearVAE(_VAEEstimator):
    """Linear VAE on MFCC statistics; predict = K-means (n_init 10) fitted on the training latent means.

    Paper: 20 epochs, Adam lr 1e-3 (constant), MSE + KL, k = 5, latent size 4.
    """

    kind = "linear_vae"
    paper_settings = {"epochs": 20, "lr_start": 1e-3, "lr_end": 1e-3, "recon": "mse"}

    def __init__(self, n_clusters: int = 5, latent_dim: int = 4, **train_cfg):
        super().__init__(n_clusters, latent_dim, **train_cfg)

    def fit(self, X, mask=None, run_dir=None, speakers=None, pretext_embedding=None):
        super().fit(X, mask, run_dir, speakers, pretext_embedding)
        kmeans = KMeans(self.n_clusters, n_init=10, random_state=self.config.seed).fit(self.transform(X))
        self.cluster_centers_ = kmeans.cluster_centers_.astype(np.float32)
        return self

    def predict(self, X) -> np.ndarray:
        """Nearest K-means centre of each latent mean (what KMeans.predict does)."""
        if not hasattr(self, "cluster_centers_"):
            raise RuntimeError("no K-means centres: fit(X) first, or load a file written by save()")
        mu = self.transform(X)
        return ((mu[:, None, :] - self.cluster_centers_[None]) ** 2).sum(-1).argmin(1)

    def _extra_state(self) -> dict:
        return {"kmeans_centers": torch.from_numpy(self.cluster_centers_)}

    def _load_extra_state(self, state, path) -> None:
        if "kmeans_centers" not in state:
            raise ValueError(f"{path} has no K-means centres (a training checkpoint?); load a file written by save()")
        self.cluster_centers_ = state["kmeans_centers"].numpy()
