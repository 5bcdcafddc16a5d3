"""A cache or a library on a full disk or a read-only file system, an interrupted tag write that cannot
be undone yet, too few file descriptors: each once a misleading line (an "unusable" cache, a chmod
that cannot help), a lost result, or a traceback. Real CLI, real SQLite files, real tmpfs mounts (in a
private mount namespace: `unshare -rm`, skipped where it cannot be had), real audio."""
from __future__ import annotations

import json
import resource
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tagger.cache import UNUSABLE, db_error
from tests.test_faults import one_error_line
from tests.test_safewrite import INTERRUPTED
from tests.test_scan import rows, snapshot
from tests.test_tags import in_namespace, namespace_available

# Run in the namespace (as its root): a tmpfs at argv[1]; cli() runs the real moodtag command.
PRELUDE = """
import json, os, shutil, sqlite3, subprocess, sys
from pathlib import Path
mnt = Path(sys.argv[1])
mnt.mkdir()
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], check=True)
def cli(*args):
    proc = subprocess.run([sys.executable, "-m", "tagger", *map(str, args)], capture_output=True, text=True,
                          timeout=300)
    return {"rc": proc.returncode, "out": proc.stdout, "err": proc.stderr}
def fill():
    fd = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT)
    for block in (1 << 16, 4096):   # to the last page
        try:
            while True:
                os.write(fd, bytes(block))
        except OSError:
            pass
    os.close(fd)
def remount(how):
    subprocess.run(["mount", "-o", f"remount,{how}", str(mnt)], check=True)
def table(db):
    con = sqlite3.connect(f"file:{db}?immutable=1", uri=True)
    try:
        return sorted(con.execute("SELECT path, mood, status, error, tag_state, size, mtime_ns FROM tracks"))
    finally:
        con.close()
"""


@pytest.fixture
def needs_namespace():
    reason = namespace_available()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def library(tmp_path, audio_dir) -> Path:
    lib = tmp_path / "lib"
    lib.mkdir()
    for src in sorted(audio_dir.glob("*.flac"))[:1] + sorted(audio_dir.glob("*.ogg"))[:1]:
        shutil.copy(src, lib / src.name)
    return lib


def test_a_cache_on_a_full_disk_says_disk_full_and_is_still_read(needs_namespace, library, tmp_path):
    """SQLite cannot make the `-shm` of a WAL cache on a full disk and says "disk I/O error": every
    command said `unusable cache database (disk I/O error)` (inviting the user to delete the cache),
    the read commands failed too, and each left a `-shm` and an empty `-wal` behind. Now the writing
    commands say disk full with the space left, the read commands read it (immutable), and nothing is
    left beside it."""
    script = PRELUDE + """
lib, out_dir = Path(sys.argv[2]), Path(sys.argv[3])
db = mnt / "c.db"
out = {"first": cli("scan", lib, "--db", db, "--no-write")}
fill()
for name, args in (("scan", ["scan", lib]), ("untag", ["untag", lib]), ("prune", ["prune"]),
                   ("query", ["query", "--json"]), ("stats", ["stats"]),
                   ("playlists", ["playlists", "--out-dir", out_dir]),
                   ("scan -n", ["scan", lib, "-n", "--json"]), ("untag -n", ["untag", lib, "-n"])):
    out[name] = cli(*args, "--db", db)
out["beside"] = sorted(p.name for p in mnt.iterdir() if p.name.endswith(("-wal", "-shm", "-journal")))
print(json.dumps(out))
"""
    out = in_namespace(script, tmp_path / "mnt", library, tmp_path / "playlists")
    assert out["first"]["rc"] == 0, out["first"]["err"]
    for name in ("scan", "untag", "prune"):
        line = one_error_line(_proc(out[name]))
        assert "unusable" not in line and "cannot write to the cache: disk full (" in line and " KB free)" in line, \
            (name, line)
    for name in ("query", "stats", "playlists", "scan -n", "untag -n"):
        assert out[name]["rc"] == 0 and out[name]["err"] == "", (name, out[name]["err"])
    assert {json.loads(line)["path"] for line in out["query"]["out"].splitlines()} == {
        str(p) for p in library.iterdir()}
    assert {json.loads(line)["action"] for line in out["scan -n"]["out"].splitlines()} == {"cached"}
    assert out["beside"] == []


