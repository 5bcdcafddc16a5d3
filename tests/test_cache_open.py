"""Opening the cache for writing, and the option values the cache is read with: a half-made cache, a
cache or folder the user may not write, bytes the locale does not decode, a --limit beyond SQLite's
integers, an empty --model. Real CLI, real SQLite files, real audio."""
from __future__ import annotations

import shutil
import sqlite3
import os
import subprocess
import sys
import time
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


# -- where the default cache goes: no home folder, or a read-only one (a service, a container) ---------------

def _without_home(tmp_path: Path, **env: str) -> dict:
    """The environment of a process without HOME (nor XDG_DATA_HOME, MOODTAG_DB) whose uid has no entry in
    the user database (a container's arbitrary uid, `docker run -u 12345`; a service's User= that NSS does not
    know): a sitecustomize on PYTHONPATH makes pwd.getpwuid raise KeyError, as it does for such a uid."""
    site = tmp_path / "no-passwd"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(
        "import pwd\n\ndef _missing(uid):\n    raise KeyError(f'getpwuid(): uid not found: {uid}')\n\n"
        "pwd.getpwuid = _missing\n")
    base = {key: value for key, value in os.environ.items() if key not in ("HOME", "XDG_DATA_HOME", "MOODTAG_DB")}
    path = os.pathsep.join(p for p in [str(site), os.environ.get("PYTHONPATH", "")] if p)
    return {**base, "PYTHONPATH": path, **env}


def _moodtag(env: dict, *args, prefix: list[str] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-m", "tagger", *map(str, args)], env=env, cwd="/",
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("command", ["scan", "prune", "stats", "playlists", "untag"])
def test_no_home_folder_is_one_line_naming_what_to_set(library, tmp_path, command):
    """No HOME and no passwd entry: every command printed a 40-line boxed traceback ending in platformdirs'
    RuntimeError ("could not determine the home directory"). Now one line names what to set, exit status 1."""
    args = {"scan": ["scan", library, "--no-write"], "prune": ["prune"], "stats": ["stats"],
            "playlists": ["playlists", "--out-dir", tmp_path], "untag": ["untag", library]}[command]
    line = one_error_line(_moodtag(_without_home(tmp_path), *args))
    assert "no home folder is known" in line and "set HOME or XDG_DATA_HOME" in line \
        and "--db or MOODTAG_DB" in line, line


def test_without_a_home_folder_a_cache_named_or_an_xdg_folder_is_used(library, tmp_path):
    """What the line says to set works: --db (a new cache, whose folder is there), MOODTAG_DB, XDG_DATA_HOME;
    a MOODTAG_DB of `~/...` (no shell expanded it: a unit file's Environment=) is one line too."""
    (tmp_path / "named").mkdir()
    env = _without_home(tmp_path)
    proc = _moodtag(env, "scan", library, "--no-write", "--db", tmp_path / "named" / "c.db")
    assert proc.returncode == 0, proc.stderr
    proc = _moodtag(dict(env, MOODTAG_DB=str(tmp_path / "named" / "c.db")), "stats")
    assert proc.returncode == 0 and "2 tracks" in proc.stdout, proc.stderr
    proc = _moodtag(dict(env, XDG_DATA_HOME=str(tmp_path / "data")), "scan", library, "--no-write")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "data" / "moodtag" / "moodtag.db").is_file()
    line = one_error_line(_moodtag(dict(env, MOODTAG_DB="~/c.db"), "stats"))
    assert line.startswith("error: ~/c.db: ") and "no home folder is known" in line, line


@needs_no_root_powers
def test_a_read_only_home_names_it_not_a_folder_that_is_not_there(library, tmp_path):
    """A read-only HOME (a service's, DynamicUser=): the line said "its folder ~/.local/share/moodtag is
    read-only", a folder that does not exist. It names the folder that is read-only, where the cache's
    folder cannot be made."""
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o555)
    before = snapshot(library)
    env = {key: value for key, value in os.environ.items() if key not in ("XDG_DATA_HOME", "MOODTAG_DB")}
    try:
        proc = _moodtag(dict(env, HOME=str(home)), "scan", library, prefix=_PREFIX)
    finally:
        home.chmod(0o755)
    line = one_error_line(proc)
    assert f"its folder {home}/.local/share/moodtag cannot be made: {home} is read-only" in line, line
    assert list(home.iterdir()) == [] and snapshot(library) == before


