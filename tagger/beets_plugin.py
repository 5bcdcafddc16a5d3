"""moodtag in beets (`plugins: moodtag`): the `beet moodtag [QUERY]` command, and the mood of every
item beets imports (with `auto`: the items an import brings in are noted once their files are in
place, `import_task_files`, and analysed together when the import ends, the `import` event).

Each item gets three flexible attributes, declared in `item_types` so that beets compares them as what
they are (`beet ls mood:calm`, `beet ls mood_confidence:0.8..`, a smartplaylist `query: 'mood:calm'`):

    mood              the model's label, e.g. calm
    mood_confidence   its probability (0..1)
    moodtag_mood      the mood moodtag stored last: a `mood` that differs was set by hand (`beet modify
                      mood=dreamy`) and is kept, as moodtag keeps a mood it did not write in a file, and
                      its file is not tagged where moodtag's differs; a file's own mood (one moodtag did
                      not write, read from the file where the scan did not) is the item's too

The analysis is moodtag's own scan (tagger.scan.scan_files) over the items' files, with moodtag's cache:
an unchanged file that the same model analysed before, for `moodtag scan` or for beets, is not
analysed again. The tags are written only when beets' write option says so (`import.write`, or the
command's -w/-W), and by moodtag's crash-safe writer (tagger.tags.write_mood), not `item.try_write()`:
the mood is no beets media field, so beets' writer would not write it, and it would rewrite every
other tag from beets' database besides (that is `beet write`'s job). moodtag's writer puts exactly
moodtag's fields in the file (the mood, the scores, the model), the same bytes `moodtag scan` writes,
survives a kill mid-write, and tells the cache the file's new size and mtime, so the file is not taken
for changed; the item then stores the file's new mtime, as beets does after its own writes, but only
where the item was current before (a file another tool changed since beets read it stays changed for
`beet update`).

Items are matched to the scan's files by the file itself (device and inode, found before the scan):
the scan takes a file once however many names it has (hard links, symlinks of `import.link`, two items
of one file), given an item's symlink by the name `moodtag scan` of a folder above it gives its file
(scan_name: an `import.link` item's by its target's own path, so its row is the one `moodtag scan` of the
music folder makes and finds; a link into a hidden store, git-annex's, by the link); each item gets its
file's mood.

beets' own tag writes (`beet write`, `beet modify -w`, `beet mbsync`, an import that re-tags) change
only tags, but a file's size and mtime too, which made the next scan analyse it again; and with
beets' `id3v23: yes` they turn an MP3's tag into v2.3, which has no TMOO: moodtag's mood was lost from
the file. So the plugin listens to beets' `write` (before the file is opened) and `after_write`
events (BeetsWrites): a file whose cache row was current before beets wrote it gets moodtag's mood
back where the write dropped it, and the row learns the file's new size and mtime.

beets imports this as `beetsplug.moodtag` (tagger/beetsplug/moodtag.py, which the wheel installs).
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import confuse
from beets import ui
from beets.dbcore import types
from beets.plugins import BeetsPlugin

from tagger.cache import KEPT, Cache, CachedTrack, path_key, resolve_db_path, scan_lock
from tagger.discover import behind_broken_link, own_name, spelt_on_disk, vanished
from tagger.errors import MoodtagError
from tagger.records import TrackRef, printable
from tagger.scan import ScanEvent, ScanSummary, TrackOutcome, scan_files

MOOD, CONFIDENCE, STORED = "mood", "mood_confidence", "moodtag_mood"
MOODTAGS, ITEMS, FILES = "moodtag's", "the item's", "the file's"  # whose mood an item gets (whose_mood)
DEFAULTS = {"auto": True, "jobs": 0, "model": None, "force": False, "replace_mood": False, "db": None}


@dataclass
class ItemTally:
    """What the items got, beside the scan's counts (which are of files): how many items and files,
    moodtag's mood per item (two items of one file count twice), the items whose own mood was kept, and,
    in a dry run, the files whose tags the run would write (the scan's count is of a run that tags every
    file it may: not the files of an item with a mood of its own, nor any without -w), and the items left
    as they are because their files are on a disk not mounted now (`away`: its mount point -> items)."""

    items: int = 0
    files: int = 0
    moods: Counter = field(default_factory=Counter)
    kept: int = 0
    would_write: int = 0
    away: dict = field(default_factory=dict)


@dataclass(frozen=True)
class FileMood:
    """A file's own mood beside moodtag's result (file_mood): `mood`, its mood field's values ("; " between
    two), None where it holds none of its own (none, or moodtag's); or `error`, why its tags could not be
    read. `kept`: the scan said the file keeps a mood of its own."""

    mood: str | None = None
    error: str | None = None
    kept: bool = False


NO_MOOD = FileMood()


def mood_items(items: Iterable, *, write: bool, dry_run: bool = False, db: Path | None = None,
               model: str | None = None, jobs: int = 0, force: bool = False, replace_mood: bool = False,
               retag: bool = False, on_event: Callable[[ScanEvent], None] = lambda e: None,
               on_kept: Callable[[object, str, str | None], None] = lambda item, mood, theirs: None,
               on_unread: Callable[[object, str], None] = lambda item, cause: None,
               on_set: Callable[[object, TrackOutcome], None] = lambda item, outcome: None,
               on_away: Callable[[Path, int], None] = lambda point, items: None,
               stop: Callable[[], bool] = lambda: False) -> tuple[ScanSummary, ItemTally]:
    """Analyse the files of beets `items` (moodtag's scan and cache), store each item's mood and
    confidence in beets' database, and write the files' tags when `write` (with `retag`, those of files
    `moodtag untag` cleared too). With `dry_run` nothing is written anywhere. A file that is missing or
    fails is a problem of the summary (and an event), and leaves its items as they were; so does an
    item's path that holds a folder now (its files are not the items': never walked). Unless
    `replace_mood`, a mood moodtag did not put there is kept (whose_mood): an item's own (own_mood) in
    the item, whose file is not tagged where moodtag's mood is another (however many items it has: the
    own mood wins); and a file's own (file_mood: what the scan kept, or, where the scan did not read the
    file's tags, what they hold), in the file and, as the file's, in its items that hold none of their
    own, whether or not the run writes tags. `on_kept(item, moodtag's mood, theirs)` is told of each
    item that keeps a mood against moodtag's, and of each that takes its file's own mood now (theirs:
    that mood, "" where the scan kept it and it cannot be read, and the item is left as it is; None for
    the item's own); `on_unread(item, cause)` of each item left as it is because its file's tags cannot
    be read (whether it holds a mood of its own is not known); every item that moodtag's mood and
    confidence change, or would in a dry run (not one that holds them already: holds_result),
    `on_set(item, outcome)`. A mood of the item's or the file's own that agrees with moodtag's (case
    aside: differs) is no conflict, and nothing is said of it. Every item of a file gets its mood, however the
    scan names the file (FileItems). The items whose files are gone from a disk a scan saw mounted that is
    not mounted now (Mounts.away) are not given to the scan (their rows stay as they are, as `moodtag scan`
    leaves them): `on_away(mount point, items)` is told of each such disk, before the scan. Raises
    MoodtagError for an unusable model or cache."""
    rows = KnownRows(db)
    try:
        files = FileItems(items, has_row=rows, away=rows.away)
        note_stored(files, rows)
    finally:
        rows.close()
    tally = ItemTally(items=files.items, files=len(files.groups) + sum(map(len, files.away.values())),
                      away={point: len(on_it) for point, on_it in files.away.items()})
    for point, count in sorted(tally.away.items()):
        on_away(point, count)

    def leave_tags(path: Path, mood: str) -> bool:
        return not replace_mood and any(differs(own_mood(item), mood) for item in files.of(path))

    def store(event: ScanEvent) -> None:
        if event.kind == "track" and event.outcome.result.ok:
            outcome, mood = event.outcome, event.outcome.result.mood
            group = files.of(outcome.ref.path)
            theirs = file_mood(outcome, group, replace_mood=replace_mood)
            if write and outcome.tags == "would write" and not leave_tags(outcome.ref.path, mood):
                tally.would_write += 1
            for item in group:
                tally.moods[mood] += 1
                before, held = item.get(MOOD, with_album=False), holds_result(item, outcome.result)
                whose = store_outcome(item, outcome, replace_mood=replace_mood, dry_run=dry_run, file=theirs)
                if whose == ITEMS and differs(before, mood):  # an own mood that agrees with moodtag's is no conflict
                    tally.kept += 1
                    on_kept(item, mood, None)
                elif whose == FILES and theirs.mood is not None:
                    if before != theirs.mood:  # said once: the item holds it already at the next run
                        on_kept(item, mood, theirs.mood)
                elif whose == FILES and theirs.kept:  # its tags cannot be read now
                    on_kept(item, mood, "")
                elif whose == FILES:
                    on_unread(item, theirs.error or "unknown cause")
                elif whose == MOODTAGS and not held:
                    on_set(item, outcome)
        on_event(event)

    summary = scan_files(files.paths, db=db, model=model, jobs=jobs, force=force, replace_mood=replace_mood,
                         retag=retag, dry_run=dry_run, no_write=not write, files_only=True, leave_tags=leave_tags,
                         on_event=store, stop=stop)
    return summary, tally


def item_path(item) -> Path:
    """The item's path (absolute)."""
    return Path(os.path.abspath(os.fsdecode(item.path)))


