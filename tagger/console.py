"""The CLI's rich consoles: results to stdout, progress and messages to stderr."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import PurePath

from rich.console import Console

# emoji=False: rich would otherwise turn `:smile:` in a file name into an emoji, in JSON lines too; moodtag
# writes no emoji codes of its own.
out = Console(highlight=False, soft_wrap=True, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


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
    err.print(f"[yellow]warning:[/] {message}", markup=True, highlight=False)


def error_line(path, cause: str) -> None:
    """One clear line per failed file: the file, then the cause."""
    err.print(f"[red]failed:[/] {shown(path)}: {shown(cause)}")
