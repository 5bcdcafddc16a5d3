"""`moodtag model-info`: the shipped models' spec and metrics, read in full in a pipe at 80 columns."""
from __future__ import annotations

import re

import pytest

from tests.conftest import run_cli


def model_info(*args: str, columns: int = 80) -> str:
    proc = run_cli("model-info", *args, env={"COLUMNS": str(columns)})  # captured: stdout is a pipe
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return proc.stdout


def test_counts_of_one_are_singular():
    text = " ".join(model_info().split())  # moodtag-rhythm: OpenClonk holds one track
    assert "(1 track)" in text and not re.search(r"\b1 tracks\b", text), text


def test_sha256_and_a_long_path_show_in_full(tmp_path):
    import shutil

    from tagger.weights import file_sha256, resolve_model

    path = tmp_path / ("long-folder-name-" * 4) / "a-copy-of-the-default-model.safetensors"
    path.parent.mkdir()
    shutil.copy(resolve_model(None), path)
    text = model_info(str(path))
    assert "…" not in text and all(len(line) <= 80 for line in text.splitlines())
    joined = "".join(text.split())  # a value longer than its column folds onto the next lines
    assert str(path) in joined and file_sha256(path) in joined


def test_nested_figures_first_then_the_plain_ones_marked_optimistic():
    flat = " ".join(model_info(columns=200).split())  # a label on one line
    nested = flat.index("nested leave-one-game-out balanced accuracy 0.785 (interval 0.633-0.925), ROC-AUC 0.787")
    plain = flat.index("plain leave-one-game-out (optimistic) balanced accuracy 0.815")
    assert nested < plain
    assert '"ba":' not in flat, "figures as raw JSON"


def test_the_lockbox_reads_as_the_nested_figures_do():
    """The lockbox's figures were a row of raw JSON ({"auc": 0.7812, "ba": 0.5, ... "user": {...}}); they read as
    the nested ones do, its games named, then how often each label was missed."""
    flat = " ".join(model_info(columns=200).split())
    assert ("lockbox (games set aside, scored once) balanced accuracy 0.500, ROC-AUC 0.781 (12 tracks, 2 games: "
            "starfighter, hedgewars) mistakes calm tagged exciting 100%, exciting tagged calm 0%") in flat, flat


def test_json_carries_the_whole_spec():
    import json

    from tagger.weights import file_sha256, read_spec, resolve_model

    path = resolve_model(None)
    info = json.loads(run_cli("model-info", "--json", check=True).stdout)
    assert info["sha256"] == file_sha256(path) and info["path"] == str(path)
    assert info["spec"] == json.loads(json.dumps(read_spec(path).to_json()))
    assert "nested_leave_one_game_out" in info["spec"]["metrics"] and "held_out" in info["spec"]["metrics"]


def _altered(tmp_path, shipped: str, **changes):
    """A copy of a shipped model with spec fields changed ("features__n_fft" for a nested one), its
    tensors as they are: what a hand-edited or foreign-made model file may hold."""
    import json

    from safetensors.numpy import load_file, save_file

    from tagger.weights import SPEC_KEY, resolve_model, safetensors_metadata

    source = resolve_model(shipped)
    spec = json.loads(safetensors_metadata(source)[SPEC_KEY])
    for key, value in changes.items():
        *parents, last = key.split("__")
        node = spec
        for part in parents:
            node = node[part]
        node[last] = value
    path = tmp_path / f"{shipped}-altered.safetensors"
    save_file(load_file(str(source)), str(path), metadata={SPEC_KEY: json.dumps(spec)})
    return path


