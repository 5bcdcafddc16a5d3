"""Change a file so that a kill or a power cut at any moment leaves it either as it was or fully changed.

`rewrite(path, source, save, journal=...)` takes the file open for reading and `save(fileobj)`, a
function that makes the change through a file object (for tags.py: mutagen's save). It never lets
`save` loose on the file itself while the change could be cut in half and not undone:

1. Plan. `save` runs on an overlay (`_Overlay`): a file object that reads through to the original and
   keeps what is written as pieces: original byte ranges, bytes in memory, zeros. Bytes that mutagen
   reads and writes back elsewhere (`mutagen._util.move_bytes`, which makes room for a larger tag,
   writes the very object it read) stay references into the original, so planning a 100 MB shift
   holds no more than the tag in memory; past OVERLAY_LIMIT bytes in memory the plan is dropped
   (an Ogg file whose pages are all renumbered) and `save` runs again on a copy. The plan says the
   new size and which 4 KiB blocks of the old file change.

2. In place, with an undo journal, when few blocks change (at most IN_PLACE_LIMIT bytes, or a
   quarter of the file): the tag fits its padding, or it grows at the end of the file (an M4A with
   its moov atom last, a WAV or AIFF with its ID3 chunk last). First a journal entry (the file's
   identity, old size and mtime, the old bytes of every block that will change, a hash of the new
   ones) is written and synced; then the blocks are written and the file is fsynced; then the entry
   is voided. If the file's size or mtime changed by the time the entry is synced (another program
   wrote it), the entry is voided at once and nothing is written or restored: the journaled bytes
   may predate that program's write, and putting them back would undo it. A file cut in half always
   has a complete entry, and `UndoJournal.recover()` writes its old bytes back (or keeps the new
   ones when the write turns out to have finished). The entry also hashes a sample of the bytes the
   write leaves alone: a file that comes back under another inode number (a FAT or exFAT disk mounted
   again) is still undone when they match, and left alone as another file when they do not; where the
   write leaves no bytes alone (a small file whose first tag shifts all of it), a hash of each new
   sector does it: a file whose every sector is old or new is the one torn. The entry
   goes into one file per journal, locked, reused write after write, so the common write costs one small
   write, two syncs and no file created or deleted.

3. A copy renamed over the original when the change moves most of the file (a tag at the front that
   outgrows its padding shifts all the audio): the copy, `.<name>.moodtag-<random>.tmp` in the same
   folder (hidden, so no scan picks it up), is recorded in the journal first, gets the original's
   owner, group, mode and extended attributes (POSIX ACLs and SELinux labels are extended
   attributes), its data (with `os.copy_file_range`: a reflink where the file system has them), is
   fsynced, and replaces the original with `os.replace` only if the original is still the file that
   was planned (same inode, size and mtime). A kill leaves the old file and a stale copy, which
   recovery deletes. The real path is renamed (symlinks resolved), so a link stays a link.
   Free space for the copy is checked first: a full disk is an error before anything is written.

   Where a rename would lose something, the write goes in place with the journal instead, however
   large (the journal then holds every old byte from the first changed block on,
   in the journal's folder): the file has other hard links (a rename would leave them on the old
   inode), we are neither root nor its owner (the copy would belong to us: chown back is impossible),
   or the folder is not writable; and where Python cannot copy extended attributes (macOS). The same
   happens when the copy cannot take the owner, mode or an extended attribute (a file system that
   refuses chown), and when the copy's path would be too long (a file whose path is near PATH_MAX).

Timestamps: the file gets a new mtime, as any tag write gives it (callers that keep the old one set
it afterwards through the path, which works for both ways). The copy is a new inode: its ctime and
birth time are new. Recovery gives a rolled-back file its old mtime too.

Between a kill and the next `recover()` (moodtag's scan and untag run it first), a file cut in half
in place is torn on disk (in its tag's blocks; with a large in-place write, in its audio too) and
other programs see it so; the journal holds what puts it back. A copy never shows a torn file.

What this relies on: that fsync puts data on stable storage. A network share, a FUSE file system or
a USB enclosure that acknowledges fsync before the data is written can still lose both the journal
and the write on a power cut; a kill (the OOM killer, SIGKILL, a closed terminal) is safe everywhere,
since the kernel keeps what was written.
"""
from __future__ import annotations

import bisect
import errno
import fcntl
import hashlib
import json
import os
import secrets
import stat
import struct
import threading
import time
import weakref
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tagger.errors import TagError, os_text

OVERLAY_LIMIT = 16 << 20    # bytes a plan may hold in memory; past it, `save` runs on a copy instead
IN_PLACE_LIMIT = 1 << 20    # old bytes always journaled and written in place rather than copying the file
IN_PLACE_SHARE = 4          # ...and up to 1/4 of the file: journal + write cost less than a full copy
BLOCK = 4096                # changes are journaled and written in whole aligned blocks
SPACE_MARGIN = 1 << 20      # free space kept beyond what a copy or a journal entry needs
READ_AHEAD = 64 << 10       # the overlay reads the original this much at a time
SHORT_RUN = 256 << 10       # a copy takes a run of the original shorter than this through memory
KEPT_SAMPLE = 64 << 10      # bytes an in-place write leaves alone, hashed in its entry at each of two places
SECTOR = 512               # an in-place write's entry keeps a hash of each new 512-byte sector it writes (aligned
SECTOR_DIGEST = 4           # in the file: what a disk writes whole), of this many bytes (CRC-32),
NEW_SECTORS_MAX = 32768     # for write sets of up to 16 MiB (256 KiB of hex in the entry's header)
RECOVERY_TRIES = 1000       # a recovery's tries (1 ms apart) to lock an entry only readers hold a moment

_CHUNK = 1 << 20
_MAGIC = b"moodtag-undo/1\n"
_DIGEST = 32
_ORIG, _MEM, _ZERO = 0, 1, 2   # kinds of an overlay piece
CHANGED = "the file changed while it was being tagged; not written"


class Rewritten(str):
    """How `rewrite` wrote the file: "in place", "copy" or "unchanged" (it is that string), and `stat`,
    the file's os.stat_result as written, taken through the file written (fstat), never through its
    path, where another program may have put another file since (for "unchanged": the file as read)."""

    stat: os.stat_result

    def __new__(cls, how: str, st: os.stat_result) -> Rewritten:
        self = super().__new__(cls, how)
        self.stat = st
        return self


@dataclass(frozen=True)
class Restored:
    """What `UndoJournal.recover()` did about one interrupted write."""

    path: Path
    action: str   # e.g. "restored as it was before an interrupted tag write"

    @property
    def pending(self) -> bool:
        """Whether the write is still to be undone (its file could not be reached or opened for writing:
        a folder not mounted, a read-only file system): the entry is kept for the next recovery, and
        the file may still be torn."""
        return self.action.startswith("not recovered")

    @property
    def undone(self) -> bool:
        """Whether the file is whole again: the write undone, found finished, or its unfinished copy
        deleted (not a write left alone because the file is gone or changed, nor one still pending)."""
        return self.action.startswith(("restored", "kept:", "deleted the unfinished copy"))


