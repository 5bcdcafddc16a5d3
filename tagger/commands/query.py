"""`moodtag query` and `moodtag stats`: read the cache (never its rows; an older one's schema is upgraded on opening)."""
from __future__ import annotations

import json
import os
import sys
from enum import Enum
from typing import Annotated, Optional

import typer

from tagger.commands.options import DbOption, JsonOption, text_value
from tagger.forked import SPLIT_MIN_ROWS  # below this, a listing is written by one process
from tagger.query import ORDERS, STATUSES
from tagger.records import printable, printable_cells  # imported by the CLI already (tagger.worker)

Order = Enum("Order", {name: name for name in ORDERS}, type=str)
Status = Enum("Status", {name: name for name in STATUSES}, type=str)


def query(
    db: DbOption = None,
    mood: Annotated[Optional[str], typer.Option(
        "--mood", metavar="MOOD", help="Only tracks of this mood (one of the cache's or the default model's, "
                                       "e.g. calm or exciting).")] = None,
    min_confidence: Annotated[Optional[float], typer.Option(
        "--min-confidence", metavar="X", min=0.0, max=1.0, help="Only tracks whose mood has probability >= X.")] = None,
    artist: Annotated[Optional[str], typer.Option(
        "--artist", metavar="TEXT", parser=text_value, help="Artist contains TEXT (case-insensitive; whole value with --exact).")] = None,
    album: Annotated[Optional[str], typer.Option(
        "--album", metavar="TEXT", parser=text_value, help="Album contains TEXT (case-insensitive; whole value with --exact).")] = None,
    exact: Annotated[bool, typer.Option(
        "--exact", help="--artist / --album must equal the whole value (still case-insensitive).")] = False,
    path_glob: Annotated[Optional[str], typer.Option(
        "--path-glob", metavar="GLOB",
        help="Absolute path matches GLOB (case-sensitive, * also crosses folders); "
             "a GLOB starting with neither / nor * matches at any depth, e.g. 'Jazz/*.flac'.")] = None,
    status: Annotated[Optional[list[Status]], typer.Option(
        "--status", metavar="STATUS",
        help="Only rows with this status: ok, failed, or missing (file gone since the last scan); "
             "repeat it for any of several.")] = None,
    order: Annotated[Order, typer.Option(
        "--order", metavar="KEY",
        help="Sort by confidence, path, artist, album or analyzed (ties: artist by album, title, then path; "
             "the others by path; rows without a value come last).")] = Order.path,
    desc: Annotated[bool, typer.Option(
        "--desc", help="Reverse the order, every key of it (artist: album, title and path too; rows without "
                       "the value still come last).")] = False,
    limit: Annotated[Optional[int], typer.Option("--limit", metavar="N", min=0, help="At most N rows.")] = None,
    json_lines: JsonOption = False,
    csv_out: Annotated[bool, typer.Option("--csv", help="CSV of a track's 16 fields, with a header row.")] = False,
    paths_only: Annotated[bool, typer.Option(
        "--paths", help="Only the paths, one per line (in a pipe: each file's own name bytes).")] = False,
    sql: Annotated[Optional[str], typer.Option(
        "--sql", metavar="SQL", parser=text_value,
        help="Run this SQL instead (table `tracks`), over a read-only connection: statements that write fail.")] = None,
) -> None:
    """List cached tracks, filtered and sorted; or run raw read-only SQL against the cache.

    Output: on a terminal, a table that fits its width (the path always shown, never cut; artist, title
    and album are dropped first when space runs out). When standard output is not a terminal (a pipe, a
    file): tab-separated values, a header line then one line per track (path, mood, confidence, artist,
    title, album, status, error; control characters in a value escaped as \\t, \\n, \\xNN, a backslash as
    \\\\: the path is the cache's key, spelled so already, and undone gives the file's name; --sql escapes
    each cell from its stored value, so a path it selects has its backslashes doubled once more). --paths: the
    paths alone, one per line (in a pipe or a file, each file's own name bytes, for xargs -d '\\n'; a name
    holding a line break is left out with a warning). --json (JSON Lines) and --csv: a track's 16 fields
    (--sql reads the cache's other columns). Never changes a track's row; a cache made by an older moodtag
    is upgraded when opened, as by every command (one that cannot be written: read through an upgraded
    copy, left as it is)."""
    from tagger.cache import Cache
    from tagger.query import TrackFilter, find_tracks, run_sql, track_values

    # Options that contradict each other: usage errors (exit status 2, click's lines), as scan's are.
    chosen = [name for name, on in (("--json", json_lines), ("--csv", csv_out), ("--paths", paths_only)) if on]
    if len(chosen) > 1:
        raise typer.BadParameter(f"{' and '.join(chosen)} exclude each other")
    if paths_only and sql is not None:
        raise typer.BadParameter("--paths lists tracks; with --sql, select the path column instead")
    filters = {"--mood": mood, "--min-confidence": min_confidence, "--artist": artist, "--album": album,
               "--path-glob": path_glob, "--status": status or None, "--limit": limit}
    if sql is not None and not sql.strip():
        raise typer.BadParameter("--sql needs a statement, e.g. --sql 'SELECT mood, count(*) FROM tracks GROUP BY mood'")
    if sql is not None:
        used = [name for name, value in filters.items() if value is not None]
        used += [name for name, on in (("--exact", exact), ("--desc", desc), ("--order", order != Order.path)) if on]
        if used:
            raise typer.BadParameter(f"--sql cannot be combined with {', '.join(used)} (write it in the SQL)")
    if json_lines or csv_out or paths_only:
        fmt = "json" if json_lines else "csv" if csv_out else "paths"
    else:
        fmt = "table" if _stdout_is_terminal() else "tsv"
    with Cache.open_readonly(db) as cache:
        if sql is not None:
            from tagger.commands.interrupts import StopRequests

            stops = StopRequests.install()  # SQLite polls it: Ctrl-C ends even an endless query
            try:
                result = run_sql(cache, sql, stop=lambda: stops.requested)
                if fmt == "json":
                    _check_json_names(result.columns)
                _emit(result.columns, result.rows, fmt=fmt, stop=lambda: stops.requested)
            except KeyboardInterrupt:  # SQLite stopped the statement, as stops asked (tagger.query._sql_error)
                if not stops.requested:
                    raise
            if stops.requested:  # 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP (as scan and untag)
                raise stops.exit()
            return
        if mood is not None:  # a mood no model of the cache knows (a typo, another case) is an error, as in `playlist`
            from tagger.playlists import check_mood, resolve_labels

            check_mood(mood, *resolve_labels(cache, model=None, any_model=True))
        track_filter = TrackFilter(mood=mood, min_confidence=min_confidence, artist=artist, album=album,
                                   exact=exact, path_glob=path_glob, status=tuple(s.value for s in status) if status else None,
                                   order=order.value, desc=desc, limit=limit)
        unreadable, unreadable_number = _unreadable_scores_warning(), _unreadable_number_warning()
        if paths_only and _stdout_is_terminal():  # names escaped, as in the table
            _write_lines(printable(path) for (path,) in track_values(cache, track_filter, ("path",)))
        elif paths_only:
            from tagger.query import select_tracks

            _write_names(select_tracks(cache, track_filter, "ifnull(path_bytes, CAST(path AS BLOB))"))
        elif fmt in ("json", "csv"):
            _write_track_lines(cache, track_filter, fmt, on_unreadable_scores=unreadable)
        elif fmt == "tsv":
            from tagger.query import LISTING_COLUMNS

            _write_lines(_tsv_lines(LISTING_COLUMNS, track_values(cache, track_filter, LISTING_COLUMNS),
                                    on_unreadable_number=unreadable_number))
        else:
            from tagger.console import out

            tracks = find_tracks(cache, track_filter, on_unreadable_scores=unreadable)
            shown = list(_capped(tracks))
            _render_tracks(shown, width=out.width, on_unreadable_number=unreadable_number)
            if len(shown) == TABLE_ROWS_MAX and next(iter(tracks), None) is not None:
                _say_capped()


