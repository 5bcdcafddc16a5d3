"""Track descriptors: rhythm and dynamics cues that point the same way in every source we measured.

The default model (`moodtag-rhythm`) is a logistic regression on these. They are computed from the
same decoded clips as the CNN's input, with numpy and scipy alone: a worker running the default model
imports neither librosa nor torch. Each one equals what the grouped-CV research computed with librosa (tests/test_descriptors.py
checks them against librosa on real audio).

Per clip (the track value is the mean over its clips), from the mel power S (n_fft 2048, hop 512,
128 Slaney mels, 0 Hz to sr/2) and its dB, Sdb = 10 log10(max(S, 1e-10)):
  onset_rate    onsets per second: librosa.onset.onset_detect on onset_strength(S=Sdb) (defaults)
  rms_db        mean over frames of 20 log10(rms + 1e-5), rms over 2048-sample frames, hop 512
  perc_fast     percussive share of the mel power: P = grey opening of S along the mel axis, H = along
                time (size 17 each), sum(P^2 / (H^2 + P^2) * S) / sum(S)
  centroid      log2(1 + median over frames of the mel-weighted spectral centroid in Hz)
  flux_mid      mean superflux onset strength (lag 2, max_size 3, first 2 frames dropped) of the mel bands
                whose centre (the bands' mels spaced evenly from 0 Hz to sr/2) lies in 200-2000 Hz: how
                much, in dB per frame, the mid range of the sound keeps changing (moodtag-rhythm 1.1)
Per track, from the clips' superflux onset envelopes (onset_strength(S=Sdb, lag=2, max_size=3), the
first 2 frames of each dropped) joined into one (25 s for the default plan):
  tcent         ACF-weighted tempo centroid, log2(bpm), over lags 0.125-2 s (480-30 bpm)
  onset_rate25  onsets per second of the joined envelope
  acf_max       the largest normalised ACF value in that lag range: how clear the pulse is
"""
from __future__ import annotations

import numpy as np


HOP = 512
N_FFT = 2048
N_MELS = 128
OPEN_SIZE = 17
AMIN = 1e-10
PER_CLIP = ("onset_rate", "rms_db", "perc_fast", "centroid", "flux_mid")
MID_BAND_HZ = (200.0, 2000.0)
PER_TRACK = ("tcent", "onset_rate25", "acf_max")
NAMES = PER_CLIP + PER_TRACK


def check_names(names) -> tuple[str, ...]:
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise ValueError(f"unknown descriptor {unknown[0]!r} (known: {', '.join(NAMES)})")
    return tuple(names)


# ---------------------------------------------------------------- librosa's building blocks, ported

def onset_strength(Sdb: np.ndarray, *, lag: int = 1, max_size: int = 1) -> np.ndarray:
    """librosa.onset.onset_strength(S=Sdb, lag, max_size) with its defaults (mean over bands, centred)."""
    import scipy.ndimage as ndi

    ref = Sdb if max_size == 1 else ndi.maximum_filter1d(Sdb, max_size, axis=-2)
    env = np.maximum(0.0, Sdb[..., lag:] - ref[..., :-lag]).mean(axis=-2)
    pad = lag + N_FFT // (2 * HOP)
    return np.concatenate([np.zeros(pad, dtype=env.dtype), env])[: Sdb.shape[-1]]


