"""What train and evaluate read besides the model: label folders reached through links, CSV files as
spreadsheets save them, training's caches after a crash, names that hold control characters."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tagger.dataset import load_items
from tagger.errors import MoodtagError
from tagger.synth import make_track
from tests.conftest import run_cli

TINY = ["--epochs", "1", "--clips-per-track", "1", "--batch-size", "4", "--threads", "1"]


@pytest.fixture(scope="module")
def tracks(tmp_path_factory):
    """6 12-second WAV tracks, calm and exciting alternately, in groups g0-g2 (each group both labels)."""
    root = tmp_path_factory.mktemp("tracks")
    for i in range(6):
        mood = ("calm", "exciting")[i % 2]
        (root / mood).mkdir(exist_ok=True)
        make_track(root / mood / f"g{i % 3}__t{i}.wav", mood, 12, seed=i)
    return root


def test_an_album_folder_linked_into_a_label_folder_is_trained_and_evaluated_on(tracks, tmp_path):
    """Label folders built from links into a library: a linked album folder was left out in silence
    (rglob follows no folder link), so evaluate scored the calm tracks alone, perfectly, and train said
    'DATA has one label'; a broken link was dropped without a word. Folder links are followed as a scan
    follows them, and a broken link or a loop is a warning line."""
    store = tmp_path / "store" / "album"
    store.mkdir(parents=True)
    for track in (tracks / "exciting").iterdir():
        os.symlink(track, store / track.name)
    data = tmp_path / "data"
    (data / "calm").mkdir(parents=True)
    (data / "exciting").mkdir()
    for track in (tracks / "calm").iterdir():
        os.symlink(track, data / "calm" / track.name)
    os.symlink(store, data / "exciting" / "album")
    os.symlink(tmp_path / "gone.wav", data / "calm" / "g0__gone.wav")
    os.symlink(data / "exciting", data / "exciting" / "album" / "loop")  # inside the linked folder: a loop

    items = load_items(data)
    assert sorted((it.label, it.group) for it in items) == [("calm", "g0"), ("calm", "g1"), ("calm", "g2"),
                                                            ("exciting", "g0"), ("exciting", "g1"),
                                                            ("exciting", "g2")]
    proc = run_cli("evaluate", data, "--json", env={"COLUMNS": "500"})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["tracks"] == 6
    assert proc.stderr.splitlines() == [
        f"warning: {data / 'calm' / 'g0__gone.wav'}: skipped: broken symlink (its target does not exist)",
        f"warning: {data / 'exciting' / 'album' / 'loop'}: skipped: symlink loop (points to a folder already walked)"]


def test_a_spreadsheets_csv_and_its_line_numbers(tracks, tmp_path):
    """A CSV saved as "CSV UTF-8" (a byte order mark first) was refused as having no header; an error
    after a blank line named the line before it; an unclosed quote on the last row lost its hint."""
    calm, exciting = sorted((tracks / "calm").iterdir())[0], sorted((tracks / "exciting").iterdir())[0]
    table = tmp_path / "set.csv"
    table.write_bytes(f"\ufeffpath,label\n{calm},calm\n{exciting},exciting\n".encode())
    proc = run_cli("evaluate", table, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["tracks"] == 2
    for text, message in [(f"path,label\n{calm},calm\n\n\n{tmp_path}/gone.wav,calm\n", r"set.csv:5: .*gone.wav: no such"),
                          (f'path,label,group\n{calm},calm,"a\nb"\n{exciting},sleepy,c\n', r"set.csv:4: unknown label 'sleepy'"),
                          (f'path,label\n{calm},calm\n"{exciting},exciting\n',
                           r"set.csv:3: empty label \(an unclosed double quote runs on to the end of the file\)$")]:
        table.write_text(text)
        with pytest.raises(MoodtagError, match=message):
            load_items(table, labels=("calm", "exciting"))


def _damage(entries: list) -> None:
    """The first entry emptied (a crash between write and rename), the second cut short."""
    entries[0].write_bytes(b"")
    entries[1].write_bytes(entries[1].read_bytes()[:300])


def test_damaged_cache_entries_are_computed_again(tracks, tmp_path):
    """An empty or truncated entry of training's feature cache ended train with 'Aborted!' (EOFError) or
    a BadZipFile traceback; a descriptor entry of valid JSON but not an object ('null') with a TypeError
    traceback. Each is computed again and replaced."""
    cache = tmp_path / "cache"
    args = [tracks, "--out", tmp_path / "m.safetensors", "--cache-dir", cache]
    run_cli("train", *args, *TINY, check=True)
    matrices = sorted(cache.glob("*/*.npz"))
    assert len(matrices) == 6
    _damage(matrices)
    proc = run_cli("train", *args, *TINY)
    assert proc.returncode == 0, proc.stderr
    for entry in matrices[:2]:
        with np.load(entry) as z:
            assert z["matrix"].ndim == 2

    run_cli("train", *args, "--feature", "descriptors", check=True)
    descriptors = sorted((cache / "descriptors").glob("*/*.json"))
    assert len(descriptors) == 6
    for entry, text in zip(descriptors, ["null", "[1, 2]", '{"onset_rate": 1}', '{"onset_rate": "x"}']):
        entry.write_text(text)
    proc = run_cli("train", *args, "--feature", "descriptors")
    assert proc.returncode == 0, proc.stderr
    assert all(isinstance(json.loads(entry.read_text()).get("tcent"), float) for entry in descriptors)


def test_control_characters_in_names_are_escaped(tracks, tmp_path):
    """A file name holding ESC and a line break (so a group name holding them) reached the terminal raw in
    evaluate --tracks and its per-group table, in train's 'trained on', held-out and fold rows, and in
    model-info's."""
    data = tmp_path / "data"
    for track in tracks.rglob("*.wav"):
        name = track.name.replace("g0__", "g\x1b[31mX\n__")
        (data / track.parent.name).mkdir(parents=True, exist_ok=True)
        os.symlink(track, data / track.parent.name / name)
    env = {"COLUMNS": "500"}
    proc = run_cli("evaluate", data, "--tracks", env=env)
    assert proc.returncode == 0, proc.stderr
    outputs = [proc.stdout]
    model = tmp_path / "m.safetensors"
    for feature in (["--feature", "descriptors"], ["--cross-validate", *TINY]):
        proc = run_cli("train", data, "--out", model, "--cache-dir", tmp_path / "cache", *feature, env=env)
        assert proc.returncode == 0, proc.stderr
        outputs.append(proc.stdout)
    proc = run_cli("model-info", model, env=env)  # its 'trained on' and held-out rows
    assert proc.returncode == 0, proc.stderr
    outputs.append(proc.stdout)
    for out in outputs:
        assert "\x1b" not in out and "g\\x1b[31mX\\n" in out, out
    assert "g\\x1b[31mX\\n__t0.wav" in outputs[0]
    assert "g\\x1b[31mX\\n (calm 1, exciting 1)" in outputs[1]


