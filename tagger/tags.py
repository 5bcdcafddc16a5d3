"""The mood in a file's tags: read, written and removed here, the one place mutagen is used.

moodtag writes a mood field and its own namespaced fields, and nothing else:

    MOOD                  the label, e.g. "calm"   (ID3v2.4: TMOO; ID3v2.3: TXXX:mood)
    MOODTAG_SCORE_<LABEL> label -> probability, 3 decimals, e.g. MOODTAG_SCORE_CALM = "0.913"
    MOODTAG_MODEL         "name version", e.g. "moodtag-cnn 1.0.0"
    MOODTAG_REPLACED_MOOD the mood field's values before moodtag replaced them (only with replace=True)
    MOODTAG_REPLACED_MOOD_FROM  beside it, for each value the field it came from, as JSON: an ID3 frame
                          ["TMOO" or "TXXX", desc, encoding, the tag's version], an MP4 atom [name, data
                          type], a Vorbis key [key]

The mood field is shared with other tools (Picard, Mp3tag, beets plugins) and with the user's own
hand: a mood moodtag did not write is never lost. It is moodtag's when the file also holds
MOODTAG_MODEL and the scores, and it is one value, one of the labels those scores name (whichever
threshold the model decides with); any other value (another tool's "Happy", "Calm; Dreamy") is the
file's own mood: write_mood keeps it (ForeignMood) unless asked to replace it, and then keeps its
values in MOODTAG_REPLACED_MOOD, which remove_mood puts back into the field each came from (a tag
written before MOODTAG_REPLACED_MOOD_FROM: into moodtag's mood field); remove_mood leaves a mood that is not
moodtag's. A label of moodtag's changed by hand to another label is told from moodtag's own where
the caller knows what moodtag last wrote (a scan or untag, from the cache: `last_written`), or knows
that the mood there now was set by hand (the cache says kept: `last_written=SET_BY_HAND`; moodtag's
old scores and model fields may still be beside it, and made a hand-set label look like moodtag's).
A hand edit changes the mood field only: where the caller also knows the model that wrote
`last_written` (`written_by`, "name version") and MOODTAG_MODEL names another, moodtag wrote all of
those fields since (another cache's scan, another model), and its label, where it is the one those
fields' scores give (the top score), is moodtag's whatever `last_written` says; another label typed
over them is the user's.

`_FORMATS` is the one table: for each file format, which tag kind stores the fields and how (the
`_ID3Fields`, `_VorbisFields`, `_MP4Fields` rules), and which text fields of its own it has that
are read for artist, title and album where the tag lacks them (a WAV's RIFF INFO chunk, an MP3's
ID3v1 or APEv2 tag; never written: INFO has no mood field, and players read the ID3 chunk). The format comes from the file's
content, never its name, and only a regular file is read (a FIFO or a device is refused at once).
Every mutagen call goes through `_mutagen_errors`, which turns mutagen and OS errors into a TagError
naming the cause. Every write goes through `tagger.safewrite`: mutagen saves into an overlay, and
the change reaches the file in a way a kill or power cut cannot leave half done (`tagger.fastsave`
does two of mutagen's steps on the overlay faster, with the same result).
"""
from __future__ import annotations

import errno
import functools
import json
import os
import re
import stat
import struct
import weakref
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Callable, NamedTuple

import mutagen
from mutagen import aiff, apev2, flac, id3, mp3, mp4, oggflac, oggopus, oggspeex, oggvorbis, wave
from mutagen._riff import RiffFile
from mutagen._util import convert_error, delete_bytes, loadfile

from tagger import fastsave, safewrite
from tagger.errors import BROKEN_LINK, MoodtagError, TagError, os_text
from tagger.iff import add_missing_pad, overrun, read_chunk, short_form, tags_inside
from tagger.safewrite import UndoJournal
from tagger.weights import TAG_LABEL, TAG_LABEL_RULE

fastsave.install()  # mutagen's byte moves and Ogg renumbering, done faster on safewrite's overlay

MOOD_FIELD = "MOOD"
FIELD_PREFIX = "MOODTAG_"
SCORE_PREFIX = "MOODTAG_SCORE_"
MODEL_FIELD = "MOODTAG_MODEL"
REPLACED_FIELD = "MOODTAG_REPLACED_MOOD"
ORIGIN_FIELD = "MOODTAG_REPLACED_MOOD_FROM"
SET_BY_HAND = ""   # last_written for a file whose mood the cache says is its own (kept): none of it is moodtag's
_LABEL = TAG_LABEL  # the rule a model's labels are checked by too (weights.check_taggable)


@dataclass(frozen=True)
class MoodValues:
    """What moodtag writes: the mood label, label -> probability, and the model as "name version"."""

    mood: str
    scores: dict[str, float]
    model: str


@dataclass(frozen=True)
class TrackInfo:
    """What a file's content says it is, and the few tags worth showing next to its mood."""

    format: str            # "mp3", "flac", "ogg", "opus", "m4a", "wav", "aiff", ...
    tag_kind: str | None   # "id3", "vorbis", "mp4"; None where moodtag cannot tag the format
    duration: float | None
    artist: str | None
    title: str | None
    album: str | None


class ForeignMood(MoodtagError):
    """The file's mood field holds a value moodtag did not write (see the module): left as it is."""

    def __init__(self, moods: list[str]) -> None:
        self.moods = moods
        shown = "; ".join(repr(m) for m in moods)
        super().__init__(f"the file's own mood {shown} (not moodtag's) is kept")


def read_info(path) -> TrackInfo:
    """The file's format, tag kind, duration, artist, title and album; TagError if it cannot be parsed.
    Each of artist, title and album comes from the tag moodtag writes (ID3 in a WAV) where that has
    it, else from the format's own text fields (a WAV's RIFF INFO chunk, an MP3's ID3v1 or APEv2
    tag), as players show them."""
    with _opened(Path(path)) as fh:
        audio, fmt = _load(fh)
        texts = [None, None, None]
        if fmt.fields is not None and audio.tags is not None:
            texts = [fmt.fields.text(audio.tags, key) for key in fmt.fields.info_keys]
        if fmt.native_info is not None and None in texts:
            native = fmt.native_info(fh)
            texts = [text or native.get(name) for text, name in zip(texts, ("artist", "title", "album"))]
    length = getattr(audio.info, "length", None)
    artist, title, album = texts
    return TrackInfo(format=fmt.name, tag_kind=fmt.tag_kind, duration=float(length) if length else None,
                     artist=artist, title=title, album=album)


def read_mood(path) -> MoodValues | None:
    """What the file's moodtag fields say; None if it has no mood field."""
    return mood_state(path)[0]


def mood_state(path, *, last_written: str | None = None,
               written_by: str | None = None) -> tuple[MoodValues | None, list[str]]:
    """(read_mood's values, the mood field's values if they are not moodtag's, else []); `last_written`
    and `written_by` as for write_mood."""
    with _opened(Path(path)) as fh:
        audio, fmt = _load(fh)
        fields = _current_fields(audio, fmt)
        return _mood_values(fields), _foreign_moods(fields, last_written, written_by) or _ape_moods(fh, fmt, fields)


def write_mood(path, values: MoodValues, *, replace: bool = False, last_written: str | None = None,
               written_by: str | None = None, dry_run: bool = False, journal: UndoJournal | None = None, expect: tuple[int, int] | None = None,
               on_written: Callable[[os.stat_result], None] | None = None) -> bool:
    """Write `values` into the file's tags, replacing any moodtag fields there. Returns False, and
    leaves the file untouched, when it already holds exactly these values. With dry_run, writes
    nothing and returns whether it would write (raising TagError where the write would fail).
    A mood field that is not moodtag's (see the module) raises ForeignMood and the file is left as it
    is, unless `replace`: then its values go into MOODTAG_REPLACED_MOOD, for remove_mood to restore.
    `last_written`: the mood moodtag last wrote into this file (the scan's cache knows it); another
    label there now was put there by hand, and is the file's own mood too. SET_BY_HAND: whatever mood
    is there is the file's own (the cache says it was kept). `written_by`: the model ("name version")
    that wrote `last_written`; where the file's MOODTAG_MODEL names another, `last_written` is not the
    file's last moodtag write, and does not count (see the module).

    The write is crash-safe (tagger.safewrite); `journal` is where an interrupted write is recorded
    for `UndoJournal.recover()`, by default the one beside the default cache. An MP3 that gets its
    first ID3v2 tag gets the title, artist, album, year, track, genre and comment of its ID3v1 or
    APEv2 tag in it too, so players that prefer v2 still show them.

    `expect`: the (size, mtime_ns) of the file the caller analysed. The file opened here, and written
    through that same open file, must have them, or TagError safewrite.CHANGED and nothing is written:
    another program may have put other audio at the path since. `on_written(stat)`: called with the
    file's stat as written (safewrite takes it from the file written, not through its path)."""
    path = Path(path)
    saved: list[bool] = []
    with _opened(path, saved=saved) as fh:
        _require_expected(fh, expect)
        audio, fmt = _load(fh)
        fields = _tag_fields(fmt)
        current = _current_fields(audio, fmt)
        own = _foreign_moods(current, last_written, written_by)
        foreign = own or _ape_moods(fh, fmt, current)
        if foreign and not replace:
            raise ForeignMood(foreign)
        # kept for remove_mood to put back; an MP3's APEv2 mood is not: moodtag never writes APEv2, so it stays there
        replaced = own or [text for name, text in current if name == REPLACED_FIELD]
        origins = fields.mood_origins(audio.tags) if own else [text for name, text in current if name == ORIGIN_FIELD]
        wanted = (_mood_fields(values) + [(REPLACED_FIELD, text) for text in replaced]
                  + [(ORIGIN_FIELD, text) for text in origins])
        if sorted(current) == sorted(wanted):
            return False
        _require_writable(path, fh)
        _require_whole_tag(audio, fh)
        with _mutagen_errors(writing=True, fmt=fmt):  # in memory only: the file is written by _save
            if audio.tags is None:
                audio.add_tags()
                if fmt.keeps_id3v1:
                    for frame in _legacy_frames(fh):
                        audio.tags.add(frame)
            fields.remove(audio.tags)
            fields.add(audio.tags, wanted)
        _require_comment_fits(audio, fmt)
        if dry_run:
            return True
        _save(audio, fmt, path, fh, journal, expect=expect, on_written=on_written)
        saved.append(True)
    return True