def test_a_disk_io_error_is_never_called_an_unusable_cache(tmp_path):
    """An I/O error with space left (a failing disk): the I/O error, never `unusable`."""
    db = tmp_path / "c.db"
    line = str(db_error(db, sqlite3.OperationalError("disk I/O error"), UNUSABLE))
    assert line == f"{db}: cannot read/write the cache database (disk I/O error)"


def test_a_nearly_full_disk_is_read_shared_not_as_immutable(needs_namespace, library, tmp_path):
    """With a few hundred KB left, SQLite still makes its `-shm` and writers (prune, beets' writes) still
    write: a read command opened the cache immutable there (any disk under 1 MiB free counted as full),
    and a prune meanwhile made a healthy cache read as "damaged ... move it aside". It is read shared
    (mode=rw), as on any disk with room, and a prune between two reads is seen."""
    script = PRELUDE + """
from tagger.cache import Cache
lib = Path(sys.argv[2])
db = mnt / "c.db"
out = {"first": cli("scan", lib, "--db", db, "--no-write")}
fd = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT)
while shutil.disk_usage(mnt).free > 600 * 1024:
    os.write(fd, bytes(1 << 16))
os.close(fd)
reader = Cache.open_readonly(db)
out["flags"] = reader._source[1]
out["rows"] = sum(1 for _ in reader.rows("SELECT path FROM tracks"))
first = next(iter(reader.rows("SELECT path FROM tracks")))[0]
writer = Cache.open(db, create=False)
writer.forget([first])
writer.close()
out["after"] = sum(1 for _ in reader.rows("SELECT path FROM tracks"))
reader.close()
print(json.dumps(out))
"""
    out = in_namespace(script, tmp_path / "mnt", library)
    assert out["first"]["rc"] == 0, out["first"]["err"]
    assert out["flags"] == "mode=rw" and (out["rows"], out["after"]) == (2, 1), out


def test_a_cache_on_a_read_only_file_system_names_the_mount(needs_namespace, library, tmp_path):
    """A cache on a file system mounted read-only was blamed on its mode: `it is read-only (mode 0644,
    owner uid 0); make it writable (chmod u+w)`, which cannot help (chmod fails there too)."""
    script = PRELUDE + """
from tagger.cache import Cache
from tagger.errors import MoodtagError
lib = Path(sys.argv[2])
db = mnt / "c.db"
out = {"first": cli("scan", lib, "--db", db, "--no-write")}
remount("ro")
for name, args in (("scan", ["scan", lib]), ("untag", ["untag", lib]), ("prune", ["prune"]), ("query", ["query"])):
    out[name] = cli(*args, "--db", db)
try:
    Cache.open(db).close()
    out["open"] = "opened"
except MoodtagError as exc:
    out["open"] = str(exc)
print(json.dumps(out))
"""
    out = in_namespace(script, tmp_path / "mnt", library)
    assert out["first"]["rc"] == 0, out["first"]["err"]
    db = tmp_path / "mnt" / "c.db"
    for name in ("scan", "untag", "prune"):
        line = one_error_line(_proc(out[name]))
        assert line.startswith(f"error: {db}: cannot lock the cache database: its file system is mounted "
                               f"read-only") and "chmod" not in line, (name, line)
    assert out["open"].startswith(f"{db}: cannot write to the cache: its file system is mounted read-only")
    assert out["query"]["rc"] == 0 and len(out["query"]["out"].splitlines()) == 3


