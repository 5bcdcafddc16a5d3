"""Training and evaluation end to end on a tiny synthetic data set (seconds, CPU, no network)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tagger import metrics
from tagger.cli import app
from tagger.dataset import Item, load_items, load_many, parse_labels
from tagger.errors import MoodtagError
from tagger.synth import make_track
from tagger.weights import ModelSpec, load_model, read_spec
from tests.test_scan import ROOT, _without_root_powers

ROOT_DIR = Path(__file__).resolve().parent.parent  # the source checkout: tagger/ and models/
TINY = ["--epochs", "2", "--clips-per-track", "2", "--batch-size", "4", "--threads", "1"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """6 calm + 6 exciting 12-second WAV tracks in 3 groups (g0, g1, g2), named <group>__<name>."""
    root = tmp_path_factory.mktemp("data")
    for i in range(12):
        mood = ("calm", "exciting")[i % 2]
        (root / mood).mkdir(exist_ok=True)
        make_track(root / mood / f"g{i % 3}__t{i:02d}.wav", mood, 12, seed=i)
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("features")


@pytest.fixture(scope="module")
def trained(data, cache, tmp_path_factory):
    """A model trained through the CLI, with g2 held out; (path, the command's JSON)."""
    model = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    result = CliRunner().invoke(app, ["train", str(data), "--out", str(model), "--val-groups", "g2",
                                      "--cache-dir", str(cache), "--json", *TINY])
    assert result.exit_code == 0, result.output
    return model, json.loads(result.stdout)


def _spec(labels=("calm", "exciting")) -> ModelSpec:
    return ModelSpec(name="tiny", version="0.0.1", labels=labels)


# ---------------------------------------------------------------- the CLI end to end

def test_train_writes_a_model(trained):
    model, summary = trained
    spec = read_spec(model)
    assert (spec.name, spec.version) == ("tiny", "1.0.0")  # the file's name: never a shipped model's by default
    assert spec.labels == ("calm", "exciting")
    assert spec.trained_on.startswith("8 tracks (calm 4, exciting 4) in 2 groups")
    assert spec.normalization["std"] > 1
    assert "validation" in spec.metrics and spec.created
    assert summary["val_groups"] == ["g2"] and summary["train_groups"] == ["g0", "g1"]
    assert [h["epoch"] for h in summary["history"]] == [1, 2]
    assert all("val_roc_auc" in h for h in summary["history"])


def test_classify_and_evaluate_use_the_trained_model(trained, data):
    model, _ = trained
    runner = CliRunner()
    track = sorted((data / "calm").iterdir())[0]
    result = runner.invoke(app, ["classify", "--model", str(model), "--json", str(track)])
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    assert row["mood"] in ("calm", "exciting") and row["error"] is None
    assert len(row["clips"]) == 2  # a 12 s track holds two whole 5 s clips

    result = runner.invoke(app, ["evaluate", str(data), "--model", str(model), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["tracks"] == 12 and report["failed"] == 0
    assert sum(map(sum, report["confusion"])) == 12
    assert {g["group"] for g in report["groups"]} == {"g0", "g1", "g2"}
    assert 0 <= report["roc_auc"] <= 1 and len(report["rows"]) == 12

    result = runner.invoke(app, ["evaluate", str(data), "--model", str(model), "--tracks"])
    assert result.exit_code == 0, result.output
    assert "balanced accuracy" in result.stdout and "g0__t00.wav" in result.stdout


def test_same_seed_same_weights(data, cache):
    from tagger.train import train_model

    items = load_items(data)
    kwargs = dict(spec=_spec(), epochs=1, clips_per_track=2, batch_size=4, cache_dir=cache, threads=1)
    a = train_model(items, seed=3, **kwargs)
    b = train_model(items, seed=3, **kwargs)
    c = train_model(items, seed=4, **kwargs)
    assert a.state_dict.keys() == b.state_dict.keys()
    for key in a.state_dict:
        assert torch.equal(a.state_dict[key], b.state_dict[key]), key
    assert a.spec.normalization == b.spec.normalization
    assert any(not torch.equal(a.state_dict[k], c.state_dict[k]) for k in a.state_dict if k.endswith("weight"))


def test_ternary_labels_from_folders(tmp_path, cache):
    for i in range(6):
        for mood in ("calm", "exciting", "sad"):
            (tmp_path / mood).mkdir(exist_ok=True)
            make_track(tmp_path / mood / f"g{i % 2}__{mood}{i}.flac", mood, 11, seed=10 + i)
    model = tmp_path / "three.safetensors"
    result = CliRunner().invoke(app, ["train", str(tmp_path), "--out", str(model), "--labels", "calm,exciting,sad",
                                      "--val-groups", "g1", "--cache-dir", str(cache), "--epochs", "1",
                                      "--clips-per-track", "2", "--batch-size", "6", "--threads", "1"])
    assert result.exit_code == 0, result.output
    loaded = load_model(model)
    assert loaded.spec.labels == ("calm", "exciting", "sad") and loaded.spec.threshold is None
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path), "--model", str(model), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["tracks"] == 18 and len(report["confusion"]) == 3


def test_cross_validation_stores_held_out_metrics(data, cache, tmp_path):
    model = tmp_path / "cv.safetensors"
    result = CliRunner().invoke(app, ["train", str(data), "--out", str(model), "--cross-validate",
                                      "--cv-groups", "g0,g1", "--cache-dir", str(cache), "--epochs", "1",
                                      "--clips-per-track", "1", "--batch-size", "4", "--threads", "1"])
    assert result.exit_code == 0, result.output
    held = read_spec(model).metrics["held_out"]
    assert held["pooled"]["tracks"] == 8 and set(held["folds"]) == {"g0", "g1"}
    assert "leave-one-group-out" in held["method"]


# ---------------------------------------------------------------- errors

def test_missing_data_is_one_clear_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tagger", "train", str(tmp_path / "nope"), "--out",
                           str(tmp_path / "m.safetensors")], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "500"})
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and "nope: no such file or folder" in lines[0]