def _require_expected(fh, expect: tuple[int, int] | None) -> None:
    """TagError safewrite.CHANGED unless the open file has the (size, mtime_ns) `expect` (if given)."""
    if expect is None:
        return
    with _mutagen_errors(writing=False, fmt=None):
        st = os.fstat(fh.fileno())
    if (st.st_size, st.st_mtime_ns) != tuple(expect):
        raise TagError(safewrite.CHANGED)


def remove_mood(path, *, last_written: str | None = None, written_by: str | None = None, dry_run: bool = False,
                journal: UndoJournal | None = None,
                on_written: Callable[[os.stat_result], None] | None = None) -> bool:
    """Remove every MOODTAG_* field and moodtag's mood, and nothing else: a mood that is not moodtag's
    (see the module) stays, and one that moodtag replaced comes back from MOODTAG_REPLACED_MOOD into
    the field each value came from (MOODTAG_REPLACED_MOOD_FROM: its frame, atom or key, with its text
    encoding or data type; without it, as a tag written before it, into moodtag's mood field, each
    value once; an MP3's APEv2 mood stays where it is, in the APEv2 tag).
    `last_written` and `written_by` as for write_mood. Returns whether the file changed (with dry_run: whether it would;
    nothing is written). An MP3 ID3v2 tag left holding only what write_mood copied from the ID3v1 or
    APEv2 tag (or nothing), or a WAV's or AIFF's ID3 chunk left empty, is removed whole, which gives
    back the file as it was before moodtag. So is a WAV or AIFF whose RIFF/FORM size ended inside its
    audio, where moodtag 0.4 and earlier had mutagen add its ID3 chunk (`_old_tags_inside`).
    Crash-safe, as write_mood; `on_written` as for write_mood."""
    path = Path(path)
    saved: list[bool] = []
    with _opened(path, saved=saved) as fh:
        audio, fmt = _load(fh)
        inside = _old_tags_inside(fh, fmt)
        if inside is not None:
            _require_writable(path, fh)
            if not dry_run:
                _take_out(path, fh, inside, fmt, journal, on_written)
                saved.append(True)
            return True
        current = _current_fields(audio, fmt)
        foreign = _foreign_moods(current, last_written, written_by)
        if not any(name != MOOD_FIELD or not foreign for name, _ in current):
            return False
        _require_writable(path, fh)
        _require_whole_tag(audio, fh)
        if dry_run:
            return True
        replaced = [] if foreign else [text for name, text in current if name == REPLACED_FIELD]
        origins = [] if foreign else [text for name, text in current if name == ORIGIN_FIELD]
        fields = _tag_fields(fmt)
        with _mutagen_errors(writing=True, fmt=fmt):
            fields.remove(audio.tags, mood=not foreign)
            back = _replaced_moods(fields, replaced, origins)
            if back is not None:
                fields.put_back(audio.tags, back)
            elif replaced:  # written before MOODTAG_REPLACED_MOOD_FROM: a value once (TMOO and TXXX:MOOD both)
                fields.add(audio.tags, [(MOOD_FIELD, text) for text in dict.fromkeys(replaced)])
            # an MP3's tag holding only what write_mood copied from ID3v1/APEv2, a WAV's or AIFF's holding
            # nothing: removed whole (the ID3 chunk too), which gives back the file as it was before moodtag
            drop_v2 = not _kept_as_bytes(audio.tags) and (
                fmt.keeps_id3v1 and _canonical(audio.tags.values()) == _canonical(_legacy_frames(fh))
                or fmt.pads_chunks and not audio.tags and not audio.tags.unknown_frames)
        _save(audio, fmt, path, fh, journal, drop_v2=drop_v2, on_written=on_written)
        saved.append(True)
    return True


# what a scan's tag write says of a file _old_tags_inside finds
OLD_TAG_INSIDE = "holds a tag moodtag 0.4 or earlier wrote inside its audio (moodtag untag takes it out)"
TAG_INSIDE = ("holds an ID3 tag inside its audio, where its RIFF/FORM size ends (written there by a tagger, "
              "moodtag 0.4 or earlier among them, with fields of another's: left as it is)")


def _old_tags_inside(fh, fmt: _Format):
    """The ID3 chunks moodtag 0.4 and earlier had mutagen add inside a WAV's or AIFF's audio, where its
    RIFF/FORM size ended inside its audio chunk (tagger.iff.tags_inside), each holding moodtag's model
    or scores; None if there are none, or one of them holds a tag of another's."""
    if not fmt.pads_chunks:
        return None
    with _mutagen_errors(writing=False, fmt=None):
        inside = tags_inside(fh)
        if inside is None:
            return None
        for offset, size in inside.tags:
            fh.seek(offset + 8)
            data = fh.read(size)
            try:
                tag = id3.ID3(BytesIO(data), translate=False, load_v1=False)
                fields = _ID3.read(tag)
            except (mutagen.MutagenError, *_MALFORMED):
                return None
            if not any(name == MODEL_FIELD or name.startswith(SCORE_PREFIX) for name, _ in fields):
                return None
            if not all(_only_moodtags(frame) for frame in tag.values()):  # not all 0.4's: a tag of another's
                return None  # (a data chunk whose size runs into a tag after it) stays whole
    return inside


def _only_moodtags(frame) -> bool:
    """Whether an ID3 frame is one moodtag 0.4 wrote: the mood (TMOO, or TXXX:mood), or a TXXX of its own
    (MOODTAG_MODEL, MOODTAG_SCORE_*)."""
    if frame.FrameID == "TMOO":
        return True
    desc = getattr(frame, "desc", "") if frame.FrameID == "TXXX" else None
    return desc is not None and (desc.lower() == "mood" or desc.upper().startswith("MOODTAG_"))


def _take_out(path: Path, fh, inside, fmt: _Format, journal: UndoJournal | None,
              on_written: Callable[[os.stat_result], None] | None) -> None:
    """Take the chunks _old_tags_inside found out of the file, and give its RIFF/FORM size back its old
    value: the file as it was before they were added. Through safewrite, as _save."""

    def save_into(target) -> None:
        delete_bytes(target, inside.length, inside.start)
        target.seek(4)
        target.write(inside.size_field())

    with _mutagen_errors(writing=True, fmt=fmt):
        how = safewrite.rewrite(path, fh, save_into, journal=journal if journal is not None else _default_journal())
    if on_written is not None:
        on_written(how.stat)


# --- the fields, independent of the tag kind --------------------------------------------------

def _is_ours(name: str, *, mood: bool = True) -> bool:
    """A field moodtag reads and writes: the mood field (unless `mood` is false) or a MOODTAG_* field."""
    name = name.upper()
    return (mood and name == MOOD_FIELD) or name.startswith(FIELD_PREFIX)


def _mood_fields(values: MoodValues) -> list[tuple[str, str]]:
    """MoodValues -> (field name, text) pairs, as written."""
    fields = [(MOOD_FIELD, values.mood)]
    for label, probability in values.scores.items():
        if not _LABEL.match(label):
            raise TagError(f"label {label!r} cannot be a tag field name ({TAG_LABEL_RULE})")
        fields.append((SCORE_PREFIX + label.upper(), f"{probability:.3f}"))
    fields.append((MODEL_FIELD, values.model))
    return fields


def _foreign_moods(fields: list[tuple[str, str]], last_written: str | None = None,
                   written_by: str | None = None) -> list[str]:
    """The mood field's values if they are not moodtag's (see the module; or, when `last_written` is
    known, not the label moodtag last wrote, unless the fields beside it are another model's than
    `written_by`, the one that wrote it: moodtag rewrote them all since), else []."""
    moods = [text for name, text in fields if name == MOOD_FIELD]
    if not moods:
        return []
    values = _mood_values(fields)
    if values.model and len(moods) == 1 and values.mood.lower() in values.scores:
        # fields of another model than the one that wrote last_written, the mood the label their scores
        # give (their one top score, as the shipped models decide, at 0.5): moodtag rewrote them all since;
        # a label typed over them is not theirs, and stays the user's. Where that cannot be told (a model
        # trained with another --threshold, a tie), the label is taken for the user's: never deleted
        top = max(values.scores.values())
        rewritten = (last_written != SET_BY_HAND and written_by is not None and values.model != written_by
                     and [label for label, p in values.scores.items() if p == top] == [values.mood.lower()])
        if last_written is None or rewritten or values.mood.lower() == last_written.lower():
            return []
    return moods


def _ape_moods(fh, fmt: _Format, fields: list[tuple[str, str]]) -> list[str]:
    """An MP3's APEv2 'Mood' values where its ID3v2 tag (if any) has no mood field: the file's own mood
    to the players that read APEv2 (foobar2000, TagLib's), so a foreign one. moodtag writes no APEv2."""
    if not fmt.keeps_id3v1 or any(name == MOOD_FIELD for name, _ in fields):
        return []
    fh.seek(0)
    try:
        ape = apev2.APEv2(fh)
    except apev2.error:
        return []
    return [text for key, value in ape.items()
            if key.lower() == "mood" and getattr(value, "kind", None) == apev2.TEXT for text in value if text]


def _mood_values(fields: list[tuple[str, str]]) -> MoodValues | None:
    """(field name, text) pairs as read -> MoodValues; the first value of a field wins."""
    first: dict[str, str] = {}
    for name, text in fields:
        first.setdefault(name, text)
    if MOOD_FIELD not in first:
        return None
    scores = {}
    for name, text in first.items():
        if name.startswith(SCORE_PREFIX):
            try:
                scores[name[len(SCORE_PREFIX):].lower()] = float(text)
            except ValueError:
                continue
    return MoodValues(mood=first[MOOD_FIELD], scores=scores, model=first.get(MODEL_FIELD, ""))


def _replaced_moods(fields, replaced: list[str], origins: list[str]) -> list[tuple[tuple, str]] | None:
    """(origin, value) for each replaced mood value, the origin as the tag kind's `valid_origin` takes
    it; None where MOODTAG_REPLACED_MOOD_FROM does not name one valid origin per value (a tag written
    before it, or edited by hand): the values then go into moodtag's own mood field."""
    if not replaced or len(origins) != len(replaced):
        return None
    try:
        parsed = [tuple(json.loads(text)) for text in origins]
    except (ValueError, TypeError):
        return None
    if not all(fields.valid_origin(origin) for origin in parsed):
        return None
    return list(zip(parsed, replaced))


