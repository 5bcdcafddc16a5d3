"""Tags moodtag must write back as they were, over real files (tagger.synth, real mutagen, the real CLI):
ID3 frames that mutagen files under one key (it merged them into one frame, or kept the last), empty
ID3 text frames (mutagen drops them as junk: the file was refused as damaged, forever), and a FLAC
Vorbis comment that moodtag's fields would push past FLAC's 16 MiB metadata block limit (a traceback
that stopped the scan)."""
from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import pytest
from mutagen import flac, id3, mp4

from tagger import synth
from tagger.errors import TagError
from tagger.tags import MoodValues, read_info, read_mood, remove_mood, write_mood
from tests.conftest import run_cli
from tests.test_tags import private_data_home  # noqa: F401 (autouse: the journal kept in tmp)

VALUES = MoodValues(mood="calm", scores={"calm": 0.913, "exciting": 0.087}, model="moodtag-cnn 1.0.0")
FLAC_BLOCK_MAX = 2 ** 24 - 1


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("fidelity_sources")
    return {fmt: synth.make_track(folder / f"source.{fmt}", "calm", 6.0) for fmt in ("mp3", "flac", "m4a")}


def frame(name: str, body: bytes, version: int = 3, flags: int = 0) -> bytes:
    """One ID3v2.3 or v2.4 frame, as another tagger wrote it."""
    size = struct.pack(">I", len(body)) if version == 3 else bytes((len(body) >> s) & 0x7F for s in (21, 14, 7, 0))
    return name.encode() + size + struct.pack(">H", flags) + body


def as_v24(v23_frame: bytes) -> bytes:
    """A v2.3 frame with its size as v2.4 has it (synchsafe)."""
    size = len(v23_frame) - 10
    return v23_frame[:4] + bytes((size >> s) & 0x7F for s in (21, 14, 7, 0)) + v23_frame[8:]


def text(name: str, value: str, version: int = 3) -> bytes:
    """A Latin-1 text frame as mutagen writes it (it ends the text with a NUL), so it is rewritten the same."""
    return frame(name, b"\x00" + value.encode("latin-1") + b"\x00", version)


def mp3_with_tag(path: Path, source: Path, frames: bytes, version: int) -> bytes:
    """`source`'s audio behind an ID3v2.`version` tag of `frames` (and padding); returns the audio."""
    body = frames + bytes(256)
    audio = after_id3v2(source.read_bytes())
    path.write_bytes(b"ID3" + bytes([version, 0, 0]) + bytes((len(body) >> s) & 0x7F for s in (21, 14, 7, 0))
                     + body + audio)
    return audio


def after_id3v2(data: bytes) -> bytes:
    if not data.startswith(b"ID3"):
        return data
    size = sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(data[6:10]))
    return data[10 + size:]


def frames_in_file(path: Path) -> list[tuple[str, int, bytes]]:
    """(ID, flags, bytes) of each frame of the file's ID3v2.3/v2.4 tag, in the file's order."""
    data = path.read_bytes()
    assert data[:3] == b"ID3"
    version = data[3]
    size = sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(data[6:10]))
    body, pos, found = data[10:10 + size], 0, []
    while pos + 10 <= len(body) and body[pos:pos + 4].strip(b"\0"):
        name, length, flags = struct.unpack(">4sIH", body[pos:pos + 10])
        if version == 4:
            length = sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(body[pos + 4:pos + 8]))
        found.append((name.decode(), flags, body[pos + 10:pos + 10 + length]))
        pos += 10 + length
    return found


def not_ours(frames: list[tuple[str, int, bytes]]) -> list[tuple[str, int, bytes]]:
    """The frames that are not moodtag's: its TMOO (with a text), its TXXX mood and MOODTAG_* frames."""
    def ours(name: str, body: bytes) -> bool:
        if name == "TMOO":
            return len(body) > 1
        if name != "TXXX":
            return False
        step = 2 if body[0] in (1, 2) else 1   # UTF-16 ends with two NULs, at an even place
        end = next(i for i in range(1, len(body) + 1, step) if not body[i:i + step].strip(b"\0"))
        desc = body[1:end].decode(("latin-1", "utf-16", "utf-16-be", "utf-8")[body[0]]).upper()
        return desc == "MOOD" or desc.startswith("MOODTAG_")
    return [f for f in frames if not ours(f[0], f[2])]


# --- ID3 frames mutagen files under one key -------------------------------------------------------

