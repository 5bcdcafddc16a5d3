"""Labelled data sets for training and evaluation: a folder or a CSV -> a list of `Item`s.

A folder holds one sub-folder per label: `DATA/<label>/**/<file>`. The group of a file (the unit
that validation keeps on one side: a game, a collection, an album) is, with `group_by`:

- ``auto`` (default): the part of the file name before ``__`` if there is one
  (``0ad-data__Alba_Longa_Burns.ogg`` -> ``0ad-data``); else the first folder below the label
  folder if the file is nested (``calm/<album>/01.flac`` -> ``<album>``); else the DATA folder's name;
- ``prefix``: the part before ``__`` (a file without ``__`` is an error);
- ``folder``: the first folder below the label folder (a file directly in it is an error);
- ``track``: every file is its own group (named ``<label>/<path below the label folder>``).

A CSV has a header row with a path column (``path`` or ``file``), a ``label`` column and optionally
a group column (``group``, ``source`` or ``package``); paths are relative to the CSV's folder.
Without a group column the groups follow `group_by` applied to the paths (``folder`` means the
path's first folder, skipping a first folder named like the label; the default group is the CSV's name).
"""
from __future__ import annotations

import csv
import os
import stat
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from tagger.discover import Library, file_kind, is_audio_name  # the names a scan takes, so a model trains on what it will tag
from tagger.errors import BROKEN_LINK, MoodtagError
from tagger.records import counted

GROUP_BY = ("auto", "prefix", "folder", "track")
GROUP_SEPARATOR = "__"
_PATH_COLUMNS = ("path", "file", "filename")
_GROUP_COLUMNS = ("group", "source", "package")


@dataclass(frozen=True)
class Item:
    """One labelled track: its file, its label, and the group validation keeps together."""

    path: Path
    label: str
    group: str


def load_items(data: Path | str, *, labels: tuple[str, ...] | None = None, group_by: str = "auto",
               on_skip: Callable[[Path, str], None] | None = None, taggable: bool = True) -> list[Item]:
    """A folder or CSV file -> Items sorted by path. With `labels`, every item's label must be one
    of them (MoodtagError naming the first that is not): a folder's sub-folders that hold audio are named by
    those labels only, while one that holds none (`notes/`) is left out whatever its name, as below.
    A label folder is walked as a scan walks a library (hidden names passed over, symlinks followed). A file
    in it whose name is not an audio file's is left out, as is a broken link or a symlink loop:
    on_skip(path, why) hears of each, and of a label folder left with no audio file (its label is not in
    DATA); audio files at the top of the folder (in no label folder) are left out too, on_skip(DATA, why)
    hearing of them once. Labels equal but for case or surrounding spaces
    ('Exciting' beside 'exciting') are a MoodtagError naming both and where the odd one comes from, as is,
    with `taggable` (data for a new model), a label that cannot name a tag field; without it (evaluate: the
    labels of a model that exists, one trained before that rule, say) such a label is taken."""
    items, where = _load(Path(data).expanduser(), labels=labels, group_by=group_by, on_skip=on_skip)
    _check_spellings(items, where)
    if taggable:
        _check_taggable(items, where)
    return sorted(items, key=lambda it: str(it.path))


def load_many(sources, *, labels: tuple[str, ...] | None = None, group_by: str = "auto",
              on_skip: Callable[[Path, str], None] | None = None, taggable: bool = True) -> list[Item]:
    """Several DATA arguments -> one list; the same file twice (by two paths, a link or a hard link) is an
    error, as is a label spelt two ways (across the arguments too). `taggable`: as load_items'."""
    items: list[Item] = []
    where: dict[str, str] = {}
    for source in sources:
        found, found_where = _load(Path(source).expanduser(), labels=labels, group_by=group_by, on_skip=on_skip)
        items += sorted(found, key=lambda it: str(it.path))
        where = {**found_where, **where}  # the first source a spelling comes from
    _check_spellings(items, where)
    if taggable:
        _check_taggable(items, where)
    _check_duplicates(items)
    return items


