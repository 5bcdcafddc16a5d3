"""The lines of `query --csv` and `query --json` for a track listing, most of each put together by SQLite.

A line of either is the row's 16 values (`TRACK_COLUMNS`) written out: the scores (JSON text in the
cache) parsed and written again, `tagged` as a bool, bytes as sqlite-utils writes them, text quoted
for CSV or JSON. Done in Python value by value, that cost 12 us a row (1.2 s for 100,000). Here SQLite
writes the text and flag columns, with their separators and (JSON) keys, into the pieces between the
two numbers and the scores (`line_sql`), and Python adds those three: the numbers' repr (SQLite's own
text of a number is not Python's), and the scores as json writes them, which for two labels and
numbers in the form json gives is their stored text itself (checked by a pattern and the numbers'
repr), else through json's C scanner and encoder. A row holding anything else (a number, bytes or an
infinity where SQLite would write text, a flag that is not a number, a text json escapes, scores that
are not an object or a list in CSV) is written value by value, as before (`json_line`, `csv_line`):
the lines are the same bytes either way (tests/test_query.py holds such rows). Scores that are not JSON
at all (a cell edited by hand) are written as none, as a NULL is (`query.stored_scores`).
"""
from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Callable, Iterator

from tagger.query import TRACK_COLUMNS, select_tracks, stored_scores

if TYPE_CHECKING:  # the cache (sqlite-utils) is imported when used, so that `--help` stays quick
    from tagger.cache import Cache
    from tagger.query import TrackFilter, UnreadableScores

FORMATS = ("csv", "json")
REAL, SCORES, FLAG, TEXT = "real", "scores", "flag", "text"
KINDS = {"confidence": REAL, "duration": REAL, "scores": SCORES, "tagged": FLAG}  # every other column: text
# When SQLite may write a column's value as it is: for text columns, not bytes (their affinity makes any number
# text; JSON quotes it with json_quote, which escapes what json escapes, each with a backslash: a line with one
# is written again by Python, so that no SQLite's escapes need be Python's); for `tagged`, a number or NULL.
# Comparisons, not typeof(): SQLite orders every number before every text and every text before every blob.
_PLAIN_TEXTS = "max({}) < x''"       # several text columns at once (max of one argument is the aggregate)
_PLAIN_TEXT = "ifnull({c}, '') < x''"
_PLAIN_FLAG = "({c} < '' OR {c} IS NULL)"
_WRITTEN = {("json", TEXT): "json_quote({c})", ("json", FLAG): "iif({c}, 'true', 'false')",
            ("csv", TEXT): "iif(instr({c}, ',') OR instr({c}, '\"') OR instr({c}, char(10)) OR instr({c}, char(13)), "
                           "'\"' || replace({c}, '\"', '\"\"') || '\"', ifnull({c}, ''))",
            ("csv", FLAG): "iif({c}, '1', '0')"}
_NULL = {"json": "'null'", "csv": "''"}
# {"label": number, "other": number} with labels json writes as they are, and numbers in JSON's form.
_LABEL, _NUMBER = '"([^"\\\\\x00-\x1f]*)"', "(-?(?:0|[1-9][0-9]*)(?:\\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)"
_TWO_SCORES = re.compile(f"{{{_LABEL}: {_NUMBER}, {_LABEL}: {_NUMBER}}}")
_CONTROL = re.compile("[\x00-\x1f]")  # CSV, where the writer quotes some of them: a line with one is the writer's


