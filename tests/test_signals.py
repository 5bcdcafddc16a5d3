"""Signals, closed standard streams and kills, with the real command in a subprocess: a Ctrl-C while it
starts, SIGHUP with output to files, SIGTERM/SIGHUP ending `query --sql`, Ctrl-C during a long walk,
fds 1 or 2 closed, two commands upgrading one older cache at once, and a kill between a tag write and
its row."""
from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tagger.cache import Cache

HANG_S = 120  # generous: only a hang fails on it


def _moodtag(*args, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tagger", *map(str, args)], text=True, **popen)


def _wait_until(what, proc: subprocess.Popen | None = None, timeout: float = HANG_S) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the command ended first (exit {proc.returncode})")
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.005)


def _opened(pid: int, path: Path) -> bool:
    """Whether the process has `path` open (Linux's /proc)."""
    folder = f"/proc/{pid}/fd"
    for fd in os.listdir(folder):
        try:
            if os.readlink(f"{folder}/{fd}") == str(path):
                return True
        except OSError:
            continue
    return False


def _rows(db: Path, where: str = "1") -> int:
    try:
        con = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:  # not made yet
        return 0
    try:
        return con.execute(f"SELECT count(*) FROM tracks WHERE {where}").fetchone()[0]
    except sqlite3.Error:
        return 0
    finally:
        con.close()


def _library(folder: Path, audio_dir: Path, n: int, suffixes=(".flac", ".wav", ".ogg")) -> Path:
    folder.mkdir(parents=True)
    sources = [p for p in sorted(audio_dir.iterdir()) if p.suffix in suffixes]
    for i in range(n):
        shutil.copy(sources[i % len(sources)], folder / f"{i:02d}{sources[i % len(sources)].suffix}")
    return folder


# --- start-up ---------------------------------------------------------------------------------------

def test_ctrl_c_while_the_command_starts_exits_130_without_a_traceback(tmp_path):
    """A Ctrl-C in the first tenths of a second, while tagger.cli (typer, click, rich) is imported and
    before main() has its handler, was a KeyboardInterrupt traceback. The signal is sent once an import
    inside tagger.cli's has finished (-X importtime reports each)."""
    proc = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "tagger", "stats", "--db", tmp_path / "none.db"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if line.rstrip().endswith("typer._click"):  # typer's own import, well inside tagger.cli's
            proc.send_signal(signal.SIGINT)
            break
    err = proc.stderr.read()
    proc.wait(timeout=HANG_S)
    assert "Traceback" not in err, err
    assert proc.returncode == 130, err


@pytest.mark.parametrize("closed", [1, 2])
def test_a_closed_stdout_or_stderr_is_not_the_cache(tmp_path, audio_dir, test_model, closed):
    """`moodtag scan ... >&-` (or `2>&-`): Python leaves sys.stdout (sys.stderr) None, and the worker pool
    failed on it (no row made); with fd 1 closed, the next file opened (the cache) took its number, and
    what was printed went into it. The closed ones are opened on /dev/null: the scan is whole."""
    lib = _library(tmp_path / "lib", audio_dir, 4)
    db = tmp_path / "c.db"
    proc = subprocess.run([sys.executable, "-m", "tagger", "scan", lib, "--db", db, "--model", test_model, "-j2"],
                          preexec_fn=lambda: os.close(closed), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=HANG_S)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT count(*) FROM tracks WHERE status = 'ok'").fetchone()[0] == 4
    con.close()


# --- signals ----------------------------------------------------------------------------------------

