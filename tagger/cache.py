"""The SQLite cache: schema (named migrations), upserts, freshness, missing files.

One row per file in table `tracks`, keyed by the absolute path. A row is *fresh* for a file while
the file's size and mtime_ns and the model's name and version are those the row recorded. The
parent process of a scan is the only writer; every result is committed as soon as it is recorded.

Before anything is written, `Cache.open` checks that the file is moodtag's (its `application_id`, or
moodtag's migrations in `_sqlite_migrations`), not another program's database, and not made by a
newer moodtag whose schema this one does not know. Every SQLite error, a damaged page included,
becomes one MoodtagError line naming the file. All SQL goes through the Cache's methods.

sqlite-utils (which imports numpy and click: 0.15 s) is imported only to create or upgrade the schema;
reading, writing rows, and a rescan that finds every file fresh use the sqlite3 connection.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import stat
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Iterator

from tagger.errors import MoodtagError, os_text, unreadable
from tagger.records import TrackRef, TrackResult, key_bytes, key_spelling

if TYPE_CHECKING:
    from sqlite_utils import Database
    from sqlite_utils.migrations import Migrations

TABLE = "tracks"
MOUNTS = "mount_points"  # the mount points scans saw (path keys, as `tracks`' paths): m007_mount_points
MOUNT_SAMPLE = 32  # rows looked at to tell whether a mount point's folder holds its disk's files (Mounts.retired)
BUSY_TIMEOUT_S = 30.0
WRITE_RETRY_S = 1.0  # a write that waits for another program's write transaction tries again this often
APPLICATION_ID = 0x6D6F6F64  # "mood": PRAGMA application_id of a moodtag cache
MIN_FREE_BYTES = 1 << 20     # a scan refuses to start with less free space beside the cache
MIGRATION_SET = "moodtag"
MIGRATIONS_TABLE = "_sqlite_migrations"  # sqlite-utils' Migrations.migrations_table

# tag_state: what the file's tags hold (NULL: nothing written, e.g. --no-write or a failed analysis)
TAGGED = "tagged"        # this row's mood (and `tagged` = 1)
UNTAGGED = "untagged"    # `moodtag untag` removed moodtag's fields; a scan writes them only with --retag
TAG_FAILED = "failed"    # the last write failed; status is failed and error says why; the mood is kept
KEPT = "kept"            # the file holds a mood moodtag did not write (tagger.tags.ForeignMood): left as it
                         # is; a scan writes over it only with --replace-mood
TAG_ERROR_PREFIX = "tags not written: "
# Rows whose mood is known: analysed (ok), or analysed and only the tag write failed.
HAS_MOOD_SQL = f"(status = 'ok' OR tag_state = '{TAG_FAILED}')"


def m001_create_tracks(db: Database) -> None:
    db[TABLE].create(
        {
            "path": str,            # absolute path (text; see path_key for names that need escapes)
            "path_bytes": bytes,    # the raw path bytes, only when `path` is not the name itself
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


def m002_unambiguous_keys(db: Database) -> None:
    """Keys before 0.4 wrote a name that is not UTF-8 with \\xNN escapes but left backslashes as they
    were, so `a<0xff>.ogg` and a file literally named `a\\xff.ogg` shared a row. Re-key every row that
    holds a backslash or raw bytes; mark the file as moodtag's (application_id).

    Every new key is worked out first, and the rows to re-key are moved aside to temporary keys (no
    absolute path: no row has one) before any takes its new key: a new key may be the old key of
    another file's row (`a\\b.flac` becomes `a\\\\b.flac`, the old key of a file named so), which,
    re-keyed one by one, was deleted and its result lost. The new keys spell the files' bytes one to
    one, so a row found at a new key then is the same file's (a second row of it): that one goes."""
    rows = db.execute(f"SELECT rowid, path, path_bytes FROM {TABLE} WHERE path_bytes IS NOT NULL "
                      f"OR instr(path, '\\') > 0").fetchall()
    moves = []
    for rowid, old_key, raw in rows:
        key, new_raw = path_key(key_bytes(old_key, raw))  # the key's bytes as UTF-8, whatever the locale
        if key != old_key or new_raw != raw:
            moves.append((f"moodtag-m002-rekey:{rowid}", old_key, key, new_raw))
    for temporary, old_key, _, _ in moves:
        db.execute(f"UPDATE {TABLE} SET path = ? WHERE path = ?", [temporary, old_key])
    for temporary, _, key, new_raw in moves:
        db.execute(f"DELETE FROM {TABLE} WHERE path = ?", [key])
        db.execute(f"UPDATE {TABLE} SET path = ?, path_bytes = ? WHERE path = ?", [key, new_raw, temporary])
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")


def m003_tag_state(db: Database) -> None:
    """What the file's tags hold, beyond `tagged`: `untagged` (`moodtag untag` took moodtag's fields
    out; a scan leaves them out) and `failed` (the tag write failed: the row's status is failed and
    its error says why, while its mood stays known). Rows tagged before keep saying so."""
    db[TABLE].add_column("tag_state", str)
    db.execute(f"UPDATE {TABLE} SET tag_state = '{TAGGED}' WHERE tagged = 1")


def m004_large_library_indexes(db: Database) -> None:
    """Indexes for libraries of 100,000 files: `stats` reads its counts per status, mood, format,
    model and tag, and its histogram of scores, from one index in its order (grouping the table
    sorts it, and the table is ten times larger than the index: a second in all at 100,000 rows);
    the newest result (the labels), and `query --order analyzed`, need no sort of the table."""
    db[TABLE].create_index(["status", "mood", "format", "model_name", "model_version", "tag_state", "confidence",
                            "scores"], index_name="idx_tracks_summary", if_not_exists=True)
    db[TABLE].create_index(["analyzed_at"], index_name="idx_tracks_analyzed_at", if_not_exists=True)


def m005_playlist_index(db: Database) -> None:
    """An index that holds what a playlist reads (the columns it selects and filters on), in the order of
    a playlist by score (mood, most confident first, then path): a playlist of 100,000 tracks is read
    from it alone, with neither a lookup in the table nor a sort (0.35 s -> 0.2 s)."""
    from sqlite_utils.db import DescIndex

    db[TABLE].create_index(["mood", DescIndex("confidence"), "path", "status", "tag_state", "model_name", "model_version",
                            "path_bytes", "duration", "artist", "title", "album"],
                           index_name="idx_tracks_playlist", if_not_exists=True)


def m006_size_index(db: Database) -> None:
    """An index on (size, mtime_ns): for each batch of walked files it has no row for, a scan looks for
    the rows of the same files moved or renamed (Cache.rows_like) in one query, not a pass over the table."""
    db[TABLE].create_index(["size", "mtime_ns"], index_name="idx_tracks_size_mtime", if_not_exists=True)


def m007_mount_points(db: Database) -> None:
    """The mount points scans saw (Cache.note_mounts): a row whose file is gone while the disk a scan saw
    mounted above it is not mounted now (udisks removes /media/USER/LABEL on unmount) is a disk's away,
    not a file deleted: a scan does not mark it missing and prune keeps it (Mounts.away)."""
    db[MOUNTS].create({"path": str, "path_bytes": bytes}, pk="path", if_not_exists=True)


LOOKUP_BATCH = 500     # path keys per query when a scan looks up what it walked
_WALKED = "moodtag_walked"
_TRACK_COLUMNS = ("path, size, mtime_ns, status, mood, confidence, model_name, model_version, tag_state, error, "
                  "path_bytes")


SCHEMA_STEPS = (m001_create_tracks, m002_unambiguous_keys, m003_tag_state, m004_large_library_indexes,
                m005_playlist_index, m006_size_index, m007_mount_points)


@lru_cache(maxsize=None)
def migrations() -> Migrations:
    """The schema steps as sqlite-utils migrations (named after their functions), in order."""
    from sqlite_utils.migrations import Migrations

    steps = Migrations(MIGRATION_SET)
    for step in SCHEMA_STEPS:
        steps()(step)
    return steps


def _upgrade(cache: "Cache") -> None:
    """Apply the schema steps not applied yet, in one write transaction begun IMMEDIATE, asking which are
    pending inside it. Commands open an older cache without the scan lock (a read command upgrades it as
    it opens it, and a scan's lock check opens it first): two at once both found steps pending, and the
    second's step, begun on a snapshot the first's commit had made stale, failed at once as "database is
    locked" (sqlite-utils asks what is pending before its transactions). BEGIN IMMEDIATE waits (busy
    timeout) for the other's upgrade to commit, and then finds nothing pending."""
    conn = cache.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        if _pending(conn):
            migrations().apply(cache.db)  # each step in a savepoint of this transaction
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _table_names(conn: sqlite3.Connection) -> set[str]:
    return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _applied(conn: sqlite3.Connection, names: set[str] | None = None) -> list[str]:
    """The names of moodtag's migrations applied to this database, in order (read-only)."""
    if MIGRATIONS_TABLE not in (_table_names(conn) if names is None else names):
        return []
    return [name for (name,) in conn.execute(
        f"SELECT name FROM {MIGRATIONS_TABLE} WHERE migration_set = ? ORDER BY rowid", [MIGRATION_SET])]


def _pending(conn: sqlite3.Connection) -> bool:
    """True when some schema step is not applied yet (read-only)."""
    return not known_migrations() <= set(_applied(conn))


def under_root(root: Path) -> tuple[str, list]:
    """SQL (and its parameters) that selects the rows at or under `root` by a range of the primary key."""
    key, _ = path_key(root)
    prefix = key.rstrip(os.sep) + os.sep
    return "path = ? OR (path >= ? AND path < ?)", [key, prefix, prefix[:-1] + chr(ord(os.sep) + 1)]


def _any_under(folders: list[bytes]) -> tuple[str, list]:
    """SQL (and its parameters) that selects the rows at or under any of `folders` (under_root's, joined)."""
    parts = [under_root(Path(os.fsdecode(folder))) for folder in folders]
    return " OR ".join(f"({where})" for where, _ in parts), [param for _, params in parts for param in params]


def filter_roots(roots) -> list[Path]:
    """The folders a PATH filter of a read command stands for: each as written (absolute) and, where it
    goes through a symlink, its real path too, so a cache scanned through the real folder answers a
    PATH given through a link to it (a scan's keys are the paths it walked, links unresolved); and each
    of those as its folders spell it (discover.spelt_on_disk: `music` on a case-insensitive disk whose
    folder is `Music`, as a scan names it). Not for a scan's own walk: rows under the other name were
    not walked by it."""
    from tagger.discover import spelt_on_disk

    found: list[Path] = []
    for root in roots:
        places = [Path(os.path.abspath(root)), Path(os.path.realpath(root))]
        for place in places + spelt_on_disk(places):
            if place not in found:
                found.append(place)
    return found


def known_migrations() -> frozenset[str]:
    """The names of the schema steps this moodtag knows (all pending on an empty database)."""
    return frozenset(step.__name__ for step in SCHEMA_STEPS)


