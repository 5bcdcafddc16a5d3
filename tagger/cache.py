"""The SQLite cache: schema (named migrations), upserts, freshness, missing files.

One row per file in table `tracks`, keyed by the absolute path. A row is *fresh* for a file while
the file's size and mtime_ns and the model's name and version are those the row recorded. The
parent process of a scan is the only writer; every result is committed as soon as it is recorded.
"""
from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from tagger.errors import MoodtagError
from tagger.records import TrackRef, TrackResult, display_path

TABLE = "tracks"
BUSY_TIMEOUT_S = 30.0
migrations = Migrations("moodtag")


@migrations()
def m001_create_tracks(db: Database) -> None:
    db[TABLE].create(
        {
            "path": str,            # absolute path (text; see path_key for names that are not UTF-8)
            "path_bytes": bytes,    # the raw file name bytes, only when the name is not valid UTF-8
            "size": int,
            "mtime_ns": int,
            "format": str,          # mp3, flac, ogg, opus, m4a, wav, aiff
            "duration": float,      # seconds
            "artist": str,
            "title": str,
            "album": str,
            "mood": str,            # the model's label, e.g. calm / exciting
            "confidence": float,    # probability of that label (mean over clips)
            "scores": str,          # JSON: label -> probability
            "clips": str,           # JSON: [{"start": s, "scores": {...}}, ...]
            "model_name": str,
            "model_version": str,
            "analyzed_at": str,     # ISO 8601 UTC
            "status": str,          # ok | failed | missing
            "error": str,           # why it failed
            "tagged": int,          # 1 when the file's tags hold this row's mood
        },
        pk="path",
        not_null={"size", "mtime_ns", "status"},
    )
    db[TABLE].create_index(["mood", "confidence"], index_name="idx_tracks_mood_confidence")
    db[TABLE].create_index(["status"], index_name="idx_tracks_status")


@dataclass(frozen=True)
class CachedTrack:
    """What the cache knows of a file."""

    path: str
    size: int
    mtime_ns: int
    status: str
    mood: str | None
    confidence: float | None
    model_name: str | None
    model_version: str | None
    tagged: bool
    error: str | None

    def is_fresh(self, ref: TrackRef, *, model_name: str, model_version: str) -> bool:
        """True when the file and model are those this row was made from (a failure counts too)."""
        return (self.size == ref.size and self.mtime_ns == ref.mtime_ns
                and self.model_name == model_name and self.model_version == model_version
                and self.status in ("ok", "failed"))


def path_key(path: Path | str) -> tuple[str, bytes | None]:
    """A path -> (text key, raw bytes or None). Names that are not valid UTF-8 get an escaped key."""
    absolute = os.path.abspath(path)
    text = display_path(absolute)
    return text, (None if text == os.fsdecode(absolute) else os.fsencode(absolute))


