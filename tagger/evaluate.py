"""Score a model on labelled tracks: accuracy, balanced accuracy, ROC-AUC, confusion, per group, per track.

`evaluate_model` runs the real inference path (`analyze_track`: the spec's clips, features, threshold);
`report_from_rows` computes the same report from already scored tracks (training's validation uses it).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from tagger import metrics
from tagger.dataset import Item
from tagger.errors import MoodtagError
from tagger.records import key_spelling
from tagger.weights import LoadedModel


@dataclass(frozen=True)
class TrackRow:
    """One evaluated track: its label, the model's scores and decision, or the error that stopped it."""

    path: Path
    group: str
    label: str
    predicted: str | None
    scores: dict[str, float]
    error: str | None = None

    def to_json(self) -> dict:
        """The path as `classify --json` spells it (records.key_spelling: a byte that is not UTF-8 as \\xNN, each
        backslash doubled), the group spelt the same way (group_text)."""
        return {"path": key_spelling(os.fsencode(self.path)), "group": group_text(self.group), "label": self.label,
                "predicted": self.predicted,
                "scores": {k: round(v, 4) for k, v in self.scores.items()}, "error": self.error}


@dataclass(frozen=True)
class GroupScore:
    """Metrics of one group; balanced accuracy and ROC-AUC are None where the group has one label only."""

    group: str
    tracks: int
    counts: dict[str, int]
    accuracy: float | None
    balanced_accuracy: float | None
    roc_auc: float | None

    def to_json(self) -> dict:
        return {"group": group_text(self.group), "tracks": self.tracks, "counts": self.counts,
                "accuracy": _r(self.accuracy), "balanced_accuracy": _r(self.balanced_accuracy),
                "roc_auc": _r(self.roc_auc)}


@dataclass(frozen=True)
class EvalReport:
    """Metrics over the tracks that could be scored (`failed` counts those that could not); balanced accuracy
    and ROC-AUC are None where those tracks have one label only."""

    labels: tuple[str, ...]
    threshold: float | None
    tracks: int
    failed: int
    accuracy: float | None
    balanced_accuracy: float | None
    roc_auc: float | None
    confusion: tuple[tuple[int, ...], ...]
    groups: tuple[GroupScore, ...]
    rows: tuple[TrackRow, ...]

    def summary(self) -> dict:
        """The headline figures (what a model's spec stores)."""
        return {"tracks": self.tracks, "accuracy": _r(self.accuracy),
                "balanced_accuracy": _r(self.balanced_accuracy), "roc_auc": _r(self.roc_auc),
                "threshold": self.threshold,
                "confusion": {"labels": list(self.labels), "rows_true_cols_predicted": [list(r) for r in self.confusion]},
                "groups": {group_text(g.group): {k: v for k, v in g.to_json().items() if k != "group"}
                           for g in self.groups}}

    def to_json(self, *, rows: bool = True) -> dict:
        data = {"labels": list(self.labels), "threshold": self.threshold, "tracks": self.tracks,
                "failed": self.failed, "accuracy": _r(self.accuracy),
                "balanced_accuracy": _r(self.balanced_accuracy), "roc_auc": _r(self.roc_auc),
                "confusion": [list(r) for r in self.confusion],
                "groups": [g.to_json() for g in self.groups]}
        if rows:
            data["rows"] = [r.to_json() for r in self.rows]
        return data


def group_text(group: str) -> str:
    """A group as text, spelt as classify --json spells a path (records.key_spelling): each byte of a folder or
    file name that is not UTF-8 (os.fsdecode's surrogate, a lone `\\udce9` in JSON) as \\xNN and each backslash
    doubled, a CSV's group too; so two groups never share a spelling (a folder named with the byte 0xe9 and one
    named `a\\xe9` were one key of the summary's groups: a model's spec lost one group's figures). Text whatever
    the locale: its UTF-8, not os.fsencode's."""
    return key_spelling(group.encode("utf-8", "surrogateescape"))


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


def report_from_rows(rows: list[TrackRow], *, labels: tuple[str, ...], threshold: float | None) -> EvalReport:
    """Metrics from scored rows: rows with an error are counted as failed and left out.
    Predictions are re-derived from the scores with `threshold` (as `analyze.decide` does)."""
    index = {label: i for i, label in enumerate(labels)}
    ok = [r for r in rows if r.error is None]
    n = len(labels)
    y = np.array([index[r.label] for r in ok], dtype=int)
    scores = np.array([[r.scores[label] for label in labels] for r in ok], dtype=np.float64).reshape(-1, n)
    pred = metrics.predict(scores, threshold) if len(ok) else np.zeros(0, dtype=int)
    rows = [r if r.error is not None else
            TrackRow(r.path, r.group, r.label, labels[int(p)], r.scores) for r, p in zip(ok, pred)] + \
        [r for r in rows if r.error is not None]
    groups = []
    for g in sorted({r.group for r in ok}):
        mask = np.array([r.group == g for r in ok])
        yg, sg, pg = y[mask], scores[mask], pred[mask]
        both = len(set(yg.tolist())) > 1
        groups.append(GroupScore(
            group=g, tracks=int(mask.sum()),
            counts={label: int((yg == i).sum()) for i, label in enumerate(labels) if (yg == i).any()},
            accuracy=metrics.accuracy(yg, pg),
            balanced_accuracy=metrics.balanced_accuracy(yg, pg, n) if both else None,
            roc_auc=metrics.roc_auc(yg, sg) if both else None))
    return EvalReport(
        labels=tuple(labels), threshold=threshold, tracks=len(ok), failed=len(rows) - len(ok),
        accuracy=metrics.accuracy(y, pred),
        # over one label, balanced accuracy is that label's recall: "-", as for a group with one label
        balanced_accuracy=metrics.balanced_accuracy(y, pred, n) if len(set(y.tolist())) > 1 else None,
        roc_auc=metrics.roc_auc(y, scores) if len(ok) else None,
        confusion=tuple(tuple(int(v) for v in row) for row in metrics.confusion_matrix(y, pred, n)),
        groups=tuple(groups), rows=tuple(sorted(rows, key=lambda r: (r.group, str(r.path)))))


def evaluate_model(items: list[Item], model: LoadedModel, *,
                   on_progress: Callable[[int, int, Item], None] | None = None) -> EvalReport:
    """Classify every item with `model` exactly as `moodtag classify` does, and score the results.
    An item whose label the model does not know is a MoodtagError; an undecodable file is a failed row."""
    from tagger.analyze import analyze_track

    labels = model.spec.labels
    for item in items:
        if item.label not in labels:
            raise MoodtagError(f"{item.path}: label {item.label!r} is not one of the model's labels "
                               f"({', '.join(labels)})")
    rows = []
    for i, item in enumerate(items):
        result = analyze_track(item.path, model)
        rows.append(TrackRow(path=item.path, group=item.group, label=item.label, predicted=result.mood,
                             scores=dict(result.scores), error=result.error))
        if on_progress is not None:
            on_progress(i + 1, len(items), item)
    return report_from_rows(rows, labels=labels, threshold=model.spec.threshold)