def _check_json_names(columns) -> None:
    """--sql ... --json writes a row as an object, which holds one value per name: a statement whose
    columns share a name (`SELECT 1 AS a, 2 AS a`, a join's `*`) is refused, where a value was dropped
    without a word. Renaming one would give a name the statement does not have; AS gives it in a word."""
    from collections import Counter

    twice = [name for name, n in Counter(columns).items() if n > 1]
    if twice:
        from tagger.errors import MoodtagError

        raise MoodtagError(f"--json: the SQL's result has more than one column named {', '.join(map(repr, twice))}, "
                           "and a JSON object holds one value per name: name each column apart (AS)")


def _unreadable_scores_warning():
    """A listing's on_unreadable_scores (query.stored_scores): one warning line, naming the first row whose
    scores are not JSON; it and any other such row are listed without scores (as a row without any)."""
    told: list[str] = []

    def tell(path: str, text) -> None:
        if not told:
            from tagger.console import shown, warn
            from tagger.query import stored_cell

            told.append(path)
            warn(f"{shown(path)}: its scores are not JSON ({shown(stored_cell(text))}): "
                 "listed without scores, as is any other such row")
    return tell


def _unreadable_number_warning():
    """A listing's on_unreadable_number (query.stored_number): one warning line, naming the first row whose
    confidence is not a number, as _unreadable_scores_warning does for the scores."""
    told: list[str] = []

    def tell(path: str, column: str, value) -> None:
        if not told:
            from tagger.console import shown, warn
            from tagger.query import stored_cell

            told.append(path)
            warn(f"{shown(path)}: its {column} is not a number ({shown(stored_cell(value))}): listed as unknown, "
                 "as is any other such cell")
    return tell