def default_db_path() -> Path:
    """moodtag.db in the user's data folder ($XDG_DATA_HOME/moodtag on Linux)."""
    from platformdirs import user_data_path

    return user_data_path("moodtag", appauthor=False) / "moodtag.db"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Cache:
    """The cache database. Use `Cache.open(path)`; close it (or use `with`)."""

    def __init__(self, db: Database, path: Path) -> None:
        self.db = db
        self.path = path

    @classmethod
    def open(cls, path: Path | None = None, *, create: bool = True) -> "Cache":
        """Open (and create or upgrade) the cache; an unusable file raises MoodtagError."""
        path = Path(path).expanduser() if path else default_db_path()
        if path.is_dir():
            raise MoodtagError(f"{path}: is a folder, not a database file")
        if not path.exists():
            if not create:
                raise MoodtagError(f"{path}: no cache database here (run `moodtag scan` first, or pass --db)")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise MoodtagError(f"{path}: cannot create the database folder ({exc.strerror})") from None
        try:
            conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
            db = Database(conn)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            if migrations.pending(db):
                migrations.apply(db)
        except sqlite3.DatabaseError as exc:
            raise MoodtagError(f"{path}: unusable cache database ({exc})") from None
        return cls(db, path)

    @classmethod
    def open_readonly(cls, path: Path | None = None) -> "Cache":
        """Open an existing cache read-only (queries): any write fails."""
        path = Path(path).expanduser() if path else default_db_path()
        if not path.is_file():
            raise MoodtagError(f"{path}: no cache database here (run `moodtag scan` first, or pass --db)")
        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
            conn.execute("PRAGMA query_only=ON")
            db = Database(conn)
            if TABLE not in db.table_names():
                raise MoodtagError(f"{path}: not a moodtag cache (no `{TABLE}` table)")
        except sqlite3.DatabaseError as exc:
            raise MoodtagError(f"{path}: unusable cache database ({exc})") from None
        return cls(db, path)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Cache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reads ---------------------------------------------------------------------------------
    def known_under(self, roots: list[Path]) -> dict[str, CachedTrack]:
        """Every row whose path lies under one of `roots` (one query per root), by path key."""
        found: dict[str, CachedTrack] = {}
        for root in roots:
            key, _ = path_key(root)
            prefix = key.rstrip(os.sep) + os.sep
            sql = (f"SELECT path, size, mtime_ns, status, mood, confidence, model_name, model_version, "
                   f"tagged, error FROM {TABLE} WHERE path = ? OR (path >= ? AND path < ?)")
            for row in self.db.execute(sql, [key, prefix, prefix[:-1] + chr(ord(os.sep) + 1)]).fetchall():
                found[row[0]] = CachedTrack(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7],
                                            bool(row[8]), row[9])
        return found

    def get(self, path: Path | str) -> dict | None:
        key, _ = path_key(path)
        rows = list(self.db[TABLE].rows_where("path = ?", [key]))
        return rows[0] if rows else None

    # -- writes --------------------------------------------------------------------------------
    def record(self, result: TrackResult, ref: TrackRef, *, info: dict | None = None,
               tagged: bool = False) -> None:
        """Upsert one result (ok or failed) for the file as `ref` describes it now; committed at once."""
        key, raw = path_key(ref.path)
        info = info or {}
        row = {
            "path": key, "path_bytes": raw, "size": ref.size, "mtime_ns": ref.mtime_ns,
            "format": info.get("format"), "duration": result.duration or info.get("duration"),
            "artist": info.get("artist"), "title": info.get("title"), "album": info.get("album"),
            "mood": result.mood, "confidence": result.confidence,
            "scores": json.dumps(result.scores) if result.ok else None,
            "clips": json.dumps([{"start": c.start, "scores": c.scores} for c in result.clips]) if result.ok else None,
            "model_name": result.model_name, "model_version": result.model_version,
            "analyzed_at": now_iso(), "status": "ok" if result.ok else "failed",
            "error": result.error, "tagged": int(bool(tagged and result.ok)),
        }
        def run():
            with self.db.atomic():
                self.db[TABLE].upsert(row, pk="path")
        self._write(run)

    def set_tagged(self, path: Path | str, ref: TrackRef) -> None:
        """After writing tags to a cached row's file: its new size/mtime, and tagged = 1."""
        key, _ = path_key(path)
        self._write(lambda: self.db.execute(
            f"UPDATE {TABLE} SET size = ?, mtime_ns = ?, tagged = 1 WHERE path = ?", [ref.size, ref.mtime_ns, key]))

    def set_present(self, path: Path | str) -> None:
        """A row marked missing whose file is back unchanged: ok (or failed) again."""
        key, _ = path_key(path)
        self._write(lambda: self.db.execute(
            f"UPDATE {TABLE} SET status = CASE WHEN error IS NULL THEN 'ok' ELSE 'failed' END "
            f"WHERE path = ? AND status = 'missing'", [key]))

    def mark_missing(self, keys: list[str]) -> int:
        """Mark these rows' files as vanished (kept until `prune`)."""
        if not keys:
            return 0

        def run():
            with self.db.atomic():
                for i in range(0, len(keys), 500):
                    chunk = keys[i:i + 500]
                    self.db.execute(f"UPDATE {TABLE} SET status = 'missing' WHERE path IN "
                                    f"({','.join('?' * len(chunk))})", chunk)
        self._write(run)
        return len(keys)

    def prune(self, roots: list[Path] | None = None) -> int:
        """Forget rows marked missing (under `roots` if given). Returns how many."""
        if roots:
            keys = [k for k, row in self.known_under(roots).items() if row.status == "missing"]
        else:
            keys = [r[0] for r in self.db.execute(f"SELECT path FROM {TABLE} WHERE status = 'missing'").fetchall()]

        def run():
            with self.db.atomic():
                for i in range(0, len(keys), 500):
                    chunk = keys[i:i + 500]
                    self.db.execute(f"DELETE FROM {TABLE} WHERE path IN ({','.join('?' * len(chunk))})", chunk)
        self._write(run)
        return len(keys)

    def _write(self, fn) -> None:
        try:
            fn()
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise MoodtagError(f"{self.path}: database is locked by another moodtag process "
                                   f"(waited {BUSY_TIMEOUT_S:.0f} s)") from None
            raise MoodtagError(f"{self.path}: cannot write to the cache ({exc})") from None
        except sqlite3.DatabaseError as exc:
            raise MoodtagError(f"{self.path}: cannot write to the cache ({exc})") from None