def test_a_write_that_cannot_be_undone_yet_leaves_its_file_and_row_alone(needs_namespace, audio_dir, tmp_path):
    """An interrupted tag write on a library mounted read-only since: recovery cannot undo it yet. The
    scan counted it in `interrupted writes undone`, then analysed the torn file, whose failure replaced
    the mood the cache held (the track left the playlists). Now the file is passed over with one line,
    its row kept, and the scan after the remount undoes the write and finds the file current."""
    script = PRELUDE + """
source, db, interrupted = Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
lib = mnt / "lib"
lib.mkdir()
track = lib / "t.flac"
shutil.copyfile(source, track)
out = {"first": cli("scan", lib, "--db", db, "--no-write")}
out["before"] = table(db)
data = track.read_bytes()
killed = subprocess.run([sys.executable, "-c", interrupted, str(track), f"{db}-undo", "[(0, 8192), (20480, 24576)]"])
out["torn"] = killed.returncode != 0 and track.read_bytes() != data
remount("ro")
out["ro"] = cli("scan", lib, "--db", db)
out["ro_rows"] = table(db)
remount("rw")
out["rw"] = cli("scan", lib, "--db", db)
out["rw_json"] = cli("scan", lib, "--db", db, "--json")
from tagger.tags import read_mood
out["mood"] = read_mood(track).mood   # whole again, and tagged by the scan after the remount
out["rw_rows"] = table(db)
print(json.dumps(out))
"""
    db = tmp_path / "c.db"
    out = in_namespace(script, tmp_path / "mnt", sorted(audio_dir.glob("*.flac"))[0], db, INTERRUPTED)
    assert out["first"]["rc"] == 0 and out["torn"], out["first"]["err"]
    track = tmp_path / "mnt" / "lib" / "t.flac"
    ro = out["ro"]
    assert ro["rc"] == 0, ro["err"]
    assert f"interrupted tag write: {track}: not recovered yet: Read-only file system" in ro["err"]
    assert f"{track}: not analysed until its interrupted tag write is undone" in ro["err"]
    assert "interrupted writes undone" not in ro["err"]
    assert out["ro_rows"] == out["before"] and out["before"][0][2] == "ok"
    rw = out["rw"]
    assert rw["rc"] == 0, rw["err"]
    assert f"recovered: {track}: restored as it was before an interrupted tag write" in rw["err"], rw["err"]
    assert any(line.split() == ["interrupted", "writes", "undone", "1"] for line in rw["err"].splitlines()), rw["err"]
    assert [json.loads(line)["action"] for line in out["rw_json"]["out"].splitlines()] == ["cached"]
    (path, mood, status, error, tag_state, *_), = out["rw_rows"]
    assert (path, mood, status, error) == tuple(out["before"][0][:4]) and tag_state == "tagged"
    assert out["mood"] == mood


def test_too_few_file_descriptors_for_the_workers_is_one_line(library, tmp_path):
    """A low open-file limit (`ulimit -n`) ended the scan with loky's OSError (or UnboundLocalError)
    traceback while it started its workers: now one line naming the limit; no file written."""
    before = snapshot(library)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    refused = {}
    for limit in (12, 14, 16, 18, 20, 21, 22):   # the last ones may let the scan through
        db = tmp_path / f"c{limit}.db"
        proc = subprocess.run([sys.executable, "-m", "tagger", "scan", str(library), "--db", str(db), "--jobs", "1"],
                              capture_output=True, text=True, timeout=300,
                              preexec_fn=lambda limit=limit: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard)))
        assert "Traceback" not in proc.stderr, (limit, proc.stderr)
        if proc.returncode == 0:
            break
        line = one_error_line(proc)
        if "worker processes" in line:
            refused[limit] = line
            assert snapshot(library) == before and (not db.exists() or rows(db) == {})
    assert refused, "no limit tried stopped the scan at its worker processes"
    for limit, line in refused.items():
        assert line == f"error: cannot start worker processes: too many open files (the limit is {limit}: ulimit -n)"


def _proc(result: dict) -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess([], result["rc"], result["out"], result["err"])