@pytest.mark.parametrize("shipped, changes, cause", [
    ("moodtag-cnn", {"normalization": {}}, "normalization {} must hold a number 'mean'"),
    ("moodtag-cnn", {"features__n_fft": 0}, "features.n_fft 0 must be a whole number from 16 to 65536"),
    ("moodtag-cnn", {"features__kind": "bogus"}, "features.kind 'bogus' must be mel, stft, mfcc or descriptors"),
    ("moodtag-cnn", {"features__size": [0, 0]}, "features.size (0, 0) must be two whole numbers"),
    ("moodtag-cnn", {"features__center": "bogus"}, "features.center 'bogus' must be none or band"),
    ("moodtag-rhythm", {"architecture": None}, "architecture None must be an object with a name"),
    ("moodtag-rhythm", {"features__kind": "mel"}, "features.kind 'mel' does not go with architecture"),
    ("moodtag-rhythm", {"labels": "ce"}, "labels must be a list of names, not 'ce'"),
    ("moodtag-rhythm", {"clips__count": True}, "clips.count True must be a whole number from 1 to 100"),
    ("moodtag-rhythm", {"metrics": "bad"}, "metrics must be a JSON object, not str"),
    ("moodtag-rhythm", {"created": 5}, "created 5 must be text"),
    # each setting in range, together 144 GB for one track: refused up front, not a raw allocator error per track
    ("moodtag-cnn", {"features__kind": "stft", "features__n_fft": 65536, "features__hop_length": 1},
     "features.n_fft 65536 and hop_length 1 give 18,064,075,095 spectrogram values for a track's 5 clips of 5 s "
     "at 22050 Hz (at most 134,217,728)"),
    ("moodtag-cnn", {"features__size": [4096, 4096], "features__channels": 64},
     "features.size (4096, 4096) and channels 64 give 5,368,709,120 input values for a track's 5 clips"),
    # JSON of the wrong type: moodtag's words, not Python's ('argument after ** must be a mapping')
    ("moodtag-rhythm", {"clips": [1]}, "clips must be a JSON object, not a list"),
    ("moodtag-cnn", {"features": "mel"}, "features must be a JSON object, not text"),
    ("moodtag-cnn", {"features__size": 128}, "features.size must be a list, not 128"),
])
def test_a_malformed_spec_is_one_error_for_every_command(tmp_path, shipped, changes, cause):
    """Such a model was taken: a bad input recipe then failed every track in the workers (a --force scan
    replaced finished rows with those failures), a string of labels became its letters (tags 'c', 'e'),
    and model-info, classify and evaluate ended in tracebacks. Now each command says it once."""
    from tests.conftest import run_cli

    path = _altered(tmp_path, shipped, **changes)
    for args in (["model-info", path], ["classify", "--model", path, tmp_path / "absent.mp3"],
                 ["scan", tmp_path, "--model", path, "--db", tmp_path / "c.db"]):
        proc = run_cli(*args)
        assert (proc.returncode, proc.stdout) == (1, ""), (args, proc.stderr)
        assert proc.stderr.startswith(f"error: {path}: malformed model spec ({cause}"), (args, proc.stderr)
        assert proc.stderr.count("\n") == 1, proc.stderr
    assert not (tmp_path / "c.db").exists()


@pytest.mark.parametrize("label", ["very calm", "énergique"])
def test_a_model_whose_label_cannot_be_a_tag_is_used_where_no_tag_is_written(tmp_path, label):
    """A model file with a label that cannot name a tag field (trained before train refused them) was
    refused as a malformed spec by every command, model-info, classify and evaluate too, though only a
    writing of its tags fails. Those take it now, as does a scan with --no-write; a scan that would write
    tags (or show them, --dry-run) is refused before any work, one line naming the file and the label."""
    import json

    from tagger.synth import make_track

    path = _altered(tmp_path, "moodtag-rhythm", labels=["calm", label])
    data = tmp_path / "data"
    for i, mood in enumerate(("calm", label)):
        (data / mood).mkdir(parents=True)
        make_track(data / mood / f"g{i}__t.wav", ("calm", "exciting")[i], 8, seed=i)
    track = data / "calm" / "g0__t.wav"
    before = track.read_bytes()
    assert f"calm, {label}" in model_info(str(path), columns=200)
    proc = run_cli("classify", "--model", path, track, "--json")
    assert proc.returncode == 0 and set(json.loads(proc.stdout)["scores"]) == {"calm", label}, proc.stderr
    proc = run_cli("evaluate", data, "--model", path, "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["tracks"] == 2, proc.stderr
    db = tmp_path / "c.db"
    for extra in ([], ["--dry-run"]):
        proc = run_cli("scan", data, "--model", path, "--db", db, *extra, env={"COLUMNS": "500"})
        assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", (
            f"error: {path}: label {label!r} cannot be a tag field name (letters, digits, - and _ only), so this "
            "model cannot write tags: use it without writing them (moodtag scan --no-write, beet moodtag -W), or "
            "retrain it with other labels\n")), extra
        assert not db.exists()
    proc = run_cli("scan", data, "--model", path, "--db", db, "--no-write", "--json")
    assert proc.returncode == 0, proc.stderr
    assert sorted(json.loads(line)["action"] for line in proc.stdout.splitlines()) == ["analysed", "analysed"]
    assert track.read_bytes() == before


