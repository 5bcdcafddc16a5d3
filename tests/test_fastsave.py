"""tagger.fastsave: mutagen's byte moves and Ogg renumbering on safewrite's overlay give the bytes,
the positions and the errors mutagen's own code gives, on real encoded files and on odd Ogg streams;
an Ogg comment that grows keeps its page count, so the pages after it are only moved."""
from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from mutagen import _util, ogg

from tagger import fastsave, synth
from tagger.audio import load_clips
from tagger.errors import TagError
from tagger.safewrite import UndoJournal
from tagger.tags import MoodValues, read_mood, write_mood
from tagger.weights import ClipPlan

FORMATS = ("mp3", "flac", "ogg", "opus", "m4a", "alac.m4a", "wav", "aiff")
VALUES = MoodValues(mood="calm", scores={"calm": 0.913, "exciting": 0.087}, model="moodtag-cnn 1.0.0")
# a model text long enough to push an Ogg comment past mutagen's 4 kB pages: laid into the old page
LONG = MoodValues(mood="exciting", scores={"calm": 0.2, "exciting": 0.8}, model="moodtag-cnn 1.0.0 " + "x" * 6000)
# ...and one past what the old page can hold (255 lacing values): every later page is renumbered
HUGE = MoodValues(mood="exciting", scores={"calm": 0.2, "exciting": 0.8}, model="moodtag-cnn 1.0.0 " + "x" * 70_000)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fastsave")
    return {fmt: synth.make_track(folder / f"s.{fmt}", "calm", 20.0, seed=5) for fmt in FORMATS}


@pytest.fixture
def mutagen_only(monkeypatch):
    """mutagen's own move_bytes, renumber and replace, as before tagger.fastsave."""
    def use() -> None:
        monkeypatch.setattr(_util, "move_bytes", fastsave._original_move_bytes)
        monkeypatch.setattr(ogg.OggPage, "renumber", staticmethod(fastsave._original_renumber))
        monkeypatch.setattr(ogg.OggPage, "replace", classmethod(fastsave._original_replace.__func__))
    return use


def test_installed_and_idempotent():
    fastsave.install()
    fastsave.install()
    assert _util.move_bytes is fastsave._move_bytes
    assert ogg.OggPage.__dict__["renumber"].__func__ is fastsave._renumber_dispatch
    assert ogg.OggPage.__dict__["replace"].__func__ is fastsave._replace_dispatch


@pytest.mark.parametrize("fmt", FORMATS)
def test_tag_writes_give_the_bytes_mutagen_gives(tmp_path, sources, mutagen_only, fmt):
    """Every format, a tag that fits and one that makes everything behind it move (renumbered Ogg
    pages, FLAC and ID3 tags that outgrow their padding), then back: the same files either way."""
    journal = UndoJournal(tmp_path / "journal")
    fast, slow = tmp_path / f"fast.{fmt}", tmp_path / f"slow.{fmt}"
    shutil.copyfile(sources[fmt], fast)
    shutil.copyfile(sources[fmt], slow)
    fast_bytes = []
    for values in (VALUES, HUGE, VALUES):
        write_mood(fast, values, journal=journal)
        fast_bytes.append(fast.read_bytes())
    mutagen_only()
    for values, want in zip((VALUES, HUGE, VALUES), fast_bytes):
        write_mood(slow, values, journal=journal)
        assert slow.read_bytes() == want
    assert read_mood(fast) == VALUES


def test_renumbered_ogg_file_keeps_its_audio_pages(tmp_path, sources):
    """The renumbering did happen: the pages after the comment have new numbers and valid CRCs."""
    path = tmp_path / "t.ogg"
    shutil.copyfile(sources["ogg"], path)
    before = _pages(path.read_bytes())
    write_mood(path, HUGE, journal=UndoJournal(tmp_path / "journal"))
    after = _pages(path.read_bytes())
    assert len(after) > len(before)
    shift = len(after) - len(before)
    for old, new in zip(before[3:], after[3 + shift:]):
        assert new.sequence == old.sequence + shift and new.packets == old.packets
        assert ogg.OggPage.write(new) == _raw(path.read_bytes(), new)   # the CRC is the one mutagen makes