def _load(data: Path, *, labels, group_by: str, on_skip) -> tuple[list[Item], dict[str, str]]:
    """load_items' Items (unsorted), and where each label spelling first comes from (a label folder, or
    the CSV file and line)."""
    if group_by not in GROUP_BY:
        raise MoodtagError(f"--group-by {group_by}: unknown (choose from {', '.join(GROUP_BY)})")
    if not data.exists():
        raise MoodtagError(f"{data}: no such file or folder")
    if data.is_dir():
        items = _from_folder(data, labels=labels, group_by=group_by, on_skip=on_skip)
        where = {it.label: str(data / it.label) for it in items}
    elif data.suffix.lower() in (".csv", ".tsv"):
        where = {}
        items = _from_csv(data, labels=labels, group_by=group_by, where=where)
    else:
        raise MoodtagError(f"{data}: DATA must be a folder with one sub-folder per label, or a CSV file")
    if not items:
        raise MoodtagError(f"{data}: no audio files found (expected {data}/<label>/<files>)")
    return items, where


def _label_key(label: str) -> str:
    """What two spellings of one label share: 'Exciting', 'exciting ' -> 'exciting'."""
    return label.strip().casefold()


def _check_spellings(items: list[Item], where: dict[str, str]) -> None:
    """MoodtagError for labels equal but for case or surrounding spaces ('Exciting' beside 'exciting'): a
    model would take them for two labels (a third label, its threshold lost) and a scan tag files with the
    odd one. Named: the spelling fewer tracks hold and where it comes from, then the other."""
    counts = Counter(it.label for it in items)
    spellings: dict[str, list[str]] = {}
    for label in counts:
        spellings.setdefault(_label_key(label), []).append(label)
    for found in spellings.values():
        if len(found) > 1:
            usual = max(found, key=lambda label: (counts[label], label == label.strip(), label.islower(), label))
            odd = min((label for label in found if label != usual), key=lambda label: (counts[label], label))
            raise MoodtagError(f"{where[odd]}: label {odd!r} differs from {usual!r} ({where[usual]}) only in case "
                               "or surrounding spaces: spell each label one way")


def _check_taggable(items: list[Item], where: dict[str, str]) -> None:
    """MoodtagError for a label that cannot name a tag field (tagger.weights.TAG_LABEL: 'very calm',
    'énergique', 'calm '): a model of it would fail every track of a scan as its tags were written. Named:
    the label and where it first comes from (the label folder, or the CSV file and line)."""
    from tagger.weights import TAG_LABEL, TAG_LABEL_RULE

    for label in sorted({it.label for it in items}):
        if not TAG_LABEL.match(label):
            raise MoodtagError(f"{where[label]}: label {label!r} cannot be a tag field name ({TAG_LABEL_RULE}): "
                               "rename it")


def _file_key(path: Path):
    """What tells one file from another: its device and inode (two hard links are one file), else its resolved
    path (a file gone since it was listed)."""
    try:
        st = path.stat()
        return st.st_dev, st.st_ino
    except OSError:
        return path.resolve()


def _check_duplicates(items: list[Item]) -> None:
    """MoodtagError for a file listed twice: by one path, through a link, or by a hard link (two names of
    one file, say in calm/ and in exciting/: it would be trained on as both labels)."""
    first: dict[object, Path] = {}
    for it in items:
        key = _file_key(it.path)
        if key in first:
            seen = first[key]
            if seen.resolve() == it.path.resolve():
                raise MoodtagError(f"{it.path.resolve()}: listed more than once in DATA")
            raise MoodtagError(f"{it.path}: the same file as {seen} (a hard link): listed more than once in DATA")
        first[key] = it.path


