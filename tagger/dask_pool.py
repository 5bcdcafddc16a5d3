"""Many tracks analysed on an existing Dask cluster (`moodtag scan --dask-scheduler tcp://HOST:PORT`).

The parent's side (tagger.dask_worker runs on the workers). `DaskCluster.analyse` has the interface
and the flow of tagger.pool.analyse_tracks: it yields (path, TrackResult, tag info) in the order
tracks finish, a few per worker thread in flight, and returns as soon as `stop()` is true. Workers
only read: they decode, classify and read the file's tags; the parent alone writes tags and the
cache. Every worker must see the library at the same path as the parent.

Tasks go to the cluster as distributed futures, not through joblib's Parallel: a Parallel call turns
one task's error, its `timeout` or a KilledWorker into an abort of every other task, and its result
generator blocks, so the scan could neither poll `stop()` nor give up one hanging track alone.

The model file reaches every worker as a worker plugin, also workers that join or restart later; a
worker loads it once per process, by its sha256. A worker that dies is replaced by its nanny and its
tracks are rescheduled by Dask; a track on which workers die again and again (distributed.scheduler.
allowed-failures, 3 by default) fails with that cause. Dask counts a death against every track the
worker held (its other threads', those queued there), so the tracks it fails so are analysed again one
at a time, each alone on the cluster: only the one that kills its worker again fails. A track still analysing on a worker after
`timeout` seconds fails, and its worker is restarted (a thread cannot be stopped): its clock runs from
when the worker's heartbeats first tell the scheduler it executes the track, not while it waits there.
Every worker is checked before the scan (the same moodtag, the library in sight), and every worker that
joins during the scan before any result is taken from it: the cluster's workers are counted again
whenever results come in.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
import uuid
from collections import Counter, deque
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from tagger.errors import ModelError, MoodtagError
from tagger.pool import POLL_S, TRACK_TIMEOUT_S, Outcome, count_lost_workers
from tagger.records import TrackRef, TrackResult

CONNECT_TIMEOUT_S = 10.0
PROBE_TIMEOUT_S = 2.0     # a plain TCP connection that tells why distributed's connect timed out
HANDSHAKE_TIMEOUT_S = 12.0  # the whole connection: TCP, then the scheduler's answer (a wrong service never gives one)
IN_FLIGHT_PER_THREAD = 2
RECOUNT_S = 5.0          # how often the cluster's threads are counted again while no result comes in
NO_WORKERS_S = 10.0      # a cluster without workers this long (all of them stopped, or died) is told
FETCH_TIMEOUT_S = 10.0   # a result (a few kB) not fetched by then sits on a worker that hangs
MAX_RETRIES = 2          # a track the cluster loses (restarts, a hung worker) is submitted again this often
CLOSE_TIMEOUT_S = 5.0    # how long unregistering a plugin may take
CHECK_TIMEOUT_S = 30.0   # a worker that does not answer moodtag's check by then is frozen, or cut off
SILENT_S = 10.0          # a worker without a heartbeat this long is frozen: its tracks count from their assignment
QUIET_LOGGERS = ("distributed", "distributed.client")
INSTALL_HINT = "pip install 'dask[distributed]>=2024.1' (moodtag's dask extra: pip install -e '.[dask]' in its checkout)"


def require_distributed() -> None:
    """Raise MoodtagError (one line) when dask's distributed package is not installed."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise MoodtagError(f"--dask-scheduler needs dask's distributed package: {INSTALL_HINT}") from None