# -- a cache on a file system that refuses SQLite's writes: a real FUSE share, a real FAT32 drive ----------

# A passthrough share whose server refuses writes while the client's mount stays read-write (an NFS export
# made read-only, a NAS turned read-only): its first WRITES write() calls pass, then every write, new
# file, open for writing and change of a name fails with EROFS. Modes and statvfs say it may be written.
_SHARE = r"""
import errno, os, sys
import fuse
from fuse import Fuse
fuse.fuse_python_api = (0, 2)

class FH:
    def __init__(self, fd):
        self.fd = fd

class Share(Fuse):
    def _no(self):
        return self.writes >= self.allowed
    def getattr(self, path):
        try:
            return os.lstat(self.src + path)
        except OSError as e:
            return -e.errno
    def readdir(self, path, offset):
        for name in [".", "..", *os.listdir(self.src + path)]:
            yield fuse.Direntry(name)
    def statfs(self):
        return os.statvfs(self.src)
    def open(self, path, flags):
        if flags & (os.O_WRONLY | os.O_RDWR) and self._no():
            return -errno.EROFS
        try:
            return FH(os.open(self.src + path, flags & ~os.O_CREAT))
        except OSError as e:
            return -e.errno
    def create(self, path, flags, mode):
        if self._no():
            return -errno.EROFS
        return FH(os.open(self.src + path, flags | os.O_CREAT, mode))
    def read(self, path, size, offset, fh):
        return os.pread(fh.fd, size, offset)
    def write(self, path, buf, offset, fh):
        self.writes += 1
        if self.writes > self.allowed:
            return -errno.EROFS
        return os.pwrite(fh.fd, buf, offset)
    def release(self, path, flags, fh):
        os.close(fh.fd)
    def flush(self, path, fh):
        return 0
    def fsync(self, path, datasync, fh):
        os.fsync(fh.fd)
    def fgetattr(self, path, fh):
        return os.fstat(fh.fd)
    def ftruncate(self, path, size, fh):
        if self._no():
            return -errno.EROFS
        os.ftruncate(fh.fd, size)
    def truncate(self, path, size):
        return -errno.EROFS if self._no() else os.truncate(self.src + path, size)
    def unlink(self, path):
        return -errno.EROFS if self._no() else os.unlink(self.src + path)
    def rename(self, a, b):
        return -errno.EROFS if self._no() else os.rename(self.src + a, self.src + b)
    def chmod(self, path, mode):
        return -errno.EROFS if self._no() else os.chmod(self.src + path, mode)

server = Share(version="share", usage="share SOURCE MOUNTPOINT WRITES", dash_s_do="setsingle")
server.src, server.allowed, server.writes = os.path.abspath(sys.argv[1]), int(sys.argv[3]), 0
server.multithreaded = False
server.parse(["share", sys.argv[2], "-f", "-o", "default_permissions"], errex=1)
server.main()
"""