@pytest.mark.parametrize("args, message", [
    (["--val-groups", "g9"], "--val-groups: no group 'g9'"),
    (["--labels", "calm,sad"], "unknown label"),
])
def test_options_the_data_rules_out(data, tmp_path, args, message):
    result = CliRunner().invoke(app, ["train", str(data), "--out", str(tmp_path / "m.safetensors"), *args])
    assert isinstance(result.exception, MoodtagError), result.output
    assert message in str(result.exception)


@pytest.mark.parametrize("args, message", [
    (["--feature", "wav"], "--feature wav: unknown"),
    (["--placement", "edges"], "--placement edges: unknown"),
    (["--center", "time"], "--center time: unknown"),
    (["--epochs", "0"], "--epochs 0: must be at least 1"),
    (["--batch-size", "1"], "--batch-size 1: must be at least 2"),
    (["--threshold", "2"], "--threshold 2.0: must be between 0 and 1"),
    (["--feature", "descriptors", "--c", "0"], "--c 0.0: must be positive"),
    (["--feature", "descriptors", "--descriptors", "tempo"], "--descriptors: unknown descriptor 'tempo'"),
    (["--out", "m.txt"], "--out m.txt: a model file must end in .safetensors"),
])
def test_bad_option_values_are_usage_errors(data, tmp_path, args, message):
    """Wrong whatever the data: click's usage error and exit status 2, as the README says of a bad value
    (they were errors of exit status 1; --epochs 0 only after every track was read)."""
    from tests.conftest import run_cli

    proc = run_cli("train", data, "--out", tmp_path / "m.safetensors", *args, env={"COLUMNS": "300"})
    assert proc.returncode == 2 and proc.stderr.startswith("Usage: moodtag train"), proc.stderr
    assert f"Error: Invalid value: {message}" in proc.stderr, proc.stderr
    assert not (tmp_path / "m.safetensors").exists()


@pytest.mark.parametrize("command, args, message", [
    ("train", ["--group-by", "bogus"],
     "Invalid value for '--group-by': bogus: unknown (choose from auto, prefix, folder, track)"),
    ("evaluate", ["--group-by", "bogus"],
     "Invalid value for '--group-by': bogus: unknown (choose from auto, prefix, folder, track)"),
    ("train", ["--labels", "calm"], "Invalid value: --labels calm: give at least two labels, separated by commas"),
    ("train", ["--labels", "calm,calm"], "Invalid value: --labels calm,calm: a label is repeated"),
    ("train", ["--feature", "descriptors", "--descriptors", ","], "Invalid value: --descriptors ',': names no descriptor"),
    ("train", ["--version", ""], "Invalid value: --version '': empty (an unset variable?)"),
    ("train", ["--version", " "], "Invalid value: --version ' ': empty (an unset variable?)"),
    ("train", ["--name", ""], "Invalid value: --name '': empty (an unset variable?)"),
])
def test_option_values_wrong_whatever_the_data_are_usage_errors(data, tmp_path, command, args, message):
    """These were `error:` lines of exit status 1 (--group-by after the model was loaded, the others after
    DATA was read; --version '' trained and wrote a model whose cache rows and MOODTAG_MODEL tag had an
    empty version, --name '' took the file's name in silence): click's usage error, exit status 2, before
    any track is read, as the README says of a bad value."""
    from tests.conftest import run_cli

    out, cache = tmp_path / "m.safetensors", tmp_path / "fc"
    where = ["--out", out, "--cache-dir", cache] if command == "train" else []
    proc = run_cli(command, data, *where, *args, env={"COLUMNS": "300"}, timeout=60)
    assert proc.returncode == 2 and proc.stderr.startswith(f"Usage: moodtag {command}"), proc.stderr
    assert f"Error: {message}" in proc.stderr, proc.stderr
    assert not out.exists() and not cache.exists()


@pytest.mark.parametrize("feature, args, named, needs", [
    ("mel", ["--descriptors", "no_such", "--c", "-5", "--top-db", "3", "--transform", "bogus"],
     "--descriptors, --top-db, --c, --transform", "need --feature descriptors"),
    ("stft", ["--C", "0.5"], "--C", "needs --feature descriptors"),
    ("descriptors", ["--epochs", "0", "--no-augment", "--val-groups", "g0", "--threads", "1"],
     "--val-groups, --epochs, --augment/--no-augment, --threads",
     "need a network (--feature mel, stft or mfcc), not --feature descriptors"),
    ("descriptors", ["--cross-validate"], "--cross-validate", "needs a network"),
])
def test_an_option_of_the_other_model_kind_is_one_error_line_before_any_work(data, tmp_path, feature, args, named,
                                                                              needs):
    """Descriptor options without --feature descriptors (bad values too) were ignored in silence and a CNN
    training started (hours on a real library); network options with it were ignored too. Each such option
    given is named on one `error:` line, exit status 1 (the README: an option the model kind rules out),
    before a track is read: no feature cache made, no model written."""
    from tests.conftest import run_cli

    out, cache = tmp_path / "m.safetensors", tmp_path / "fc"
    proc = run_cli("train", data, "--out", out, "--cache-dir", cache, *(["--feature", feature] if feature != "mel"
                                                                         else []), *args,
                   env={"COLUMNS": "300"}, timeout=60)
    assert (proc.returncode, proc.stdout) == (1, ""), proc.stderr
    assert proc.stderr.startswith(f"error: {named}: {needs}") and proc.stderr.count("\n") == 1, proc.stderr
    assert not out.exists() and not cache.exists()