class DaskCluster:
    """A connection to a running Dask cluster, open for one scan: `connect`, `check`, `analyse`, `close`."""

    def __init__(self, client, scheduler: str, *, log_levels: dict[str, int] | None = None) -> None:
        self.client = client
        self.scheduler = scheduler
        self._log_levels = log_levels or {}
        self._plugins: list[str] = []
        self._checked: set[str] = set()  # the workers that passed `check`
        self._asked: tuple = ()          # what `check` asks each worker: (library path, device, version)
        self._clocks_on_scheduler = True  # False once the scheduler refused to run `_task_clocks` there

    @classmethod
    def connect(cls, scheduler: str) -> "DaskCluster":
        """Connect to the scheduler at `scheduler`; MoodtagError (one line) when distributed is not
        installed, the address is not one, or no scheduler answers there within HANDSHAKE_TIMEOUT_S (a
        service that is not one too). A stop signal meanwhile raises KeyboardInterrupt."""
        require_distributed()
        from distributed.comm import get_address_host_port

        try:  # before Client(): one that fails on a malformed address leaves a thread that stalls the exit
            host, port = get_address_host_port(scheduler)
        except ValueError as exc:
            raise MoodtagError(f"--dask-scheduler {scheduler}: not a scheduler address ({exc}); "
                               "give tcp://HOST:PORT") from None
        if not host or not 0 < port < 65536:  # 'tcp://:1', ':99999': read as a refusal, or an unknown host ''
            raise MoodtagError(f"--dask-scheduler {scheduler}: not a scheduler address "
                               f"({'no host name' if not host else f'port {port} is not 1 to 65535'}); "
                               "give tcp://HOST:PORT")
        # its retries, warnings (results it fetches again) and errors (its reconnection given up) are not
        # ours to show: what they mean reaches the user as one line. distributed.client has its own level.
        levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.CRITICAL)
        _say_connecting(scheduler)
        try:
            with _stop_signals_interrupt():
                client = _open_client(scheduler)
        except KeyboardInterrupt:  # Ctrl-C (or SIGTERM) while connecting: the scan stops as interrupted
            _set_levels(levels)
            raise
        except Exception as exc:  # a service that is not a scheduler can fail its handshake in any way
            _set_levels(levels)
            cause = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            hint = "is `dask scheduler` running there, and reachable from here?"
            if isinstance(exc, MemoryError) or type(exc) is TimeoutError:  # another protocol's bytes, or none
                cause = (f"no Dask scheduler answered within {HANDSHAKE_TIMEOUT_S:g} s"
                         if isinstance(exc, TimeoutError) else "it does not speak Dask's protocol")
                cause += "; another service on that port, such as the dashboard's?"
            elif isinstance(exc, OSError):  # distributed's retries end in 'Timed out', whatever the cause
                cause, unknown_host = _connect_cause(exc, scheduler)
                if unknown_host:
                    hint = "check the host name in --dask-scheduler"
            raise MoodtagError(f"cannot reach the Dask scheduler at {scheduler} ({cause}); {hint}") from None
        return cls(client, scheduler, log_levels=levels)

    def close(self) -> None:
        """Unregister this scan's plugins, each within CLOSE_TIMEOUT_S (the scheduler passes it on to
        every worker, and a frozen one never answers), and close the client."""
        for name in self._plugins:
            if self.client.status != "running":  # the scheduler went away: nothing left to tidy
                break
            try:
                self.client.sync(self.client._unregister_worker_plugin, name=name, callback_timeout=CLOSE_TIMEOUT_S)
            except Exception:  # gone meanwhile, or a worker that does not answer: the scheduler removed it
                pass
        try:
            self.client.close(timeout=5)
        except Exception:  # the scheduler went away: the client is left to the process's exit
            pass
        _set_levels(self._log_levels)

    def check(self, sample: Path, *, device: str | None) -> None:
        """MoodtagError when the cluster has no workers, or when a worker cannot import moodtag, runs
        another version of it, cannot see the library at `sample`'s path, or use `device` (None: the
        model ignores it), or does not answer within CHECK_TIMEOUT_S (a frozen one would hold the
        scan for good). A stop signal meanwhile raises KeyboardInterrupt."""
        from tagger import __version__

        threads = self._workers()
        if not threads:
            raise MoodtagError(f"the Dask scheduler at {self.scheduler} has no workers; start some with "
                               f"`dask worker {self.scheduler}`")
        self._asked = (str(sample), device, __version__)
        self._check_workers(sorted(threads))

    def _check_workers(self, workers: list[str], *, joined: bool = False) -> None:
        """Ask `workers` what `check` asks, all at once, each within CHECK_TIMEOUT_S; MoodtagError
        naming the first with a problem. One that left meanwhile is passed over. `joined`: they joined
        during the scan (the message says so). The question goes by value, and imports moodtag there: a
        worker without moodtag then answers with its ImportError (one of moodtag's functions, sent by
        reference, failed to unpickle there, and distributed gave back a bare Exception of its repr)."""
        def worker_problem(*asked):
            from tagger.dask_worker import worker_problem

            return worker_problem(*asked)

        try:
            with _stop_signals_interrupt():
                answers = self.client.sync(_ask_each, self.client, workers, worker_problem, self._asked)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # the scheduler went away
            raise self._lost(type(exc).__name__) from None
        for address in workers:
            answer = answers[address]
            if isinstance(answer, OSError) and address not in self._workers():  # it left: nothing to check
                continue
            problem = _problem(answer)
            if problem:
                raise MoodtagError(f"Dask worker {address}{' (it joined during the scan)' if joined else ''}: "
                                   f"{problem}")
            self._checked.add(address)

    def analyse(self, refs: list[TrackRef], model_path: Path, *, timeout: float = TRACK_TIMEOUT_S,
                device: str = "cpu", stop: Callable[[], bool] = lambda: False,
                on_workers: Callable[[int], None] = lambda threads: None) -> Iterator[Outcome]:
        """Yield (path, TrackResult, tag info) for every ref, in the order they finish; return early
        once `stop()` is true (closing the generator too cancels what is left). `device` is resolved
        by each worker ('auto': its own GPU if it has one). Raises MoodtagError when a worker cannot
        load the model, the scheduler goes away, or workers die whatever they analyse.
        A cluster left without workers for NO_WORKERS_S (every `dask worker` stopped) keeps the tracks
        waiting, as Dask does, for workers that join: `on_workers(0)` is called then, and
        `on_workers(threads)` when some have joined, so that the wait is not taken for a hang."""
        from tagger.dask_worker import analyze_on_dask_worker

        client = self.client
        in_flight: dict = {}      # future -> its ref
        running: dict = {}        # future -> (its worker, when first seen there)
        dropped: Counter = Counter()  # refs the cluster lost (restarts, a stuck worker), submitted again
        suspects: deque = deque()  # refs a worker died under with others beside them: each tried alone
        alone: set = set()         # the future of the suspect in flight, alone on the cluster
        try:
            model = self._install_model(model_path)
            queue = deque(refs)
            run, submitted = uuid.uuid4().hex[:8], 0
            failures_in_a_row = 0
            threads, counted = 1, 0.0
            idle = _NoWorkers(on_workers)
            while (queue or in_flight or suspects) and not stop():
                # workers join and leave during a long scan; while none are there, counted at every poll,
                # so that their return is told before the tracks left finish
                if idle.told or time.monotonic() - counted > RECOUNT_S:
                    counted = time.monotonic()
                    threads = max(1, idle.count(self._threads(), counted))
                # a suspect waits for the tracks in flight to finish, then runs with none beside it: only the
                # one that kills its worker again fails; the queue goes on once every suspect is done
                while (suspects and not in_flight) or (queue and not suspects and not alone
                                                       and len(in_flight) < IN_FLIGHT_PER_THREAD * threads):
                    suspect = bool(suspects)
                    ref = (suspects or queue).popleft()
                    submitted += 1
                    try:
                        future = client.submit(analyze_on_dask_worker, str(ref.path), ref.size, ref.mtime_ns,
                                               *model, device, pure=False, key=f"moodtag-{run}-{submitted}")
                    except Exception:  # a client closed meanwhile ('Tried sending message after closing')
                        self._check_connected()
                        raise
                    in_flight[future] = ref
                    if suspect:
                        alone.add(future)
                        break
                finished = self._wait(in_flight)
                if finished:  # a worker that joined since the last count is checked before a result of it is taken
                    counted = time.monotonic()
                    threads = max(1, idle.count(self._threads(), counted))
                for future in finished:
                    ref = in_flight.pop(future)
                    running.pop(future, None)
                    was_alone = future in alone
                    alone.discard(future)
                    got = self._outcome(future, ref)
                    if got is None:  # the cluster dropped it (a restart), or its result is stuck on a worker
                        future.cancel()
                        self._check_connected()
                        dropped[ref] += 1
                        if dropped[ref] <= MAX_RETRIES:
                            (suspects if was_alone else queue).appendleft(ref)
                            continue
                        got = (ref.path, TrackResult.failed(
                            ref.path, f"the Dask cluster lost it {dropped[ref]} times (workers restarted, or "
                                      "unreachable)"), None), False
                    outcome, worker_lost = got
                    if worker_lost and not was_alone:  # Dask blames every track its dead worker held
                        suspects.append(ref)
                        continue
                    failures_in_a_row = count_lost_workers(failures_in_a_row, worker_lost, outcome,
                                                           workers="Dask workers")
                    yield outcome
                if stop():
                    return
                self._check_connected()
                for future in self._overdue(in_flight, running, timeout):
                    ref = in_flight.pop(future)
                    worker, _ = running.pop(future)
                    alone.discard(future)
                    future.cancel()
                    self._restart(worker)
                    yield ref.path, TrackResult.failed(
                        ref.path, f"gave up after {timeout:g} s: its analysis never ended (a decoder "
                                  "that hangs?); its Dask worker was restarted"), None
        finally:
            for future in in_flight:
                future.cancel()

    def _install_model(self, model_path: Path) -> tuple[str, str]:
        """Give every worker, and every worker that joins later (a restarted one too), the model file:
        a worker plugin, kept by the scheduler until `close`. Returns what a task names it by."""
        from tagger.dask_worker import ModelFilePlugin

        plugin = ModelFilePlugin.read(model_path)
        self._plugins.append(plugin.name)  # `close` unregisters it, also after a failed setup on a worker
        try:
            with _stop_signals_interrupt():  # a frozen worker never answers: Ctrl-C must still stop the scan
                self.client.register_plugin(plugin, name=plugin.name)
        except (KeyboardInterrupt, MoodtagError):  # ModelError: a worker could not store the file
            raise
        except Exception as exc:
            self._check_connected()
            cause = str(exc).splitlines()[0] if str(exc) else ""
            raise MoodtagError(f"cannot give the model file to the Dask workers ({type(exc).__name__}"
                               f"{': ' + cause if cause else ''})") from None
        return plugin.file_name, plugin.sha256

    def _wait(self, in_flight: dict) -> list:
        """The futures of `in_flight` that are no longer pending, waiting up to POLL_S for one."""
        from distributed import wait

        pending = [f for f in in_flight if f.status == "pending"]
        if len(pending) == len(in_flight):
            try:
                with self.client.as_current():  # wait() looks for its client there
                    wait(pending, timeout=POLL_S, return_when="FIRST_COMPLETED")
            except Exception:  # a timeout, or a future cancelled meanwhile: the statuses below tell
                pass
        return [f for f in in_flight if f.status != "pending"]

    def _overdue(self, in_flight: dict, running: dict, timeout: float) -> list:
        """Futures executing on one worker for more than `timeout` s. A track's clock runs from when
        its worker starts it, as the worker's heartbeats tell the scheduler, not while it waits there
        for a thread (Dask hands a worker more tracks than it has threads), nor before; a track moved
        to another worker starts again. On a worker gone silent (frozen) it runs from when the track
        was first seen there. `running`: future -> (its worker, when first seen there)."""
        clocks = self._task_clocks([future.key for future in in_flight])
        now = time.monotonic()
        overdue = []
        for future in in_flight:
            clock = clocks.get(future.key)
            if clock is None:
                running.pop(future, None)
                continue
            worker, executing_s, silent = clock
            if running.get(future, (None,))[0] != worker:
                running[future] = (worker, now)
            ran = executing_s if executing_s is not None else now - running[future][1] if silent else 0.0
            if ran > timeout:
                overdue.append(future)
        return overdue

    def _task_clocks(self, keys: list[str]) -> dict:
        """key -> (its worker, seconds it has executed there or None when not started as far as its
        heartbeats tell, whether that worker has been silent for SILENT_S) for every key a worker
        holds; {} when the scheduler cannot be asked. Asked of the scheduler: one round trip for every
        key. A scheduler that runs no client's functions (distributed.scheduler.pickle false) is asked
        only where the keys are, each counted as started there (the clock starts at the assignment)."""
        def on_scheduler(keys, silent_s, dask_scheduler=None):  # sent by value: no moodtag needed there
            from distributed.metrics import time as now_there

            now, clocks = now_there(), {}
            for key in keys:
                task = dask_scheduler.tasks.get(key)
                worker = task.processing_on if task is not None else None
                if worker is not None:
                    executed = worker.executing.get(task)  # as of the worker's last heartbeat
                    since_heartbeat = now - worker.last_seen
                    clocks[key] = (worker.address, None if executed is None else executed + since_heartbeat,
                                   since_heartbeat > silent_s)
            return clocks

        if self._clocks_on_scheduler:
            try:
                return self.client.run_on_scheduler(on_scheduler, keys, SILENT_S)
            except Exception:
                if self.client.status not in ("running", "connecting"):
                    return {}
                self._clocks_on_scheduler = False
        try:
            processing = self.client.processing()
        except Exception:
            return {}
        return {key: (worker, None, True) for worker, held in processing.items() for key in held}

    def _outcome(self, future, ref: TrackRef) -> tuple[Outcome, bool] | None:
        """(a finished or failed future's outcome, whether its workers died); None when the cluster
        dropped it, or its result cannot be fetched within FETCH_TIMEOUT_S (its worker hangs: a
        track that hangs on the same worker). A ModelError is fatal."""
        from distributed import KilledWorker

        if future.status not in ("finished", "error"):
            return None
        try:
            _, result, info = future.result(timeout=FETCH_TIMEOUT_S)
            return (ref.path, result, info), False
        except TimeoutError:
            return None
        except Exception as error:
            exc = error
        if future.status != "error":  # cancelled meanwhile
            return None
        if isinstance(exc, KilledWorker):
            return (ref.path, TrackResult.failed(
                ref.path, "every Dask worker that analysed it died (distributed's allowed-failures); the file "
                          "may crash its decoder"), None), True
        if isinstance(exc, ModelError):
            raise ModelError(f"on a Dask worker: {exc}") from None
        return (ref.path, TrackResult.failed(
            ref.path, f"internal error on a Dask worker ({type(exc).__name__}: {exc})"), None), False

    def _threads(self) -> int:
        """The cluster's worker threads now, once the workers that joined since the last count passed
        `check`'s questions; MoodtagError when the scheduler is gone, or a new worker has a problem."""
        threads = self._workers()
        joined = sorted(set(threads) - self._checked)
        if joined and self._asked:
            self._check_workers(joined, joined=True)
        return sum(threads.values())

    def _workers(self) -> dict[str, int]:
        """worker -> its threads, now; MoodtagError when the scheduler is gone (a CommClosedError, or
        a client closed meanwhile: 'ConnectionPool is closed', or no scheduler info left)."""
        try:
            return dict(self.client.nthreads())
        except Exception as exc:
            status = self.client.status
            raise self._lost(status if status not in ("running", "connecting") else type(exc).__name__) from None

    def _check_connected(self) -> None:
        if self.client.status not in ("running", "connecting"):
            raise self._lost(self.client.status)

    def _lost(self, cause: str) -> MoodtagError:
        return MoodtagError(f"lost the connection to the Dask scheduler at {self.scheduler} ({cause}); "
                            "finished results are saved, scan again to resume")

    def _restart(self, worker: str) -> None:
        """Restart a worker whose thread holds a track given up on (a thread cannot be stopped; its
        nanny replaces the process). Best effort: a worker without a nanny keeps the thread busy."""
        try:
            self.client.restart_workers([worker], timeout=30, raise_for_error=False)
        except Exception:
            pass


