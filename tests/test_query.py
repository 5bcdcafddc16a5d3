"""`moodtag query` and `moodtag stats` over a cache of real rows; raw SQL must never change the cache."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tagger.cache import Cache
from tagger.cli import app
from tagger.errors import MoodtagError
from tagger.records import TrackRef, TrackResult

# name, P(exciting) (None: failed), artist, album, format
ROWS = [
    ("jazz/So What.flac", 0.10, "Miles Davis", "Kind of Blue", "flac"),
    ("jazz/Blue in Green.flac", 0.04, "Miles Davis", "Kind of Blue", "flac"),
    ("pop/Army of Me.mp3", 0.92, "BJÖRK", "Post", "mp3"),
    ("pop/Jóga.mp3", 0.35, "Björk", "Homogenic", "mp3"),
    ("pop/Hyperballad.ogg", 0.66, "björk", "Post", "ogg"),
    ("rock/[Live] 100%_loud.wav", 0.99, "The Band_", "Rock 50%", "wav"),
    ("rock/broken.mp3", None, None, None, "mp3"),
    ("rock/vanished.m4a", 0.51, "Ghost", None, "m4a"),
]


def _result(path: Path, p: float | None) -> TrackResult:
    if p is None:
        return TrackResult.failed(path, "cannot decode: truncated frame", model_name="test-model", model_version="0.0.1")
    scores = {"calm": 1 - p, "exciting": p}
    mood = "exciting" if p >= 0.5 else "calm"
    return TrackResult(path, mood=mood, confidence=scores[mood], scores=scores, duration=200.0,
                       model_name="test-model", model_version="0.0.1")


@pytest.fixture(scope="module")
def cache_db(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("q") / "music"
    db = root.parent / "c.db"
    with Cache.open(db) as cache:
        for name, p, artist, album, fmt in ROWS:
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x")
            cache.record(_result(path, p), TrackRef.from_path(path),
                         info={"format": fmt, "artist": artist, "album": album, "title": path.stem})
        cache.mark_missing([str(root / "rock/vanished.m4a")])
    return {"db": db, "root": root}


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def query_json(cache_db, *args: str) -> list[dict]:
    result = invoke("query", "--db", str(cache_db["db"]), "--json", *args)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def names(rows: list[dict], cache_db) -> list[str]:
    return [Path(r["path"]).relative_to(cache_db["root"]).as_posix() for r in rows]


def test_table_by_default(cache_db):
    result = invoke("query", "--db", str(cache_db["db"]), "--mood", "calm")
    assert result.exit_code == 0, result.output
    assert "So What" in result.stdout and "Kind of Blue" in result.stdout and "Miles Davis" in result.stdout
    assert "Army of Me" not in result.stdout


def test_filters(cache_db):
    rows = query_json(cache_db, "--mood", "exciting")
    assert rows and all(r["mood"] == "exciting" for r in rows)
    assert set(rows[0]) >= {"path", "mood", "confidence", "scores", "artist", "album", "status", "model_version"}
    # artist/album: case-insensitive substrings (Unicode case folding), whole value with --exact
    assert names(query_json(cache_db, "--artist", "björk", "--order", "path"), cache_db) == [
        "pop/Army of Me.mp3", "pop/Hyperballad.ogg", "pop/Jóga.mp3"]
    assert len(query_json(cache_db, "--artist", "JÖR")) == 3
    assert query_json(cache_db, "--artist", "Björ", "--exact") == []
    assert len(query_json(cache_db, "--artist", "BJÖRK", "--exact", "--album", "post")) == 2
    # LIKE wildcards are plain characters
    assert names(query_json(cache_db, "--album", "50%"), cache_db) == ["rock/[Live] 100%_loud.wav"]
    assert query_json(cache_db, "--artist", "band%") == []
    assert len(query_json(cache_db, "--artist", "band_")) == 1
    # path globs: relative patterns match at any depth
    assert names(query_json(cache_db, "--path-glob", "jazz/*"), cache_db) == [
        "jazz/Blue in Green.flac", "jazz/So What.flac"]
    assert len(query_json(cache_db, "--path-glob", "*.mp3")) == 3
    assert names(query_json(cache_db, "--path-glob", str(cache_db["root"]) + "/rock/[[]Live]*"), cache_db) == [
        "rock/[Live] 100%_loud.wav"]
    # status and confidence
    assert names(query_json(cache_db, "--status", "failed"), cache_db) == ["rock/broken.mp3"]
    assert query_json(cache_db, "--status", "failed")[0]["error"].startswith("cannot decode")
    assert names(query_json(cache_db, "--status", "missing"), cache_db) == ["rock/vanished.m4a"]
    # repeated: any of them (it kept the last one alone)
    assert names(query_json(cache_db, "--status", "failed", "--status", "missing"), cache_db) == [
        "rock/broken.mp3", "rock/vanished.m4a"]
    high = query_json(cache_db, "--min-confidence", "0.9")
    assert sorted(names(high, cache_db)) == ["jazz/Blue in Green.flac", "jazz/So What.flac",
                                             "pop/Army of Me.mp3", "rock/[Live] 100%_loud.wav"]


@pytest.mark.parametrize("mood", ["clam", "Calm", ""])
def test_a_mood_no_model_knows_is_an_error_as_in_playlist(cache_db, mood):
    """A typo or another case matched nothing without a word; now it is playlist's error, the moods listed."""
    from tests.conftest import run_cli

    result = run_cli("query", "--db", cache_db["db"], "--mood", mood, "--json")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"error: {mood!r} is not a mood of this cache (choose one of: calm, exciting)\n"
    playlist = run_cli("playlist", mood, "--db", cache_db["db"], "--any-model")  # the same check: moods of any model
    assert playlist.returncode == 1 and playlist.stderr == result.stderr
    assert len(query_json(cache_db, "--mood", "calm")) == 3


