"""A library scan: discover -> skip fresh -> parallel analyze -> write tags -> re-stat -> cache.

Workers (tagger.pool) do the pure part: decode the clips, run the model, read the file's existing
tags. The parent alone writes tags and the database, so there is one SQLite writer, and --dry-run is
one branch here. Nothing heavy (torch, the model) is imported or loaded before there is work to do.

Order of writes, so that nothing is lost whenever the scan stops: the cache is checked (moodtag's,
schema, writable, space) before the first tag is written; a track's result is committed before its
file is touched; its tags are written crash-safely (tagger.safewrite); then the row learns the file's
new size and mtime. The scan stops between tracks when `stop()` says so (the CLI's signals).
"""
from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from tagger.cache import Cache, CachedTrack, path_key, resolve_db_path, scan_lock
from tagger.discover import WalkProblem, walk
from tagger.errors import MoodtagError
from tagger import stages
from tagger.records import ClipScore, TrackRef, TrackResult
from tagger.stages import stage
from tagger.weights import ModelSpec, read_spec, resolve_model

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
    stages: dict | None = None  # the parent's stage times for it (tagger.stages), when asked

    def to_json(self) -> dict:
        data = self.result.to_json()
        data.update(action=self.action, tags=self.tags)
        if self.tag_error:
            data["tag_error"] = self.tag_error
        if self.stages is not None or self.result.stages is not None:
            data["stages"] = {"worker": self.result.stages, "parent": self.stages}
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
    restored: int = 0
    moods: Counter = field(default_factory=Counter)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, cause)
    interrupted: bool = False
    dry_run: bool = False
    elapsed: float = 0.0
    jobs: int = 0


@dataclass(frozen=True)
class ScanEvent:
    """Progress, for the CLI: kind is 'waiting' (for another scan's lock), 'restored' (a tag write
    that a crash interrupted, undone), 'jobs' (--jobs capped: count = jobs used, total = asked),
    'walking', 'planned', 'track' or 'problem'."""

    kind: str
    count: int = 0
    total: int = 0
    todo: int = 0
    outcome: TrackOutcome | None = None
    path: Path | None = None
    cause: str | None = None


class _Stopped(Exception):
    """stop() said so: leave the scan between two tracks."""


def scan_library(paths: list[Path], *, db: Path | None = None, model: str | None = None, jobs: int = 0,
                 oversubscribe: bool = False, dry_run: bool = False, no_write: bool = False,
                 force: bool = False, keep_mtime: bool = False, include_hidden: bool = False,
                 full_results: bool = False, timeout: float | None = None,
                 on_event: Callable[[ScanEvent], None] = lambda e: None,
                 stop: Callable[[], bool] = lambda: False) -> ScanSummary:
    """Scan `paths`, classify what is new or changed, write tags (unless dry_run/no_write), cache all.

    `jobs`: worker processes (0: one per core; more than the cores only with `oversubscribe`).
    `timeout`: seconds after which a track still being analysed is given up (None: the pool's default).
    Raises MoodtagError only for fatal problems (missing path, unusable model or database)."""
    started = time.monotonic()
    check_paths(paths)
    model_path = resolve_model(model)
    spec = read_spec(model_path)
    summary = ScanSummary(dry_run=dry_run)
    summary.jobs, asked = plan_jobs(jobs, oversubscribe=oversubscribe)
    if asked > summary.jobs:
        on_event(ScanEvent("jobs", count=summary.jobs, total=asked))
    write_tags = not (dry_run or no_write)
    db_path = resolve_db_path(db)

    def check_stop() -> None:
        if stop():
            raise _Stopped

    lock = cache = journal = None
    try:
        if not dry_run:
            lock = scan_lock(db_path, on_wait=lambda: on_event(ScanEvent("waiting", path=db_path)),
                             should_stop=stop)
        cache = _open_cache(db_path, dry_run=dry_run)
        if not dry_run:
            cache.check_writable()
        if write_tags:
            journal = _journal(db_path)
            for restored in journal.recover():
                summary.restored += 1
                on_event(ScanEvent("restored", path=restored.path, cause=restored.action))
        roots = [Path(os.path.abspath(p)) for p in paths]
        known = cache.known_under(roots) if cache else {}
        refs: list[TrackRef] = []
        for item in walk(paths, include_hidden=include_hidden):
            check_stop()
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
                    and not os.path.lexists(row.fs_path)]
            summary.missing = cache.mark_missing(gone)
        on_event(ScanEvent("planned", total=len(refs), todo=len(todo)))

        options = dict(write_tags=write_tags, dry_run=dry_run, keep_mtime=keep_mtime, journal=journal)
        for ref, row in fresh:
            check_stop()
            outcome = _handle_cached(ref, row, cache, spec, full=full_results, **options)
            _account(summary, outcome)
            on_event(ScanEvent("track", outcome=outcome))
        if todo:
            from tagger.pool import TRACK_TIMEOUT_S, analyse_tracks

            by_path = {ref.path: ref for ref in todo}
            results = analyse_tracks(todo, model_path, jobs=min(summary.jobs, len(todo)), stop=stop,
                                     timeout=TRACK_TIMEOUT_S if timeout is None else timeout)
            try:
                for path, result, info in results:
                    received = time.perf_counter()
                    with stages.recording() as clock:
                        outcome = _handle_new(by_path[path], result, info, cache, spec, **options)
                    if clock is not None:
                        outcome = replace(outcome, stages={**clock.as_dict(), "received_s": received})
                    _account(summary, outcome)
                    on_event(ScanEvent("track", outcome=outcome))
                    check_stop()
            finally:
                results.close()  # kills the workers now, done or stopped
        check_stop()
    except (_Stopped, KeyboardInterrupt):
        summary.interrupted = True
    finally:
        if journal is not None:
            journal.close()
        if cache:
            cache.close()
        if lock is not None:
            lock.release()
    summary.elapsed = time.monotonic() - started
    return summary