DUPLICATES = {  # two frames of one kind that mutagen files under one key, as two taggers leave them
    "USLT": (frame("USLT", b"\x00eng\x00lyrics verse A"), frame("USLT", b"\x00eng\x00lyrics verse B")),
    "COMM": (frame("COMM", b"\x00eng\x00first comment"), frame("COMM", b"\x00eng\x00second comment")),
    "TXXX": (frame("TXXX", b"\x00CATALOG\x00one"), frame("TXXX", b"\x00CATALOG\x00two")),
    "TPE1": (text("TPE1", "Artist A"), text("TPE1", "Artist B")),
    "TPE1 twice the same": (text("TPE1", "Artist"), text("TPE1", "Artist")),
    "WXXX": (frame("WXXX", b"\x00shop\x00http://a.example/"), frame("WXXX", b"\x00shop\x00http://b.example/")),
    "GEOB": (frame("GEOB", b"\x00a/b\x00f1\x00d\x00DATA1"), frame("GEOB", b"\x00a/b\x00f2\x00d\x00DATA2")),
    "POPM": (frame("POPM", b"me@x\x00\xc4\x00\x00\x00\x05"), frame("POPM", b"me@x\x00\x40\x00\x00\x00\x01")),
    "UFID": (frame("UFID", b"http://musicbrainz.org\x00id-1"), frame("UFID", b"http://musicbrainz.org\x00id-2")),
}


@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize("kind", list(DUPLICATES))
def test_frames_mutagen_files_under_one_key_are_each_kept_in_place(tmp_path, sources, kind, version):
    """mutagen merged the second into the first (COMM, TPE1, TXXX: one frame of NUL-separated values,
    equal values once) or kept only the last (USLT, WXXX, GEOB, POPM, UFID), on every moodtag write,
    and untag could not bring them back. Each is now written back as the file had it, in its place."""
    first, second = DUPLICATES[kind]
    if version == 4:
        first, second = (as_v24(f) for f in (first, second))
    path = tmp_path / "dups.mp3"
    audio = mp3_with_tag(path, sources["mp3"], first + text("TALB", "Album", version) + second, version)
    before = frames_in_file(path)
    assert len(before) == 3
    assert write_mood(path, VALUES) is True
    assert not_ours(frames_in_file(path)) == before
    assert read_mood(path) == VALUES and after_id3v2(path.read_bytes()) == audio
    assert remove_mood(path) is True
    assert frames_in_file(path) == before and after_id3v2(path.read_bytes()) == audio


def test_two_lyrics_frames_survive_a_scan_and_untag(tmp_path, sources, test_model):
    """The review's case through the real CLI: two USLT of one language and description (and two COMM);
    a plain scan lost the first lyrics."""
    lib = tmp_path / "lib"
    lib.mkdir()
    path = lib / "song.mp3"
    mp3_with_tag(path, sources["mp3"], text("TIT2", "T") + DUPLICATES["USLT"][0] + DUPLICATES["COMM"][0]
                 + DUPLICATES["USLT"][1] + DUPLICATES["COMM"][1], 3)
    before = frames_in_file(path)
    proc = run_cli("scan", lib, "--db", tmp_path / "c.db", "--model", test_model, "--jobs", "1")
    assert proc.returncode == 0 and "failed: " not in proc.stderr, proc.stderr
    assert read_mood(path) is not None
    assert not_ours(frames_in_file(path)) == before
    run_cli("untag", lib, "--db", tmp_path / "c.db", check=True)
    assert read_mood(path) is None and frames_in_file(path) == before


def test_moodtags_own_fields_held_twice_are_rewritten_once(tmp_path, sources):
    """Frames under one key that moodtag writes are its own to replace: two TXXX:MOODTAG_MODEL frames
    become one with the new model, not three."""
    path = tmp_path / "own.mp3"
    mp3_with_tag(path, sources["mp3"], text("TIT2", "T", 4) + frame("TMOO", b"\x03calm", 4)
                 + frame("TXXX", b"\x03MOODTAG_SCORE_CALM\x000.913", 4)
                 + frame("TXXX", b"\x03MOODTAG_SCORE_EXCITING\x000.087", 4)
                 + frame("TXXX", b"\x03MOODTAG_MODEL\x00moodtag-cnn 0.9.0", 4)
                 + frame("TXXX", b"\x03MOODTAG_MODEL\x00moodtag-cnn 0.9.1", 4), 4)
    assert write_mood(path, VALUES) is True
    models = [f for f in frames_in_file(path) if f[0] == "TXXX" and b"MOODTAG_MODEL" in f[2]]
    assert models == [("TXXX", 0, b"\x03MOODTAG_MODEL\x00moodtag-cnn 1.0.0\x00")]
    assert remove_mood(path) is True
    assert [f[0] for f in frames_in_file(path)] == ["TIT2"]


