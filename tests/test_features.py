"""Features equal librosa's reference implementation, and have the shape the model expects."""
from __future__ import annotations

import numpy as np
import pytest

from tagger import synth
from tagger.features import clip_matrices, features_for_clips
from tagger.filters import dct_matrix, mel_filterbank
from tagger.weights import FeatureSpec, ModelSpec


@pytest.fixture(scope="module")
def clips():
    track = synth.render("exciting", 12.0, seed=5, sample_rate=22050).mean(axis=1)
    return np.stack([track[:110250], track[22050:132300]]).astype(np.float32)


def test_mel_filterbank_matches_librosa():
    import librosa

    for sr, n_fft, n_mels, fmin, fmax in [(22050, 2048, 128, 0.0, None), (16000, 1024, 64, 50.0, 7000.0)]:
        ours = mel_filterbank(sr, n_fft, n_mels, fmin, fmax)
        ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
        assert np.allclose(ours, ref, atol=1e-7)


@pytest.mark.parametrize("kind", ["mel", "stft", "mfcc"])
def test_clip_matrices_match_librosa(clips, kind):
    import librosa

    spec = FeatureSpec(kind=kind, size=(128, 128))
    power = np.abs(librosa.stft(clips, n_fft=spec.n_fft, hop_length=spec.hop_length)) ** 2
    if kind == "stft":
        ref = librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=None)
    else:
        mel = librosa.feature.melspectrogram(S=power, sr=22050, n_mels=spec.n_mels)
        ref = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
        if kind == "mfcc":
            ref = librosa.feature.mfcc(S=ref, n_mfcc=spec.n_mfcc)
    unresized = FeatureSpec(kind=kind, size=ref.shape[1:])
    ours = clip_matrices(clips, unresized, 22050)
    assert ours.shape == ref.shape
    diff = np.abs(ours - ref)
    assert np.percentile(diff, 99.9) < 1e-2  # float32 rounding, in dB
    assert diff.max() < 0.2                  # only in near-silent bins


def test_dct_is_orthonormal():
    d = dct_matrix(32, 32)
    assert np.allclose(d @ d.T, np.eye(32), atol=1e-5)


def test_model_input_shape_and_normalisation(clips):
    spec = ModelSpec(name="t", version="0", labels=("calm", "exciting"), normalization={"mean": -30.0, "std": 15.0})
    x = features_for_clips(clips, spec)
    assert tuple(x.shape) == (2, 3, 128, 128)
    assert np.allclose(x[:, 0].numpy(), x[:, 2].numpy())
    raw = clip_matrices(clips, spec.features, 22050)
    assert np.allclose(x[:, 0].numpy(), (raw - -30.0) / 15.0, atol=1e-5)