def _origin(*parts) -> str:
    """A replaced mood value's origin as MOODTAG_REPLACED_MOOD_FROM holds it: JSON, one line."""
    return json.dumps(list(parts), ensure_ascii=False)


def _grouped(fields: list[tuple[str, str]]) -> dict[str, list[str]]:
    """(name, text) pairs -> name -> its texts, in order (one ID3 frame or MP4 atom per name)."""
    grouped: dict[str, list[str]] = {}
    for name, text in fields:
        grouped.setdefault(name, []).append(text)
    return grouped


# --- per tag kind: how moodtag's fields are read, added, removed -------------------------------

class _ID3Fields:
    """ID3v2 (MP3, WAV, AIFF). The mood is TMOO, a frame ID3v2.3 lacks (mutagen's v2.3 save drops
    it), so a v2.3 tag gets TXXX:mood instead. Our other fields are TXXX frames named by desc."""

    kind = "id3"
    info_keys = ("TPE1", "TIT2", "TALB")

    def load(self, cls, fh):
        audio = cls(fh, **_ID3_LOAD)
        _note_layout(audio.tags)
        return audio

    def read(self, tags) -> list[tuple[str, str]]:
        fields = [(MOOD_FIELD, str(text)) for frame in tags.getall("TMOO") for text in frame.text]
        fields += [(frame.desc.upper(), str(text)) for frame in tags.getall("TXXX")
                   if _is_ours(frame.desc) for text in frame.text]
        return fields

    def remove(self, tags, *, mood: bool = True) -> None:
        if mood:
            tags.delall("TMOO")
        for frame in tags.getall("TXXX"):
            if _is_ours(frame.desc, mood=mood):
                del tags[frame.HashKey]

    def mood_origins(self, tags) -> list[str]:
        """For each mood value read() reads, in its order, the frame it is in: ID, description, encoding,
        and the tag's version then (3 for v2.3: see put_back)."""
        version = tags.version[1]
        origins = [_origin("TMOO", "", int(frame.encoding), version) for frame in tags.getall("TMOO")
                   for _ in frame.text]
        origins += [_origin("TXXX", frame.desc, int(frame.encoding), version) for frame in tags.getall("TXXX")
                    if frame.desc.upper() == MOOD_FIELD for _ in frame.text]
        return origins

    def valid_origin(self, origin: tuple) -> bool:
        return (len(origin) in (3, 4) and origin[0] in ("TMOO", "TXXX") and isinstance(origin[1], str)
                and (origin[1] == "" if origin[0] == "TMOO" else origin[1].upper() == MOOD_FIELD)
                and origin[2] in (0, 1, 2, 3) and (len(origin) == 3 or origin[3] in (2, 3, 4)))

    def put_back(self, tags, moods: list[tuple[tuple, str]]) -> None:
        """Replaced mood values back into the frames they came from, one frame per ID and description. A
        TMOO (v2.4's frame) goes back into a tag that is v2.3 now only where it was in a v2.3 tag then
        (Mp3tag writes it there): one from a v2.4 tag, which another program saved as v2.3 since (beets'
        id3v23), goes into TXXX:mood, v2.3's mood field, as moodtag writes it: a TMOO would be dropped
        by the next v2.3 save (mutagen's update_to_v23), and the user's mood with it."""
        frames: dict[tuple, list[str]] = {}
        for origin, text in moods:
            frame_id, desc, encoding, *then = origin
            if frame_id == "TMOO" and _saved_as_v23(tags) and then != [3]:
                frame_id, desc = "TXXX", MOOD_FIELD.lower()
                encoding = id3.Encoding.UTF16 if encoding == id3.Encoding.UTF8 else encoding  # v2.3 has no UTF-8
            frames.setdefault((frame_id, desc, encoding), []).append(text)
        for (frame_id, desc, encoding), texts in frames.items():
            tags.add(id3.TMOO(encoding=encoding, text=texts) if frame_id == "TMOO"
                     else id3.TXXX(encoding=encoding, desc=desc, text=texts))

    def add(self, tags, fields: list[tuple[str, str]]) -> None:
        v24 = not _saved_as_v23(tags)
        encoding = id3.Encoding.UTF8 if v24 else id3.Encoding.UTF16
        for name, texts in _grouped(fields).items():
            if name == MOOD_FIELD and v24:
                tags.add(id3.TMOO(encoding=encoding, text=texts))
            else:
                desc = "mood" if name == MOOD_FIELD else name
                tags.add(id3.TXXX(encoding=encoding, desc=desc, text=texts))

    def text(self, tags, key: str) -> str | None:
        frame = tags.get(key)
        return str(frame.text[0]) if frame is not None and frame.text else None

    def prepare_save(self, tags) -> dict:
        """The options for mutagen's save. The tag keeps its version: v2.4 stays v2.4, v2.3 stays v2.3.
        v2.2 (old iTunes), which mutagen cannot write, becomes v2.4, the version that has a frame for each
        of v2.2's: as v2.3 it lost iTunes' sort frames (TSP, TSA, TST: v2.4's TSOP, TSOA, TSOT). A v2.2
        frame no later version has is refused before (_require_whole_id3). v23_sep=None writes multiple
        values back the way mutagen read them."""
        if tags.version < (2, 3, 0):
            tags.update_to_v24()
        tags._write = functools.partial(_frames_in_file_order, tags)  # this tag object only
        return {"v2_version": 3 if _saved_as_v23(tags) else 4, "v23_sep": None}


def _saved_as_v23(tags) -> bool:
    """Whether the tag is written back as ID3v2.3 (a v2.3 tag); v2.4 and v2.2 (upgraded) are written as v2.4."""
    return (2, 3, 0) <= tags.version < (2, 4, 0)


def _frames_in_file_order(tags, config) -> bytearray:
    """mutagen's ID3Tags._write without its sort: the frames in the order the file had them (moodtag's
    own added at the end), not by mutagen's priority and then size, which put a short comment before a
    long one, so that players showing the first COMM or USLT showed another after a scan, and untag
    could not give the order back. Frames mutagen would not write back as they were (_note_layout)
    are written from their bytes, in their place. Unknown frames follow, as mutagen writes them."""
    from mutagen.id3._tags import save_frame

    parsed = _PARSED.get(tags._header) if tags._header is not None else None
    if parsed is not None and parsed.layout:
        framedata = _frames_as_laid_out(tags, parsed, config)
    else:
        framedata = [save_frame(frame, config=config) for frame in tags.values()]
    if tags._unknown_v2_version == config.v2_version:
        framedata.extend(data for data in tags.unknown_frames if len(data) > 10)
    return bytearray().join(framedata)


_HOLDERS = (id3.CHAP, id3.CTOC)   # frames that hold frames: always written back as the file has them


def _note_layout(tags) -> None:
    """Note, as mutagen has read an ID3v2 tag, the frames its save would not write back as they were,
    which _frames_in_file_order then writes from their bytes: two or more frames mutagen files under one
    key (two USLT or COMM of one language and description, two TPE1, two TXXX of one description, two
    POPM of one e-mail address: mutagen merges them into one frame, or keeps the last), text frames
    that hold no text (mutagen drops one that is only its encoding byte as it reads it, and writes one
    of empty text as nothing), grouped frames (_ungrouped: mutagen writes them without their group),
    and every CHAP and CTOC (_HOLDERS): mutagen reads the frames inside one into a tag of their own, with
    all the losses above (a damaged one dropped silently, two of one key merged, a grouped one written
    ungrouped, an unknown or encrypted one dropped from a v2.3 tag), and moodtag never changes them.
    The other frames' notes let go of their bytes (a cover can be megabytes)."""
    parsed = _PARSED.get(tags._header) if isinstance(tags, id3.ID3) and tags._header is not None else None
    if parsed is None:
        return
    keys, seen = [], set()   # each note's key, as mutagen filed the frame (None: it filed none)
    for note in parsed.frames:
        key = note.empty_key
        if note.frame is not None:
            frame = note.frame._upgrade_frame() if tags.version < (2, 3, 0) else note.frame  # as mutagen filed it
            key = frame.HashKey if frame is not None else None
            while tags.version < (2, 3, 0) and isinstance(frame, id3.APIC) and key in seen:
                key += " "  # mutagen files each picture under a key of its own (APIC's salt)
        keys.append(key)
        seen.add(key)
    counts = Counter(keys)
    kept = {key for key, note in zip(keys, parsed.frames) if key is not None
            and (counts[key] > 1 or note.frame is None or _writes_nothing(note.frame)
                 or note.flags & _group_flag(tags.version) or issubclass(note.cls, _HOLDERS))}
    if kept:
        parsed.layout = [(key, note._replace(frame=None) if key in kept else None)
                         for key, note in zip(keys, parsed.frames) if key is not None]
        parsed.loaded = dict(tags.items())
    parsed.frames = [note._replace(frame=None, data=b"") for note in parsed.frames]


def _group_flag(version: tuple) -> int:
    """The frame flag of an ID3v2 version that says a group identifier byte precedes the frame's data."""
    return id3.Frame.FLAG24_GROUPID if version >= (2, 4, 0) else id3.Frame.FLAG23_GROUP if version >= (2, 3, 0) else 0


def _ungrouped(header, flags: int, data: bytes) -> tuple[int, bytes]:
    """A frame's flags and data without its grouping identity (the flag, and the group byte before the
    data; in v2.3 after the 4 bytes of a compressed frame's size and an encrypted one's method byte),
    as mutagen's reader takes the frame then. It does not take the byte out: it read it as the frame's
    first (a text frame's encoding), and dropped the frame as junk or read it wrong. mutagen's save
    writes a frame without flags, so a grouped frame is kept as bytes (_note_layout)."""
    group = _group_flag(header.version)
    if not flags & group:
        return flags, data
    at = 0
    if header.version < (2, 4, 0):  # v2.4: the group byte comes first
        at = 4 * bool(flags & id3.Frame.FLAG23_COMPRESS) + bool(flags & id3.Frame.FLAG23_ENCRYPT)
    return flags & ~group, data[:at] + data[at + 1:]


