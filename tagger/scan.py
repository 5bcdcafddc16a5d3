"""A library scan: discover -> skip fresh -> parallel analyze -> write tags -> re-stat -> cache.

Workers (tagger.pool) do the pure part: decode the clips, run the model, read the file's existing
tags. The parent alone writes tags and the database, so there is one SQLite writer, and --dry-run is
one branch here. Nothing heavy (torch, the model) is imported or loaded before there is work to do.

Order of writes, so that nothing is lost whenever the scan stops: the cache is checked (moodtag's,
schema, writable, space) before the first tag is written; a track's result is committed before its
file is touched; its tags are written crash-safely (tagger.safewrite); then the row learns the file's
new size and mtime, or, if the write failed, says so (status failed, the cause in `error`, the mood
kept): the next scan tries the write again without analysing the file again. A file `moodtag untag`
cleared stays without moodtag's fields (its row says untagged) unless `retag`, even when it changed
and is analysed again. A file whose mood field holds a value moodtag did not write keeps it (its row
says kept; tagger.tags.ForeignMood) unless `replace_mood`. The scan stops between tracks when
`stop()` says so (the CLI's signals).
"""
from __future__ import annotations

import json
import os
import stat
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from tagger.cache import (KEPT, LOOKUP_BATCH, TAGGED, UNTAGGED, Cache, CachedTrack, _at_or_inside, path_key,
                          reached_through, resolve_db_path, scan_lock, untag_pending)
from tagger.discover import (Library, WalkProblem, behind_broken_link, fold_name, not_music, one_look_per_folder,
                             os_absolute, spelt_on_disk, vanished, walk)
from tagger.errors import MoodtagError, unreadable
from tagger.progress import mount_points
from tagger import stages
from tagger.records import TrackRef, TrackResult
from tagger.stages import stage
from tagger.weights import ModelSpec, check_taggable, read_spec, resolve_model

# What a track's outcome can be (the `action` key of `scan --json`).
ANALYSED, CACHED, FAILED = "analysed", "cached", "failed"
NOT_A_FILE = "not a regular file (a folder), skipped"  # a files_only path that holds a folder (walk's wording)


@dataclass(frozen=True)
class TrackOutcome:
    """One track of a scan: the result, what the scan did, and what happened to its tags."""

    ref: TrackRef
    result: TrackResult
    action: str                 # analysed | cached | failed
    tags: str                   # written | unchanged | would write | not written | untagged | kept | failed | -
    tag_error: str | None = None  # why the tags were not written (failed), or what was kept (kept)
    stages: dict | None = None  # the parent's stage times for it (tagger.stages), when asked

    def to_json(self) -> dict:
        data = self.result.to_json()
        data.update(action=self.action, tags=self.tags)
        if self.tag_error:
            data["tag_note" if self.tags == "kept" else "tag_error"] = self.tag_error
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
    would_write: int = 0        # a dry run's tag writes that a scan would make
    tag_failures: int = 0
    failed_before: int = 0      # cached failures (their files unchanged since), not tried again
    missing_paths: int = 0      # PATHs given that did not exist, could not be looked at, are empty folders
                                # the cache holds tracks under, or files not music by their names (each a problem)
    untagged: int = 0           # left without moodtag's fields, as `moodtag untag` left them
    kept: int = 0               # holding their own mood (not moodtag's), left as it is
    missing: int = 0
    restored: int = 0
    away: dict[bytes, int] = field(default_factory=dict)  # mount point of a disk not mounted now -> the rows
                                # under the PATHs on it, their files gone, left as they are (Mounts.away)
    away_linked: dict[bytes, dict[bytes, None]] = field(default_factory=dict)  # mount point -> the places outside
                                # it those rows are reached through, a link into it (cache.reached_through)
    moods: Counter = field(default_factory=Counter)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, cause)
    interrupted: bool = False
    dry_run: bool = False
    elapsed: float = 0.0
    jobs: int = 0


