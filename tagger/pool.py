"""Many tracks analysed in worker processes (joblib's loky process pool), surviving workers that die.

The parent keeps a few tracks per worker in flight and takes the results in the order they finish,
so memory stays flat. A worker that dies (a decoder's segfault, the OOM killer) breaks the pool and
every track in flight with it; a track that runs past its timeout (a decoder that hangs) makes the
parent end the pool itself. The tracks that were in flight are then analysed again one at a time,
each alone in a fresh worker, so the one that kills or hangs its worker again becomes a failure with
the cause and the others get their results; then a new pool takes the rest. Even one job runs in a worker process: a crash
in a decoder must never take the scan down with it, or stop every later scan at the same file.
"""
from __future__ import annotations

import os
import re
import signal
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from tagger.errors import MoodtagError
from tagger.records import TrackRef, TrackResult
from tagger.worker import TRACK_TIMEOUT_S, WORKER_SIGNALS, analyze_in_worker, init_worker

IN_FLIGHT_PER_WORKER = 2
IDLE_WORKER_TIMEOUT_S = 60
MAX_FAILURES_IN_A_ROW = 20  # tracks that each killed (or hung) their own worker, one after the other: give up
POLL_S = 0.25               # how often a wait looks at stop() and the clock
POOL_END_WAIT_S = 5.0       # at most this long for the pool's threads to end after its shutdown (_let_end)
_THREAD_LIMITS = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                         "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")}

Outcome = tuple[Path, TrackResult, "dict | None"]


def analyse_tracks(refs: list[TrackRef], model_path: Path, *, jobs: int, timeout: float = TRACK_TIMEOUT_S,
                   device: str = "cpu", stop: Callable[[], bool] = lambda: False) -> Iterator[Outcome]:
    """Yield (path, TrackResult, tag info) for every ref, in the order they finish (a CNN model runs on
    `device`, resolved already: 'cpu' or 'cuda'). Returns early
    (killing the workers) once `stop()` is true; closing the generator kills them too. A track still
    running after `timeout` seconds (a decoder that hangs) fails. Raises MoodtagError when the model
    cannot be loaded, or when workers die one after the other whatever they analyse."""
    queue = deque(refs)
    failures_in_a_row = 0
    while queue and not stop():
        suspects: list[TrackRef] = []
        with _pool(jobs) as executor:
            in_flight: dict = {}  # future -> (ref, when submitted)
            broken = False  # a worker died since the last wait: submit refused the next track
            while (queue or in_flight) and not suspects and not broken:
                while queue and len(in_flight) < IN_FLIGHT_PER_WORKER * jobs and not stop():
                    future = _submit_unless_broken(executor, queue[0], model_path, device)
                    if future is None:  # the track stays first in line for the next pool
                        broken = True
                        break
                    in_flight[future] = (queue.popleft(), time.monotonic())
                if not in_flight:
                    if broken:
                        break  # the dead worker held none of our tracks: a new pool takes the rest
                    return
                done, _ = wait(in_flight, timeout=POLL_S, return_when=FIRST_COMPLETED)
                for future in done:
                    ref, _ = in_flight.pop(future)
                    outcome = _outcome(future, ref)
                    if outcome is None:
                        suspects.append(ref)
                    else:
                        failures_in_a_row = 0
                        yield outcome
                if stop():
                    return
                if any(time.monotonic() - since > timeout for _, since in in_flight.values()):
                    break  # one hangs: this pool goes, and every track it held is tried alone
            suspects += [ref for ref, _ in in_flight.values()]  # died with the pool, or held by it
        for ref in suspects:  # each alone: only the one that kills (or hangs) its worker again fails
            alone = _alone(ref, model_path, device, timeout=timeout, stop=stop)
            if alone is None:
                return
            outcome, worker_lost = alone
            failures_in_a_row = count_lost_workers(failures_in_a_row, worker_lost, outcome,
                                                   workers="worker processes")
            yield outcome