def _writes_nothing(frame) -> bool:
    """Whether mutagen's save writes nothing of a frame it read: a text frame of empty text."""
    return isinstance(frame, id3.TextFrame) and not str(frame)


def _empty_text_key(cls, header, flags: int, data: bytes) -> str | None:
    """The key mutagen would file a text frame under that holds no text, only its encoding byte (and,
    in TXXX, its description): mutagen's reader drops it as junk ('no data left'), and taggers leave
    such frames (an empty genre or composer). None for any other frame mutagen cannot read."""
    if not issubclass(cls, id3.TextFrame) or flags or not data or data[0] > 3:
        return None
    try:  # the frame with a text put after it (mutagen reads no empty text), which must be all it reads
        frame = cls._fromData(header, 0, data + "x".encode(("latin-1", "utf-16", "utf-16-be", "utf-8")[data[0]]))
    except (id3.ID3JunkFrameError, NotImplementedError):
        return None
    frame = frame._upgrade_frame() if frame.text[-1:] == ["x"] and not any(frame.text[:-1]) else None
    return frame.HashKey if frame is not None else None


def _frames_as_laid_out(tags, parsed: _ParsedFrames, config) -> list[bytes]:
    """The tag's frames in the file's order, those _note_layout kept written from their bytes, where
    the frame mutagen holds under their key is still the one it read (moodtag changed none of them:
    its own fields, which it rewrites, are written as they are now); the rest (moodtag's, new or
    changed) after them, in mutagen's order."""
    from mutagen.id3._tags import save_frame

    framedata, done = [], set()
    for key, note in parsed.layout:
        now = tags.get(key)
        if now is not parsed.loaded.get(key):
            continue  # removed or replaced since the tag was read
        if note is not None:
            framedata.append(_frame_bytes(note, tags._header, config))
        elif key not in done:
            framedata.append(save_frame(now, config=config))
        done.add(key)
    framedata += [save_frame(frame, config=config) for key, frame in tags.items() if key not in done]
    return framedata


def _frame_bytes(note: _Noted, header, config) -> bytes:
    """A frame _note_layout kept, as the file has it: its flags and bytes, under a header of the version
    written, the file's own (v2.3 stays v2.3, v2.4 v2.4). A v2.2 tag is written as v2.4: its frame is
    written as mutagen writes the v2.4 frame made of it, and an empty one, which holds nothing, not at all."""
    from mutagen.id3._tags import save_frame

    if header.version[1] != config.v2_version:
        try:  # parsed again: the frame mutagen made of it may hold another's text now (its merge)
            frame = note.cls._fromData(header, *_ungrouped(header, note.flags, note.data))._upgrade_frame()
        except (id3.ID3JunkFrameError, NotImplementedError):
            frame = None
        return save_frame(frame, config=config) if frame is not None else b""
    flags = note.flags
    if header.version >= (2, 4, 0) and header.f_unsynch:
        flags |= id3.Frame.FLAG24_UNSYNCH  # the tag's unsynchronisation, which mutagen's save clears, is the frame's
    size = id3.BitPaddedInt.to_str(len(note.data), width=4, bits=7 if config.v2_version == 4 else 8)
    return struct.pack(">4s4sH", note.cls.__name__.encode("ascii"), size, flags) + note.data


def _kept_as_bytes(tags) -> bool:
    """Whether an ID3v2 tag's save writes frames _note_layout kept as bytes (so the tag holds more than
    mutagen's frames)."""
    parsed = _PARSED.get(tags._header) if isinstance(tags, id3.ID3) and tags._header is not None else None
    return parsed is not None and any(note is not None and tags.get(key) is parsed.loaded.get(key)
                                      for key, note in parsed.layout)


class _VorbisFields:
    """Vorbis comments (FLAC, Ogg Vorbis, Opus, Ogg FLAC, Speex): keys are the field names,
    case-insensitive. mutagen decodes the comment (a value that is not UTF-8 gets U+FFFD, an entry
    without '=' becomes `unknownN`, a non-ASCII key gets '?', an invalid key is dropped) and its save
    would write all of it back from that; so the comment is read, changed and written as the entries'
    bytes (`_KeptComment`), and only moodtag's entries are taken out or added (at the end)."""

    kind = "vorbis"
    info_keys = ("artist", "title", "album")

    def load(self, cls, fh):
        return _keeping_comment(cls)(fh)

    def read(self, tags) -> list[tuple[str, str]]:
        return [(key.upper(), value.decode("utf-8", "replace")) for key, value in map(_our_entry, tags.entries)
                if key]

    def remove(self, tags, *, mood: bool = True) -> None:
        kept = []
        for entry in tags.entries:
            key, value = _our_entry(entry, mood=mood)
            if key:  # kept by its text, for add() to write back the bytes it was read from
                tags.removed.setdefault(value.decode("utf-8", "replace"), []).append(value)
            else:
                kept.append(entry)
        tags.entries = kept

    def mood_origins(self, tags) -> list[str]:
        """For each mood value read() reads, in its order, its entry's key as the entry spells it."""
        return [_origin(key) for key, _ in map(_our_entry, tags.entries) if key and key.upper() == MOOD_FIELD]

    def valid_origin(self, origin: tuple) -> bool:
        return (len(origin) == 1 and isinstance(origin[0], str) and origin[0].upper() == MOOD_FIELD
                and origin[0].isascii() and bool(_VORBIS_KEY.match(origin[0].encode("ascii"))))

    def put_back(self, tags, moods: list[tuple[tuple, str]]) -> None:
        """Replaced mood values back under the keys they had (at the end, as add())."""
        self.add(tags, [(key, text) for (key,), text in moods])

    def add(self, tags, fields: list[tuple[str, str]]) -> None:
        for name, text in fields:
            same = tags.removed.get(text)
            tags.entries.append(name.encode("ascii") + b"=" + (same.pop(0) if same else text.encode("utf-8")))

    def text(self, tags, key: str) -> str | None:
        texts = tags.get(key)
        return texts[0] if texts else None

    def prepare_save(self, tags) -> dict:
        return {}


def _our_entry(entry: bytes, *, mood: bool = True) -> tuple[str | None, bytes]:
    """(key, value) of a comment entry that is moodtag's (see _is_ours), else (None, b"")."""
    if entry[:4].upper() != b"MOOD":   # the start of each of moodtag's keys: most entries end here
        return None, b""
    end = entry.find(b"=")
    if end > 0 and _VORBIS_KEY.match(entry, 0, end) and _is_ours(key := entry[:end].decode("ascii"), mood=mood):
        return key, entry[end + 1:]
    return None, b""


_UINT32 = struct.Struct("<I")   # a Vorbis comment's lengths and count
_VORBIS_KEY = re.compile(rb"[ -}]+\Z")   # a valid key (mutagen's is_valid_key): ASCII from ' ' to '}', no '='


class _KeptComment:
    """Mixed into a format's mutagen Vorbis comment class (`_keeping_comment`): the comment also as
    it is in the file, its vendor string, entries and end (Ogg Vorbis' framing byte) as bytes, which
    its write() renders instead of mutagen's decoded list. `removed`: the values remove() took out."""

    def __init__(self, *args, **kwargs):
        self.vendor_bytes, self.entries, self.end = self.vendor.encode("utf-8"), [], b""  # a new comment
        self.damage, self.removed = None, {}
        super().__init__(*args, **kwargs)

    def load(self, fileobj, *args, **kwargs):
        start = fileobj.tell()
        super().load(fileobj, *args, **kwargs)
        end = fileobj.tell()
        fileobj.seek(start)
        data = fileobj.read(end - start)
        self.vendor_bytes, self.entries, self.end, self.damage = _comment_entries(data)
        if isinstance(fileobj, BytesIO):  # an Ogg packet: what follows the comment in it
            after = fileobj.read()
            fileobj.seek(end)
            if after != bytes(len(after)) and not (after[0] & 1 and isinstance(self, oggopus.OggOpusVComment)):
                self.damage = self.damage or "unreadable data after its last entry"  # dropped by mutagen's save

    def write(self, framing: bool = True) -> bytes:
        parts = [_UINT32.pack(len(self.vendor_bytes)), self.vendor_bytes, _UINT32.pack(len(self.entries))]
        for entry in self.entries:
            parts += [_UINT32.pack(len(entry)), entry]
        return b"".join(parts) + self.end


def _comment_entries(data: bytes) -> tuple[bytes, list[bytes], bytes, str | None]:
    """(vendor, entries, the bytes after them, None) of a Vorbis comment's bytes as mutagen read them;
    the last is the damage instead where an entry runs past the end (mutagen took what there was)."""
    (size,) = _UINT32.unpack_from(data, 0)
    vendor, pos = data[4:4 + size], 4 + size
    (count,) = _UINT32.unpack_from(data, pos)
    pos += 4
    entries = []
    for i in range(count):
        (size,) = _UINT32.unpack_from(data, pos)
        pos += 4
        entries.append(data[pos:pos + size])
        pos += size
        if pos > len(data):
            return vendor, entries, b"", f"entry {i + 1} runs past the end of the comment"
    return vendor, entries, data[pos:], None


@functools.cache
def _keeping_comment(cls: type) -> type:
    """mutagen's file class `cls` with its Vorbis comment class (FLAC: for read and new comment
    blocks) made a _KeptComment."""
    if issubclass(cls, flac.FLAC):
        kept = type("VCFLACDict", (_KeptComment, flac.VCFLACDict), {})

        def add_tags(self) -> None:
            cls.add_tags(self)
            self.tags = self.metadata_blocks[-1] = kept()

        blocks = [kept if block is flac.VCFLACDict else block for block in cls.METADATA_BLOCKS]
        return type(cls.__name__, (cls,), {"METADATA_BLOCKS": blocks, "add_tags": add_tags})
    return type(cls.__name__, (cls,), {"_Tags": type(cls._Tags.__name__, (_KeptComment, cls._Tags), {})})


