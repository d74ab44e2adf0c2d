"""Time-frequency features, activity masks and normalisation (DESIGN.md §3, steps 2-6).

Pure array functions: the pipeline (uvac.pipeline) decides what to read and write.
"""
from __future__ import annotations

from functools import lru_cache

import librosa
import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view

EPS = 1e-8


def n_frames(clip_len: int, n_fft: int, hop: int) -> int:
    """Frames of an uncentred STFT: the 1 s / 20 ms / 10 ms paper grid gives 99."""
    return 1 + (clip_len - n_fft) // hop


def activity_mask(n_real: np.ndarray, clip_len: int, n_fft: int, hop: int) -> np.ndarray:
    """1 for frames that start inside real audio, 0 for frames made only of end padding."""
    starts = np.arange(n_frames(clip_len, n_fft, hop)) * hop
    return (starts[None, :] < np.asarray(n_real)[:, None]).astype(np.float32)


@lru_cache(maxsize=8)
def _hann(n_fft: int) -> np.ndarray:
    """Periodic Hann window, bit for bit librosa.filters.get_window("hann", n_fft, fftbins=True)
    (scipy's general_cosine([0.5, 0.5]) on n_fft + 1 points, last dropped), computed with numpy
    because importing librosa's filters costs a feature worker 1-2 s (numba) before any work."""
    if n_fft <= 1:
        return np.ones(n_fft, dtype=np.float32)
    fac = np.linspace(-np.pi, np.pi, n_fft + 1, dtype=np.float64)[:-1]
    return (0.5 + 0.5 * np.cos(fac)).astype(np.float32)


def _stft(waves: np.ndarray, n_fft: int, hop: int, bins: slice) -> np.ndarray:
    """Complex STFT bins of a batch (N, L) → (N, T, n_bins), Hann window, no centring.

    Frames are strided views (no copy). The FFT is scipy.fft's, in single precision like numpy 2's
    own (float32 in, complex64 out) but several times faster on these short frames; the two differ
    by float32 rounding only (~1e-7 of the largest magnitude)."""
    waves = np.asarray(waves)
    if not np.issubdtype(waves.dtype, np.floating):
        waves = waves.astype(np.float32)
    frames = sliding_window_view(waves, n_fft, axis=1)[:, ::hop]  # (N, T, n_fft), a view
    return scipy.fft.rfft(frames * _hann(n_fft), axis=-1)[..., bins]


def _power(spec: np.ndarray) -> np.ndarray:
    """|spec|² of complex (N, T, F) as float32 (N, F, T), contiguous."""
    power = np.square(spec.real)
    power += np.square(spec.imag)
    return np.ascontiguousarray(power.transpose(0, 2, 1), dtype=np.float32)


def stft_power(waves: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """|STFT|² of a batch (N, L) → (N, n_fft//2+1, T); Hann window, no centring (as librosa with center=False)."""
    return _power(_stft(waves, n_fft, hop, slice(None)))


@lru_cache(maxsize=8)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels).astype(np.float32)


SPEC_BLOCK_BYTES = 2 * 2**20  # frames per block of clips: small enough to stay in the CPU caches


