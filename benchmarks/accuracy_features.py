"""Hand features for benchmarks/grouped_cv.py: one track's default-plan clips -> named scalars.

Everything derives from the seed's log-mel (n_fft 2048, hop 512, 128 mels, librosa defaults) and the
frame RMS, as in the research session (/work/research: feats.py, lean.py, tempo25.py).

Per clip (averaged over the clips):
  tempo         librosa.feature.tempo of the clip's onset envelope (on a 5 s clip this is mostly
                librosa's 120 bpm prior: the research found it carries almost nothing)
  onset_rate    onsets per second (librosa.onset.onset_detect on onset_strength of the dB mel)
  rms_db        mean of 20*log10(rms + 1e-5)
  centroid      log2(1 + median over frames of the mel-weighted spectral centroid, Hz)
  perc_fast     percussive share of mel power: P = min/max opening along the mel axis, H = along time
                (size 17 each), sum(P^2/(H^2+P^2) * S) / sum(S)
Per track, from the clips' superflux onset envelopes joined into one (25 s for the default plan):
  tcent         ACF-weighted tempo centroid, log2(bpm), over lags 0.125-2 s (480-30 bpm)
  onset_rate25  onsets per second of the joined envelope
  acf_max       the largest normalised ACF value in that lag range (pulse clarity)
"""
from __future__ import annotations

import numpy as np

HOP = 512
N_FFT = 2048
N_MELS = 128
OPEN_SIZE = 17
FEATURES = ("tempo", "onset_rate", "rms_db", "centroid", "perc_fast", "tcent", "onset_rate25", "acf_max")
VERSION = 1  # bump when a feature's definition changes: cached values are then recomputed


def perc_fast(S: np.ndarray) -> float:
    """Percussive share of the mel power `S` (n_mels, frames), from grey-level openings."""
    import scipy.ndimage as ndi

    H = ndi.maximum_filter1d(ndi.minimum_filter1d(S, OPEN_SIZE, axis=1), OPEN_SIZE, axis=1)
    P = ndi.maximum_filter1d(ndi.minimum_filter1d(S, OPEN_SIZE, axis=0), OPEN_SIZE, axis=0)
    return float((P ** 2 / (H ** 2 + P ** 2 + 1e-20) * S).sum() / (S.sum() + 1e-20))


def clip_features(y: np.ndarray, *, sample_rate: int) -> tuple[np.ndarray, dict[str, float]]:
    """One clip (n,) float32 -> (its dB mel, its per-clip features)."""
    import librosa

    S = librosa.feature.melspectrogram(y=y, sr=sample_rate, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS)
    Sdb = librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=None)
    rms = librosa.feature.rms(y=y, frame_length=N_FFT, hop_length=HOP)[0]
    oenv = librosa.onset.onset_strength(S=Sdb, sr=sample_rate, hop_length=HOP)
    onsets = librosa.onset.onset_detect(onset_envelope=oenv, sr=sample_rate, hop_length=HOP)
    tempo = float(librosa.feature.tempo(onset_envelope=oenv, sr=sample_rate, hop_length=HOP)[0])
    freqs = librosa.mel_frequencies(n_mels=N_MELS, fmax=sample_rate / 2)
    cent = (freqs[:, None] * S).sum(0) / (S.sum(0) + 1e-20)
    return Sdb, {"tempo": tempo, "onset_rate": len(onsets) / (len(y) / sample_rate),
                 "rms_db": float((20 * np.log10(rms + 1e-5)).mean()),
                 "centroid": float(np.log2(np.median(cent) + 1)), "perc_fast": perc_fast(S)}


def rhythm_features(mels_db: list[np.ndarray], *, sample_rate: int) -> dict[str, float]:
    """The clips' dB mels, in order -> tcent, onset_rate25, acf_max of their joined onset envelope."""
    import librosa

    fps = sample_rate / HOP
    env = np.concatenate([librosa.onset.onset_strength(S=m, sr=sample_rate, hop_length=HOP, lag=2,
                                                       max_size=3)[2:] for m in mels_db])
    x = env - env.mean()
    n = len(x)
    f = np.fft.rfft(x, 2 * n)
    acf = np.fft.irfft(np.abs(f) ** 2)[:n]
    acf = acf / (acf[0] + 1e-9)
    lags = np.arange(n) / fps
    in_range = (lags >= 60 / 480) & (lags <= 60 / 30)
    a, bpm = acf[in_range], 60 / lags[in_range]
    w = np.maximum(a, 0)
    onsets = librosa.onset.onset_detect(onset_envelope=env, sr=sample_rate, hop_length=HOP)
    return {"tcent": float((w * np.log2(bpm)).sum() / (w.sum() + 1e-9)),
            "onset_rate25": len(onsets) / (n / fps),
            "acf_max": float(a.max()) if len(a) else 0.0}


def track_features(clips: np.ndarray, *, sample_rate: int) -> dict[str, float]:
    """(n_clips, n_samples) float32, the default plan's contiguous clips -> every name in FEATURES."""
    mels, per_clip = [], []
    for y in np.asarray(clips, dtype=np.float32):
        Sdb, feats = clip_features(y, sample_rate=sample_rate)
        mels.append(Sdb)
        per_clip.append(feats)
    out = {k: float(np.mean([c[k] for c in per_clip])) for k in per_clip[0]}
    out.update(rhythm_features(mels, sample_rate=sample_rate))
    return out
