"""Reading the cache as users leave it: cells edited by hand, a protected cache, another user's leftovers,
terminal codes in values, an old cache's keys. Real SQLite files, the real CLI."""
from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tagger.cache import KEPT, TAGGED, UNTAGGED, Cache
from tagger.records import TrackRef
from tests.conftest import run_cli
from tests.test_query import _result

ROOT = os.geteuid() == 0


def _cache(folder: Path, names_and_p, **record) -> Path:
    """A cache (closed: no -wal left) with a row per (name, P(exciting)) of a one-byte file in folder/music."""
    db = folder / "c.db"
    with Cache.open(db) as cache:
        for name, p in names_and_p:
            path = folder / "music" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x")
            cache.record(_result(path, p), TrackRef.from_path(path), info={"format": "mp3", "artist": "A"}, **record)
    return db


def _without_root_powers(cmd: list[str]) -> list[str]:
    """Root ignores file permissions; drop the capabilities that let it (CI runs as root)."""
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner,-chown", *cmd] if ROOT else cmd


def _as_owner(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(_without_root_powers([sys.executable, "-m", "tagger", *map(str, args)]),
                          capture_output=True, text=True, timeout=120)


def _beside(db: Path) -> list[str]:
    return sorted(p.name for p in db.parent.iterdir() if p.name.endswith(("-wal", "-shm")))


def _warnings(stderr: str) -> list[str]:
    """The warning lines (their colour taken off: a terminal forced by TTY_COMPATIBLE has it)."""
    lines = re.sub("\x1b\\[[0-9;]*m", "", stderr).splitlines()
    return [line for line in lines if line.startswith("warning:")]


needs_setpriv = pytest.mark.skipif(ROOT and not shutil.which("setpriv"), reason="needs setpriv to drop root's powers")


# --- scores cells edited by hand -----------------------------------------------------------------

def test_scores_that_are_not_json_are_listed_as_none_with_one_warning(tmp_path):
    """A `scores` cell edited into something that is not JSON (`{bad`, cut text) made query --json, --csv
    and the terminal table end in a traceback, and stats call the whole cache damaged ("malformed JSON");
    scores that are JSON but not an object (`[0.1, 0.9]`), when the newest, a traceback in stats. Now each
    command goes on: the row is listed without scores, as a row without any, with one warning line
    naming it, and stats counts it without them (labels from the newest readable row)."""
    db = _cache(tmp_path, [("a.mp3", 0.9), ("b.mp3", 0.2), ("c.mp3", 0.7), ("d.mp3", 0.6)])
    with sqlite3.connect(db) as conn:
        for name, scores, when in (("a.mp3", "{bad", "2000-01-01"), ("b.mp3", '{"calm": 0.8} and more', "2000-01-02"),
                                   ("c.mp3", "[0.1, 0.9]", "2099-01-01")):
            conn.execute("UPDATE tracks SET scores = ?, analyzed_at = ? WHERE path LIKE ?", [scores, when, f"%/{name}"])
    conn.close()
    bad = str(tmp_path / "music" / "a.mp3")
    for args, env in ((["--json"], {}), (["--csv"], {}), ([], {"TTY_COMPATIBLE": "1", "COLUMNS": "200"}), ([], {})):
        proc = run_cli("query", "--db", db, *args, env=env)
        assert proc.returncode == 0, (args, proc.stderr)
        warnings = _warnings(proc.stderr)
        if args or env:  # the listings that read the scores (TSV does not)
            assert len(warnings) == 1 and warnings[0].startswith(f"warning: {bad}: its scores are not JSON"), proc.stderr
        assert "Traceback" not in proc.stderr
    rows = {Path(r["path"]).name: r for r in map(json.loads, run_cli("query", "--db", db, "--json").stdout.splitlines())}
    assert rows["a.mp3"]["scores"] == {} and rows["b.mp3"]["scores"] == {}  # as a row without scores
    assert rows["c.mp3"]["scores"] == [0.1, 0.9] and rows["d.mp3"]["scores"]["exciting"] == 0.6  # JSON: as stored
    records = {Path(r["path"]).name: r for r in csv.DictReader(io.StringIO(run_cli("query", "--db", db, "--csv").stdout))}
    assert records["a.mp3"]["scores"] == "{}" and records["a.mp3"]["mood"] == "exciting"
    for args in (["--json"], []):
        proc = run_cli("stats", "--db", db, *args)
        assert proc.returncode == 0, proc.stderr
        assert len(_warnings(proc.stderr)) == 1, proc.stderr
        assert "not a JSON object" in proc.stderr and "2 other analysed tracks" in proc.stderr
    data = json.loads(run_cli("stats", "--db", db, "--json").stdout)
    assert data["total"] == 4 and data["by_mood"] == {"exciting": 3, "calm": 1}
    assert data["histogram"] == {"label": "exciting", "bins": [0, 0, 0, 0, 0, 0, 1, 0, 0, 0]}  # d.mp3 alone
    assert data["unreadable_scores"] == 3


# --- read commands leave no file beside the cache --------------------------------------------------

def test_read_commands_leave_no_wal_or_shm(tmp_path):
    """query, stats and prune -n opened the cache `mode=ro`, which left an empty -wal and a -shm beside
    it (sqlite3 and sqlite-utils leave nothing); made by another user, or with a protected cache's mode,
    they then made every scan fail. Now a read leaves the folder as it found it."""
    db = _cache(tmp_path, [("a.mp3", 0.9), ("b.mp3", 0.2)])
    assert _beside(db) == []
    for args in (["query"], ["query", "--json"], ["query", "--sql", "SELECT count(*) FROM tracks"], ["stats"],
                 ["prune", "-n"]):
        proc = run_cli(*args, "--db", db)
        assert proc.returncode == 0, (args, proc.stderr)
        assert _beside(db) == [], args


def test_a_read_while_a_writer_has_the_cache_open_leaves_the_writers_files(tmp_path):
    """A read during a scan sees what the scan committed, and leaves the scan's -wal to it."""
    db = _cache(tmp_path, [("a.mp3", 0.9)])
    with Cache.open(db) as writer:
        path = tmp_path / "music" / "new.mp3"
        path.write_bytes(b"x")
        writer.record(_result(path, 0.1), TrackRef.from_path(path), info={"format": "mp3"})
        assert Path(f"{db}-wal").stat().st_size > 0
        listed = run_cli("query", "--db", db, "--paths", check=True).stdout.splitlines()
        assert listed == [str(tmp_path / "music" / "a.mp3"), str(path)]
        assert _beside(db) == ["c.db-shm", "c.db-wal"]
        writer.set_tagged(path, TrackRef.from_path(path))  # the writer goes on
    assert _beside(db) == []
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM tracks WHERE tag_state = 'tagged'").fetchone()[0] == 1
    conn.close()


@needs_setpriv
def test_a_protected_cache_read_by_its_owner_leaves_nothing_and_can_be_written_again(tmp_path):
    """chmod 444 on the cache, `moodtag stats`, chmod 644: the read had left 0444 -wal/-shm files, and
    every later write failed "read-only". Now the read (immutable: nobody can be writing it) leaves none."""
    db = _cache(tmp_path, [("a.mp3", 0.9)])
    db.chmod(0o444)
    for args, shows in ((["stats"], "1 track ("), (["query", "--json"], '"mood": "exciting"')):
        proc = _as_owner(*args, "--db", db)
        assert proc.returncode == 0 and shows in proc.stdout, proc.stderr
        assert _beside(db) == []
    db.chmod(0o644)
    proc = _as_owner("untag", tmp_path / "music", "--db", db)  # opens the cache for writing first
    assert proc.returncode == 0, proc.stderr


@needs_setpriv
def test_a_leftover_wal_or_shm_the_user_cannot_write_is_named(tmp_path):
    """Where another program left a -shm (or -wal) the user may not write beside a cache he may write,
    SQLite calls the whole cache read-only; the error named the cache, which is writable. Now it names
    the file in the way, and what to do."""
    db = _cache(tmp_path, [("a.mp3", 0.9)])
    conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)  # what a read-only reader leaves behind
    conn.execute("SELECT count(*) FROM tracks").fetchone()
    conn.close()
    assert _beside(db) == ["c.db-shm", "c.db-wal"]
    Path(f"{db}-shm").chmod(0o444)
    Path(f"{db}-wal").chmod(0o444)
    proc = _as_owner("untag", tmp_path / "music", "--db", db)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {db}-"), proc.stderr
    assert "not writable (mode 0444" in lines[0] and "delete it while no program has the cache open" in lines[0]