def on_disk(paths: list[Path]) -> list[Path]:
    """Each path as its folders list it (discover.spelt_on_disk, each folder looked at once for all), where
    its file is there: on a case-insensitive disk (exFAT or FAT32 on a stick, a CIFS share, macOS) the
    spelling beets keeps after a rename by case (`calm_a.flac` -> `CALM_A.flac`) still opens the file,
    while `moodtag scan` keys its row by the listed one; given beets' spelling, the scan analysed the file
    again beside that row (two rows, counted and listed twice). A path whose file is not there stays as
    beets spells it: on a case-sensitive disk the name in another case is another file."""
    spelt = spelt_on_disk(paths)
    return [new if new == old or os.path.exists(old) else old for old, new in zip(paths, spelt)]


def scan_name(path: Path, has_row: Callable[[Path], bool] = lambda path: False) -> Path:
    """The name the scan is given for the item's file at `path`: `path`, except where that is a symlink to
    a file, named as a scan of the folders above it names the file (discover.own_name): beets'
    `import.link` (`library/Artist/x.flac -> music/x.flac`), by the file's own path, so that its row is
    the one `moodtag scan` of the music folder makes and finds (given the link, a scan keeps a new file's
    row under the link's name, which that scan never finds: it analysed every file again). A link into a
    hidden folder (git-annex's `x.flac -> .git/annex/objects/...`: a scan of the music folder names the
    file by the link) stays the link, unless `has_row` (the cache) says the file has a row under its real
    path and none under the link (its hidden store scanned by name). A broken link stays the item's path,
    which the scan's failure names."""
    if not (os.path.islink(path) and os.path.exists(path)):
        return path
    own = own_name(path)
    if own != path:
        return own
    real = Path(os.path.realpath(path))
    return real if not has_row(path) and has_row(real) else path