@pytest.mark.parametrize("fmt", ["ogg", "opus"])
def test_a_grown_ogg_comment_keeps_its_page_count(tmp_path, sources, mutagen_only, fmt):
    """A comment that outgrows its page (mutagen's padding and a long model text) is laid into as many
    pages as before: every later page is the source's byte for byte (nothing renumbered), each header
    page's CRC is right, the packets are the ones mutagen writes, and the audio decodes as before;
    a comment that shrinks again gets mutagen's own layout (then the file is mutagen's too)."""
    journal = UndoJournal(tmp_path / "journal")
    fast, slow = tmp_path / f"fast.{fmt}", tmp_path / f"slow.{fmt}"
    shutil.copyfile(sources[fmt], fast)
    shutil.copyfile(sources[fmt], slow)
    clips = load_clips(fast, plan=ClipPlan(), sample_rate=22050).samples
    before = _pages(fast.read_bytes())
    header_pages = next(i for i, page in enumerate(before) if page.position > 0)
    write_mood(fast, LONG, journal=journal)
    data = fast.read_bytes()
    after = _pages(data)
    assert len(after) == len(before)
    assert [_raw(data, page) for page in after[header_pages:]] == [ogg.OggPage.write(page) for page in before[header_pages:]]
    assert all(ogg.OggPage.write(page) == _raw(data, page) for page in after)   # sequence numbers and CRCs
    assert after[header_pages - 1].complete and sum(len(page.packets) for page in after[1:header_pages]) > 0
    assert np.array_equal(load_clips(fast, plan=ClipPlan(), sample_rate=22050).samples, clips)
    assert read_mood(fast) == LONG
    shrunk = tmp_path / f"shrunk.{fmt}"
    shutil.copyfile(fast, shrunk)
    write_mood(shrunk, VALUES, journal=journal)

    mutagen_only()
    write_mood(slow, LONG, journal=journal)
    theirs = _pages(slow.read_bytes())
    assert len(theirs) > len(before)   # mutagen's 4 kB pages: one more, and every later page renumbered
    assert ogg.OggPage.to_packets(theirs[:header_pages + 1]) == ogg.OggPage.to_packets(after[:header_pages])
    shutil.copyfile(fast, slow)
    write_mood(slow, VALUES, journal=journal)
    assert shrunk.read_bytes() == slow.read_bytes()


def test_a_comment_page_that_begins_the_setup_header_keeps_its_page_count(tmp_path, sources):
    """Some encoders (0 A.D.'s and Naev's music, 21 of the corpus's 166 files) end the comment's page
    inside the setup header, whose rest is on the next page: mutagen takes only that page, ending
    inside a packet. The grown comment and the setup header's beginning go back into one page that
    ends inside it after the same bytes, so the next page (the setup header's rest) and all later
    ones stay as they are."""
    pages = _pages(sources["ogg"].read_bytes())
    comment, setup = pages[1].packets
    begun, rest = ogg.OggPage(), ogg.OggPage()
    begun.packets, begun.complete = [comment, setup[:255 * 4]], False
    rest.packets, rest.continued = [setup[255 * 4:]], True
    for page in (begun, rest):
        page.serial, page.position = pages[1].serial, 0
    laid = [pages[0], begun, rest] + pages[2:]
    for number, page in enumerate(laid):
        page.sequence = number
    path = tmp_path / "begun.ogg"
    path.write_bytes(b"".join(ogg.OggPage.write(page) for page in laid))
    clips = load_clips(path, plan=ClipPlan(), sample_rate=22050).samples
    before = path.read_bytes()

    write_mood(path, LONG, journal=UndoJournal(tmp_path / "journal"))
    data = path.read_bytes()
    after = _pages(data)
    assert len(after) == len(laid) and not after[1].complete and after[1].size > begun.size
    assert data.endswith(before[_pages(before)[2].offset:])   # the setup header's rest and the audio
    assert all(ogg.OggPage.write(page) == _raw(data, page) for page in after)
    assert ogg.OggPage.to_packets(after[:3]) == ogg.OggPage.to_packets(after[:1]) + [
        ogg.OggPage.to_packets(after[1:3])[0], setup]
    assert np.array_equal(load_clips(path, plan=ClipPlan(), sample_rate=22050).samples, clips)
    assert read_mood(path) == LONG


def _pages(data: bytes) -> list:
    fh, pages = io.BytesIO(data), []
    while fh.tell() < len(data):
        pages.append(ogg.OggPage(fh))
    return pages


def _raw(data: bytes, page) -> bytes:
    return data[page.offset:page.offset + page.size]


# --- _renumber against mutagen's renumber, on streams made for it ------------------------------------

