"""The independent parts of one read-only job (the runs of a long listing, of the tracks of the playlists
a command writes) side by side in forked processes, each part's result handed back in order.

Only where that is safe: Linux (fork, and the cores this process may use), a process with no other thread
(a fork copies the calling thread alone: a lock another thread holds would stay held in the child for
ever), and no SQLite connection open across the fork (SQLite's rule: a connection never crosses a fork;
the caller closes its own first, see Cache.released, and each part opens one, see Cache.reader).
Elsewhere the parts run here one after the other, with the same results.

A child hands back its part's return value or exception, pickled through a pipe: these are this program's
own processes, never a file from outside. A child that ends without one (killed) is an error of the job.
"""
from __future__ import annotations

import gc
import os
import signal
import sys
import threading
import traceback
from typing import Callable, Iterator, Sequence, TypeVar

from tagger.errors import MoodtagError

T = TypeVar("T")
MAX_PROCESSES = 4  # the outputs split this way are written by one process in the end: more gain little
SPLIT_MIN_ROWS = 20_000  # a job of fewer rows stays in one process (a fork and a cache opened: ~10 ms)


def processes_available() -> int:
    """How many parts may run side by side here: the cores this process may use (at most MAX_PROCESSES),
    or 1 where forking is not safe (see the module)."""
    if not sys.platform.startswith("linux") or not hasattr(os, "fork") or threading.active_count() > 1:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except OSError:
        return 1
    return max(1, min(cores, MAX_PROCESSES))


def run_parts(parts: Sequence[Callable[[], T]], *, end_children_on_error: bool = False) -> Iterator[T]:
    """Each part's result, in order: parts[1:] in forked children, parts[0] here meanwhile; every part
    here in turn when processes_available() is 1, and those no child could be forked for (the system
    refused a process) here after the first. A part's exception is raised when its turn comes
    (a child's as it was raised there, or as a MoodtagError giving its traceback when it cannot be
    pickled). If this process fails (or the caller stops early) while children run, they are waited for
    (a child may be writing a file it must not leave half done), or, with end_children_on_error (their
    work is thrown away), ended with SIGTERM first."""
    if len(parts) <= 1 or processes_available() == 1:
        for part in parts:
            yield part()
        return
    children: list[tuple[int, int]] = []  # (pid, read end of its pipe) of parts[1:], in order
    try:
        for sys_stream in (sys.stdout, sys.stderr):  # else text buffered here could be written twice
            sys_stream.flush()
        gc.freeze()  # the objects made so far: never traversed by a child's collections (no copies of their pages)
        try:
            for part in parts[1:]:
                try:
                    children.append(_fork(part))
                except OSError:  # no process to be had (a limit on processes, memory): the rest run here
                    break
        finally:
            gc.unfreeze()
        here = parts[1 + len(children):]
        yield parts[0]()
        while children:
            pid, fd = children[0]
            payload = _read_all(fd)
            os.close(fd)
            _, status = os.waitpid(pid, 0)
            children.pop(0)
            yield _result(payload, status)
        for part in here:
            yield part()
    finally:
        if children:
            if end_children_on_error:
                for pid, _ in children:
                    try:
                        os.kill(pid, signal.SIGTERM)
                    except ProcessLookupError:
                        pass
            for pid, fd in children:
                os.close(fd)
                os.waitpid(pid, 0)


def kept_blocks(file) -> Iterator[bytes]:
    """What a part wrote into the temporary file `file` (binary), from its start, 1 MB at a time."""
    file.flush()
    file.seek(0)
    while block := file.read(1 << 20):
        yield block


def _fork(part: Callable[[], object]) -> tuple[int, int]:
    import pickle  # here, not at the top: the CLI imports this module at start-up

    read, write = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(read)
        os.close(write)
        raise
    if pid:
        os.close(write)
        return pid, read
    # The child: never returns into the caller's code (its `finally` blocks, atexit, buffered output are
    # the parent's); it ends with os._exit whatever happens.
    status = 1
    try:
        os.close(read)
        try:
            outcome = (True, part())
        except KeyboardInterrupt:
            status = 128 + signal.SIGINT
            raise
        except BaseException as exc:  # noqa: BLE001 -- handed to the parent, which raises it
            outcome = (False, exc)
        try:
            payload = pickle.dumps(outcome)
        except Exception:  # an unpicklable result or exception: its text
            text = "".join(traceback.format_exception(outcome[1])) if not outcome[0] else repr(outcome[1])
            payload = pickle.dumps((False, MoodtagError(f"a part of this job failed in its own process:\n{text}")))
        with os.fdopen(write, "wb") as pipe:
            pipe.write(payload)
        status = 0
    finally:
        os._exit(status)


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _result(payload: bytes, status: int):
    import pickle

    if not payload:
        code = os.waitstatus_to_exitcode(status)
        if code == -signal.SIGINT or code == 128 + signal.SIGINT:
            raise KeyboardInterrupt
        how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        raise MoodtagError(f"a part of this job ended in its own process without a result ({how})")
    ok, value = pickle.loads(payload)
    if not ok:
        raise value
    return value