# --- the old keys' migration ----------------------------------------------------------------------

def test_rekeying_an_old_cache_keeps_two_files_whose_new_and_old_keys_meet(tmp_path):
    """m002 re-keyed rows one by one: `a\\b.flac` became `a\\\\b.flac`, the old key of the file named so,
    whose row was deleted first; two files' results became one. Now both rows keep their own results."""
    from sqlite_utils import Database
    from sqlite_utils.migrations import Migrations

    from tagger import cache as cache_module

    db = tmp_path / "old.db"
    conn = sqlite3.connect(db, isolation_level=None)
    old = Migrations(cache_module.MIGRATION_SET)  # a cache of moodtag <= 0.3: its first step alone
    old()(cache_module.m001_create_tracks)
    old.apply(Database(conn))
    one, two = str(tmp_path / "a\\b.flac"), str(tmp_path / "a\\\\b.flac")  # one backslash, and two
    for size, (path, mood) in enumerate([(one, "calm"), (two, "exciting")], start=100):
        conn.execute("INSERT INTO tracks (path, size, mtime_ns, mood, confidence, status, model_name, model_version) "
                     "VALUES (?, ?, 1, ?, 0.9, 'ok', 'test-model', '0.0.1')", [path, size, mood])  # the old key: the path
    conn.close()
    Cache.open(db).close()
    with sqlite3.connect(db) as conn:
        rows = sorted(conn.execute("SELECT path, path_bytes, size, mood FROM tracks"))
    conn.close()
    assert rows == sorted([(cache_module.path_key(one)[0], os.fsencode(one), 100, "calm"),
                           (cache_module.path_key(two)[0], os.fsencode(two), 101, "exciting")])


