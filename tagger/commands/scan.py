"""`moodtag scan PATH...` and `moodtag prune`: tag a library, keep the cache in step with it."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Annotated, Optional

import typer

from tagger.commands.options import DbOption, JsonOption, ModelOption, QuietOption, path_value
from tagger.device import DEVICES
from tagger.worker import TRACK_TIMEOUT_S


def scan(
    paths: Annotated[list[Path], typer.Argument(metavar="PATH", parser=path_value,
                                                help="Folders (walked recursively) or files.")],
    db: DbOption = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", metavar="N", min=0, help="Worker processes (0: one per core; at most one per core unless --oversubscribe).")] = 0,
    oversubscribe: Annotated[bool, typer.Option("--oversubscribe", help="Allow more --jobs than cores (e.g. a library on a slow network share).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", "-n", help="Show what would be written; write neither tags nor cache.")] = False,
    no_write: Annotated[bool, typer.Option("--no-write", help="Fill the cache but leave the files untouched.")] = False,
    force: Annotated[bool, typer.Option("--force", "-f", help="Analyse again even tracks the cache says are current.")] = False,
    retag: Annotated[bool, typer.Option("--retag", help="Write the mood into files `moodtag untag` cleared too (a plain scan, even --force, leaves them untagged).")] = False,
    replace_mood: Annotated[bool, typer.Option("--replace-mood", help="Write the mood over a mood that moodtag did not write (another tool's or your own; a plain scan keeps it). `moodtag untag` puts it back.")] = False,
    keep_mtime: Annotated[bool, typer.Option("--keep-mtime", help="Restore each file's modification time after tagging.")] = False,
    hidden: Annotated[bool, typer.Option("--hidden", help="Also walk hidden files and folders.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", metavar="SECONDS", min=1,
                                           help="Give up on a track still being analysed after this long.")] = TRACK_TIMEOUT_S,
    read_ahead: Annotated[Optional[int], typer.Option(
        "--read-ahead", metavar="N", min=0,
        help="Read the files of the next N tracks ahead of the analysis, so that a slow network share's "
             "delays overlap it (0: none). Default: 4 per job.")] = None,
    device: Annotated[str, typer.Option("--device", parser=lambda v: _choice(v, DEVICES), metavar="DEVICE",
                                        help="Where the CNN model (--model moodtag-cnn) runs: cpu, cuda (an error "
                                             "without CUDA) or auto (CUDA when available). The default "
                                             "descriptor model runs on the CPU and ignores it.")] = "cpu",
    dask_scheduler: Annotated[Optional[str], typer.Option(
        "--dask-scheduler", metavar="tcp://HOST:PORT", parser=lambda v: _scheduler_value(v),
        help="Analyse on this Dask cluster instead of local processes (needs moodtag[dask]; every worker "
             "must see the library at the same path). --jobs is then not used.")] = None,
    model: ModelOption = None,
    json_lines: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Tag every track under PATH calm or exciting, and cache the results.

    A second scan analyses only what changed (size, mtime or model version). Exit status 0 when the
    scan completed, even if some files failed (they are listed); 1 for fatal errors, or when a PATH did
    not exist (the others are scanned) or is an empty folder the cache holds tracks under (a disk not
    mounted?: they are left as they are, not marked missing); 130 if interrupted (Ctrl-C; 143 for
    SIGTERM, 129 for a closed terminal)."""
    from tagger.commands.interrupts import StopRequests
    from tagger.console import err, out, shown
    from tagger.progress import ScanProgress
    from tagger.scan import ScanEvent, scan_library

    if dry_run and no_write:
        raise typer.BadParameter("--dry-run already writes nothing; use one of --dry-run / --no-write")
    stops = StopRequests.install()
    progress = ScanProgress(enabled=not json_lines, read_only_once=True)  # a read-only file system: one line
    # This process does no numeric work, but numpy comes in with sqlite-utils and joblib, and OpenBLAS
    # starts a thread per core that spins for ~0.1 s of CPU when it loads (in the pool's resource
    # tracker too, which inherits this): one thread, unless the environment asks for more. The worker
    # processes get their own thread limits (tagger.pool).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    unread_files: list[Path] = []  # files the walk found but could not take (a FIFO named like audio)

    def on_event(event: ScanEvent) -> None:
        if event.kind == "problem" and _is_a_file(event.path):
            unread_files.append(event.path)
        if event.kind == "empty":  # an empty PATH whose cached tracks are left as they are (a disk not mounted?)
            progress.log(f"[yellow]warning:[/] {shown(event.path)}: {shown(event.cause)}")
        if event.kind == "track":
            o = event.outcome
            if json_lines:
                out.print(json.dumps(o.to_json(), ensure_ascii=False), markup=False, highlight=False)
            elif dry_run and o.tags == "would write":
                progress.log(f"[cyan]would tag[/] {shown(o.ref.path)}: {o.result.mood} "
                             f"({o.result.confidence:.2f})")
        progress.show(event)

    try:
        with progress:
            summary = scan_library(paths, db=db, model=model, jobs=jobs, oversubscribe=oversubscribe,
                                   dry_run=dry_run, no_write=no_write, force=force, retag=retag,
                                   replace_mood=replace_mood, keep_mtime=keep_mtime,
                                   include_hidden=hidden, full_results=json_lines, timeout=timeout,
                                   read_ahead=read_ahead, device=device, dask_scheduler=dask_scheduler,
                                   on_event=on_event,
                                   stop=lambda: stops.requested)
        if not json_lines:
            _render_summary(summary, stops, unread_files=len(unread_files), read_only=progress.read_only)
        else:  # --json has no summary: a line per read-only file system, the files it refused counted
            _render_read_only(progress.read_only)  # and one per disk not mounted whose rows were left
            _render_away(summary.away, summary.away_linked)
            if summary.interrupted:
                err.print(f"[yellow]interrupted[/] ({stops.name}): finished results are saved; scan again to resume")
    except OSError:  # the terminal went away (SIGHUP): the cache is committed; nothing left to tell
        if not stops.requested:
            raise
        raise stops.exit() from None
    if summary.interrupted:
        raise stops.exit()
    if summary.missing_paths:
        raise typer.Exit(1)


