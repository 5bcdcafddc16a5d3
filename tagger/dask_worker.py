"""What runs on a Dask worker for `scan --dask-scheduler` (tagger.dask_pool is the parent's side).

The model file reaches each worker as a worker plugin (`ModelFilePlugin`): the scheduler keeps it and
installs it on every worker, also on one that joins or is restarted later, which writes the file into
the worker's temporary folder under its sha256. A task then names the file; tagger.worker loads it
once per worker process and keeps it. Workers only read the library: decode, classify, read tags.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from distributed.diagnostics.plugin import WorkerPlugin

from tagger.errors import ModelError
from tagger.records import printable
from tagger.worker import analyze_in_worker


class ModelFilePlugin(WorkerPlugin):
    """A model file's bytes, written once on each worker that the plugin is installed on."""

    def __init__(self, file_name: str, sha256: str, data: bytes) -> None:
        self.file_name = file_name
        self.sha256 = sha256
        self.data = data

    @classmethod
    def read(cls, path: Path) -> "ModelFilePlugin":
        data = Path(path).read_bytes()
        return cls(Path(path).name, hashlib.sha256(data).hexdigest(), data)

    @property
    def name(self) -> str:
        return f"moodtag-model-{self.sha256[:16]}"

    def setup(self, worker=None) -> None:
        target = model_file(self.file_name, self.sha256)
        if not target.is_file():
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            part = target.with_name(f".{target.name}.{os.getpid()}.part")
            part.write_bytes(self.data)
            part.replace(target)


def model_file(file_name: str, sha256: str) -> Path:
    """Where a worker keeps a model file: its temporary folder, named by content."""
    owner = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"moodtag-models-{owner}" / f"{sha256}-{file_name}"


def analyze_on_dask_worker(path: str, file_name: str, sha256: str, device: str):
    """One track, analysed by tagger.worker with the model the plugin wrote (loaded once per
    process): (path, TrackResult, tag info). Never raises for a track; ModelError for the model."""
    model = model_file(file_name, sha256)
    if not model.is_file():
        raise ModelError(f"the model file {model} is missing on this worker (its plugin did not run)")
    return analyze_in_worker(Path(path), str(model), device)


def worker_problem(path: str, device: str | None, version: str) -> str | None:
    """Runs on each worker before the scan: None when it runs moodtag `version`, can read `path` and
    use `device`, else what is wrong, in words."""
    import tagger

    if tagger.__version__ != version:
        return (f"runs moodtag {tagger.__version__}, this machine {version}: install the same version on "
                "every machine (results could differ)")
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
