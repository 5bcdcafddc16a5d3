"""tagger.tags over real files from real encoders: one test class per format (and ID3 version).

Each test copies a short untagged track, gives it realistic tags (artist, title, album, a comment,
a picture, ReplayGain, a field whose name merely looks like ours), and checks that moodtag's fields
round-trip while everything else in the file, tags, pictures and audio, stays as it was.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
from io import BytesIO
from pathlib import Path

import mutagen
import numpy as np
import pytest
from mutagen import aiff, apev2, flac, id3, mp3, mp4, oggopus, oggvorbis, wave

from tagger import synth
from tagger.errors import TagError
from tagger.tags import ForeignMood, MoodValues, mood_state, read_info, read_mood, remove_mood, write_mood
from tests.conftest import run_cli

SECONDS = 2.5
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))  # a picture's bytes: only their identity matters here
VALUES = MoodValues(mood="calm", scores={"calm": 0.91344, "exciting": 0.08656}, model="moodtag-cnn 1.0.0")
READ_BACK = MoodValues(mood="calm", scores={"calm": 0.913, "exciting": 0.087}, model="moodtag-cnn 1.0.0")
OTHER = MoodValues(mood="exciting", scores={"calm": 0.2, "exciting": 0.7, "tense": 0.1},
                   model="moodtag-cnn 2.0.0")
ARTIST, TITLE, ALBUM = "The Artist", "A Title ✓", "An Album"
DECOY = "MOODTAGGER"  # looks like ours, is not: must survive writes and removals


@pytest.fixture(autouse=True)
def private_data_home(tmp_path, monkeypatch):
    """Writes without a journal of their own use the one beside the default cache: keep it in tmp."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    """One short untagged track per synth format, encoded once for this module."""
    folder = tmp_path_factory.mktemp("tag_sources")
    return {fmt: synth.make_track(folder / f"source.{fmt}", "calm", SECONDS) for fmt in synth.FORMATS}


def is_ours(name: str) -> bool:
    return name.upper() == "MOOD" or name.upper().startswith("MOODTAG_")


def decoded(path: Path) -> np.ndarray:
    """The decoded samples: soundfile (libsndfile) where it reads the format, else PyAV."""
    if path.suffix == ".m4a":
        import av

        with av.open(str(path)) as container:
            return np.concatenate([frame.to_ndarray() for frame in container.decode(audio=0)], axis=1)
    import soundfile as sf

    return sf.read(str(path), dtype="float32", always_2d=True)[0]


def after_id3v2(data: bytes) -> bytes:
    """An MP3's bytes after its ID3v2 tag: the audio frames (and any ID3v1 tag at the end)."""
    if not data.startswith(b"ID3"):
        return data
    size = sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(data[6:10]))
    return data[10 + size + (10 if data[5] & 0x10 else 0):]


def flac_frames(data: bytes) -> bytes:
    """A FLAC file's audio frames: everything after its last metadata block."""
    assert data.startswith(b"fLaC")
    pos = 4
    while True:
        header, length = data[pos], int.from_bytes(data[pos + 1:pos + 4], "big")
        pos += 4 + length
        if header & 0x80:
            return data[pos:]


def mp4_mdat(data: bytes) -> bytes:
    """An MP4 file's media data: the payload of its top-level mdat atom."""
    pos = 0
    while pos < len(data):
        size, kind = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8]
        header = 8
        if size == 1:
            size, header = int.from_bytes(data[pos + 8:pos + 16], "big"), 16
        if kind == b"mdat":
            return data[pos + header:pos + size]
        pos += size
    raise AssertionError("no mdat atom")


class FormatContract:
    """What every format must do. Subclasses say how to tag a file and how to look inside it."""

    source: str          # the synth format of the pristine track
    filename: str        # the name of the copy under test
    format: str
    tag_kind: str

    def add_existing_tags(self, path: Path) -> None:
        raise NotImplementedError

    def other_tags(self, path: Path):
        """Everything in the tags that is not moodtag's, in a comparable form."""
        raise NotImplementedError

    def audio_bytes(self, path: Path) -> bytes | None:
        """The stored audio stream's bytes, where they are easy to cut out of the file."""
        return None

    def check_layout(self, path: Path) -> None:
        """Where and how this format stores moodtag's fields, read with plain mutagen."""
        raise NotImplementedError

    @pytest.fixture
    def track(self, tmp_path, sources) -> Path:
        path = tmp_path / self.filename
        shutil.copyfile(sources[self.source], path)
        self.add_existing_tags(path)
        return path

    def test_info(self, track):
        info = read_info(track)
        assert (info.format, info.tag_kind) == (self.format, self.tag_kind)
        assert (info.artist, info.title, info.album) == (ARTIST, TITLE, ALBUM)
        assert info.duration == pytest.approx(SECONDS, abs=0.1)
        assert read_mood(track) is None

    def test_round_trip(self, track):
        assert write_mood(track, VALUES) is True
        assert read_mood(track) == READ_BACK
        self.check_layout(track)

    def test_nothing_else_changes(self, track):
        tags, audio, samples = self.other_tags(track), self.audio_bytes(track), decoded(track)
        write_mood(track, VALUES)
        write_mood(track, OTHER)
        assert self.other_tags(track) == tags
        assert self.audio_bytes(track) == audio
        np.testing.assert_array_equal(decoded(track), samples)
        remove_mood(track)
        assert self.other_tags(track) == tags
        assert self.audio_bytes(track) == audio

    def test_same_values_leave_the_file_alone(self, track):
        assert write_mood(track, VALUES) is True
        past = 1_000_000_000 * 10**9
        os.utime(track, ns=(past, past))
        data = track.read_bytes()
        assert write_mood(track, READ_BACK) is False  # the same values as written
        assert write_mood(track, VALUES, dry_run=True) is False
        assert track.stat().st_mtime_ns == past
        assert track.read_bytes() == data

    def test_new_values_replace_old(self, track):
        write_mood(track, OTHER)
        assert read_mood(track).scores == {"calm": 0.2, "exciting": 0.7, "tense": 0.1}
        assert write_mood(track, VALUES) is True
        assert read_mood(track) == READ_BACK  # the stale "tense" score is gone

    def test_remove_takes_only_ours(self, track):
        tags = self.other_tags(track)
        assert remove_mood(track) is False  # nothing of ours yet
        write_mood(track, VALUES)
        assert remove_mood(track, dry_run=True) is True
        assert read_mood(track) == READ_BACK
        assert remove_mood(track) is True
        assert read_mood(track) is None
        assert self.other_tags(track) == tags
        assert remove_mood(track) is False

    def test_dry_run_writes_nothing(self, track):
        data = track.read_bytes()
        assert write_mood(track, VALUES, dry_run=True) is True
        assert track.read_bytes() == data

    def add_foreign_mood(self, path: Path, moods: list[str]) -> None:
        """Another tool's mood field, written as Picard or Mp3tag write it (plain mutagen)."""
        audio = mutagen.File(path)
        if self.tag_kind == "id3":
            if audio.tags is None:
                audio.add_tags()
            v24 = audio.tags.version >= (2, 4, 0)
            audio.tags.add(id3.TMOO(encoding=3, text=moods) if v24 else id3.TXXX(encoding=1, desc="MOOD", text=moods))
            audio.save(v2_version=4 if v24 else 3, v23_sep=None)
        elif self.tag_kind == "vorbis":
            audio["MOOD"] = moods
            audio.save()
        else:
            audio["----:com.apple.iTunes:MOOD"] = [mp4.MP4FreeForm(m.encode()) for m in moods]
            audio.save()

    def test_a_mood_moodtag_did_not_write_is_kept(self, track):
        self.add_foreign_mood(track, ["Happy", "Energetic"])
        data = track.read_bytes()
        assert mood_state(track)[1] == ["Happy", "Energetic"]
        with pytest.raises(ForeignMood, match=r"^the file's own mood 'Happy'; 'Energetic' \(not moodtag's\) is kept$"):
            write_mood(track, VALUES)
        with pytest.raises(ForeignMood):
            write_mood(track, VALUES, dry_run=True)
        assert remove_mood(track) is False  # untag takes only what moodtag wrote
        assert track.read_bytes() == data

    def test_a_replaced_mood_comes_back_on_untag(self, track):
        self.add_foreign_mood(track, ["Happy", "Energetic"])
        tags, audio = self.other_tags(track), self.audio_bytes(track)
        assert write_mood(track, VALUES, replace=True) is True
        assert mood_state(track) == (READ_BACK, [])  # moodtag's now
        assert write_mood(track, READ_BACK) is False
        assert write_mood(track, OTHER) is True  # a later analysis keeps what was replaced
        assert remove_mood(track) is True
        assert mood_state(track) == (MoodValues(mood="Happy", scores={}, model=""), ["Happy", "Energetic"])
        assert self.other_tags(track) == tags
        assert self.audio_bytes(track) == audio

    def test_read_only_file_is_refused_untouched(self, track):
        write_mood(track, OTHER)
        data = track.read_bytes()
        track.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        try:
            for attempt in (lambda: write_mood(track, VALUES), lambda: remove_mood(track)):
                with pytest.raises(TagError, match=r"^read-only file \(permission denied\)$"):
                    attempt()
            assert write_mood(track, OTHER) is False  # nothing to write: no error
        finally:
            track.chmod(0o644)
        assert track.read_bytes() == data


# --- ID3: MP3, WAV, AIFF ----------------------------------------------------------------------

