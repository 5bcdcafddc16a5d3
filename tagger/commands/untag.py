"""`moodtag untag PATH...`: remove the fields moodtag wrote (the mood and MOODTAG_*) from audio files."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from tagger.commands.options import DbOption, QuietOption, path_value


def untag(
    paths: Annotated[list[Path], typer.Argument(
        metavar="PATH", parser=path_value,
        help="Audio files, or folders searched recursively (hidden files and folders are skipped).")],
    db: DbOption = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", "-n", help="List the files that hold moodtag fields; change nothing.")] = False,
    quiet: QuietOption = False,
) -> None:
    """Remove the mood field and every MOODTAG_* field from audio files; all other tags stay.

    Writes are crash-safe, as a scan's, and wait for another moodtag command that writes the same
    cache (--db) to finish, and for another program's write transaction on it to end.
    The cache's rows of these files say untagged (each before its file is written), with the files'
    new size and mtime, so the next scan analyses none of them again and leaves them untagged
    (`scan --retag` writes the mood back). A --db (or MOODTAG_DB) that does not exist is an error, before
    any file is touched; without the default cache the files are untagged all the same, with a line saying
    the next scan tags them again, and nothing is left beside the cache's path.
    A file system that refuses the writes (mounted read-only) is one line, naming its mount point, for its
    first file; the others are counted in the summary.
    Exit status 0 when it ran to the end, even if some files failed (each failure has its own line);
    1 for fatal errors, or when a PATH did not exist (it gets its line, the others are untagged), as
    for scan; 130 if interrupted (it stops between two files; 143 for SIGTERM, 129 for a closed
    terminal)."""
    from tagger.cache import KEPT, Cache, Stopped, holds_nothing, resolve_db_path, scan_lock, transaction_wait_line
    from tagger.commands.interrupts import StopRequests
    from tagger.console import err, error_line, info, out, shown, warn
    from tagger.discover import WalkProblem, spelt_on_disk, walk
    from tagger.errors import TagError
    from tagger.progress import READ_ONLY_FS, ScanProgress
    from tagger.records import TrackRef
    from tagger.safewrite import UndoJournal
    from tagger.tags import SET_BY_HAND, remove_mood

    db_path = resolve_db_path(db)
    no_cache = not db_path.exists()
    if no_cache and db is not None:  # a typo in --db: an error, as stats and prune say it, before any file is touched
        Cache.open(db_path, create=False)  # raises: no cache database here
    paths, missing = _existing(paths)
    for exc in missing:
        err.print(f"[red]failed:[/] {shown(str(exc))}")
    stops = StopRequests.install()
    lock = journal = cache = None
    read_only = ScanProgress(enabled=False, read_only_once=True, read_only_note=UNTAG_READ_ONLY)
    changed = unchanged = 0
    failed = len(missing)
    rows = None  # the cache, read for the mood moodtag wrote into each file (a dry run only reads it)
    pending: set[str] = set()  # real paths of files whose interrupted tag write is not undone: left alone
    try:
        if not dry_run:
            if not no_cache:  # no cache: no lock file left where none is (as prune)
                lock = scan_lock(db_path, should_stop=lambda: stops.requested, on_wait=lambda: info(
                    f"waiting for another moodtag command that writes {shown(db_path)} to finish...", stderr=True))
            journal = UndoJournal.for_cache(db_path)
            for restored in journal.recover():
                warn(f"{'interrupted tag write' if restored.pending else 'recovered'} {shown(restored.path)}: "
                     f"{shown(restored.action)}")
                if restored.pending:
                    pending.add(os.path.realpath(restored.path))
        else:
            pending = UndoJournal.for_cache(db_path).interrupted()
        if lock is not None and db_path.is_file():  # checked before any file is touched, as a scan does
            cache = rows = Cache.open(db_path)
            cache.wait_for_writers(should_stop=lambda: stops.requested,
                                   on_wait=lambda: info(transaction_wait_line(shown(db_path)), stderr=True))
            cache.check_writable()
        elif dry_run and db_path.is_file() and not holds_nothing(db_path):
            rows = Cache.open_readonly(db_path)
        # as the folders spell them (a case-insensitive disk's `music` is its `Music`): the rows a scan made
        for item in walk(spelt_on_disk(paths), check=lambda: _stop_walk(stops)):  # checked per folder, and per file
            if stops.requested:
                break
            if isinstance(item, WalkProblem):
                if item.if_known and (rows is None or not rows.holds_under(item.path)):
                    continue  # a dead link to a cover, say: nothing of the library's behind it
                failed += 1
                error_line(item.path, item.cause)
                continue
            if os.path.realpath(item.path) in pending:  # a write into a file that may be torn: never
                failed += 1
                error_line(item.path, "not untagged until its interrupted tag write is undone"
                           + (" (by a scan or untag without -n)" if dry_run else ""))
                continue
            place, row = (_row_of(rows, item, move=cache is not None) if rows is not None else None) or (item.path, None)
            # the mood moodtag wrote there, from the cache: another label there now is the user's own; and
            # where the cache says the file's own mood was kept, its mood stays whatever moodtag fields remain;
            # the fields of another model than the row's were written since (another cache's scan): all moodtag's
            wrote = row is not None and (row.tagged or row.untag_pending)
            last_written = row.mood if wrote else SET_BY_HAND if row is not None and row.tag_state == KEPT else None
            written_by = f"{row.model_name} {row.model_version}" if wrote and row.model_name else None
            records = cache is not None and row is not None
            if records:  # committed before the file is touched, as a scan's row (see Cache.set_untagged)
                cache.set_untagged(place, before=item, after=item, pending=True)
            try:
                written: list = []   # the file's stat as written (not through its path: another file may be there now)
                removed = remove_mood(item.path, last_written=last_written, written_by=written_by, dry_run=dry_run,
                                      journal=journal, on_written=written.append)
            except TagError as exc:
                failed += 1
                if str(exc) == READ_ONLY_FS:  # one line per file system, the others counted (as a scan's)
                    read_only.note_read_only(item.path)
                else:
                    error_line(item.path, str(exc))
                if records:
                    _put_back(cache, place, row, item.path)
                continue
            except BaseException:  # fatal: the file is as it was (tagger.safewrite), and so is its row
                if records:
                    _put_back(cache, place, row, item.path)
                raise
            after = item
            if removed:
                changed += 1
                if dry_run:  # standard output that fails (a full disk) is main's one error line, not this file's
                    out.print(f"would untag: {shown(item.path)}")
                if written:
                    after = TrackRef(item.path, written[-1].st_size, written[-1].st_mtime_ns)
            else:
                unchanged += 1
            if records:  # the file's size and mtime as written (or as they were): the untag is done
                _record_written(cache, place, item, after)
    except (_WalkStopped, Stopped):  # a stop asked while the walk listed folders, or while it waited
        pass
    finally:
        if rows is not None:
            rows.close()
        if journal is not None:
            journal.close()
            if no_cache and not db_path.exists():  # the journal guarded the writes; left empty, it goes
                _remove_if_empty(journal.folder)
        if lock is not None:
            lock.release()
    verb = "would untag" if dry_run else "untagged"
    refused = ", ".join(f"{mount}: {n}" for mount, n in sorted(read_only.read_only.items()))
    # informational (not under --quiet) where all went well; a dry run's, and one counting failures or closing
    # an interrupted run, always
    say = out.print if dry_run or failed or stops.requested else info
    say(f"{verb} {changed} {_files(changed)}, {unchanged} without moodtag fields, {failed} failed"
        + (f" ({READ_ONLY_FS} {shown(refused)})" if refused else ""))
    if no_cache and changed and not dry_run:
        warn(f"{shown(db_path)}: no cache database here, so nothing records these files as untagged: a scan "
             f"with this cache tags them again (pass --db to name the library's cache)")
    if stops.requested:
        err.print(f"[yellow]interrupted[/] ({stops.name}): the files listed as untagged are done")
        raise stops.exit()
    if missing:
        raise typer.Exit(1)


# what untag's line for a read-only file system says besides its mount point (tagger.progress.ScanProgress)
UNTAG_READ_ONLY = ("its files keep their moodtag fields (and their cache rows say so); untag them again once "
                   "it is writable; its other files are counted, not listed")


def _remove_if_empty(folder: Path) -> None:
    """Remove the undo journal's folder where it holds nothing (every write done): none is left beside a
    cache that does not exist. One holding an entry (a write another process has in flight) stays."""
    try:
        folder.rmdir()
    except OSError:
        pass


def _put_back(cache, place, row, path) -> None:
    """The row of a file untag failed to write says again what it said before (Cache.put_back_tag_state).
    Where it cannot (the cache cannot be written now, or a stop came while it waited), the file keeps
    its tags while its row says untagged: a warning says so before the error or the stop."""
    from tagger.cache import Stopped
    from tagger.console import shown, warn
    from tagger.errors import MoodtagError

    try:
        cache.put_back_tag_state(place, row)
    except (MoodtagError, Stopped):
        warn(f"{shown(path)}: not untagged, but its row in the cache says untagged (untag it again)")
        raise


def _record_written(cache, place, before, after) -> None:
    """The row of a file untag wrote (or found without moodtag's fields) takes the file's size and mtime
    (Cache.set_untagged), in place of the pending untag's. It says untagged already: where this write
    fails, the next scan only analyses the file again (and leaves it untagged), which the error says."""
    from tagger.errors import MoodtagError

    try:
        cache.set_untagged(place, before=before, after=after)
    except MoodtagError as exc:
        raise MoodtagError(f"{before.path}: untagged, but its new size and mtime are not in the cache (the next "
                           f"scan analyses it again, and leaves it untagged): {exc}") from None


def _row_of(cache, ref, *, move: bool):
    """(the path it is kept under, the row) of `ref`'s file, or None: its own row (Cache.row_of), or the
    row it had before it was moved or renamed (tagger.scan.moved_row), which, with `move`, takes the
    file's path, as a scan's would (so the row saying untagged is the file's)."""
    from dataclasses import replace

    from tagger.cache import path_key
    from tagger.scan import moved_row

    found = cache.row_of(ref.path)
    if found is not None:
        return found
    row = moved_row(cache, ref)
    if row is None:
        return None
    if not move:
        return Path(os.fsdecode(row.fs_path)), row
    key, raw = path_key(ref.path)
    moved = replace(row, path=key, path_bytes=raw, status=row.present_status)
    cache.found_again([(row.path, moved)])
    return ref.path, moved


def _existing(paths: list[Path]) -> tuple[list[Path], list[Exception]]:
    """The PATHs that exist, and the errors of those that do not (each gets one line, as a scan reports
    a PATH that is not there, and the others are untagged); the first error when none exists, or for
    an empty PATH (as tagger.scan.scan_library)."""
    from tagger.errors import MoodtagError
    from tagger.scan import check_paths

    if not paths:
        check_paths(paths)
    found, missing = [], []
    for path in paths:
        try:
            check_paths([path])
            found.append(path)
        except MoodtagError as exc:
            if str(path) == "":
                raise
            missing.append(exc)
    if not found:
        raise missing[0]
    return found, missing


def _files(n: int) -> str:
    return "file" if n == 1 else "files"


class _WalkStopped(Exception):
    """A stop asked while the walk lists folders (a tree of folders without audio, a slow share): the walk
    ends in the folder it is in, not at the next audio file."""


def _stop_walk(stops) -> None:
    if stops.requested:
        raise _WalkStopped
