#!/usr/bin/python3
"""A read-only FUSE passthrough whose every read request waits LATENCY ms: a slow network share, for real.

    /usr/bin/python3 benchmarks/slowfs.py SOURCE MOUNTPOINT --latency-ms 20 [--stats FILE]

It mirrors the folder SOURCE at MOUNTPOINT (read only) and runs in the foreground until unmounted
(`fusermount -u MOUNTPOINT`); each READ the kernel sends waits --latency-ms before the bytes are read
from SOURCE, so that programs reading through MOUNTPOINT see a round trip per request, as on an
NFS or SMB share. Requests are answered by many threads at once (a share pipelines them too). The
kernel keeps what it read in its page cache across opens of an unchanged file (`kernel_cache`), as
the NFS and SMB clients do. --stats FILE: on exit, the reads per file (count and bytes) as JSON.

Needs /dev/fuse, the right to mount (root) and fuse-python (Debian: `apt install python3-fuse`); it
runs under the system's Python 3, not moodtag's virtual environment. Used by slow_storage.py.
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import threading
import time
from collections import defaultdict

import fuse
from fuse import Fuse

fuse.fuse_python_api = (0, 2)


class SlowFS(Fuse):
    def __init__(self, source: str, latency_s: float, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.source = source
        self.latency_s = latency_s
        self.mutex = threading.Lock()
        self.reads: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # path -> [requests, bytes]

    def _real(self, path: str) -> str:
        return self.source + path

    def getattr(self, path):
        return os.lstat(self._real(path))

    def readlink(self, path):
        return os.readlink(self._real(path))

    def readdir(self, path, offset):
        for name in [".", "..", *os.listdir(self._real(path))]:
            yield fuse.Direntry(name)

    def statfs(self):
        return os.statvfs(self.source)

    def access(self, path, mode):
        if not os.access(self._real(path), mode):
            return -errno.EACCES

    def open(self, path, flags):
        if flags & (os.O_WRONLY | os.O_RDWR):
            return -errno.EROFS
        if not os.path.isfile(self._real(path)):
            return -errno.ENOENT

    def read(self, path, size, offset):
        time.sleep(self.latency_s)
        fd = os.open(self._real(path), os.O_RDONLY)
        try:
            data = os.pread(fd, size, offset)
        finally:
            os.close(fd)
        with self.mutex:
            entry = self.reads[path]
            entry[0] += 1
            entry[1] += len(data)
        return data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source")
    parser.add_argument("mountpoint")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--stats", default=None)
    args = parser.parse_args()
    server = SlowFS(os.path.abspath(args.source), args.latency_ms / 1000.0, version="slowfs",
                    usage="slowfs SOURCE MOUNTPOINT", dash_s_do="setsingle")
    server.multithreaded = True
    server.parse(["slowfs", args.mountpoint, "-f", "-o", "ro,kernel_cache,default_permissions"], errex=1)
    try:
        server.main()
    finally:
        if args.stats:
            with open(args.stats, "w") as fh:
                json.dump({path: {"requests": n, "bytes": b} for path, (n, b) in sorted(server.reads.items())}, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