def test_a_file_listed_twice_in_a_csv_names_both_lines(tracks, tmp_path):
    """A CSV row repeating an earlier one was refused naming the file alone; CSV errors name the line. Both
    lines are named now (a second name of the file, a hard link, too)."""
    calm, exciting = sorted((tracks / "calm").iterdir())[0], sorted((tracks / "exciting").iterdir())[0]
    os.link(calm, tmp_path / "linked.wav")
    table = tmp_path / "set.csv"
    for last, message in ((f"{calm},exciting", f"{calm}: listed more than once in the CSV (first on line 2)"),
                          ("linked.wav,calm", f"{tmp_path / 'linked.wav'} (the same file as {calm}, a hard link): "
                                              "listed more than once in the CSV (first on line 2)")):
        table.write_text(f"path,label\n{calm},calm\n{exciting},exciting\n\n{last}\n")
        proc = run_cli("evaluate", table, env={"COLUMNS": "500"})
        assert (proc.returncode, proc.stderr) == (1, f"error: {table}:5: {message}\n"), proc.stderr


def test_a_label_folder_without_audio_files_is_named(tracks, tmp_path):
    """An empty label folder (or one holding no audio file) was dropped without a word: a label gone from the
    model, or 'DATA has one label' with nothing said of the other folder. Each is one warning line naming it."""
    data = tmp_path / "data"
    (data / "calm").mkdir(parents=True)
    (data / "exciting").mkdir()
    for track in (tracks / "calm").iterdir():
        os.symlink(track, data / "calm" / track.name)
    proc = run_cli("train", data, "--out", tmp_path / "m.safetensors", env={"COLUMNS": "500"})
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", (
        f"warning: {data / 'exciting'}: no audio file in this label folder: label 'exciting' left out\n"
        "error: DATA has one label (calm): a model needs tracks of two labels at least\n"))
    assert not (tmp_path / "m.safetensors").exists()

    for track in (tracks / "exciting").iterdir():
        os.symlink(track, data / "exciting" / track.name)
    (data / "sad").mkdir()
    (data / "happy").mkdir()
    (data / "happy" / "notes.txt").write_text("to do\n")
    skipped = []
    items = load_items(data, on_skip=lambda path, why: skipped.append((path, why)))
    assert {it.label for it in items} == {"calm", "exciting"}
    assert skipped == [(data / "happy" / "notes.txt", "skipped: not an audio file (.txt extension)"),
                       (data / "happy", "no audio file in this label folder: label 'happy' left out"),
                       (data / "sad", "no audio file in this label folder: label 'sad' left out")]