def test_an_id3v22_tags_duplicates_each_become_a_v24_frame(tmp_path, sources):
    """A v2.2 tag is written as v2.4: each of two TP1 frames becomes a TPE1 frame of its own."""
    body = b"".join(name.encode() + len(data).to_bytes(3, "big") + data for name, data in
                    (("TT2", b"\x00Title"), ("TP1", b"\x00Artist A"), ("TP1", b"\x00Artist B"))) + bytes(64)
    path = tmp_path / "v22.mp3"
    path.write_bytes(b"ID3\x02\x00\x00" + bytes((len(body) >> s) & 0x7F for s in (21, 14, 7, 0)) + body
                     + after_id3v2(sources["mp3"].read_bytes()))
    assert write_mood(path, VALUES) is True
    assert [(name, body) for name, _, body in not_ours(frames_in_file(path))] == [
        ("TIT2", b"\x00Title\x00"), ("TPE1", b"\x00Artist A\x00"), ("TPE1", b"\x00Artist B\x00")]


def test_an_id3v22_tag_with_two_pictures_is_left_as_it_is(tmp_path, sources):
    """mutagen's upgrade of a v2.2 tag to v2.4 made one picture of two (the back cover twice, the front
    cover gone, for good: untag could not bring it back); such a tag is refused, the file unchanged, and
    a v2.2 tag with one picture is still tagged, its picture kept."""
    def v22(path: Path, pictures: list[bytes]) -> bytes:
        pics = [b"\x00" + fmt + bytes([kind]) + b"\x00" + data for fmt, kind, data in
                ((b"JPG", 3, b"\xff\xd8FRONT"), (b"PNG", 4, b"\x89PNGBACK"))[:len(pictures)]]
        body = b"".join(name.encode() + len(data).to_bytes(3, "big") + data
                        for name, data in [("TT2", b"\x00Title")] + [("PIC", pic) for pic in pics]) + bytes(64)
        path.write_bytes(b"ID3\x02\x00\x00" + bytes((len(body) >> s) & 0x7F for s in (21, 14, 7, 0)) + body
                         + after_id3v2(sources["mp3"].read_bytes()))
        return path.read_bytes()

    two = tmp_path / "two.mp3"
    before = v22(two, [1, 2])
    with pytest.raises(TagError, match="ID3v2.2 tag with 2 pictures, which rewriting it as ID3v2.4 would cut "
                                       "to one; the tag was not changed"):
        write_mood(two, VALUES)
    assert two.read_bytes() == before
    one = tmp_path / "one.mp3"
    v22(one, [1])
    assert write_mood(one, VALUES) is True
    assert [(f.type, f.data) for f in id3.ID3(one).getall("APIC")] == [(3, b"\xff\xd8FRONT")]


def test_a_tmoo_replaced_in_a_v24_tag_comes_back_as_txxx_mood_once_the_tag_is_v23(tmp_path, sources):
    """A v2.4 file's own TMOO, replaced (--replace-mood); then another program saves the tag as v2.3
    (beets' id3v23); untag put TMOO back into the v2.3 tag, which the next v2.3 save (mutagen's
    update_to_v23) drops: the user's mood lost for good. It comes back as TXXX:mood, v2.3's mood field.
    A TMOO that was in a v2.3 tag (Mp3tag writes it there) comes back as TMOO."""
    v24 = tmp_path / "v24.mp3"
    mp3_with_tag(v24, sources["mp3"], as_v24(text("TIT2", "Song", 4)) + as_v24(text("TMOO", "Happy", 4)), 4)
    assert write_mood(v24, VALUES, replace=True) is True
    tags = id3.ID3(v24)
    tags.save(v24, v2_version=3)  # as beets saves it with id3v23: yes
    assert remove_mood(v24) is True
    tags = id3.ID3(v24)
    assert tags.version == (2, 3, 0) and "TMOO" not in tags and tags["TXXX:mood"].text == ["Happy"]
    v23 = tmp_path / "v23.mp3"
    mp3_with_tag(v23, sources["mp3"], text("TIT2", "Song") + text("TMOO", "Happy"), 3)
    assert write_mood(v23, VALUES, replace=True) is True
    assert remove_mood(v23) is True
    assert id3.ID3(v23)["TMOO"].text == ["Happy"]