def test_order_desc_limit(cache_db):
    rows = query_json(cache_db, "--order", "confidence", "--desc")
    confidences = [r["confidence"] for r in rows if r["confidence"] is not None]
    assert confidences == sorted(confidences, reverse=True)
    assert rows[-1]["confidence"] is None  # no value: last
    assert len(query_json(cache_db, "--order", "confidence", "--desc", "--limit", "2")) == 2
    paths = [r["path"] for r in query_json(cache_db)]
    assert paths == sorted(paths)
    artists = [r["artist"] for r in query_json(cache_db, "--order", "artist") if r["artist"]]
    assert [a.casefold() for a in artists] == sorted(a.casefold() for a in artists)


@pytest.mark.parametrize("order, column", [("artist", "artist"), ("album", "album"), ("confidence", "confidence"),
                                           ("analyzed", "analyzed_at"), ("path", "path")])
def test_desc_reverses_every_key_of_the_order(cache_db, order, column):
    """--desc reversed the first key alone: `--order artist --desc` listed Miles Davis's tracks by title
    A to Z, `--order album --desc` an album's tracks by path A to Z (the tie-breakers ascending). Now it
    lists the ascending order backwards, each key reversed; rows without the value still come last."""
    def listed(*args):
        rows = query_json(cache_db, "--order", order, *args)
        with_value = [r["path"] for r in rows if r[column] is not None]
        assert [r["path"] for r in rows] == with_value + [r["path"] for r in rows if r[column] is None]
        return with_value, [r["path"] for r in rows if r[column] is None]

    ascending, descending = listed(), listed("--desc")
    assert descending == (ascending[0][::-1], ascending[1][::-1])
    if order == "artist":
        assert names(query_json(cache_db, "--order", "artist", "--desc", "--artist", "miles"), cache_db) == [
            "jazz/So What.flac", "jazz/Blue in Green.flac"]


def test_csv(cache_db):
    result = invoke("query", "--db", str(cache_db["db"]), "--csv", "--mood", "calm", "--order", "path")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [Path(r["path"]).name for r in rows] == ["Blue in Green.flac", "So What.flac", "Jóga.mp3"]
    assert json.loads(rows[0]["scores"])["calm"] == pytest.approx(0.96)


@pytest.mark.parametrize("args, message", [
    (["--json", "--csv"], "--json and --csv exclude each other"),
    (["--csv", "--paths"], "--csv and --paths exclude each other"),
    (["--paths", "--sql", "SELECT path FROM tracks"], "--paths lists tracks; with --sql, select the path column"),
    (["--sql", "SELECT 1", "--mood", "calm", "--desc"], "--sql cannot be combined with --mood, --desc"),
    (["--sql", " "], "--sql needs a statement"),  # printed an empty line, exit status 0
])
def test_options_that_exclude_each_other_are_usage_errors(tmp_path, args, message):
    """They were errors of the cache's kind (exit status 1); the README says usage errors exit 2, as click's
    own do (`--limit -1`): the same 'Usage: ... Error: ...' lines, before any cache is opened."""
    from tests.conftest import run_cli

    proc = run_cli("query", "--db", tmp_path / "nowhere.db", *args, env={"COLUMNS": "400"})
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr.startswith("Usage: moodtag query [OPTIONS]\n") and f"Error: Invalid value: {message}" in proc.stderr
    assert not (tmp_path / "nowhere.db").exists()


LISTING_HEADER = ["path", "mood", "confidence", "artist", "title", "album", "status", "error"]