@dataclass(frozen=True)
class CachedTrack:
    """What the cache knows of a file."""

    path: str                 # the key (see path_key)
    size: int
    mtime_ns: int
    status: str
    mood: str | None
    confidence: float | None
    model_name: str | None
    model_version: str | None
    tag_state: str | None     # TAGGED, UNTAGGED, TAG_FAILED, KEPT or None
    error: str | None
    path_bytes: bytes | None = None

    @property
    def tagged(self) -> bool:
        return self.tag_state == TAGGED

    @property
    def has_mood(self) -> bool:
        """True when the model's result is known: the row is ok, or only its tag write failed."""
        return self.status == "ok" or self.tag_state == TAG_FAILED

    @property
    def fs_path(self) -> bytes:
        """The path to hand to the OS, as bytes (key_bytes: the key's UTF-8, whatever the locale)."""
        return key_bytes(self.path, self.path_bytes)

    @property
    def present_status(self) -> str:
        """The status the row has while its file is there: for a row marked missing, the one it had
        before (failed where it holds a failure's cause in `error`, as every failed row does; else ok)."""
        if self.status != "missing":
            return self.status
        return "failed" if self.error is not None else "ok"

    @property
    def untag_pending(self) -> bool:
        """An untag of the file began and may not have ended (Cache.set_untagged): the row says untagged,
        and holds an mtime no file has."""
        return self.tag_state == UNTAGGED and self.mtime_ns < 0

    def is_fresh(self, ref: TrackRef, *, model_name: str, model_version: str) -> bool:
        """True when the file and model are those this row was made from (a failure counts too, except
        one whose cause lies outside the file: it could not be read; tagger.errors.unreadable). A row
        marked missing counts with its present_status: its file is back as it was (a disk mounted
        again), and its result holds (the scan gives the row that status back)."""
        status = self.present_status
        return (self.size == ref.size and self.mtime_ns == ref.mtime_ns
                and self.model_name == model_name and self.model_version == model_version
                and (status == "ok" or (status == "failed" and not unreadable(self.error))))


def untag_pending(mtime_ns: int) -> int:
    """The mtime a row of an untag in progress holds in place of the file's `mtime_ns`: one no file has
    (negative for every mtime from 1970 on; for any other, a different number), so the row is current
    for no file and the next scan looks at the file again; and the same function undoes it. A row that
    says untagged with a negative mtime is an untag a kill may have cut short (Cache.set_untagged)."""
    return -mtime_ns - 1


def path_key(path: Path | str | bytes) -> tuple[str, bytes | None]:
    """A path -> (key, raw bytes or None): the key is the absolute path as text. A path that is not
    valid UTF-8, or that holds a backslash, is written with each backslash doubled and each byte that
    is not UTF-8 as \\xNN, and its raw bytes come with it; so two different paths never share a key
    (a plain key holds no backslash, an escaped one always does)."""
    absolute = os.fsencode(os.path.abspath(path))
    try:
        text = absolute.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and "\\" not in text:
        return text, None
    return key_spelling(absolute), absolute


def holds_nothing(path: Path) -> bool:
    """Whether `path` is an empty file with no write-ahead log holding pages: no cache yet, which `scan`
    and `untag` make one of; their dry runs read it as no cache (nothing cached), not as a damaged one."""
    try:
        wal = Path(str(path) + "-wal")
        return path.stat().st_size == 0 and (not wal.exists() or wal.stat().st_size == 0)
    except OSError:
        return False


def default_db_path() -> Path:
    """moodtag.db in the user's data folder ($XDG_DATA_HOME/moodtag on Linux). Where that has no place (no
    absolute HOME nor XDG_DATA_HOME, and no home folder for this uid in the user database: a container's
    arbitrary uid, a service's User= that NSS does not know) MoodtagError says what to set, in place of
    platformdirs' RuntimeError (a traceback from every command)."""
    from platformdirs import user_data_path

    try:
        return user_data_path("moodtag", appauthor=False) / "moodtag.db"
    except RuntimeError:
        raise MoodtagError(f"no place for the cache: {_no_home()}; set HOME or XDG_DATA_HOME, or name the cache "
                           "with --db or MOODTAG_DB") from None


def _default_if_known() -> Path | None:
    try:
        return default_db_path()
    except MoodtagError:  # no home: a --db given is not the default
        return None


def _no_home() -> str:
    """Why no home folder is known (default_db_path, a --db of `~/...`)."""
    uid = f" for uid {os.getuid()}" if hasattr(os, "getuid") else ""
    return f"no home folder is known (HOME is not set, or not an absolute path, and the user database has none{uid})"


def resolve_db_path(path: Path | str | None) -> Path:
    """The cache file a --db value (None: the default) means: `~` expanded, symlinks resolved (so that
    two names of one file share one lock); a folder or a device is refused, and so is a new cache in a
    folder that does not exist (a mistyped --db would otherwise start a fresh cache, and a scan would
    analyse the whole library again); the default's folders are made."""
    default = path is None
    try:
        path = Path(path).expanduser() if not default else default_db_path()
    except RuntimeError:  # `~/x.db` (MOODTAG_DB, a unit file's Environment=, which no shell expands) with no home
        raise MoodtagError(f"{path}: `~` stands for no folder: {_no_home()}; set HOME, or give the cache's "
                           "absolute path") from None
    if str(path) == "":
        raise MoodtagError("--db: an empty path (an unset variable?)")
    given = path
    path = Path(os.path.realpath(path))
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if not default and not path.parent.is_dir() and given != _default_if_known():
            raise MoodtagError(f"{given}: no folder {path.parent} for the cache (a typo? moodtag makes the cache "
                               f"file, not its folders)") from None
        return path
    except OSError as exc:
        raise MoodtagError(f"{path}: cannot use the cache database ({exc.strerror or exc})") from None
    if stat.S_ISDIR(mode):
        raise MoodtagError(f"{path}: is a folder, not a database file")
    if not stat.S_ISREG(mode):
        from tagger.discover import file_kind

        raise MoodtagError(f"{path}: not a regular file ({file_kind(mode)}); the cache must be a file")
    return path


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


UNUSABLE = "unusable cache database"  # what opening the cache failed at, where the fault is the file's


def db_error(path: Path, exc: BaseException, doing: str = "cannot use the cache") -> MoodtagError:
    """An SQLite error -> one line naming the file, the cause and what to do."""
    text = str(exc)
    low = text.lower()
    if "malformed" in low or "corrupt" in low:
        return MoodtagError(f"{path}: the cache is damaged ({text}); move it aside and scan again, "
                            f"or rescue it with `sqlite3 {path} .recover`")
    if "file is not a database" in low or "not a database" in low:
        return MoodtagError(f"{path}: not an SQLite database (is --db the right file?)")
    if "readonly" in low or "read-only" in low:
        return MoodtagError(_unwritable(path, doing) or _trial_line(path, doing)
                            or f"{path}: {doing}: it is read-only ({text})")
    if "disk is full" in low or "disk full" in low or "disk i/o error" in low:
        return MoodtagError(_disk_trouble(path, text, doing))
    if "unable to open" in low:
        return MoodtagError(_trial_line(path, doing) or f"{path}: {doing} ({text})")
    if "locked" in low or "busy" in low:
        return MoodtagError(f"{path}: database is locked by another program{_waited(exc)}")
    if "interrupted" in low:
        return MoodtagError(f"{path}: interrupted")
    return MoodtagError(f"{path}: {doing} ({text})")


def _waited(exc: BaseException) -> str:
    """How long SQLite waited before its "locked", where that is known: a plain SQLITE_BUSY comes after
    the busy timeout of moodtag's connections. Its other kinds (a snapshot another writer made stale,
    SQLITE_BUSY_SNAPSHOT; a recovery; SQLITE_LOCKED) come at once, and an error without its code says
    nothing of it: no figure then."""
    if getattr(exc, "sqlite_errorname", None) == "SQLITE_BUSY":
        return f" (waited {BUSY_TIMEOUT_S:.0f} s)"
    return ""


def _busy(exc: sqlite3.Error) -> bool:
    """Whether SQLite's error says that another connection holds the write lock (SQLITE_BUSY, any kind)."""
    name = getattr(exc, "sqlite_errorname", None)  # Python 3.11+
    if name is not None:
        return name.startswith("SQLITE_BUSY")
    return "database is locked" in str(exc).lower()


class Stopped(KeyboardInterrupt):
    """A command's `should_stop` said so while it waited: for moodtag's lock (scan_lock), for another
    program's write transaction (Cache.wait_for_writers), or during `prune`'s look at the files."""


def transaction_wait_line(shown_path: str) -> str:
    """The line a command that writes the cache prints when another program holds a write transaction on
    it; `shown_path`: the cache's path as the console shows it."""
    return (f"waiting for another program's write transaction on {shown_path} to end (a sqlite3 shell or DB "
            f"Browser for SQLite holding changes: COMMIT or ROLLBACK there, or close it)...")


def _disk_trouble(path: Path, text: str, doing: str) -> str:
    """The line for SQLite's "disk full" or "disk I/O error". SQLite says the latter where it cannot make
    or grow the `-shm` beside a WAL cache, as on a full disk: so the free space of the cache's folder
    tells which (worded as Cache.check_writable words it). Never "unusable": the file is not at fault,
    and the line must not invite deleting it."""
    free = _free_bytes(path.parent)
    low_space = _disk_full(path.parent)
    if "full" in text.lower() or low_space:
        doing = "cannot write to the cache" if doing == UNUSABLE else doing
        return f"{path}: {doing}: disk full" + (f" ({free // 1024} KB free)" if low_space else "")
    line = _trial_line(path, doing)
    if line is not None:
        return line
    doing = "cannot read/write the cache database" if doing == UNUSABLE else doing
    return f"{path}: {doing} ({text})"


REFUSALS = (errno.EROFS, errno.EACCES, errno.EPERM)  # a file system's "no" to a write
SHM_REGION = 32768  # the size of a -shm's first region, which SQLite maps shared


def _trial_write(folder: Path) -> tuple[str, OSError] | None:
    """What SQLite meets beside a WAL cache, tried in `folder` with a file of moodtag's own (deleted
    after): made and written as its -wal is, then sized and mapped shared as its -shm is. ("refused",
    error) where the file system refuses the file or its write (EROFS, EACCES or EPERM: a share exported
    read-only, or turned read-only by its server, while mounted read-write here: statvfs and the mode
    bits say it may be written); ("unmappable", error) where the file is written but cannot be sized or
    mapped (fusefat refuses an ftruncate that grows a file: EPERM); None where all of it works. Tried
    only after SQLite failed: nothing of it is the cache's."""
    try:
        fd, name = tempfile.mkstemp(prefix=".moodtag-trial-", dir=folder)
    except OSError as exc:
        return ("refused", exc) if exc.errno in REFUSALS else None
    try:
        try:
            os.write(fd, b"\0")
            os.fsync(fd)
        except OSError as exc:
            return ("refused", exc) if exc.errno in REFUSALS else None
        try:
            os.ftruncate(fd, 3)  # SQLite sizes a -shm so before it maps it
            os.pwrite(fd, b"\0", SHM_REGION - 1)
            import mmap

            mmap.mmap(fd, SHM_REGION).close()
        except (OSError, ValueError) as exc:
            return "unmappable", exc if isinstance(exc, OSError) else OSError(str(exc))
        return None
    finally:
        os.close(fd)
        try:
            os.unlink(name)
        except OSError:
            pass


