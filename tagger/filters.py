"""Spectral building blocks in numpy alone (no torch): Slaney mel filters, the DCT, a centred STFT.

Equal to librosa's defaults (`tests/test_features.py`). The CNN input (`features`) and the descriptors
(`descriptors`) both use them; a process that runs only the descriptor model never imports torch.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

STFT_BLOCK = 32  # frames transformed at a time
MEL_GROUP = 16   # mel bands projected together, over the FFT bins their filters cover (mel_power)

def hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default, htk=False)."""
    f = np.asarray(f, dtype=np.float64)
    mels = f / (200.0 / 3)
    logstep = np.log(6.4) / 27.0
    return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / logstep, mels)


def mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    logstep = np.log(6.4) / 27.0
    return np.where(m >= 15.0, 1000.0 * np.exp(logstep * (m - 15.0)), m * (200.0 / 3))


@lru_cache(maxsize=8)
def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """(n_mels, 1 + n_fft // 2) Slaney-normalised triangular filters, as librosa.filters.mel builds them."""
    fmax = sr / 2 if fmax is None else fmax
    fftfreqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


@lru_cache(maxsize=8)
def dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) orthonormal DCT-II, as librosa.feature.mfcc applies it."""
    n = np.arange(n_in)
    k = np.arange(n_out)[:, None]
    basis = np.cos(np.pi / n_in * (n + 0.5) * k) * np.sqrt(2.0 / n_in)
    basis[0] /= np.sqrt(2.0)
    return basis.astype(np.float32)


@lru_cache(maxsize=8)
def hann(n_fft: int) -> np.ndarray:
    """The periodic Hann window (librosa's and torch's default)."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


def power_spectrogram(samples: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """(n_clips, n_samples) -> (n_clips, 1 + n_fft // 2, 1 + n_samples // hop) power of the centred,
    zero-padded, Hann-windowed STFT (librosa.stft(center=True, pad_mode="constant"), squared)."""
    return _power_frames(samples, n_fft, hop_length).transpose(0, 2, 1)


def _power_frames(samples: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """power_spectrogram as (n_clips, frames, 1 + n_fft // 2): each frame's bins side by side."""
    x = np.atleast_2d(np.asarray(samples, dtype=np.float32))
    padded = np.pad(x, ((0, 0), (n_fft // 2, n_fft // 2)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=1)[:, ::hop_length]
    n_clips, n_frames = frames.shape[:2]
    power = np.empty((n_clips, n_frames, n_fft // 2 + 1), dtype=np.float32)
    window = hann(n_fft)
    # A few frames at a time, so that the temporaries stay in the CPU's cache: each frame's transform
    # is the same whatever else is computed with it. numpy's float32 transform equals its float64 one
    # rounded to complex64 (checked on 22 M bins of music and noise), which costs half as much.
    for clip in range(n_clips):
        for first in range(0, n_frames, STFT_BLOCK):
            block = frames[clip, first:first + STFT_BLOCK] * window
            spec = np.fft.rfft(block.astype(np.float64), axis=-1).astype(np.complex64)
            np.add(spec.real ** 2, spec.imag ** 2, out=power[clip, first:first + STFT_BLOCK])
    return power


@lru_cache(maxsize=8)
def mel_groups(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0,
               fmax: float | None = None) -> tuple[tuple[int, int, int, int, np.ndarray], ...]:
    """mel_filterbank in groups of MEL_GROUP consecutive bands: (first band, end band, first bin, end
    bin, the (bins, bands) weights of those bins). A Slaney filter covers a few bins (2,018 of the
    131,200 weights of 128 bands over 1,025 bins are not zero): the groups skip the rest."""
    fb = mel_filterbank(sr, n_fft, n_mels, fmin, fmax)
    groups = []
    for first in range(0, n_mels, MEL_GROUP):
        end = min(n_mels, first + MEL_GROUP)
        used = np.flatnonzero(fb[first:end].any(axis=0))
        lo, hi = (int(used[0]), int(used[-1]) + 1) if len(used) else (0, 0)
        groups.append((first, end, lo, hi, np.ascontiguousarray(fb[first:end, lo:hi].T)))
    return tuple(groups)


def mel_power(samples: np.ndarray, sample_rate: int, *, n_fft: int, hop_length: int, n_mels: int,
              fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """(n_clips, n_samples) -> (n_clips, n_mels, frames) mel power: librosa.feature.melspectrogram.
    Each group of bands is projected from the bins its filters cover (mel_groups): a sixth of the
    full product's cost; the sums then differ from it by float32 rounding (a relative 1e-6 at most)."""
    power = _power_frames(samples, n_fft, hop_length)
    out = np.empty(power.shape[:2] + (n_mels,), dtype=np.float32)
    for first, end, lo, hi, weights in mel_groups(sample_rate, n_fft, n_mels, fmin, fmax):
        np.matmul(power[:, :, lo:hi], weights, out=out[:, :, first:end])
    return out.transpose(0, 2, 1)
