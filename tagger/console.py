"""The CLI's rich consoles: results to stdout, progress and messages to stderr."""
from __future__ import annotations

from rich.console import Console

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/] {message}", markup=True, highlight=False)


def error_line(path, cause: str) -> None:
    """One clear line per failed file: the file, then the cause."""
    from rich.markup import escape

    from tagger.records import display_path

    err.print(f"[red]failed:[/] {escape(display_path(path))}: {escape(cause)}")