def test_train_help_lists_every_descriptor_train_accepts():
    """`train --help` listed 8 descriptors of the 14 --descriptors accepts; its list is checked against
    tagger.descriptors.NAMES, the table train checks names against."""
    from tagger.descriptors import NAMES
    from tests.conftest import run_cli

    proc = run_cli("train", "--help", env={"COLUMNS": "80"})
    flat = " ".join(proc.stdout.split())
    listed = flat.split("--descriptors D1,D2 With --feature descriptors: which ones (of ", 1)[1].split(")", 1)[0]
    assert tuple(listed.split(", ")) == NAMES


@pytest.mark.parametrize("command", [["model-info"], ["train", "DATA", "--out", "m.safetensors"]])
def test_json_help_says_one_object_as_it_prints(command, data, tmp_path):
    """model-info --json and train --json print one JSON object, but their help said 'One JSON object per
    line' (the wording of query's and scan's --json, one object per track)."""
    from tests.conftest import run_cli

    text = " ".join(run_cli(command[0], "--help", env={"COLUMNS": "80"}).stdout.split())
    assert "--json One JSON object instead of the" in text and "per line" not in text, text
    args = [str(data) if a == "DATA" else str(tmp_path / a) if a.endswith(".safetensors") else a for a in command]
    feature = ["--feature", "descriptors", "--cache-dir", tmp_path / "fc"] if command[0] == "train" else []
    proc = run_cli(*args, *feature, "--json")
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 1, proc.stderr
    assert isinstance(json.loads(proc.stdout), dict)


@pytest.mark.parametrize("feature", ["descriptors", "mel"])
def test_data_of_one_label_is_one_clear_line_before_any_training(data, tmp_path, feature):
    """A descriptor model on one label ended in scikit-learn's traceback; a network trained (exit 0) and
    wrote a model every command then refused. An empty DATA ('', an unset variable) trained on the
    current folder; it is a usage error now, as for classify."""
    from tests.conftest import run_cli

    one = tmp_path / "one"
    (one / "calm").mkdir(parents=True)
    for track in sorted((data / "calm").iterdir())[:3]:
        (one / "calm" / track.name).symlink_to(track)
    out = tmp_path / "m.safetensors"
    proc = run_cli("train", one, "--out", out, "--feature", feature, *(TINY[:2] if feature == "mel" else []))
    assert (proc.returncode, proc.stderr) == (1, "error: DATA has one label (calm): a model needs tracks of "
                                                 "two labels at least\n")
    assert not out.exists()
    for command in (["train", "", "--out", out], ["evaluate", ""]):
        proc = run_cli(*command)
        assert proc.returncode == 2 and "Invalid value for 'DATA': an empty path" in proc.stderr, proc.stderr
    assert not out.exists()


def test_a_label_held_by_one_group_is_named(data, tmp_path):
    """A typo'd label on one row ('exciteing') is a third label, all of whose tracks are in one group: the
    held-out validation cannot be made, and the message named the group alone ('holding out group g0
    leaves a label without training tracks'). It names the label now."""
    from tests.conftest import run_cli

    rows = [f"{p},{p.parent.name},{p.name.split('__')[0]}" for p in sorted(data.rglob("*.wav"))]
    rows[0] = rows[0].replace(",calm,", ",exciteing,")
    table = tmp_path / "set.csv"
    table.write_text("path,label,group\n" + "\n".join(rows) + "\n")
    proc = run_cli("train", table, "--out", tmp_path / "m.safetensors", "--feature", "descriptors",
                   "--cache-dir", tmp_path / "fc")
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("error: label 'exciteing': all its tracks (1) are in group 'g0'"), proc.stderr


def test_evaluate_exits_1_when_a_track_could_not_be_read(data, tmp_path):
    """It printed each failure and exited 0, even with every track failed; classify exits 1."""
    from tests.conftest import run_cli

    csv = tmp_path / "set.csv"
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00")
    good = sorted((data / "calm").iterdir())[0]
    csv.write_text(f"path,label\nbroken.wav,calm\n{good},calm\n")
    proc = run_cli("evaluate", csv)
    assert proc.returncode == 1 and f"failed: {tmp_path / 'broken.wav'}: " in proc.stderr, proc.stderr
    assert "1 (1 failed)" in " ".join(proc.stdout.split())
    proc = run_cli("evaluate", csv, "--json")
    assert proc.returncode == 1 and json.loads(proc.stdout)["failed"] == 1, proc.stdout


def test_bad_data(tmp_path):
    with pytest.raises(MoodtagError, match="no label folders"):
        load_items(tmp_path)
    (tmp_path / "calm").mkdir()
    with pytest.raises(MoodtagError, match="no audio files"):
        load_items(tmp_path)
    csv = tmp_path / "set.csv"
    csv.write_text("path,label\ncalm/gone.wav,calm\n")
    with pytest.raises(MoodtagError, match=r"set.csv:2: .*gone.wav: no such audio file"):
        load_items(csv)
    make_track(tmp_path / "calm" / "a.wav", "calm", 6)
    csv.write_text("path,label\ncalm/a.wav,sleepy\n")
    with pytest.raises(MoodtagError, match="unknown label 'sleepy'"):
        load_items(csv, labels=("calm", "exciting"))
    csv.write_text("file,label\n")
    with pytest.raises(MoodtagError, match="no rows"):
        load_items(csv)
    # rows of unequal length: the sniffer gave up ("Could not determine delimiter"); now the row is named
    make_track(tmp_path / "calm" / "b.wav", "exciting", 6)
    for text, message in [
            ("path,label\ncalm/a.wav,calm,extra\ncalm/b.wav,exciting\n", r"3 fields, the header has 2 \(a comma in a path"),
            ("path,label\ncalm/a.wav\ncalm/b.wav,exciting\n", r"empty label$"),
            ('path,label\n"calm/a.wav,calm\ncalm/b.wav,exciting\n', r"empty label \(an unclosed double quote"),
            ("path;label\ncalm/a.wav;calm;x\ncalm/b.wav;exciting\n", r"3 fields, the header has 2"),
            ("path,label,group\ncalm/a.wav,calm\ncalm/b.wav,exciting,g\n", r"2 fields, the header has 3$")]:
        csv.write_text(text)
        with pytest.raises(MoodtagError, match=r"set.csv:2: " + message):
            load_items(csv)


