"""Options shared by several commands, declared once."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def path_value(value: str) -> Path:
    """A PATH argument or option: '' (an unset variable) is an error, never the current folder."""
    if value == "":
        raise typer.BadParameter("an empty path (an unset variable?)")
    return Path(value)


ModelOption = Annotated[Optional[str], typer.Option(
    "--model", "-m", metavar="MODEL",
    help="Model file, or the name of a shipped model (see `moodtag model-info`). Default: the shipped default.")]
DbOption = Annotated[Optional[Path], typer.Option(
    "--db", metavar="FILE", envvar="MOODTAG_DB", dir_okay=False, parser=path_value,
    help="The cache database. Default: moodtag.db in the user data folder (MOODTAG_DB overrides).")]
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON object per line instead of a table.")]
