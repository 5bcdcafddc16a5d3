"""moodtag commands at the same time as each other, or as another program on the cache (a `sqlite3` shell
left in BEGIN IMMEDIATE, DB Browser for SQLite with changes not written): the real CLI in a subprocess, a
real SQLite connection of the test holding the cache's write lock, real files. Each test waits for the
command's own line on standard error (it waits) before it lets go, or stops it: no timing is asserted."""
from __future__ import annotations

import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from filelock import FileLock

from tagger import synth
from tagger.tags import read_mood
from tests.conftest import run_cli
from tests.test_scan import rows

HANG_S = 120  # generous: only a hang fails on it
REPO = Path(__file__).resolve().parents[1]
TRANSACTION = "waiting for another program's write transaction on {} to end (a sqlite3 shell or DB Browser for " \
              "SQLite holding changes: COMMIT or ROLLBACK there, or close it)..."
MOODTAG_LOCK = "waiting for another moodtag command that writes {} to finish..."


@pytest.fixture(scope="module")
def tracks(tmp_path_factory) -> Path:
    """40 short tracks (8 s), made once: copied into each test's library."""
    folder = tmp_path_factory.mktemp("tracks")
    for i in range(40):
        synth.make_track(folder / f"{i:02d}.flac", "calm" if i % 2 else "exciting", 8.0, seed=i)
    return folder


def library(tmp_path: Path, tracks: Path, n: int = 4) -> Path:
    lib = tmp_path / "lib"
    lib.mkdir()
    for source in sorted(tracks.iterdir())[:n]:
        (lib / source.name).write_bytes(source.read_bytes())
    return lib


class Command:
    """The real CLI in a subprocess (`python -m tagger ARGS`), its standard error read line by line."""

    def __init__(self, *args) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "tagger", *map(str, args)], cwd=REPO, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: queue.Queue = queue.Queue()
        self.err: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.put(line)
        self.lines.put(None)

    def expect(self, text: str) -> None:
        """Wait for a line of standard error holding `text` (AssertionError if the command ends first)."""
        while True:
            line = self.lines.get(timeout=HANG_S)
            if line is None:
                raise AssertionError(f"the command ended (exit {self.proc.wait()}) without {text!r}:\n"
                                     + "".join(self.err))
            self.err.append(line)
            if text in line:
                return

    def finish(self) -> tuple[int, str, str]:
        """(exit status, standard output, all of standard error)."""
        out = self.proc.stdout.read()
        self.proc.wait(timeout=HANG_S)
        while (line := self.lines.get(timeout=HANG_S)) is not None:
            self.err.append(line)
        return self.proc.returncode, out, "".join(self.err)