def test_sighup_with_output_to_files_keeps_writing_them(tmp_path, audio_dir, test_model):
    """SIGHUP (the terminal closed) to `scan --json > out 2> err`: output going to files was silenced as
    if it were the terminal: no summary or `interrupted` line in err, and a track finished after the
    signal in the cache but not in out. Only a console on a terminal is silenced."""
    lib = _library(tmp_path / "lib", audio_dir, 24)
    db = tmp_path / "c.db"
    with open(tmp_path / "out.jsonl", "w") as out, open(tmp_path / "err.log", "w") as err:
        proc = _moodtag("scan", lib, "--db", db, "--model", test_model, "-j1", "--json", stdout=out, stderr=err)
        _wait_until(lambda: _rows(db) >= 2, proc)
        proc.send_signal(signal.SIGHUP)
        proc.wait(timeout=HANG_S)
    log = (tmp_path / "err.log").read_text()
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert proc.returncode == 128 + signal.SIGHUP, log
    assert "interrupted (SIGHUP)" in log
    assert len(lines) == _rows(db, "status = 'ok'") < 24


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_query_sql_stopped_by_a_signal_exits_with_its_number(tmp_path, sig):
    """An endless `query --sql` exited 130 whatever stopped it: SQLite's "interrupted" became a
    KeyboardInterrupt, which typer ends as 130. Now 128 + the signal's number, as scan and untag."""
    db = tmp_path / "c.db"
    Cache.open(db).close()
    sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    proc = _moodtag("query", "--db", db, "--sql", sql, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_until(lambda: _opened(proc.pid, db), proc)
    time.sleep(0.5)  # its handlers are installed just after the cache is opened
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=HANG_S)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["classify", "train"])
def test_ctrl_c_in_a_command_without_its_own_handler_says_interrupted(tmp_path, audio_dir, command):
    """typer ends a Ctrl-C inside a command as exit status 130 without a word: `train` stopped mid-epoch,
    or `classify` halfway down its list, looked like a finished run in a log. Now the line "interrupted",
    exit status 130, no traceback, and train writes no model."""
    files = _library(tmp_path / "lib", audio_dir, 40)
    out = tmp_path / "m.safetensors"
    if command == "train":
        for i, path in enumerate(sorted(files.iterdir())):
            (files / ("calm" if i % 2 else "exciting")).mkdir(exist_ok=True)
            path.rename(files / ("calm" if i % 2 else "exciting") / path.name)
        args = ["train", files, "--out", out, "--feature", "mel", "--epochs", "200"]
    else:
        args = ["classify", *sorted(files.iterdir())]
    proc = _moodtag(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=1)
    stream = proc.stderr if command == "train" else proc.stdout
    seen = []
    _wait_until(lambda: seen.append(stream.readline()) or ("epoch 2/" in seen[-1] if command == "train"
                                                            else bool(seen[-1])), proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=HANG_S)
    assert proc.returncode == 130, err
    assert err.rstrip().endswith("interrupted") and "Traceback" not in err, err
    assert not out.exists()


def test_ctrl_c_during_the_walk_stops_it_in_the_folder_it_is_in(tmp_path, audio_dir, test_model):
    """A Ctrl-C while the scan walks folders that hold no audio (a home folder, a slow share) was acted on
    at the next audio file only, or at the walk's end: there, after the rows of files not found had
    been marked missing. The walk asks at each folder: stopped there, the cache is left as it was."""
    lib = _library(tmp_path / "lib", audio_dir, 1)
    db = tmp_path / "c.db"
    assert _moodtag("scan", lib, "--db", db, "--model", test_model, "--no-write").wait(timeout=HANG_S) == 0
    next(lib.iterdir()).unlink()  # its row is marked missing by a walk that ends
    for i in range(50):
        for j in range(100):
            (lib / f"d{i:02d}" / f"e{j:02d}").mkdir(parents=True)
    lock = Path(f"{db}.lock")
    lock.unlink()
    proc = _moodtag("scan", lib, "--db", db, "--model", test_model, "--no-write", stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE)
    _wait_until(lock.exists, proc)  # the scan has its lock: the walk comes next
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=HANG_S)[1]
    assert proc.returncode == 130, err
    assert _rows(db, "status = 'ok'") == 1 and _rows(db, "status = 'missing'") == 0


# --- the cache --------------------------------------------------------------------------------------

