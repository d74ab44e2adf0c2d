"""A contrastive pretext embedding to mine each clip's neighbours in (SCAN's first step, Van Gansbeke et
al. 2020, with SimCLR's loss, Chen et al. 2020): the neighbour_space "pretext".

In the input and in the hand-made spaces of uvac.neighbours, words that share most of their frames
("five" and "nine" of synth_digits) are each other's nearest clips, and a clustering that asks
neighbours to agree glues them together (docs/accuracy.md, "Past the merged pair"). Here a small
encoder learns instead what survives the changes a speaker, a room and a microphone make to a word:
two random views of each clip (random_views) should be each other's nearest among a batch's views.
"""
from __future__ import annotations

import logging
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from uvac.clip_store import CHUNK_ROWS
from uvac.neighbours import LOG_FLOOR
from uvac.params import PRETEXT_BATCH_SIZE, PRETEXT_SPACE

log = logging.getLogger(__name__)

SPACE = PRETEXT_SPACE
MAX_BINS = 64           # the input's frequency bins are averaged down to at most this many
BATCH_SIZE = PRETEXT_BATCH_SIZE  # clips per step (the default); each gives two views
TEMPERATURE = 0.2       # of NT-Xent's cosine similarities
LEARNING_RATE = 2e-3    # peak of a one-cycle schedule
WARP = (0.85, 1.2)      # frequency stretch about the lowest bin: synth_digits' vocal-tract range
STRETCH = 1.25          # speaking rate changed by a factor in [1/STRETCH, STRETCH]
SHIFT = 0.15            # onset moved by up to this share of the frames, either way
TILT = 0.7              # largest weight of each of three cosines added to the log spectrum (a channel's colouring)
NOISE = (1e-3, 0.1)     # range of a uniform noise floor's level, on the input's [0, 1] scale (log-uniform)
GAIN = 1.0              # largest log gain
BAND_MASK = 8           # up to this many bins of each view silenced (SpecAugment)
FRAME_MASK = 9          # and up to this many frames
EMBEDDING_WIDTH = 512   # a clip's embedding: the mean and max of a bidirectional GRU of EMBEDDING_WIDTH // 4 units


def log_input(x, mask=None) -> torch.Tensor:
    """(N, 1, F, T) magnitudes in [0, 1] (an array, a tensor or a feature cache, read CHUNK_ROWS clips at
    a time) → log magnitudes, averaged down to at most MAX_BINS bins, padded frames (mask (N, T) false)
    at the floor."""
    def block(start: int, stop: int) -> torch.Tensor:
        out = torch.log(torch.as_tensor(np.asarray(x[start:stop]), dtype=torch.float32) + LOG_FLOOR)
        if mask is not None:
            active = torch.as_tensor(np.asarray(mask[start:stop])).bool()[:, None, None, :]
            out = torch.where(active, out, math.log(LOG_FLOOR))
        return F.avg_pool2d(out, (math.ceil(out.shape[2] / MAX_BINS), 1), ceil_mode=True)
    return torch.cat([block(start, min(start + CHUNK_ROWS, len(x))) for start in range(0, len(x), CHUNK_ROWS)])