class KnownRows:
    """Whether moodtag's cache holds a row under a path (called with the path), for scan_name, and the disk
    away a gone file lies on (away): the cache opened read-only at the first question (never, where no
    item is a link into a hidden folder nor gone nor stored by an older moodtag), and closed before the scan
    opens it. A cache that is not there or cannot be read holds none, and knows no disk (the scan then says
    what is wrong with it)."""

    def __init__(self, db: Path | None) -> None:
        self._db = db
        self._cache: Cache | None = None
        self._mounts = None
        self._off = False

    def __call__(self, path: Path) -> bool:
        key = path_key(path)[0]
        try:
            cache = self._opened()
            return cache is not None and bool(cache.lookup([key]))
        except (MoodtagError, sqlite3.Error, OSError):
            self._off = True
            return False

    def moods(self, paths: list[Path]) -> tuple[dict[Path, tuple[str, float]], set[str]]:
        """The mood and confidence of each of `paths` whose row holds a mood (what moodtag gave that file last),
        by path: one lookup for all; and every mood the cache's rows hold (the labels of the models that made
        them), case folded."""
        from tagger.cache import TABLE

        keys = {path_key(path)[0]: path for path in paths}
        try:
            cache = self._opened()
            if cache is None:
                return {}, set()
            found = cache.lookup(list(keys))
            labels = {mood.casefold() for (mood,) in cache.rows(f"SELECT DISTINCT mood FROM {TABLE}") if mood}
        except (MoodtagError, sqlite3.Error, OSError):
            self._off = True
            return {}, set()
        return {keys[key]: (row.mood, row.confidence) for key, row in found.items() if row.has_mood and row.mood}, labels

    def away(self, path: Path) -> Path | None:
        """The mount point of the disk not mounted now that the gone file at `path` lies on, as a scan saw it
        (Cache.mounts, Mounts.away); None where there is none."""
        try:
            cache = self._opened()
            if cache is None:
                return None
            if self._mounts is None:
                self._mounts = cache.mounts()
            point = self._mounts.away(path)
        except (MoodtagError, sqlite3.Error, OSError):
            self._off = True
            return None
        return Path(os.fsdecode(point)) if point is not None else None

    def _opened(self) -> Cache | None:
        if self._off:
            return None
        if self._cache is None:
            place = resolve_db_path(self._db)
            if not place.is_file():
                self._off = True
                return None
            self._cache = Cache.open_readonly(place)
        return self._cache

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None


class FileItems:
    """The items of a scan grouped by their file, its identity (device, inode) taken before the scan:
    the scan takes a file once however many names it has (two hard links, an item's symlink and its
    target, two items of one path), under the name it chooses (a symlink's target where the cache knows
    it), and a tag write may rename a new file over it (a new inode). A file that cannot be looked at is
    a group of its own, by its path. The scan is given each file by the scan_name of its spelling on disk
    (on_disk; `has_row`: the cache's KnownRows). An item whose file is gone from a disk not mounted now
    (`away`, KnownRows.away: its mount point) is in no group and not given: `self.away`, mount point ->
    its items."""

    def __init__(self, items: Iterable, *, has_row: Callable[[Path], bool] = lambda path: False,
                 away: Callable[[Path], Path | None] = lambda path: None) -> None:
        self.groups: dict[object, list] = {}
        self.real: dict[str, object] = {}  # a real path (symlinks resolved) -> its group's identity
        self.paths: list[Path] = []  # the items' paths, each once: what the scan is given
        self.away: dict[Path, list] = {}
        self.items = 0
        given: set[Path] = set()
        items = list(items)
        paths = [item_path(item) for item in items]
        for item, path, spelt in zip(items, paths, on_disk(paths)):
            self.items += 1
            ident = _identity(path)
            point = away(path) if isinstance(ident, str) else None  # not there: maybe on a disk away
            if point is not None:
                self.away.setdefault(point, []).append(item)
                continue
            name = scan_name(spelt, has_row)
            # one file beets holds under two spellings (exfat-fuse gives each its own inode): one group, so
            # every item of it gets its mood (and one with a mood of its own keeps it, its file untagged);
            # not a file that is not there (a broken link and its missing target stay two)
            if not isinstance(ident, str):
                ident = self.real.get(str(name), ident)
            if name not in given:
                given.add(name)
                self.paths.append(name)
            self.groups.setdefault(ident, []).append(item)
            self.real.setdefault(os.path.realpath(path), ident)
            for named in (path, spelt, name):
                self.real.setdefault(str(named), ident)

    def of(self, path: Path) -> list:
        """The items whose file the scan named `path` (as given, or by its real path)."""
        ident = self.real.get(str(path))
        if ident is None:
            ident = self.real.get(os.path.realpath(path))
        return self.groups.get(ident, []) if ident is not None else []


def _identity(path: Path) -> object:
    """The file's (device, inode), links followed; its path where it cannot be looked at."""
    try:
        st = os.stat(path)
    except OSError:
        return str(path)
    return st.st_dev, st.st_ino


def note_stored(files: FileItems, rows: KnownRows) -> None:
    """For each item an older moodtag stored (a mood and its confidence, no `moodtag_mood`: moodtag 0.4's
    plugin kept none), the mood moodtag gave its file last where the cache's row says (`rows`, read before
    the scan analyses the file again): an item whose mood differs from it (case aside: differs) was given
    its mood since (`beet modify mood=sleepy`) where its confidence is still the row's (a file analysed
    again since, by another model after an upgrade, has another) and its mood is none a model gave (the
    moods the cache holds: a track near the threshold analysed again may flip to the other label with the
    same confidence), and gets that row's mood as its `moodtag_mood` (in memory: stored with the item's
    result), so that own_mood keeps its mood. Where the file has no row, or the moods agree, or the
    confidences differ, or the item's mood is a label, the item is left as it is (moodtag's, own_mood)."""
    older: dict[Path, list] = {}
    for name in files.paths:
        for item in files.of(name):
            if item.get(STORED, with_album=False) is None and item.get(CONFIDENCE, with_album=False) is not None \
                    and item.get(MOOD, with_album=False) not in (None, ""):
                older.setdefault(name, []).append(item)
    moods, labels = rows.moods(list(older)) if older else ({}, set())
    for name, group in older.items():
        last, confidence = moods.get(name, (None, None))
        for item in group:  # an item of two names (hard links): the first with a row tells
            mood = item.get(MOOD, with_album=False)
            if last is not None and item.get(STORED, with_album=False) is None and differs(mood, last) \
                    and str(mood).casefold() not in labels \
                    and _same_confidence(item.get(CONFIDENCE, with_album=False), confidence):
                item[STORED] = last


def _same_confidence(stored, confidence) -> bool:
    """Whether an item's confidence is the row's, as beets shows it (2 decimals)."""
    try:
        return confidence is not None and abs(float(stored) - float(confidence)) < 0.005
    except (TypeError, ValueError):
        return False