def prune(
    paths: Annotated[Optional[list[Path]], typer.Argument(metavar="PATH", parser=path_value,
                                                          help="Only under these folders.")] = None,
    db: DbOption = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", "-n", help="List the tracks that would be forgotten; change nothing.")] = False,
    forget_disk: Annotated[Optional[list[Path]], typer.Option(
        "--forget-disk", metavar="MOUNT", parser=path_value,
        help="A disk once mounted at MOUNT is gone for good: forget its tracks, kept while it is not "
             "mounted.")] = None,
    quiet: QuietOption = False,
) -> None:
    """Forget cached tracks whose files have vanished (marked missing by a scan).

    Only files gone now are forgotten: one that is back (a disk mounted again) keeps its row, and so do
    the files under a folder that is empty now (a disk not mounted?): those marked missing until a PATH
    names that folder itself (not a place inside it), the others until it is removed; and the files on a
    disk a scan saw mounted that is not mounted now, whether its mount point's folder is there or not
    (those marked missing until a PATH names the mount point; all of them with --forget-disk MOUNT, not
    those of another disk mounted inside it, and with the PATHs named beside it those behind a link into
    it; refused while something is mounted there, and where no scan saw a disk mounted; where MOUNT's folder
    holds the files cached under it, a partition retired, MOUNT is no longer taken for a mount point). A PATH that no
    longer exists (a library moved or deleted, whose rows a scan leaves alone) forgets the cached tracks
    under it whose files are gone. Waits for a scan or untag using the same cache, and
    for another program's write transaction on it to end; stopped meanwhile (Ctrl-C, SIGTERM, a closed
    terminal) it forgets nothing, exit status 130, 143 or 129."""
    from tagger.cache import Cache, Stopped, filter_roots, resolve_db_path, scan_lock, transaction_wait_line
    from tagger.commands.interrupts import StopRequests
    from tagger.console import err, info, out, shown, warn
    from tagger.errors import MoodtagError
    from tagger.records import counted

    roots = [Path(p) for p in paths] if paths else None
    disks = [Path(os.path.abspath(p)) for p in forget_disk or []]
    mounted = _mounted_among(disks)
    if mounted:
        raise MoodtagError(f"{shown(mounted)}: a disk is mounted there now, so its files that are there are not "
                           f"gone; a plain `moodtag prune` forgets those that are (--forget-disk is for a disk "
                           f"not mounted)")
    if disks:
        roots = (roots or []) + disks
    lock = None
    stops = None if dry_run else StopRequests.install()  # a dry run writes nothing: stopped at once
    should_stop = (lambda: False) if stops is None else (lambda: stops.requested)
    try:
        if not dry_run:  # a scan may be about to give a row marked missing to its file, moved: wait for it
            db_path = resolve_db_path(db)
            if db_path.exists():  # none: Cache.open says so, and no lock file is left where no cache is
                lock = scan_lock(db_path, create=False, should_stop=should_stop,  # an empty file: refused, no lock left
                                 on_wait=lambda: info(f"waiting for another moodtag command that writes "
                                                      f"{shown(db_path)} to finish...", stderr=True))
        with Cache.open_readonly(db) if dry_run else Cache.open(db, create=False) as cache:  # read-only: bytes kept
            if not dry_run:
                cache.wait_for_writers(should_stop=should_stop,
                                       on_wait=lambda: info(transaction_wait_line(shown(cache.path)), stderr=True))
            mounts = cache.mounts()
            remembered = mounts.seen  # --forget-disk of a disk a scan saw: its rows may lie behind a link
            _check_remembered(cache, disks, mounts)
            plan = cache.prunable(roots, should_stop=should_stop, gone_disks=disks)
            plain = _plain_folders(disks, roots or [], mounts, set(plan.forget))
            unknown = [root for root in roots or []
                       if not (root in disks and {os.fsencode(p) for p in filter_roots([root])} & set(remembered))
                       and not any(cache.holds_under(place) for place in filter_roots([root]))]  # as prunable
            # the disks a scan saw at, above or under it with no row keyed under their mount points: any rows of
            # theirs lie behind a link into them (a typo still, maybe: the warning says both)
            linked = {root: [point for point in _remembered_near(root, remembered)
                             if not cache.holds_under(Path(os.fsdecode(point)))] for root in unknown}
            if not dry_run:
                if should_stop():
                    raise Stopped
                cache.forget(plan.forget)  # the disk stays remembered: rows behind a link into it, under a PATH
                # not named, are still kept, and prune's line still names it (and the PATH); unless its folder
                cache.retire_mounts(plain)  # holds its files: a plain folder from now on
    except Stopped:
        err.print(f"[yellow]interrupted[/] ({stops.name}): nothing forgotten")
        raise stops.exit() from None
    finally:
        if lock is not None:
            lock.release()
    for root in unknown:  # a typo, or a place never scanned: as `playlist` says it; or a disk's, reached by a link
        points = ", ".join(shown(point) for point in linked.get(root, []))
        disks = f"; a scan saw a disk mounted at {points}: the tracks a library reached it through by a link are " \
                f"cached under that link, name it" if points else ""
        warn(f"no cached tracks under {shown(root)} (a typo, or a place never scanned?{disks}): nothing to forget "
             f"there")
    if dry_run:
        for key in plan.forget:
            out.print(f"would forget: {shown(key)}")
    _render_kept(plan, dry_run=dry_run)
    say = out.print if dry_run else info  # a dry run's "would" lines are its point, --quiet or not
    for point in plain:
        say(f"{shown(os.fsdecode(point))}: {'would no longer be' if dry_run else 'no longer'} taken for a "
            f"disk's mount point (its folder holds its files)")
    n = len(plan.forget)
    # rows a scan left as they are (under a PATH not there) are not called missing
    what = "missing track" if plan.marked == n else "track"
    gone = "" if plan.marked == n else " whose file is gone" if n == 1 else " whose files are gone"
    say(f"{'would forget' if dry_run else 'forgot'} {counted(n, what)}{gone}")