def test_piped_output_is_tsv_one_track_per_line(cache_db):
    from tests.conftest import run_cli

    proc = run_cli("query", "--db", cache_db["db"], env={"COLUMNS": "80"})  # stdout is a pipe
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert lines[0].split("\t") == LISTING_HEADER
    rows = [dict(zip(LISTING_HEADER, line.split("\t"))) for line in lines[1:]]
    assert all(len(line.split("\t")) == len(LISTING_HEADER) for line in lines[1:])
    assert [r["path"] for r in rows] == sorted(str(cache_db["root"] / name) for name, *_ in ROWS)
    by_name = {Path(r["path"]).name: r for r in rows}
    assert by_name["Army of Me.mp3"] | {"path": ""} == {
        "path": "", "mood": "exciting", "confidence": "0.92", "artist": "BJÖRK", "title": "Army of Me",
        "album": "Post", "status": "ok", "error": ""}
    assert by_name["broken.mp3"]["status"] == "failed" and by_name["broken.mp3"]["mood"] == ""
    assert by_name["broken.mp3"]["error"] == "cannot decode: truncated frame"
    assert by_name["vanished.m4a"]["status"] == "missing"
    with_sql = run_cli("query", "--db", cache_db["db"], "--sql", "SELECT mood, count(*) AS n FROM tracks "
                       "WHERE status = 'ok' GROUP BY mood ORDER BY mood")
    assert with_sql.stdout.splitlines() == ["mood\tn", "calm\t3", "exciting\t3"]


def test_paths_option_lists_the_paths_alone(cache_db):
    result = invoke("query", "--db", str(cache_db["db"]), "--paths", "--mood", "exciting", "--order", "path")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == sorted(str(cache_db["root"] / name) for name, p, *_ in ROWS
                                                if p is not None and p >= 0.5)
    both = invoke("query", "--db", str(cache_db["db"]), "--paths", "--json")
    assert both.exit_code == 2 and "--json and --paths exclude each other" in both.stderr


def terminal_run(*args: str, columns: int) -> str:
    """The real CLI with its standard output on a pseudo-terminal COLUMNS wide; what it showed, without
    colour codes."""
    from tests.conftest import on_a_terminal

    return on_a_terminal(list(args), stream="stdout", columns=columns, timeout=60).replace("\r\n", "\n")


def piped_run(*args: str, env: dict[str, str]) -> tuple[str, bool]:
    """The real CLI with its standard output in a pipe and `env` added (colour variables cleared first):
    what it wrote, and whether rich was imported by the time it ended."""
    import os
    import subprocess
    import sys

    clean = {k: v for k, v in os.environ.items() if k not in ("TTY_COMPATIBLE", "FORCE_COLOR", "NO_COLOR")}
    code = ("import runpy, sys\nsys.argv = ['moodtag', *sys.argv[1:]]\ntry:\n    runpy.run_module('tagger', run_name='__main__')\n"
            "except SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
            "sys.stderr.write('RICH=%s' % ('rich' in sys.modules))\nsys.exit(code)")
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env={**clean, **env},
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, proc.stderr.endswith("RICH=True")


def test_piped_listing_is_tsv_unless_a_variable_forces_a_terminal(cache_db):
    """In a pipe the listing is TSV, decided without importing rich (its console costs ~40 ms of every
    command's start); where FORCE_COLOR or TTY_COMPATIBLE=1 says "terminal", rich decides, as before:
    the table."""
    db = str(cache_db["db"])
    tsv, rich_loaded = piped_run("query", "--db", db, env={})
    assert tsv.splitlines()[0].split("\t")[:3] == ["path", "mood", "confidence"] and not rich_loaded
    for name in ("--csv", "--json", "--paths"):
        listed, rich_loaded = piped_run("query", "--db", db, name, env={})
        assert listed and not rich_loaded, name
    for forced in ({"FORCE_COLOR": "1"}, {"TTY_COMPATIBLE": "1"}):
        table, rich_loaded = piped_run("query", "--db", db, env={**forced, "COLUMNS": "200"})
        table = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", table)  # FORCE_COLOR: its styles too
        assert table.split()[:3] == ["path", "mood", "conf."] and "\t" not in table and rich_loaded, forced
    same, _ = piped_run("query", "--db", db, env={"TTY_COMPATIBLE": "0", "FORCE_COLOR": "1"})
    assert same == tsv  # rich's own order: TTY_COMPATIBLE=0 wins


@pytest.mark.parametrize("columns", [80, 60])
def test_terminal_table_always_shows_the_whole_path_and_mood(cache_db, columns):
    text = terminal_run("query", "--db", str(cache_db["db"]), columns=columns)
    lines = text.splitlines()
    assert all(len(line) <= columns for line in lines), text
    header = lines[0]
    assert header.split()[:3] == ["path", "mood", "conf."], text
    path_column = "".join(line[:header.index("mood")] for line in lines[1:])
    for name, *_ in ROWS:  # folded onto several lines maybe, but whole
        assert "".join(str(cache_db["root"] / name).split()) in "".join(path_column.split()), (name, text)
    words = text.split()
    assert words.count("exciting") == 4 and words.count("calm") == 3, text  # vanished.m4a: exciting
    assert "…" not in "".join(line[:header.index("conf.")] for line in lines)