def test_too_short_track_is_skipped(tmp_path, cache):
    from tagger.train import train_model

    for i in range(4):
        for mood in ("calm", "exciting"):
            (tmp_path / mood).mkdir(exist_ok=True)
            make_track(tmp_path / mood / f"t{i}.wav", mood, 3 if i == 0 else 7, seed=i)
    result = train_model(load_items(tmp_path), spec=_spec(), epochs=1, clips_per_track=1, batch_size=3,
                         cache_dir=cache, threads=1)
    assert len(result.skipped) == 2 and all("too short" in why for _, why in result.skipped)


# ---------------------------------------------------------------- data sets

def test_groups_and_csv(tmp_path, data):
    items = load_items(data)
    assert len(items) == 12 and {it.group for it in items} == {"g0", "g1", "g2"}
    assert {it.group for it in load_items(data, group_by="track")} == {
        f"{('calm', 'exciting')[i % 2]}/g{i % 3}__t{i:02d}.wav" for i in range(12)}
    same_names = tmp_path / "same"  # calm/0.wav, calm/0.flac and exciting/0.wav: three tracks, three groups
    for mood in ("calm", "exciting"):
        (same_names / mood).mkdir(parents=True)
        make_track(same_names / mood / "0.wav", mood, 6)
    make_track(same_names / "calm" / "0.flac", "calm", 6)
    assert sorted(it.group for it in load_items(same_names, group_by="track")) == ["calm/0.flac", "calm/0.wav",
                                                                                     "exciting/0.wav"]
    nested = tmp_path / "lib"
    (nested / "calm" / "album").mkdir(parents=True)
    make_track(nested / "calm" / "album" / "01.wav", "calm", 6)
    make_track(nested / "calm" / "loose.wav", "calm", 6)
    assert sorted(it.group for it in load_items(nested)) == ["album", "lib"]
    with pytest.raises(MoodtagError, match="--group-by prefix"):
        load_items(nested, group_by="prefix")
    csv = tmp_path / "set.csv"
    csv.write_text("file,label,source\nlib/calm/album/01.wav,calm,Somebody\nlib/calm/loose.wav,exciting,\n")
    items = load_items(csv)
    assert [(it.path.name, it.label, it.group) for it in items] == [("01.wav", "calm", "Somebody"),
                                                                    ("loose.wav", "exciting", "lib")]
    with pytest.raises(MoodtagError, match="more than once"):
        load_many([csv, csv])


def test_split_and_balance():
    from tagger.train import balance_weights, split_by_group

    items = [Item(path=f"{g}{i}", label=label, group=g) for g, label, n in
             (("a", "calm", 56), ("a", "exciting", 2), ("b", "calm", 2), ("b", "exciting", 37),
              ("c", "calm", 29), ("c", "exciting", 11)) for i in range(n)]
    labels = ("calm", "exciting")
    w = balance_weights(items, labels, power=0.5)
    by = lambda f: sum(wi for wi, it in zip(w, items) if f(it))  # noqa: E731
    assert by(lambda it: it.label == "calm") == pytest.approx(0.5)
    sizes = {"a": 58, "b": 39, "c": 40}
    for g in "abc":
        share = sizes[g] ** 0.5 / sum(n ** 0.5 for n in sizes.values())
        assert by(lambda it: it.group == g) == pytest.approx(share, abs=0.02)
    cell = by(lambda it: it.group == "a" and it.label == "exciting")
    assert 2 / len(items) < cell < by(lambda it: it.group == "a") / 2  # the rare cell is drawn more, not most
    assert w.sum() == pytest.approx(1.0)
    train, val = split_by_group(items, val_groups=["b"])
    assert {it.group for it in val} == {"b"} and {it.group for it in train} == {"a", "c"}
    train, val = split_by_group(items, val_fraction=0.2, seed=1)
    assert not {it.group for it in train} & {it.group for it in val} and val


# ---------------------------------------------------------------- features and metrics

def test_cached_crop_matches_inference_features(data, cache):
    """A crop of the cached matrix is the clip matrix inference computes (away from the STFT's edges)."""
    from tagger.audio import decode_segments
    from tagger.feature_cache import track_matrix
    from tagger.features import clip_matrices, resize

    spec = _spec()
    path = sorted((data / "exciting").iterdir())[0]
    tm = track_matrix(path, spec=spec, span=0.6, cache_dir=cache)
    start = 3.0
    k = tm.frame_at(start)
    exact_start = tm.start + k * tm.hop_seconds
    clip = decode_segments(path, [exact_start], seconds=5.0, sample_rate=spec.sample_rate).samples
    ref = clip_matrices(clip, spec.features, spec.sample_rate)[0]
    crop = resize(tm.matrix[None, :, k:k + tm.clip_frames].astype(np.float32), spec.features.size)[0]
    assert np.abs(crop - ref)[:, 3:-3].max() < 0.5  # dB; float16 storage and resampling edges


def test_metrics_match_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    p = np.round(rng.random(60), 1)  # ties
    scores = np.stack([1 - p, p], axis=1)
    pred = metrics.predict(scores, 0.5)
    assert metrics.roc_auc(y, scores) == pytest.approx(sk.roc_auc_score(y, p))
    assert metrics.balanced_accuracy(y, pred, 2) == pytest.approx(sk.balanced_accuracy_score(y, pred))
    assert (metrics.confusion_matrix(y, pred, 2) == sk.confusion_matrix(y, pred, labels=[0, 1])).all()
    y3 = rng.integers(0, 3, 60)
    s3 = rng.dirichlet(np.ones(3), 60)
    assert metrics.roc_auc(y3, s3) == pytest.approx(sk.roc_auc_score(y3, s3, multi_class="ovr", average="macro"))
    t = metrics.best_threshold(y, p)
    assert metrics.balanced_accuracy(y, (p >= t).astype(int), 2) >= metrics.balanced_accuracy(y, pred, 2)
    assert metrics.binary_auc([True, True], [0.1, 0.2]) is None


