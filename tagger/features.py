"""Clip samples -> the network's input, every parameter taken from the model's spec.

`clip_matrices` gives the unnormalised 2-D feature per clip (what training caches on disk);
`to_input` resizes, normalises and stacks channels. `features_for_clips` does both.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from tagger.weights import FeatureSpec, ModelSpec

FEATURE_KINDS = ("mel", "stft", "mfcc")
AMIN = 1e-10  # power floor before dB: -100 dB


def clip_matrices(samples: np.ndarray, features: FeatureSpec, sample_rate: int) -> np.ndarray:
    """(n_clips, n_samples) float32 -> (n_clips, H, W) float32 resized to `features.size`, in dB (or MFCC)."""
    import librosa

    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 1:
        samples = samples[None, :]
    kind = features.kind
    if kind == "stft":
        spec = np.abs(librosa.stft(samples, n_fft=features.n_fft, hop_length=features.hop_length)) ** 2
        mat = librosa.power_to_db(spec, ref=1.0, amin=AMIN, top_db=None)
    elif kind in ("mel", "mfcc"):
        mel = librosa.feature.melspectrogram(
            y=samples, sr=sample_rate, n_fft=features.n_fft, hop_length=features.hop_length,
            n_mels=features.n_mels, fmin=features.fmin, fmax=features.fmax)
        mat = librosa.power_to_db(mel, ref=1.0, amin=AMIN, top_db=None)
        if kind == "mfcc":
            mat = librosa.feature.mfcc(S=mat, n_mfcc=features.n_mfcc)
    else:
        raise ValueError(f"unknown feature kind {kind!r} (known: {', '.join(FEATURE_KINDS)})")
    return resize(mat.astype(np.float32), features.size)


def resize(mat: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(n, h, w) -> (n, *size) with antialiased bilinear interpolation."""
    t = torch.from_numpy(np.ascontiguousarray(mat))[:, None]
    if tuple(t.shape[-2:]) != tuple(size):
        t = F.interpolate(t, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    return t[:, 0].numpy()


def to_input(matrices: np.ndarray, spec: ModelSpec) -> torch.Tensor:
    """(n, H, W) unnormalised -> (n, channels, H, W) float32 tensor, normalised with the spec's statistics."""
    mean = float(spec.normalization["mean"])
    std = float(spec.normalization["std"]) or 1.0
    t = (torch.as_tensor(np.asarray(matrices), dtype=torch.float32) - mean) / std
    return t[:, None].expand(-1, spec.features.channels, -1, -1).contiguous()


def features_for_clips(samples: np.ndarray, spec: ModelSpec) -> torch.Tensor:
    """(n_clips, n_samples) -> the network's input (n_clips, channels, H, W)."""
    return to_input(clip_matrices(samples, spec.features, spec.sample_rate), spec)
