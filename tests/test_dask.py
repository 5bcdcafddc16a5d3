"""`moodtag scan --dask-scheduler`: the real CLI against a real Dask LocalCluster (two worker
processes on loopback), compared with a local scan of a copy of the same library."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import dask
import psutil
import pytest
from distributed import Client, LocalCluster

from tagger.tags import read_mood
from tagger.weights import file_sha256, resolve_model
from tests.conftest import on_a_terminal, run_cli
from tests.test_faults import _count, communicate_killing, one_error_line, slow_victim, start
from tests.test_scan import rows


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes. Each runs exactly one task at a time (worker-saturation 1.0), so a worker
    that dies takes only the track it analyses; a track survives one death of its worker
    (allowed-failures 1), and fails on the second."""
    settings = {"distributed.scheduler.worker-saturation": 1.0, "distributed.scheduler.allowed-failures": 1}
    with dask.config.set(settings), LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                                 host="127.0.0.1", dashboard_address=":0") as local:
        yield local


def _two_workers(client) -> None:
    """The module's LocalCluster with both its workers running. Under heavy load (a CI machine shared with
    other jobs) a nanny can give up restarting a worker that an earlier test killed, and stays closed,
    counted in the cluster's spec: scaling down and up again replaces it."""
    from distributed.exceptions import WorkerStartTimeoutError

    try:
        client.wait_for_workers(2, timeout=60)
    except (WorkerStartTimeoutError, TimeoutError):
        client.cluster.scale(1)
        client.cluster.scale(2)
        client.wait_for_workers(2, timeout=120)


@pytest.fixture(scope="module")
def client(cluster):
    with Client(cluster, set_as_default=False) as c:
        yield c


@pytest.fixture(scope="module")
def scanned(cluster, audio_dir, tmp_path_factory):
    """Every format and one corrupt file, scanned on the cluster (A) and locally on a copy (B)."""
    base = tmp_path_factory.mktemp("dask")
    lib, copy = base / "on-cluster", base / "local"
    lib.mkdir()
    for src in sorted(audio_dir.iterdir()):
        shutil.copy(src, lib / src.name)
    (lib / "broken.flac").write_bytes(b"fLaC" + os.urandom(4000))
    shutil.copytree(lib, copy)
    on_cluster = run_cli("scan", lib, "--db", base / "A.db", "--dask-scheduler", cluster.scheduler_address)
    local = run_cli("scan", copy, "--db", base / "B.db")
    return lib, base / "A.db", on_cluster, base / "B.db", local


def results(db: Path) -> dict[str, tuple]:
    """File name -> (mood, confidence, model, status) of every cached track."""
    return {Path(path).name: (r["mood"], r["confidence"], r["model_name"], r["model_version"], r["status"])
            for path, r in rows(db).items()}


def test_a_cluster_scan_caches_and_tags_what_a_local_scan_does(scanned):
    lib, a_db, on_cluster, b_db, local = scanned
    assert on_cluster.returncode == 0, on_cluster.stderr
    assert local.returncode == 0, local.stderr
    assert "Traceback" not in on_cluster.stderr
    on_cluster_rows = results(a_db)
    assert on_cluster_rows == results(b_db)
    assert len(on_cluster_rows) == 9 and sum(r[4] == "ok" for r in on_cluster_rows.values()) == 8
    for path, row in rows(a_db).items():  # the parent wrote the tags, and recorded the files afterwards
        if row["status"] == "ok":
            assert read_mood(Path(path)).mood == row["mood"] and row["tagged"] == 1
            assert os.stat(path).st_mtime_ns == row["mtime_ns"]


def test_a_corrupt_file_fails_with_one_line_and_the_rest_go_through(scanned):
    lib, a_db, on_cluster, _, _ = scanned
    failures = [line for line in on_cluster.stderr.splitlines() if line.startswith("failed: ")]
    assert len(failures) == 1 and failures[0].startswith(f"failed: {lib / 'broken.flac'}: "), on_cluster.stderr
    broken = rows(a_db)[str(lib / "broken.flac")]
    assert broken["status"] == "failed" and broken["error"] in failures[0]


def test_each_worker_loads_the_model_once_by_its_hash(scanned, client):
    """tagger.worker keeps one loaded model per (file, device) in each worker process; the file the
    plugin wrote is named by the model's sha256."""
    sha = file_sha256(resolve_model(None))
    loaded = client.run(lambda: [key for key in sys.modules["tagger.worker"]._WORKER_MODELS]
                        if "tagger.worker" in sys.modules else [])
    default = {worker: [k for k in keys if Path(k[0]).name.startswith(sha)] for worker, keys in loaded.items()}
    assert any(default.values()) and all(len(keys) <= 1 for keys in default.values()), loaded