def test_band_centering_removes_the_static_spectrum():
    from tagger.feature_cache import TrackMatrix
    from tagger.features import to_input
    from tagger.train import normalization_of
    from tagger.weights import FeatureSpec

    rng = np.random.default_rng(0)
    x = rng.normal(-40, 10, (2, 128, 128)).astype(np.float32) + np.linspace(-20, 20, 128)[None, :, None]
    spec = _spec().with_(features=FeatureSpec(center="band"), normalization={"mean": 0.0, "std": 2.0})
    t = to_input(x, spec)
    assert t.shape == (2, 3, 128, 128)
    assert torch.allclose(t.mean(dim=-1), torch.zeros(2, 3, 128), atol=1e-4)
    assert torch.allclose(to_input(x + 7.0, spec), t, atol=1e-4)  # gain and EQ do not reach the network
    tm = TrackMatrix(matrix=x[0].astype(np.float16), start=0.0, duration=10.0, hop_seconds=0.02, clip_frames=64)
    norm = normalization_of([tm], "band")
    assert abs(norm["mean"]) < 1e-3 and 5 < norm["std"] < 15
    assert normalization_of([tm])["mean"] == pytest.approx(float(x[0].astype(np.float16).mean()), abs=1e-2)


def test_data_takes_the_audio_a_scan_takes_and_names_each_file_it_leaves_out(tmp_path):
    """Opus tracks are trained and evaluated on (as a scan tags them); any other file in a label folder
    is one warning line naming it; hidden files pass silently."""
    from tests.conftest import run_cli

    for i, mood in enumerate(("calm", "exciting")):
        (tmp_path / mood).mkdir()
        make_track(tmp_path / mood / f"g{i}__a.opus", mood, 12, seed=i)
        make_track(tmp_path / mood / f"g{i}__b.wav", mood, 12, seed=5 + i)
    (tmp_path / "calm" / "notes.txt").write_text("where these came from\n")
    (tmp_path / "exciting" / ".DS_Store").write_bytes(b"\0")
    assert sorted(it.path.name for it in load_items(tmp_path)) == ["g0__a.opus", "g0__b.wav", "g1__a.opus", "g1__b.wav"]
    proc = run_cli("evaluate", tmp_path, "--json", env={"COLUMNS": "500"})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["tracks"] == 4
    assert proc.stderr.splitlines() == [
        f"warning: {tmp_path / 'calm' / 'notes.txt'}: skipped: not an audio file (.txt extension)"]


@pytest.mark.skipif(ROOT and not shutil.which("setpriv"), reason="needs setpriv to drop root's powers")
def test_an_unwritable_output_stops_train_before_training(data, cache, tmp_path):
    """-o into a read-only folder, or below a file: one line naming the model file and why, before any
    decoding (no progress, no epoch), not a traceback after the training."""
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o555)
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    for out, why in ((read_only / "m.safetensors", f"{read_only}: permission denied"),
                     (a_file / "m.safetensors", f"{a_file} is a file, not a folder")):
        proc = subprocess.run(_without_root_powers([sys.executable, "-m", "tagger", "train", str(data), "-o", str(out),
                                                    "--cache-dir", str(cache), *TINY]),
                              capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "500"})
        assert (proc.returncode, proc.stdout) == (1, "")
        assert proc.stderr.splitlines() == [f"error: {out}: cannot write ({why})"]
    assert list(read_only.iterdir()) == []


def test_a_failed_save_is_one_clear_error(tmp_path):
    from tagger.weights import save_model

    a_file = tmp_path / "a-file"
    a_file.write_text("")
    with pytest.raises(MoodtagError, match=rf"^{re.escape(str(a_file / 'm.safetensors'))}: cannot write \("):
        save_model(a_file / "m.safetensors", _spec(), {"w": np.zeros(3, dtype=np.float32)})


def test_a_model_retrained_over_a_link_or_a_private_file_keeps_them(data, tmp_path):
    """train --out over a symlink replaced the link with a plain file and left the model it pointed to
    as it was; over a 0600 model it made a 0644 one. Now the file is replaced through the link, with
    its permissions, as playlists are (tagger.atomic)."""
    from tests.conftest import run_cli

    kept = tmp_path / "models" / "mine.safetensors"
    kept.parent.mkdir()
    run_cli("train", data, "--out", kept, "--feature", "descriptors", "--cache-dir", tmp_path / "fc", check=True)
    kept.chmod(0o600)
    before = kept.read_bytes()
    link = tmp_path / "current.safetensors"
    link.symlink_to(kept)
    run_cli("train", data, "--out", link, "--feature", "descriptors", "--c", "0.5", "--cache-dir", tmp_path / "fc",
            check=True)
    assert link.is_symlink() and os.readlink(link) == str(kept)
    assert kept.read_bytes() != before and read_spec(kept).metrics["regression"]["C"] == 0.5
    assert (kept.stat().st_mode & 0o777) == 0o600
    assert sorted(p.name for p in kept.parent.iterdir()) == ["mine.safetensors"]  # no temporary file left