def own_mood(item) -> str | None:
    """The item's mood when moodtag did not store it (`beet modify mood=dreamy`, another plugin), else
    None. moodtag's is the one it stored last (`moodtag_mood`); an item moodtag stored before it kept
    that (an older library) holds moodtag's mood where it holds moodtag's confidence beside it, unless the
    cache's row says moodtag gave its file another (note_stored). Not the album's: beets' get() would fall
    back to an album's `mood` attribute."""
    mood = item.get(MOOD, with_album=False)
    if mood in (None, ""):
        return None
    stored = item.get(STORED, with_album=False)
    if stored is None:
        return None if item.get(CONFIDENCE, with_album=False) is not None else mood
    return None if mood == stored else mood


def whose_mood(item, outcome: TrackOutcome, *, replace_mood: bool = False, file: FileMood = NO_MOOD) -> str:
    """Whose mood the item gets from a scan's (ok) result, unless `replace_mood` moodtag's: ITEMS, its own
    (own_mood; one that agrees with moodtag's, whatever its case, too: it stays the item's, so that a
    later result that differs keeps it); FILES, the file's own (`file`, file_mood) where it holds one
    that is another than moodtag's, or where its tags cannot be read (the item left as it is); else
    MOODTAGS (a file's own mood that agrees with moodtag's, whatever its case, too: the item gets
    moodtag's, with its confidence)."""
    if replace_mood:
        return MOODTAGS
    if own_mood(item) is not None:
        return ITEMS
    if file.mood is not None:
        return FILES if differs(file.mood, outcome.result.mood) else MOODTAGS
    return FILES if file.error is not None else MOODTAGS


def differs(own: str | None, mood: str) -> bool:
    """Whether a mood of the item's or the file's own (None: none) is another than moodtag's `mood`; case
    aside, as beets' `mood:calm` query finds Calm: an own Calm agrees with moodtag's calm."""
    return own is not None and own.casefold() != mood.casefold()


READ_TAGS = ("written", "unchanged", "would write")  # outcomes whose tags hold no mood of the file's own


def file_mood(outcome: TrackOutcome, items: list, *, replace_mood: bool = False) -> FileMood:
    """The file's own mood beside a scan's (ok) result, for whose_mood: what the scan kept (its mood field,
    all of it the file's own); none where the scan wrote or read its tags (READ_TAGS) or where no item
    would take it (`replace_mood`, every item holding a mood of its own); else (a run that writes no tags,
    a file left untagged by `moodtag untag` or by an item's own mood, a failed tag write) what its mood
    field holds that moodtag did not write, read now, so that every run (plain, -w, -p, an import) gives
    the items the same mood. A file whose tags cannot be read: its FileMood's error."""
    kept = outcome.tags == "kept"
    if replace_mood or outcome.tags in READ_TAGS or all(own_mood(item) is not None for item in items):
        return NO_MOOD
    from tagger.tags import SET_BY_HAND, mood_state  # mutagen: only where a file's tags are read

    try:  # kept: all of the mood field is the file's own; else a mood with moodtag's fields beside it is moodtag's
        moods = mood_state(outcome.ref.path, last_written=SET_BY_HAND if kept else None)[1]
    except (MoodtagError, OSError) as exc:
        return FileMood(error=_cause(exc), kept=kept)
    return FileMood(mood="; ".join(moods) or None, kept=kept)


def store_outcome(item, outcome: TrackOutcome, *, replace_mood: bool = False, dry_run: bool = False,
                  file: FileMood = NO_MOOD) -> str | None:
    """Store a scan's result in the item, as whose_mood says: moodtag's mood and confidence; the item's
    own mood left as it is (with moodtag's confidence where moodtag's mood agrees and the item holds the
    mood moodtag stored before, so that own_mood still tells it the item's); or the file's own
    (`file.mood`), as the mood moodtag stored (so that it follows the file: once the file is moodtag's,
    so is the item), without a confidence (the item left as it is where the file's tags cannot be
    read). After a tag write, the file's new mtime where the item was current before it (so that beets
    does not take the file for changed, while a change another tool made before stays one for `beet
    update`). A failure changes nothing (None), and so does a dry run. Returns whose_mood's answer."""
    result = outcome.result
    if not result.ok:
        return None
    whose = whose_mood(item, outcome, replace_mood=replace_mood, file=file)
    if dry_run:
        return whose
    if whose == MOODTAGS:
        item[MOOD] = result.mood
        item[CONFIDENCE] = round(result.confidence, 4)
        item[STORED] = result.mood
    elif whose == ITEMS and not differs(item.get(MOOD, with_album=False), result.mood) \
            and item.get(STORED, with_album=False) is not None:
        item[CONFIDENCE] = round(result.confidence, 4)
    elif whose == FILES and file.mood is not None:
        item[MOOD] = item[STORED] = file.mood
        if item.get(CONFIDENCE, with_album=False) is not None:
            del item[CONFIDENCE]
    if outcome.tags == "written" and was_current(item, outcome.ref):
        item.mtime = item.current_mtime()
    item.store()
    return whose


def holds_result(item, result) -> bool:
    """Whether the item holds moodtag's mood and confidence of `result` as store_outcome stores them:
    storing it changes nothing, or, for an item an older moodtag stored (no `moodtag_mood`), adds only its
    `moodtag_mood`, which is nothing to say."""
    mood = item.get(MOOD, with_album=False)
    return (mood == result.mood and item.get(STORED, with_album=False) in (None, mood)
            and item.get(CONFIDENCE, with_album=False) == round(result.confidence, 4))


def was_current(item, ref) -> bool:
    """Whether the item's stored mtime was the file's (or later) before moodtag wrote it: beets' test
    (`beet update` reads a file whose mtime is later than the item's). `ref`: the file as the scan
    found it, before its tags were written."""
    return item.mtime >= ref.mtime_ns // 1_000_000_000