def test_the_cnn_on_the_cluster_scores_as_locally(audio_dir, cluster, tmp_path):
    """The CNN's 3.5 MB model file reaches the workers through the plugin; torch there, same rows."""
    lib, copy = tmp_path / "on-cluster", tmp_path / "local"
    lib.mkdir()
    for src in sorted(audio_dir.iterdir())[:2]:
        shutil.copy(src, lib / src.name)
    shutil.copytree(lib, copy)
    run_cli("scan", lib, "--db", tmp_path / "A.db", "--model", "moodtag-cnn", "--no-write", "--device", "auto",
            "--dask-scheduler", cluster.scheduler_address, check=True)
    run_cli("scan", copy, "--db", tmp_path / "B.db", "--model", "moodtag-cnn", "--no-write", "--jobs", "1", check=True)
    assert results(tmp_path / "A.db") == results(tmp_path / "B.db")
    assert {r[2] for r in results(tmp_path / "A.db").values()} == {"moodtag-cnn"}


def test_an_unreachable_scheduler_is_one_line(scanned, tmp_path):
    lib = scanned[0]
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = tmp_path / "c.db"
    line = one_error_line(run_cli("scan", lib, "--db", db, "--dask-scheduler", f"tcp://127.0.0.1:{port}"))
    assert f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}" in line
    assert f"(the connection was refused: nothing listens at 127.0.0.1:{port})" in line, line  # not 'Timed out'
    assert not db.exists()
    for address in ("127.0.0.1:", "tcp://:1", "tcp://127.0.0.1:99999", "tcp://127.0.0.1:0"):
        line = one_error_line(run_cli("scan", lib, "--db", db, "--dask-scheduler", address))
        assert "not a scheduler address" in line and "tcp://HOST:PORT" in line, (address, line)


def test_a_worker_with_another_moodtag_version_is_one_line(scanned, client, cluster, tmp_path):
    """As if one machine had another release installed: the scan refuses, naming the worker."""
    def set_version(version):
        import tagger

        old, tagger.__version__ = tagger.__version__, version
        return old

    worker = sorted(client.scheduler_info()["workers"])[0]
    old = client.run(set_version, "0.0.1", workers=[worker])[worker]
    try:
        db = tmp_path / "c.db"
        line = one_error_line(run_cli("scan", scanned[0], "--db", db, "--force",
                                      "--dask-scheduler", cluster.scheduler_address))
    finally:
        client.run(set_version, old, workers=[worker])
    assert f"Dask worker {worker}: runs moodtag 0.0.1, this machine {old}" in line
    assert not rows(db)


def test_without_distributed_it_is_one_line(scanned, tmp_path, cluster):
    code = ("import sys; sys.modules['distributed'] = None; from tagger.cli import main; "  # as if not installed
            "sys.argv[0] = 'moodtag'; main()")
    import subprocess

    proc = subprocess.run([sys.executable, "-c", code, "scan", str(scanned[0]), "--db", str(tmp_path / "c.db"),
                           "--dask-scheduler", cluster.scheduler_address], capture_output=True, text=True)
    assert "pip install 'dask[distributed]>=2024.1'" in one_error_line(proc)


@pytest.fixture(scope="module")
def many_tracks(audio_dir, tmp_path_factory) -> Path:
    lib = tmp_path_factory.mktemp("many")
    sources = [p for p in sorted(audio_dir.iterdir()) if p.suffix in (".flac", ".wav", ".ogg")]
    for i in range(40):
        shutil.copy(sources[i % len(sources)], lib / f"{i:02d}{sources[i % len(sources)].suffix}")
    return lib


