"""The shipped model's scores on fixed synthetic clips match the stored ones (tests/golden/).

When the shipped model changes on purpose, regenerate the stored scores with
    python tests/test_golden.py --regenerate
and commit tests/golden/moodtag-cnn.json and tests/golden/moodtag-rhythm.json with the new model.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

GOLDEN = Path(__file__).parent / "golden" / "moodtag-cnn.json"
GOLDEN_DEFAULT = Path(__file__).parent / "golden" / "moodtag-rhythm.json"
DESCRIPTOR_TOLERANCE = 1e-3  # relative, on descriptor values
# Onsets are counted: a last-digit difference in another FFT/BLAS build can add or drop one borderline
# onset, 0.2/s in one 5 s clip (1/30 of that in the mean over the 6 golden clips), which moves a
# probability by up to ~0.01 for that clip and ~0.002 for the track.
ONSET_TOLERANCE = {"onset_rate": 0.04, "onset_rate25": 0.04}
DEFAULT_TRACK_TOLERANCE, DEFAULT_CLIP_TOLERANCE = 5e-3, 1.5e-2
TOLERANCE = 2e-3  # absolute, on probabilities: different BLAS/FFT builds differ in the last digits


LOGIT_TOLERANCE = 2e-2  # logits move even where probabilities saturate near 0 or 1


def golden_clips(sample_rate: int, seconds: float) -> tuple[list[str], np.ndarray]:
    """Six deterministic mono clips and their names: two calm and two exciting synth renders
    (`tagger.synth.render`), 2 Hz decaying pulses, and amplitude-modulated seeded noise."""
    from tagger.synth import render

    n = int(round(seconds * sample_rate))
    names, clips = [], []
    for mood in ("calm", "exciting"):
        for seed in (1, 2):
            x = render(mood, seconds + 1, seed=seed, sample_rate=sample_rate).mean(axis=1)
            start = int(0.5 * sample_rate)
            clips.append(x[start:start + n])
            names.append(f"{mood}-{seed}")
    t = np.arange(n) / sample_rate
    clips.append(0.5 * np.sin(2 * np.pi * 220 * t) * np.exp(-8 * (t % 0.5)))
    names.append("pulses-2hz")
    noise = np.random.default_rng(7).standard_normal(n)
    clips.append(0.1 * noise * (0.5 + 0.5 * np.sin(2 * np.pi * 0.3 * t)))
    names.append("noise-swell")
    return names, np.stack(clips).astype(np.float32)


def current_scores() -> dict:
    import torch

    from tagger.features import features_for_clips
    from tagger.weights import load_model

    model = load_model("moodtag-cnn")
    names, clips = golden_clips(model.spec.sample_rate, model.spec.clips.seconds)
    with torch.inference_mode():
        logits = model.network(features_for_clips(clips, model.spec))
    probs = torch.softmax(logits, dim=1).numpy()  # what analyze.predict_clips returns
    return {"model": {"name": model.spec.name, "version": model.spec.version, "sha256": model.sha256},
            "labels": list(model.spec.labels),
            "scores": {n: [round(float(p), 6) for p in row] for n, row in zip(names, probs)},
            "logits": {n: [round(float(v), 5) for v in row] for n, row in zip(names, logits.numpy())}}


def test_shipped_model_scores_match_golden():
    from tagger.weights import shipped_models

    if not any(p.stem == "moodtag-cnn" for p in shipped_models()):
        pytest.fail("the shipped model models/moodtag-cnn.safetensors is missing")
    stored = json.loads(GOLDEN.read_text())
    now = current_scores()
    assert now["labels"] == stored["labels"]
    assert (now["model"]["name"], now["model"]["version"]) == (stored["model"]["name"], stored["model"]["version"])
    assert now["model"]["sha256"] == stored["model"]["sha256"], \
        "the shipped model file changed: regenerate with `python tests/test_golden.py --regenerate`"
    for name, row in stored["scores"].items():
        np.testing.assert_allclose(now["scores"][name], row, atol=TOLERANCE, err_msg=name)
        np.testing.assert_allclose(now["logits"][name], stored["logits"][name], atol=LOGIT_TOLERANCE, err_msg=name)


def test_predict_clips_gives_the_golden_scores():
    """The inference entry point (`analyze.predict_clips`) agrees with the stored probabilities."""
    from tagger.analyze import predict_clips
    from tagger.weights import load_model

    stored = json.loads(GOLDEN.read_text())
    model = load_model("moodtag-cnn")
    names, clips = golden_clips(model.spec.sample_rate, model.spec.clips.seconds)
    probs = predict_clips(model, clips)
    for name, row in zip(names, probs):
        np.testing.assert_allclose(row, stored["scores"][name], atol=TOLERANCE, err_msg=name)


def test_shipped_model_is_trained():
    """Not random weights: the spec says what it was trained on and how it scored held out."""
    from tagger.weights import read_spec, resolve_model

    spec = read_spec(resolve_model("moodtag-cnn"))
    assert spec.trained_on and spec.created
    assert spec.normalization != {"mean": 0.0, "std": 1.0}
    assert "held_out" in spec.metrics


def default_scores() -> dict:
    """The default model on the golden clips taken as one track's clips: its descriptors, the
    track's probabilities and each clip's (what analyze.predict returns)."""
    from tagger.analyze import predict
    from tagger.descriptors import track_descriptors
    from tagger.weights import DEFAULT_MODEL, load_model

    model = load_model(DEFAULT_MODEL)
    names, clips = golden_clips(model.spec.sample_rate, model.spec.clips.seconds)
    track, _ = track_descriptors(clips, model.spec.sample_rate)
    probs, per_clip = predict(model, clips)
    return {"model": {"name": model.spec.name, "version": model.spec.version, "sha256": model.sha256},
            "labels": list(model.spec.labels),
            "descriptors": {k: round(v, 6) for k, v in track.items()},
            "track": [round(float(p), 6) for p in probs],
            "clips": {n: [round(float(p), 6) for p in row] for n, row in zip(names, per_clip)}}


def test_default_model_matches_golden():
    stored = json.loads(GOLDEN_DEFAULT.read_text())
    now = default_scores()
    assert (now["model"]["name"], now["labels"]) == (stored["model"]["name"], stored["labels"])
    assert now["model"]["sha256"] == stored["model"]["sha256"], \
        "the shipped default model changed: regenerate with `python tests/test_golden.py --regenerate`"
    for k, v in stored["descriptors"].items():
        np.testing.assert_allclose(now["descriptors"][k], v, rtol=DESCRIPTOR_TOLERANCE,
                                   atol=ONSET_TOLERANCE.get(k, 1e-4), err_msg=k)
    np.testing.assert_allclose(now["track"], stored["track"], atol=DEFAULT_TRACK_TOLERANCE)
    for name, row in stored["clips"].items():
        np.testing.assert_allclose(now["clips"][name], row, atol=DEFAULT_CLIP_TOLERANCE, err_msg=name)


def test_default_model_is_trained_and_validated():
    """The default is the descriptor regression on the relative dB floor, fitted (not its initial
    weights) on real game recordings only, with its nested leave-one-game-out figures, its
    robustness to a quieter, a brighter and an MP3 master, and its lockbox score in the file."""
    from tagger.weights import DEFAULT_MODEL, load_model

    model = load_model(DEFAULT_MODEL)
    spec = model.spec
    assert spec.name == "moodtag-rhythm" and spec.features.kind == "descriptors"
    assert spec.features.descriptors == ("onset_rate", "perc_fast", "tcent", "onset_rate25", "acf_max", "flux_mid")
    assert spec.features.top_db == 80.0 and spec.clips.placement == "spread"
    assert spec.architecture == {"name": "descriptor_logistic", "n_features": 6}
    net = model.network
    assert net.scale.min() > 0 and abs(net.mean).max() > 0 and abs(net.weight).sum() > 0
    pooled = spec.metrics["held_out"]["pooled"]
    # real recordings only: the development games, no rendered scores, the lockbox games left out
    assert set(pooled["groups"]) == {"0ad", "lugaru", "naev", "openclonk", "supertuxkart", "ufoai"}
    assert pooled["tracks"] >= 180 and pooled["balanced_accuracy"] > 0.75
    nested = spec.metrics["nested_leave_one_game_out"]
    assert nested["tracks"] == pooled["tracks"] and 0.7 < nested["ba"] < pooled["balanced_accuracy"] + 0.05
    assert all(flips["all"] <= 0.03 for flips in spec.metrics["robustness_flips"].values())
    assert spec.metrics["robustness_flips"]["gain-6db"]["all"] == 0.0
    assert spec.metrics["lockbox"]["games"] == ["starfighter", "hedgewars"] and spec.metrics["lockbox"]["tracks"] == 12


if __name__ == "__main__":
    if "--regenerate" not in sys.argv:
        sys.exit("usage: python tests/test_golden.py --regenerate")
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps(current_scores(), indent=2) + "\n")
    GOLDEN_DEFAULT.write_text(json.dumps(default_scores(), indent=2) + "\n")
    print(f"wrote {GOLDEN} and {GOLDEN_DEFAULT}")
