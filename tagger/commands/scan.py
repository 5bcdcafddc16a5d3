"""`moodtag scan PATH...` and `moodtag prune`: tag a library, keep the cache in step with it."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from tagger.commands.options import DbOption, JsonOption, ModelOption


def scan(
    paths: Annotated[list[Path], typer.Argument(metavar="PATH...", help="Folders (walked recursively) or files.")],
    db: DbOption = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=0, help="Worker processes (0: one per core).")] = 0,
    dry_run: Annotated[bool, typer.Option("--dry-run", "-n", help="Show what would be written; write neither tags nor cache.")] = False,
    no_write: Annotated[bool, typer.Option("--no-write", help="Fill the cache but leave the files untouched.")] = False,
    force: Annotated[bool, typer.Option("--force", "-f", help="Analyse again even tracks the cache says are current.")] = False,
    keep_mtime: Annotated[bool, typer.Option("--keep-mtime", help="Restore each file's modification time after tagging.")] = False,
    hidden: Annotated[bool, typer.Option("--hidden", help="Also walk hidden files and folders.")] = False,
    model: ModelOption = None,
    json_lines: JsonOption = False,
) -> None:
    """Tag every track under PATH calm or exciting, and cache the results.

    A second scan analyses only what changed (size, mtime or model version). Exit status 0 when the
    scan completed, even if some files failed (they are listed); 1 for fatal errors; 130 if interrupted."""
    from rich.markup import escape

    from tagger.console import err, out
    from tagger.records import display_path
    from tagger.scan import ScanEvent, scan_library

    if dry_run and no_write:
        raise typer.BadParameter("--dry-run already writes nothing; use one of --dry-run / --no-write")
    progress = _Progress(enabled=not json_lines)

    def on_event(event: ScanEvent) -> None:
        if event.kind == "problem":
            progress.log_failure(event.path, event.cause)
        elif event.kind == "track":
            o = event.outcome
            if json_lines:
                out.print(json.dumps(o.to_json(), ensure_ascii=False), markup=False, highlight=False)
            if not o.result.ok and o.action == "failed":
                progress.log_failure(o.ref.path, o.result.error)
            elif o.tags == "failed":
                progress.log_failure(o.ref.path, f"tags not written: {o.tag_error}")
            elif dry_run and o.tags == "would write" and not json_lines:
                progress.log(f"[cyan]would tag[/] {escape(display_path(o.ref.path))}: {o.result.mood} "
                             f"({o.result.confidence:.2f})")
            progress.advance(o.action == "analysed")
        elif event.kind == "waiting":
            err.print(f"waiting for another moodtag scan using {escape(str(event.path))} to finish...")
        elif event.kind == "walking":
            progress.walking(event.count)
        elif event.kind == "planned":
            progress.start(event.total, event.todo)

    with progress:
        summary = scan_library(paths, db=db, model=model, jobs=jobs, dry_run=dry_run, no_write=no_write,
                               force=force, keep_mtime=keep_mtime, include_hidden=hidden,
                               full_results=json_lines, on_event=on_event)
    if not json_lines:
        _render_summary(summary)
    elif summary.interrupted:
        err.print("[yellow]interrupted[/]: finished results are saved; scan again to resume")
    if summary.interrupted:
        raise typer.Exit(130)


def prune(
    paths: Annotated[Optional[list[Path]], typer.Argument(metavar="[PATH...]", help="Only under these folders.")] = None,
    db: DbOption = None,
) -> None:
    """Forget cached tracks whose files have vanished (marked missing by a scan)."""
    from tagger.cache import Cache
    from tagger.console import out

    with Cache.open(db, create=False) as cache:
        n = cache.prune([Path(p) for p in paths] if paths else None)
    out.print(f"forgot {n} missing track{'s' if n != 1 else ''}")


class _Progress:
    """A rich progress bar on stderr: tracks done / total, tracks per second, ETA."""

    def __init__(self, *, enabled: bool) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        from tagger.console import err

        self.enabled = enabled
        self.console = err
        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            console=err, transient=False, disable=not enabled)
        self.task = None
        self.analysed = 0
        self.t0 = None

    def __enter__(self):
        self.progress.__enter__()
        self.task = self.progress.add_task("finding tracks", total=None, rate="")
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def walking(self, count: int) -> None:
        self.progress.update(self.task, description=f"finding tracks ({count})")

    def start(self, total: int, todo: int) -> None:
        import time

        self.t0 = time.monotonic()
        self.progress.update(self.task, total=total, completed=0,
                             description=f"scanning ({todo} to analyse)")

    def advance(self, analysed: bool) -> None:
        import time

        self.analysed += analysed
        rate = ""
        if self.t0 and self.analysed:
            rate = f"{self.analysed / max(1e-6, time.monotonic() - self.t0):.1f} tracks/s"
        self.progress.update(self.task, advance=1, rate=rate)

    def log(self, text: str) -> None:
        self.console.print(text) if not self.enabled else self.progress.console.print(text)

    def log_failure(self, path, cause: str) -> None:
        from tagger.console import error_line

        error_line(path, cause)  # the progress bar's own console: the line goes above the bar


def _render_summary(summary) -> None:
    from rich.table import Table

    from tagger.console import err

    table = Table(title="moodtag scan" + (" (dry run: nothing written)" if summary.dry_run else ""),
                  show_header=False, box=None)
    table.add_row("tracks found", str(summary.found))
    table.add_row("analysed", str(summary.analysed))
    table.add_row("unchanged (cached)", str(summary.cached))
    table.add_row("tags written", str(summary.written))
    table.add_row("failed", str(summary.failed + summary.tag_failures + _walk_problems(summary)))
    if summary.missing:
        table.add_row("vanished (marked missing)", str(summary.missing))
    for mood, n in sorted(summary.moods.items()):
        table.add_row(mood, str(n))
    table.add_row("time", f"{summary.elapsed:.1f} s")
    err.print(table)
    if summary.problems:
        err.print(f"[yellow]{len(summary.problems)} file(s) had problems[/] (listed above); "
                  "the rest of the scan completed.")
    if summary.interrupted:
        err.print("[yellow]interrupted[/]: finished results are saved; scan again to resume")


def _walk_problems(summary) -> int:
    return len(summary.problems) - summary.failed - summary.tag_failures
