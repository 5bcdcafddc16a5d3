"""Read the cache: filtered track listings, raw read-only SQL, and summary statistics.

Nothing here writes: every function takes a cache opened with `Cache.open_readonly`. `run_sql` also
installs an SQLite authorizer, so that a query cannot switch the connection back to writing (PRAGMA
query_only=OFF), attach other files or create temporary objects.
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections import Counter
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from tagger.errors import MoodtagError
from tagger.records import key_spelling

if TYPE_CHECKING:  # the cache (sqlite-utils) is imported when used, so that `--help` stays quick
    from tagger.cache import Cache

ORDERS = ("confidence", "path", "artist", "album", "analyzed")
STATUSES = ("ok", "failed", "missing")
_ORDER_SQL = {  # order -> (first key, tie-breakers); desc reverses every one of them
    "confidence": ("confidence", ("path",)),
    "path": ("path", ()),
    "artist": ("artist COLLATE NOCASE", ("album COLLATE NOCASE", "title COLLATE NOCASE", "path")),
    "album": ("album COLLATE NOCASE", ("path",)),
    "analyzed": ("analyzed_at", ("path",)),
}
FOLD_FUNCTION = "moodtag_fold"
SQLITE_INT_MAX = 2**63 - 1  # the largest integer SQLite takes (--limit is clamped to it)
UnreadableScores = Callable[[str, object], None]  # (the row's path, its scores cell): told of a cell that is not JSON
UnreadableNumber = Callable[[str, str, object], None]  # (the row's path, the column, its cell): told of a cell that is no number
# The largest finite float: `x BETWEEN -FLOAT_MAX AND FLOAT_MAX` holds for a finite number only (SQLite orders every
# number before every text and blob; it keeps no NaN).
FLOAT_MAX_SQL = "1.7976931348623157e308"


@dataclass(frozen=True)
class TrackFilter:
    """Which cached tracks to list, and in which order.

    artist / album: case-insensitive (Unicode case folding) substring match, or whole-value match
    with `exact`. path_glob: SQLite GLOB on the absolute path (case-sensitive; `*` also matches `/`);
    a pattern that starts with neither `/` nor `*` matches at any depth (as if it began with `*/`).
    """

    mood: str | None = None
    min_confidence: float | None = None
    artist: str | None = None
    album: str | None = None
    exact: bool = False
    path_glob: str | None = None
    status: str | tuple[str, ...] | None = None  # one status, or any of several
    order: str = "path"
    desc: bool = False
    limit: int | None = None
    path_from: str | None = None     # only paths from this one (in SQLite's order of the key) ...
    path_before: str | None = None   # ... and before this one: a run of the listing (see split_by_path)


@dataclass(frozen=True)
class TrackRow:
    """One cached track as `query` shows it."""

    path: str
    status: str
    mood: str | None
    confidence: float | None
    scores: dict
    format: str | None
    duration: float | None
    artist: str | None
    title: str | None
    album: str | None
    model_name: str | None
    model_version: str | None
    analyzed_at: str | None
    tagged: bool
    error: str | None
    tag_state: str | None     # tagged, untagged, kept, failed (see error), or None: not written

    def to_json(self) -> dict:
        return asdict(self)


TRACK_COLUMNS = tuple(f.name for f in fields(TrackRow))
LISTING_COLUMNS = ("path", "mood", "confidence", "artist", "title", "album", "status", "error")  # table and TSV


@dataclass(frozen=True)
class SqlResult:
    """The column names and rows of one raw SQL query (rows streamed: read them before closing)."""

    columns: tuple[str, ...]
    rows: Iterator[tuple]


@dataclass(frozen=True)
class CacheStats:
    """What the cache holds.

    by_mood, by_format, by_model, mean_confidence: over the analysed rows (files there whose mood is
    known: status ok, or analysed and only the tag write failed; `tag_failed`), so that each table adds
    up to the same figure; failed and missing rows are counted in by_status alone. histogram: how many
    analysed rows have P(label) in each of `len(histogram)` equal bins over [0, 1]; with
    unreadable_scores and without_label, it adds up to that figure too.
    """

    total: int
    by_status: dict[str, int]
    by_mood: dict[str, int]
    mean_confidence: dict[str, float]
    by_format: dict[str, int]
    by_model: dict[str, int]
    tagged: int
    untagged: int             # rows of files `moodtag untag` cleared
    kept: int                 # rows of files whose own mood (not moodtag's) a scan kept
    top_errors: tuple[tuple[str, int], ...]
    label: str | None
    histogram: tuple[int, ...]
    tag_failed: int = 0       # rows analysed whose tag write failed (status failed, the mood kept)
    # analysed rows whose scores are not a JSON object, or whose P(label) is not a number from 0 to 1 (an edit:
    # 1e999, "0.7", true, null): counted without them
    unreadable_scores: int = 0
    unreadable_example: str | None = None  # the path of one of them (the first by path), for a warning
    unreadable_confidence: int = 0     # analysed rows whose confidence is not a finite number: left out of the means
    unreadable_confidence_example: str | None = None  # the path of one of them (the first by path)
    without_label: int = 0    # analysed rows whose scores hold no P(label) (another model's labels, or none)

    @property
    def failed(self) -> int:
        return self.by_status.get("failed", 0)

    @property
    def missing(self) -> int:
        return self.by_status.get("missing", 0)

    def to_json(self) -> dict:
        data = asdict(self)
        data["analysed"] = self.by_status.get("ok", 0) + self.tag_failed  # the first line's figure (see by_status)
        data["top_errors"] = [{"error": e, "count": n} for e, n in self.top_errors]
        data["histogram"] = {"label": self.label, "bins": list(self.histogram)}
        del data["label"]
        del data["unreadable_example"]
        del data["unreadable_confidence_example"]
        return data


def find_tracks(cache: Cache, track_filter: TrackFilter, *,
                on_unreadable_scores: UnreadableScores | None = None) -> Iterator[TrackRow]:
    """The cached tracks that `track_filter` selects, in its order (scores that are not JSON: see
    stored_scores)."""
    for row in track_values(cache, track_filter):
        values = dict(zip(TRACK_COLUMNS, row))
        values["scores"] = stored_scores(values["scores"], values["path"], on_unreadable_scores)
        values["tagged"] = bool(values["tagged"])
        yield TrackRow(**values)


def stored_scores(text, path: str, on_unreadable: UnreadableScores | None = None):
    """A row's `scores` cell (JSON text, or NULL) -> its value, {} for none. A cell that is not JSON (the
    cache is meant to be edited in sqlite-utils or datasette: a typo, a cut) is read as none, and
    `on_unreadable(path, text)` is told, so that a listing goes on and can say which row it was."""
    if not text:
        return {}
    try:
        return json.loads(text)
    except (ValueError, TypeError, RecursionError):  # JSONDecodeError, bytes not UTF-8, a number, too deep
        if on_unreadable is not None:
            on_unreadable(path, text)
        return {}


def stored_number(value, path: str, column: str, on_unreadable: UnreadableNumber | None = None, *,
                  finite: bool = False):
    """A REAL cell (confidence, duration) -> its value, None for NULL. A cell that is not a number (edited
    in sqlite-utils or datasette: cleared to '', text, bytes), or with `finite` an infinity (1e400 is stored
    as one), is read as unknown (None), and `on_unreadable(path, column, value)` is told, as stored_scores
    does. Without `finite` an infinity is kept: a listing writes it as stored (inf, JSON's Infinity)."""
    kind = type(value)
    if value is None or kind is int or (kind is float and (not finite or value - value == 0)):  # inf - inf: NaN
        return value
    if on_unreadable is not None:
        on_unreadable(path, column, value)
    return None


def stored_cell(value) -> str:
    """A cell's value as a warning quotes it: cut to 40 characters, an empty or blank text as its repr."""
    cell = repr(value) if type(value) is str and not value.strip() else str(value)
    return cell[:40] + ("…" if len(cell) > 40 else "")


def track_values(cache: Cache, track_filter: TrackFilter, columns: tuple[str, ...] = TRACK_COLUMNS) -> Iterator[tuple]:
    """The stored values of `columns` (scores as JSON text, tagged as 0/1) of the tracks find_tracks
    gives, in its order, streamed: what a listing of 100,000 tracks reads without building a TrackRow each."""
    unknown = [c for c in columns if c not in TRACK_COLUMNS]
    if unknown:
        raise ValueError(f"not a track column: {', '.join(unknown)}")
    return select_tracks(cache, track_filter, ", ".join(columns))


def select_tracks(cache: Cache, track_filter: TrackFilter, select: str, params: tuple = ()) -> Iterator[tuple]:
    """The rows of the tracks find_tracks gives, in its order, streamed, as the SQL `select` (result
    columns: expressions over the table's columns, with `params` for its placeholders) makes them."""
    from tagger.cache import TABLE

    f = track_filter
    statuses = (f.status,) if isinstance(f.status, str) else tuple(f.status or ())
    for status in statuses:
        if status not in STATUSES:
            raise MoodtagError(f"unknown status {status!r} (choose one of: {', '.join(STATUSES)})")
    if f.order not in ORDERS:
        raise MoodtagError(f"unknown order {f.order!r} (choose one of: {', '.join(ORDERS)})")
    if f.limit is not None and f.limit < 0:
        raise MoodtagError(f"--limit must be 0 or more, not {f.limit}")
    _install_fold(cache)
    where: list[str] = []
    params = list(params)
    if f.mood is not None:
        where.append("mood = ?")
        params.append(f.mood)
    if f.min_confidence is not None:  # a confidence edited into text or an infinity is unknown, as NULL is
        where.append(f"confidence BETWEEN ? AND {FLOAT_MAX_SQL}")
        params.append(f.min_confidence)
    if statuses:
        where.append(f"status IN ({', '.join('?' * len(statuses))})")
        params.extend(statuses)
    for column, value in (("artist", f.artist), ("album", f.album)):
        if value is not None:
            where.append(f"{FOLD_FUNCTION}({column}) = ?" if f.exact
                         else f"instr({FOLD_FUNCTION}({column}), ?) > 0")
            params.append(value.casefold())
    if f.path_glob is not None:
        where.append("path GLOB ?")
        params.append(full_glob(f.path_glob))
    for condition, value in (("path >= ?", f.path_from), ("path < ?", f.path_before)):
        if value is not None:
            where.append(condition)
            params.append(value)
    first, rest = _ORDER_SQL[f.order]
    direction = "DESC" if f.desc else "ASC"  # of every key: desc lists the ascending order backwards
    keys = ", ".join(f"{key} {direction}" for key in (first, *rest))
    if first == "path":  # the key: never NULL (every write sets it), so read in the order of its index
        order_by = keys
    else:  # rows without the first key's value last, either way
        order_by = f"{first} IS NULL, {keys}"
    sql = (f"SELECT {select} FROM {TABLE}"
           + (f" WHERE {' AND '.join(where)}" if where else "") + f" ORDER BY {order_by}")
    if f.limit is not None:
        sql += " LIMIT ?"
        params.append(min(f.limit, SQLITE_INT_MAX))  # more rows than SQLite can count: all of them
    return cache.rows(sql, params)


def full_glob(pattern: str) -> str:
    """A --path-glob pattern -> a GLOB on the absolute path (`~` expanded; relative: at any depth)."""
    if pattern.startswith("~"):
        pattern = str(Path(pattern).expanduser())
    # as the key is written (cache.path_key): a backslash doubled, a byte that is not UTF-8 (from the
    # command line, as a surrogate escape) as \xNN, so a name holding one is matched by its own spelling
    if "\\" in pattern or not pattern.isascii():
        pattern = key_spelling(os.fsencode(pattern))
    if pattern.startswith(("/", "*")):
        return pattern
    return "*/" + pattern


def run_sql(cache: Cache, sql: str, params: tuple = (), *, stop: Callable[[], bool] = lambda: False) -> SqlResult:
    """Run one SQL statement that only reads; any other statement raises MoodtagError and changes nothing.

    The rows are streamed (read them before closing the cache): an endless query costs no memory, and
    SQLite checks `stop()` every few thousand steps, so Ctrl-C ends even a query that returns no row."""
    conn = cache.conn
    _install_fold(cache)
    conn.set_authorizer(_read_only_authorizer)
    conn.set_progress_handler(lambda: 1 if stop() else 0, 20_000)
    try:
        cursor = conn.execute(sql, params)
        columns = tuple(d[0] for d in cursor.description or ())
    except (sqlite3.Error, sqlite3.Warning) as exc:
        conn.set_progress_handler(None, 0)
        raise _sql_error(exc) from None
    except UnicodeEncodeError:  # a byte the locale did not decode (a surrogate escape): SQLite takes UTF-8 only
        conn.set_progress_handler(None, 0)
        raise MoodtagError("SQL error: the statement holds a byte that is not UTF-8 text") from None
    finally:
        conn.set_authorizer(None)  # the statement is compiled: its reads were authorised already
    return SqlResult(columns, _stream(cursor, conn))


def _stream(cursor, conn) -> Iterator[tuple]:
    try:
        while True:
            batch = cursor.fetchmany(500)
            if not batch:
                return
            yield from batch
    except (sqlite3.Error, sqlite3.Warning) as exc:
        raise _sql_error(exc) from None
    finally:
        with contextlib.suppress(sqlite3.ProgrammingError):  # closed already
            conn.set_progress_handler(None, 0)


def _sql_error(exc: BaseException) -> BaseException:
    """An SQLite error of a statement -> MoodtagError; SQLite's "interrupted" (run_sql's `stop()` said so)
    -> KeyboardInterrupt, for the caller that asked to stop (`query --sql` then exits with 128 + the stop
    signal's number, as its StopRequests says: typer would end a KeyboardInterrupt as 130 whatever the
    signal)."""
    text = str(exc)
    if text == "interrupted":
        return KeyboardInterrupt()
    if any(word in text for word in ("not authorized", "authorization denied", "readonly", "read-only")):
        return MoodtagError("SQL refused: the cache is opened read-only, so only statements that read "
                            f"(SELECT, WITH, EXPLAIN, informational PRAGMAs) may run ({text})")
    return MoodtagError(f"SQL error: {text}")


# PRAGMAs that only report something; those with a value to set are refused (arg None means a read).
_INFO_PRAGMAS = frozenset({
    "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
    "foreign_key_list", "database_list", "collation_list", "function_list", "module_list",
    "pragma_list", "compile_options", "integrity_check", "quick_check",
})
_READABLE_SETTINGS = frozenset({
    "user_version", "schema_version", "application_id", "page_size", "page_count", "freelist_count",
    "journal_mode", "encoding", "query_only", "data_version",
})


def _read_only_authorizer(action: int, arg1, arg2, db_name, trigger) -> int:
    if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE):
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA:
        name = (arg1 or "").lower()
        if name in _INFO_PRAGMAS or (name in _READABLE_SETTINGS and arg2 is None):
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_UPDATE and arg1 == "sqlite_master" and trigger is None and db_name == "main":
        # SQLite asks this when a table-valued PRAGMA function (pragma_table_info(...)) is prepared;
        # the read-only connection would refuse a real write anyway.
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def cache_stats(cache: Cache, *, label: str | None = None, bins: int = 10, top_errors: int = 5) -> CacheStats:
    """Counts per status, mood, format and model, the commonest failure causes, and a histogram of
    P(label) over the analysed rows (label: default the last label of the scores most analysed rows hold,
    e.g. exciting; see _score_labels).

    Analysed: the rows a playlist takes (HAS_MOOD_SQL: ok, or only the tag write failed) whose files are
    there; a row marked missing is counted as missing alone, as in the header `stats` prints."""
    from tagger.cache import KEPT, TABLE, TAG_FAILED, TAGGED, UNTAGGED

    if bins < 1:
        raise MoodtagError(f"--bins must be 1 or more, not {bins}")

    # The counts come from one index (idx_tracks_summary) read in its order, the histogram from one
    # pass over the table: neither sorts 100,000 rows (a GROUP BY per count did, a second in all).
    total, by_status, by_mood, by_format, by_model, models = 0, Counter(), Counter(), Counter(), Counter(), Counter()
    confidences: dict = {}
    tagged = untagged = kept = tag_failed = odd_confidence = 0  # of present files: a missing file's tags are not known
    # A confidence edited into text ('' from a GUI editor's cleared cell) or an infinity is unknown, as NULL is.
    for status, mood, fmt, model_name, model_version, tag_state, n, n_stored, n_confidence, sum_confidence in cache.rows(
            f"SELECT status, mood, format, model_name, model_version, tag_state, count(*), count(confidence), "
            f"count({_FINITE_CONFIDENCE_SQL}), total({_FINITE_CONFIDENCE_SQL}) FROM {TABLE} "
            f"GROUP BY status, mood, format, model_name, model_version, tag_state"):
        # text as stored; bytes (an edit may store a blob, which no dict key of JSON nor sort among text takes) as text
        status, mood, fmt, model_name, model_version = map(_text_key, (status, mood, fmt, model_name, model_version))
        total += n
        tag_failed += n if tag_state == TAG_FAILED and status == "failed" else 0  # a missing file is missing
        by_status[status] += n
        if status != "ok" and (status != "failed" or tag_state != TAG_FAILED):  # not analysed (HAS_MOOD_SQL)
            continue
        by_format[fmt.lower() if isinstance(fmt, str) else fmt] += n
        by_mood[mood] += n
        count, summed = confidences.get(mood, (0, 0.0))
        confidences[mood] = (count + n_confidence, summed + sum_confidence)
        odd_confidence += n_stored - n_confidence
        by_model[None if model_name is None or model_version is None else f"{model_name} {model_version}"] += n
        models[model_name, model_version] += n
        tagged += n if tag_state == TAGGED else 0
        untagged += n if tag_state == UNTAGGED else 0
        kept += n if tag_state == KEPT else 0
    label_sets = _score_labels(cache, models)
    known = tuple(dict.fromkeys(name for labels in label_sets for name in labels))
    if label is None:
        label = label_sets[0][-1] if label_sets else None
    elif known and label not in known:
        raise MoodtagError(f"{label!r} is not a label in the cached scores (known: {', '.join(known)})")
    histogram = [0] * bins
    json_path = {"label": None if label is None else '$."' + label.replace('"', '\\"') + '"'}
    unreadable = without_label = 0
    analysed = _analysed_sql()
    for (p,) in cache.rows(f"SELECT {_P_LABEL_SQL} FROM {TABLE} WHERE {analysed}", json_path):
        if p is None:
            without_label += 1
        elif type(p) is not bytes and 0 <= p <= 1:  # as SQL's BETWEEN 0 AND 1
            histogram[min(int(p * bins), bins - 1)] += 1
        else:
            unreadable += 1
    example = cache.one(f"SELECT path FROM {TABLE} WHERE {analysed} AND NOT ({_P_LABEL_SQL} BETWEEN 0 AND 1) "
                        f"ORDER BY path LIMIT 1", json_path)[0] if unreadable else None
    errors = tuple((_text_key(error), n) for error, n in cache.rows(
        f"SELECT error, count(*) FROM {TABLE} WHERE status = 'failed' GROUP BY error "
        f"ORDER BY count(*) DESC, error LIMIT ?", [top_errors]))
    odd_example = cache.one(f"SELECT path FROM {TABLE} WHERE {analysed} AND confidence IS NOT NULL AND "
                            f"{_FINITE_CONFIDENCE_SQL} IS NULL ORDER BY path LIMIT 1")[0] if odd_confidence else None
    mean_confidence = {_named(mood): summed / count for mood, (count, summed) in sorted(
        confidences.items(), key=lambda item: _null_first(item[0])) if count}
    return CacheStats(total=total, by_status=_by_count(by_status), by_mood=_by_count(by_mood),
                      mean_confidence=mean_confidence, by_format=_by_count(by_format), by_model=_by_count(by_model),
                      tagged=tagged, untagged=untagged, kept=kept, top_errors=errors, label=label, histogram=tuple(histogram),
                      tag_failed=tag_failed, unreadable_scores=unreadable, unreadable_example=example,
                      unreadable_confidence=odd_confidence, unreadable_confidence_example=odd_example,
                      without_label=without_label)


