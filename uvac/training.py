"""The one training loop for every model: seeded, resumable, and loud about divergence.

    history = train(model, x, mask, TrainConfig(epochs=500), run_dir="results/runs/...")

Data given as an array stay resident on the device as one tensor; data given as a feature cache
(`uvac.clip_store.NpzRows`) are read batch by batch on CPU, so memory follows the batch size, and
copied once onto a GPU. Each epoch draws a seeded permutation and batches are gathered from it
(no per-epoch copies, no DataLoader). Every `checkpoint_every` epochs
and at the end, `run_dir/checkpoint.pt` is written atomically (weights only, so
`torch.load(weights_only=True)` opens it) with everything an exact resume needs: a later call
with the same run_dir continues from it and ends where an uninterrupted run would have.
"""
from __future__ import annotations

import csv
import dataclasses
import functools
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from uvac.clip_store import CHUNK_ROWS, NpzRows, chunks
from uvac.io import atomic_path
from uvac import pretext
from uvac.neighbours import (NEIGHBOUR_SPACES, centre_groups, check_neighbour_count, check_other_group_count,
                             check_whitening_axes, mine_neighbours, nearest_of_other_groups, nearest_others,
                             whiten_groups)

log = logging.getLogger("uvac.training")
CHECKPOINT = "checkpoint.pt"
FORMAT = 1
# Settings that change how a run executes but not what it computes; a resume may change them.
RUNTIME_ONLY = {"device", "amp", "compile", "threads", "progress", "checkpoint_every"}
CLUSTER_REMEDY_MODELS = ("uvac", "cat_uvac")  # the models whose cluster posterior takes info, consistency, neighbours
SCHEDULED = ("tau", "kl_weight")  # the loss settings that change from epoch to epoch (see loss_settings)


