"""`moodtag query` and `moodtag stats`: read the cache (never write it)."""
from __future__ import annotations

import json
from enum import Enum
from typing import Annotated, Optional

import typer

from tagger.commands.options import DbOption, JsonOption
from tagger.query import ORDERS, STATUSES

Order = Enum("Order", {name: name for name in ORDERS}, type=str)
Status = Enum("Status", {name: name for name in STATUSES}, type=str)


def query(
    db: DbOption = None,
    mood: Annotated[Optional[str], typer.Option("--mood", metavar="MOOD", help="Only tracks of this mood.")] = None,
    min_confidence: Annotated[Optional[float], typer.Option(
        "--min-confidence", metavar="X", min=0.0, max=1.0, help="Only tracks whose mood has probability >= X.")] = None,
    artist: Annotated[Optional[str], typer.Option(
        "--artist", metavar="TEXT", help="Artist contains TEXT (case-insensitive; whole value with --exact).")] = None,
    album: Annotated[Optional[str], typer.Option(
        "--album", metavar="TEXT", help="Album contains TEXT (case-insensitive; whole value with --exact).")] = None,
    exact: Annotated[bool, typer.Option(
        "--exact", help="--artist / --album must equal the whole value (still case-insensitive).")] = False,
    path_glob: Annotated[Optional[str], typer.Option(
        "--path-glob", metavar="GLOB",
        help="Absolute path matches GLOB (case-sensitive, * also crosses folders); "
             "a GLOB starting with neither / nor * matches at any depth, e.g. 'Jazz/*.flac'.")] = None,
    status: Annotated[Optional[Status], typer.Option(
        "--status", help="Only rows with this status (missing: file gone since the last scan).")] = None,
    order: Annotated[Order, typer.Option("--order", help="Sort key (rows without a value come last).")] = Order.path,
    desc: Annotated[bool, typer.Option("--desc", help="Sort descending.")] = False,
    limit: Annotated[Optional[int], typer.Option("--limit", "-n", metavar="N", min=0, help="At most N rows.")] = None,
    json_lines: JsonOption = False,
    csv_out: Annotated[bool, typer.Option("--csv", help="CSV with a header row instead of a table.")] = False,
    sql: Annotated[Optional[str], typer.Option(
        "--sql", metavar="SQL",
        help="Run this SQL instead (table `tracks`), over a read-only connection: statements that write fail.")] = None,
) -> None:
    """List cached tracks, filtered and sorted; or run raw read-only SQL against the cache.

    Output: a table, or JSON Lines (--json) or CSV (--csv) for scripts. The cache is never modified."""
    from tagger.cache import Cache
    from tagger.errors import MoodtagError
    from tagger.query import TrackFilter, find_tracks, run_sql

    if json_lines and csv_out:
        raise MoodtagError("--json and --csv exclude each other")
    filters = {"--mood": mood, "--min-confidence": min_confidence, "--artist": artist, "--album": album,
               "--path-glob": path_glob, "--status": status, "--limit": limit}
    with Cache.open_readonly(db) as cache:
        if sql is not None:
            used = [name for name, value in filters.items() if value is not None]
            used += [name for name, on in (("--exact", exact), ("--desc", desc), ("--order", order != Order.path)) if on]
            if used:
                raise MoodtagError(f"--sql cannot be combined with {', '.join(used)} (write it in the SQL)")
            from tagger.commands.interrupts import StopRequests

            stops = StopRequests.install()  # SQLite polls it: Ctrl-C ends even an endless query
            result = run_sql(cache, sql, stop=lambda: stops.requested)
            _emit(result.columns, result.rows, json_lines=json_lines, csv_out=csv_out,
                  stop=lambda: stops.requested)
            if stops.requested:
                raise KeyboardInterrupt
            return
        track_filter = TrackFilter(mood=mood, min_confidence=min_confidence, artist=artist, album=album,
                                   exact=exact, path_glob=path_glob, status=status.value if status else None,
                                   order=order.value, desc=desc, limit=limit)
        tracks = find_tracks(cache, track_filter)
        if json_lines or csv_out:
            from tagger.query import TRACK_COLUMNS

            rows = ((getattr(t, c) for c in TRACK_COLUMNS) for t in tracks)
            _emit(TRACK_COLUMNS, rows, json_lines=json_lines, csv_out=csv_out)
        else:
            _render_tracks(tracks)