def spectrogram(waves: np.ndarray, cfg: dict, sample_rate: int) -> np.ndarray:
    """(N, L) waveforms → (N, F, T) un-normalised float32 features for kind stft or logmel.

    Clips are independent, so a batch is transformed a few clips at a time (each block's
    frames, window product and spectrum stay in cache: ~1.4x faster than the whole batch at
    once for 1 s clips), into one output array; the values do not depend on the block size."""
    if cfg["kind"] == "stft":
        n_bins = cfg["n_bins"]
        if n_bins > cfg["n_fft"] // 2:
            raise ValueError(f"features.n_bins: {n_bins} bins asked, n_fft {cfg['n_fft']} gives {cfg['n_fft'] // 2} above DC")
        waves = np.asarray(waves)
        frames = n_frames(waves.shape[1], cfg["n_fft"], cfg["hop"])
        out = np.empty((len(waves), n_bins, max(frames, 0)), dtype=np.float32)
        step = max(1, SPEC_BLOCK_BYTES // (4 * cfg["n_fft"] * max(frames, 1)))
        for start in range(0, len(waves), step):
            power = _power(_stft(waves[start:start + step], cfg["n_fft"], cfg["hop"], slice(1, n_bins + 1)))  # DC dropped
            np.sqrt(power, out=out[start:start + step])  # magnitude
        return out
    if cfg["kind"] == "logmel":
        power = stft_power(waves, cfg["n_fft"], cfg["hop"])
        mel = np.einsum("mf,nft->nmt", _mel_basis(sample_rate, cfg["n_fft"], cfg["n_mels"]), power)
        return 10.0 * np.log10(np.maximum(mel, 1e-10))
    raise ValueError(f"features.kind: {cfg['kind']!r} is not a spectrogram kind")


def normalize_per_clip(spec: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Paper reading: z-score, then min-max into [0, 1], over each clip's active frames.

    A z-score followed by a min-max is the same affine map as the min-max alone, so only the
    min-max is computed. Padded frames are set to 0 (the loss masks them anyway). The extremes
    are reduced over bins first, then over the active frames: one pass over the spectrogram.
    """
    spec = np.asarray(spec)
    active = np.asarray(mask).astype(bool)  # (N, T)
    lo = np.where(active, spec.min(axis=1), np.inf).min(axis=1)[:, None, None]
    hi = np.where(active, spec.max(axis=1), -np.inf).max(axis=1)[:, None, None]
    out = (spec - lo) / np.maximum(hi - lo, EPS)
    out[np.broadcast_to(~active[:, None, :], out.shape)] = 0.0
    return out.astype(np.float32, copy=False)


def fit_dataset_norm(spec: np.ndarray, mask: np.ndarray) -> dict:
    """Per-bin mean/std then global min/max of the z-scores, from training clips only."""
    active = mask[:, None, :].astype(bool)
    count = np.maximum(active.sum(axis=(0, 2)), 1)
    mean = np.where(active, spec, 0).sum(axis=(0, 2)) / count
    var = (np.where(active, (spec - mean[None, :, None]) ** 2, 0)).sum(axis=(0, 2)) / count
    std = np.sqrt(var) + EPS
    z = (spec - mean[None, :, None]) / std[None, :, None]
    return {"mean": mean.astype(np.float32), "std": std.astype(np.float32),
            "lo": float(np.where(active, z, np.inf).min()), "hi": float(np.where(active, z, -np.inf).max())}


def apply_dataset_norm(spec: np.ndarray, mask: np.ndarray, stats: dict) -> np.ndarray:
    """Training statistics applied to any split; values outside the training range are clipped."""
    z = (spec - stats["mean"][None, :, None]) / stats["std"][None, :, None]
    out = np.clip((z - stats["lo"]) / max(stats["hi"] - stats["lo"], EPS), 0.0, 1.0)
    return np.where(mask[:, None, :].astype(bool), out, 0.0).astype(np.float32)


def mfcc_stats(waves: np.ndarray, n_real: np.ndarray, sample_rate: int, n_mfcc: int) -> np.ndarray:
    """Mean and variance over time of librosa-default MFCCs of each clip's real audio → (N, 2·n_mfcc)."""
    out = np.empty((len(waves), 2 * n_mfcc), dtype=np.float32)
    for i, (wave, n) in enumerate(zip(waves, n_real)):
        m = librosa.feature.mfcc(y=wave[: max(int(n), 2048)], sr=sample_rate, n_mfcc=n_mfcc)
        out[i, :n_mfcc] = m.mean(axis=1)
        out[i, n_mfcc:] = m.var(axis=1)
    return out


def mfcc_stat_names(n_mfcc: int) -> list[str]:
    return [f"mfcc{i}_mean" for i in range(n_mfcc)] + [f"mfcc{i}_var" for i in range(n_mfcc)]