# --- the plan: mutagen's save on an overlay ------------------------------------------------

class _TooLarge(Exception):
    """The overlay would hold more than OVERLAY_LIMIT bytes in memory."""


class _Overlay:
    """A file object over the original (read through `fd`, never written) that keeps writes as pieces.

    A piece is (length, kind, src, offset): _ORIG bytes of the original from `offset`; _MEM bytes of
    the bytes object `src` from `offset`; _ZERO zeros. The pieces cover the overlay's size in order;
    `_starts` holds where each begins, so finding a position is a bisection (an Ogg file whose pages
    are renumbered is thousands of pieces)."""

    def __init__(self, fd: int, size: int, name: str) -> None:
        self.name = name
        self._fd = fd
        self._old_size = size
        self._size = size
        self._pos = 0
        self._pieces: list[tuple] = [(size, _ORIG, None, 0)] if size else []
        self._starts: list[int] = [0] if size else []
        self._last: tuple[bytes, list] | None = None   # the last read's bytes and where they came from
        self._mem_since_check = 0
        self._window = (0, b"")   # (offset, bytes) of the original last read ahead

    # the file object interface mutagen uses: read, write, seek, tell, truncate, flush
    def read(self, n: int = -1) -> bytes:
        end = self._size if n is None or n < 0 else min(self._size, self._pos + n)
        if end <= self._pos:
            return b""
        i = self._index(self._pos)
        length, kind, src, off = self._pieces[i]
        if end <= self._starts[i] + length:  # within one piece (mutagen's reads of a few bytes)
            segments = [(end - self._pos, kind, src, off + self._pos - self._starts[i])]
            data = self._bytes(segments[0])
        else:
            segments = self._segments(self._pos, end)
            data = b"".join(self._bytes(seg) for seg in segments)
        self._pos = end
        self._last = (data, segments)
        return data

    def write(self, data) -> int:
        n = len(data)
        if not n:
            return 0
        if self._last is not None and data is self._last[0]:
            segments = self._last[1]   # bytes moved: keep them as references
        else:
            block = bytes(data)
            segments = [(n, _MEM, block, 0)]
            self._count_memory(n)
        if self._pos > self._size:
            self._append([(self._pos - self._size, _ZERO, None, 0)])
        end = self._pos + n
        if end > self._size:   # the part past the end is appended
            inside = self._size - self._pos
            self._replace(self._pos, self._size, _cut(segments, 0, inside))
            self._append(_cut(segments, inside, n))
        else:
            self._replace(self._pos, end, segments)
        self._pos = end
        return n

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        if base + offset < 0:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def truncate(self, size: int | None = None) -> int:
        size = self._pos if size is None else size
        if size < self._size:
            if size == 0:
                self._pieces, self._starts = [], []
            else:
                i = self._index(size - 1)
                length, kind, src, off = self._pieces[i]
                self._pieces[i] = (size - self._starts[i], kind, src, off)
                del self._pieces[i + 1:], self._starts[i + 1:]
            self._size = size
        elif size > self._size:
            self._append([(size - self._size, _ZERO, None, 0)])
        return size

    def flush(self) -> None:
        pass

    def move(self, dest: int, src: int, count: int, buffer_size: int) -> None:
        """What mutagen's `move_bytes(self, dest, src, count, buffer_size)` does (its checks, the
        bytes it leaves, the position its loop ends at), as one step: the `count` bytes at `src` are
        placed at `dest` as references to where they are now, without reading them (making room for
        a larger FLAC or ID3 tag read a whole file through Python, a megabyte at a time)."""
        if dest < 0 or src < 0 or count < 0:
            raise ValueError
        if max(dest, src) + count > self._size:
            raise ValueError("area outside of file")
        self._pos, self._last = self._size, None
        if not count:
            return
        self._replace(dest, dest + count, self._segments(src, src + count))
        self._pos = dest + (count if src > dest else count % buffer_size or buffer_size)

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    # the pieces
    def _index(self, pos: int) -> int:
        """The piece holding byte `pos` (0 <= pos < size)."""
        return bisect.bisect_right(self._starts, pos) - 1

    def _segments(self, start: int, end: int) -> list[tuple]:
        out = []
        i = self._index(start)
        while i < len(self._pieces) and self._starts[i] < end:
            length, kind, src, off = self._pieces[i]
            pos = self._starts[i]
            lo, hi = max(start, pos), min(end, pos + length)
            if lo < hi:
                out.append((hi - lo, kind, src, off + lo - pos))
            i += 1
        return out

    def _replace(self, start: int, end: int, segments: list) -> None:
        """Replace the bytes [start, end), inside the file, with `segments` of the same total length."""
        if start >= end:
            return
        i, j = self._index(start), self._index(end - 1)
        first, last = self._pieces[i], self._pieces[j]
        new = _cut([first], 0, start - self._starts[i]) + list(segments) \
            + _cut([last], end - self._starts[j], last[0])
        # merge with the neighbours where they continue each other
        if i > 0:
            i -= 1
            new.insert(0, self._pieces[i])
        if j + 1 < len(self._pieces):
            j += 1
            new.append(self._pieces[j])
        merged = _coalesce(new)
        base = self._starts[i]
        starts = []
        for length, *_ in merged:
            starts.append(base)
            base += length
        self._pieces[i:j + 1] = merged
        self._starts[i:j + 1] = starts

    def _append(self, segments: list) -> None:
        for seg in segments:
            if self._pieces and _adjacent(self._pieces[-1], seg):
                length, kind, src, off = self._pieces[-1]
                self._pieces[-1] = (length + seg[0], kind, src, off)
            else:
                self._pieces.append(seg)
                self._starts.append(self._size)
            self._size += seg[0]

    def _bytes(self, segment) -> bytes:
        length, kind, src, off = segment
        if kind == _ORIG:
            return self._original(off, length)
        if kind == _MEM:
            return src[off:off + length]
        return bytes(length)

    def _original(self, offset: int, length: int) -> bytes:
        """Bytes of the original, read ahead READ_AHEAD at a time: mutagen reads an Ogg file page by
        page in pieces of a few bytes (header, lacing, packet), one system call each otherwise."""
        start, data = self._window
        if not start <= offset or offset + length > start + len(data):
            if length >= READ_AHEAD:
                return _pread(self._fd, length, offset)
            start, data = self._window = (offset, _pread(self._fd, READ_AHEAD, offset))
        return data[offset - start: offset - start + length]

    def _count_memory(self, n: int) -> None:
        self._mem_since_check += n
        if self._mem_since_check > OVERLAY_LIMIT:
            held = sum(length for length, kind, _, _ in self._pieces if kind == _MEM) + n
            if held > OVERLAY_LIMIT:
                raise _TooLarge(f"the change holds more than {OVERLAY_LIMIT} bytes")
            self._mem_since_check = held

    def plan(self) -> _Plan:
        return _Plan.from_pieces(self._fd, self._old_size, self._size, self._pieces)


