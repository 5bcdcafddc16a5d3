"""Long listings and several playlists made by forked processes side by side (tagger.forked): the same bytes
as one process writes, and the guarantees of the module itself (results in order, errors in their turn,
children never left behind).

Speed is measured by benchmarks/large_library.py, not here."""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tagger.cache import Cache
from tagger.forked import processes_available, run_parts
from tagger.query import TrackFilter, split_by_path
from tests.test_query import _reference_outputs, awkward_db  # noqa: F401 -- a fixture, used below

TWO_CORES = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2 if hasattr(os, "sched_getaffinity") else True,
                               reason="side by side needs two cores (Linux)")


# -- the module -------------------------------------------------------------------------------------
# run_parts forks only in a process with no other thread: these run in a fresh Python (this test process
# may hold threads that earlier tests left, Dask's among them), as the CLI does.

SCENARIOS = """
import json, os, signal, sys, time
from pathlib import Path
from tagger.errors import MoodtagError
from tagger.forked import run_parts

def whose(i):
    return lambda: (i, os.getpid())

def fails(exc):
    def part():
        raise exc
    return part

class Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("not picklable")

def in_a_child_only(action):
    def part():
        if os.getpid() == PARENT:
            raise AssertionError("a part meant for a child ran in the parent")
        action()
    return part

def write_after(path, seconds):
    def part():
        Path(f"{path}.pid").write_text(str(os.getpid()))
        time.sleep(seconds)
        Path(path).write_text("done")
    return part

def fails_once_started(path):
    def part():
        for _ in range(1000):  # until the child has started (its pid written)
            if Path(f"{path}.pid").exists():
                break
            time.sleep(0.01)
        raise ValueError("here")
    return part

def outcome(results):
    out = []
    try:
        for result in results:
            out.append(["ok", result])
    except BaseException as exc:
        out.append([type(exc).__name__, str(exc)])
    return out

PARENT = os.getpid()
scenario, folder = sys.argv[1], sys.argv[2]
if scenario == "order":
    report = {"parent": PARENT, "results": list(run_parts([whose(i) for i in range(4)]))}
elif scenario == "error":
    report = outcome(run_parts([lambda: "first", fails(MoodtagError("x.mp3: cannot read the cache")), lambda: "third"]))
elif scenario == "unpicklable":
    report = outcome(run_parts([lambda: 1, in_a_child_only(lambda: (_ for _ in ()).throw(Unpicklable("odd")))]))
elif scenario == "killed":
    report = outcome(run_parts([lambda: 1, in_a_child_only(lambda: os.kill(os.getpid(), signal.SIGKILL))]))
elif scenario == "refused":  # the system gives one process, then refuses the next: those parts run here
    real_fork, forks = os.fork, []
    def fork():
        forks.append(1)
        if len(forks) > 1:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        return real_fork()
    os.fork = fork
    report = {"parent": PARENT, "results": list(run_parts([whose(i) for i in range(4)]))}
elif scenario in ("wait", "end"):
    path = os.path.join(folder, scenario)
    report = outcome(run_parts([fails_once_started(path), write_after(path, 0.3 if scenario == "wait" else 30)],
                               end_children_on_error=scenario == "end"))
    pid = int(Path(f"{path}.pid").read_text())
    try:
        os.waitpid(pid, os.WNOHANG)
        report.append("not reaped")
    except ChildProcessError:
        report.append("reaped")
    report.append(Path(path).exists())
print(json.dumps(report))
"""