def summary_line(summary: ScanSummary, tally: ItemTally, read_only: dict | None = None) -> str:
    """One line: items (and their files, where fewer), analysed, cached, failed (among them the files whose
    tag write a read-only file system refused, counted per mount point: `read_only`, ScanProgress.read_only;
    and, among the cached, the files that failed before and are unchanged since, which no run tries again
    unless forced, as `moodtag scan` says), the items left as they are on disks not mounted now
    (ItemTally.away), tags written (in a dry run, those the run would write: ItemTally.would_write, as
    `moodtag scan -n` counts them) and why not (left untagged, own mood kept), and the count of each mood,
    by item."""
    items = tally.items
    failed = len(summary.problems)
    moods = ", ".join(f"{mood} {n}" for mood, n in sorted(tally.moods.items()))
    kept = ([f"own mood kept {summary.kept}"] if summary.kept else []) + (
        [f"beets' own mood kept {tally.kept}"] if tally.kept else [])
    files = f" ({tally.files} file{'s' if tally.files != 1 else ''})" if tally.files < items else ""
    refused = ", ".join(f"{printable(str(mount))} {n}" for mount, n in sorted((read_only or {}).items()))
    away = sum(tally.away.values())
    return (f"{items} item{'s' if items != 1 else ''}{files}: {summary.analysed} analysed, {summary.cached} "
            f"unchanged (cached), {failed} failed"
            + (f" (tags not written on a read-only file system: {refused})" if refused else "")
            + (f", {summary.failed_before} failed before and unchanged (-f tries again)" if summary.failed_before
               else "")
            + (f", {away} on a disk not mounted (left as {'it is' if away == 1 else 'they are'})" if away else "")
            + (f", tags that would be written {tally.would_write}" if summary.dry_run
               else f", tags written {summary.written}")
            + (f", left untagged {summary.untagged} (--retag tags those without a mood of their own)"
               if summary.untagged else "")
            + (f", {', '.join(kept)} (--replace-mood replaces it)" if kept else "")
            + (f"; {moods}" if moods else "") + (" (dry run: nothing stored or written)" if summary.dry_run else ""))


def config_jobs(view) -> int:
    """moodtag.jobs: a whole number, 0 (one per core) or more. confuse's int template takes 1.5 for 1,
    and a negative number went on to the scan, whose message named a --jobs option never given."""
    value = view.get()
    if isinstance(value, bool) or not isinstance(value, int):
        raise confuse.ConfigTypeError(f"{view.name}: must be a whole number, 0 (one per core) or more, "
                                      f"not {value!r}")
    if value < 0:
        raise confuse.ConfigValueError(f"{view.name}: must be 0 (one per core) or more, not {value}")
    return value


@dataclass(frozen=True)
class Noted:
    """A file beets is about to write whose cache row is current for it: where the row is kept (its path,
    Cache.row_of), the file as it is before beets' write, and the row."""

    place: Path
    before: TrackRef
    row: CachedTrack