def test_ctrl_c_stops_a_cluster_scan_and_the_next_one_resumes(many_tracks, cluster, tmp_path):
    db = tmp_path / "c.db"
    proc = start("scan", many_tracks, "--db", db, "--no-write", "--dask-scheduler", cluster.scheduler_address)
    _wait_for_rows(proc, db, 3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    done = rows(db)
    assert 3 <= len(done) < 40 and {r["status"] for r in done.values()} == {"ok"}
    again = run_cli("scan", many_tracks, "--db", db, "--no-write", "--dask-scheduler", cluster.scheduler_address,
                    check=True)
    assert "Traceback" not in again.stderr
    assert len(rows(db)) == 40 and {r["status"] for r in rows(db).values()} == {"ok"}


def test_a_worker_killed_mid_scan_loses_no_track(many_tracks, cluster, client, tmp_path):
    """Dask reschedules the tracks of a worker that dies; its nanny starts a new one."""
    _two_workers(client)
    db = tmp_path / "c.db"
    proc = start("scan", many_tracks, "--db", db, "--no-write", "--dask-scheduler", cluster.scheduler_address)
    _wait_for_rows(proc, db, 3)
    victim = sorted(client.run(os.getpid).values())[0]
    os.kill(victim, signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert len(rows(db)) == 40 and {r["status"] for r in rows(db).values()} == {"ok"}


@pytest.mark.parametrize("sig, cause", [(signal.SIGKILL, "every Dask worker that analysed it died"),
                                        (signal.SIGSTOP, "gave up after 4 s: its analysis never ended")])
def test_a_track_that_kills_or_hangs_its_workers_fails_alone(audio_dir, cluster, client, tmp_path, sig, cause):
    """A file whose decoding kills its worker (the test kills any worker that opens it, as a decoder's
    segfault would) fails once Dask gave up on it; one that never ends (the test stops that worker)
    fails after --timeout and its worker is restarted. Every other track is done."""
    client.wait_for_workers(1, timeout=120)  # the nannies replace what earlier tests killed
    lib = tmp_path / "lib"
    lib.mkdir()
    for src in sorted(audio_dir.iterdir())[:4]:
        shutil.copy(src, lib / src.name)
    victim = slow_victim(lib)
    db = tmp_path / "c.db"
    proc = start("scan", lib, "--db", db, "--no-write", "--timeout", "4", "--dask-scheduler",
                 cluster.scheduler_address)
    err, hits = communicate_killing(proc, victim, sig, dask_workers)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith(f"failed: {victim}: ")]
    assert len(lines) == 1 and cause in lines[0], err
    cached = rows(db)
    assert cached[str(victim)]["status"] == "failed" and cause in cached[str(victim)]["error"]
    others = {Path(p).name: r["error"] for p, r in cached.items() if p != str(victim)}
    assert len(others) == 4 and not any(others.values()), others
    # killed: allowed-failures + 1 deaths beside the other tracks, as many again when it is tried alone
    assert len(hits) == (4 if sig == signal.SIGKILL else 1)
    assert not [p for p in hits if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def dask_workers() -> list[psutil.Process]:
    """The LocalCluster's worker processes: its nannies (in this process) start them."""
    found = []
    for child in psutil.Process().children():
        try:
            if "multiprocessing" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            pass
    return found


def _wait_for_rows(proc, db: Path, n: int) -> None:
    deadline = time.monotonic() + 180
    while not (db.exists() and _count(db) >= n):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.02)


# --- a wrong address, a scheduler that dies -------------------------------------------------------

def _fake_service(speaks_first: bool) -> int:
    """A TCP service on loopback that is not a Dask scheduler (in a daemon thread): one that waits for
    the client to speak first (HTTP, e.g. the dashboard's port by mistake), or one that greets first
    (an SSH banner). Returns its port."""
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held = []

    def serve():
        while True:
            conn, _ = server.accept()
            held.append(conn)  # kept open, never answered
            if speaks_first:
                conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n" * 4)

    threading.Thread(target=serve, daemon=True).start()
    return server.getsockname()[1]


def _full_backlog() -> tuple[int, list[socket.socket]]:
    """A loopback port that never accepts a connection (its listen backlog full, the kernel drops the
    next SYNs), as a firewalled or powered-off machine: (the port, the sockets to keep open)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    held = [server]
    for _ in range(3):
        waiting = socket.socket()
        waiting.setblocking(False)
        waiting.connect_ex(server.getsockname())
        held.append(waiting)
    return server.getsockname()[1], held


def test_an_unknown_host_and_a_timeout_say_so(scanned, tmp_path):
    """Each read 'Timed out trying to connect' (distributed's retries end so, whatever happened)."""
    line = one_error_line(run_cli("scan", scanned[0], "--db", tmp_path / "c.db", "--dask-scheduler",
                                  "tcp://no-such-host.invalid:8786", timeout=60))
    assert line.startswith("error: cannot reach the Dask scheduler at tcp://no-such-host.invalid:8786 (the host "
                           "name no-such-host.invalid is not known); check the host name"), line
    port, held = _full_backlog()
    try:
        line = one_error_line(run_cli("scan", scanned[0], "--db", tmp_path / "c.db", "--dask-scheduler",
                                      f"tcp://127.0.0.1:{port}", timeout=60))
    finally:
        for sock in held:
            sock.close()
    assert f"(timed out: no answer from 127.0.0.1:{port} within 10 s)" in line, line
    assert not (tmp_path / "c.db").exists()


def test_a_terminal_is_told_before_the_connect(scanned, cluster, tmp_path):
    """A connect may take seconds (10 to time out): the terminal showed nothing meanwhile."""
    shown = on_a_terminal(["scan", str(scanned[0]), "--db", str(tmp_path / "c.db"), "--no-write",
                           "--dask-scheduler", cluster.scheduler_address], stream="stderr", columns=200)
    first = next(line for line in shown.replace("\r", "\n").splitlines() if line.strip())
    assert first.strip() == f"connecting to the Dask scheduler at {cluster.scheduler_address}...", shown


@pytest.mark.parametrize("speaks_first", [False, True])
def test_a_service_that_is_not_a_scheduler_is_one_line_soon(scanned, tmp_path, speaks_first):
    """Not a hang in the handshake (the connect timeout bounds only TCP), not a MemoryError trace."""
    address = f"tcp://127.0.0.1:{_fake_service(speaks_first)}"
    began = time.monotonic()
    line = one_error_line(run_cli("scan", scanned[0], "--db", tmp_path / "c.db", "--dask-scheduler", address,
                                  timeout=60))
    assert f"cannot reach the Dask scheduler at {address}" in line
    assert time.monotonic() - began < 25


def test_a_failed_connection_leaves_no_trace_at_exit(scanned, tmp_path):
    """The half-made client is closed at once: no 'Exception ignored in Client.__del__', no wait."""
    began = time.monotonic()
    line = one_error_line(run_cli("scan", scanned[0], "--db", tmp_path / "c.db", "--dask-scheduler",
                                  "tls://127.0.0.1:1", timeout=60))
    assert "cannot reach the Dask scheduler at tls://127.0.0.1:1" in line
    assert time.monotonic() - began < 8


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_while_connecting_stops_the_scan(scanned, tmp_path, sig, status):
    address = f"tcp://127.0.0.1:{_fake_service(False)}"
    proc = start("scan", scanned[0], "--db", tmp_path / "c.db", "--dask-scheduler", address)
    time.sleep(4)  # well into the handshake (the CLI's imports take ~2 s)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60 if proc.poll() is None else None)
    assert proc.returncode == status, err
    assert "Traceback" not in err and "interrupted" in err


def test_an_empty_scheduler_is_a_usage_error(scanned, tmp_path):
    """'' (an unset variable) must not silently become a local scan."""
    proc = run_cli("scan", scanned[0], "--db", tmp_path / "c.db", "--dask-scheduler", "")
    assert proc.returncode == 2 and "an empty address (an unset variable?)" in proc.stderr, proc.stderr
    assert not (tmp_path / "c.db").exists()


def _own_scheduler(env: dict | None = None) -> tuple[str, subprocess.Popen]:
    """A `dask scheduler` process on a free loopback port: (its address, the process). `env`: more
    environment (Dask's settings: DASK_DISTRIBUTED__...)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    scheduler = subprocess.Popen([DASK_CLI, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                  "--no-dashboard"], env={**os.environ, **(env or {})}, **QUIET)
    return f"tcp://127.0.0.1:{port}", scheduler


def _own_worker(address: str) -> subprocess.Popen:
    """A `dask worker` (a nanny and one single-threaded worker process), once it has joined."""
    worker = subprocess.Popen([DASK_CLI, "worker", address, "--nworkers", "1", "--nthreads", "1",
                               "--host", "127.0.0.1", "--no-dashboard"], **QUIET)
    with Client(address, timeout=60, set_as_default=False) as c:
        c.wait_for_workers(1, timeout=120)
    return worker


def _end(*processes: subprocess.Popen) -> None:
    for process in processes:
        process.terminate()  # a worker's nanny ends its worker process
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


DASK_CLI = str(Path(sys.executable).parent / "dask")
QUIET = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_a_scheduler_that_dies_mid_scan_is_one_line_and_keeps_the_results(many_tracks, tmp_path):
    """Its own scheduler and worker (processes), the scheduler killed once a few tracks are cached."""
    address, scheduler = _own_scheduler()
    try:
        worker = _own_worker(address)
        db = tmp_path / "c.db"
        proc = start("scan", many_tracks, "--db", db, "--no-write", "--dask-scheduler", address)
        _wait_for_rows(proc, db, 3)
        scheduler.kill()
        _, err = proc.communicate(timeout=120)
    finally:
        scheduler.kill()
        _end(worker, scheduler)
    lines = err.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, err
    assert lines[0].startswith(f"error: lost the connection to the Dask scheduler at {address}")
    assert "scan again to resume" in lines[0]
    done = rows(db)
    assert 3 <= len(done) and {r["status"] for r in done.values()} == {"ok"}


def test_a_cluster_left_without_workers_says_so_and_goes_on_when_one_joins(many_tracks, tmp_path):
    """Every worker stopped mid-scan: the scan waited in silence, a progress bar frozen, until Ctrl-C.
    Now it says that the cluster has no workers (within NO_WORKERS_S + RECOUNT_S), and when a new
    worker joins it says so and finishes the scan, every track analysed once."""
    import threading

    from tagger.dask_pool import NO_WORKERS_S, RECOUNT_S

    address, scheduler = _own_scheduler()
    workers = []
    try:
        workers.append(_own_worker(address))
        db = tmp_path / "c.db"
        proc = start("scan", many_tracks, "--db", db, "--no-write", "--dask-scheduler", address)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
        reader.start()
        _wait_for_rows(proc, db, 3)
        _end(workers[0])
        deadline = time.monotonic() + NO_WORKERS_S + 2 * RECOUNT_S + 30
        while not any("has no workers" in line for line in lines):
            assert proc.poll() is None and time.monotonic() < deadline, lines
            time.sleep(0.2)
        assert proc.poll() is None  # still waiting
        workers.append(_own_worker(address))
        proc.wait(timeout=300)
        reader.join(timeout=10)
    finally:
        _end(*workers, scheduler)
    err = "".join(lines)
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert "warning: the Dask cluster has no workers: its tracks wait for some to join" in err
    assert "the Dask cluster has workers again (1 thread); the scan goes on" in err
    done = rows(db)
    assert len(done) == 40 and {r["status"] for r in done.values()} == {"ok"}, err


# --- a frozen worker, two scans of one model, a worker that cannot store it, a late worker ---------

@contextmanager
def _frozen_worker(client):
    """One worker process of the LocalCluster stopped (SIGSTOP: a suspended machine), then resumed:
    its address."""
    _two_workers(client)
    address, pid = sorted(client.run(os.getpid).items())[0]
    os.kill(pid, signal.SIGSTOP)
    try:
        yield address
    finally:
        os.kill(pid, signal.SIGCONT)


def test_a_frozen_worker_fails_the_check_within_its_time(scanned, cluster, client, monkeypatch):
    """The pre-scan check waited for ever (until the scheduler dropped the worker, 5 min) and then
    blamed a missing install; now a worker that does not answer in CHECK_TIMEOUT_S is named."""
    import threading

    from tagger import dask_pool
    from tagger.errors import MoodtagError

    monkeypatch.setattr(dask_pool, "CHECK_TIMEOUT_S", 2.0, raising=False)  # (none in older code)
    sample = next(p for p in scanned[0].iterdir() if p.suffix == ".flac")
    raised = []
    connection = dask_pool.DaskCluster.connect(cluster.scheduler_address)
    try:
        with _frozen_worker(client) as frozen:
            checking = threading.Thread(target=lambda: _note_error(raised, connection.check, sample, device=None),
                                        daemon=True)
            checking.start()
            checking.join(timeout=20)
            assert not checking.is_alive(), "the check still waits for the frozen worker"
    finally:
        connection.close()
    assert len(raised) == 1 and isinstance(raised[0], MoodtagError), raised
    assert str(raised[0]).startswith(f"Dask worker {frozen}: did not answer within 2 s"), raised
    assert "install" not in str(raised[0])


def _note_error(errors: list, function, *args, **kw) -> None:
    try:
        function(*args, **kw)
    except BaseException as exc:
        errors.append(exc)


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_stops_a_scan_waiting_for_a_frozen_worker(scanned, cluster, client, tmp_path, sig, status):
    with _frozen_worker(client):
        proc = start("scan", scanned[0], "--db", tmp_path / "c.db", "--dask-scheduler", cluster.scheduler_address)
        try:
            time.sleep(5)  # in the check by now (the CLI's imports take ~2 s, the walk of 9 files none)
            assert proc.poll() is None
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=15)
        finally:
            proc.kill()
            proc.wait()
    assert proc.returncode == status, err
    assert "Traceback" not in err and "interrupted" in err


def test_two_scans_of_one_model_keep_each_others_plugin(cluster, client, tmp_path):
    """The first scan to end removed the plugin (named by the model's hash alone) that the other still
    needed: a worker that started afterwards had no model file. Each scan now has its own plugin."""
    from tagger.dask_pool import DaskCluster
    from tagger.dask_worker import model_file

    model = tmp_path / "own.model"  # a content of its own: no other test's model file is touched
    model.write_bytes(os.urandom(2000))
    first, second = DaskCluster.connect(cluster.scheduler_address), DaskCluster.connect(cluster.scheduler_address)
    try:
        name, sha = first._install_model(model)
        assert second._install_model(model) == (name, sha)
        first.close()
        client.run(lambda: model_file(name, sha).unlink(missing_ok=True))  # as on a machine that joins now
        client.restart_workers(sorted(client.scheduler_info()["workers"]), timeout=120)
        _two_workers(client)
        assert set(client.run(lambda: model_file(name, sha).is_file()).values()) == {True}
    finally:
        second.close()
        client.run(lambda: model_file(name, sha).unlink(missing_ok=True))
    assert not _model_plugins(client)


def _model_plugins(client) -> list[str]:
    """The moodtag model plugins the scheduler holds."""
    return client.run_on_scheduler(lambda dask_scheduler: [n for n in dask_scheduler.worker_plugins
                                                           if n.startswith("moodtag-model")])


def test_a_worker_that_cannot_store_the_model_is_one_line(scanned, cluster, client, tmp_path):
    """A plain file where the worker's model folder goes (a full disk fails the same way): a traceback
    (FileExistsError) before; now one line naming the worker, and its plugin is not left behind."""
    def use_tempdir(folder):
        import tempfile

        old, tempfile.tempdir = tempfile.tempdir, folder
        return old

    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / f"moodtag-models-{os.getuid()}").write_text("x")
    _two_workers(client)
    worker = sorted(client.scheduler_info()["workers"])[0]
    old = client.run(use_tempdir, str(odd), workers=[worker])[worker]
    try:
        line = one_error_line(run_cli("scan", scanned[0], "--db", tmp_path / "c.db", "--no-write", "--force",
                                      "--dask-scheduler", cluster.scheduler_address))
    finally:
        client.run(use_tempdir, old, workers=[worker])
    assert line.startswith(f"error: Dask worker {worker} cannot store the model file {odd}"), line
    assert "File exists" in line or "Not a directory" in line, line
    assert not _model_plugins(client)


def test_a_client_closed_by_a_stopped_scheduler_is_the_lost_scheduler_line(tmp_path):
    """A scheduler stopped with SIGTERM: its client closes; counting the threads then raised
    'ConnectionPool is closed' or an AttributeError (a traceback) instead of the one line."""
    from tagger.dask_pool import DaskCluster
    from tagger.errors import MoodtagError

    address, scheduler = _own_scheduler()
    try:
        connection = DaskCluster.connect(address)
        scheduler.terminate()
        deadline = time.monotonic() + 60
        while connection.client.status != "closed":
            assert time.monotonic() < deadline, connection.client.status
            time.sleep(0.1)
        with pytest.raises(MoodtagError, match=f"lost the connection to the Dask scheduler at {address}"):
            connection._threads()
        connection.close()
    finally:
        _end(scheduler)


def _slow_down(seconds: float) -> None:
    """Run on a worker: each track's analysis there takes `seconds` more (a slow machine)."""
    import tagger.dask_worker as worker

    analyse = worker.analyze_in_worker

    def slow(*args):
        time.sleep(seconds)
        return analyse(*args)

    worker.analyze_in_worker = slow


def test_the_timeout_counts_from_when_a_worker_starts_the_track(audio_dir, tmp_path):
    """One worker thread holding two tracks (Dask hands it more than it can run), each analysed in
    3 s, --timeout 5: the second track, waiting there for the first, was given up after 5 s in all
    while it had run 2 s. Its clock now starts when the worker starts it."""

    lib = tmp_path / "lib"
    lib.mkdir()
    for src in [p for p in sorted(audio_dir.iterdir()) if p.suffix == ".flac"][:1] * 2:
        shutil.copy(src, lib / f"{len(list(lib.iterdir()))}{src.suffix}")
    with dask.config.set({"distributed.scheduler.worker-saturation": float("inf")}), \
            LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                         dashboard_address=None) as local, Client(local, set_as_default=False) as c:
        c.run(_slow_down, 3.0)
        proc = run_cli("scan", lib, "--db", tmp_path / "c.db", "--no-write", "--timeout", "5",
                       "--dask-scheduler", local.scheduler_address)
    assert proc.returncode == 0 and "failed:" not in proc.stderr, proc.stderr
    assert {r["status"] for r in rows(tmp_path / "c.db").values()} == {"ok"} and len(rows(tmp_path / "c.db")) == 2


def test_a_worker_that_joins_mid_scan_is_checked(many_tracks, tmp_path):
    """A worker with another moodtag version that joined during the scan analysed tracks unchecked;
    it is now checked before any result of it is taken, and the scan stops with one line."""
    preload = tmp_path / "other_version.py"
    preload.write_text("import tagger\ntagger.__version__ = '0.0.1'\n")
    address, scheduler = _own_scheduler()
    workers = []
    try:
        workers.append(_own_worker(address))
        with Client(address, timeout=60, set_as_default=False) as c:  # the scan lasts until the other joins
            c.run(_slow_down, 0.5)
        db = tmp_path / "c.db"
        proc = start("scan", many_tracks, "--db", db, "--no-write", "--dask-scheduler", address)
        _wait_for_rows(proc, db, 2)
        workers.append(subprocess.Popen([DASK_CLI, "worker", address, "--nthreads", "1", "--host", "127.0.0.1",
                                         "--no-dashboard", "--preload", str(preload)], **QUIET))
        _, err = proc.communicate(timeout=120)
    finally:
        _end(*workers, scheduler)
    line = one_error_line(subprocess.CompletedProcess(proc.args, proc.returncode, "", err))
    assert "(it joined during the scan): runs moodtag 0.0.1" in line, line


def test_no_result_of_a_worker_that_joins_mid_scan_is_taken_before_its_check(many_tracks, tmp_path, monkeypatch):
    """Workers were counted (and the new ones checked) every RECOUNT_S only: a fast worker of another
    moodtag version that joined in between had its results taken and cached until then (the CLI test
    above failed in CI so: the whole scan ended first). They are now counted whenever results come in.
    The periodic count is put out of reach here, so only that can catch the worker."""
    from tagger import dask_pool
    from tagger.errors import MoodtagError
    from tagger.records import TrackRef
    from tagger.weights import resolve_model

    monkeypatch.setattr(dask_pool, "RECOUNT_S", 1e9)
    analysed_there = tmp_path / "analysed_by_the_late_worker.txt"
    preload = tmp_path / "other_version.py"
    preload.write_text(
        "import tagger\nimport tagger.dask_worker as worker\ntagger.__version__ = '0.0.1'\n"
        "analyse = worker.__dict__.setdefault('unnoted', worker.analyze_in_worker)\n"  # (Dask imports it twice)
        "def noted(path, *args):\n"
        f"    with open({str(analysed_there)!r}, 'a') as log:\n"
        "        log.write(str(path) + '\\n')\n"
        "    return analyse(path, *args)\n"
        "worker.analyze_in_worker = noted\n")
    refs = [TrackRef.from_path(p) for p in sorted(many_tracks.iterdir())]
    address, scheduler = _own_scheduler()
    workers, taken, raised = [], [], []
    try:
        workers.append(_own_worker(address))
        with Client(address, timeout=60, set_as_default=False) as c:
            c.run(_slow_down, 0.5)
        connection = dask_pool.DaskCluster.connect(address)
        try:
            connection.check(refs[0].path, device=None)
            results = connection.analyse(refs, resolve_model(None))
            taken.append(next(results)[0])
            workers.append(subprocess.Popen([DASK_CLI, "worker", address, "--nthreads", "1", "--host",
                                             "127.0.0.1", "--no-dashboard", "--preload", str(preload)], **QUIET))
            with Client(address, timeout=60, set_as_default=False) as c:
                c.wait_for_workers(2, timeout=120)
            _note_error(raised, lambda: taken.extend(path for path, _, _ in results))
        finally:
            connection.close()
    finally:
        _end(*workers, scheduler)
    assert len(raised) == 1 and isinstance(raised[0], MoodtagError), (raised, len(taken))
    assert "(it joined during the scan): runs moodtag 0.0.1" in str(raised[0]), raised
    late = set(analysed_there.read_text().splitlines()) if analysed_there.exists() else set()
    assert not late & {str(path) for path in taken}, sorted(late & {str(path) for path in taken})


# --- a worker's copy of the library, or of the model file, that is not this machine's ------------

def _analysed_on(cluster, refs) -> dict:
    """path -> TrackResult of `refs`, analysed on the cluster through the API a scan uses."""
    from tagger.dask_pool import DaskCluster
    from tagger.weights import resolve_model

    connection = DaskCluster.connect(cluster.scheduler_address)
    try:
        connection.check(refs[0].path.parent, device=None)
        return {path: result for path, result, _ in connection.analyse(refs, resolve_model(None))}
    finally:
        connection.close()


def test_a_file_that_differs_on_a_worker_fails_as_unreadable(audio_dir, cluster, client, tmp_path):
    """An out-of-date synced copy at the same path on a worker: its result was cached under this
    machine's size and mtime (and its mood written here). The worker now compares the file with the
    scanning machine's TrackRef and fails the track with one line that the next scan retries."""
    from tagger.errors import unreadable
    from tagger.records import TrackRef

    client.wait_for_workers(1, timeout=120)
    src = next(p for p in sorted(audio_dir.iterdir()) if p.suffix == ".flac")
    same, stale = tmp_path / "same.flac", tmp_path / "stale.flac"
    shutil.copy(src, same)
    shutil.copy(src, stale)
    ref, here = TrackRef.from_path(stale), TrackRef.from_path(same)
    as_seen_here = TrackRef(stale, ref.size, ref.mtime_ns - 60 * 10**9)  # this machine's copy is newer
    # the same file through another client (SMB here, NFS there): its mtime at another precision
    other_client = TrackRef(same, here.size, here.mtime_ns // 10**6 * 10**6)
    got = _analysed_on(cluster, [other_client, as_seen_here])
    assert got[same].ok, got[same].error
    error = got[stale].error
    assert not got[stale].ok and got[stale].mood is None, got[stale]
    assert error.startswith("cannot read: the file on Dask worker tcp://127.0.0.1:"), error
    assert "differs from this machine's (size/mtime): every worker must see the same library at the same path" \
        in error and "\n" not in error
    assert unreadable(error)


def test_a_file_a_worker_does_not_see_names_the_worker(audio_dir, cluster, client, tmp_path):
    """A file gone for the workers (here: deleted after this machine found it) failed as a bare 'file
    not found'; it now names the worker and what every worker needs, and is still retried."""
    from tagger.errors import unreadable
    from tagger.records import TrackRef

    client.wait_for_workers(1, timeout=120)
    src = next(p for p in sorted(audio_dir.iterdir()) if p.suffix == ".flac")
    seen, gone = tmp_path / "seen.flac", tmp_path / "gone.flac"
    shutil.copy(src, seen)
    shutil.copy(src, gone)
    refs = [TrackRef.from_path(seen), TrackRef.from_path(gone)]
    gone.unlink()
    got = _analysed_on(cluster, refs)
    assert got[seen].ok, got[seen].error
    error = got[gone].error
    assert error.startswith("file not found on Dask worker tcp://127.0.0.1:"), error
    assert error.endswith(": every worker must see the library at the same path as this machine"), error
    assert unreadable(error)


def test_a_damaged_model_file_of_the_right_size_is_written_again(tmp_path, monkeypatch):
    """A worker's stored model file with a byte flipped in place passed as whole (its size was all
    that was compared) and gave wrong moods; its content is now compared, and it is rewritten."""
    import tempfile

    from tagger.dask_worker import ModelFilePlugin, model_file

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    plugin = ModelFilePlugin.read(resolve_model(None))
    plugin.setup()
    stored = model_file(plugin.file_name, plugin.sha256)
    assert stored.read_bytes() == plugin.data
    with open(stored, "r+b") as f:  # the same size, one byte flipped
        f.seek(len(plugin.data) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert stored.stat().st_size == len(plugin.data) and stored.read_bytes() != plugin.data
    plugin.setup()
    assert stored.read_bytes() == plugin.data


# --- a track that crashes its worker, beside others -------------------------------------------------

@pytest.mark.parametrize("names", [("0-crash", "1", "2"), ("0", "1", "2-crash", "3", "4", "5", "6-crash", "7", "8")],
                         ids=["one", "two, queued behind"])
def test_a_crashing_track_alone_fails_not_the_tracks_beside_it(audio_dir, tmp_path, names):
    """A worker with 2 threads, one track that kills its process (a decoder's segfault): Dask raised
    KilledWorker for every track the worker held, and the ones beside it failed with its cause. Those
    are now tried again one at a time: the crashing one alone fails, the others get their results. The
    last of them is alone too (the queue's next tracks ran beside it: a crash of one of those failed it)."""
    preload = tmp_path / "crash_preload.py"
    preload.write_text(
        "import os, signal, time\nimport tagger.dask_worker as worker\n"
        "analyse = worker.__dict__.setdefault('uncrashed', worker.analyze_in_worker)\n"  # (Dask imports it twice)
        "def crashing(path, *args):\n"
        "    if 'crash' in path.name:\n"
        "        time.sleep(0.5)\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    time.sleep(3)\n"  # the others still run (or wait on the worker) when it dies
        "    return analyse(path, *args)\n"
        "worker.analyze_in_worker = crashing\n")
    lib = tmp_path / "lib"
    lib.mkdir()
    src = next(p for p in sorted(audio_dir.iterdir()) if p.suffix == ".flac")
    for name in names:
        shutil.copy(src, lib / f"{name}.flac")
    address, scheduler = _own_scheduler(env={"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1"})
    worker = subprocess.Popen([DASK_CLI, "worker", address, "--nthreads", "2", "--host", "127.0.0.1",
                               "--no-dashboard", "--preload", str(preload)], **QUIET)
    try:
        with Client(address, timeout=60, set_as_default=False) as c:
            c.wait_for_workers(1, timeout=120)
        proc = run_cli("scan", lib, "--db", tmp_path / "c.db", "--no-write", "--dask-scheduler", address)
    finally:
        _end(worker, scheduler)
    failures = sorted(line for line in proc.stderr.splitlines() if line.startswith("failed: "))
    crashing = sorted(f"{name}.flac" for name in names if "crash" in name)
    assert [line.split(": ")[1] for line in failures] == [str(lib / name) for name in crashing], proc.stderr
    assert all(line.endswith(": every Dask worker that analysed it died") or "every Dask worker that analysed it "
               "died" in line for line in failures), proc.stderr
    done = {Path(path).name: row["status"] for path, row in rows(tmp_path / "c.db").items()}
    assert done == {f"{name}.flac": "failed" if "crash" in name else "ok" for name in names}, proc.stderr


def test_a_worker_without_moodtag_gets_the_install_hint(scanned, tmp_path):
    """A worker on which moodtag is not installed: distributed wraps the ImportError of unpickling the
    check (its cause is lost in a plain Exception), so the hint to install moodtag was never given."""
    preload = tmp_path / "no_moodtag.py"
    preload.write_text(
        "import sys\n"
        "for name in [m for m in sys.modules if m == 'tagger' or m.startswith('tagger.')]:\n"
        "    del sys.modules[name]\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'tagger' or name.startswith('tagger.'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Block())\n")
    address, scheduler = _own_scheduler()
    worker = subprocess.Popen([DASK_CLI, "worker", address, "--nthreads", "1", "--host", "127.0.0.1",
                               "--no-dashboard", "--preload", str(preload)], **QUIET)
    try:
        with Client(address, timeout=60, set_as_default=False) as c:
            c.wait_for_workers(1, timeout=120)
            (there,) = c.scheduler_info()["workers"]
        line = one_error_line(run_cli("scan", scanned[0], "--db", tmp_path / "c.db", "--dask-scheduler", address))
    finally:
        _end(worker, scheduler)
    assert line.startswith(f"error: Dask worker {there}: cannot run moodtag (ModuleNotFoundError: No module "
                           "named 'tagger'"), line
    assert "install it there: pip install 'dask[distributed]>=2024.1'" in line, line