LONG_ERROR = "not a decodable audio file (Invalid data found when processing input: moov atom not found)"


@pytest.mark.parametrize("columns", [120, 80, 60])
def test_terminal_table_gives_the_path_its_whole_length_before_the_error(tmp_path_factory, columns):
    """With one failed row, the error column was sized first (up to all but 30 columns of the room) and
    every path was folded to 30 columns over 2-3 lines, even on a 120-column terminal where the ~62
    characters fit whole, the error column blank beside each ok row. Now the path gets its whole length
    first and the error what is left (folded); only a terminal too narrow for that folds the path."""
    root = tmp_path_factory.mktemp("qt")
    assert len(str(root)) < 40, root  # the paths below are 62 characters
    db = root / "c.db"
    with Cache.open(db) as cache:
        for i, p in enumerate((0.9, 0.2, 0.7, None)):
            name = f"Artist {i}/Album/{i:02d} "
            path = root / (name + "x" * (62 - len(str(root)) - 1 - len(name) - 4) + ".mp3")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x")
            result = _result(path, p) if p is not None else TrackResult.failed(
                path, LONG_ERROR, model_name="test-model", model_version="0.0.1")
            cache.record(result, TrackRef.from_path(path), info={"format": "mp3"})
    paths = sorted(str(p) for p in root.rglob("*.mp3"))
    assert len(paths) == 4 and all(len(p) == 62 for p in paths)
    text = terminal_run("query", "--db", str(db), columns=columns)
    lines = text.splitlines()
    assert all(len(line) <= columns for line in lines), text
    header = lines[0]
    assert header.split()[:3] == ["path", "mood", "conf."], text
    if columns == 120:  # room for every path on one line, and for the error beside it
        assert all(any(path in line for line in lines) for path in paths), text
    path_column = "".join("".join(line[:header.index("mood")] for line in lines[1:]).split())
    assert all("".join(path.split()) in path_column for path in paths), text
    if columns >= 80:  # the error's least width beside the path's least width: its text, folded
        error_column = "".join("".join(line[header.index("error"):] for line in lines[1:]).split())
        assert "".join(LONG_ERROR.split()) in error_column, text


def test_terminal_table_sizes_wide_characters_and_a_path_too_long_for_the_room(tmp_path_factory):
    """Widths were counted in characters: a path of CJK characters or emoji (two cells each) was folded even
    where the terminal had room for it whole. And where the longest path folds anyway, the error was cut to
    its least width (16) and folded over many lines: the room is now shared as their lengths are."""
    root = tmp_path_factory.mktemp("qw")
    db = root / "c.db"
    wide = root / ("曲" * 20 + " 🎵🎵.mp3")  # 20 + 1 + 4 + 4 characters, 20 * 2 + 1 + 2 * 2 + 4 cells
    long = root / ("x" * (170 - len(str(root))) + ".mp3")
    with Cache.open(db) as cache:
        for path, p in ((wide, 0.9), (long, None)):
            path.write_bytes(b"x")
            result = _result(path, p) if p is not None else TrackResult.failed(
                path, LONG_ERROR, model_name="test-model", model_version="0.0.1")
            cache.record(result, TrackRef.from_path(path), info={"format": "mp3"})
    text = terminal_run("query", "--db", str(db), "--status", "ok", columns=120)
    assert any(str(wide) in line for line in text.splitlines()), text  # whole, on one line
    text = terminal_run("query", "--db", str(db), columns=200)
    rows = text.splitlines()[1:]
    assert 2 <= len(rows) <= 4, text  # the long path and its error each over two lines, the wide path one
    assert "".join(LONG_ERROR.split()) in "".join("".join(line[text.splitlines()[0].index("error"):]
                                                           for line in rows).split()), text


def test_raw_sql(cache_db):
    result = invoke("query", "--db", str(cache_db["db"]), "--json", "--sql",
                    "SELECT mood, count(*) AS n FROM tracks WHERE status = 'ok' GROUP BY mood ORDER BY mood")
    assert result.exit_code == 0, result.output
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {"mood": "calm", "n": 3}, {"mood": "exciting", "n": 3}]
    info = invoke("query", "--db", str(cache_db["db"]), "--sql", "PRAGMA table_info(tracks)")
    assert info.exit_code == 0 and "confidence" in info.stdout
    table = invoke("query", "--db", str(cache_db["db"]), "--sql",
                   "SELECT path FROM tracks WHERE path GLOB '*Live*'")
    assert "[Live] 100%_loud.wav" in table.stdout  # not taken for rich markup
    mixed = invoke("query", "--db", str(cache_db["db"]), "--sql", "SELECT 1", "--mood", "calm")
    assert mixed.exit_code == 2 and "--sql cannot be combined with --mood" in mixed.stderr