def _remembered_near(root: Path, remembered: list[bytes]) -> list[bytes]:
    """The mount points a scan saw (`remembered`) that `root` (as written, or its real path) is, or lies on, or
    that lie under it."""
    from tagger.cache import _at_or_inside

    names = {os.fsencode(os.path.abspath(root)), os.fsencode(os.path.realpath(root))}
    return [point for point in remembered if any(_at_or_inside(name, point) or _at_or_inside(point, name)
                                                  for name in names)]


def _render_kept(plan, *, dry_run: bool) -> None:
    """The rows prune keeps though their files are gone: one line for those marked missing whose files
    are back, one per empty folder whose rows it keeps (rows marked missing: naming the folder forgets
    them; any other, left as they are by a scan whose PATH was not there: only once the folder is
    removed, Cache.prunable), and one per mount point of a disk not mounted now (Mounts.away: naming it
    forgets those marked missing; the others with `--forget-disk`, naming beside it the places outside the
    disk its rows kept are reached through, a link into it: PrunePlan.linked). Paths in the commands are
    quoted for a shell (command_word). Under --quiet the first is left out (the files are there: nothing to do),
    not the others (a disk to mount, or to forget), nor a dry run's."""
    from tagger.console import info, out, shown
    from tagger.records import command_word, counted, forget_disk_command

    verb = "would keep" if dry_run else "kept"
    say = out.print if dry_run else info
    if plan.back:
        one = plan.back == 1
        say(f"{verb} {counted(plan.back, 'missing track')} whose {'file is' if one else 'files are'} there again "
            f"(the next scan takes {'it' if one else 'them'} back)")
    for kept, marked, why, gone in ((plan.empty, plan.empty_marked, "it is empty (a disk not mounted?)",
                                     "remove that folder and prune again"),
                                    (plan.away, plan.away_marked, "the disk a scan saw mounted there is not "
                                     "mounted now", None)):
        for folder, n in sorted(kept.items()):
            if kept is plan.away:  # with the places outside it its rows kept are reached through (a link into it)
                gone = shown(forget_disk_command(folder, plan.linked.get(folder, ())))
            if marked.get(folder, 0) == n:
                out.print(f"{verb} {counted(n, 'missing track')} under {shown(folder)}: {why}; moodtag prune "
                          f"{shown(command_word(folder))} forgets them")
            else:
                out.print(f"{verb} {counted(n, 'track')} under {shown(folder)}: {why}; if "
                          f"{'it is' if n == 1 else 'they are'} gone for good, {gone}")


