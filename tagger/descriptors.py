"""Track descriptors: rhythm and dynamics cues that point the same way in every source we measured.

The default model (`moodtag-rhythm`) is a logistic regression on these. They are computed from the
same decoded clips as the CNN's input, with numpy and scipy alone: a worker running the default model
imports neither librosa nor torch. Each one equals what the grouped-CV research computed with librosa (tests/test_descriptors.py
checks them against librosa on real audio).

Per clip (the track value is the mean over its clips), from the mel power S (n_fft 2048, hop 512,
128 Slaney mels, 0 Hz to sr/2) and its dB, Sdb = 10 log10(max(S, 1e-10)) (with a model's
features.top_db, floored that far below the clip's loudest bin: moodtag-rhythm 2 uses 80 dB, and then
every descriptor but rms_db and centroid is unchanged by gain; onsets are then counted on envelopes read
at no less than ONSET_MIN_RANGE_DB of range):
  onset_rate    onsets per second: librosa.onset.onset_detect on onset_strength(S=Sdb) (defaults)
  rms_db        mean over frames of 20 log10(rms + 1e-5), rms over 2048-sample frames, hop 512
  perc_fast     percussive share of the mel power: P = grey opening of S along the mel axis, H = along
                time (size 17 each), sum(P^2 / (H^2 + P^2) * S) / sum(S)
  centroid      log2(1 + median over frames of the mel-weighted spectral centroid in Hz)
  flux_mid      mean superflux onset strength (lag 2, max_size 3, first 2 frames dropped) of the mel bands
                whose centre (the bands' mels spaced evenly from 0 Hz to sr/2) lies in 200-2000 Hz: how
                much, in dB per frame, the mid range of the sound keeps changing (moodtag-rhythm 1.1)
  flux_low, flux_high, flux_all   the same over 20-200 Hz, 2-8 kHz, and every band
  dyn_range     95th minus 10th percentile of the frame loudness (rms over 2048-sample frames, hop 512,
                in dB, floored 80 dB below the loudest frame)
  crest         peak level over mean power, dB
  rms_var       standard deviation of the frame-to-frame change of that frame loudness
Per track, from the clips' superflux onset envelopes (onset_strength(S=Sdb, lag=2, max_size=3), the
first 2 frames of each dropped) joined into one (25 s for the default plan):
  tcent         ACF-weighted tempo centroid, log2(bpm), over lags 0.125-2 s (480-30 bpm)
  onset_rate25  onsets per second of the joined envelope
  acf_max       the largest normalised ACF value in that lag range: how clear the pulse is
"""
from __future__ import annotations

import numpy as np

from tagger.stages import stage

HOP = 512
N_FFT = 2048
N_MELS = 128
OPEN_SIZE = 17
AMIN = 1e-10
PER_CLIP = ("onset_rate", "rms_db", "perc_fast", "centroid", "flux_mid", "flux_low", "flux_high", "flux_all",
            "dyn_range", "crest", "rms_var")
MID_BAND_HZ = (200.0, 2000.0)
BANDS_HZ = {"flux_low": (20.0, 200.0), "flux_mid": MID_BAND_HZ, "flux_high": (2000.0, 8000.0)}
RMS_RANGE_DB = 80.0  # frame loudness below the clip's loudest frame by more than this counts as this
# On the relative floor (a model's top_db), an onset envelope spanning less than this many dB is read
# at this scale: real music spans 1.5 dB or more (1st percentile over the corpus), a held synthetic
# chord a few hundredths, whose ripple would otherwise count as ten onsets a second.
ONSET_MIN_RANGE_DB = 1.0
PER_TRACK = ("tcent", "onset_rate25", "acf_max")
NAMES = PER_CLIP + PER_TRACK


def check_names(names) -> tuple[str, ...]:
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise ValueError(f"unknown descriptor {unknown[0]!r} (known: {', '.join(NAMES)})")
    return tuple(names)


# ---------------------------------------------------------------- librosa's building blocks, ported

def running_extreme(x: np.ndarray, size: int, *, axis: int, largest: bool) -> np.ndarray:
    """scipy.ndimage.maximum_filter1d (or minimum_filter1d) of `x` along `axis`, window `size` centred
    (origin 0), edges mirrored (mode "reflect": d c b a | a b c d | d c b a), with numpy alone: the same
    values exactly (a maximum is exact), without scipy.ndimage's import (a third of a second). Windows
    of 2, 4, 8, ... from those of half the size, then two overlapping ones: log2(size) + 1 passes."""
    x = np.moveaxis(np.asarray(x), axis, -1)
    n, before = x.shape[-1], size // 2
    after = size - 1 - before
    pad = [(0, 0)] * (x.ndim - 1) + [(before, after)]
    out = np.pad(x, pad, mode="symmetric") if n > max(before, after) else _mirror(x, before, after)
    pick = np.maximum if largest else np.minimum
    width = 1  # out[..., i] is the extreme of the padded values i .. i + width - 1
    while 2 * width <= size:
        out = pick(out[..., :-width], out[..., width:])
        width *= 2
    if width < size:
        out = pick(out[..., :n], out[..., size - width:size - width + n])
    return np.moveaxis(np.ascontiguousarray(out[..., :n]), -1, axis)


