"""Read the next tracks' files ahead of the workers, so that a slow share's latency overlaps analysis.

On a network share each read a decoder makes waits a round trip (tens of milliseconds), and a decoder
opens, seeks and reads a file in many small pieces, one after the other, while its worker's core
idles. Here a few threads of the scan's parent read the files of the tracks about to be analysed, whole
and several at once, so that the OS keeps their bytes in its page cache (the Linux NFS and SMB clients
keep them across opens of an unchanged file); the worker then finds them there. They stay at most
`tracks` tracks ahead of the results, so the page cache holds only those few files. On a local disk
the cost is a copy out of the page cache, about a millisecond for a 5 MB file.
"""
from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

READ_AHEAD_PER_JOB = 4         # tracks read ahead of the results, per worker (two are in flight per worker)
READER_THREADS = 4             # files read at once
CHUNK_BYTES = 1 << 20          # one read
MAX_FILE_BYTES = 256 << 20     # of a larger file only the first CHUNK_BYTES (its headers) are read ahead


class ReadAhead:
    """Reads `paths`, in their order, on READER_THREADS threads, while at most `tracks` of them are
    read and not yet done (see `done`). Errors are ignored: the worker that opens the file reports them.
    Use as a context manager, or call `close()`."""

    def __init__(self, paths: list[Path], *, tracks: int, threads: int = READER_THREADS) -> None:
        self._paths = paths
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
            read_into_page_cache(path)


def read_into_page_cache(path: Path | str) -> int:
    """Read a file (of a larger one than MAX_FILE_BYTES, its first CHUNK_BYTES) and drop the bytes;
    returns how many were read (0 when it cannot be read)."""
    buffer = bytearray(CHUNK_BYTES)
    total = 0
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO put there since the walk must not block us
    except OSError:
        return 0
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return 0
        limit = CHUNK_BYTES if st.st_size > MAX_FILE_BYTES else MAX_FILE_BYTES
        with open(fd, "rb", buffering=0, closefd=False) as fh:
            while total < limit:
                n = fh.readinto(buffer)
                if not n:
                    break
                total += n
    except OSError:
        pass
    finally:
        os.close(fd)
    return total