def _stdout_is_terminal() -> bool:
    """Rich's answer (its console's is_terminal), without importing rich (~40 ms of a command's start)
    where it cannot be yes: standard output is no terminal and no variable forces one."""
    isatty = getattr(sys.stdout, "isatty", None)
    try:
        plain = isatty is None or not isatty()
    except ValueError:  # closed
        plain = True
    if plain and "FORCE_COLOR" not in os.environ and "TTY_COMPATIBLE" not in os.environ:
        return False
    from tagger.console import out

    return out.is_terminal


def stats(
    db: DbOption = None,
    label: Annotated[Optional[str], typer.Option(
        "--label", metavar="LABEL", help="Histogram of P(LABEL). Default: the last label of the scores most analysed "
                                         "tracks hold (e.g. exciting).")] = None,
    bins: Annotated[int, typer.Option("--bins", metavar="N", min=1, max=100, help="Histogram bins.")] = 10,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object instead of tables.")] = False,
) -> None:
    """Summarise the cache: tracks per mood, format and model, failures, missing files, and a histogram of scores."""
    from tagger.cache import Cache
    from tagger.console import out
    from tagger.query import cache_stats

    with Cache.open_readonly(db) as cache:
        summary = cache_stats(cache, label=label, bins=bins)
        path = cache.path
    if summary.unreadable_scores:
        from tagger.console import shown, warn

        others = summary.unreadable_scores - 1
        warn(f"{shown(summary.unreadable_example)}: its scores are not a JSON object of label probabilities"
             + (f" (nor are those of {others} other analysed track{'s' if others != 1 else ''})" if others else "")
             + "; counted without them")
    if summary.unreadable_confidence:
        from tagger.console import shown, warn

        others = summary.unreadable_confidence - 1
        warn(f"{shown(summary.unreadable_confidence_example)}: its confidence is not a number"
             + (f" (nor is that of {others} other analysed track{'s' if others != 1 else ''})" if others else "")
             + "; left out of the mean confidence")
    if json_out:
        out.print(json.dumps({"db": str(path), **summary.to_json()}, ensure_ascii=False), markup=False, highlight=False)
    else:
        from tagger.console import unpadded

        with unpadded(out):  # in a pipe, no line padded to the tables' width
            _render_stats(summary, path)


# -- rendering ---------------------------------------------------------------------------------------

TABLE_ROWS_MAX = 10_000  # a table is for reading: it stops here (--csv and --json give every row)
WRITE_LINES = 1000       # lines of output written at a time
SQL_COLUMN_MAX = 60      # a --sql table cuts longer cells (but the last column's) with '…'; --csv and --json do not


