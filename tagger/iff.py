"""Whether a WAV or AIFF file holds every chunk its headers declare.

A RIFF (WAV) or FORM (AIFF) file is a list of chunks, each an ID, a size and that many bytes, plus a
pad byte after an odd size. A file cut short (a copy or download that stopped) still declares its
audio chunk at full length: libsndfile reads what is there, and mutagen adds its ID3 chunk at the
end of the file, which is inside the declared audio, so players decode the tag as a burst of noise
and tag readers never find it. `overrun` finds such a chunk, reading only the chunk headers. A last
chunk of odd size without its pad byte (Python's `wave` module writes them) runs past the end by that
byte only: mutagen's new chunk would start at an odd offset, where no reader looks for it, so
`add_missing_pad` adds the byte first.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

CONTAINERS = {b"RIFF": "<", b"RIFX": ">", b"FORM": ">"}  # RF64 (64-bit sizes) is not read here
AUDIO_CHUNKS = (b"data", b"SSND")
UNKNOWN_SIZE = 0xFFFFFFFF  # what a WAV written to a pipe keeps in its size fields


@dataclass(frozen=True)
class Overrun:
    """A chunk whose declared end lies past the end of the file."""

    chunk: bytes      # its ID, e.g. b"data"
    declared: int     # its declared size (bytes), the pad byte not counted
    present: int      # how many of those bytes the file holds

    @property
    def audio(self) -> bool:
        return self.chunk in AUDIO_CHUNKS

    @property
    def pad_only(self) -> bool:
        """All its bytes are there; only the pad byte after its odd size is missing."""
        return self.present == self.declared

    @property
    def unknown_size(self) -> bool:
        return self.declared == UNKNOWN_SIZE

    def describe(self) -> str:
        name = self.chunk.decode("latin-1")
        if self.pad_only:
            return f"its last chunk ('{name}') has an odd size and lacks the pad byte that must follow it"
        if self.unknown_size:
            return f"its '{name}' chunk gives no size (a WAV written to a pipe, its header never finished)"
        return (f"it is cut short: its '{name}' chunk declares {self.declared:,} bytes and the file holds "
                f"{self.present:,} of them")


def overrun(fh) -> Overrun | None:
    """The first top-level chunk of a RIFF/RIFX/FORM file `fh` (binary, seekable) that runs past the
    file's end, or None (also for any other kind of file). Stray bytes after the last chunk, too few
    for a chunk header, are left alone."""
    fh.seek(0, 2)
    size = fh.tell()
    fh.seek(0)
    head = fh.read(12)
    order = CONTAINERS.get(head[:4])
    if order is None or len(head) < 12:
        return None
    pos = 12
    while pos + 8 <= size:
        fh.seek(pos)
        header = fh.read(8)
        chunk, declared = header[:4], struct.unpack(order + "I", header[4:])[0]
        start = pos + 8
        if start + declared > size:
            return Overrun(chunk, declared, size - start)
        pos = start + declared + (declared & 1)
        if pos > size:  # the pad byte of an odd last chunk is missing
            return Overrun(chunk, declared, declared)
    return None


def add_missing_pad(fh) -> bool:
    """Give an odd last chunk the pad byte it lacks (Python's `wave` module, for one, leaves it out),
    and the container a size that counts it, so that a chunk added after it starts where readers look.
    No byte of any chunk moves. True if the byte was added. `fh`: binary, readable and writable."""
    found = overrun(fh)
    if found is None or not found.pad_only:
        return False
    size = fh.seek(0, 2)
    fh.write(b"\0")
    fh.seek(0)
    head = fh.read(8)
    order = CONTAINERS[head[:4]]
    if struct.unpack(order + "I", head[4:])[0] in (size - 8, size - 7):  # it ended at the file's end
        fh.seek(4)
        fh.write(struct.pack(order + "I", size + 1 - 8))
    return True