class ID3Contract(FormatContract):
    tag_kind = "id3"
    file_class: type
    version: int  # the ID3v2 minor version the file starts with

    def add_existing_tags(self, path):
        audio = self.file_class(path)
        if audio.tags is None:
            audio.add_tags()
        tags = audio.tags
        enc = id3.Encoding.UTF8 if self.version == 4 else id3.Encoding.UTF16
        tags.add(id3.TPE1(encoding=enc, text=[ARTIST]))
        tags.add(id3.TIT2(encoding=enc, text=[TITLE]))
        tags.add(id3.TALB(encoding=enc, text=[ALBUM]))
        tags.add(id3.COMM(encoding=enc, lang="eng", desc="", text=["a comment"]))
        tags.add(id3.APIC(encoding=enc, mime="image/png", type=id3.PictureType.COVER_FRONT, desc="cover",
                          data=PNG))
        tags.add(id3.TXXX(encoding=enc, desc="REPLAYGAIN_TRACK_GAIN", text=["-6.50 dB"]))
        tags.add(id3.TXXX(encoding=enc, desc=DECOY, text=["keep me"]))
        if self.version == 3:  # v2.3-only frames, which mutagen's default v2.4 translation rewrites or drops
            tags.add(id3.TYER(encoding=enc, text=["2001"]))
            tags.add(id3.RVAD(adjustments=[0, 0, 300, 300, 0, 0]))
        else:
            tags.add(id3.TDRC(encoding=enc, text=["2001-02-03"]))
        audio.save(v2_version=self.version, v23_sep=None)

    def raw(self, path):
        return self.file_class(path, translate=False, load_v1=False).tags

    def other_tags(self, path):
        tags = self.raw(path)
        frames = sorted((key, repr(frame)) for key, frame in tags.items()
                        if key != "TMOO" and not (key.startswith("TXXX:") and is_ours(frame.desc)))
        return tags.version, frames

    def check_layout(self, path):
        tags = self.raw(path)
        assert tags.version == (2, self.version, 0)
        if self.version == 4:
            assert tags["TMOO"].text == ["calm"] and "TXXX:mood" not in tags
        else:
            assert tags["TXXX:mood"].text == ["calm"] and "TMOO" not in tags
        assert tags["TXXX:MOODTAG_SCORE_CALM"].text == ["0.913"]
        assert tags["TXXX:MOODTAG_SCORE_EXCITING"].text == ["0.087"]
        assert tags["TXXX:MOODTAG_MODEL"].text == ["moodtag-cnn 1.0.0"]

    def test_a_damaged_frame_is_refused_and_the_file_left_alone(self, track):
        """mutagen's reader skips a frame whose ID is not one, and its save writes back only what it
        read: writing the mood deleted the comment without a word. Now nothing is written."""
        write_mood(track, OTHER)
        assert self.raw(track)._padding > 0  # zero padding, as mutagen leaves it: written above
        data = bytearray(track.read_bytes())
        tag = data.find(b"ID3\x03" if self.version == 3 else b"ID3\x04")
        at = data.find(b"COMM", tag)
        data[at:at + 4] = b"CoMM"
        track.write_bytes(bytes(data))
        cause = r"^damaged ID3 tag \(unreadable data after frame [1-9]\d*; the tag was not changed\)$"
        for attempt in (lambda: write_mood(track, VALUES), lambda: write_mood(track, VALUES, dry_run=True),
                        lambda: remove_mood(track), lambda: remove_mood(track, dry_run=True)):
            with pytest.raises(TagError, match=cause):
                attempt()
        assert track.read_bytes() == data
        assert read_mood(track).mood == "exciting"  # reading still works



ID3V1 = (b"TAG" + b"v1 title".ljust(30, b"\0") + b"v1 artist".ljust(30, b"\0") + b"v1 album".ljust(30, b"\0")
         + b"1999" + b"v1 comment".ljust(28, b"\0") + b"\0\x07" + b"\x11")


def damaged_id3(path: Path, how: str) -> bytes:
    """The bytes of `path` (an MP3 with an ID3v2.4 tag and zero padding) damaged in one way."""
    data = bytearray(path.read_bytes())
    size = sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(data[6:10]))
    comm, txxx = data.find(b"COMM"), data.find(b"TXXX")
    if how == "junk in the padding":
        data[10 + size - 40] = 0x55
    elif how == "a frame header of zeros":  # mutagen stops there: all after it was padding to it
        data[comm:comm + 10] = bytes(10)
    elif how == "a frame past the end":
        data[comm + 4:comm + 8] = b"\x00\x00\x7f\x7f"
    elif how == "a frame mutagen cannot parse":
        data[txxx + 10] = 9  # no such text encoding
    return bytes(data)


@pytest.mark.parametrize("how, cause", [
    ("junk in the padding", r"unreadable data after frame \d+"),
    ("a frame header of zeros", r"unreadable data after frame \d+"),
    ("a frame past the end", r"frame \d+, COMM, runs past the end of the tag"),
    ("a frame mutagen cannot parse", r"frame \d+, TXXX, cannot be read"),
])
def test_id3_damage_of_every_kind_is_refused(tmp_path, sources, how, cause):
    track = tmp_path / "t.mp3"
    shutil.copyfile(sources["mp3"], track)
    TestMP3ID3v24().add_existing_tags(track)
    data = damaged_id3(track, how)
    track.write_bytes(data)
    with pytest.raises(TagError, match=rf"^damaged ID3 tag \({cause}; the tag was not changed\)$"):
        write_mood(track, VALUES)
    assert track.read_bytes() == data


COVER = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8192   # 2 MB: a large cover art


def tag_with_a_large_cover(path: Path, version: int) -> None:
    """A title, a 2 MB cover, a comment, then a TXXX and moodtag's fields (OTHER), in this order:
    other taggers write the cover before other frames (mutagen writes it last, so it is moved). 9
    frames and zero padding."""
    audio = mp3.MP3(path)
    audio.add_tags()
    enc = id3.Encoding.UTF8 if version == 4 else id3.Encoding.UTF16
    audio.tags.add(id3.TIT2(encoding=enc, text=[TITLE]))
    audio.tags.add(id3.APIC(encoding=enc, mime="image/jpeg", type=id3.PictureType.COVER_FRONT, desc="cover",
                            data=COVER))
    audio.tags.add(id3.COMM(encoding=enc, lang="eng", desc="", text=["a comment"]))
    audio.tags.add(id3.TXXX(encoding=enc, desc="REPLAYGAIN_TRACK_GAIN", text=["-6.50 dB"]))
    audio.save(v2_version=version, padding=lambda info: 500)
    write_mood(path, OTHER)
    data = path.read_bytes()
    frames, pos, end = [], 10, 10 + syncsafe(data[6:10])
    while pos + 10 <= end and data[pos:pos + 4].strip(b"\0"):
        size = syncsafe(data[pos + 4:pos + 8]) if version == 4 else int.from_bytes(data[pos + 4:pos + 8], "big")
        frames.append(data[pos:pos + 10 + size])
        pos += 10 + size
    frames.sort(key=lambda frame: {b"TIT2": 0, b"APIC": 1, b"COMM": 2}.get(frame[:4], 3))
    assert len(frames) == 9
    path.write_bytes(data[:10] + b"".join(frames) + data[pos:])


def syncsafe(four: bytes) -> int:
    return sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(four))


@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize("how, cause", [
    ("the cover cannot be parsed", "frame 2, APIC, cannot be read"),
    ("a damaged ID after the cover", "unreadable data after frame 2"),
    ("a frame after the cover cannot be parsed", "frame 3, COMM, cannot be read"),
    ("junk in the padding after the cover", "unreadable data after frame 9"),
])
def test_damage_in_or_after_a_large_cover_is_refused(tmp_path, sources, version, how, cause):
    """The check reads the frames' headers again, not their data: whether mutagen could parse a frame
    is what its reader noted as it parsed it. A frame after a large cover is still seen, and so is a
    cover or a later frame mutagen could not parse, or junk in the padding."""
    track = tmp_path / "t.mp3"
    shutil.copyfile(sources["mp3"], track)
    tag_with_a_large_cover(track, version)
    whole = tmp_path / "whole.mp3"
    shutil.copyfile(track, whole)
    assert write_mood(whole, VALUES) and read_mood(whole).mood == "calm"   # undamaged: written
    data = bytearray(track.read_bytes())
    order = [data.find(name) for name in (b"TIT2", b"APIC", b"COMM", b"TXXX")]
    assert order == sorted(order) and order[2] - order[1] > len(COVER)
    if how == "the cover cannot be parsed":
        data[order[1] + 10] = 9   # no such text encoding
    elif how == "a damaged ID after the cover":
        data[order[2]:order[2] + 4] = b"CoMM"
    elif how == "a frame after the cover cannot be parsed":
        data[order[2] + 10] = 9
    else:
        data[10 + syncsafe(data[6:10]) - 40] = 0x55
    track.write_bytes(bytes(data))
    for attempt in (lambda: write_mood(track, VALUES), lambda: remove_mood(track)):
        with pytest.raises(TagError, match=rf"^damaged ID3 tag \({cause}; the tag was not changed\)$"):
            attempt()
    assert track.read_bytes() == data
    # parsing every frame anew from the bytes (the check's way where mutagen's notes do not match the
    # tag it walks): the same cause
    from mutagen.id3._tags import ID3Header

    from tagger.tags import _id3_unread

    with open(track, "rb") as fh:
        header = ID3Header(fh)
        assert _id3_unread(header, fh.read(header.size - 10)) == cause


class TestMP3ID3v24(ID3Contract):
    source, filename, format = "mp3", "track.mp3", "mp3"
    file_class, version = mp3.MP3, 4

    def add_existing_tags(self, path):
        super().add_existing_tags(path)
        with open(path, "ab") as fh:  # an ID3v1 tag that disagrees with the v2 tag
            fh.write(ID3V1)

    def audio_bytes(self, path):
        return after_id3v2(path.read_bytes())

    def test_id3v1_tag_is_kept_as_it_was(self, track):
        write_mood(track, VALUES)
        assert track.read_bytes()[-128:] == ID3V1
        assert "TPE1" in self.raw(track) and self.raw(track)["TPE1"].text == [ARTIST]
        remove_mood(track)
        assert track.read_bytes()[-128:] == ID3V1


class TestMP3ID3v23(ID3Contract):
    source, filename, format = "mp3", "track.mp3", "mp3"
    file_class, version = mp3.MP3, 3

    def audio_bytes(self, path):
        return after_id3v2(path.read_bytes())

    def test_stays_v23_with_its_v23_frames(self, track):
        write_mood(track, VALUES)
        tags = self.raw(track)
        assert tags.version == (2, 3, 0)
        assert tags["TYER"].text == ["2001"] and "RVAD" in tags
        assert mutagen.File(track).tags["TXXX:mood"].text == ["calm"]  # as other mutagen users see it


class TestWAV(ID3Contract):
    source, filename, format = "wav", "track.wav", "wav"
    file_class, version = wave.WAVE, 4


