"""Read the next tracks' files ahead of the workers, so that a slow share's latency overlaps analysis.

On a network share each read a decoder makes waits a round trip (tens of milliseconds), and a decoder
opens, seeks and reads a file in many small pieces, one after the other, while its worker's core
idles. Here a few threads of the scan's parent read the files of the tracks about to be analysed (whole,
or of a large file the parts around its clips), several at once, so that the OS keeps their bytes in its page cache (the Linux NFS and SMB clients
keep them across opens of an unchanged file); the worker then finds them there. They stay at most
`tracks` tracks ahead of the results, so the page cache holds only those few files. On a local disk
the cost is the kernel's pass over pages already cached (sendfile to /dev/null: 0.15 ms for a 5 MB
file, where copying them into Python took 0.6 ms; benchmarks/slow_storage.py for a share).
"""
from __future__ import annotations

import errno
import os
import stat
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tagger.weights import ClipPlan

READ_AHEAD_PER_JOB = 4         # tracks read ahead of the results, per worker (two are in flight per worker)
READER_THREADS = 4             # files read at once
CHUNK_BYTES = 1 << 20          # one read
WHOLE_FILE_BYTES = 12 << 20    # a file up to this size is read whole (any compressed track of usual length)
HEAD_BYTES = 1 << 20           # of a larger file: its first bytes (headers, tags, seek tables),
TAIL_BYTES = 256 << 10         # its last ones (an Ogg file's last page, ID3v1/APE tags, an MP4 index),
CLIP_MARGIN = 0.01             # and the bytes of each clip, as if bytes were proportional to time, with this
MIN_MARGIN_BYTES = 512 << 10   # share of the file (at least MIN_MARGIN_BYTES) before and half of it after


class ReadAhead:
    """Reads `paths` (the parts that decoding `plan`'s clips needs: see planned_ranges), in their
    order, on READER_THREADS threads, while at most `tracks` of them are read and not yet done (see
    `done`). Errors are ignored: the worker that opens the file reports them. Use as a context
    manager, or call `close()`."""

    def __init__(self, paths: list[Path], *, tracks: int, plan: ClipPlan | None = None,
                 threads: int = READER_THREADS) -> None:
        self._paths = paths
        self._plan = plan
        self._tracks = tracks
        self._next = 0       # index of the next path to read
        self._done = 0       # tracks the scan has finished with
        self._closed = False
        self._changed = threading.Condition()
        self._threads = [threading.Thread(target=self._run, name=f"moodtag-read-ahead-{i}", daemon=True)
                         for i in range(max(1, threads))]
        for thread in self._threads:
            thread.start()

    def done(self, count: int = 1) -> None:
        """`count` more tracks are finished with: read further ahead."""
        with self._changed:
            self._done += count
            self._changed.notify_all()

    def close(self) -> None:
        """Stop reading; waits for reads under way (a hung share can make that last: daemon threads
        are left behind after a few seconds)."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        for thread in self._threads:
            thread.join(timeout=5.0)

    def __enter__(self) -> "ReadAhead":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._closed and (self._next >= len(self._paths)
                                            or self._next >= self._done + self._tracks):
                    if self._next >= len(self._paths):
                        return
                    self._changed.wait()
                if self._closed:
                    return
                path = self._paths[self._next]
                self._next += 1
            read_into_page_cache(path, self._plan)


def planned_ranges(path: Path | str, size: int, plan: ClipPlan | None) -> list[tuple[int, int]]:
    """The (offset, length) byte ranges of a file of `size` bytes that decoding `plan`'s clips will
    read, estimated: all of a file up to WHOLE_FILE_BYTES (or when there is no plan); of a larger one
    its head, its tail, and each clip's share of the file with a margin, its duration taken from its
    headers (tagger.tags.read_info). Merged and sorted."""
    if plan is None or size <= WHOLE_FILE_BYTES:
        return [(0, size)]
    ranges = [(0, HEAD_BYTES), (size - TAIL_BYTES, TAIL_BYTES)]
    try:
        from tagger.audio import clip_offsets
        from tagger.tags import read_info

        duration = read_info(path).duration
        starts = clip_offsets(duration, plan) if duration else []
    except Exception:  # unreadable, or too short: the worker will say why
        starts = []
    margin = max(MIN_MARGIN_BYTES, int(size * CLIP_MARGIN))
    for start in starts:
        begin = max(0, int(size * start / duration) - margin)
        end = min(size, int(size * (start + plan.seconds) / duration) + margin // 2)
        ranges.append((begin, end - begin))
    merged: list[tuple[int, int]] = []
    for offset, length in sorted(ranges):
        if merged and offset <= merged[-1][0] + merged[-1][1]:
            last_offset, last_length = merged[-1]
            merged[-1] = (last_offset, max(last_length, offset + length - last_offset))
        else:
            merged.append((offset, length))
    return merged


def read_into_page_cache(path: Path | str, plan: ClipPlan | None = None) -> int:
    """Read the parts of a file that decoding `plan`'s clips needs (see planned_ranges; no plan: all
    of it) and drop the bytes; returns how many were read (0 when it cannot be read). The bytes go
    from the page cache to /dev/null inside the kernel (sendfile: a quarter of the CPU time of copying
    them into Python); where sendfile cannot read the file, they are read and dropped here."""
    total = 0
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO put there since the walk must not block us
    except OSError:
        return 0
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return 0
        ranges = planned_ranges(path, st.st_size, plan)
        with open(os.devnull, "wb", buffering=0) as null:
            for i, (offset, length) in enumerate(ranges):
                done = _send(fd, null.fileno(), offset, length)
                if done is None:  # no sendfile from this file: read the rest here
                    return total + _read_and_drop(fd, ranges[i:])
                total += done
    except OSError:
        pass
    finally:
        try:
            os.close(fd)
        except OSError:  # a drive unplugged (ENOTCONN): the worker that opens the file reports it
            pass
    return total


def _send(fd: int, out: int, offset: int, length: int) -> int | None:
    """sendfile `length` bytes of `fd` from `offset` to `out`: the bytes sent (fewer at the end of the
    file), or None where the OS or the file system does not do sendfile from this file."""
    if not hasattr(os, "sendfile"):
        return None
    total = 0
    while length > 0:
        try:
            n = os.sendfile(out, fd, offset, min(length, CHUNK_BYTES))
        except OSError as exc:
            if total == 0 and exc.errno in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                return None
            raise
        if not n:
            break
        total, offset, length = total + n, offset + n, length - n
    return total


def _read_and_drop(fd: int, ranges: list[tuple[int, int]]) -> int:
    """Read the byte ranges of `fd` into one buffer, over and over; returns how many were read."""
    buffer = bytearray(CHUNK_BYTES)
    total = 0
    with open(fd, "rb", buffering=0, closefd=False) as fh:
        for offset, length in ranges:
            fh.seek(offset)
            while length > 0:
                n = fh.readinto(memoryview(buffer)[:min(length, CHUNK_BYTES)])
                if not n:
                    break
                total += n
                length -= n
    return total
