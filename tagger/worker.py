"""What a scan's worker process runs: decode, classify, read the file's tags. Kept light (no cache,
no SQLite) so that a worker imports only what it needs."""
from __future__ import annotations

import os
from pathlib import Path

from tagger.records import TrackResult

_WORKER_MODELS: dict[str, object] = {}
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


def analyze_in_worker(path: Path, model_path: str) -> tuple[Path, TrackResult, dict | None]:
    """Runs in a worker: one BLAS/torch thread, the model loaded once per process. A descriptor model
    runs on numpy alone: the worker then never imports torch (a second of start-up and ~300 MB saved).

    Never raises for a track: anything that goes wrong becomes a failed TrackResult with the cause.
    Only a model that cannot be loaded raises (ModelError): that is fatal for the whole scan."""
    from threadpoolctl import threadpool_limits

    from tagger.analyze import analyze_track

    loaded = _model(model_path)
    try:
        with threadpool_limits(1):
            result = analyze_track(path, loaded)
    except Exception as exc:  # analyze_track's own guard missed it: still one track's failure
        result = TrackResult.failed(path, f"internal error while analysing ({type(exc).__name__}: {exc})",
                                    model_name=loaded.spec.name, model_version=loaded.spec.version)
    info = None
    if result.ok:
        from tagger.tags import read_info

        try:
            info = _info_dict(read_info(path))
        except Exception:  # tags unreadable: the mood is still known; the tag write will say why
            info = None
    return path, result, info


def _model(model_path: str):
    from tagger.weights import load_model

    loaded = _WORKER_MODELS.get(model_path)
    if loaded is None:
        loaded = _WORKER_MODELS[model_path] = load_model(model_path)
        if loaded.spec.features.kind != "descriptors":
            import torch

            torch.set_num_threads(1)
    return loaded


def _info_dict(info) -> dict:
    return {"format": info.format, "duration": info.duration, "artist": info.artist,
            "title": info.title, "album": info.album}
