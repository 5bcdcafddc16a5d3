"""`moodtag stats` through the real CLI over a real scan: its mood, format and model tables and its histogram
count the same tracks as its header's 'analysed' figure and as the playlists."""
from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import on_a_terminal, run_cli


@pytest.fixture
def lib(tmp_path, audio_dir) -> Path:
    """Six real tracks: FLAC, WAV, MP3, Ogg Vorbis, two M4A (AAC, ALAC)."""
    folder = tmp_path / "lib"
    folder.mkdir()
    for src in sorted(audio_dir.iterdir()):
        if src.suffix in (".flac", ".wav", ".mp3", ".ogg", ".m4a"):
            shutil.copy(src, folder / f"{src.stem}{src.suffix}")
    return folder


def test_tracks_whose_tag_write_failed_count_in_every_table_as_in_the_playlists(lib, tmp_path, test_model):
    """A read-only file is analysed (its mood kept, listed in its playlist) but its tags are not written:
    stats counted it 'analysed' in its header and left it out of by_mood, by_model and the histogram, while
    by_format counted every row (failed and missing too), so no two tables added up to the same figure."""
    db = tmp_path / "c.db"
    files = sorted(lib.iterdir())
    locked = [f for f in files if f.suffix in (".flac", ".mp3")]
    for f in locked:
        f.chmod(0o444)
    run_cli("scan", lib, "--db", db, "--model", test_model, "--jobs", "1", check=True)
    gone = next(f for f in files if f.suffix == ".wav")
    gone.unlink()
    run_cli("scan", lib, "--db", db, "--model", test_model, "--jobs", "1", check=True)  # marks it missing

    data = json.loads(run_cli("stats", "--db", db, "--json", check=True).stdout)
    assert data["by_status"] == {"ok": len(files) - 3, "failed": 2, "missing": 1} and data["tag_failed"] == 2
    analysed = data["by_status"]["ok"] + data["tag_failed"]
    assert data["analysed"] == analysed  # the header's figure, which by_status's "failed" is not
    for table in ("by_mood", "by_format", "by_model"):
        assert sum(data[table].values()) == analysed, (table, data[table])
    assert sum(data["histogram"]["bins"]) == analysed
    assert set(data["mean_confidence"]) == set(data["by_mood"])

    out = tmp_path / "pl"
    run_cli("playlists", "--db", db, "--any-model", "--absolute", "-d", out, check=True)
    listed = {p.stem: [line for line in p.read_text().splitlines() if line and not line.startswith("#")]
              for p in out.iterdir()}
    assert {mood: len(paths) for mood, paths in listed.items() if paths} == data["by_mood"]
    assert {str(f) for f in locked} <= {path for paths in listed.values() for path in paths}

    header = run_cli("stats", "--db", db, check=True).stdout.splitlines()[0]
    assert header.endswith(f"{len(files)} tracks ({analysed} analysed: {analysed - 2} tagged, 2 whose tags could not "
                           "be written; 0 failed, 1 missing)")

    table = run_cli("stats", "--db", db, check=True).stdout  # a pipe: no line padded to the tables' width
    assert "tracks" in table and not [line for line in table.splitlines() if line.endswith(" ")], table


def _scan(folder, db, model, *args) -> None:
    run_cli("scan", folder, "--db", db, "--model", model, "--jobs", "1", *args, check=True)


def _added_up(data) -> int:
    """The tracks the histogram accounts for: its bins, those without a readable P(label), those without one."""
    return sum(data["histogram"]["bins"]) + data["unreadable_scores"] + data["without_label"]


def test_a_probability_edited_out_of_0_to_1_counts_as_unreadable(lib, tmp_path, test_model):
    """A `scores` cell edited by hand to hold P(exciting) = 1e999 (SQLite reads it as an infinity) ended stats
    in `OverflowError: cannot convert float infinity to integer`; 2.5 or true was counted in the top bin, -0.3 in
    the bottom one, and "0.7", null or [0.3] dropped without a word, so that the histogram no longer added up
    to the analysed figure. Now each is counted as a track whose scores are not readable, with the warning."""
    db = tmp_path / "c.db"
    _scan(lib, db, test_model, "--no-write")
    edited = sorted(lib.iterdir())[0]
    conn = sqlite3.connect(db)
    for value in ("1e999", "-1e999", "2.5", "-0.3", "true", '"0.7"', "null", "[0.3]"):
        with conn:
            conn.execute("UPDATE tracks SET scores = ? WHERE path LIKE ?",
                         [f'{{"calm": 0.1, "exciting": {value}}}', f"%/{edited.name}"])
        proc = run_cli("stats", "--db", db, "--json")
        assert proc.returncode == 0, (value, proc.stderr)
        data = json.loads(proc.stdout)
        assert data["unreadable_scores"] == 1 and sum(data["histogram"]["bins"]) == data["analysed"] - 1, (value, data)
        assert _added_up(data) == data["analysed"] == 6
        assert f"warning: {edited}: its scores are not a JSON object" in proc.stderr, (value, proc.stderr)
    conn.close()
    calm = json.loads(run_cli("stats", "--db", db, "--json", "--label", "calm", check=True).stdout)
    assert calm["unreadable_scores"] == 0 and sum(calm["histogram"]["bins"]) == 6  # its P(calm) is a number
    table = run_cli("stats", "--db", db)  # the table too (here the last edit, [0.3])
    assert table.returncode == 0 and "P(exciting)" in table.stdout and "Traceback" not in table.stderr