class TestAIFF(ID3Contract):
    source, filename, format = "aiff", "track.aiff", "aiff"
    file_class, version = aiff.AIFF, 3


def test_a_mood_edited_by_hand_to_another_word_is_kept(tmp_path, sources):
    """moodtag wrote calm; the user changed it to a word of their own (moodtag's scores still there):
    that is the user's mood now, which a scan keeps and untag leaves; moodtag's other fields go."""
    track = tmp_path / "track.flac"
    shutil.copyfile(sources["flac"], track)
    write_mood(track, VALUES)
    audio = flac.FLAC(track)
    audio["MOOD"] = ["Relaxing"]
    audio.save()
    assert mood_state(track)[1] == ["Relaxing"]
    with pytest.raises(ForeignMood):
        write_mood(track, VALUES)
    assert remove_mood(track) is True
    assert list(flac.FLAC(track).tags) == [("MOOD", "Relaxing")]


def test_moodtags_own_mood_is_its_own_whatever_the_models_threshold(tmp_path, sources):
    """A model trained with its own threshold may say exciting at P(exciting) = 0.3: still moodtag's
    mood (one of the labels its scores name), rewritten by a later analysis and taken by untag."""
    track = tmp_path / "track.flac"
    shutil.copyfile(sources["flac"], track)
    low = MoodValues(mood="exciting", scores={"calm": 0.7, "exciting": 0.3}, model="mine 1.0.0")
    write_mood(track, low)
    assert mood_state(track) == (low, [])
    assert write_mood(track, VALUES) is True and read_mood(track) == READ_BACK
    write_mood(track, low)
    assert remove_mood(track) is True and read_mood(track) is None


# --- WAV with RIFF INFO text fields (LIST/INFO), as FFmpeg, Audacity and Windows write them -------

def write_wav_with_info(path: Path, samples: np.ndarray, rate: int, metadata: dict[str, str]) -> None:
    """A 16-bit WAV written by FFmpeg's muxer (PyAV), which puts `metadata` in a LIST/INFO chunk."""
    import av

    pcm = np.round(np.clip(samples, -1, 1) * 32767).astype(np.int16)   # (frames, channels)
    layout = "mono" if pcm.shape[1] == 1 else "stereo"
    with av.open(str(path), "w", format="wav") as container:
        container.metadata.update(metadata)
        stream = container.add_stream("pcm_s16le", rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm.reshape(1, -1)), format="s16", layout=layout)
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)


def riff_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """A RIFF/WAVE file's top-level chunks, (id, payload), walked per the RIFF spec (pad to even)."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    chunks, pos = [], 12
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos + 4:pos + 8], "little")
        chunks.append((data[pos:pos + 4], data[pos + 8:pos + 8 + size]))
        pos += 8 + size + size % 2
    return chunks


def ffprobe_tags(path: Path) -> dict[str, str]:
    """The format-level tags FFmpeg reads (what `ffprobe -show_format` lists), via PyAV; bytes that
    are not UTF-8 (FFmpeg passes them on as they are) shown as U+FFFD."""
    import av

    with av.open(str(path), metadata_errors="replace") as container:
        return dict(container.metadata)


class TestWAVRiffInfo(FormatContract):
    """A WAV whose artist, title and album are in its RIFF INFO chunk only (no ID3 chunk): moodtag
    reads them there, adds its ID3 chunk for the mood, and leaves the INFO chunk byte for byte."""

    source, filename, format, tag_kind = "wav", "info.wav", "wav", "id3"
    INFO = {"artist": ARTIST, "title": TITLE, "album": ALBUM, "genre": "Ambient", "date": "2001"}

    def add_existing_tags(self, path):
        import soundfile as sf

        samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
        write_wav_with_info(path, samples, rate, self.INFO)

    def other_tags(self, path):
        info = [payload for cid, payload in riff_chunks(path.read_bytes()) if cid == b"LIST" and payload[:4] == b"INFO"]
        shown = {k: v for k, v in ffprobe_tags(path).items() if not is_ours(k) and k != "TMOO"}
        return info, shown

    def audio_bytes(self, path):
        return dict(riff_chunks(path.read_bytes()))[b"data"]

    def check_layout(self, path):
        tags = wave.WAVE(path).tags
        assert tags["TMOO"].text == ["calm"] and tags["TXXX:MOODTAG_MODEL"].text == ["moodtag-cnn 1.0.0"]
        ids = [cid for cid, _ in riff_chunks(path.read_bytes())]
        assert ids.count(b"LIST") == 1 and ids.count(b"id3 ") == 1

    def test_the_fixture_is_a_valid_info_chunk(self, track):
        """FFmpeg (ffprobe's reader) finds the fields in the chunk that the fixture wrote."""
        assert {k: v for k, v in ffprobe_tags(track).items() if k in self.INFO} == self.INFO
        assert wave.WAVE(track).tags is None   # no ID3 chunk: the fields are in INFO alone

    def test_players_see_the_info_fields_and_the_mood(self, track):
        """After tagging, FFmpeg still shows the INFO fields, and the mood from the ID3 chunk (as
        the ID3 frame names: FFmpeg maps no ID3 frame to a `mood` key)."""
        write_mood(track, VALUES)
        shown = ffprobe_tags(track)
        assert {k: shown[k] for k in self.INFO} == self.INFO
        assert shown["TMOO"] == "calm" and shown["MOODTAG_MODEL"] == "moodtag-cnn 1.0.0"
        assert (read_info(track).artist, read_info(track).title) == (ARTIST, TITLE)

    def test_id3_wins_over_info_field_by_field(self, track):
        audio = wave.WAVE(track)
        audio.add_tags()
        audio.tags.add(id3.TIT2(encoding=id3.Encoding.UTF8, text=["The ID3 title"]))
        audio.save()
        info = read_info(track)
        assert (info.artist, info.title, info.album) == (ARTIST, "The ID3 title", ALBUM)


def info_chunk(fields: list[tuple[bytes, bytes]]) -> bytes:
    """A LIST/INFO chunk built per the RIFF spec: each field id, size, bytes, a pad byte if odd."""
    body = b"INFO" + b"".join(fid + len(v).to_bytes(4, "little") + v + b"\0" * (len(v) % 2) for fid, v in fields)
    return b"LIST" + len(body).to_bytes(4, "little") + body


def with_chunks(wav: bytes, *extra: bytes) -> bytes:
    """A WAV's bytes with `extra` chunks appended inside its RIFF chunk (the RIFF size fixed)."""
    body = wav[8:] + b"".join(extra)
    return b"RIFF" + len(body).to_bytes(4, "little") + body


def test_info_fields_from_windows_and_odd_writers(tmp_path, sources):
    """Windows-1252 text, odd lengths with their pad byte, a value without its NUL, an empty field,
    an unknown field and an `adtl` LIST before the INFO one are all read as players read them."""
    path = tmp_path / "odd.wav"
    adtl = b"LIST" + (4 + 12).to_bytes(4, "little") + b"adtl" + b"labl" + (4).to_bytes(4, "little") + b"\0\0\0\0"
    info = info_chunk([(b"INAM", b""), (b"IKEY", b"x\0"), (b"IART", b"Bj\xf6rk\0"),
                       (b"INAM", "Jóga – live".encode("utf-8") + b"\0"), (b"IPRD", b"Homogenic")])
    path.write_bytes(with_chunks(sources["wav"].read_bytes(), adtl, info))
    assert {k: v for k, v in ffprobe_tags(path).items() if k in ("artist", "album")} == \
        {"artist": "Bj\ufffdrk", "album": "Homogenic"}  # FFmpeg passes the raw byte on; moodtag decodes it
    got = read_info(path)
    assert (got.artist, got.title, got.album) == ("Björk", "Jóga – live", "Homogenic")
    assert write_mood(path, VALUES) and read_info(path).artist == "Björk"


def test_a_damaged_info_chunk_costs_only_its_fields(tmp_path, sources):
    """An INFO chunk whose last field claims more bytes than there are: the fields before it are
    read, the file stays readable and taggable."""
    path = tmp_path / "cut.wav"
    info = info_chunk([(b"IART", b"Someone\0")])
    cut = info + b"INAM" + (1000).to_bytes(4, "little") + b"trunc!"   # the LIST itself stays even-sized
    cut = cut[:4] + (len(cut) - 8).to_bytes(4, "little") + cut[8:]
    path.write_bytes(with_chunks(sources["wav"].read_bytes(), cut))
    got = read_info(path)
    assert (got.format, got.artist, got.title) == ("wav", "Someone", None)
    assert got.duration == pytest.approx(SECONDS, abs=0.1)
    assert write_mood(path, VALUES) and read_mood(path) == READ_BACK


def test_untagged_mp3_gets_id3v24(tmp_path, sources):
    path = tmp_path / "bare.mp3"
    shutil.copyfile(sources["mp3"], path)
    audio = path.read_bytes()
    assert read_info(path).artist is None and read_mood(path) is None
    assert write_mood(path, VALUES) is True
    tags = id3.ID3(path)
    assert tags.version == (2, 4, 0) and tags["TMOO"].text == ["calm"]
    assert after_id3v2(path.read_bytes()) == audio
    assert remove_mood(path) is True and after_id3v2(path.read_bytes()) == audio


def id3v22_mp3(path: Path, source: Path, frames: list[tuple[str, bytes]]) -> bytes:
    """`source`'s MP3 frames behind an ID3v2.2 tag of `frames` (3-letter IDs, as old iTunes wrote them)."""
    body = b"".join(name.encode() + len(data).to_bytes(3, "big") + data for name, data in frames) + bytes(64)
    size = bytes((len(body) >> shift) & 0x7F for shift in (21, 14, 7, 0))
    audio = after_id3v2(source.read_bytes())
    path.write_bytes(b"ID3\x02\x00\x00" + size + body + audio)
    return audio


def test_an_id3v22_tag_becomes_v24_with_every_frame(tmp_path, sources):
    """mutagen writes no v2.2; the tag became v2.3, which has no frame for iTunes' sort fields (TSP, TSA,
    TST), so a scan dropped them without a word and untag could not bring them back. It becomes v2.4
    now, which has them; a v2.2 frame that no later version has is refused, the file untouched."""
    path = tmp_path / "itunes.mp3"
    audio = id3v22_mp3(path, sources["mp3"], [
        ("TT2", b"\x00Title"), ("TP1", b"\x00Artist"), ("TSP", b"\x00Sort Artist"), ("TSA", b"\x00Sort Album"),
        ("TST", b"\x00Sort Title"), ("TS2", b"\x00Sort Album Artist"), ("COM", b"\x00engd\x00a comment")])
    assert write_mood(path, VALUES) is True
    tags = id3.ID3(path, translate=False)
    assert tags.version == (2, 4, 0) and tags["TMOO"].text == ["calm"]
    kept = {key: str(frame) for key, frame in tags.items() if not key.startswith(("TMOO", "TXXX"))}
    assert kept == {"TIT2": "Title", "TPE1": "Artist", "TSOP": "Sort Artist", "TSOA": "Sort Album",
                    "TSOT": "Sort Title", "TSO2": "Sort Album Artist", "COMM:d:eng": "a comment"}
    assert after_id3v2(path.read_bytes()) == audio
    assert remove_mood(path) is True
    after = id3.ID3(path, translate=False)
    assert {key: str(frame) for key, frame in after.items()} == kept and after_id3v2(path.read_bytes()) == audio

    for frame, name in ((("XYZ", b"an iTunes private frame"), "XYZ"), (("TSI", b"\x00123456"), "TSIZ"),
                        (("TRD", b"\x00June 1st"), "TRDA")):  # unknown, or v2.3 frames that v2.4 drops
        odd = tmp_path / "odd.mp3"
        id3v22_mp3(odd, sources["mp3"], [("TT2", b"\x00Title"), frame])
        before = odd.read_bytes()
        with pytest.raises(TagError, match=rf"^ID3v2.2 tag with frames no later ID3 version has \({name}\), "
                                           r"which rewriting it would lose; the tag was not changed$"):
            write_mood(odd, VALUES)
        assert odd.read_bytes() == before


@pytest.mark.parametrize("version", [3, 4])
def test_frames_keep_the_files_order(tmp_path, sources, version):
    """mutagen's save sorts the frames (a few by name, then by size): a short German comment went before
    the long English one, and players that show the first COMM (FFmpeg, and those built on it) showed
    the other after a scan; untag kept the new order. The file's order is kept now, moodtag's own
    frames after it."""
    import av

    from mutagen.id3._tags import ID3SaveConfig, save_frame

    frames = [id3.TIT2(encoding=1, text=["Title"]), id3.APIC(encoding=1, mime="image/png", type=3, data=PNG),
              id3.COMM(encoding=1, lang="eng", desc="", text=["The long English comment, shown first"]),
              id3.COMM(encoding=1, lang="deu", desc="", text=["kurz"]),
              id3.USLT(encoding=1, lang="eng", desc="", text="many lines of lyrics " * 20),
              id3.USLT(encoding=1, lang="deu", desc="", text="kurz"),
              id3.TXXX(encoding=1, desc="BARCODE", text=["0123"]), id3.TPE1(encoding=1, text=["Artist"])]
    body = b"".join(save_frame(frame, config=ID3SaveConfig(version, None)) for frame in frames) + bytes(256)
    size = bytes((len(body) >> shift) & 0x7F for shift in (21, 14, 7, 0))
    path = tmp_path / "comments.mp3"  # the frames in this order, as another tagger may leave them
    path.write_bytes(bytes([0x49, 0x44, 0x33, version, 0, 0]) + size + body + after_id3v2(sources["mp3"].read_bytes()))
    order = list(id3.ID3(path, translate=False).keys())
    assert order[2:4] == ["COMM::eng", "COMM::deu"]
    assert write_mood(path, VALUES) is True
    after = list(id3.ID3(path, translate=False).keys())
    assert after[:len(order)] == order and all(key.startswith(("TMOO", "TXXX:mood", "TXXX:MOODTAG")) for key in after[len(order):])
    with av.open(str(path)) as container:
        assert container.metadata["comment"] == "The long English comment, shown first"
    assert remove_mood(path) is True
    assert list(id3.ID3(path, translate=False).keys()) == order


@pytest.mark.parametrize("fmt", ["wav", "aiff"])
def test_untag_gives_back_a_wav_or_aiff_without_an_id3_chunk_as_it_was(tmp_path, sources, fmt):
    """untag left the ID3 chunk moodtag had added, empty (1,172 bytes of a bare ID3v2.4 tag and padding),
    and the RIFF/FORM size grown; an MP3's tag left empty was already removed whole. One that holds the
    user's frames stays (the contract tests)."""
    path = tmp_path / f"plain.{fmt}"
    shutil.copyfile(sources[fmt], path)
    original = path.read_bytes()
    assert write_mood(path, VALUES) is True and len(path.read_bytes()) > len(original)
    assert remove_mood(path) is True
    assert path.read_bytes() == original


def aiff_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(ID, data) of each chunk of an AIFF file's FORM, in order."""
    pos, found = 12, []
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos + 4:pos + 8], "big")
        found.append((data[pos:pos + 4], data[pos + 8:pos + 8 + size]))
        pos += 8 + size + (size & 1)
    return found