def test_a_spec_from_a_newer_moodtag_says_so(tmp_path):
    """A model file with a spec field this moodtag does not know (a newer moodtag's) was 'malformed model
    spec (FeatureSpec.__init__() got an unexpected keyword argument ...)', and a spec that is a JSON list
    a Python conversion message. Each is one line in moodtag's words now."""
    import json

    from safetensors.numpy import load_file, save_file

    from tagger.weights import SPEC_KEY, resolve_model, safetensors_metadata

    path = _altered(tmp_path, "moodtag-rhythm", features__loudness_norm="ebu-r128")
    for args in (["model-info", path], ["classify", "--model", path, tmp_path / "absent.mp3"]):
        proc = run_cli(*args)
        assert (proc.returncode, proc.stdout, proc.stderr) == (
            1, "", f"error: {path}: the model spec has a field this moodtag does not know ('features.loudness_norm'): "
                   "written by a newer moodtag?\n"), args
    path = _altered(tmp_path, "moodtag-cnn", format_version=3, clips__overlap=0.5)
    assert run_cli("model-info", path).stderr == (
        f"error: {path}: the model spec has fields this moodtag does not know ('format_version', 'clips.overlap'): "
        "written by a newer moodtag?\n")
    listed = tmp_path / "list.safetensors"
    save_file(load_file(str(resolve_model(None))), str(listed), metadata={SPEC_KEY: json.dumps([1, 2])})
    proc = run_cli("model-info", listed)
    assert (proc.returncode, proc.stderr) == (1, f"error: {listed}: malformed model spec (the spec must be a JSON "
                                                 "object, not a list)\n")
    unnamed = _altered(tmp_path, "moodtag-rhythm")  # a required field missing
    spec = json.loads(safetensors_metadata(unnamed)[SPEC_KEY])
    del spec["name"]
    save_file(load_file(str(unnamed)), str(unnamed), metadata={SPEC_KEY: json.dumps(spec)})
    assert run_cli("model-info", unnamed).stderr == f"error: {unnamed}: malformed model spec (the spec has no name)\n"


@pytest.mark.parametrize("metrics", [
    {"held_out": {"pooled": {"balanced_accuracy": "x", "groups": [1]}}},
    {"nested_leave_one_game_out": {"ba": 0.5, "auc": 0.5, "tracks": 3, "intervals": {"ba": [0.1]}, "games": 5}},
    {"nested_leave_one_game_out": {"ba": 0.5, "auc": 0.5, "tracks": 3, "user": [1]}},
    {"threshold": {"chosen": "x", "method": 1}},
])
def test_figures_not_as_moodtag_writes_them_are_shown_as_they_are(tmp_path, metrics):
    """model-info ended in a traceback on metrics it could not lay out; it shows them as JSON instead."""
    text = " ".join(model_info(str(_altered(tmp_path, "moodtag-rhythm", metrics=metrics)), columns=300).split())
    key, value = next(iter(metrics.items()))
    assert f"metric {key}" in text and json_text(value) in text


def json_text(value) -> str:
    import json

    return json.dumps(value)


