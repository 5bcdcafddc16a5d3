"""`moodtag untag` and then a move of the file: the user's untag travels with the file, real audio
(tagger.synth), real SQLite caches, real mutagen, the real CLI."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tagger import synth
from tagger.tags import read_mood
from tests.conftest import run_cli
from tests.test_scan import rows


def scan(lib: Path, db: Path, *extra) -> dict[str, tuple[str, str]]:
    """path -> (action, tags) of each track of a scan."""
    proc = run_cli("scan", lib, "--db", db, "--jobs", "1", "--json", *extra, check=True)
    return {line["path"]: (line["action"], line["tags"]) for line in map(json.loads, proc.stdout.splitlines())}


_UNTAG_KILLED = """
import os, signal, sys
import tagger.tags as tags
def remove_mood(*a, **k):   # killed before its write: the row says untagged, pending
    os.kill(os.getpid(), signal.SIGKILL)
tags.remove_mood = remove_mood
sys.argv = ["moodtag", "untag", *sys.argv[1:]]
from tagger.cli import main
main()
"""


def test_a_pending_untag_is_finished_on_the_file_moved_since(tmp_path):
    """An untag killed before its write leaves the row pending (an mtime no file has); the file then
    moved: a scan's moved-file lookup by size and mtime never found that row, so the file was analysed as
    a new one and kept moodtag's mood, though the user untagged it. The moved file now finds its row, and
    the scan finishes the untag, as it does for a file not moved."""
    lib = tmp_path / "lib"
    for folder in ("A", "B"):
        (lib / folder).mkdir(parents=True)
    track = synth.make_track(lib / "A" / "a.flac", "calm", 8.0, seed=1)
    synth.make_track(lib / "A" / "other.ogg", "exciting", 6.0, seed=2)
    db = tmp_path / "c.db"
    scan(lib, db)
    assert read_mood(track) is not None
    proc = subprocess.run([sys.executable, "-c", _UNTAG_KILLED, str(track), "--db", str(db)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    assert rows(db)[str(track)]["mtime_ns"] < 0 and rows(db)[str(track)]["tag_state"] == "untagged"
    moved = lib / "B" / "a.flac"
    track.rename(moved)
    outcomes = scan(lib, db)
    assert outcomes[str(moved)] == ("analysed", "untagged"), outcomes
    assert read_mood(moved) is None, "the scan wrote the mood back into a file the user untagged"
    row = rows(db)[str(moved)]
    assert row["tag_state"] == "untagged" and row["mtime_ns"] == moved.stat().st_mtime_ns
    assert str(track) not in rows(db)
    assert scan(lib, db)[str(moved)] == ("cached", "untagged")


def test_a_copy_of_a_file_whose_untag_is_pending_on_a_disk_away_keeps_its_tags(tmp_path):
    """An album tagged on disk A, copied with its tags to disk B (a backup); an untag of A killed before
    its write (the rows pending); disk A then unplugged (its mount point empty). B's file, with no row,
    matches A's pending row by size, mtime and name, but it may be a copy: a scan removed moodtag's mood
    from it, a file the user never untagged. Its tags are left as they are (the same holds for the file
    itself moved out of the folder it empties: untag it again); the row on the disk away stays pending."""
    lib = tmp_path / "lib"
    for folder in ("A", "B"):
        (lib / folder).mkdir(parents=True)
    track = synth.make_track(lib / "A" / "a.flac", "calm", 8.0, seed=1)
    db = tmp_path / "c.db"
    scan(lib / "A", db)
    copy = lib / "B" / "a.flac"
    shutil.copy2(track, copy)
    proc = subprocess.run([sys.executable, "-c", _UNTAG_KILLED, str(track), "--db", str(db)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    track.unlink()  # disk A away: its mount point (the folder A) empty
    outcomes = scan(lib / "B", db)
    assert outcomes[str(copy)][1] in ("unchanged", "written"), outcomes
    assert read_mood(copy) is not None, "the scan took a copy's tags out for another file's pending untag"
    assert rows(db)[str(track)]["mtime_ns"] < 0 and rows(db)[str(track)]["tag_state"] == "untagged"


def test_an_untagged_file_moved_out_of_the_folder_it_empties_stays_untagged(tmp_path):
    """Untag, then the file moved out of its folder, now empty: the row is not taken for the moved file's
    (an empty folder may be an unmounted disk's mount point), so the file was analysed as a new one and the
    mood written back. It is now analysed and left untagged, as its row said; --retag still tags it."""
    lib = tmp_path / "lib"
    for folder in ("A", "B"):
        (lib / folder).mkdir(parents=True)
    synth.make_track(lib / "A" / "a.ogg", "calm", 5.0, seed=1)
    track = synth.make_track(lib / "B" / "b.ogg", "calm", 5.0, seed=2)
    db = tmp_path / "c.db"
    scan(lib, db)
    assert "untagged 1 file" in run_cli("untag", lib / "B", "--db", db, check=True).stdout
    moved = lib / "A" / "b.ogg"
    track.rename(moved)
    assert scan(lib, db, "--dry-run")[str(moved)] == ("analysed", "untagged")
    outcomes = scan(lib, db)
    assert outcomes[str(moved)] == ("analysed", "untagged"), outcomes
    assert read_mood(moved) is None, "the scan wrote the mood back into a file the user untagged"
    assert rows(db)[str(moved)]["tag_state"] == "untagged"
    assert rows(db)[str(track)]["status"] == "missing"  # left where it was, as under an unmounted disk
    assert scan(lib, db)[str(moved)] == ("cached", "untagged")
    assert scan(lib, db, "--retag")[str(moved)] == ("cached", "written")
    assert read_mood(moved) is not None