def check_paths(paths: list[Path]) -> None:
    """Every PATH must exist; an empty one (an unset variable) is an error, not the current folder."""
    if not paths:
        raise MoodtagError("no PATH given")
    for p in paths:
        if str(p) == "":
            raise MoodtagError("an empty PATH (an unset variable?); give a folder or file")
        try:
            os.stat(p)
        except FileNotFoundError:
            raise MoodtagError(f"{p}: no such file or folder") from None
        except OSError as exc:
            raise MoodtagError(f"{p}: {exc.strerror.lower() if exc.strerror else exc}") from None


def plan_jobs(jobs: int, *, oversubscribe: bool = False) -> tuple[int, int]:
    """(worker processes to use, as asked): 0 means one per core; more than the cores is capped to
    them unless `oversubscribe` (each worker holds a model and a decoder: 1,000 of them exhaust memory
    and run slower than a few)."""
    if jobs < 0:
        raise MoodtagError(f"--jobs must be 0 (one per core) or more, not {jobs}")
    cores = available_cores()
    asked = jobs or cores
    return (asked if oversubscribe else min(asked, cores)), asked


def _journal(db_path: Path):
    from tagger.safewrite import UndoJournal

    return UndoJournal.for_cache(db_path)


def _handle_new(ref: TrackRef, result: TrackResult, info: dict | None, cache: Cache | None,
                spec: ModelSpec, *, write_tags: bool, dry_run: bool, keep_mtime: bool, journal) -> TrackOutcome:
    if not result.ok:
        if cache and not dry_run:
            with stage("cache write"):
                cache.record(result, ref, info=info)
        return TrackOutcome(ref, result, FAILED, "-")
    if cache and not dry_run:  # committed before the file is touched: a tag is never written without a row
        with stage("cache write"):
            cache.record(result, ref, info=info, tagged=False)
    with stage("tag write"):
        tags, tag_error, ref_after = _apply_tags(ref, result.mood, result.scores, spec, write_tags=write_tags,
                                                 dry_run=dry_run, keep_mtime=keep_mtime, journal=journal)
    if cache and tags in ("written", "unchanged") and write_tags:
        with stage("cache write"):
            cache.set_tagged(ref.path, ref_after)
    return TrackOutcome(ref, result, ANALYSED, tags, tag_error)


def _handle_cached(ref: TrackRef, row: CachedTrack, cache: Cache | None, spec: ModelSpec, *,
                   write_tags: bool, dry_run: bool, keep_mtime: bool, full: bool, journal) -> TrackOutcome:
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
                                                 write_tags=write_tags, dry_run=dry_run, keep_mtime=keep_mtime,
                                                 journal=journal)
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
                dry_run: bool, keep_mtime: bool, journal) -> tuple[str, str | None, TrackRef]:
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
    try:  # crash-safe (tagger.safewrite); the scan stops only between tracks
        changed = write_mood(ref.path, values, journal=journal)
        if changed and keep_mtime:
            os.utime(ref.path, ns=(os.stat(ref.path).st_atime_ns, ref.mtime_ns))
    except MoodtagError as exc:
        return "failed", str(exc), ref
    try:
        return ("written" if changed else "unchanged"), None, TrackRef.from_path(ref.path)
    except OSError as exc:
        return "failed", f"cannot stat after tagging: {exc.strerror}", ref


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


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _open_cache(db_path: Path, *, dry_run: bool) -> Cache | None:
    if not dry_run:
        return Cache.open(db_path)
    return Cache.open_readonly(db_path) if db_path.is_file() else None