def track_lines(cache: Cache, track_filter: TrackFilter, *, fmt: str, header: bool = True,
                on_unreadable_scores: UnreadableScores | None = None) -> Iterator[str]:
    """The lines (without line breaks) of the CSV (a header line first, unless not `header`) or JSON Lines
    of the tracks `track_filter` selects, streamed; `on_unreadable_scores` is told of each row whose scores
    are not JSON (written as none; see query.stored_scores)."""
    from tagger.cache import TABLE

    if fmt not in FORMATS:
        raise ValueError(f"not a track listing format: {fmt}")
    if fmt == "csv" and header:
        yield csv_line(TRACK_COLUMNS, plain=True)
    quoting = None if fmt == "json" else csv_quoting()
    fast = fmt == "json" or quoting is not None
    controls = quoting == "controls"
    select = line_sql(fmt) if fast else "NULL, " * 7 + "rowid"
    scan, encode = json.decoder.JSONDecoder().scan_once, json_encoder()  # json.loads' settings
    json_out = fmt == "json"
    two_scores = _TWO_SCORES.fullmatch
    for head, first, before, text, middle, second, tail, rowid in select_tracks(cache, track_filter, select):
        if head is not None and first is not None and text is not None and middle is not None \
                and second is not None and tail is not None:
            # The scores as json.loads reads them and json writes them. Most are two labels and their
            # numbers as Python's json wrote them, which json would write again as they are: checked by a
            # pattern and each number's repr (exact: json reads a number with float() and writes its repr).
            # Others go through json.loads' own scanner, without the Python around it (a third of its cost).
            written, pair = None, two_scores(text)
            if pair is not None:
                label, number, other, other_number = pair.groups()
                p, q = float(number), float(other_number)
                if label != other and repr(p) == number and repr(q) == other_number:
                    value, written = dict, text
                    if first == p and p:  # the confidence is the mood's score: its repr is at hand (0.0
                        first = number        # and -0.0 are equal, their reprs not)
                    elif first == q and q:
                        first = other_number
            if written is None:
                value = _scores_value(text, scan)  # not JSON: the row is written value by value, which names it
                written = None if value is _NOT_JSON else encode(value)
                value = type(value)
            if written is not None and json_out:
                if "\\" not in head and "\\" not in middle and "\\" not in tail:
                    yield f"{head}{first}{before}{written}{middle}{second}{tail}"
                    continue
            elif written is not None and (value is dict or value is list):
                if '"' in written or "," in written:
                    written = '"' + written.replace('"', '""') + '"'
                line = f"{head}{first}{before}{written}{middle}{second}{tail}"
                if not controls or line.isprintable() or _CONTROL.search(line) is None:
                    yield line
                    continue
        values = cache.one(f"SELECT {', '.join(TRACK_COLUMNS)} FROM {TABLE} WHERE rowid = ?", [rowid])
        yield (json_line if json_out else csv_line)(listed_values(values, on_unreadable_scores))


def line_sql(fmt: str) -> str:
    """The result columns that give a row's line in `fmt`: the text up to the first number, the number, the
    text up to the scores, the scores' JSON text ('' for NULL), the text up to the second number, the
    number, the rest, and the row id. A column is NULL where a value in it is not plain (see the module)."""
    pieces: list[str] = []       # the SQL of the result columns
    run: list[str] = []          # the text being put together between two values Python writes
    plain: list[str] = []        # the conditions of that text
    kinds: list[str] = []
    for i, column in enumerate(TRACK_COLUMNS):
        kind = KINDS.get(column, TEXT)
        key = f'"{column}": ' if fmt == "json" else ""
        start = ("{" if fmt == "json" else "") if i == 0 else ", " if fmt == "json" else ","
        run.append(_quoted(start + key))
        if kind in (REAL, SCORES):
            pieces.append(_guarded(plain, run))
            if kind == REAL:  # a finite number (json writes an infinity as Infinity; SQLite keeps no NaN)
                pieces.append(f"CASE WHEN {column} BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308 "
                              f"THEN {column} WHEN {column} IS NULL THEN {_NULL[fmt]} END")
            else:  # text ('' for NULL)
                pieces.append(f"CASE WHEN {column} >= '' AND {column} < x'' THEN {column} "
                              f"WHEN {column} IS NULL THEN '' END")
            kinds.append(kind)
            run, plain = [], []
        else:
            run.append(_WRITTEN[fmt, kind].format(c=column))
            plain.append(column)
    run.append(_quoted("}" if fmt == "json" else ""))
    pieces.append(_guarded(plain, run))
    if kinds != [REAL, SCORES, REAL]:
        raise AssertionError(f"track_lines expects a number, the scores and a number among the columns: {kinds}")
    return ", ".join([*pieces, "rowid"])


def _guarded(plain: list[str], run: list[str]) -> str:
    """The SQL of the text `run`, NULL where one of the columns `plain` (text, or FLAG's) is not plain."""
    texts = [c for c in plain if KINDS.get(c, TEXT) == TEXT]
    checks = [_PLAIN_FLAG.format(c=c) for c in plain if KINDS.get(c) == FLAG]
    if len(texts) > 1:
        checks.append(_PLAIN_TEXTS.format(", ".join(f"ifnull({c}, '')" for c in texts)))
    elif texts:
        checks.append(_PLAIN_TEXT.format(c=texts[0]))
    text = " || ".join(run)
    return f"CASE WHEN {' AND '.join(checks)} THEN {text} END" if checks else text


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_NOT_JSON = object()


