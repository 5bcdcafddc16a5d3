"""Clip samples -> the network's input, every parameter taken from the model's spec.

`clip_matrices` gives the unnormalised 2-D feature per clip (what training caches on disk);
`to_input` resizes, normalises and stacks channels. `features_for_clips` does both.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from tagger.filters import dct_matrix, mel_filterbank
from tagger.weights import FeatureSpec, ModelSpec

FEATURE_KINDS = ("mel", "stft", "mfcc")
CENTERINGS = ("none", "band")
AMIN = 1e-10  # power floor before dB: -100 dB


def clip_matrices(samples: np.ndarray, features: FeatureSpec, sample_rate: int) -> np.ndarray:
    """(n_clips, n_samples) float32 -> (n_clips, H, W) float32 resized to `features.size`, in dB (or MFCC).

    Equal to librosa's `power_to_db(melspectrogram(...), ref=1.0, amin=1e-10, top_db=None)` (and its
    `mfcc`, `stft`), computed with torch.stft and a cached filterbank: a worker process starts in
    milliseconds instead of paying librosa's seconds of lazy imports (tests/test_features.py checks it).
    """
    kind = features.kind
    if kind not in FEATURE_KINDS:
        raise ValueError(f"unknown feature kind {kind!r} (known: {', '.join(FEATURE_KINDS)})")
    power = _power(samples, features, sample_rate, mel=kind != "stft")
    mat = 10.0 * torch.log10(torch.clamp(power, min=AMIN))
    if kind == "mfcc":
        mat = torch.matmul(torch.from_numpy(dct_matrix(features.n_mels, features.n_mfcc)), mat)
    return resize(mat.numpy().astype(np.float32, copy=False), features.size)


def _power(samples: np.ndarray, features: FeatureSpec, sample_rate: int, *, mel: bool) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(samples, dtype=np.float32))
    if x.ndim == 1:
        x = x[None, :]
    spec = torch.stft(x, features.n_fft, features.hop_length, window=_window(features.n_fft), center=True,
                      pad_mode="constant", return_complex=True)
    power = spec.real ** 2 + spec.imag ** 2
    if mel:
        fb = torch.from_numpy(mel_filterbank(sample_rate, features.n_fft, features.n_mels, features.fmin,
                                             features.fmax))
        power = torch.matmul(fb, power)
    return power


@lru_cache(maxsize=8)
def _window(n_fft: int) -> torch.Tensor:
    return torch.hann_window(n_fft)


def resize(mat: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(n, h, w) -> (n, *size) with antialiased bilinear interpolation."""
    t = torch.from_numpy(np.ascontiguousarray(mat))[:, None]
    if tuple(t.shape[-2:]) != tuple(size):
        t = F.interpolate(t, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    return t[:, 0].numpy()


def to_input(matrices: np.ndarray, spec: ModelSpec) -> torch.Tensor:
    """(n, H, W) unnormalised -> (n, channels, H, W) float32 tensor, normalised with the spec's statistics
    (after removing each band's mean over time when `spec.features.center` is "band")."""
    mean = float(spec.normalization["mean"])
    std = float(spec.normalization["std"]) or 1.0
    t = torch.as_tensor(np.asarray(matrices), dtype=torch.float32)
    if spec.features.center == "band":
        t = t - t.mean(dim=-1, keepdim=True)
    elif spec.features.center != "none":
        raise ValueError(f"unknown feature centring {spec.features.center!r} (known: none, band)")
    t = (t - mean) / std
    return t[:, None].expand(-1, spec.features.channels, -1, -1).contiguous()


def features_for_clips(samples: np.ndarray, spec: ModelSpec) -> torch.Tensor:
    """(n_clips, n_samples) -> the network's input (n_clips, channels, H, W)."""
    return to_input(clip_matrices(samples, spec.features, spec.sample_rate), spec)