# --- empty ID3 text frames ----------------------------------------------------------------------

EMPTY = {  # text frames that hold nothing, as taggers leave them
    "TCON, its encoding byte only": frame("TCON", b"\x00"),
    "TCOM, UTF-16, its encoding byte only": frame("TCOM", b"\x01"),
    "TXXX with a description, no text": frame("TXXX", b"\x00BARCODE\x00"),
    "TMOO, its encoding byte only (v2.3)": frame("TMOO", b"\x00"),
    "TCON, an empty text": frame("TCON", b"\x00\x00"),
}


@pytest.mark.parametrize(("kind", "version"), [(kind, version) for kind in EMPTY for version in (3, 4)
                                               if (kind, version) != ("TMOO, its encoding byte only (v2.3)", 4)])
def test_an_empty_text_frame_is_kept_and_the_file_tagged(tmp_path, sources, kind, version):
    """mutagen drops a text frame that is only its encoding byte as junk: moodtag called the tag damaged
    and never tagged the file. It is tagged now, the empty frame kept where it was (one of empty text,
    which mutagen writes as nothing, too), and untag gives back the frames as they were."""
    empty = EMPTY[kind]   # an empty v2.4 TMOO is moodtag's mood frame: the next test
    if version == 4:
        empty = as_v24(empty)
    path = tmp_path / "empty.mp3"
    audio = mp3_with_tag(path, sources["mp3"], text("TALB", "Album", version) + empty
                         + frame("COMM", b"\x00engd\x00c\x00", version), version)
    before = frames_in_file(path)
    assert write_mood(path, VALUES) is True
    assert not_ours(frames_in_file(path)) == before and read_mood(path) == VALUES
    assert remove_mood(path) is True
    assert frames_in_file(path) == before and after_id3v2(path.read_bytes()) == audio


def test_an_empty_mood_frame_gives_way_to_moodtags(tmp_path, sources):
    """An empty TMOO in a v2.4 tag, where moodtag writes TMOO: it holds nothing, and two TMOO frames
    would show players the empty one first; moodtag's takes its place (README)."""
    path = tmp_path / "tmoo.mp3"
    mp3_with_tag(path, sources["mp3"], text("TALB", "Album", 4) + frame("TMOO", b"\x00", 4), 4)
    assert write_mood(path, VALUES) is True
    assert [body for name, _, body in frames_in_file(path) if name == "TMOO"] == [b"\x03calm\x00"]


def test_an_empty_text_frame_no_longer_fails_the_scan(tmp_path, sources, test_model):
    """The review's case through the real CLI: `failed: ...: tags not written: damaged ID3 tag (frame 2,
    TCON, cannot be read; ...)` on every scan."""
    lib = tmp_path / "lib"
    lib.mkdir()
    path = lib / "song.mp3"
    mp3_with_tag(path, sources["mp3"], text("TIT2", "Title") + frame("TCON", b"\x00"), 3)
    proc = run_cli("scan", lib, "--db", tmp_path / "c.db", "--model", test_model, "--jobs", "1")
    assert proc.returncode == 0 and "damaged" not in proc.stderr, proc.stderr
    assert read_mood(path) is not None and ("TCON", 0, b"\x00") in frames_in_file(path)
    run_cli("untag", lib, "--db", tmp_path / "c.db", check=True)
    assert read_mood(path) is None and ("TCON", 0, b"\x00") in frames_in_file(path)


def test_a_damaged_text_frame_is_still_refused(tmp_path, sources):
    """Only a text frame that holds nothing is let through: one whose text cannot be decoded is not."""
    path = tmp_path / "bad.mp3"
    mp3_with_tag(path, sources["mp3"], text("TIT2", "Title") + frame("TCON", b"\x07Rock"), 3)
    before = path.read_bytes()
    with pytest.raises(TagError, match=r"^damaged ID3 tag \(frame 2, TCON, cannot be read"):
        write_mood(path, VALUES)
    assert path.read_bytes() == before


# --- grouped ID3 frames --------------------------------------------------------------------------

GROUP = {3: 0x0020, 4: 0x0040}   # the grouping identity frame flag: a group byte precedes the frame's data