def test_a_csv_saved_as_windows_1252_is_one_line_saying_so(tracks, tmp_path):
    """A CSV saved by a spreadsheet as plain "CSV" on Windows ('é' as the byte 0xe9) was refused with Python's
    codec message ("'utf-8' codec can't decode byte 0xe9 in position 40"); the line is named now, and what
    to do."""
    calm, exciting = sorted((tracks / "calm").iterdir())[0], sorted((tracks / "exciting").iterdir())[0]
    os.symlink(exciting, tmp_path / "café.wav")
    table = tmp_path / "set.csv"
    table.write_bytes(f'path,label\n{calm},calm\n\n"a\nb.wav",calm\ncafé.wav,exciting\n'.encode("cp1252"))
    proc = run_cli("train", table, "--out", tmp_path / "m.safetensors", env={"COLUMNS": "500"})
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", (
        f"error: {table}:6: the byte 0xe9 is not UTF-8 text (saved as Windows-1252 or Latin-1?): save the CSV as "
        "UTF-8 (a spreadsheet's \"CSV UTF-8\")\n"))
    table.write_bytes(f'path,label\n{calm},calm\ncafé.wav,exciting\n'.encode())  # as UTF-8: taken
    assert {it.path.name for it in load_items(table)} == {calm.name, "café.wav"}


def test_a_utf16_csv_and_a_row_naming_a_folder_are_named_for_what_they_are(tracks, tmp_path):
    """A spreadsheet's "Unicode text" (UTF-16 with its byte order mark) was guessed as Windows-1252, and a row
    naming a folder called like an audio file said "no such audio file"."""
    calm, exciting = sorted((tracks / "calm").iterdir())[0], sorted((tracks / "exciting").iterdir())[0]
    table = tmp_path / "set.csv"
    table.write_bytes(f"path,label\n{calm},calm\n{exciting},exciting\n".encode("utf-16"))
    with pytest.raises(MoodtagError, match=r"set\.csv: not UTF-8 text \(saved as UTF-16, a spreadsheet's "
                                           r"\"Unicode text\"\?\): save the CSV as UTF-8"):
        load_items(table)
    (tmp_path / "live.flac").mkdir()
    table.write_text(f"path,label\n{calm},calm\nlive.flac,exciting\n")
    with pytest.raises(MoodtagError, match=r"set\.csv:3: .*live\.flac: a folder, not an audio file"):
        load_items(table)


