"""tagger.safewrite: tag writes that a kill or a full disk cannot damage, over real files.

The kill tests build one large file per format (about 20 MB: repeated MP3 frames, FLAC, WAV and AIFF
of noise, Ogg pages and M4A packets repeated; no decoding needed), run `write_mood` in a subprocess,
SIGKILL it while it writes, run `UndoJournal.recover()`, and check that the file's bytes are exactly
those from before or exactly those of a finished write, whose audio payload is the original's.
Three cases per format: the tag outgrows a front tag without padding (a copy renamed over the file);
the same file hard-linked (in place, the whole moved tail journaled); a tag that fits its padding
(in place, a small journal entry).
"""
from __future__ import annotations

import copy
import errno
import hashlib
import io
import os
import random
import shutil
import signal
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path

import mutagen
import numpy as np
import pytest
from mutagen import id3, ogg
from mutagen._util import delete_bytes, insert_bytes, resize_bytes

from tagger import safewrite, synth
from tagger.errors import TagError
from tagger.safewrite import UndoJournal
from tagger.tags import MoodValues, read_info, read_mood, remove_mood, write_mood
from tests.test_tags import after_id3v2, flac_frames, in_namespace, mp4_mdat, namespace_available

BIG = int(float(os.environ.get("MOODTAG_KILL_MB", "20")) * (1 << 20))   # size of the kill tests' files
ROUNDS = int(os.environ.get("MOODTAG_KILL_ROUNDS", "3"))                # kills per format and case
VALUES = MoodValues(mood="calm", scores={"calm": 0.913, "exciting": 0.087}, model="moodtag-cnn 1.0.0")
OTHER = MoodValues(mood="exciting", scores={"calm": 0.2, "exciting": 0.8}, model="moodtag-cnn 1.0.0")
FORMATS = ("mp3", "flac", "ogg", "opus", "m4a", "alac.m4a", "wav", "aiff")
REPO = Path(__file__).resolve().parents[1]


# --- building large files cheaply ----------------------------------------------------------------

def noise(seconds: float) -> np.ndarray:
    return (np.random.default_rng(7).standard_normal((int(seconds * synth.SAMPLE_RATE), 2)) * 0.25
            ).clip(-1, 1).astype(np.float32)


