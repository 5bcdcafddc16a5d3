"""What a scan's worker process runs: decode, classify, read the file's tags. Kept light (no cache,
no SQLite) so that a worker imports only what it needs."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from tagger.records import TrackResult

_WORKER_MODELS: dict[tuple[str, str], object] = {}  # (model file, device) -> LoadedModel
_MODELS_LOCK = threading.Lock()  # a Dask worker runs tasks in threads: one load per process
WORKER_SIGNALS = ("SIGINT", "SIGHUP")  # answered by the parent alone
# A track still analysing after this long is given up (a decoder that hangs). Here, not in tagger.pool, so
# that the CLI names its default without importing the pool (concurrent.futures, logging: 20 ms).
TRACK_TIMEOUT_S = 300.0


def init_worker(parent_pid: int) -> None:
    """Runs once when a worker process starts. Ctrl-C and hang-ups reach every process of the
    terminal's group: the parent alone answers them (it finishes the track in hand, or stops), so a
    worker ignores them. A worker whose parent died (SIGKILL, the OOM killer) exits within a second
    instead of idling for minutes. A crash is reported by the parent as one line: no core dump text."""
    import faulthandler
    import signal
    import threading
    import time

    wanted = {getattr(signal, name) for name in WORKER_SIGNALS}
    for sig in wanted:
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, wanted)  # blocked by the parent while it started us
    faulthandler.disable()

    def watch_parent() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch_parent, name="moodtag-parent-watch", daemon=True).start()


def analyze_in_worker(path: Path, model_path: str, device: str = "cpu") -> tuple[Path, TrackResult, dict | None]:
    """Runs in a worker: one BLAS/torch thread (set for the whole process), the model loaded once per
    process (a CNN on `device`, see tagger.device). A descriptor model runs on numpy alone: the worker
    then never imports torch (a second of start-up and ~300 MB saved).

    Never raises for a track: anything that goes wrong becomes a failed TrackResult with the cause.
    Only a model that cannot be loaded raises (ModelError): that is fatal for the whole scan."""
    from tagger import stages

    started = time.perf_counter()
    # all a new process spent before its first track: Python, loky, the imports of this module
    start_up = (time.process_time(), _process_age()) if not _WORKER_MODELS else None
    with stages.recording() as clock:
        with stages.stage("model load"):
            from tagger.analyze import analyze_track

            loaded = _model(model_path, device)
        try:
            result = analyze_track(path, loaded)
        except Exception as exc:  # analyze_track's own guard missed it: still one track's failure
            result = TrackResult.failed(path, f"internal error while analysing ({type(exc).__name__}: {exc})",
                                        model_name=loaded.spec.name, model_version=loaded.spec.version)
        info = None
        if result.ok:
            with stages.stage("tags read"):
                from tagger.tags import read_info

                try:
                    info = _info_dict(read_info(path))
                except Exception:  # tags unreadable: the mood is still known; the tag write will say why
                    info = None
    if clock is not None:
        if start_up is not None:
            clock.add("worker start", *start_up)
        result = _with_stages(result, clock, started=started, info=info)
    return path, result, info


def _with_stages(result: TrackResult, clock, *, started: float, info) -> TrackResult:
    """The result with its stage times, the task's span in this worker (perf_counter: the system's
    monotonic clock, the same in every process), and what sending it back costs (pickled as loky does)."""
    import pickle
    from dataclasses import replace

    data = replace(result, stages=clock.as_dict())
    cpu0 = time.thread_time()
    size = len(pickle.dumps((result.path, data, info), protocol=pickle.HIGHEST_PROTOCOL))
    clock.add("pickle result", time.thread_time() - cpu0, 0.0)
    task = {"pid": os.getpid(), "start_s": started, "end_s": time.perf_counter(), "result_bytes": size}
    return replace(result, stages={**clock.as_dict(), "task": task})


def _process_age() -> float:
    """Seconds since this process started (Linux: /proc/self/stat), 0.0 where unknown."""
    try:
        with open("/proc/self/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return time.clock_gettime(time.CLOCK_BOOTTIME) - int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0


def _model(model_path: str, device: str):
    from tagger.weights import load_model

    with _MODELS_LOCK:
        loaded = _WORKER_MODELS.get((model_path, device))
        if loaded is None:
            from threadpoolctl import threadpool_limits

            # once for the process (the pool also starts it with OMP_NUM_THREADS=1 and the like):
            # entered and left for every track, the limit cost more than a millisecond each time
            threadpool_limits(1)
            loaded = _WORKER_MODELS[model_path, device] = load_model(model_path, device=device)
            if loaded.spec.features.kind != "descriptors":
                import torch

                torch.set_num_threads(1)
    return loaded


def _info_dict(info) -> dict:
    return {"format": info.format, "duration": info.duration, "artist": info.artist,
            "title": info.title, "album": info.album}
