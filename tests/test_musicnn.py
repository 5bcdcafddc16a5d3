"""The musicnn port (benchmarks/musicnn_port.py) against the original: the converted weights load from plain
safetensors, and the port's outputs on a fixed clip equal those TensorFlow computed with musicnn 0.1.0's
own graph and checkpoint (tests/golden/musicnn.json, written by benchmarks/verify_musicnn.py golden).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # the port belongs to the study

GOLDEN = Path(__file__).parent / "golden" / "musicnn.json"
TOLERANCE = 1e-4   # absolute; the port and TensorFlow differ by ~1e-5 on real clips


def golden_patch() -> np.ndarray:
    """One 3 s patch (1, 187, 96): the log-mel spectrogram of a seeded exciting synth render at 16 kHz."""
    import musicnn_port as musicnn
    from tagger.synth import render

    x = render("exciting", 3.5, seed=1, sample_rate=musicnn.SAMPLE_RATE).mean(axis=1)
    return musicnn.patches(musicnn.log_mel(x[None, :48000]), musicnn.FRAMES)[:1]


@pytest.mark.parametrize("model", ["MTT_musicnn", "MSD_musicnn"])
def test_port_equals_tensorflow_golden(model):
    import musicnn_port as musicnn

    golden = json.loads(GOLDEN.read_text())
    got = musicnn.embed(musicnn.shipped_tagger(model), golden_patch())
    for layer in ("taggram", "penultimate"):
        want = np.array(golden[f"{model}/{layer}"])
        assert np.abs(got[layer][0] - want).max() < TOLERANCE, (model, layer)


@pytest.mark.parametrize("model", ["MTT_musicnn", "MSD_musicnn"])
def test_weights_are_plain_safetensors_with_attribution(model):
    """Header (JSON) then raw little-endian tensors and nothing else: no pickle anywhere."""
    import musicnn_port as musicnn

    path = musicnn.weights_dir() / f"{model}.safetensors"
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    info = json.loads(header.pop("__metadata__")["musicnn"])
    ends = sorted(v["data_offsets"][1] for v in header.values())
    assert ends[-1] == len(raw) - 8 - n
    assert {v["dtype"] for v in header.values()} == {"F32"}
    assert info["licence"] == "ISC" and "Jordi Pons" in info["licence_text"] and len(info["labels"]) == 50
    assert musicnn.load_tagger(path).name == model


def test_a_file_missing_a_tensor_is_refused(tmp_path):
    from safetensors.numpy import load_file, save_file

    import musicnn_port as musicnn

    src = musicnn.weights_dir() / "MTT_musicnn.safetensors"
    tensors = load_file(str(src))
    del tensors["mid3.weight"]
    from safetensors import safe_open

    with safe_open(str(src), framework="np") as fh:
        meta = fh.metadata()
    save_file(tensors, str(tmp_path / "broken.safetensors"), metadata=meta)
    with pytest.raises(ValueError, match="mid3.weight"):
        musicnn.load_tagger(tmp_path / "broken.safetensors")