class BeetsWrites:
    """moodtag's cache and tags kept in step with beets' own tag writes. Before beets opens a file
    (beets' `write` event): the file's size and mtime, and whether its row is current for them and holds
    a result (status ok, or only its tag write failed: CachedTrack.has_mood; a file that failed to decode
    is tried again, as after any change). After beets' write (`after_write`), where it was: beets changed
    only tags, so moodtag's mood goes back in where the row says moodtag wrote it (tagged) and the file
    holds none now (beets' ID3v2.3 save drops TMOO), as a scan writes it (under the scan lock, with the
    undo journal); then the row takes the file's new size and mtime, keeping its result and tag_state,
    and the next scan does not analyse the file again (a failed tag write is tried again). A row that
    says kept whose file holds no mood of its own now (the same v2.3 save drops another tool's TMOO)
    says nothing written instead: the next scan that writes tags writes moodtag's mood, and none counts
    an own mood kept that the file lost. A file without a row, or changed since moodtag saw it, is left
    to the next scan.

    beets' moves and removals too: a file beets moved (`beet mv`, an import that moves; `item_moved`)
    takes its row with it, where the row is current for it (moved), and a file beets deleted (`beet rm
    -d`; `item_removed`, which beets sends before it deletes the file) has its row marked missing at
    `cli_exit` (removed), so that `moodtag prune` forgets it.

    Nothing is raised into beets, whose write is done: a failure is one warning line naming the file and
    the cause. The cache (the plugin's, `db`) is opened when a write first needs it, once per thread that
    writes (an import writes from its pipeline's threads; an SQLite connection stays in the thread that
    made it), and closed at beets' `cli_exit`; where the cache file does not exist nothing is done. The
    scan lock is held only while a mood is written back."""

    def __init__(self, db: Callable[[], Path | None], log) -> None:
        self._db = db                          # the configured cache (MoodtagPlugin._db), asked once
        self._log = log
        self._path: Path | None = None
        self._off = False                      # the configured cache cannot be used (said once)
        self._caches: dict[int, Cache] = {}    # by thread
        self._noted: dict[bytes, Noted] = {}   # by the path beets writes
        self._removed: list[tuple[bytes, Path | None]] = []  # the files of the items beets removed
        # (item_removed), each with its spelling on disk where that differs
        self._moving: dict[bytes, Path] = {}   # a file beets moves -> its spelling on disk (before_item_moved)
        self._guard = threading.Lock()

    def before(self, path: bytes) -> None:
        """beets' `write` event: note the file if its row is current."""
        self._noted.pop(path, None)
        try:
            noted = self._note(path)
        except Exception as exc:  # noqa: BLE001 (beets' write goes on whatever happens here)
            self._warn(path, "not noted before beets' write", exc)
            return
        if noted is not None:
            self._noted[path] = noted

    def after(self, item, path: bytes) -> None:
        """beets' `after_write` event (its write succeeded): settle a file noted before it."""
        noted = self._noted.pop(path, None)
        if noted is None:
            return
        try:
            self._settle(item, path, noted)
        except Exception as exc:  # noqa: BLE001 (beets' write is done; the next scan analyses the file)
            self._warn(path, "moodtag's cache not updated after beets' write", exc)

    def moving(self, source: bytes) -> None:
        """beets' `before_item_moved` event: where the cache has no row under beets' spelling of the file,
        its spelling on disk noted (on_disk: a file renamed by case on a case-insensitive disk, whose row
        `moodtag scan` keys by that spelling), for moved, which no longer finds the file there."""
        try:
            cache = self._cache()
            file = Path(os.path.abspath(os.fsdecode(source)))
            if cache is not None and not cache.lookup([path_key(file)[0]]):
                spelt = on_disk([file])[0]
                if spelt != file:
                    self._moving[source] = spelt
        except Exception as exc:  # noqa: BLE001 (beets' move goes on whatever happens here)
            self._warn(source, "not noted before beets' move", exc)

    def moved(self, source: bytes, destination: bytes) -> None:
        """beets' `item_moved` event (`beet mv`, `beet move`, an import with move; the file is at
        `destination` now): the row of the file at `source`, where it is current for the file as it is
        now (not marked missing, same size and mtime: a move keeps them), takes the destination's path,
        keeping its result, status and tag_state (Cache.found_again, as a scan moves a renamed file's row,
        a failed one too); so the next scan neither analyses the file again (a failed tag write is tried
        again, a file that failed to decode counts as failed before) nor keeps a second row under the old
        path (or under the spelling on disk that `moving` noted). Where the destination has a row already,
        both stay as they are. A copy (`item_copied`) is another file: left alone."""
        try:
            self._move_row(source, destination, self._moving.pop(source, None))
        except Exception as exc:  # noqa: BLE001 (beets' move is done; the next scan analyses the file)
            self._warn(destination, "moodtag's cache not updated after beets' move", exc)

    def removed(self, item) -> None:
        """beets' `item_removed` event: the item's file noted, and its spelling on disk where that differs
        (on_disk: its row's, after a rename by case; the cache is not opened: a plain `beet rm` keeps the
        files, and their rows). beets sends it before `beet rm -d` deletes the file, so whether the file is
        gone is seen at `cli_exit` (close)."""
        path, spelt = bytes(item.path), None
        try:
            file = Path(os.path.abspath(os.fsdecode(path)))
            spelt = next((name for name in on_disk([file]) if name != file), None)
        except Exception:  # noqa: BLE001 (beets' removal goes on; beets' spelling is noted)
            pass
        self._removed.append((path, spelt))

    def close(self) -> None:
        """beets' `cli_exit` event: the rows of removed items' files that are gone now marked missing
        (forget_removed), then the connections closed (one opened in another thread, an import's, is
        closed as it is dropped: SQLite's connections refuse another thread's close)."""
        self.forget_removed()
        with self._guard:
            caches, self._caches = list(self._caches.values()), {}
        self._noted.clear()
        self._moving.clear()
        for cache in caches:
            try:
                cache.close()
            except sqlite3.Error:
                pass

    def forget_removed(self) -> None:
        """The row of each removed item's file that is gone now (`beet rm -d`; as a scan's _gone: not a
        file behind a broken link, whose disk may be back) marked missing, so that `moodtag prune`
        forgets it; a file still there (`beet rm` without -d) keeps its row. Gone is asked of beets' spelling,
        the name beets deleted (exfat-fuse's kernel may hold the other spelling a while); the row is looked
        up under its spelling on disk too (removed)."""
        removed, self._removed = self._removed, []
        for path, spelt in dict.fromkeys(removed):
            try:
                file = Path(os.path.abspath(os.fsdecode(path)))
                if not vanished(file, spelling=False) or behind_broken_link(file):  # the file itself is there
                    continue
                cache = self._cache()
                if cache is None:
                    return
                found = cache.row_of(file)
                if found is None and spelt is not None:
                    found = cache.row_of(spelt)
                if found is not None:
                    cache.mark_missing([found[1].path])
            except Exception as exc:  # noqa: BLE001 (beets' removal is done)
                self._warn(path, "not marked missing in moodtag's cache after beets deleted it", exc,
                           then="`moodtag scan` of its folder marks it")

    def _move_row(self, source: bytes, destination: bytes, spelt: Path | None = None) -> None:
        """moved's work: the source's row (or the row under its spelling on disk, `spelt`), where current for
        the destination's file, under its path."""
        cache = self._cache()
        if cache is None:
            return
        old, new = (Path(os.path.abspath(os.fsdecode(p))) for p in (source, destination))
        if old == new:  # beets' move of a file onto itself (same file) sends the event too
            return
        found = cache.row_of(old)
        if found is None and spelt is not None:
            found = cache.row_of(spelt)
        if found is None:
            return
        row, st = found[1], os.stat(new)
        if row.status == "missing" or (row.size, row.mtime_ns) != (st.st_size, st.st_mtime_ns):
            return
        key, raw = path_key(new)
        if cache.lookup(list(dict.fromkeys([key, path_key(os.path.realpath(new))[0]]))):
            return  # the destination has a row of its own: both left as they are
        cache.found_again([(row.path, replace(row, path=key, path_bytes=raw))])

    def _note(self, path: bytes) -> Noted | None:
        cache = self._cache()
        if cache is None:
            return None
        file = Path(os.path.abspath(os.fsdecode(path)))
        try:
            before = TrackRef.from_path(file)
        except OSError:  # no file there yet: beets' write fails, or another plugin makes it
            return None
        found = cache.row_of(file)
        if found is None:  # renamed by case on a case-insensitive disk: its row is under the listed spelling
            spelt = on_disk([file])[0]
            found = cache.row_of(spelt) if spelt != file else None
        if found is None:
            return None
        place, row = found
        current = row.status != "missing" and (row.size, row.mtime_ns) == (before.size, before.mtime_ns)
        if not (current and row.has_mood):
            return None
        return Noted(place, before, row)

    def _settle(self, item, path: bytes, noted: Noted) -> None:
        """After beets' write of a file whose row was current: the mood back where the write dropped it,
        and the row's new size and mtime; the item stores the file's mtime after a write back. A kept row
        whose file's own mood the write dropped says nothing written (tag_state None): there is nothing of
        moodtag's to put back, and the next scan that writes tags tags the file without analysing it."""
        cache = self._cache()
        if cache is None:
            return
        after = TrackRef.from_path(noted.before.path)
        if noted.row.tagged:
            from tagger.tags import read_mood

            if read_mood(after.path) is None:
                self._put_back(cache, noted, after)
                if path == item.path:
                    item.mtime = item.current_mtime()
                return
        elif noted.row.tag_state == KEPT and not holds_own_mood(after.path):
            if cache.set_retagged(noted.place, before=noted.before, after=after):  # nothing kept now: not written
                cache.put_back_tag_state(noted.place, replace(noted.row, size=after.size, mtime_ns=after.mtime_ns,
                                                              tag_state=None))
            return
        cache.set_retagged(noted.place, before=noted.before, after=after)

    def _put_back(self, cache: Cache, noted: Noted, written: TrackRef) -> None:
        """moodtag's mood, which beets' write dropped, written back from the row; the row then takes the
        file's size and mtime. Where the write fails, the row takes those beets left and says the tag
        write failed (one warning line): the next scan writes it without analysing the file again."""
        from tagger.safewrite import UndoJournal
        from tagger.tags import write_mood

        values = row_values(cache, noted)
        lock = scan_lock(cache.path, on_wait=lambda: self._log.warning(
            "{}", f"waiting for another moodtag command that writes {printable(cache.path)} to finish, to write the mood "
                  f"back into {printable(written.path)}"))
        journal = UndoJournal.for_cache(cache.path)
        try:
            try:
                write_mood(written.path, values, last_written=noted.row.mood, journal=journal)
                after = TrackRef.from_path(written.path)
            except (MoodtagError, OSError) as exc:
                if cache.set_retagged(noted.place, before=noted.before, after=written):
                    cache.set_tag_failed(noted.place, _cause(exc))
                self._warn(os.fsencode(written.path), "beets' write dropped moodtag's mood and it could not be "
                           "written back", exc, then="`beet moodtag -w` or `moodtag scan` tries again")
                return
            cache.set_retagged(noted.place, before=noted.before, after=after)
        finally:
            journal.close()
            lock.release()

    def _cache(self) -> Cache | None:
        """This thread's connection to the configured cache; None where the cache does not exist (moodtag
        saw none of the files) or cannot be used (said once, then nothing is done)."""
        if self._off:
            return None
        cache = self._caches.get(threading.get_ident())
        if cache is not None:
            return cache
        try:
            if self._path is None:
                self._path = resolve_db_path(self._db())
            if not self._path.is_file():
                return None
            cache = Cache.open(self._path, create=False)
        except (MoodtagError, confuse.ConfigError, ui.UserError) as exc:
            self._off = True
            self._log.warning("{}", f"beets' tag writes are not noted in moodtag's cache: {printable(str(exc))}")
            return None
        with self._guard:
            self._caches[threading.get_ident()] = cache
        return cache

    def _warn(self, path: bytes, what: str, exc: BaseException, *,
              then: str = "the next scan analyses it again") -> None:
        self._log.warning("{}", f"{printable(os.fsdecode(path))}: {what} ({printable(_cause(exc))}); {then}")


