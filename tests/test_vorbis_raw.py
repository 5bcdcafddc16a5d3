"""Vorbis comments that mutagen cannot round-trip (FLAC, Ogg Vorbis, Opus from real encoders).

mutagen decodes a comment block with errors='replace' and writes every entry back from what it
decoded: a Latin-1 value comes back with U+FFFD, an entry without '=' as `unknownN=...`, a non-ASCII
key with '?', an invalid key (empty, '~') not at all, and an invalid UTF-8 vendor string changed.
moodtag's writes and removals must keep every entry that is not moodtag's byte for byte, in order,
with the vendor string, and the audio. The blocks are written raw here, through mutagen's own save
(which makes the Ogg pages and their CRCs), with the comment's bytes given instead of its render.
"""
from __future__ import annotations

import shutil
import struct
from dataclasses import replace
from pathlib import Path

import pytest
from mutagen import flac, oggopus, oggvorbis
from mutagen.ogg import OggPage

from tagger import synth
from tagger.errors import TagError
from tagger.tags import ForeignMood, MoodValues, read_mood, remove_mood, write_mood
from tests.conftest import run_cli

VALUES = MoodValues(mood="calm", scores={"calm": 0.91344, "exciting": 0.08656}, model="moodtag-cnn 1.0.0")
OURS = [b"MOOD=calm", b"MOODTAG_SCORE_CALM=0.913", b"MOODTAG_SCORE_EXCITING=0.087",
        b"MOODTAG_MODEL=moodtag-cnn 1.0.0"]
VENDOR = b"Old Tagger 0.9 \xa9 Caf\xe9"     # Latin-1: not UTF-8
FOREIGN = [
    b"ARTIST=Caf\xe9 del Mar",              # Latin-1 value
    b"a comment without an equals sign",
    b"T\xc3\x8dTULO=Canci\xc3\xb3n",        # a non-ASCII key (UTF-8)
    b"=a value without a key",
    b"NOTE~=a key with a tilde",             # not a valid key
    b"Title=Mixed case key",
    b"ARTIST=Second artist",                 # a duplicate key
    b"EMPTY=",
    b"MOODTAG_\xc3\x89=not moodtag's: a non-ASCII key",
    b"MOODTAGGER=keep me",
]
FORMATS = {  # name -> (synth format, mutagen class, what precedes the comment in its packet, framing)
    "flac": ("flac", flac.FLAC, b"", b""),
    "ogg": ("ogg", oggvorbis.OggVorbis, b"\x03vorbis", b"\x01"),
    "opus": ("opus", oggopus.OggOpus, b"OpusTags", b""),
}


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("raw_sources")
    return {name: synth.make_track(folder / f"source.{fmt}", "calm", 6.0) for name, (fmt, *_) in FORMATS.items()}


@pytest.fixture(autouse=True)
def private_data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))


def block(vendor: bytes, entries: list[bytes], framing: bytes) -> bytes:
    parts = [struct.pack("<I", len(vendor)), vendor, struct.pack("<I", len(entries))]
    for entry in entries:
        parts += [struct.pack("<I", len(entry)), entry]
    return b"".join(parts) + framing


def write_raw(path: Path, name: str, entries: list[bytes], vendor: bytes = VENDOR, tail: bytes = b"") -> None:
    """Give the file a comment block of exactly these entries (then `tail`, in an Ogg packet)."""
    write_block(path, name, block(vendor, entries, FORMATS[name][3]) + tail)


def write_block(path: Path, name: str, data: bytes) -> None:
    """Give the file a comment block of exactly these bytes, through mutagen's save."""
    audio = FORMATS[name][1](path)
    if audio.tags is None:
        audio.add_tags()
    audio.tags.write = lambda framing=False: data   # mutagen's save takes the comment's bytes from write()
    audio.tags._padding = 0
    audio.save(padding=lambda info: 0)