def _emit(columns, rows, *, fmt: str, stop=lambda: False) -> None:
    """Rows as JSON Lines, CSV, TSV (all three streamed, memory flat), or a plain-text table (at most
    TABLE_ROWS_MAX rows)."""
    from tagger.track_lines import json_encoder, jsonable

    if fmt == "json":
        encode = json_encoder()
        _write_lines((encode(dict(zip(columns, row))) for row in rows), stop=stop)
    elif fmt == "csv":
        _write_chunks(_csv_chunks(columns, rows), stop=stop)
    elif fmt == "tsv":
        _write_lines(("\t".join(values) for values in _with_header(
            columns, ([_tsv_text(v) for v in row] for row in rows))), stop=stop)
    else:
        from tagger.plain_table import table_lines

        if not columns:  # a statement that returns nothing (a PRAGMA that only reports by its effect)
            return
        cells = (tuple("" if v is None else printable(str(jsonable(v))) for v in row) for row in rows)
        shown = _write_lines(table_lines([printable(c) for c in columns], _capped(cells),
                                        max_widths=[SQL_COLUMN_MAX] * len(columns)), stop=stop) - 1
        if shown == TABLE_ROWS_MAX and next(cells, None) is not None:
            _say_capped()


def _capped(rows):
    """The first TABLE_ROWS_MAX rows."""
    from itertools import islice

    return islice(rows, TABLE_ROWS_MAX)


def _say_capped() -> None:
    from tagger.console import err

    err.print(f"[yellow]only the first {TABLE_ROWS_MAX:,} rows are shown[/]; --csv or --json "
              "give them all")


def _with_header(columns, rows):
    yield list(columns)
    yield from rows


def _write_lines(lines, *, stop=lambda: False) -> int:
    """Text lines to standard output, WRITE_LINES at a time; `stop()` is asked between two writes.
    Returns how many lines were written."""
    from itertools import islice

    lines, count = iter(lines), 0
    while True:
        chunk = list(islice(lines, WRITE_LINES))
        if not chunk:
            return count
        typer.echo("\n".join(chunk), color=True)  # color: click strips ANSI codes from values in a pipe
        count += len(chunk)
        if stop():
            return count


def _write_names(rows) -> None:
    """--paths in a pipe or a file: each row's file name as its own bytes (path_bytes, else the key's UTF-8,
    as SQLite gives them), one a line, WRITE_LINES at a time, so that `xargs -d '\\n'` gets the real path,
    a name that is not UTF-8 too (the key escapes such bytes as \\xNN). A name holding a line break cannot
    be one line: left out, with a warning naming it."""
    from itertools import islice

    rows = iter(rows)
    while True:
        names = [name for (name,) in islice(rows, WRITE_LINES)]
        if not names:
            return
        text = b"\n".join(names)
        if text.count(b"\n") != len(names) - 1:  # a line break inside a name (rare: searched once per chunk)
            from tagger.console import shown, warn

            for name in [name for name in names if b"\n" in name]:
                warn(f"{shown(name)}: left out of --paths: its name holds a line break, which one line "
                     "cannot hold (--json can)")
            text = b"\n".join(name for name in names if b"\n" not in name)
        if text:
            typer.echo(text + b"\n", nl=False)


def _write_track_lines(cache, track_filter, fmt: str, *, on_unreadable_scores=None) -> None:
    """--csv / --json: the lines of a long listing in runs of the path order, each made by a process of its
    own (tagger.forked) while this one writes the first; the others' text, kept in temporary files
    meanwhile, then written after it, in order, the same way as the first (so the same bytes as from one
    process). SQLite's work and Python's on each line take about half each: one process a core."""
    import tempfile

    from tagger.forked import processes_available, run_parts
    from tagger.query import split_by_path
    from tagger.track_lines import track_lines

    runs = split_by_path(cache, track_filter, processes_available(), min_rows=SPLIT_MIN_ROWS)
    if len(runs) == 1:
        _write_lines(track_lines(cache, track_filter, fmt=fmt, on_unreadable_scores=on_unreadable_scores))
        return
    files = [tempfile.TemporaryFile() for _ in runs[1:]]  # deleted already: nothing is left behind

    def run(i: int):
        def part() -> None:
            with cache.reader() as mine:
                lines = track_lines(mine, runs[i], fmt=fmt, header=i == 0, on_unreadable_scores=on_unreadable_scores)
                if i == 0:
                    _write_lines(lines)
                else:
                    _save_lines(lines, files[i - 1])
        return part

    try:
        with cache.released():
            for i, _ in enumerate(run_parts([run(i) for i in range(len(runs))], end_children_on_error=True)):
                if i:
                    _copy_lines(files[i - 1])
    finally:
        for file in files:
            file.close()