def test_a_csv_row_naming_a_file_that_is_not_audio_is_named(tracks, tmp_path):
    """A CSV row naming notes.txt was taken, and train failed after decoding ('label 'exciting' has no track
    that could be read: notes.txt (not a decodable audio file ...)'), or evaluate counted it failed. It is
    refused before any work, the CSV line and the file named, as for a file that is not there; a label
    folder's notes.txt is left out as before."""
    calm, exciting = sorted((tracks / "calm").iterdir())[0], sorted((tracks / "exciting").iterdir())[0]
    (tmp_path / "notes.txt").write_text("where these came from\n")
    table = tmp_path / "set.csv"
    for name in ("notes.txt", "gone.txt"):
        table.write_text(f"path,label\n{calm},calm\n{name},exciting\n{exciting},exciting\n")
        for command in (["train", table, "--out", tmp_path / "m.safetensors", "--feature", "descriptors",
                         "--cache-dir", tmp_path / "fc"], ["evaluate", table]):
            proc = run_cli(*command, env={"COLUMNS": "500"})
            assert (proc.returncode, proc.stdout, proc.stderr) == (
                1, "", f"error: {table}:3: {tmp_path / name}: not an audio file (.txt extension)\n"), command
    assert not (tmp_path / "fc").exists() and not (tmp_path / "m.safetensors").exists()


def test_an_empty_out_is_a_usage_error_naming_the_option(tracks, tmp_path):
    """`--out ''` (an unset variable) was taken for the current folder: '--out .: a model file must end in
    .safetensors'. It is the usage error an empty DATA is."""
    for spelling in (["--out", ""], ["-o", ""], ["--output="]):
        proc = run_cli("train", tracks, *spelling)
        assert proc.returncode == 2, proc.stderr
        assert "Invalid value for '--output' / '--out' / '-o': an empty path (an unset variable?)" in proc.stderr
        assert "--out ." not in proc.stderr


def test_a_name_that_is_not_utf8_reads_as_classify_spells_it(tracks, tmp_path):
    """A file name holding the byte 0xe9 (Latin-1 'é') showed in evaluate --tracks as `g\\udce9__t0.wav`, six
    characters measured as one (the row out of line), and its group as `g\\udce9`; --json wrote a lone
    surrogate (a reader's U+FFFD: two such names one). The byte is \\xNN now, in the tables and the JSON, the
    path spelt as classify --json spells it."""
    from tagger.records import key_spelling

    data = tmp_path / "data"
    for track in tracks.rglob("*.wav"):
        (data / track.parent.name).mkdir(parents=True, exist_ok=True)
        name = track.name.replace("g0__", "g\xe9__").encode("latin-1")  # b'g\xe9__t0.wav': not UTF-8
        os.symlink(track, data / track.parent.name / os.fsdecode(name))
    odd = data / "calm" / os.fsdecode(b"g\xe9__t0.wav")
    proc = run_cli("evaluate", data, "--tracks", env={"COLUMNS": "500"})
    assert proc.returncode == 0, proc.stderr
    assert "\\udc" not in proc.stdout and "│ g\\xe9__t0.wav " in proc.stdout, proc.stdout
    assert "│ g\\xe9 " in proc.stdout.split("per group")[1], proc.stdout
    tracks_table = proc.stdout.split("\ntracks\n")[1].splitlines()
    assert len({len(line) for line in tracks_table}) == 1, tracks_table  # every row in line with the header

    report = json.loads(run_cli("evaluate", data, "--json", check=True).stdout)
    classified = json.loads(run_cli("classify", odd, "--json", check=True).stdout)
    row = next(r for r in report["rows"] if r["path"].endswith("__t0.wav"))
    assert row["path"] == classified["path"] == key_spelling(os.fsencode(odd)) == f"{data}/calm/g\\xe9__t0.wav"
    assert row["group"] == "g\\xe9" and "g\\xe9" in [g["group"] for g in report["groups"]]


def _long_names(tracks, tmp_path):
    """DATA holding two tracks whose names share their first 60 characters, and another."""
    data = tmp_path / "data"
    (data / "calm").mkdir(parents=True)
    (data / "exciting").mkdir()
    calm, exciting = sorted((tracks / "calm").iterdir()), sorted((tracks / "exciting").iterdir())
    prefix = "Some_Long_Artist_Name_-_Some_Long_Album_Title_-_Some_Subtitle_"
    names = [f"{prefix}01_Opening.wav", f"{prefix}02_Battle.wav"]
    os.symlink(calm[0], data / "calm" / names[0])
    os.symlink(exciting[0], data / "calm" / names[1])
    os.symlink(exciting[1], data / "exciting" / "e.wav")
    return data, names