def count_lost_workers(in_a_row: int, worker_lost: bool, outcome: Outcome, *, workers: str) -> int:
    """Tracks in a row that each killed (or hung) their worker, this one counted; past
    MAX_FAILURES_IN_A_ROW the fault is not in the tracks (a broken decoder, no memory): MoodtagError."""
    in_a_row = in_a_row + 1 if worker_lost else 0
    if in_a_row >= MAX_FAILURES_IN_A_ROW:
        raise MoodtagError(f"{workers} keep dying, whatever they analyse ({outcome[1].error}); "
                           f"stopped after {in_a_row} tracks in a row")
    return in_a_row


def _alone(ref: TrackRef, model_path: Path, device: str, *, timeout: float,
           stop: Callable[[], bool]) -> tuple[Outcome, bool] | None:
    """One track in a worker of its own: (its outcome, whether the worker died or hung: then the
    outcome is a failure saying so); None when `stop()` came first."""
    with _pool(1) as executor:
        future = _submit(executor, ref, model_path, device)
        since = time.monotonic()
        while not future.done():
            if stop():
                return None
            if time.monotonic() - since > timeout:
                return (ref.path, TrackResult.failed(
                    ref.path, f"gave up after {timeout:g} s: its analysis never ended (a decoder that hangs?)"),
                    None), True
            wait([future], timeout=POLL_S)
        outcome = _outcome(future, ref)
    if outcome is None:
        cause = _death_cause(future.exception())
        return (ref.path, TrackResult.failed(ref.path, f"the analysing process died ({cause}); "
                                                       "the file may crash its decoder"), None), True
    return outcome, False


def _outcome(future, ref: TrackRef) -> Outcome | None:
    """The future's result; None when its worker died (the pool broke). A ModelError is fatal."""
    from concurrent.futures.process import BrokenProcessPool  # loky's is a subclass

    try:
        return future.result()
    except BrokenProcessPool:
        return None
    except MoodtagError:
        raise
    except Exception as exc:  # e.g. a result too big to send back: still this one track's failure
        return ref.path, TrackResult.failed(ref.path, f"internal error ({type(exc).__name__}: {exc})"), None


def _submit_unless_broken(executor, ref: TrackRef, model_path: Path, device: str):
    """_submit, or None when the pool is broken already: a worker died (killed by the OOM killer, say)
    while the parent was busy elsewhere, writing another track's tags. loky then refuses every submit
    (BrokenProcessPool, as the futures in flight get), so the tracks in flight are handled as when a
    result says so: tried alone, then a new pool. A fresh pool never refuses its first submit, so each
    new pool takes at least one track."""
    from concurrent.futures.process import BrokenProcessPool  # loky's is a subclass

    try:
        return _submit(executor, ref, model_path, device)
    except BrokenProcessPool:
        return None


def _submit(executor, ref: TrackRef, model_path: Path, device: str):
    with _starting_workers(), _signals_blocked():  # a worker started now begins with them blocked, then ignores them
        return executor.submit(analyze_in_worker, ref.path, str(model_path), device)


@contextmanager
def _starting_workers():
    """Around what starts worker processes (the resource trackers, the queues loky makes with the pool,
    the workers it spawns on a submit): no file descriptor left for a pipe or a semaphore (a low
    `ulimit -n`) is one MoodtagError line, not a traceback (loky's OSError, or the UnboundLocalError its
    spawn raises while handling that OSError)."""
    import errno

    try:
        yield
    except Exception as exc:
        cause = exc
        while cause is not None and not (isinstance(cause, OSError) and cause.errno in (errno.EMFILE, errno.ENFILE)):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        if cause.errno == errno.ENFILE:
            raise MoodtagError("cannot start worker processes: too many open files in the system") from None
        import resource

        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        raise MoodtagError(f"cannot start worker processes: too many open files (the limit is {limit}: "
                           f"ulimit -n)") from None


