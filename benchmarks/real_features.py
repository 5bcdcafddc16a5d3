"""Candidate descriptors for the real-recordings study (benchmarks/real_cv.py), and the alterations
its robustness check applies (a quieter master, a brighter one, a 128 kbit/s MP3).

Every candidate is computed from the default plan's clips (5 x 5 s spread over the middle 60 %,
22,050 Hz mono), with tagger.descriptors' building blocks. Names ending in `_r` use a dB scale
floored 80 dB below each clip's loudest mel bin (as librosa's power_to_db(top_db=80)) instead of an
absolute -100 dB floor: a change of gain then changes nothing, and a faint residue (an encoder's
requantised noise floor) cannot read as movement.
"""
from __future__ import annotations

import numpy as np

from tagger import descriptors as d
from tagger.weights import ClipPlan

VERSION = 4  # 4: the tonal candidates (tonal_features.py)
SAMPLE_RATE = 22050
TOP_DB = 80.0
ALTERATIONS = ("original", "gain-6db", "treble+3db", "mp3-128k")
PLAN = ClipPlan(placement="spread")  # the default plan: 5 clips of 5 s over the middle 60 %


# The descriptors of moodtag-rhythm 1.1.0 (absolute -100 dB floor), under their own names.
ABSOLUTE = ("onset_rate", "rms_db", "perc_fast", "centroid", "flux_mid", "tcent", "onset_rate25", "acf_max")
# On the floor TOP_DB below each clip's loudest bin, suffixed _r (those that read the dB).
RELATIVE = ("onset_rate", "flux_all", "flux_low", "flux_mid", "flux_high", "tcent", "onset_rate25", "acf_max")
# Gain-invariant whatever the floor.
DYNAMICS = ("dyn_range", "crest", "rms_var")


def track_candidates(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> dict[str, float]:
    """(n_clips, n_samples) -> every candidate (tagger.descriptors.track_descriptors, twice)."""
    absolute, _ = d.track_descriptors(samples, sample_rate, names=ABSOLUTE)
    relative, _ = d.track_descriptors(samples, sample_rate, top_db=TOP_DB, names=RELATIVE + DYNAMICS)
    import tonal_features

    return {**{n: absolute[n] for n in ABSOLUTE}, **{f"{n}_r": relative[n] for n in RELATIVE},
            **{n: relative[n] for n in DYNAMICS}, **tonal_features.track_tonal(samples, sample_rate)}


# ---------------------------------------------------------------- alterations

def treble_shelf(x: np.ndarray, sample_rate: int, *, gain_db: float = 3.0, corner_hz: float = 1000.0) -> np.ndarray:
    """A high shelf (RBJ cookbook, S = 1): +gain_db above corner_hz, applied along the last axis."""
    from scipy.signal import lfilter

    A = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * corner_hz / sample_rate
    alpha = np.sin(w0) / 2 * np.sqrt(2)
    cos = np.cos(w0)
    b = np.array([A * ((A + 1) + (A - 1) * cos + 2 * np.sqrt(A) * alpha),
                  -2 * A * ((A - 1) + (A + 1) * cos),
                  A * ((A + 1) + (A - 1) * cos - 2 * np.sqrt(A) * alpha)])
    a = np.array([(A + 1) - (A - 1) * cos + 2 * np.sqrt(A) * alpha,
                  2 * ((A - 1) - (A + 1) * cos),
                  (A + 1) - (A - 1) * cos - 2 * np.sqrt(A) * alpha])
    return lfilter(b / a[0], a / a[0], x, axis=-1).astype(np.float32)


def altered_clips(path: str, alteration: str, tmpdir: str | None = None) -> np.ndarray:
    """The default plan's clips of `path` under `alteration` (see ALTERATIONS)."""
    from pathlib import Path

    from tagger.audio import load_clips

    plan = PLAN
    if alteration == "mp3-128k":
        import tempfile

        from tagger import synth

        with tempfile.TemporaryDirectory(dir=tmpdir) as tmp:
            audio = synth.decode_whole(Path(path), sample_rate=44100)
            mp3 = synth.encode(audio, Path(tmp) / "x.mp3", bitrate=128_000)
            return load_clips(mp3, plan=plan, sample_rate=SAMPLE_RATE).samples
    samples = load_clips(Path(path), plan=plan, sample_rate=SAMPLE_RATE).samples
    if alteration == "gain-6db":
        return (samples * 10 ** (-6 / 20)).astype(np.float32)
    if alteration == "treble+3db":
        # filtered with a second of the track before each clip would be exact; the filter's memory
        # is a few ms at 1 kHz, so filtering the clip alone differs only in its first milliseconds
        return treble_shelf(samples, SAMPLE_RATE)
    if alteration != "original":
        raise ValueError(alteration)
    return samples