def grouped_frames(version: int) -> bytes:
    """A grouped TPE1 (group 0), TKEY (group 7) and zlib-compressed COMM (group 9), as another tagger
    wrote them: v2.3 puts a compressed frame's 4-byte size before the group byte, v2.4 the group byte
    first, then the data length (synchsafe)."""
    comment = b"\x00engd\x00" + b"a long comment " * 20
    packed = zlib.compress(comment)
    if version == 3:
        comm = frame("COMM", struct.pack(">I", len(comment)) + b"\x09" + packed, 3, 0x0080 | GROUP[3])
    else:
        size = bytes((len(comment) >> s) & 0x7F for s in (21, 14, 7, 0))
        comm = frame("COMM", b"\x09" + size + packed, 4, GROUP[4] | 0x0008 | 0x0001)
    return (frame("TPE1", b"\x00" + b"\x00Artist\x00", version, GROUP[version])
            + frame("TKEY", b"\x07" + b"\x00Am", version, GROUP[version]) + comm)


@pytest.mark.parametrize("version", [3, 4])
def test_a_grouped_frame_is_read_kept_byte_for_byte_and_given_back(tmp_path, sources, version):
    """A frame with the grouping identity flag has a group byte before its data, which mutagen reads as
    the frame's first byte (a text frame's encoding): a TKEY of group 7 did not parse, and the file was
    refused as damaged ('frame 3, TKEY, cannot be read'), at every scan. The frames are read without
    that byte now (the artist players show), written back as the file has them (mutagen's save would
    drop the flag and the byte), and untag gives back the frames and the audio."""
    path = tmp_path / "grouped.mp3"
    audio = mp3_with_tag(path, sources["mp3"], text("TIT2", "Title", version) + grouped_frames(version), version)
    before = frames_in_file(path)
    assert read_info(path).artist == "Artist"
    assert write_mood(path, VALUES) is True
    assert not_ours(frames_in_file(path)) == before and read_mood(path) == VALUES
    assert read_info(path).artist == "Artist"
    assert remove_mood(path) is True
    assert frames_in_file(path) == before and after_id3v2(path.read_bytes()) == audio


def test_a_grouped_frame_no_longer_fails_the_scan(tmp_path, sources, test_model):
    """The review's case through the real CLI: `failed: ...: tags not written: damaged ID3 tag (frame 2,
    TKEY, cannot be read; the tag was not changed)`."""
    lib = tmp_path / "lib"
    lib.mkdir()
    path = lib / "g.mp3"
    mp3_with_tag(path, sources["mp3"], as_v24(text("TIT2", "Title")) + frame("TKEY", b"\x07\x03Am", 4, GROUP[4]), 4)
    grouped = ("TKEY", GROUP[4], b"\x07\x03Am")
    proc = run_cli("scan", lib, "--db", tmp_path / "c.db", "--model", test_model, "--jobs", "1")
    assert proc.returncode == 0 and "damaged" not in proc.stderr, proc.stderr
    assert read_mood(path) is not None and grouped in frames_in_file(path)
    run_cli("untag", lib, "--db", tmp_path / "c.db", check=True)
    assert read_mood(path) is None and grouped in frames_in_file(path)


@pytest.mark.parametrize("version", [3, 4])
def test_a_damaged_grouped_frame_is_still_refused(tmp_path, sources, version):
    """A grouped frame whose data, after its group byte, does not parse is damaged, as an ungrouped one."""
    path = tmp_path / "bad.mp3"
    mp3_with_tag(path, sources["mp3"], text("TIT2", "Title", version)
                 + frame("TCON", b"\x01" + b"\x07Rock", version, GROUP[version]), version)
    before = path.read_bytes()
    with pytest.raises(TagError, match=r"^damaged ID3 tag \(frame 2, TCON, cannot be read"):
        write_mood(path, VALUES)
    assert path.read_bytes() == before


# --- a FLAC Vorbis comment at FLAC's 16 MiB block limit -------------------------------------------

def flac_with_comment_near_the_limit(path: Path, source: Path, room: int) -> None:
    """`source` with a Vorbis comment `room` bytes short of FLAC's block limit (long lyrics here; a big
    cover kept in the comment as METADATA_BLOCK_PICTURE does the same)."""
    shutil.copyfile(source, path)
    audio = flac.FLAC(path)
    audio["LYRICS"] = "l"
    size = len(audio.tags.write(framing=False))
    audio["LYRICS"] = "l" * (FLAC_BLOCK_MAX - room - size + 1)
    audio.save(padding=lambda info: 0)
    assert len(flac.FLAC(path).tags.write(framing=False)) == FLAC_BLOCK_MAX - room


