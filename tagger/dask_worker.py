"""What runs on a Dask worker for `scan --dask-scheduler` (tagger.dask_pool is the parent's side).

The model file reaches each worker as a worker plugin (`ModelFilePlugin`): the scheduler keeps it and
installs it on every worker, also on one that joins or is restarted later, which writes the file into
the worker's temporary folder under its sha256. Each scan registers its own plugin (a random part in its
name), so that a scan that ends removes only its own, never one another scan of the same model still
needs; the file they write is one, shared by content. A task then names the file; tagger.worker loads it
once per worker process and keeps it. Workers only read the library: decode, classify, read tags.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from pathlib import Path

from distributed.diagnostics.plugin import WorkerPlugin

from tagger.errors import ModelError
from tagger.records import TrackResult, printable
from tagger.worker import analyze_in_worker


class ModelFilePlugin(WorkerPlugin):
    """A model file's bytes, written once on each worker that the plugin is installed on. `name`: the
    plugin's, unique to one scan (the scheduler keys plugins by it)."""

    def __init__(self, file_name: str, sha256: str, data: bytes) -> None:
        self.file_name = file_name
        self.sha256 = sha256
        self.data = data
        self.name = f"moodtag-model-{sha256[:16]}-{uuid.uuid4().hex[:8]}"

    @classmethod
    def read(cls, path: Path) -> "ModelFilePlugin":
        data = Path(path).read_bytes()
        return cls(Path(path).name, hashlib.sha256(data).hexdigest(), data)

    def setup(self, worker=None) -> None:
        """Write the file, unless it is there whole: through a temporary name of its own, then renamed
        over it (atomic), so that two scans' plugins (or two worker processes) writing it at once are
        safe. ModelError naming the worker and the cause when it cannot be stored (a full disk)."""
        target = model_file(self.file_name, self.sha256)
        if _whole(target, self.data):
            return
        part = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part")
        try:
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            part.write_bytes(self.data)
            part.replace(target)
        except OSError as exc:
            _remove(part)
            cause = exc.strerror or type(exc).__name__
            if exc.filename is not None and str(exc.filename) != str(part):  # the folder (a file there?)
                cause += f": {printable(str(exc.filename))}"
            where = getattr(worker, "address", None)
            raise ModelError(f"Dask worker {where + ' ' if where else ''}cannot store the model file "
                             f"{printable(str(target))} ({cause})") from None


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:  # its folder is not one: nothing was written
        pass


def _whole(path: Path, data: bytes) -> bool:
    """Whether `path` is a file that holds `data`, byte for byte (one written whole, renamed into place,
    and not damaged since: a size alone would pass a file with flipped bytes, and give wrong moods)."""
    try:
        return path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


def model_file(file_name: str, sha256: str) -> Path:
    """Where a worker keeps a model file: its temporary folder, named by content."""
    owner = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"moodtag-models-{owner}" / f"{sha256}-{file_name}"


def analyze_on_dask_worker(path: str, size: int, mtime_ns: int, file_name: str, sha256: str, device: str):
    """One track, analysed by tagger.worker with the model the plugin wrote (loaded once per
    process): (path, TrackResult, tag info). `size` and `mtime_ns`: the file as the scanning machine
    saw it (its TrackRef); a file that differs here (an out-of-date synced copy), before or after its
    analysis, or that is not here, fails as unreadable (the next scan tries it again). Never raises for
    a track; ModelError for the model."""
    model = model_file(file_name, sha256)
    if not model.is_file():
        raise ModelError(f"the model file {model} is missing on this worker (its plugin did not run)")
    problem = _not_the_same(path, size, mtime_ns)
    if problem:
        return Path(path), TrackResult.failed(Path(path), problem), None
    analysed = analyze_in_worker(Path(path), str(model), device)
    problem = _not_the_same(path, size, mtime_ns)
    if problem:  # it changed while it was analysed here
        return Path(path), TrackResult.failed(Path(path), problem), None
    return analysed


MTIME_SLACK_NS = 2_000_000_000   # FAT's step: the coarsest mtime a share may report


def _not_the_same(path: str, size: int, mtime_ns: int) -> str | None:
    """Why this worker's file at `path` is not the one the scanning machine saw (`size`, `mtime_ns`), in
    words that tagger.errors.unreadable counts as such; None when it is (or cannot be stat'ed: the
    analysis then says why)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return (f"file not found on Dask worker {_address()}: every worker must see the library at the same "
                "path as this machine")
    except OSError:
        return None
    # the same share through another client (NFS here, SMB there) may give its mtime at another
    # precision: within MTIME_SLACK_NS is the same file; an out-of-date copy differs by more, or in size
    if st.st_size != size or abs(st.st_mtime_ns - mtime_ns) >= MTIME_SLACK_NS:
        return (f"cannot read: the file on Dask worker {_address()} differs from this machine's (size/mtime): "
                "every worker must see the same library at the same path")
    return None


def _address() -> str:
    """This Dask worker's address."""
    try:
        from distributed import get_worker

        return get_worker().address
    except ValueError:  # not in a worker's task
        return "?"


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
