"""Plain frozen dataclasses that flow between the stages of moodtag."""
from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path


def display_path(path: Path | str) -> str:
    """A path as valid UTF-8 text: bytes of a name that is not UTF-8 appear as \\xNN escapes."""
    text = os.fsdecode(path)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return os.fsencode(text).decode("utf-8", "backslashreplace")


def key_spelling(raw: bytes) -> str:
    """A name's bytes as the cache's key spells a path that is not plain UTF-8 (cache.path_key): each
    backslash doubled, each byte that is not UTF-8 as \\xNN; so the spelling can be undone."""
    return raw.replace(b"\\", b"\\\\").decode("utf-8", "backslashreplace")


def key_bytes(key: str, raw: bytes | None = None) -> bytes:
    """A cache row's path as the bytes to hand to the OS (cache.path_key undone): its raw bytes where it holds
    them, else the key's UTF-8. Never os.fsencode(key): a key is UTF-8 text whatever the locale, and a Latin-1
    locale encodes `Café` as another name (a file not there: its row forgotten), an ASCII one (LC_ALL=C) not
    at all."""
    return raw if raw is not None else key.encode("utf-8", "surrogateescape")


def counted(n, noun: str) -> str:
    """'1 track', '2 tracks': a count and its noun, plural unless the count is one."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def printable(text: Path | str | bytes) -> str:
    """Outside text (a file name, a decoder's message) safe for one terminal line: bytes of a name that
    is not UTF-8 as \\xNN, and every control character (line breaks, escape sequences, bidi overrides)
    as a Python-style escape, so that a name can neither split a line nor drive the terminal."""
    text = text if isinstance(text, str) else display_path(text)
    return text.translate(_ESCAPES) if _UNPRINTABLE.search(text) else text


def command_word(path) -> str:
    """A path as a word of a command a message suggests, which pasted into a shell is that path, one argument:
    quoted as shlex.quote does (`'/media/x/My Music'`); a name whose bytes are not UTF-8 or that holds a
    control character (which `printable` would show as \\xNN, a different name pasted) in the $'...' quoting
    of bash and zsh, each such byte as \\xNN. Plain text: pass it through `shown` for a markup line."""
    import shlex

    text = os.fsdecode(path)
    if not _UNPRINTABLE.search(text):
        try:
            text.encode("utf-8")
            return shlex.quote(text)
        except UnicodeEncodeError:
            pass
    return "$'" + "".join(_ansi_c(char) for char in text) + "'"


def _ansi_c(char: str) -> str:
    """One character of a name inside $'...': a byte that is not UTF-8 (a surrogate escape) or a control
    character as \\xNN per byte, a backslash or a quote escaped, any other character as it is."""
    if char in "\\'":
        return "\\" + char
    if "\udc80" <= char <= "\udcff" or _UNPRINTABLE.match(char):
        return "".join(f"\\x{byte:02x}" for byte in os.fsencode(char))
    return char


def forget_disk_command(point, places=()) -> str:
    """`moodtag prune --forget-disk MOUNT [PLACE...]` for the disk once mounted at `point`, with the places
    outside it that its rows are reached through (a link into it), each a command_word."""
    return "moodtag prune --forget-disk " + " ".join(command_word(place) for place in [point, *places])


def printable_cells(cells: list[str]) -> str:
    """The cells, each made printable, joined by tabs (one line of TSV). Most lines hold nothing to
    escape: they are searched once, whole, instead of cell by cell."""
    line = "\t".join(cells)
    if line.count("\t") == len(cells) - 1 and not _UNPRINTABLE_BUT_TAB.search(line):
        return line
    return "\t".join([printable(cell) for cell in cells])


def _escape_for(code: int) -> str:
    named = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
    if code in named:
        return named[code]
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


# C0 and C1 controls, DEL, Unicode line/paragraph separators, and the bidirectional controls.
_CONTROL_CODES = [*range(0x00, 0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, *range(0x200E, 0x2010),
                  *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_ESCAPES = {code: _escape_for(code) for code in _CONTROL_CODES}
_UNPRINTABLE = re.compile("[" + "".join(re.escape(chr(c)) for c in _CONTROL_CODES) + "]")
_UNPRINTABLE_BUT_TAB = re.compile("[" + "".join(re.escape(chr(c)) for c in _CONTROL_CODES if c != 0x09) + "]")


@dataclass(frozen=True)
class TrackRef:
    """A file found on disk, with what tells whether it changed since we last saw it."""

    path: Path
    size: int
    mtime_ns: int

    @classmethod
    def from_path(cls, path: Path) -> "TrackRef":
        st = path.stat()
        return cls(path=path, size=st.st_size, mtime_ns=st.st_mtime_ns)


@dataclass(frozen=True)
class ClipScore:
    """One clip of a track's result: where it starts and how long it lasts (seconds), the model's
    label -> probability for this clip alone, and the mood those scores alone would get (the model's
    threshold applied). Why a track got its mood, clip by clip."""

    start: float
    scores: dict[str, float]
    seconds: float | None = None
    mood: str | None = None

    def to_json(self) -> dict:
        return {"start": round(self.start, 3), "seconds": self.seconds, "mood": self.mood,
                "scores": {k: round(v, 4) for k, v in self.scores.items()}}


@dataclass(frozen=True)
class TrackResult:
    """The outcome of analysing one track: a mood, or an error text; never an exception."""

    path: Path
    mood: str | None = None
    confidence: float | None = None
    scores: dict[str, float] = field(default_factory=dict)
    clips: tuple[ClipScore, ...] = ()
    duration: float | None = None
    model_name: str | None = None
    model_version: str | None = None
    error: str | None = None
    stages: dict | None = field(default=None, compare=False)  # where its time went (tagger.stages), when asked

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def failed(cls, path: Path, error: str, *, model_name: str | None = None,
               model_version: str | None = None, duration: float | None = None) -> "TrackResult":
        return cls(path=path, error=error, model_name=model_name,
                   model_version=model_version, duration=duration)

    def to_json(self) -> dict:
        """The keys of `classify --json`: path, mood, confidence, scores, clips, model, error. The path as
        `query --json` spells it (key_spelling): the name b'a\\xe9' and the name 'a\\\\xe9' stay apart."""
        return {
            "path": key_spelling(os.fsencode(self.path)),
            "mood": self.mood,
            "confidence": None if self.confidence is None else round(self.confidence, 4),
            "scores": {k: round(v, 4) for k, v in self.scores.items()},
            "clips": [c.to_json() for c in self.clips],
            "duration": None if self.duration is None else round(self.duration, 3),
            "model": {"name": self.model_name, "version": self.model_version},
            "error": self.error,
        }


def as_dict(obj) -> dict:
    return asdict(obj)