def repeated_mp3(small: Path, dst: Path, size: int) -> Path:
    frames = small.read_bytes()
    assert not frames.startswith(b"ID3")
    dst.write_bytes(frames * (size // len(frames) + 1))
    return dst


def repeated_ogg(small: Path, dst: Path, size: int) -> Path:
    """The header pages, then the audio pages again and again, renumbered (valid CRCs and positions)."""
    with open(small, "rb") as fh:
        pages = []
        while True:
            try:
                pages.append(ogg.OggPage(fh))
            except EOFError:
                break
    n_head = next(i for i, page in enumerate(pages) if page.position > 0)
    audio = pages[n_head:]
    span = audio[-1].position
    out = [ogg.OggPage.write(page) for page in pages[:n_head]]
    written, seq, k = sum(map(len, out)), n_head, 0
    while written < size:
        for page in audio:
            again = copy.copy(page)
            again.sequence, again.last = seq, False
            if page.position >= 0:
                again.position = page.position + k * span
            out.append(ogg.OggPage.write(again))
            written, seq = written + len(out[-1]), seq + 1
        k += 1
    final = ogg.OggPage(io.BytesIO(out[-1]))
    final.last = True
    out[-1] = ogg.OggPage.write(final)
    dst.write_bytes(b"".join(out))
    return dst


def repeated_m4a(small: Path, dst: Path, size: int) -> Path:
    """The packets of `small` again and again, remuxed with the moov atom first (as iTunes writes it)."""
    import av

    with av.open(str(small)) as src:
        stream = src.streams.audio[0]
        packets = [packet for packet in src.demux(stream) if packet.size]
        span = packets[-1].dts + packets[-1].duration - packets[0].dts
        total = sum(packet.size for packet in packets)
        with av.open(str(dst), "w", format="ipod", options={"movflags": "faststart"}) as out:
            add = getattr(out, "add_stream_from_template", None)
            target = add(stream) if add else out.add_stream(template=stream)
            for k in range(size // total + 1):
                for packet in packets:
                    again = av.Packet(bytes(packet))
                    again.pts, again.dts = packet.pts + k * span, packet.dts + k * span
                    again.duration, again.time_base, again.stream = packet.duration, packet.time_base, target
                    out.mux(again)
    return dst


def add_tags(path: Path, padding: int) -> None:
    """Give a file an artist and a title, with exactly `padding` bytes of padding after its tag."""
    audio = mutagen.File(path)
    if audio.tags is None:
        audio.add_tags()
    if isinstance(audio.tags, id3.ID3):
        audio.tags.add(id3.TPE1(encoding=3, text=["The Artist"]))
        audio.tags.add(id3.TIT2(encoding=3, text=["A Title"]))
    elif isinstance(audio, mutagen.mp4.MP4):
        audio.tags.update({"\xa9ART": ["The Artist"], "\xa9nam": ["A Title"]})
    else:
        audio.tags.update({"ARTIST": "The Artist", "TITLE": "A Title"})
    audio.save(padding=lambda info: padding)


def iff_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(id, start, end) of each top-level chunk of a RIFF/WAVE or FORM/AIFF file, padding included."""
    order = "little" if data.startswith(b"RIFF") else "big"
    chunks, pos = [], 12
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos + 4:pos + 8], order)
        end = pos + 8 + size + (size & 1)
        chunks.append((data[pos:pos + 4], pos, end))
        pos = end
    return chunks


def id3_chunk_first(path: Path) -> None:
    """Move a WAV's or AIFF's ID3 chunk in front of the audio, as some taggers place it."""
    data = path.read_bytes()
    chunks = iff_chunks(data)
    tag = next(c for c in chunks if c[0].strip().upper() == b"ID3")
    rest = [c for c in chunks if c is not tag]
    parts = [data[s:e] for _, s, e in rest[:1]] + [data[tag[1]:tag[2]]] + [data[s:e] for _, s, e in rest[1:]]
    path.write_bytes(data[:12] + b"".join(parts))


def ogg_audio(data: bytes, header_packets: int) -> bytes:
    """An Ogg stream's packet data after its header packets (page numbers and CRCs left out)."""
    pos, bodies, total, count, header_end = 0, [], 0, 0, None
    while pos < len(data):
        assert data[pos:pos + 4] == b"OggS"
        lacing = data[pos + 27:pos + 27 + data[pos + 26]]
        start = pos + 27 + len(lacing)
        if header_end is None:
            offset = 0
            for lace in lacing:
                offset += lace
                if lace < 255:
                    count += 1
                    if count == header_packets:
                        header_end = total + offset
                        break
        bodies.append(data[start:start + sum(lacing)])
        total += sum(lacing)
        pos = start + sum(lacing)
    return b"".join(bodies)[header_end:]


def audio_payload(path: Path, fmt: str) -> bytes:
    data = path.read_bytes()
    if fmt == "mp3":
        return after_id3v2(data)
    if fmt == "flac":
        return flac_frames(data)
    if fmt.endswith("m4a"):
        return mp4_mdat(data)
    if fmt in ("ogg", "opus"):
        return ogg_audio(data, 3 if fmt == "ogg" else 2)
    audio_id = b"data" if fmt == "wav" else b"SSND"
    _, start, end = next(c for c in iff_chunks(data) if c[0] == audio_id)
    return data[start + 8:end]


def sha(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest() if hasattr(hashlib, "file_digest") \
            else hashlib.sha256(fh.read()).hexdigest()


@pytest.fixture(scope="module")
def small_sources(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("small")
    return {fmt: synth.make_track(folder / f"s.{fmt}", "exciting", 10.0, seed=3) for fmt in FORMATS}


@pytest.fixture(scope="module")
def big_sources(tmp_path_factory, small_sources) -> dict[str, Path]:
    """One untagged file of about BIG bytes per format."""
    import soundfile as sf

    folder = tmp_path_factory.mktemp("big")
    seconds = BIG / (synth.SAMPLE_RATE * 4)
    out = {}
    for fmt in FORMATS:
        dst = folder / f"big.{fmt}"
        if fmt == "mp3":
            out[fmt] = repeated_mp3(small_sources[fmt], dst, BIG)
        elif fmt in ("ogg", "opus"):
            out[fmt] = repeated_ogg(small_sources[fmt], dst, BIG)
        elif fmt.endswith("m4a"):
            out[fmt] = repeated_m4a(small_sources[fmt], dst, BIG)
        else:
            sf.write(str(dst), noise(seconds), synth.SAMPLE_RATE, subtype="PCM_16",
                     format={"flac": "FLAC", "wav": "WAV", "aiff": "AIFF"}[fmt])
            out[fmt] = dst
    return out


@pytest.fixture(scope="module")
def medium_mp3(tmp_path_factory, small_sources) -> Path:
    """An untagged MP3 of about 4 MB: big enough that a tag added in front is written by a copy."""
    return repeated_mp3(small_sources["mp3"], tmp_path_factory.mktemp("medium") / "medium.mp3", 4 << 20)


@pytest.fixture
def journal(tmp_path) -> UndoJournal:
    return UndoJournal(tmp_path / "journal")


# --- the kill tests -------------------------------------------------------------------------------

WRITER = """
import sys
from pathlib import Path
from tagger.safewrite import UndoJournal
from tagger.tags import MoodValues, write_mood
values = MoodValues(mood="calm", scores={"calm": 0.913, "exciting": 0.087}, model="moodtag-cnn 1.0.0")
write_mood(Path(sys.argv[1]), values, journal=UndoJournal(Path(sys.argv[2])))
print("done", flush=True)
"""


def run_writer(path: Path, journal_dir: Path, trigger: str, kill_after: float | None) -> tuple[float, bool]:
    """Run WRITER on `path`; with kill_after, SIGKILL it that many seconds after `trigger`: "entry" (its
    journal entry appears) or "write" (the file, or a copy of it, starts to change). Returns (seconds
    from the trigger to the end of write_mood, or to the kill; whether it was killed)."""
    first = path.stat()
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(journal_dir)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def fired() -> bool:
        if trigger == "entry":
            return any(name.endswith(".undo") for name in os.listdir(journal_dir))
        if any(".moodtag-" in name for name in os.listdir(path.parent)):
            return True
        try:
            now = path.stat()
        except FileNotFoundError:
            return True
        return (now.st_ino, now.st_size, now.st_mtime_ns) != (first.st_ino, first.st_size, first.st_mtime_ns)

    seen = None
    while proc.poll() is None and seen is None:
        if fired():
            seen = time.perf_counter()
    killed = False
    if kill_after is None:
        proc.stdout.readline()   # "done": write_mood has returned
    elif seen is not None:
        while proc.poll() is None and time.perf_counter() - seen < kill_after:
            time.sleep(0.0002)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed = True
    took = time.perf_counter() - seen if seen else 0.0
    _, err = proc.communicate(timeout=120)
    assert killed or proc.returncode == 0, err.decode()
    return took, killed


def pristine(big: Path, fmt: str, case: str, folder: Path) -> Path:
    """The large file of `fmt` with an artist and title: no padding ("copy", "journal") or 64 KiB
    ("padding"); a WAV's or AIFF's ID3 chunk placed in front of the audio."""
    path = folder / f"pristine.{fmt}"
    shutil.copyfile(big, path)
    add_tags(path, 0 if case != "padding" else 64 << 10)
    if fmt in ("wav", "aiff") and case != "padding":
        id3_chunk_first(path)
    return path


@pytest.mark.parametrize("case", ["copy", "journal", "padding"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_kill_mid_write_leaves_old_or_new(tmp_path, big_sources, fmt, case):
    rng = random.Random(f"{fmt}-{case}")
    source = pristine(big_sources[fmt], fmt, case, tmp_path)
    library, journal_dir = tmp_path / "library", tmp_path / "journal"
    library.mkdir()
    journal_dir.mkdir()
    path, link = library / f"track.{fmt}", tmp_path / f"link.{fmt}"
    before = sha(source)

    def fresh() -> None:
        for p in (path, link):
            p.unlink(missing_ok=True)
        shutil.copyfile(source, path)
        if case == "journal":
            os.link(path, link)

    # a full write: what "new" is, how it was written, and how long it takes
    fresh()
    inode = path.stat().st_ino
    window, _ = run_writer(path, journal_dir, "write", None)
    after = sha(path)
    assert after != before and read_mood(path) == VALUES
    assert audio_payload(path, fmt) == audio_payload(source, fmt)
    assert (path.stat().st_ino == inode) == (case != "copy")   # copy: renamed over; else in place
    if case == "journal":
        assert link.stat().st_ino == path.stat().st_ino and path.stat().st_nlink == 2

    outcomes: list[tuple[bool, bool, str]] = []
    long_write = case != "padding"   # long enough that a kill must be able to cut it (else this tests nothing)
    r = 0
    while r < ROUNDS or (long_write and not any(cut for _, cut, _ in outcomes) and r < ROUNDS + 5):
        fresh()
        if r == 0:   # early: while it plans and journals
            trigger, delay = "entry", 0.0
        else:        # while it writes: anywhere in the time a full write takes, then ever earlier in it
            trigger, delay = "write", window * rng.random() / 2 ** max(0, r - ROUNDS + 1)
        _, killed = run_writer(path, journal_dir, trigger, delay)
        cut = bool(list(library.glob(".*.moodtag-*.tmp"))) or sha(path) not in (before, after)   # mid-write
        restored = UndoJournal(journal_dir).recover()
        now = sha(path)
        assert now in (before, after), f"round {r}: killed {delay * 1000:.1f} ms after {trigger}: the file is damaged"
        assert not list(library.glob(".*.moodtag-*.tmp")), f"round {r}: a stale copy is left"
        assert not any(journal_dir.iterdir()), f"round {r}: a journal entry is left"
        assert all(item.path == path.resolve() for item in restored), restored
        if case == "journal":
            assert link.stat().st_ino == path.stat().st_ino, f"round {r}: the hard link was split"
        outcomes.append((killed, cut, "new" if now == after else "old"))
        r += 1
    if long_write:
        assert any(cut for _, cut, _ in outcomes), outcomes


# --- what a copy keeps -----------------------------------------------------------------------------

def test_copy_keeps_owner_mode_xattrs_and_acl(tmp_path, medium_mp3, journal):
    path = tmp_path / "track.mp3"
    shutil.copyfile(medium_mp3, path)
    if os.geteuid() != 0:
        pytest.skip("needs root to give the file another owner")
    os.chown(path, 1234, 5678)
    os.chmod(path, 0o640)
    try:
        os.setxattr(path, "user.rating", b"5 stars")
    except OSError as exc:
        pytest.skip(f"no user extended attributes here: {exc.strerror}")
    acl = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", tag, perm, ident) for tag, perm, ident in (
        (0x01, 6, 0xFFFFFFFF), (0x02, 4, 1000), (0x04, 4, 0xFFFFFFFF), (0x10, 4, 0xFFFFFFFF),
        (0x20, 0, 0xFFFFFFFF)))   # user::rw- user:1000:r-- group::r-- mask::r-- other::---
    try:
        os.setxattr(path, "system.posix_acl_access", acl)
    except OSError:
        acl = None
    before = path.stat()
    attrs = {name: os.getxattr(path, name) for name in os.listxattr(path)}
    assert write_mood(path, VALUES, journal=journal) is True
    after = path.stat()
    assert after.st_ino != before.st_ino   # written by a copy
    assert (after.st_uid, after.st_gid, stat.S_IMODE(after.st_mode)) == (1234, 5678, stat.S_IMODE(before.st_mode))
    assert {name: os.getxattr(path, name) for name in os.listxattr(path)} == attrs
    assert acl is None or os.getxattr(path, "system.posix_acl_access") == acl
    assert read_mood(path) == VALUES
    assert after_id3v2(path.read_bytes()) == medium_mp3.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["journal", "track.mp3"]


def test_hard_linked_file_is_written_in_place(tmp_path, medium_mp3, journal):
    path, other = tmp_path / "track.mp3", tmp_path / "also.mp3"
    shutil.copyfile(medium_mp3, path)
    os.link(path, other)
    inode = path.stat().st_ino
    assert write_mood(path, VALUES, journal=journal) is True
    assert path.stat().st_ino == other.stat().st_ino == inode and path.stat().st_nlink == 2
    assert read_mood(other) == VALUES
    assert after_id3v2(other.read_bytes()) == medium_mp3.read_bytes()


def test_file_of_another_owner_is_written_in_place(medium_mp3):
    """Writable by us but not ours: a copy would belong to us, so the file is written in place."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run the writer as another user")
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="moodtag-owner-"))   # not under pytest's 0700 tmp folder
    try:
        folder.chmod(0o777)
        path = folder / "track.mp3"
        shutil.copyfile(medium_mp3, path)
        os.chown(path, 1000, 1000)
        path.chmod(0o666)
        inode = path.stat().st_ino
        as_other_user = ("import os\nfrom tagger import tags, safewrite\n"   # imported as root, then run as 4321
                         "os.setgroups([]); os.setgid(4321); os.setuid(4321)\n" + WRITER)
        proc = subprocess.run([sys.executable, "-c", as_other_user, str(path), str(folder / "journal")], cwd=REPO,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        st = path.stat()
        assert (st.st_ino, st.st_uid, st.st_gid) == (inode, 1000, 1000)
        assert read_mood(path) == VALUES and after_id3v2(path.read_bytes()) == medium_mp3.read_bytes()
    finally:
        shutil.rmtree(folder)


def deep_folder(top: Path, length: int) -> Path:
    """A new folder under `top` whose path is `length` bytes long (folders of 250-byte names)."""
    folder = os.fsencode(top)
    while len(folder) + 1 + 250 + 1 + 10 < length:
        folder += b"/" + b"d" * 250
    folder += b"/" + b"e" * (length - len(folder) - 1)
    os.makedirs(folder)
    return Path(os.fsdecode(folder))


def test_a_path_too_long_for_the_hidden_copy_is_written_in_place(tmp_path, medium_mp3, journal):
    """A file whose path is a few bytes under PATH_MAX (4096 on Linux): the hidden copy's name is 22 bytes
    longer, so it cannot be made, and the write goes in place through the journal. Before, the tag was
    never written: 'File name too long' at every scan."""
    folder = deep_folder(tmp_path, 4080 - len("/track.mp3"))
    path = folder / "track.mp3"
    assert len(os.fsencode(path)) == 4080
    shutil.copyfile(medium_mp3, path)
    inode = path.stat().st_ino
    assert write_mood(path, VALUES, journal=journal) is True
    assert path.stat().st_ino == inode   # in place (a copy would be a new inode)
    assert read_mood(path) == VALUES and after_id3v2(path.read_bytes()) == medium_mp3.read_bytes()
    assert os.listdir(folder) == ["track.mp3"]


def test_an_os_error_is_named_in_lower_case(tmp_path, journal):
    """An OS error's text is a cause in moodtag's words: lower-case, as 'disk full' or 'file not found'."""
    with pytest.raises(TagError, match="^file name too long$"):
        write_mood(tmp_path / ("n" * 300 + ".flac"), VALUES, journal=journal)


@pytest.mark.parametrize("size", ["small", "medium"])
def test_symlink_stays_a_link_and_its_target_is_tagged(tmp_path, small_sources, medium_mp3, journal, size):
    real = tmp_path / "real" / "track.mp3"
    real.parent.mkdir()
    shutil.copyfile(small_sources["mp3"] if size == "small" else medium_mp3, real)
    link = tmp_path / "links" / "track.mp3"
    link.parent.mkdir()
    link.symlink_to(os.path.relpath(real, link.parent))
    assert write_mood(link, VALUES, journal=journal) is True
    assert link.is_symlink() and link.resolve() == real
    assert read_mood(real) == VALUES
    assert sorted(p.name for p in link.parent.iterdir()) == ["track.mp3"]
    assert remove_mood(link, journal=journal) is True and link.is_symlink() and read_mood(real) is None


def test_tag_growing_at_the_end_is_written_in_place(tmp_path, big_sources, journal):
    """A WAV's ID3 chunk last: growing it moves nothing, so no copy of 20 MB is made."""
    path = tmp_path / "track.wav"
    shutil.copyfile(big_sources["wav"], path)
    add_tags(path, 0)
    assert iff_chunks(path.read_bytes())[-1][0] == b"id3 "
    inode, payload = path.stat().st_ino, audio_payload(path, "wav")
    assert write_mood(path, VALUES, journal=journal) is True
    assert path.stat().st_ino == inode
    assert audio_payload(path, "wav") == payload and read_mood(path) == VALUES


def test_file_changed_during_the_write_is_not_written(tmp_path, small_sources, medium_mp3, journal):
    for source in (small_sources["flac"], medium_mp3):   # in place, and by a copy
        path = tmp_path / source.name
        shutil.copyfile(source, path)
        data = path.read_bytes()

        def save(fileobj, path=path):
            insert_bytes(fileobj, 5000, 0)   # room for a tag in front: the whole file moves
            os.utime(path, ns=(1, 1))        # and someone else touches the file meanwhile

        with open(path, "rb") as fh, pytest.raises(TagError, match="changed while it was being tagged"):
            safewrite.rewrite(path, fh, save, journal=journal)
        assert path.read_bytes() == data
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


class RacedJournal(UndoJournal):
    """A journal during whose first entry another program (mutagen, as a tag editor would) sets a title
    in `path`: "before" the entry reads the file's old bytes (it then holds the other program's), or
    "after" (it holds ours). Keeps the file's bytes and mtime as that program left them."""

    def __init__(self, folder: Path, path: Path, when: str) -> None:
        super().__init__(folder)
        self.path, self.when, self.left = path, when, None

    def _begin(self, *args, **kwargs):
        if self.left is not None:
            return super()._begin(*args, **kwargs)
        if self.when == "after":
            entry = super()._begin(*args, **kwargs)
        other = mutagen.File(self.path, easy=True)
        if other.tags is None:
            other.add_tags()
        other["title"] = "Set by another program"
        other.save()
        self.left = (self.path.read_bytes(), self.path.stat().st_mtime_ns)
        if self.when == "before":
            entry = super()._begin(*args, **kwargs)
        return entry


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("way", ["in place", "in place, no plan", "copy"])
def test_another_programs_write_during_ours_is_left_alone(tmp_path, small_sources, medium_mp3, monkeypatch,
                                                          way, when):
    """Another program writes the file between our journal entry and our write: we write nothing and
    restore nothing (an undo would cut its file back to our old size, or put our old bytes over its
    write), and say so in one line. The journal is left free for the next write."""
    source = medium_mp3 if way == "copy" else small_sources["flac"]
    path = tmp_path / source.name
    shutil.copyfile(source, path)
    if way == "in place, no plan":   # mutagen writes the file itself, every old byte journaled
        os.link(path, tmp_path / "link")
        monkeypatch.setattr(safewrite, "OVERLAY_LIMIT", 16)
    journal = RacedJournal(tmp_path / "journal", path, when)
    with pytest.raises(TagError, match="^the file changed while it was being tagged; not written$"):
        write_mood(path, VALUES, journal=journal)
    assert journal.left is not None
    assert (path.read_bytes(), path.stat().st_mtime_ns) == journal.left
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert write_mood(path, VALUES, journal=journal) is True
    assert read_mood(path) == VALUES and mutagen.File(path, easy=True)["title"] == ["Set by another program"]
    journal.close()
    assert not list(journal.folder.iterdir())


# --- the overlay: mutagen's file operations, planned without touching the file ---------------------

@pytest.mark.parametrize("read_ahead", [safewrite.READ_AHEAD, 1000, 1])
def test_overlay_behaves_as_the_file_would(tmp_path, monkeypatch, read_ahead):
    """Random writes, reads, truncations and mutagen's insert/delete/resize on the overlay and on a real
    file give the same bytes; the plan rebuilds them from the original and its changed blocks. With a
    read-ahead smaller than the files too (reads across its window's edges)."""
    monkeypatch.setattr(safewrite, "READ_AHEAD", read_ahead)
    rng = random.Random(1)
    for trial in range(60):
        data = rng.randbytes(rng.randrange(0, 20000))
        original, reference = tmp_path / "original", tmp_path / "reference"
        original.write_bytes(data)
        reference.write_bytes(data)
        fd = os.open(original, os.O_RDONLY)
        overlay = safewrite._Overlay(fd, len(data), str(original))
        with open(reference, "r+b") as ref:
            for step in range(25):
                ref.flush()
                size = os.fstat(ref.fileno()).st_size
                op, at = rng.randrange(6), rng.randrange(0, size + 30)
                for f in (ref, overlay):
                    f.seek(at)
                if op == 0:
                    block = rng.randbytes(rng.randrange(0, 3000))
                    ref.write(block), overlay.write(block)
                elif op == 1:
                    n = rng.randrange(-1, 3000)
                    assert ref.read(n) == overlay.read(n)
                elif op == 2 and size:
                    n, at = rng.randrange(0, 9000), min(at, size - 1)
                    insert_bytes(ref, n, at, BUFFER_SIZE=1000), insert_bytes(overlay, n, at, BUFFER_SIZE=1000)
                elif op == 3 and size:
                    at = min(at, size - 1)
                    n = rng.randrange(0, size - at + 1)
                    delete_bytes(ref, n, at, BUFFER_SIZE=777), delete_bytes(overlay, n, at, BUFFER_SIZE=777)
                elif op == 4:
                    n = rng.randrange(0, size + 5000)
                    ref.truncate(n), overlay.truncate(n)
                elif op == 5 and size:
                    at = min(at, size - 1)
                    old, new = rng.randrange(0, size - at + 1), rng.randrange(0, 9000)
                    resize_bytes(ref, old, new, at), resize_bytes(overlay, old, new, at)
                assert ref.tell() == overlay.tell()
            ref.flush()
        want = reference.read_bytes()
        overlay.seek(0)
        assert overlay.read() == want and original.read_bytes() == data
        plan = overlay.plan()
        os.close(fd)
        assert plan.read_new(0, plan.new_size, lambda offset, n: data[offset:offset + n]) == want
        covered = np.zeros(len(data), bool)
        for lo, hi in plan.changed:
            covered[lo:hi] = True
        common = min(len(data), len(want))
        differs = np.frombuffer(data[:common], np.uint8) != np.frombuffer(want[:common], np.uint8)
        assert covered[:common][differs].all() and covered[len(want):].all()


def test_moving_bytes_holds_references_not_memory(tmp_path, big_sources):
    """Making room for a larger tag in front of 20 MB plans in a few pieces, not 20 MB of memory."""
    path = big_sources["flac"]
    fd = os.open(path, os.O_RDONLY)
    try:
        overlay = safewrite._Overlay(fd, path.stat().st_size, str(path))
        insert_bytes(overlay, 5000, 100)
        overlay.seek(100)
        overlay.write(b"x" * 5000)
        held = sum(piece[0] for piece in overlay._pieces if piece[1] == safewrite._MEM)
        assert held <= 10000 and len(overlay._pieces) < 10
        assert overlay.plan().new_size == path.stat().st_size + 5000
    finally:
        os.close(fd)


@pytest.mark.parametrize("linked", [False, True], ids=["copy", "in-place"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_plan_too_large_for_memory_runs_mutagen_on_a_copy(tmp_path, small_sources, monkeypatch, journal, fmt,
                                                          linked):
    """Past OVERLAY_LIMIT the plan is dropped and mutagen runs again: on a copy, or (hard link) on the
    file itself with every old byte journaled. The result is the same file a plan gives."""
    planned, fallback = tmp_path / f"planned.{fmt}", tmp_path / f"fallback.{fmt}"
    for p in (planned, fallback):
        shutil.copyfile(small_sources[fmt], p)
    write_mood(planned, VALUES, journal=journal)
    if linked:
        os.link(fallback, tmp_path / "link")
    monkeypatch.setattr(safewrite, "OVERLAY_LIMIT", 16)
    assert write_mood(fallback, VALUES, journal=journal) is True
    assert fallback.read_bytes() == planned.read_bytes()
    journal.close()
    assert not list(journal.folder.iterdir())


def test_closing_a_journal_whose_folder_is_gone_raises_nothing_and_closes_its_entry(tmp_path, small_sources, journal):
    """A journal on a drive pulled out mid-scan: deleting its (void) slot at close failed (ENOTCONN), the
    error escaped the scan's finally and hid the scan's own behind a traceback, and the entry's descriptor
    stayed open. Here its folder is replaced by a file (the unlink meets ENOTDIR, a real OS error)."""
    path = tmp_path / "track.flac"
    shutil.copyfile(small_sources["flac"], path)
    assert write_mood(path, VALUES, journal=journal) is True
    (slot,) = journal.folder.iterdir()
    fd = journal._slot[1]
    journal.folder.rename(tmp_path / "moved")
    journal.folder.write_bytes(b"")
    journal.close()  # raises nothing
    with pytest.raises(OSError):
        os.fstat(fd)  # closed
    assert (tmp_path / "moved" / slot.name).exists()  # void: left for a later recovery
    journal.folder.unlink()
    (tmp_path / "moved").rename(journal.folder)
    assert UndoJournal(journal.folder).recover() == [] and not list(journal.folder.iterdir())


# --- full disks and read-only file systems ---------------------------------------------------------

NAMESPACE_PRELUDE = """
import json, os, shutil, subprocess, sys
from pathlib import Path
from tagger.errors import TagError
from tagger.safewrite import UndoJournal
from tagger.tags import MoodValues, read_mood, remove_mood, write_mood
values = MoodValues(mood="calm", scores={"calm": 0.913, "exciting": 0.087}, model="moodtag-cnn 1.0.0")
def mount(*options):
    subprocess.run(["mount", *options], check=True)
def attempt(fn):
    try:
        return ["ok", fn()]
    except TagError as exc:
        return ["error", str(exc)]
"""


def test_full_disk_is_refused_before_copying(tmp_path, medium_mp3):
    import soundfile as sf

    reason = namespace_available()
    if reason:
        pytest.skip(reason)
    wav = tmp_path / "end.wav"   # 2 MB, ID3 chunk last: written in place, the file grows
    sf.write(str(wav), noise(12.0), synth.SAMPLE_RATE, subtype="PCM_16")
    add_tags(wav, 0)
    script = NAMESPACE_PRELUDE + """
mnt, mp3, wav, journal = map(Path, sys.argv[1:5])
mnt.mkdir()
mount("-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt))
track = mnt / "track.mp3"
shutil.copyfile(mp3, track)
before = track.read_bytes()
copy = attempt(lambda: write_mood(track, values, journal=UndoJournal(journal)))
out = {"copy": copy, "copy_untouched": track.read_bytes() == before,
       "copy_left": sorted(p.name for p in mnt.iterdir())}
track.unlink()
grow = mnt / "end.wav"
shutil.copyfile(wav, grow)
fd = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT)   # fill the disk to the last block
try:
    while True:
        os.write(fd, bytes(4096))
except OSError:
    os.close(fd)
before = grow.read_bytes()
grown = attempt(lambda: write_mood(grow, values, journal=UndoJournal(journal)))
out.update(grow=grown, grow_untouched=grow.read_bytes() == before)
print(json.dumps(out))
"""
    out = in_namespace(script, tmp_path / "mnt", medium_mp3, wav, tmp_path / "journal")
    assert out["copy"][0] == "error" and out["copy"][1].startswith("disk full: a safe copy of the file needs")
    assert out["copy_untouched"] and out["copy_left"] == ["track.mp3"]
    assert out["grow"] == ["error", "disk full"] and out["grow_untouched"]


# --- recovery ---------------------------------------------------------------------------------------

INTERRUPTED = """
import os, signal, sys
from pathlib import Path
from tagger.safewrite import UndoJournal, _pwrite
path, journal, ranges = Path(sys.argv[1]), UndoJournal(Path(sys.argv[2])), eval(sys.argv[3])
fd = os.open(path, os.O_RDWR)
st = os.fstat(fd)
header = {"kind": "in place", "path": os.fsencode(path).hex(), "dev": st.st_dev, "ino": st.st_ino,
          "old_size": st.st_size, "new_size": st.st_size + 5000, "atime_ns": st.st_atime_ns,
          "mtime_ns": st.st_mtime_ns, "write_set": [[0, st.st_size + 5000]], "new_sha256": "0" * 64}
journal._begin(header, ranges, fd)
os.ftruncate(fd, st.st_size + 5000)   # the write, cut off half way: the old bytes half overwritten
for lo, hi in ranges:
    _pwrite(fd, os.urandom((hi - lo) // 2), lo)
os.kill(os.getpid(), signal.SIGKILL)
"""


def interrupt_a_write(path: Path, journal: UndoJournal, ranges) -> None:
    proc = subprocess.run([sys.executable, "-c", INTERRUPTED, str(path), str(journal.folder), repr(ranges)],
                          cwd=REPO, capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()


def test_recovery_restores_an_interrupted_in_place_write(tmp_path, small_sources, journal):
    path = tmp_path / "track.flac"
    shutil.copyfile(small_sources["flac"], path)
    os.utime(path, ns=(10**18, 10**18))
    data, mtime = path.read_bytes(), path.stat().st_mtime_ns
    interrupt_a_write(path, journal, [(0, 8192), (20480, 24576)])
    assert path.read_bytes() != data and len(list(journal.folder.iterdir())) == 1
    restored = journal.recover()
    assert [(r.path, r.action) for r in restored] == [(path, "restored as it was before an interrupted tag write")]
    assert path.read_bytes() == data and path.stat().st_mtime_ns == mtime
    assert not list(journal.folder.iterdir())
    assert journal.recover() == []


def test_recovery_killed_half_way_is_finished_by_the_next(tmp_path, big_sources, journal):
    path = tmp_path / "track.wav"
    shutil.copyfile(big_sources["wav"], path)
    data = sha(path)
    size = path.stat().st_size
    interrupt_a_write(path, journal, [(0, size)])   # a whole file journaled: a long recovery
    recover = ("import sys\nfrom pathlib import Path\nfrom tagger.safewrite import UndoJournal\n"
               "print('go', flush=True)\nUndoJournal(Path(sys.argv[1])).recover()\n")
    for delay in (0.0, 0.01, 0.03):
        proc = subprocess.Popen([sys.executable, "-c", recover, str(journal.folder)], cwd=REPO,
                                stdout=subprocess.PIPE)
        assert proc.stdout.readline() == b"go\n"
        time.sleep(delay)
        proc.kill()
        proc.wait()
    restored = journal.recover()
    assert sha(path) == data
    assert len(restored) <= 1 and not list(journal.folder.iterdir())


KILLED_BEFORE_SYNC = """
import os, signal, sys
from pathlib import Path
from tagger import safewrite
from tagger.tags import MoodValues, write_mood
safewrite._fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)   # the write is in the file, not synced
write_mood(Path(sys.argv[1]), MoodValues(mood="calm", scores={"calm": 0.913, "exciting": 0.087},
           model="moodtag-cnn 1.0.0"), journal=safewrite.UndoJournal(Path(sys.argv[2])))
"""


@pytest.mark.xfail(strict=True, reason="known gap: recovery cannot tell another program's later edit from a "
                   "write torn by a power cut or a kill without a mark it can trust; an 'applied' mark (f985d08) "
                   "was taken back (a power cut then a chmod left a torn file alone), and so was a sector that is "
                   "neither old nor new (08e5562: a kill on a FUSE mount with direct_io leaves one)")
@pytest.mark.parametrize("keep_mtime", [False, True], ids=["edit", "edit keeping the mtime"])
def test_an_edit_after_an_interrupted_write_had_reached_the_file_is_left_alone(tmp_path, small_sources, journal,
                                                                               keep_mtime):
    """Killed after its in-place write reached the file (the entry marked 'applied'), before the fsync; then
    a tag editor changes the file in place (same size: padding), maybe setting its mtime back as a
    'preserve timestamps' option does (its ctime is still later). Recovery leaves the file alone: it holds
    our write and the edit, whole; an undo put the bytes from before our write over the edit."""
    path = tmp_path / "track.flac"
    shutil.copyfile(small_sources["flac"], path)
    write_mood(path, OTHER, journal=journal)   # now there is padding: the next write is in place
    journal.close()
    proc = subprocess.run([sys.executable, "-c", KILLED_BEFORE_SYNC, str(path), str(journal.folder)], cwd=REPO,
                          capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert read_mood(path) == VALUES and len(list(journal.folder.iterdir())) == 1
    before = path.stat()
    edited = mutagen.File(path)
    edited["TITLE"] = "Set by another program"
    edited.save()
    assert path.stat().st_size == before.st_size and path.stat().st_ino == before.st_ino
    if keep_mtime:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert [(r.path, r.action) for r in journal.recover()] == [
        (path, "left alone: another program changed it after the interrupted write")]
    assert mutagen.File(path)["TITLE"] == ["Set by another program"] and read_mood(path) == VALUES
    assert not list(journal.folder.iterdir())


def test_recovery_leaves_a_live_writers_entry_alone(tmp_path, small_sources, journal):
    path = tmp_path / "track.flac"
    shutil.copyfile(small_sources["flac"], path)
    data = path.read_bytes()
    fd = os.open(path, os.O_RDWR)
    st = os.fstat(fd)
    header = {"kind": "in place", "path": os.fsencode(path).hex(), "dev": st.st_dev, "ino": st.st_ino,
              "old_size": st.st_size, "new_size": st.st_size, "atime_ns": st.st_atime_ns,
              "mtime_ns": st.st_mtime_ns, "write_set": [[0, 4096]], "new_sha256": None}
    entry = journal._begin(header, [(0, 4096)], fd)
    os.pwrite(fd, b"\0" * 4096, 0)   # the write in flight
    assert UndoJournal(journal.folder).recover() == []   # its writer is alive: not touched
    assert path.read_bytes()[:4096] == b"\0" * 4096 and entry.path.exists()
    entry.abandon()   # the writer dies
    os.close(fd)
    assert [r.action for r in UndoJournal(journal.folder).recover()] == [
        "restored as it was before an interrupted tag write"]
    assert path.read_bytes() == data


def test_a_live_writers_entry_is_not_called_interrupted(tmp_path, small_sources, journal):
    """UndoJournal.interrupted (what a scan with -n or --no-write leaves alone) named the file of every
    complete entry, a write in progress in another scan included, which recovery leaves alone since its
    writer holds the entry's lock: the dry run called that file torn and counted it failed. Such an entry
    is left out now, and named once its writer is dead."""
    from tests.conftest import first_block_in_flight

    path = tmp_path / "track.flac"
    shutil.copyfile(small_sources["flac"], path)
    fd, entry = first_block_in_flight(path, journal)
    os.pwrite(fd, b"\0" * 4096, 0)   # the write in flight
    assert UndoJournal(journal.folder).interrupted() == set()
    entry.abandon()   # the writer dies
    os.close(fd)
    assert UndoJournal(journal.folder).interrupted() == {os.path.realpath(path)}
    assert [r.undone for r in UndoJournal(journal.folder).recover()] == [True]


def test_a_dry_run_reading_the_journal_does_not_stop_its_recovery(tmp_path, small_sources, journal, monkeypatch):
    """interrupted() asks whether an entry's writer is alive with a shared lock of the entry, let go at
    once: a recovery that meets such a lock tries again, and does not take the reader for a live writer
    (the entry, left for later, would undo old bytes over the next write of the file). Here the test
    holds a reader's shared lock until the recovery's first wait between two tries."""
    import fcntl
    import types

    path = tmp_path / "track.flac"
    shutil.copyfile(small_sources["flac"], path)
    data = path.read_bytes()
    interrupt_a_write(path, journal, [(0, 8192)])
    (entry,) = journal.folder.iterdir()
    reader = os.open(entry, os.O_RDONLY)
    fcntl.flock(reader, fcntl.LOCK_SH)
    waits = []

    def sleep(seconds):  # the reader lets go while the recovery waits to try again
        waits.append(seconds)
        os.close(reader)

    monkeypatch.setattr(safewrite, "time", types.SimpleNamespace(sleep=sleep), raising=False)
    restored = UndoJournal(journal.folder).recover()
    assert waits == [0.001]
    assert [r.undone for r in restored] == [True]
    assert path.read_bytes() == data


def test_torn_entry_is_dropped_and_the_file_left_alone(tmp_path, small_sources, journal):
    """An entry cut off while it was written (its hash does not match) never let its write start."""
    path = tmp_path / "track.flac"
    shutil.copyfile(small_sources["flac"], path)
    fd = os.open(path, os.O_RDONLY)
    st = os.fstat(fd)
    header = {"kind": "in place", "path": os.fsencode(path).hex(), "dev": st.st_dev, "ino": st.st_ino,
              "old_size": st.st_size, "new_size": st.st_size, "atime_ns": 0, "mtime_ns": 0,
              "write_set": [[0, 4096]], "new_sha256": None}
    entry = journal._begin(header, [(0, 4096)], fd)
    os.close(fd)
    entry_bytes = entry.path.read_bytes()
    entry.abandon()
    entry.path.write_bytes(entry_bytes[:-40])   # torn
    data = path.read_bytes()
    os.utime(path, ns=(5, 5))
    assert journal.recover() == []
    assert path.read_bytes() == data and path.stat().st_mtime_ns == 5
    assert not list(journal.folder.iterdir())


def test_finished_write_whose_entry_survived_is_kept(tmp_path, small_sources, journal):
    """Killed between the write's fsync and the entry's deletion: recovery sees the new bytes whole
    (their hash is in the entry) and keeps them."""
    path = tmp_path / "track.flac"
    shutil.copyfile(small_sources["flac"], path)
    write_mood(path, OTHER, journal=journal)   # now there is padding: the next write is in place
    journal.close()
    script = ("import os, signal, sys\nfrom pathlib import Path\nfrom tagger import safewrite\n"
              "from tagger.tags import MoodValues, write_mood\n"
              "safewrite._Entry.finish = lambda self: os.kill(os.getpid(), signal.SIGKILL)\n"
              "write_mood(Path(sys.argv[1]), MoodValues(mood='calm', scores={'calm': 0.913, 'exciting': 0.087},"
              " model='moodtag-cnn 1.0.0'), journal=safewrite.UndoJournal(Path(sys.argv[2])))\n")
    proc = subprocess.run([sys.executable, "-c", script, str(path), str(journal.folder)], cwd=REPO,
                          capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert len(list(journal.folder.iterdir())) == 1
    restored = journal.recover()
    assert [r.action for r in restored] == ["kept: the interrupted tag write had finished"]
    assert read_mood(path) == VALUES


def test_writer_recovers_first(tmp_path, small_sources, journal):
    """A journal's first write finishes dead writers' entries first, so no stale entry can later
    undo bytes over a newer write."""
    path = tmp_path / "track.flac"
    shutil.copyfile(small_sources["flac"], path)
    data = path.read_bytes()
    interrupt_a_write(path, journal, [(0, 4096)])
    fresh = UndoJournal(journal.folder)
    other = tmp_path / "other.flac"
    shutil.copyfile(small_sources["flac"], other)
    assert write_mood(other, VALUES, journal=fresh) is True
    assert path.read_bytes() == data and [r.path for r in fresh.recovered] == [path]
    fresh.close()
    assert not list(journal.folder.iterdir())


def test_journal_beside_the_cache_is_made_on_first_use(tmp_path, small_sources):
    journal = UndoJournal.for_cache(tmp_path / "moodtag.db")
    assert journal.folder == tmp_path / "moodtag.db-undo"
    assert journal.recover() == [] and not journal.folder.exists()
    path = tmp_path / "track.ogg"
    shutil.copyfile(small_sources["ogg"], path)
    assert write_mood(path, VALUES, journal=journal) is True
    assert journal.folder.is_dir()
    journal.close()   # its entry file, kept for the next write, goes
    assert not list(journal.folder.iterdir())
    assert read_info(path).format == "ogg"


NO_PLAN = """
import os, signal, sys
from pathlib import Path
from tagger.safewrite import UndoJournal, _pwrite
path, journal = Path(sys.argv[1]), UndoJournal(Path(sys.argv[2]))
fd = os.open(path, os.O_RDWR)
st = os.fstat(fd)
header = {"kind": "in place", "path": os.fsencode(path).hex(), "dev": st.st_dev, "ino": st.st_ino,
          "old_size": st.st_size, "atime_ns": st.st_atime_ns, "mtime_ns": st.st_mtime_ns,
          "new_size": None, "write_set": [], "new_sha256": None}   # as _write_in_place without a plan
journal._begin(header, [(0, st.st_size)], fd)
os.ftruncate(fd, st.st_size + 5000)   # mutagen's own save, cut off half way
_pwrite(fd, os.urandom(4096), 0)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_scan_that_writes_nothing_sees_every_write_recovery_would_undo(tmp_path, small_sources, journal):
    """UndoJournal.interrupted (what -n and --no-write leave alone, as they run no recovery) judged each
    entry by the file's old or new size; a write without a plan (mutagen's own save, new size unknown)
    that grew the file was missed, so those scans analysed the torn file as a false failure. It now
    names every file recovery would restore."""
    planned, unplanned = tmp_path / "planned.flac", tmp_path / "unplanned.flac"
    for path in (planned, unplanned):
        shutil.copyfile(small_sources["flac"], path)
    interrupt_a_write(planned, journal, [(0, 8192)])
    assert journal.interrupted() == {os.path.realpath(planned)}
    assert [r.path for r in journal.recover() if r.undone] == [planned]
    proc = subprocess.run([sys.executable, "-c", NO_PLAN, str(unplanned), str(journal.folder)], cwd=REPO,
                          capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert journal.interrupted() == {os.path.realpath(unplanned)}
    assert [r.path for r in journal.recover() if r.undone] == [unplanned]


# --- recovery after the disk was mounted again (a new inode number) --------------------------------

KILLED_IN_PLACE = """
import os, signal, sys
from pathlib import Path
from tagger import safewrite
from tagger.tags import MoodValues, write_mood
path, folder, when, entry_format = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]


def die(*args):
    os.kill(os.getpid(), signal.SIGKILL)


def torn(fd, plan, read_old):   # a sector of the write reaches the disk, then the power goes
    lo, hi = plan.write_set()[0]
    new, old = plan.read_new(lo, hi, read_old), read_old(lo, hi - lo)
    first = next(i for i in range(len(new)) if new[i:i + 1] != old[i:i + 1]) // 512 * 512
    safewrite._pwrite(fd, new[first:first + 512], lo + first)
    os.fsync(fd)
    die()


def half_new(fd, plan, read_old):   # the first half of the new blocks reach the disk, then the power goes
    blocks = [(pos, min(hi, pos + 4096)) for lo, hi in plan.write_set() for pos in range(lo, hi, 4096)]
    if plan.new_size > plan.old_size:
        os.ftruncate(fd, plan.new_size)
    for lo, hi in blocks[:len(blocks) // 2]:
        safewrite._pwrite(fd, plan.read_new(lo, hi, read_old), lo)
    os.fsync(fd)
    die()


def split_sector(fd, plan, read_old):   # a FUSE mount with direct_io: the write split inside a sector, then a kill
    lo, hi = plan.write_set()[0]
    new, old = plan.read_new(lo, hi, read_old), read_old(lo, hi - lo)
    first = next(i for i in range(len(new)) if new[i:i + 1] != old[i:i + 1]) // 512 * 512
    safewrite._pwrite(fd, new[:first + 300], lo)
    os.fsync(fd)
    die()


if when == "torn":
    safewrite._apply = torn
elif when == "split sector":
    safewrite._apply = split_sector
elif when == "half new":
    safewrite._apply = half_new
elif when == "untouched":
    safewrite._apply = die
else:
    safewrite._Entry.finish = die
if entry_format == "old":   # an entry as moodtag wrote it before kept_sha256
    begin = safewrite.UndoJournal._begin
    safewrite.UndoJournal._begin = lambda self, header, *args: begin(
        self, {k: v for k, v in header.items() if k not in ("kept_spans", "kept_sha256", "new_sectors")}, *args)
write_mood(path, MoodValues(mood="calm", scores={"calm": 0.913, "exciting": 0.087}, model="moodtag-cnn 1.0.0"),
           journal=safewrite.UndoJournal(folder))
"""


def killed_in_place(tmp_path, small_sources, journal, when: str, entry_format: str = "new", *,
                    first_tag: bool = False, remount: bool = True) -> tuple[Path, bytes]:
    """A FLAC file with padding whose in-place tag write died `when` ("torn", "half new", "untouched",
    "finished"), then given a new inode with the same bytes, as a FAT or exFAT disk mounted again does (its
    driver numbers inodes afresh). `first_tag`: an untagged small MP3 instead, whose first ID3 tag shifts
    every byte (written in place: it is small). (path, its bytes before the write)."""
    path = tmp_path / ("track.mp3" if first_tag else "track.flac")
    shutil.copyfile(small_sources["mp3" if first_tag else "flac"], path)
    if not first_tag:
        write_mood(path, OTHER, journal=journal)   # now there is padding: the next write is in place
        tagged = mutagen.File(path)
        tagged["COMMENT"] = "a long note " * 300   # after moodtag's fields: the next write shifts it, sectors of it
        tagged.save()
    journal.close()
    data = path.read_bytes()
    proc = subprocess.run([sys.executable, "-c", KILLED_IN_PLACE, str(path), str(journal.folder), when,
                           entry_format], cwd=REPO, capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert len(list(journal.folder.iterdir())) == 1
    if not remount:
        return path, data
    os.link(path, tmp_path / ".written-inode")   # kept in use: no later file of the test gets its number
    copy = path.with_name(".remounted")
    shutil.copy2(path, copy)
    os.replace(copy, path)
    assert path.stat().st_ino != (tmp_path / ".written-inode").stat().st_ino
    return path, data


def test_a_write_cut_inside_a_sector_is_undone(tmp_path, small_sources, journal):
    """On a FUSE mount with direct_io (mergerfs, sshfs -o direct_io, rclone --direct-io) the kernel splits a
    write where the caller's buffer's pages end, not the file's: a kill between two of its requests leaves
    a sector half new, half old. Recovery took such a sector for another program's edit, said "left alone"
    and deleted the entry: the file stayed torn for good. It is undone."""
    path, data = killed_in_place(tmp_path, small_sources, journal, "split sector", remount=False)
    torn = path.read_bytes()
    assert torn != data and len(torn) == len(data)
    assert journal.interrupted() == {os.path.realpath(path)}
    assert [(r.path, r.action) for r in journal.recover()] == [
        (path, "restored as it was before an interrupted tag write")]
    assert path.read_bytes() == data and not list(journal.folder.iterdir())


def test_a_torn_write_is_undone_after_the_disk_is_mounted_again(tmp_path, small_sources, journal):
    """A tag write torn on an exFAT USB drive, the drive mounted again: recovery found another inode number
    at the path, said "left alone: another file has its name now", deleted the entry with the old bytes, and
    the file stayed torn for good. The bytes the write leaves alone, hashed in the entry, show it is the
    same file: it is restored byte for byte, and a scan that writes nothing calls it torn meanwhile."""
    path, data = killed_in_place(tmp_path, small_sources, journal, "torn")
    assert path.read_bytes() != data and path.stat().st_size == len(data)
    assert journal.interrupted() == {os.path.realpath(path)}
    assert [(r.path, r.action) for r in journal.recover()] == [
        (path, "restored as it was before an interrupted tag write")]
    assert path.read_bytes() == data and read_mood(path) == OTHER
    assert not list(journal.folder.iterdir())


def test_a_finished_write_is_kept_after_the_disk_is_mounted_again(tmp_path, small_sources, journal):
    path, _ = killed_in_place(tmp_path, small_sources, journal, "finished")
    assert journal.interrupted() == set()
    assert [(r.path, r.action) for r in journal.recover()] == [
        (path, "kept: the interrupted tag write had finished")]
    assert read_mood(path) == VALUES and not list(journal.folder.iterdir())


def test_a_write_not_begun_is_nothing_after_the_disk_is_mounted_again(tmp_path, small_sources, journal):
    path, data = killed_in_place(tmp_path, small_sources, journal, "untouched")
    assert journal.interrupted() == set()
    assert journal.recover() == []
    assert path.read_bytes() == data and not list(journal.folder.iterdir())


def test_another_file_of_the_same_size_at_the_path_is_not_undone(tmp_path, small_sources, journal):
    """Under another inode, a file whose bytes the write would have left alone differ is another file put
    in its place (same size, not the old bytes nor the new): left alone, the entry done."""
    path, data = killed_in_place(tmp_path, small_sources, journal, "torn")
    ino = path.stat().st_ino
    other = bytes(b ^ 0x55 for b in path.read_bytes())
    path.with_name(".other").write_bytes(other)
    os.replace(path.with_name(".other"), path)
    assert path.stat().st_ino not in (ino, (tmp_path / ".written-inode").stat().st_ino)
    assert journal.interrupted() == set()
    assert [(r.path, r.action) for r in journal.recover()] == [(path, "left alone: another file has its name now")]
    assert path.read_bytes() == other and not list(journal.folder.iterdir())


def test_a_write_that_shifts_every_byte_torn_is_undone_after_the_disk_is_mounted_again(tmp_path, small_sources,
                                                                                        journal):
    """A small MP3's first tag shifts all of its bytes, so no bytes are left alone for the entry to hash:
    torn on a share or a FAT disk mounted again under new inode numbers, it stayed "not recovered yet"
    for good. The hash of each new block shows a file made only of old and new blocks: it is restored.
    Another file of the same size in its place stays as it is, its entry kept for later."""
    path, data = killed_in_place(tmp_path, small_sources, journal, "half new", first_tag=True)
    (entry,) = journal.folder.iterdir()
    fd = os.open(entry, os.O_RDONLY)
    try:
        header, _ = safewrite._read_entry(fd)
    finally:
        os.close(fd)
    assert header["kept_sha256"] is None and header["write_set"] == [[0, len(path.read_bytes())]]
    torn = path.read_bytes()
    assert torn != data and torn[:3] == b"ID3"
    other = bytes(b ^ 0x55 for b in torn)
    path.with_name(".other").write_bytes(other)
    os.replace(path.with_name(".other"), path)   # another file of the same size, new inode
    restored = journal.recover()
    assert [(r.path, r.pending) for r in restored] == [(path, True)], restored
    assert path.read_bytes() == other
    path.with_name(".torn").write_bytes(torn)
    os.replace(path.with_name(".torn"), path)   # the torn file again, under yet another inode number
    assert journal.interrupted() == {os.path.realpath(path)}
    assert [(r.path, r.action) for r in journal.recover()] == [
        (path, "restored as it was before an interrupted tag write")]
    assert path.read_bytes() == data and read_mood(path) is None
    assert not list(journal.folder.iterdir())


def test_an_older_entry_under_another_inode_is_kept_for_later(tmp_path, small_sources, journal):
    """An entry written before kept_sha256 cannot tell the file written from another under a new inode: it
    is neither undone nor deleted (its old bytes are the only way back), and recovery says so; the file
    counts as torn for a scan that writes nothing."""
    path, data = killed_in_place(tmp_path, small_sources, journal, "torn", "old")
    torn = path.read_bytes()
    (entry,) = journal.folder.iterdir()
    assert journal.interrupted() == {os.path.realpath(path)}
    restored = journal.recover()
    assert [(r.path, r.pending) for r in restored] == [(path, True)]
    assert restored[0].action.startswith("not recovered yet: its inode changed since the interrupted write")
    assert str(entry) in restored[0].action
    assert path.read_bytes() == torn and list(journal.folder.iterdir()) == [entry]


def test_an_older_entry_of_the_same_inode_on_another_device_is_undone(tmp_path, small_sources, journal):
    """A disk plugged in again under another device number keeps its inode numbers (ext4): an entry of the
    same inode and a size that fits is undone, with or without kept_sha256."""
    path = tmp_path / "track.flac"
    shutil.copyfile(small_sources["flac"], path)
    data = path.read_bytes()
    fd = os.open(path, os.O_RDWR)
    st = os.fstat(fd)
    header = {"kind": "in place", "path": os.fsencode(path).hex(), "dev": st.st_dev + 1, "ino": st.st_ino,
              "old_size": st.st_size, "new_size": st.st_size, "atime_ns": st.st_atime_ns,
              "mtime_ns": st.st_mtime_ns, "write_set": [[0, 4096]], "new_sha256": "0" * 64}
    entry = journal._begin(header, [(0, 4096)], fd)
    os.pwrite(fd, b"\xaa" * 2048, 0)   # torn
    entry.abandon()
    os.close(fd)
    assert journal.interrupted() == {os.path.realpath(path)}
    assert [r.action for r in UndoJournal(journal.folder).recover()] == [
        "restored as it was before an interrupted tag write"]
    assert path.read_bytes() == data and not list(journal.folder.iterdir())


def test_kept_spans_leave_out_every_byte_the_write_touches():
    assert safewrite._kept_spans(1 << 20, [(0, 8192), (500_000, 1 << 20)]) == [(8192, 8192 + 65536),
                                                                              (500_000 - 65536, 500_000)]
    assert safewrite._kept_spans(1 << 20, [(4096, 8192)]) == [(8192, 8192 + 65536), ((1 << 20) - 65536, 1 << 20)]
    assert safewrite._kept_spans(100_000, [(0, 8192), (20_000, 24_576)]) == [(8192, 20_000), (100_000 - 65536, 100_000)]
    assert safewrite._kept_spans(8192, [(0, 8192)]) == []


def test_a_copy_that_cannot_be_deleted_is_left_to_recovery(tmp_path, medium_mp3, journal, monkeypatch):
    """A share that turns read-only during a safe copy: the write fails, and so does deleting the hidden copy
    (up to a whole track). Its journal entry was voided anyway, so no later scan deleted the copy, which
    stayed on the share for good. The entry now stays: a recovery that still cannot delete it says so and
    keeps it; the one after the share is writable deletes it. (chattr +i on the folder: a real EPERM.)"""
    folder = tmp_path / "lib"
    folder.mkdir()
    path = folder / "track.mp3"
    shutil.copyfile(medium_mp3, path)
    data = path.read_bytes()
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i not possible here (needs root and ext2/3/4 or similar)")
    subprocess.run(["chattr", "-i", str(folder)], check=True)
    real_fsync = safewrite._fsync

    def read_only_now(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp"):
            subprocess.run(["chattr", "+i", str(folder)], check=True)
            raise OSError(errno.EROFS, "Read-only file system")
        real_fsync(fd)

    monkeypatch.setattr(safewrite, "_fsync", read_only_now)
    try:
        with pytest.raises(TagError):
            write_mood(path, VALUES, journal=journal)
        monkeypatch.setattr(safewrite, "_fsync", real_fsync)
        copies = [name for name in os.listdir(folder) if name.endswith(".tmp")]
        assert len(copies) == 1 and path.read_bytes() == data
        [left] = journal.recover()
        assert left.action.startswith(f"left the unfinished copy {copies[0]}: cannot delete it yet"), left.action
        assert not left.pending and list(journal.folder.glob("*.undo"))
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    [done] = journal.recover()
    assert done.action == f"deleted the unfinished copy {copies[0]}; the file is as it was"
    assert os.listdir(folder) == ["track.mp3"] and path.read_bytes() == data
    assert not list(journal.folder.glob("*.undo"))


UNDO_CUT = """
import os, signal, sys
from pathlib import Path
from tagger import safewrite
from tagger.tags import remove_mood
path, folder = Path(sys.argv[1]), Path(sys.argv[2])
old = path.stat().st_size
real_pwrite, undoing = safewrite._pwrite, []


def interrupted_sync(fd):   # Ctrl-C during the write's fsync: the write undoes itself at once
    undoing.append(True)
    raise KeyboardInterrupt


def pwrite_then_die(fd, data, pos):   # and a kill while that undo writes the old bytes back
    real_pwrite(fd, data, pos)
    if undoing:
        os.kill(os.getpid(), signal.SIGKILL)


safewrite._fsync, safewrite._pwrite = interrupted_sync, pwrite_then_die
remove_mood(path, journal=safewrite.UndoJournal(folder))
"""


def test_an_undo_of_a_write_that_shrank_the_file_cut_off_is_undone_again(tmp_path, journal):
    """An untag that removes a hard-linked MP3's whole ID3 tag shrinks the file in place. Interrupted after
    its write, it undoes itself; a kill during that undo, which wrote the old bytes back a MiB at a time,
    left a size neither old nor new: the next recovery called the file changed by another program, deleted
    the entry, and the file stayed cut short (its audio's end gone) for good. The undo gives the file its
    old size first: the next recovery undoes it again, byte for byte."""
    path = tmp_path / "track.mp3"
    synth.make_track(path, "calm", 216.45, seed=1)   # tagged, just past 1 MiB: the undo takes two chunks
    os.link(path, tmp_path / "hardlink.mp3")   # a hard link: written in place, however much moves
    write_mood(path, VALUES, journal=journal)
    journal.close()
    tagged = path.read_bytes()
    assert len(tagged) > 1 << 20
    proc = subprocess.run([sys.executable, "-c", UNDO_CUT, str(path), str(journal.folder)], cwd=REPO,
                          capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert path.stat().st_size == len(tagged)
    assert journal.interrupted() == {os.path.realpath(path)}
    assert [(r.path, r.action) for r in journal.recover()] == [
        (path, "restored as it was before an interrupted tag write")]
    assert path.read_bytes() == tagged and read_mood(path) == VALUES
