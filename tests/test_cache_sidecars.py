"""A cache whose `-wal` or `-shm` the user may not read (another user's 0600 file, left by his crashed or
running writer): the read commands name that file and the permission, as `prune` names one it may not
write, and leave the cache as it is. A real scan of real tracks, the real CLI, run without root's powers."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tagger import synth
from tests.conftest import run_cli

ROOT = os.geteuid() == 0

pytestmark = pytest.mark.skipif(ROOT and not shutil.which("setpriv"), reason="needs setpriv to drop root's powers")

# every command that reads the cache through Cache.open_readonly
READERS = (["query"], ["stats"], ["playlist", "calm"], ["untag", "-n", "{lib}"], ["prune", "-n"])


def _without_root_powers(cmd: list[str]) -> list[str]:
    """Root ignores file permissions; drop the capabilities that let it (the tests run as root in CI)."""
    caps = "-dac_override,-dac_read_search,-fowner"
    return ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}", *cmd] if ROOT else cmd


def _as_owner(*args) -> subprocess.CompletedProcess:
    return subprocess.run(_without_root_powers([sys.executable, "-m", "tagger", *map(str, args)]),
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def scanned(tmp_path_factory) -> tuple[Path, Path]:
    """(library, cache): two synth tracks scanned once by the real CLI; the cache closed (nothing beside it)."""
    folder = tmp_path_factory.mktemp("scanned")
    lib = folder / "lib"
    lib.mkdir()
    for i, mood in enumerate(("calm", "exciting")):
        synth.encode(synth.render(mood, 10, seed=i), lib / f"t{i}.flac")
    db = folder / "c.db"
    run_cli("scan", lib, "--db", db, "--no-write", "-j", "1", check=True)
    return lib, db


def _with_wal(scanned, folder: Path, *, pages: bool) -> Path:
    """A copy of the scanned cache in `folder` with the -wal and -shm a writer killed before its checkpoint
    leaves (`pages`: a committed change in the -wal; else an empty -wal)."""
    folder.mkdir()
    db = folder / "c.db"
    shutil.copyfile(scanned[1], db)
    change = "UPDATE tracks SET artist = 'in the wal'" if pages else "SELECT count(*) FROM tracks"
    subprocess.run([sys.executable, "-c", f"""
import os, sqlite3
conn = sqlite3.connect({str(db)!r}, isolation_level=None)
conn.execute("PRAGMA wal_autocheckpoint=0")
conn.execute({change!r}).fetchall()
os._exit(0)  # no close: the -wal and -shm stay, as a killed writer leaves them
"""], check=True, timeout=60)
    assert sorted(p.name for p in folder.iterdir()) == ["c.db", "c.db-shm", "c.db-wal"]
    assert (Path(f"{db}-wal").stat().st_size > 0) == pages
    return db


def _state(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Each file in `folder`: its mode and bytes (read as root: any mode)."""
    return {p.name: (p.stat().st_mode, p.read_bytes()) for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("suffix, pages, folder_writable", [
    ("-wal", True, True),    # committed pages: must not be deleted
    ("-wal", False, True),   # an empty -wal
    ("-shm", True, True),
    ("-wal", True, False),   # a folder the user may not write: read from a private copy, which needs the -wal
], ids=["wal-with-pages", "empty-wal", "shm", "wal-in-read-only-folder"])
def test_an_unreadable_wal_or_shm_is_named_by_every_read_command(tmp_path, scanned, suffix, pages, folder_writable):
    """query, stats, playlist, untag -n and prune -n said only `c.db: unusable cache database (unable to
    open database file)` (or, in a read-only folder, that a private copy could not be made in /tmp),
    naming neither the file nor the permission and inviting the user to delete a sound cache. Now one
    line names the -wal or -shm, the permission, its mode and owner and what to do (as prune's line for
    one it may not write does); the exit status is 1 and nothing beside the cache changes."""
    lib = scanned[0]
    db = _with_wal(scanned, tmp_path / "cache", pages=pages)
    beside = Path(f"{db}{suffix}")
    beside.chmod(0o000)
    if not folder_writable:
        db.parent.chmod(0o555)
    before = _state(db.parent)
    try:
        for args in READERS:
            proc = _as_owner(*[a.format(lib=lib) for a in args], "--db", db)
            lines = proc.stderr.strip().splitlines()
            assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
            assert len(lines) == 1, (args, proc.stderr)
            assert lines[0].startswith(f"error: {beside}: cannot read the cache: SQLite's {suffix} file beside it "
                                       f"is not readable (permission denied: mode 0000, owner uid {os.getuid()}); "
                                       f"make it readable"), (args, lines[0])
            assert "unusable" not in lines[0]
            assert ("delete it" in lines[0]) == (suffix == "-shm" or not pages), lines[0]  # never committed pages
            assert _state(db.parent) == before, args
    finally:
        db.parent.chmod(0o755)
        beside.chmod(0o644)
    proc = _as_owner("query", "--db", db, "--json")  # the cache was sound all along
    assert proc.returncode == 0 and proc.stdout.count('"path"') == 2, proc.stderr
    assert (proc.stdout.count('"in the wal"') == 2) == pages


@pytest.mark.parametrize("with_wal", [False, True], ids=["alone", "and-its-wal"])
def test_an_unreadable_cache_file_is_named_first(tmp_path, scanned, with_wal):
    """A cache file the user may not read (another user's 0600 file) said `unusable cache database
    (unable to open database file)`, which invites deleting it; with its -wal unreadable too, the -wal
    was named, and once that was fixed the next run named the cache. The cache file is named first."""
    db = _with_wal(scanned, tmp_path / "cache", pages=True)
    paths = [db, Path(f"{db}-wal")] if with_wal else [db]
    if not with_wal:
        for side in ("-wal", "-shm"):
            Path(f"{db}{side}").unlink()
    for path in paths:
        path.chmod(0o000)
    before = _state(db.parent)
    try:
        for args in READERS:
            proc = _as_owner(*[a.format(lib=scanned[0]) for a in args], "--db", db)
            lines = proc.stderr.strip().splitlines()
            assert proc.returncode == 1 and len(lines) == 1, (args, proc.stderr)
            assert lines[0] == (f"error: {db}: cannot read the cache (permission denied: mode 0000, owner uid "
                                f"{os.getuid()}); make it readable and writable (chown, chmod u+rw)"), (args, lines[0])
            assert _state(db.parent) == before, args
    finally:
        for path in paths:
            path.chmod(0o644)
