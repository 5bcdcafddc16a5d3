"""Scans that write no tags (--no-write, -n) and forced rescans, through the real CLI on real files:
they keep what the cache knows of a file's tags (tagged, kept, untagged), so the user's own mood is
never written over by a later scan, and they leave a file torn by an interrupted tag write alone."""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from mutagen import flac

from tagger.safewrite import UndoJournal
from tests.conftest import run_cli
from tests.test_safewrite import interrupt_a_write


@pytest.fixture
def lib(tmp_path, audio_dir) -> Path:
    """Two real tracks: a FLAC (its tag has padding: an edit keeps its size) and a WAV."""
    folder = tmp_path / "lib"
    folder.mkdir()
    for suffix in (".flac", ".wav"):
        src = next(p for p in sorted(audio_dir.iterdir()) if p.suffix == suffix)
        shutil.copy(src, folder / f"{src.stem}{suffix}")
    return folder


def scan(lib: Path, db: Path, model: Path, *extra) -> dict[str, dict]:
    """`moodtag scan --json`: each track's object, by file name."""
    proc = run_cli("scan", lib, "--db", db, "--model", model, "--jobs", "1", "--json", *extra, check=True)
    return {Path(o["path"]).name: o for o in map(json.loads, proc.stdout.splitlines())}


def row(db: Path, track: Path) -> dict:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return dict(con.execute("SELECT * FROM tracks WHERE path = ?", [str(track)]).fetchone())
    finally:
        con.close()


def flac_track(lib: Path) -> Path:
    return next(lib.glob("*.flac"))