def test_an_aiff_id3_chunk_spelled_lowercase_is_read_and_updated_in_place(tmp_path, sources):
    """An AIFF whose ID3 tag is in an 'id3 ' chunk (TagLib reads that spelling too; mutagen's AIFF reader
    only 'ID3 '): its title and artist were not shown, and a scan added a second, 'ID3 ' chunk after it.
    The tag is read there, and written back there, the chunk's ID as it was; untag gives the file back."""
    tag = id3.ID3()
    tag.add(id3.TIT2(encoding=3, text=TITLE))
    tag.add(id3.TPE1(encoding=3, text=ARTIST))
    body = BytesIO()
    tag.save(body, v2_version=4, padding=lambda info: 1024)  # room for moodtag's fields: the chunk keeps its size
    size = len(body.getvalue())
    chunk = b"id3 " + size.to_bytes(4, "big") + body.getvalue() + bytes(size & 1)  # and its pad byte
    data = sources["aiff"].read_bytes()
    original = data[:4] + (len(data) - 8 + len(chunk)).to_bytes(4, "big") + data[8:] + chunk
    path = tmp_path / "lower.aiff"
    path.write_bytes(original)
    info = read_info(path)
    assert (info.title, info.artist) == (TITLE, ARTIST)
    assert write_mood(path, VALUES) is True and read_mood(path) == READ_BACK
    assert [cid for cid, _ in aiff_chunks(path.read_bytes())] == [cid for cid, _ in aiff_chunks(original)]
    assert read_info(path).title == TITLE
    assert remove_mood(path) is True
    assert path.read_bytes() == original


def test_an_aiff_id3_chunk_spelled_lowercase_that_holds_no_tag_is_left_as_it_is(tmp_path, sources):
    """An 'id3 ' chunk of another program's data (no ID3 header) was taken for the tag's chunk: the mood
    was written over its data, and untag deleted the chunk. It stays; the tag gets its own 'ID3 '."""
    chunk = b"id3 " + (12).to_bytes(4, "big") + b"private data"
    data = sources["aiff"].read_bytes()
    original = data[:4] + (len(data) - 8 + len(chunk)).to_bytes(4, "big") + data[8:] + chunk
    path = tmp_path / "private.aiff"
    path.write_bytes(original)
    assert write_mood(path, VALUES) is True and read_mood(path) == READ_BACK
    assert (b"id3 ", b"private data") in aiff_chunks(path.read_bytes())
    assert remove_mood(path) is True
    assert path.read_bytes() == original


@pytest.mark.parametrize("fmt, chunk_id", [("wav", b"ID3 "), ("wav", b"id3 "), ("aiff", b"ID3 ")])
def test_an_id3_chunk_that_holds_no_tag_is_refused_not_overwritten(tmp_path, sources, fmt, chunk_id):
    """A WAV or AIFF ID3 chunk holding no ID3 tag (damaged, or another program's data): mutagen found
    no tag, and its save wrote the mood over the chunk's bytes; untag then deleted the chunk. The file
    is refused with one line and left as it is."""
    data = sources[fmt].read_bytes()
    order = "little" if fmt == "wav" else "big"
    chunk = chunk_id + (12).to_bytes(4, order) + b"private data"
    original = data[:4] + (len(data) - 8 + len(chunk)).to_bytes(4, order) + data[8:] + chunk
    path = tmp_path / f"private.{fmt}"
    path.write_bytes(original)
    with pytest.raises(TagError, match=f"its '{chunk_id.decode()}' chunk holds no ID3 tag .*the file was not changed"):
        write_mood(path, VALUES)
    assert path.read_bytes() == original


def test_default_journal_is_beside_the_default_cache(tmp_path, sources):
    path = tmp_path / "bare.mp3"
    shutil.copyfile(sources["mp3"], path)
    assert write_mood(path, VALUES) is True
    assert (tmp_path / "xdg-data" / "moodtag" / "moodtag.db-undo").is_dir()


# --- MP3: a first ID3v2 tag takes the fields of an ID3v1 or APEv2 tag ----------------------------

APE_FIELDS = {"Title": "Ape Title ✓", "Artist": "Ape Artist", "Album": "Ape Album", "Year": "2004",
              "Track": "3/12", "Genre": "Jazz", "Comment": "ape comment"}


def legacy_mp3(tmp_path: Path, sources, *, v1: bool, ape: bool) -> Path:
    """An MP3 without an ID3v2 tag: its audio, then an APEv2 tag and/or an ID3v1 tag."""
    path = tmp_path / "legacy.mp3"
    shutil.copyfile(sources["mp3"], path)
    if ape:
        tag = apev2.APEv2()
        tag.update(APE_FIELDS)
        tag.save(path)
    if v1:
        with open(path, "ab") as fh:
            fh.write(ID3V1)
    return path


@pytest.mark.parametrize("v1, ape", [(True, False), (False, True)], ids=["v1-only", "ape-only"])
def test_an_mp3_without_id3v2_shows_the_artist_players_show(tmp_path, sources, v1, ape):
    """Before moodtag writes anything (what a scan's worker reads and caches): the ID3v1 or APEv2 tag's
    artist, title and album, as players fall back to them."""
    path = legacy_mp3(tmp_path, sources, v1=v1, ape=ape)
    info = read_info(path)
    expected = ("v1 title", "v1 artist", "v1 album") if v1 else (APE_FIELDS["Title"], APE_FIELDS["Artist"],
                                                                  APE_FIELDS["Album"])
    assert (info.title, info.artist, info.album) == expected


