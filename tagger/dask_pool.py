"""Many tracks analysed on an existing Dask cluster (`moodtag scan --dask-scheduler tcp://HOST:PORT`).

The same interface and the same flow as tagger.pool: `analyse_on_cluster` yields (path, TrackResult,
tag info) in the order tracks finish, a few per worker thread in flight, and returns as soon as
`stop()` is true. Workers only read: they decode, classify and read the file's tags; the parent alone
writes tags and the cache. Every worker must see the library at the same path as the parent.

Tasks go to the cluster as distributed futures, not through joblib's Parallel: a Parallel call turns
one task's error, its `timeout` or a KilledWorker into an abort of every other task, and its result
generator blocks, so the scan could neither poll `stop()` nor give up one hanging track alone.

The model file's bytes go to every worker once (scattered); a worker writes them to its temporary
folder under their sha256 and loads the model once per process (tagger.worker's cache), so the
workers need no copy of the model, and a changed model file is never mistaken for the old one.
A worker that dies is replaced by its nanny and its tracks are rescheduled by Dask; a track on which
workers die again and again (distributed.scheduler.allowed-failures, 3 by default) fails with that
cause. A track still analysing after `timeout` seconds fails, and its worker is restarted.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from tagger.errors import ModelError, MoodtagError
from tagger.pool import MAX_FAILURES_IN_A_ROW, POLL_S, TRACK_TIMEOUT_S, Outcome
from tagger.records import TrackRef, TrackResult, printable

CONNECT_TIMEOUT_S = 10.0
IN_FLIGHT_PER_THREAD = 2
INSTALL_HINT = "pip install 'moodtag[dask]'"


@dataclass(frozen=True)
class ModelBytes:
    """A model file as sent to the workers: its name (for messages), sha256 and content."""

    name: str
    sha256: str
    data: bytes

    @classmethod
    def read(cls, path: Path) -> "ModelBytes":
        data = Path(path).read_bytes()
        return cls(name=Path(path).name, sha256=hashlib.sha256(data).hexdigest(), data=data)


def require_distributed() -> None:
    """Raise MoodtagError (one line) when dask's distributed package is not installed."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise MoodtagError(f"--dask-scheduler needs dask's distributed package: {INSTALL_HINT}") from None