def _save_lines(lines, file) -> None:
    """Lines, each ended by a line break, into `file` (binary) as UTF-8: what _write_lines writes, kept."""
    from itertools import islice

    lines = iter(lines)
    while True:
        chunk = list(islice(lines, WRITE_LINES))
        if not chunk:
            file.flush()  # a forked process ends without flushing what it buffered
            return
        file.write(("\n".join(chunk) + "\n").encode("utf-8"))


def _copy_lines(file) -> None:
    """What _save_lines kept, to standard output as _write_lines writes its text (whole lines at a time,
    as they are: a value's terminal codes are data, which click would strip in a pipe)."""
    import codecs

    from tagger.forked import kept_blocks

    decoder, rest = codecs.getincrementaldecoder("utf-8")(), ""
    for block in kept_blocks(file):
        text = rest + decoder.decode(block)
        end = text.rfind("\n") + 1
        if end:
            typer.echo(text[:end], nl=False, color=True)
        rest = text[end:]
    rest += decoder.decode(b"", final=True)
    if rest:
        typer.echo(rest, nl=False, color=True)


def _write_chunks(chunks, *, stop=lambda: False) -> None:
    """Text chunks to standard output as they come; `stop()` is asked between two writes."""
    for chunk in chunks:
        typer.echo(chunk, nl=False, color=True)  # as it is: click strips ANSI codes from values in a pipe
        if stop():
            return


def _csv_chunks(columns, rows):
    """CSV, a header row then a line per row, in chunks of about 64 KiB. Each row is one CSV line (a value
    holding a line break quoted, see csv_writer), then a line break."""
    import io

    from tagger.track_lines import csv_cell, csv_writer, json_encoder

    buffer = io.StringIO()
    write = buffer.write
    write_row = csv_writer(lambda line: write(line + "\n")).writerow
    plain = (str, float, int, type(None))  # written as they are (None as an empty field)
    encode = json_encoder()  # csv_cell's json.dumps of a dict, without making an encoder a row
    write_row(columns)
    for row in rows:
        write_row([v if type(v) in plain else encode(v) if type(v) is dict else csv_cell(v) for v in row])
        if buffer.tell() > 1 << 16:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _tsv_lines(columns, rows, *, on_unreadable_number=None):
    """The TSV of a track listing (LISTING_COLUMNS' values as stored): a header line, then a line per
    track, the confidence rounded to 4 decimals, control characters in a value escaped and its backslashes
    doubled (the path is the cache's key, whose backslashes are doubled already), so that every escape can
    be undone. A confidence that is not a number (an edited cell) is empty, as an unknown one, and
    `on_unreadable_number` is told (query.stored_number)."""
    from tagger.query import LISTING_COLUMNS, stored_number

    assert tuple(columns) == LISTING_COLUMNS
    yield "\t".join(columns)
    for path, mood, confidence, artist, title, album, status, error in rows:
        if confidence is not None and type(confidence) is not float:
            confidence = stored_number(confidence, path, "confidence", on_unreadable_number)
        cells = [path, "" if mood is None else mood, "" if confidence is None else str(round(confidence, 4)),
                 "" if artist is None else _backslashes(artist), "" if title is None else _backslashes(title),
                 "" if album is None else _backslashes(album), "" if status is None else status,
                 "" if error is None else _backslashes(error)]
        try:
            yield printable_cells(cells)
        except TypeError:  # a value that is not text (SQLite keeps what it was given)
            yield printable_cells([v if type(v) is str else _tsv_text(v) for v in cells])


def _backslashes(value):
    r"""A text value with each backslash doubled (TSV's escapes, like the key's: `\\` is a backslash, `\t` a
    tab); any other value as it is."""
    return value.replace("\\", "\\\\") if type(value) is str and "\\" in value else value


def _tsv_cell(value) -> str:
    """A TSV value (text; control characters are escaped by the caller)."""
    from tagger.track_lines import csv_cell

    cell = csv_cell(value)
    return cell if isinstance(cell, str) else str(cell)