class _MP4Fields:
    """MP4 (M4A, AAC or ALAC): iTunes freeform atoms ----:com.apple.iTunes:<NAME>, UTF-8. A mood atom
    of another program is read by its data type (UTF-16 for type 2, else UTF-8; a byte that is not
    shows as U+FFFD), and its bytes are kept through --replace-mood and untag (`_KeptIlst.removed`)."""

    kind = "mp4"
    info_keys = ("\xa9ART", "\xa9nam", "\xa9alb")
    prefix = "----:com.apple.iTunes:"

    def load(self, cls, fh):
        return _keeping_ilst(cls)(fh)

    def _name(self, key: str, *, mood: bool = True) -> str | None:
        if key.lower().startswith(self.prefix.lower()) and _is_ours(key[len(self.prefix):], mood=mood):
            return key[len(self.prefix):].upper()
        return None

    def read(self, tags) -> list[tuple[str, str]]:
        return [(self._name(key), _mp4_text(value)) for key, values in tags.items() if self._name(key)
                for value in values]

    def remove(self, tags, *, mood: bool = True) -> None:
        for key in [key for key in tags if self._name(key, mood=mood)]:
            for value in tags[key]:  # kept by its text, for add() and put_back() to write back its bytes
                tags.removed.setdefault(_mp4_text(value), []).append(value)
            del tags[key]

    def mood_origins(self, tags) -> list[str]:
        """For each mood value read() reads, in its order, its atom's name and the value's data type."""
        return [_origin(key, int(getattr(value, "dataformat", mp4.AtomDataType.UTF8))) for key, values in tags.items()
                if self._name(key) == MOOD_FIELD for value in values]

    def valid_origin(self, origin: tuple) -> bool:
        return (len(origin) == 2 and isinstance(origin[0], str) and self._name(origin[0]) == MOOD_FIELD
                and origin[1] in (mp4.AtomDataType.IMPLICIT, mp4.AtomDataType.UTF8, mp4.AtomDataType.UTF16))

    def put_back(self, tags, moods: list[tuple[tuple, str]]) -> None:
        """Replaced mood values back into the atoms they came from, with their data types: a UTF-16
        one encoded so again; a value encoded otherwise (Latin-1, a byte order mark) as the bytes and
        type MOODTAG_REPLACED_MOOD kept it in; a UTF-16 one an older moodtag kept (its bytes read as
        UTF-8: NULs in the text) as those bytes."""
        atoms: dict[str, list] = {}
        for (name, dataformat), text in moods:
            utf16 = dataformat == mp4.AtomDataType.UTF16
            kept = _kept_value(tags, text, utf16=utf16)
            # an older moodtag kept a UTF-16 value's bytes as they were, read as UTF-8: text holding NULs
            older = utf16 and "\x00" in text
            data = (bytes(kept) if kept is not None else
                    text.encode("utf-8" if older or not utf16 else "utf-16-be"))
            atoms.setdefault(name, []).append(mp4.MP4FreeForm(data, dataformat=dataformat))
        for name, values in atoms.items():
            tags[name] = values

    def add(self, tags, fields: list[tuple[str, str]]) -> None:
        for name, texts in _grouped(fields).items():
            # a replaced value as it was (its bytes and type); moodtag's own fields always as UTF-8
            tags[self.prefix + name] = [_freeform(text, _kept_value(tags, text) if name == REPLACED_FIELD else None)
                                        for text in texts]

    def text(self, tags, key: str) -> str | None:
        values = tags.get(key)
        return str(values[0]) if values else None

    def prepare_save(self, tags) -> dict:
        return {}


def _mp4_text(value) -> str:
    """A freeform atom's value as text, by its data type: UTF-16 (big-endian, or as its byte order
    mark says) for type 2, else UTF-8, a byte that is not shown as U+FFFD."""
    data = bytes(value)
    if getattr(value, "dataformat", None) == mp4.AtomDataType.UTF16:
        return data.decode("utf-16" if data[:2] in (b"\xfe\xff", b"\xff\xfe") else "utf-16-be", "replace")
    return data.decode("utf-8", "replace")


def _freeform(text: str, kept=None):
    """A freeform atom's value: `kept`'s bytes and data type where given, else `text` as UTF-8."""
    if kept is not None:
        return mp4.MP4FreeForm(bytes(kept), dataformat=kept.dataformat)
    return mp4.MP4FreeForm(text.encode("utf-8"), dataformat=mp4.AtomDataType.UTF8)


def _kept_value(tags, text: str, *, utf16: bool | None = None):
    """A value remove() took out that reads as `text` but is not `text` encoded as moodtag would encode
    it (another tagger's Latin-1, or UTF-16 with a byte order mark), of type UTF-16 or not as `utf16`
    asks (None: either); written back as it was. None: `text` encoded is the value."""
    for value in tags.removed.get(text, []):
        is16 = getattr(value, "dataformat", None) == mp4.AtomDataType.UTF16
        if utf16 in (None, is16) and bytes(value) != text.encode("utf-16-be" if is16 else "utf-8"):
            tags.removed[text].remove(value)
            return value
    return None


class _KeptIlst(mp4.MP4Tags):
    """mutagen's MP4 tags, saved as the file's `ilst` holds its atoms. mutagen's own save renders every
    atom again from what it parsed: a BMP or GIF cover became a JPEG one (FFmpeg then took it for
    MJPEG), a cover's name atom was dropped, `gnre` became `\xa9gen`, two `\xa9ART` atoms one with two
    values, text lost its locale and type, and the atoms were sorted; `untag` gave none of it back.
    Here the atoms of every key whose values did not change are written back as the file has them, in
    their place; a changed freeform key's atoms (moodtag's fields) where its first atom was, a new
    one's at the end. A change to any other key (not moodtag's) is saved by mutagen's own save."""

    def __init__(self, *args, **kwargs):
        self.file_atoms: list[tuple[str | None, bytes]] = []   # (key, the atom's bytes), in the file's order
        self.loaded: dict[str, list] = {}
        self.removed: dict[str, list] = {}  # text -> the values _MP4Fields.remove took out that read as it
        super().__init__(*args, **kwargs)

    def load(self, atoms, fileobj):
        super().load(atoms, fileobj)
        for atom in atoms.path(b"moov", b"udta", b"meta", b"ilst")[-1].children:
            fileobj.seek(atom.offset)
            raw = fileobj.read(atom.length)
            self.file_atoms.append((_ilst_key(atom.name, raw[atom._dataoffset - atom.offset:]), raw))
        # a copy of each key's values to tell a change by; cpil, pgap and pcst hold a bool, not a list (beets,
        # iTunes and Picard write cpil)
        self.loaded = {key: list(values) if isinstance(values, list) else values for key, values in self.items()}

    @loadfile(writable=True)
    def save(self, filething=None, padding=None):
        changed = {key for key in {*self.keys(), *self.loaded} if self.get(key) != self.loaded.get(key)}
        place = getattr(self, "_MP4Tags__save", None)  # mutagen's: the ilst into the file, sizes and offsets updated
        if place is None or any(not key.startswith("----:") for key in changed):
            return super().save(filething.fileobj, padding=padding)
        atoms, placed = [], set()
        for key, raw in self.file_atoms:
            if key not in changed:
                atoms.append(raw)
            elif key not in placed:
                placed.add(key)
                if key in self:
                    atoms.append(self._render(key, self[key]))
        atoms += [self._render(key, self[key]) for key in sorted(changed - placed) if key in self]
        try:
            found = mp4.Atoms(filething.fileobj)
        except mp4.AtomError as err:
            raise mp4.error(err) from None
        place(filething.fileobj, found, mp4.Atom.render(b"ilst", b"".join(atoms)), padding)


def _ilst_key(name: bytes, data: bytes) -> str | None:
    """The key mutagen files an `ilst` atom's values under: a freeform atom's ----:MEAN:NAME from its
    mean and name atoms (None where they cannot be read: mutagen kept its bytes as they were), else
    the atom's name."""
    if name != b"----":
        return name.decode("latin-1")
    try:
        mean_end = struct.unpack_from(">I", data, 0)[0]
        name_end = mean_end + struct.unpack_from(">I", data, mean_end)[0]
    except struct.error:
        return None
    return (b"----:" + data[12:mean_end] + b":" + data[mean_end + 12:name_end]).decode("latin-1")


@functools.cache
def _keeping_ilst(cls: type) -> type:
    """mutagen's MP4 file class `cls` with its tags a _KeptIlst."""
    return type(cls.__name__, (cls,), {"MP4Tags": _KeptIlst})


# --- an AIFF's ID3 chunk, either spelling ------------------------------------------------------

class _AIFFFile(aiff.AIFFFile):
    """An AIFF file's chunks, its ID3 tag's chunk found as mutagen's AIFF reader looks for it, 'ID3 ',
    also where the file spells it 'id3 ' (as some writers do; TagLib reads both, and mutagen's WAV
    reader both in a WAV): mutagen did not see that tag, and its save added a second chunk after it.
    The chunk keeps its ID in the file: mutagen writes a chunk's size and data, never its ID again.
    Where both are there, 'ID3 ' is the one, as before."""

    def __init__(self, fileobj):
        super().__init__(fileobj)
        if "ID3" not in self and "id3" in self and _holds_id3(fileobj, self["id3"]):
            self["id3"].id = "ID3"


def _holds_id3(fileobj, chunk) -> bool:
    """Whether an IFF chunk's data begins with an ID3v2 header: an 'id3 ' chunk of another program's
    data is not the tag (it stays as it is, and the tag gets its own 'ID3 ' chunk)."""
    here = fileobj.tell()
    try:
        fileobj.seek(chunk.data_offset)
        return fileobj.read(3) == b"ID3"
    finally:
        fileobj.seek(here)


class _AIFFID3(aiff._IFFID3):
    """An AIFF file's ID3 tag, read from and saved into the chunk _AIFFFile finds."""

    def _load_file(self, fileobj):
        return _AIFFFile(fileobj)


class _AIFF(aiff.AIFF):
    """mutagen's AIFF with its tag a _AIFFID3 (mutagen's load and add_tags, with that class)."""

    @convert_error(IOError, aiff.error)
    @loadfile()
    def load(self, filething, **kwargs):
        fileobj = filething.fileobj
        try:
            self.tags = _AIFFID3(fileobj, **kwargs)
        except id3.ID3NoHeaderError:
            self.tags = None
        except id3.error as exc:
            raise aiff.error(exc) from exc
        else:
            self.tags.filename = self.filename
        fileobj.seek(0, 0)
        self.info = aiff.AIFFInfo(fileobj)

    def add_tags(self) -> None:
        if self.tags is not None:
            raise aiff.error("an ID3 tag already exists")
        self.tags = _AIFFID3()