def test_histogram_of_a_library_whose_tags_could_not_be_written(lib, tmp_path, test_model):
    """Every track analysed but its tag write failed (a read-only library): the labels were taken from rows of
    status ok alone, so stats drew no histogram, --json gave `"label": null`, and --label with any word was
    taken (an empty histogram). The labels are those of the analysed rows, as the tables count them."""
    db = tmp_path / "c.db"
    for f in lib.iterdir():
        f.chmod(0o444)
    _scan(lib, db, test_model)
    data = json.loads(run_cli("stats", "--db", db, "--json", check=True).stdout)
    assert data["by_status"] == {"failed": 6} and data["tag_failed"] == data["analysed"] == 6
    assert data["histogram"]["label"] == "exciting" and sum(data["histogram"]["bins"]) == 6
    assert "P(exciting) over analysed tracks" in run_cli("stats", "--db", db, check=True).stdout
    bogus = run_cli("stats", "--db", db, "--label", "bogus")
    assert bogus.returncode == 1 and "'bogus' is not a label" in bogus.stderr and "calm, exciting" in bogus.stderr


def test_histogram_of_a_cache_holding_two_models_labels(lib, tmp_path, test_model):
    """Three tracks scored by a calm/exciting model, then one by a calm/exciting/sad model: the default label
    was the newest row's last (sad), and the histogram counted 1 of the 4 analysed tracks, the other 3 left
    out without a word. The default is the last label most analysed tracks hold (ties: the newest's), and
    the tracks without P(label) are counted and said."""
    import torch

    from tagger.model import SeedCNN
    from tagger.weights import ModelSpec, save_model

    torch.manual_seed(0)
    three = save_model(tmp_path / "three.safetensors",
                       ModelSpec(name="three", version="0.0.1", labels=("calm", "exciting", "sad"), threshold=None,
                                 normalization={"mean": -40.0, "std": 20.0}), SeedCNN(3).state_dict())
    files = sorted(lib.iterdir())
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    for i, f in enumerate(files):
        f.rename((first if i < 3 else second) / f.name)
    db = tmp_path / "c.db"
    _scan(first, db, test_model, "--no-write")
    _scan(second / files[3].name, db, three, "--no-write")  # the newest: one track of three labels

    data = json.loads(run_cli("stats", "--db", db, "--json", check=True).stdout)
    assert data["analysed"] == 4 and data["histogram"]["label"] == "exciting"  # three tracks hold calm/exciting
    assert sum(data["histogram"]["bins"]) == 4 and data["without_label"] == 0  # the newest has P(exciting) too
    sad = json.loads(run_cli("stats", "--db", db, "--json", "--label", "sad", check=True).stdout)
    assert sum(sad["histogram"]["bins"]) == 1 and sad["without_label"] == 3 and _added_up(sad) == 4
    table = run_cli("stats", "--db", db, "--label", "sad", check=True).stdout
    assert table.rstrip().splitlines()[-1].startswith("3 of the 4 analysed tracks have no P(sad)"), table
    assert "1 of the 4" not in run_cli("stats", "--db", db, check=True).stdout  # no such line where all have one

    _scan(second, db, three, "--no-write")  # three tracks each: the newest's labels
    assert json.loads(run_cli("stats", "--db", db, "--json", check=True).stdout)["histogram"]["label"] == "sad"


def test_histogram_bars_follow_the_terminal_width(lib, tmp_path, test_model):
    """On a terminal 40 columns wide the histogram's rows were 62 wide (its bars 40 cells at least), while
    the other tables fit. The bars take what the terminal leaves (10 to 40 cells); a pipe without COLUMNS
    (80 columns) keeps bars of 40."""
    db = tmp_path / "c.db"
    _scan(lib, db, test_model, "--no-write")
    for columns, bar in ((40, 19), (32, 11), (200, 40)):
        shown = on_a_terminal(["stats", "--db", str(db)], stream="stdout", columns=columns)
        rows = [line.rstrip() for line in shown.splitlines() if "–" in line and line.strip()[:1].isdigit()]
        assert len(rows) == 10, shown
        assert max(len(row) for row in rows) <= columns, shown
        assert max(row.count("█") for row in rows) == bar, shown
    piped = run_cli("stats", "--db", db, env={"COLUMNS": ""}, check=True).stdout
    assert max(line.count("█") for line in piped.splitlines()) == 40, piped