def _mounted_among(disks: list[Path]) -> Path | None:
    """The first of `disks` (--forget-disk) that something is mounted at now, else None."""
    if not disks:
        return None
    from tagger.progress import mount_points

    now = set(mount_points())
    return next((disk for disk in disks if os.fsencode(os.path.realpath(disk)) in now
                 or os.fsencode(disk) in now), None)


def _plain_folders(disks: list[Path], roots: list[Path], mounts, forgotten: set[str]) -> list[bytes]:
    """The mount points `disks` (--forget-disk) name whose folders hold the files cached under them
    (Mounts.retired: a partition retired, its files copied there), sampled with the rows under the PATHs named
    beside them that are linked into them, those prune forgets (`forgotten`, their files gone) left out:
    forgotten as mount points, so that later scans take each folder for a plain one (a disk a scan sees
    mounted there is remembered again, Cache.note_mounts)."""
    from tagger.cache import _at_or_inside, filter_roots

    linked = [os.fsencode(os.path.abspath(root)) for root in roots if root not in disks]
    plain = []
    for point in dict.fromkeys(p for p in (os.fsencode(place) for place in filter_roots(disks)) if p in mounts.seen):
        name = next((place for place in linked if not _at_or_inside(place, point)
                     and _at_or_inside(os.fsencode(os.path.realpath(place)), point)), None)
        if point not in mounts.now and mounts.holds_its_files(point, name, forgotten):
            plain.append(point)
    return plain


def _check_remembered(cache, disks: list[Path], mounts) -> None:
    """Each of `disks` (--forget-disk) must be, as written or through a link, a mount point a scan saw
    (Mounts.seen): a folder above such disks (/media/USER) forgot every one of them not mounted now.
    Otherwise a MoodtagError naming it, the disk not mounted now that it lies on (Mounts.away_around: the
    nearest mount point seen above it, the disk most likely meant) and the mount points seen under it; but one
    under which the cache holds no row and no mount point was seen (a typo, a place never scanned) gets prune's
    warning, as a PATH does, and forgets nothing."""
    from tagger.cache import _at_or_inside, filter_roots
    from tagger.errors import MoodtagError
    from tagger.records import command_word, forget_disk_command, printable

    for disk in disks:
        places = [os.fsencode(place) for place in filter_roots([disk])]
        if set(places) & set(mounts.seen):
            continue
        under = [point for point in mounts.seen if any(_at_or_inside(point, place) for place in places)]
        if not under and not any(cache.holds_under(Path(os.fsdecode(place))) for place in places):
            continue
        above = next((point for point in mounts.away_around(disk) if point not in under), None)
        lies = None if above is None else (f"it lies on the disk a scan saw mounted at {printable(above)}, not "
                                           f"mounted now (`{forget_disk_command(above)}` forgets that disk's tracks)")
        if under:
            seen = f"those seen under it: {', '.join(printable(point) for point in sorted(under))}"
            which = seen if lies is None else f"{lies}; {seen}"
        elif lies is not None:
            which = lies
        else:
            which = f"no disk not mounted now was seen there, nor above it; `moodtag prune {command_word(disk)}` " \
                    f"forgets the tracks gone under it"
        raise MoodtagError(f"{printable(disk)}: not a mount point a scan saw (--forget-disk MOUNT forgets the tracks "
                           f"of the disk once mounted at MOUNT, none other); {which}")


def _scheduler_value(value: str) -> str:
    """'' (an unset variable) is an error, never a local scan."""
    if value == "":
        raise typer.BadParameter("an empty address (an unset variable?); give tcp://HOST:PORT")
    return value


def _choice(value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}")
    return value