def _analysed_sql() -> str:
    """The rows `stats` counts as analysed: those a playlist takes (HAS_MOOD_SQL), but not marked missing."""
    from tagger.cache import HAS_MOOD_SQL

    return f"{HAS_MOOD_SQL} AND status <> 'missing'"


# True where a row's scores are there (not NULL, not '') but not a JSON object (CASE: json_type fails on what
# is not JSON, and SQLite does not promise to cut AND short)
_UNREADABLE_SCORES_SQL = ("(CASE WHEN ifnull(scores, '') = '' THEN 0 WHEN NOT json_valid(scores) THEN 1 "
                          "WHEN json_type(scores) <> 'object' THEN 1 ELSE 0 END)")

# A row's P(label) (the JSON path :label) where it is a JSON number (an edit may make it 2.5, or 1e999: an
# infinity); NULL where its scores hold no such key (none, another model's labels); a blob (which json_extract
# never gives) where the scores are not a JSON object (json_extract would fail on the whole query: "malformed
# JSON", taken for a damaged cache) or P(label) is no number (an edit: json_extract reads true as 1, "0.7" as
# text, null as NULL). A P(label) is readable where it is `BETWEEN 0 AND 1` (a blob is not; NULL: none).
_P_LABEL_SQL = (f"(CASE WHEN {_UNREADABLE_SCORES_SQL} THEN x'00' WHEN ifnull(scores, '') = '' THEN NULL "
                "ELSE CASE ifnull(json_type(scores, :label), '') WHEN '' THEN NULL "
                "WHEN 'real' THEN json_extract(scores, :label) WHEN 'integer' THEN json_extract(scores, :label) "
                "ELSE x'00' END END)")


