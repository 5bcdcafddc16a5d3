"""benchmarks/cnn_features.py and benchmarks/cnn_cv.py (issue 12's CNN study) hold to moodtag's own pipeline:
the packed clips score as `moodtag scan` scores the file, the sampling weights are tagger.train's, and a
trainer run does what its options say. Real audio (synthesised, encoded as FLAC), the shipped moodtag-cnn."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tagger.analyze import analyze_track
from tagger.dataset import Item
from tagger.synth import make_track
from tagger.train import balance_weights
from tagger.weights import load_model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import cnn_cv  # noqa: E402
import cnn_features  # noqa: E402


@pytest.fixture
def packed(tmp_path, monkeypatch) -> tuple[Path, list[Path]]:
    """Four real tracks of two "games", packed as cnn_features.py packs them (moodtag's feature cache in tmp)."""
    monkeypatch.setenv("MOODTAG_FEATURE_CACHE", str(tmp_path / "fcache"))
    specs = [("a", "calm", 0), ("a", "exciting", 1), ("b", "calm", 2), ("b", "exciting", 3)]
    paths = [make_track(tmp_path / f"{g}{i}.flac", mood, 40, seed=i) for g, mood, i in specs]
    got = [cnn_features.track_inputs(str(p), 20.0) for p in paths]
    out = tmp_path / "dev.npz"
    np.savez_compressed(out, infer=np.stack([g["infer"] for g in got]),
                        pool=np.concatenate([g["pool"] for g in got], axis=1),
                        lengths=np.array([g["pool"].shape[1] for g in got]),
                        y=np.array([int(m == "exciting") for _, m, _ in specs]),
                        games=np.array([g for g, _, _ in specs]), menu=np.zeros(4, dtype=bool),
                        paths=np.array([p.name for p in paths]), db_lo=cnn_features.DB_LO,
                        db_step=cnn_features.DB_STEP)
    return out, paths


def test_packed_clips_score_as_a_scan_scores_the_file(packed):
    """The shipped moodtag-cnn on the packed (quantised) inference clips gives the P(exciting) that
    analyze_track gives on the file itself: the packing takes the same clips and resizes them alike."""
    out, paths = packed
    model = load_model(ROOT / "models" / "moodtag-cnn.safetensors")
    tr = cnn_cv.Trainer(cnn_cv.load(out), "cpu")
    cfg = {**cnn_cv.BASE, "center": model.spec.features.center}
    norm = (float(model.spec.normalization["mean"]), float(model.spec.normalization["std"]))
    packed_p = tr.score(model.network, norm, cfg)
    scan_p = np.array([analyze_track(p, model).scores["exciting"] for p in paths])
    assert np.abs(packed_p - scan_p).max() < 0.02, (packed_p, scan_p)
    assert np.ptp(scan_p) > 0.05  # the tracks differ, so agreement is not agreement on a constant


def test_balance_is_tagger_trains_rule():
    games = np.array(["a"] * 30 + ["b"] * 7 + ["c"] * 2 + ["d"] * 12)
    y = np.array([0] * 25 + [1] * 5 + [1] * 7 + [0, 1] + [0] * 3 + [1] * 9)
    items = [Item(path=Path(f"{i}.ogg"), label=("calm", "exciting")[c], group=g) for i, (g, c) in enumerate(zip(games, y))]
    np.testing.assert_allclose(cnn_cv.balance(games, y), balance_weights(items, ("calm", "exciting")), rtol=1e-12)


def test_a_trainer_run_uses_the_epochs_it_was_given(packed, tmp_path):
    """--epochs reaches the spawned workers (they re-import the file: a change made after the import would not),
    and each job writes its held-out predictions."""
    out, _ = packed
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cnn_cv.py"), "train", str(out), "--out",
                          str(tmp_path / "run"), "--workers", "1", "--limit", "1", "--epochs", "1",
                          "--configs", "long"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    # without game a: 2 tracks x 16 clips per epoch, batch 32 -> 1 step per epoch
    assert "without a long seed 0: 1 steps" in res.stdout, res.stdout
    pred = np.load(tmp_path / "run" / "predictions.npz")
    assert list(pred.files) == ["a|long|0"]
    assert pred["a|long|0"].shape == (4,) and np.isfinite(pred["a|long|0"]).all()


def test_the_report_pools_each_games_held_out_predictions(packed, tmp_path, capsys):
    """report: each track is scored by the model trained without its game, pooled; nothing nested without
    the two-game sets. Here the model without a scores game a right and the one without b scores b wrong."""
    out, _ = packed
    np.savez(tmp_path / "p.npz", **{"a|seed|0": np.array([0.2, 0.9, 0.5, 0.5]),    # game a: right
                                    "b|seed|0": np.array([0.5, 0.5, 0.8, 0.3])})   # game b: both wrong
    assert cnn_cv.main(["report", str(out), str(tmp_path / "p.npz"), "--configs", "seed",
                        "--json", str(tmp_path / "r.json")]) == 0
    import json

    entry = json.loads((tmp_path / "r.json").read_text())["seeds [0]"]
    f = entry["plain_logo"]["seed"]
    assert (f["ba"], f["auc"]) == (0.5, 0.75)  # 2 of 4 right, one per label; 3 of the 4 (exciting, calm) pairs ranked right
    assert [r["accuracy"] for r in f["per_game"]] == [1.0, 0.0]
    assert f["user"] == {"calm_tagged_exciting": 0.5, "exciting_tagged_calm": 0.5}
    assert "nested" not in entry and "no nested figure" in capsys.readouterr().out


def test_score_runs_a_model_file_on_the_packed_games(packed, capsys):
    """score: a CNN model file on the packed clips of the games named, as `moodtag scan` would score them."""
    out, paths = packed
    assert cnn_cv.main(["score", str(out), str(ROOT / "models" / "moodtag-cnn.safetensors"), "--games", "b"]) == 0
    text = capsys.readouterr().out
    model = load_model(ROOT / "models" / "moodtag-cnn.safetensors")
    p = [analyze_track(path, model).scores["exciting"] for path in paths[2:]]
    assert f"moodtag-cnn 1.0.0 on b (2 tracks, 1 calm): " in text and f"b {np.mean(p):.2f}" in text, (text, p)
    with pytest.raises(SystemExit, match="no game 'c'"):
        cnn_cv.main(["score", str(out), str(ROOT / "models" / "moodtag-cnn.safetensors"), "--games", "c"])


def test_a_training_that_fails_is_said_and_the_run_ends(packed, tmp_path):
    """A training that raises in a worker (here --epochs -1: no schedule of -1 epochs) is one line naming it and
    the cause, the other trainings go on, and the run exits 1: it used to wait for the dead job's result forever."""
    out, _ = packed
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cnn_cv.py"), "train", str(out), "--out",
                          str(tmp_path / "run"), "--workers", "1", "--limit", "2", "--epochs", "-1",
                          "--configs", "seed"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "without a seed seed 0: failed (ValueError: " in res.stdout and "2 of 2 trainings failed" in res.stdout, res.stdout