def test_a_long_track_name_is_never_cut(tracks, tmp_path):
    """evaluate --tracks written to a file cut each name at rich's 80 columns (`Some_Long_Artist_Name_-_…`):
    two tracks read the same, and the mistaken one could not be told. In a pipe without COLUMNS each name is
    whole on its line now; at COLUMNS it folds onto more lines, never cut."""
    import subprocess
    import sys

    data, names = _long_names(tracks, tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "FORCE_COLOR", "TTY_COMPATIBLE")}
    text = subprocess.run([sys.executable, "-m", "tagger", "evaluate", data, "--tracks"], capture_output=True,
                          text=True, env=env, timeout=300, check=True).stdout
    assert "…" not in text, text
    assert all(any(f"│ {name} " in line for line in text.splitlines()) for name in names), text
    proc = run_cli("evaluate", data, "--tracks", env={"COLUMNS": "80"})
    assert proc.returncode == 0 and "…" not in proc.stdout, proc.stdout
    assert all(len(line) <= 80 for line in proc.stdout.split("\ntracks\n")[1].splitlines()), proc.stdout
    folded = "".join(line.split("│")[1].strip() for line in proc.stdout.split("\ntracks\n")[1].splitlines()
                     if line.startswith("│"))
    assert all(name in folded for name in names), folded


def test_on_a_narrow_terminal_no_figure_is_cut(tracks, tmp_path):
    """On a 40-column terminal the per-group and track tables' figures were cut to `0.…` and `1…`; each figure
    is whole now (a name or a header folds instead)."""
    from tests.conftest import on_a_terminal

    data, names = _long_names(tracks, tmp_path)
    report = json.loads(run_cli("evaluate", data, "--json", check=True).stdout)
    shown = on_a_terminal(["evaluate", str(data), "--tracks"], stream="stdout", columns=40)
    assert "…" not in shown, shown
    figures = [f"{x:.3f}" for g in report["groups"] for x in (g["accuracy"], g["balanced_accuracy"], g["roc_auc"])]
    figures += [f"{v:.3f}" for r in report["rows"] for v in r["scores"].values()]
    rows = shown.split("per group")[1]
    assert all(f" {figure} " in rows for figure in figures), (figures, shown)


def test_a_sub_folder_with_no_audio_is_left_out_whatever_its_name(tracks, tmp_path):
    """A `notes/` folder of text beside calm/ and exciting/ stopped evaluate (and train with --labels):
    'unknown label 'notes''. A folder holding no audio file is left out with a warning whatever its name,
    as an empty label folder is; one of another name holding audio is still an error."""
    from tagger.dataset import load_many

    data = tmp_path / "data"
    for track in tracks.rglob("*.wav"):
        (data / track.parent.name).mkdir(parents=True, exist_ok=True)
        os.symlink(track, data / track.parent.name / track.name)
    (data / "notes").mkdir()
    (data / "notes" / "readme.txt").write_text("where these came from\n")
    proc = run_cli("evaluate", data, "--json", env={"COLUMNS": "500"})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["tracks"] == 6
    assert proc.stderr.splitlines() == [
        f"warning: {data / 'notes' / 'readme.txt'}: skipped: not an audio file (.txt extension)",
        f"warning: {data / 'notes'}: no audio file in this label folder: label 'notes' left out"]
    skipped = []  # train --labels calm,exciting reads DATA as this
    items = load_many([data], labels=("calm", "exciting"), on_skip=lambda path, why: skipped.append(path))
    assert len(items) == 6 and skipped == [data / "notes" / "readme.txt", data / "notes"]

    os.symlink(next((tracks / "calm").iterdir()), data / "notes" / "t.wav")
    proc = run_cli("evaluate", data, env={"COLUMNS": "500"})
    assert (proc.returncode, proc.stdout) == (1, ""), proc.stdout
    assert proc.stderr.splitlines()[-1] == f"error: {data / 'notes'}: unknown label 'notes' (labels: calm, exciting)"


