"""`moodtag untag PATH...`: remove the fields moodtag wrote (the mood and MOODTAG_*) from audio files."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def untag(
    paths: Annotated[list[Path], typer.Argument(
        metavar="PATH...", exists=True,
        help="Audio files, or folders searched recursively (hidden files and folders are skipped).")],
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", "-n", help="List the files that hold moodtag fields; change nothing.")] = False,
) -> None:
    """Remove the mood field and every MOODTAG_* field from audio files; all other tags stay.

    Exit status 0 when it ran to the end, even if some files failed (each failure has its own line)."""
    from rich.markup import escape

    from tagger.console import error_line, out
    from tagger.discover import WalkProblem, walk
    from tagger.errors import TagError
    from tagger.tags import remove_mood

    changed = unchanged = failed = 0
    for item in walk(paths):
        if isinstance(item, WalkProblem):
            failed += 1
            error_line(item.path, item.cause)
            continue
        try:
            if remove_mood(item.path, dry_run=dry_run):
                changed += 1
                if dry_run:
                    out.print(f"would untag: {escape(str(item.path))}")
            else:
                unchanged += 1
        except TagError as exc:
            failed += 1
            error_line(item.path, str(exc))
    verb = "would untag" if dry_run else "untagged"
    out.print(f"{verb} {changed} {_files(changed)}, {unchanged} without moodtag fields, {failed} failed")


def _files(n: int) -> str:
    return "file" if n == 1 else "files"