# A row's confidence where it is a finite number, else NULL (see FLOAT_MAX_SQL)
_FINITE_CONFIDENCE_SQL = f"CASE WHEN confidence BETWEEN -{FLOAT_MAX_SQL} AND {FLOAT_MAX_SQL} THEN confidence END"


def _text_key(value):
    """A stored text cell as it is; bytes (a blob an edit stored) as text, each byte that is not UTF-8 as
    \\xNN; a number (no scan writes one in a text column) as its text."""
    if value is None or type(value) is str:
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)


def _null_first(key) -> tuple:
    return (key is not None, key if key is not None else "")


def _named(key) -> str:
    return key if key is not None else "(unknown)"


def _by_count(counts: Counter) -> dict:
    """Most first; equal counts by key (None, shown as '(unknown)', first)."""
    return {_named(key): n for key, n in sorted(counts.items(), key=lambda item: (-item[1], _null_first(item[0])))}


def _score_labels(cache: Cache, models: Counter) -> list[tuple[str, ...]]:
    """The label sets of the analysed rows' scores, each in model order: the one most rows hold first (ties:
    the one of the most recently analysed row first). models: the analysed rows of each (model_name,
    model_version) (as _text_key gives them), whose rows hold the labels of its most recently analysed row
    whose scores are a JSON object (one edited into something else is passed over)."""
    from tagger.cache import TABLE

    labels_of: dict = {}  # model -> its labels, newest first
    for model_name, model_version, text in cache.rows(  # by idx_tracks_analyzed_at, newest first, while a model is left
            f"SELECT model_name, model_version, scores FROM {TABLE} WHERE {_analysed_sql()} AND "
            f"ifnull(scores, '') <> '' ORDER BY analyzed_at DESC", chunk=50):
        model = (_text_key(model_name), _text_key(model_version))
        scores = stored_scores(text, "") if model not in labels_of else None
        if isinstance(scores, dict) and scores:
            labels_of[model] = tuple(scores)
            if len(labels_of) == len(models):
                break
    rows: Counter = Counter()  # label set -> analysed rows, in the order first met: newest first
    for model, labels in labels_of.items():
        rows[labels] += models[model]
    return sorted(rows, key=lambda labels: -rows[labels])  # stable: of equal counts, the newest first


