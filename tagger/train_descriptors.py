"""Train a descriptor model (tagger.descriptors -> standardised logistic regression).

Data flow: items -> each track's descriptors from the model's inference clips (decoded once, cached as
JSON beside training's feature cache) -> group x label sample weights -> leave-one-group-out
out-of-fold probabilities (every group held out in turn; the held-out metrics stored in the spec)
-> the final regression on all tracks -> its tensors (tagger.regression) and its spec.

The decision threshold is not tuned on the data: a binary model decides at P = 0.5 of the
label-balanced regression. Nested leave-one-source-out validation (benchmarks/grouped_cv.py) found a
threshold tuned on validation folds worse than this rule, and a temperature calibration of the
probabilities worse than none (ACCURACY.md).

scikit-learn fits the regression (the `train` extra); inference needs only numpy.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from tagger.dataset import Item
from tagger.errors import AudioError, MoodtagError
from tagger.regression import DescriptorRegression, softmax
from tagger.weights import ModelSpec

DESCRIPTOR_CACHE_VERSION = 2  # 2: numpy STFT (was torch.stft)
MIN_CELL = 5


@dataclass
class DescriptorFit:
    """What `train_descriptor_model` returns: weights, completed spec, and the validation it ran."""

    state_dict: dict
    spec: ModelSpec
    oof: dict = field(default_factory=dict)          # path -> calibrated out-of-fold probabilities
    skipped: list = field(default_factory=list)      # (path, error)


# ---------------------------------------------------------------- descriptors per track, cached

def _cache_file(cache_dir: Path, path: Path, spec: ModelSpec) -> Path:
    st = path.stat()
    ident = {"v": DESCRIPTOR_CACHE_VERSION, "path": str(path.resolve()), "size": st.st_size,
             "mtime_ns": st.st_mtime_ns, "sr": spec.sample_rate, "plan": asdict(spec.clips)}
    key = hashlib.sha1(json.dumps(ident, sort_keys=True).encode()).hexdigest()
    return Path(cache_dir) / "descriptors" / key[:2] / f"{key}.json"


def track_values(path: Path, spec: ModelSpec, cache_dir: Path | None) -> dict[str, float]:
    """All descriptors of one track on the spec's inference clips (AudioError if it cannot be decoded)."""
    from tagger.audio import load_clips
    from tagger.descriptors import track_descriptors

    path = Path(path)
    file = None
    if cache_dir is not None:
        try:
            file = _cache_file(cache_dir, path, spec)
            return json.loads(file.read_text())
        except (OSError, ValueError):
            pass
    clips = load_clips(path, plan=spec.clips, sample_rate=spec.sample_rate)
    values, _ = track_descriptors(clips.samples, spec.sample_rate)
    if file is not None:
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            tmp = file.with_name(f"{file.stem}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(values))
            tmp.replace(file)
        except OSError:
            pass
    return values


# ---------------------------------------------------------------- the regression

def sample_weights(y: np.ndarray, sources: np.ndarray, n_labels: int) -> np.ndarray:
    """Each (source, label) cell weighs 1/max(n_cell, 5) per track (no source dominates by its size,
    a tiny cell is not blown up), then every label gets the same total weight; mean weight 1."""
    w = np.ones(len(y))
    for s in set(sources.tolist()):
        for c in range(n_labels):
            m = (sources == s) & (y == c)
            if m.any():
                w[m] = 1.0 / max(int(m.sum()), MIN_CELL)
    for c in range(n_labels):
        if (y == c).any():
            w[y == c] *= (1.0 / n_labels) / w[y == c].sum()
    return w * len(y)


def fit_logistic(X: np.ndarray, y: np.ndarray, sources: np.ndarray, *, n_labels: int, C: float,
                 seed: int = 0) -> DescriptorRegression:
    """The regression on standardised X, with `sample_weights` by source and label. A binary fit has
    its first row and bias at zero, so softmax of its logits gives sklearn's P(label 1)."""
    from sklearn.linear_model import LogisticRegression

    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale == 0] = 1.0
    lr = LogisticRegression(C=C, max_iter=5000, random_state=seed)
    lr.fit((X - mean) / scale, y, sample_weight=sample_weights(y, sources, n_labels))
    coef, intercept = lr.coef_, lr.intercept_
    if n_labels == 2:
        coef = np.vstack([np.zeros_like(coef[0]), coef[0]])
        intercept = np.array([0.0, intercept[0]])
    return DescriptorRegression(mean=mean, scale=scale, weight=coef, bias=intercept)


