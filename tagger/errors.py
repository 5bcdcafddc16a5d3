"""The one user-facing error class, turned into a one-line message and exit 1 by the CLI."""


class MoodtagError(Exception):
    """A problem the user can fix (bad option, unusable model or database); message is one line."""


class AudioError(MoodtagError):
    """A single audio file could not be read or decoded; the message names the cause."""


class ModelError(MoodtagError):
    """A model file is missing, corrupt, or does not describe itself correctly."""


class TagError(MoodtagError):
    """The tags of one audio file could not be read or written; the message names the cause."""