def _tsv_text(value) -> str:
    """A TSV cell, control characters escaped; text, numbers and NULL (most cells) on a short path."""
    kind = type(value)
    if kind is str:
        return printable(_backslashes(value))
    if kind is float or kind is int:
        return str(value)
    return "" if value is None else printable(_backslashes(_tsv_cell(value)))


PATH_MIN_WIDTH = 30  # the path column's least width: a longer path folds onto more lines
TAG_COLUMN_WIDTH = 20
ERROR_MIN_WIDTH = 16


def _render_tracks(tracks, *, width: int, on_unreadable_number=None) -> None:
    """A table that fits `width` columns. The path is never cut: it gets its whole length, or folds onto
    more lines when the terminal is narrower. Mood (never cut) and confidence always; status and error
    when some row is not ok and the path keeps PATH_MIN_WIDTH beside them, the error taking what the
    whole path leaves (at least ERROR_MIN_WIDTH, its text folded; where the path folds anyway, a share of
    the room as their lengths are); then artist, title and album, each only while the space beside the
    longest path still holds it. Widths are terminal cells (a CJK character or an emoji takes two). A confidence that is not
    a number (an edited cell) is empty, and `on_unreadable_number` is told (query.stored_number)."""
    from rich.cells import cell_len
    from rich.markup import escape
    from rich.table import Table

    from tagger.console import err, out
    from tagger.query import stored_number

    if not tracks:
        err.print("no cached tracks match")
        return
    paths = [printable(t.path) for t in tracks]
    errors = [printable(t.error or "") for t in tracks]
    moods = [printable(t.mood or "") for t in tracks]  # text; bytes (an edited cell) as \xNN, as stats shows them
    mood_width = max(4, *map(cell_len, moods))
    status_width = max(6, *(cell_len(printable(t.status)) for t in tracks))
    space = width - (mood_width + 2) - (5 + 2)  # what the path and the optional columns share
    with_status = any(t.status != "ok" for t in tracks) and space - (status_width + 2) >= PATH_MIN_WIDTH + 2
    space -= (status_width + 2) if with_status else 0
    longest_path, error_width = max(map(cell_len, paths)), max(map(cell_len, errors))
    if error_width and space - (ERROR_MIN_WIDTH + 2) >= PATH_MIN_WIDTH + 2:
        if longest_path + 2 + ERROR_MIN_WIDTH + 2 <= space:  # the whole path first, the error the rest
            error_width = max(ERROR_MIN_WIDTH, min(error_width, space - (longest_path + 2) - 2))
        else:  # the path folds anyway: the room shared as their lengths are, so both fold alike
            share = (space - 4) * error_width // (error_width + longest_path)
            error_width = max(ERROR_MIN_WIDTH, min(error_width, share, space - (PATH_MIN_WIDTH + 2) - 2))
        space -= error_width + 2
    else:
        error_width = 0
    path_width = max(8, min(longest_path, space - 2))
    space -= path_width + 2
    tags = []
    for name in ("artist", "title", "album"):
        longest = max(cell_len(printable(getattr(t, name) or "")) for t in tracks)
        need = min(TAG_COLUMN_WIDTH, max(len(name), longest)) + 2
        if longest and need <= space:
            tags.append(name)
            space -= need
    table = Table(box=None, highlight=False)
    table.add_column("path", overflow="fold", width=path_width)
    table.add_column("mood", no_wrap=True, width=mood_width)
    table.add_column("conf.", justify="right", no_wrap=True, width=5)
    for name in tags:
        table.add_column(name, overflow="ellipsis", no_wrap=True, max_width=TAG_COLUMN_WIDTH)
    if with_status:
        table.add_column("status", no_wrap=True, width=status_width)
    if error_width:
        table.add_column("error", overflow="fold", width=error_width)
    for t, path, error, mood in zip(tracks, paths, errors, moods):
        confidence = stored_number(t.confidence, t.path, "confidence", on_unreadable_number)
        table.add_row(escape(path), escape(mood), "" if confidence is None else f"{confidence:.2f}",
                      *(escape(printable(getattr(t, name) or "")) for name in tags),
                      *([escape(printable(t.status))] if with_status else []), *([escape(error)] if error_width else []))
    out.print(table, width=width)
    err.print(f"{len(tracks)} track{'s' if len(tracks) != 1 else ''}")


