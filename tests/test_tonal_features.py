"""The tonal candidates of the accuracy study (benchmarks/tonal_features.py) measure what they are named for,
on clips whose answer is known: a semitone cluster is rougher than a triad, noise flatter than a chord, a
minor triad reads as minor and a major one as major, harmony that changes moves chroma_flux, and no value
moves with the gain."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # the candidates belong to the study

import tonal_features as T  # noqa: E402

SR = 22050
SECONDS = 5


def chord(freqs, seconds=SECONDS) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    # three harmonics per note, as an instrument has: roughness comes from partials close together
    return sum(np.sin(2 * np.pi * k * f * t) / k for f in freqs for k in (1, 2, 3)).astype(np.float32) / len(freqs)


C_MAJOR = (261.63, 329.63, 392.00)
C_MINOR = (261.63, 311.13, 392.00)
CLUSTER = (261.63, 277.18, 293.66)


def values(y) -> dict[str, float]:
    return T.track_tonal(np.stack([y] * 2), SR)


def test_cluster_rougher_than_triad_and_noise_flatter_than_a_chord():
    triad, cluster = values(chord(C_MAJOR)), values(chord(CLUSTER))
    noise = values((np.random.default_rng(0).standard_normal(SECONDS * SR) * 0.1).astype(np.float32))
    assert cluster["roughness"] > 2 * triad["roughness"] > 0
    assert noise["flatness"] > triad["flatness"] + 5  # log10 of the flatness: noise near 0, tones far below


def test_mode_reads_major_and_minor():
    assert values(chord(C_MAJOR))["mode"] > 0 > values(chord(C_MINOR))["mode"]
    # transposed, the same answer (the profiles are tried in all 12 keys)
    assert values(chord(tuple(f * 2 ** (5 / 12) for f in C_MINOR)))["mode"] < 0


def test_changing_harmony_moves_chroma_flux():
    steady = chord(C_MAJOR)
    changing = np.concatenate([chord(C_MAJOR, SECONDS / 4), chord((293.66, 369.99, 440.0), SECONDS / 4)] * 2)[:len(steady)]
    assert values(changing)["chroma_flux"] > values(steady)["chroma_flux"] + 0.01


@pytest.mark.parametrize("gain", [0.1, 0.5, 2.0])
def test_no_value_moves_with_the_gain(gain):
    y = chord(C_MINOR) + np.random.default_rng(1).standard_normal(SECONDS * SR).astype(np.float32) * 0.01
    before, after = values(y * 0.5), values(y * 0.5 * gain)
    for name in T.NAMES:
        assert after[name] == pytest.approx(before[name], rel=1e-6, abs=1e-9), name