def ogg_packets(data: bytes) -> list[bytes]:
    from io import BytesIO

    fileobj, pages = BytesIO(data), []
    while fileobj.tell() < len(data):
        pages.append(OggPage(fileobj))
    return OggPage.to_packets(pages)


def comment(path: Path, name: str) -> tuple[bytes, list[bytes], bytes]:
    """(vendor, entries, what follows them) of the file's comment block, from its bytes."""
    _, _, prefix, _ = FORMATS[name]
    data = path.read_bytes()
    if name == "flac":
        pos = 4
        while True:
            code, size = data[pos] & 0x7F, int.from_bytes(data[pos + 1:pos + 4], "big")
            if code == 4:
                raw = data[pos + 4:pos + 4 + size]
                break
            assert not data[pos] & 0x80, "no comment block"
            pos += 4 + size
    else:
        raw = ogg_packets(data)[1]
        assert raw.startswith(prefix)
        raw = raw[len(prefix):]
    (size,) = struct.unpack_from("<I", raw, 0)
    vendor, pos = raw[4:4 + size], 4 + size
    (count,) = struct.unpack_from("<I", raw, pos)
    pos += 4
    entries = []
    for _ in range(count):
        (size,) = struct.unpack_from("<I", raw, pos)
        entries.append(raw[pos + 4:pos + 4 + size])
        pos += 4 + size
    return vendor, entries, raw[pos:].rstrip(b"\0")  # the framing bit, if any; not the padding


def audio(path: Path, name: str) -> bytes:
    """The stored audio: a FLAC file's frames, an Ogg stream's packets after its two headers."""
    data = path.read_bytes()
    if name == "flac":
        pos = 4
        while True:
            last, size = data[pos] & 0x80, int.from_bytes(data[pos + 1:pos + 4], "big")
            pos += 4 + size
            if last:
                return data[pos:]
    packets = ogg_packets(data)
    return b"".join(packets[2:] if name == "opus" else packets[3:])


def is_ours(entry: bytes) -> bool:
    key = entry.partition(b"=")[0].upper()
    return key == b"MOOD" or (key.startswith(b"MOODTAG_") and key.isascii())


@pytest.fixture(params=list(FORMATS))
def track(request, tmp_path, sources) -> tuple[Path, str]:
    name = request.param
    path = tmp_path / f"track.{FORMATS[name][0]}"
    shutil.copyfile(sources[name], path)
    write_raw(path, name, FOREIGN)
    assert comment(path, name) == (VENDOR, FOREIGN, FORMATS[name][3])
    return path, name


def test_write_and_remove_keep_every_other_entry_byte_for_byte(track):
    path, name = track
    sound = audio(path, name)
    assert read_mood(path) is None
    assert write_mood(path, VALUES) is True
    vendor, entries, end = comment(path, name)
    assert (vendor, [e for e in entries if not is_ours(e)], end) == (VENDOR, FOREIGN, FORMATS[name][3])
    assert entries == FOREIGN + OURS          # moodtag's fields appended, nothing else moved
    assert read_mood(path).mood == "calm"
    assert audio(path, name) == sound
    assert write_mood(path, VALUES) is False  # the same values: nothing to write

    assert remove_mood(path) is True
    assert comment(path, name) == (VENDOR, FOREIGN, FORMATS[name][3])
    assert read_mood(path) is None
    assert audio(path, name) == sound


def test_a_mood_that_is_not_utf8_is_foreign_and_comes_back_whole(track):
    """A mood field in Latin-1 is the file's own mood: read as text, kept, and with --replace-mood
    saved (its bytes, not their decoding) in MOODTAG_REPLACED_MOOD, which untag puts back."""
    path, name = track
    own = FOREIGN[:3] + [b"MOOD=D\xe9tendu"] + FOREIGN[3:]
    write_raw(path, name, own)
    state = read_mood(path)
    assert state.mood == "D\ufffdtendu" and state.model == ""
    with pytest.raises(ForeignMood):
        write_mood(path, VALUES)
    assert comment(path, name)[1] == own
    assert write_mood(path, VALUES, replace=True) is True
    entries = comment(path, name)[1]
    assert [e for e in entries if not is_ours(e)] == FOREIGN
    assert b"MOODTAG_REPLACED_MOOD=D\xe9tendu" in entries and b"MOOD=calm" in entries
    assert remove_mood(path) is True
    assert comment(path, name) == (VENDOR, FOREIGN + [b"MOOD=D\xe9tendu"], FORMATS[name][3])