def _old_cache(db: Path) -> None:
    """A cache of moodtag 0.3 (schema steps m001 and m002 only), in WAL mode, with one row."""
    from sqlite_utils import Database
    from sqlite_utils.migrations import Migrations

    from tagger import cache as cache_module

    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    old = Migrations(cache_module.MIGRATION_SET)
    old()(cache_module.m001_create_tracks)
    old()(cache_module.m002_unambiguous_keys)
    old.apply(Database(conn))
    conn.execute("INSERT INTO tracks (path, size, mtime_ns, mood, confidence, status, model_name, model_version, "
                 "tagged) VALUES ('/m/a.flac', 1, 1, 'calm', 0.9, 'ok', 'test-model', '0.0.1', 1)")
    conn.close()


def test_an_older_cache_upgraded_by_two_commands_at_once(tmp_path, test_model):
    """Right after an upgrade, a scan started while `stats` (which upgrades an older cache as it opens
    it, without the scan lock) upgraded it: both found the steps pending, and the scan failed at once
    with "database is locked by another program (waited 30 s)". Here the test is the other command: it
    holds the write lock, upgrades, commits; the scan waits for it, then finds nothing to do."""
    from sqlite_utils import Database

    from tagger.cache import migrations

    db = tmp_path / "old.db"
    _old_cache(db)
    (tmp_path / "lib").mkdir()
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    proc = _moodtag("scan", tmp_path / "lib", "--db", db, "--model", test_model, "--no-write",
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_until(lambda: _opened(proc.pid, db), proc)
        time.sleep(1.0)  # the scan is at its upgrade now
        migrations().apply(Database(other))
        other.execute("COMMIT")
    finally:
        other.close()
    out, err = proc.communicate(timeout=HANG_S)
    assert proc.returncode == 0, err
    assert "locked" not in err


def test_locked_says_it_waited_only_where_it_did(tmp_path):
    """db_error said "waited 30 s" for every "locked", though a write on a snapshot another writer made
    stale (SQLITE_BUSY_SNAPSHOT) fails at once."""
    from tagger.cache import db_error

    db = tmp_path / "c.db"
    a = sqlite3.connect(db, isolation_level=None)
    a.execute("PRAGMA journal_mode=WAL")
    a.execute("CREATE TABLE t (x)")
    b = sqlite3.connect(db, isolation_level=None, timeout=0.1)
    b.execute("BEGIN")
    b.execute("SELECT * FROM t").fetchall()
    a.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(sqlite3.OperationalError) as stale:
        b.execute("INSERT INTO t VALUES (2)")
    b.execute("ROLLBACK")
    a.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError) as busy:
        b.execute("BEGIN IMMEDIATE")
    a.execute("ROLLBACK")
    a.close()
    b.close()
    assert str(db_error(db, stale.value)) == f"{db}: database is locked by another program"
    assert "(waited " in str(db_error(db, busy.value))


# --- a kill after a tag write, then another tool's edit ----------------------------------------------

_KILLED_AFTER_WRITE = r"""
import os, signal, sys
import tagger.safewrite as safewrite
import tagger.tags as tags
if sys.argv[1] == "copy":  # every write by a copy renamed into place
    safewrite.IN_PLACE_LIMIT, safewrite.IN_PLACE_SHARE = -1, 1 << 62
else:  # every write in place, its old bytes journaled
    safewrite.IN_PLACE_LIMIT = 1 << 40
real, done = tags.write_mood, []
def write_then_die(*args, **kwargs):
    changed = real(*args, **kwargs)
    done.append(1)
    if len(done) == 2:  # the write finished, its row not told yet
        os.kill(os.getpid(), signal.SIGKILL)
    return changed
tags.write_mood = write_then_die
sys.argv = ["moodtag", "scan", *sys.argv[2:]]
from tagger.cli import main
main()
"""