class WriteTransaction:
    """Another program's write transaction on the cache, as a sqlite3 shell's BEGIN IMMEDIATE: held
    until `end()`."""

    def __init__(self, db: Path) -> None:
        self.conn = sqlite3.connect(db, isolation_level=None, timeout=HANG_S)
        self.conn.execute("BEGIN IMMEDIATE")

    def end(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        self.conn.close()


def untagged_state(db: Path, path: Path) -> tuple:
    row = rows(db)[str(path)]
    return row["tag_state"], row["tagged"], row["status"], row["error"]


# --- another program's write transaction on the cache (F2) ---------------------------------------------

def _scan_held_up(lib: Path, db: Path) -> tuple["WriteTransaction", "Command"]:
    """A scan of `lib` (one file of it cached first) started while this test holds a write transaction on
    `db`, once it has said that it waits for it: (the transaction, to end; the scan)."""
    run_cli("scan", lib / "00.flac", "--db", db, "--jobs", "1", check=True)
    held = WriteTransaction(db)
    try:
        scan = Command("scan", lib, "--db", db, "--jobs", "1")
        scan.expect(TRANSACTION.format(db))
    except BaseException:
        held.end()
        raise
    return held, scan


def test_a_scan_waits_for_another_programs_write_transaction_and_says_so(tmp_path, tracks):
    """A sqlite3 session holding BEGIN IMMEDIATE on the cache made a scan sit silent for 30 s, then abort
    the whole run ("database is locked by another program (waited 30 s)"), nothing scanned. It now says
    whose transaction it waits for, waits as long as it lasts, and then scans the library."""
    lib = library(tmp_path, tracks)
    db = tmp_path / "c.db"
    held, scan = _scan_held_up(lib, db)
    held.end()
    status, _, err = scan.finish()
    assert status == 0, err
    assert "locked" not in err
    assert len(rows(db)) == 4 and all(row["tag_state"] == "tagged" for row in rows(db).values())
    assert all(read_mood(path) is not None for path in lib.iterdir())


def test_a_write_transaction_taken_during_a_scan_holds_it_up_and_no_track_is_lost(tmp_path, tracks):
    """The same, with the transaction begun while the scan writes its rows: the scan stopped at its next
    row, the rest of the library not scanned, and no summary. It now waits there, then finishes."""
    lib = library(tmp_path, tracks, 40)
    db = tmp_path / "c.db"
    run_cli("scan", lib / "00.flac", "--db", db, "--jobs", "1", check=True)
    scan = Command("scan", lib, "--db", db, "--jobs", "1", "--json")
    first = scan.proc.stdout.readline()  # a track written: its row and tags are done, 38 to go
    assert json.loads(first)["action"] == "cached"
    second = scan.proc.stdout.readline()
    assert json.loads(second)["action"] == "analysed"
    held = WriteTransaction(db)  # waits for the scan's own transaction, if one is open, to end
    try:
        scan.expect(TRANSACTION.format(db))
    finally:
        held.end()
    status, out, err = scan.finish()
    assert status == 0, err
    assert len(out.splitlines()) == 38
    assert len(rows(db)) == 40 and all(row["tag_state"] == "tagged" for row in rows(db).values())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_scan_waiting_for_a_write_transaction_stops_at_a_signal(tmp_path, tracks, sig):
    """A scan that waits for another program's transaction is stopped by Ctrl-C or SIGTERM as one
    waiting for moodtag's lock is: its summary, `interrupted`, exit status 128 + the signal."""
    lib = library(tmp_path, tracks)
    db = tmp_path / "c.db"
    held, scan = _scan_held_up(lib, db)
    try:
        scan.proc.send_signal(sig)
        status, _, err = scan.finish()
    finally:
        held.end()
    assert status == 128 + sig, err
    assert f"interrupted ({signal.Signals(sig).name}): finished results are saved" in err
    assert "Traceback" not in err and len(rows(db)) == 1


def test_untag_and_prune_wait_for_another_programs_write_transaction(tmp_path, tracks):
    """untag and prune failed as the scan did; they now wait, say so, and then do their work."""
    lib = library(tmp_path, tracks)
    db = tmp_path / "c.db"
    run_cli("scan", lib, "--db", db, "--jobs", "1", check=True)
    (lib / "03.flac").unlink()
    run_cli("scan", lib, "--db", db, "--jobs", "1", check=True)  # its row marked missing
    for args, done in ((["untag", lib / "00.flac"], "untagged 1 file, 0 without moodtag fields, 0 failed\n"),
                       (["prune"], "forgot 1 missing track\n")):
        held = WriteTransaction(db)
        try:
            command = Command(*args, "--db", db)
            command.expect(TRANSACTION.format(db))
        finally:
            held.end()
        status, out, err = command.finish()
        assert (status, out) == (0, done), err
    assert read_mood(lib / "00.flac") is None and rows(db)[str(lib / "00.flac")]["tag_state"] == "untagged"
    assert len(rows(db)) == 3


# --- untag: its rows say untagged before its files are written (F1) ----------------------------------

_UNTAG_KILLED_AFTER_WRITE = """
import os, signal, sys
import tagger.tags as tags
real = tags.remove_mood
def remove_mood(path, *a, **k):
    changed = real(path, *a, **k)
    os.kill(os.getpid(), signal.SIGKILL)   # the OOM killer, a power cut: the file written, nothing after it
tags.remove_mood = remove_mood
sys.argv = ["moodtag", "untag", *sys.argv[1:]]
from tagger.cli import main
main()
"""


def test_untag_killed_after_a_files_write_leaves_it_untagged_for_the_next_scan(tmp_path, tracks):
    """untag killed after it cleared a file and before its row learnt it: the row still said tagged, so
    the next plain scan, seeing the file changed, analysed it and wrote the mood back. The row now says
    untagged before the file is written: the next scan analyses it (it changed) and leaves it untagged."""
    lib = library(tmp_path, tracks, 2)
    db = tmp_path / "c.db"
    run_cli("scan", lib, "--db", db, "--jobs", "1", check=True)
    track = lib / "00.flac"
    proc = subprocess.run([sys.executable, "-c", _UNTAG_KILLED_AFTER_WRITE, str(track), "--db", str(db)],
                          cwd=REPO, capture_output=True, text=True, timeout=HANG_S)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert read_mood(track) is None
    assert untagged_state(db, track)[:2] == ("untagged", 0)
    again = run_cli("scan", lib, "--db", db, "--jobs", "1", "--json", check=True)
    outcomes = {Path(o["path"]).name: (o["action"], o["tags"]) for o in map(json.loads, again.stdout.splitlines())}
    assert outcomes["00.flac"] == ("analysed", "untagged"), outcomes
    assert read_mood(track) is None, "the next scan wrote the mood back"
    assert untagged_state(db, track)[:2] == ("untagged", 0)


_UNTAG_WRITE_FAILS = """
import sys
import tagger.tags as tags
from tagger.errors import TagError
def remove_mood(path, *a, **k):
    raise TagError("cannot write: the disk went away")   # the file is left as it was (tagger.safewrite)
tags.remove_mood = remove_mood
sys.argv = ["moodtag", "untag", *sys.argv[1:]]
from tagger.cli import main
main()
"""


@pytest.mark.parametrize("before", ["tagged", "failed"])
def test_untag_that_fails_to_write_a_file_leaves_its_row_as_it_was(tmp_path, tracks, before):
    """The row says untagged before untag writes the file; where the write fails, the row says again
    what it said (tagged, or a tag write that failed, with its cause), so that it never claims untagged
    while the file keeps moodtag's mood."""
    lib = library(tmp_path, tracks, 1)
    db = tmp_path / "c.db"
    run_cli("scan", lib, "--db", db, "--jobs", "1", check=True)
    track = lib / "00.flac"
    if before == "failed":
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE tracks SET status = 'failed', error = 'tags not written: disk full', "
                         "tag_state = 'failed', tagged = 0")
    was = untagged_state(db, track)
    proc = subprocess.run([sys.executable, "-c", _UNTAG_WRITE_FAILS, str(track), "--db", str(db)],
                          cwd=REPO, capture_output=True, text=True, timeout=HANG_S)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == f"failed: {track}: cannot write: the disk went away\n"
    assert proc.stdout == "untagged 0 files, 0 without moodtag fields, 1 failed\n"
    assert untagged_state(db, track) == was
    assert read_mood(track) is not None