def test_a_shipped_models_name_only_on_purpose_and_with_a_warning(data, cache, tmp_path):
    """A trained model named like a shipped one would share its results in a scan's cache (name and
    version): --name moodtag-cnn (the maintainers retraining it) and an --out file named moodtag-cnn each
    warn once; the name is kept as asked."""
    from tests.conftest import run_cli

    for out, extra, given in ((tmp_path / "retrained.safetensors", ["--name", "moodtag-cnn"], "--name moodtag-cnn"),
                              (tmp_path / "moodtag-cnn.safetensors", [],
                               "the name moodtag-cnn (from the --out file's name)")):
        proc = run_cli("train", data, "-o", out, *extra, "--version", "1.0.0", "--cache-dir", cache, "--json", *TINY,
                       env={"COLUMNS": "500"})
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr.splitlines() == [
            f"warning: {given} is a shipped model's: a scan's cache tells models apart by name and version only "
            "(pass another --name unless this model replaces the shipped one)"]
        assert read_spec(out).name == "moodtag-cnn"


def test_an_output_through_a_link_is_checked_where_it_will_be_written(tmp_path):
    """train writes through a link to a model kept elsewhere: the check before training looked at the
    link's folder, so a target folder that cannot be written failed only after the training."""
    from tagger.weights import check_writable

    (tmp_path / "a-file").write_text("")
    link = tmp_path / "current.safetensors"
    link.symlink_to(tmp_path / "a-file" / "m.safetensors")
    with pytest.raises(MoodtagError, match=rf"^{re.escape(str(link))}: cannot write \(.*a-file is a file, not a folder\)$"):
        check_writable(link)


def test_an_output_linked_to_a_disk_not_mounted_is_refused_before_training(tmp_path):
    """The check before training took the empty mount point, the nearest folder there, for a writable
    one: a link to a model on a disk not mounted trained in full and failed only at the save."""
    from tagger.weights import check_writable

    (tmp_path / "usb").mkdir()  # the mount point, empty: the disk is not mounted
    link = tmp_path / "current.safetensors"
    link.symlink_to(tmp_path / "usb" / "models" / "m.safetensors")
    with pytest.raises(MoodtagError, match=rf"^{re.escape(str(link))}: cannot write \({re.escape(str(link))} links "
                                           rf".*m\.safetensors, whose folder does not exist: a disk not mounted\?\)$"):
        check_writable(link)
    assert list((tmp_path / "usb").iterdir()) == []


# ---------------------------------------------------------------- labels, files and outputs given by mistake

def _typo_data(data, tmp_path):
    """The data set twice with one exciting track spelt 'Exciting': a CSV (the row on its line 13, the first
    'exciting' on line 8) and label folders (an Exciting/ folder beside exciting/)."""
    tracks = sorted(data.rglob("*.wav"))
    rows = [f"{p},{'Exciting' if p == tracks[-1] else p.parent.name}" for p in tracks]
    table = tmp_path / "set.csv"
    table.write_text("path,label\n" + "\n".join(rows) + "\n")
    folders = tmp_path / "typo"
    for p in tracks:
        label = "Exciting" if p == tracks[-1] else p.parent.name
        (folders / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, folders / label / p.name)
    return table, folders


def test_a_label_spelt_two_ways_is_one_error_naming_both(data, cache, tmp_path):
    """One row labelled 'Exciting' (or a stray Exciting/ folder) trained a network of three labels
    (Exciting, calm, exciting; its threshold lost to argmax) that a scan would tag files 'Exciting' with.
    Now train (either kind) and evaluate refuse it, naming both spellings and where the odd one is."""
    from tests.conftest import run_cli

    table, folders = _typo_data(data, tmp_path)
    out = tmp_path / "m.safetensors"
    by_table = (f"{table}:13: label 'Exciting' differs from 'exciting' ({table}:8) only in case or surrounding "
                "spaces: spell each label one way")
    by_folder = (f"{folders / 'Exciting'}: label 'Exciting' differs from 'exciting' ({folders / 'exciting'}) only in "
                 "case or surrounding spaces: spell each label one way")
    for source, message in ((table, by_table), (folders, by_folder)):
        for kind in ("mel", "descriptors"):
            proc = run_cli("train", source, "--out", out, "--feature", kind, "--cache-dir", cache,
                           *(TINY if kind == "mel" else []), env={"COLUMNS": "500"})
            assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", f"error: {message}\n"), (kind, proc.stderr)
        proc = run_cli("evaluate", source, env={"COLUMNS": "500"})  # the shipped model's labels: calm, exciting
        where = f"{table}:13" if source == table else f"{folders / 'Exciting'}"
        assert (proc.returncode, proc.stderr) == (1, f"error: {where}: label 'Exciting' differs from 'exciting' only in "
                                                     "case or surrounding spaces (labels: calm, exciting)\n")
    assert not out.exists()
    spaced = tmp_path / "spaced"  # a folder named 'calm ' beside calm/
    for label in ("calm", "calm ", "exciting"):
        (spaced / label).mkdir(parents=True)
    for i, p in enumerate(sorted(data.rglob("*.wav"))[:5]):
        shutil.copy(p, spaced / ("calm", "calm", "calm ", "exciting", "exciting")[i] / p.name)
    with pytest.raises(MoodtagError, match=rf"^{re.escape(str(spaced / 'calm '))}: label 'calm ' differs from 'calm' "):
        load_items(spaced)
    other = tmp_path / "other"  # across two DATA arguments too
    (other / "Calm").mkdir(parents=True)
    shutil.copy(sorted(data.rglob("*.wav"))[0], other / "Calm" / "x.wav")
    with pytest.raises(MoodtagError, match=rf"^{re.escape(str(other / 'Calm'))}: label 'Calm' differs from 'calm' "
                                           rf"\({re.escape(str(data / 'calm'))}\)"):
        load_many([data, other])
    with pytest.raises(MoodtagError, match="a label is repeated in another case"):
        parse_labels("calm,Calm")