def is_overlay(fileobj) -> bool:
    """Whether `fileobj` is the overlay `rewrite` gives `save` (a plan, not the file)."""
    return isinstance(fileobj, _Overlay)


def _cut(segments: list, start: int, end: int) -> list[tuple]:
    """The part [start, end) of a run of segments."""
    out, pos = [], 0
    for length, kind, src, off in segments:
        lo, hi = max(start, pos), min(end, pos + length)
        if lo < hi:
            out.append((hi - lo, kind, src, off + lo - pos))
        pos += length
    return out


def _coalesce(segments: list) -> list[tuple]:
    out: list[tuple] = []
    for seg in segments:
        if out and _adjacent(out[-1], seg):
            length, kind, src, off = out[-1]
            out[-1] = (length + seg[0], kind, src, off)
        else:
            out.append(seg)
    return out


def _adjacent(a: tuple, b: tuple) -> bool:
    if a[1] != b[1]:
        return False
    if a[1] == _ZERO:
        return True
    return a[2] is b[2] and a[3] + a[0] == b[3]


@dataclass(frozen=True)
class _Plan:
    """The new file as pieces, and the aligned blocks of the old file that differ from it."""

    old_size: int
    new_size: int
    pieces: tuple          # (start, length, kind, src, offset) in new-file order
    changed: tuple         # ((lo, hi), ...) in old-file offsets, sorted, merged

    @classmethod
    def from_pieces(cls, fd: int, old_size: int, new_size: int, pieces: list) -> _Plan:
        placed, pos = [], 0
        for length, kind, src, off in pieces:
            placed.append((pos, length, kind, src, off))
            pos += length
        changed: list[tuple[int, int]] = []
        for start, length, kind, src, off in placed:
            lo, hi = start, min(start + length, old_size)
            if lo >= hi or (kind == _ORIG and off == start):
                continue
            if kind == _ORIG:   # original bytes moved: all of it differs
                changed.append((lo // BLOCK * BLOCK, min(old_size, -(-hi // BLOCK) * BLOCK)))
                continue
            new = src[off:off + hi - lo] if kind == _MEM else bytes(hi - lo)
            first = lo // BLOCK * BLOCK
            old = _pread(fd, min(old_size, -(-hi // BLOCK) * BLOCK) - first, first)
            for block in range(first, hi, BLOCK):
                a, b = max(block, lo), min(block + BLOCK, hi)
                if old[a - first:b - first] != new[a - lo:b - lo]:
                    changed.append((block, min(block + BLOCK, old_size)))
        if new_size < old_size:
            changed.append((new_size // BLOCK * BLOCK, old_size))
        return cls(old_size, new_size, tuple(placed), tuple(_merge(changed)))

    @property
    def journal_bytes(self) -> int:
        return sum(hi - lo for lo, hi in self.changed)

    @property
    def unchanged(self) -> bool:
        return not self.changed and self.new_size == self.old_size

    def write_set(self) -> list[tuple[int, int]]:
        """The ranges of the new file that in-place writing writes."""
        out = [(lo, min(hi, self.new_size)) for lo, hi in self.changed if lo < self.new_size]
        if self.new_size > self.old_size:
            out.append((self.old_size, self.new_size))
        return _merge(out)

    def read_new(self, start: int, end: int, read_old: Callable[[int, int], bytes]) -> bytes:
        """The new file's bytes [start, end); `read_old(offset, length)` gives the original's."""
        parts = []
        for pstart, length, kind, src, off in self.pieces:
            lo, hi = max(start, pstart), min(end, pstart + length)
            if lo >= hi:
                continue
            skip = lo - pstart
            if kind == _ORIG:
                parts.append(read_old(off + skip, hi - lo))
            elif kind == _MEM:
                parts.append(src[off + skip:off + skip + hi - lo])
            else:
                parts.append(bytes(hi - lo))
        return b"".join(parts)


def _merge(ranges) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1]:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return [(lo, hi) for lo, hi in out if hi > lo]


# --- the undo journal -----------------------------------------------------------------------

class UndoJournal:
    """A folder of undo entries, one per tag write in flight; `recover()` finishes what a kill cut.

    An entry is locked (flock) by the process writing it for as long as it lives, so recovery only
    touches entries whose writer is dead, and two processes can share a journal."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.recovered: list[Restored] = []   # what this journal's first write recovered first
        self._checked = False
        self._slot: tuple[Path, int] | None = None   # (path, fd) of the entry file reused write after write
        self._slot_lock = threading.Lock()
        self._finalizer: weakref.finalize | None = None

    @classmethod
    def for_cache(cls, db_path: Path) -> UndoJournal:
        """The journal beside a cache database: `<db>-undo/`, made on first use."""
        return cls(Path(str(db_path) + "-undo"))

    def recover(self) -> list[Restored]:
        """Undo or clean up every write whose writer died; returns what it did, file by file.
        Idempotent: a recovery that is itself killed is finished by the next one."""
        self._checked = True
        try:
            names = sorted(os.listdir(self.folder))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise self._unreadable(exc) from exc
        done = []
        for name in names:
            if name.endswith(".undo"):
                result = _recover_entry(self.folder / name)
                if result is not None:
                    done.append(result)
        return done

    def interrupted(self) -> set[str]:
        """The real paths of files that an interrupted in-place write may have left torn: the complete
        entries whose write recovery would undo or keep for later (_torn_path), read and left as they are.
        For a scan that writes no file (-n, --no-write), so runs no recovery: such a file is not analysed
        (its analysis would read the torn bytes) and its row stays. An entry whose writer is alive (it holds
        the entry's lock, as recovery finds it) is a write in progress, not interrupted: left out (another
        scan writing that file now; recovery leaves it alone too)."""
        torn: set[str] = set()
        try:
            names = sorted(name for name in os.listdir(self.folder) if name.endswith(".undo"))
        except FileNotFoundError:
            return torn
        except OSError as exc:  # as recover(): the scan stops with one line, before a torn file is read
            raise self._unreadable(exc) from exc
        for name in names:
            try:
                fd = os.open(self.folder / name, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                parsed = None if _writer_alive(fd) else _read_entry(fd)
                if parsed is not None and (_writer_alive(fd) or not os.fstat(fd).st_nlink):
                    parsed = None  # a writer began in it meanwhile, or it was done with and dropped
                if parsed is not None and parsed[0].get("kind") == "in place":  # not void, torn itself, a copy
                    path = _torn_path(_Entry(self.folder / name, fd, *parsed))
                    if path is not None:
                        torn.add(path)
            except OSError:
                pass
            finally:
                os.close(fd)
        return torn

    def _unreadable(self, exc: OSError) -> TagError:
        return TagError(f"cannot read the undo journal {self.folder}: {os_text(exc)}")

    def _recover_once(self) -> None:
        """Before this journal's first write: finish dead writers' entries, so that none of them can
        later undo bytes over a newer write of the same file."""
        if not self._checked:
            self.recovered.extend(self.recover())

    def close(self) -> None:
        """Delete this journal's entry file (kept open for reuse between writes); recovery would
        otherwise do it after this process ends. The slot is void by now (each write voids it, a torn one
        is detached), so a disk that cannot delete it (gone: a USB drive pulled out, ENOTCONN) leaves it for
        a later recovery to delete, and raises nothing: a scan's finally calls this, and an error here hid
        the scan's own (a traceback in place of 'cannot write to the cache')."""
        if self._finalizer is not None:
            try:
                self._finalizer()
            except OSError:
                pass

    def _begin(self, header: dict, old_ranges, source_fd: int | None) -> _Entry:
        """Write, sync and lock an entry holding `header` and the old bytes of `old_ranges` (read from
        `source_fd`); nothing may touch the file before this returns. The entry goes into this
        journal's slot, a file reused write after write (no file made, no folder synced, one sync),
        or, while another thread uses the slot, into a file of its own."""
        self._recover_once()
        old_bytes = sum(hi - lo for lo, hi in old_ranges)
        if old_bytes > IN_PLACE_LIMIT:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            _require_space(self.folder, old_bytes, "the undo journal")
        header = dict(header, ranges=[list(r) for r in old_ranges], data_bytes=old_bytes)
        in_slot = self._slot_lock.acquire(blocking=False)
        try:
            if in_slot:
                if self._slot is None:
                    self._slot = self._new_file()
                    self._finalizer = weakref.finalize(self, _drop, *self._slot, owner=os.getpid())
                path, fd = self._slot
            else:
                path, fd = self._new_file()
            data_offset = _write_entry(fd, header, old_ranges, source_fd)
        except BaseException:
            if in_slot:
                self._slot_lock.release()
            else:
                _drop(path, fd)
            raise
        return _Entry(path, fd, header, data_offset, journal=self if in_slot else None)

    def _new_file(self) -> tuple[Path, int]:
        """A new entry file, locked by us, its name durable in the folder."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        while True:
            path = self.folder / f"{secrets.token_hex(8)}.undo"
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_nlink:   # else a recovery took it for a dead writer's before we locked it
                break
            os.close(fd)
        _fsync_folder(self.folder)
        return path, fd

    def _release_slot(self, *, keep_entry: bool) -> None:
        """The slot's write is over. keep_entry: its entry must survive (an undo failed), so the slot is
        given up, unlocked, for recovery; a new one is made for the next write."""
        if keep_entry and self._slot is not None:
            self._finalizer.detach()
            os.close(self._slot[1])
            self._slot = self._finalizer = None
        self._slot_lock.release()


def _torn_path(entry: _Entry) -> str | None:
    """The real path of an in-place entry's file if recovery would undo its write or keep it for later:
    the file still the one written (same device and inode, a size that fits: _size_fits), or, under another
    inode, judged as recovery judges it (_judge); None otherwise."""
    header = entry.header
    try:
        path = os.fsdecode(bytes.fromhex(header["path"]))
        st = os.stat(path, follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode):
            return None
        if (st.st_dev, st.st_ino) == (header["dev"], header["ino"]):
            return os.path.realpath(path) if _size_fits(header, st.st_size) else None
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            verdict = _judge(fd, os.fstat(fd), entry)
        finally:
            os.close(fd)
        return os.path.realpath(path) if verdict in ("torn", "unsure") else None
    except (OSError, KeyError, ValueError, TypeError):
        return None  # gone, its disk not mounted (not walked either), or not an entry moodtag wrote


def _write_entry(fd: int, header: dict, old_ranges, source_fd: int | None) -> int:
    """Write an entry (magic, header, old bytes, sha256 of it all) over whatever `fd` held, and sync
    it; returns where the old bytes start."""
    text = json.dumps(header).encode()
    digest = hashlib.sha256()
    buffer = [_MAGIC, struct.pack(">I", len(text)), text]
    pos = 0
    for lo, hi in old_ranges:
        for at in range(lo, hi, _CHUNK):
            block = _pread(source_fd, min(_CHUNK, hi - at), at)
            if len(block) != min(_CHUNK, hi - at):
                raise OSError(errno.EIO, "the file is shorter than planned")
            buffer.append(block)
            if sum(map(len, buffer)) >= _CHUNK:
                pos = _flush(fd, buffer, digest, pos)
    pos = _flush(fd, buffer, digest, pos)
    _pwrite(fd, digest.digest(), pos)
    if os.fstat(fd).st_size > pos + _DIGEST:
        os.ftruncate(fd, pos + _DIGEST)
    _datasync(fd)
    return len(_MAGIC) + 4 + len(text)


def _drop(path: Path, fd: int, owner: int | None = None) -> None:
    """Delete an entry file and close it; `owner`: only in that process (not in a forked child)."""
    if owner is not None and os.getpid() != owner:
        return
    try:
        _unlink(path)
    finally:
        os.close(fd)  # whatever the unlink met: never an open descriptor left behind


def _flush(fd: int, buffer: list, digest, pos: int) -> int:
    data = b"".join(buffer)
    buffer.clear()
    digest.update(data)
    _pwrite(fd, data, pos)
    return pos + len(data)


class _Entry:
    """A live journal entry, locked by this process; `journal` is set when it is in the journal's slot."""

    def __init__(self, path: Path, fd: int, header: dict, data_offset: int, journal: UndoJournal | None = None):
        self.path, self.fd, self.header, self.data_offset = path, fd, header, data_offset
        self.journal = journal

    def finish(self) -> None:
        """The write is complete (or was undone): the entry is void. A slot is voided by breaking its
        magic (a data write, no sync: lost on a power cut, it leaves an entry whose new bytes are all
        on disk, which recovery keeps)."""
        if self.journal is None:
            _drop(self.path, self.fd)
            return
        if self.header["data_bytes"] > IN_PLACE_LIMIT:
            os.ftruncate(self.fd, 0)
        else:
            os.pwrite(self.fd, b"\0", 0)
        self.journal._release_slot(keep_entry=False)

    def abandon(self) -> None:
        """Leave the entry for recovery: release its lock (recovery then treats its writer as dead)."""
        if self.journal is None:
            os.close(self.fd)
        else:
            self.journal._release_slot(keep_entry=True)

    def old_reader(self, target_fd: int) -> Callable[[int, int], bytes]:
        """Read the original's bytes: journaled ranges from the entry, the rest from the file."""
        where, pos = [], self.data_offset
        for lo, hi in self.header["ranges"]:
            where.append((lo, hi, pos))
            pos += hi - lo

        def read(offset: int, length: int) -> bytes:
            parts, end = [], offset + length
            while offset < end:
                for lo, hi, at in where:
                    if lo <= offset < hi:
                        n = min(end, hi) - offset
                        parts.append(_pread(self.fd, n, at + offset - lo))
                        break
                else:
                    nxt = min([lo for lo, _, _ in where if lo > offset] + [end])
                    n = nxt - offset
                    parts.append(_pread(target_fd, n, offset))
                offset += n
            return b"".join(parts)

        return read


def _read_entry(fd: int) -> tuple[dict, int] | None:
    """(header, offset of the old bytes) of a complete entry; None for a torn one, which was
    never fsynced, so its file was never touched."""
    size = os.fstat(fd).st_size
    head = _pread(fd, len(_MAGIC) + 4, 0)
    if len(head) < len(_MAGIC) + 4 or not head.startswith(_MAGIC):
        return None
    (text_len,) = struct.unpack(">I", head[len(_MAGIC):])
    if text_len > 1 << 20 or size < len(head) + text_len + _DIGEST:
        return None
    try:
        header = json.loads(_pread(fd, text_len, len(head)))
        data_offset = len(head) + text_len
        if size != data_offset + int(header["data_bytes"]) + _DIGEST:
            return None
    except (ValueError, KeyError, TypeError):
        return None
    digest = hashlib.sha256()
    for at in range(0, size - _DIGEST, _CHUNK):
        digest.update(_pread(fd, min(_CHUNK, size - _DIGEST - at), at))
    if digest.digest() != _pread(fd, _DIGEST, size - _DIGEST):
        return None
    return header, data_offset


def _recover_entry(entry: Path) -> Restored | None:
    try:
        fd = os.open(entry, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        if not _lock_for_recovery(fd):
            return None   # its writer is alive
        if not os.fstat(fd).st_nlink:
            return None   # another recovery finished it
        parsed = _read_entry(fd)
        if parsed is None:
            _unlink(entry)
            return None
        header, data_offset = parsed
        path = Path(os.fsdecode(bytes.fromhex(header["path"])))
        if header["kind"] == "copy":
            result = _recover_copy(path, Path(os.fsdecode(bytes.fromhex(header["tmp"]))))
        else:
            result = _recover_in_place(path, _Entry(entry, fd, header, data_offset))
        if result is None or not result.action.startswith(("not recovered", LEFT_COPY)):
            _unlink(entry)
            _fsync_folder(entry.parent)
        return result
    finally:
        os.close(fd)


def _writer_alive(fd: int) -> bool:
    """Whether the entry open at `fd` is locked exclusively: by its writer, alive (or by a recovery at
    work on it). Asked with a shared lock, let go at once (see _lock_for_recovery)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def _lock_for_recovery(fd: int) -> bool:
    """Lock an entry for its recovery; False where its writer holds it (alive: not to be touched), or
    another recovery does. A shared lock held meanwhile is a reader's asking the same (_writer_alive,
    for UndoJournal.interrupted), let go at once: tried again, not taken for a live writer's."""
    for _ in range(RECOVERY_TRIES):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if _writer_alive(fd):
                return False
        time.sleep(0.001)
    return False


LEFT_COPY = "left the unfinished copy"   # a recovery that could not delete it: its entry stays


def _recover_copy(path: Path, tmp: Path) -> Restored | None:
    if not tmp.parent.is_dir():
        return Restored(path, "not recovered yet: its folder is missing (not mounted?)")
    try:
        if not stat.S_ISREG(os.lstat(tmp).st_mode):
            return None
        os.unlink(tmp)
    except FileNotFoundError:
        return None   # never made, or already renamed into place: the file is old or new, whole
    except OSError as exc:   # a share read-only for now: the file is whole, the entry kept for the copy
        return Restored(path, f"{LEFT_COPY} {tmp.name}: cannot delete it yet ({exc.strerror}); the file is as it was")
    _fsync_folder(tmp.parent)
    return Restored(path, f"deleted the unfinished copy {tmp.name}; the file is as it was")


def _size_fits(header: dict, size: int) -> bool:
    """Whether a file of `size` bytes may still be the one an in-place entry's write left: its old or new
    size, or any where the write had no plan that knew the new one. (Recovery and `interrupted` judge alike.)"""
    return header["new_size"] is None or size in (header["old_size"], header["new_size"])


def _kept_spans(limit: int, touched) -> list[tuple[int, int]]:
    """Where an in-place write leaves the file's bytes as they are, sampled: up to KEPT_SAMPLE bytes just
    past the first region it touches (`touched`: the journaled ranges and the write set) and up to
    KEPT_SAMPLE bytes at the end of what it keeps, below `limit` (the smaller of the old and new size).
    Their hash in the entry tells a file that got a new inode number (its disk mounted again) from
    another file put in its place."""
    gaps, pos = [], 0
    for lo, hi in _merge(touched):
        if lo > pos and pos < limit:
            gaps.append((pos, min(lo, limit)))
        pos = max(pos, hi)
    if pos < limit:
        gaps.append((pos, limit))
    if not gaps:
        return []
    after = next((gap for gap in gaps if gap[0] > 0), gaps[0])
    last = gaps[-1]
    return _merge([(after[0], min(after[1], after[0] + KEPT_SAMPLE)), (max(last[0], last[1] - KEPT_SAMPLE), last[1])])


def _judge(fd: int, st: os.stat_result, entry: _Entry) -> str:
    """What an in-place entry's file (open at `fd`, a regular file) holds: "changed" (its size fits neither
    side of the write), "finished" (the new bytes whole), "untouched" (the old bytes), "torn" (to be
    undone), "other" (another file has its name now) or "unsure" (its inode changed and nothing tells
    whether it is the file written: kept for later).

    A file whose (device, inode) differ from the entry's is the one written when the bytes the write
    leaves alone hash as they did (kept_sha256); for an entry without that hash, when every sector of its
    write holds its old or its new bytes (new_sectors), or when its inode number is the same (a disk back
    under another device number): FAT and exFAT drivers number inodes afresh at each mount, and a disk
    plugged in again may get another device number, so identity alone would leave a torn file for good.
    The file itself (same device and inode) at a size that fits is torn, whatever its bytes: a sector
    that is neither old nor new may be another program's edit made after the write was cut off, but it
    is also what a kill leaves on a FUSE mount with direct_io (the kernel splits a write where the
    caller's buffer's pages end, not the file's), so the content cannot tell them apart, and the undo
    wins (the known gap: such an edit is undone with moodtag's write). (Recovery and `interrupted` judge
    alike.)"""
    header = entry.header
    same = (st.st_dev, st.st_ino) == (header["dev"], header["ino"])
    if not _size_fits(header, st.st_size):
        return "changed" if same else "other"
    if header["new_sha256"] and st.st_size == header["new_size"] \
            and _hash_ranges(fd, header["write_set"]) == header["new_sha256"]:
        return "finished"
    if st.st_size == header["old_size"] and _holds_old_bytes(fd, entry):
        return "untouched"
    if same:
        return "torn"
    if header.get("kept_sha256"):
        return "torn" if _hash_ranges(fd, header["kept_spans"]) == header["kept_sha256"] else "other"
    if header.get("new_sectors") and _old_or_new_sectors(fd, entry):
        return "torn"
    return "torn" if st.st_ino == header["ino"] else "unsure"


def _old_or_new_sectors(fd: int, entry: _Entry) -> bool:
    """Whether every sector of the file that the entry's write writes, inside the old file, holds either
    its new bytes (their hash in the entry, `new_sectors`) or its old ones (journaled), as a write cut
    off anywhere on a disk leaves them. Past the old end (a write that makes the file longer), any bytes
    pass: a copy there may be cut anywhere. Tells a torn file under a new inode number from another file
    of the same size (a small file whose first tag shifts every byte leaves no bytes alone for
    kept_sha256); a file that fails it (another file, or the torn one with a sector cut in half, as a
    FUSE mount with direct_io may leave it) is kept for later, never undone."""
    header = entry.header
    digests, old_size, width = header["new_sectors"], header["old_size"], 2 * SECTOR_DIGEST
    index = 0
    for lo, hi in _aligned(header["write_set"], _CHUNK):
        now = _pread(fd, hi - lo, lo)
        for (a, b), digest in zip(_aligned([(lo, hi)], SECTOR), _sector_digests(now, lo)):
            index += 1
            if b > old_size or digest == digests[(index - 1) * width:index * width]:
                continue
            if now[a - lo:b - lo] != _journaled(entry, a, b - a):
                return False
    return True


def _aligned(ranges, size: int):
    """The ranges, cut where a multiple of `size` falls inside one: (lo, hi) pieces, in order."""
    for lo, hi in ranges:
        while lo < hi:
            end = min(hi, (lo // size + 1) * size)
            yield lo, end
            lo = end


def _journaled(entry: _Entry, offset: int, length: int) -> bytes | None:
    """The old bytes [offset, offset + length) of the entry's file, if the entry holds them all."""
    at = entry.data_offset
    for lo, hi in entry.header["ranges"]:
        if lo <= offset and offset + length <= hi:
            return _pread(entry.fd, length, at + offset - lo)
        at += hi - lo
    return None


def _sector_digests(data: bytes, at: int) -> list[str]:
    """The CRC-32 (hex) of each piece of `data`, the file's bytes from offset `at`, cut at the multiples
    of SECTOR (_aligned): 1.3 ms a MiB, where a cryptographic hash took 6; it tells bytes written
    from bytes not written, not an adversary's."""
    view = memoryview(data)
    return [format(zlib.crc32(view[a - at:b - at]), "08x") for a, b in _aligned([(at, at + len(data))], SECTOR)]


def _recover_in_place(path: Path, entry: _Entry) -> Restored | None:
    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        if path.parent.is_dir():
            return Restored(path, "left alone: the file is gone")
        return Restored(path, "not recovered yet: its folder is missing (not mounted?)")
    except OSError as exc:
        return Restored(path, f"not recovered yet: {exc.strerror}")
    try:
        st = os.fstat(fd)
        verdict = _judge(fd, st, entry) if stat.S_ISREG(st.st_mode) else "other"
        if verdict == "other":
            return Restored(path, "left alone: another file has its name now")
        if verdict == "changed":
            return Restored(path, "left alone: another program changed it after the interrupted write")
        if verdict == "finished":
            return Restored(path, "kept: the interrupted tag write had finished")
        if verdict == "untouched":
            return None   # the write had not begun
        if verdict == "unsure":
            return Restored(path, "not recovered yet: its inode changed since the interrupted write (the disk "
                                  "mounted again?) and nothing shows it is the same file, torn, or another file of "
                                  f"the same size; its old bytes are kept in {entry.path}")
        _undo(fd, entry)
        return Restored(path, "restored as it was before an interrupted tag write")
    finally:
        os.close(fd)


def _undo(fd: int, entry: _Entry) -> None:
    """Write the entry's old bytes back, cut the file to its old size, fsync; idempotent. A file the
    write made shorter gets its old size first: an undo cut off while it writes the old tail back then
    leaves the old size, which the next recovery judges torn and undoes again (written back chunk by
    chunk, it left a size neither old nor new, judged changed by another program: left cut short)."""
    header, at = entry.header, entry.data_offset
    if os.fstat(fd).st_size < header["old_size"]:
        try:
            os.ftruncate(fd, header["old_size"])
        except OSError:  # fusefat grows a file only by writing at its end: the old bytes below do it
            pass
    for lo, hi in header["ranges"]:
        for pos in range(lo, hi, _CHUNK):
            n = min(_CHUNK, hi - pos)
            _pwrite(fd, _pread(entry.fd, n, at + pos - lo), pos)
        at += hi - lo
    os.ftruncate(fd, header["old_size"])
    _fsync(fd)
    os.utime(fd, ns=(header["atime_ns"], header["mtime_ns"]))


def _holds_old_bytes(fd: int, entry: _Entry) -> bool:
    at = entry.data_offset
    for lo, hi in entry.header["ranges"]:
        for pos in range(lo, hi, _CHUNK):
            n = min(_CHUNK, hi - pos)
            if _pread(fd, n, pos) != _pread(entry.fd, n, at + pos - lo):
                return False
        at += hi - lo
    return True


def _hash_ranges(fd: int, ranges) -> str:
    digest = hashlib.sha256()
    for lo, hi in ranges:
        for pos in range(lo, hi, _CHUNK):
            digest.update(_pread(fd, min(_CHUNK, hi - pos), pos))
    return digest.hexdigest()


# --- the write --------------------------------------------------------------------------------

def rewrite(path: Path, source, save: Callable[[object], None], *, journal: UndoJournal,
            expect: tuple[int, int] | None = None) -> Rewritten:
    """Apply `save(fileobj)` to the file at `path`, open for reading as `source` (a regular file),
    so that a kill or power cut leaves it old or new. Returns how it was written, with the written
    file's stat. `expect`: the (size, mtime_ns) `source` must have (the file the caller read or
    analysed); TagError CHANGED otherwise. Raises OSError, TagError, or what `save` raises; the file is
    unchanged when it raises."""
    journal._recover_once()
    fd = source.fileno()
    st = os.fstat(fd)
    if expect is not None and (st.st_size, st.st_mtime_ns) != tuple(expect):
        raise TagError(CHANGED)
    real = Path(os.path.realpath(path))
    _require_same(real, st)
    overlay = _Overlay(fd, st.st_size, str(path))
    try:
        save(overlay)
        plan: _Plan | None = overlay.plan()
    except Exception as exc:
        if not _caused_by(exc, _TooLarge):
            raise
        plan = None
    del overlay
    if plan is not None and plan.unchanged:
        return Rewritten("unchanged", st)
    small = plan is not None and plan.journal_bytes <= max(IN_PLACE_LIMIT, st.st_size // IN_PLACE_SHARE)
    if small or _copy_would_lose(real, st):
        try:
            return Rewritten("in place", _write_in_place(real, st, plan, save, journal))
        except _CannotGrow as exc:
            if _copy_would_lose(real, st):
                raise exc.args[0] from None
    try:
        return Rewritten("copy", _write_copy(real, st, plan, save, journal))
    except _CannotKeep:
        return Rewritten("in place", _write_in_place(real, st, plan, save, journal))


def _caused_by(exc: BaseException, kind: type) -> bool:
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, kind) or any(isinstance(a, kind) for a in exc.args):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def _copy_would_lose(real: Path, st: os.stat_result) -> str | None:
    """Why a copy renamed over the file would lose something; None if it would not."""
    if st.st_nlink > 1:
        return "hard links"
    if not hasattr(os, "listxattr"):   # no way to copy extended attributes here (macOS)
        return "extended attributes"
    if os.geteuid() not in (0, st.st_uid):
        return "owner"
    if not os.access(real.parent, os.W_OK | os.X_OK):
        return "folder not writable"
    return None


def _write_in_place(real: Path, st: os.stat_result, plan: _Plan | None, save,
                    journal: UndoJournal) -> os.stat_result:
    """Write through the undo journal into the file itself; returns its stat as written."""
    fd = os.open(real, os.O_RDWR | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino, now.st_size, now.st_mtime_ns) != (st.st_dev, st.st_ino, st.st_size,
                                                                      st.st_mtime_ns):
            raise TagError(CHANGED)
        header = {"kind": "in place", "path": os.fsencode(real).hex(), "dev": st.st_dev, "ino": st.st_ino,
                  "old_size": st.st_size, "atime_ns": st.st_atime_ns, "mtime_ns": st.st_mtime_ns}
        if plan is not None:
            write_set = plan.write_set()
            read_file = lambda offset, length: _pread(fd, length, offset)   # noqa: E731 (nothing written yet)
            digest, sectors = hashlib.sha256(), []
            for lo, hi in _aligned(write_set, _CHUNK):
                chunk = plan.read_new(lo, hi, read_file)
                digest.update(chunk)
                if len(sectors) <= NEW_SECTORS_MAX:
                    sectors.extend(_sector_digests(chunk, lo))
            kept = _kept_spans(min(st.st_size, plan.new_size), [*plan.changed, *write_set])
            header.update(new_size=plan.new_size, write_set=write_set, new_sha256=digest.hexdigest(),
                          kept_spans=kept, kept_sha256=_hash_ranges(fd, kept) if kept else None,
                          new_sectors="".join(sectors) if len(sectors) <= NEW_SECTORS_MAX else None)
            entry = journal._begin(header, plan.changed, fd)
        else:  # no plan: mutagen writes the file itself, every old byte journaled first
            header.update(new_size=None, write_set=[], new_sha256=None, kept_spans=[], kept_sha256=None,
                          new_sectors=None)
            entry = journal._begin(header, [(0, st.st_size)] if st.st_size else [], fd)
        written = False   # whether any byte of ours may be in the file: only then is there anything to undo
        try:
            now = os.fstat(fd)
            if (now.st_size, now.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
                raise TagError(CHANGED)
            written = True
            if plan is not None:
                _apply(fd, plan, entry.old_reader(fd))
            else:
                with os.fdopen(os.dup(fd), "r+b") as fh:
                    save(fh)
                    fh.flush()
            done = os.fstat(fd)   # what we wrote; an fsync changes no timestamp
            _fsync(fd)
        except BaseException:
            if not written:
                # another program wrote the file meanwhile: its bytes and mtime stay as it left them
                # (the journaled old bytes may predate its write, or be half of it)
                entry.finish()
                raise
            try:
                _undo(fd, entry)
            except BaseException:
                entry.abandon()   # recovery finishes it
                raise
            entry.finish()
            raise
        entry.finish()
    finally:
        os.close(fd)
    return done


def _apply(fd: int, plan: _Plan, read_old: Callable[[int, int], bytes]) -> None:
    if plan.new_size > plan.old_size:   # allocate first: a full disk fails before any byte is written
        try:
            os.posix_fallocate(fd, plan.old_size, plan.new_size - plan.old_size)
        except (AttributeError, OSError) as exc:   # AttributeError: no posix_fallocate (macOS)
            # EPERM: fusefat refuses it on any file; a file that may truly not grow refuses ftruncate too
            if isinstance(exc, OSError) and exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS,
                                                              errno.EPERM):
                raise
            try:
                os.ftruncate(fd, plan.new_size)
            except PermissionError as refused:   # fusefat grows a file only by writing at its end
                raise _CannotGrow(refused) from refused
    for lo, hi in plan.write_set():
        for pos in range(lo, hi, _CHUNK):
            _pwrite(fd, plan.read_new(pos, min(hi, pos + _CHUNK), read_old), pos)
    if plan.new_size < plan.old_size:
        os.ftruncate(fd, plan.new_size)


class _CannotGrow(Exception):
    """The file system would not make the file longer in place (nothing written yet): a copy may do."""


class _CannotKeep(Exception):
    """The copy could not take the original's owner, mode or extended attributes, or could not be made
    beside it at all (its path too long)."""


def _write_copy(real: Path, st: os.stat_result, plan: _Plan | None, save,
                journal: UndoJournal) -> os.stat_result:
    """Write a copy and rename it over the file; returns the copy's stat (a rename changes no mtime)."""
    folder = real.parent
    need = plan.new_size if plan is not None else st.st_size + st.st_size // 50
    _require_space(folder, need, "a safe copy of the file")
    tmp = folder / _temp_name(real.name)
    header = {"kind": "copy", "path": os.fsencode(real).hex(), "tmp": os.fsencode(tmp).hex()}
    entry = journal._begin(header, [], None)
    made = False
    try:
        src = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            _require_same_fd(src, st)
            out = _create_copy(tmp)
            made = True
            try:
                _keep_metadata(src, out, st)
                if plan is not None:
                    _write_pieces(src, out, plan.pieces)
                    if os.fstat(out).st_size != plan.new_size:   # fusefat refuses even a truncate to the size
                        os.ftruncate(out, plan.new_size)
                else:
                    _copy_range(src, out, 0, 0, st.st_size)
                    with os.fdopen(os.dup(out), "r+b") as fh:
                        save(fh)
                        fh.flush()
                if stat.S_IMODE(os.fstat(out).st_mode) != stat.S_IMODE(st.st_mode):
                    os.fchmod(out, stat.S_IMODE(st.st_mode))   # a write by a non-root owner clears set-id bits
                _fsync(out)
                done = os.fstat(out)
            finally:
                os.close(out)
            _require_same(real, st)   # the original is still the file that was planned
        finally:
            os.close(src)
        os.replace(tmp, real)
        made = False
        _fsync_folder(folder)
    except BaseException as exc:
        try:
            if made:
                _unlink(tmp)
        except OSError:   # the share turned read-only meanwhile: the entry stays, and recovery deletes the copy
            entry.abandon()
        else:
            entry.finish()
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise TagError("disk full: no room for a safe copy of the file; it was not changed") from exc
        raise
    entry.finish()
    return done


def _create_copy(tmp: Path) -> int:
    """The hidden copy, made new (mode 0600); _CannotKeep if its path is too long: its name is the
    file's and 22 bytes more, so a file whose path is near PATH_MAX can have no copy beside it."""
    try:
        return os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno != errno.ENAMETOOLONG:
            raise
        raise _CannotKeep("the copy's path would be too long") from exc


def _write_pieces(src: int, out: int, pieces) -> None:
    """Write a plan's pieces, in order, into the new file `out`: a long run of the original by
    copy_file_range (_copy_range), the rest gathered into writes of _CHUNK bytes, the short runs of the
    original read _CHUNK at a time. An Ogg file whose pages are renumbered is thousands of pieces (each
    page's new header, then its old body): one system call for each cost more than mutagen's work."""
    pending, at = bytearray(), 0          # bytes for `out` from offset `at`
    window_at, window = 0, b""            # bytes of the original from offset `window_at`
    for start, length, kind, data, off in pieces:
        if kind == _ORIG and length >= SHORT_RUN:
            if pending:
                _pwrite(out, pending, at)
                pending = bytearray()
            _copy_range(src, out, off, start, length)
            continue
        if not pending:
            at = start
        if kind == _ORIG:
            if not (window_at <= off and off + length <= window_at + len(window)):
                window_at, window = off, _pread(src, max(length, _CHUNK), off)
                if len(window) < length:
                    raise OSError(errno.EIO, "the file is shorter than planned")
            pending += window[off - window_at:off - window_at + length]
        elif kind == _MEM:
            pending += data[off:off + length]
        else:
            pending += bytes(length)
        if len(pending) >= _CHUNK:
            _pwrite(out, pending, at)
            pending = bytearray()
    if pending:
        _pwrite(out, pending, at)


def _temp_name(name: str) -> str:
    stem = name if len(os.fsencode(name)) <= 200 else "file"
    return f".{stem}.moodtag-{secrets.token_hex(4)}.tmp"


def _keep_metadata(src: int, out: int, st: os.stat_result) -> None:
    """Owner, group, mode and extended attributes of `src` onto `out`; _CannotKeep if refused."""
    try:
        for give, arguments in ((os.fchown, (st.st_uid, st.st_gid)), (os.fchmod, (stat.S_IMODE(st.st_mode),))):
            try:
                give(out, *arguments)
            except OSError as exc:
                if exc.errno != errno.ENOSYS:   # fusefat: no owners or modes to keep, no call to keep them
                    raise
        wanted = {name: os.getxattr(src, name) for name in _xattrs(src)}
        for name in _xattrs(out):
            if name not in wanted:   # e.g. an ACL inherited from the folder's default ACL
                os.removexattr(out, name)
        for name, value in wanted.items():
            try:
                same = os.getxattr(out, name) == value
            except OSError:
                same = False
            if not same:
                os.setxattr(out, name, value)
    except OSError as exc:
        if exc.errno in (errno.EPERM, errno.EACCES, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EINVAL):
            raise _CannotKeep(exc.strerror) from exc
        raise


def _xattrs(fd: int) -> list[str]:
    try:
        return os.listxattr(fd)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return []
        raise


def _copy_range(src: int, dst: int, src_off: int, dst_off: int, length: int) -> None:
    """Copy bytes between files: copy_file_range (in the kernel, a reflink where possible), else read/write."""
    copy = getattr(os, "copy_file_range", None)
    while length > 0:
        if copy is not None:
            try:
                n = copy(src, dst, min(length, 1 << 30), src_off, dst_off)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.EBADF):
                    raise
                copy, n = None, 0
        else:
            data = _pread(src, min(length, _CHUNK), src_off)
            _pwrite(dst, data, dst_off)
            n = len(data)
        if n == 0 and copy is not None:
            copy = None   # some file systems report 0 where they cannot; read and write the rest
            continue
        if n == 0:
            raise OSError(errno.EIO, "the file is shorter than planned")
        src_off, dst_off, length = src_off + n, dst_off + n, length - n


# --- small helpers -------------------------------------------------------------------------------

def _require_same(real: Path, st: os.stat_result) -> None:
    try:
        now = os.stat(real, follow_symlinks=False)
    except FileNotFoundError:
        raise TagError("the file vanished while it was being tagged; not written") from None
    if (now.st_dev, now.st_ino, now.st_size, now.st_mtime_ns) != (st.st_dev, st.st_ino, st.st_size,
                                                                  st.st_mtime_ns):
        raise TagError(CHANGED)


def _require_same_fd(fd: int, st: os.stat_result) -> None:
    now = os.fstat(fd)
    if (now.st_dev, now.st_ino, now.st_size, now.st_mtime_ns) != (st.st_dev, st.st_ino, st.st_size,
                                                                  st.st_mtime_ns):
        raise TagError(CHANGED)


def _require_space(folder: Path, need: int, what: str) -> None:
    vfs = os.statvfs(folder)
    if vfs.f_blocks == 0:   # a file system that tells no size (fusefat): a full disk fails the write itself
        return
    free = vfs.f_bavail * vfs.f_frsize
    if free < need + SPACE_MARGIN:
        raise TagError(f"disk full: {what} needs {_mb(need + SPACE_MARGIN)}, {_mb(free)} free "
                       f"in {folder}; the file was not changed")


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _pread(fd: int, n: int, offset: int) -> bytes:
    parts = []
    while n > 0:
        data = os.pread(fd, n, offset)
        if not data:
            break
        parts.append(data)
        n -= len(data)
        offset += len(data)
    return b"".join(parts) if len(parts) != 1 else parts[0]


def _pwrite(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def _fsync(fd: int) -> None:
    full = getattr(fcntl, "F_FULLFSYNC", None)   # macOS: fsync alone does not reach the disk
    if full is not None:
        try:
            fcntl.fcntl(fd, full)
            return
        except OSError:
            pass
    os.fsync(fd)


def _datasync(fd: int) -> None:
    """Sync a file's data and what is needed to read it back (its size), not its timestamps."""
    if hasattr(fcntl, "F_FULLFSYNC") or not hasattr(os, "fdatasync"):
        _fsync(fd)
    else:
        os.fdatasync(fd)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