def test_id3v1_only_mp3_keeps_title_and_artist_in_v2(tmp_path, sources):
    path = legacy_mp3(tmp_path, sources, v1=True, ape=False)
    original = path.read_bytes()
    assert write_mood(path, VALUES) is True
    tags = id3.ID3(path, translate=False, load_v1=False)
    assert {key: tags[key].text for key in ("TIT2", "TPE1", "TALB", "TDRC", "TRCK", "TCON")} == {
        "TIT2": ["v1 title"], "TPE1": ["v1 artist"], "TALB": ["v1 album"], "TDRC": [id3.ID3TimeStamp("1999")],
        "TRCK": ["7"], "TCON": ["17"]}
    assert tags["TCON"].genres == ["Rock"]
    assert tags.getall("COMM")[0].text == ["v1 comment"] and tags["TMOO"].text == ["calm"]
    assert path.read_bytes()[-128:] == ID3V1   # the v1 tag byte for byte
    info = read_info(path)
    assert (info.title, info.artist, info.album) == ("v1 title", "v1 artist", "v1 album")
    assert read_mood(path) == READ_BACK
    assert remove_mood(path) is True
    assert path.read_bytes() == original   # untag gives the file back as it was


@pytest.mark.parametrize("v1", [False, True], ids=["ape-only", "ape-and-v1"])
def test_apev2_mp3_keeps_its_fields_in_v2(tmp_path, sources, v1):
    path = legacy_mp3(tmp_path, sources, v1=v1, ape=True)
    original = path.read_bytes()
    tail = original[len(sources["mp3"].read_bytes()):]   # the APEv2 tag (and the ID3v1 tag)
    assert write_mood(path, VALUES) is True
    tags = id3.ID3(path, translate=False, load_v1=False)
    assert tags["TIT2"].text == ["Ape Title ✓"] and tags["TPE1"].text == ["Ape Artist"]  # APEv2 wins over v1
    assert tags["TALB"].text == ["Ape Album"] and tags["TRCK"].text == ["3/12"] and tags["TCON"].text == ["Jazz"]
    assert str(tags["TDRC"].text[0]) == "2004" and tags.getall("COMM")[0].text == ["ape comment"]
    assert path.read_bytes().endswith(tail)
    assert {key: str(value) for key, value in apev2.APEv2(path).items()} == APE_FIELDS
    assert remove_mood(path) is True and path.read_bytes() == original


def test_an_apev2_mood_is_the_mp3s_own_mood(tmp_path, sources):
    """An MP3 whose APEv2 tag says Mood=Melancholy (foobar2000, Mp3tag) and has no ID3v2 tag got TMOO
    'calm' beside it: two moods in one file, the user's hidden from moodtag's checks."""
    path = tmp_path / "ape-mood.mp3"
    shutil.copyfile(sources["mp3"], path)
    tag = apev2.APEv2()
    tag.update({**APE_FIELDS, "Mood": "Melancholy"})
    tag.save(path)
    original = path.read_bytes()
    assert mood_state(path)[1] == ["Melancholy"]
    with pytest.raises(ForeignMood, match="'Melancholy'"):
        write_mood(path, VALUES)
    assert path.read_bytes() == original
    assert write_mood(path, VALUES, replace=True) is True
    tags = id3.ID3(path, translate=False, load_v1=False)
    assert tags["TMOO"].text == ["calm"] and "TXXX:MOODTAG_REPLACED_MOOD" not in tags  # it stays in APEv2
    assert apev2.APEv2(path)["Mood"] == "Melancholy"  # never written
    assert remove_mood(path) is True  # the mood was in the APEv2 tag, and is: the ID3v2 tag moodtag added goes
    assert path.read_bytes() == original

    both = tmp_path / "both-tags.mp3"  # the same mood in the file's own ID3v2 tag too (Mp3tag writes both)
    shutil.copyfile(sources["mp3"], both)
    tags = id3.ID3()
    tags.add(id3.TIT2(encoding=3, text=[APE_FIELDS["Title"]]))
    tags.add(id3.TMOO(encoding=3, text=["Melancholy"]))
    tags.save(both)
    tag.save(both)
    assert write_mood(both, VALUES, replace=True) is True and remove_mood(both) is True
    assert id3.ID3(both)["TMOO"].text == ["Melancholy"] and id3.ID3(both)["TIT2"].text == [APE_FIELDS["Title"]]


def test_a_replaced_mood_held_by_two_frames_comes_back_once(tmp_path, sources):
    """A v2.4 tag with TMOO 'Happy' and TXXX:MOOD 'Happy' (two taggers' ways): after --replace-mood and
    untag, TMOO held 'Happy' twice. Each frame gets its value back, once, as the file had it
    (MOODTAG_REPLACED_MOOD_FROM); a tag written before that field: TMOO gets it, once."""
    path = tmp_path / "both.mp3"
    shutil.copyfile(sources["mp3"], path)
    tags = id3.ID3()
    tags.add(id3.TMOO(encoding=3, text=["Happy"]))
    tags.add(id3.TXXX(encoding=3, desc="MOOD", text=["Happy"]))
    tags.save(path)
    assert write_mood(path, VALUES, replace=True) is True
    older = tmp_path / "older.mp3"  # as moodtag wrote it before MOODTAG_REPLACED_MOOD_FROM
    shutil.copyfile(path, older)
    tags = id3.ID3(older)
    tags.delall("TXXX:MOODTAG_REPLACED_MOOD_FROM")
    tags.save(older)
    assert remove_mood(path) is True
    assert id3.ID3(path)["TMOO"].text == ["Happy"] and id3.ID3(path)["TXXX:MOOD"].text == ["Happy"]
    assert remove_mood(older) is True
    assert id3.ID3(older)["TMOO"].text == ["Happy"] and "TXXX:MOOD" not in id3.ID3(older)


def test_untag_keeps_a_v2_tag_edited_since(tmp_path, sources):
    path = legacy_mp3(tmp_path, sources, v1=True, ape=False)
    write_mood(path, VALUES)
    tags = id3.ID3(path, translate=False, load_v1=False)
    tags.add(id3.TIT2(encoding=3, text=["A longer title, fixed by hand"]))
    tags.save(path)
    with open(path, "r+b") as fh:   # the v1 tag as it was (mutagen's save rewrote it from v2)
        fh.seek(-128, os.SEEK_END)
        fh.write(ID3V1)
    assert remove_mood(path) is True
    tags = id3.ID3(path, translate=False, load_v1=False)
    assert tags["TIT2"].text == ["A longer title, fixed by hand"] and "TMOO" not in tags
    assert path.read_bytes()[-128:] == ID3V1


# --- Vorbis comments: FLAC, Ogg Vorbis, Opus -------------------------------------------------

class VorbisContract(FormatContract):
    tag_kind = "vorbis"
    file_class: type

    def add_existing_tags(self, path):
        audio = self.file_class(path)
        if audio.tags is None:
            audio.add_tags()
        audio.tags.update({"ARTIST": ARTIST, "TITLE": TITLE, "ALBUM": ALBUM, "COMMENT": "a comment",
                           "REPLAYGAIN_TRACK_GAIN": "-6.50 dB", DECOY: "keep me"})
        picture = flac.Picture()
        picture.type, picture.mime, picture.desc, picture.data = 3, "image/png", "cover", PNG
        if isinstance(audio, flac.FLAC):
            audio.add_picture(picture)
        else:
            audio.tags["METADATA_BLOCK_PICTURE"] = base64.b64encode(picture.write()).decode("ascii")
        audio.save()

    def other_tags(self, path):
        audio = self.file_class(path)
        comments = [(key, value) for key, value in audio.tags if not is_ours(key)]
        return comments, [p.write() for p in getattr(audio, "pictures", [])]

    def check_layout(self, path):
        comments = list(self.file_class(path).tags)
        ours = [(key, value) for key, value in comments if is_ours(key)]
        assert sorted(ours) == [("MOOD", "calm"), ("MOODTAG_MODEL", "moodtag-cnn 1.0.0"),
                                ("MOODTAG_SCORE_CALM", "0.913"), ("MOODTAG_SCORE_EXCITING", "0.087")]


class TestFLAC(VorbisContract):
    source, filename, format = "flac", "track.flac", "flac"
    file_class = flac.FLAC

    def audio_bytes(self, path):
        return flac_frames(path.read_bytes())


class TestOggVorbis(VorbisContract):
    source, filename, format = "ogg", "track.ogg", "ogg"
    file_class = oggvorbis.OggVorbis


class TestOpus(VorbisContract):
    source, filename, format = "opus", "track.opus", "opus"
    file_class = oggopus.OggOpus


def test_flac_named_mp3_is_tagged_as_flac(tmp_path, sources):
    path = tmp_path / "mislabelled.mp3"
    shutil.copyfile(sources["flac"], path)
    frames = flac_frames(path.read_bytes())
    with pytest.raises(mutagen.MutagenError):  # mutagen's own guess goes by the name: MP3
        mutagen.File(path)
    assert (read_info(path).format, read_info(path).tag_kind) == ("flac", "vorbis")
    assert write_mood(path, VALUES) is True
    data = path.read_bytes()
    assert data.startswith(b"fLaC")  # no ID3 tag put in front of it
    assert flac_frames(data) == frames
    assert flac.FLAC(path).tags["MOOD"] == ["calm"]
    assert read_mood(path) == READ_BACK


# --- MP4: AAC and ALAC in M4A -----------------------------------------------------------------