def holds_own_mood(path: Path) -> bool:
    """Whether the file's mood field holds a mood of its own (all of it, as for a row that says kept).
    MoodtagError or OSError where its tags cannot be read."""
    from tagger.tags import SET_BY_HAND, mood_state

    return bool(mood_state(path, last_written=SET_BY_HAND)[1])


def row_values(cache: Cache, noted: Noted):
    """The MoodValues a scan wrote into the file from its row (tagger.scan._apply_tags): the mood, its
    scores to three places, the model's name and version. MoodtagError where the stored scores cannot
    be read."""
    from tagger.tags import MoodValues

    row = noted.row
    data = cache.get(noted.place) or {}
    try:
        scores = {label: round(p, 3) for label, p in json.loads(data.get("scores") or "{}").items()}
    except (ValueError, TypeError, AttributeError) as exc:  # JSONDecodeError is a ValueError
        raise MoodtagError(f"its stored scores cannot be read ({exc})") from None
    return MoodValues(mood=row.mood, scores=scores, model=f"{row.model_name} {row.model_version}")


def _cause(exc: BaseException) -> str:
    """An exception as the cause in one line: moodtag's own message, an OS error's text, else its class too."""
    if isinstance(exc, MoodtagError):
        return str(exc)
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return f"{type(exc).__name__}: {exc}"