@dataclass
class TrainConfig:
    """Training settings. Defaults are the UVAC paper's; the estimators override per model."""

    epochs: int = 500
    batch_size: int = 64
    lr_start: float = 5e-3
    lr_end: float = 5e-4            # reached at the last epoch, exponential decay per epoch
    seed: int = 0
    device: str = "auto"            # auto | cpu | cuda
    amp: bool = True                # bfloat16 autocast, only ever on CUDA
    compile: bool = False           # CUDA only: torch.compile the loss with CUDA graphs (see compiled_loss)
    grad_clip: float = 0.0          # max global gradient norm; 0 = off
    logvar_clamp: tuple = (-10.0, 10.0)
    checkpoint_every: int = 10      # epochs; the last epoch is always checkpointed
    recon: str = "bce"              # bce | mse
    lam: float = 0.5                # cat_uvac: weight of both KL terms
    tau_start: float = 1.0          # cat_uvac: Gumbel-Softmax temperature, annealed exponentially
    tau_end: float = 0.5
    kl_warmup_epochs: int = 0       # KL weight rises linearly to 1 over these epochs; 0 = off
    free_bits: float = 0.0          # cat_uvac: nats of KL(q(y|x) || uniform) left unpenalised; 0 = off
    info_weight: float = 0.0        # uvac, cat_uvac: weight of KL(mean q(y) || uniform) - I(x; y); 0 = off
    consistency_weight: float = 0.0  # uvac, cat_uvac: weight of KL(q(y|x) || q(y|shifted, warped x)); 0 = off
    consistency_warp: float = 0.1   # uvac, cat_uvac: largest relative frequency stretch of those views
    consistency_shift: int = 8      # uvac, cat_uvac: largest time shift of those views, in frames
    neighbour_weight: float = 0.0   # uvac, cat_uvac: weight of -log sum_k q(k|x) q(k|n), n one of x's nearest clips; 0 = off
    neighbour_count: int = 5        # uvac, cat_uvac: n is drawn each step from this many nearest training clips
    neighbour_space: str = "input"  # uvac, cat_uvac: one of uvac.neighbours.NEIGHBOUR_SPACES, or "pretext"
    pretext_epochs: int = 100       # uvac, cat_uvac: epochs of the contrastive encoder of neighbour_space "pretext"
    pretext_batch_size: int = pretext.BATCH_SIZE  # uvac, cat_uvac: clips per step of that encoder
    speaker_centred: bool = False   # uvac, cat_uvac, "pretext": each speaker's mean taken out of that embedding, and
                                    # neighbours drawn from other speakers (needs the speakers of the training clips)
    speaker_whitening: int = 0      # uvac, cat_uvac, speaker_centred: each speaker's share whitened on this many principal
                                    # axes of the centred embedding (uvac.neighbours.whiten_groups); 0 = centred only
    cluster_init_epochs: int = 0    # uvac, cat_uvac, "pretext": epochs teaching q(y|x) K-means clusters of that embedding
                                    # first (uvac: after any pre-training); 0 = off
    pretrain_epochs: int = 0        # uvac: autoencoder epochs, then a GaussianMixture fit initialises the prior
    warm_start_lr: float = 0.0      # lr of pre-training and the cluster initialisation (its start, with init_lr_end); 0 = lr_start
    init_lr_end: float = 0.0        # the cluster initialisation's lr decays from start_lr to this by its last epoch; 0 = constant
    lr_warmup_steps: int = 0        # full loss: its lr rises linearly over its first steps from a fresh Adam; 0 = off
    threads: int = 0                # CPU threads; 0 = torch's default
    progress: bool = True

    def __post_init__(self):
        self.logvar_clamp = tuple(float(v) for v in self.logvar_clamp)
        problems = []
        for name in ("epochs", "batch_size", "checkpoint_every", "neighbour_count", "pretext_epochs"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("kl_warmup_epochs", "pretrain_epochs", "threads", "consistency_shift", "cluster_init_epochs",
                     "lr_warmup_steps", "speaker_whitening"):
            if int(getattr(self, name)) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("lr_start", "lr_end", "tau_start", "tau_end", "lam"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("grad_clip", "free_bits", "info_weight", "consistency_weight", "neighbour_weight", "warm_start_lr",
                     "init_lr_end"):
            if not getattr(self, name) >= 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if int(self.pretext_batch_size) < 2:
            problems.append(f"pretext_batch_size must be >= 2 (each clip's view is told from the others'), "
                            f"got {self.pretext_batch_size}")
        if not 0 <= self.consistency_warp < 1:
            problems.append(f"consistency_warp must be in [0, 1), got {self.consistency_warp}")
        if len(self.logvar_clamp) != 2 or not self.logvar_clamp[0] < self.logvar_clamp[1]:
            problems.append(f"logvar_clamp must be (min, max) with min < max, got {self.logvar_clamp}")
        if self.device not in ("auto", "cpu", "cuda"):
            problems.append(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if self.neighbour_space not in (*NEIGHBOUR_SPACES, pretext.SPACE):
            problems.append(f"neighbour_space must be one of {', '.join(NEIGHBOUR_SPACES)}, {pretext.SPACE}, "
                            f"got {self.neighbour_space!r}")
        if (self.speaker_centred or self.cluster_init_epochs) and self.neighbour_space != pretext.SPACE:
            problems.append(f"speaker_centred and cluster_init_epochs act on the pretext embedding: they need "
                            f"neighbour_space {pretext.SPACE!r}, got {self.neighbour_space!r}")
        if self.speaker_whitening and not self.speaker_centred:
            problems.append(f"speaker_whitening acts on the speaker-centred embedding: it needs speaker_centred, "
                            f"got speaker_whitening={self.speaker_whitening} without it")
        if self.warm_start_lr and not (self.pretrain_epochs or self.cluster_init_epochs):
            problems.append(f"warm_start_lr sets the rate of pre-training and the cluster initialisation: it needs "
                            f"pretrain_epochs or cluster_init_epochs >= 1, got {self.warm_start_lr} with neither")
        if self.init_lr_end and not self.cluster_init_epochs:
            problems.append(f"init_lr_end is the rate the cluster initialisation decays to: it needs "
                            f"cluster_init_epochs >= 1, got {self.init_lr_end} without it")
        if self.recon not in ("bce", "mse"):
            problems.append(f"recon must be 'bce' or 'mse', got {self.recon!r}")
        if problems:
            raise ValueError("invalid TrainConfig: " + "; ".join(problems))

    @property
    def start_lr(self) -> float:
        """The rate of the epochs before the full loss, set apart so that a trial can change the full
        loss's rate alone (docs/accuracy.md: for UVAC, halving it alone did not help)."""
        return self.warm_start_lr or self.lr_start


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch sees no CUDA device; use 'auto' or 'cpu'")
    return torch.device(name)


def exp_schedule(start: float, end: float, epoch: int, epochs: int) -> float:
    """start at epoch 0, end at the last epoch, geometric in between (the papers' lr decay)."""
    return start if epochs == 1 else start * (end / start) ** (epoch / (epochs - 1))


def warmup_factor(step: int, warmup_steps: int) -> float:
    """The share of the rate at this step of the full loss (0-based). Adam's first steps move every weight by
    about the rate whatever its gradient; rising from rate / warmup_steps keeps them from throwing a
    taught cluster start apart (docs/accuracy.md, UVAC on fsdd)."""
    return min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0


def loss_settings(model, cfg: TrainConfig, epoch: int) -> dict:
    """The keyword arguments of model.loss for this epoch."""
    kw = {"recon": cfg.recon, "logvar_clamp": cfg.logvar_clamp,
          "kl_weight": min(1.0, (epoch + 1) / cfg.kl_warmup_epochs) if cfg.kl_warmup_epochs else 1.0}
    if model.kind in CLUSTER_REMEDY_MODELS:
        kw.update(info_weight=cfg.info_weight, consistency_weight=cfg.consistency_weight,
                  consistency_warp=cfg.consistency_warp, consistency_shift=cfg.consistency_shift,
                  neighbour_weight=cfg.neighbour_weight)
    if model.kind == "cat_uvac":
        kw.update(tau=exp_schedule(cfg.tau_start, cfg.tau_end, epoch, cfg.epochs), lam=cfg.lam, free_bits=cfg.free_bits)
    return kw


def adam(model, lr: float, device) -> torch.optim.Adam:
    """Adam; on CUDA its fused kernel (one launch for all parameters: 1.08x clips/s for UVAC at
    batch 64 on an H200, where the step is launch-bound). CPU keeps the default, bit for bit."""
    return torch.optim.Adam(model.parameters(), lr=lr, fused=device.type == "cuda" or None)


def compiled_loss(loss, cfg: TrainConfig, device):
    """model.loss, compiled when cfg.compile asks and the device is CUDA.

    At the papers' batch of 64 a GPU step is bound by kernel launches, which CUDA graphs
    (mode "reduce-overhead") replay as one; the GRUs stay eager (Dynamo breaks the graph there).
    Compiling costs tens of seconds once, and one more graph for the smaller last batch of an
    epoch. The settings that change between epochs go in as tensors: Dynamo would take a float
    for a constant and recompile every epoch. On CPU the step is bound by the convolutions and
    compiling measured no gain, so it is left out there.
    """
    if not cfg.compile:
        return loss
    if device.type != "cuda":
        log.info("compile: applies on CUDA only; training on %s runs eagerly", device.type)
        return loss
    graphs = torch.compile(loss, mode="reduce-overhead", dynamic=False)

    def step(*args, **kwargs):
        torch.compiler.cudagraph_mark_step_begin()  # each call is a new training step: earlier outputs may go
        scheduled = {k: torch.tensor(float(v), device=device) for k, v in kwargs.items() if k in SCHEDULED}
        return graphs(*args, **{**kwargs, **scheduled})
    return step


def train(model, x, mask=None, cfg: TrainConfig | None = None, run_dir=None, speakers=None,
          pretext_embedding=None) -> list[dict]:
    """Train `model` in place on x (N, *model.input_shape) and return the per-epoch history.

    With run_dir, the checkpoint and history.jsonl / history.csv go there, and an existing
    checkpoint is resumed (refused if it belongs to another model, data size or configuration).
    speakers (N,): each clip's speaker, which cfg.speaker_centred needs.
    pretext_embedding (N, D): uvac.pretext.pretext_embedding of x with cfg's pretext settings and seed, where
    it was made already (the pipeline makes it once for every method that reads it); else made here if needed.
    """
    cfg = cfg or TrainConfig()
    if cfg.pretrain_epochs and model.kind != "uvac":
        raise ValueError(f"pretrain_epochs initialises a mixture prior, which only uvac has (model: {model.kind})")
    if cfg.free_bits and model.kind != "cat_uvac":
        raise ValueError(f"free_bits applies to the categorical KL of cat_uvac (model: {model.kind})")
    if cfg.speaker_centred:
        speakers = checked_speakers(speakers, len(x))
    for name in ("info_weight", "consistency_weight", "neighbour_weight", "cluster_init_epochs"):
        if getattr(cfg, name) and model.kind not in CLUSTER_REMEDY_MODELS:
            raise ValueError(f"{name} applies to a cluster posterior: q(y|x) of cat_uvac or the responsibilities "
                             f"of uvac (model: {model.kind})")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    x, mask = as_tensors(model, x, mask, device)
    model.to(device, memory_format=memory_format(x))
    optimizer = adam(model, cfg.lr_start, device)
    perm_gen = torch.Generator().manual_seed(cfg.seed)
    run_dir = Path(run_dir) if run_dir is not None else None
    ckpt = run_dir / CHECKPOINT if run_dir is not None else None

    if cfg.neighbour_weight:  # before the pre-training's and any encoder's epochs, not after
        check_neighbour_settings(len(x), cfg, speakers)
    # the training clips in the pretext embedding, made once, and only where a phase that runs needs them
    pretext_space = functools.cache(lambda: pretext_points(x, mask, cfg, device, speakers, pretext_embedding))
    if ckpt is not None and ckpt.exists():
        start, history = resume(ckpt, model, optimizer, perm_gen, cfg, len(x), device)
    else:
        torch.manual_seed(cfg.seed)
        start, history = 0, []
        if cfg.pretrain_epochs:
            history += pretrain(model, x, mask, cfg, device, perm_gen)
            optimizer = adam(model, cfg.lr_start, device)  # fresh moments for the full loss
        if cfg.cluster_init_epochs:
            with threadpool_limits(cfg.threads or None):  # K-means keeps to the job's declared threads
                history += init_clusters(model, x, mask, cfg, device, perm_gen, pretext_space())
            optimizer = adam(model, cfg.lr_start, device)

    if cfg.neighbour_weight:
        with threadpool_limits(cfg.threads or None):  # the BLAS under PCA too keeps to the job's declared threads
            embedding = pretext_space() if cfg.neighbour_space == pretext.SPACE else None
            neighbours = torch.from_numpy(training_neighbours(x, mask, cfg, device, speakers, embedding))
        log.info("%s: mined the %d nearest clips (%s) of each of %d training clips", model.kind, cfg.neighbour_count,
                 cfg.neighbour_space, len(x))
    n_batches = math.ceil(len(x) / cfg.batch_size)
    bar = tqdm(total=cfg.epochs * n_batches, initial=start * n_batches, disable=not cfg.progress,
               desc=model.kind, unit="batch", dynamic_ncols=True)

    loss = compiled_loss(model.loss, cfg, device)

    def loss_fn(xb, mb, idx, settings):
        extra = {"x_neighbour": neighbour_batch(x, neighbours, idx)} if cfg.neighbour_weight else {}
        return loss(xb, mb, **settings, **extra)

    for epoch in range(start, cfg.epochs):
        kw = loss_settings(model, cfg, epoch)
        lr = exp_schedule(cfg.lr_start, cfg.lr_end, epoch, cfg.epochs)
        row = run_epoch(model, optimizer, x, mask, functools.partial(loss_fn, settings=kw),
                        lr=lr, cfg=cfg, device=device, perm_gen=perm_gen, where=f"epoch {epoch + 1}/{cfg.epochs}",
                        checkpoint=ckpt, bar=bar, warmup=(epoch * n_batches, cfg.lr_warmup_steps))
        history.append({"phase": "train", "epoch": epoch + 1, **row, "lr": lr, "tau": kw.get("tau"),
                        "kl_weight": kw["kl_weight"]})
        bar.set_postfix(loss=f"{row['loss']:.4g}", clusters=row["clusters_used"])
        log.info("%s epoch %d/%d: loss %.5g, recon %.5g, clusters in use %s, %.1f s", model.kind, epoch + 1,
                 cfg.epochs, row["loss"], row["recon"], row["clusters_used"], row["seconds"])
        if run_dir is not None:
            write_history(run_dir, history)
            if (epoch + 1) % cfg.checkpoint_every == 0 or epoch + 1 == cfg.epochs:
                save_checkpoint(ckpt, model, optimizer, epoch + 1, perm_gen, cfg, len(x), history)
    bar.close()
    if run_dir is not None and start == cfg.epochs:  # resumed from the final checkpoint: history may be gone
        write_history(run_dir, history)
    return history


def as_tensors(model, x, mask, device):
    """Validate shapes and move the data to the device once (float32 numpy input is not copied on CPU;
    a feature cache stays on disk on CPU and is copied to a GPU block by block)."""
    if isinstance(x, NpzRows):
        if device.type != "cpu":
            resident = torch.empty(x.shape, dtype=torch.float32, device=device)
            for start, block in zip(range(0, len(x), CHUNK_ROWS), chunks(x)):
                resident[start:start + len(block)] = torch.from_numpy(block)
            x = resident
    else:
        x = torch.as_tensor(x, dtype=torch.float32)
    if x.ndim < 2 or tuple(x.shape[1:]) != model.input_shape or len(x) == 0:
        raise ValueError(f"{model.kind} was built for clips of shape {model.input_shape}; "
                         f"got data of shape {tuple(x.shape)} (expected (N, {', '.join(map(str, model.input_shape))}))")
    if mask is not None:
        mask = torch.as_tensor(mask).to(torch.float32)
        if x.ndim != 4 or tuple(mask.shape) != (x.shape[0], x.shape[3]):
            raise ValueError(f"mask must have shape (N, frames) = ({x.shape[0]}, {x.shape[-1]}), "
                             f"got {tuple(mask.shape)}")
        mask = mask.to(device)
    return (x if isinstance(x, NpzRows) else x.to(device)), mask


def memory_format(x) -> torch.memory_format:
    """Channels-last for spectrogram batches: the oneDNN and cuDNN convolutions run markedly faster
    in it (about 1.3x per UVAC step on CPU, benchmarks/train_throughput.py); vectors stay as they are."""
    return torch.channels_last if x.ndim == 4 else torch.contiguous_format


def gather(x, idx: torch.Tensor) -> torch.Tensor:
    """The clips of a batch: indexing of a resident tensor, or positional reads from a feature cache."""
    return torch.from_numpy(x[idx.numpy()]) if isinstance(x, NpzRows) else x[idx]


def checked_speakers(speakers, n_clips: int) -> np.ndarray:
    """The speaker of each of the n_clips training clips as an array, which speaker_centred needs; refused
    when absent, of another length, or with a clip's speaker missing."""
    if speakers is None or len(speakers) != n_clips or pd.isna(speakers).any():
        raise ValueError(f"speaker_centred needs the speaker of each of the {n_clips} training clips; got "
                         f"{'none' if speakers is None else f'{len(speakers)}, {int(pd.isna(speakers).sum())} missing'}")
    return np.asarray(speakers)


def check_neighbour_settings(n_clips: int, cfg: TrainConfig, speakers=None) -> None:
    """Refuse a neighbour_count that n_clips (with speaker_centred: the clips of other speakers) cannot
    give, before any epochs are spent."""
    check_neighbour_count(n_clips, cfg.neighbour_count)
    if cfg.speaker_centred:
        check_other_group_count(checked_speakers(speakers, n_clips), cfg.neighbour_count)


def training_neighbours(x, mask, cfg: TrainConfig, device="cpu", speakers=None, embedding=None) -> np.ndarray:
    """Each training clip's cfg.neighbour_count nearest clips in cfg.neighbour_space: a space of
    uvac.neighbours, or the pretext embedding (pretext_points, or `embedding` where it was made already);
    with cfg.speaker_centred, the nearest clips of other speakers. x and mask are arrays or tensors; a
    feature cache (NpzRows) is read a block at a time."""
    check_neighbour_settings(len(x), cfg, speakers)  # before the encoder's epochs
    if cfg.neighbour_space == pretext.SPACE:
        embedding = pretext_points(x, mask, cfg, device, speakers) if embedding is None else embedding
        return nearest_of_other_groups(embedding, speakers, cfg.neighbour_count) if cfg.speaker_centred \
            else nearest_others(embedding, cfg.neighbour_count)
    x = x.cpu() if torch.is_tensor(x) else x
    mask = mask.cpu().numpy() if torch.is_tensor(mask) else mask
    return mine_neighbours(x, cfg.neighbour_count, space=cfg.neighbour_space, mask=mask)


def pretext_points(x, mask, cfg: TrainConfig, device="cpu", speakers=None, embedding=None) -> np.ndarray:
    """The training clips in the embedding of a contrastive encoder (uvac.pretext), trained here first unless
    `embedding` is that encoder's output already; with cfg.speaker_centred, each speaker's mean taken out (and
    with cfg.speaker_whitening, each speaker's spread whitened) and the rows brought back to unit length: what
    the embedding holds of the word once the voice's offset is gone (docs/accuracy.md)."""
    if cfg.speaker_centred:  # before the encoder's epochs
        speakers = checked_speakers(speakers, len(x))
    if cfg.speaker_whitening:
        width = pretext.EMBEDDING_WIDTH if embedding is None else embedding.shape[-1]
        check_whitening_axes(cfg.speaker_whitening, len(x), width)
    if embedding is None:
        x = x.cpu() if torch.is_tensor(x) else x
        mask = mask.cpu().numpy() if torch.is_tensor(mask) else mask
        embedding = pretext.pretext_embedding(x, mask, epochs=cfg.pretext_epochs, seed=cfg.seed,
                                              batch_size=cfg.pretext_batch_size, device=device, progress=cfg.progress)
    elif embedding.ndim != 2 or len(embedding) != len(x):
        raise ValueError(f"the pretext embedding must have one row per training clip, shape ({len(x)}, D); "
                         f"got {embedding.shape}")
    if not cfg.speaker_centred:
        return embedding
    centred = whiten_groups(embedding, speakers, cfg.speaker_whitening) if cfg.speaker_whitening \
        else centre_groups(embedding, speakers)
    return centred / np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-12)


def start_clusters(embedding: np.ndarray, n_clusters: int, seed: int) -> np.ndarray:
    """The clusters the initialisation teaches: K-means on the pretext points (pretext_points), seeded."""
    return KMeans(n_clusters, n_init=10, random_state=seed).fit_predict(embedding)


def init_clusters(model, x, mask, cfg: TrainConfig, device, perm_gen, embedding: np.ndarray) -> list[dict]:
    """Start the cluster posterior from the clusters of the pretext embedding (as SCAN starts from its
    pretext): K-means there gives each training clip a cluster, and q(y|x) (cat_uvac) or the
    responsibilities of the latent mean (uvac: encoder and prior) learn them by cross-entropy for
    cfg.cluster_init_epochs epochs before the full loss takes over, which may move them. With init_lr_end the
    rate decays there, so that the taught clusters settle instead of ending wherever the last steps leave them."""
    clusters = torch.from_numpy(start_clusters(embedding, model.n_clusters, cfg.seed)).long().to(device)
    optimizer = adam(model, cfg.start_lr, device)
    n_batches = math.ceil(len(x) / cfg.batch_size)

    def cross_entropy(xb, mb, idx):
        log_q = model.cluster_log_posterior(xb)
        loss = F.nll_loss(log_q, clusters[idx])
        return {"loss": loss, "log_probs": log_q.detach()}

    history = []
    with tqdm(total=cfg.cluster_init_epochs * n_batches, disable=not cfg.progress, desc="cluster init",
              unit="batch", dynamic_ncols=True) as bar:
        for epoch in range(cfg.cluster_init_epochs):
            lr = exp_schedule(cfg.start_lr, cfg.init_lr_end, epoch, cfg.cluster_init_epochs) if cfg.init_lr_end \
                else cfg.start_lr
            row = run_epoch(model, optimizer, x, mask, cross_entropy, lr=lr, cfg=cfg, device=device,
                            perm_gen=perm_gen, where=f"cluster initialisation epoch {epoch + 1}/{cfg.cluster_init_epochs}",
                            checkpoint=None, bar=bar)
            history.append({"phase": "cluster_init", "epoch": epoch + 1, **row, "lr": lr})
            log.info("cluster initialisation epoch %d/%d: cross-entropy %.4g, clusters in use %s, %.1f s", epoch + 1,
                     cfg.cluster_init_epochs, row["loss"], row["clusters_used"], row["seconds"])
    return history


def neighbour_batch(x, neighbours: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """For each clip of a batch, one of its mined nearest clips, drawn with torch's seeded global generator."""
    pick = torch.randint(neighbours.shape[1], (len(idx),))
    xn = gather(x, neighbours[idx.cpu(), pick].to(idx.device))
    return xn.contiguous(memory_format=memory_format(xn))


def run_epoch(model, optimizer, x, mask, loss_fn, *, lr, cfg, device, perm_gen, where, checkpoint, bar,
              warmup=(0, 0)) -> dict:
    """One pass over a seeded permutation; returns clip-weighted means of the loss terms and cluster statistics.
    warmup: (steps taken before this epoch, warmup steps) for warmup_factor."""
    model.train()
    first_step, warmup_steps = warmup
    use_amp = cfg.amp and device.type == "cuda" and torch.cuda.is_bf16_supported()
    n = len(x)
    n_batches = math.ceil(n / cfg.batch_size)
    perm = torch.randperm(n, generator=perm_gen).to(device)
    sums, posterior = {}, None  # running sums of the loss terms and of the cluster statistics
    t0 = time.perf_counter()
    for b in range(n_batches):
        for group in optimizer.param_groups:
            group["lr"] = lr * warmup_factor(first_step + b, warmup_steps)
        idx = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
        xb, mb = gather(x, idx), (mask[idx] if mask is not None else None)
        xb = xb.contiguous(memory_format=memory_format(xb))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            out = loss_fn(xb, mb, idx)
        optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or float("inf"))
        if not bool(torch.isfinite(out["loss"]) & torch.isfinite(grad_norm)):
            kept = f"the last good checkpoint is {checkpoint}" if checkpoint and checkpoint.exists() else \
                "no checkpoint was written"
            raise FloatingPointError(
                f"non-finite loss or gradient at {where}, batch {b + 1}/{n_batches} "
                f"(loss={out['loss'].item()}, grad norm={grad_norm.item()}); {kept}. Check the input for NaN/inf, "
                "or lower lr_start, set grad_clip, or narrow logvar_clamp.")
        optimizer.step()
        for key, value in out.items():
            if key != "log_probs":
                sums[key] = sums.get(key, 0.0) + value.detach() * len(idx)
        if out.get("log_probs") is not None:
            log_p = out["log_probs"].float()
            batch = (log_p.exp().sum(0), -(log_p.exp() * log_p).sum(),
                     torch.bincount(log_p.argmax(1), minlength=log_p.shape[1]))
            posterior = batch if posterior is None else tuple(a + b for a, b in zip(posterior, batch))
        bar.update(1)
    row = {key: float(value) / n for key, value in sums.items()}
    row.update(cluster_stats(posterior, n))
    row["seconds"] = time.perf_counter() - t0
    return row


def cluster_stats(posterior, n) -> dict:
    """Usage entropy H(mean posterior) (near log K when all clusters are used), the mean per-clip
    entropy (well below log K when assignments are confident), and the number of clusters any clip picked.

    posterior: sums over the epoch of (posterior, per-clip entropy, argmax counts), or None for a
    model without a cluster posterior.
    """
    if posterior is None:
        return {"usage_entropy": None, "mean_entropy": None, "clusters_used": None}
    probs_sum, entropy_sum, counts = posterior
    mean_p = (probs_sum / n).clamp_min(1e-12)
    return {"usage_entropy": float(-(mean_p * mean_p.log()).sum()), "mean_entropy": float(entropy_sum) / n,
            "clusters_used": int((counts > 0).sum())}


def pretrain(model, x, mask, cfg, device, perm_gen) -> list[dict]:
    """VaDE-style initialisation of UVAC: train a plain autoencoder through z = mu, fit a
    diagonal GaussianMixture on the training mu, and start the prior there."""
    optimizer = adam(model, cfg.start_lr, device)
    n_batches = math.ceil(len(x) / cfg.batch_size)
    history = []

    autoencoder_loss = compiled_loss(model.autoencoder_loss, cfg, device)

    def ae_loss(xb, mb, idx):
        loss = autoencoder_loss(xb, mb, recon=cfg.recon)
        return {"loss": loss, "recon": loss}

    with tqdm(total=cfg.pretrain_epochs * n_batches, disable=not cfg.progress, desc="pretrain", unit="batch",
              dynamic_ncols=True) as bar:
        for epoch in range(cfg.pretrain_epochs):
            row = run_epoch(model, optimizer, x, mask, ae_loss, lr=cfg.start_lr, cfg=cfg, device=device,
                            perm_gen=perm_gen, where=f"pre-training epoch {epoch + 1}/{cfg.pretrain_epochs}",
                            checkpoint=None, bar=bar)
            history.append({"phase": "pretrain", "epoch": epoch + 1, "loss": row["loss"], "recon": row["recon"],
                            "lr": cfg.start_lr, "seconds": row["seconds"]})
            log.info("pre-training epoch %d/%d: recon %.5g, %.1f s", epoch + 1, cfg.pretrain_epochs,
                     row["recon"], row["seconds"])
    mu, _ = infer(model, x, cfg.batch_size, device)
    try:
        gmm = GaussianMixture(model.n_clusters, covariance_type="diag", random_state=cfg.seed).fit(mu)
    except ValueError as e:  # collapsed latents: name the stage and what to change, not only sklearn's words
        raise ValueError(
            f"pre-training: the GaussianMixture that starts the prior could not be fitted to the {len(mu)} "
            f"latent means after {cfg.pretrain_epochs} autoencoder epochs (spread per dimension "
            f"{np.array2string(mu.std(0), precision=3)}, largest |mean| {np.abs(mu.mean(0)).max():.3g}): too "
            f"little spread for {model.n_clusters} components. Lower lr_start (warm_start_lr where set) or pretrain_epochs, or n_clusters. "
            f"({e})") from e
    model.start_from_mixture(gmm.weights_, gmm.means_, gmm.covariances_, logvar_floor=cfg.logvar_clamp[0])
    return history


@torch.no_grad()
def infer(model, x, batch_size: int = 256, device=None):
    """Latent means and cluster log-posteriors (None for models without one) in eval mode, as numpy."""
    device = device or next(model.parameters()).device
    model.to(memory_format=memory_format(x)).eval()  # as in training, so a loaded model gives the same numbers
    mus, log_ps = [], []
    for start in range(0, len(x), batch_size):
        xb = torch.as_tensor(x[start:start + batch_size], dtype=torch.float32).to(device)
        xb = xb.contiguous(memory_format=memory_format(xb))
        mu, log_p = model.infer(xb)
        mus.append(mu.float().cpu())
        log_ps.append(None if log_p is None else log_p.float().cpu())
    mu = torch.cat(mus).numpy()
    return mu, (None if log_ps[0] is None else torch.cat(log_ps).numpy())


# --- checkpoints and history -------------------------------------------------------------------

def save_checkpoint(path, model, optimizer, epoch, perm_gen, cfg, n_clips, history) -> None:
    """Weights-only checkpoint (tensors, numbers, strings), written to a temp file then renamed."""
    state = {
        "format": FORMAT,
        "meta": model.metadata(),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": epoch,
        "rng": {"torch": torch.get_rng_state(), "perm": perm_gen.get_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
        "config": config_dict(cfg),
        "n_clips": n_clips,
        "history": history,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def config_dict(cfg: TrainConfig) -> dict:
    d = dataclasses.asdict(cfg)
    d["logvar_clamp"] = list(d["logvar_clamp"])
    return d


def check_meta(found: dict, expected: dict, source) -> None:
    """Refuse a checkpoint made for another model kind, cluster count, latent size or input shape."""
    for key, label in (("kind", "model kind"), ("n_clusters", "number of clusters K"),
                       ("latent_dim", "latent dimension"), ("input_shape", "input shape")):
        if key in expected and found.get(key) != expected[key]:
            raise ValueError(f"{source} holds a checkpoint for {label} {found.get(key)!r}, "
                             f"but {expected[key]!r} was expected ({found})")


def load_state(path, device="cpu", required=("meta",)) -> dict:
    """torch.load with weights_only=True (a tampered pickle is refused, never run), and one clear
    error naming the file for anything that is not a complete uvac checkpoint."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for a bad file
        raise ValueError(f"{path}: not a readable uvac checkpoint ({type(exc).__name__}: {exc}); "
                         "it may be truncated or from another program. Delete it to start over.") from exc
    missing = [key for key in required if not isinstance(state, dict) or key not in state]
    if missing:
        raise ValueError(f"{path}: not a complete uvac checkpoint (no {', '.join(missing)})")
    return state


def resume(path, model, optimizer, perm_gen, cfg, n_clips, device):
    state = load_state(path, device, ("meta", "model", "optimizer", "epoch", "rng", "config", "n_clips", "history"))
    check_meta(state["meta"], model.metadata(), path)
    if state["n_clips"] != n_clips:
        raise ValueError(f"{path} was trained on {state['n_clips']} clips, this data has {n_clips}; "
                         "use another run_dir or remove the checkpoint")
    # a setting added since the checkpoint was written had its default then
    saved, now = {**config_dict(TrainConfig()), **state["config"]}, config_dict(cfg)
    changed = sorted(k for k in now if k not in RUNTIME_ONLY and saved.get(k) != now[k])
    if changed:
        diffs = ", ".join(f"{k}: {saved.get(k)!r} -> {now[k]!r}" for k in changed)
        raise ValueError(f"{path} was written with other settings ({diffs}); resuming would not reproduce "
                         "an uninterrupted run. Use another run_dir or remove the checkpoint.")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"]["torch"].cpu())
    perm_gen.set_state(state["rng"]["perm"].cpu())
    if device.type == "cuda" and state["rng"]["cuda"]:
        torch.cuda.set_rng_state_all([s.cpu() for s in state["rng"]["cuda"]])
    return state["epoch"], state["history"]


def write_history(run_dir: Path, history: list[dict]) -> None:
    """history.jsonl (one JSON object per epoch) and history.csv, both rewritten atomically."""
    run_dir.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(key for row in history for key in row))
    jsonl = run_dir / "history.jsonl"
    with atomic_path(jsonl) as tmp:
        tmp.write_text("".join(json.dumps(row) + "\n" for row in history))
    csv_path = run_dir / "history.csv"
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(history)