def _delete_aiff_id3(fileobj) -> None:
    """mutagen's aiff.delete, of the chunk _AIFFFile finds: the whole ID3 chunk removed."""
    try:
        del _AIFFFile(fileobj)["ID3"]
    except KeyError:
        pass


# --- a format's own text fields, read only ----------------------------------------------------

# RIFF INFO field -> name, as FFmpeg (ff_riff_info_conv) and MPD name them.
RIFF_INFO_FIELDS = {"IART": "artist", "INAM": "title", "IPRD": "album", "IGNR": "genre", "ICRD": "date",
                    "ICMT": "comment", "ITRK": "track", "IPRT": "track"}


def riff_info(fh) -> dict[str, str]:
    """The text fields of a RIFF/WAVE file's LIST/INFO chunks (INAM title, IART artist, IPRD album,
    ...) by name; the first non-empty value of a field wins. A value ends at its first NUL byte and is
    UTF-8, or else Windows-1252 (older Windows software). A damaged field ends the reading: what was
    read before it is kept, nothing is raised (the ID3 tag and the audio do not depend on it)."""
    found: dict[str, str] = {}
    try:
        fh.seek(0)
        root = RiffFile(fh).root
        lists = [chunk for chunk in root.subchunks() if chunk.id == "LIST" and getattr(chunk, "name", "") == "INFO"]
        for chunk in lists:
            for field in chunk.subchunks():
                if field.data_offset + field.data_size > chunk.data_offset + chunk.data_size:
                    break   # claims more than its LIST holds: cut off, or garbage (FFmpeg drops it too)
                name = RIFF_INFO_FIELDS.get(field.id)
                if name is None or name in found:
                    continue
                text = _info_text(field.read())
                if text:
                    found[name] = text
    except (mutagen.MutagenError, OSError, *_MALFORMED):
        pass
    return found


def legacy_info(fh) -> dict[str, str]:
    """An MP3's artist, title and album from its ID3v1 and APEv2 tags (APEv2 wins where both have
    one), which players show where the ID3v2 tag has none: read only, as riff_info."""
    names = {"TPE1": "artist", "TIT2": "title", "TALB": "album"}
    return {names[frame.FrameID]: str(frame.text[0]) for frame in _legacy_frames(fh)
            if frame.FrameID in names and frame.text and str(frame.text[0])}


def _info_text(raw: bytes) -> str:
    raw = raw.split(b"\0", 1)[0]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", "replace")
    return text.strip()


# --- the one table: file format -> how the mood is read, written, removed ------------------

_ID3, _VORBIS, _MP4 = _ID3Fields(), _VorbisFields(), _MP4Fields()


@dataclass(frozen=True)
class _Format:
    name: str
    fields: _ID3Fields | _VorbisFields | _MP4Fields | None   # None: moodtag cannot tag it
    keeps_id3v1: bool = False  # MP3: a trailing ID3v1 tag, which mutagen would rewrite from the v2 frames
    native_info: Callable | None = None  # the format's own text fields (fh -> name -> text), read only
    pads_chunks: bool = False  # WAV, AIFF: chunks, an odd one followed by a pad byte (tagger.iff)
    delete_tag: Callable | None = None  # file object -> the whole ID3 tag removed (untag, when nothing else is left)

    @property
    def tag_kind(self) -> str | None:
        return self.fields.kind if self.fields else None


_FORMATS = {  # mutagen's class for the content -> format
    mp3.MP3: _Format("mp3", _ID3, keeps_id3v1=True, native_info=legacy_info,
                     delete_tag=lambda fileobj: id3.delete(fileobj, delete_v1=False, delete_v2=True)),
    wave.WAVE: _Format("wav", _ID3, native_info=riff_info, pads_chunks=True, delete_tag=wave.delete),
    _AIFF: _Format("aiff", _ID3, pads_chunks=True, delete_tag=_delete_aiff_id3),
    flac.FLAC: _Format("flac", _VORBIS),
    oggvorbis.OggVorbis: _Format("ogg", _VORBIS),
    oggopus.OggOpus: _Format("opus", _VORBIS),
    oggflac.OggFLAC: _Format("oggflac", _VORBIS),
    oggspeex.OggSpeex: _Format("speex", _VORBIS),
    mp4.MP4: _Format("m4a", _MP4),
}


class _NotingFrame:
    """A frame class as mutagen's ID3 reader uses it (`_fromData`: parse a frame's data), which also
    notes for the tag (`_PARSED`) what it was given and whether it could be read, so that
    _require_whole_id3 need not parse the frame again. A grouped frame is parsed without its group
    byte (_ungrouped), and noted as the file has it."""
    __slots__ = ("cls",)

    def __init__(self, cls) -> None:
        self.cls = cls

    def _fromData(self, header, flags, data):
        parsed = _PARSED.get(header)
        if parsed is None:
            parsed = _PARSED[header] = _ParsedFrames()
        parsed.depth += 1
        readable, frame, empty_key = False, None, None
        parse_flags, parse_data = _ungrouped(header, flags, data)
        try:
            frame = self.cls._fromData(header, parse_flags, parse_data)
            readable = True
            return frame
        except NotImplementedError:
            readable = True  # mutagen keeps its bytes as they are
            raise
        except id3.ID3JunkFrameError:
            empty_key = _empty_text_key(self.cls, header, parse_flags, parse_data)
            readable = empty_key is not None  # an empty text frame: moodtag keeps its bytes (_note_layout)
            raise
        finally:
            parsed.depth -= 1
            if not parsed.depth:
                parsed.frames.append(_Noted(self.cls, flags, len(data), readable, frame, data, empty_key))


class _Noted(NamedTuple):
    """One frame of a tag as mutagen's reader parsed it. `frame` and `data` (the frame mutagen made of
    it, and its bytes) are let go of once the tag is read, except where _note_layout keeps them."""
    cls: type
    flags: int
    size: int
    readable: bool             # mutagen keeps it (parsed, or its bytes), or it is an empty text frame
    frame: object = None       # None: mutagen made no frame of it (or it is let go of)
    data: bytes = b""
    empty_key: str | None = None  # an empty text frame (mutagen drops it): the key it would be filed under


@dataclass
class _ParsedFrames:
    """The frames of one ID3v2 tag that mutagen's reader parsed, in order (_Noted), and, where some of
    them would not be written back as they were, how the file lays them out (_note_layout)."""
    frames: list = field(default_factory=list)
    depth: int = 0  # > 0 while a frame is parsed: frames inside it (CHAP, CTOC) are not the tag's
    layout: list = field(default_factory=list)   # (key, _Noted kept as bytes, or None), in the file's order
    loaded: dict = field(default_factory=dict)   # key -> the frame mutagen held under it when the tag was read


_PARSED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # mutagen's ID3Header -> _ParsedFrames

# ID3 as it is in the file: no v2.3 -> v2.4 translation (which drops frames such as RVAD and TSIZ),
# and no merging of an ID3v1 tag's fields into the v2 tag. Each frame is parsed by mutagen's class for
# it, as without `known_frames`, and noted: v2.3/v2.4 and v2.2 IDs (4 and 3 characters) do not overlap.
_ID3_LOAD = {"translate": False, "load_v1": False,
             "known_frames": {name: _NotingFrame(cls) for name, cls in {**id3.Frames, **id3.Frames_2_2}.items()}}


def _tag_fields(fmt: _Format):
    if fmt.fields is None:
        raise TagError(f"cannot write tags to {fmt.name} files")
    return fmt.fields


def _current_fields(audio, fmt: _Format) -> list[tuple[str, str]]:
    if fmt.fields is None or audio.tags is None:
        return []
    return fmt.fields.read(audio.tags)


# --- detecting the format from the content ------------------------------------------------

# Containers that some tools prefix with an ID3v2 tag anyway; mutagen would take the file for an MP3.
_ID3_IN_FRONT_OF = {b"OggS": "Ogg", b"RIFF": "WAV", b"FORM": "AIFF"}


def _sniff(head: bytes, fh) -> type | None:
    """The mutagen class for a file's first bytes (`fh` to look past an ID3v2 tag); None if they
    say nothing we know."""
    if head.startswith(b"ID3"):  # ID3v2 in front (maybe several): MP3, or FLAC if fLaC follows
        offset, body = 0, head
        while body[:3] == b"ID3" and len(body) >= 10:
            size = int(id3.BitPaddedInt(body[6:10]))
            offset += 10 + size + (10 if body[5] & 0x10 else 0)
            fh.seek(offset)
            body = fh.read(16)
        if body[:4] in _ID3_IN_FRONT_OF:
            kind = _ID3_IN_FRONT_OF[body[:4]]
            raise TagError(f"an ID3v2 tag stands in front of its {kind} data, where {kind} readers do not look "
                           f"for tags; moodtag leaves such a file alone")
        return flac.FLAC if body.startswith(b"fLaC") else mp3.MP3
    if head.startswith(b"fLaC"):
        return flac.FLAC
    if head.startswith(b"OggS"):
        for marker, cls in ((b"\x01vorbis", oggvorbis.OggVorbis), (b"OpusHead", oggopus.OggOpus),
                            (b"\x7fFLAC", oggflac.OggFLAC), (b"Speex   ", oggspeex.OggSpeex)):
            if marker in head:
                return cls
        return None
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return wave.WAVE
    if head[:4] in (b"RF64", b"BW64") and head[8:12] == b"WAVE":
        raise TagError(f"{head[:4].decode()} WAV (the 64-bit form, for files over 4 GB): mutagen cannot "
                       f"read or write its tags")
    if head.startswith(b"FORM") and head[8:12] in (b"AIFF", b"AIFC"):
        return _AIFF
    if head[4:8] == b"ftyp":
        return mp4.MP4
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06:
        return mp3.MP3  # an MPEG audio frame sync (layer bits 00 would be AAC in ADTS)
    return None