def _death_cause(exc: BaseException | None) -> str:
    """'killed by SIGSEGV' etc. from loky's TerminatedWorkerError text ('exit codes ... {SIGSEGV(-11)}')."""
    text = str(exc or "")
    names = re.findall(r"\b(SIG[A-Z]+)\(-?\d+\)", text)
    if names:
        name = names[0]
        hint = {"SIGKILL": ", perhaps out of memory", "SIGSEGV": ", a crash", "SIGABRT": ", a crash",
                "SIGBUS": ", a crash"}.get(name, "")
        return f"killed by {name}{hint}"
    codes = re.findall(r"\{(-?\d+)\}", text)
    return f"exit status {codes[0]}" if codes else "it stopped unexpectedly"


@contextmanager
def _pool(jobs: int):
    from joblib.externals.loky import ProcessPoolExecutor

    with _starting_workers(), _signals_blocked():
        executor = ProcessPoolExecutor(max_workers=jobs, timeout=IDLE_WORKER_TIMEOUT_S, initializer=init_worker,
                                       initargs=(os.getpid(),), env=_THREAD_LIMITS)
    try:
        yield executor
    finally:
        _drop_queued_ids(executor)
        threads = _pool_threads(executor)
        executor.shutdown(wait=False, kill_workers=True)
        _let_end(threads)


def _drop_queued_ids(executor) -> None:
    """Take out the work ids that loky's manager thread has not yet moved to its call queue, before a
    shutdown that kills the workers: that shutdown drops every pending work item, then the thread takes
    a queued id and fails on it (KeyError), printed as `Exception in thread ExecutorManagerThread` (seen
    when `scan --json | head -1` closed the output early: 2 runs in 8). Their work items are still
    failed by the shutdown, and nobody waits for them."""
    import queue

    ids = getattr(executor, "_work_ids", None)  # loky's (and concurrent.futures') queue of submitted ids
    while ids is not None:
        try:
            ids.get_nowait()
        except queue.Empty:
            return


def _pool_threads(executor) -> list:
    """loky's manager thread, then its call queue's feeder thread (private attributes, so looked up
    with care: a loky without them gets no wait)."""
    manager = getattr(executor, "_executor_manager_thread", None)
    feeder = getattr(getattr(executor, "_call_queue", None), "_thread", None)
    return [thread for thread in (manager, feeder) if thread is not None]


def _let_end(threads, timeout_s: float = POOL_END_WAIT_S) -> None:
    """Give the pool's threads a moment to end before this process may exit. The manager thread closes
    the call queue after the shutdown; the queue's feeder thread, a daemon, then ends, dropping the
    last reference to the queue's write lock, a named semaphore, whose finalizer unlinks it and then
    tells loky's resource tracker. A process that exits in between (a scan ending right after its pool:
    `scan --json | head -1`) kills the thread after the unlink and before the message, and the tracker
    prints 'There appear to be 1 leaked semlock objects to clean up at shutdown' on stderr (3 runs in
    about 110 under load). Bounded: a stuck thread never holds the exit up for long."""
    deadline = time.monotonic() + timeout_s
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


@contextmanager
def _signals_blocked():
    """Block SIGINT and SIGHUP in this thread for a moment: a process (or thread) started meanwhile
    inherits the mask, and what arrives meanwhile is delivered when it ends, not lost. The resource
    trackers that loky's spawn needs are started here, under the mask (they too ignore a terminal's
    signals), and the mask is set again after: starting one (CPython's multiprocessing.resource_tracker.
    ensure_running) unblocks SIGINT and SIGTERM on its way out, and the worker spawned next then began
    without the mask (Ctrl-C printed its KeyboardInterrupt traceback while it imported)."""
    wanted = {getattr(signal, name) for name in WORKER_SIGNALS}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, wanted)
    try:  # the mask restored even where a tracker cannot start (no file descriptor left: _starting_workers)
        _start_resource_trackers()
        signal.pthread_sigmask(signal.SIG_BLOCK, wanted)
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _start_resource_trackers() -> None:
    """loky's resource tracker and multiprocessing's, as loky's spawn starts them (a no-op, but for a
    probe, when they run already)."""
    from multiprocessing import resource_tracker

    from joblib.externals.loky.backend import resource_tracker as loky_tracker

    loky_tracker.ensure_running()
    if os.name == "posix":
        resource_tracker.ensure_running()