def _fingerprint(folder: Path, db: Path) -> tuple:
    with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT count(*), sum(confidence) FROM tracks").fetchone()
        schema = conn.execute("SELECT group_concat(sql) FROM sqlite_master").fetchone()
    conn.close()
    files = sorted(p.name for p in folder.iterdir() if not p.name.endswith(("-wal", "-shm")))
    return rows, schema, hashlib.sha256(db.read_bytes()).hexdigest(), files


@pytest.mark.parametrize("sql", [
    "DELETE FROM tracks",
    "UPDATE tracks SET mood = 'calm'",
    "DROP TABLE tracks",
    "INSERT INTO tracks (path, size, mtime_ns, status) VALUES ('x', 1, 1, 'ok')",
    "CREATE TABLE t (a)",
    "CREATE TEMP TABLE t (a)",
    "PRAGMA query_only = OFF",
    "PRAGMA user_version = 7",
    "ATTACH DATABASE 'other.db' AS other",
    "VACUUM",
    "SELECT 1; DELETE FROM tracks",
    "WITH d AS (SELECT 1) DELETE FROM tracks",
])
def test_sql_that_writes_fails_and_changes_nothing(cache_db, sql, monkeypatch):
    db = cache_db["db"]
    folder = db.parent
    monkeypatch.chdir(folder)  # where ATTACH would create other.db
    before = _fingerprint(folder, db)
    result = invoke("query", "--db", str(db), "--sql", sql)
    assert result.exit_code == 1
    assert isinstance(result.exception, MoodtagError)
    message = str(result.exception)
    assert "\n" not in message and message
    assert _fingerprint(folder, db) == before
    assert not (folder / "other.db").exists()


def test_sql_write_through_the_real_cli_is_one_line(cache_db):
    from tests.conftest import run_cli

    before = hashlib.sha256(cache_db["db"].read_bytes()).hexdigest()
    proc = run_cli("query", "--db", cache_db["db"], "--sql", "DELETE FROM tracks", env={"COLUMNS": "400"})
    assert proc.returncode == 1 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "read-only" in lines[0]
    assert hashlib.sha256(cache_db["db"].read_bytes()).hexdigest() == before


def test_missing_db_names_the_file(tmp_path):
    missing = tmp_path / "nowhere.db"
    for command in (["query"], ["query", "--sql", "SELECT 1"], ["stats"]):
        result = invoke(*command, "--db", str(missing))
        assert result.exit_code == 1 and str(missing) in str(result.exception)
    assert not missing.exists()