def _render_summary(summary, stops, *, unread_files: int = 0, read_only: dict | None = None) -> None:
    """The summary table on standard error. `failed` counts the files that failed: tracks not analysed
    or not tagged, and `unread_files`, files the walk could not take (a FIFO named like audio, a file
    whose interrupted tag write is not undone); `not reached` the rest of the walk's problems: folders
    it could not list, broken links and symlink loops, PATHs not there. `read_only`: mount point -> the
    files whose tag write its read-only file system refused (ScanProgress.read_only; one listed each). Under
    --quiet the table is left out, not the lines below it: each says what needs doing."""
    from rich.table import Table

    from tagger.console import err, info
    from tagger.records import counted

    read_only = read_only or {}
    table = Table(title="moodtag scan" + (" (dry run: nothing written)" if summary.dry_run else ""),
                  show_header=False, box=None)
    table.add_row("tracks found", str(summary.found))
    table.add_row("analysed", str(summary.analysed))
    table.add_row("unchanged (cached)", str(summary.cached))
    if summary.dry_run:
        table.add_row("tags that would be written", str(summary.would_write))
    else:
        table.add_row("tags written", str(summary.written))
    table.add_row("failed", str(summary.failed + summary.tag_failures + unread_files))
    not_reached = _walk_problems(summary) - unread_files
    if not_reached:  # not files: folders it could not list, broken links, PATHs not there
        table.add_row("not reached (folders, links, PATHs)", str(not_reached))
    if summary.failed_before:
        table.add_row("failed before, unchanged (--force tries again)", str(summary.failed_before))
    if summary.untagged:
        table.add_row("left untagged (--retag tags those without a mood of their own)", str(summary.untagged))
    if summary.kept:
        table.add_row("own mood kept (--replace-mood replaces it)", str(summary.kept))
    if summary.missing:
        table.add_row(f"vanished ({'would be ' if summary.dry_run else ''}marked missing)", str(summary.missing))
    if summary.restored:
        table.add_row("interrupted writes undone", str(summary.restored))
    for mood, n in sorted(summary.moods.items()):
        table.add_row(mood, str(n))
    table.add_row("time", f"{summary.elapsed:.1f} s")
    info(table, stderr=True)
    _render_read_only(read_only)  # below the table: a long mount point would wrap its first column
    _render_away(summary.away, summary.away_linked)
    if summary.problems:
        unlisted = sum(read_only.values()) - len(read_only)
        listed = (f"{len(summary.problems) - unlisted} listed above, {unlisted} more tag writes on a read-only "
                  "file system counted above" if unlisted else "listed above")
        err.print(f"[yellow]{counted(len(summary.problems), 'problem')}[/] ({listed}); "
                  "the rest of the scan completed.")
    if summary.interrupted:
        err.print(f"[yellow]interrupted[/] ({stops.name or 'stopped'}): finished results are saved; "
                  "scan again to resume")


def _render_read_only(read_only: dict) -> None:
    """The files whose tag write a read-only file system refused, counted per mount point, a line each on
    standard error (one file of each is listed above): below the summary, or closing `scan --json`."""
    from tagger.console import err, shown

    for mount, n in sorted(read_only.items()):
        err.print(f"tags not written (read-only file system {shown(mount)}): {n}")


def _render_away(away: dict, linked: dict | None = None) -> None:
    """One line on standard error per disk a scan saw mounted that is not mounted now, counting the rows
    under the scan's PATHs on it whose files it left as they are (ScanSummary.away): below the summary, or
    closing `scan --json`. Its command names beside the mount point the places outside it those rows are
    reached through (`linked`, ScanSummary.away_linked: a link into the disk), as prune's line does. A PATH
    that is not there, or an empty folder, has its own line instead."""
    from tagger.console import err, shown
    from tagger.records import counted, forget_disk_command

    for point, n in sorted(away.items()):
        err.print(f"{counted(n, 'cached track')} under {shown(point)} left as {'it is' if n == 1 else 'they are'}: "
                  f"the disk a scan saw mounted there is not mounted now (gone for good? "
                  f"{shown(forget_disk_command(point, (linked or {}).get(point, ())))})")


def _walk_problems(summary) -> int:
    return len(summary.problems) - summary.failed - summary.tag_failures


def _is_a_file(path: Path | None) -> bool:
    """Whether a problem of the walk is a file it found (something there that is no folder: a FIFO or a
    device named like audio, a file whose interrupted tag write is not undone), not a place it could not
    reach (a folder it could not list, a broken link, a PATH not there)."""
    try:
        return path is not None and not stat.S_ISDIR(os.stat(path).st_mode)
    except OSError:
        return False