def split_by_path(cache: Cache, track_filter: TrackFilter, parts: int, *, min_rows: int = 0) -> list[TrackFilter]:
    """`track_filter` cut into at most `parts` filters whose listings, one after the other, are its own:
    runs of the path order (of the key's index: every row in exactly one run, in the order ORDER BY path
    gives, reversed with desc), of about equal numbers of cached rows. [track_filter] itself unless it
    lists in path order with no limit and no run of its own, and the cache holds at least `min_rows` rows.
    Two reads of the key's index (a count, then the cuts): milliseconds for 100,000 rows."""
    from dataclasses import replace

    from tagger.cache import TABLE

    f = track_filter
    if parts <= 1 or f.order != "path" or f.limit is not None or f.path_from is not None \
            or f.path_before is not None:
        return [f]
    (rows,) = cache.one(f"SELECT count(*) FROM {TABLE}")
    if rows < max(min_rows, parts):
        return [f]
    cuts = [cache.one(f"SELECT path FROM {TABLE} ORDER BY path LIMIT 1 OFFSET ?", [rows * i // parts])[0]
            for i in range(1, parts)]
    bounds = [None, *cuts, None]
    runs = [replace(f, path_from=bounds[i], path_before=bounds[i + 1]) for i in range(parts)]
    return runs[::-1] if f.desc else runs


def _install_fold(cache: Cache) -> None:
    """Register moodtag_fold(text): Unicode case folding, for case-insensitive matching."""
    cache.conn.create_function(FOLD_FUNCTION, 1, lambda s: s.casefold() if isinstance(s, str) else s,
                                  deterministic=True)