def _scores_value(text: str, scan):
    """A scores cell's text -> its value as json.loads reads it ({} for ''), by json's C scanner `scan`
    (JSONDecoder().scan_once) where it can; _NOT_JSON where the text is not JSON."""
    if not text:
        return {}
    try:
        value, end = scan(text, 0)
    except (StopIteration, ValueError, RecursionError):
        value, end = _NOT_JSON, -1
    if end == len(text):
        return value
    try:  # what the scanner leaves: white space around, or not JSON
        return json.loads(text)
    except (ValueError, RecursionError):
        return _NOT_JSON


def listed_values(row, on_unreadable_scores: UnreadableScores | None = None) -> list:
    """Stored TRACK_COLUMNS values as a TrackRow holds them: the scores parsed (see query.stored_scores),
    tagged a bool."""
    values = list(row)
    scores, tagged = TRACK_COLUMNS.index("scores"), TRACK_COLUMNS.index("tagged")
    values[scores] = stored_scores(values[scores], values[TRACK_COLUMNS.index("path")], on_unreadable_scores)
    values[tagged] = bool(values[tagged])
    return values


def json_line(values) -> str:
    """A track's JSON line from its listed values (`listed_values`), value by value."""
    return json_encoder()(dict(zip(TRACK_COLUMNS, values)))


def csv_line(values, *, plain: bool = False) -> str:
    """A CSV line (no line break) from listed values, value by value; plain: the values are text as they are."""
    lines: list[str] = []
    csv_writer(lines.append).writerow(values if plain else [csv_value(v) for v in values])
    return lines[0]


def csv_writer(write_line: Callable[[str], object]):
    """A csv writer that hands each row's line, without a line terminator, to `write_line`. Its own terminator
    is "\r\n" (cut off again) because Python's writer before 3.12 quotes a value holding a line break only
    when the terminator has that character: with none, a value holding "\n" or "\r" was written bare and a
    track became several records. RFC 4180 quotes both, and so does this (and line_sql)."""
    import csv
    from types import SimpleNamespace

    return csv.writer(SimpleNamespace(write=lambda line: write_line(line[:-2])), lineterminator="\r\n")


def csv_value(value):
    """What the CSV writer gets for a listed value: text, numbers and None as they are (None: an empty field)."""
    kind = type(value)
    if kind is str or kind is float or kind is int or value is None:
        return value
    if kind is dict:
        return json_encoder()(value)
    return csv_cell(value)


def csv_cell(value):
    """A CSV cell for a value that is not plain text or a number: a bool as 0/1, JSON for a dict or list,
    bytes as sqlite-utils writes them (see jsonable)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bytes):
        return json.dumps(jsonable(value))
    return "" if value is None else value


def jsonable(value):
    """bytes (path_bytes) as sqlite-utils writes them: {"$base64": true, "encoded": ...}."""
    if isinstance(value, bytes):
        import base64

        return {"$base64": True, "encoded": base64.b64encode(value).decode("ascii")}
    return value


_ENCODER: list = []


def json_encoder() -> Callable[[object], str]:
    """json.dumps(value, ensure_ascii=False) with bytes as `jsonable` gives them, for many values: the C
    encoder that JSONEncoder.encode makes anew for every value (its setup: half the cost of a short row)
    made once, when this Python has it."""
    if not _ENCODER:
        from json import encoder

        settings = json.JSONEncoder(ensure_ascii=False, default=jsonable)  # json.dumps' own settings
        if encoder.c_make_encoder is None:
            _ENCODER.append(settings.encode)
        else:
            make = encoder.c_make_encoder({}, settings.default, encoder.encode_basestring, None,
                                          settings.key_separator, settings.item_separator, settings.sort_keys,
                                          settings.skipkeys, settings.allow_nan)
            _ENCODER.append(lambda value: "".join(make(value, 0)))
    return _ENCODER[0]


_CSV_SAMPLES = ("a,b", 'a"b', "a b", " a ", "", "{}", "é ü ☕", "\x7f", "a\u2028b", "#x", "'", ";", "\\")


def csv_quoting() -> str | None:
    """How this Python's CSV writer quotes text, on samples: "sql" when it quotes a text only when it holds a
    comma, a double quote or a line break, and then by doubling the double quotes (as the SQL of line_sql
    does), other control characters included (Python 3.11, with csv_writer's terminator); "controls" when it does that but also quotes
    some control character (a line holding one is then left to the writer); None otherwise (every line is)."""
    def as_sql(sample: str) -> bool:
        quoted = '"' + sample.replace('"', '""') + '"' if re.search('[,"\r\n]', sample) else sample
        return csv_line(["x", sample, "y"], plain=True) == f"x,{quoted},y"

    if not all(map(as_sql, _CSV_SAMPLES)):
        return None
    return "sql" if all(as_sql(f"a{chr(c)}b") for c in range(32)) else "controls"
