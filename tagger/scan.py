"""A library scan: discover -> skip fresh -> parallel analyze -> write tags -> re-stat -> cache.

Workers (joblib) do the pure part: decode the clips, run the model, read the file's existing tags.
The parent alone writes tags and the database, so there is one SQLite writer, and --dry-run is one
branch here. Nothing heavy (torch, the model) is imported or loaded before there is work to do.
"""
from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tagger.cache import Cache, CachedTrack, path_key
from tagger.discover import WalkProblem, walk
from tagger.errors import MoodtagError
from tagger.records import ClipScore, TrackRef, TrackResult
from tagger.weights import ModelSpec, read_spec, resolve_model
from tagger.worker import analyze_in_worker

# What a track's outcome can be (the `action` key of `scan --json`).
ANALYSED, CACHED, FAILED = "analysed", "cached", "failed"


@dataclass(frozen=True)
class TrackOutcome:
    """One track of a scan: the result, what the scan did, and what happened to its tags."""

    ref: TrackRef
    result: TrackResult
    action: str                 # analysed | cached | failed
    tags: str                   # written | unchanged | would write | not written | failed | -
    tag_error: str | None = None

    def to_json(self) -> dict:
        data = self.result.to_json()
        data.update(action=self.action, tags=self.tags)
        if self.tag_error:
            data["tag_error"] = self.tag_error
        return data


@dataclass
class ScanSummary:
    """Counts and failures of a finished (or interrupted) scan."""

    found: int = 0
    analysed: int = 0
    cached: int = 0
    failed: int = 0
    written: int = 0
    tag_failures: int = 0
    missing: int = 0
    moods: Counter = field(default_factory=Counter)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, cause)
    interrupted: bool = False
    dry_run: bool = False
    elapsed: float = 0.0


@dataclass(frozen=True)
class ScanEvent:
    """Progress, for the CLI: kind is 'waiting' (for another scan's lock), 'walking', 'planned',
    'track' or 'problem'."""

    kind: str
    count: int = 0
    total: int = 0
    todo: int = 0
    outcome: TrackOutcome | None = None
    path: Path | None = None
    cause: str | None = None


def scan_library(paths: list[Path], *, db: Path | None = None, model: str | None = None, jobs: int = 0,
                 dry_run: bool = False, no_write: bool = False, force: bool = False,
                 keep_mtime: bool = False, include_hidden: bool = False, full_results: bool = False,
                 on_event: Callable[[ScanEvent], None] = lambda e: None) -> ScanSummary:
    """Scan `paths`, classify what is new or changed, write tags (unless dry_run/no_write), cache all.

    Raises MoodtagError only for fatal problems (missing path, unusable model or database)."""
    started = time.monotonic()
    for p in paths:
        try:
            os.stat(p)
        except FileNotFoundError:
            raise MoodtagError(f"{p}: no such file or folder") from None
        except OSError as exc:
            raise MoodtagError(f"{p}: {exc.strerror.lower() if exc.strerror else exc}") from None
    model_path = resolve_model(model)
    spec = read_spec(model_path)
    jobs = jobs if jobs > 0 else available_cores()
    summary = ScanSummary(dry_run=dry_run)
    write_tags = not (dry_run or no_write)

    lock = None if dry_run else _scan_lock(db, on_event)
    cache = None
    try:
        cache = _open_cache(db, dry_run=dry_run)
        roots = [Path(os.path.abspath(p)) for p in paths]
        known = cache.known_under(roots) if cache else {}
        refs: list[TrackRef] = []
        for item in walk(paths, include_hidden=include_hidden):
            if isinstance(item, WalkProblem):
                summary.problems.append((str(item.path), item.cause))
                on_event(ScanEvent("problem", path=item.path, cause=item.cause))
            else:
                refs.append(item)
                if len(refs) % 500 == 0:
                    on_event(ScanEvent("walking", count=len(refs)))
        summary.found = len(refs)

        todo, fresh = [], []
        seen_keys = set()
        for ref in refs:
            key = path_key(ref.path)[0]
            seen_keys.add(key)
            row = known.get(key)
            if not force and row is not None and row.is_fresh(ref, model_name=spec.name, model_version=spec.version):
                fresh.append((ref, row))
            else:
                todo.append(ref)
        if cache and not dry_run:
            gone = [k for k, row in known.items() if k not in seen_keys and row.status != "missing"
                    and not os.path.lexists(k)]
            summary.missing = cache.mark_missing(gone)
        on_event(ScanEvent("planned", total=len(refs), todo=len(todo)))

        with _deferred_interrupt() as pending:
            for ref, row in fresh:
                outcome = _handle_cached(ref, row, cache, spec, write_tags=write_tags, dry_run=dry_run,
                                         keep_mtime=keep_mtime, full=full_results)
                _account(summary, outcome)
                on_event(ScanEvent("track", outcome=outcome))
                pending.check()
            if todo:
                by_path = {ref.path: ref for ref in todo}
                for path, result, info in _analyze_all(todo, model_path, jobs=jobs):
                    outcome = _handle_new(by_path[path], result, info, cache, spec, write_tags=write_tags,
                                          dry_run=dry_run, keep_mtime=keep_mtime)
                    _account(summary, outcome)
                    on_event(ScanEvent("track", outcome=outcome))
                    pending.check()
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        if cache:
            cache.close()
        if lock is not None:
            lock.release()
    summary.elapsed = time.monotonic() - started
    return summary