def labels_of(items: list[Item], labels: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The label order of a model: `labels` if given (each must occur), else the labels found,
    sorted (calm before exciting, so a binary model's threshold is on P(exciting))."""
    found = sorted({it.label for it in items})
    if len(found) < 2:
        held = f"one label ({found[0]})" if found else "no labelled track"
        raise MoodtagError(f"DATA has {held}: a model needs tracks of two labels at least")
    if labels is None:
        return tuple(found)
    missing = [label for label in labels if label not in found]
    if missing:
        raise MoodtagError(f"--labels: no tracks labelled {missing[0]!r} in DATA (found: {', '.join(found)})")
    return tuple(labels)


def parse_labels(text: str | None) -> tuple[str, ...] | None:
    """'calm,exciting' -> ('calm', 'exciting'); None stays None."""
    if text is None:
        return None
    labels = tuple(part.strip() for part in text.split(",") if part.strip())
    if len(labels) < 2:
        raise MoodtagError(f"--labels {text}: give at least two labels, separated by commas")
    if len(set(labels)) != len(labels):
        raise MoodtagError(f"--labels {text}: a label is repeated")
    if len({_label_key(label) for label in labels}) != len(labels):
        raise MoodtagError(f"--labels {text}: a label is repeated in another case")
    return labels


def summarize(items: list[Item]) -> dict:
    """Counts per label and per group (for messages and the model's `trained_on`)."""
    return {"tracks": len(items),
            "labels": dict(sorted(Counter(it.label for it in items).items())),
            "groups": {g: dict(sorted(Counter(it.label for it in items if it.group == g).items()))
                       for g in sorted({it.group for it in items})}}


def _check_label(label: str, labels, where: str) -> None:
    if labels is not None and label not in labels:
        known = next((known for known in labels if _label_key(known) == _label_key(label)), None)
        if known is not None:
            raise MoodtagError(f"{where}: label {label!r} differs from {known!r} only in case or surrounding "
                               f"spaces (labels: {', '.join(labels)})")
        raise MoodtagError(f"{where}: unknown label {label!r} (labels: {', '.join(labels)})")


def _group(rel: Path, group_by: str, default: str, where: Path, label: str) -> str:
    """`rel` is the path below the label folder (or the CSV path). A track's group is its label and
    path (`calm/0.flac`): `exciting/0.flac` and `calm/0.ogg` are other tracks, not one group with it."""
    name = rel.name
    if group_by == "track":
        return f"{label}/{rel}"
    if group_by in ("auto", "prefix") and GROUP_SEPARATOR in name:
        prefix = name.split(GROUP_SEPARATOR, 1)[0]
        if prefix:
            return prefix
    if group_by == "prefix":
        raise MoodtagError(f"{where}: --group-by prefix, but the name has no '{GROUP_SEPARATOR}'")
    if len(rel.parts) > 1:
        return rel.parts[0]
    if group_by == "folder":
        raise MoodtagError(f"{where}: --group-by folder, but the file is not in a sub-folder")
    return default


def _from_folder(root: Path, *, labels, group_by: str, on_skip) -> list[Item]:
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subdirs:
        raise MoodtagError(f"{root}: no label folders (expected {root}/<label>/<files>)")
    if labels is not None:  # at once, before a label folder is walked (and its warnings written)
        for d in subdirs:
            if d.name not in labels and _holds_audio(d):  # a `notes/` of text is left out below, whatever its name
                _check_label(d.name, labels, str(d))
    items = []
    skip = on_skip or (lambda path, why: None)
    loose = sorted(p.name for p in root.iterdir()
                   if not p.name.startswith(".") and is_audio_name(p.name) and p.is_file())
    if loose:  # a track's label is the folder it is in: one at the top has none
        skip(root, f"{counted(len(loose), 'audio file')} at the top level not used ({loose[0]}"
                   f"{', ...' if len(loose) > 1 else ''}): a track's label is the name of the folder it is in "
                   f"({root}/<label>/<files>)")
    for label_dir in subdirs:
        library = Library.of([label_dir])
        before = len(items)
        for path in _label_files(label_dir, label_dir.stat(), set(), library, skip):
            rel = path.relative_to(label_dir)
            if not is_audio_name(path.name):
                skip(path, f"skipped: not an audio file ({path.suffix or 'no'} extension)")
                continue
            items.append(Item(path=path, label=label_dir.name, group=_group(rel, group_by, root.resolve().name, path, label_dir.name)))
        if len(items) == before:  # an empty label folder (or one of other files): its label is not in DATA
            skip(label_dir, f"no audio file in this label folder: label {label_dir.name!r} left out")
    return items


def _holds_audio(folder: Path) -> bool:
    """Whether `folder`, walked as a label folder is (its warnings unsaid), holds an audio file: the walk stops
    at the first."""
    files = _label_files(folder, folder.stat(), set(), Library.of([folder]), lambda path, why: None)
    return any(is_audio_name(path.name) for path in files)


def _label_files(folder: Path, st: os.stat_result, seen: set, library: Library,
                 skip: Callable[[Path, str], None]) -> Iterator[Path]:
    """The regular files below a label folder, walked as a scan walks a library (tagger.discover.walk):
    hidden names passed over, folder links followed (an album linked into the label folder is
    trained on, not silently left out), a link to a folder the label folder holds by its own name
    passed over (its files come under their own names), and a folder met twice (a symlink loop) walked
    once. What cannot be walked (a broken link, a loop, an unreadable folder, a FIFO) is left out and
    `skip(path, why)` hears of it."""
    if (st.st_dev, st.st_ino) in seen:
        skip(folder, "skipped: symlink loop (points to a folder already walked)")
        return
    seen.add((st.st_dev, st.st_ino))
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        skip(folder, f"skipped: cannot list the folder ({exc.strerror or exc})")
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        try:
            entry_st = entry.stat(follow_symlinks=True)
        except FileNotFoundError:
            skip(path, f"skipped: {BROKEN_LINK}")
            continue
        except OSError as exc:
            skip(path, f"skipped: {exc.strerror or exc}")
            continue
        if stat.S_ISDIR(entry_st.st_mode):
            if not (entry.is_symlink() and library.walks_folder(path)):
                yield from _label_files(path, entry_st, seen, library, skip)
        elif stat.S_ISREG(entry_st.st_mode):
            yield path
        elif is_audio_name(entry.name):
            skip(path, f"skipped: not a regular file ({file_kind(entry_st.st_mode)})")


def _dialect_of(header: str) -> type[csv.Dialect]:
    """The dialect a header line names by its delimiter (tab, semicolon, else comma)."""
    if "\t" in header:
        return csv.excel_tab
    if ";" in header and "," not in header:
        return type("semicolon", (csv.excel,), {"delimiter": ";"})
    return csv.excel


def _rows(reader) -> tuple[list[str], list[tuple[int, dict]]]:
    """A csv.reader's header, and each further row as csv.DictReader gives it (the fields past the header's
    as a list under the key None, the fields a row lacks as None) with the line it starts on: rows are
    not lines (blank lines are skipped, a quoted field may hold line breaks), so an error names the line
    an editor shows."""
    header = next(reader, [])
    rows, start = [], reader.line_num + 1
    for fields in reader:
        if fields:
            row = dict(zip(header, fields))
            if len(fields) > len(header):
                row[None] = fields[len(header):]
            row.update((name, None) for name in header[len(fields):])
            rows.append((start, row))
        start = reader.line_num + 1
    return header, rows


def _not_utf8(path: Path) -> str:
    """The error for a CSV that is not UTF-8: the line an editor shows and the first byte there that is not
    UTF-8, and what to do."""
    where, guess = f"{path}:", "Windows-1252 or Latin-1"
    try:
        raw = path.read_bytes()
        if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):  # a byte order mark of UTF-16: a spreadsheet's "Unicode text"
            where, guess = f"{path}:", "UTF-16, a spreadsheet's \"Unicode text\""
        else:
            raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        where = f"{path}:{line}: the byte {raw[exc.start]:#04x} is"
    except OSError:
        pass
    return (f"{where} not UTF-8 text (saved as {guess}?): save the CSV as UTF-8 "
            "(a spreadsheet's \"CSV UTF-8\")")


def _from_csv(path: Path, *, labels, group_by: str, where: dict[str, str]) -> list[Item]:
    """The CSV's Items; `where` gets the file and line each label spelling first comes from."""
    base = path.parent
    reader = None
    try:  # utf-8-sig: a spreadsheet's "CSV UTF-8" starts with a byte order mark, which is not the header's
        with open(path, newline="", encoding="utf-8-sig") as fh:
            sample = fh.read(4096)
            fh.seek(0)
            try:
                dialect = csv.Sniffer().sniff(sample, delimiters=",\t;") if sample else csv.excel
            except csv.Error:  # rows of unequal length (a missing or extra field): the header's delimiter
                dialect = _dialect_of(sample.partition("\n")[0])
            reader = csv.reader(fh, dialect=dialect)
            header, rows = _rows(reader)
    except UnicodeDecodeError:  # a spreadsheet's plain "CSV" on Windows: Windows-1252 ('é' as the byte 0xe9)
        raise MoodtagError(_not_utf8(path)) from None
    except OSError as exc:
        raise MoodtagError(f"{path}: cannot read the CSV ({exc})") from None
    except csv.Error as exc:  # an unterminated quote, a NUL
        raise MoodtagError(f"{path}:{reader.line_num if reader else 1}: cannot read the CSV ({exc})") from None
    if not rows:
        raise MoodtagError(f"{path}: the CSV has no rows")
    width = len(header)
    columns = {c.strip().lower(): c for c in header if c}
    path_col = next((columns[c] for c in _PATH_COLUMNS if c in columns), None)
    label_col = columns.get("label")
    group_col = next((columns[c] for c in _GROUP_COLUMNS if c in columns), None)
    if path_col is None or label_col is None:
        raise MoodtagError(f"{path}: the CSV needs a header with 'path' (or 'file') and 'label' columns")
    items = []
    lines: dict[object, tuple[int, Path]] = {}  # each file's first line: a second row of it names both
    for line, row in rows:
        if None in row:  # the key of the fields past the header's
            raise MoodtagError(f"{path}:{line}: {width + len(row[None])} fields, the header has {width} "
                               "(a comma in a path needs the path in double quotes)")
        short = sum(value is None for value in row.values())  # the value of the fields a row lacks
        if short and row.get(path_col) is not None and row.get(label_col) is not None:
            raise MoodtagError(f"{path}:{line}: {width - short} fields, the header has {width}")
        raw = (row.get(path_col) or "") + (row.get(label_col) or "")
        rel, label = (row.get(path_col) or "").strip(), (row.get(label_col) or "").strip()
        if not rel or not label:
            hint = " (an unclosed double quote runs on to the end of the file)" if "\n" in raw else ""
            raise MoodtagError(f"{path}:{line}: empty {'label' if rel else 'path'}{hint}")
        _check_label(label, labels, f"{path}:{line}")
        where.setdefault(label, f"{path}:{line}")
        file = (base / rel) if not Path(rel).is_absolute() else Path(rel)
        if not is_audio_name(file.name):  # as in a label folder: a model trains on what a scan takes
            raise MoodtagError(f"{path}:{line}: {file}: not an audio file ({file.suffix or 'no'} extension)")
        if not file.is_file():
            raise MoodtagError(f"{path}:{line}: {file}: " + ("a folder, not an audio file" if file.is_dir()
                                                            else "no such audio file"))
        seen = lines.setdefault(_file_key(file), (line, file))
        if seen[0] != line:
            same = "" if seen[1].resolve() == file.resolve() else f" (the same file as {seen[1]}, a hard link)"
            raise MoodtagError(f"{path}:{line}: {file}{same}: listed more than once in the CSV (first on line {seen[0]})")
        group = (row.get(group_col) or "").strip() if group_col else ""
        if not group:
            parts = Path(rel).parts
            below = Path(*parts[1:]) if len(parts) > 1 and parts[0] == label else Path(rel)
            group = _group(below, group_by, path.stem, file, label)
        items.append(Item(path=file, label=label, group=group))
    return items
