"""The fault suite: each case here once stopped a scan with a traceback, lost or damaged something, or
misled the user (issue 11). Real CLI, real worker processes, real signals, real SQLite files."""
from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from tagger import synth
from tagger.tags import read_mood
from tests.conftest import run_cli
from tests.test_scan import ROOT, _without_root_powers, rows, snapshot

CORES = len(os.sched_getaffinity(0))


@pytest.fixture
def small_library(tmp_path, audio_dir) -> Path:
    """Eight real tracks (every lossless and lossy format we decode)."""
    lib = tmp_path / "lib"
    lib.mkdir()
    for i, src in enumerate(sorted(audio_dir.iterdir())):
        shutil.copy(src, lib / f"{i:02d}{''.join(src.suffixes)}")
    return lib


@pytest.fixture
def many_tracks(tmp_path, audio_dir) -> Path:
    """40 tracks: long enough a scan to interrupt."""
    lib = tmp_path / "many"
    lib.mkdir()
    sources = [p for p in sorted(audio_dir.iterdir()) if p.suffix in (".flac", ".wav", ".ogg")]
    for i in range(40):
        shutil.copy(sources[i % len(sources)], lib / f"{i:02d}{sources[i % len(sources)].suffix}")
    return lib


def workers_of(pid: int) -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process(pid).children(recursive=True)
                if "popen_loky" in " ".join(p.cmdline())]
    except psutil.Error:
        return []


def start(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tagger", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def one_error_line(proc) -> str:
    """The command failed with exactly one line on stderr, and no traceback."""
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


# --- dead workers --------------------------------------------------------------------------------

def test_a_worker_killed_mid_scan_loses_no_track(many_tracks, tmp_path):
    db = tmp_path / "c.db"
    proc = start("scan", many_tracks, "--db", db, "--jobs", "2", "--no-write")
    deadline = time.monotonic() + 120
    while not (db.exists() and _count(db) >= 3):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.02)
    victims = workers_of(proc.pid)
    assert victims
    victims[0].kill()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert {r["status"] for r in rows(db).values()} == {"ok"} and len(rows(db)) == 40