def _stream(sources, *, other_serial: bool = False) -> bytes:
    data = sources["ogg"].read_bytes()
    if not other_serial:
        return data
    pages = _pages(data)
    out = []
    for i, page in enumerate(pages):   # a second logical stream's pages interleaved with the first's
        out.append(ogg.OggPage.write(page))
        if i % 3 == 2:
            twin = ogg.OggPage(io.BytesIO(ogg.OggPage.write(page)))
            twin.serial ^= 0x5A5A
            out.append(ogg.OggPage.write(twin))
    return b"".join(out)


def _both(data: bytes, serial: int, start: int, at: int):
    """(bytes, position, error) after mutagen's renumber and after fastsave's, from `at`."""
    results = []
    for renumber in (fastsave._original_renumber, fastsave._renumber):
        fh = io.BytesIO(data)
        fh.seek(at)
        try:
            renumber(fh, serial, start)
            error = None
        except Exception as exc:
            error = (type(exc), str(exc))
        results.append((fh.getvalue(), fh.tell() if error is None else None, error))
    return results


@pytest.mark.parametrize("case", ["plain", "other stream", "trailing zeros", "trailing garbage", "torn header",
                                  "cut short", "bad magic", "bad version", "number past 32 bits"])
def test_renumber_as_mutagen_does(sources, case):
    data = _stream(sources, other_serial=case == "other stream")
    pages = _pages(data)
    serial, at, start = pages[0].serial, pages[3].offset, pages[3].sequence + 7
    middle = pages[len(pages) // 2].offset
    if case == "trailing zeros":
        data += b"\0" * 20
    elif case == "trailing garbage":
        data += b"\0junk" * 10
    elif case == "torn header":
        data += b"OggS\0\0"
    elif case == "cut short":
        data = data[:-100]
    elif case == "bad magic":
        data = data[:middle] + b"Oggs" + data[middle + 4:]
    elif case == "bad version":
        data = data[:middle + 4] + b"\1" + data[middle + 5:]
    elif case == "number past 32 bits":
        start = 0xFFFFFFFF - 5
    (want, want_pos, want_error), (got, got_pos, got_error) = _both(data, serial, start, at)
    assert got_error == want_error
    if want_error is None:
        assert got == want and got_pos == want_pos
        assert got != data or case == "other stream"


def test_a_damaged_ogg_file_fails_as_before_and_is_left_alone(tmp_path, sources, mutagen_only):
    path = tmp_path / "t.ogg"
    data = sources["ogg"].read_bytes()
    middle = _pages(data)[len(_pages(data)) // 2].offset
    damaged = data[:middle] + b"Oggs" + data[middle + 4:]
    path.write_bytes(damaged)
    journal = UndoJournal(tmp_path / "journal")
    with pytest.raises(TagError) as fast:
        write_mood(path, HUGE, journal=journal)   # renumbered up to the damaged page
    assert path.read_bytes() == damaged
    mutagen_only()
    with pytest.raises(TagError) as slow:
        write_mood(path, HUGE, journal=journal)
    assert str(fast.value) == str(slow.value)


def test_a_damaged_ogg_page_behind_a_grown_comment_is_moved_as_it_is(tmp_path, sources):
    """Nothing is renumbered, so nothing reads the audio pages: the damaged one is moved, unchanged
    (the decoder is what judges the audio), and the rest of the file with it."""
    path = tmp_path / "t.ogg"
    data = sources["ogg"].read_bytes()
    pages = _pages(data)
    middle = pages[len(pages) // 2].offset
    damaged = data[:middle] + b"Oggs" + data[middle + 4:]
    path.write_bytes(damaged)
    write_mood(path, LONG, journal=UndoJournal(tmp_path / "journal"))
    audio = next(page for page in pages if page.position > 0).offset
    assert path.read_bytes().endswith(damaged[audio:]) and read_mood(path) == LONG


def test_other_file_objects_get_mutagen_itself(monkeypatch):
    """Outside safewrite's overlay (beets writing its own tags in the same process) nothing changes."""
    seen = []
    monkeypatch.setattr(fastsave, "_original_move_bytes", lambda *a: seen.append("move"))
    monkeypatch.setattr(fastsave, "_original_renumber", lambda *a: seen.append("renumber"))
    monkeypatch.setattr(fastsave, "_original_replace", lambda fh, old, new: seen.append(("replace", new)))
    fh = io.BytesIO(b"x" * 100)
    _util.insert_bytes(fh, 10, 5)
    ogg.OggPage.renumber(fh, 1, 0)
    old, new = [ogg.OggPage()], [ogg.OggPage(), ogg.OggPage()]
    ogg.OggPage.replace(fh, old, new)
    assert seen == ["move", "renumber", ("replace", new)]