@dataclass(frozen=True)
class ScanEvent:
    """Progress, for the CLI: kind is 'waiting' (for the lock of another moodtag command that writes the
    cache), 'busy' (a write waits for another program's write transaction on it), 'restored' (a tag write
    that a crash interrupted, undone), 'empty' (a PATH that is an empty folder the cache holds `count`
    tracks under, left as they are: a disk not mounted?; `cause` says so), 'retired' (a mount point a scan
    saw, not mounted now, whose folder holds its files: _tell_plain_folders; `cause` says so), 'jobs' (--jobs capped:
    count = jobs used, total = asked),
    'workers' (a Dask cluster left without workers, count 0, or given some again, count = its threads),
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


class _DamagedRow(Exception):
    """A current row whose stored result cannot be read (its scores or clips are not the JSON moodtag
    writes: edited by hand, say): its track is not current, and is analysed again (the row replaced)."""


def scan_library(paths: list[Path], **options) -> ScanSummary:
    """Scan `paths` (folders, walked recursively, or files), classify what is new or changed, write
    tags (unless dry_run/no_write), cache all. A PATH that does not exist is a problem of the summary
    (counted in `missing_paths`; the rows under it stay as they are) and the others are scanned, as is
    an empty folder the cache holds tracks under, or a file that is not music by its name (scan_files);
    MoodtagError if none exists or is music, or for an empty PATH. `options`: those of `scan_files`."""
    if not paths:
        check_paths(paths)
    missing, refused = [], []
    for p in paths:
        try:
            check_paths([p])
        except MoodtagError as exc:
            if str(p) == "":
                raise
            missing.append(exc)
            refused.append(exc)
            continue
        cause = not_music(p)
        if cause:
            refused.append(MoodtagError(f"{p}: {cause}"))
    if len(refused) == len(paths):
        raise refused[0]
    summary = scan_files(paths, **options)
    summary.missing_paths += len(missing)
    return summary


def _is_folder(path: Path) -> bool:
    """Whether `path` is a folder; False where it cannot be looked at (EACCES, ENAMETOOLONG, EIO): the
    walk then names the cause (Path.is_dir raises those)."""
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


@one_look_per_folder()
def scan_files(paths: list[Path], *, db: Path | None = None, model: str | None = None, jobs: int = 0,
               oversubscribe: bool = False, dry_run: bool = False, no_write: bool = False,
               force: bool = False, retag: bool = False, replace_mood: bool = False, keep_mtime: bool = False,
               include_hidden: bool = False, files_only: bool = False,
               leave_tags: Callable[[Path, str], bool] | None = None,
               full_results: bool = False, timeout: float | None = None, read_ahead: int | None = None,
               device: str = "cpu", dask_scheduler: str | None = None,
               on_event: Callable[[ScanEvent], None] = lambda e: None,
               stop: Callable[[], bool] = lambda: False) -> ScanSummary:
    """Scan `paths` as scan_library does, except that a path that is missing or not a regular file
    (an item of another program's library whose file went away) is a 'problem' event and a line of
    the summary's problems, not an error; the rest go through. An empty list scans nothing. A PATH
    that is an empty folder while the cache holds tracks under it (the mount point of a disk not
    mounted, or a library's folder emptied) is taken as one not there: those rows stay as they are (not
    marked missing, never a moved file's), and it is an 'empty' event, a problem and a missing path.

    `jobs`: worker processes (0: one per core; more than the cores only with `oversubscribe`).
    `files_only`: each path is a file's (a beets item's): one that holds a folder now is a problem (not a
    regular file, as a FIFO there is), not walked, so no file inside it is analysed or tagged. Without it, a
    path that is a file not music by its name (tagger.discover.not_music: a playlist) is a problem and a
    missing path, neither analysed nor cached, as a folder's walk passes such a file over.
    `force`: analyse every file again. `retag`: write the tags of files `moodtag untag` cleared too
    (from the cache where it is current; a plain scan, even with `force`, leaves them untagged).
    `replace_mood`: write moodtag's mood over a mood field moodtag did not write (another tool's or the
    user's; its values are kept in the file for `moodtag untag` to put back); without it such a file
    keeps its own mood and is counted as kept.
    `leave_tags(path, mood)`: where it says so, that file's tags are left as they are, as by `no_write`
    (analysed and cached; the beets plugin: a file an item of which holds a mood of its own).
    `timeout`: seconds after which a track still being analysed is given up (None: the pool's default).
    `read_ahead`: tracks whose files are read ahead of the workers (tagger.prefetch; None: 4 per job, 0: none;
    never with a Dask cluster, whose workers read the files themselves).
    `device`: where a CNN model runs (cpu, cuda, auto; tagger.device); descriptor models ignore it.
    `dask_scheduler`: analyse on the Dask cluster at this address (tagger.dask_pool) instead of local
    worker processes; `jobs` is then not used.
    Raises MoodtagError only for fatal problems (unusable model, database or cluster)."""
    started = time.monotonic()
    model_path = resolve_model(model)
    spec = read_spec(model_path)
    if not no_write:  # a label no tag field can be named by: refused before any work (a dry run shows writes)
        check_taggable(model_path, spec)
    uses_device = spec.features.kind != "descriptors"
    if uses_device and not dask_scheduler:  # on a cluster each worker resolves it: its GPU, not ours
        from tagger.device import resolve_device

        device = resolve_device(device)
    summary = ScanSummary(dry_run=dry_run)
    summary.jobs, asked = plan_jobs(jobs, oversubscribe=oversubscribe)
    if asked > summary.jobs and not dask_scheduler:
        on_event(ScanEvent("jobs", count=summary.jobs, total=asked))
    write_tags = not (dry_run or no_write)
    db_path = resolve_db_path(db)

    def check_stop() -> None:
        if stop():
            raise _Stopped

    lock = cache = journal = cluster = None
    try:
        if dask_scheduler:
            from tagger.dask_pool import DaskCluster

            cluster = DaskCluster.connect(dask_scheduler)
        if not dry_run:
            lock = scan_lock(db_path, on_wait=lambda: on_event(ScanEvent("waiting", path=db_path)),
                             should_stop=stop)
        cache = _open_cache(db_path, dry_run=dry_run)
        if not dry_run:  # another program's write transaction on the cache (a sqlite3 shell) is waited for
            cache.wait_for_writers(on_wait=lambda: on_event(ScanEvent("busy", path=db_path)), should_stop=stop)
            cache.check_writable()
        pending: set[str] = set()  # real paths of files whose interrupted tag write is not undone yet
        if not write_tags:  # undoes nothing (it writes no file): the next scan that writes tags does
            pending = _journal(db_path).interrupted()
        else:
            journal = _journal(db_path)
            for restored in journal.recover():
                if restored.undone:
                    summary.restored += 1
                elif restored.pending:  # still torn, maybe: not analysed in this scan (see the walk)
                    pending.add(os.path.realpath(restored.path))
                on_event(ScanEvent("restored", path=restored.path, cause=restored.action))
        # as the folders spell them (a case-insensitive disk's `music` is its `Music`); a beets item's file
        # (files_only) as beets spells it: its outcome goes back to the item by that path
        roots = [os_absolute(p) for p in paths] if files_only else spelt_on_disk(paths)
        given = [os_absolute(p) for p in paths]  # rows an older moodtag made under the PATH as typed: looked at too
        # a dry run of a scan that writes tags says what each write would do (a read-only file fails it)
        options = dict(write_tags=write_tags, dry_run=dry_run, keep_mtime=keep_mtime, journal=journal, retag=retag,
                       replace_mood=replace_mood, checks_write=dry_run and not no_write)

        def tag_options(ref: TrackRef, mood: str | None) -> dict:  # a file leave_tags keeps: as with no_write
            writes = write_tags or options["checks_write"]
            if writes and leave_tags is not None and mood and leave_tags(ref.path, mood):
                return {**options, "write_tags": False, "checks_write": False}
            return options

        notes_walk = cache is not None and not dry_run  # the walked keys, to tell which rows' files vanished
        if notes_walk:
            cache.begin_walk()
        if cache is not None:  # a row whose disk is not mounted now is not marked missing (Mounts.away)
            points = mount_points()
            if notes_walk:
                cache.note_mounts(roots, points)
            mounts = cache.mounts(points)
            told_retired: set[bytes] = set()
            _tell_plain_folders(mounts, list(dict.fromkeys(root.parent for root in roots)) if files_only else roots,
                           told_retired, on_event=on_event)  # a beets item's file: its folder
        dry_walked: set[str] = set()  # a dry run's walked keys (it writes nothing, a temporary table neither)
        todo: list[TrackRef] = []
        untagged_keys: set[str] = set()  # todo's files that `moodtag untag` cleared: they stay untagged
        last_written: dict[str, str] = {}  # todo's files whose rows say tagged or kept -> the mood moodtag wrote there
        written_by: dict[str, str] = {}    # ... and the model that wrote it ("name version", tagger.tags)
        claimed: set[str] = set()  # the old keys of rows moved to a walked file's path (_found_again)
        absent = [root for root in roots if not os.path.lexists(root)]  # rows under these stay as they are
        # (the PATH as typed too: an older moodtag's rows under that spelling, their folder emptied, stay)
        emptied = {} if cache is None or files_only else _emptied_roots(cache, roots + [r for r in given
                                                                                        if r not in roots])
        for root, held in emptied.items():  # as a PATH not there: its rows stay as they are
            cause = _emptied_cause(root, held, mounts.away_around(root))
            summary.problems.append((str(root), cause))
            summary.missing_paths += 1
            on_event(ScanEvent("empty", count=held, path=root, cause=cause))
        absent += list(emptied)

        def settle(batch: list[TrackRef]) -> None:
            """One query for a batch of walked files: the fresh ones are done at once, the rest wait."""
            keyed = [path_key(ref.path) for ref in batch]
            keys = [key for key, _ in keyed]
            rows = cache.lookup(keys) if cache else {}
            untag_of: dict[str, CachedTrack] = {}  # new files left untagged as a row left behind says (_untag_left)
            if cache:
                rows.update(_found_again(cache, batch, keyed, rows, spec, claimed, absent, untag_of,
                                         write=not dry_run))
            if notes_walk:
                cache.add_walked(keys)
            elif cache and dry_run:
                dry_walked.update(keys)
                dry_walked.update(row.path for row in rows.values())  # a moved file's old key: not vanished
            for ref, key in zip(batch, keys):
                check_stop()
                row = rows.get(key)
                outcome = None
                if not force and row is not None and row.is_fresh(ref, model_name=spec.name, model_version=spec.version):
                    try:
                        outcome = _handle_cached(ref, row, cache, spec, full=full_results,
                                                 **tag_options(ref, row.mood))
                    except _DamagedRow:  # its stored result cannot be read: analysed again, the row replaced
                        pass
                if outcome is None:
                    plan(ref, key, row if row is not None else untag_of.get(key))
                    continue
                if row.status == "failed" and not row.has_mood:
                    summary.failed_before += 1
                _account(summary, outcome)
                on_event(ScanEvent("track", outcome=outcome))

        def plan(ref: TrackRef, key: str, row: CachedTrack | None) -> None:
            """A track to analyse, with what its row (if any; for a new file, the row whose untag it keeps,
            _untag_left) says of its tags."""
            todo.append(ref)
            if row is not None and row.tag_state == UNTAGGED:
                untagged_keys.add(key)
                if row.untag_pending:  # a killed untag (Cache.set_untagged): the file may hold moodtag's fields
                    last_written[key] = row.mood
                    written_by[key] = f"{row.model_name} {row.model_version}"
            elif row is not None and row.tag_state == KEPT:
                from tagger.tags import SET_BY_HAND  # mutagen: only where a file is tagged

                last_written[key] = SET_BY_HAND  # its mood is its own, whatever moodtag fields are left
            elif row is not None and row.tagged:  # changed, or forced (an editor may keep size and mtime)
                last_written[key] = row.mood  # a different label there now was put by hand
                written_by[key] = f"{row.model_name} {row.model_version}"  # (unless another model wrote since)

        def known(path: Path) -> Path | None:  # a link's file keeps the row the cache has for it (Cache.kept_as)
            return cache.kept_as(path) if cache is not None else None

        walked: list[Path] = []
        for path, root in zip(paths, roots):
            refused = None if files_only else not_music(root)  # a playlist named as a PATH: neither read nor cached
            if files_only and _is_folder(root):  # its row is marked missing below, as a FIFO's is
                summary.problems.append((str(root), NOT_A_FILE))
                on_event(ScanEvent("problem", path=root, cause=NOT_A_FILE))
            elif refused:  # a bad PATH, as one not there; a row an older scan made for it stays as it is
                summary.problems.append((str(root), refused))
                summary.missing_paths += 1
                on_event(ScanEvent("problem", path=root, cause=refused))
            else:
                walked.append(root)
        batch: list[TrackRef] = []
        followed: list[Path] = []  # links to folders the walk went into: the disks behind them are remembered too
        for item in walk(walked, include_hidden=include_hidden, known=known, check=check_stop,  # per folder too
                         followed=followed):
            check_stop()
            if isinstance(item, WalkProblem):
                if item.if_known and (cache is None or not cache.holds_under(item.path)):
                    continue  # a dead link to a cover, say: nothing of the library's behind it
                summary.problems.append((str(item.path), item.cause))
                on_event(ScanEvent("problem", path=item.path, cause=item.cause))
                continue
            if pending and os.path.realpath(item.path) in pending:  # its analysis would read a torn file
                if notes_walk:  # its row stays as it is: not marked missing
                    cache.add_walked([path_key(item.path)[0]])
                cause = "not analysed until its interrupted tag write is undone"
                if not write_tags:
                    cause += " (by a scan without -n or --no-write)"
                summary.problems.append((str(item.path), cause))
                on_event(ScanEvent("problem", path=item.path, cause=cause))
                continue
            summary.found += 1
            batch.append(item)
            if len(batch) == LOOKUP_BATCH:
                settle(batch)
                batch = []
            if summary.found % 500 == 0:
                on_event(ScanEvent("walking", count=summary.found))
        settle(batch)
        if notes_walk and followed:  # `Music/Ext -> /mnt/ext/Music`: /mnt/ext is a disk of the library too
            cache.note_mounts(followed, points)
            mounts = cache.mounts(points)
        if cache is not None:  # rows under a PATH that is not there (an unmounted share?) stay as they are
            library = Library.of(roots, include_hidden=include_hidden)
            looked = roots + [r for r in given if r not in roots]  # `scan MNT/Music` cleans MNT/music's rows too
            gone = []
            reals: dict[bytes, bytes] = {}
            for row in cache.unwalked_under([r for r in looked if os.path.lexists(r) and r not in emptied],
                                            None if notes_walk else dry_walked):
                if _under_any(row.fs_path, emptied):  # `scan lib lib/B`, lib/B empty: its line says so
                    continue
                if not vanished(row.fs_path):
                    point = False
                elif behind_broken_link(row.fs_path):  # left as it is; counted where the link leads to a disk away
                    point = mounts.away(row.fs_path) or False
                else:
                    point = mounts.away(row.fs_path)  # None: gone, on no disk away
                if point is None or _walked_by_its_own_name(row.fs_path, library, known):
                    gone.append(row.path)
                elif point:  # its disk not mounted: left as it is, counted (and the link it is reached through)
                    summary.away[point] = summary.away.get(point, 0) + 1
                    if not _at_or_inside(os.fsencode(row.fs_path), point):
                        summary.away_linked.setdefault(point, {})[
                            reached_through(os.fsencode(row.fs_path), point, reals)] = None
            summary.missing = cache.mark_missing(gone) if notes_walk else len(gone)  # a dry run: would be
            _tell_plain_folders(mounts, [], told_retired, on_event=on_event)  # those behind links
        if cluster and todo:
            cluster.check(todo[0].path, device=device if uses_device else None)
        on_event(ScanEvent("planned", total=summary.found, todo=len(todo)))

        if todo:
            from tagger.prefetch import READ_AHEAD_PER_JOB, ReadAhead

            by_path = {ref.path: ref for ref in todo}
            jobs_used = min(summary.jobs, len(todo))
            ahead = READ_AHEAD_PER_JOB * jobs_used if read_ahead is None else read_ahead
            reader = (ReadAhead([ref.path for ref in todo], tracks=ahead, plan=spec.clips)
                      if ahead > 0 and cluster is None else None)
            results = _analyse(todo, model_path, jobs=jobs_used, timeout=timeout, device=device, cluster=cluster,
                               stop=stop, on_event=on_event)
            try:
                for path, result, info in results:
                    if reader is not None:
                        reader.done()
                    key = path_key(path)[0]
                    received = time.perf_counter()
                    with stages.recording() as clock:
                        ref = by_path[path]
                        outcome = _handle_new(ref, result, info, cache, spec, untagged=key in untagged_keys,
                                              last_written=last_written.pop(key, None),
                                              written_by=written_by.pop(key, None),
                                              **tag_options(ref, result.mood if result.ok else None))
                    if clock is not None:
                        outcome = replace(outcome, stages={**clock.as_dict(), "received_s": received})
                    _account(summary, outcome)
                    on_event(ScanEvent("track", outcome=outcome))
                    check_stop()
            finally:
                results.close()  # kills the workers now, done or stopped
                if reader is not None:
                    reader.close()
        check_stop()
    except (_Stopped, KeyboardInterrupt):
        summary.interrupted = True
    finally:
        if cluster is not None:
            cluster.close()
        if journal is not None:
            journal.close()
        if cache:
            cache.close()
        if lock is not None:
            lock.release()
    summary.elapsed = time.monotonic() - started
    return summary


def _analyse(todo: list[TrackRef], model_path: Path, *, jobs: int, timeout: float | None, device: str,
             cluster, stop: Callable[[], bool], on_event: Callable[[ScanEvent], None]):
    """The results of `todo`, from local worker processes or from the Dask cluster."""
    from tagger.pool import TRACK_TIMEOUT_S, analyse_tracks

    timeout = TRACK_TIMEOUT_S if timeout is None else timeout
    if cluster is not None:
        return cluster.analyse(todo, model_path, timeout=timeout, device=device, stop=stop,
                               on_workers=lambda count: on_event(ScanEvent("workers", count=count)))
    return analyse_tracks(todo, model_path, jobs=jobs, timeout=timeout, device=device, stop=stop)


def _found_again(cache: Cache, batch: list[TrackRef], keyed: list[tuple[str, bytes | None]],
                 rows: dict[str, CachedTrack], spec: ModelSpec, claimed: set[str], absent: list[Path],
                 untag_of: dict[str, CachedTrack], *, write: bool) -> dict[str, CachedTrack]:
    """The rows of a batch of walked files that were not where they are now, by key: a row marked
    missing whose file is back (its status as before: CachedTrack.present_status), and for a file with
    no row, its row under another of its names (_same_file_row) or the row of the same file moved or
    renamed (_moved_row), which takes the file's key and path bytes, keeping its result and tag state,
    so the file is not analysed again (and keeps one row). Written to the cache in
    one transaction, unless not `write` (a dry run: the rows as they are, so that their data is read
    where it is). `keyed`: the batch's (key, raw bytes); `claimed`: the old keys of rows moved so far;
    `absent`: the scan's PATHs that are not there (an unmounted share), whose rows stay as they are.
    `untag_of` learns, by key, the new files that stay untagged as such a row says (_untag_left)."""
    found: dict[str, tuple[str, CachedTrack]] = {}
    for key, row in rows.items():
        if row.status == "missing":
            found[key] = (key, replace(row, status=row.present_status))
    new = [(ref, key, raw) for ref, (key, raw) in zip(batch, keyed) if key not in rows]
    like = cache.rows_like([ref for ref, _, _ in new], model_name=spec.name, model_version=spec.version) if new else {}
    for ref, key, raw in new:
        row = None if key in found else _same_file_row(ref, like, claimed) or _moved_row(ref, like, claimed, absent)
        if row is not None:
            claimed.add(row.path)
            row = replace(row, status=row.present_status)
            found[key] = (row.path, replace(row, path=key, path_bytes=raw) if write else row)
        elif key not in found and (left := _untag_left(ref, like, claimed, absent)) is not None:
            untag_of[key] = left
    if write and found:
        cache.found_again(list(found.values()))
    return {key: row for key, (_, row) in found.items()}


def _same_file_row(ref: TrackRef, like: dict, claimed: set[str]) -> CachedTrack | None:
    """The row `ref`'s file has under another of its names, still there: one of the rows of the same
    model, size, mtime and name (`like`, Cache.rows_like) not `claimed` yet whose path leads to the same
    real path (symlinks resolved). So a library scanned through a symlink to it and then by its real path (or
    the reverse), or a file reached through a link into a hidden folder and then, with --hidden, by its
    own path, is one file: its row takes the name this scan walks it by (the name the walk's rules give
    it, Library.name_of), instead of the file being analysed again beside a second row. A hard link is
    a name of its own (`cp -al Music Phone`: each library keeps its row; taking the other's would swap them at
    every scan, and leave each library's playlists without the album)."""
    rows = [row for row in like.get((ref.size, ref.mtime_ns, os.fsencode(ref.path.name)), ())
            if row.path not in claimed]
    if not rows:
        return None
    real = os.path.realpath(os.fsencode(ref.path))
    return next((row for row in rows if os.fsencode(os.path.realpath(row.fs_path)) == real), None)


def moved_row(cache: Cache, ref: TrackRef) -> CachedTrack | None:
    """The row, of any model, that `ref`'s file had before it was moved or renamed, found as a scan finds
    it (_moved_row): for `moodtag untag` of a file moved since the scan, whose row must say untagged
    under its new path, or the next scan, no longer finding the file by its size and mtime (untag
    changed them), analyses it again and writes the mood back."""
    return _moved_row(ref, cache.rows_like([ref], model_name=None, model_version=None), set(), [])


def _moved_row(ref: TrackRef, like: dict, claimed: set[str], absent: list[Path]) -> CachedTrack | None:
    """The row `ref`'s file had before it was moved or renamed: one of the rows of the same model, size,
    mtime and name (`like`, Cache.rows_like) not `claimed` yet whose own file is gone (_gone: never the
    original of a copy, which is a file of its own, nor a file behind a broken link) and not under an
    `absent` PATH (a copy of an unmounted share's file is not its move), the one whose path ends most
    like the file's. Where no row of the same name is, one whose name differs only by case (a rename by
    case alone: on a case-insensitive file system the old spelling still opens the file, and its row is
    gone only as spelt: discover.vanished)."""
    def moved(rows):
        return [row for row in rows if row.path not in claimed and not _under_any(row.fs_path, absent)
                and _gone(row.fs_path) and not _maybe_unmounted(row.fs_path)]

    rows = moved(like.get((ref.size, ref.mtime_ns, os.fsencode(ref.path.name)), ())) or moved(_case_like(ref, like))
    # by the last parts shared, then (a rename by case alone: A/intro.mp3 -> A/INTRO.mp3 beside B's) by those
    # shared but for case
    tails = sorted((((_shared_tail(row.fs_path, ref.path), _shared_tail(row.fs_path, ref.path, folded=True)), row)
                    for row in rows), key=lambda pair: (-pair[0][0], -pair[0][1]))
    if not tails or len(tails) > 1 and tails[0][0] == tails[1][0]:
        return None  # two gone files as like it as each other (two albums' '01 Intro.wav'): analysed, never guessed
    return tails[0][1]


def _case_like(ref: TrackRef, like: dict) -> list[CachedTrack]:
    """The rows of `like` (Cache.rows_like) of `ref`'s size and mtime whose name differs from its name only
    by case (or Unicode composition)."""
    name = os.fsencode(ref.path.name)
    folded = fold_name(name)
    return [row for (size, mtime_ns, other), rows in like.items()
            if (size, mtime_ns) == (ref.size, ref.mtime_ns) and other != name and fold_name(other) == folded
            for row in rows]


def _untag_left(ref: TrackRef, like: dict, claimed: set[str], absent: list[Path]) -> CachedTrack | None:
    """A row saying untagged that `ref`'s file (without a row, and no moved row: _moved_row) may have had
    before it was moved, which _moved_row does not take because it may be an unmounted disk's (under an
    `absent` PATH, or its nearest folder still there empty; a folder the move itself emptied looks the
    same): one of the rows of the same model, size, mtime and name not `claimed` whose own file is gone.
    The file is analysed as a new one but stays untagged, as that row says (a copy of such a file as
    well): so moving a file the user untagged out of the folder it leaves empty does not write its mood
    back, and the row stays where it is. Not a row whose untag is pending (a kill cut it short): the file
    still holds moodtag's fields, and may be a copy (a backup on another disk) whose tags the user never
    asked to clear, so nothing is taken out of it."""
    return next((row for row in like.get((ref.size, ref.mtime_ns, os.fsencode(ref.path.name)), ())
                 if row.tag_state == UNTAGGED and not row.untag_pending and row.path not in claimed
                 and _gone(row.fs_path) and (_under_any(row.fs_path, absent) or _maybe_unmounted(row.fs_path))),
                None)


def _emptied_roots(cache: Cache, roots: list[Path]) -> dict[Path, int]:
    """The PATHs (absolute) that are empty folders while the cache holds rows not marked missing under
    them, each with how many: the mount point of a disk not mounted now, whose rows a scan would
    otherwise mark missing, and the nightly `prune PATH` forget (with the user's untags). A new empty
    library holds none."""
    from tagger.cache import TABLE, under_root

    emptied: dict[Path, int] = {}
    for root in roots:
        if root in emptied or not _is_folder(root):
            continue
        try:
            with os.scandir(root) as entries:
                if next(entries, None) is not None:
                    continue
        except OSError:  # cannot be listed: the walk names the cause
            continue
        where, params = under_root(root)
        held = next(cache.rows(f"SELECT count(*) FROM {TABLE} WHERE ({where}) AND status <> 'missing'", params))[0]
        if held:
            emptied[root] = held
    return emptied


def _emptied_cause(root: Path, held: int, away: list[bytes] = ()) -> str:
    """A scan's line for an empty PATH whose `held` cached tracks it leaves as they are (_emptied_roots).
    `away`: the disks a scan saw mounted at, above or under it that are not mounted now (Mounts.away_around):
    prune keeps their rows, folder removed or not, until `--forget-disk` names them, which the line says,
    with the PATH beside them where it reaches them through a link (its rows lie under it, outside them)."""
    from tagger.records import command_word, counted

    left = f"{counted(held, 'cached track')} under it left as {'it is' if held == 1 else 'they are'}"
    if not away:  # the paths of a command suggested quoted as a shell needs them (`/media/x/My Music`)
        return (f"it is empty (a disk not mounted?); {left} (emptied on purpose? remove the folder, then "
                f"moodtag prune {command_word(root)})")
    points = [os.fsdecode(point) for point in away]
    if points == [os.path.realpath(root)]:
        disk = "the disk a scan saw mounted there is"
    else:
        disk = f"the disk{'s' if len(points) > 1 else ''} a scan saw mounted at {', '.join(points)} " \
               f"{'are' if len(points) > 1 else 'is'}"
    words = [f"--forget-disk {command_word(point)}" for point in points]
    name, real = os.fsencode(os.path.abspath(root)), os.fsencode(os.path.realpath(root))
    if any(not _at_or_inside(name, point) if _at_or_inside(real, point) else name != real for point in away):
        words.append(command_word(root))  # its rows lie under it, a link into the disk: named beside it
    return f"it is empty: {disk} not mounted now; {left} (mount it; gone for good? moodtag prune {' '.join(words)})"


def _tell_plain_folders(mounts, roots, told: set[bytes], *, on_event) -> None:
    """The mount points a scan saw that are not mounted now and whose folders hold the files cached under
    them (Mounts.retired: a partition retired, its files copied into its folder; or an older copy of the
    disk's files there, which nothing tells apart), asked of those at, above or under `roots` (and any
    `mounts` was asked of since): a line each, once per scan (`told`), a dry run's too. Nothing is written:
    still a disk away, its rows left as they are, until `prune --forget-disk` (named in the line, with the
    places outside it its rows are reached through, a link into it) forgets it as a mount point."""
    from tagger.records import forget_disk_command

    for root in roots:
        mounts.away_around(root)
    new = [point for point in mounts.retired if point not in told]
    told.update(new)
    for point in new:
        command = forget_disk_command(point, mounts.through.get(point, ()))
        on_event(ScanEvent("retired", path=Path(os.fsdecode(point)), cause=(
            f"a scan saw a disk mounted here; none is now, but this folder holds the files cached under it (a "
            f"partition retired, its files copied here?): its tracks are left as they are; if it is a plain "
            f"folder now, {command} forgets the tracks gone there and the mount point")))


def _under_any(path, roots) -> bool:
    """Whether a row's path (CachedTrack.fs_path) lies under one of `roots` (absolute)."""
    name = Path(os.fsdecode(path))
    return any(name.is_relative_to(root) for root in roots)


def _gone(path) -> bool:
    """Whether a row's file is gone for a scan: vanished (tagger.discover), and not behind a symlink whose
    target is not there (a folder linked to a disk not mounted now: its rows stay as they are, as under
    a PATH that is not there, and are never taken for a moved file's)."""
    return vanished(path) and not behind_broken_link(path)


def _maybe_unmounted(path) -> bool:
    """Whether the nearest folder above a vanished file's path that is still there is empty: the mount
    point of a disk or share unmounted now (its files are not gone, and a copy of them elsewhere is not
    their move), or a folder emptied; either way the row is not taken for a moved file's."""
    folder = os.path.dirname(os.fsencode(path))
    while folder and not os.path.isdir(folder):
        parent = os.path.dirname(folder)
        if parent == folder:
            return False
        folder = parent
    try:
        with os.scandir(folder) as entries:
            return next(entries, None) is None
    except OSError:
        return True  # cannot look: not taken


def _shared_tail(a, b, *, folded: bool = False) -> int:
    """How many of their last parts (the name, then the folders above it) two paths share (`folded`: but
    for case, as a case-insensitive file system compares names: discover.fold_name)."""
    shared = 0
    for x, y in zip(reversed(Path(os.fsdecode(a)).parts), reversed(Path(os.fsdecode(b)).parts)):
        if x != y and not (folded and fold_name(x) == fold_name(y)):
            break
        shared += 1
    return shared


def _walked_by_its_own_name(path, library: Library, known) -> bool:
    """Whether the row's path names, through a symlink (to the file, or to a folder above it), a file the
    walk takes by its own path (Library.name_of, Library.walks_folder), or is a symlink to a file outside
    the scan's PATHs that the walk names as `known` says the cache keeps it: such a row (made before the
    walk did so) is the file's second row, and is marked missing so that it leaves playlists and stats and
    `prune` forgets it; the file's own row holds its result. Only rows the walk did not meet get here."""
    name = Path(os.fsdecode(path))
    return library.name_of(name, known if os.path.islink(name) else None) != name


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
                spec: ModelSpec, *, untagged: bool, retag: bool, replace_mood: bool, write_tags: bool,
                dry_run: bool, keep_mtime: bool, journal, last_written: str | None = None,
                written_by: str | None = None, checks_write: bool = False) -> TrackOutcome:
    """A track just analysed: its row, then its tags (unless `moodtag untag` cleared it, and not retag).
    A file that could not be read (tagger.errors.unreadable) keeps a row that holds a result (a --force
    scan of a file whose permissions went wrong loses nothing; see _has_result). A scan that writes no
    tags (--no-write) leaves the row saying what the file's tags hold: untagged stays (even with retag),
    and a row that said tagged or kept is judged by the file's tags (_tags_held)."""
    if not result.ok:
        if cache and not dry_run and not (unreadable(result.error) and _has_result(cache, ref)):
            with stage("cache write"):
                cache.record(result, ref, info=info)
        return TrackOutcome(ref, result, FAILED, "-")
    keep_untagged = untagged and not retag
    finish_untag = keep_untagged and last_written is not None  # see plan(): an untag a kill cut short
    no_write = not (write_tags or dry_run)
    held = None  # --no-write, a row that said tagged or kept: (its tag_state, tags action, what was kept)
    if no_write and not untagged and last_written is not None:
        held = _tags_held(ref, result, spec, last_written, replace_mood=replace_mood, written_by=written_by)
    if cache and not dry_run:  # committed before the file is touched: a tag is never written without a row
        state = UNTAGGED if keep_untagged or (untagged and no_write) else held[0] if held else None
        # an untag a kill cut short stays pending until it is finished: not by this scan (--no-write), or
        # this one killed too (the row written with the pending mtime, in the same statement)
        recorded = replace(ref, mtime_ns=untag_pending(ref.mtime_ns)) if finish_untag else ref
        with stage("cache write"):
            cache.record(result, recorded, info=info, tag_state=state)
    if keep_untagged:
        if finish_untag and write_tags and cache and not dry_run:
            return _finish_untag(ref, result, cache, journal, last_written, written_by)
        return TrackOutcome(ref, result, ANALYSED, "untagged")
    if held is not None:
        return TrackOutcome(ref, result, ANALYSED, held[1], held[2])
    tags, tag_error = _tag_and_record(ref, result.mood, result.scores, spec, cache, write_tags=write_tags,
                                      dry_run=dry_run, keep_mtime=keep_mtime, journal=journal,
                                      replace_mood=replace_mood, last_written=last_written, written_by=written_by,
                                      checks_write=checks_write)
    return TrackOutcome(ref, result, ANALYSED, tags, tag_error)


def _finish_untag(ref: TrackRef, result: TrackResult, cache: Cache, journal, last_written: str,
                  written_by: str | None = None) -> TrackOutcome:
    """A file whose untag a kill cut short (its row says untagged, with a pending untag's mtime, which
    _handle_new has just given it again; the recovery of the write may have given the file back
    moodtag's fields): those fields removed, as `moodtag untag` would have, and then the row given the
    file's size and mtime. Where that fails, or a kill comes first, the row stays pending (the next scan
    tries again) and the file's line says why."""
    from tagger.errors import TagError
    from tagger.tags import remove_mood

    written: list = []
    try:
        with stage("tag write"):
            remove_mood(ref.path, last_written=last_written, written_by=written_by, journal=journal,
                        on_written=written.append)
    except TagError as exc:
        return TrackOutcome(ref, result, ANALYSED, "failed", f"the interrupted untag could not be finished ({exc})")
    after = TrackRef(ref.path, written[-1].st_size, written[-1].st_mtime_ns) if written else ref
    cache.set_untagged(ref.path, before=ref, after=after)
    return TrackOutcome(ref, result, ANALYSED, "untagged")


def _tags_held(ref: TrackRef, result: TrackResult, spec: ModelSpec, last_written: str, *,
               replace_mood: bool, written_by: str | None = None) -> tuple[str | None, str, str | None]:
    """What the tags of a file analysed again by a scan that writes none (--no-write) hold, for a row that
    said tagged or kept (`last_written`: the mood moodtag last wrote there, or SET_BY_HAND), read and not
    written: (the row's tag_state, the tags action, what was kept). Kept where the file's mood is its own
    (a label changed by hand, judged by what moodtag wrote there, not by this result, which may differ),
    tagged where its tags hold this result, else None (moodtag's own older mood, which the next scan
    that writes tags replaces, or none): so a row never says tagged for a mood the file lacks, nor
    forgets a label the user put there. Tags that cannot be read now keep a kept row's word (as a failed
    analysis does)."""
    from tagger.tags import SET_BY_HAND  # mutagen: only where a file is analysed

    tags, note, _ = _apply_tags(ref, result.mood, result.scores, spec, write_tags=False, dry_run=True,
                                keep_mtime=False, journal=None, replace_mood=False, last_written=last_written,
                                written_by=written_by)
    state = {"kept": KEPT, "unchanged": TAGGED}.get(tags)
    if tags == "failed" and last_written == SET_BY_HAND:
        state = KEPT
    if state == KEPT and not replace_mood:
        return KEPT, "kept", note if tags == "kept" else None
    return state, "unchanged" if state == TAGGED else "not written", None


def _has_result(cache: Cache, ref: TrackRef) -> bool:
    """Whether the cache holds a mood for the file, whatever its size and mtime now: a file that changed
    and could not be read may hold the same audio (a touch, a tag editor, a copy back from a backup),
    and nothing is known of it that is newer than the result. The row keeps the size and mtime it was
    made for, so it is not current for the changed file: each scan tries the file again, and once it
    can be read, its result replaces the row's."""
    key = path_key(ref.path)[0]
    row = cache.lookup([key]).get(key)
    return row is not None and row.has_mood


def _handle_cached(ref: TrackRef, row: CachedTrack, cache: Cache | None, spec: ModelSpec, *, retag: bool,
                   replace_mood: bool, write_tags: bool, dry_run: bool, keep_mtime: bool, full: bool,
                   journal, checks_write: bool = False) -> TrackOutcome:
    """A track whose row is current: its tags are written if they should hold the row's mood and do
    not (never written, the last write failed, untagged and `retag`, or kept and `replace_mood`).
    _DamagedRow, before anything is written, if the row's stored result is needed and cannot be read.
    The row's data is read where the row is (a dry run's moved row: its old path)."""
    left = {UNTAGGED: not retag, KEPT: not replace_mood}.get(row.tag_state, False)  # left as it is
    needs_tags = row.has_mood and not row.tagged and not left and (write_tags or dry_run)
    data = cache.get(row.fs_path) if (full or needs_tags) and cache else None
    result = _result_from_row(ref.path, row, data, spec)
    if not row.has_mood:
        return TrackOutcome(ref, result, CACHED, "-")
    tags = "unchanged" if row.tagged else row.tag_state if left else "not written"
    tag_error = None
    if needs_tags and data is not None:
        from tagger.tags import SET_BY_HAND

        tags, tag_error = _tag_and_record(ref, row.mood, _stored_result(data, spec)[0], spec, cache,
                                          write_tags=write_tags, dry_run=dry_run, keep_mtime=keep_mtime,
                                          journal=journal, replace_mood=replace_mood,
                                          last_written=SET_BY_HAND if row.tag_state == KEPT else None,
                                          checks_write=checks_write)
    return TrackOutcome(ref, result, CACHED, tags, tag_error)


def _tag_and_record(ref: TrackRef, mood: str, scores: dict, spec: ModelSpec, cache: Cache | None, *,
                    write_tags: bool, dry_run: bool, keep_mtime: bool, journal,
                    replace_mood: bool, last_written: str | None = None,
                    written_by: str | None = None, checks_write: bool = False) -> tuple[str, str | None]:
    """Write the tags (as _apply_tags), then tell the row: tagged with the file's new size and mtime,
    kept (the file's own mood left as it is), or the write's failure and its cause. Returns (tags
    action, error or, when kept, what was kept)."""
    with stage("tag write"):
        tags, tag_error, ref_after = _apply_tags(ref, mood, scores, spec, write_tags=write_tags,
                                                 dry_run=dry_run, keep_mtime=keep_mtime, journal=journal,
                                                 replace_mood=replace_mood, last_written=last_written,
                                                 written_by=written_by, checks_write=checks_write)
    if cache and write_tags:
        with stage("cache write"):
            if tags in ("written", "unchanged", "kept"):
                cache.set_tagged(ref.path, ref_after, kept=tags == "kept")
            elif tags == "failed":
                cache.set_tag_failed(ref.path, tag_error or "unknown cause")
    return tags, tag_error


def _result_from_row(path: Path, row: CachedTrack, data: dict | None, spec: ModelSpec) -> TrackResult:
    """A cache row as a TrackResult (its clips' moods by `spec`, the model that made the row fresh);
    _DamagedRow if `data` (the row read in full) holds a result that cannot be read."""
    scores, clips, duration = {}, (), None
    if data:
        from tagger.analyze import clip_scores  # numpy: only for a row read in full

        scores, starts, per_clip = _stored_result(data, spec)
        sounding = [any(per_clip[i]) for i in range(len(starts))]  # a silent clip is stored with scores 0
        clips = clip_scores(spec, starts, [row for row, keep in zip(per_clip, sounding) if keep], sounding)
        duration = data["duration"]
    return TrackResult(path=path, mood=row.mood, confidence=row.confidence, scores=scores, clips=clips,
                       duration=duration, model_name=row.model_name, model_version=row.model_version,
                       error=None if row.has_mood else row.error)


def _stored_result(data: dict, spec: ModelSpec) -> tuple[dict, list[float], list[list[float]]]:
    """A row's stored result as Cache.record wrote it: (scores: label -> probability, the clips' starts,
    each clip's probabilities in the order of `spec`'s labels); _DamagedRow if the JSON of its `scores`
    or `clips` cell is not valid, or not of that shape."""
    try:
        scores = {label: _number(p) for label, p in json.loads(data["scores"] or "{}").items()}
        clips = json.loads(data["clips"] or "[]")
        starts = [_number(clip["start"]) for clip in clips]
        per_clip = [[_number(clip["scores"].get(label, 0.0)) for label in spec.labels] for clip in clips]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # JSONDecodeError is a ValueError
        raise _DamagedRow(f"{data['path']}: its stored result cannot be read ({exc})") from None
    return scores, starts, per_clip


def _number(value) -> float:
    """A probability or a time as JSON holds it, as it is; TypeError for anything else (a string, a list,
    true)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{value!r} is not a number")
    return value


def _apply_tags(ref: TrackRef, mood: str, scores: dict, spec: ModelSpec, *, write_tags: bool,
                dry_run: bool, keep_mtime: bool, journal, replace_mood: bool,
                last_written: str | None = None, written_by: str | None = None,
                checks_write: bool = False) -> tuple[str, str | None, TrackRef]:
    """Write the mood tags unless asked not to; returns (tags action, error or what was kept, the
    file's ref afterwards: the size and mtime of the file as written, `ref` where nothing was written).
    `last_written`: the mood moodtag last wrote into the file, `written_by` the model that wrote it (tagger.tags).
    A dry run writes nothing and says what the tags hold; `checks_write` (the dry run of a scan that
    writes tags): what the write would do, write_mood's own checks (a read-only file among them) failing
    it as they fail the write."""
    from tagger.tags import ForeignMood, MoodValues, mood_state, write_mood

    values = MoodValues(mood=mood, scores={k: round(v, 3) for k, v in scores.items()},
                        model=f"{spec.name} {spec.version}")
    if dry_run and not checks_write:  # what the tags hold, whether the file could be written or not (_tags_held)
        try:
            current, foreign = mood_state(ref.path, last_written=last_written, written_by=written_by)
        except MoodtagError as exc:
            return "failed", str(exc), ref
        if foreign and not replace_mood:
            return "kept", str(ForeignMood(foreign)), ref
        return ("unchanged" if current == values else "would write"), None, ref
    if dry_run:
        try:
            changed = write_mood(ref.path, values, replace=replace_mood, last_written=last_written,
                                 written_by=written_by, dry_run=True)
        except ForeignMood as exc:
            return "kept", str(exc), ref
        except MoodtagError as exc:
            return "failed", str(exc), ref
        return ("would write" if changed else "unchanged"), None, ref
    if not write_tags:
        return "not written", None, ref
    try:
        now = TrackRef.from_path(ref.path)
    except OSError as exc:
        return "failed", f"cannot stat: {exc.strerror}", ref
    if (now.size, now.mtime_ns) != (ref.size, ref.mtime_ns):
        return "failed", "file changed while it was analysed; not tagged (scan again)", ref
    # crash-safe (tagger.safewrite); the scan stops only between tracks. The file written must be the one
    # analysed (expect), and the row takes the size and mtime of the file as written (from safewrite, not a
    # new stat of the path: a file another program puts there afterwards must not look current)
    written: list[os.stat_result] = []
    try:
        changed = write_mood(ref.path, values, replace=replace_mood, last_written=last_written, written_by=written_by,
                             journal=journal,
                             expect=(ref.size, ref.mtime_ns), on_written=written.append)
        after = TrackRef(ref.path, written[-1].st_size, written[-1].st_mtime_ns) if written else ref
        if changed and keep_mtime:
            os.utime(ref.path, ns=(os.stat(ref.path).st_atime_ns, ref.mtime_ns))
            after = TrackRef(ref.path, after.size, ref.mtime_ns)
    except ForeignMood as exc:
        return "kept", str(exc), ref
    except MoodtagError as exc:
        return "failed", str(exc), ref
    return ("written" if changed else "unchanged"), None, after


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
    elif outcome.tags == "would write":
        summary.would_write += 1
    elif outcome.tags == "untagged":
        summary.untagged += 1
    elif outcome.tags == "kept":
        summary.kept += 1
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
    from tagger.cache import holds_nothing

    return Cache.open_readonly(db_path) if db_path.is_file() and not holds_nothing(db_path) else None