_NO_ANSWER = object()  # what _ask_each holds for a worker that did not answer in time


async def _ask_each(client, workers: list[str], function, args: tuple) -> dict:
    """worker -> `function(*args)`'s answer on it (an exception it raised, or _NO_ANSWER when it did not
    answer within CHECK_TIMEOUT_S), every worker asked at once. Runs in the client's event loop."""
    async def ask(address: str):
        try:
            answers = await asyncio.wait_for(client._run(function, *args, workers=[address], on_error="return"),
                                             CHECK_TIMEOUT_S)
        except asyncio.TimeoutError:
            return _NO_ANSWER
        except Exception as exc:  # the scheduler could not reach it
            return exc
        return answers.get(address, _NO_ANSWER)

    return dict(zip(workers, await asyncio.gather(*(ask(address) for address in workers))))


def _problem(answer) -> str | None:
    """What a worker's answer to `worker_problem` says is wrong there, in words; None: nothing."""
    if answer is _NO_ANSWER:
        return (f"did not answer within {CHECK_TIMEOUT_S:g} s (frozen, overloaded, or cut off from the "
                "scheduler?); restart or stop it, and scan again")
    if isinstance(answer, ImportError):  # moodtag (or what it needs) is not installed there
        return f"cannot run moodtag ({type(answer).__name__}: {answer}); install it there: {INSTALL_HINT}"
    if isinstance(answer, BaseException):
        cause = str(answer).splitlines()[0] if str(answer) else ""
        return f"moodtag's check failed there ({type(answer).__name__}{': ' + cause if cause else ''})"
    return answer or None


