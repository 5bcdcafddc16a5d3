"""The benchmark scripts' own arguments and bookkeeping, on tiny inputs (their measurements are not run here)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tagger.synth import encode, render
from tagger.weights import resolve_model

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import accuracy_table  # noqa: E402
import decision_diff  # noqa: E402
import large_library  # noqa: E402


@pytest.fixture
def older_tree(tmp_path, monkeypatch) -> Path:
    """decision_diff's "older commit": a tree of its own (the same tagger, linked) in place of a git worktree,
    so that the test adds none to the repository; its m/r.safetensors is no model at all."""
    tree = tmp_path / "older"
    tree.mkdir()
    (tree / "tagger").symlink_to(BENCHMARKS.parent / "tagger")
    (tree / "m").mkdir()
    (tree / "m" / "r.safetensors").write_bytes(b"not the model the user named")
    monkeypatch.setattr(decision_diff.sp, "checkout", lambda commit, out: tree)
    monkeypatch.setattr(decision_diff, "drop_checkout", lambda tree: None, raising=False)
    return tree


def _user_folder(tmp_path: Path, monkeypatch, names: list[str]) -> Path:
    """The user's cwd: lib/ with real tracks under `names`, m/r.safetensors a copy of the shipped default."""
    user = tmp_path / "user"
    (user / "lib").mkdir(parents=True)
    (user / "m").mkdir()
    shutil.copy(resolve_model(None), user / "m" / "r.safetensors")
    for i, name in enumerate(names):
        encode(render(("calm", "exciting")[i % 2], 12, seed=i), user / "lib" / name)
    monkeypatch.chdir(user)
    return user


def test_decision_diff_reads_a_relative_model_from_the_users_folder(tmp_path, monkeypatch, older_tree, capsys):
    """A relative --model was opened in each version's own tree (the subprocess's cwd): the older one
    failed with a traceback, or read another file of the same name there. Both read the user's file now."""
    user = _user_folder(tmp_path, monkeypatch, ["a.ogg", "b.ogg"])
    code = decision_diff.main(["--against", "HEAD", "lib", "--model", "m/r.safetensors", "--out", str(tmp_path / "o")])
    assert code == 0, capsys.readouterr()
    doc = json.loads((tmp_path / "o" / "decisions.json").read_text())
    assert doc["tracks"] == 2 and not doc["moods_differ"]
    assert all(r["error"] is None for side in ("old", "new") for r in doc[side].values()), doc
    assert (user / "m" / "r.safetensors").is_file()
    with pytest.raises(SystemExit) as stop:  # a path that names no file: said at once, not in the subprocess
        decision_diff.main(["--against", "HEAD", "lib", "--model", "m/none.safetensors"])
    assert stop.value.code == 2 and "--model m/none.safetensors: no such model file" in capsys.readouterr().err


def test_decision_diff_compares_a_track_whose_name_holds_a_newline(tmp_path, monkeypatch, older_tree, capsys):
    """The paths went to each version one per line: 'new\\nline.ogg' became two files that do not exist, the
    count said 3 tracks (2 failed with both) and the real one was never compared."""
    user = _user_folder(tmp_path, monkeypatch, ["new\nline.ogg", "ok.ogg"])
    code = decision_diff.main(["--against", "HEAD", "lib", "--out", str(tmp_path / "o")])
    assert code == 0, capsys.readouterr()
    doc = json.loads((tmp_path / "o" / "decisions.json").read_text())
    wanted = {str(user / "lib" / "new\nline.ogg"), str(user / "lib" / "ok.ogg")}
    assert (doc["tracks"], doc["failed_on_both"]) == (2, 0)
    for side in ("old", "new"):
        assert set(doc[side]) == wanted and all(r["error"] is None and r["mood"] for r in doc[side].values())