def test_a_worker_killed_while_the_parent_writes_costs_no_track(many_tracks, tmp_path):
    """A worker that dies while the parent is busy elsewhere (writing another track's row or tags):
    loky flags the pool broken before the parent's next submit, which raised TerminatedWorkerError
    out of the scan as a traceback. Here another program holds the cache's write lock, so the parent
    waits in its next row's write (as in a slow tag write or fsync) while the workers finish their
    tracks and go idle; then one is killed, as the OOM killer would. The scan goes on in a new pool."""
    db = tmp_path / "c.db"
    proc = start("scan", many_tracks, "--db", db, "--jobs", "2", "--no-write")
    workers = _wait_for_workers(proc, db)
    blocker = sqlite3.connect(db, timeout=30, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    held_since = time.monotonic()
    try:
        while not _idle(workers):  # the parent is held in its write: it takes no result, submits nothing
            assert proc.poll() is None and time.monotonic() - held_since < 15, "workers never idle"  # < busy timeout
        assert _count(db) < 40
        workers[0].kill()
        time.sleep(1.5)  # loky's manager thread sees the death and flags the pool broken meanwhile
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "Error" not in err, err
    assert {r["status"] for r in rows(db).values()} == {"ok"} and len(rows(db)) == 40


def _idle(workers: list[psutil.Process], for_s: float = 0.6) -> bool:
    """No worker used any CPU for `for_s` seconds: each finished what it held and waits for work."""
    def cpu():
        return [sum(w.cpu_times()[:2]) for w in workers]

    before = cpu()
    time.sleep(for_s)
    return cpu() == before


def slow_victim(folder: Path) -> Path:
    """A WAV slow enough to decode (96 kHz, 40 s) that a watcher sees a worker open it."""
    victim = folder / "victim.wav"
    rate = 96000
    synth.encode(np.zeros((rate * 40, 2), dtype=np.float32) + 0.1, victim, sample_rate=rate)
    return victim


def communicate_killing(proc, victim: Path, sig, workers) -> tuple[str, set[int]]:
    """Wait for `proc`, meanwhile sending `sig` to every process of `workers()` that opens `victim`
    (once each), as a decoder that crashes or hangs on that file would: (its stderr, the pids hit)."""
    hits = set()

    def killer():
        while proc.poll() is None:
            for worker in workers():
                try:
                    if worker.pid not in hits and any(f.path == str(victim) for f in worker.open_files()):
                        worker.send_signal(sig)
                        hits.add(worker.pid)
                except psutil.Error:
                    pass
            time.sleep(0.002)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    _, err = proc.communicate(timeout=300)
    thread.join()
    return err, hits


def _count(db: Path) -> int:
    try:
        with sqlite3.connect(db) as con:
            return con.execute("SELECT count(*) FROM tracks").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.parametrize("sig, cause", [(signal.SIGKILL, "the analysing process died (killed by SIGKILL"),
                                        (signal.SIGSTOP, "gave up after 4 s: its analysis never ended")])
def test_a_track_that_kills_or_hangs_every_worker_fails_alone(small_library, tmp_path, sig, cause):
    """A file whose decoding kills the process (here: the test kills any worker that opens it, as the
    OOM killer or a decoder's segfault would), or never ends (the test stops that worker, as a
    decoder stuck in a loop would), is one failure with the cause; every other track is done."""
    victim = slow_victim(small_library)
    db = tmp_path / "c.db"
    proc = start("scan", small_library, "--db", db, "--jobs", "2", "--no-write", "--timeout", "4")
    err, hits = communicate_killing(proc, victim, sig, lambda: workers_of(proc.pid))
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert len(hits) >= 2  # in the pool, then alone
    lines = [line for line in err.splitlines() if line.startswith(f"failed: {victim}: ")]
    assert len(lines) == 1 and cause in lines[0], err
    cached = rows(db)
    assert cached[str(victim)]["status"] == "failed" and cause in cached[str(victim)]["error"]
    assert all(r["status"] == "ok" for p, r in cached.items() if p != str(victim))
    assert len(cached) == 9
    assert not [p for p in hits if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def test_a_model_no_track_can_use_is_one_line(small_library, tmp_path):
    from tagger.weights import ClipPlan, read_spec, resolve_model, save_model
    from safetensors.numpy import load_file

    shipped = resolve_model(None)
    broken = tmp_path / "no-clips.safetensors"
    save_model(broken, read_spec(shipped).with_(clips=ClipPlan(count=0, placement="spread")), load_file(str(shipped)))
    before = snapshot(small_library)
    proc = run_cli("scan", small_library, "--db", tmp_path / "c.db", "--model", broken)
    assert "clips.count 0" in one_error_line(proc)
    assert snapshot(small_library) == before


# --- the cache ---------------------------------------------------------------------------------

@pytest.fixture
def scanned(small_library, tmp_path) -> Path:
    db = tmp_path / "db" / "c.db"
    db.parent.mkdir()
    run_cli("scan", small_library, "--db", db, check=True)
    return db


def test_a_damaged_cache_is_one_line_for_every_command(scanned, small_library, tmp_path):
    data = bytearray(scanned.read_bytes())
    page = 4096
    assert len(data) > 2 * page and not Path(str(scanned) + "-wal").exists()
    data[page:] = os.urandom(len(data) - page)  # every page but the header and the schema
    scanned.write_bytes(bytes(data))
    for args in (["scan", small_library], ["playlist", "calm"], ["playlists", "--out-dir", tmp_path / "pl"],
                 ["query"], ["stats"], ["query", "--sql", "SELECT count(*) FROM tracks"]):
        proc = run_cli(*args, "--db", scanned)
        assert "damaged" in one_error_line(proc) or "not an SQLite database" in proc.stderr, (args, proc.stderr)


def test_a_newer_or_foreign_database_is_refused_untouched(small_library, scanned, tmp_path):
    with sqlite3.connect(scanned) as con:
        con.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
                    "VALUES ('moodtag', 'm999_from_the_future', '2030-01-01')")
    con.close()
    for args in (["scan", small_library], ["query"], ["playlist", "calm"]):
        assert "made by a newer moodtag" in one_error_line(run_cli(*args, "--db", scanned))
    foreign = tmp_path / "notes.db"
    with sqlite3.connect(foreign) as con:
        con.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        con.execute("INSERT INTO notes (text) VALUES ('keep me')")
    con.close()
    before = foreign.read_bytes()
    library_before = snapshot(small_library)
    for args in (["scan", small_library], ["stats"]):
        assert "not a moodtag cache" in one_error_line(run_cli(*args, "--db", foreign))
    assert foreign.read_bytes() == before  # no tables added, not switched to WAL
    assert not Path(str(foreign) + "-wal").exists()
    assert snapshot(small_library) == library_before


def test_an_empty_file_is_no_cache_to_prune_or_read(tmp_path):
    """A zero-byte --db: every command that needs a cache refuses it alike, and leaves it empty."""
    empty = tmp_path / "empty.db"
    empty.touch()
    for args in (["prune"], ["prune", "-n"], ["stats"], ["query"], ["playlists", "--out-dir", tmp_path]):
        proc = run_cli(*args, "--db", empty)
        assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
        assert one_error_line(proc) == f"error: {empty}: not a moodtag cache (no `tracks` table)", args
        assert empty.read_bytes() == b"" and not Path(f"{empty}-wal").exists()


def test_a_refused_cache_gets_no_lock_file_beside_it(small_library, scanned, tmp_path):
    """scan, untag and prune took the cache's lock, making FILE.lock, before the file was looked at: another
    program's database, a newer moodtag's cache and (for prune) an empty file were refused in one line, but
    each was left with a FILE.lock beside it. Nothing is written beside a refused file now."""
    refused = tmp_path / "refused"
    refused.mkdir()
    foreign, newer, empty = refused / "notes.db", refused / "newer.db", refused / "empty.db"
    with sqlite3.connect(foreign) as con:
        con.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
    con.close()
    shutil.copyfile(scanned, newer)
    with sqlite3.connect(newer) as con:
        con.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
                    "VALUES ('moodtag', 'm999_from_the_future', '2030-01-01')")
    con.close()
    empty.touch()
    made = sorted(refused.iterdir())
    before = snapshot(small_library)
    cases = [(args, db) for args in (["scan", small_library], ["untag", small_library], ["prune"])
             for db in (foreign, newer)] + [(["prune"], empty)]
    for args, db in cases:
        proc = run_cli(*args, "--db", db)
        assert proc.returncode == 1 and one_error_line(proc).startswith(f"error: {db}: "), (args, db, proc.stderr)
        assert sorted(refused.iterdir()) == made, (args, db)
    assert snapshot(small_library) == before
    run_cli("scan", small_library, "--db", empty, "--no-write", check=True)  # an empty file a scan makes a cache
    assert Path(f"{empty}.lock").exists() and len(rows(empty)) == len(list(small_library.iterdir()))