def stats(
    db: DbOption = None,
    label: Annotated[Optional[str], typer.Option(
        "--label", metavar="LABEL", help="Histogram of P(LABEL). Default: the last label of the cached scores (e.g. exciting).")] = None,
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
    if json_out:
        out.print(json.dumps({"db": str(path), **summary.to_json()}, ensure_ascii=False), markup=False, highlight=False)
    else:
        _render_stats(summary, path)


# -- rendering ---------------------------------------------------------------------------------------

TABLE_ROWS_MAX = 10_000  # a table is for reading: it stops here (--csv and --json give every row)
SQL_COLUMN_MAX = 60      # a --sql table cuts longer cells (but the last column's) with '…'; --csv and --json do not
TAG_COLUMN_MAX = 20      # artist, title, album in the track table


def _emit(columns, rows, *, json_lines: bool, csv_out: bool, stop=lambda: False) -> None:
    """Rows as JSON Lines, CSV (both streamed, memory flat), or a plain-text table (at most TABLE_ROWS_MAX)."""
    import click

    if json_lines:
        for row in rows:
            click.echo(json.dumps(dict(zip(columns, map(_jsonable, row))), ensure_ascii=False))
            if stop():
                return
    elif csv_out:
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_csv_cell(v) for v in row])
            if buffer.tell() > 1 << 16:
                click.echo(buffer.getvalue(), nl=False)
                buffer.seek(0)
                buffer.truncate()
                if stop():
                    return
        click.echo(buffer.getvalue(), nl=False)
    else:
        from tagger.plain_table import table_lines
        from tagger.records import printable

        if not columns:  # a statement that returns nothing (a PRAGMA that only reports by its effect)
            return
        cells = (tuple("" if v is None else printable(str(_jsonable(v))) for v in row) for row in rows)
        shown = _echo_lines(table_lines([printable(c) for c in columns], _capped(cells),
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


def _echo_lines(lines, *, stop=lambda: False) -> int:
    """Write text lines to stdout in blocks of about 64 KB; returns how many (the header included)."""
    import click

    block: list[str] = []
    size = count = 0
    for text in lines:
        block.append(text)
        size += len(text) + 1
        count += 1
        if size > 1 << 16:
            click.echo("\n".join(block))
            block, size = [], 0
            if stop():
                return count
    if block:
        click.echo("\n".join(block))
    return count


def _jsonable(value):
    """bytes (path_bytes) as sqlite-utils writes them: {"$base64": true, "encoded": ...}."""
    if isinstance(value, bytes):
        import base64

        return {"$base64": True, "encoded": base64.b64encode(value).decode("ascii")}
    return value


def _csv_cell(value):
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bytes):
        return json.dumps(_jsonable(value))
    return "" if value is None else value


def _render_tracks(tracks) -> None:
    """The tracks as a plain-text table (at most TABLE_ROWS_MAX), streamed: path last (never cut), a failed
    track's error after it."""
    from itertools import chain

    from tagger.console import err
    from tagger.plain_table import table_lines
    from tagger.records import printable

    def cells(t):
        path = printable(t.path) + (f"  error: {printable(t.error)}" if t.error else "")
        return (t.mood or "", "" if t.confidence is None else f"{t.confidence:.2f}", t.status,
                printable(t.artist or ""), printable(t.title or ""), printable(t.album or ""), path)

    first = next(tracks, None)
    if first is None:
        err.print("no cached tracks match")
        return
    headers = ("mood", "conf.", "status", "artist", "title", "album", "path")
    n = _echo_lines(table_lines(headers, map(cells, _capped(chain((first,), tracks))), right=frozenset({1}),
                                max_widths=(None, None, None, TAG_COLUMN_MAX, TAG_COLUMN_MAX, TAG_COLUMN_MAX, None))) - 1
    if n == TABLE_ROWS_MAX and next(tracks, None) is not None:
        _say_capped()
        return
    err.print(f"{n} track{'s' if n != 1 else ''}")


def _render_stats(summary, db_path) -> None:
    from rich.markup import escape
    from rich.table import Table

    from tagger.console import out

    out.print(f"[bold]{escape(str(db_path))}[/]: {summary.total} track{'s' if summary.total != 1 else ''} "
              f"({summary.by_status.get('ok', 0)} analysed, {summary.tagged} tagged, "
              f"{summary.failed} failed, {summary.missing} missing)")
    counts = Table(box=None, show_header=True)
    counts.add_column("mood")
    counts.add_column("tracks", justify="right")
    counts.add_column("mean conf.", justify="right")
    for mood, n in summary.by_mood.items():
        mean = summary.mean_confidence.get(mood)
        counts.add_row(escape(mood), str(n), "" if mean is None else f"{mean:.2f}")
    formats = Table(box=None)
    formats.add_column("format")
    formats.add_column("tracks", justify="right")
    for fmt, n in summary.by_format.items():
        formats.add_row(escape(fmt), str(n))
    models = Table(box=None)
    models.add_column("model")
    models.add_column("tracks", justify="right")
    for name, n in summary.by_model.items():
        models.add_row(escape(name), str(n))
    from rich.columns import Columns

    out.print(Columns([counts, formats, models], padding=(0, 4)))
    if summary.top_errors:
        errors = Table(box=None, title="commonest failures", title_justify="left")
        errors.add_column("tracks", justify="right")
        errors.add_column("error")
        for error, n in summary.top_errors:
            errors.add_row(str(n), escape(error or "(no message)"))
        out.print(errors)
    if summary.label is not None:
        out.print(_histogram(summary.label, summary.histogram))


def _histogram(label: str, counts: tuple[int, ...], width: int = 40):
    """P(label) in equal bins over [0, 1], one bar per bin, drawn with eighth-block characters."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(box=None, title=f"P({escape(label)}) over analysed tracks", title_justify="left")
    table.add_column("P", justify="right")
    table.add_column("", min_width=width)
    table.add_column("tracks", justify="right")
    peak = max(counts) or 1
    n = len(counts)
    for i, count in enumerate(counts):
        eighths = round(count / peak * width * 8)
        bar = "█" * (eighths // 8) + ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")[eighths % 8]
        if count and not bar:
            bar = "▏"
        table.add_row(f"{i / n:.2f}–{(i + 1) / n:.2f}", f"[cyan]{bar}[/]", str(count))
    return table