def test_a_flac_comment_moodtags_fields_would_push_past_16_mib_fails_one_file_not_the_scan(
        tmp_path, sources, test_model):
    """mutagen's save raised AttributeError ('VCFLACDict' object has no attribute
    '_invalid_overflow_size'): a traceback, exit 1, the rest of the library untagged. One line now,
    the file unchanged, the scan goes on; untag has nothing to do there."""
    lib = tmp_path / "lib"
    lib.mkdir()
    for name in ("a.flac", "c.flac"):
        shutil.copyfile(sources["flac"], lib / name)
    big = lib / "b.flac"
    flac_with_comment_near_the_limit(big, sources["flac"], 40)
    before = big.read_bytes()
    db = tmp_path / "c.db"
    proc = run_cli("scan", lib, "--db", db, "--model", test_model, "--jobs", "1", env={"COLUMNS": "400"})
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert (f"failed: {big}: tags not written: its Vorbis comment would pass FLAC's 16 MiB metadata block limit"
            in proc.stderr)
    assert big.read_bytes() == before
    assert read_mood(lib / "a.flac") is not None and read_mood(lib / "c.flac") is not None
    with pytest.raises(TagError, match="^its Vorbis comment would pass FLAC's 16 MiB metadata block limit$"):
        write_mood(big, VALUES, dry_run=True)
    assert remove_mood(big) is False and big.read_bytes() == before
    proc = run_cli("untag", lib, "--db", db, env={"COLUMNS": "400"})
    assert proc.returncode == 0 and "Traceback" not in proc.stderr and big.read_bytes() == before


def test_a_flac_comment_that_still_fits_is_tagged_and_untagged(tmp_path, sources):
    """The limit is FLAC's, to the byte: a comment that still fits with moodtag's fields is written."""
    path = tmp_path / "fits.flac"
    flac_with_comment_near_the_limit(path, sources["flac"], 400)
    assert write_mood(path, VALUES) is True and read_mood(path) == VALUES
    assert len(flac.FLAC(path).tags.write(framing=False)) <= FLAC_BLOCK_MAX
    assert remove_mood(path) is True and read_mood(path) is None


# --- a replaced mood comes back where it was -------------------------------------------------------

def own_moods(path: Path) -> list:
    """Every mood field of the file as players read it: the frame, atom or key, its encoding or data
    type, its values (and, for Vorbis, the entry's place)."""
    if path.suffix == ".mp3":
        tags = id3.ID3(path, translate=False, load_v1=False)
        return [(tags.version, frame.HashKey, int(frame.encoding), list(frame.text)) for frame in tags.values()
                if frame.FrameID == "TMOO" or frame.FrameID == "TXXX" and frame.desc.upper() == "MOOD"]
    if path.suffix == ".m4a":
        return [(key, [(bytes(v), int(v.dataformat)) for v in values]) for key, values in mp4.MP4(path).tags.items()
                if key.lower() == "----:com.apple.iTunes:mood".lower()]
    return [entry for entry in vorbis_entries(path) if entry.split(b"=")[0].upper() == b"MOOD"]


def vorbis_entries(path: Path) -> list[bytes]:
    from tagger import tags

    with open(path, "rb") as fh:
        audio, _ = tags._load(fh)
    return list(audio.tags.entries)