def test_one_file_by_two_hard_links_is_listed_twice(data, tmp_path):
    """A file hard-linked into both calm/ and exciting/ was trained on as both labels: the duplicate check
    compared resolved paths, which differ for two hard links. It compares the files now."""
    shutil.copytree(data, tmp_path / "d")
    first = sorted((tmp_path / "d" / "calm").iterdir())[0]
    os.link(first, tmp_path / "d" / "exciting" / "g0__same.wav")
    with pytest.raises(MoodtagError, match=rf"^{re.escape(str(tmp_path / 'd' / 'exciting' / 'g0__same.wav'))}: the same "
                                           rf"file as {re.escape(str(first))} \(a hard link\): listed more than once"):
        load_many([tmp_path / "d"])


def test_audio_files_at_the_top_of_data_are_named_as_not_used(data, tmp_path):
    """An audio file in DATA itself (in no label folder) was left out in silence, while any other file left
    out gets a warning line: it gets one too, once for all of them."""
    from tests.conftest import run_cli

    shutil.copytree(data, tmp_path / "d")
    for name in ("forgotten.wav", "also.wav"):
        shutil.copy(sorted(data.rglob("*.wav"))[0], tmp_path / "d" / name)
    (tmp_path / "d" / "README.txt").write_text("labelled by hand\n")
    proc = run_cli("evaluate", tmp_path / "d", "--json", env={"COLUMNS": "500"})
    assert proc.returncode == 0 and json.loads(proc.stdout)["tracks"] == 12, proc.stderr
    assert proc.stderr.splitlines() == [
        f"warning: {tmp_path / 'd'}: 2 audio files at the top level not used (also.wav, ...): a track's label is the "
        f"name of the folder it is in ({tmp_path / 'd'}/<label>/<files>)"]


def test_evaluate_json_names_each_failed_track_on_stderr(data, tmp_path):
    """evaluate --json exited 1 with nothing on stderr (the cause only in the JSON rows); evaluate without
    --json and classify --json print 'failed: FILE: cause'. So does evaluate --json now."""
    from tests.conftest import run_cli

    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00")
    csv = tmp_path / "set.csv"
    csv.write_text(f"path,label\nbroken.wav,calm\n{sorted((data / 'calm').iterdir())[0]},calm\n")
    proc = run_cli("evaluate", csv, "--json", env={"COLUMNS": "500"})
    assert proc.returncode == 1 and json.loads(proc.stdout)["failed"] == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"failed: {tmp_path / 'broken.wav'}: "), proc.stderr
    assert lines[0] == run_cli("classify", "--json", tmp_path / "broken.wav").stderr.strip()


