"""The CLI's rich consoles: results to stdout, progress and messages to stderr; and --quiet, which leaves
out the informational lines (info) and the progress bars, never a problem."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import PurePath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

quiet = False  # --quiet (set_quiet): only problems are printed (failed files, warnings, errors)


def __getattr__(name: str):
    """`out` and `err`, the rich consoles, made on first use: rich (~20 ms of imports) stays out of a command
    that prints plain lines only (`playlists`' "wrote" lines: info(..., plain=True))."""
    if name not in ("out", "err"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from rich.console import Console

    # emoji=False: rich would otherwise turn `:smile:` in a file name into an emoji, in JSON lines too; moodtag
    # writes no emoji codes of its own.
    globals().update(out=Console(highlight=False, soft_wrap=True, emoji=False),
                     err=Console(stderr=True, highlight=False, soft_wrap=True, emoji=False))
    return globals()[name]


def _console(name: str):
    """`out` or `err` from inside this module, where a name is not looked up through __getattr__."""
    return globals()[name] if name in globals() else __getattr__(name)


def set_quiet(value: bool) -> None:
    """--quiet given (or not) to the command now running: see info, and ScanProgress's bar."""
    global quiet
    quiet = value


def info(what, *, stderr: bool = False, plain: bool = False) -> None:
    """An informational line, or a summary table: what a command did when all went well ("forgot 0 missing
    tracks", "wrote 3 calm tracks to ...", a waiting line), left out under --quiet (cron mails any output),
    where only problems are printed. `what` is markup (outside text through `shown`) or a rich renderable; with
    `plain`, text written as it is, without rich. On standard output unless `stderr`."""
    if quiet:
        return
    if plain:
        import typer

        typer.echo(what, err=stderr)  # (typer's own click: a second click costs start-up, tests/test_scale.py)
    else:
        _console("err" if stderr else "out").print(what)


@contextmanager
def unpadded(console: Console):
    """What the block prints to `console`, written into a pipe or a file without the spaces rich ends
    its lines with (a table's cells padded to its widest row, a wrapped line to the width): plain text
    has none, and `grep 'x$'` or a diff with a sample would trip on them. On a terminal, as it is."""
    if console.is_terminal:
        yield
        return
    with console.capture() as captured:
        yield
    console.file.write("\n".join(line.rstrip(" ") for line in captured.get().split("\n")))
    console.file.flush()


def unbounded(console: Console) -> bool:
    """Whether `console` writes into a pipe or a file with no COLUMNS given: there a table is as wide as its
    text (see `wide`), a name or a sha256 whole on its line, not folded at rich's 80 columns."""
    return not console.is_terminal and not os.environ.get("COLUMNS")


@contextmanager
def wide(console: Console):
    """What the block prints to `console`, laid out up to 1000 columns where it is `unbounded` (rich caps a
    print's width at its console's own); after it, whatever it raised, the console's width is as it was: a
    later command in the same process (typer's CliRunner, the beets plugin) lays out as before. On a terminal
    or at COLUMNS, as it is."""
    if not unbounded(console):
        yield
        return
    before = console._width  # None: rich's own (the terminal's, COLUMNS, 80); no public way to read it back
    console.width = 1000
    try:
        yield
    finally:
        console.width = before


def shown(text) -> str:
    """Outside text (a path, a decoder's message) for a rich markup line: one line, control characters
    escaped (see records.printable), markup characters escaped."""
    from rich.markup import escape

    from tagger.records import printable

    return escape(printable(text if isinstance(text, (str, bytes, PurePath)) else str(text)))


EIGHTHS = ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")


def bar(fraction: float, width: int) -> str:
    """A horizontal bar `fraction` (0 to 1) of `width` cells, in eighth-block characters; a fraction
    above 0 shows at least a sliver."""
    eighths = round(min(1.0, max(0.0, fraction)) * width * 8)
    text = "█" * (eighths // 8) + EIGHTHS[eighths % 8]
    return text or ("▏" if fraction > 0 else "")


def warn(message: str) -> None:
    """A warning line; `message` is markup (pass outside text through `shown`)."""
    _console("err").print(f"[yellow]warning:[/] {message}", markup=True, highlight=False)


def error_line(path, cause: str) -> None:
    """One clear line per failed file: the file, then the cause."""
    _console("err").print(f"[red]failed:[/] {shown(path)}: {shown(cause)}")