def test_evaluate_leaves_the_output_consoles_width_as_it_was(tracks):
    """evaluate in a pipe without COLUMNS set the process's output console 1000 columns wide and left it so: a
    later command in the same process (typer's CliRunner, the beets plugin) laid out its table at 1000 columns,
    not at COLUMNS. The width is for evaluate's tables only now."""
    from typer.testing import CliRunner

    from tagger.cli import app

    runner = CliRunner()
    unset = {"COLUMNS": None, "FORCE_COLOR": None, "TTY_COMPATIBLE": None}  # stdout a pipe, no COLUMNS

    def model_info() -> str:
        result = runner.invoke(app, ["model-info"], env={**unset, "COLUMNS": "60"})
        assert result.exit_code == 0, result.output
        return result.output

    before = model_info()
    assert max(map(len, before.splitlines())) <= 60, before
    result = runner.invoke(app, ["evaluate", str(tracks)], env=unset)
    assert result.exit_code == 0, result.output
    assert model_info() == before


def test_an_unknown_label_is_named_before_a_label_folder_is_walked(tracks, tmp_path):
    """An unknown label folder (sad/, holding audio) was named only once every label folder sorted before it
    had been walked, after a warning for each file there that is not audio (300 albums' cover.jpg: the error
    came as line 301). It is the one line now, at once; a sub-folder holding no audio is still left out."""
    from tagger.dataset import load_many

    data = tmp_path / "data"
    for i, track in enumerate(sorted((tracks / "calm").iterdir())):
        (data / "calm" / f"album{i}").mkdir(parents=True)
        (data / "calm" / f"album{i}" / "cover.jpg").write_bytes(b"")
        os.symlink(track, data / "calm" / f"album{i}" / track.name)
    (data / "exciting").mkdir()
    os.symlink(next((tracks / "exciting").iterdir()), data / "exciting" / "e.wav")
    (data / "notes").mkdir()
    (data / "notes" / "readme.txt").write_text("where these came from\n")
    (data / "sad" / "deep").mkdir(parents=True)
    (data / "sad" / "deep" / "a.txt").write_text("x\n")
    os.symlink(next((tracks / "calm").iterdir()), data / "sad" / "deep" / "s.wav")
    message = f"{data / 'sad'}: unknown label 'sad' (labels: calm, exciting)"
    proc = run_cli("evaluate", data, env={"COLUMNS": "500"})
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", f"error: {message}\n")
    skipped = []  # train --labels calm,exciting reads DATA as this
    with pytest.raises(MoodtagError) as caught:
        load_many([data], labels=("calm", "exciting"), on_skip=lambda path, why: skipped.append(path))
    assert (str(caught.value), skipped) == (message, [])


def test_two_groups_never_share_a_name(tracks, tmp_path):
    """A group folder named with the byte 0xe9 and one named `a\\xe9` (backslash, x, e, 9) both read `a\\xe9`: in
    the per-group table, in --json, and as one key of the summary a trained model's spec keeps (one group's
    figures lost). A group is spelt as classify --json spells a path now (records.key_spelling: each backslash
    doubled), in the table too."""
    from tagger.evaluate import evaluate_model
    from tagger.weights import load_model

    data = tmp_path / "data"
    for label in ("calm", "exciting"):
        for name, track in zip((b"a\xe9", b"a\\xe9"), sorted((tracks / label).iterdir())):
            folder = data / label / os.fsdecode(name)
            folder.mkdir(parents=True)
            os.symlink(track, folder / "t.wav")
    spelt = ["a\\\\xe9", "a\\xe9"]  # the literal name's backslash doubled; the byte as \xe9
    report = evaluate_model(load_items(data, group_by="folder"), load_model(None))
    assert sorted(report.summary()["groups"]) == spelt
    assert sorted(g["group"] for g in report.to_json()["groups"]) == spelt
    assert sorted({r["group"] for r in report.to_json()["rows"]}) == spelt
    proc = run_cli("evaluate", data, "--group-by", "folder", env={"COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("│")[1].strip() for line in proc.stdout.split("per group")[1].splitlines()
            if line.startswith("│")]
    assert sorted(rows) == spelt, proc.stdout