def _analyze_all(todo: list[TrackRef], model_path: Path, *, jobs: int):
    """Yield (path, TrackResult, info) as workers finish, in any order; memory stays flat."""
    if jobs == 1 or len(todo) == 1:
        for ref in todo:
            yield analyze_in_worker(ref.path, str(model_path))
        return
    from joblib import Parallel, delayed

    parallel = Parallel(n_jobs=min(jobs, len(todo)), return_as="generator_unordered",
                        pre_dispatch="2*n_jobs", batch_size=1)
    try:
        yield from parallel(delayed(analyze_in_worker)(ref.path, str(model_path)) for ref in todo)
    finally:
        # Stop the workers now (done or interrupted) rather than leave them idling for minutes.
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=False, kill_workers=True)


def _handle_new(ref: TrackRef, result: TrackResult, info: dict | None, cache: Cache | None,
                spec: ModelSpec, *, write_tags: bool, dry_run: bool, keep_mtime: bool) -> TrackOutcome:
    if not result.ok:
        if cache and not dry_run:
            cache.record(result, ref, info=info)
        return TrackOutcome(ref, result, FAILED, "-")
    tags, tag_error, ref_after = _apply_tags(ref, result.mood, result.scores, spec, write_tags=write_tags,
                                             dry_run=dry_run, keep_mtime=keep_mtime)
    if cache and not dry_run:
        cache.record(result, ref_after, info=info, tagged=tags in ("written", "unchanged"))
    return TrackOutcome(ref, result, ANALYSED, tags, tag_error)


def _handle_cached(ref: TrackRef, row: CachedTrack, cache: Cache | None, spec: ModelSpec, *,
                   write_tags: bool, dry_run: bool, keep_mtime: bool, full: bool) -> TrackOutcome:
    needs_tags = row.status == "ok" and not row.tagged and (write_tags or dry_run)
    data = cache.get(ref.path) if (full or needs_tags) and cache else None
    result = _result_from_row(ref.path, row, data)
    if row.status == "failed":
        return TrackOutcome(ref, result, CACHED, "-")
    if cache and not dry_run and row.status == "missing":
        cache.set_present(ref.path)
    tags = "unchanged" if row.tagged else "not written"
    tag_error = None
    if needs_tags and data is not None:
        tags, tag_error, ref_after = _apply_tags(ref, row.mood, json.loads(data["scores"] or "{}"), spec,
                                                 write_tags=write_tags, dry_run=dry_run, keep_mtime=keep_mtime)
        if cache and not dry_run and tags in ("written", "unchanged"):
            cache.set_tagged(ref.path, ref_after)
    return TrackOutcome(ref, result, CACHED, tags, tag_error)