def test_a_dry_run_reads_an_empty_file_as_no_cache_as_the_real_command_makes_one(small_library, tmp_path):
    """`scan -n` and `untag -n` refused a zero-byte --db as no moodtag cache, which `scan` and `untag`
    then took and made a cache of: a dry run first said the command would fail. Now they read it as
    an empty cache (everything to do) and leave it empty, and the real scan makes the cache."""
    empty = tmp_path / "empty.db"
    empty.touch()
    before = snapshot(small_library)
    for args in (["scan", small_library, "-n", "--json"], ["untag", small_library, "-n"]):
        proc = run_cli(*args, "--db", empty)
        assert proc.returncode == 0 and proc.stderr == "", (args, proc.stderr)
        assert empty.read_bytes() == b"" and not Path(f"{empty}-wal").exists()
    planned = run_cli("scan", small_library, "-n", "--json", "--db", empty).stdout.splitlines()
    assert {json.loads(line)["action"] for line in planned} == {"analysed"}
    assert snapshot(small_library) == before
    run_cli("scan", small_library, "--db", empty, "--no-write", check=True)
    assert sqlite3.connect(empty).execute("SELECT count(*) FROM tracks").fetchone()[0] == len(planned)


@pytest.mark.skipif(ROOT and not shutil.which("setpriv"), reason="needs setpriv to drop root's powers")
def test_a_read_only_cache_stops_the_scan_before_any_file_is_touched(small_library, tmp_path):
    db = tmp_path / "c.db"
    run_cli("scan", small_library, "--db", db, "--no-write", check=True)
    for p in small_library.iterdir():  # changed since: every file would be analysed and tagged
        os.utime(p, ns=(time.time_ns(), time.time_ns() + 10**9))
    before = snapshot(small_library)
    db.chmod(0o444)
    proc = subprocess.run(_without_root_powers([sys.executable, "-m", "tagger", "scan", str(small_library),
                                                "--db", str(db)]), capture_output=True, text=True, timeout=300)
    assert "read-only" in one_error_line(proc)
    assert snapshot(small_library) == before