class MP4Contract(FormatContract):
    tag_kind, format = "mp4", "m4a"

    def add_existing_tags(self, path):
        audio = mp4.MP4(path)
        if audio.tags is None:
            audio.add_tags()
        audio.tags.update({
            "\xa9ART": [ARTIST], "\xa9nam": [TITLE], "\xa9alb": [ALBUM], "\xa9cmt": ["a comment"],
            "covr": [mp4.MP4Cover(PNG, imageformat=mp4.MP4Cover.FORMAT_PNG)],
            "----:com.apple.iTunes:replaygain_track_gain": [mp4.MP4FreeForm(b"-6.50 dB")],
            f"----:com.apple.iTunes:{DECOY}": [mp4.MP4FreeForm(b"keep me")],
        })
        audio.save()

    def other_tags(self, path):
        tags = mp4.MP4(path).tags
        return sorted((key, repr(value)) for key, value in tags.items()
                      if not (key.startswith("----:com.apple.iTunes:") and is_ours(key.split(":", 2)[2])))

    def audio_bytes(self, path):
        return mp4_mdat(path.read_bytes())

    def check_layout(self, path):
        tags = mp4.MP4(path).tags
        mood = tags["----:com.apple.iTunes:MOOD"]
        assert mood == [b"calm"] and mood[0].dataformat == mp4.AtomDataType.UTF8
        assert tags["----:com.apple.iTunes:MOODTAG_SCORE_CALM"] == [b"0.913"]
        assert tags["----:com.apple.iTunes:MOODTAG_MODEL"] == [b"moodtag-cnn 1.0.0"]


class TestM4AAAC(MP4Contract):
    source, filename = "m4a", "track.m4a"


class TestM4AALAC(MP4Contract):
    source, filename = "alac.m4a", "track.m4a"


# --- files that are not what they claim ---------------------------------------------------------

@pytest.mark.parametrize("name, content, cause", [
    ("notes.mp3", b"this is a text file, not music\n" * 40, r"^not a supported audio file"),
    ("noise.bin", bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),
     r"^not a supported audio file$"),
    ("future.mp3", b"ID3\x05\x00\x00\x00\x00\x02\x00" + b"\x00" * 300, r"^broken ID3 tag: "),
    ("cut.flac", b"fLaC\x00\x00\x00\x22" + b"\x10" * 10, r"^broken FLAC file"),
    ("cut.wav", b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00", r"^broken WAV file: "),
    ("empty.wav", b"", r"^empty file \(0 bytes\)$"),  # the words of a scan's analysis
])
def test_broken_files_are_refused_untouched(tmp_path, name, content, cause):
    path = tmp_path / name
    path.write_bytes(content)
    for attempt in (read_info, read_mood, lambda p: write_mood(p, VALUES), remove_mood):
        with pytest.raises(TagError, match=cause):
            attempt(path)
    assert path.read_bytes() == content


def _ffmpeg_view(path: Path) -> tuple[dict, int]:
    """(container metadata, decoded sample count) as FFmpeg (PyAV) sees the file: a player's view."""
    import av

    with av.open(str(path)) as container:
        return dict(container.metadata), sum(frame.samples for frame in container.decode(audio=0))


@pytest.mark.parametrize("fmt", ["wav", "aiff"])
def test_a_cut_wav_or_aiff_file_is_refused_untouched(tmp_path, sources, fmt):
    """A file cut short still declares its audio chunk at full length; mutagen would add its ID3 chunk at
    the end of the file, inside the declared audio: players decoded it as a burst of noise, and no tag
    reader found it. Also a WAV whose header sizes were never written (streamed to a pipe)."""
    whole = sources[fmt].read_bytes()
    cases = {"cut": (whole[:len(whole) // 2], r"it is cut short: its '(data|SSND)' chunk declares [\d,]+ bytes "
                                                r"and the file holds [\d,]+ of them; the file was not changed$")}
    if fmt == "wav":
        streamed = bytearray(whole)
        at = streamed.find(b"data")
        streamed[4:8] = streamed[at + 4:at + 8] = b"\xff\xff\xff\xff"
        cases["streamed"] = (bytes(streamed), r"its 'data' chunk gives no size \(a WAV written to a pipe")
    for name, (data, cause) in cases.items():
        path = tmp_path / f"{name}.{fmt}"
        path.write_bytes(data)
        for attempt in (lambda p: write_mood(p, VALUES), lambda p: write_mood(p, VALUES, dry_run=True)):
            with pytest.raises(TagError, match=cause):
                attempt(path)
        assert path.read_bytes() == data, name


def _form_size(data: bytes, fmt: str) -> int:
    return int.from_bytes(data[4:8], "little" if fmt == "wav" else "big")


def _with_form_size(data: bytes, fmt: str, size: int) -> bytes:
    return data[:4] + size.to_bytes(4, "little" if fmt == "wav" else "big") + data[8:]


@pytest.mark.parametrize("fmt", ["wav", "aiff"])
def test_a_wav_or_aiff_whose_header_size_ends_inside_its_audio_is_refused_untouched(tmp_path, sources, fmt):
    """A RIFF/FORM size smaller than the chunks it holds (a writer's slip; decoders read on): mutagen adds
    its ID3 chunk where the declared size ends, which was inside the audio data. The audio was damaged,
    the tag did not read back, and untag could not undo it."""
    whole = sources[fmt].read_bytes()
    audio_id = {"wav": "data", "aiff": "SSND"}[fmt]
    for name, size in {"data_only": len(whole) - 8 - 36, "tiny": 1000}.items():
        data = _with_form_size(whole, fmt, size)
        path = tmp_path / f"{name}.{fmt}"
        path.write_bytes(data)
        cause = (rf"^its {'RIFF' if fmt == 'wav' else 'FORM'} header says the file holds {size + 8:,} bytes, but "
                 rf"its '{audio_id}' chunk runs to byte {len(whole):,}: a tag would be written inside its audio; "
                 r"the file was not changed$")
        for attempt in (lambda p: write_mood(p, VALUES), lambda p: write_mood(p, VALUES, dry_run=True)):
            with pytest.raises(TagError, match=cause):
                attempt(path)
        assert path.read_bytes() == data, name


@pytest.mark.parametrize("fmt", ["wav", "aiff"])
@pytest.mark.parametrize("trailing", ["id3v1", "zeros"])
def test_bytes_after_a_wav_or_aiff_form_stay_after_it_and_the_file_is_tagged(tmp_path, sources, fmt, trailing):
    """Bytes after the RIFF/FORM its header declares (an ID3v1 tag appended by a tagger, zeros) are
    not chunks: the chunk walk ran on into them and refused the file as 'cut short: its 'TAGT' chunk
    declares 1,701,606,505 bytes', again at each scan. mutagen adds its chunk at the form's end,
    before those bytes, and counts it in the form's size; untag gives the file back byte for byte."""
    extra = {"id3v1": b"TAG" + b"Title".ljust(30, b"\0") + b"Artist".ljust(30, b"\0") + b"Album".ljust(30, b"\0")
                      + b"2001" + bytes(28) + b"\0\x01\x0d",
             "zeros": bytes(8)}[trailing]
    source = sources[fmt]
    path = tmp_path / f"x.{fmt}"
    original = source.read_bytes() + extra
    path.write_bytes(original)
    before, (_, frames) = decoded(source), _ffmpeg_view(source)
    assert write_mood(path, VALUES)
    assert read_mood(path) == READ_BACK
    data = path.read_bytes()
    assert data.endswith(extra) and _form_size(data, fmt) == len(data) - 8 - len(extra)
    metadata, after_frames = _ffmpeg_view(path)
    assert metadata.get("TMOO") == "calm" and after_frames == frames
    assert np.array_equal(decoded(path), before)
    assert remove_mood(path) and path.read_bytes() == original


def test_a_wav_without_the_pad_byte_of_its_odd_data_chunk_is_tagged_where_readers_look(tmp_path):
    """Python's `wave` module writes an odd data chunk (8-bit mono, an odd number of frames) without
    the pad byte RIFF puts after it; mutagen then put its ID3 chunk at an odd offset, where neither
    mutagen nor FFmpeg looks (the cache said 'tagged'). The pad byte is added first; the audio stays."""
    import wave as wave_module

    path = tmp_path / "odd.wav"
    samples = (128 + 60 * np.sin(np.arange(8001 * 3) / 7)).astype(np.uint8).tobytes()
    with wave_module.open(str(path), "wb") as out:
        out.setnchannels(1), out.setsampwidth(1), out.setframerate(8000)
        out.writeframes(samples)
    assert path.stat().st_size == 44 + len(samples)  # no pad byte
    before, (_, frames) = decoded(path), _ffmpeg_view(path)
    write_mood(path, VALUES)
    assert read_mood(path) == READ_BACK
    metadata, after_frames = _ffmpeg_view(path)
    assert metadata.get("TMOO") == "calm" and after_frames == frames
    assert np.array_equal(decoded(path), before)
    data = path.read_bytes()
    assert int.from_bytes(data[4:8], "little") == len(data) - 8
    assert data[44 + len(samples)] == 0 and data[45 + len(samples):49 + len(samples)] == b"id3 "
    remove_mood(path)
    assert read_mood(path) is None and np.array_equal(decoded(path), before)


def test_an_rf64_wav_is_refused_by_name(tmp_path):
    """It was 'not a supported audio file' (mutagen reads no RF64), though it is a WAV the scan analyses."""
    import soundfile as sf

    path = tmp_path / "big.wav"
    sf.write(path, np.zeros(44100 * 6, dtype=np.float32), 44100, format="RF64")
    data = path.read_bytes()
    with pytest.raises(TagError, match=r"^RF64 WAV \(the 64-bit form, for files over 4 GB\): mutagen cannot"):
        write_mood(path, VALUES)
    assert path.read_bytes() == data


def _adts(samples: np.ndarray, path: Path) -> None:
    """Raw AAC in ADTS frames, no container (a stream ripper's output)."""
    import av

    with av.open(str(path), "w", format="adts") as container:
        stream = container.add_stream("aac", rate=synth.SAMPLE_RATE, layout="stereo")
        planes = np.ascontiguousarray(samples.T.astype(np.float32))
        for i in range(0, planes.shape[1], 4096):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planes[:, i:i + 4096]), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = synth.SAMPLE_RATE, i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