def _scenario(name: str, folder: Path):
    proc = subprocess.run([sys.executable, "-c", SCENARIOS, name, str(folder)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_parts_run_in_processes_of_their_own_and_come_back_in_order(tmp_path):
    report = _scenario("order", tmp_path)
    results = report["results"]
    assert [i for i, _ in results] == [0, 1, 2, 3]
    assert results[0][1] == report["parent"]
    assert len({pid for _, pid in results}) == 4


def test_parts_no_process_could_be_forked_for_run_here_after_the_first(tmp_path):
    report = _scenario("refused", tmp_path)
    results = report["results"]
    assert [i for i, _ in results] == [0, 1, 2, 3]
    assert [pid == report["parent"] for _, pid in results] == [True, False, True, True]


def _whose(i: int):
    return lambda: (i, os.getpid())


def test_with_another_thread_running_every_part_runs_here_in_turn():
    done = threading.Event()
    thread = threading.Thread(target=done.wait)
    thread.start()
    try:
        assert processes_available() == 1
        assert [pid for _, pid in run_parts([_whose(i) for i in range(3)])] == [os.getpid()] * 3
    finally:
        done.set()
        thread.join()


def test_an_error_in_a_child_is_raised_in_its_turn_after_the_results_before_it(tmp_path):
    assert _scenario("error", tmp_path) == [["ok", "first"], ["MoodtagError", "x.mp3: cannot read the cache"]]


def test_an_error_that_cannot_be_handed_back_comes_back_as_its_traceback(tmp_path):
    (first, (kind, message)) = _scenario("unpicklable", tmp_path)
    assert first == ["ok", 1] and kind == "MoodtagError"
    assert "failed in its own process" in message and "Unpicklable: odd" in message


def test_a_child_killed_before_its_result_is_an_error(tmp_path):
    assert _scenario("killed", tmp_path) == [
        ["ok", 1], ["MoodtagError", "a part of this job ended in its own process without a result (killed by signal 9)"]]


def test_when_this_process_fails_its_children_finish_or_with_end_children_on_error_are_ended(tmp_path):
    # waited for (a child may be writing a file of its own), then reaped
    assert _scenario("wait", tmp_path) == [["ValueError", "here"], "reaped", True]
    # ended at once, then reaped
    assert _scenario("end", tmp_path) == [["ValueError", "here"], "reaped", False]


# -- a big cache -------------------------------------------------------------------------------------

COPIES = 1400  # 15 awkward rows each: 21,000 rows, over the commands' SPLIT_MIN_ROWS (20,000)


@pytest.fixture(scope="module")
def big_db(awkward_db, tmp_path_factory) -> Path:
    """awkward_db's 15 rows (control characters, NULs, bytes, numbers, odd scores and flags) over and over,
    each copy in a folder of its own, every second copy's moods the other way round, and one path stored
    as bytes (SQLite orders it after every text): the runs of a split listing meet awkward rows
    everywhere. Every file exists, but those of every seventh copy."""
    from tagger.commands.playlist import SPLIT_MIN_ROWS as PLAYLIST_MIN
    from tagger.commands.query import SPLIT_MIN_ROWS as QUERY_MIN

    assert 15 * COPIES > max(PLAYLIST_MIN, QUERY_MIN)
    db = tmp_path_factory.mktemp("big") / "c.db"
    shutil.copyfile(awkward_db, db)
    with sqlite3.connect(db) as conn:
        columns = [name for (_, name, *_) in conn.execute("PRAGMA table_info(tracks)")]
        others = ", ".join(c for c in columns if c not in ("path", "mood"))
        (music,) = conn.execute("SELECT rtrim(path, replace(path, '/', '')) FROM tracks LIMIT 1").fetchone()
        for k in range(1, COPIES):
            conn.execute(f"INSERT INTO tracks (path, mood, {others}) SELECT replace(path, ?, ?), "
                         f"iif(? % 2, iif(mood = 'calm', 'exciting', 'calm'), mood), {others} FROM tracks "
                         f"WHERE path LIKE ? || '%' AND path NOT LIKE ? || '%/%'",
                         [music, f"{music}{k:04d}/", k, music, music])
        conn.execute("UPDATE tracks SET path = CAST(path AS BLOB) WHERE path = (SELECT max(path) FROM tracks)")
        paths = [p for (p,) in conn.execute("SELECT path FROM tracks WHERE typeof(path) = 'text'")]
    assert len(paths) == 15 * COPIES - 1
    for path in paths:
        copy = path[len(music):].split("/")[0] if "/" in path[len(music):] else "0"
        if int(copy) % 7 or copy == "0":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_bytes(b"x")
    return db


def test_the_runs_of_a_split_listing_are_the_listing_in_order(big_db):
    with Cache.open_readonly(big_db) as cache:
        for desc in (False, True):
            whole = TrackFilter(desc=desc)
            expected = [p for (p,) in cache.rows(f"SELECT path FROM tracks ORDER BY path {'DESC' if desc else ''}")]
            for parts in (2, 3, 4):
                runs = split_by_path(cache, whole, parts)
                assert len(runs) == parts
                listed = [p for run in runs for (p,) in _paths(cache, run)]
                assert listed == expected
            assert split_by_path(cache, whole, 4, min_rows=len(expected) + 1) == [whole]
        for kept in (TrackFilter(order="confidence"), TrackFilter(limit=5)):
            assert split_by_path(cache, kept, 4) == [kept]


def _paths(cache, track_filter):
    from tagger.query import select_tracks

    return select_tracks(cache, track_filter, "path")


SPY = """import atexit, os, sys
import tagger.forked as forked
if sys.argv[1] == "one":
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
forks, real = [], forked._fork
def counted(part):
    forks.append(part)
    return real(part)
forked._fork = counted
atexit.register(lambda: sys.stderr.write(f"forks: {len(forks)}\\n"))
sys.argv[:2] = ["moodtag"]
from tagger.cli import main
main()
"""


def _moodtag(cores: str, *args, cwd: Path) -> tuple[subprocess.CompletedProcess, int]:
    """The real CLI on one core or on all, and how many processes it forked."""
    proc = subprocess.run([sys.executable, "-c", SPY, cores, *map(str, args)], capture_output=True, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    *err, forks = proc.stderr.decode("utf-8", "replace").splitlines()
    assert forks.startswith("forks: "), proc.stderr
    proc.stderr = "\n".join(err).encode()
    return proc, int(forks.split()[1])


@TWO_CORES
@pytest.mark.parametrize("options", [["--csv"], ["--json"], ["--json", "--desc"], ["--csv", "--mood", "calm"],
                                     ["--json", "--path-glob", "*/139[0-4]/14 *"]])  # a few lines (2 KB) from the last run
def test_a_long_csv_or_json_listing_is_the_same_bytes_from_side_by_side_processes(big_db, tmp_path, options):
    one, forks_one = _moodtag("one", "query", "--db", big_db, *options, cwd=tmp_path)
    many, forks_many = _moodtag("all", "query", "--db", big_db, *options, cwd=tmp_path)
    assert (forks_one, forks_many) == (0, min(len(os.sched_getaffinity(0)), 4) - 1)
    assert one.returncode == many.returncode == 0, many.stderr
    assert many.stdout == one.stdout and many.stderr == one.stderr
    if options == ["--csv"]:  # and as the rows say, cell by cell
        assert many.stdout == _reference_outputs(big_db)["csv"]
    if "--path-glob" in options:  # 5 rows
        assert many.stdout.count(b"\n") == 5
    else:
        assert many.stdout.count(b"\n") >= 15 * COPIES // 2  # half the rows are calm


@TWO_CORES
@pytest.mark.parametrize("options", [[], ["--format", "xspf"], ["--order", "shuffle", "--seed", "3"],
                                     ["--order", "path", "--absolute"]])
def test_playlists_of_several_moods_side_by_side_are_the_same_files_and_messages(big_db, tmp_path, options):
    """The playlists, the lines of what was written and the warnings (files gone, names a format cannot
    hold), in the same order. (Without the row whose key is bytes: no scan writes one, and playlists take
    a key for a path.)"""
    db = tmp_path / "c.db"
    shutil.copyfile(big_db, db)
    with sqlite3.connect(db) as conn:
        assert conn.execute("DELETE FROM tracks WHERE typeof(path) = 'blob'").rowcount == 1
    out = {cores: tmp_path / cores for cores in ("one", "all")}
    runs = {cores: _moodtag(cores, "playlists", "--any-model", "--db", db, "--out-dir", out[cores], *options,
                            cwd=tmp_path) for cores in out}
    (one, forks_one), (many, forks_many) = runs["one"], runs["all"]
    assert (forks_one, forks_many) == (0, min(len(os.sched_getaffinity(0)), 4) - 1)
    assert one.returncode == many.returncode == 0, many.stderr
    assert many.stdout.replace(b"/all/", b"/one/") == one.stdout
    assert many.stderr == one.stderr and b"no longer on disk left out" in many.stderr
    assert sorted(p.name for p in out["one"].iterdir()) == sorted(p.name for p in out["all"].iterdir()) \
        == sorted(f"{mood}.{'xspf' if 'xspf' in options else 'm3u8'}" for mood in ("calm", "exciting"))
    for playlist in out["one"].iterdir():
        assert (out["all"] / playlist.name).read_bytes() == playlist.read_bytes(), playlist.name
        assert playlist.stat().st_size > 50_000


def test_a_cache_closed_for_a_fork_is_opened_again_after(big_db):
    with Cache.open_readonly(big_db) as cache:
        before = cache.one("SELECT count(*) FROM tracks")
        with cache.released():
            with cache.reader() as mine:
                assert mine.one("SELECT count(*) FROM tracks") == before
        assert cache.one("SELECT count(*) FROM tracks") == before
        with pytest.raises(sqlite3.OperationalError):
            cache.conn.execute("DELETE FROM tracks")  # still read-only


@TWO_CORES
@pytest.mark.parametrize("options", [[], ["--order", "shuffle", "--seed", "8"]])
def test_one_long_playlist_side_by_side_is_the_same_file_and_messages(big_db, tmp_path, options):
    """`playlist MOOD --output FILE` of more tracks than SPLIT_MIN_ROWS: its runs made side by side."""
    db = tmp_path / "c.db"
    shutil.copyfile(big_db, db)
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM tracks WHERE typeof(path) = 'blob'")
        conn.execute("UPDATE tracks SET mood = 'exciting'")
    runs = {cores: _moodtag(cores, "playlist", "exciting", "--any-model", "--db", db, "--output",
                            tmp_path / f"{cores}.m3u8", *options, cwd=tmp_path) for cores in ("one", "all")}
    (one, forks_one), (many, forks_many) = runs["one"], runs["all"]
    assert (forks_one, forks_many) == (0, min(len(os.sched_getaffinity(0)), 4) - 1)
    assert one.returncode == many.returncode == 0, many.stderr
    assert many.stdout.replace(b"all.m3u8", b"one.m3u8") == one.stdout and many.stderr == one.stderr
    assert (tmp_path / "all.m3u8").read_bytes() == (tmp_path / "one.m3u8").read_bytes()
    assert (tmp_path / "one.m3u8").read_bytes().count(b"#EXTINF") > 10_000


CTRL_C_IN_SQL = """import os, signal, sys
import tagger.playlists as playlists
if sys.argv[1] == "one":
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
real = playlists._places
def places(keys):
    place, calls = real(keys), []
    def counted(rowid):  # SQLite calls it for each row: Ctrl-C (the whole process group) at the 500th call
        calls.append(rowid)
        if len(calls) == 500:
            os.killpg(os.getpgrp(), signal.SIGINT)
        return place(rowid)
    return counted
playlists._places = places
sys.argv[:2] = ["moodtag"]
from tagger.cli import main
main()
"""


@pytest.mark.parametrize("cores", ["one", "all"])
def test_ctrl_c_inside_sqlites_call_of_a_python_function_is_an_interruption_not_an_error(big_db, tmp_path, cores):
    """SQLite reports a KeyboardInterrupt raised in a function it calls as "user-defined function raised
    exception": the command still ends as interrupted (130), with no error line and no playlist, on one
    process or several."""
    db = tmp_path / "c.db"
    shutil.copyfile(big_db, db)
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM tracks WHERE typeof(path) = 'blob'")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", CTRL_C_IN_SQL, cores, "playlists", "--any-model", "--db", str(db),
                           "--out-dir", str(out), "--order", "shuffle"], capture_output=True, text=True, timeout=120,
                          start_new_session=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert proc.returncode == 130, proc.stderr
    assert "error" not in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists() or list(out.iterdir()) == []


@TWO_CORES
def test_a_shuffle_without_a_seed_side_by_side_holds_every_track_once(big_db, tmp_path):
    """Without --seed each run draws the permutation of one seed drawn before the processes start: the
    playlists hold the same tracks as one process's, each once, in another order. (Three quarters
    exciting: that playlist's places are shared between the processes.)"""
    db = tmp_path / "c.db"
    shutil.copyfile(big_db, db)
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM tracks WHERE typeof(path) = 'blob'")
        conn.execute("UPDATE tracks SET mood = iif(rowid % 4, 'exciting', 'calm')")
    out = {cores: tmp_path / cores for cores in ("one", "all")}
    for cores in out:
        proc, forks = _moodtag(cores, "playlists", "--any-model", "--db", db, "--out-dir", out[cores], "--order", "shuffle",
                               cwd=tmp_path)
        assert proc.returncode == 0 and forks == (0 if cores == "one" else min(len(os.sched_getaffinity(0)), 4) - 1)
    for mood in ("calm", "exciting"):
        one, many = ((out[cores] / f"{mood}.m3u8").read_text().splitlines() for cores in ("one", "all"))
        entries = [list(zip(lines[2::2], lines[3::2])) for lines in (one, many)]  # (#EXTINF, path) pairs after the mark
        assert sorted(entries[0]) == sorted(entries[1]) and len(set(entries[1])) == len(entries[1]) > 2000
        assert entries[0] != entries[1]