def count_onsets(env: np.ndarray, sample_rate: int) -> int:
    """len(librosa.onset.onset_detect(onset_envelope=env)): normalise, then librosa's peak picking."""
    x = env - env.min()
    x = x / (x.max() + np.finfo(x.dtype).tiny)
    if not x.any() or not np.all(np.isfinite(x)):
        return 0
    pre_max = int(np.ceil(0.03 * sample_rate // HOP))
    post_max = int(np.ceil(0.00 * sample_rate // HOP + 1))
    pre_avg = int(np.ceil(0.10 * sample_rate // HOP))
    post_avg = int(np.ceil(0.10 * sample_rate // HOP + 1))
    wait = int(np.ceil(0.03 * sample_rate // HOP))
    delta = float(np.float32(0.07))
    n_frames = len(x)
    # frame n is a peak if it is the maximum of x[n - pre_max : n + post_max] and at least `delta`
    # above the mean of x[n - pre_avg : n + post_avg] (windows clipped at the ends) ...
    padded = np.concatenate([np.full(pre_max, -np.inf), x, np.full(post_max - 1, -np.inf)])
    local_max = np.lib.stride_tricks.sliding_window_view(padded, pre_max + post_max).max(axis=1)
    idx = np.arange(n_frames)
    lo, hi = np.maximum(0, idx - pre_avg), np.minimum(idx + post_avg, n_frames)
    cum = np.concatenate([[0.0], np.cumsum(x, dtype=np.float64)])
    local_mean = (cum[hi] - cum[lo]) / (hi - lo)
    candidates = np.flatnonzero((x == local_max) & (x >= local_mean + delta))
    # ... and no peak was taken in the `wait` frames before it (greedy, from the start)
    count, last = 0, -wait - 1
    for n in candidates:
        if n > last + wait:
            count, last = count + 1, n
    return count


def rms_db(y: np.ndarray) -> float:
    """Mean of 20 log10(rms + 1e-5) over librosa.feature.rms(y, frame_length=2048, hop_length=512) frames."""
    padded = np.pad(np.asarray(y, dtype=np.float32), N_FFT // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    return float((20 * np.log10(rms + 1e-5)).mean())


def perc_fast(S: np.ndarray) -> float:
    """Percussive share of the mel power `S` (n_mels, frames), from grey-level openings."""
    import scipy.ndimage as ndi

    H = ndi.maximum_filter1d(ndi.minimum_filter1d(S, OPEN_SIZE, axis=1), OPEN_SIZE, axis=1)
    P = ndi.maximum_filter1d(ndi.minimum_filter1d(S, OPEN_SIZE, axis=0), OPEN_SIZE, axis=0)
    return float((P ** 2 / (H ** 2 + P ** 2 + 1e-20) * S).sum() / (S.sum() + 1e-20))


def band_centres(n_mels: int, sample_rate: int) -> np.ndarray:
    """The frequency (Hz) each of `n_mels` bands stands for, mels evenly spaced from 0 Hz to sr/2."""
    from tagger.filters import hz_to_mel, mel_to_hz

    return mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2), n_mels))


def flux_mid(Sdb: np.ndarray, sample_rate: int) -> float:
    """Mean superflux onset strength of the 200-2000 Hz bands of one clip's mel dB (n_mels, frames)."""
    freqs = band_centres(Sdb.shape[0], sample_rate)
    band = (freqs >= MID_BAND_HZ[0]) & (freqs < MID_BAND_HZ[1])
    return float(onset_strength(Sdb[band], lag=2, max_size=3)[2:].mean())


def centroid(S: np.ndarray, sample_rate: int) -> float:
    freqs = band_centres(S.shape[0], sample_rate)
    cent = (freqs[:, None] * S).sum(0) / (S.sum(0) + 1e-20)
    return float(np.log2(np.median(cent) + 1))


# ---------------------------------------------------------------- descriptors

def mels(samples: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    from tagger.filters import mel_power

    S = mel_power(np.atleast_2d(samples), sample_rate, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS).astype(np.float64)
    return S, 10.0 * np.log10(np.maximum(S, AMIN))


def clip_values(y: np.ndarray, S: np.ndarray, Sdb: np.ndarray, sample_rate: int) -> dict[str, float]:
    """The per-clip descriptors of one clip (samples, mel power, its dB)."""
    env = onset_strength(Sdb)
    return {"onset_rate": count_onsets(env, sample_rate) / (len(y) / sample_rate), "rms_db": rms_db(y),
            "perc_fast": perc_fast(S), "centroid": centroid(S, sample_rate), "flux_mid": flux_mid(Sdb, sample_rate)}


def rhythm_values(mels_db: list[np.ndarray], sample_rate: int) -> dict[str, float]:
    """tcent, onset_rate25, acf_max of the clips' joined superflux onset envelope."""
    fps = sample_rate / HOP
    env = np.concatenate([onset_strength(m, lag=2, max_size=3)[2:] for m in mels_db])
    x = env - env.mean()
    n = len(x)
    spectrum = np.fft.rfft(x, 2 * n)
    acf = np.fft.irfft(np.abs(spectrum) ** 2)[:n]
    acf = acf / (acf[0] + 1e-9)
    lags = np.arange(n) / fps
    in_range = (lags >= 60 / 480) & (lags <= 60 / 30)
    a, bpm = acf[in_range], 60 / lags[in_range]
    w = np.maximum(a, 0)
    return {"tcent": float((w * np.log2(bpm)).sum() / (w.sum() + 1e-9)),
            "onset_rate25": count_onsets(env, sample_rate) / (n / fps),
            "acf_max": float(a.max()) if len(a) else 0.0}


def track_descriptors(samples: np.ndarray, sample_rate: int) -> tuple[dict[str, float], list[dict[str, float]]]:
    """(n_clips, n_samples), the clips in order -> (the track's descriptors, each clip's descriptors
    computed from that clip alone, its rhythm values included)."""
    samples = np.atleast_2d(np.asarray(samples, dtype=np.float32))
    S, Sdb = mels(samples, sample_rate)
    per_clip = []
    for y, s, sdb in zip(samples, S, Sdb):
        values = clip_values(y, s, sdb, sample_rate)
        values.update(rhythm_values([sdb], sample_rate))
        per_clip.append(values)
    track = {k: float(np.mean([c[k] for c in per_clip])) for k in PER_CLIP}
    track.update(rhythm_values(list(Sdb), sample_rate))
    return track, per_clip


def vector(values: dict[str, float], names) -> np.ndarray:
    return np.array([values[n] for n in names], dtype=np.float64)