def _mirror(x: np.ndarray, before: int, after: int) -> np.ndarray:
    """Mirror-pad the last axis by more than its length, as scipy.ndimage's "reflect" does (period 2n)."""
    n = x.shape[-1]
    idx = np.arange(-before, n + after) % (2 * n)
    return x[..., np.where(idx < n, idx, 2 * n - 1 - idx)]


def onset_strength(Sdb: np.ndarray, *, lag: int = 1, max_size: int = 1) -> np.ndarray:
    """librosa.onset.onset_strength(S=Sdb, lag, max_size) with its defaults (mean over bands, centred)."""
    with stage("onset envelope"):
        ref = Sdb if max_size == 1 else running_extreme(Sdb, max_size, axis=-2, largest=True)
        env = np.maximum(0.0, Sdb[..., lag:] - ref[..., :-lag]).mean(axis=-2)
        pad = lag + N_FFT // (2 * HOP)
        return np.concatenate([np.zeros(pad, dtype=env.dtype), env])[: Sdb.shape[-1]]


def count_onsets(env: np.ndarray, sample_rate: int, *, min_range: float = 0.0) -> int:
    """len(librosa.onset.onset_detect(onset_envelope=env)): normalise, then librosa's peak picking.
    `min_range` (dB): an envelope whose range is smaller is scaled as if it spanned that much, so the
    ripple of a sound that hardly changes (a drone, a held chord) does not count as dozens of onsets
    (librosa scales every envelope to its own range)."""
    x = env - env.min()
    x = x / (max(x.max(), min_range) + np.finfo(x.dtype).tiny)
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
    """Percussive share of the mel power `S` (n_mels, frames), from grey-level openings. The openings
    run in float32, which holds S's values exactly (the mel power is float32): a minimum or maximum
    picks one of them, so the result is the same, at less cost."""
    narrow = S.astype(np.float32)
    if not np.array_equal(narrow, S):
        narrow = S

    def opening(axis: int) -> np.ndarray:
        eroded = running_extreme(narrow, OPEN_SIZE, axis=axis, largest=False)
        return running_extreme(eroded, OPEN_SIZE, axis=axis, largest=True).astype(S.dtype)

    H, P = opening(1), opening(0)
    return float((P ** 2 / (H ** 2 + P ** 2 + 1e-20) * S).sum() / (S.sum() + 1e-20))


def band_centres(n_mels: int, sample_rate: int) -> np.ndarray:
    """The frequency (Hz) each of `n_mels` bands stands for, mels evenly spaced from 0 Hz to sr/2."""
    from tagger.filters import hz_to_mel, mel_to_hz

    return mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2), n_mels))


def band_flux(Sdb: np.ndarray, sample_rate: int, lo: float = 0.0, hi: float = np.inf) -> float:
    """Mean superflux onset strength (lag 2, max_size 3, first 2 frames dropped) of the mel bands of one
    clip's dB (n_mels, frames) whose centre lies in [lo, hi) Hz: how much, in dB per frame, that range
    of the sound keeps changing."""
    freqs = band_centres(Sdb.shape[0], sample_rate)
    band = (freqs >= lo) & (freqs < hi)
    return float(onset_strength(Sdb[band], lag=2, max_size=3)[2:].mean())


def flux_mid(Sdb: np.ndarray, sample_rate: int) -> float:
    """band_flux of the 200-2000 Hz bands."""
    return band_flux(Sdb, sample_rate, *MID_BAND_HZ)


