"""The CLI's rich consoles: results to stdout, progress and messages to stderr."""
from __future__ import annotations

from pathlib import PurePath

from rich.console import Console

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def shown(text) -> str:
    """Outside text (a path, a decoder's message) for a rich markup line: one line, control characters
    escaped (see records.printable), markup characters escaped."""
    from rich.markup import escape

    from tagger.records import printable

    return escape(printable(text if isinstance(text, (str, bytes, PurePath)) else str(text)))


def warn(message: str) -> None:
    """A warning line; `message` is markup (pass outside text through `shown`)."""
    err.print(f"[yellow]warning:[/] {message}", markup=True, highlight=False)


def error_line(path, cause: str) -> None:
    """One clear line per failed file: the file, then the cause."""
    err.print(f"[red]failed:[/] {shown(path)}: {shown(cause)}")