class DaskCluster:
    """A connection to a running Dask cluster, open for one scan: `connect`, `check`, `analyse`, `close`."""

    def __init__(self, client, scheduler: str) -> None:
        self.client = client
        self.scheduler = scheduler

    @classmethod
    def connect(cls, scheduler: str) -> "DaskCluster":
        """Connect to the scheduler at `scheduler`; MoodtagError (one line) when distributed is not
        installed, the address is not one, or the scheduler cannot be reached within CONNECT_TIMEOUT_S."""
        import logging

        require_distributed()
        from distributed import Client
        from distributed.comm import get_address_host_port

        try:  # before Client(): one that fails on a malformed address leaves a thread that stalls the exit
            get_address_host_port(scheduler)
        except ValueError as exc:
            raise MoodtagError(f"--dask-scheduler {scheduler}: not a scheduler address ({exc}); "
                               "give tcp://HOST:PORT") from None
        quiet = logging.getLogger("distributed")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)  # its own retries and warnings would print lines of their own
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except (OSError, TimeoutError, ValueError, TypeError) as exc:
            cause = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise MoodtagError(f"cannot reach the Dask scheduler at {scheduler} ({cause}); is `dask scheduler` "
                               "running there, and reachable from here?") from None
        finally:
            quiet.setLevel(level)
        return cls(client, scheduler)

    def close(self) -> None:
        self.client.close(timeout=5)

    def check(self, sample: Path, *, device: str | None) -> int:
        """The cluster's worker threads. MoodtagError when it has none, or when a worker cannot import
        moodtag, see the library at `sample`'s path, or use `device` (None: the model ignores it)."""
        threads = self.client.nthreads()
        if not threads:
            raise MoodtagError(f"the Dask scheduler at {self.scheduler} has no workers; start some with "
                               f"`dask worker {self.scheduler}`")
        answers = self.client.run(worker_problem, str(sample), device, on_error="return")
        for address, answer in sorted(answers.items()):
            if isinstance(answer, BaseException):
                raise MoodtagError(f"Dask worker {address} cannot run moodtag ({type(answer).__name__}: "
                                   f"{answer}); install it there: {INSTALL_HINT}")
            if answer:
                raise MoodtagError(f"Dask worker {address}: {answer}")
        return sum(threads.values())

    def analyse(self, refs: list[TrackRef], model_path: Path, *, timeout: float = TRACK_TIMEOUT_S,
                device: str = "cpu", stop: Callable[[], bool] = lambda: False) -> Iterator[Outcome]:
        """Yield (path, TrackResult, tag info) for every ref, in the order they finish; return early
        once `stop()` is true (closing the generator too cancels what is left). `device` is resolved
        by each worker ('auto': its own GPU if it has one). Raises MoodtagError when a worker cannot
        load the model, the scheduler goes away, or workers die whatever they analyse."""
        from distributed import wait

        client = self.client
        in_flight: dict = {}  # future -> (ref, when submitted)
        try:
            threads = max(1, sum(client.nthreads().values()))
            model = client.scatter(ModelBytes.read(model_path), broadcast=True, hash=False)
            queue = deque(refs)
            run = uuid.uuid4().hex[:8]
            failures_in_a_row = 0
            while (queue or in_flight) and not stop():
                while queue and len(in_flight) < IN_FLIGHT_PER_THREAD * threads:
                    ref = queue.popleft()
                    future = client.submit(analyze_on_dask_worker, str(ref.path), model, device, pure=False,
                                           key=f"moodtag-{run}-{len(refs) - len(queue)}")
                    in_flight[future] = (ref, time.monotonic())
                try:
                    with client.as_current():  # wait() looks for its client there
                        done, _ = wait(list(in_flight), timeout=POLL_S, return_when="FIRST_COMPLETED")
                except TimeoutError:
                    done = set()
                for future in done:
                    ref, _ = in_flight.pop(future)
                    outcome, worker_lost = self._outcome(future, ref)
                    failures_in_a_row = failures_in_a_row + 1 if worker_lost else 0
                    if failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
                        raise MoodtagError(f"Dask workers keep dying, whatever they analyse ({outcome[1].error}); "
                                           f"stopped after {failures_in_a_row} tracks in a row")
                    yield outcome
                if stop():
                    return
                self._check_connected()
                now = time.monotonic()
                for future, (ref, since) in list(in_flight.items()):
                    if now - since > timeout:
                        del in_flight[future]
                        self._give_up(future)
                        yield ref.path, TrackResult.failed(
                            ref.path, f"gave up after {timeout:g} s: its analysis never ended (a decoder "
                                      "that hangs?); its Dask worker was restarted"), None
        finally:
            for future in in_flight:
                future.cancel()

    def _outcome(self, future, ref: TrackRef) -> tuple[Outcome, bool]:
        """(the finished future's outcome, whether its workers died); a ModelError is fatal."""
        from distributed import KilledWorker

        if future.status == "finished":
            _, result, info = future.result()
            return (ref.path, result, info), False
        if future.status != "error":  # cancelled or lost: the cluster forgot it
            self._check_connected()
            return (ref.path, TrackResult.failed(ref.path, "cancelled on the Dask cluster (was it restarted?)"),
                    None), False
        exc = future.exception()
        if isinstance(exc, KilledWorker):
            return (ref.path, TrackResult.failed(
                ref.path, "every Dask worker that analysed it died (distributed's allowed-failures); the file "
                          "may crash its decoder"), None), True
        if isinstance(exc, ModelError):
            raise ModelError(f"on a Dask worker: {exc}") from None
        return (ref.path, TrackResult.failed(
            ref.path, f"internal error on a Dask worker ({type(exc).__name__}: {exc})"), None), False

    def _check_connected(self) -> None:
        if self.client.status not in ("running", "connecting"):
            raise MoodtagError(f"lost the connection to the Dask scheduler at {self.scheduler} "
                               f"({self.client.status}); finished results are saved, scan again to resume")

    def _give_up(self, future) -> None:
        """Cancel a track that runs past its timeout, and restart the worker whose thread it holds (a
        thread cannot be stopped; its nanny replaces the process). Best effort: a worker without a
        nanny keeps the thread busy until the analysis ends."""
        try:
            holders = [worker for worker, keys in self.client.processing().items() if future.key in keys]
        except Exception:
            holders = []
        future.cancel()
        if holders:
            try:
                self.client.restart_workers(holders, raise_for_error=False)
            except Exception:
                pass


def worker_problem(path: str, device: str | None) -> str | None:
    """Runs on each worker before the scan: None when it can read `path` and use `device`, else what
    is wrong, in words."""
    import tagger  # noqa: F401  (the worker can import moodtag at all)

    if not os.access(path, os.R_OK):
        why = "cannot read" if os.path.exists(path) else "does not see"
        return f"{why} {printable(path)}: every worker must see the library at the same path as this machine"
    if device is not None:
        from tagger.device import resolve_device

        try:
            resolve_device(device)
        except ModelError as exc:
            return str(exc)
    return None


def analyze_on_dask_worker(path: str, model: ModelBytes, device: str) -> Outcome:
    """Runs on a Dask worker: the model file written once to this machine's temporary folder under its
    sha256, loaded once per process, then tagger.worker's analysis of one track (never raises for a
    track; a model that cannot be loaded raises ModelError)."""
    from tagger.worker import analyze_in_worker

    return analyze_in_worker(Path(path), str(_model_file(model)), device)


def _model_file(model: ModelBytes) -> Path:
    folder = Path(tempfile.gettempdir()) / f"moodtag-models-{os.getuid() if hasattr(os, 'getuid') else 0}"
    target = folder / f"{model.sha256}-{model.name}"
    if not target.is_file():
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        part = target.with_name(f".{target.name}.{os.getpid()}.part")
        part.write_bytes(model.data)
        part.replace(target)
    return target