@pytest.mark.parametrize("name, kind", [("w64.wav", r"Sony Wave64 \(W64\)"), ("adts.m4a", r"raw AAC \(ADTS\)")])
def test_audio_moodtag_analyses_but_cannot_tag_is_refused_by_its_format(tmp_path, name, kind):
    """A Sony Wave64 file named .wav, raw ADTS AAC named .m4a: the scan analyses them (libsndfile, FFmpeg),
    and then said 'not a supported audio file' as it came to tag them."""
    import soundfile as sf

    samples = synth.render("calm", SECONDS, seed=1)
    path = tmp_path / name
    if name.startswith("w64"):
        sf.write(path, samples, synth.SAMPLE_RATE, subtype="PCM_16", format="W64")
    else:
        _adts(samples, path)
    data = path.read_bytes()
    with pytest.raises(TagError, match=rf"^cannot write tags into {kind} files: moodtag analyses their audio only$"):
        write_mood(path, VALUES)
    assert path.read_bytes() == data


@pytest.mark.parametrize("container", ["ogg", "wav"])
def test_an_id3_tag_in_front_of_an_ogg_or_wav_file_is_refused_untouched(tmp_path, sources, container):
    """mutagen takes such a file for an MP3 and failed with 'no MPEG audio frames found'."""
    data = b"ID3\x04\x00\x00\x00\x00\x00\x0a" + bytes(10) + sources[container].read_bytes()
    path = tmp_path / f"x.{container}"
    path.write_bytes(data)
    kind = {"ogg": "Ogg", "wav": "WAV"}[container]
    with pytest.raises(TagError, match=f"an ID3v2 tag stands in front of its {kind} data, where {kind} readers"):
        write_mood(path, VALUES)
    assert path.read_bytes() == data


def test_an_id3v24_tag_with_a_footer_is_rewritten_without_stray_bytes(tmp_path, sources):
    """mutagen rewrites an ID3v2.4 tag's header and frames and left its footer (10 bytes, '3DI...') in
    front of the audio: FFmpeg then missed the LAME header, and the gapless trim with it."""
    audio = sources["mp3"].read_bytes()
    if audio.startswith(b"ID3"):
        audio = audio[10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(audio[6:10])):]
    size = bytes([0, 0, 0, 14])
    frame = b"TIT2" + bytes([0, 0, 0, 4]) + b"\x00\x00\x03abc"
    path = tmp_path / "footer.mp3"
    path.write_bytes(b"ID3\x04\x00\x10" + size + frame + b"3DI\x04\x00\x10" + size + audio)
    _, frames = _ffmpeg_view(path)
    write_mood(path, VALUES)
    assert read_mood(path) == READ_BACK and mutagen.File(path)["TIT2"].text == ["abc"]
    assert _ffmpeg_view(path)[1] == frames
    assert b"3DI" not in path.read_bytes()[:4096]
    remove_mood(path)
    assert read_mood(path) is None and mutagen.File(path)["TIT2"].text == ["abc"]
    assert _ffmpeg_view(path)[1] == frames


NOT_REGULAR = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))   # a read without end fails, not the machine
from tagger.errors import TagError
from tagger.safewrite import UndoJournal
from tagger.tags import MoodValues, read_info, read_mood, remove_mood, write_mood
journal = UndoJournal(sys.argv[2] + "-journal")
values = MoodValues(mood="calm", scores={"calm": 1.0}, model="m 1")
for attempt in (read_info, read_mood, lambda p: write_mood(p, values, journal=journal),
                lambda p: remove_mood(p, journal=journal)):
    try:
        attempt(sys.argv[1])
        print("no error")
    except TagError as exc:
        print(exc)
"""


@pytest.mark.parametrize("kind, cause", [("fifo", "a FIFO"), ("dev-zero", "a character device"),
                                         ("socket", "a socket")])
def test_not_a_regular_file_is_refused_before_reading(tmp_path, kind, cause):
    path = tmp_path / "x.mp3"
    held = None
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    else:
        held = socket.socket(socket.AF_UNIX)
        held.bind(str(path))
    try:   # in a subprocess with a time limit: a regression fails here instead of hanging the suite
        proc = subprocess.run([sys.executable, "-c", NOT_REGULAR, str(path), str(tmp_path)],
                              capture_output=True, text=True, timeout=60)
    finally:
        if held is not None:
            held.close()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"not a regular file ({cause})"] * 4


def namespace_available() -> str | None:
    """Why a private mount namespace (unshare -rm, for a tmpfs of our own) cannot be had here; None if it can."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "no unshare or mount command"
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", 'mount -t tmpfs tmpfs "$0"', "/tmp"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot mount a tmpfs in a user namespace: {(probe.stderr or probe.stdout).strip()}"
    return None


def in_namespace(script: str, *args) -> dict:
    """Run `script` (Python) in a private mount namespace, as its root; it prints one JSON object."""
    proc = subprocess.run(["unshare", "-rm", sys.executable, "-c", script, *map(str, args)],
                          cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_read_only_file_system_is_not_a_read_only_file(tmp_path, sources):
    reason = namespace_available()
    if reason:
        pytest.skip(reason)
    script = """
import json, shutil, subprocess, sys
from pathlib import Path
from tagger.errors import TagError
from tagger.safewrite import UndoJournal
from tagger.tags import MoodValues, read_mood, remove_mood, write_mood
mnt, source, journal = Path(sys.argv[1]), Path(sys.argv[2]), UndoJournal(Path(sys.argv[3]))
values = MoodValues(mood="calm", scores={"calm": 1.0}, model="m 1")
mnt.mkdir()
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], check=True)
track = mnt / "track.flac"
shutil.copyfile(source, track)
write_mood(track, values, journal=journal)
subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
out = {}
other = MoodValues(mood="exciting", scores={}, model="m 1")
for name, attempt in (("write", lambda: write_mood(track, other, journal=journal)),
                      ("dry run", lambda: write_mood(track, other, dry_run=True, journal=journal)),
                      ("remove", lambda: remove_mood(track, journal=journal)),
                      ("read", lambda: read_mood(track).mood)):
    try:
        out[name] = ["ok", attempt()]
    except TagError as exc:
        out[name] = ["error", str(exc)]
print(json.dumps(out))
"""
    out = in_namespace(script, tmp_path / "mnt", sources["flac"], tmp_path / "journal")
    refused = ["error", "read-only file system"]
    assert out == {"write": refused, "dry run": refused, "remove": refused, "read": ["ok", "calm"]}


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(TagError, match="^file not found$"):
        read_info(tmp_path / "gone.flac")
    with pytest.raises(TagError, match="^is a folder$"):
        write_mood(tmp_path, VALUES)
    (tmp_path / "link.flac").symlink_to(tmp_path / "gone.flac")
    with pytest.raises(TagError, match=r"^broken symlink \(its target does not exist\)$"):
        remove_mood(tmp_path / "link.flac")


def test_label_that_cannot_be_a_field_name(tmp_path, sources):
    path = tmp_path / "track.flac"
    shutil.copyfile(sources["flac"], path)
    with pytest.raises(TagError, match="cannot be a tag field name"):
        write_mood(path, MoodValues(mood="calm", scores={"calm=1": 1.0}, model="m 1"))


# --- the `moodtag untag` command ------------------------------------------------------------------

@pytest.fixture
def library(tmp_path, sources) -> Path:
    """A folder: two tagged tracks (one in a subfolder), an untagged one, hidden tagged ones, a broken
    file, and a text file."""
    root = tmp_path / "library"
    for rel, fmt, tagged in (("a.flac", "flac", True), ("sub/b.wav", "wav", True), ("c.ogg", "ogg", False),
                             (".hidden.flac", "flac", True), (".cache/d.flac", "flac", True)):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sources[fmt], path)
        if tagged:
            write_mood(path, VALUES)
    (root / "sub" / "bad.mp3").write_bytes(b"not music")
    (root / "notes.txt").write_text("hello")
    return root


def _flat(text: str) -> str:
    return "".join(text.split())  # rich may wrap long lines


def test_untag_command(library):
    from typer.testing import CliRunner

    from tagger.cli import app

    runner = CliRunner()
    before = {p: p.read_bytes() for p in library.rglob("*") if p.is_file()}
    dry = runner.invoke(app, ["untag", "--dry-run", str(library)])
    assert dry.exit_code == 0, dry.output
    assert _flat("would untag 2 files, 1 without moodtag fields, 1 failed") in _flat(dry.stdout)
    assert _flat(str(library / "a.flac")) in _flat(dry.stdout)
    assert {p: p.read_bytes() for p in before} == before

    result = runner.invoke(app, ["untag", str(library)])
    assert result.exit_code == 0, result.output
    assert _flat("untagged 2 files, 1 without moodtag fields, 1 failed") in _flat(result.stdout)
    assert _flat(f"failed: {library / 'sub' / 'bad.mp3'}: not a supported audio file") in _flat(result.stderr)
    assert read_mood(library / "a.flac") is None and read_mood(library / "sub" / "b.wav") is None
    assert read_mood(library / ".hidden.flac") == READ_BACK  # hidden: skipped
    assert read_mood(library / ".cache" / "d.flac") == READ_BACK
    assert (library / "c.ogg").read_bytes() == before[library / "c.ogg"]

    again = runner.invoke(app, ["untag", str(library / "a.flac"), str(library / ".hidden.flac")])
    assert again.exit_code == 0
    assert _flat("untagged 1 file, 1 without moodtag fields, 0 failed") in _flat(again.stdout)


def test_untag_real_command(library):
    proc = run_cli("untag", library / "a.flac", library / "sub", env={"COLUMNS": "400"})
    assert proc.returncode == 0, proc.stderr
    assert "untagged 2 files, 0 without moodtag fields, 1 failed" in " ".join(proc.stdout.split())
    assert "bad.mp3" in proc.stderr


def test_untag_refuses_a_damaged_id3_tag(tmp_path, sources):
    """`moodtag untag` saves the tag too: a frame mutagen would drop keeps the file as it is."""
    track = tmp_path / "t.mp3"
    shutil.copyfile(sources["mp3"], track)
    TestMP3ID3v24().add_existing_tags(track)
    write_mood(track, VALUES)
    before_comm = [key[:4] for key in id3.ID3(track, translate=False).keys()].index("COMM")  # frames read before it
    data = bytearray(track.read_bytes())
    at = data.find(b"COMM")
    data[at:at + 4] = b"CoMM"
    track.write_bytes(bytes(data))
    # no cache (the default's, its own here: not one other tests made): files all the same
    proc = run_cli("untag", track, env={"COLUMNS": "400", "XDG_DATA_HOME": str(tmp_path / "data")})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        f"failed: {track}: damaged ID3 tag (unreadable data after frame {before_comm}; the tag was not changed)"]
    assert "untagged 0 files, 0 without moodtag fields, 1 failed" in " ".join(proc.stdout.split())
    assert track.read_bytes() == data


