"""Read commands on a cache whose number cells were edited by hand (README invites sqlite-utils and datasette,
whose editors clear a cell to ''), and prune's wait message. A real scan of synth audio, edited with
sqlite3, read through the real CLI."""
from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tagger import synth
from tests.conftest import run_cli
from tests.test_scan import rows

# A cell as a GUI editor clears it, text, bytes, and an infinity (1e400 is stored as a REAL inf).
ODD_NUMBERS = {"cleared": "''", "text": "'high'", "bytes": "x'00ff'", "infinite": "1e400", "minus infinite": "-1e400"}


@pytest.fixture(scope="module")
def scanned(tmp_path_factory) -> Path:
    """A cache of four 10 s FLACs (calm, exciting, calm, exciting) scanned with the default model."""
    folder = tmp_path_factory.mktemp("edited")
    (folder / "lib").mkdir()
    for i, mood in enumerate(["calm", "exciting", "calm", "exciting"]):
        synth.encode(synth.render(mood, 10, seed=i), folder / "lib" / f"t{i}.flac")
    run_cli("scan", folder / "lib", "--db", folder / "c.db", "-j", "1", check=True)
    return folder


def _edited(scanned: Path, tmp_path: Path, sql: str) -> tuple[Path, str, str]:
    """A copy of the scanned cache with `sql` run on the row of t0.flac (`?` its path); that path and its mood."""
    db = tmp_path / "c.db"
    shutil.copy(scanned / "c.db", db)
    path = str(scanned / "lib" / "t0.flac")
    with sqlite3.connect(db) as conn:
        (mood,) = conn.execute("SELECT mood FROM tracks WHERE path = ?", [path]).fetchone()
        conn.execute(sql, [path])
    conn.close()
    return db, path, mood


def _warnings(stderr: str) -> list[str]:
    lines = re.sub("\x1b\\[[0-9;]*m", "", stderr).splitlines()
    return [line for line in lines if line.startswith("warning:")]


@pytest.mark.parametrize("kind", ["cleared", "text", "bytes"])  # an infinity is listed as stored (tests/test_query.py)
def test_a_confidence_that_is_not_a_number_is_listed_as_unknown(scanned, tmp_path, kind):
    """query (TSV and the terminal table, every --order) ended in `TypeError: type str doesn't define
    __round__ method` on a confidence cleared to '' or edited into text. Now it is listed as unknown (an
    empty cell) with one warning line naming the row, and --min-confidence passes it no more than a NULL."""
    db, path, _ = _edited(scanned, tmp_path, f"UPDATE tracks SET confidence = {ODD_NUMBERS[kind]} WHERE path = ?")
    for order in ("path", "confidence", "analyzed", "artist", "album"):
        for env in ({}, {"TTY_COMPATIBLE": "1", "COLUMNS": "200"}):
            proc = run_cli("query", "--db", db, "--order", order, env=env)
            assert proc.returncode == 0 and "Traceback" not in proc.stderr, (order, env, proc.stderr)
            warnings = _warnings(proc.stderr)
            assert len(warnings) == 1 and warnings[0].startswith(f"warning: {path}: its confidence is not a number"), \
                proc.stderr
            assert path in proc.stdout
            if not env:
                cells = {line.split("\t")[0]: line.split("\t") for line in proc.stdout.splitlines()}
                assert cells[path][2] == "" and all(c[2] for p, c in cells.items() if p not in (path, "path"))
    proc = run_cli("query", "--db", db, "--min-confidence", "0")
    assert proc.returncode == 0 and path not in proc.stdout and len(proc.stdout.splitlines()) == 4, proc.stderr


@pytest.mark.parametrize("kind", list(ODD_NUMBERS))
def test_a_duration_that_is_not_a_number_is_written_as_unknown_length(scanned, tmp_path, kind):
    """playlist and playlists (M3U8 and XSPF, every --order) ended in a TypeError on a duration cleared to ''
    or edited into text, and in an OverflowError on an infinite one. Now it is M3U's unknown length
    (#EXTINF:-1) and XSPF has no <duration> for it, with one warning line naming the track."""
    db, path, mood = _edited(scanned, tmp_path, f"UPDATE tracks SET duration = {ODD_NUMBERS[kind]} WHERE path = ?")
    for order in ("score", "path", "album", "shuffle"):
        proc = run_cli("playlist", mood, "--db", db, "--order", order, "--absolute")
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, (order, proc.stderr)
        assert len(_warnings(proc.stderr)) == 1 and f"{path}: its duration is not a number" in proc.stderr, proc.stderr
        lines = proc.stdout.splitlines()
        assert lines[lines.index(path) - 1] == "#EXTINF:-1,t0"
        assert "#EXTINF:10," in proc.stdout  # the other track of the mood keeps its length
        xspf = run_cli("playlist", mood, "--db", db, "--order", order, "--format", "xspf")
        assert xspf.returncode == 0 and len(_warnings(xspf.stderr)) == 1, xspf.stderr
        tracks = re.findall(r"<track>.*?</track>", xspf.stdout, re.S)
        assert [("<duration>" in t) for t in tracks if "t0.flac" in t] == [False]
        assert [("<duration>10000</duration>" in t) for t in tracks if "t0.flac" not in t] == [True]
    proc = run_cli("playlists", "--db", db, "--out-dir", tmp_path / "lists", "--absolute")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert f"#EXTINF:-1,t0\n{path}\n" in (tmp_path / "lists" / f"{mood}.m3u8").read_text()


def test_stats_reads_a_blob_error_and_a_confidence_that_is_not_a_number(scanned, tmp_path):
    """stats --json ended in `TypeError: Object of type bytes is not JSON serializable` on an error stored as
    a blob, and in a sort of bytes among text on a mood stored as one; a confidence cleared to '' counted
    as 0 in the mean, and an infinite one made it Infinity, which is no JSON. Now bytes are text, and such
    a confidence is left out of the mean with one warning line naming the track."""
    db, path, mood = _edited(scanned, tmp_path, "UPDATE tracks SET confidence = '' WHERE path = ?")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE tracks SET status = 'failed', error = x'00ff' WHERE path LIKE '%t1.flac'")
        conn.execute("UPDATE tracks SET confidence = 1e400, mood = x'6361ff' WHERE path LIKE '%t3.flac'")
        (kept,) = conn.execute("SELECT confidence FROM tracks WHERE path LIKE '%t2.flac'").fetchone()
    conn.close()
    for args in (["--json"], []):
        proc = run_cli("stats", "--db", db, *args)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        warnings = _warnings(proc.stderr)
        assert len(warnings) == 1 and warnings[0].startswith(f"warning: {path}: its confidence is not a number"), \
            proc.stderr
        assert "1 other analysed track" in warnings[0]
    data = json.loads(run_cli("stats", "--db", db, "--json").stdout,
                      parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    assert data["top_errors"] == [{"error": "\x00\\xff", "count": 1}]
    assert data["by_mood"] == {mood: 2, "ca\\xff": 1} and data["mean_confidence"] == {mood: kept}
    assert data["unreadable_confidence"] == 2