def test_a_replaced_mood_comes_back_into_the_field_it_came_from(tmp_path, sources, test_model):
    """scan --replace-mood, then untag: the other tool's mood came back as moodtag's own field (v2.3
    TMOO as TXXX:mood, which Navidrome and Kodi do not read; TXXX:MOOD as TMOO; Latin-1 as UTF-16; an
    MP4 ':mood' atom as ':MOOD', another atom; IMPLICIT data as UTF-8; Vorbis 'mood=' as 'MOOD=').
    Each comes back into its own frame, atom or key now, with its encoding or data type."""
    lib = tmp_path / "lib"
    lib.mkdir()
    mp3_with_tag(lib / "v23_tmoo.mp3", sources["mp3"], text("TIT2", "T") + text("TMOO", "Happy"), 3)
    mp3_with_tag(lib / "v24_txxx.mp3", sources["mp3"], text("TIT2", "T", 4) + frame("TXXX", b"\x03MOOD\x00Happy", 4), 4)
    mp3_with_tag(lib / "v23_two.mp3", sources["mp3"], text("TIT2", "T") + frame("TXXX", b"\x00MOOD\x00Happy")
                 + frame("TXXX", b"\x00mood\x00Sad"), 3)
    mp3_with_tag(lib / "v23_latin1.mp3", sources["mp3"],
                 text("TIT2", "T") + frame("TXXX", b"\x00Mood\x00Gem\xfctlich"), 3)
    body = b"".join(name.encode() + len(data).to_bytes(3, "big") + data for name, data in
                    (("TT2", b"\x00Title"), ("TXX", b"\x00MOOD\x00Happy"))) + bytes(64)
    (lib / "v22.mp3").write_bytes(b"ID3\x02\x00\x00" + bytes((len(body) >> s) & 0x7F for s in (21, 14, 7, 0)) + body
                                  + after_id3v2(sources["mp3"].read_bytes()))
    shutil.copyfile(sources["m4a"], lib / "lower.m4a")
    audio = mp4.MP4(lib / "lower.m4a")
    audio["----:com.apple.iTunes:mood"] = [mp4.MP4FreeForm(b"Happy", dataformat=mp4.AtomDataType.IMPLICIT)]
    audio.save()
    shutil.copyfile(sources["flac"], lib / "lower.flac")
    audio = flac.FLAC(lib / "lower.flac")
    audio["mood"] = "Happy"
    audio["TITLE"] = "after the mood"
    audio.save()
    tracks = sorted(lib.iterdir())
    before = {path.name: own_moods(path) for path in tracks}
    assert before["v22.mp3"] == [((2, 2, 0), "TXXX:MOOD", 0, ["Happy"])]
    entries = vorbis_entries(lib / "lower.flac")
    db = tmp_path / "c.db"
    run_cli("scan", lib, "--db", db, "--model", test_model, "--jobs", "1", "--replace-mood", check=True)
    assert all(own_moods(path) != before[path.name] for path in tracks)
    proc = run_cli("untag", lib, "--db", db, check=True)
    assert "untagged 7 files" in " ".join(proc.stdout.split())
    after = {path.name: own_moods(path) for path in tracks}
    before["v22.mp3"] = [((2, 4, 0), "TXXX:MOOD", 0, ["Happy"])]  # the tag is written as v2.4 (README)
    assert after == before
    assert [e for e in vorbis_entries(lib / "lower.flac") if e.upper() != b"MOOD=HAPPY"] == [
        e for e in entries if e.upper() != b"MOOD=HAPPY"]


def test_a_mood_replaced_by_an_older_moodtag_comes_back_as_before(tmp_path, sources):
    """A file whose MOODTAG_REPLACED_MOOD an older moodtag wrote (no MOODTAG_REPLACED_MOOD_FROM): the
    values go into moodtag's mood field, as they did; one whose origins were edited by hand, too."""
    for origins in ([], ['["TXXX", "Mood"]'], ['["TXXX", "Genre", 0]'], ['not json']):
        path = tmp_path / "older.flac"
        shutil.copyfile(sources["flac"], path)
        audio = flac.FLAC(path)
        audio["MOOD"] = "calm"
        audio["MOODTAG_SCORE_CALM"], audio["MOODTAG_SCORE_EXCITING"] = "0.913", "0.087"
        audio["MOODTAG_MODEL"] = "moodtag-cnn 1.0.0"
        audio["MOODTAG_REPLACED_MOOD"] = ["Happy"]
        if origins:
            audio["MOODTAG_REPLACED_MOOD_FROM"] = origins
        audio.save()
        assert remove_mood(path) is True
        assert [e for e in vorbis_entries(path) if b"MOOD" in e.upper()] == [b"MOOD=Happy"]


def ilst_atoms(path: Path) -> list[bytes]:
    """The atoms of an M4A file's `ilst`, each as the file holds it, in order."""
    with open(path, "rb") as fh:
        children = mp4.Atoms(fh).path(b"moov", b"udta", b"meta", b"ilst")[-1].children
        found = []
        for atom in children:
            fh.seek(atom.offset)
            found.append(fh.read(atom.length))
        return found


def atom(name: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), name) + payload


def data_atom(kind: int, payload: bytes, locale: int = 0) -> bytes:
    return atom(b"data", struct.pack(">II", kind, locale) + payload)


