"""`moodtag train DATA... --out MODEL`: train a model on labelled tracks, with progress."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from tagger.commands.model_info import threshold_text
from tagger.commands.options import path_value
from tagger.records import counted

DataArgument = Annotated[list[Path], typer.Argument(
    metavar="DATA", parser=path_value,
    help="A folder with one sub-folder per label (DATA/calm/..., DATA/exciting/...), or a CSV with a header "
         "'path,label[,group]' (paths relative to the CSV). Several may be given.")]


def group_by_value(value: str) -> str:
    """A --group-by: one of tagger.dataset.GROUP_BY, else a usage error (exit status 2) before any data or
    model is read."""
    from tagger.dataset import GROUP_BY

    if value not in GROUP_BY:
        raise typer.BadParameter(f"{value}: unknown (choose from {', '.join(GROUP_BY)})")
    return value


GroupByOption = Annotated[str, typer.Option(
    "--group-by", metavar="RULE", parser=group_by_value,
    help="How folder data is grouped for validation: auto (name part before '__', else the sub-folder "
         "below the label folder, else DATA's name), prefix, folder, or track.")]
def warn_not_audio(path: Path, why: str) -> None:
    """One warning line for a file in DATA that is left out (not an audio file's name, a broken link, a
    symlink loop); `why` may quote the name (its extension): both through `shown`."""
    from tagger.console import shown, warn

    warn(f"{shown(path)}: {shown(why)}")


# The names --descriptors accepts: tagger.descriptors.NAMES, spelled out here because importing that module
# (numpy) would add ~0.2 s to the start of every command for one line of help; a test checks they agree.
DESCRIPTOR_NAMES = ("onset_rate, rms_db, perc_fast, centroid, flux_mid, flux_low, flux_high, flux_all, dyn_range, "
                    "crest, rms_var, tcent, onset_rate25, acf_max")
LabelsOption = Annotated[Optional[str], typer.Option(
    "--labels", metavar="A,B[,C]",
    help="The labels, in order (a binary model's threshold is on the second). Default: the label "
         "folders / CSV labels found, sorted.")]


def train(
    ctx: typer.Context,
    data: DataArgument,
    out: Annotated[Path, typer.Option(
        "--output", "--out", "-o", metavar="MODEL", parser=path_value,
        help="The model file to write (.safetensors).")],
    val_groups: Annotated[Optional[str], typer.Option(
        "--val-groups", metavar="G1,G2", help="Hold these groups out for validation (threshold and metrics).")] = None,
    val_fraction: Annotated[float, typer.Option(
        "--val-fraction", metavar="F", help="Or hold out random whole groups holding this share of the tracks.")] = 0.0,
    cross_validate: Annotated[bool, typer.Option(
        "--cross-validate", help="First train once per group with that group held out and store the pooled "
                                 "held-out metrics in the model; then train the model on all the data.")] = False,
    cv_groups: Annotated[Optional[str], typer.Option(
        "--cv-groups", metavar="G1,G2", help="With --cross-validate: the groups to hold out in turn "
                                             "(default: every group); the others always train.")] = None,
    epochs: Annotated[int, typer.Option("--epochs", metavar="N", help="Passes over the training set.")] = 12,
    clips_per_track: Annotated[int, typer.Option(
        "--clips-per-track", metavar="N", help="Random clips drawn per training track and epoch (on average).")] = 16,
    batch_size: Annotated[int, typer.Option("--batch-size", metavar="N", help="Clips per optimisation step.")] = 32,
    lr: Annotated[float, typer.Option("--lr", metavar="LR", help="Peak learning rate (AdamW, one-cycle schedule).")] = 1e-3,
    feature: Annotated[str, typer.Option(
        "--feature", metavar="KIND", help="Model input: mel, stft or mfcc (the seed CNN), or descriptors (a logistic regression "
                          "on rhythm and dynamics descriptors of the track). An option only the other kind uses is an error.")] = "mel",
    descriptors: Annotated[str, typer.Option(
        "--descriptors", metavar="D1,D2", show_default=False,
        help=f"With --feature descriptors: which ones (of {DESCRIPTOR_NAMES}). Default: the shipped default's "
             "six, onset_rate, perc_fast, tcent, onset_rate25, acf_max, flux_mid.")] =
        "onset_rate,perc_fast,tcent,onset_rate25,acf_max,flux_mid",
    top_db: Annotated[float, typer.Option(
        "--top-db", metavar="DB", help="With --feature descriptors: floor the dB the onset and flux descriptors "
                                       "read this far below each clip's loudest bin, so gain changes none of them "
                                       "(0: an absolute -100 dB floor, as moodtag-rhythm 1.x).")] = 80.0,
    regularization: Annotated[float, typer.Option(
        "--c", metavar="C", help="With --feature descriptors: the inverse L2 strength of the regression "
                                 "(scikit-learn's C; smaller: stronger regularisation).")] = 1.0,
    regularization_old: Annotated[Optional[float], typer.Option("--C", hidden=True)] = None,  # its 0.4 spelling
    transform: Annotated[str, typer.Option(
        "--transform", metavar="NAME", help="With --feature descriptors: standard, quantile (map each descriptor through the "
                            "training data's distribution onto a normal first; robust to outliers), or auto "
                            "(quantile from 100 tracks up).")] = "standard",
    center: Annotated[str, typer.Option(
        "--center", metavar="MODE", help="band: remove each band's mean over the clip (keep how the spectrum moves, drop "
                         "its static colour and level; chosen by leave-one-game-out validation), or none.")] = "band",
    placement: Annotated[Optional[str], typer.Option(
        "--placement", metavar="NAME", help="Where inference takes its clips: contiguous (around the midpoint) or spread (over the "
                            "middle 60 %). Default: contiguous for a CNN, spread for descriptors (as validated).")] = None,
    labels: LabelsOption = None,
    group_by: GroupByOption = "auto",
    balance: Annotated[float, typer.Option(
        "--balance", metavar="P", help="Source balancing: each (group, label) cell is drawn in proportion to "
                                       "count**P before labels and groups are equalised (0: cells alike, 1: per track).")] = 0.5,
    span: Annotated[float, typer.Option(
        "--span", metavar="F", help="Training clips are drawn from the middle F of each track.")] = 0.6,
    augment: Annotated[bool, typer.Option(
        "--augment/--no-augment", help="Mixing, EQ tilt, gain and noise augmentation.")] = True,
    mixup: Annotated[float, typer.Option(
        "--mixup", metavar="P", help="Share of clips mixed with a clip of any label (soft targets).")] = 0.0,
    threshold: Annotated[Optional[float], typer.Option(
        "--threshold", metavar="T", help="Fix a binary model's threshold on P(second label). "
                                         "Default: chosen on validation, 0.5 without.")] = None,
    seed: Annotated[int, typer.Option("--seed", metavar="N", help="Random seed: the same seed gives the same weights.")] = 0,
    cache_dir: Annotated[Optional[Path], typer.Option(
        "--cache-dir", metavar="DIR", envvar="MOODTAG_FEATURE_CACHE", file_okay=False,
        help="Feature cache (decoded clips' spectrograms). Default: ~/.cache/moodtag/features.")] = None,
    threads: Annotated[int, typer.Option("--threads", metavar="N", help="Torch CPU threads (0: torch's default).")] = 0,
    name: Annotated[Optional[str], typer.Option(
        "--name", metavar="NAME", help="The model's name, stored in the file; with --version it is what a scan's cache "
                                       "tells models apart by. Default: MODEL's file name without .safetensors.")] = None,
    version: Annotated[Optional[str], typer.Option(
        "--version", metavar="VERSION", show_default=False,
        help="The model's version, stored in the file. Default: 1.0.0, or, when MODEL already holds a model of "
             "the same name, the next version past its one (1.0.0: 1.0.1), so that a scan analyses again what "
             "the old model analysed.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object instead of the summary table.")] = False,
) -> None:
    """Train a model on labelled tracks and write it to MODEL (safetensors, spec inside, no pickle).

    Groups (a game, a collection) stay whole on one side of any validation split."""
    from tagger.dataset import labels_of, load_many, parse_labels
    from tagger.errors import MoodtagError
    from tagger.feature_cache import default_cache_dir
    from tagger.train import Augment, cross_validate as run_cv, prepare_spec, train_model
    from tagger.weights import ClipPlan, FeatureSpec, ModelSpec, check_writable, save_model

    if regularization_old is not None:
        regularization = regularization_old
    placement = placement or ("spread" if feature == "descriptors" else "contiguous")
    _refuse_other_kinds_options(ctx, feature)
    try:  # option values that need no data: usage errors (exit status 2), before anything is read
        names = _check_usage(feature=feature, center=center, placement=placement, out=out, val_groups=val_groups,
                             val_fraction=val_fraction, threshold=threshold, mixup=mixup, cv_groups=cv_groups,
                             cross_validate=cross_validate, descriptors=descriptors, C=regularization, top_db=top_db,
                             transform=transform, epochs=epochs, clips_per_track=clips_per_track,
                             batch_size=batch_size, lr=lr, span=span, balance=balance, labels=labels, name=name,
                             version=version)
    except MoodtagError as exc:
        raise typer.BadParameter(str(exc)) from None
    if out.is_dir():
        raise MoodtagError(f"--out {out}: is a folder")
    check_writable(out)  # now, not after the training
    _warn_shipped_file(out)
    name = _model_name(name, out)

    items = load_many(data, labels=parse_labels(labels), group_by=group_by, on_skip=warn_not_audio)
    labels_of(items, parse_labels(labels))  # two labels at least, before any track is decoded
    version = _version(out, name, version)
    if feature == "descriptors":
        _train_descriptors(items, out=out, names=names, C=regularization, seed=seed,
                           top_db=top_db or None, placement=placement, labels=parse_labels(labels), name=name,
                           version=version, threshold="auto" if threshold is None else threshold, transform=transform,
                           cache_dir=cache_dir, json_out=json_out)
        return
    spec = prepare_spec(ModelSpec(name=name, version=version, labels=("calm", "exciting"),
                                  clips=ClipPlan(placement=placement), features=FeatureSpec(kind=feature, center=center)),
                        items, parse_labels(labels))
    aug = Augment(mixup_prob=mixup) if augment else Augment.none()
    options = dict(epochs=epochs, clips_per_track=clips_per_track, seed=seed, batch_size=batch_size, lr=lr,
                   augment=aug, balance=balance, span=span, cache_dir=cache_dir or default_cache_dir(),
                   threads=threads or None)
    display = TrainDisplay(quiet=json_out)
    started = time.perf_counter()
    cv = None
    with display:
        if cross_validate:
            cv = run_cv(items, spec=spec, cv_groups=_split(cv_groups), on_progress=display.update, **options)
            display.note(_cv_line(cv))
        result = train_model(items, spec=spec, val_groups=_split(val_groups), val_fraction=val_fraction,
                             threshold="auto" if threshold is None else threshold,
                             on_progress=display.update, **options)
    final_spec = result.spec
    if cv is not None:
        final_spec = final_spec.with_(metrics={"held_out": cv.summary(), **final_spec.metrics})
    save_model(out, final_spec, result.state_dict)
    seconds = round(time.perf_counter() - started, 1)
    if json_out:
        from tagger.console import out as stdout

        stdout.print(json.dumps({"model": str(out), "seconds": seconds, "spec": final_spec.to_json(),
                                 "history": result.history, "train_groups": list(result.train_groups),
                                 "val_groups": list(result.val_groups),
                                 "skipped": [{"path": p, "error": e} for p, e in result.skipped]},
                                ensure_ascii=False), markup=False, highlight=False)
        return
    _render_summary(out, final_spec, result, cv, seconds, tuned=threshold is None)


# Options one kind of model alone uses (parameter names): given with the other kind, they would be ignored.
DESCRIPTOR_ONLY = ("descriptors", "top_db", "regularization", "regularization_old", "transform")
NETWORK_ONLY = ("val_groups", "val_fraction", "cross_validate", "cv_groups", "epochs", "clips_per_track", "batch_size",
                "lr", "center", "balance", "span", "augment", "mixup", "threads")


def _refuse_other_kinds_options(ctx: typer.Context, feature: str) -> None:
    """MoodtagError (an `error:` line, exit status 1) naming the options given on the command line that the
    model kind `feature` does not use: they were ignored in silence (bad values too) and a training of the
    other kind started. Before anything is read; an unknown --feature is left to _check_usage."""
    from tagger.errors import MoodtagError
    from tagger.features import FEATURE_KINDS

    if feature == "descriptors":
        kinds = f"{', '.join(FEATURE_KINDS[:-1])} or {FEATURE_KINDS[-1]}"
        unused, needs = NETWORK_ONLY, f"a network (--feature {kinds}), not --feature descriptors"
    elif feature in FEATURE_KINDS:
        unused, needs = DESCRIPTOR_ONLY, "--feature descriptors"
    else:
        return
    given = [p for p in ctx.command.params if p.name in unused
             and getattr(ctx.get_parameter_source(p.name), "name", None) in ("COMMANDLINE", "ENVIRONMENT")]
    if given:
        names = ", ".join("/".join(p.opts + p.secondary_opts) for p in given)
        raise MoodtagError(f"{names}: {'needs' if len(given) == 1 else 'need'} {needs}")


def _check_usage(*, feature: str, center: str, placement: str, out: Path, val_groups, val_fraction: float,
                 threshold, mixup: float, cv_groups, cross_validate: bool, descriptors, C: float, top_db,
                 transform: str, epochs: int, clips_per_track: int, batch_size: int, lr: float, span: float,
                 balance: float, labels: str | None, name: str | None, version: str) -> tuple[str, ...]:
    """MoodtagError for an option value that is wrong whatever the data; the descriptor names (checked)."""
    from tagger.dataset import parse_labels
    from tagger.errors import MoodtagError
    from tagger.features import CENTERINGS, FEATURE_KINDS

    if feature not in FEATURE_KINDS + ("descriptors",):
        raise MoodtagError(f"--feature {feature}: unknown (choose from {', '.join(FEATURE_KINDS)}, descriptors)")
    if center not in CENTERINGS:
        raise MoodtagError(f"--center {center}: unknown (choose from {', '.join(CENTERINGS)})")
    if placement not in ("contiguous", "spread"):
        raise MoodtagError(f"--placement {placement}: unknown (choose contiguous or spread)")
    if out.suffix != ".safetensors":
        raise MoodtagError(f"--out {out}: a model file must end in .safetensors")
    if val_groups and val_fraction:
        raise MoodtagError("--val-groups and --val-fraction: give one or the other")
    if threshold is not None and not 0 < threshold < 1:
        raise MoodtagError(f"--threshold {threshold}: must be between 0 and 1")
    if not 0 <= mixup <= 1:
        raise MoodtagError(f"--mixup {mixup}: must be in [0, 1]")
    if cv_groups and not cross_validate:
        raise MoodtagError("--cv-groups needs --cross-validate")
    parse_labels(labels)  # two distinct labels at least
    for option, value in (("--name", name), ("--version", version)):  # what a cache and the tag tell models by
        if value is not None and not value.strip():
            raise MoodtagError(f"{option} {value!r}: empty (an unset variable?)")
    if feature != "descriptors":
        from tagger.train import check_options

        check_options(epochs=epochs, clips_per_track=clips_per_track, batch_size=batch_size, lr=lr, span=span,
                      val_fraction=val_fraction, balance=balance)
        return ()
    from tagger.descriptors import check_names
    from tagger.train_descriptors import TRANSFORMS

    try:
        names = check_names(_split(descriptors) or [])
    except ValueError as exc:
        raise MoodtagError(f"--descriptors: {exc}") from None
    if not names:
        raise MoodtagError(f"--descriptors {descriptors!r}: names no descriptor")
    if not C > 0:
        raise MoodtagError(f"--c {C}: must be positive")
    if top_db and not 10 <= top_db <= 200:
        raise MoodtagError(f"--top-db {top_db:g}: must be 0 (absolute floor) or from 10 to 200")
    if transform not in ("auto",) + TRANSFORMS:
        raise MoodtagError(f"--transform {transform}: expected auto, quantile or standard")
    return names


def _train_descriptors(items, *, out: Path, names: list[str], C: float, seed: int, top_db: float | None,
                       placement: str, labels, name: str, version: str, threshold, transform: str, cache_dir,
                       json_out: bool) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tagger.console import err, out as stdout, shown
    from tagger.feature_cache import default_cache_dir
    from tagger.train import prepare_spec
    from tagger.train_descriptors import train_descriptor_model
    from tagger.weights import ClipPlan, FeatureSpec, ModelSpec, save_model

    spec = prepare_spec(ModelSpec(name=name, version=version, labels=("calm", "exciting"),
                                  clips=ClipPlan(placement=placement),
                                  features=FeatureSpec(kind="descriptors", descriptors=names, top_db=top_db)),
                        items, labels)
    started = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True, disable=json_out or not err.is_terminal) as progress:
        task = progress.add_task("decoding", total=len(items))
        fit = train_descriptor_model(items, spec=spec, C=C, seed=seed, threshold=threshold, transform=transform,
                                     cache_dir=cache_dir or default_cache_dir(),
                                     on_progress=lambda i, n, it: progress.update(task, completed=i))
    for path, error in fit.skipped:
        err.print(f"[yellow]skipped:[/] {shown(path)}: {shown(error)}", highlight=False)
    save_model(out, fit.spec, fit.state_dict)
    seconds = round(time.perf_counter() - started, 1)
    if json_out:
        stdout.print(json.dumps({"model": str(out), "seconds": seconds, "spec": fit.spec.to_json(),
                                 "skipped": [{"path": p, "error": e} for p, e in fit.skipped]},
                                ensure_ascii=False), markup=False, highlight=False)
        return
    from rich.table import Table

    table = Table(show_header=False, box=None)
    table.add_row("model", f"{shown(fit.spec.name)} {shown(fit.spec.version)} -> {shown(out)}")
    table.add_row("input", "descriptors " + ", ".join(names))
    table.add_row("trained on", shown(fit.spec.trained_on))
    held = fit.spec.metrics.get("held_out")
    if held:
        from tagger.commands.model_info import held_out_rows

        for label, text in held_out_rows("held out (leave-one-group-out)", {"pooled": held["pooled"]}):
            table.add_row(shown(label), shown(text))
    spec = fit.spec
    table.add_row("threshold", shown(threshold_text(spec)))
    if fit.skipped:
        table.add_row("skipped", f"{counted(len(fit.skipped), 'track')} (see the messages above)")
    table.add_row("time", f"{seconds:.0f} s")
    stdout.print(table)


def _model_name(name: str | None, out: Path) -> str:
    """--name, else the output file's stem; a shipped model's name only with a warning (a cache tells models
    apart by name and version: the maintainers' retraining of a shipped model is the one use)."""
    from tagger.weights import shipped_models

    chosen = name or out.stem
    if chosen in {p.stem for p in shipped_models()}:
        from rich.markup import escape

        from tagger.console import warn

        given = f"--name {chosen}" if name else f"the name {chosen} (from the --out file's name)"
        warn(f"{escape(given)} is a shipped model's: a scan's cache tells models apart by name and version only "
             "(pass another --name unless this model replaces the shipped one)")
    return chosen


def _version(out: Path, name: str, given: str | None) -> str:
    """The new model's version: --version if given; else, when MODEL already holds a model named `name`, the
    next version past the old one's, said in one line; else 1.0.0. A scan's cache tells models apart by name
    and version only: the new model under the old one's version would leave every track the old one analysed
    with its results ("unchanged (cached)"), so a --version equal to the old one's gets a warning saying so."""
    from tagger.console import err, shown, warn
    from tagger.errors import ModelError
    from tagger.weights import read_spec

    try:
        old = read_spec(out) if out.is_file() else None
    except ModelError:  # not a model moodtag can read: no results of it to tell apart
        old = None
    if old is None or old.name != name:
        return given or "1.0.0"
    if given is None:
        version = _next_version(old.version)
        err.print(f"{shown(out)} holds {shown(name)} {shown(old.version)}: the new model is {shown(name)} "
                  f"{shown(version)}, so a scan analyses again what the old one analysed (--version sets another)",
                  highlight=False)
        return version
    if given == old.version:
        warn(f"--version {shown(given)}: {shown(out)} holds {shown(name)} {shown(given)} too, and a scan's cache tells "
             "models apart by name and version only: tracks the old model analysed keep its results, not redone "
             "(pass another --version)")
    return given


def _next_version(version: str) -> str:
    """'1.0.0' -> '1.0.1', '2.3-rc9' -> '2.3-rc10', '007' -> '008': the last number in it raised by one
    ('beta' -> 'beta.1')."""
    import re

    last = None
    for last in re.finditer(r"\d+", version):
        pass
    if last is None:
        return f"{version}.1"
    number = str(int(last.group()) + 1).zfill(len(last.group()))
    return version[:last.start()] + number + version[last.end():]


def _warn_shipped_file(out: Path) -> None:
    """A warning when MODEL is (through any link) a file of the shipped models' folder: the new model
    replaces that shipped model for every scan using it, the default for a plain scan (the maintainers'
    retraining of a shipped model is the one use), or becomes a shipped model itself."""
    import os

    from tagger.weights import DEFAULT_MODEL, shipped_models_dir

    target = Path(os.path.realpath(out))
    if target.parent != Path(os.path.realpath(shipped_models_dir())):
        return
    from tagger.console import shown, warn

    stem = target.stem
    if target.is_file():
        default = " (the default model)" if stem == DEFAULT_MODEL else ""
        warn(f"--out {shown(out)} is the shipped model {shown(stem)}'s file: the new model replaces it, and every "
             f"scan using {shown(stem)}{default} will use the new one "
             "(pass another --out unless this model replaces the shipped one)")
    else:
        warn(f"--out {shown(out)} is in the shipped models' folder: the new model becomes a shipped model, "
             f"{shown(stem)} (pass another --out unless it is meant to ship)")


def _split(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def _cv_line(cv) -> str:
    p = cv.pooled
    return (f"held out, pooled over {counted(p.tracks, 'track')}: balanced accuracy {_fmt(p.balanced_accuracy)}, "
            f"ROC-AUC {_fmt(p.roc_auc)}, accuracy {_fmt(p.accuracy)}")


class TrainDisplay:
    """Rich progress on stderr: decoding, steps of the epoch, one line per epoch."""

    def __init__(self, *, quiet: bool = False) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
            TimeRemainingColumn

        from tagger.console import err

        self.quiet = quiet
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=True,
                                 disable=quiet or not err.is_terminal)  # no bar in a pipe or a log
        self.task = None
        self.kind = None

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def note(self, text: str) -> None:
        if not self.quiet:
            self.progress.console.print(text, markup=False, highlight=False)

    def update(self, ev) -> None:
        prefix = f"fold {ev.fold}/{ev.folds} " if ev.folds else ""
        if ev.stage == "skipped":
            from tagger.console import shown

            self.progress.console.print(f"[yellow]skipped:[/] {shown(ev.message)}")
            return
        if ev.stage == "features":
            desc = f"{prefix}decoding"
        elif ev.stage == "step":
            desc = f"{prefix}epoch {ev.epoch}/{ev.epochs} loss {ev.loss:.3f}"
        elif ev.stage == "epoch":
            m = ev.metrics or {}
            line = f"{prefix}epoch {ev.epoch}/{ev.epochs}  loss {m.get('loss', 0):.4f}"
            if "val_balanced_accuracy" in m:
                line += (f"  val balanced accuracy {_fmt(m['val_balanced_accuracy'])}"
                         f"  ROC-AUC {_fmt(m['val_roc_auc'])}")
            self.note(line + f"  ({m.get('seconds', 0):.0f} s)")
            return
        else:
            return
        kind = (ev.stage, ev.fold, ev.epoch)
        if kind != self.kind:
            if self.task is not None:
                self.progress.remove_task(self.task)
            self.task = self.progress.add_task(desc, total=ev.total)
            self.kind = kind
        self.progress.update(self.task, completed=ev.done, total=ev.total, description=desc)


def _render_summary(out_path: Path, spec, result, cv, seconds: float, *, tuned: bool) -> None:
    """The trained model as a table; names from the data (labels, groups) go through `shown`, so a control
    character in a file or folder name is escaped, never sent to the terminal. `tuned`: the threshold was
    chosen on the validation tracks (the figures at it are then optimistic, and shown as such)."""
    from rich.table import Table

    from tagger.console import out, shown

    table = Table(show_header=False, box=None)
    table.add_row("model", f"{shown(spec.name)} {shown(spec.version)} -> {shown(out_path)}")
    table.add_row("labels", shown(", ".join(spec.labels)))
    table.add_row("trained on", shown(spec.trained_on))
    if result.val_groups:
        table.add_row("validation groups", shown(", ".join(result.val_groups)))
        v = result.validation
        at = "" if v.threshold is None else f"; at {v.threshold:g}, as the epoch lines"
        table.add_row("validation", f"balanced accuracy {_fmt(v.balanced_accuracy)}, ROC-AUC {_fmt(v.roc_auc)}, "
                                    f"accuracy {_fmt(v.accuracy)} ({counted(v.tracks, 'track')}{at})")
        if v.threshold is not None and spec.threshold != v.threshold:
            from tagger.evaluate import report_from_rows

            t = report_from_rows(list(v.rows), labels=v.labels, threshold=spec.threshold)
            how = "chosen on these same tracks: optimistic" if tuned else "fixed by --threshold"
            table.add_row(f"  at {spec.threshold:g}", f"balanced accuracy {_fmt(t.balanced_accuracy)}, "
                                                      f"accuracy {_fmt(t.accuracy)} (the model's threshold, {how})")
    if cv is not None:
        table.add_row("held out (cross-validation)", _cv_line(cv))
        for groups, report in cv.folds:
            table.add_row(f"  {shown(', '.join(groups))}",
                          f"accuracy {_fmt(report.accuracy)}, balanced accuracy {_fmt(report.balanced_accuracy)}, "
                          f"ROC-AUC {_fmt(report.roc_auc)} ({counted(report.tracks, 'track')})")
    table.add_row("threshold", shown(threshold_text(spec)))
    table.add_row("normalization", json.dumps(spec.normalization))
    if result.skipped:
        table.add_row("skipped", f"{counted(len(result.skipped), 'track')} (see the messages above)")
    table.add_row("time", f"{seconds:.0f} s")
    out.print(table)