def by_hand(track: Path, mood: str, *, keep_stat: bool = False) -> None:
    """Put `mood` into the FLAC's MOOD, as Picard does (with keep_stat: "preserve timestamps"; the
    tag's padding keeps the size)."""
    before = track.stat()
    audio = flac.FLAC(track)
    audio["MOOD"] = [mood]
    audio.save()
    if keep_stat:
        os.utime(track, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert (track.stat().st_size, track.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def tagged_then_corrected(lib: Path, db: Path, model: Path) -> tuple[Path, str, str]:
    """Scan (moodtag writes its mood), then the user puts the other label in the FLAC, and a plain scan
    keeps it (row: kept). (track, moodtag's mood, the user's)."""
    track = flac_track(lib)
    ours = scan(lib, db, model)[track.name]["mood"]
    theirs = "calm" if ours == "exciting" else "exciting"
    by_hand(track, theirs)
    assert scan(lib, db, model)[track.name]["tags"] == "kept"
    assert row(db, track)["tag_state"] == "kept"
    return track, ours, theirs


@pytest.mark.parametrize("between", ["force", "title edit"])
def test_a_no_write_rescan_keeps_a_kept_row_and_the_users_mood(lib, tmp_path, test_model, between):
    """A --no-write scan that analyses a kept file again (--force, or the user edited its title since)
    made the row forget `kept`; the next plain scan then wrote moodtag's mood over the user's, and kept
    no MOODTAG_REPLACED_MOOD. The row stays kept, the file keeps the user's mood, and --replace-mood
    still saves it for untag."""
    db = tmp_path / "c.db"
    track, ours, theirs = tagged_then_corrected(lib, db, test_model)
    if between == "force":
        extra = ("--force",)
    else:
        audio = flac.FLAC(track)
        audio["TITLE"] = ["a new title"]
        audio.save()
        extra = ()
    out = scan(lib, db, test_model, "--no-write", *extra)[track.name]
    assert (out["action"], out["tags"]) == ("analysed", "kept")
    assert (row(db, track)["mood"], row(db, track)["tag_state"]) == (ours, "kept")

    again = scan(lib, db, test_model)[track.name]
    assert again["tags"] == "kept" and flac.FLAC(track)["MOOD"] == [theirs]
    assert row(db, track)["tag_state"] == "kept"
    scan(lib, db, test_model, "--replace-mood")
    assert flac.FLAC(track)["MOOD"] == [ours] and flac.FLAC(track)["MOODTAG_REPLACED_MOOD"] == [theirs]


def test_a_hand_correction_then_a_no_write_scan_is_kept_by_the_next_scan(lib, tmp_path, test_model):
    """moodtag wrote a mood, the user put the other label there, and a --no-write scan (not a plain
    one) analysed the changed file: the row lost what moodtag had written, and the next plain scan
    wrote over the user's label. The --no-write scan reads the file's tags: the row says kept."""
    db = tmp_path / "c.db"
    track = flac_track(lib)
    ours = scan(lib, db, test_model)[track.name]["mood"]
    theirs = "calm" if ours == "exciting" else "exciting"
    by_hand(track, theirs)
    assert scan(lib, db, test_model, "--no-write")[track.name]["tags"] == "kept"
    assert row(db, track)["tag_state"] == "kept"
    assert scan(lib, db, test_model)[track.name]["tags"] == "kept"
    assert flac.FLAC(track)["MOOD"] == [theirs]


def test_force_no_write_on_a_tagged_library_keeps_it_tagged(lib, tmp_path, test_model):
    """`scan --force --no-write` (refresh the cache) left every row without its tag state: stats said
    nothing was tagged. The files still hold these results: the rows say tagged, and the next scan
    writes nothing."""
    db = tmp_path / "c.db"
    scan(lib, db, test_model)
    before = {p: p.read_bytes() for p in lib.iterdir()}
    outs = scan(lib, db, test_model, "--force", "--no-write")
    assert {(o["action"], o["tags"]) for o in outs.values()} == {("analysed", "unchanged")}
    assert {row(db, p)["tag_state"] for p in lib.iterdir()} == {"tagged"}
    stats = json.loads(run_cli("stats", "--db", db, "--json", check=True).stdout)
    assert stats["tagged"] == 2, stats
    assert {o["tags"] for o in scan(lib, db, test_model).values()} == {"unchanged"}
    assert {p: p.read_bytes() for p in lib.iterdir()} == before


def test_force_keeps_a_correction_made_with_timestamps_preserved(lib, tmp_path, test_model):
    """A tag editor that preserves timestamps (Picard), the FLAC's padding keeping its size: a forced
    scan wrote moodtag's mood over the user's label (nothing told it moodtag had written another one).
    It is kept, as when the file's mtime changed."""
    db = tmp_path / "c.db"
    track = flac_track(lib)
    ours = scan(lib, db, test_model)[track.name]["mood"]
    theirs = "calm" if ours == "exciting" else "exciting"
    by_hand(track, theirs, keep_stat=True)
    out = scan(lib, db, test_model, "--force")[track.name]
    assert (out["action"], out["tags"]) == ("analysed", "kept")
    assert flac.FLAC(track)["MOOD"] == [theirs] and row(db, track)["tag_state"] == "kept"


def test_a_no_write_rescan_leaves_an_untagged_file_untagged_even_with_retag(lib, tmp_path, test_model):
    """`--retag --no-write` wrote nothing back but cleared the row's `untagged`, so the next plain scan
    (no --retag) wrote moodtag's fields into the file `moodtag untag` had cleared."""
    db = tmp_path / "c.db"
    track = flac_track(lib)
    scan(lib, db, test_model)
    run_cli("untag", track, "--db", db, check=True)
    assert "MOOD" not in flac.FLAC(track)
    scan(lib, db, test_model, "--force", "--retag", "--no-write")
    assert row(db, track)["tag_state"] == "untagged"
    assert scan(lib, db, test_model)[track.name]["tags"] == "untagged"
    assert "MOOD" not in flac.FLAC(track) and "MOODTAG_MODEL" not in flac.FLAC(track)


@pytest.mark.parametrize("flag", ["--dry-run", "--no-write"])
def test_a_scan_that_writes_nothing_leaves_a_torn_file_and_its_row_alone(lib, tmp_path, test_model, flag):
    """A tag write killed half way leaves the file torn until a scan undoes it from the undo journal.
    -n and --no-write ran no recovery and analysed the torn file anyway: a false failure, and with
    --no-write the row's mood was replaced by it (the track left queries and playlists). They undo
    nothing (they write no file), name the file as a writing scan names one it cannot undo yet, and
    leave it and its row as they are; the next plain scan undoes the write."""
    db = tmp_path / "c.db"
    track = flac_track(lib)
    scan(lib, db, test_model)
    before_row, whole = row(db, track), track.read_bytes()
    interrupt_a_write(track, UndoJournal.for_cache(db), [(0, 8192), (20480, 24576)])
    torn = track.read_bytes()
    assert torn != whole

    proc = run_cli("scan", lib, "--db", db, "--model", test_model, "--jobs", "1", flag)
    assert f"{track}: not analysed until its interrupted tag write is undone" in proc.stderr, proc.stderr
    assert "analysis failed" not in proc.stderr and "cannot decode" not in proc.stderr, proc.stderr
    assert track.read_bytes() == torn and list(UndoJournal.for_cache(db).folder.glob("*.undo"))
    assert row(db, track) == before_row

    plain = run_cli("scan", lib, "--db", db, "--model", test_model, "--jobs", "1", check=True)
    assert f"recovered: {track}: restored as it was before an interrupted tag write" in plain.stderr, plain.stderr
    assert track.read_bytes() == whole and row(db, track)["tag_state"] == "tagged"


def test_a_dry_run_counts_the_files_that_would_be_marked_missing(lib, tmp_path, test_model):
    """A dry run's summary left out the tracks whose files vanished, which the real scan then marked
    missing. It counts them now (not a file moved elsewhere in the library: its row follows it), and
    still writes nothing."""
    db = tmp_path / "c.db"
    scan(lib, db, test_model)
    wav = next(lib.glob("*.wav"))
    next(lib.glob("*.flac")).unlink()
    (lib / "sub").mkdir()
    wav.rename(lib / "sub" / wav.name)  # moved: not vanished
    before = db.read_bytes()
    proc = run_cli("scan", lib, "--db", db, "--model", test_model, "-n", check=True)
    assert db.read_bytes() == before
    lines = [line.split() for line in proc.stderr.splitlines() if "vanished" in line]
    assert lines == [["vanished", "(would", "be", "marked", "missing)", "1"]], proc.stderr
    proc = run_cli("scan", lib, "--db", db, "--model", test_model, check=True)
    lines = [line.split() for line in proc.stderr.splitlines() if "vanished" in line]
    assert lines == [["vanished", "(marked", "missing)", "1"]], proc.stderr


@pytest.mark.parametrize("flag", ["--dry-run", "--no-write"])
def test_a_scan_that_writes_nothing_stops_on_an_undo_journal_it_cannot_read(lib, tmp_path, test_model, flag):
    """A writing scan stops with one line where the undo journal cannot be read (here a file in its
    place); -n and --no-write took it for an empty journal, and analysed files it may name as torn."""
    from tests.test_faults import one_error_line

    db = tmp_path / "c.db"
    scan(lib, db, test_model)
    shutil.rmtree(f"{db}-undo", ignore_errors=True)
    Path(f"{db}-undo").write_text("not a folder")
    before = db.read_bytes()
    proc = run_cli("scan", lib, "--db", db, "--model", test_model, flag, "--force")
    line = one_error_line(proc)
    assert line == f"error: cannot read the undo journal {db}-undo: not a directory", line
    assert db.read_bytes() == before


def test_untag_leaves_alone_a_file_whose_interrupted_write_is_not_undone(lib, tmp_path, test_model):
    """An interrupted write that recovery cannot undo yet (here: the whole file journaled, and the file
    now under another inode number, as after a share or drive is mounted again: nothing shows it is the
    same file) leaves the file maybe torn. A scan passes it over; untag wrote into it anyway (mutagen
    on torn bytes), said 'untagged 1 file', and left it undecodable. Now it is one failed line, the file
    and its row as they were, and the journal entry kept; -n says the same."""

    db = tmp_path / "c.db"
    track = flac_track(lib)
    scan(lib, db, test_model)
    size = track.stat().st_size
    interrupt_a_write(track, UndoJournal.for_cache(db), [(0, size)])
    moved = track.with_name("copy.tmp")
    shutil.copyfile(track, moved)
    os.replace(moved, track)  # the same bytes under another inode
    torn, before_row = track.read_bytes(), row(db, track)
    for flags in (["-n"], []):
        proc = run_cli("untag", track, "--db", db, *flags)
        assert f"{track}: not untagged until its interrupted tag write is undone" in proc.stderr, proc.stderr
        assert proc.stdout.strip().endswith("1 failed"), proc.stdout
        assert track.read_bytes() == torn and row(db, track) == before_row
        assert list(UndoJournal.for_cache(db).folder.glob("*.undo"))