def test_an_m4a_files_other_atoms_are_written_back_as_they_were(tmp_path, sources):
    """mutagen's MP4 save renders every `ilst` atom again from what it parsed: a BMP cover (type 27)
    became a JPEG one (FFmpeg took it for MJPEG) and lost its name atom, `gnre` became `\\xa9gen` (two
    'Rock'), two `\\xa9ART` atoms became one, a text's locale was zeroed, and untag gave none of it
    back. Now only moodtag's atoms are added (at the end) and taken out."""
    path = tmp_path / "odd.m4a"
    shutil.copyfile(sources["m4a"], path)
    tags = mp4.MP4(path)
    tags["\xa9nam"] = "placeholder"
    tags.save()
    others = [atom(b"\xa9nam", data_atom(1, b"Title", locale=0x0409)),
              atom(b"\xa9ART", data_atom(1, b"Artist One")), atom(b"\xa9ART", data_atom(1, b"Artist Two")),
              atom(b"covr", data_atom(27, b"BM" + bytes(60)) + atom(b"name", b"\0\0\0\0front")),
              atom(b"gnre", data_atom(0, b"\x00\x12")), atom(b"\xa9gen", data_atom(1, b"Rock")),
              atom(b"tmpo", data_atom(21, b"\x00\x00\x00\x78"))]
    with open(path, "r+b") as fh:  # the atoms as another tagger wrote them (mutagen's own save places them)
        tags.tags._MP4Tags__save(fh, mp4.Atoms(fh), atom(b"ilst", b"".join(others)), None)
    assert ilst_atoms(path) == others
    write_mood(path, VALUES)
    written = ilst_atoms(path)
    assert written[:len(others)] == others and len(written) == len(others) + 4
    assert read_mood(path).mood == "calm"
    remove_mood(path)
    assert ilst_atoms(path) == others



@pytest.mark.parametrize("key, value", [("cpil", True), ("pgap", False), ("pcst", True), ("stik", [1])])
def test_an_m4a_with_a_flag_atom_is_tagged_and_untagged(tmp_path, sources, key, value):
    """mutagen holds cpil, pgap and pcst as a bool, not a list of values: every M4A that beets has written
    (cpil), and many from iTunes or Picard, failed as 'broken M4A file: 'bool' object is not iterable',
    for a scan, untag and --replace-mood alike, at every scan. The flag is kept, atom and all."""
    path = tmp_path / f"{key}.m4a"
    shutil.copyfile(sources["m4a"], path)
    tags = mp4.MP4(path)
    tags["\xa9nam"] = "Title"
    tags[key] = value
    tags.save()
    others = ilst_atoms(path)
    assert write_mood(path, VALUES) is True
    assert read_mood(path) == VALUES and mp4.MP4(path)[key] == value
    assert ilst_atoms(path)[:len(others)] == others
    assert remove_mood(path) is True
    assert ilst_atoms(path) == others

CHAPTER_INNER = {  # frames inside a CHAP that mutagen's reader or save would lose, by version
    "damaged": (4, lambda v: frame("TKEY", b"\x09xx", v)),
    "grouped": (4, lambda v: frame("TIT2", b"\x07\x03Sub", v, GROUP[v])),
    "two TXXX of one description": (4, lambda v: text("TXXX", "\x00a", v) + text("TXXX", "\x00b", v)),
    "unknown, v2.3": (3, lambda v: frame("XABC", b"private", v)),
    "encrypted, v2.3": (3, lambda v: frame("TIT3", b"\x81secret", v, 0x0040)),
    "two TIT2, v2.3": (3, lambda v: text("TIT2", "one", v) + text("TIT2", "two", v)),
}


@pytest.mark.parametrize("inner", CHAPTER_INNER)
def test_a_chapter_holding_frames_mutagen_would_lose_is_kept_byte_for_byte(tmp_path, sources, inner):
    """mutagen reads the frames inside a CHAP into a tag of their own, with every loss of a tag: a damaged
    one dropped silently (at the top level moodtag refuses the file), a grouped one written ungrouped,
    two of one key merged, an unknown or encrypted one dropped from a v2.3 tag. A CHAP (or CTOC), which
    moodtag never changes, is written back as the file has it, and untag gives back frames and audio."""
    version, make = CHAPTER_INNER[inner]
    header = b"ch1\x00" + struct.pack(">IIII", 0, 1000, 0xFFFFFFFF, 0xFFFFFFFF)
    chapter = frame("CHAP", header + make(version) + text("TIT2", "Chapter one", version), version)
    if version == 4:
        chapter = as_v24(chapter)
    path = tmp_path / "chapters.mp3"
    audio = mp3_with_tag(path, sources["mp3"], text("TIT2", "Title", version) + chapter, version)
    before = frames_in_file(path)
    assert write_mood(path, VALUES) is True
    assert not_ours(frames_in_file(path)) == before and read_mood(path) == VALUES
    assert remove_mood(path) is True
    assert frames_in_file(path) == before and after_id3v2(path.read_bytes()) == audio