def test_stats(cache_db):
    result = invoke("stats", "--db", str(cache_db["db"]), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["total"] == len(ROWS)
    assert data["by_status"] == {"ok": 6, "failed": 1, "missing": 1}
    assert data["by_mood"] == {"calm": 3, "exciting": 3}
    assert data["by_format"] == {"flac": 2, "mp3": 2, "ogg": 1, "wav": 1}  # analysed, as by_mood: not failed, missing
    assert data["by_model"] == {"test-model 0.0.1": 6}
    assert data["top_errors"] == [{"error": "cannot decode: truncated frame", "count": 1}]
    hist = data["histogram"]
    assert hist["label"] == "exciting"
    # P(exciting) of the ok rows: 0.10 0.04 0.92 0.35 0.66 0.99
    assert hist["bins"] == [1, 1, 0, 1, 0, 0, 1, 0, 0, 2]
    calm = invoke("stats", "--db", str(cache_db["db"]), "--json", "--label", "calm", "--bins", "2")
    assert json.loads(calm.stdout)["histogram"]["bins"] == [3, 3]
    bad = invoke("stats", "--db", str(cache_db["db"]), "--label", "happy")
    assert bad.exit_code == 1 and "calm, exciting" in str(bad.exception)


def test_stats_table(cache_db):
    result = invoke("stats", "--db", str(cache_db["db"]))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "8 tracks" in out and "1 failed" in out and "1 missing" in out
    assert "P(exciting)" in out and "█" in out and "0.90–1.00" in out
    assert "cannot decode: truncated frame" in out


@pytest.fixture(scope="module")
def awkward_db(tmp_path_factory) -> Path:
    """A cache whose values are what SQLite may hold beside plain text: control characters (a tab, line
    breaks, an escape, a NUL) in tags and names, a title stored as a number, an album as bytes, NULLs, a
    confidence with many decimals or infinite, scores in other forms than a scan writes, other flags."""
    root = tmp_path_factory.mktemp("awkward") / "music"
    db = root.parent / "c.db"
    tags = [("Tab\there", "Title", "Album"), ("Ünï", "line\nbreak", "esc\x1b end"), ("X", None, "crlf\r\n"),
            (None, "plain", "quote\"d, comma"), ("Plain", "Plain", "Plain")]
    with Cache.open(db) as cache:
        for i, (artist, title, album) in enumerate(tags * 3):
            path = root / f"{i:02d} {'a' if i % 2 else 'b'}{'' if i % 3 else chr(0x2028)}name.mp3"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x")
            cache.record(_result(path, 0.123456789 + i / 100), TrackRef.from_path(path),
                         info={"format": "mp3", "artist": artist, "album": album, "title": title})
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE tracks SET title = 42 WHERE path LIKE '%03 %'")
        conn.execute("UPDATE tracks SET album = x'00ff41' WHERE path LIKE '%04 %'")
        conn.execute("UPDATE tracks SET confidence = 1 WHERE path LIKE '%05 %'")
        conn.execute("UPDATE tracks SET error = 'two\tcells' WHERE path LIKE '%09 %'")
        # What the CSV and JSON lines of SQLite (tagger/track_lines.py) must get right or leave to Python:
        # scores json would write differently or that are not an object, flags and numbers of other types;
        # rows 5 to 14 (but 9) with plain tags otherwise, so that SQLite writes the rest of their line.
        conn.execute("UPDATE tracks SET artist = 'A', title = 'T', album = 'B, b' WHERE path GLOB '*/1[0-4] *' "
                     "OR path GLOB '*/0[5-8] *'")
        for n, column, value in [
                (0, "scores", '{"calm":0.1,"exciting":0.9}'), (1, "scores", '{"a": 1e-05, "b": 1, "c": 0.10000000000000001}'),
                (2, "scores", "[0.25, 0.75]"), (3, "scores", ""), (4, "scores", '"text, with comma"'),
                (5, "scores", '{"calm": 0.50, "exciting": 0.5}'), (5, "tagged", 2),
                (6, "scores", '{"a": 0.1, "a": 0.2}'), (6, "tagged", 0.5),
                (7, "scores", ' {"calm": 0.1, "exciting": 0.9} '), (7, "tagged", None),
                (8, "scores", "true"), (8, "tagged", "yes"), (9, "scores", '{"ruhig": 0.25, "wütend": 0.75}'),
                (10, "scores", "null"), (10, "confidence", float("inf")), (11, "scores", "7"), (11, "duration", None),
                (12, "scores", None), (12, "title", 'back\\slash "q"'),
                (13, "scores", json.dumps({"ruhig": 0.25, "wütend": 0.75})), (13, "artist", "nul\0inside"),
                (14, "scores", '{"calm": NaN, "exciting": Infinity}'), (14, "error", "")]:
            conn.execute(f"UPDATE tracks SET {column} = ? WHERE path LIKE ?", [value, f"%/{n:02d} %"])
    conn.close()
    return db


def _reference_outputs(db: Path) -> dict[str, bytes]:
    """The listing as the track rows say it, cell by cell (the rules of the query command's help)."""
    import base64

    from tagger.commands.query import _tsv_text
    from tagger.track_lines import csv_cell as _csv_cell
    from tagger.query import LISTING_COLUMNS, TRACK_COLUMNS, TrackFilter, find_tracks
    from tagger.records import printable

    def jsonable(value):
        return {"$base64": True, "encoded": base64.b64encode(value).decode("ascii")} if isinstance(value, bytes) else value

    def csv_line(values) -> str:  # RFC 4180: a value holding \r or \n is quoted too (the terminator's characters)
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\r\n").writerow([_csv_cell(v) for v in values])
        return buffer.getvalue()[:-2]

    with Cache.open_readonly(db) as cache:
        tracks = list(find_tracks(cache, TrackFilter()))
    tsv = ["\t".join(LISTING_COLUMNS)] + ["\t".join(
        _tsv_text(round(t.confidence, 4) if c == "confidence" and t.confidence is not None else getattr(t, c))
        for c in LISTING_COLUMNS) for t in tracks]
    lines = {"tsv": tsv, "paths": [t.path for t in tracks],  # in a pipe: the names themselves (none holds a \n)
             "csv": [csv_line(TRACK_COLUMNS)] + [csv_line(getattr(t, c) for c in TRACK_COLUMNS) for t in tracks],
             "json": [json.dumps({c: jsonable(getattr(t, c)) for c in TRACK_COLUMNS}, ensure_ascii=False) for t in tracks]}
    return {fmt: b"".join((line if isinstance(line, bytes) else line.encode("utf-8")) + b"\n" for line in text)
            for fmt, text in lines.items()}  # a key stored as bytes: --paths writes those bytes


def test_every_output_format_writes_awkward_values_as_the_track_rows_say(awkward_db):
    """TSV, --paths, --csv and --json of the real CLI, byte for byte, against the rules applied to each
    TrackRow: the listing's short paths (a line searched once, values taken as stored) change nothing."""
    import subprocess
    import sys

    expected = _reference_outputs(awkward_db)
    assert b"\\t" in expected["tsv"] and b"\\x1b" in expected["tsv"] and "\u2028".encode() in expected["paths"]
    for fmt, flag in (("tsv", []), ("paths", ["--paths"]), ("csv", ["--csv"]), ("json", ["--json"])):
        proc = subprocess.run([sys.executable, "-m", "tagger", "query", "--db", str(awkward_db), *flag],
                              capture_output=True, check=True)
        assert proc.stdout == expected[fmt], fmt


@pytest.mark.parametrize("sql", [None, "SELECT path, artist, title, album FROM tracks ORDER BY path"])
def test_csv_quotes_line_breaks_one_record_per_track(awkward_db, tmp_path, sql):
    """A value holding a bare \n or \r (a tag "line\nbreak", an album "crlf\r\n") was written unquoted by
    Python 3.11's writer without a line terminator and by the SQL of track_lines, so a track became several
    records. Now, as RFC 4180 says: Python's csv module and sqlite-utils read one record per track, every
    value as stored."""
    import subprocess
    import sys

    with sqlite3.connect(awkward_db) as conn:
        stored = {path: (artist, title, album) for path, artist, title, album in conn.execute(
            "SELECT path, artist, title, album FROM tracks")}
    args = ["--sql", sql] if sql else []
    proc = subprocess.run([sys.executable, "-m", "tagger", "query", "--db", str(awkward_db), "--csv", *args],
                          capture_output=True, check=True)
    records = list(csv.DictReader(io.StringIO(proc.stdout.decode("utf-8"), newline="")))
    assert len(records) == len(stored) == 15
    for record in records:
        artist, title, album = stored[record["path"]]
        assert record["artist"] == (artist or "") and (record["title"], record["album"]) == (
            "" if title is None else str(title), album if isinstance(album, str) else record["album"])
    assert any("\n" in r["title"] for r in records) and any(r["album"] == "crlf\r\n" for r in records)
    sqlite_utils = Path(sys.executable).with_name("sqlite-utils")
    subprocess.run([str(sqlite_utils), "insert", str(tmp_path / "read.db"), "tracks", "-", "--csv"],
                   input=proc.stdout, check=True, capture_output=True)
    with sqlite3.connect(tmp_path / "read.db") as conn:
        read = dict(conn.execute("SELECT path, title FROM tracks"))  # (it reads "\r\n" as "\n": text mode)
    assert len(read) == 15 and "line\nbreak" in read.values()


def test_paths_in_a_pipe_are_the_names_own_bytes(tmp_path):
    """`query --paths | xargs -d '\\n' CMD --`: each line is the file's real name, a name that is not UTF-8
    too (the key escapes its bytes); a name holding a line break cannot be one line: left out, one warning."""
    import os
    import subprocess
    import sys

    root = tmp_path / "music"
    root.mkdir()
    names = [b"caf\xe9 latin1.mp3", "plain ☕.mp3".encode(), b"back\\slash.mp3", b"two\nlines.mp3"]
    db = tmp_path / "c.db"
    with Cache.open(db) as cache:
        for name in names:
            path = os.fsencode(root) + b"/" + name
            with open(path, "wb") as fh:
                fh.write(b"x")
            path = Path(os.fsdecode(path))
            cache.record(_result(path, 0.9), TrackRef.from_path(path), info={"format": "mp3"})
    proc = subprocess.run([sys.executable, "-m", "tagger", "query", "--db", str(db), "--paths"], capture_output=True)
    assert proc.returncode == 0, proc.stderr
    listed = proc.stdout.splitlines()
    assert sorted(listed) == sorted(os.fsencode(root) + b"/" + name for name in names[:3])
    assert all(os.path.isfile(path) for path in listed)
    assert proc.stderr.decode().count("warning:") == 1 and "two\\nlines.mp3: left out of --paths" in proc.stderr.decode()
    # the README's recipe, with a real xargs: every line reaches the command as an existing file
    shell = subprocess.run(f"{sys.executable} -m tagger query --db '{db}' --paths | xargs -d '\\n' ls -d --",
                           shell=True, capture_output=True)
    assert shell.returncode == 0 and shell.stdout.count(b"\n") == 3, shell.stderr


def test_backslashes_in_tsv_cells_and_globs_are_written_as_in_the_key(tmp_path):
    r"""A TSV cell escapes a tab as \t: a tag holding a backslash then 't' read the same as one holding a tab,
    and the path (the cache's key, backslashes doubled) followed another rule than the tags. Now every cell
    doubles its backslashes, so each escape can be undone; and --path-glob matches a name holding a
    backslash by its own spelling (it had to be written doubled, as in the key)."""
    from tests.conftest import run_cli

    root, db = tmp_path / "music", tmp_path / "c.db"
    (root / "AC\\DC").mkdir(parents=True)
    with Cache.open(db) as cache:
        for name, title in (("AC\\DC/a.mp3", "tab\\tliteral"), ("b.mp3", "tab\treal")):
            (root / name).write_bytes(b"x")
            cache.record(_result(root / name, 0.9), TrackRef.from_path(root / name),
                         info={"format": "mp3", "artist": "AC\\DC", "title": title})
    lines = run_cli("query", "--db", db).stdout.splitlines()
    cells = {Path(line.split("\t")[0]).name: line.split("\t") for line in lines[1:]}
    assert cells["a.mp3"][0] == f"{root}/AC\\\\DC/a.mp3" and cells["a.mp3"][3:5] == ["AC\\\\DC", "tab\\\\tliteral"]
    assert cells["b.mp3"][3:5] == ["AC\\\\DC", "tab\\treal"]
    unescaped = {name: [c.encode("latin-1", "backslashreplace").decode("unicode_escape") for c in row]
                 for name, row in cells.items()}
    assert unescaped["a.mp3"][4] == "tab\\tliteral" and unescaped["b.mp3"][4] == "tab\treal"
    assert unescaped["a.mp3"][0] == str(root / "AC\\DC" / "a.mp3")
    sql = run_cli("query", "--db", db, "--sql", "SELECT title FROM tracks ORDER BY title").stdout
    assert sql.splitlines() == ["title", "tab\\treal", "tab\\\\tliteral"]  # a tab sorts before a backslash
    found = run_cli("query", "--db", db, "--paths", "--path-glob", "AC\\DC/*")
    assert found.stdout == f"{root}/AC\\DC/a.mp3\n"
    assert run_cli("query", "--db", db, "--paths", "--path-glob", f"{root}/AC\\DC/a.mp3").stdout == found.stdout


def test_a_path_from_sql_is_its_stored_value_escaped_and_the_help_says_why_it_differs(tmp_path):
    r"""The listing spells the file AC\DC/a.mp3 `AC\\DC/a.mp3` (the key, whose backslashes are doubled
    already: undone, the file's name), `--sql 'SELECT path ...'` `AC\\\\DC/a.mp3` (every cell escaped from
    its stored value: undone, the key), and neither the help nor the README said so (the README: "the
    same way"). Both stay parseable; the help now names the difference, and --csv writes the key in both."""
    from tests.conftest import run_cli

    root, db = tmp_path / "music", tmp_path / "c.db"
    (root / "AC\\DC").mkdir(parents=True)
    (root / "AC\\DC" / "a.mp3").write_bytes(b"x")
    with Cache.open(db) as cache:
        cache.record(_result(root / "AC\\DC/a.mp3", 0.9), TrackRef.from_path(root / "AC\\DC/a.mp3"),
                     info={"format": "mp3"})
    key = f"{root}/AC\\\\DC/a.mp3"
    assert run_cli("query", "--db", db).stdout.splitlines()[1].split("\t")[0] == key
    sql = run_cli("query", "--db", db, "--sql", "SELECT path FROM tracks").stdout.splitlines()
    assert sql == ["path", key.replace("\\", "\\\\")]
    assert sql[1].encode("latin-1", "backslashreplace").decode("unicode_escape") == key
    for args in ((), ("--sql", "SELECT path FROM tracks")):
        assert run_cli("query", "--db", db, "--csv", *args).stdout.splitlines()[1].split(",")[0] == key
    text = " ".join(run_cli("query", "--help", env={"COLUMNS": "80"}).stdout.split())
    assert ("the path is the cache's key, spelled so already, and undone gives the file's name; --sql escapes each "
            "cell from its stored value, so a path it selects has its backslashes doubled once more") in text


def test_a_missing_file_whose_tag_write_failed_counts_as_missing(tmp_path):
    """stats added rows whose tag write had failed to 'analysed' and took them from 'failed' whatever
    their status: a file gone since printed '-1 failed'."""
    from tagger.query import cache_stats

    db = tmp_path / "c.db"
    with Cache.open(db) as cache:
        for name in ("a.mp3", "b.mp3"):
            path = tmp_path / name
            path.write_bytes(b"x")
            cache.record(_result(path, 0.9), TrackRef.from_path(path), info={"format": "mp3"})
            cache.set_tag_failed(path, "read-only file")
        cache.mark_missing([str(tmp_path / "a.mp3")])
        stats = cache_stats(cache)
    assert (stats.tag_failed, stats.failed, stats.missing) == (1, 1, 1)
    header = invoke("stats", "--db", str(db)).stdout.splitlines()[0]
    assert header.endswith("2 tracks (1 analysed: 0 tagged, 1 whose tags could not be written; 0 failed, 1 missing)")
