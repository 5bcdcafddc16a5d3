"""Tonal and timbral candidates for the real-recordings study (benchmarks/real_cv.py): the cues of the
issue's list that moodtag-rhythm 2.0.0 does not read (roughness), and three more that music psychology
ties to arousal and tension (noisiness, harmonic change, mode).

All are computed from the default plan's clips (5 x 5 s, 22,050 Hz mono), with numpy alone, and none moves
with the gain: each is a ratio of powers or amplitudes within a frame.

- roughness: sensory dissonance of each frame's spectral peaks (Sethares 1993, after Plomp & Levelt 1965):
  for every pair of the frame's 20 strongest peaks (within 60 dB of its strongest), a_i a_j (e^(-3.5 s df)
  - e^(-5.75 s df)), s = 0.24 / (0.021 f_min + 19), summed and divided by (sum a)^2; the mean over the
  frames that are not silent (an 8192-point FFT, 2.7 Hz bins, every 4096 samples: ~26 frames a clip).
- flatness: the mean over frames of log10 of the mel power's spectral flatness (geometric over
  arithmetic mean; noise near 0, a pure tone very negative).
- chroma_flux: how fast the harmony moves: 1 - the cosine of successive frames' pitch-class profiles
  (27.5-4,200 Hz), mean over the frames.
- mode: major minus minor: the best correlation of the clip's pitch-class profile with the 12 major
  Krumhansl-Kessler key profiles, less the best with the 12 minor ones; key_clarity: the best of all 24.
"""
from __future__ import annotations

import numpy as np

N_FFT = 8192
HOP = 4096
PEAKS = 20
PEAK_RANGE_DB = 60.0
SILENT_DB = 60.0  # a frame this far below the clip's loudest is left out
CHROMA_LO, CHROMA_HI = 27.5, 4200.0
NAMES = ("roughness", "flatness", "chroma_flux", "mode", "key_clarity")

# Krumhansl & Kessler (1982) probe-tone ratings, C major and C minor
MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def _frames(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    if len(y) < N_FFT:
        y = np.pad(y, (0, N_FFT - len(y)))
    frames = np.lib.stride_tricks.sliding_window_view(y, N_FFT)[::HOP]
    return np.abs(np.fft.rfft(frames * np.hanning(N_FFT), axis=1))  # (frames, bins)


def roughness(mag: np.ndarray, sample_rate: int) -> float:
    freqs = np.fft.rfftfreq(N_FFT, 1 / sample_rate)
    loud = 10 * np.log10((mag ** 2).sum(1) + 1e-20)
    keep = loud >= loud.max() - SILENT_DB
    values = []
    for m in mag[keep]:
        peak = np.flatnonzero((m[1:-1] > m[:-2]) & (m[1:-1] >= m[2:]) & (freqs[1:-1] >= 20)) + 1
        if len(peak) < 2:
            values.append(0.0)
            continue
        peak = peak[np.argsort(m[peak])[::-1][:PEAKS]]  # strongest first
        peak = peak[m[peak] >= m[peak[0]] * 10 ** (-PEAK_RANGE_DB / 20)]
        a, f = m[peak], freqs[peak]
        i, j = np.triu_indices(len(a), 1)
        fmin = np.minimum(f[i], f[j])
        df = np.abs(f[i] - f[j])
        s = 0.24 / (0.021 * fmin + 19)
        d = a[i] * a[j] * (np.exp(-3.5 * s * df) - np.exp(-5.75 * s * df))
        values.append(float(d.sum() / a.sum() ** 2))
    return float(np.mean(values)) if values else 0.0


def _chroma(mag: np.ndarray, sample_rate: int) -> np.ndarray:
    """(frames, 12) pitch-class power, each frame summed over its bins between CHROMA_LO and CHROMA_HI."""
    freqs = np.fft.rfftfreq(N_FFT, 1 / sample_rate)
    band = (freqs >= CHROMA_LO) & (freqs <= CHROMA_HI)
    pitch = np.round(12 * np.log2(freqs[band] / 440.0) + 69).astype(int) % 12  # MIDI note -> pitch class (C = 0)
    onehot = np.zeros((band.sum(), 12))
    onehot[np.arange(band.sum()), pitch] = 1
    return (mag[:, band] ** 2) @ onehot


def tonal(y: np.ndarray, S: np.ndarray, sample_rate: int) -> dict[str, float]:
    """One clip (samples, its mel power (n_mels, frames)) -> NAMES."""
    mag = _frames(y)
    out = {"roughness": roughness(mag, sample_rate)}
    P = np.maximum(S, 1e-20)
    out["flatness"] = float(np.mean(np.log10(np.exp(np.mean(np.log(P), axis=0)) / np.mean(P, axis=0))))
    chroma = _chroma(mag, sample_rate)
    unit = chroma / (np.linalg.norm(chroma, axis=1, keepdims=True) + 1e-20)
    out["chroma_flux"] = float(np.mean(1 - np.sum(unit[1:] * unit[:-1], axis=1))) if len(unit) > 1 else 0.0
    profile = chroma.sum(0)
    corr = lambda ref: max(np.corrcoef(profile, np.roll(ref, k))[0, 1] if profile.std() > 0 else 0.0  # noqa: E731
                           for k in range(12))
    major, minor = corr(MAJOR), corr(MINOR)
    out["mode"] = float(major - minor)
    out["key_clarity"] = float(max(major, minor))
    return out


def track_tonal(samples: np.ndarray, sample_rate: int) -> dict[str, float]:
    """(n_clips, n_samples) -> NAMES, each the mean over the clips."""
    from tagger import descriptors as d

    samples = np.atleast_2d(np.asarray(samples, dtype=np.float32))
    S, _ = d.mels(samples, sample_rate)
    per_clip = [tonal(y, s, sample_rate) for y, s in zip(samples, S)]
    return {n: float(np.mean([c[n] for c in per_clip])) for n in NAMES}