def test_a_model_file_cut_short_in_its_tensors_is_refused_by_model_info_too(tmp_path):
    """model-info reads the header alone, and showed a model whose tensors were cut off as whole;
    classify then failed on it. The header's offsets are now checked against the file's size."""
    from tests.conftest import run_cli
    from tagger.weights import resolve_model

    whole = resolve_model("moodtag-rhythm").read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(whole[:-20])
    for args in (["model-info", cut], ["classify", "--model", cut, tmp_path / "absent.mp3"]):
        proc = run_cli(*args)
        assert proc.returncode == 1 and proc.stdout == "", proc.stderr
        assert proc.stderr.startswith(f"error: {cut}: not a moodtag model file (the tensors' data breaks off")

    import json

    length = int.from_bytes(whole[:8], "little")
    header = json.loads(whole[8:8 + length])
    name = next(key for key in header if key != "__metadata__")
    for offsets in ([], 5, None):  # a header with other offsets than two numbers: a traceback before
        header[name]["data_offsets"] = offsets
        text = json.dumps(header).encode()
        odd = tmp_path / "odd.safetensors"
        odd.write_bytes(len(text).to_bytes(8, "little") + text + whole[8 + length:])
        proc = run_cli("model-info", odd)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr == (f"error: {odd}: not a moodtag model file (a tensor's data_offsets are not two "
                               "whole numbers)\n")


def test_in_a_pipe_without_columns_a_value_is_never_folded():
    """`model-info | grep sha256` gave half the hash: in a pipe rich folds at 80 columns. Without COLUMNS
    the table is as wide as its values there (COLUMNS still fits it to a width, as above)."""
    import os
    import subprocess
    import sys

    from tagger.weights import file_sha256, resolve_model

    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "FORCE_COLOR", "TTY_COMPATIBLE")}
    proc = subprocess.run([sys.executable, "-m", "tagger", "model-info"], capture_output=True, text=True, env=env,
                          timeout=60, check=True)
    [line] = [line for line in proc.stdout.splitlines() if "sha256" in line]
    assert line.split() == ["sha256", file_sha256(resolve_model(None))]
    assert f" {resolve_model(None)}\n" in proc.stdout  # whole, on its line


def test_in_a_pipe_no_line_ends_in_spaces():
    """Every line was padded to the longest value's width (261 columns in a pipe without COLUMNS, 80 with
    COLUMNS=80): text in a pipe ends where its last character is."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "FORCE_COLOR", "TTY_COMPATIBLE")}
    unset = subprocess.run([sys.executable, "-m", "tagger", "model-info"], capture_output=True, text=True, env=env,
                           timeout=60, check=True).stdout
    for text in (unset, model_info(columns=80)):
        lines = text.splitlines()
        assert len(lines) > 10 and [line for line in lines if line != line.rstrip()] == [], text
    # `labels  calm, exciting`, as long as its text (the labels' column as wide as the longest, unfolded, label)
    assert min(len(line) for line in unset.splitlines()) < 60


def test_json_writes_null_for_a_crafted_files_nan(tmp_path):
    """A model file whose metrics hold NaN or Infinity (JSON as Python reads it): model-info --json printed them
    bare, which no JSON reader takes. They are null now; the table shows the file as it is."""
    import json

    path = _altered(tmp_path, "moodtag-rhythm",
                    metrics={"held_out": {"pooled": {"balanced_accuracy": float("nan"), "roc_auc": float("inf"),
                                                     "tracks": 3}}, "list": [float("-inf"), 0.5]})
    text = model_info("--json", str(path))

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    metrics = json.loads(text, parse_constant=refuse)["spec"]["metrics"]
    assert metrics == {"held_out": {"pooled": {"balanced_accuracy": None, "roc_auc": None, "tracks": 3}},
                       "list": [None, 0.5]}
    assert "balanced accuracy nan" in " ".join(model_info(str(path)).split())


def test_in_a_pipe_without_columns_a_label_is_never_folded():
    """The first column's width was fixed from rich's 80 columns before the pipe's width was lifted: the label
    `plain leave-one-game-out (optimistic)` folded, and `grep optimistic` found a lone `(optimistic)`."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "FORCE_COLOR", "TTY_COMPATIBLE")}
    text = subprocess.run([sys.executable, "-m", "tagger", "model-info"], capture_output=True, text=True, env=env,
                          timeout=60, check=True).stdout
    [line] = [line for line in text.splitlines() if "optimistic" in line]
    assert line.split()[:5] == ["plain", "leave-one-game-out", "(optimistic)", "balanced", "accuracy"], text
    assert all(re.match(r" {1,3}\S", line) for line in text.splitlines()), text  # no line is a folded label's rest


