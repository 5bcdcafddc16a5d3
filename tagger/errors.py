"""The one user-facing error class, turned into a one-line message and exit 1 by the CLI."""


class MoodtagError(Exception):
    """A problem the user can fix (bad option, unusable model or database); message is one line."""


def os_text(exc: OSError) -> str:
    """An OS error's text as a cause in moodtag's words: lower-case ("File name too long": "file name too
    long"), as 'disk full' or 'permission denied' are."""
    if exc.strerror:
        return exc.strerror[:1].lower() + exc.strerror[1:]
    return str(exc)


class OptionsError(MoodtagError):
    """Options that contradict each other: the command makes it a usage error (click's, exit status 2)."""


class AudioError(MoodtagError):
    """A single audio file could not be read or decoded; the message names the cause. `duration`: the
    track's length where it was read before the failure (a track too short for a clip)."""

    def __init__(self, message: str, *, duration: float | None = None) -> None:
        super().__init__(message)
        self.duration = duration


class ModelError(MoodtagError):
    """A model file is missing, corrupt, or does not describe itself correctly."""


class TagError(MoodtagError):
    """The tags of one audio file could not be read or written; the message names the cause."""


# A track's failure whose cause lies outside the file's content: it could not be read (permissions, an
# I/O error, a file that went away while it was read). A scan tries such a file again even when it has
# not changed (its cause may be gone), and a failed re-analysis of this kind never replaces a result.
UNREADABLE_CAUSES = ("permission denied", "cannot stat:", "cannot read:", "file not found")


def unreadable(error: str | None) -> bool:
    """Whether a track's failure (its cause, as a TrackResult or a cache row holds it) is of that kind."""
    return bool(error) and error.startswith(UNREADABLE_CAUSES)


BROKEN_LINK = "broken symlink (its target does not exist)"  # one wording in every command
