"""Many tracks analysed in worker processes (joblib's loky process pool), surviving workers that die.

The parent keeps a few tracks per worker in flight and takes the results in the order they finish,
so memory stays flat. A worker that dies (a decoder's segfault, the OOM killer) breaks the pool and
every track in flight with it: those tracks are then analysed again one at a time, each alone in a
fresh worker, so the one that kills its worker again becomes a failure with the cause and the others
get their results; then a new pool takes the rest. Even one job runs in a worker process: a crash
in a decoder must never take the scan down with it, or stop every later scan at the same file.
"""
from __future__ import annotations

import os
import re
import signal
from collections import deque
from concurrent.futures import FIRST_COMPLETED, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from tagger.errors import MoodtagError
from tagger.records import TrackRef, TrackResult
from tagger.worker import WORKER_SIGNALS, analyze_in_worker, init_worker

IN_FLIGHT_PER_WORKER = 2
IDLE_WORKER_TIMEOUT_S = 60
MAX_DEATHS_IN_A_ROW = 20  # tracks that each killed their own worker, one after the other: give up
_THREAD_LIMITS = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                         "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")}

Outcome = tuple[Path, TrackResult, "dict | None"]


def analyse_tracks(refs: list[TrackRef], model_path: Path, *, jobs: int,
                   stop: Callable[[], bool] = lambda: False) -> Iterator[Outcome]:
    """Yield (path, TrackResult, tag info) for every ref, in the order they finish. Stops submitting
    when `stop()` is true; closing the generator kills the workers at once. Raises MoodtagError when
    the model cannot be loaded, or when workers die one after the other whatever they analyse."""
    queue = deque(refs)
    deaths_in_a_row = 0
    while queue and not stop():
        suspects: list[TrackRef] = []
        with _pool(jobs) as executor:
            in_flight: dict = {}
            while (queue or in_flight) and not suspects:
                while queue and len(in_flight) < IN_FLIGHT_PER_WORKER * jobs and not stop():
                    ref = queue.popleft()
                    in_flight[_submit(executor, ref, model_path)] = ref
                if not in_flight:
                    return
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    ref = in_flight.pop(future)
                    outcome = _outcome(future, ref)
                    if outcome is None:
                        suspects.append(ref)
                    else:
                        deaths_in_a_row = 0
                        yield outcome
            suspects += in_flight.values()  # the pool is broken: these died with it
        for ref in suspects:  # each alone: only the one that kills its worker again fails
            if stop():
                return
            with _pool(1) as executor:
                future = _submit(executor, ref, model_path)
                wait([future])
                outcome = _outcome(future, ref)
            if outcome is None:
                deaths_in_a_row += 1
                cause = _death_cause(future.exception())
                if deaths_in_a_row >= MAX_DEATHS_IN_A_ROW:
                    raise MoodtagError(f"worker processes keep dying, whatever they analyse ({cause}); "
                                       f"stopped after {deaths_in_a_row} tracks in a row")
                yield ref.path, TrackResult.failed(ref.path, f"the analysing process died ({cause}); "
                                                             "the file may crash its decoder"), None
            else:
                deaths_in_a_row = 0
                yield outcome


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


def _submit(executor, ref: TrackRef, model_path: Path):
    with _signals_blocked():  # a worker started now begins with them blocked, then ignores them
        return executor.submit(analyze_in_worker, ref.path, str(model_path))


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

    with _signals_blocked():
        executor = ProcessPoolExecutor(max_workers=jobs, timeout=IDLE_WORKER_TIMEOUT_S, initializer=init_worker,
                                       initargs=(os.getpid(),), env=_THREAD_LIMITS)
    try:
        yield executor
    finally:
        executor.shutdown(wait=False, kill_workers=True)


@contextmanager
def _signals_blocked():
    """Block SIGINT and SIGHUP in this thread for a moment: a process (or thread) started meanwhile
    inherits the mask, and what arrives meanwhile is delivered when it ends, not lost."""
    wanted = {getattr(signal, name) for name in WORKER_SIGNALS}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, wanted)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
