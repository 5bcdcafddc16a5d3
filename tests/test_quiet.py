"""`-q/--quiet` on scan, prune, untag, playlists and playlist, for cron (which mails any output) and systemd
timers: nothing printed when all went well; every problem printed as without it, with the same exit status.
The real CLI in subprocesses, on a library made with tagger.synth (one file not audio), a real cache."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tagger import synth
from tagger.tags import read_mood
from tests.conftest import run_cli
from tests.test_scan import rows

PROBLEMS_LINE = "1 problem (listed above); the rest of the scan completed."


@pytest.fixture(scope="module")
def tracks(tmp_path_factory) -> Path:
    """Six files: five tracks in A/ and B/, and B/bad.flac, which is not audio."""
    folder = tmp_path_factory.mktemp("tracks")
    for i, rel in enumerate(("A/a.flac", "A/b.ogg", "A/c.wav", "B/d.flac", "B/e.mp3")):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        synth.make_track(folder / rel, "calm" if i % 2 else "exciting", 6.0, seed=i)
    (folder / "B" / "bad.flac").write_bytes(b"not audio at all " * 10)
    return folder


@pytest.fixture
def library(tmp_path, tracks) -> Path:
    lib = tmp_path / "Music"
    shutil.copytree(tracks, lib)
    return lib


def moodtag(*args, **kw):
    return run_cli(*args, env={"COLUMNS": "80"}, **kw)


def scanned(library: Path, db: Path) -> None:
    moodtag("scan", library, "--db", db, "--jobs", "1", "--json", check=True)


def silent(proc) -> None:
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def test_a_first_scan_prints_only_its_failed_line_and_the_problems_line(library, tracks, tmp_path):
    quiet = moodtag("scan", "-q", library, "--db", tmp_path / "q.db", "--jobs", "1")
    other = tmp_path / "Other"
    shutil.copytree(tracks, other)
    plain = moodtag("scan", other, "--db", tmp_path / "plain.db", "--jobs", "1")
    assert "moodtag scan" in plain.stderr and "tracks found" in plain.stderr  # the table: only without -q
    assert quiet.returncode == plain.returncode == 0
    assert quiet.stdout == ""
    failed = [line for line in plain.stderr.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1
    assert quiet.stderr.splitlines() == [failed[0].replace(str(other), str(library)), PROBLEMS_LINE]
    assert PROBLEMS_LINE in plain.stderr
    assert sum(row["tagged"] for row in rows(tmp_path / "q.db").values()) == 5  # the scan did its work


def test_a_rescan_prints_nothing(library, tmp_path):
    """The file that failed before is counted in the table ('failed before, unchanged'): no line under -q."""
    db = tmp_path / "c.db"
    scanned(library, db)
    assert "failed before, unchanged" in moodtag("scan", library, "--db", db, "--jobs", "1").stderr
    silent(moodtag("scan", "--quiet", library, "--db", db, "--jobs", "1"))


def test_prune_forgets_without_a_word(library, tmp_path):
    db = tmp_path / "c.db"
    scanned(library, db)
    silent(moodtag("prune", "-q", "--db", db))
    gone = library / "A" / "a.flac"
    gone.unlink()
    silent(moodtag("scan", "-q", library, "--db", db, "--jobs", "1"))  # marked missing
    assert rows(db)[str(gone)]["status"] == "missing"
    silent(moodtag("prune", "-q", library, "--db", db))
    assert str(gone) not in rows(db)


def test_prune_keeps_saying_what_needs_doing(library, tmp_path):
    """Rows kept under an empty folder (a disk not mounted?) are a line under -q; files there again
    ("kept 3 missing tracks whose files are there again") are not."""
    db = tmp_path / "c.db"
    scanned(library, db)
    away = tmp_path / "B.away"
    (library / "B").rename(away)
    (library / "B").mkdir()
    scanned(library, db)  # B's rows marked missing
    plain = moodtag("prune", library, "--db", db)
    quiet = moodtag("prune", "-q", library, "--db", db)
    assert quiet.returncode == plain.returncode == 0 and quiet.stderr == plain.stderr == ""
    kept = [line for line in plain.stdout.splitlines() if "it is empty (a disk not mounted?)" in line]
    assert len(kept) == 1 and quiet.stdout.splitlines() == kept
    (library / "B").rmdir()
    away.rename(library / "B")
    assert "there again" in moodtag("prune", "-n", "-q", library, "--db", db).stdout  # a dry run's, as ever
    silent(moodtag("prune", "-q", library, "--db", db))
    assert sum(row["status"] == "missing" for row in rows(db).values()) == 3  # kept, not forgotten


def test_playlists_and_playlist_write_their_files_without_a_word(library, tmp_path):
    db = tmp_path / "c.db"
    scanned(library, db)
    out = tmp_path / "lists"
    silent(moodtag("playlists", "-q", "-d", out, "--db", db))
    written = {p.name: p.read_text(encoding="utf-8") for p in out.iterdir()}
    assert set(written) == {"calm.m3u8", "exciting.m3u8"}
    assert sum(text.count(".flac") + text.count(".ogg") + text.count(".wav") + text.count(".mp3")
               for text in written.values()) == 5
    one = tmp_path / "calm.m3u8"
    silent(moodtag("playlist", "calm", "--quiet", "-o", one, "--db", db))
    assert one.read_text(encoding="utf-8") == written["calm.m3u8"].replace("../Music/", "Music/")
    printed = moodtag("playlist", "calm", "-q", "--db", db)  # to standard output: the playlist, as ever
    assert printed.returncode == 0 and printed.stderr == "" and "#EXTM3U" in printed.stdout


def test_untag_untags_without_a_word(library, tmp_path):
    db = tmp_path / "c.db"
    scanned(library, db)
    assert read_mood(library / "A" / "a.flac") is not None
    silent(moodtag("untag", "-q", library / "A", "--db", db))
    assert [read_mood(p) for p in sorted((library / "A").iterdir())] == [None, None, None]
    # a file that fails: its line, and the count line that closes it (as a scan's problems line)
    proc = moodtag("untag", "-q", library, "--db", db)
    assert proc.returncode == 0
    assert proc.stderr.splitlines() == [f"failed: {library / 'B' / 'bad.flac'}: not a supported audio file"]
    assert proc.stdout == "untagged 2 files, 3 without moodtag fields, 1 failed\n"
    assert read_mood(library / "B" / "d.flac") is None


def test_a_missing_path_is_still_said(library, tmp_path):
    db = tmp_path / "c.db"
    scanned(library, db)
    proc = moodtag("scan", "-q", library / "nope", library, "--db", db, "--jobs", "1")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines() == [f"failed: {library / 'nope'}: no such file or folder", PROBLEMS_LINE]
    proc = moodtag("scan", "-q", tmp_path / "nope", "--db", db)
    assert proc.returncode == 1 and proc.stderr == f"error: {tmp_path / 'nope'}: no such file or folder\n"
    proc = moodtag("untag", "-q", library / "nope", library / "A", "--db", db)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [f"failed: {library / 'nope'}: no such file or folder"]


def test_scan_json_is_the_same_with_quiet(tracks, tmp_path):
    """The same library at the same path, scanned afresh into a new cache with and without -q."""
    runs = []
    for n, flags in enumerate(((), ("-q",))):
        lib = tmp_path / "Music"
        shutil.rmtree(lib, ignore_errors=True)
        shutil.copytree(tracks, lib)
        runs.append(moodtag("scan", *flags, lib, "--db", tmp_path / f"{n}.db", "--jobs", "1", "--json"))
    plain, quiet = runs
    assert len(plain.stdout.splitlines()) == 6 and all(json.loads(line) for line in plain.stdout.splitlines())
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (plain.returncode, plain.stdout, plain.stderr)


def test_quiet_is_each_commands_own_in_one_process(library, tmp_path):
    """--quiet set a flag of tagger.console that nothing reset: run in-process (typer's CliRunner, a script
    driving the app) after `scan -q`, a command without the option (classify, stats) ran quiet too, its
    progress bar and waiting lines left out. Each command now starts without it."""
    from typer.testing import CliRunner

    from tagger import console
    from tagger.cli import app

    runner = CliRunner()
    db = tmp_path / "c.db"
    assert runner.invoke(app, ["scan", "-q", str(library), "--db", str(db), "--jobs", "1"]).exit_code == 0
    assert console.quiet is True
    assert runner.invoke(app, ["stats", "--db", str(db)]).exit_code == 0
    assert console.quiet is False
