"""The `moodtag` command: Typer wiring only. Each command lives in tagger/commands/<name>.py."""
from __future__ import annotations

import sys

import typer

from tagger.errors import MoodtagError

app = typer.Typer(
    name="moodtag",
    help="Tag your music calm or exciting, cache the results, and make mood playlists.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _register() -> None:
    from tagger.commands import classify, evaluate, model_info, playlist, query, scan, train, untag

    for name, function in (
        ("scan", scan.scan), ("prune", scan.prune), ("untag", untag.untag), ("classify", classify.classify),
        ("playlist", playlist.playlist), ("playlists", playlist.playlists), ("query", query.query),
        ("stats", query.stats), ("train", train.train), ("evaluate", evaluate.evaluate),
        ("model-info", model_info.model_info),
    ):
        app.command(name)(function)


_register()


def main() -> None:
    """Console-script entry point: a MoodtagError becomes one line on stderr and exit status 1; Ctrl-C
    outside a command that handles it, exit status 130."""
    import signal

    try:
        app()
    except MoodtagError as exc:
        from tagger.console import err, shown

        err.print(f"[red]error:[/] {shown(str(exc))}")
        sys.exit(1)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the exit short
        from tagger.console import err

        err.print("[yellow]interrupted[/]")
        sys.exit(130)


if __name__ == "__main__":
    main()