def _refuses_writes(folder: Path) -> bool:
    """Whether `folder`'s file system refuses a new file or its write, whatever its mount and modes say."""
    trial = _trial_write(folder)
    return trial is not None and trial[0] == "refused"


def _trial_line(path: Path, doing: str) -> str | None:
    """The line for an SQLite failure that a trial write beside the cache explains (_trial_write): a file
    system that refuses writes though mounted read-write, or one on which SQLite cannot use its WAL
    files. None where the trial works (the cause is elsewhere)."""
    trial = _trial_write(path.parent)
    if trial is None:
        return None
    kind, exc = trial
    if kind == "refused":
        doing = "cannot write to the cache" if doing == UNUSABLE else doing
        return _refused_line(path, doing, exc)
    doing = "cannot use the cache" if doing == UNUSABLE else doing
    return (f"{path}: {doing}: SQLite cannot use its WAL files (-wal, -shm) on this file system (a -shm cannot "
            f"be sized or mapped there: {os_text(exc)}); keep the cache on a local disk (--db)")


def _refused_line(path: Path, doing: str, exc: OSError) -> str:
    """The line for a cache whose file system refused a write though it is mounted read-write here."""
    return (f"{path}: {doing}: its file system refused the write ({os_text(exc)}) though it is mounted "
            f"read-write here (a share its server keeps read-only?); make it writable there, or choose "
            f"another --db on a local disk")


def _free_bytes(folder: Path) -> int | None:
    """The bytes this user may still write in `folder`'s file system; None where that cannot be told."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    if st.f_blocks == 0:   # a file system that tells no size (fusefat, some FUSE mounts)
        return None
    return st.f_bavail * st.f_frsize


def _disk_full(folder: Path) -> bool:
    """Whether less than MIN_FREE_BYTES are free in `folder`'s file system (a scan refuses to start)."""
    free = _free_bytes(folder)
    return free is not None and free < MIN_FREE_BYTES