# --- stopped while waiting for moodtag's own lock (F4), and what the waiting line says (F5) -----------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
@pytest.mark.parametrize("command", ["untag", "prune"])
def test_untag_and_prune_stopped_while_they_wait_for_the_lock_say_so(tmp_path, tracks, command, sig):
    """untag stopped by SIGTERM or SIGHUP while it waited for another command's lock exited 130 without a
    word, and prune was killed by the signal; both now end as a scan does: `interrupted (SIGTERM)`, exit
    status 128 + the signal, nothing done. Their waiting lines name any moodtag command that writes the
    cache (untag's said "a moodtag scan")."""
    lib = library(tmp_path, tracks, 2)
    db = tmp_path / "c.db"
    run_cli("scan", lib, "--db", db, "--jobs", "1", check=True)
    (lib / "01.flac").unlink()
    run_cli("scan", lib, "--db", db, "--jobs", "1", check=True)
    lock = FileLock(f"{db}.lock")
    lock.acquire()
    try:
        waiting = Command(command, *([lib] if command == "untag" else []), "--db", db)
        waiting.expect("waiting for ")
        waiting.proc.send_signal(sig)
        status, out, err = waiting.finish()
    finally:
        lock.release()
    assert status == 128 + sig, err
    assert f"interrupted ({signal.Signals(sig).name})" in err and "Traceback" not in err
    assert MOODTAG_LOCK.format(db) in err
    assert out == ("untagged 0 files, 0 without moodtag fields, 0 failed\n" if command == "untag" else "")
    assert read_mood(lib / "00.flac") is not None and len(rows(db)) == 2


def test_a_scan_waiting_for_the_lock_names_any_moodtag_command(tmp_path, tracks):
    """A scan waiting for moodtag's lock said "another moodtag scan", though the holder may be untag or
    prune: it now says what prune says."""
    lib = library(tmp_path, tracks, 1)
    db = tmp_path / "c.db"
    run_cli("scan", lib, "--db", db, "--jobs", "1", check=True)
    lock = FileLock(f"{db}.lock")
    lock.acquire()
    try:
        scan = Command("scan", lib, "--db", db, "--jobs", "1")
        scan.expect("waiting for ")
    finally:
        lock.release()
    status, _, err = scan.finish()
    assert status == 0, err
    assert MOODTAG_LOCK.format(db) in err


# --- a dry run during another scan's tag write (F3) -------------------------------------------------

_WRITER_IN_FLIGHT = """
import sys
from pathlib import Path
from tagger.safewrite import UndoJournal
from tests.conftest import first_block_in_flight
fd, entry = first_block_in_flight(Path(sys.argv[1]), UndoJournal(Path(sys.argv[2])))  # the write in flight
print("writing", flush=True)
sys.stdin.read()                          # held (a slow disk, a frozen scan) until the test lets it go
"""


@pytest.mark.parametrize("mode", ["-n", "--no-write"])
def test_a_dry_run_during_another_scans_tag_write_analyses_the_file(tmp_path, tracks, mode):
    """A `scan -n` (or --no-write) run while another scan was in the middle of a tag write called the
    file torn ("not analysed until its interrupted tag write is undone") and counted it failed: the
    journal entry's writer was alive and held it, as recovery knows. Such an entry is now left out."""
    lib = library(tmp_path, tracks, 2)
    db = tmp_path / "c.db"
    run_cli("scan", lib, "--db", db, "--jobs", "1", check=True)
    writer = subprocess.Popen([sys.executable, "-c", _WRITER_IN_FLIGHT, str(lib / "00.flac"), f"{db}-undo"],
                              cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline() == "writing\n"
        proc = run_cli("scan", lib, "--db", db, "--jobs", "1", "--force", "--json", mode)
    finally:
        writer.stdin.close()
        writer.wait(timeout=HANG_S)
    assert proc.returncode == 0, proc.stderr
    assert "interrupted" not in proc.stderr and "failed" not in proc.stderr, proc.stderr
    assert sorted(Path(json.loads(line)["path"]).name for line in proc.stdout.splitlines()) == ["00.flac", "01.flac"]
