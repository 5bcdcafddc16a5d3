"""Plain frozen dataclasses that flow between the stages of moodtag."""
from __future__ import annotations

import os
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
    """The model's scores for one clip: its start time in seconds and label -> probability."""

    start: float
    scores: dict[str, float]


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

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def failed(cls, path: Path, error: str, *, model_name: str | None = None,
               model_version: str | None = None, duration: float | None = None) -> "TrackResult":
        return cls(path=path, error=error, model_name=model_name,
                   model_version=model_version, duration=duration)

    def to_json(self) -> dict:
        """The keys of `classify --json`: path, mood, confidence, scores, clips, model, error."""
        return {
            "path": display_path(self.path),
            "mood": self.mood,
            "confidence": None if self.confidence is None else round(self.confidence, 4),
            "scores": {k: round(v, 4) for k, v in self.scores.items()},
            "clips": [{"start": round(c.start, 3), "scores": {k: round(v, 4) for k, v in c.scores.items()}}
                      for c in self.clips],
            "duration": None if self.duration is None else round(self.duration, 3),
            "model": {"name": self.model_name, "version": self.model_version},
            "error": self.error,
        }


def as_dict(obj) -> dict:
    return asdict(obj)