# --- values as stored ------------------------------------------------------------------------------

def test_csv_in_a_pipe_keeps_terminal_codes_in_values(tmp_path):
    """click's echo strips ANSI codes from text when standard output is not a terminal: `query --csv` and
    `query --sql ... --csv` lost ESC[...m from a name or a tag. CSV is data: written as stored."""
    name = "\x1b[1mbold.mp3"
    db = tmp_path / "c.db"
    path = tmp_path / "music" / name
    path.parent.mkdir()
    path.write_bytes(b"x")
    with Cache.open(db) as cache:
        cache.record(_result(path, 0.9), TrackRef.from_path(path), info={"format": "mp3", "artist": "A\x1b[31mRed"})
    for args in (["--csv"], ["--csv", "--sql", "SELECT path, artist FROM tracks"]):
        proc = subprocess.run([sys.executable, "-m", "tagger", "query", "--db", str(db), *args],
                              capture_output=True, check=True)
        record = next(csv.DictReader(io.StringIO(proc.stdout.decode("utf-8"), newline="")))
        assert (record["path"], record["artist"]) == (str(path), "A\x1b[31mRed"), args


def test_lines_kept_by_a_part_of_a_long_listing_are_copied_as_they_are(tmp_path, capfd):
    """The runs of a long listing written by other processes (kept in temporary files, then copied) lost
    terminal codes in a pipe the same way."""
    from tagger.commands.query import _copy_lines, _save_lines

    with open(tmp_path / "kept", "w+b") as file:
        _save_lines(["a,\x1b[31mred,b", "c,d"], file)
        _copy_lines(file)
    assert capfd.readouterr().out == "a,\x1b[31mred,b\nc,d\n"


def test_sql_json_refuses_columns_that_share_a_name(tmp_path):
    """`--sql "SELECT 1 AS a, 2 AS a" --json` wrote {"a": 2}: a value dropped without a word. Now an error
    line (AS names them apart); CSV and TSV, whose header may repeat a name, keep both."""
    db = _cache(tmp_path, [("a.mp3", 0.9)])
    proc = run_cli("query", "--db", db, "--sql", "SELECT 1 AS a, 2 AS a, 3 AS b", "--json")
    assert proc.returncode == 1 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --json:") and "named 'a'" in lines[0], proc.stderr
    assert run_cli("query", "--db", db, "--sql", "SELECT 1 AS a, 2 AS a", "--csv", check=True).stdout == "a,a\n1,2\n"


