"""Options shared by several commands, declared once."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from tagger.discover import os_absolute


def path_value(value: str) -> Path:
    """A PATH argument or option: '' (an unset variable) is an error, never the current folder. One with a
    '..' is made absolute as the OS resolves it (discover.os_absolute: `x/../lib`, x a symlink to a
    folder, is the folder beside x's target, not ./lib); others keep their spelling, as does one from `~`
    (an option that takes `~` expands it first)."""
    if value == "":
        raise typer.BadParameter("an empty path (an unset variable?)")
    path = Path(value)
    return os_absolute(path) if os.pardir in path.parts and not value.startswith("~") else path


def model_value(value: str) -> str:
    """A --model: '' (an unset variable, `-m "$MODEL"`) is an error, never the shipped default model."""
    if value == "":
        raise typer.BadParameter("an empty path (an unset variable?)")
    return value


def text_value(value: str) -> str:
    """A text option matched against the cache's text (tags, SQL): a byte the locale's encoding does not
    decode (Python holds it as a surrogate escape) matches no tag, which is text, and SQLite cannot take
    it; an error naming the byte, not a traceback, nor an empty answer that hides a wrong encoding."""
    bad = next((ch for ch in value if "\udc80" <= ch <= "\udcff"), None)
    if bad is not None:
        raise typer.BadParameter(f"holds the byte {ord(bad) - 0xDC00:#04x}, not {sys.getfilesystemencoding()} text "
                                 f"(written in another encoding?)")
    return value


ModelOption = Annotated[Optional[str], typer.Option(
    "--model", "-m", metavar="MODEL", parser=model_value,
    help="Model file, or the name of a shipped model (see `moodtag model-info`). Default: the shipped default.")]
DbOption = Annotated[Optional[Path], typer.Option(
    "--db", metavar="FILE", envvar="MOODTAG_DB", dir_okay=False, parser=path_value,
    help="The cache database. Default: moodtag.db in the user data folder (MOODTAG_DB overrides).")]
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON object per line instead of a table.")]


def quiet_value(value: bool) -> bool:
    """--quiet, passed on to the console layer (tagger.console.set_quiet) as the option is read, before the
    command runs: its progress bar and informational lines are left out wherever they are printed."""
    from tagger.console import set_quiet

    set_quiet(value)
    return value


QuietOption = Annotated[bool, typer.Option(
    "--quiet", "-q", callback=quiet_value,
    help="Print problems only (failed files, warnings, errors): no progress bar, summary or other informational "
         "line, so nothing when all went well (for cron and systemd timers).")]