@pytest.mark.parametrize("lockbox", [
    {"ba": 0.5, "auc": 0.7, "tracks": 12, "games": 2},
    {"ba": 0.5, "auc": 0.7, "tracks": 12, "games": "starfighter"},
    {"ba": 0.5, "auc": 0.7, "tracks": 12, "user": [1, 2]},
])
def test_a_lockbox_not_as_moodtag_writes_it_is_one_json_row_and_the_rest_still_reads(tmp_path, lockbox):
    """A lockbox whose figures could not be laid out turned every metric into raw JSON, the nested figures
    unrounded; it is its own row of JSON now, the others laid out as ever."""
    import json
    from tagger.weights import resolve_model, read_spec

    metrics = {**read_spec(resolve_model("moodtag-rhythm")).metrics, "lockbox": lockbox}
    text = " ".join(model_info(str(_altered(tmp_path, "moodtag-rhythm", metrics=metrics)), columns=300).split())
    assert "nested leave-one-game-out balanced accuracy 0.785 (interval 0.633-0.925)" in text, text
    assert f"metric lockbox {json.dumps(lockbox)}" in text, text


def test_a_file_name_that_is_not_utf8_shows_as_classify_spells_it(tmp_path):
    """A model file named with the byte 0xff and a line break showed as `odd\\udcff\\nname.safetensors`, and
    --json wrote a lone surrogate (a reader's U+FFFD). The byte is \\xNN now; --json spells the path as
    classify --json spells a track's."""
    import json
    import os
    import shutil

    from tagger.records import key_spelling
    from tagger.weights import resolve_model

    path = tmp_path / os.fsdecode(b"odd\xff\nname.safetensors")
    shutil.copy(resolve_model(None), path)
    text = model_info(str(path), columns=300)
    [line] = [line for line in text.splitlines() if line.split()[:1] == ["file"]]
    assert line.split() == ["file", f"{tmp_path}/odd\\xff\\nname.safetensors"], text
    info = json.loads(model_info("--json", str(path)))
    assert info["path"] == key_spelling(os.fsencode(path)) == f"{tmp_path}/odd\\xff\nname.safetensors"


def test_a_shipped_models_file_name_not_here_names_the_shipped_model(tmp_path):
    """`--model moodtag-rhythm.safetensors` said 'no such model file (shipped models: moodtag-cnn,
    moodtag-rhythm)', which reads as a contradiction. It names the shipped model to give now. It is not taken
    for the shipped model: a file of that name is one in this folder (a retrained copy, say), and a scan run
    from another folder would tag a library with the shipped model in silence."""
    import os
    import shutil
    import subprocess
    import sys

    from tagger.weights import resolve_model

    def run(*args):  # in tmp_path: a bare file name is looked for there
        return subprocess.run([sys.executable, "-m", "tagger", *args], capture_output=True, text=True,
                              cwd=tmp_path, timeout=120, env={**os.environ, "COLUMNS": "300"})

    for args in (["model-info", "moodtag-rhythm.safetensors"],
                 ["classify", "--model", "moodtag-cnn.safetensors", "absent.wav"]):
        proc = run(*args)
        name = args[-1] if args[0] == "model-info" else args[2]
        assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", (
            f"error: {name}: no such model file (for the shipped model, give its name alone: "
            f"{name.removesuffix('.safetensors')})\n")), args
    assert run("model-info", "nosuch.safetensors").stderr == (
        "error: nosuch.safetensors: no such model file (shipped models: moodtag-cnn, moodtag-rhythm)\n")
    shutil.copy(resolve_model("moodtag-rhythm"), tmp_path / "moodtag-rhythm.safetensors")  # one here: taken
    proc = run("model-info", "moodtag-rhythm.safetensors")
    assert proc.returncode == 0, proc.stderr
    assert ["file", "moodtag-rhythm.safetensors"] in [line.split() for line in proc.stdout.splitlines()], proc.stdout