@contextmanager
def _opened(path: Path, *, saved: list | None = None):
    """The file open for reading, refused unless it is a regular file: a FIFO would block the open
    or the first read forever, /dev/zero would feed mutagen without end. Opened non-blocking and
    checked with fstat, so what is checked is what is read. Closing it can fail too (a USB drive
    unplugged: ENOTCONN from a FUSE file system): that is the file's TagError when nothing else failed,
    and never hides the error in flight. A write that `saved` (not empty) says is made stands: it was
    made and synced through a descriptor of its own (tagger.safewrite), this one was only read."""
    with _mutagen_errors(writing=False, fmt=None):
        if os.path.islink(path) and not os.path.exists(path):
            raise TagError(BROKEN_LINK)
        _require_regular(os.stat(path).st_mode)   # before opening: opening some devices does things
        fh = open(path, "rb", opener=lambda name, flags: os.open(name, flags | os.O_NONBLOCK))
    try:
        with _mutagen_errors(writing=False, fmt=None):
            st = os.fstat(fh.fileno())
        _require_regular(st.st_mode)
        if st.st_size == 0:  # the words of a scan's analysis (tagger.audio), not mutagen's guess at a format
            raise TagError("empty file (0 bytes)")
        yield fh
    except BaseException:
        try:
            fh.close()
        except OSError:
            pass  # the error in flight is the file's failure
        raise
    try:
        fh.close()
    except OSError as exc:
        if not saved:
            raise TagError(_cause(exc, writing=False, fmt=None)) from exc


def _require_regular(mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise TagError("is a folder")
    kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a character device" if stat.S_ISCHR(mode)
            else "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a file")
    raise TagError(f"not a regular file ({kind})")


def _load(fh):
    """(mutagen file object, _Format) for the content of `fh`, an open regular file; TagError if it
    is not audio we know."""
    with _mutagen_errors(writing=False, fmt=None):
        fh.seek(0)
        head = fh.read(128)
        cls = _sniff(head, fh)
        if cls is None:  # e.g. an MP3 with junk before its first frame: mutagen's own guess
            _require_taggable(head)
            fh.seek(0)
            guess = mutagen.File(fh)
            if guess is None:
                raise TagError("not a supported audio file")
            cls = type(guess)
            if cls not in _FORMATS:
                return guess, _Format(cls.__name__.lower(), None)
    fmt = _FORMATS[cls]
    with _mutagen_errors(writing=False, fmt=fmt):
        fh.seek(0)
        return fmt.fields.load(cls, fh), fmt


# Audio that the scan decodes (libsndfile, FFmpeg) and mutagen has no tags for, by its first bytes:
# refused by name, not as 'not a supported audio file' after the scan analysed it.
_UNTAGGABLE = {
    b"riff\x2e\x91\xcf\x11\xa5\xd6\x28\xdb\x04\xc1\x00\x00": "Sony Wave64 (W64)",
    b"caff": "Core Audio (CAF)",
    b".snd": "Sun/NeXT AU",
    b"NIST_1A": "NIST SPHERE",
    b"Creative Voice File": "Creative Voice (VOC)",
}


def _require_taggable(head: bytes) -> None:
    """TagError naming the format when a file's first bytes are audio moodtag cannot write tags into."""
    name = next((name for magic, name in _UNTAGGABLE.items() if head.startswith(magic)), None)
    if head[:4] == b"FORM" and head[8:12] in (b"8SVX", b"16SV"):
        name = "IFF 8SVX"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:  # ADTS: an MPEG sync with layer bits 00
        name = "raw AAC (ADTS)"
    if name:
        raise TagError(f"cannot write tags into {name} files: moodtag analyses their audio only")


# --- writing -----------------------------------------------------------------------------

def _require_writable(path: Path, fh) -> None:
    """Refuse before touching a file: one on a read-only file system, one without write permission,
    or one marked read-only (no write bit at all, which root would otherwise ignore)."""
    with _mutagen_errors(writing=True, fmt=None):
        read_only_fs = os.fstatvfs(fh.fileno()).f_flag & os.ST_RDONLY
        mode = os.fstat(fh.fileno()).st_mode
    if read_only_fs:
        raise TagError("read-only file system")
    if not os.access(path, os.W_OK) or not mode & 0o222:
        raise TagError("read-only file (permission denied)")


def _require_whole_tag(audio, fh) -> None:
    """Refuse to rewrite a tag that mutagen's save would not write back whole (ID3v2, Vorbis comment)."""
    _require_whole_id3(audio, fh)
    _require_whole_comment(audio)
    _require_whole_chunks(audio, fh)


def _require_whole_id3(audio, fh) -> None:
    """Refuse to rewrite an ID3v2 tag (MP3, WAV, AIFF) that mutagen did not read whole. Its reader
    skips a frame whose ID is not one and a frame it cannot parse, and takes whatever follows a
    frame header of zeros (or a cut-off one) for padding; its save writes back only what it read, so
    those bytes (a comment, the cover art) would go without a word. Only the frame headers and the
    bytes after the last frame are read again: whether a frame parsed was noted as mutagen parsed it."""
    from mutagen.id3._tags import ID3Header

    tags = audio.tags
    if not isinstance(tags, id3.ID3) or getattr(tags, "_header", None) is None:
        return  # no ID3v2 tag yet
    dropped = {"RVAD", "EQUA", "TRDA", "TSIZ"} & {frame.FrameID for frame in tags.values()}  # v2.3 frames v2.4 lacks
    if tags.version < (2, 3, 0) and (tags.unknown_frames or dropped):  # written as v2.4 (prepare_save)
        names = ", ".join(sorted({frame[:3].decode("latin-1") for frame in tags.unknown_frames} | dropped))
        raise TagError(f"ID3v2.2 tag with frames no later ID3 version has ({names}), which rewriting it would "
                       "lose; the tag was not changed")
    pictures = sum(isinstance(frame, id3.APIC) for frame in tags.values()) if tags.version < (2, 3, 0) else 0
    if pictures > 1:  # mutagen's update_to_v24 (prepare_save) makes one picture of them, the last one twice
        raise TagError(f"ID3v2.2 tag with {pictures} pictures, which rewriting it as ID3v2.4 would cut to one; "
                       "the tag was not changed")
    with _mutagen_errors(writing=False, fmt=None):
        fh.seek(0)
        tags._pre_load_header(fh)  # where mutagen found the tag: the file's start, or a WAV/AIFF chunk
        header = ID3Header(fh)
        size = header.size - 10 - (4 + len(header._extdata) if header.f_extended else 0)
        cause = _id3_unread(header, _FileBytes(fh, fh.tell(), size), _PARSED.get(tags._header))
    if cause:
        raise TagError(f"damaged ID3 tag ({cause}; the tag was not changed)")


def _require_whole_chunks(audio, fh) -> None:
    """Refuse to tag a WAV or AIFF file whose chunks run past its end (cut short, or a size never
    written), or whose RIFF/FORM header declares a size that ends inside a chunk: mutagen would put its
    ID3 chunk where the headers say the audio still is, or where the declared form ends, inside the
    audio (tagger.iff)."""
    fmt = _FORMATS.get(type(audio))
    if fmt is None or not fmt.pads_chunks:
        return
    if _old_tags_inside(fh, fmt) is not None:
        raise TagError(f"{OLD_TAG_INSIDE}; the file was not changed")
    with _mutagen_errors(writing=False, fmt=None):
        if tags_inside(fh) is not None:  # a tag of another's there too: not a chunk walk's garbled sizes
            raise TagError(f"{TAG_INSIDE}; the file was not changed")
        found, short = overrun(fh), short_form(fh)
    if found is not None and not found.pad_only:  # a missing pad byte is added as the tag is saved
        raise TagError(f"{found.describe()}; the file was not changed")
    if short is not None:
        raise TagError(f"{short.describe()}; the file was not changed")
    if audio.tags is None:
        _require_tag_chunk_holds_id3(fh, (b"ID3 ", b"id3 ") if isinstance(audio, wave.WAVE) else (b"ID3 ",))


_TAG_CHUNK_READ = 16 << 20   # of an ID3 chunk without an ID3 header, what is read to see that it is all zeros


def _require_tag_chunk_holds_id3(fh, names: tuple[bytes, ...]) -> None:
    """Refuse to tag a WAV or AIFF file whose ID3 chunk (the first of `names` it has: the one mutagen
    writes into) holds no ID3 tag: mutagen found none, and its save would write the mood over that
    chunk's bytes (another program's data, or a damaged tag), which untag would then delete. An empty
    chunk, or one of zeros (what a tool leaves that deleted the tag), holds nothing to lose."""
    for name in names:
        with _mutagen_errors(writing=False, fmt=None):
            data = read_chunk(fh, name, _TAG_CHUNK_READ)
        if data is not None:
            if not data.startswith(b"ID3") and data.strip(b"\0"):
                raise TagError(f"its '{name.decode()}' chunk holds no ID3 tag (damaged, or another program's "
                               "data); the file was not changed")
            return


def _require_whole_comment(audio) -> None:
    """Refuse to rewrite a Vorbis comment that cannot be written back as it is: an entry that runs
    past the end of its Ogg packet (mutagen reads what there is), or data after the comment that
    mutagen's save drops (not zero padding; in Opus, not data marked to be kept)."""
    cause = getattr(audio.tags, "damage", None)
    if cause:
        raise TagError(f"damaged Vorbis comment ({cause}; the tag was not changed)")


_FLAC_BLOCK_MAX = 2 ** 24 - 1   # a FLAC metadata block's size has 24 bits


def _require_comment_fits(audio, fmt: _Format) -> None:
    """Refuse a Vorbis comment that FLAC cannot hold (a big cover kept in it as METADATA_BLOCK_PICTURE,
    long lyrics): its metadata block's size has 24 bits, in a FLAC file and in Ogg FLAC's comment
    packet. mutagen's FLAC save fails on it with an AttributeError (its comment class lacks the
    attribute its size check reads), which no caller expects; its Ogg FLAC save writes the size's
    low 24 bits. Measured as it is written: _KeptComment.write(). Only moodtag's fields added make a
    comment larger (remove_mood takes them out)."""
    if fmt.name in ("flac", "oggflac") and audio.tags is not None and len(audio.tags.write()) > _FLAC_BLOCK_MAX:
        raise TagError("its Vorbis comment would pass FLAC's 16 MiB metadata block limit")