@pytest.mark.parametrize("fmt, chunk_id, body", [("wav", b"ID3 ", b""), ("wav", b"id3 ", b""),
                                                 ("wav", b"ID3 ", bytes(512)), ("aiff", b"ID3 ", b"")])
def test_an_empty_id3_chunk_is_no_tag_and_the_file_is_tagged(tmp_path, sources, fmt, chunk_id, body):
    """An ID3 chunk that is empty, or zeros (what a tool leaves that deleted the tag), holds nothing to
    lose: the file is tagged in it, as before the refusal of chunks holding another program's data."""
    data = sources[fmt].read_bytes()
    order = "little" if fmt == "wav" else "big"
    chunk = chunk_id + len(body).to_bytes(4, order) + body
    path = tmp_path / f"empty.{fmt}"
    path.write_bytes(data[:4] + (len(data) - 8 + len(chunk)).to_bytes(4, order) + data[8:] + chunk)
    assert write_mood(path, VALUES) is True and read_mood(path) == READ_BACK


@pytest.mark.parametrize("data, dataformat, text", [
    ("Ruhig".encode("utf-16-be"), mp4.AtomDataType.UTF16, "Ruhig"),
    ("Ruhig".encode("utf-16"), mp4.AtomDataType.UTF16, "Ruhig"),  # with a byte order mark
    ("Gemütlich".encode("latin-1"), mp4.AtomDataType.IMPLICIT, "Gem\ufffdtlich"),
], ids=["utf-16", "utf-16 with a BOM", "latin-1"])
def test_an_m4a_mood_of_another_encoding_comes_back_as_it_was(tmp_path, sources, data, dataformat, text):
    """An M4A mood atom of data type 2 (UTF-16) was read as UTF-8 (the kept line showed NULs), and after
    --replace-mood and untag it came back as type 1 holding UTF-16 bytes; one of Latin-1 bytes (older
    taggers) came back with U+FFFD for each such byte. Now read by its type, and given back as it was."""
    path = tmp_path / "own-mood.m4a"
    shutil.copyfile(sources["m4a"], path)
    audio = mp4.MP4(path)
    audio["----:com.apple.iTunes:MOOD"] = [mp4.MP4FreeForm(data, dataformat=dataformat)]
    audio.save()
    original = path.read_bytes()
    with pytest.raises(ForeignMood, match=f"^the file's own mood '{text}' "):
        write_mood(path, VALUES)
    assert write_mood(path, VALUES, replace=True) is True
    assert [bytes(v) for v in mp4.MP4(path)["----:com.apple.iTunes:MOOD"]] == [b"calm"]
    assert remove_mood(path) is True
    mood = mp4.MP4(path)["----:com.apple.iTunes:MOOD"]
    assert [(bytes(v), v.dataformat) for v in mood] == [(data, dataformat)]
    assert path.read_bytes() == original


def test_moodtags_own_m4a_mood_is_utf8_whatever_the_replaced_one_was(tmp_path, sources):
    """A user's UTF-16 mood atom with a byte order mark holding moodtag's label ('calm'): --replace-mood
    wrote moodtag's own MOOD atom with the user's bytes and type (880ab73), which beets' mediafile reads as
    'c\\x00a\\x00l\\x00m\\x00'. moodtag's fields are UTF-8; only MOODTAG_REPLACED_MOOD keeps the bytes."""
    path = tmp_path / "own-mood.m4a"
    shutil.copyfile(sources["m4a"], path)
    audio = mp4.MP4(path)
    theirs = mp4.MP4FreeForm("calm".encode("utf-16"), dataformat=mp4.AtomDataType.UTF16)
    audio["----:com.apple.iTunes:MOOD"] = [theirs]
    audio.save()
    original = path.read_bytes()
    assert write_mood(path, VALUES, replace=True) is True
    tags = mp4.MP4(path)
    assert [(bytes(v), v.dataformat) for v in tags["----:com.apple.iTunes:MOOD"]] == [(b"calm", mp4.AtomDataType.UTF8)]
    assert [(bytes(v), v.dataformat) for v in tags["----:com.apple.iTunes:MOODTAG_REPLACED_MOOD"]] \
        == [(bytes(theirs), mp4.AtomDataType.UTF16)]
    assert remove_mood(path) is True and path.read_bytes() == original


def test_a_utf16_m4a_mood_an_older_moodtag_replaced_comes_back_as_its_bytes(tmp_path, sources):
    """An older moodtag kept a UTF-16 mood atom's bytes, read as UTF-8, in a type-1 MOODTAG_REPLACED_MOOD
    (its origin type 2). 880ab73's untag encoded that text as UTF-16 again: NULs doubled, the user's
    mood lost. Those bytes go back as they were, into the type-2 atom they came from."""
    path = tmp_path / "older.m4a"
    shutil.copyfile(sources["m4a"], path)
    theirs = "Ruhig".encode("utf-16-be")
    audio = mp4.MP4(path)
    audio["----:com.apple.iTunes:MOOD"] = [mp4.MP4FreeForm(theirs, dataformat=mp4.AtomDataType.UTF16)]
    audio.save()
    original = path.read_bytes()
    write_mood(path, VALUES, replace=True)
    audio = mp4.MP4(path)  # as the older moodtag left it
    audio["----:com.apple.iTunes:MOODTAG_REPLACED_MOOD"] = [mp4.MP4FreeForm(theirs, dataformat=mp4.AtomDataType.UTF8)]
    audio.save()
    assert remove_mood(path) is True
    mood = mp4.MP4(path)["----:com.apple.iTunes:MOOD"]
    assert [(bytes(v), v.dataformat) for v in mood] == [(theirs, mp4.AtomDataType.UTF16)]
    assert path.read_bytes() == original


@pytest.mark.parametrize("fmt", ["mp3", "flac", "m4a"])
def test_a_mood_another_model_wrote_over_the_last_written_is_moodtags(tmp_path, sources, fmt):
    """`last_written` (the label a cache says moodtag wrote) told a label typed by hand from moodtag's; a
    label another model wrote since (another cache's scan), with its own scores and MOODTAG_MODEL, was
    taken for the user's too, and remove_mood left it. With `written_by` (the model that wrote
    `last_written`), fields of another model are all moodtag's where their label is the one their scores
    give; a hand edit (the mood field only) is not."""
    track = tmp_path / f"track.{fmt}"
    shutil.copyfile(sources[fmt], track)
    write_mood(track, OTHER)   # another model's scan: 'exciting', where the cache says moodtag wrote 'calm'
    mine = dict(last_written="calm", written_by=VALUES.model)
    assert mood_state(track, **mine)[1] == []
    assert write_mood(track, VALUES, dry_run=True, **mine)
    assert mood_state(track, last_written="calm")[1] == ["exciting"]  # no model known: as before
    assert remove_mood(track, **mine) and read_mood(track) is None

    write_mood(track, VALUES)   # the cache's model, its label changed by hand: still the user's
    _type_mood(track, fmt, "exciting")
    assert mood_state(track, **mine)[1] == ["exciting"]
    with pytest.raises(ForeignMood):
        write_mood(track, VALUES, **mine)
    assert remove_mood(track, **mine) and read_mood(track) == MoodValues(mood="exciting", scores={}, model="")


@pytest.mark.parametrize("fmt", ["mp3", "flac", "m4a"])
def test_a_label_typed_over_another_models_fields_stays_the_users(tmp_path, sources, fmt):
    """Two caches, two models (the README's way to try a second one): the second model's scan rewrote the
    fields, and the user typed the other label into the mood field only. remove_mood with the first cache
    (its model as `written_by`) took the fields for all moodtag's, and deleted the user's label with them.
    A label is the other model's only where its own scores give it; a typed one stays the user's."""
    track = tmp_path / f"track.{fmt}"
    shutil.copyfile(sources[fmt], track)
    write_mood(track, OTHER)   # the second model: 'exciting', its scores saying so
    _type_mood(track, fmt, "calm")
    mine = dict(last_written="exciting", written_by=VALUES.model)   # the first cache wrote 'exciting' too
    assert mood_state(track, **mine)[1] == ["calm"]
    assert remove_mood(track, **mine) and read_mood(track) == MoodValues(mood="calm", scores={}, model="")


def _type_mood(track: Path, fmt: str, text: str) -> None:
    """The mood field alone set to `text`, as a tag editor sets it (mp3, m4a or a Vorbis comment)."""
    audio = mutagen.File(track)
    if fmt == "mp3":
        audio.tags.add(id3.TMOO(encoding=3, text=[text]))
    elif fmt == "m4a":
        audio.tags["----:com.apple.iTunes:MOOD"] = [text.encode()]
    else:
        audio.tags["MOOD"] = [text]
    audio.save()


def test_a_tie_or_a_threshold_label_of_another_model_is_never_taken_for_moodtags():
    """The rule that takes another model's fields for moodtag's (written_by) holds only where their label is
    their one top score: a label at a tie, or one a model with another --threshold wrote below 0.5, may be
    one the user typed, and is kept as theirs (never deleted)."""
    from tagger.tags import _foreign_moods

    def fields(mood, calm, exciting):
        return [("MOOD", mood), ("MOODTAG_SCORE_CALM", calm), ("MOODTAG_SCORE_EXCITING", exciting),
                ("MOODTAG_MODEL", "second-model 1.0.0")]
    mine = dict(last_written="calm", written_by="moodtag-rhythm 2.0.0")
    assert _foreign_moods(fields("exciting", "0.200", "0.800"), **mine) == []
    assert _foreign_moods(fields("exciting", "0.500", "0.500"), **mine) == ["exciting"]
    assert _foreign_moods(fields("calm", "0.500", "0.500"), last_written="exciting",
                          written_by="moodtag-rhythm 2.0.0") == ["calm"]
    assert _foreign_moods(fields("exciting", "0.800", "0.200"), **mine) == ["exciting"]
