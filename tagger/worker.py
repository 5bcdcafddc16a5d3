"""What a scan's worker process runs: decode, classify, read the file's tags. Kept light (no cache,
no SQLite) so that a worker imports only what it needs."""
from __future__ import annotations

from pathlib import Path

from tagger.records import TrackResult

_WORKER_MODELS: dict[str, object] = {}


def analyze_in_worker(path: Path, model_path: str) -> tuple[Path, TrackResult, dict | None]:
    """Runs in a worker: one BLAS/torch thread, the model loaded once per process. A descriptor model
    runs on numpy alone: the worker then never imports torch (a second of start-up and ~300 MB saved)."""
    from threadpoolctl import threadpool_limits

    from tagger.analyze import analyze_track
    from tagger.weights import load_model

    loaded = _WORKER_MODELS.get(model_path)
    if loaded is None:
        loaded = _WORKER_MODELS[model_path] = load_model(model_path)
        if loaded.spec.features.kind != "descriptors":
            import torch

            torch.set_num_threads(1)
    with threadpool_limits(1):
        result = analyze_track(path, loaded)
    info = None
    if result.ok:
        from tagger.tags import read_info

        try:
            info = _info_dict(read_info(path))
        except Exception:  # tags unreadable: the mood is still known; the tag write will say why
            info = None
    return path, result, info


def _info_dict(info) -> dict:
    return {"format": info.format, "duration": info.duration, "artist": info.artist,
            "title": info.title, "album": info.album}