def _unshare_works() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-rm", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs unshare -rm to mount a small tmpfs")
def test_a_full_disk_stops_the_scan_before_any_file_is_touched(small_library, tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    before = snapshot(small_library)
    script = (f"mount -t tmpfs -o size=512k tmpfs {mount} && "
              f"head -c 2000000 /dev/zero > {mount}/filler 2>/dev/null; "
              f"exec {sys.executable} -m tagger scan {small_library} --db {mount}/c.db")
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=300)
    line = one_error_line(proc)
    assert "disk full" in line or "No space" in line, line
    assert snapshot(small_library) == before


@pytest.mark.skipif(ROOT and not shutil.which("setpriv"), reason="needs setpriv to drop root's powers")
@pytest.mark.parametrize("crashed_writer", [False, True])
def test_read_commands_work_on_a_cache_in_a_read_only_folder(scanned, tmp_path, crashed_writer):
    if crashed_writer:  # a writer killed before its checkpoint: committed rows wait in the -wal file
        code = ("import sqlite3, os; con = sqlite3.connect(%r); con.execute('PRAGMA journal_mode=WAL'); "
                "con.execute(\"UPDATE tracks SET artist = 'From The WAL'\"); con.commit(); os._exit(0)") % str(scanned)
        subprocess.run([sys.executable, "-c", code], check=True)
        assert Path(str(scanned) + "-wal").stat().st_size > 0
        Path(str(scanned) + "-shm").unlink()  # as after a reboot or a copy: SQLite must rebuild it
    scanned.parent.chmod(0o555)
    try:
        for args in (["query", "--json"], ["stats"], ["playlist", "calm"], ["playlists", "--out-dir", str(tmp_path / "pl")]):
            proc = subprocess.run(_without_root_powers([sys.executable, "-m", "tagger", *args, "--db", str(scanned)]),
                                  capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0, (args, proc.stderr)
            if args[0] == "query" and crashed_writer:
                assert all(json.loads(line)["artist"] == "From The WAL" for line in proc.stdout.splitlines())
    finally:
        scanned.parent.chmod(0o755)


def test_a_symlink_to_the_cache_shares_its_lock(many_tracks, tmp_path):
    db = tmp_path / "c.db"
    link = tmp_path / "link.db"
    link.symlink_to(db)
    a = start("scan", many_tracks, "--db", db, "--jobs", "1")
    b = start("scan", many_tracks, "--db", link, "--jobs", "1")
    out_a, out_b = a.communicate(timeout=300), b.communicate(timeout=300)
    assert a.returncode == 0 and b.returncode == 0, (out_a, out_b)
    assert "waiting for another moodtag command that writes" in out_a[1] + out_b[1]
    cached = rows(db)
    assert len(cached) == 40
    for p in many_tracks.iterdir():  # no row is stale: each holds the file as it is now, tagged
        row = cached[str(p)]
        assert (row["size"], row["mtime_ns"], row["tagged"]) == (p.stat().st_size, p.stat().st_mtime_ns, 1)
        assert read_mood(p).mood == row["mood"]


def test_dev_null_is_no_cache_and_leaves_nothing_behind(small_library):
    if os.path.exists("/dev/null.lock") or os.path.exists("/dev/null-journal"):
        pytest.skip("left by something else")
    before = snapshot(small_library)
    assert "not a regular file" in one_error_line(run_cli("scan", small_library, "--db", "/dev/null"))
    assert not os.path.exists("/dev/null.lock") and not os.path.exists("/dev/null-journal")
    assert snapshot(small_library) == before


def test_two_names_that_escape_alike_keep_two_rows(tmp_path, audio_dir):
    lib = tmp_path / "lib"
    lib.mkdir()
    src = next(audio_dir.glob("*.ogg"))
    raw = os.fsencode(str(lib)) + b"/a\xff.ogg"
    shutil.copy(src, raw)
    shutil.copy(src, lib / "a\\xff.ogg")  # a name with a real backslash, x, f, f
    db = tmp_path / "c.db"
    run_cli("scan", lib, "--db", db, "--no-write", check=True)
    cached = rows(db)
    assert len(cached) == 2
    assert {r["path_bytes"] for r in cached.values()} == {raw, os.fsencode(str(lib / "a\\xff.ogg"))}
    proc = run_cli("scan", lib, "--db", db, "--json", "--no-write", check=True)
    assert [json.loads(line)["action"] for line in proc.stdout.splitlines()] == ["cached", "cached"]


# --- arguments and messages ---------------------------------------------------------------------

@pytest.mark.parametrize("args", [["scan", ""], ["untag", ""], ["classify", ""], ["prune", ""],
                                  ["playlist", "calm", ""], ["scan", ".", "--db", ""]])
def test_an_empty_path_is_an_error_not_the_current_folder(tmp_path, args):
    before = snapshot(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "tagger", *args], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "empty path" in proc.stderr, proc.stderr
    assert snapshot(tmp_path) == before


def test_jobs_are_capped_at_the_cores(many_tracks, tmp_path):
    proc = start("scan", many_tracks, "--db", tmp_path / "c.db", "--jobs", "1000", "--no-write")
    most = 0
    while proc.poll() is None:
        most = max(most, len(workers_of(proc.pid)))
        time.sleep(0.05)
    _, err = proc.communicate()
    assert proc.returncode == 0, err
    assert f"--jobs 1000 capped at {CORES}" in err
    assert 1 <= most <= CORES


def test_names_that_would_break_a_line_or_drive_the_terminal_are_escaped(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    name = "bad\nname \x1b[31mred\x1b[0m.mp3"
    (lib / name).write_bytes(b"not audio at all" * 100)
    proc = run_cli("scan", lib, "--db", tmp_path / "c.db")
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("failed: ")]
    assert lines == [f"failed: {lib}/bad\\nname \\x1b[31mred\\x1b[0m.mp3: " + lines[0].split(".mp3: ", 1)[1]]


def test_untag_and_scan_refuse_fifos_and_devices_at_once(tmp_path, audio_dir):
    lib = tmp_path / "lib"
    lib.mkdir()
    os.mkfifo(lib / "x.mp3")
    (lib / "zero.mp3").symlink_to("/dev/zero")
    shutil.copy(next(audio_dir.glob("*.flac")), lib / "ok.flac")
    for args in (["scan", lib], ["untag", lib], ["untag", lib / "x.mp3", lib / "zero.mp3"]):  # untag: a --db there
        proc = run_cli(*args, "--db", tmp_path / "c.db", timeout=60)
        assert proc.returncode == 0, (args, proc.stderr)
        assert f"failed: {lib / 'x.mp3'}: not a regular file (a FIFO)" in proc.stderr
        assert f"failed: {lib / 'zero.mp3'}: not a regular file (a character device)" in proc.stderr


# --- signals -------------------------------------------------------------------------------------

def _scan_in_its_own_group(lib: Path, db: Path, *extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tagger", "scan", str(lib), "--db", str(db), "--jobs", "2", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for_workers(proc: subprocess.Popen, db: Path) -> list[psutil.Process]:
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, "scan ended too soon"
        workers = workers_of(proc.pid)
        if len(workers) == 2 and db.exists() and _count(db) >= 2:
            return workers
        time.sleep(0.02)


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGHUP, 129), (signal.SIGTERM, 143)])
def test_ctrl_c_twice_hangup_and_term_stop_cleanly(many_tracks, tmp_path, sig, status):
    """As a terminal sends them: to the whole process group, workers included (Ctrl-C twice)."""
    db = tmp_path / "c.db"
    proc = _scan_in_its_own_group(many_tracks, db)
    workers = _wait_for_workers(proc, db)
    os.killpg(proc.pid, sig)
    if sig == signal.SIGINT:
        time.sleep(0.05)
        os.killpg(proc.pid, sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == status, err
    assert "Traceback" not in err
    time.sleep(1.5)
    assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    for p in many_tracks.iterdir():
        row = rows(db).get(str(p))
        if row and row["tagged"]:
            assert read_mood(p).mood == row["mood"]


@pytest.mark.parametrize("idle", [False, True])
def test_workers_do_not_outlive_a_killed_scan(many_tracks, tmp_path, idle):
    db = tmp_path / "c.db"
    proc = _scan_in_its_own_group(many_tracks, db)
    workers = _wait_for_workers(proc, db)
    if idle:  # the parent busy elsewhere (a long tag write): the workers wait for work
        proc.send_signal(signal.SIGSTOP)
        time.sleep(2)
    proc.kill()
    proc.communicate()
    deadline = time.monotonic() + 10
    while [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]:
        assert time.monotonic() < deadline, "workers outlived the scan"
        time.sleep(0.1)


# --- query --sql ---------------------------------------------------------------------------------

ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT {} FROM c"


@pytest.mark.parametrize("select, output", [("x", "--json"), ("x", "--csv"), ("max(x)", "--json")])
def test_an_endless_query_stays_small_and_stops_at_ctrl_c(scanned, select, output):
    proc = subprocess.Popen([sys.executable, "-m", "tagger", "query", "--db", str(scanned), output,
                             "--sql", ENDLESS.format(select)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    time.sleep(4)
    assert proc.poll() is None
    rss = psutil.Process(proc.pid).memory_info().rss
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert rss < 300 * 2**20, f"{rss / 2**20:.0f} MB"


# --- a scan killed while it writes tags into large files --------------------------------------------

from tests.test_safewrite import FORMATS as BIG_FORMATS, add_tags, audio_payload, big_sources, small_sources  # noqa: E402,F401


def test_a_scan_killed_mid_write_damages_no_file(tmp_path, big_sources):
    """Large files of every format whose tags have no padding (a tag write must move the audio):
    the scan is SIGKILLed the moment it starts writing one, again and again; every later scan
    recovers and goes on. In the end each file holds its original audio and other tags, and the mood."""
    lib = tmp_path / "lib"
    lib.mkdir()
    originals = {}
    for fmt in BIG_FORMATS:
        path = lib / f"big.{fmt}"
        shutil.copy(big_sources[fmt], path)
        add_tags(path, padding=0)
        originals[path] = (fmt, audio_payload(path, fmt))
    db = tmp_path / "c.db"
    kills = 0
    for round_ in range(1, 12):  # round r kills the scan in its r-th copy write
        stale = {p.name for p in lib.iterdir() if p.name.startswith(".")}  # the last kill's, for recovery
        proc = subprocess.Popen([sys.executable, "-m", "tagger", "scan", str(lib), "--db", str(db), "--jobs", "1"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        seen: set[str] = set()
        while proc.poll() is None:
            seen |= {p.name for p in lib.iterdir() if ".moodtag-" in p.name and p.name not in stale}
            if len(seen) >= round_:
                proc.kill()
                kills += 1
                break
            time.sleep(0.001)
        _, err = proc.communicate(timeout=300)
        for path, (fmt, payload) in originals.items():  # after every kill, before any recovery
            if not any(p.name.startswith(f".{path.name}.") for p in lib.iterdir()):
                assert audio_payload(path, fmt) == payload, path
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, err
    assert proc.returncode == 0 and kills >= 3, (kills, err)
    assert not [p for p in lib.iterdir() if p.name.startswith(".")]  # no stale copy left
    for path, (fmt, payload) in originals.items():
        assert audio_payload(path, fmt) == payload, path
        assert read_mood(path) is not None, path
        from tagger.tags import read_info

        assert (read_info(path).artist, read_info(path).title) == ("The Artist", "A Title"), path


def test_ctrl_c_as_the_first_workers_start_prints_no_traceback(small_library, tmp_path):
    """The first spawn starts the resource trackers, which unblocked SIGINT before the worker was
    spawned: a worker still importing then died of Ctrl-C with a KeyboardInterrupt traceback. Sent to
    the whole group as a terminal does, as soon as the first worker exists, a few times."""
    for attempt in range(4):
        db = tmp_path / f"c{attempt}.db"
        proc = _scan_in_its_own_group(small_library, db, "--force")
        deadline = time.monotonic() + 60
        while not workers_of(proc.pid):
            assert proc.poll() is None and time.monotonic() < deadline, "no worker started"
            time.sleep(0.005)
        time.sleep(0.05 * attempt)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
