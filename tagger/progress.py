"""A scan's progress bar on stderr (tracks done / total, tracks per second, ETA), and lines printed
above it: for `moodtag scan` and `beet moodtag`."""
from __future__ import annotations

import os
import re
from pathlib import Path

FULL_WIDTH = 80  # columns the whole bar needs: spinner, description, bar, count, rate, elapsed, eta
# tagger.tags' cause of a tag write that the file's file system refused: mounted read-only (a share mounted
# ro, a USB stick locked), or turned read-only since (EROFS)
READ_ONLY_FS = "read-only file system"
# what `moodtag scan`'s line for a read-only file system says besides its mount point (ScanProgress.read_only_note)
SCAN_READ_ONLY = ("its tracks are analysed and cached all the same, and a scan once it is writable tags them without "
                  "analysing again; scan with --no-write to not try; its other files are counted, not listed")


class ScanProgress:
    """A rich progress bar on stderr: tracks done / total, tracks per second, ETA. Only on a terminal:
    elsewhere (a pipe, a log file) it draws nothing, since rich would print the bar's last state once,
    at the end. `read_only_once`: a tag write refused by a read-only file system is one line for the
    first file of that file system (its mount point named), the others counted in `read_only` (mount
    point -> files), not listed; `read_only_note`, what that line says besides, in the command's voice.
    `transient`: the bar is erased when done (a command whose output follows it, such as classify's table).
    Under --quiet (tagger.console.quiet) there is no bar, and of the lines only those of problems."""

    def __init__(self, *, enabled: bool, read_only_once: bool = False, read_only_note: str = SCAN_READ_ONLY,
                 transient: bool = False) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, SpinnerColumn,
                                   TextColumn, TimeElapsedColumn, TimeRemainingColumn)

        from rich.text import Text

        from tagger import console
        from tagger.console import err

        self.enabled = enabled = enabled and err.is_terminal and not console.quiet
        self.console = err

        class Fitting(Progress):
            """Below FULL_WIDTH columns, one line (Line): the count, the rate and the time left first, then as
            much of the description as fits (rich's columns cut the count and the ETA first). Chosen at each
            refresh, so a terminal made narrower or wider is followed."""

            def get_renderables(self):
                self.columns = full if err.width >= FULL_WIDTH else narrow
                yield self.make_tasks_table(self.tasks)

        full = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())

        class Line(ProgressColumn):
            """The narrow bar: one line, cut at the terminal's edge, the description last."""

            left = TimeRemainingColumn()

            def render(self, task):
                done = f"{task.completed:.0f}/{'?' if task.total is None else f'{task.total:.0f}'}"
                parts = [done, task.fields.get("rate", ""), "eta", self.left.render(task).plain, task.description]
                line = Text(" ".join(part for part in parts if part), no_wrap=True, overflow="ellipsis")
                line.truncate(max(1, err.width - 1), overflow="ellipsis")
                return line

        narrow = (Line(),)
        self.progress = Fitting(*full, console=err, transient=transient, disable=not enabled)
        self.task = None
        self.analysed = 0
        self.t0 = None
        self.read_only_once = read_only_once
        self.read_only_note = read_only_note
        self.read_only: dict[Path, int] = {}  # mount point -> files whose tag write its file system refused
        self._points: list[bytes] | None = None  # the mount points (mount_points), read once when needed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.task is not None:
            return self.progress.__exit__(*exc)

    def _shown(self, description: str = "finding tracks", total: int | None = None):
        """The bar appears with the first progress, so an early error is not preceded by an empty bar."""
        if self.task is None:
            self.progress.__enter__()
            self.task = self.progress.add_task(description, total=total, rate="")

    def walking(self, count: int) -> None:
        self._shown()
        self.progress.update(self.task, description=f"finding tracks ({count})")

    def start(self, total: int, todo: int, description: str | None = None) -> None:
        import time

        self._shown(description or "finding tracks", total)
        self.t0 = time.monotonic()
        # the unchanged tracks found while walking are done already, and stay counted
        self.progress.update(self.task, total=total, description=description or f"scanning ({todo} to analyse)")

    def advance(self, analysed: bool) -> None:
        import time

        self._shown()
        self.analysed += analysed
        rate = ""
        if self.t0 and self.analysed:
            rate = f"{self.analysed / max(1e-6, time.monotonic() - self.t0):.1f} tracks/s"
        self.progress.update(self.task, advance=1, rate=rate)

    def show(self, event) -> None:
        """A scan's event (tagger.scan.ScanEvent) on the bar: a track advances it; a failed file or
        tag write is one line naming the file and the cause (with read_only_once, one per read-only file
        system: _read_only); waits (for moodtag's lock, for another program's write transaction),
        recoveries, capped --jobs and a remembered mount point that is a plain folder now are told once.
        The waits are informational (tagger.console.info: not under --quiet); the rest say what went wrong
        or was not done (a file's own mood kept, told only once), or close such a line."""
        from tagger.console import info, shown

        if event.kind == "problem":
            self.log_failure(event.path, event.cause)
        elif event.kind == "track":
            o = event.outcome
            if not o.result.ok and o.action == "failed":
                self.log_failure(o.ref.path, o.result.error)
            elif o.tags == "failed" and self.read_only_once and o.tag_error == READ_ONLY_FS:
                self.note_read_only(o.ref.path)
            elif o.tags == "failed":
                self.log_failure(o.ref.path, f"tags not written: {o.tag_error}")
            elif o.tags == "kept" and o.tag_error:  # decided now (a cached row that says kept has none)
                self.log(f"[yellow]kept:[/] {shown(o.ref.path)}: {shown(o.tag_error)} (--replace-mood writes "
                         f"moodtag's)")
            self.advance(o.action == "analysed")
        elif event.kind == "restored":
            from tagger.safewrite import Restored

            # an interrupted write that cannot be undone yet (its folder not mounted) is not "recovered"
            what = "interrupted tag write" if Restored(event.path, event.cause).pending else "recovered"
            self.log(f"[yellow]{what}:[/] {shown(event.path)}: {shown(event.cause)}")
        elif event.kind == "retired":  # a remembered mount point whose folder holds its files (tagger.scan)
            self.log(f"[yellow]warning:[/] {shown(event.path)}: {shown(event.cause)}")
        elif event.kind == "jobs":
            self.log(f"[yellow]warning:[/] --jobs {event.total} capped at {event.count}, the cores "
                     "available (--oversubscribe allows more)")
        elif event.kind == "workers":  # workers again: only ever after the warning, which it closes (--quiet too)
            self.log("[yellow]warning:[/] the Dask cluster has no workers: its tracks wait for some to join "
                     "(Ctrl-C stops the scan; finished results are saved)" if not event.count else
                     f"the Dask cluster has workers again ({event.count} thread{'s' * (event.count != 1)}); the "
                     "scan goes on")
        elif event.kind == "waiting":
            info(f"waiting for another moodtag command that writes {shown(event.path)} to finish...", stderr=True)
        elif event.kind == "busy":
            from tagger.cache import transaction_wait_line

            info(transaction_wait_line(shown(event.path)), stderr=True)
        elif event.kind == "walking":
            self.walking(event.count)
        elif event.kind == "planned":
            self.start(event.total, event.todo)

    def log(self, text: str) -> None:
        self.console.print(text) if not self.enabled else self.progress.console.print(text)

    def log_failure(self, path, cause: str) -> None:
        from tagger.console import error_line

        error_line(path, cause)  # the progress bar's own console: the line goes above the bar

    def note_read_only(self, path: Path) -> None:
        """A file whose tag write its read-only file system refused (the row says so as for any failed
        write): the first of that file system is a line naming its mount point and what to do; the
        others, a library's thousands, are only counted (self.read_only)."""
        if self._points is None:
            self._points = mount_points()
        mount = mount_point(os.fsencode(os.path.realpath(path)), self._points)  # a file bind-mounted: its own
        told = self.read_only.get(mount, 0)
        self.read_only[mount] = told + 1
        if not told:
            self.log_failure(path, f"tags not written: {READ_ONLY_FS} {mount} ({self.read_only_note})")


def mount_points() -> list[bytes]:
    """The mount points of /proc/self/mountinfo (its escapes undone: \\040 a space); [] where it cannot
    be read (not Linux)."""
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            table = f.read()
    except OSError:
        return []
    points = []
    for line in table.splitlines():
        fields = line.split(b" ")
        if len(fields) >= 5:
            points.append(re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), fields[4]))
    return points


def mount_point(path: bytes, points: list[bytes]) -> Path:
    """The mount point of the file system that holds the real path `path` (a file, or a folder): the
    longest of `points` (mount_points) that is it or above it (a bind mount, read-only over a writable
    file system, is its own; so is a file bind-mounted on its own), or where there are none (not Linux),
    the nearest folder above it that os.path.ismount says is one."""
    if not points:
        while path != os.path.dirname(path) and not os.path.ismount(path):
            path = os.path.dirname(path)
        return Path(os.fsdecode(path))
    best = b"/"
    for point in points:
        if len(point) > len(best) and (path == point or path.startswith(point.rstrip(b"/") + b"/")):
            best = point
    return Path(os.fsdecode(best))