def _render_stats(summary, db_path) -> None:
    from rich.markup import escape
    from rich.table import Table

    from tagger.console import out

    s = summary  # analysed: ok rows and those whose tag write failed (their mood is known)
    tags = [f"{s.tagged} tagged"] + [text for n, text in (
        (s.untagged, f"{s.untagged} untagged"), (s.kept, f"{s.kept} with their own mood kept"),
        (s.tag_failed, f"{s.tag_failed} whose tags could not be written")) if n]
    out.print(f"[bold]{escape(printable(db_path))}[/]: {s.total} track{'s' if s.total != 1 else ''} "
              f"({s.by_status.get('ok', 0) + s.tag_failed} analysed: {', '.join(tags)}; "
              f"{s.failed - s.tag_failed} failed, {s.missing} missing)")
    counts = Table(box=None, show_header=True)
    counts.add_column("mood")
    counts.add_column("tracks", justify="right")
    counts.add_column("mean conf.", justify="right")
    for mood, n in summary.by_mood.items():
        mean = summary.mean_confidence.get(mood)
        counts.add_row(_cell(mood), str(n), "" if mean is None else f"{mean:.2f}")
    formats = Table(box=None)
    formats.add_column("format")
    formats.add_column("tracks", justify="right")
    for fmt, n in summary.by_format.items():
        formats.add_row(_cell(fmt), str(n))
    models = Table(box=None)
    models.add_column("model")
    models.add_column("tracks", justify="right")
    for name, n in summary.by_model.items():
        models.add_row(_cell(name), str(n))
    from rich.columns import Columns

    out.print(Columns([counts, formats, models], padding=(0, 4)))
    if summary.top_errors:
        errors = Table(box=None, title="commonest failures", title_justify="left")
        errors.add_column("tracks", justify="right")
        errors.add_column("error")
        for error, n in summary.top_errors:
            errors.add_row(str(n), _cell(error or "(no message)"))
        out.print(errors)
    if summary.label is not None:
        out.print(_histogram(summary.label, summary.histogram, width=out.width))
        if summary.without_label:
            analysed = s.by_status.get("ok", 0) + s.tag_failed
            has = "has" if summary.without_label == 1 else "have"
            out.print(f"{summary.without_label} of the {analysed} analysed tracks {has} no "
                      f"P({escape(printable(summary.label))}) (no scores, or those of a model without that label): "
                      "not counted above")


def _cell(value) -> str:
    """A stored value (text as a rule; SQLite keeps what it is given) for a rich table cell: control
    characters escaped (a format or an error edited to hold a terminal code cannot drive the terminal),
    markup escaped."""
    from rich.markup import escape

    return escape(printable(str(value)))


BAR_WIDTH = 40      # the histogram's bars at most (a pipe without COLUMNS: 80 columns, room for all of it) ...
BAR_MIN_WIDTH = 10  # ... and at least, however narrow the terminal


def _histogram(label: str, counts: tuple[int, ...], *, width: int):
    """P(label) in equal bins over [0, 1], one bar per bin, drawn with eighth-block characters; the bars as
    wide as a table `width` columns wide leaves them (BAR_MIN_WIDTH to BAR_WIDTH)."""
    from rich.markup import escape
    from rich.table import Table

    from tagger.console import bar

    n = len(counts)
    ranges = [f"{i / n:.2f}–{(i + 1) / n:.2f}" for i in range(n)]
    beside = max(map(len, ranges)) + max(len("tracks"), *(len(str(c)) for c in counts)) + 3 * 2  # + cells' padding
    bar_width = max(BAR_MIN_WIDTH, min(BAR_WIDTH, width - beside))
    table = Table(box=None, title=f"P({escape(printable(label))}) over analysed tracks", title_justify="left")
    table.add_column("P", justify="right", no_wrap=True)
    table.add_column("", width=bar_width, no_wrap=True)
    table.add_column("tracks", justify="right", no_wrap=True)
    peak = max(counts) or 1
    for text, count in zip(ranges, counts):
        table.add_row(text, f"[cyan]{bar(count / peak, bar_width)}[/]", str(count))
    return table
