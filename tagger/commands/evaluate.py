"""`moodtag evaluate DATA... [--model M]`: a model's metrics on labelled tracks."""
from __future__ import annotations

import json
import os
from typing import Annotated

import typer

from tagger.commands.options import ModelOption
from tagger.commands.train import DataArgument, GroupByOption, warn_not_audio


def evaluate(
    data: DataArgument,
    model: ModelOption = None,
    group_by: GroupByOption = "auto",
    tracks: Annotated[bool, typer.Option("--tracks", help="Also list every track with its scores.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object (with every track) instead of tables.")] = False,
) -> None:
    """Score a model on labelled tracks: accuracy, balanced accuracy, ROC-AUC, confusion, per group.

    Tracks are classified exactly as `moodtag classify` does (the model's clips and threshold)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from tagger.console import err, error_line, out
    from tagger.dataset import load_many
    from tagger.evaluate import evaluate_model
    from tagger.records import key_spelling
    from tagger.weights import load_model

    loaded = load_model(model)
    items = load_many(data, labels=loaded.spec.labels, group_by=group_by, on_skip=warn_not_audio,
                      taggable=False)  # the model's labels, whatever they are (one that writes no tags too)
    # no bar in a pipe or a log: there even a transient one would leave a blank line
    with Progress(TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err, transient=True, disable=json_out or not err.is_terminal) as progress:
        task = progress.add_task("evaluating", total=len(items))
        report = evaluate_model(items, loaded, on_progress=lambda done, total, item: progress.update(task, completed=done))
    for row in report.rows:  # on stderr with --json too, as classify --json: the cause, not a silent exit 1
        if row.error:
            error_line(row.path, row.error)
    if json_out:
        data_out = {"model": {"name": loaded.spec.name, "version": loaded.spec.version,
                              "path": key_spelling(os.fsencode(loaded.path)), "sha256": loaded.sha256},
                    **report.to_json(rows=True)}  # each path spelt as classify --json spells it
        out.print(json.dumps(data_out, ensure_ascii=False), markup=False, highlight=False)
    else:
        render_report(report, title=f"{loaded.spec.name} {loaded.spec.version}", tracks=tracks)
    if report.failed:  # the figures leave those tracks out: exit status 1, as classify's for a failed file
        raise typer.Exit(1)


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def render_report(report, *, title: str, tracks: bool = False) -> None:
    """The report as rich tables: headline figures, confusion matrix, per group (and per track). Names from
    outside (the model's, its labels, groups and file names) go through `shown`: a control character in a
    file name is escaped, never sent to the terminal, and bytes of a name that are not UTF-8 are \\xNN (a group
    spelt as --json spells it, `_group`). A figure is never cut and a name never cut either: on a narrow
    terminal (or at COLUMNS) a name folds onto more lines; in a pipe without COLUMNS the tables are as wide as
    their names, each name on one line (two long names cut to one `Some_Long_Artist_Name_-_…` could not be told
    apart)."""
    from tagger.console import out, wide

    with wide(out):  # for these tables only: a later command in the same process lays out as before
        _print_tables(report, title=title, tracks=tracks)


def _print_tables(report, *, title: str, tracks: bool) -> None:
    from rich.table import Table

    from tagger.console import out, shown

    labels = [shown(label) for label in report.labels]
    head = Table(show_header=False, box=None, title=shown(title), title_justify="left")
    head.add_column()
    head.add_column(overflow="fold")  # `0.5 on P(exciting)` on a narrow terminal: folded, never cut
    head.add_row("tracks", f"{report.tracks}" + (f" ({report.failed} failed)" if report.failed else ""))
    head.add_row("accuracy", _fmt(report.accuracy))
    head.add_row("balanced accuracy", _fmt(report.balanced_accuracy))
    head.add_row("ROC-AUC", _fmt(report.roc_auc))
    head.add_row("threshold", "argmax" if report.threshold is None
                 else f"{report.threshold:g} on P({labels[-1]})")
    out.print(head)

    confusion = _table("true \\ predicted", *labels, title="confusion", rows=[
        [label, *(str(v) for v in row)] for label, row in zip(labels, report.confusion)], figures=len(labels))
    out.print(confusion)

    groups = _table("group", "tracks", *labels, "accuracy", "balanced acc.", "ROC-AUC",
                    title="per group (balanced accuracy and ROC-AUC where the group has both labels)", rows=[
                        [_group(g.group), str(g.tracks), *(str(g.counts.get(label, 0)) for label in report.labels),
                         _fmt(g.accuracy), _fmt(g.balanced_accuracy), _fmt(g.roc_auc)] for g in report.groups],
                    figures=len(labels) + 4)
    out.print(groups)

    if tracks:
        def predicted(r) -> str:
            mark = "" if r.error or r.predicted == r.label else " [red]x[/]"
            return (shown(r.predicted) if r.predicted else "[red]failed[/]") + mark

        out.print(_table("track", "group", "label", "predicted", *labels, title="tracks", rows=[
            [_name(r.path.name), _group(r.group), shown(r.label), predicted(r),
             *(f"{r.scores[label]:.3f}" if label in r.scores else "-" for label in report.labels)]
            for r in report.rows], figures=len(labels)))


def _name(text: str) -> str:
    """A file's name as `shown` shows a path: a byte that is not UTF-8 as \\xNN (os.fsdecode's surrogate, as
    text, was written as `\\udce9`, one cell measured for six)."""
    from tagger.console import shown
    from tagger.records import display_path

    return shown(display_path(text))


def _group(group: str) -> str:
    """A group as --json spells it (tagger.evaluate.group_text: each backslash doubled, a byte that is not UTF-8
    as \\xNN): a folder named with the byte 0xe9 and one named `a\\xe9` are two rows that read as two."""
    from tagger.console import shown
    from tagger.evaluate import group_text

    return shown(group_text(group))


def _table(*headers: str, title: str, rows: list[list[str]], figures: int):
    """A rich Table of `rows` (markup) under `headers`: its last `figures` columns hold figures (plain text),
    each column at least as wide as its widest figure (never cut to `0.…`; its header may fold); any other
    column a name, folded onto more lines where the room is short, never cut to `…`."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    first_figure = len(headers) - figures
    for i, header in enumerate(headers):
        widest = max((len(row[i]) for row in rows), default=1) if i >= first_figure else None
        table.add_column(header, overflow="fold", min_width=widest)
    for row in rows:
        table.add_row(*row)
    return table
