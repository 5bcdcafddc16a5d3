"""`moodtag model-info [MODEL]`: a model file's spec, sha256 and metrics."""
from __future__ import annotations

import json
import math
import os
from typing import Annotated, Optional

import typer


def model_info(
    model: Annotated[Optional[str], typer.Argument(
        metavar="MODEL", help="Model file or shipped model name. Default: the shipped default.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object instead of the table.")] = False,
) -> None:
    """Show a model's spec (labels, clip plan, features, threshold), its sha256 and its metrics."""
    from rich.table import Table

    from tagger.console import out, shown, unbounded, unpadded, wide
    from tagger.records import key_spelling
    from tagger.weights import load_model, resolve_model, shipped_models

    path = resolve_model(model)
    # loaded as classify and scan load it (cheap): a damaged file (a tensor of the wrong shape, missing or
    # holding NaN, data offsets that do not fit) is the same one error here, not shown as if it were fine
    loaded = load_model(path)
    spec = loaded.spec
    info = {"path": key_spelling(os.fsencode(path)), "sha256": loaded.sha256, "spec": spec.to_json(),
            "shipped": [p.stem for p in shipped_models()]}
    if json_out:  # a crafted file's NaN or Infinity (json reads them) as null: bare NaN is no JSON
        out.print(json.dumps(_finite(info), ensure_ascii=False, allow_nan=False), markup=False)
        return
    # In a pipe with no COLUMNS (`model-info | grep sha256`), as wide as the values, labels too: a sha256, a
    # path or a label (`plain leave-one-game-out (optimistic)`) folded at rich's 80 columns could not be
    # copied or searched in one piece.
    table = Table(show_header=False, box=None)
    # on a terminal or at COLUMNS, long labels wrap: the values keep the room
    table.add_column(max_width=None if unbounded(out) else max(24, out.width // 3))
    table.add_column(overflow="fold")  # a sha256 or a path longer than the room folds onto more lines, never cut

    def add(*cells) -> None:  # text, never markup (a path or a spec's text may hold [brackets]), and control
        table.add_row(*(shown(cell) for cell in cells))  # characters escaped: a name cannot drive the terminal

    add("model", f"{spec.name} {spec.version}")
    add("file", path)  # a Path: a byte of its name that is not UTF-8 as \xNN (its str held a surrogate, \udcff)
    add("sha256", info["sha256"])
    add("labels", ", ".join(spec.labels))
    add("threshold", threshold_text(spec))
    add("sample rate", f"{spec.sample_rate} Hz")
    c = spec.clips
    add("clips", f"{c.count} x {c.seconds:g} s, {c.placement}"
                  + (f" over the middle {c.span:.0%}" if c.placement == "spread" else " around the midpoint"))
    f = spec.features
    if f.kind == "descriptors":
        floor = (f"dB floored {f.top_db:g} dB below each clip's loudest bin" if f.top_db is not None
                 else "dB floored at -100 dB")
        add("features", "track descriptors " + ", ".join(f.descriptors)
                      + f" (mel: n_fft {f.n_fft}, hop {f.hop_length}, {f.n_mels} mels; {floor})")
    else:
        add("features", f"{f.kind}, n_fft {f.n_fft}, hop {f.hop_length}, "
                      + (f"{f.n_mels} mels, " if f.kind in ("mel", "mfcc") else "")
                      + (f"{f.n_mfcc} MFCC, " if f.kind == "mfcc" else "")
                      + f"resized to {f.size[0]}x{f.size[1]}, {f.channels} channels"
                      + (", each band's mean over time removed" if getattr(f, "center", "none") == "band" else ""))
        add("normalization", json.dumps(spec.normalization))
    add("architecture", json.dumps(spec.architecture))
    add("trained on", spec.trained_on or "-")
    add("created", spec.created or "-")
    for row in metric_rows(spec.metrics):
        add(*row)
    add("shipped models", ", ".join(info["shipped"]) or "-")
    # in a pipe: as wide as its values for this table only (a later command in the process lays out as before),
    with wide(out), unpadded(out):  # each line as long as its text, not padded to the longest value
        out.print(table)


def metric_rows(metrics: dict) -> list[tuple[str, str]]:
    """The spec's metrics as table rows: the nested figures first (the plain ones chose and scored on the
    same folds), then each held-out validation and the lockbox, then any other figure as it is. A metric
    whose figures are not as moodtag writes them is one row of its JSON, the others laid out still."""
    metrics = dict(metrics)
    nested = metrics.pop(NESTED, None) if _is_nested(metrics.get(NESTED)) else None
    rows = _laid_out(NESTED, nested, nested_rows) if nested else []
    for key, value in metrics.items():
        if key == LOCKBOX and _is_nested(value):
            rows += _laid_out(key, value, lambda v: nested_rows(v, title="lockbox (games set aside, scored once)"))
        elif isinstance(value, dict) and isinstance(value.get("pooled"), dict):
            title = "plain leave-one-game-out (optimistic)" if nested and key == "held_out" else f"metric {key}"
            rows += _laid_out(key, value, lambda v: held_out_rows(title, v))
        else:
            rows.append(_as_it_is(key, value))
    return rows


def _laid_out(key: str, value, lay_out) -> list[tuple[str, str]]:
    """A metric's rows as `lay_out` makes them, or, where its figures are not as moodtag writes them (a
    nested `user` that is a list), its one row of JSON: one odd metric no longer turns them all into JSON."""
    try:
        return lay_out(value)
    except (TypeError, ValueError, AttributeError, KeyError, IndexError):
        return [_as_it_is(key, value)]


def _as_it_is(key: str, value) -> tuple[str, str]:
    return f"metric {key}", json.dumps(_rounded(value)) if not isinstance(value, float) else f"{value:.3f}"


def _finite(value):
    """A JSON value with each NaN or infinite float as None (null). As deep as the spec's JSON may be
    (tagger.weights.MAX_JSON_DEPTH)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _rounded(value):
    """A JSON value with its floats rounded to 4 decimals, for reading (--json keeps them whole)."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def threshold_text(spec) -> str:
    """"0.47 on P(exciting) (how it was chosen)", or "argmax"."""
    if spec.threshold is None:
        return "argmax"
    text = f"{spec.threshold:g} on P({spec.labels[-1]})"
    chosen = (spec.metrics or {}).get("threshold")
    if not (isinstance(chosen, dict) and isinstance(chosen.get("chosen"), (int, float))
            and isinstance(chosen.get("method"), str)):
        return text
    if chosen and "chosen" in chosen:
        if abs(chosen["chosen"] - spec.threshold) < 1e-9:
            text += f" ({chosen['method']})"
        else:
            text += f" (a threshold of {chosen['chosen']:.3g}, {chosen['method']}, folded into the bias)"
    return text


def held_out_rows(title: str, held_out: dict) -> list[tuple[str, str]]:
    """A spec's held-out validation ({"method", "pooled": summary with "groups"}) as table rows: the
    pooled headline under `title`, then one row per group."""
    from tagger.records import counted

    pooled = held_out["pooled"]

    def line(m: dict) -> str:
        return (f"balanced accuracy {_f(m.get('balanced_accuracy'))}, ROC-AUC {_f(m.get('roc_auc'))}, "
                f"accuracy {_f(m.get('accuracy'))} ({counted(m.get('tracks'), 'track')}")

    rows = [(title, line(pooled) + (f"; {held_out['method']})" if held_out.get("method") else ")"))]
    rows += [(f"  {group}", line(g) + ")") for group, g in (pooled.get("groups") or {}).items()]
    return rows


NESTED = "nested_leave_one_game_out"
LOCKBOX = "lockbox"


def _is_nested(value) -> bool:
    return isinstance(value, dict) and all(isinstance(value.get(k), (int, float)) for k in ("ba", "auc", "tracks"))


def nested_rows(nested: dict, title: str = "nested leave-one-game-out") -> list[tuple[str, str]]:
    """The nested leave-one-game-out figures ({"ba", "auc", "tracks", "games", "intervals", "method", "user"},
    written by benchmarks/real_cv.py; the lockbox's have the same keys) as table rows: the headline under
    `title`, then how often each label is missed. Three games or fewer are named."""
    from tagger.records import counted

    intervals = nested.get("intervals") or {}

    def figure(key: str) -> str:
        low, high = (intervals.get(key) or (None, None))[:2]
        return _f(nested[key]) + (f" (interval {_f(low)}-{_f(high)})" if low is not None and high is not None else "")

    games = nested.get("games") or []
    if not isinstance(games, list):
        raise TypeError("games is not a list")
    named = f": {', '.join(map(str, games))}" if 0 < len(games) <= 3 else ""
    about = "; ".join(part for part in (counted(nested["tracks"], "track")
                                        + (f", {counted(len(games), 'game')}{named}" if games else ""),
                                        nested.get("method")) if part)
    rows = [(title, f"balanced accuracy {figure('ba')}, ROC-AUC {figure('auc')} ({about})")]
    user = nested.get("user") or {}
    if user:
        rows.append(("  mistakes", ", ".join(f"{key.replace('_', ' ')} {value:.0%}" for key, value in user.items()
                                             if isinstance(value, (int, float)))))
    return rows


def _f(x) -> str:
    return "-" if x is None else f"{x:.3f}"
