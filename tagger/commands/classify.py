"""`moodtag classify FILE...`: classify files and print the result; no tags, no cache."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from tagger.commands.options import JsonOption, ModelOption, path_value


def classify(
    files: Annotated[list[Path], typer.Argument(metavar="FILE", parser=path_value, help="Audio files to classify.")],
    model: ModelOption = None,
    clips: Annotated[bool, typer.Option(
        "--clips", help="Show each clip as a line of a timeline (start mm:ss, scores, the mood of that clip "
                        "alone, a bar), then the track's decision: why the track got its mood.")] = False,
    json_lines: JsonOption = False,
) -> None:
    """Classify audio files calm or exciting. Writes no tags and no cache.

    On a terminal, a table; in a pipe or a file, tab-separated values (a header line, then path, mood,
    confidence and each label's score per file; in a name, control characters escaped and a backslash
    doubled, as query writes them). --json gives one
    object per file, its clips included (start, seconds, mood, scores). Exit status 1 if any file failed
    (each failure has its own line)."""
    from rich.markup import escape
    from rich.table import Table

    from tagger.analyze import analyze_track
    from tagger.commands.timeline import render_timeline
    from tagger.console import error_line, out, unpadded
    from tagger.progress import ScanProgress
    from tagger.commands.query import _stdout_is_terminal
    from tagger.records import TrackResult, key_spelling, printable, printable_cells
    from tagger.weights import load_model

    loaded = load_model(model)
    failed = 0
    first = True
    table = Table("file", "mood", "confidence", *loaded.spec.labels, box=None)
    terminal = _stdout_is_terminal()
    piped = not (json_lines or clips) and not terminal
    if piped:  # tab-separated, a line per file, as query writes into a pipe (a table would fold long names)
        typer.echo("\t".join(["path", "mood", "confidence", *loaded.spec.labels]))
    # a bar on standard error (a terminal's only) while the files are analysed, erased before the table; not
    # where the results are lines on that same terminal as they come (--json, --clips), which it would break up
    progress = ScanProgress(enabled=len(files) > 1 and (not terminal or not (json_lines or clips)), transient=True)
    try:
        with progress:
            progress.start(len(files), len(files), description="classifying")
            for path in files:
                refused = _not_a_file(path)
                if refused:
                    result = TrackResult.failed(path, refused, model_name=loaded.spec.name,
                                                model_version=loaded.spec.version)
                else:
                    result = analyze_track(path, loaded)
                if json_lines:
                    out.print(json.dumps(result.to_json(), ensure_ascii=False), markup=False, highlight=False)
                elif result.ok and clips:
                    if not first:
                        out.print()
                    with unpadded(out):  # in a pipe, no spaces after a bar or a wrapped line's last word
                        render_timeline(result, loaded.spec, out)
                    first = False
                elif result.ok and piped:
                    typer.echo(printable_cells([key_spelling(os.fsencode(path)), result.mood, f"{result.confidence:.4f}",
                                                *(f"{result.scores[label]:.4f}" for label in loaded.spec.labels)]))
                elif result.ok:
                    table.add_row(escape(printable(path)), escape(result.mood), f"{result.confidence:.3f}",
                                  *(f"{result.scores[label]:.3f}" for label in loaded.spec.labels))
                if not result.ok:
                    failed += 1
                    error_line(path, result.error)
                progress.advance(True)
    finally:  # a Ctrl-C late in a long list: the rows so far still show (then `interrupted`), not lost
        if not json_lines and table.row_count:
            out.print(table)
    if failed:
        raise typer.Exit(1)


def _not_a_file(path: Path) -> str | None:
    """Why `path` is not analysed: a folder, a name that cannot be looked at (inside a folder that may
    not be entered, a name too long), in a scan's words (`permission denied`, `file name too long`), or
    a file not music by its name (a playlist: tagger.discover.not_music, as scan says); None otherwise (a
    missing file or a broken link: the analysis says which)."""
    from tagger.discover import not_music
    from tagger.errors import os_text

    try:
        folder = path.is_dir()  # swallows ENOENT, ENOTDIR, ELOOP only: EACCES and ENAMETOOLONG raise
    except OSError as exc:
        return os_text(exc)
    return "is a folder (use `moodtag scan` for folders)" if folder else not_music(path)