def uniform(generator: torch.Generator, b: int, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(b, 1, 1, 1, generator=generator, device=generator.device)


def random_views(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random view of each log spectrogram (B, 1, F, T), as another speaker, room and microphone might
    give the same word: stretched along frequency (WARP) and in time (STRETCH), moved in time (SHIFT),
    coloured by a smooth spectral tilt (TILT), under a noise floor (NOISE), at another gain (GAIN), with a
    band and a run of frames silenced. All draws come from `generator`, on x's device."""
    b, _, bins, frames = x.shape
    floor = math.log(LOG_FLOOR)
    warp = uniform(generator, b, *WARP).flatten()
    rate = torch.exp(uniform(generator, b, -math.log(STRETCH), math.log(STRETCH))).flatten()
    theta = torch.zeros(b, 2, 3, device=x.device)  # affine_grid's (time, frequency) = (x, y) axes in [-1, 1]
    theta[:, 0, 0], theta[:, 0, 2] = 1 / rate, uniform(generator, b, -2 * SHIFT, 2 * SHIFT).flatten()
    theta[:, 1, 1], theta[:, 1, 2] = 1 / warp, 1 / warp - 1  # bin 0 stays put
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    view = F.grid_sample(x - floor, grid, padding_mode="zeros", align_corners=False) + floor
    band = torch.linspace(0, math.pi, bins, device=x.device)[None, None, :, None]
    view = view + sum(uniform(generator, b, -TILT, TILT) * torch.cos(j * band) for j in (1, 2, 3))
    level = torch.exp(uniform(generator, b, *np.log(NOISE)))
    noise = torch.rand(view.shape, generator=generator, device=x.device)
    view = torch.log(view.exp() + level * noise) + uniform(generator, b, -GAIN, GAIN)
    return torch.where(run_mask(generator, b, bins, BAND_MASK)[:, None, :, None]
                       | run_mask(generator, b, frames, FRAME_MASK)[:, None, None, :], floor, view)


def run_mask(generator: torch.Generator, b: int, length: int, longest: int) -> torch.Tensor:
    """(b, length) bool: a run of 0 to `longest` positions per row, at a random start."""
    start = torch.randint(0, max(1, length - longest), (b, 1), generator=generator, device=generator.device)
    width = torch.randint(0, longest + 1, (b, 1), generator=generator, device=generator.device)
    position = torch.arange(length, device=generator.device)
    return (position >= start) & (position < start + width)


class PretextEncoder(nn.Module):
    """Four strided conv blocks, the frequency axis averaged to 4 rows, a bidirectional GRU over time,
    its outputs' mean and max: a 4 * hidden embedding of a clip of any length."""

    def __init__(self, width: int = 32, hidden: int = EMBEDDING_WIDTH // 4):
        super().__init__()
        blocks, channels = [], 1
        for out in (width, 2 * width, 4 * width, 4 * width):
            blocks += [nn.Conv2d(channels, out, 3, 2, 1), nn.BatchNorm2d(out), nn.ReLU(),
                       nn.Conv2d(out, out, 3, 1, 1), nn.BatchNorm2d(out), nn.ReLU()]
            channels = out
        self.conv = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d((4, None)))
        self.gru = nn.GRU(4 * channels, hidden, batch_first=True, bidirectional=True)
        self.dim = 4 * hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - x.mean((1, 2, 3), keepdim=True)) / (x.std((1, 2, 3), keepdim=True) + 1e-5)
        steps, _ = self.gru(self.conv(x).flatten(1, 2).transpose(1, 2))
        return torch.cat([steps.mean(1), steps.amax(1)], 1)


def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float = TEMPERATURE) -> torch.Tensor:
    """SimCLR's loss: each view should pick its partner (a[i] for b[i]) out of the other 2B - 1 views."""
    z = F.normalize(torch.cat([a, b]), dim=1)
    similarity = (z @ z.T / temperature).fill_diagonal_(float("-inf"))
    partner = torch.cat([torch.arange(len(a), 2 * len(a)), torch.arange(len(a))]).to(z.device)
    return F.cross_entropy(similarity, partner)


def pretext_embedding(x, mask=None, *, epochs: int, seed: int, batch_size: int = BATCH_SIZE,
                      device: torch.device | str = "cpu", progress: bool = False) -> np.ndarray:
    """Train a PretextEncoder with a projection head on views of the clips x (N, 1, F, T; mask (N, T))
    for `epochs` epochs of `batch_size` clips a step, then give each clip's embedding (N, 4 * hidden),
    L2-normalised. A smaller batch gives a small dataset more steps for the same epochs (fsdd's 1200
    clips: 4 steps an epoch at 256). Every draw comes from generators seeded with `seed`; torch's global
    generator is left as it was."""
    device = torch.device(device)
    clips = log_input(x, mask).to(device)
    batch = min(batch_size, len(clips))
    steps = len(clips) // batch
    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        encoder = PretextEncoder().to(device)
        head = nn.Sequential(nn.Linear(encoder.dim, encoder.dim), nn.ReLU(), nn.Linear(encoder.dim, 128)).to(device)
    parameters = [*encoder.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(parameters, LEARNING_RATE / 2, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, LEARNING_RATE, total_steps=epochs * steps)
    bar = tqdm(range(epochs), desc="pretext", unit="epoch", disable=not progress, dynamic_ncols=True)
    for _ in bar:
        order, total = torch.randperm(len(clips), generator=generator, device=device), 0.0
        for step in range(steps):
            views = clips[order[step * batch:(step + 1) * batch]]
            loss = nt_xent(head(encoder(random_views(views, generator))), head(encoder(random_views(views, generator))))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item()
        bar.set_postfix(nt_xent=f"{total / steps:.3f}")
    log.info("pretext encoder: %d epochs on %d clips, final NT-Xent %.3f", epochs, len(clips), total / steps)
    encoder.eval()
    with torch.no_grad():
        embedding = torch.cat([encoder(clips[i:i + batch]) for i in range(0, len(clips), batch)])
    return F.normalize(embedding, dim=1).cpu().numpy()