class _NoWorkers:
    """Tells `on_workers` once when the cluster has had no worker threads for NO_WORKERS_S, and once
    when it has some again."""

    def __init__(self, on_workers: Callable[[int], None]) -> None:
        self.on_workers = on_workers
        self.since: float | None = None  # when the count first read 0
        self.told = False

    def count(self, threads: int, now: float) -> int:
        """`threads`, counted at `now`, as it is."""
        if threads:
            if self.told:
                self.on_workers(threads)
            self.since, self.told = None, False
        elif self.since is None:
            self.since = now
        elif not self.told and now - self.since >= NO_WORKERS_S:
            self.told = True
            self.on_workers(0)
        return threads


def _set_levels(levels: dict[str, int]) -> None:
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def _say_connecting(scheduler: str) -> None:
    """One line on a terminal's stderr before a connect that may take seconds (the scan's progress bar
    starts later): like the bar, nothing in a pipe or a log."""
    from tagger.console import err, shown

    if err.is_terminal:
        err.print(f"connecting to the Dask scheduler at {shown(scheduler)}...")


def _connect_cause(exc: OSError, scheduler: str) -> tuple[str, bool]:
    """(Why a connection to `scheduler` failed, in words; whether its host name is unknown). distributed
    retries until CONNECT_TIMEOUT_S and then says 'Timed out' whatever happened: the OS's error of its
    last try (a refused connection, an unknown host) is in the exception's chain, unless the deadline
    cut that try short; then one plain TCP connection, within PROBE_TIMEOUT_S, tells."""
    import socket

    from distributed.comm import get_address_host_port
    from distributed.comm.addressing import unparse_host_port

    host, port = get_address_host_port(scheduler)
    where = unparse_host_port(host, port)
    error = _os_error(exc) or _probe(host, port)
    if isinstance(error, socket.gaierror):
        if error.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
            return f"the host name {host} is not known", True
        return f"cannot look up the host name {host} ({error.strerror})", False
    if isinstance(error, ConnectionRefusedError):
        return f"the connection was refused: nothing listens at {where}", False
    if error is not None:
        return f"cannot connect to {where} ({error.strerror})", False
    return f"timed out: no answer from {where} within {CONNECT_TIMEOUT_S:g} s", False