def test_the_real_cli_scan_and_untag(tmp_path, sources, test_model):
    lib = tmp_path / "lib"
    lib.mkdir()
    for name in FORMATS:
        path = lib / f"t.{FORMATS[name][0]}"
        shutil.copyfile(sources[name], path)
        write_raw(path, name, FOREIGN)
    sounds = {name: audio(lib / f"t.{FORMATS[name][0]}", name) for name in FORMATS}
    db = tmp_path / "c.db"
    proc = run_cli("scan", lib, "--db", db, "--model", test_model, "--jobs", "1", check=True)
    summary = " ".join((proc.stdout + proc.stderr).split())
    assert "tags written 3" in summary and "failed 0" in summary, proc.stdout + proc.stderr
    for name in FORMATS:
        path = lib / f"t.{FORMATS[name][0]}"
        vendor, entries, end = comment(path, name)
        assert (vendor, [e for e in entries if not is_ours(e)], end) == (VENDOR, FOREIGN, FORMATS[name][3])
        assert entries[:len(FOREIGN)] == FOREIGN and read_mood(path) is not None
        assert audio(path, name) == sounds[name]
    proc = run_cli("untag", lib, "--db", db, check=True)
    assert "untagged 3 files, 0 without moodtag fields, 0 failed" in " ".join((proc.stdout + proc.stderr).split())
    for name in FORMATS:
        path = lib / f"t.{FORMATS[name][0]}"
        assert comment(path, name) == (VENDOR, FOREIGN, FORMATS[name][3])
        assert audio(path, name) == sounds[name]


CUT_SHORT = len(FOREIGN + OURS) + 1   # the number of the entry cut short below


@pytest.mark.parametrize("name, damage, cause", [
    ("ogg", "data after it", "unreadable data after its last entry"),
    ("opus", "data after it", "unreadable data after its last entry"),
    ("opus", "an entry cut short", f"entry {CUT_SHORT} runs past the end of the comment"),
])
def test_a_comment_that_cannot_be_written_back_as_it_is_is_refused(tmp_path, sources, name, damage, cause):
    """Bytes after an Ogg comment that mutagen's save would drop (not zero padding; in Opus, not data
    marked to be kept), or a last entry cut short (mutagen reads what there is, and would write that
    with its new length): the write and the removal are refused, the file stays as it is."""
    path = tmp_path / f"t.{FORMATS[name][0]}"
    shutil.copyfile(sources[name], path)
    if damage == "data after it":
        write_raw(path, name, FOREIGN + OURS, tail=b"\x00\x00junk")
    else:  # the count says one entry more than there are whole: its length says 40 bytes, 10 follow
        data = bytearray(block(VENDOR, FOREIGN + OURS, b""))
        data[4 + len(VENDOR):8 + len(VENDOR)] = struct.pack("<I", CUT_SHORT)
        write_block(path, name, bytes(data) + struct.pack("<I", 40) + b"ALBUM=Caf\xe9")
    data = path.read_bytes()
    with pytest.raises(TagError, match=rf"^damaged Vorbis comment \({cause}; the tag was not changed\)$"):
        write_mood(path, replace(VALUES, mood="exciting"))
    with pytest.raises(TagError, match=rf"^damaged Vorbis comment \({cause}; the tag was not changed\)$"):
        remove_mood(path)
    assert path.read_bytes() == data
    assert read_mood(path).mood == "calm"   # reading still works
