"""A WAV or AIFF whose RIFF/FORM size ends inside its audio chunk (a writer's slip decoders ignore),
tagged by moodtag 0.4: mutagen added its ID3 chunk where the declared size ended, inside the audio,
and counted it into the RIFF/FORM size. moodtag now refuses to write there (tagger.iff.short_form);
untag takes such a chunk out again, and gives back the file as it was, byte for byte."""
from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest
from mutagen import aiff, id3, wave

from tagger import synth
from tagger.errors import TagError
from tagger.tags import OLD_TAG_INSIDE, TAG_INSIDE, MoodValues, read_mood, remove_mood, write_mood
from tests.conftest import run_cli
from tests.test_tags import private_data_home  # noqa: F401 (autouse: journals kept in tmp)

AUDIO = {"wav": b"data", "aiff": b"SSND"}
OLD_VALUES = {"MOOD": "calm", "MOODTAG_SCORE_CALM": "0.913", "MOODTAG_SCORE_EXCITING": "0.087",
              "MOODTAG_MODEL": "moodtag-rhythm 2.0.0"}


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("old_tag_sources")
    return {fmt: synth.make_track(folder / f"source.{fmt}", "calm", 6) for fmt in AUDIO}


def short_form(source: Path, path: Path, short_by: int) -> bytes:
    """`source` with its RIFF/FORM size `short_by` bytes too small (it ends inside the audio chunk)."""
    data = bytearray(source.read_bytes())
    order = "<" if data[:4] == b"RIFF" else ">"
    data[4:8] = struct.pack(order + "I", len(data) - 8 - short_by)
    path.write_bytes(bytes(data))
    return bytes(data)


def tag_as_0_4(path: Path, fields: dict[str, str]) -> None:
    """What moodtag 0.4.0's write_mood did to a WAV or AIFF without an ID3 chunk: mutagen's add_tags,
    TMOO and a TXXX per MOODTAG_* field, saved as ID3v2.4 (mutagen adds its chunk where the form ends)."""
    audio = (wave.WAVE if path.suffix == ".wav" else aiff.AIFF)(path)
    audio.add_tags()
    for name, text in fields.items():
        frame = id3.TMOO if name == "MOOD" else id3.TIT2 if name == "TITLE" else None
        audio.tags.add(frame(encoding=id3.Encoding.UTF8, text=[text]) if frame
                       else id3.TXXX(encoding=id3.Encoding.UTF8, desc=name, text=[text]))
    audio.save(v2_version=4, v23_sep=None)


def inside_the_audio(before: bytes, after: bytes) -> None:
    """The damage 0.4.0 did: bytes inserted where the old form ended, inside the audio chunk (whose size
    stays), the RIFF/FORM size grown by as many."""
    order = "<" if before[:4] == b"RIFF" else ">"
    old, new = (struct.unpack(order + "I", data[4:8])[0] for data in (before, after))
    end = 8 + old + (old & 1)
    audio = before.index(AUDIO["wav" if order == "<" else "aiff"])
    assert audio < end < audio + 8 + struct.unpack(order + "I", before[audio + 4:audio + 8])[0]
    assert new - old == len(after) - len(before) > 0
    assert after[:4] + after[8:end] == before[:4] + before[8:end] and after[end + new - old:] == before[end:]


@pytest.mark.parametrize("fmt", ["wav", "aiff"])
@pytest.mark.parametrize("short_by", [1000, 1001, 40_000])
def test_untag_takes_out_the_tag_0_4_wrote_inside_the_audio(tmp_path, sources, fmt, short_by):
    """The review's case (a RIFF size 1,000 bytes short, the tag longer than that, so it ran past the
    audio chunk's declared end), an odd size (the form's pad byte inside the audio), and a size that ends
    deep inside it: the real CLI untags the file, and it is again the file as it was, byte for byte.
    It said 'untagged 0 files, 1 without moodtag fields', and the tag stayed inside the audio."""
    lib = tmp_path / "lib"
    lib.mkdir()
    path = lib / f"song.{fmt}"
    original = short_form(sources[fmt], path, short_by)
    tag_as_0_4(path, OLD_VALUES)
    inside_the_audio(original, path.read_bytes())

    dry = run_cli("untag", "--dry-run", lib, check=True)
    assert "would untag 1 file, 0 without moodtag fields, 0 failed" in dry.stdout, dry.stdout
    proc = run_cli("untag", lib, check=True)
    assert "untagged 1 file, 0 without moodtag fields, 0 failed" in proc.stdout, proc.stdout + proc.stderr
    assert path.read_bytes() == original
    assert remove_mood(path) is False and path.read_bytes() == original


