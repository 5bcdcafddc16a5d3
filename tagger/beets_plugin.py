"""moodtag in beets (`plugins: moodtag`): the `beet moodtag [QUERY]` command, and the mood of every
item beets imports (with `auto`: the items an import brings in are noted once their files are in
place, `import_task_files`, and analysed together when the import ends, the `import` event).

Each item gets two flexible attributes, declared in `item_types` so that beets compares them as what
they are (`beet ls mood:calm`, `beet ls mood_confidence:0.8..`, a smartplaylist `query: 'mood:calm'`):

    mood              the model's label, e.g. calm
    mood_confidence   its probability (0..1)

The analysis is moodtag's own scan (tagger.scan.scan_files) over the items' files, with moodtag's cache:
an unchanged file that the same model analysed before, for `moodtag scan` or for beets, is not
analysed again. The tags are written only when beets' write option says so (`import.write`, or the
command's -w/-W), and by moodtag's crash-safe writer (tagger.tags.write_mood), not `item.try_write()`:
the mood is no beets media field, so beets' writer would not write it, and it would rewrite every
other tag from beets' database besides (that is `beet write`'s job). moodtag's writer puts exactly
moodtag's fields in the file (the mood, the scores, the model), the same bytes `moodtag scan` writes,
survives a kill mid-write, and tells the cache the file's new size and mtime, so the file is not taken
for changed; the item then stores the file's new mtime, as beets does after its own writes.

beets imports this as `beetsplug.moodtag` (tagger/beetsplug/moodtag.py, which the wheel installs).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import confuse
from beets import ui
from beets.dbcore import types
from beets.plugins import BeetsPlugin

from tagger.errors import MoodtagError
from tagger.records import printable
from tagger.scan import ScanEvent, ScanSummary, TrackOutcome, scan_files

MOOD, CONFIDENCE = "mood", "mood_confidence"
DEFAULTS = {"auto": True, "jobs": 0, "model": None, "force": False, "replace_mood": False, "db": None}


def mood_items(items: Iterable, *, write: bool, dry_run: bool = False, db: Path | None = None,
               model: str | None = None, jobs: int = 0, force: bool = False, replace_mood: bool = False,
               on_event: Callable[[ScanEvent], None] = lambda e: None,
               stop: Callable[[], bool] = lambda: False) -> ScanSummary:
    """Analyse the files of beets `items` (moodtag's scan and cache), store each item's mood and
    confidence in beets' database, and write the files' tags when `write`. With `dry_run` nothing is
    written anywhere. A file that is missing or fails is a problem of the summary (and an event),
    and leaves its item as it was. A file whose mood field holds a value moodtag did not write keeps
    it unless `replace_mood` (the item still gets moodtag's mood). Raises MoodtagError for an unusable
    model or cache."""
    by_path: dict[Path, list] = {}
    for item in items:
        by_path.setdefault(item_path(item), []).append(item)

    def store(event: ScanEvent) -> None:
        if event.kind == "track" and not dry_run:
            for item in by_path.get(event.outcome.ref.path, ()):
                store_outcome(item, event.outcome)
        on_event(event)

    return scan_files(list(by_path), db=db, model=model, jobs=jobs, force=force, replace_mood=replace_mood,
                      dry_run=dry_run, no_write=not write, on_event=store, stop=stop)


def item_path(item) -> Path:
    """The item's file as the scan names it (an absolute path)."""
    return Path(os.path.abspath(os.fsdecode(item.path)))


def store_outcome(item, outcome: TrackOutcome) -> None:
    """Store a scan's result in the item: its mood and confidence, and after a tag write the file's
    new mtime (so that beets does not take the file for changed). A failure changes nothing."""
    result = outcome.result
    if not result.ok:
        return
    item[MOOD] = result.mood
    item[CONFIDENCE] = round(result.confidence, 4)
    if outcome.tags == "written":
        item.mtime = item.current_mtime()
    item.store()


def summary_line(summary: ScanSummary, items: int) -> str:
    """One line: items, analysed, cached, failed, tags written, and the count of each mood."""
    failed = len(summary.problems)
    moods = ", ".join(f"{mood} {n}" for mood, n in sorted(summary.moods.items()))
    return (f"{items} item{'s' if items != 1 else ''}: {summary.analysed} analysed, {summary.cached} "
            f"unchanged (cached), {failed} failed, tags written {summary.written}"
            + (f", own mood kept {summary.kept} (--replace-mood replaces it)" if summary.kept else "")
            + (f"; {moods}" if moods else "") + (" (dry run: nothing stored or written)" if summary.dry_run else ""))


class MoodtagPlugin(BeetsPlugin):
    """`beet moodtag [QUERY]`; with `auto` (the default), the mood of every item on import."""

    item_types = {MOOD: types.STRING, CONFIDENCE: types.Float(2)}

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name or "moodtag")
        self.config.add(DEFAULTS)
        self._imported: list[int] = []  # ids of the items the running import brought in
        try:
            auto = self.config["auto"].get(bool)
        except confuse.ConfigError as exc:  # one line, not a traceback that also loses `beet moodtag`
            self._log.error("configuration error: {} (imports are not analysed until it is fixed)", exc)
            auto = False
        if auto:
            self.register_listener("import_task_files", self.collect)
            self.register_listener("import", self.imported)

    # -- the command ----------------------------------------------------------------------------
    def commands(self) -> list[ui.Subcommand]:
        cmd = ui.Subcommand("moodtag", help="classify items calm or exciting (moodtag) and store the mood")
        cmd.parser.usage += " [QUERY...]"
        add = cmd.parser.add_option
        add("-j", "--jobs", type="int", metavar="N",
            help="worker processes (0: one per core; default: the config's moodtag.jobs)")
        add("-f", "--force", action="store_true", default=None,
            help="analyse again even files that moodtag's cache says are current")
        add("-p", "--pretend", "--dry-run", dest="dry_run", action="store_true", default=False,
            help="show the moods; store and write nothing")
        add("--replace-mood", action="store_true", default=None,
            help="write the mood over a mood moodtag did not write (default: keep it; moodtag.replace_mood)")
        add("--model", metavar="MODEL", help="model file, or the name of a shipped model")
        add("--db", metavar="FILE", help="moodtag's cache database (default: moodtag's own)")
        add("-w", "--write", action="store_true", default=None,
            help="write the mood into the files' tags (default: the import.write option)")
        add("-W", "--nowrite", action="store_false", dest="write", help="don't write tags (opposite of -w)")
        cmd.func = self.command
        return [cmd]

    def command(self, lib, opts, args: list[str]) -> None:
        from tagger.commands.interrupts import StopRequests

        if opts.jobs is not None and opts.jobs < 0:
            raise ui.UserError(f"--jobs must be 0 (one per core) or more, not {opts.jobs}")
        items = list(lib.items(args))
        stops = StopRequests.install()
        summary = self._analyse(items, write=ui.should_write(opts.write), dry_run=opts.dry_run,
                                stop=lambda: stops.requested, **self._settings(opts))
        if summary.interrupted:
            raise SystemExit(stops.exit_status)

    def _settings(self, opts=None) -> dict:
        """db, model, jobs, force and replace_mood: the command's option, else the config's moodtag.<name>."""
        config = self.config
        chosen = {name: getattr(opts, name, None) for name in ("db", "model", "jobs", "force", "replace_mood")}
        db = chosen["db"] if chosen["db"] is not None else config["db"].get(confuse.Optional(str))
        return {"db": Path(db).expanduser() if db else None,
                "model": chosen["model"] if chosen["model"] is not None else config["model"].get(confuse.Optional(str)),
                "jobs": chosen["jobs"] if chosen["jobs"] is not None else config["jobs"].get(int),
                "force": bool(chosen["force"]) or config["force"].get(bool),
                "replace_mood": bool(chosen["replace_mood"]) or config["replace_mood"].get(bool)}

    def _analyse(self, items: list, *, write: bool, dry_run: bool = False,
                 stop: Callable[[], bool] = lambda: False, **settings) -> ScanSummary:
        """mood_items with a progress bar on stderr, one line per failed file, and a summary line;
        a MoodtagError becomes beets' one-line UserError."""
        from tagger.console import shown
        from tagger.progress import ScanProgress

        progress = ScanProgress(enabled=True)

        def on_event(event: ScanEvent) -> None:
            o = event.outcome
            if dry_run and event.kind == "track" and o.result.ok:
                progress.log(f"[cyan]would set[/] {MOOD} {o.result.mood} ({o.result.confidence:.2f}): "
                             f"{shown(o.ref.path)}")
            if event.kind == "jobs":  # beet moodtag has no --oversubscribe: the scan's line would name it
                progress.log(f"[yellow]warning:[/] --jobs {event.total} capped at {event.count}, the cores available")
                return
            progress.show(event)

        try:
            with progress:
                summary = mood_items(items, write=write, dry_run=dry_run, on_event=on_event, stop=stop,
                                     **settings)
        except MoodtagError as exc:
            raise ui.UserError(printable(str(exc))) from None
        self._log.info("{}", summary_line(summary, len(items)))
        if summary.interrupted:
            self._log.warning("interrupted: finished results are stored; `beet moodtag` resumes")
        return summary

    # -- on import ------------------------------------------------------------------------------
    def collect(self, task) -> None:
        """An import task's items, once their files are in place (and tagged by beets where it writes
        tags): noted, to be analysed together when the import ends."""
        self._imported.extend(item.id for item in task.imported_items())

    def imported(self, lib) -> None:
        """The end of an import: every item it imported analysed in one scan (one pool of workers for
        all, where a pool per task cost 2 to 3 times as much: benchmarks/beets_import.py), stored,
        and tagged when the import writes tags (import.write, or import's -w/-W)."""
        ids, self._imported = self._imported, []
        items = [item for item in map(lib.get_item, ids) if item is not None]
        if not items:
            return
        try:
            self._analyse(items, write=ui.should_write(), **self._settings())
        except ui.UserError as exc:  # the import itself is done; `beet moodtag` can catch up later
            self._log.error("{}", exc)