def out_of_fold(X, y, sources, groups, *, n_labels: int, C: float, seed: int = 0) -> np.ndarray:
    """Leave-one-group-out logits (n, n_labels): each group scored by a model trained without it."""
    z = np.zeros((len(y), n_labels))
    for g in sorted(set(groups.tolist())):
        test = groups == g
        train = ~test
        if len(set(y[train].tolist())) < n_labels:
            raise MoodtagError(f"holding out group {g!r} leaves a label without training tracks")
        z[test] = fit_logistic(X[train], y[train], sources[train], n_labels=n_labels, C=C, seed=seed).logits(X[test])
    return z


# ---------------------------------------------------------------- end to end

def train_descriptor_model(items: list[Item], *, spec: ModelSpec, C: float = 0.01, seed: int = 0,
                           cache_dir: Path | None = None,
                           on_progress: Callable[[int, int, Item], None] | None = None) -> DescriptorFit:
    """Fit `spec.features.descriptors` -> `spec.labels` on `items` (groups as sources and folds)."""
    from tagger.descriptors import check_names, vector
    from tagger.evaluate import TrackRow, report_from_rows

    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise MoodtagError("training a descriptor model needs scikit-learn: pip install 'moodtag[train]'") from None
    names = check_names(spec.features.descriptors)
    if not names:
        raise MoodtagError("a descriptor model needs at least one descriptor")
    labels = tuple(spec.labels)
    kept, rows, skipped = [], [], []
    for i, it in enumerate(items, 1):
        try:
            rows.append(vector(track_values(it.path, spec, cache_dir), names))
            kept.append(it)
        except AudioError as exc:
            skipped.append((str(it.path), str(exc)))
        if on_progress is not None:
            on_progress(i, len(items), it)
    if len({it.label for it in kept}) < len(labels):
        raise MoodtagError("after skipping undecodable tracks, a label has no training track left")
    X = np.array(rows)
    y = np.array([labels.index(it.label) for it in kept])
    groups = np.array([it.group for it in kept])
    n = len(labels)

    held_out, oof = None, {}
    threshold = 0.5 if n == 2 else None
    if len(set(groups.tolist())) >= 2:
        z = out_of_fold(X, y, groups, groups, n_labels=n, C=C, seed=seed)
        probs = softmax(z)
        rows_ = [TrackRow(path=it.path, group=it.group, label=it.label, predicted=None,
                          scores={lab: float(p) for lab, p in zip(labels, pr)}) for it, pr in zip(kept, probs)]
        report = report_from_rows(rows_, labels=labels, threshold=threshold)
        held_out = {"method": "leave-one-group-out over " + ", ".join(sorted(set(groups.tolist()))) +
                              ": each group's tracks scored by a regression fitted without it",
                    "pooled": report.summary()}
        oof = {str(it.path): pr.tolist() for it, pr in zip(kept, probs)}

    state = fit_logistic(X, y, groups, n_labels=n, C=C, seed=seed).tensors()
    from tagger.train import _now, describe_items

    metrics = {"held_out": held_out} if held_out else {}
    metrics["regression"] = {"C": C, "weights": "group x label: 1/max(n_cell, 5), labels equalised"}
    spec = spec.with_(architecture={"name": "descriptor_logistic", "n_features": len(names)},
                      normalization={"mean": 0.0, "std": 1.0},
                      threshold=threshold,
                      metrics=metrics, trained_on=describe_items(kept), created=_now())
    return DescriptorFit(state_dict=state, spec=spec, oof=oof, skipped=skipped)