@pytest.fixture
def read_only_share(tmp_path):
    """mount(source, writes) -> the mount point of a share of `source` whose server refuses writes after
    `writes` of them; skipped without root, /dev/fuse or fuse-python."""
    from tests.test_removable import _can_mount

    why = _can_mount("fusermount", "true")
    if why or subprocess.run(["/usr/bin/python3", "-c", "import fuse"], capture_output=True).returncode:
        pytest.skip(why or "needs fuse-python for /usr/bin/python3 (python3-fuse)")
    script = tmp_path / "share.py"
    script.write_text(_SHARE)
    mounted: list[tuple[subprocess.Popen, Path]] = []

    def mount(source: Path, writes: int = 0) -> Path:
        point = tmp_path / f"share{len(mounted)}"
        point.mkdir()
        mounted.append((subprocess.Popen(["/usr/bin/python3", script, source, point, str(writes)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), point))
        for _ in range(100):
            if os.path.ismount(point):
                return point
            time.sleep(0.05)
        pytest.skip("the FUSE share did not mount")

    yield mount
    for daemon, point in mounted:
        subprocess.run(["fusermount", "-u", str(point)], capture_output=True)
        daemon.wait(timeout=30)


@pytest.mark.parametrize("writes", [0, 1])
def test_a_scan_of_a_cache_on_a_share_that_refuses_writes_names_its_file_system(library, read_only_share, writes):
    """A share whose server refuses writes while mounted read-write here (modes and statvfs say it may be
    written) stopped a scan with 'cannot lock the cache database (Read-only file system)' (all refused)
    or 'cannot read/write the cache database (disk I/O error)' (SQLite's -wal or -shm refused after its
    first write). Either way the line names the cache and its file system's refusal."""
    db = library / "c.db"
    run_cli("scan", library, "--db", db, "--no-write", check=True)
    share = read_only_share(library, writes)
    proc = run_cli("scan", share, "--db", share / "c.db", "--no-write")
    line = one_error_line(proc)
    assert line.startswith(f"error: {share / 'c.db'}: ") and \
        "its file system refused the write (read-only file system) though it is mounted read-write" in line, line
    assert "--db" in line and "unusable" not in line and "I/O error" not in line, line


def test_read_commands_read_a_cache_on_a_share_that_refuses_writes(library, read_only_share):
    """query and stats called a sound cache on such a share 'unusable cache database (unable to open
    database file)': SQLite, opened to write as the modes allow, could make no -shm. They read it as they
    read one in a read-only folder (immutable), and leave nothing beside it."""
    db = library / "c.db"
    run_cli("scan", library, "--db", db, "--no-write", check=True)
    share = read_only_share(library)
    stats = run_cli("stats", "--db", share / "c.db")
    assert stats.returncode == 0, stats.stderr
    assert "2 tracks" in stats.stdout, stats.stdout
    query = run_cli("query", "--db", share / "c.db", "--json")
    assert query.returncode == 0, query.stderr
    assert len(query.stdout.splitlines()) == 2
    assert beside(db) == []


@pytest.fixture
def fat32(tmp_path):
    """A FAT32 drive through fusefat (it refuses an ftruncate that grows a file: SQLite's -shm)."""
    from tests.test_removable import FatDrive, _plugged

    stick = _plugged(FatDrive(tmp_path), "mkfs.vfat", "fusefat")
    try:
        yield stick.mount
    finally:
        stick.remove()


def test_a_cache_on_fat32_says_sqlite_cannot_use_its_wal_files_there(library, fat32):
    """A cache on a FAT32 drive through fusefat stopped a scan with SQLite's bare 'disk I/O error' (its
    -shm cannot be sized there). The line names the cache, the cause, and the remedy: a local disk. The
    cache stays in WAL mode (nothing switched silently)."""
    db = fat32 / "c.db"
    proc = run_cli("scan", library, "--db", db, "--no-write")
    line = one_error_line(proc)
    assert line.startswith(f"error: {db}: ") and "SQLite cannot use its WAL files (-wal, -shm) on this file system" \
        in line and "keep the cache on a local disk (--db)" in line, line


def test_read_commands_read_a_cache_copied_onto_fat32(library, tmp_path, fat32):
    """A cache copied onto such a drive (to take it to another machine) failed every read command with
    'disk I/O error'; no writer can use it there, so it is read as it is (immutable)."""
    db = tmp_path / "cache" / "c.db"
    db.parent.mkdir()
    run_cli("scan", library, "--db", db, "--no-write", check=True)
    shutil.copyfile(db, fat32 / "c.db")
    stats = run_cli("stats", "--db", fat32 / "c.db")
    assert stats.returncode == 0, stats.stderr
    assert "2 tracks" in stats.stdout, stats.stdout
    assert sorted(p.name for p in fat32.iterdir() if p.name.startswith("c.db")) == ["c.db"]  # no -wal, -shm left
    scan = run_cli("scan", library, "--db", fat32 / "c.db", "--no-write")
    assert "SQLite cannot use its WAL files" in one_error_line(scan)


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