@pytest.mark.parametrize("how", ["in place", "copy"])
def test_an_edit_after_a_killed_scans_finished_write_is_kept(tmp_path, audio_dir, test_model, how):
    """A scan killed after a tag write finished, before its row learnt the file's new size and mtime; then
    another tool (Picard, beets) edits the file's tags, or replaces the file. The next scan must keep
    that edit: a finished write is never undone, and a file changed since is analysed again. (A journal
    entry held until the row was told, tried in e5d17fe, had recovery restore the file as it was before
    moodtag's write, the edit lost, and take a replaced file for the finished write.)"""
    import mutagen

    lib = _library(tmp_path / "lib", audio_dir, 4, suffixes=(".flac",))
    db = tmp_path / "c.db"
    killed = subprocess.run([sys.executable, "-c", _KILLED_AFTER_WRITE, how, lib, "--db", db, "--model", test_model,
                             "-j1"], capture_output=True, text=True, timeout=HANG_S)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    written = [p for p in sorted(lib.iterdir()) if "MOOD" in (mutagen.File(p).tags or {})]
    assert len(written) == 2
    edited = mutagen.File(written[-1])
    edited["ARTIST"] = "Someone Else"
    edited.save()
    again = subprocess.run([sys.executable, "-m", "tagger", "scan", lib, "--db", db, "--model", test_model, "-j1"],
                           capture_output=True, text=True, timeout=HANG_S)
    assert again.returncode == 0, again.stderr
    assert "restored as it was" not in again.stderr, again.stderr
    after = mutagen.File(written[-1])
    assert after["ARTIST"] == ["Someone Else"] and "MOOD" in after.tags, again.stderr


# --- a kill between a tag write and its sync, then another tool's edit ---------------------------------

_KILLED_BEFORE_SYNC = r"""
import os, signal, sys
import tagger.safewrite as safewrite
safewrite.IN_PLACE_LIMIT = 1 << 40  # every write in place, its old bytes journaled
lib, real = os.path.realpath(sys.argv[1]), safewrite._fsync
def fsync_or_die(fd):  # the tag write is all in the file, not synced, its journal entry not voided
    if os.readlink(f"/proc/self/fd/{fd}").startswith(lib + os.sep):
        os.kill(os.getpid(), signal.SIGKILL)
    real(fd)
safewrite._fsync = fsync_or_die
sys.argv = ["moodtag", "scan", *sys.argv[1:]]
from tagger.cli import main
main()
"""


@pytest.mark.xfail(strict=True, reason="known gap (tests/test_safewrite.py): recovery undoes moodtag's write, "
                   "the edit with it, where the kill came between the write and its sync")
@pytest.mark.parametrize("keep_mtime", [False, True], ids=["edit", "edit keeping the mtime"])
def test_an_edit_after_a_scan_killed_before_its_tag_write_was_synced_is_kept(tmp_path, audio_dir, test_model,
                                                                              keep_mtime):
    """A scan killed after its in-place tag write reached the file, before the file was synced and its
    journal entry voided; then another tool edits the tags in place (same size: the padding), perhaps
    setting the mtime back ('preserve timestamps'). The next scan's recovery leaves the file alone (it
    holds moodtag's write and the edit, whole) and analyses it again. It restores the bytes from before
    moodtag's write over the edit (the known gap the xfail names)."""
    import json

    import mutagen

    lib = _library(tmp_path / "lib", audio_dir, 1, suffixes=(".flac",))
    track = next(lib.iterdir())
    tagged = mutagen.File(track)
    tagged["TITLE"] = "Original title"
    tagged.save()  # with padding, as a tag editor leaves it
    db = tmp_path / "c.db"
    killed = subprocess.run([sys.executable, "-c", _KILLED_BEFORE_SYNC, lib, "--db", db, "--model", test_model, "-j1"],
                            capture_output=True, text=True, timeout=HANG_S)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    before = track.stat()
    assert "MOOD" in mutagen.File(track).tags
    edited = mutagen.File(track)
    edited["TITLE"] = "User title"
    edited.save()
    assert (track.stat().st_size, track.stat().st_ino) == (before.st_size, before.st_ino)
    if keep_mtime:
        os.utime(track, ns=(before.st_atime_ns, before.st_mtime_ns))
    again = subprocess.run([sys.executable, "-m", "tagger", "scan", lib, "--db", db, "--model", test_model, "-j1",
                            "--json"], capture_output=True, text=True, timeout=HANG_S)
    assert again.returncode == 0, again.stderr
    assert f"{track}: left alone: another program changed it after the interrupted write" in again.stderr, again.stderr
    after = mutagen.File(track)
    assert after["TITLE"] == ["User title"] and "MOOD" in after.tags
    assert [json.loads(line)["action"] for line in again.stdout.splitlines()] == ["analysed"], again.stdout