# --- stats ------------------------------------------------------------------------------------------

def test_stats_counts_untagged_and_kept_only_for_present_files(tmp_path):
    """stats' headline counted untagged and kept rows whose files are missing among the analysed tracks'
    tags ("0 analysed: 0 tagged, 1 untagged, 1 with their own mood kept"), while `tagged` counts present
    (ok) rows only."""
    db = tmp_path / "c.db"
    with Cache.open(db) as cache:
        for name, state in (("t0.mp3", UNTAGGED), ("t1.mp3", KEPT), ("t2.mp3", TAGGED), ("t3.mp3", UNTAGGED)):
            path = tmp_path / name
            path.write_bytes(b"x")
            cache.record(_result(path, 0.9), TrackRef.from_path(path), info={"format": "mp3"}, tag_state=state)
        cache.mark_missing([str(tmp_path / name) for name in ("t0.mp3", "t1.mp3", "t2.mp3")])
    header = run_cli("stats", "--db", db, check=True).stdout.splitlines()[0]
    assert header.endswith("4 tracks (1 analysed: 0 tagged, 1 untagged; 0 failed, 3 missing)"), header
    data = json.loads(run_cli("stats", "--db", db, "--json", check=True).stdout)
    assert (data["tagged"], data["untagged"], data["kept"]) == (0, 1, 0)


def test_stats_escapes_control_characters_of_stored_text(tmp_path):
    """stats printed a stored error, format or mood as it was: a terminal code in one (an edited cell, a
    decoder's message) drove the terminal, a line break split the table's line."""
    db = _cache(tmp_path, [("a.mp3", 0.9), ("b.mp3", None)])
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE tracks SET error = 'bad\x1b[2Jframe\nnext' WHERE status = 'failed'")
        conn.execute("UPDATE tracks SET format = 'mp3\x1b[31m' WHERE status = 'ok'")
    conn.close()
    for env in ({}, {"TTY_COMPATIBLE": "1", "COLUMNS": "200"}):
        out = run_cli("stats", "--db", db, env=env, check=True).stdout
        assert "\x1b[2J" not in out and "\x1b[31m" not in out and "\n next" not in out, env
        assert "bad\\x1b[2Jframe\\nnext" in out and "mp3\\x1b[31m" in out, out


@needs_setpriv
def test_an_older_cache_with_pages_in_its_wal_in_a_folder_one_cannot_write(tmp_path):
    """A cache of moodtag 0.3 whose writer died with committed pages in its -wal, in a folder the user may
    not write: stats, query and playlist read a private copy of both, which was not upgraded (`cannot read
    the cache (no such column: tag_state)`). The copy is upgraded first; the files stay as they were."""
    from tests.test_signals import _old_cache

    folder = tmp_path / "ro"
    folder.mkdir()
    db = folder / "old.db"
    _old_cache(db)
    script = ("import os, sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
              "c.execute(\"INSERT INTO tracks (path, size, mtime_ns, mood, confidence, status, model_name, "
              "model_version, tagged) VALUES ('/m/b.flac', 1, 1, 'exciting', 0.8, 'ok', 'test-model', '0.0.1', 1)\"); "
              "os._exit(0)")  # dies with the row in the -wal
    subprocess.run([sys.executable, "-c", script, str(db)], check=True, timeout=60)
    Path(f"{db}-shm").unlink(missing_ok=True)
    assert Path(f"{db}-wal").stat().st_size > 0
    for p in folder.iterdir():
        p.chmod(0o444)
    folder.chmod(0o555)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    try:
        stats = _as_owner("stats", "--db", db, "--json")
        assert stats.returncode == 0, stats.stderr
        assert json.loads(stats.stdout)["total"] == 2
        rows = _as_owner("query", "--db", db, "--sql", "SELECT path, tag_state FROM tracks ORDER BY path", "--csv")
        assert rows.returncode == 0 and rows.stdout.splitlines()[1:] == ["/m/a.flac,tagged", "/m/b.flac,tagged"], rows
        assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    finally:
        folder.chmod(0o755)
