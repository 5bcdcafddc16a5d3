"""The `moodtag` command: Typer wiring only. Each command lives in tagger/commands/<name>.py."""
from __future__ import annotations

import errno
import os
import sys
from typing import Annotated

import typer

from tagger.commands.help import MoodtagGroup
from tagger.errors import MoodtagError

app = typer.Typer(
    name="moodtag",
    cls=MoodtagGroup,
    help="Tag your music calm or exciting, cache the results, and make mood playlists.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,  # click's plain help: wrapped, never cut, the same in a pipe
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    """--version: the version this package was built as (tagger.__version__); imports nothing heavy."""
    if value:
        from tagger import __version__

        typer.echo(f"moodtag {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option(
        "--version", callback=_show_version, is_eager=True, help="Show moodtag's version and exit.")] = False,
) -> None:
    # the group's own options; each command does its work. --quiet is each command's own: a command run
    # in-process after another (typer's CliRunner, a script driving `app`) starts without it
    from tagger.console import set_quiet

    set_quiet(False)


def _register() -> None:
    from tagger.commands import classify, evaluate, model_info, playlist, query, scan, train, untag
    from tagger.commands.help import HelpCommand

    for name, function, summary in (
        ("scan", scan.scan, "Tag tracks calm or exciting; cache the results."),
        ("prune", scan.prune, "Forget cached tracks whose files have vanished."),
        ("untag", untag.untag, "Remove the fields moodtag wrote."),
        ("classify", classify.classify, "Classify files; write nothing."),
        ("playlist", playlist.playlist, "A playlist of one mood, from the cache."),
        ("playlists", playlist.playlists, "One playlist per mood, into a folder."),
        ("query", query.query, "List cached tracks, or run read-only SQL."),
        ("stats", query.stats, "Summarise the cache."),
        ("train", train.train, "Train a model on labelled tracks."),
        ("evaluate", evaluate.evaluate, "Score a model on labelled tracks."),
        ("model-info", model_info.model_info, "Show a model's spec and metrics."),
    ):
        app.command(name, cls=HelpCommand, short_help=summary)(function)


_register()


def main() -> None:
    """Console-script entry point: a MoodtagError becomes one line on stderr and exit status 1; Ctrl-C
    outside a command that handles it (train, evaluate, classify, ...), the line "interrupted" and exit
    status 130. A Ctrl-C that lands in a Python function SQLite
    calls (a playlist's order, case folding) reaches us as SQLite's "user-defined function raised
    exception", a MoodtagError: after a Ctrl-C, that is the interruption, not an error of the cache."""
    import signal

    interrupted = []

    def on_ctrl_c(signum, frame):
        interrupted.append(signum)
        raise KeyboardInterrupt

    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not when Ctrl-C is ignored
        signal.signal(signal.SIGINT, on_ctrl_c)
    _tolerant_output()
    try:
        try:
            app(prog_name="moodtag")
        except MoodtagError:
            if interrupted:
                raise KeyboardInterrupt from None
            raise
        except SystemExit:
            if interrupted:  # typer ends a Ctrl-C in a command as exit status 130, silently (older ones: 1)
                raise KeyboardInterrupt from None
            raise
    except MoodtagError as exc:
        from tagger.console import err, shown

        err.print(f"[red]error:[/] {shown(str(exc))}")
        sys.exit(1)
    except OSError as exc:
        if exc.filename is not None or exc.errno not in _OUTPUT_FULL:
            raise
        _stop_writing_output()  # what is still buffered cannot go out either: no second error at exit
        from tagger.console import err

        err.print(f"[red]error:[/] cannot write to standard output ({exc.strerror})")
        sys.exit(1)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the exit short
        from tagger.console import err

        err.print("[yellow]interrupted[/]")
        sys.exit(130)


# A write to standard output (a file on a full disk, `> /dev/full`, a quota) that fails for good: one line,
# exit status 1. (A closed pipe, EPIPE, is click's: exit status 1 without a word.)
_OUTPUT_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO}


def _tolerant_output() -> None:
    """Standard output and error that never fail on a character their encoding lacks (`Café` or the
    stats' `–` under PYTHONIOENCODING=ascii or a Latin-1 locale were a UnicodeEncodeError traceback, the
    scan's output cut off): such a character is written as a backslash escape (`Caf\\xe9`). An ASCII
    stream becomes UTF-8, as click makes it for what it echoes, so that every command writes a name the
    same way."""
    import codecs

    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is None:  # not a TextIOWrapper (a test harness's stream)
            continue
        try:
            ascii_only = codecs.lookup(stream.encoding or "ascii").name == "ascii"
            reconfigure(encoding="utf-8" if ascii_only else None, errors="backslashreplace")
        except (LookupError, ValueError, OSError):
            pass


def _stop_writing_output() -> None:
    """Standard output pointed at /dev/null, so that Python's flush at exit has nowhere to fail."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    main()