def test_one_metric_not_as_moodtag_writes_it_leaves_the_others_laid_out(tmp_path):
    """A nested figure whose `user` was a list (not the mistakes per label) turned every metric into raw JSON,
    the plain and lockbox figures too. That metric alone is its row of JSON now."""
    import json

    from tagger.weights import read_spec, resolve_model

    metrics = read_spec(resolve_model("moodtag-rhythm")).metrics
    metrics = {**metrics, "nested_leave_one_game_out": {**metrics["nested_leave_one_game_out"], "user": [1, 2]}}
    text = " ".join(model_info(str(_altered(tmp_path, "moodtag-rhythm", metrics=metrics)), columns=1000).split())
    assert "metric nested_leave_one_game_out {" in text and '"user": [1, 2]' in text, text
    assert "plain leave-one-game-out (optimistic) balanced accuracy 0.815, ROC-AUC 0.850" in text, text
    assert ("lockbox (games set aside, scored once) balanced accuracy 0.500, ROC-AUC 0.781 (12 tracks, 2 games: "
            "starfighter, hedgewars)") in text, text
    assert "metric held_out" not in text and "metric lockbox" not in text, text
    assert json.dumps(metrics["regression"]) in text


def test_model_info_leaves_the_output_consoles_width_as_it_was():
    """model-info in a pipe without COLUMNS set the process's output console 1000 columns wide and left it so:
    a later command in the same process (typer's CliRunner, the beets plugin) laid out at 1000 columns, not at
    COLUMNS. The width is for model-info's table only now."""
    from typer.testing import CliRunner

    from tagger.cli import app

    runner = CliRunner()
    unset = {"COLUMNS": None, "FORCE_COLOR": None, "TTY_COMPATIBLE": None}  # stdout a pipe, no COLUMNS

    def invoke(columns: str | None) -> str:
        result = runner.invoke(app, ["model-info"], env={**unset, "COLUMNS": columns})
        assert result.exit_code == 0, result.output
        return result.output

    before = invoke("60")
    assert max(map(len, before.splitlines())) <= 60, before
    assert max(map(len, invoke(None).splitlines())) > 60  # unbounded: the sha256 on one line
    assert invoke("60") == before


def test_a_file_named_on_purpose_or_a_broken_link_gets_no_shipped_hint(tmp_path, monkeypatch):
    """`--model ./moodtag-rhythm.safetensors` was told 'give its name alone', though `./` names a file on
    purpose (Path drops it); a dangling link named moodtag-cnn.safetensors was 'no such model file (for the
    shipped model, give its name alone ...)', the broken link hidden. Each is said for what it is now."""
    import os

    from tagger.errors import ModelError
    from tagger.weights import resolve_model

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError) as caught:
        resolve_model("./moodtag-rhythm.safetensors")
    assert str(caught.value) == ("./moodtag-rhythm.safetensors: no such model file "
                                 "(shipped models: moodtag-cnn, moodtag-rhythm)")
    os.symlink(tmp_path / "gone" / "x.safetensors", "moodtag-cnn.safetensors")
    proc = run_cli("model-info", tmp_path / "moodtag-cnn.safetensors")
    assert (proc.returncode, proc.stdout) == (1, ""), proc.stdout
    assert proc.stderr == f"error: {tmp_path}/moodtag-cnn.safetensors: broken symlink (its target does not exist)\n"
    with pytest.raises(ModelError) as caught:
        resolve_model("moodtag-cnn.safetensors")
    assert str(caught.value) == "moodtag-cnn.safetensors: broken symlink (its target does not exist)"