class _FileBytes:
    """`size` bytes of a file from `start` (fewer where the file ends first), read only where sliced:
    a tag's frame headers, without the frames' data between them (a cover can be megabytes)."""

    def __init__(self, fh, start: int, size: int) -> None:
        self._fh, self._start = fh, start
        self._size = max(0, min(size, os.fstat(fh.fileno()).st_size - start))

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, where: slice) -> bytes:
        start, stop, _ = where.indices(self._size)
        self._fh.seek(self._start + start)
        return self._fh.read(max(0, stop - start))


def _id3_unread(header, data, parsed: _ParsedFrames | None = None) -> str | None:
    """What mutagen's reader leaves out of an ID3v2 tag's frames (`data`, after the header: bytes or
    _FileBytes), walked as it walks them; None if nothing. Each frame needs a valid ID, to fit in the
    tag and to parse, and after the last one only zero bytes may follow. `parsed`: what mutagen's
    reader noted as it parsed the frames; a frame found there (same class, flags and size, in the same
    order) is not parsed again."""
    from mutagen.id3._tags import determine_bpi
    from mutagen.id3._util import is_valid_frame_id, unsynch

    if header.version < (2, 4, 0) and header.f_unsynch:
        try:
            data = unsynch.decode(data[:])
        except ValueError:
            pass  # as mutagen: read as it is
    v22 = header.version < (2, 3, 0)
    known = id3.Frames_2_2 if v22 else id3.Frames  # as mutagen's reader (the same classes: _ID3_LOAD)
    noted = iter(parsed.frames if parsed is not None else ())
    bpi = int if header.version < (2, 4, 0) else determine_bpi(data, known)
    id_size, head_size = (3, 6) if v22 else (4, 10)
    pos, count = 0, 0
    while pos + head_size <= len(data) and (head := data[pos:pos + head_size])[:id_size].strip(b"\0"):
        if v22:
            raw, size, flags = head[:3], int.from_bytes(head[3:6], "big"), 0
        else:
            raw, size, flags = struct.unpack(">4sLH", head)
            size = bpi(size)
        start, pos = pos + head_size, pos + head_size + size
        if not size:
            continue  # an empty frame, which mutagen drops: nothing in it is lost
        name = raw.decode("latin-1")
        if not v22 and name.endswith("\0") and name[:-1] in id3.Frames_2_2:
            name = id3.Frames_2_2[name[:-1]].__base__.__name__  # a v2.2 name, which mutagen reads so
        elif not (raw.isascii() and is_valid_frame_id(name)):
            break
        if pos > len(data):
            return f"frame {count + 1}, {name}, runs past the end of the tag"
        if name in known:
            note = next(noted, None)
            if note is not None and note[:3] == (known[name], flags, size):
                readable = note[3]
            else:
                noted = iter(())  # not as mutagen walked it: parse this frame and the rest here
                readable = _parses(known[name], header, flags, data[start:pos])
            if not readable:
                return f"frame {count + 1}, {name}, cannot be read"
        count += 1
    else:
        if not data[pos:].strip(b"\0"):
            return None
    return f"unreadable data after frame {count}" if count else "unreadable data where its first frame should be"


def _parses(frame_class, header, flags: int, body: bytes) -> bool:
    """Whether mutagen's reader keeps this frame: it parses (a grouped one, as _NotingFrame gives it to
    mutagen), or mutagen keeps its bytes as they are."""
    flags, body = _ungrouped(header, flags, body)
    try:
        frame_class._fromData(header, flags, body)
    except NotImplementedError:
        pass
    except id3.ID3JunkFrameError:
        return _empty_text_key(frame_class, header, flags, body) is not None  # holds nothing
    return True


def _save(audio, fmt: _Format, path: Path, fh, journal: UndoJournal | None, *, drop_v2: bool = False,
          expect: tuple[int, int] | None = None, on_written: Callable[[os.stat_result], None] | None = None) -> None:
    """Save `audio`'s tags into the file `fh` reads, through safewrite. drop_v2: remove the ID3v2 tag.
    `expect`, `on_written`: as for write_mood."""

    def save_into(target) -> None:   # mutagen's save, into any file object holding the file's bytes
        if fmt.keeps_id3v1:
            _id3_footer_to_padding(target)
        if drop_v2:
            fmt.delete_tag(target)
            return
        options = fmt.fields.prepare_save(audio.tags)
        if fmt.pads_chunks:
            add_missing_pad(target)
        if not fmt.keeps_id3v1:
            audio.save(target, **options)
            return
        id3v1 = _trailing_id3v1(target)
        target.seek(0)   # mutagen reads the ID3v2 header where the file object stands
        audio.save(target, v1=id3.ID3v1SaveOptions.UPDATE, **options)
        if id3v1 is not None and _trailing_id3v1(target) != id3v1:
            target.seek(-128, os.SEEK_END)  # same size, same place: the ID3v1 tag as it was
            target.write(id3v1)

    with _mutagen_errors(writing=True, fmt=fmt):
        how = safewrite.rewrite(path, fh, save_into, journal=journal if journal is not None else _default_journal(),
                                expect=expect)
    if on_written is not None:
        on_written(how.stat)


def _id3_footer_to_padding(fileobj) -> None:
    """An ID3v2.4 tag at the file's start with a footer (header flag 0x10; '3DI' and 7 bytes after the
    frames): mutagen's save and delete rewrite the header and frames only, and the footer would stay, 10
    stray bytes before the audio (FFmpeg then misses an MP3's LAME header, and with it the gapless
    trim). The footer becomes padding first: the flag cleared, the size 10 larger, the 10 bytes zeros."""
    fileobj.seek(0)
    header = fileobj.read(10)
    if len(header) < 10 or header[:4] != b"ID3\x04" or not header[5] & 0x10:
        return
    size = int(id3.BitPaddedInt(header[6:10]))
    fileobj.seek(10 + size)
    if fileobj.read(4) != b"3DI\x04":
        return
    fileobj.seek(0)
    fileobj.write(header[:5] + bytes([header[5] & ~0x10 & 0xFF]) + id3.BitPaddedInt.to_str(size + 10, width=4))
    fileobj.seek(10 + size)
    fileobj.write(bytes(10))



def _default_journal() -> UndoJournal:
    from tagger.cache import default_db_path

    return UndoJournal.for_cache(default_db_path())


def _trailing_id3v1(fileobj) -> bytes | None:
    if fileobj.seek(0, os.SEEK_END) < 128:
        return None
    fileobj.seek(-128, os.SEEK_END)
    block = fileobj.read(128)
    return block if block.startswith(b"TAG") else None


# MP3: what a first ID3v2 tag takes from an ID3v1 or APEv2 tag (APEv2 key -> ID3v2.4 frame)
_APE_FRAMES = {"title": id3.TIT2, "artist": id3.TPE1, "album": id3.TALB, "year": id3.TDRC,
               "track": id3.TRCK, "genre": id3.TCON}


def _legacy_frames(fh) -> list:
    """The title, artist, album, year, track, genre and comment of an MP3's ID3v1 and APEv2 tags, as
    ID3v2.4 frames; APEv2 (UTF-8, not cut at 30 bytes) wins where both have a field."""
    frames = {}
    block = _trailing_id3v1(fh)
    if block is not None:
        frames.update(id3.ParseID3v1(block) or {})
    fh.seek(0)
    try:
        ape = apev2.APEv2(fh)
    except apev2.error:
        ape = {}
    for key, value in ape.items():
        if getattr(value, "kind", None) != apev2.TEXT or not value.value:
            continue
        name = key.lower()
        if name in _APE_FRAMES:
            frame = _APE_FRAMES[name](encoding=id3.Encoding.UTF8, text=list(value))
            frames[frame.FrameID] = frame
        elif name == "comment":
            frames["COMM"] = id3.COMM(encoding=id3.Encoding.UTF8, lang="eng", desc="", text=list(value))
    return list(frames.values())


def _canonical(frames) -> list[tuple[str, str]]:
    return sorted((frame.HashKey, frame.pprint()) for frame in frames)


# --- the one error wrapper ---------------------------------------------------------------

# What mutagen may raise on malformed data besides its own errors.
_MALFORMED = (struct.error, ValueError, IndexError, EOFError)


@contextmanager
def _mutagen_errors(*, writing: bool, fmt: _Format | None):
    """Turn mutagen and OS errors into a TagError whose message is the cause, in one line.
    `fmt` is what the file's content says it is; None while that is not known."""
    try:
        yield
    except TagError:
        raise
    except (mutagen.MutagenError, OSError, *_MALFORMED) as exc:
        raise TagError(_cause(exc, writing=writing, fmt=fmt)) from exc


def _cause(exc: BaseException, *, writing: bool, fmt: _Format | None) -> str:
    chain = _chain(exc)
    os_error = next((e for e in chain if isinstance(e, OSError)), None)
    if os_error is not None:
        return _os_cause(os_error, writing=writing)
    id3_error = next((e for e in chain if isinstance(e, id3.error)), None)
    if id3_error is not None:
        return f"broken ID3 tag: {_one_line(id3_error)}"
    if any(isinstance(e, mp3.HeaderNotFoundError) for e in chain):
        return "not a supported audio file (no MPEG audio frames found)"
    if fmt is None:  # mutagen's guess from the name failed too
        return "not a supported audio file"
    return f"broken {fmt.name.upper()} file: {_one_line(exc) or type(exc).__name__}"


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, the exceptions mutagen wrapped in it (as args[0]), and their causes."""
    out: list[BaseException] = []
    todo = [exc]
    while todo and len(out) < 10:
        e = todo.pop(0)
        if e is None or e in out:
            continue
        out.append(e)
        todo += [e.args[0] if e.args and isinstance(e.args[0], BaseException) else None,
                 e.__cause__, e.__context__]
    return out


def _os_cause(exc: OSError, *, writing: bool) -> str:
    if isinstance(exc, PermissionError):
        return "read-only file (permission denied)" if writing else "permission denied"
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, IsADirectoryError):
        return "is a folder"
    if exc.errno == errno.EROFS:
        return "read-only file system"
    if exc.errno == errno.ENOSPC:
        return "disk full"
    return os_text(exc)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