@pytest.mark.parametrize("fmt", ["wav", "aiff"])
def test_tags_0_4_wrote_again_and_again_all_come_out(tmp_path, sources, fmt):
    """0.4 never read back the tag it had put inside the audio: each new mood added another chunk after
    it, where the form ended then. One untag takes them all out."""
    path = tmp_path / f"song.{fmt}"
    original = short_form(sources[fmt], path, 40_000)
    tag_as_0_4(path, OLD_VALUES)
    tag_as_0_4(path, dict(OLD_VALUES, MOOD="exciting", MOODTAG_MODEL="moodtag-rhythm 2.0.1"))
    assert remove_mood(path, dry_run=True) is True
    assert remove_mood(path) is True
    assert path.read_bytes() == original


@pytest.mark.parametrize("fmt", ["wav", "aiff"])
def test_an_id3_tag_inside_the_audio_that_is_not_moodtags_stays(tmp_path, sources, fmt):
    """Another program's tag where the form ended (a title, no MOODTAG_ field) is not moodtag's to take
    out: the file is left as it is."""
    path = tmp_path / f"song.{fmt}"
    short_form(sources[fmt], path, 1000)
    tag_as_0_4(path, {"TITLE": "Song", "MOOD": "calm"})
    tagged = path.read_bytes()
    assert remove_mood(path) is False
    assert path.read_bytes() == tagged
    # and a scan's line says what is there, not the sizes of a chunk walk that ran into the audio
    with pytest.raises(TagError, match=f"^{re.escape(TAG_INSIDE)}; the file was not changed$"):
        write_mood(path, MoodValues(mood="calm", scores={"calm": 0.9, "exciting": 0.1}, model="m 1"))
    assert path.read_bytes() == tagged


@pytest.mark.parametrize("fmt", ["wav", "aiff"])
def test_a_scan_names_the_tag_0_4_wrote_inside_the_audio(tmp_path, sources, fmt, test_model):
    """A scan cannot write such a file's mood (nor read its old one): its line says what is there and what
    takes it out, not 'cut short' (the chunk walk ran into the audio after the tag)."""
    lib = tmp_path / "lib"
    lib.mkdir()
    path = lib / f"song.{fmt}"
    short_form(sources[fmt], path, 1000)
    tag_as_0_4(path, OLD_VALUES)
    tagged = path.read_bytes()
    with pytest.raises(TagError, match=f"^{re.escape(OLD_TAG_INSIDE)}; the file was not changed$"):
        write_mood(path, MoodValues(mood="calm", scores={"calm": 0.9, "exciting": 0.1}, model="m 1"))
    proc = run_cli("scan", lib, "--db", tmp_path / "c.db", "--model", test_model, "--jobs", "1")
    assert f"failed: {path}: tags not written: {OLD_TAG_INSIDE}; the file was not changed" in proc.stderr, proc.stderr
    assert path.read_bytes() == tagged and read_mood(path) is None


def test_a_tag_of_the_users_a_data_size_runs_into_stays_whole(sources, tmp_path):
    """A WAV whose data chunk declares more than it holds, running into the ID3 chunk after it (RIFF size
    right), that tag holding the user's title beside moodtag's fields: its place looked like 0.4's inside
    the audio, and untag deleted the whole chunk, title too. 0.4 wrote only the mood and its own fields
    into a tag it had just made: a tag with any other frame is not 0.4's, and stays."""
    import io

    wav = sources["wav"].read_bytes()
    tag = id3.ID3()
    for frame in (id3.TIT2(encoding=3, text=["Precious title"]), id3.TMOO(encoding=3, text=["calm"]),
                  id3.TXXX(encoding=3, desc="MOODTAG_MODEL", text=["moodtag-rhythm 2.0.0"])):
        tag.add(frame)
    held = io.BytesIO()
    tag.save(held, v2_version=4, padding=lambda info: 0)
    data = held.getvalue()
    at = wav.index(b"data")
    size = struct.unpack("<I", wav[at + 4:at + 8])[0]
    body = (wav[8:at + 4] + struct.pack("<I", size + 100) + wav[at + 8:] + b"id3 " + struct.pack("<I", len(data))
            + data + b"\0" * (len(data) & 1))
    path = tmp_path / "song.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    before = path.read_bytes()
    run = run_cli("untag", path, env={"XDG_DATA_HOME": str(tmp_path / "xdg-data")})
    assert path.read_bytes() == before, run.stdout + run.stderr