def frame_rms_db(y: np.ndarray) -> np.ndarray:
    """The clip's frame loudness (rms over 2048-sample frames, hop 512) in dB, floored RMS_RANGE_DB below
    its loudest frame: unchanged by gain."""
    padded = np.pad(np.asarray(y, dtype=np.float32), N_FFT // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    db = 20 * np.log10(np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)) + 1e-10)
    return np.maximum(db, db.max() - RMS_RANGE_DB)


def centroid(S: np.ndarray, sample_rate: int) -> float:
    freqs = band_centres(S.shape[0], sample_rate)
    cent = (freqs[:, None] * S).sum(0) / (S.sum(0) + 1e-20)
    return float(np.log2(np.median(cent) + 1))


# ---------------------------------------------------------------- descriptors

def mels(samples: np.ndarray, sample_rate: int, *, top_db: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Clips (n_clips, n_samples) -> their mel power and its dB, (n_clips, n_mels, frames) each. With
    `top_db`, each clip's dB is floored that far below its loudest bin (librosa's power_to_db(top_db)
    per clip): the dB then moves with the music, not with the gain, and an encoder's faint noise floor
    cannot read as movement."""
    from tagger.filters import mel_power

    S = mel_power(np.atleast_2d(samples), sample_rate, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS).astype(np.float64)
    Sdb = 10.0 * np.log10(np.maximum(S, AMIN))
    if top_db is not None:
        Sdb = np.maximum(Sdb, Sdb.max(axis=(-2, -1), keepdims=True) - top_db)
    return S, Sdb


def _crest(y: np.ndarray) -> float:
    """Peak level over mean power, dB."""
    y = np.asarray(y, dtype=np.float64)
    return float(20 * np.log10(np.abs(y).max() + 1e-10) - 10 * np.log10(np.mean(y ** 2) + 1e-20))


# name -> f(samples, mel power, its dB, sample rate) for one clip (onset_rate: see clip_values)
_CLIP_FUNCTIONS = {
    "onset_rate": None,
    "rms_db": lambda y, S, Sdb, sr: rms_db(y),
    "perc_fast": lambda y, S, Sdb, sr: perc_fast(S),
    "centroid": lambda y, S, Sdb, sr: centroid(S, sr),
    "flux_mid": lambda y, S, Sdb, sr: band_flux(Sdb, sr, *BANDS_HZ["flux_mid"]),
    "flux_low": lambda y, S, Sdb, sr: band_flux(Sdb, sr, *BANDS_HZ["flux_low"]),
    "flux_high": lambda y, S, Sdb, sr: band_flux(Sdb, sr, *BANDS_HZ["flux_high"]),
    "flux_all": lambda y, S, Sdb, sr: band_flux(Sdb, sr),
    "dyn_range": lambda y, S, Sdb, sr: float(np.subtract(*np.percentile(frame_rms_db(y), [95, 10]))),
    "crest": lambda y, S, Sdb, sr: _crest(y),
    "rms_var": lambda y, S, Sdb, sr: float(np.std(np.diff(frame_rms_db(y)))),
}


def clip_values(y: np.ndarray, S: np.ndarray, Sdb: np.ndarray, sample_rate: int,
                names=PER_CLIP, *, min_range: float = 0.0) -> dict[str, float]:
    """The per-clip descriptors `names` (default all) of one clip (samples, mel power, its dB);
    `min_range`: see count_onsets."""
    out = {}
    for n in names:
        if n == "onset_rate":
            out[n] = count_onsets(onset_strength(Sdb), sample_rate, min_range=min_range) / (len(y) / sample_rate)
        elif n in _CLIP_FUNCTIONS:
            out[n] = float(_CLIP_FUNCTIONS[n](y, S, Sdb, sample_rate))
    return out


def superflux(Sdb: np.ndarray) -> np.ndarray:
    """One clip's superflux onset envelope (lag 2, max_size 3), its first 2 frames dropped."""
    return onset_strength(Sdb, lag=2, max_size=3)[2:]


def rhythm_values(mels_db: list[np.ndarray], sample_rate: int, *, min_range: float = 0.0) -> dict[str, float]:
    """tcent, onset_rate25, acf_max of the clips' joined superflux onset envelope (`min_range`: see
    count_onsets)."""
    return envelope_rhythm([superflux(m) for m in mels_db], sample_rate, min_range=min_range)


def envelope_rhythm(envelopes: list[np.ndarray], sample_rate: int, *, min_range: float = 0.0) -> dict[str, float]:
    """rhythm_values from the clips' superflux envelopes, joined in order."""
    fps = sample_rate / HOP
    env = np.concatenate(envelopes)
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
            "onset_rate25": count_onsets(env, sample_rate, min_range=min_range) / (n / fps),
            "acf_max": float(a.max()) if len(a) else 0.0}


def track_descriptors(samples: np.ndarray, sample_rate: int, *, top_db: float | None = None,
                      names=None) -> tuple[dict[str, float], list[dict[str, float]]]:
    """(n_clips, n_samples), the clips in order -> (the track's descriptors, each clip's descriptors
    computed from that clip alone, its rhythm values included). `top_db`: see `mels`. `names`: only
    these (default all; a model computes just its own)."""
    names = NAMES if names is None else check_names(names)
    samples = np.atleast_2d(np.asarray(samples, dtype=np.float32))
    with stage("spectrogram"):
        S, Sdb = mels(samples, sample_rate, top_db=top_db)
    min_range = ONSET_MIN_RANGE_DB if top_db is not None else 0.0
    rhythm = any(n in PER_TRACK for n in names)
    per_clip, envelopes = [], []
    for y, s, sdb in zip(samples, S, Sdb):
        values = clip_values(y, s, sdb, sample_rate, names, min_range=min_range)
        if rhythm:
            envelopes.append(superflux(sdb))
            values.update(envelope_rhythm(envelopes[-1:], sample_rate, min_range=min_range))
        per_clip.append(values)
    track = {k: float(np.mean([c[k] for c in per_clip])) for k in PER_CLIP if k in per_clip[0]}
    if rhythm:
        track.update(envelope_rhythm(envelopes, sample_rate, min_range=min_range))
    return track, per_clip


def vector(values: dict[str, float], names) -> np.ndarray:
    return np.array([values[n] for n in names], dtype=np.float64)