class MoodtagPlugin(BeetsPlugin):
    """`beet moodtag [QUERY]`; with `auto` (the default), the mood of every item on import."""

    item_types = {MOOD: types.STRING, CONFIDENCE: types.Float(2), STORED: types.STRING}

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name or "moodtag")
        self.config.add(DEFAULTS)
        self._imported: list[int] = []  # ids of the items the running import brought in
        self._writes = BeetsWrites(lambda: self._db(None), self._log)  # beets' own tag writes
        self.register_listener("write", self._writes.before)
        self.register_listener("after_write", self._writes.after)
        self.register_listener("before_item_moved", self._writes.moving)
        self.register_listener("item_moved", self._writes.moved)
        self.register_listener("item_removed", self._writes.removed)
        self.register_listener("cli_exit", self._writes.close)
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
            help="write the mood over a mood moodtag did not write, in files and items (default: keep "
                 "it; moodtag.replace_mood)")
        add("--retag", action="store_true", default=False,
            help="with -w, write the mood into files `moodtag untag` cleared too (a plain run, even -f, "
                 "leaves them untagged)")
        add("--model", metavar="MODEL", help="model file, or the name of a shipped model")
        add("--db", metavar="FILE", help="moodtag's cache database (default: moodtag.db, else $MOODTAG_DB, "
                                         "else moodtag's own)")
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
        jobs_from = "--jobs" if opts.jobs is not None else "moodtag.jobs:"
        summary = self._analyse(items, write=ui.should_write(opts.write), dry_run=opts.dry_run,
                                stop=lambda: stops.requested, jobs_from=jobs_from, **self._settings(opts))
        if summary.interrupted:
            raise SystemExit(stops.exit_status)

    def _settings(self, opts=None) -> dict:
        """db, model, jobs, force and replace_mood: the command's option, else the config's moodtag.<name>;
        retag: the command's option. A bad setting is confuse's ConfigError (beets: one line
        `configuration error: moodtag.<name>: ...`, exit 1), a bad option a UserError."""
        config = self.config
        chosen = {name: getattr(opts, name, None) for name in ("db", "model", "jobs", "force", "replace_mood")}
        return {"db": self._db(chosen["db"]),
                "model": chosen["model"] if chosen["model"] is not None else config["model"].get(confuse.Optional(str)),
                "jobs": chosen["jobs"] if chosen["jobs"] is not None else config_jobs(config["jobs"]),
                "force": bool(chosen["force"]) or config["force"].get(bool),
                "replace_mood": bool(chosen["replace_mood"]) or config["replace_mood"].get(bool),
                "retag": bool(getattr(opts, "retag", False))}

    def _db(self, given: str | None) -> Path | None:
        """The cache: --db, else moodtag.db, else $MOODTAG_DB (as `moodtag scan --db` falls back to it; an
        empty one is unset there too), else None: moodtag's default. An empty --db or moodtag.db (an unset
        variable?) is refused, as `moodtag scan --db ''` is, not taken for the default."""
        if given == "":
            raise ui.UserError("--db: an empty path (an unset variable?)")
        if given is None:
            view = self.config["db"]
            given = view.get(confuse.Optional(str))
            if given == "":
                raise confuse.ConfigValueError(f"{view.name}: an empty path (an unset variable?); null means "
                                               f"the cache `moodtag scan` uses")
        if given is None:
            given = os.environ.get("MOODTAG_DB") or None
        return Path(given).expanduser() if given is not None else None

    def _analyse(self, items: list, *, write: bool, dry_run: bool = False,
                 stop: Callable[[], bool] = lambda: False, jobs_from: str = "moodtag.jobs:",
                 nowrite: str = "-W (--nowrite)", **settings) -> ScanSummary:
        """mood_items with a progress bar on stderr, one line per failed file (but one per read-only file
        system that refused tag writes, naming its mount point and `nowrite`, the option that writes no
        tags; the summary counts its files), one per disk not mounted now whose items are left as they are
        (naming its mount point; the summary counts them), per item whose own mood is kept, per item that
        takes its file's own mood (in place of the scan's line for the file) and per item left as it is because its file's tags cannot be read (in a dry run, per item whose mood or
        confidence moodtag's would change too), and a summary line; a MoodtagError becomes
        beets' one-line UserError. `jobs_from`: what set the jobs (the config's
        moodtag.jobs, or -j/--jobs), named where they are capped to the cores."""
        from tagger.console import shown
        from tagger.progress import ScanProgress

        progress = ScanProgress(enabled=True, read_only_once=True, read_only_note=(
            f"its files are analysed and cached and its items get their moods all the same, and `beet moodtag -w` "
            f"once it is writable tags them without analysing again; {nowrite} not to try; its other files are "
            f"counted, not listed"))

        def on_event(event: ScanEvent) -> None:
            if event.kind == "jobs":  # beet moodtag has no --oversubscribe: the scan's line would name it
                progress.log(f"[yellow]warning:[/] {jobs_from} {event.total} capped at {event.count}, the cores "
                             f"available")
                return
            if event.kind == "track" and event.outcome.tags == "kept":  # its items' lines say it (on_kept)
                event = replace(event, outcome=replace(event.outcome, tag_error=None))
            progress.show(event)

        def on_set(item, o: TrackOutcome) -> None:  # not an item whose own mood is kept (on_kept's line), nor
            # one that holds moodtag's mood and confidence already
            if dry_run:
                progress.log(f"[cyan]would set[/] {MOOD} {o.result.mood} ({o.result.confidence:.2f}): "
                             f"{shown(item_path(item))}")

        def on_kept(item, mood: str, theirs: str | None) -> None:
            if theirs is None:
                what = (f"the item's own mood '{shown(item.get(MOOD, with_album=False))}' (not moodtag's "
                        f"{shown(mood)}) is kept")
            elif theirs:
                what = (f"the file's own mood '{shown(theirs)}' (not moodtag's {shown(mood)}) is kept, and the item "
                        f"{'would take' if dry_run else 'takes'} it")
            else:
                what = (f"the file's own mood (not moodtag's {shown(mood)}) is kept; it cannot be read, and the item "
                        f"is left as it is")
            progress.log(f"[yellow]kept:[/] {shown(item_path(item))}: {what} (--replace-mood replaces it)")

        def on_away(point: Path, count: int) -> None:
            from tagger.records import counted

            progress.log(f"[yellow]warning:[/] {shown(point)}: the disk a scan saw mounted there is not mounted now; "
                         f"{counted(count, 'item')} on it left as {'it is' if count == 1 else 'they are'} (mount it, "
                         f"then `beet moodtag`)")

        def on_unread(item, cause: str) -> None:
            progress.log(f"[yellow]warning:[/] {shown(item_path(item))}: its file's tags cannot be read "
                         f"({shown(cause)}), so whether it holds a mood of its own is not known; the item is "
                         f"left as it is")

        try:
            with progress:
                summary, tally = mood_items(items, write=write, dry_run=dry_run, on_event=on_event,
                                            on_kept=on_kept, on_unread=on_unread, on_set=on_set, on_away=on_away,
                                            stop=stop, **settings)
        except MoodtagError as exc:
            raise ui.UserError(printable(str(exc))) from None
        self._log.info("{}", summary_line(summary, tally, progress.read_only))
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
            self._analyse(items, write=ui.should_write(), nowrite="import with -W (--nowrite)", **self._settings())
        except ui.UserError as exc:  # the import itself is done; `beet moodtag` can catch up later
            self._log.error("{}", exc)