def _read_only_mount(path: Path) -> bool:
    """Whether the file system `path` (or, where it does not exist, its folder) lies on is mounted
    read-only: no chmod can make the cache writable there."""
    try:
        return bool(os.statvfs(_nearest_there(path)).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _nearest_there(path: Path) -> Path:
    """`path`, or the nearest folder above it that is there (the default cache's folders are made by its
    first command)."""
    while not os.path.exists(path) and path.parent != path:
        path = path.parent
    return path


def _files_beside(path: Path) -> set[Path]:
    """The `-wal` and `-shm` files beside the cache now (see _remove_unused_beside)."""
    return {beside for beside in (Path(f"{path}-wal"), Path(f"{path}-shm")) if os.path.lexists(beside)}


def _remove_unused_beside(path: Path, there: set[Path]) -> None:
    """After a connection failed to open on a full disk, or on a file system that refuses SQLite's writes
    or its `-shm` (_trial_write: a share kept read-only by its server, fusefat): delete the `-wal` and
    `-shm` SQLite made for it (not `there` before) and could not fill: an empty `-wal`, a `-shm` shorter
    than its first 32 KiB region (one that any connection uses is at least that). A failed command
    leaves no file behind."""
    if not _disk_full(path.parent) and _trial_write(path.parent) is None:
        return
    for beside, least in ((Path(f"{path}-wal"), 1), (Path(f"{path}-shm"), 32768)):
        try:
            if beside not in there and os.lstat(beside).st_size < least:
                beside.unlink()
        except OSError:
            continue


def _may(path: Path, mode: int) -> bool:
    """os.access with this process's effective ids (those its writes are checked with)."""
    return os.access(path, mode, effective_ids=os.access in os.supports_effective_ids)


def _unwritable(path: Path, doing: str) -> str | None:
    """The line for a cache SQLite could not write, naming what is in the way: the file, its folder
    (where SQLite makes `-wal` and `-shm`, and a new cache), or a `-wal`/`-shm` beside it. None where
    all of them may be written (the cause is elsewhere). A read-only file system is named as such (write
    permission cannot help there, and chmod fails too)."""
    if _read_only_mount(path):
        return (f"{path}: {doing}: its file system is mounted read-only; remount it read-write "
                f"(mount -o remount,rw), or choose another --db")
    if path.exists() and not _may(path, os.W_OK):
        st = path.stat()
        return (f"{path}: {doing}: it is read-only (mode {stat.S_IMODE(st.st_mode):04o}, owner uid {st.st_uid}); "
                f"make it writable (chmod u+w), or choose another --db")
    above = _nearest_there(path.parent)
    if above != path.parent:  # its folder is not there yet (a default cache's first command, HOME read-only)
        if not above.is_dir() or _may(above, os.W_OK | os.X_OK):
            return None  # a file in the way, or the folder may be made: the cause is elsewhere
        return (f"{path}: {doing}: its folder {path.parent} cannot be made: {above} is read-only; make it "
                f"writable, or choose another --db")
    if not _may(path.parent, os.W_OK | os.X_OK):
        return (f"{path}: {doing}: its folder {path.parent} is read-only (SQLite makes the cache's -wal and "
                f"-shm files there); make the folder writable, or choose another --db")
    return _unwritable_beside(path, doing)


def _unwritable_beside(path: Path, doing: str) -> str | None:
    """The line for a cache the user may write whose `-wal` or `-shm` he may not (left by another user's
    read, or by a read of the cache while it was read-only): SQLite then calls the cache read-only.
    None where neither is so."""
    if not os.access(path, os.W_OK):
        return None
    for suffix in ("-wal", "-shm"):
        beside = Path(f"{path}{suffix}")
        try:
            st = beside.stat()
        except OSError:
            continue
        if not os.access(beside, os.W_OK):
            # a -shm is rebuilt from the -wal, an empty -wal holds nothing: either may go; a -wal with
            # committed pages may not (they would be lost)
            removable = suffix == "-shm" or st.st_size == 0
            return (f"{beside}: {doing}: SQLite's {suffix} file beside it is not writable (mode "
                    f"{stat.S_IMODE(st.st_mode):04o}, owner uid {st.st_uid}) while the cache is; make it "
                    f"writable (chown, chmod u+w)" + (", or delete it while no program has the cache open"
                                                       if removable else ""))
    return None


def _unreadable_beside(path: Path, suffixes: tuple[str, ...] = ("-wal", "-shm")) -> str | None:
    """The line for a cache whose `-wal` or `-shm` the user may not read (another user's 0600 file, left
    by his crashed or running writer), or the cache file itself (named first): SQLite says only "unable
    to open database file", which called a sound cache unusable. Worded as _unwritable_beside words
    prune's. None where each may be read."""
    try:
        st = path.stat()
    except OSError:
        st = None
    if st is not None and not _may(path, os.R_OK):  # the cache itself first: the line a user fixes first
        return (f"{path}: cannot read the cache (permission denied: mode {stat.S_IMODE(st.st_mode):04o}, owner "
                f"uid {st.st_uid}); make it readable and writable (chown, chmod u+rw)")
    for suffix in suffixes:
        beside = Path(f"{path}{suffix}")
        try:
            st = beside.stat()
        except OSError:
            continue
        if not _may(beside, os.R_OK):
            # as in _unwritable_beside: a -wal with committed pages may not go (they would be lost)
            removable = suffix == "-shm" or st.st_size == 0
            return (f"{beside}: cannot read the cache: SQLite's {suffix} file beside it is not readable "
                    f"(permission denied: mode {stat.S_IMODE(st.st_mode):04o}, owner uid {st.st_uid}); make it "
                    f"readable and writable (chown, chmod u+rw)" + (", or delete it while no program has the "
                                                                   "cache open" if removable else ""))
    return None


def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a database that is not a moodtag cache, or whose schema is newer than this moodtag's."""
    names = _table_names(conn)
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    applied = set(_applied(conn, names))
    if app_id not in (0, APPLICATION_ID):
        raise MoodtagError(f"{path}: not a moodtag cache (another program's SQLite database, "
                           f"application_id {app_id:#x}); choose another --db")
    if names and app_id != APPLICATION_ID and not applied and not _half_made(conn, names):
        shown = ", ".join(sorted(names)[:4]) + (", ..." if len(names) > 4 else "")
        raise MoodtagError(f"{path}: not a moodtag cache (an SQLite database with tables {shown}); "
                           f"choose another --db")
    newer = sorted(applied - known_migrations())
    if newer:
        from tagger import __version__

        raise MoodtagError(f"{path}: made by a newer moodtag (schema step {newer[-1]}, unknown to moodtag "
                           f"{__version__}); upgrade moodtag, or use another --db")


def _half_made(conn: sqlite3.Connection, names: set[str]) -> bool:
    """Whether the database is a cache whose making stopped before its first schema step was recorded
    (the process killed, a full disk): sqlite-utils makes an empty `_sqlite_migrations` table first, and
    nothing else is there. Cache.open finishes making it; refused as another program's, it stopped every
    later command."""
    return names == {MIGRATIONS_TABLE} and conn.execute(f"SELECT count(*) FROM {MIGRATIONS_TABLE}").fetchone()[0] == 0


def _wal_mode(path: Path) -> bool:
    """Whether the database file's header says WAL mode (its read and write versions, bytes 18 and 19, are 2)."""
    try:
        with open(path, "rb") as file:
            header = file.read(20)
    except OSError:
        return False
    return header[18:20] == b"\x02\x02"


class Cache:
    """The cache database. Use `Cache.open(path)` or `Cache.open_readonly(path)`; close it (or use `with`)."""

    def __init__(self, conn: sqlite3.Connection, path: Path, *, cleanup: Path | None = None,
                 source: tuple[Path, str] | None = None) -> None:
        self.conn = conn
        self.path = path
        self._cleanup = cleanup  # a private copy to delete on close (see open_readonly)
        self._source = source    # read-only: the file read and the URI's flags (see reader)
        self._db: Database | None = None
        self._by_stat: dict | None = None  # (size, mtime_ns) -> keys, for _row_by_identity
        self._on_busy = None               # see wait_for_writers
        self._should_stop = lambda: False

    @property
    def db(self) -> Database:
        """The connection as a sqlite-utils Database (imported on first use: schema steps). Without
        sqlite-utils' plugins: the schema uses none, and finding them reads the metadata of every
        installed package (40 ms of a cold scan's start)."""
        if self._db is None:
            from sqlite_utils import Database

            self._db = Database(self.conn, execute_plugins=False)
        return self._db

    @classmethod
    def open(cls, path: Path | str | None = None, *, create: bool = True) -> "Cache":
        """Open (and create or upgrade) the cache for writing; an unusable file raises MoodtagError
        before anything is written to it. `create=False`: only a cache that exists, with its table (an
        empty file, as `--db` may name by mistake, is refused as the read commands refuse it)."""
        path = resolve_db_path(path)
        if not path.exists():
            if not create:
                raise MoodtagError(f"{path}: no cache database here (run `moodtag scan` first, or pass --db)")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise MoodtagError(f"{path}: cannot create the database folder ({exc.strerror})") from None
        # before SQLite opens it: a connection to a file or folder this user cannot write is read-only, yet
        # it makes -wal/-shm files (with the cache's mode: 0444 ones then stopped every scan, once the
        # cache was writable again)
        unwritable = _unwritable(path, "cannot write to the cache" if path.exists() else "cannot create the cache")
        if unwritable is not None:
            raise MoodtagError(unwritable)
        conn = None
        there = _files_beside(path)
        try:
            conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
            _check_schema(conn, path)
            if not create and TABLE not in _table_names(conn):  # an empty file is no cache to use
                raise MoodtagError(f"{path}: not a moodtag cache (no `{TABLE}` table)")
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            cache = cls(conn, path)
            if _pending(conn):
                _upgrade(cache)
        except MoodtagError:
            if conn is not None:
                conn.close()
            raise
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            _remove_unused_beside(path, there)
            raise db_error(path, exc, UNUSABLE) from None
        return cache

    @classmethod
    def open_readonly(cls, path: Path | str | None = None) -> "Cache":
        """Open an existing cache read-only (queries): any write fails (PRAGMA query_only), and the
        command leaves no file behind (see _read_flags). Works in a folder the user cannot write too:
        SQLite needs to create `-shm` beside a WAL database even to read it, so there the file is
        opened as immutable (no writer can be running in such a folder), or, when a crashed writer
        left committed pages in its `-wal`, a private copy of both is read. A cache of an older
        moodtag is upgraded first (its pending migrations, as a scan would), or, where it cannot be
        written, read from an upgraded private copy."""
        path = resolve_db_path(path)
        if not path.is_file():
            raise MoodtagError(f"{path}: no cache database here (run `moodtag scan` first, or pass --db)")
        try:
            there = _files_beside(path)
            try:
                flags = cls._read_flags(path)
                db = cls._connect_readonly(path, flags)
            except sqlite3.OperationalError as exc:
                _remove_unused_beside(path, there)
                if not cls._cannot_share(path, exc):
                    raise
                wal = Path(str(path) + "-wal")
                if not wal.exists() or wal.stat().st_size == 0:
                    flags = "immutable=1"
                    db = cls._connect_readonly(path, flags)
                else:
                    return cls._open_private_copy_of(path)
            _check_schema(db, path)
            if TABLE not in _table_names(db):
                db.close()
                raise MoodtagError(f"{path}: not a moodtag cache (no `{TABLE}` table)")
            if _pending(db):
                db.close()
                return cls._open_upgraded(path)
        except sqlite3.Error as exc:
            unreadable = _unreadable_beside(path) if "unable to open" in str(exc).lower() else None
            raise (MoodtagError(unreadable) if unreadable else db_error(path, exc, UNUSABLE)) from None
        return cls(db, path, source=(path, flags))

    @staticmethod
    def _cannot_share(path: Path, exc: sqlite3.OperationalError) -> bool:
        """Whether a read failed only because SQLite could not make or grow the `-shm` it shares with other
        connections: in a folder the user cannot write, or on a full disk (SQLite's "disk I/O error").
        The cache is read without it then (open_readonly)."""
        text = str(exc).lower()
        if not os.access(path.parent, os.W_OK):
            return "readonly" in text or "unable to open" in text
        if "disk i/o error" in text and _disk_full(path.parent):
            return True
        return ("readonly" in text or "unable to open" in text or "disk i/o error" in text) and \
            _trial_write(path.parent) is not None

    @classmethod
    def _open_private_copy_of(cls, path: Path) -> "Cache":
        """_open_private_copy (upgraded, as a cache of an older moodtag is: the copy is this command's
        own), a copy that cannot be made (a full temporary folder, a -wal the user may not read) one line."""
        try:
            return cls._open_private_copy(path, upgrade=True)
        except OSError as exc:
            unreadable = _unreadable_beside(path, ("-wal",)) if isinstance(exc, PermissionError) else None
            if unreadable:
                raise MoodtagError(unreadable) from None
            raise MoodtagError(f"{path}: cannot read the cache: a private copy of it and its -wal (SQLite "
                               f"cannot read them where they are) cannot be made in "
                               f"{tempfile.gettempdir()} ({exc.strerror or exc})") from None

    @classmethod
    def _open_upgraded(cls, path: Path) -> "Cache":
        try:
            cls.open(path, create=False).close()
        except MoodtagError:
            return cls._open_private_copy(path, upgrade=True)
        return cls.open_readonly(path)

    @staticmethod
    def _read_flags(path: Path) -> str:
        """The URI flags a read command opens the cache with, so that it leaves no `-wal`/`-shm` behind.

        SQLite makes both files beside a WAL database for any connection, and only the last connection
        that can write removes them when it closes: one opened `mode=ro` left them (with the cache's
        mode, 0444 for a protected cache, or another user's), and they then made every scan fail as
        "read-only". So: where the user may write the file and its folder, `mode=rw` (writes are
        refused by PRAGMA query_only; closing removes the files, as sqlite3 and sqlite-utils do, and
        leaves them to a scan still running). Where not, and no `-wal` is there, `immutable=1`: no
        connection has the cache open (a WAL connection keeps its `-wal` while open), none that this
        user opens can write it, and a scan of another user starting meanwhile writes to its own
        `-wal`, not to the file, until a checkpoint (1000 pages, or its end): only that could change
        the file under this read. Else (a `-wal` is there: a writer may be running) `mode=ro`, which
        uses the files that are there. A full disk is not told from here: a disk with little room left
        may still take a writer's pages (prune's), which would change the file under an immutable read
        (read as "damaged"); open_readonly falls back to immutable only where SQLite could not make its
        `-shm` there ("disk I/O error", _cannot_share)."""
        if os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK):
            return "mode=rw"
        if not Path(str(path) + "-wal").exists() and _wal_mode(path):
            return "immutable=1"
        return "mode=ro"

    @staticmethod
    def _connect_readonly(path: Path, flags: str) -> sqlite3.Connection:
        """A connection to `path` (URI `flags`, see _read_flags) that cannot write: PRAGMA query_only."""
        conn = sqlite3.connect(f"{path.as_uri()}?{flags}", uri=True, timeout=BUSY_TIMEOUT_S)
        try:
            conn.execute("PRAGMA query_only=ON")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error:
            conn.close()
            raise
        return conn

    @classmethod
    def _open_private_copy(cls, path: Path, *, upgrade: bool = False) -> "Cache":
        folder = Path(tempfile.mkdtemp(prefix="moodtag-ro-"))
        try:
            shutil.copyfile(path, folder / "cache.db")
            wal = Path(str(path) + "-wal")
            if wal.exists():
                shutil.copyfile(wal, folder / "cache.db-wal")
            if upgrade:
                conn = sqlite3.connect(str(folder / "cache.db"), isolation_level=None)
                try:
                    _upgrade(cls(conn, path))
                finally:
                    conn.close()
            db = cls._connect_readonly(folder / "cache.db", "mode=ro")
            _check_schema(db, path)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return cls(db, path, cleanup=folder, source=(folder / "cache.db", "mode=ro"))

    def reader(self) -> "Cache":
        """Another read-only connection to what this cache (opened with open_readonly) reads, for one
        part of a job run in a forked process (see tagger.forked); closing it never deletes the private
        copy this one may read."""
        if self._source is None:
            raise ValueError("reader() needs a cache opened with Cache.open_readonly")
        file, flags = self._source
        try:
            return Cache(self._connect_readonly(file, flags), self.path, source=self._source)
        except sqlite3.Error as exc:
            raise db_error(self.path, exc, UNUSABLE) from None

    @contextmanager
    def released(self) -> Iterator[None]:
        """This connection closed for the block, then opened again: a process about to fork must hold
        none (SQLite's rule); the block's parts open their own with reader()."""
        if self._source is None:
            raise ValueError("released() needs a cache opened with Cache.open_readonly")
        self.conn.close()
        self._db = None
        try:
            yield
        finally:
            self.conn = self.reader().conn

    def close(self) -> None:
        try:
            self.conn.close()
        finally:
            if self._cleanup is not None:
                shutil.rmtree(self._cleanup, ignore_errors=True)

    def __enter__(self) -> "Cache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def wait_for_writers(self, *, on_wait, should_stop) -> None:
        """Make this cache's writes wait for another program's write transaction on it (a sqlite3 shell
        left in BEGIN, DB Browser for SQLite with changes not written) for as long as it lasts, as a
        command waits for moodtag's own lock, instead of failing after BUSY_TIMEOUT_S: each write is
        tried again every WRITE_RETRY_S (its busy timeout); `on_wait()` is called once per write that
        waits, after its first try; `should_stop()` is polled between tries, and ends the wait (Stopped)."""
        self._on_busy, self._should_stop = on_wait, should_stop
        self._write(lambda: self.conn.execute(f"PRAGMA busy_timeout = {int(WRITE_RETRY_S * 1000)}"))

    # -- checks --------------------------------------------------------------------------------
    def check_writable(self) -> None:
        """Raise MoodtagError unless a row could be written now: the file and its folder writable, and
        some free space beside it. A scan calls this before it writes the first tag."""
        if _disk_full(self.path.parent):
            raise MoodtagError(f"{self.path}: cannot write to the cache: disk full "
                               f"({_free_bytes(self.path.parent) // 1024} KB free)")

        def probe():
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self.conn.execute(f"PRAGMA user_version = {self.conn.execute('PRAGMA user_version').fetchone()[0]}")
                self.conn.execute(f"UPDATE {TABLE} SET path = path WHERE rowid = (SELECT min(rowid) FROM {TABLE})")
            finally:
                self.conn.execute("ROLLBACK")
        self._write(probe)

    # -- reads ---------------------------------------------------------------------------------
    def rows(self, sql: str, params=(), *, chunk: int = 1000) -> Iterator[tuple]:
        """The rows of one read-only query, fetched in chunks (memory stays flat); SQLite errors become
        one MoodtagError line naming the cache."""
        try:
            cursor = self.conn.execute(sql, params)
            while True:
                batch = cursor.fetchmany(chunk)
                if not batch:
                    return
                yield from batch
        except sqlite3.Error as exc:
            raise db_error(self.path, exc, "cannot read the cache") from None
        except UnicodeEncodeError:  # a value with a byte the locale did not decode: SQLite takes UTF-8 only
            raise MoodtagError(f"{self.path}: cannot read the cache: a value looked up holds a byte that is "
                               f"not UTF-8 text") from None

    def one(self, sql: str, params=()) -> tuple | None:
        """The first row of a query (or None)."""
        return next(self.rows(sql, params, chunk=1), None)

    def holds_under(self, folder: Path, *, present: bool = False) -> bool:
        """Whether any row's path lies under `folder` (one indexed query); `present`: any row not marked
        missing."""
        where, params = under_root(folder)
        if present:
            where += " AND status <> 'missing'"
        return next(self.rows(f"SELECT 1 FROM {TABLE} WHERE {where} LIMIT 1", params, chunk=1), None) is not None

    def known_under(self, roots: list[Path]) -> dict[str, CachedTrack]:
        """Every row whose path lies under one of `roots` (one query per root), by path key."""
        found: dict[str, CachedTrack] = {}
        for root in roots:
            where, params = under_root(root)
            for row in self.rows(f"SELECT {_TRACK_COLUMNS} FROM {TABLE} WHERE {where}", params):
                found[row[0]] = CachedTrack(*row)
        return found

    def lookup(self, keys: list[str]) -> dict[str, CachedTrack]:
        """The rows of these path keys (those the cache has), by key: one query per LOOKUP_BATCH keys."""
        found: dict[str, CachedTrack] = {}
        for i in range(0, len(keys), LOOKUP_BATCH):
            chunk = keys[i:i + LOOKUP_BATCH]
            sql = f"SELECT {_TRACK_COLUMNS} FROM {TABLE} WHERE path IN ({','.join('?' * len(chunk))})"
            for row in self.rows(sql, chunk):
                found[row[0]] = CachedTrack(*row)
        return found

    def rows_like(self, refs: list[TrackRef], *, model_name: str | None,
                  model_version: str | None) -> dict[tuple[int, int, bytes], list[CachedTrack]]:
        """The rows of this model (None: of any) whose size, mtime and file name (its last part, as bytes)
        are those of one of `refs`, by (size, mtime_ns, name), each list in key order: where a scan looks
        for the row of a file it has no row for, moved or renamed (tagger.scan), and `untag` too; a name
        that differs only by case counts too (a rename by case alone: tagger.discover.fold_name). A row of
        an untag a kill cut short counts with its file's mtime (untag_pending undone), so that a file
        moved after it still finds its row, and the untag is finished. One query by the (size, mtime_ns)
        index per LOOKUP_BATCH sizes."""
        from tagger.discover import fold_name

        wanted = {(ref.size, ref.mtime_ns, os.fsencode(ref.path.name)) for ref in refs}
        folded = {(size, mtime_ns, fold_name(name)) for size, mtime_ns, name in wanted}
        stamps = {(size, mtime_ns) for size, mtime_ns, _ in wanted}
        sizes = sorted({size for size, _, _ in wanted})
        found: dict[tuple[int, int, bytes], list[CachedTrack]] = {}
        model = [] if model_name is None else [model_name, model_version]
        for i in range(0, len(sizes), LOOKUP_BATCH):
            chunk = sizes[i:i + LOOKUP_BATCH]
            sql = (f"SELECT {_TRACK_COLUMNS} FROM {TABLE} WHERE size IN ({','.join('?' * len(chunk))}) "
                   f"{'AND model_name = ? AND model_version = ? ' if model else ''}ORDER BY path")
            for row in self.rows(sql, [*chunk, *model]):
                track = CachedTrack(*row)
                mtime_ns = untag_pending(track.mtime_ns) if track.untag_pending else track.mtime_ns
                like = (track.size, mtime_ns, os.fsencode(os.path.basename(track.fs_path)))
                if like in wanted or like[:2] in stamps and (*like[:2], fold_name(like[2])) in folded:
                    found.setdefault(like, []).append(track)
        return found

    def row_of(self, path: Path) -> tuple[Path, CachedTrack] | None:
        """The row of the file at `path`, and the path it is kept under: `path` itself, or else a link's
        own name (discover.own_name: the name a scan gives the file it points to) or the file's real
        path; so a file named through a symlink, by `untag` say, finds its row. None if none has one."""
        from tagger.discover import own_name

        places = [path, own_name(path)] if os.path.islink(path) else [path]
        for place in dict.fromkeys([*places, Path(os.path.realpath(path))]):
            key = path_key(place)[0]
            row = self.lookup([key]).get(key)
            if row is not None:
                return place, row
        return self._row_by_identity(path)

    def _row_by_identity(self, path: Path) -> tuple[Path, CachedTrack] | None:
        """The row of the file at `path` kept under a name that none of row_of's spellings reaches (a
        library scanned through a link to a folder, `sl/Ext -> /data/ext`, and the file named by its
        real path): a row current for the file's size and mtime whose own path is the same file. The
        (size, mtime) of every row are read once, on the first miss, so a folder of misses costs one
        pass over the table."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        for key in self._keys_made_for(st):
            row = self.lookup([key]).get(key)
            try:
                if row is not None and os.path.samestat(os.stat(row.fs_path), st):
                    return Path(os.fsdecode(row.fs_path)), row
            except OSError:
                continue
        return None

    def _keys_made_for(self, st: os.stat_result) -> list[str]:
        """The keys of the rows not marked missing made for a file of this size and mtime. The (size,
        mtime) of every row are read once, on the first call: a folder of misses costs one pass over the table."""
        if self._by_stat is None:
            self._by_stat = {}
            for key, size, mtime_ns in self.rows(f"SELECT path, size, mtime_ns FROM {TABLE} WHERE status != 'missing'"):
                self._by_stat.setdefault((size, mtime_ns), []).append(key)
        return self._by_stat.get((st.st_size, st.st_mtime_ns), [])

    def kept_as(self, path: Path) -> Path | None:
        """The name the cache keeps the file at `path` under: `path` itself where it has a row (whatever
        its status); else another name of that same file (its real path the same) that is not a symlink
        itself, with a row not marked missing made for the file's size and mtime (a library scanned
        through a link to its folder: `~/Music -> /data/music`). Another link to the file is no name of
        the file's own, nor is a hard link (a name of its own). None if neither: a scan names a symlink's
        file by it (discover.walk's `known`), so a "Favorites" folder of links into a library scanned
        before is that library's rows. One lookup, and, on a miss, the identity pass of _keys_made_for."""
        if self.lookup([path_key(path)[0]]):
            return path
        try:
            st = os.stat(path)
        except OSError:
            return None
        real = os.fsencode(os.path.realpath(path))
        for key in self._keys_made_for(st):
            if "\\" in key:  # an escaped key: its path is the row's raw bytes
                row = self.lookup([key]).get(key)
                if row is None:
                    continue
                name = row.fs_path
            else:
                name = key_bytes(key)
            if not os.path.islink(name) and os.fsencode(os.path.realpath(name)) == real:
                return Path(os.fsdecode(name))
        return None

    # A scan notes the keys it walks in a temporary table of this connection (on disk, not in memory),
    # so that it can then ask for the rows under its folders that it did not find, whatever their number.
    def begin_walk(self) -> None:
        """Start noting walked keys (forgetting those of an earlier walk)."""
        def run():
            self.conn.execute(f"DROP TABLE IF EXISTS temp.{_WALKED}")
            self.conn.execute(f"CREATE TEMP TABLE {_WALKED} (path TEXT PRIMARY KEY) WITHOUT ROWID")
        self._write(run)

    def add_walked(self, keys: list[str]) -> None:
        """Note path keys the walk found."""
        def run():
            with self._transaction():
                self.conn.executemany(f"INSERT OR IGNORE INTO temp.{_WALKED} VALUES (?)", ((k,) for k in keys))
        self._write(run)

    def unwalked_under(self, roots: list[Path], walked: set[str] | None = None) -> Iterator[CachedTrack]:
        """Rows under `roots`, not marked missing, whose keys `add_walked` was not given since `begin_walk`
        (or, for a cache read only, a dry run's, that are not in `walked`); each once, however many of
        `roots` hold it (`scan lib lib/A`)."""
        seen: set[str] = set() if walked is None else set(walked)
        unwalked = f"AND path NOT IN (SELECT path FROM temp.{_WALKED})" if walked is None else ""
        for root in roots:
            where, params = under_root(root)
            for row in self.rows(f"SELECT {_TRACK_COLUMNS} FROM {TABLE} WHERE ({where}) AND status <> 'missing' "
                                 f"{unwalked}", params):
                if row[0] not in seen:
                    seen.add(row[0])
                    yield CachedTrack(*row)

    def get(self, path: Path | str) -> dict | None:
        key, _ = path_key(path)
        try:
            cursor = self.conn.execute(f"SELECT * FROM {TABLE} WHERE path = ?", [key])
            columns = [d[0] for d in cursor.description]
            rows = [dict(zip(columns, row)) for row in cursor]
        except sqlite3.Error as exc:
            raise db_error(self.path, exc, "cannot read the cache") from None
        return rows[0] if rows else None

    # -- writes --------------------------------------------------------------------------------
    def record(self, result: TrackResult, ref: TrackRef, *, info: dict | None = None,
               tag_state: str | None = None) -> None:
        """Upsert one result (ok or failed) for the file as `ref` describes it now, with what its tags
        hold (`tag_state`, for an ok result); committed at once. A failure keeps a row's untagged or
        kept (the user's word on the file's tags: once the file is good again, a scan honours it)."""
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
            "error": result.error,
        }
        row.update(self._tag_columns(tag_state if result.ok else None))

        names = list(row)
        updates = {n: f"excluded.{n}" for n in names if n != "path"}
        if not result.ok:  # a bare column name is the row's value before the upsert
            updates["tag_state"] = f"CASE WHEN tag_state IN ('{UNTAGGED}', '{KEPT}') THEN tag_state END"
        sql = (f"INSERT INTO {TABLE} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))}) "
               f"ON CONFLICT(path) DO UPDATE SET {', '.join(f'{n} = {value}' for n, value in updates.items())}")

        def run():  # sqlite-utils' upsert(row, pk="path") is this statement; built here, a fifth of the CPU
            with self._transaction():
                self.conn.execute(sql, list(row.values()))
        self._write(run)

    def found_again(self, rows: list[tuple[str, CachedTrack]]) -> None:
        """Rows whose files a scan found under the key each has now: (old key, the row as it is now),
        one transaction. A row marked missing whose file is back takes its status back; a moved or
        renamed file's row takes its new key and path bytes (and status), keeping everything else."""
        def run():
            with self._transaction():
                self.conn.executemany(f"UPDATE {TABLE} SET path = ?, path_bytes = ?, status = ? WHERE path = ?",
                                      [(row.path, row.path_bytes, row.status, old) for old, row in rows])
        self._write(run)

    def set_tagged(self, path: Path | str, ref: TrackRef, *, kept: bool = False) -> None:
        """After writing tags to a cached row's file: its new size/mtime, tagged; a failed tag write
        before is forgotten (status ok again). `kept`: the write left the file's own mood (not
        moodtag's) as it was; the row says kept, and rescans leave it so."""
        key, _ = path_key(path)
        self._update(key, size=ref.size, mtime_ns=ref.mtime_ns, status="ok", error=None,
                     **self._tag_columns(KEPT if kept else TAGGED))

    def set_tag_failed(self, path: Path | str, cause: str) -> None:
        """The tag write of an analysed row's file failed: status failed, the cause in `error` (the
        mood stays); the next scan tries the write again, without analysing the file again."""
        key, _ = path_key(path)
        self._update(key, status="failed", error=TAG_ERROR_PREFIX + cause, **self._tag_columns(TAG_FAILED))

    def set_untagged(self, path: Path | str, *, before: TrackRef, after: TrackRef, pending: bool = False) -> bool:
        """`moodtag untag` leaves the file without moodtag's fields. The row says untagged (a failed tag
        write is forgotten); if the row was current for the file as it was `before` (or says an untag of
        it is pending), it takes the size and mtime of `after`, so that the analysis stays current (the
        audio did not change).
        untag calls it twice: before its write, `pending` (the row says untagged before the file is
        touched, so a kill or an error between the write and the row cannot leave a row saying tagged,
        whose mood the next scan would write back; and its mtime is untag_pending's, which no file has,
        so that a kill during the write, whose recovery gives the file back its tags and its mtime,
        cannot leave a row saying untagged that matches a file holding moodtag's fields: the next scan
        looks at the file again and finishes the untag), and after it, with the file as written.
        Returns whether the file had a row."""
        key, _ = path_key(path)
        row = self.one(f"SELECT size, mtime_ns, tag_state FROM {TABLE} WHERE path = ?", [key])
        if row is None:
            return False
        changes = self._tag_columns(UNTAGGED)
        if row[2] == TAG_FAILED:
            changes.update(status="ok", error=None)
        if (row[0], row[1]) in ((before.size, before.mtime_ns), (before.size, untag_pending(before.mtime_ns))):
            changes.update(size=after.size, mtime_ns=untag_pending(after.mtime_ns) if pending else after.mtime_ns)
        self._update(key, **changes)
        return True

    def put_back_tag_state(self, path: Path | str, row: CachedTrack) -> None:
        """`moodtag untag` failed to write a file whose row it had set untagged (set_untagged before the
        write, as a scan commits its row before it writes the tags): the row's tag_state, status, error,
        size and mtime are again those of `row`, the row as it was."""
        key, _ = path_key(path)
        self._update(key, status=row.status, error=row.error, size=row.size, mtime_ns=row.mtime_ns,
                     **self._tag_columns(row.tag_state))

    def set_retagged(self, path: Path | str, *, before: TrackRef, after: TrackRef) -> bool:
        """Another program rewrote the tags of a row's file and nothing else (beets' `beet write`): if the
        row is current for the file as it was `before`, it takes the size and mtime of `after`, keeping
        its result and tag_state, so that the next scan does not analyse the file again. A row no longer
        current for `before` (a scan recorded the file meanwhile) stays as it is. Returns whether it changed."""
        key, _ = path_key(path)
        changed = []

        def run():
            changed.append(self.conn.execute(
                f"UPDATE {TABLE} SET size = ?, mtime_ns = ? WHERE path = ? AND size = ? AND mtime_ns = ?",
                [after.size, after.mtime_ns, key, before.size, before.mtime_ns]).rowcount > 0)
        self._write(run)
        if changed[0] and self._by_stat is not None:  # row_of's identity lookup finds the row at its new stat
            keys = self._by_stat.get((before.size, before.mtime_ns), [])
            if key in keys:
                keys.remove(key)
            self._by_stat.setdefault((after.size, after.mtime_ns), []).append(key)
        return changed[0]

    def mark_missing(self, keys: list[str]) -> int:
        """Mark these rows' files as vanished (kept until `prune`). Returns how many rows that is (a key
        given twice is one row)."""
        keys = list(dict.fromkeys(keys))
        if not keys:
            return 0
        marked = []

        def run():
            marked.clear()  # a try that waited for another program's transaction counted nothing
            with self._transaction():
                for i in range(0, len(keys), 500):
                    chunk = keys[i:i + 500]
                    marked.append(self.conn.execute(f"UPDATE {TABLE} SET status = 'missing' WHERE path IN "
                                                    f"({','.join('?' * len(chunk))})", chunk).rowcount)
        self._write(run)
        return sum(marked)

    def prune(self, roots: list[Path] | None = None) -> int:
        """Forget the rows `prunable` names. Returns how many."""
        return self.forget(self.prunable(roots).forget)

    def prunable(self, roots: list[Path] | None = None, *, should_stop=lambda: False,
                 gone_disks: list[Path] = ()) -> "PrunePlan":
        """What `prune` forgets: the rows marked missing (under `roots` if given), and under a root that
        no longer exists every row (a scan leaves the rows under a PATH that is not there as they are: an
        unmounted share; so a library moved or deleted is cleaned up by naming it here); of those, only
        the rows whose files are gone now (tagger.discover.vanished, the test a scan marks them missing
        by: a file back since, a disk mounted again, keeps its row, its result and the user's untag), and
        not those whose nearest folder still there is empty (the mount point of a disk not mounted now;
        for a row behind a symlink whose target is not there, a folder linked to a disk not mounted now:
        the nearest folder along the link's target), nor those on a disk not mounted now whatever its mount
        point's folder holds or whether it is there (Mounts.away: udisks removes it), except rows marked
        missing where a PATH names that folder or mount point itself or the broken link
        (_names_empty_folder), and every row under one of `gone_disks` (`prune --forget-disk MOUNT`: a
        disk gone for good, each also one of `roots`) whose file is gone. So the nightly `scan PATH; prune PATH` of
        a library on a disk not mounted forgets nothing: `prune /media/usb/Music` while /media/usb is
        empty keeps the rows a scan left as they are (its PATH was not there), and so does naming
        /media/usb, until that folder is removed. Streamed: one query per root (and, with `roots`, one
        over the rows marked missing), the emptiness of each folder looked at once. `should_stop` is
        polled per row (Stopped)."""
        from tagger.discover import one_look_per_folder, vanished

        with one_look_per_folder():
            return self._prunable(roots, should_stop=should_stop, gone_disks=gone_disks, vanished=vanished)

    def _prunable(self, roots, *, should_stop, gone_disks, vanished) -> "PrunePlan":
        plan = PrunePlan()
        named = _named_folders(roots or [])
        mounts = self.mounts()
        gone = _remembered_among(gone_disks, mounts.seen)
        seen, nearest = set(mounts.seen), {}  # (the mount point nearest above each folder's real path)
        empty: dict[bytes, bytes | None] = {}
        there: dict[str, bytes] = {}  # rows marked missing whose paths are there: back, or a link's second row
        looked: set[str] = set()
        for key, raw, status in self._prune_candidates(roots, gone_disks):
            if should_stop():
                raise Stopped
            looked.add(key)
            path = key_bytes(key, raw)
            if not vanished(path):
                if status == "missing":
                    there[key] = path
                continue
            if gone and _nearest_seen(path, seen, nearest) in gone:  # --forget-disk: on that disk, gone
                # for good (also behind a link into it); not on another disk a scan saw mounted inside it
                plan.forget.append(key)
                plan.marked += status == "missing"
                continue
            point = mounts.away(path)
            folder = point if point is not None else _empty_folder_above(path, empty)
            if folder is not None and not (status == "missing" and any(_names_empty_folder(root, folder)
                                                                        for root in named)):
                kept, marked = (plan.away, plan.away_marked) if point is not None else (plan.empty, plan.empty_marked)
                kept[folder] = kept.get(folder, 0) + 1
                marked[folder] = marked.get(folder, 0) + (status == "missing")
                if point is not None:
                    plan.note_linked(point, path)
                continue
            plan.forget.append(key)
            plan.marked += status == "missing"
        self._away_kept(plan, roots, gone_disks, mounts, looked, vanished=vanished, should_stop=should_stop)
        seconds = self._second_rows(there)
        plan.forget += [key for key in there if key in seconds]
        plan.marked += len(seconds)
        plan.back = len(there) - len(seconds)
        return plan

    def _away_kept(self, plan: "PrunePlan", roots, gone_disks, mounts: "Mounts", looked: set[str], *, vanished,
                   should_stop) -> None:
        """Count in `plan.away` the rows not marked missing whose files are gone and lie on a disk not mounted
        now (Mounts.away), which a scan left as they are: those whose paths lie under its mount point, under
        the PATHs (`prune`, `prune ~/Music` with the disk mounted at ~/Music/USB), or anywhere without one; and
        under a PATH that is an empty folder (`prune MOUNT`, or a link into the disk, `prune ~/Music/USB`), as a
        scan takes such a PATH for one not there, those on a disk at, above or under it (Mounts.away_around).
        Kept, so that prune's line names the disk and `--forget-disk`. Never forgotten; the rows _prunable
        `looked` at are its. Only rows under a disk away are read (a folder above a link into one is not
        searched for links: on a share, a look at each row's file costs a round trip)."""
        away = mounts.away_points()
        if not away:
            return
        others = [r for r in roots or [] if r not in gone_disks]
        places: list[Path] = []
        for root in filter_roots(others) if roots else [None]:
            name = None if root is None else os.fsencode(root)
            for point in away:
                place = point if name is None or _at_or_inside(point, name) else name \
                    if _at_or_inside(name, point) else None
                if place is not None and Path(os.fsdecode(place)) not in places:
                    places.append(Path(os.fsdecode(place)))
        for root in filter_roots([r for r in others if _empty_folder(r)]):
            real = os.fsencode(os.path.realpath(root))
            for point in mounts.away_around(root):
                place = root if _at_or_inside(real, point) else Path(os.fsdecode(point))
                if place not in places:
                    places.append(place)
        for place in places:
            where, params = under_root(place)
            for key, raw in self.rows(f"SELECT path, path_bytes FROM {TABLE} WHERE ({where}) AND status <> 'missing'",
                                      params):
                if should_stop():
                    raise Stopped
                if key in looked:
                    continue
                looked.add(key)
                path = key_bytes(key, raw)
                point = mounts.away(path)
                if point is not None and vanished(path):
                    plan.away[point] = plan.away.get(point, 0) + 1
                    plan.note_linked(point, path)

    def _second_rows(self, there: dict[str, bytes]) -> set[str]:
        """The keys of these rows (marked missing, their paths there) that name, through a symlink, a file
        with a row of its own under its real path: the second rows a scan marks missing (the file's own
        row holds its result; tagger.scan._walked_by_its_own_name), which prune forgets. One query per
        LOOKUP_BATCH links."""
        real = {key: path_key(os.path.realpath(path))[0] for key, path in there.items()}
        real = {key: own for key, own in real.items() if own != key}
        owned = self.lookup(sorted(set(real.values())))
        return {key for key, own in real.items() if own in owned}

    def _prune_candidates(self, roots: list[Path] | None,
                          gone_disks: list[Path] = ()) -> Iterator[tuple[str, bytes | None, str]]:
        """(key, path bytes, status) of the rows `prunable` looks at, each once: marked missing (under
        `roots` if given, or behind a broken symlink that points into one of them: the rows under
        `Music/Live -> /mnt/ext/Live`, kept while /mnt/ext is empty, are forgotten by `prune /mnt/ext` as
        prune's line says), and every row under a root that does not exist."""
        columns = f"SELECT path, path_bytes, status FROM {TABLE} WHERE"
        if not roots:
            yield from self.rows(f"{columns} status = 'missing'")
            return
        seen: set[str] = set()
        queries = [(root, " AND status = 'missing'") for root in filter_roots(roots)]
        queries += [(root, "") for root in filter_roots([r for r in roots if not os.path.exists(r)
                                                          or r in gone_disks])]
        for root, only_missing in queries:
            where, params = under_root(root)
            for row in self.rows(f"{columns} ({where}){only_missing}", params):
                if row[0] not in seen:
                    seen.add(row[0])
                    yield row
        others = [root for root in roots if root not in gone_disks]
        if gone_disks and others:  # --forget-disk DISK ~/Music: the rows under a PATH linked into the disk (~/Music
            # -> DISK/Music); only those: a folder of the cache's on a share that does not answer is not touched
            disks = [os.fsencode(place) for place in filter_roots(gone_disks)]
            real: dict[bytes, bytes] = {}
            for row in (row for root in filter_roots(others) for row in self.rows(
                    f"{columns} ({under_root(root)[0]})", under_root(root)[1])):
                if row[0] in seen:
                    continue
                folder = os.path.dirname(key_bytes(row[0], row[1]))
                if folder not in real:
                    real[folder] = os.fsencode(os.path.realpath(folder))
                if any(_at_or_inside(real[folder], disk) for disk in disks):
                    seen.add(row[0])
                    yield row
        named = [os.fsencode(root) for root in filter_roots(roots)]
        targets: dict[bytes, bytes | None] = {}
        for row in self.rows(f"{columns} status = 'missing'"):
            target = None if row[0] in seen else _broken_link_target(key_bytes(row[0], row[1]), targets)
            if target is not None and any(_at_or_inside(target, root) for root in named):
                seen.add(row[0])
                yield row

    def note_mounts(self, roots: list[Path], points: list[bytes]) -> None:
        """Remember the mount points (`points`, tagger.progress.mount_points) a scan of `roots` sees: each
        root's own and every one at or under a root, not / (m007_mount_points). Only those not remembered
        yet are written: a rescan writes nothing. None without a mount table (not Linux), nor in a cache
        without the table (read as a copy: a dry run's)."""
        from tagger.progress import mount_point

        if not points or MOUNTS not in _table_names(self.conn):
            return
        known = set(self._seen_mounts())
        new: list[bytes] = []
        for real in dict.fromkeys(os.fsencode(os.path.realpath(root)) for root in roots):
            for point in [os.fsencode(mount_point(real, points)), *(p for p in points if _at_or_inside(p, real))]:
                if point != b"/" and point not in known:
                    known.add(point)
                    new.append(point)
        if new:
            def run():
                with self._transaction():
                    self.conn.executemany(f"INSERT OR IGNORE INTO {MOUNTS} (path, path_bytes) VALUES (?, ?)",
                                          [path_key(point) for point in new])
            self._write(run)

    def retire_mounts(self, points: list[bytes]) -> None:
        """Forget the remembered mount points `points` (`prune --forget-disk`: plain folders now, holding the
        files cached under them, Mounts.retired); a scan that sees one mounted again remembers it again
        (note_mounts)."""
        if not points or MOUNTS not in _table_names(self.conn):
            return

        def run():
            with self._transaction():
                self.conn.executemany(f"DELETE FROM {MOUNTS} WHERE path = ?", [(path_key(p)[0],) for p in points])
        self._write(run)

    def mounts(self, points: list[bytes] | None = None) -> "Mounts":
        """The mount points scans saw (note_mounts) against those of `points` (mounted now; None: read
        them): Mounts.away. A cache without the table (made before it) has seen none."""
        from tagger.progress import mount_points

        seen = self._seen_mounts() if MOUNTS in _table_names(self.conn) else []
        return Mounts(seen, mount_points() if points is None else points, sample=self._sampled_under)

    def _sampled_under(self, point: bytes, inner: list[bytes] = (), through: dict[bytes, bytes] | None = None
                       ) -> list[tuple[bytes, int, int]]:
        """The paths, sizes and mtimes of up to MOUNT_SAMPLE rows not marked missing whose keys lie under
        `point`, or under one of the places outside it that reach it through a link (`through`: place -> its
        real path, at or inside `point`), but not on another disk (`inner`: the mount points inside `point`,
        as the places spell them too), spread evenly over them in key order (Mounts.retired): two queries
        over the key ranges, however many rows."""
        places, others = [point], list(inner)
        for place, real in (through or {}).items():
            places.append(place)
            others += [_respelt(point_in, real, place) for point_in in inner if _at_or_inside(point_in, real)]
        held_where, params = _any_under(places)
        if others:
            other_where, other_params = _any_under(others)
            held_where, params = f"({held_where}) AND NOT ({other_where})", [*params, *other_params]
        where = f"({held_where}) AND status <> 'missing'"
        held = next(self.rows(f"SELECT count(*) FROM {TABLE} WHERE {where}", params))[0]
        if not held:
            return []
        step = -(-held // MOUNT_SAMPLE)
        rows = self.rows(f"SELECT path, path_bytes, size, mtime_ns FROM (SELECT path, path_bytes, size, mtime_ns, "
                         f"row_number() OVER (ORDER BY path) - 1 AS i FROM {TABLE} WHERE {where}) WHERE i % ? = 0",
                         [*params, step])
        return [(key_bytes(key, raw), size, mtime_ns) for key, raw, size, mtime_ns in rows]

    def _seen_mounts(self) -> list[bytes]:
        return [key_bytes(key, raw) for key, raw in self.rows(f"SELECT path, path_bytes FROM {MOUNTS}")]

    def forget(self, keys: list[str]) -> int:
        """Delete the rows of these keys. Returns how many keys were given."""
        def run():
            with self._transaction():
                for i in range(0, len(keys), 500):
                    chunk = keys[i:i + 500]
                    self.conn.execute(f"DELETE FROM {TABLE} WHERE path IN ({','.join('?' * len(chunk))})", chunk)
        self._write(run)
        return len(keys)

    @staticmethod
    def _tag_columns(tag_state: str | None) -> dict:
        """tag_state, and the `tagged` flag kept in step with it (for SQL written against it)."""
        return {"tag_state": tag_state, "tagged": int(tag_state == TAGGED)}

    def _update(self, key: str, **columns) -> None:
        names = list(columns)
        self._write(lambda: self.conn.execute(
            f"UPDATE {TABLE} SET {', '.join(f'{name} = ?' for name in names)} WHERE path = ?",
            [*columns.values(), key]))

    @contextmanager
    def _transaction(self):
        """BEGIN ... COMMIT (ROLLBACK on an error) on the autocommit connection, or a savepoint inside a
        transaction already begun: what sqlite-utils' Database.atomic does, without importing it."""
        nested = self.conn.in_transaction
        self.conn.execute("SAVEPOINT moodtag_write" if nested else "BEGIN")
        try:
            yield
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK TO SAVEPOINT moodtag_write" if nested else "ROLLBACK")
                if nested:
                    self.conn.execute("RELEASE SAVEPOINT moodtag_write")
            raise
        self.conn.execute("RELEASE SAVEPOINT moodtag_write" if nested else "COMMIT")

    def _write(self, fn) -> None:
        """Run `fn` (one statement, or one transaction that an error rolls back whole, so that it may run
        again); an SQLite error is one MoodtagError line naming the cache. After wait_for_writers, a write
        that another program's write transaction holds up is tried again until that ends, or until the
        command's should_stop says so (Stopped: nothing of `fn` written)."""
        told = False
        while True:
            try:
                fn()
                return
            except sqlite3.Error as exc:
                if self._on_busy is None or not _busy(exc) or self.conn.in_transaction:
                    raise db_error(self.path, exc, "cannot write to the cache") from None
            if self._should_stop():
                raise Stopped
            if not told:
                told = True
                self._on_busy()


class Mounts:
    """The mount points scans saw (Cache.note_mounts), and those mounted now (tagger.progress.mount_points).
    Without a mount table (not Linux) no disk is away. One not mounted now is a disk away, even where its
    folder holds the files cached under it (`retired`: a partition retired, or an older copy of the disk's
    files under it, which nothing here tells apart): a scan says so, and `prune --forget-disk` forgets it as a
    mount point. `sample` gives the paths, sizes and mtimes of some of those rows (Cache._sampled_under)."""

    def __init__(self, seen: list[bytes], now: list[bytes], sample=lambda point, inner, through: []) -> None:
        self.seen = [point for point in seen if point != b"/"] if now else []
        self._seen = set(self.seen)
        self.now, self._now = now, set(now)
        self._folders: dict[bytes, bytes | None] = {}
        self._sample = sample
        self._holds: dict[bytes, bool] = {}  # mount point not mounted now -> holds_its_files
        self._reals: dict[bytes, bytes] = {}  # folder -> its real path (_reaching)
        self._asked: dict[bytes, bytes | None] = {}  # mount point found away -> the first name it was reached by
        self.through: dict[bytes, dict[bytes, None]] = {}  # mount point -> the places outside it sampled (links)

    @property
    def retired(self) -> list[bytes]:
        """The mount points scans saw that are not mounted now and whose folders hold the files cached under
        them (holds_its_files), among those found away: the partition retired, its files copied into the
        folder; a bind mount of a service's own namespace (systemd's ReadWritePaths), a plain folder here; or an
        older copy of the disk's files under it. Still disks away: this only words a scan's line."""
        return [point for point, name in self._asked.items() if self.holds_its_files(point, name)]

    def away_points(self) -> list[bytes]:
        """The mount points a scan saw that are not mounted now: the disks away (none: no row lies on one)."""
        return [point for point in self.seen if point not in self._now]

    def away(self, path: str | bytes) -> bytes | None:
        """The mount point of a disk not mounted now that a row's file (`path`, gone) lies on: the nearest
        that a scan saw above its real path (through the symlinks on its way, broken ones too: ~/Music ->
        /media/USER/USB/Music), when nothing is mounted there now, nor further in; else None. Whether that
        folder is there (udisks removes it), empty, or holds what was written there meanwhile, or the files
        cached under it (retired: until `prune --forget-disk` forgets it as a mount point)."""
        if not self.seen:
            return None
        path = os.fsencode(path)
        if os.path.islink(path):  # a link to a file on the disk
            return self._away(os.fsencode(os.path.realpath(path)))
        folder = os.path.dirname(path)
        if folder not in self._folders:
            self._folders[folder] = self._away(os.fsencode(os.path.realpath(folder)), folder)
        return self._folders[folder]

    def away_around(self, root) -> list[bytes]:
        """The mount points of disks not mounted now (as `away` tells) that hold `root`'s real path (the
        nearest above it, or it), or that lie under it: the disks whose files a PATH covers."""
        if not self.seen:
            return []
        name = os.fsencode(os.path.abspath(root))
        real = os.fsencode(os.path.realpath(root))
        above = self._away(real, name)
        return [point for point in self.seen
                if point == above or _at_or_inside(point, real)
                and self._away(point, _respelt(point, real, name)) == point]

    def _away(self, real: bytes, name: bytes | None = None) -> bytes | None:
        """The nearest mount point seen above `real` when it is not mounted now, nor any further in; else
        None. `name`: `real` as the rows spell it (through a link into the disk, its rows lie outside the mount
        point: holds_its_files samples them too, asked only for `retired`)."""
        from tagger.progress import mount_point

        point = _nearest(real, self._seen)
        if point is None or point in self._now or len(os.fsencode(mount_point(real, self.now))) > len(point):
            return None
        self._asked.setdefault(point, name)
        return point

    def holds_its_files(self, point: bytes, name: bytes | None = None, leaving: set[str] = frozenset()) -> bool:
        """Whether the folder of `point` (not mounted now) holds the files cached under it: nine in ten or
        more of a sample of its rows not marked missing (a few dozen, spread over them; those of another disk
        a scan saw mounted inside it, or mounted there now, left out; with those under the place outside it
        that `name` reaches it through, a link into it) are its files there, each with the size and mtime
        its row holds (as `cp -a` and `rsync -a` keep them). A disk away leaves none of them there: its folder
        removed, empty, or holding what was written into it meanwhile (an older copy of some of its files: fewer
        than nine in ten). A file that cannot be looked at is not there. Asked once per point. `leaving`: the keys
        of rows about to be forgotten (`prune --forget-disk`: its files gone), left out of the sample."""
        if point not in self._holds:
            inner = [other for other in dict.fromkeys([*self.seen, *self.now])
                     if other != point and _at_or_inside(other, point)]
            through = {}
            if name is not None and not _at_or_inside(name, point):
                place = self._reaching(name, point, inner)
                through[place] = self._real(place)
                self.through.setdefault(point, {})[place] = None
            sample = [row for row in self._sample(point, inner, through) if path_key(row[0])[0] not in leaving]
            there = sum(_is_cached_file(path, size, mtime_ns) for path, size, mtime_ns in sample)
            self._holds[point] = bool(sample) and 10 * there >= 9 * len(sample)
        return self._holds[point]

    def _reaching(self, name: bytes, point: bytes, inner: list[bytes]) -> bytes:
        """The outermost folder at or above `name` (a folder whose real path lies on the disk of `point`,
        through a link) whose real path lies there still, on no disk mounted inside it (`inner`): the link
        into the disk (`~/Music -> /mnt/music/Music`), or the folder holding it."""
        place = name
        while True:
            parent = os.path.dirname(place)
            if parent == place:
                return place
            real = self._real(parent)
            if not _at_or_inside(real, point) or any(_at_or_inside(real, other) for other in inner):
                return place
            place = parent

    def _real(self, folder: bytes) -> bytes:
        if folder not in self._reals:
            self._reals[folder] = os.fsencode(os.path.realpath(folder))
        return self._reals[folder]


def _respelt(path: bytes, real: bytes, name: bytes) -> bytes:
    """`path` (at or inside `real`) as spelt through `name`, a folder whose real path is `real`."""
    rest = path[len(real):].lstrip(b"/")
    return os.path.join(name, rest) if rest else name


def _is_cached_file(path: bytes, size: int, mtime_ns: int) -> bool:
    """Whether `path` is a file with the size and mtime a row holds (the file it was made from, or a copy that
    kept its mtime); a file that cannot be looked at is not."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return False
    return stat.S_ISREG(info.st_mode) and info.st_size == size and info.st_mtime_ns == mtime_ns


@dataclass
class PrunePlan:
    """What `prune` does: the keys it forgets, `marked` of them marked missing by a scan (the others lie
    under a PATH that is not there, which a scan leaves as they are); how many rows marked missing it
    keeps because their files are there again (`back`: the next scan takes them back); and the rows it
    keeps because the nearest folder above their paths that is still there is empty (`empty`: folder ->
    rows, `empty_marked`: folder -> those of them marked missing), as the mount point of a disk not
    mounted now is (`prune FOLDER` forgets those marked missing; the others, once FOLDER is removed); and
    those on a disk a scan saw mounted that is not mounted now (`away`: mount point -> rows, `away_marked`:
    those of them marked missing, which `prune MOUNT_POINT` forgets; Mounts.away), with the places outside
    the disk that those of them kept under a symlink into it are reached through (`linked`: mount point ->
    places, reached_through), which `--forget-disk MOUNT` names beside it to forget them."""

    forget: list[str] = field(default_factory=list)
    marked: int = 0
    back: int = 0
    empty: dict[bytes, int] = field(default_factory=dict)
    empty_marked: dict[bytes, int] = field(default_factory=dict)
    away: dict[bytes, int] = field(default_factory=dict)
    away_marked: dict[bytes, int] = field(default_factory=dict)
    linked: dict[bytes, dict[bytes, None]] = field(default_factory=dict)
    _reals: dict[bytes, bytes] = field(default_factory=dict, repr=False)

    def note_linked(self, point: bytes, path: bytes) -> None:
        """A row kept for the disk not mounted at `point`: where its path lies outside the disk, the place it
        reaches the disk through, in `linked`."""
        if not _at_or_inside(path, point):
            self.linked.setdefault(point, {})[reached_through(path, point, self._reals)] = None


def reached_through(name: bytes, point: bytes, reals: dict[bytes, bytes]) -> bytes:
    """The outermost folder on the way to `name` (a row's path outside the disk once mounted at `point`,
    reaching it through a symlink) whose real path lies on the disk: the link into it (`~/Music/USB ->
    /media/USER/USB`), or a folder under it; `name` itself where it is a link to a file on the disk. A
    `prune --forget-disk MOUNT` that names it beside MOUNT forgets the rows under it. `reals` remembers
    each folder's real path."""
    found, folder = name, os.path.dirname(name)
    while True:
        if folder not in reals:
            reals[folder] = os.path.realpath(folder)
        if not _at_or_inside(reals[folder], point):
            return found
        parent = os.path.dirname(folder)
        if parent == folder:
            return found
        found, folder = folder, parent


def _remembered_among(disks, seen: list[bytes]) -> set[bytes]:
    """The mount points a scan saw (Mounts.seen) that `disks` (--forget-disk) name, as written or through a
    link (filter_roots); a folder that none is, above them or a typo, names none."""
    return {place for place in (os.fsencode(p) for p in filter_roots(disks)) if place in seen}


def _nearest_seen(path: bytes, seen: set[bytes], known: dict[bytes, bytes | None]) -> bytes | None:
    """The nearest mount point a scan saw (Mounts.seen) at or above `path`'s real path, as Mounts.away looks
    (through the symlinks on its way, broken ones too; a link to a file: its target's), else None: the disk
    a row's file lay on. `known` remembers the answer for each folder."""
    if os.path.islink(path):
        return _nearest(os.fsencode(os.path.realpath(path)), seen)
    folder = os.path.dirname(path)
    if folder not in known:
        known[folder] = _nearest(os.fsencode(os.path.realpath(folder)), seen)
    return known[folder]


def _nearest(real: bytes, seen: set[bytes]) -> bytes | None:
    """The nearest of the mount points `seen` at or above `real` (a real path), else None."""
    return next((folder for folder in _folders_up(real) if folder in seen), None)


def _named_folders(roots) -> list[tuple[bytes, bytes, bool]]:
    """Each PATH given to prune as (its absolute path, its real path, whether it is a symlink whose
    target is not there), as bytes."""
    named = []
    for root in roots:
        path = os.fsencode(os.path.abspath(root))
        named.append((path, os.fsencode(os.path.realpath(root)), os.path.islink(path) and not os.path.exists(path)))
    return named


def _names_empty_folder(root: tuple[bytes, bytes, bool], folder: bytes) -> bool:
    """Whether a PATH given to prune (_named_folders) forgets the rows marked missing that are kept for
    the empty `folder`: it names that folder itself (or a link to it), not a place inside it (the
    library's folder on a disk not mounted, /media/usb/Music while /media/usb is empty, is not there
    either way); or it is a broken symlink whose target lies in it (`Music/Live -> /mnt/ext/Music/Live`,
    /mnt/ext empty: the link named)."""
    path, real, broken_link = root
    return folder in (path, real) or broken_link and _at_or_inside(real, folder)


def _empty_folder(path) -> bool:
    """Whether `path` is a folder that holds nothing (False where it cannot be listed)."""
    try:
        with os.scandir(path) as entries:
            return next(entries, None) is None
    except OSError:
        return False


def _empty_folder_above(path: bytes, seen: dict[bytes, bytes | None]) -> bytes | None:
    """The nearest folder above `path` that is still there, when it holds nothing (an unmounted disk's
    mount point, or a folder emptied), else None; `seen` remembers the answer for each parent folder.
    Where `path`, or a folder above it, is a symlink whose target is not there (a library's folder linked
    to a disk not mounted now), the folders above the link's target are the ones looked at."""
    start = path if os.path.islink(path) and not os.path.exists(path) else os.path.dirname(path)
    if start not in seen:
        folder = start
        followed: set[bytes] = set()
        while folder and not os.path.isdir(folder):
            if os.path.islink(folder) and folder not in followed:  # a broken link: where it points
                followed.add(folder)
                folder = os.path.realpath(folder)
                continue
            parent = os.path.dirname(folder)
            if parent == folder:
                break
            folder = parent
        try:
            with os.scandir(folder or b".") as entries:
                seen[start] = folder if folder and next(entries, None) is None else None
        except OSError:  # cannot be listed: nothing says it is a mount point; its file is gone
            seen[start] = None
    return seen[start]


def _broken_link_target(path: bytes, targets: dict[bytes, bytes | None]) -> bytes | None:
    """Where `path` lies through the symlinks on its way when it, or a folder above it, is a symlink whose
    target is not there (tagger.discover.behind_broken_link); else None. `targets` remembers the answer
    for each parent folder."""
    from tagger.discover import behind_broken_link

    folder = os.path.dirname(path)
    if folder not in targets:
        targets[folder] = os.path.realpath(folder) if behind_broken_link(folder) else None
    if targets[folder] is not None:
        return os.path.join(targets[folder], os.path.basename(path))
    return os.path.realpath(path) if os.path.islink(path) and not os.path.exists(path) else None


def _folders_up(path: bytes) -> Iterator[bytes]:
    """`path` (absolute, normalised) and each folder above it, up to /."""
    while True:
        yield path
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent


def _at_or_inside(path: bytes, folder: bytes) -> bool:
    """Whether `path` (absolute) is `folder` or lies inside it."""
    return path == folder or path.startswith(folder.rstrip(b"/") + b"/")


def scan_lock(db_path: Path, *, on_wait=lambda: None, should_stop=lambda: False, create: bool = True):
    """Hold `<db>.lock` (db_path resolved) while a scan or untag writes: a second one on the same
    database waits for the first (two writers tagging one file at once could damage it). Released if
    the process dies. `should_stop` is polled while waiting (an interrupt ends the wait: Stopped). A file that
    Cache.open(db_path, create=create) refuses gets no lock file beside it (see _refuse_before_locking)."""
    from filelock import FileLock, Timeout

    _refuse_before_locking(db_path, create=create)
    try:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(db_path) + ".lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            on_wait()
            while True:
                if should_stop():
                    raise Stopped
                try:
                    lock.acquire(timeout=0.2)
                    break
                except Timeout:
                    continue
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):  # a read-only folder: named, as Cache.open names it
            why = _unwritable(Path(db_path), "cannot lock the cache database")
            if why is None and (exc.errno == errno.EROFS or _refuses_writes(Path(db_path).parent)):
                why = _refused_line(Path(db_path), "cannot lock the cache database", exc)
            if why is not None:
                raise MoodtagError(why) from None
        raise MoodtagError(f"{db_path}: cannot lock the cache database ({exc.strerror or exc})") from None
    return lock


def _refuse_before_locking(db_path: Path, *, create: bool) -> None:
    """Raise Cache.open's refusal of the file at db_path (another program's SQLite file, a cache of a
    newer moodtag, an empty file where `create` is False) before the first lock file is made beside it:
    a refused file is left with nothing written beside it, `.lock` included. Nothing to check where the
    lock file is there already (a cache a scan has used), where no file is yet, or where the file or its
    folder may not be written (the lock's own error names that): Cache.open checks those under the lock.
    A file it accepts is opened as the command opens it next (an older cache upgraded, an empty file
    made a cache), outside the lock as a read command may do it."""
    if os.path.lexists(f"{db_path}.lock") or not db_path.is_file() or _unwritable(db_path, "") is not None:
        return
    Cache.open(db_path, create=create).close()