# --- untag killed before or during its write -------------------------------------------------------

_UNTAG_KILLED = r"""
import os, signal, sys
import tagger.safewrite as safewrite
import tagger.tags as tags
where, lib = sys.argv[1], os.path.realpath(sys.argv[2])
safewrite.IN_PLACE_LIMIT = 1 << 40  # in place, its old bytes journaled: the recovery restores them
if where == "during the write":
    real = safewrite._pwrite
    def pwrite_or_die(fd, data, pos):  # part of the untag's write in the file, then a kill (OOM, power cut):
        if os.readlink(f"/proc/self/fd/{fd}").startswith(lib + os.sep):  # whole sectors, as a disk keeps it
            real(fd, data[:max(512, len(data) // 2 // 512 * 512)], pos)
            os.kill(os.getpid(), signal.SIGKILL)
        return real(fd, data, pos)
    safewrite._pwrite = pwrite_or_die
else:
    def die(*args, **kwargs):  # the row says untagged, the file not touched yet
        os.kill(os.getpid(), signal.SIGKILL)
    tags.remove_mood = die
sys.argv = ["moodtag", os.environ.get("COMMAND", "untag"), *sys.argv[2:]]
from tagger.cli import main
main()
"""


@pytest.mark.parametrize("where", ["before the write", "during the write"])
def test_an_untag_killed_is_finished_by_the_next_scan(tmp_path, audio_dir, test_model, where):
    """untag commits the row as untagged before it writes the file (so a kill after the write cannot leave
    a row saying tagged, whose mood the next scan would write back). A kill before or during the write
    then left the file with moodtag's fields (never touched, or given them back by the next recovery,
    its mtime too) and a row saying untagged that matched it: no scan looked at it again, `stats` said
    untagged, and the file kept its mood for good. The row now holds a pending untag's mtime, which no
    file has: the next scan finishes the untag, and the file and its row agree."""
    from tagger.tags import read_mood

    lib = _library(tmp_path / "lib", audio_dir, 1, suffixes=(".flac",))
    track = next(lib.iterdir())
    db = tmp_path / "c.db"
    assert _moodtag("scan", lib, "--db", db, "--model", test_model, "-j1", stderr=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL).wait(timeout=HANG_S) == 0
    assert read_mood(track) is not None
    killed = subprocess.run([sys.executable, "-c", _UNTAG_KILLED, where, lib, "--db", db], capture_output=True,
                            text=True, timeout=HANG_S)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    # a scan that writes no tags cannot finish it, nor can one killed as it begins to: the row stays pending
    subprocess.run([sys.executable, "-m", "tagger", "scan", lib, "--db", db, "--model", test_model, "-j1",
                    "--no-write"], capture_output=True, text=True, timeout=HANG_S, check=True)
    assert _rows(db, "tag_state = 'untagged' AND mtime_ns < 0") == 1
    killed = subprocess.run([sys.executable, "-c", _UNTAG_KILLED, "before the write", lib, "--db", db, "--model",
                             test_model, "-j1"], capture_output=True, text=True, timeout=HANG_S,
                            env=dict(os.environ, COMMAND="scan"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert _rows(db, "tag_state = 'untagged' AND mtime_ns < 0") == 1
    again = subprocess.run([sys.executable, "-m", "tagger", "scan", lib, "--db", db, "--model", test_model, "-j1"],
                           capture_output=True, text=True, timeout=HANG_S)
    assert again.returncode == 0, again.stderr
    assert read_mood(track) is None, again.stderr
    assert _rows(db, "tag_state = 'untagged' AND mtime_ns >= 0") == 1
    third = subprocess.run([sys.executable, "-m", "tagger", "scan", lib, "--db", db, "--model", test_model, "-j1"],
                           capture_output=True, text=True, timeout=HANG_S)
    assert re.search(r"analysed +0 ", third.stderr) and re.search(r"tags written +0 ", third.stderr), third.stderr
    assert read_mood(track) is None and _rows(db, "tag_state = 'untagged' AND mtime_ns >= 0") == 1