def _result_from_row(path: Path, row: CachedTrack, data: dict | None) -> TrackResult:
    scores, clips, duration = {}, (), None
    if data:
        scores = json.loads(data["scores"] or "{}")
        clips = tuple(ClipScore(c["start"], c["scores"]) for c in json.loads(data["clips"] or "[]"))
        duration = data["duration"]
    return TrackResult(path=path, mood=row.mood, confidence=row.confidence, scores=scores, clips=clips,
                       duration=duration, model_name=row.model_name, model_version=row.model_version,
                       error=row.error if row.status == "failed" else None)


def _apply_tags(ref: TrackRef, mood: str, scores: dict, spec: ModelSpec, *, write_tags: bool,
                dry_run: bool, keep_mtime: bool) -> tuple[str, str | None, TrackRef]:
    """Write the mood tags unless asked not to; returns (tags action, error, the file's ref afterwards)."""
    from tagger.tags import MoodValues, read_mood, write_mood

    values = MoodValues(mood=mood, scores={k: round(v, 3) for k, v in scores.items()},
                        model=f"{spec.name} {spec.version}")
    if dry_run:
        try:
            current = read_mood(ref.path)
        except MoodtagError as exc:
            return "failed", str(exc), ref
        return ("unchanged" if current == values else "would write"), None, ref
    if not write_tags:
        return "not written", None, ref
    try:
        now = TrackRef.from_path(ref.path)
    except OSError as exc:
        return "failed", f"cannot stat: {exc.strerror}", ref
    if (now.size, now.mtime_ns) != (ref.size, ref.mtime_ns):
        return "failed", "file changed while it was analysed; not tagged (scan again)", ref
    try:  # the caller holds SIGINT/SIGTERM: a write is never cut in half
        changed = write_mood(ref.path, values)
        if changed and keep_mtime:
            os.utime(ref.path, ns=(os.stat(ref.path).st_atime_ns, ref.mtime_ns))
    except MoodtagError as exc:
        return "failed", str(exc), ref
    return ("written" if changed else "unchanged"), None, TrackRef.from_path(ref.path)


def _account(summary: ScanSummary, outcome: TrackOutcome) -> None:
    if outcome.action == ANALYSED:
        summary.analysed += 1
    elif outcome.action == CACHED:
        summary.cached += 1
    if not outcome.result.ok:
        if outcome.action == FAILED:
            summary.failed += 1
            summary.problems.append((str(outcome.ref.path), outcome.result.error or "failed"))
    else:
        summary.moods[outcome.result.mood] += 1
    if outcome.tags == "written":
        summary.written += 1
    elif outcome.tags == "failed":
        summary.tag_failures += 1
        summary.problems.append((str(outcome.ref.path), f"tags not written: {outcome.tag_error}"))


def _scan_lock(db: Path | None, on_event):
    """Hold `<db>.lock` for the whole scan: a second scan of the same database waits for the first
    (two scans writing tags to one file at once could damage it). Released if the process dies."""
    from filelock import FileLock, Timeout

    from tagger.cache import default_db_path

    path = Path(db).expanduser() if db else default_db_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path) + ".lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            on_event(ScanEvent("waiting", path=path))
            lock.acquire()
    except OSError as exc:
        raise MoodtagError(f"{path}: cannot lock the cache database ({exc.strerror or exc})") from None
    return lock


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _open_cache(db: Path | None, *, dry_run: bool) -> Cache | None:
    if not dry_run:
        return Cache.open(db)
    from tagger.cache import default_db_path

    path = Path(db).expanduser() if db else default_db_path()
    return Cache.open_readonly(path) if path.is_file() else None


class _Pending:
    def __init__(self) -> None:
        self.signal: int | None = None

    def check(self) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt


@contextmanager
def _deferred_interrupt():
    """Hold SIGINT/SIGTERM while the block runs (a tag write is never cut in half), then act on it."""
    import threading

    pending = _Pending()
    if threading.current_thread() is not threading.main_thread():
        yield pending
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def hold(signum, frame):
        pending.signal = signum

    for sig in previous:
        signal.signal(sig, hold)
    try:
        yield pending
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if pending.signal is not None:
        raise KeyboardInterrupt