def _os_error(exc: BaseException) -> OSError | None:
    """The first error of the OS (one with an errno, not a timeout) in `exc`'s chain."""
    import errno

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno is not None and exc.errno != errno.ETIMEDOUT:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _probe(host: str, port: int) -> OSError | None:
    """The OS's error for one TCP connection to host:port; None when it connects, or does not answer
    within PROBE_TIMEOUT_S. A stop signal meanwhile raises KeyboardInterrupt."""
    import socket

    try:
        with _stop_signals_interrupt(), socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            return None
    except socket.timeout:
        return None
    except OSError as exc:
        return _os_error(exc)


def _open_client(scheduler: str):
    """A distributed Client connected to `scheduler`, its whole handshake bounded by HANDSHAKE_TIMEOUT_S
    (Client's own timeout bounds only the TCP connect: a service that never answers, such as the
    scheduler's dashboard port, would hold it forever). A client whose start fails (also by
    KeyboardInterrupt) is closed at once, quietly: left to its __del__, it would wait and then print
    a TimeoutError trace as the process exits."""
    from distributed import Client

    class BoundedClient(Client):
        def start(self, **kwargs):
            try:
                super().start(callback_timeout=HANDSHAKE_TIMEOUT_S, **kwargs)
            except BaseException:
                _close_quietly(self)
                raise

    return BoundedClient(scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False)


def _close_quietly(client) -> None:
    """Close a client whose start failed, within a second, saying nothing."""
    try:
        client.close(timeout=1)
    except BaseException:  # a close interrupted, or timed out: what is left goes with the process
        pass
    client.status = "closed"  # its __del__ then has nothing to do


@contextmanager
def _stop_signals_interrupt():
    """While connecting, a stop signal (Ctrl-C, SIGTERM, SIGHUP) raises KeyboardInterrupt in this
    thread, after the handler in place (the scan's StopRequests, which notes it) ran: the client's
    wait for the scheduler then cancels the connection. Elsewhere the scan only polls for them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    previous = {sig: handler for sig, handler in handlers.items() if callable(handler)}  # not SIG_IGN, SIG_DFL

    def interrupt(signum, frame):
        previous[signum](signum, frame)
        raise KeyboardInterrupt

    for sig in previous:
        signal.signal(sig, interrupt)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