def test_an_output_in_the_shipped_models_folder_warns_what_it_replaces(data, cache, tmp_path):
    """train --out models/moodtag-rhythm.safetensors replaced the default model every scan uses, in silence
    (--name set: no shipped name's warning). The maintainers retrain shipped models so: a warning, not a
    refusal, naming the shipped model; a new file there becomes a shipped model, with a warning too.
    In a copy of the package (its own models/ folder)."""
    project = tmp_path / "project"
    shutil.copytree(ROOT_DIR / "tagger", project / "tagger", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT_DIR / "models", project / "models")
    (tmp_path / "link").symlink_to(project / "models")
    env = {**os.environ, "PYTHONPATH": str(project), "COLUMNS": "500"}
    for out, warning in (
            (tmp_path / "link" / "moodtag-rhythm.safetensors",
             f"--out {tmp_path / 'link' / 'moodtag-rhythm.safetensors'} is the shipped model moodtag-rhythm's file: the "
             "new model replaces it, and every scan using moodtag-rhythm (the default model) will use the new one "
             "(pass another --out unless this model replaces the shipped one)"),
            (project / "models" / "mine.safetensors",
             f"--out {project / 'models' / 'mine.safetensors'} is in the shipped models' folder: the new model becomes "
             "a shipped model, mine (pass another --out unless it is meant to ship)")):
        proc = subprocess.run([sys.executable, "-m", "tagger", "train", str(data), "--out", str(out), "--feature",
                               "descriptors", "--name", "retrained", "--cache-dir", str(cache), "--json"],
                              capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr.splitlines() == [f"warning: {warning}"]
        assert read_spec(out).name == "retrained"
    proc = subprocess.run([sys.executable, "-m", "tagger", "model-info", "--json"], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)
    assert json.loads(proc.stdout)["spec"]["name"] == "retrained"  # the default, for every scan of this copy


def test_a_model_retrained_into_its_own_file_takes_the_next_version(data, cache, tmp_path):
    """Retrained into the same --out, a model kept 1.0.0: a scan's cache tells models apart by name and version
    only, so the next scan kept every track's old result ('unchanged (cached)') in silence. Now the new model
    takes the next version and train says so in one line; a --version equal to the old one's gets a warning."""
    from tests.conftest import run_cli

    out, lib, db = tmp_path / "mine.safetensors", tmp_path / "lib", tmp_path / "cache.db"
    lib.mkdir()
    shutil.copy(sorted((data / "calm").iterdir())[0], lib / "a.wav")
    swapped = tmp_path / "swapped"  # every decision flips
    shutil.copytree(data / "calm", swapped / "exciting")
    shutil.copytree(data / "exciting", swapped / "calm")
    env = {"COLUMNS": "500"}

    def train(source, *args):
        proc = run_cli("train", source, "--out", out, "--feature", "descriptors", "--cache-dir", cache, "--json",
                       *args, env=env)
        assert proc.returncode == 0, proc.stderr
        return proc.stderr.splitlines()

    def scan():
        proc = run_cli("scan", lib, "--db", db, "--model", out, "--no-write", "--jobs", "1", "--json", env=env)
        assert proc.returncode == 0, proc.stderr
        return [(row["action"], row["mood"], row["model"]["version"]) for row in map(json.loads, proc.stdout.splitlines())]

    assert train(data) == []
    assert read_spec(out).version == "1.0.0"
    assert scan() == [("analysed", "calm", "1.0.0")]
    assert train(swapped) == [f"{out} holds mine 1.0.0: the new model is mine 1.0.1, so a scan analyses again what "
                              "the old one analysed (--version sets another)"]
    assert read_spec(out).version == "1.0.1"
    assert scan() == [("analysed", "exciting", "1.0.1")]
    assert train(data, "--version", "1.0.1") == [
        f"warning: --version 1.0.1: {out} holds mine 1.0.1 too, and a scan's cache tells models apart by name and "
        "version only: tracks the old model analysed keep its results, not redone (pass another --version)"]
    assert read_spec(out).version == "1.0.1"
    assert train(data, "--version", "2.0") == [] and read_spec(out).version == "2.0"
    assert train(data, "--name", "other") == [] and read_spec(out).version == "1.0.0"  # another model's name


def test_next_version():
    from tagger.commands.train import _next_version

    assert [_next_version(v) for v in ("1.0.0", "1.0.9", "2.3-rc9", "007", "beta")] == [
        "1.0.1", "1.0.10", "2.3-rc10", "008", "beta.1"]


def test_a_label_that_cannot_be_a_tag_is_refused_before_any_work(data, cache, tmp_path):
    """A label folder 'very calm' (or 'énergique', or a CSV row's label) trained a model in silence; then every
    track of a scan with it failed ('cannot be a tag field name'). train refuses it now, naming the folder or
    the CSV line, before any track is decoded."""
    from tests.conftest import run_cli

    folders = tmp_path / "folders"
    shutil.copytree(data / "calm", folders / "very calm")
    shutil.copytree(data / "exciting", folders / "exciting")
    tracks = sorted(data.rglob("*.wav"))
    table = tmp_path / "set.csv"
    table.write_text("path,label\n" + "".join(f"{p},{'énergique' if p.parent.name == 'exciting' else 'calm'}\n"
                                              for p in tracks))
    line = 2 + [p.parent.name for p in tracks].index("exciting")
    out = tmp_path / "m.safetensors"
    rule = "cannot be a tag field name (letters, digits, - and _ only): rename it"
    for source, message in ((folders, f"{folders / 'very calm'}: label 'very calm' {rule}"),
                            (table, f"{table}:{line}: label 'énergique' {rule}")):
        for kind in ("descriptors", "mel"):
            proc = run_cli("train", source, "--out", out, "--feature", kind, "--cache-dir", tmp_path / "fc",
                           *(TINY if kind == "mel" else []), env={"COLUMNS": "500"})
            assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", f"error: {message}\n"), proc.stderr
    assert not out.exists() and not (tmp_path / "fc").exists()
    from tagger import tags
    from tagger.weights import TAG_LABEL

    assert TAG_LABEL.pattern == tags._LABEL.pattern  # the rule the tags are written by


def test_the_validation_summary_is_at_0_5_as_the_epoch_lines(data, cache, tmp_path):
    """A network trained with --val-groups: the summary's validation balanced accuracy was scored at a threshold
    chosen on those same tracks (1.000 where the epoch line said 0.500). It is at 0.5 now, as the epoch lines;
    the figures at the tuned threshold are beside it, said to be optimistic."""
    from tests.conftest import run_cli

    out = tmp_path / "m.safetensors"
    proc = run_cli("train", data, "--out", out, "--val-groups", "g2", "--cache-dir", cache, *TINY,
                   env={"COLUMNS": "500"})
    assert proc.returncode == 0, proc.stderr
    epoch = re.search(r"epoch 2/2 .* val balanced accuracy (\S+)", proc.stderr).group(1)
    validation = re.search(r"^ *validation +balanced accuracy (\S+), ROC-AUC \S+, accuracy \S+ \(4 tracks; at 0.5, "
                           r"as the epoch lines\)", proc.stdout, re.M)
    assert validation and validation.group(1) == epoch, proc.stdout
    spec = read_spec(out)
    assert f"{spec.metrics['validation']['at_0.5']['balanced_accuracy']:.3f}" == epoch
    if spec.threshold != 0.5:
        tuned = spec.metrics["validation"]["at_threshold"]
        assert re.search(rf"^ *at {spec.threshold:g} +balanced accuracy {tuned['balanced_accuracy']:.3f}, accuracy "
                         rf"{tuned['accuracy']:.3f} \(the model's threshold, chosen on these same tracks: optimistic\)",
                         proc.stdout, re.M), proc.stdout
    assert "chosen on these same tracks" in spec.metrics["validation"]["what"]


def test_evaluate_on_one_label_shows_no_balanced_accuracy(trained, data, tmp_path):
    """evaluate on tracks of one label printed 'balanced accuracy 1.000' (that label's recall), where ROC-AUC
    and the per-group rows show '-'. It shows '-' too, and null in --json."""
    from tests.conftest import run_cli

    model, _ = trained
    shutil.copytree(data / "calm", tmp_path / "d" / "calm")
    proc = run_cli("evaluate", tmp_path / "d", "--model", model, env={"COLUMNS": "500"})
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^ *balanced accuracy +- *$", proc.stdout, re.M), proc.stdout
    proc = run_cli("evaluate", tmp_path / "d", "--model", model, "--json")
    report = json.loads(proc.stdout)
    assert (report["tracks"], report["balanced_accuracy"], report["roc_auc"]) == (6, None, None)


def test_a_label_left_without_a_decodable_training_track_is_named(tmp_path, cache):
    from tagger.train import train_model

    for i in range(3):
        for mood in ("calm", "exciting"):
            (tmp_path / mood).mkdir(exist_ok=True)
            make_track(tmp_path / mood / f"t{i}.wav", mood, 3 if mood == "exciting" else 7, seed=i)
    with pytest.raises(MoodtagError, match=r"^label 'exciting' has no training track left: none of its training "
                                           r"tracks could be decoded \(see the skipped lines\)$"):
        train_model(load_items(tmp_path), spec=_spec(), epochs=1, clips_per_track=1, batch_size=3, cache_dir=cache,
                    threads=1)
