"""Where the CNN runs (--device): the CPU by default, CUDA only when asked for and present, clips in
batches. The development machine has no GPU; where one is present, the CUDA case compares with the
CPU instead of expecting the error."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from tagger.analyze import CLIP_BATCH, decide, predict
from tagger.audio import load_clips
from tagger.weights import load_model
from tests.conftest import run_cli
from tests.test_faults import one_error_line
from tests.test_scan import rows

CUDA = torch.cuda.is_available()


@pytest.fixture
def cnn_library(tmp_path, audio_dir):
    lib = tmp_path / "lib"
    lib.mkdir()
    for src in sorted(audio_dir.iterdir())[:3]:
        shutil.copy(src, lib / src.name)
    return lib


def test_batches_of_clips_score_as_one_clip_at_a_time(audio_dir):
    """The batched path (all clips of a track in one pass, or CLIP_BATCH at a time) gives each clip
    the scores it gets alone, to float32 rounding (oneDNN sums in another order for another batch
    size: ~3e-9 here), so every decision is the same."""
    model = load_model("moodtag-cnn", device="cpu")
    assert model.device == "cpu" and next(model.network.parameters()).device.type == "cpu"
    for track in sorted(audio_dir.iterdir())[:3]:
        clips = load_clips(track, plan=model.spec.clips, sample_rate=model.spec.sample_rate).samples
        many = np.concatenate([clips] * 8)  # 40 clips: more than one CLIP_BATCH
        assert len(many) > CLIP_BATCH
        batched_mean, batched = predict(model, many)
        alone_mean, alone = predict(model, many, batch=1)
        np.testing.assert_allclose(batched, alone, rtol=0, atol=1e-6)
        assert decide(model.spec, batched_mean) == pytest.approx(decide(model.spec, alone_mean), abs=1e-6)
        assert decide(model.spec, batched_mean)[0] == decide(model.spec, alone_mean)[0]


def test_device_cpu_and_auto_without_cuda_scan_as_the_default(cnn_library, tmp_path):
    results = []
    for name, device in (("default", ()), ("cpu", ("--device", "cpu")), ("auto", ("--device", "auto"))):
        copy = tmp_path / name
        shutil.copytree(cnn_library, copy)
        run_cli("scan", copy, "--db", tmp_path / f"{name}.db", "--model", "moodtag-cnn", "--no-write", "--jobs", "1",
                *device, check=True)
        results.append(_results(tmp_path / f"{name}.db"))
    assert results[0] == results[1] and len(results[0]) == 3
    if not CUDA:
        assert results[2] == results[0]


def test_cuda_is_one_clear_line_without_cuda_and_matches_the_cpu_with_it(cnn_library, tmp_path):
    """No GPU here: --device cuda is one line, exit 1, nothing written. With one, its results are the
    CPU's within 1e-4."""
    db = tmp_path / "gpu.db"
    if not CUDA:
        line = one_error_line(run_cli("scan", cnn_library, "--db", db, "--model", "moodtag-cnn", "--device", "cuda",
                                      "--jobs", "1"))
        assert "--device cuda: " in line and ("built without CUDA" in line or "no usable CUDA GPU" in line), line
        assert not db.exists()
        return
    copy = tmp_path / "copy"
    shutil.copytree(cnn_library, copy)
    run_cli("scan", cnn_library, "--db", tmp_path / "cpu.db", "--model", "moodtag-cnn", "--no-write", check=True)
    run_cli("scan", copy, "--db", db, "--model", "moodtag-cnn", "--no-write", "--device", "cuda", check=True)
    cpu, gpu = _results(tmp_path / "cpu.db"), _results(db)
    assert {k: v[0] for k, v in cpu.items()} == {k: v[0] for k, v in gpu.items()}
    for name in cpu:
        assert gpu[name][1] == pytest.approx(cpu[name][1], abs=1e-4)


def test_the_descriptor_model_ignores_the_device(cnn_library, tmp_path):
    run_cli("scan", cnn_library, "--db", tmp_path / "rhythm.db", "--no-write", "--device", "cuda", check=True)
    assert {r["status"] for r in rows(tmp_path / "rhythm.db").values()} == {"ok"}


def test_an_unknown_device_is_refused(cnn_library, tmp_path):
    proc = run_cli("scan", cnn_library, "--db", tmp_path / "x.db", "--device", "gpu")
    assert proc.returncode == 2 and "'gpu' is not one of cpu, cuda, auto" in proc.stderr


def _results(db) -> dict[str, tuple]:
    """File name -> (mood, confidence, model, status) of every cached track."""
    return {path.rsplit("/", 1)[1]: (r["mood"], r["confidence"], r["model_name"], r["model_version"], r["status"])
            for path, r in rows(db).items()}
