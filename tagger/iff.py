"""Whether a WAV or AIFF file holds every chunk its headers declare.

A RIFF (WAV) or FORM (AIFF) file is a list of chunks, each an ID, a size and that many bytes, plus a
pad byte after an odd size. A file cut short (a copy or download that stopped) still declares its
audio chunk at full length: libsndfile reads what is there, and mutagen adds its ID3 chunk at the
end of the file, which is inside the declared audio, so players decode the tag as a burst of noise
and tag readers never find it. `overrun` finds such a chunk, reading only the chunk headers. A last
chunk of odd size without its pad byte (Python's `wave` module writes them) runs past the end by that
byte only: mutagen's new chunk would start at an odd offset, where no reader looks for it, so
`add_missing_pad` adds the byte first.

mutagen reads only the chunks inside the size the RIFF/FORM header declares, and adds its chunk where
that size ends. Bytes after it (an ID3v1 tag appended to a WAV, zeros) are not chunks, and stay after
the new one. A header whose size ends inside a chunk (a writer's slip that decoders ignore: they read
the chunks to the file's end) would put the new chunk inside that chunk, the audio: `short_form`
finds it. moodtag 0.4 and earlier let mutagen do so: `tags_inside` finds such a chunk, for untag to
take out.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

CONTAINERS = {b"RIFF": "<", b"RIFX": ">", b"FORM": ">"}  # RF64 (64-bit sizes) is not read here
AUDIO_CHUNKS = (b"data", b"SSND")
UNKNOWN_SIZE = 0xFFFFFFFF  # what a WAV written to a pipe keeps in its size fields
# A recorder stopped before it finished the header leaves 0 there instead: an audio chunk of 0 bytes
# followed by bytes that are no chunk (its audio, which FFmpeg reads to the file's end) is read as a
# size never written, as UNKNOWN_SIZE is; so is a RIFF/FORM size of 0 with chunks after it.


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
        """Its size was never written: UNKNOWN_SIZE, or 0 with its audio after it (see UNKNOWN_SIZE)."""
        return self.declared in (UNKNOWN_SIZE, 0)

    def describe(self) -> str:
        name = self.chunk.decode("latin-1")
        if self.pad_only:
            return f"its last chunk ('{name}') has an odd size and lacks the pad byte that must follow it"
        if self.declared == 0:
            return (f"its '{name}' chunk declares 0 bytes and {self.present:,} follow it (its header never "
                    "finished: a recording stopped early)")
        if self.unknown_size:
            return f"its '{name}' chunk gives no size (a WAV written to a pipe, its header never finished)"
        return (f"it is cut short: its '{name}' chunk declares {self.declared:,} bytes and the file holds "
                f"{self.present:,} of them")


@dataclass(frozen=True)
class ShortForm:
    """A RIFF/FORM header whose declared size ends inside one of its chunks (or that chunk's header)."""

    container: bytes  # b"RIFF", b"RIFX" or b"FORM"
    declared: int     # the bytes the header says the file holds (its size field, plus the 8 bytes of the header)
    chunk: bytes      # the ID of the chunk it ends in
    chunk_end: int    # where that chunk ends (its pad byte counted)

    def describe(self) -> str:
        name = self.chunk.decode("latin-1")
        inside = "its audio" if self.chunk in AUDIO_CHUNKS else "that chunk"
        return (f"its {self.container.decode('latin-1')} header says the file holds {self.declared:,} bytes, but its "
                f"'{name}' chunk runs to byte {self.chunk_end:,}: a tag would be written inside {inside}")


@dataclass(frozen=True)
class _Form:
    """A RIFF/RIFX/FORM file's header, as mutagen reads it."""

    container: bytes
    order: str        # the byte order of its sizes, for struct
    size_field: int   # its declared size
    file_size: int

    @property
    def end(self) -> int:
        """Where the form ends, its pad byte counted (mutagen's view: it adds its chunk here)."""
        return 8 + self.size_field + (self.size_field & 1)


def _form(fh) -> _Form | None:
    """The header of a RIFF/RIFX/FORM file `fh` (binary, seekable); None for any other kind of file."""
    file_size = fh.seek(0, 2)
    fh.seek(0)
    head = fh.read(12)
    order = CONTAINERS.get(head[:4])
    if order is None or len(head) < 12:
        return None
    size_field = struct.unpack(order + "I", head[4:8])[0]
    if size_field == 0 and file_size > 12:  # never written (UNKNOWN_SIZE): its chunks run to the file's end
        size_field = UNKNOWN_SIZE
    return _Form(head[:4], order, size_field, file_size)


def _chunks(fh, form: _Form, *, within_form: bool):
    """(ID, offset, declared size) of each top-level chunk whose 8-byte header the file holds; within_form:
    only those that start inside the declared form (what mutagen reads), else up to the file's end (what
    decoders read)."""
    limit = min(form.end, form.file_size) if within_form else form.file_size
    pos = 12
    while pos < limit and pos + 8 <= form.file_size:
        fh.seek(pos)
        header = fh.read(8)
        declared = struct.unpack(form.order + "I", header[4:])[0]
        yield header[:4], pos, declared
        if declared == 0 and header[:4] in AUDIO_CHUNKS and _audio_follows(fh, form, pos + 8):
            return  # the rest of the file is this chunk's audio (UNKNOWN_SIZE's note)
        pos += 8 + declared + (declared & 1)


def _audio_follows(fh, form: _Form, at: int) -> bool:
    """Whether the bytes from `at` (after an audio chunk that declares 0 bytes) are its audio rather
    than the next chunk: at least a chunk header's worth of them, not starting with a chunk ID (four
    printable ASCII characters) whose chunk fits in the file. Random bytes pass both tests about once in
    40,000 files of 5 MB; a recording's first samples, near silence, are 0x00 and 0xFF bytes."""
    if at + 8 > form.file_size:
        return False
    fh.seek(at)
    header = fh.read(8)
    size = struct.unpack(form.order + "I", header[4:])[0]
    return not (all(32 <= byte < 127 for byte in header[:4]) and at + 8 + size <= form.file_size)


def overrun(fh, *, within_form: bool = True) -> Overrun | None:
    """The first top-level chunk of a RIFF/RIFX/FORM file `fh` (binary, seekable) that runs past the
    file's end, or None (also for any other kind of file). Only the chunks that start inside the form
    its header declares, unless not `within_form` (decoders read on to the file's end). Stray bytes
    after the last chunk, too few for a chunk header, are left alone."""
    form = _form(fh)
    if form is None:
        return None
    for chunk, pos, declared in _chunks(fh, form, within_form=within_form):
        start = pos + 8
        if declared == 0 and chunk in AUDIO_CHUNKS and _audio_follows(fh, form, start):
            return Overrun(chunk, 0, form.file_size - start)
        if start + declared > form.file_size:
            return Overrun(chunk, declared, form.file_size - start)
        if start + declared + (declared & 1) > form.file_size:  # the pad byte of an odd last chunk is missing
            return Overrun(chunk, declared, declared)
    return None


def short_form(fh) -> ShortForm | None:
    """The chunk of a RIFF/RIFX/FORM file `fh` (binary, seekable) inside which the form its header
    declares ends, or None (also for any other kind of file). A form that ends between two chunks is
    whole: what follows it is not read as chunks."""
    form = _form(fh)
    if form is None:
        return None
    for chunk, pos, declared in _chunks(fh, form, within_form=True):
        end = pos + 8 + declared + (declared & 1)
        if end > form.end:
            return ShortForm(form.container, 8 + form.size_field, chunk, end)
    return None


# How far before where it ends tags_inside looks for the start of an ID3 chunk mutagen added: moodtag's
# fields, and mutagen's padding (1 KiB and 0.1% of the bytes after the tag); and a share of the file's size more.
TAG_INSIDE_SEARCH = 64 << 10
TAG_INSIDE_SHARE = 500


@dataclass(frozen=True)
class TagInside:
    """ID3 chunks that mutagen added where a RIFF/FORM header's size ended, inside the chunk that end cut
    (see short_form): each one where the form ended then, its bytes counted into the RIFF/FORM size, the
    cut chunk's own size left as it was. Taking them out and writing `form_size` back gives the file
    back as it was."""

    order: str                          # the byte order of the sizes, for struct
    chunk: bytes                        # the ID of the chunk they lie in
    tags: tuple[tuple[int, int], ...]   # (offset of its header, its declared size) of each, in file order
    form_size: int                      # the RIFF/FORM size field before the first was added

    @property
    def start(self) -> int:
        return self.tags[0][0]

    @property
    def length(self) -> int:
        """Their bytes: headers, data and pad bytes."""
        return sum(8 + size + (size & 1) for _, size in self.tags)

    def size_field(self) -> bytes:
        return struct.pack(self.order + "I", self.form_size)


def tags_inside(fh, names: tuple[bytes, ...] = (b"id3 ", b"ID3 ")) -> TagInside | None:
    """The ID3 chunks (one of `names`, holding an ID3 header) that end where the form of a RIFF/RIFX/FORM
    file `fh` (binary, seekable) ends, one after the other, the first where a form of the size left
    without them would end inside a chunk (TagInside); None if there are none (also for any other kind
    of file). Only a form whose chunks do not tile it (short_form, or a chunk ID that is no ID: audio
    read as chunks) is looked into, and only its last bytes (TAG_INSIDE_SEARCH)."""
    form = _form(fh)
    if form is None or form.size_field == UNKNOWN_SIZE or form.end > form.file_size or _tiled(fh, form):
        return None
    tags: list[tuple[int, int]] = []
    end = form.end
    while (found := _tag_ending_at(fh, end, names, form)) is not None:
        tags.insert(0, found)
        end = found[0]
    for first in range(len(tags)):  # the longest run whose first chunk lies inside the cut chunk
        kept = tags[first:]
        size = form.size_field - sum(8 + n + (n & 1) for _, n in kept)
        if size < 4:
            continue
        cut = _cut_at(fh, _Form(form.container, form.order, size, form.file_size), kept[0][0])
        if cut is not None:
            return TagInside(form.order, cut, tuple(kept), size)
    return None


def _tiled(fh, form: _Form) -> bool:
    """Whether the chunks inside the form end where it ends, each with an ID of printable ASCII."""
    end = 12
    for chunk, pos, declared in _chunks(fh, form, within_form=True):
        if not all(32 <= byte < 127 for byte in chunk):
            return False
        end = pos + 8 + declared + (declared & 1)
    return end == form.end


def _tag_ending_at(fh, end: int, names: tuple[bytes, ...], form: _Form) -> tuple[int, int] | None:
    """(offset, declared size) of the last chunk, one of `names` at an even offset and holding an ID3
    header, that ends (its pad byte counted) at `end`; None if there is none in the search's reach."""
    low = max(12, end - TAG_INSIDE_SEARCH - form.file_size // TAG_INSIDE_SHARE)
    fh.seek(low)
    data = fh.read(end - low)
    for name in names:
        at = len(data)
        while (at := data.rfind(name, 0, at)) >= 0:
            size = struct.unpack(form.order + "I", data[at + 4:at + 8])[0] if at + 8 <= len(data) else -1
            if (low + at) % 2 == 0 and low + at + 8 + size + (size & 1) == end and data[at + 8:at + 11] == b"ID3":
                return low + at, size
    return None


def _cut_at(fh, form: _Form, at: int) -> bytes | None:
    """The ID of the chunk whose data the form (ending at `at`) ends inside, or None."""
    for chunk, pos, declared in _chunks(fh, form, within_form=True):
        if pos + 8 <= at < pos + 8 + declared + (declared & 1):
            return chunk
    return None


def read_chunk(fh, chunk: bytes, limit: int) -> bytes | None:
    """The first `limit` bytes (fewer if it is shorter) of the first top-level chunk `chunk` of a
    RIFF/RIFX/FORM file `fh` (binary, seekable), walked as decoders walk it (to the file's end); None if
    there is none."""
    form = _form(fh)
    if form is None:
        return None
    for found, pos, declared in _chunks(fh, form, within_form=False):
        if found == chunk:
            fh.seek(pos + 8)
            return fh.read(min(declared, limit))
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
