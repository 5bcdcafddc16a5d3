"""Opening the cache for writing, and the option values the cache is read with: a half-made cache, a
cache or folder the user may not write, bytes the locale does not decode, a --limit beyond SQLite's
integers, an empty --model. Real CLI, real SQLite files, real audio."""
from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tagger.cache import APPLICATION_ID, migrations
from tests.conftest import run_cli
from tests.test_faults import one_error_line
from tests.test_scan import ROOT, rows, snapshot

# root ignores file permissions: drop the capabilities that let it (CI runs as root)
_DROPPED = ("dac_override", "dac_read_search", "fowner", "chown")
if not ROOT:
    _PREFIX: list[str] | None = []
elif shutil.which("setpriv"):
    _PREFIX = ["setpriv", "--bounding-set=" + ",".join(f"-{cap}" for cap in _DROPPED)]
elif shutil.which("capsh"):
    _PREFIX = ["capsh", "--drop=" + ",".join(f"cap_{cap}" for cap in _DROPPED), "--", "-c", 'exec "$0" "$@"']
else:
    _PREFIX = None
needs_no_root_powers = pytest.mark.skipif(_PREFIX is None, reason="needs setpriv or capsh to drop root's powers")


def as_user(*args) -> subprocess.CompletedProcess:
    """The real CLI, as a user whom file permissions bind."""
    return subprocess.run([*_PREFIX, sys.executable, "-m", "tagger", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def beside(db: Path) -> list[str]:
    return sorted(p.name for p in db.parent.iterdir() if p.name.endswith(("-wal", "-shm", "-journal")))


@pytest.fixture
def library(tmp_path, audio_dir) -> Path:
    lib = tmp_path / "lib"
    lib.mkdir()
    for src in sorted(audio_dir.iterdir())[:2]:
        shutil.copy(src, lib / src.name)
    return lib


@pytest.fixture
def scanned(library, tmp_path) -> Path:
    """A cache of `library`, and one more file there that the next scan would analyse."""
    db = tmp_path / "cache" / "c.db"
    db.parent.mkdir()
    run_cli("scan", library, "--db", db, "--no-write", check=True)
    shutil.copy(next(library.iterdir()), library / "new.flac")
    return db


def test_a_cache_whose_making_stopped_is_finished_by_the_next_scan(library, tmp_path):
    """A first scan killed (or out of disk) while sqlite-utils made the cache left a file holding only
    an empty `_sqlite_migrations` table, application_id 0: every command then refused it as another
    program's database. Now a scan finishes making it."""
    from sqlite_utils import Database

    db = tmp_path / "c.db"
    half = Database(db)
    migrations().apply(half, stop_before="m001_create_tracks")  # the table it makes first, nothing applied
    half.close()
    assert sqlite3.connect(db).execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall() == [("_sqlite_migrations",)]
    proc = run_cli("scan", library, "--db", db, "--no-write")
    assert proc.returncode == 0, proc.stderr
    assert len(rows(db)) == 2
    assert sqlite3.connect(db).execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID


def test_a_database_with_another_programs_migrations_is_still_refused(library, tmp_path):
    """Only an empty `_sqlite_migrations` is a half-made cache: one that records another program's steps is not."""
    from sqlite_utils import Database
    from sqlite_utils.migrations import Migrations

    db = tmp_path / "c.db"
    other = Migrations("other-program")
    other()(lambda d: None)
    other.apply(Database(db))
    proc = run_cli("scan", library, "--db", db, "--no-write")
    assert "not a moodtag cache" in one_error_line(proc)


@needs_no_root_powers
@pytest.mark.parametrize("command", ["scan", "untag", "prune"])
def test_a_read_only_cache_is_refused_and_nothing_is_left_beside_it(scanned, library, command):
    """scan/untag/prune on a 0444 cache failed as they should, but SQLite, opened read-write on it, left
    0444 -wal/-shm files beside it that stopped every scan once the user had made the cache writable."""
    scanned.chmod(0o444)
    before = snapshot(library)
    args = {"scan": ["scan", library], "untag": ["untag", library], "prune": ["prune"]}[command]
    proc = as_user(*args, "--db", scanned)
    line = one_error_line(proc)
    assert line.startswith(f"error: {scanned}: ") and "read-only (mode 0444" in line, line
    assert beside(scanned) == []
    assert snapshot(library) == before
    scanned.chmod(0o644)
    proc = as_user("scan", library, "--db", scanned, "--no-write")
    assert proc.returncode == 0, proc.stderr
    assert len(rows(scanned)) == 3


@needs_no_root_powers
def test_a_read_only_folder_is_named_not_the_writable_cache(scanned, library):
    """SQLite must make -wal/-shm in the cache's folder: a read-only folder was reported as a read-only
    cache file, which `ls -l` shows writable."""
    line = _scan_in_a_read_only_folder(scanned, library)
    assert f"its folder {scanned.parent} is read-only" in line, line
    assert beside(scanned) == []


def _scan_in_a_read_only_folder(db: Path, library: Path) -> str:
    """The one error line of a scan, without root's powers, whose cache lies in a read-only folder."""
    db.parent.chmod(0o555)
    try:
        proc = as_user("scan", library, "--db", db)
    finally:
        db.parent.chmod(0o755)
    return one_error_line(proc)


@needs_no_root_powers
def test_a_read_only_folder_without_a_lock_file_yet_is_named(scanned, library):
    """The scan's lock file comes first: where none was made yet, its failure said only 'cannot lock the
    cache database (Permission denied)'; the folder is named, as for SQLite's files."""
    Path(f"{scanned}.lock").unlink(missing_ok=True)
    line = _scan_in_a_read_only_folder(scanned, library)
    assert "cannot lock the cache database" in line and f"its folder {scanned.parent} is read-only" in line, line


@pytest.mark.parametrize(("option", "value", "byte"), [
    ("--artist", "\udcff", "0xff"), ("--album", "caf\udce9", "0xe9"), ("--sql", "SELECT 1 -- \udcff", "0xff")])
def test_a_byte_the_locale_does_not_decode_is_a_usage_error(scanned, option, value, byte):
    """A byte that is not UTF-8 in a text option (Python holds it as a surrogate escape) gave a
    UnicodeEncodeError traceback. Tags are text: such a value matches none, so it is refused, naming the
    option and the byte."""
    proc = run_cli("query", "--db", scanned, option, value)  # subprocess passes the raw byte
    assert proc.returncode == 2, proc.stderr
    assert f"'{option}'" in proc.stderr and f"the byte {byte}" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("limit", [str(2**63), "99999999999999999999"])
def test_a_limit_beyond_sqlites_integers_lists_every_track(scanned, limit):
    """--limit 2**63 or more gave an OverflowError traceback; now it means: all of them."""
    proc = run_cli("query", "--db", scanned, "--json", "--limit", limit)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 2


@pytest.mark.parametrize("command", ["classify", "scan", "playlist", "evaluate"])
def test_an_empty_model_is_a_usage_error(scanned, library, command):
    """`-m "$MODEL"` with MODEL unset meant the shipped default model: a scan re-analysed and re-tagged
    a library made with a custom model. Now an empty --model is refused as an empty --db is."""
    before = snapshot(library)
    cache_before = scanned.read_bytes()
    args = {"classify": ["classify", next(library.iterdir())], "scan": ["scan", library, "--db", scanned],
            "playlist": ["playlist", "calm", "--db", scanned], "evaluate": ["evaluate", library]}[command]
    proc = run_cli(*args, "-m", "")
    assert proc.returncode == 2, proc.stderr
    assert "'--model'" in proc.stderr and "an empty path (an unset variable?)" in proc.stderr
    assert snapshot(library) == before and scanned.read_bytes() == cache_before


def test_an_empty_model_given_to_the_library_is_an_error():
    """resolve_model('') (a beets config's empty model, say) is an error too, not the default model."""
    from tagger.errors import ModelError
    from tagger.weights import resolve_model

    with pytest.raises(ModelError, match="an empty model path"):
        resolve_model("")