def test_decision_diff_shows_both_errors_when_only_their_text_changed(tmp_path, monkeypatch, capsys):
    """A track failing in both versions with another message was listed as 'None -> None'."""
    track = tmp_path / "t.ogg"
    encode(render("calm", 12, seed=1), track)
    failed = {"mood": None, "confidence": None, "scores": {}, "clips": [], "error": None}
    results = {"older": "cannot decode: old words", "new": "cannot decode: new words"}
    monkeypatch.setattr(decision_diff.sp, "checkout", lambda commit, out: tmp_path / "older")
    monkeypatch.setattr(decision_diff, "drop_checkout", lambda tree: None, raising=False)
    monkeypatch.setattr(decision_diff, "analyse", lambda code, files, model: {
        str(files[0]): dict(failed, path=str(files[0]), error=results["older" if code.name == "older" else "new"])})
    assert decision_diff.main(["--against", "HEAD", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    assert (f"  differs: {track}: error 'cannot decode: old words' -> error 'cannot decode: new words'"
            in capsys.readouterr().out.splitlines())


def _grouped_cv_doc(games: list[str]) -> dict:
    """A grouped_cv.py --json output, cut to what accuracy_table.py reads."""
    scores = {"ba": 0.8, "auc": 0.9}
    tracks = [{"group": g, "family": "games"} for g in games] + [{"group": "a folk album", "family": "folk"}]
    result = {"config": {}, "overall": {**scores, "ba_tuned": 0.75}, "sources": {g: scores for g in games},
              "families": {"folk": scores, "classical": scores, **({"games": scores} if games else {})},
              "meets_bar": True}
    return {"placement": "spread", "results": {"lean6": result}, "tracks": tracks}


@pytest.mark.parametrize("games", [[], ["0ad", "wesnoth"]])
def test_accuracy_table_rows_have_as_many_cells_as_the_header(tmp_path, capsys, games):
    """Without a game in the data the header had an empty cell more than the separator row (10 and 9), and a
    doc without one of the families was a KeyError."""
    path = tmp_path / "cv.json"
    path.write_text(json.dumps(_grouped_cv_doc(games)))
    assert accuracy_table.main([str(path)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    assert len(lines) == 3 and len({line.count("|") for line in lines}) == 1, lines
    assert lines[0].count("|") == 10 + len(games) and "|  |" not in lines[0], lines
    assert lines[1] == "|" + "---|" * (9 + len(games))
    games_cell = "0.80 / 0.90" if games else "-"  # no games family in the doc: a dash
    assert lines[2].startswith(f"| lean6 | spread | 0.80 | 0.90 | 0.75 | {games_cell} | 0.80 / 0.90 | 0.80 / 0.90 |")


def test_accuracy_table_arguments_and_bad_inputs(tmp_path):
    """--help was opened as a file (a traceback), no argument printed an empty, broken table with exit
    status 0, a file that is not JSON was a JSONDecodeError traceback. Now: argparse's help and usage
    error, and one line per bad input."""
    script = [sys.executable, str(BENCHMARKS / "accuracy_table.py")]
    proc = subprocess.run([*script, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: accuracy_table.py"), proc.stderr
    proc = subprocess.run(script, capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout) == (2, "") and "required: JSON" in proc.stderr, proc.stderr
    text, good = tmp_path / "notes.txt", tmp_path / "cv.json"
    text.write_text("not json\n")
    good.write_text(json.dumps(_grouped_cv_doc([])))
    proc = subprocess.run([*script, text, good, tmp_path / "none.json"], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout) == (1, ""), proc.stderr
    assert proc.stderr.splitlines() == [f"error: {text}: not JSON (Expecting value: line 1 column 1 (char 0))",
                                        f"error: {tmp_path / 'none.json'}: cannot read (No such file or directory)"]


def test_large_library_refuses_an_only_that_names_no_command(tmp_path, monkeypatch, capsys):
    """--only with a prefix of no command measured nothing, exited 0 and overwrote results.json with an
    empty "commands" (after generating the library). Refused before anything runs now."""
    def started(*args, **kwargs):
        raise AssertionError("the benchmark started")

    monkeypatch.setattr(large_library, "ensure_sources", started)
    results = tmp_path / "results.json"
    results.write_text('{"commands": {"query --json": {}}}')
    with pytest.raises(SystemExit) as stop:
        large_library.main(["--sizes", "10000", "--repeat", "1", "--out", str(tmp_path), "--only", "qeury"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "--only 'qeury': no command's name starts so" in err, err
    assert "query --json" in err and results.read_text() == '{"commands": {"query --json": {}}}'
