"""Train a descriptor model (tagger.descriptors -> standardised logistic regression).

Data flow: items -> each track's descriptors from the model's inference clips (decoded once, cached as
JSON beside training's feature cache) -> group x label sample weights -> leave-one-group-out
out-of-fold logits (every group held out in turn) -> the held-out metrics stored in the spec, the
threshold of best balanced accuracy on them, a temperature fitted on them once shifted by that
threshold -> the final regression on all tracks, shifted and scaled the same way -> its tensors
(tagger.regression) and its spec.

A binary model's decision threshold is chosen on the held-out predictions (best balanced accuracy),
unless fixed, and folded into the bias (the model then decides at 0.5, and the chosen label's
confidence is at least 0.5); the stored held-out figures are at 0.5, unflattered by that choice. The
shipped default fixes 0.5: nested leave-one-source-out validation (benchmarks/grouped_cv.py, "BA
tuned") found a tuned threshold no better for it and worse on the games (ACCURACY.md).

scikit-learn fits the regression (the `train` extra); inference needs only numpy and scipy.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from tagger.dataset import Item
from tagger.errors import AudioError, MoodtagError
from tagger.metrics import best_threshold
from tagger.regression import DescriptorRegression, fit_quantiles, quantile_normal, softmax
from tagger.weights import ModelSpec

DESCRIPTOR_CACHE_VERSION = 4  # 2: numpy STFT (was torch.stft); 3: flux_mid; 4: onset range floor (top_db models)
MIN_CELL = 5
TRANSFORMS = ("quantile", "standard")
N_QUANTILES = 200
# Below this many tracks, quantiles and a temperature are estimated too coarsely: "auto" standardises,
# and the temperature stays 1.
MIN_TRACKS_FOR_FITTED_SCALING = 100
TEMPERATURE_BOUNDS = (0.1, 10.0)


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
             "mtime_ns": st.st_mtime_ns, "sr": spec.sample_rate, "plan": asdict(spec.clips),
             "top_db": spec.features.top_db}
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
            cached = json.loads(file.read_text())
            if _holds_descriptors(cached, spec.features.descriptors):
                return cached
        except (OSError, ValueError):
            pass  # no entry, or a damaged one: computed again (and replaced)
    clips = load_clips(path, plan=spec.clips, sample_rate=spec.sample_rate)
    values, _ = track_descriptors(clips.samples, spec.sample_rate, top_db=spec.features.top_db)
    if file is not None:
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            tmp = file.with_name(f"{file.stem}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(values))
            tmp.replace(file)
        except OSError:
            pass
    return values


def _holds_descriptors(cached, names) -> bool:
    """Whether a cache entry's JSON is what track_values stored: an object giving each of `names` a
    number (an entry damaged into `null`, a list or a partial object is computed again, not a traceback)."""
    return isinstance(cached, dict) and all(
        isinstance(cached.get(n), (int, float)) and not isinstance(cached.get(n), bool) for n in names)


# ---------------------------------------------------------------- the regression

def sample_weights(y: np.ndarray, sources: np.ndarray, n_labels: int) -> np.ndarray:
    """Each (source, label) cell weighs 1/max(n_cell, 5) per track (no source dominates by its size,
    a tiny cell is not blown up); sources named "FAMILY/SOURCE" then have every (family, label) cell
    brought to the same total (games, folk and classical count alike, however many sources each
    has); last, every label gets the same total weight. Mean weight 1."""
    w = np.ones(len(y))
    for s in set(sources.tolist()):
        for c in range(n_labels):
            m = (sources == s) & (y == c)
            if m.any():
                w[m] = 1.0 / max(int(m.sum()), MIN_CELL)
    families = np.array([family_of(str(s)) for s in sources])
    for f in set(families.tolist()):
        for c in range(n_labels):
            m = (families == f) & (y == c)
            if m.any():
                w[m] *= 1.0 / w[m].sum()
    for c in range(n_labels):
        if (y == c).any():
            w[y == c] *= (1.0 / n_labels) / w[y == c].sum()
    return w * len(y)


def family_of(source: str) -> str:
    """"games/0ad" -> "games"; a source without a family is in the one unnamed family."""
    return source.split("/", 1)[0] if "/" in source else ""


def fit_logistic(X: np.ndarray, y: np.ndarray, sources: np.ndarray | None, *, n_labels: int, C: float,
                 seed: int = 0, transform: str = "standard", weights: np.ndarray | None = None,
                 fit_rows: np.ndarray | None = None) -> DescriptorRegression:
    """The regression on standardised X, with `sample_weights` by source and label (or the given
    `weights`, one per row); with `transform` "quantile", X first goes through the quantile-normal
    transform (tagger.regression.quantile_normal). The transform and the standardisation are fitted on
    the rows `fit_rows` selects (a boolean mask; default all: training on altered copies of tracks
    fits them on the originals only). A binary fit has its first row and bias at zero, so softmax of
    its logits gives sklearn's P(label 1)."""
    from sklearn.linear_model import LogisticRegression

    if transform not in TRANSFORMS:
        raise MoodtagError(f"unknown descriptor transform {transform!r} (known: {', '.join(TRANSFORMS)})")
    X = np.asarray(X, dtype=np.float64)
    if weights is not None and len(weights) != len(X):
        raise ValueError(f"{len(weights)} weights for {len(X)} rows")
    rows = slice(None) if fit_rows is None else np.asarray(fit_rows, dtype=bool)
    quantiles = fit_quantiles(X[rows], N_QUANTILES) if transform == "quantile" else None
    Z = quantile_normal(X, quantiles) if quantiles is not None else X
    Zb = Z[rows]  # the transform works row by row
    mean = Zb.mean(axis=0)
    scale = Zb.std(axis=0)
    scale[scale == 0] = 1.0
    lr = LogisticRegression(C=C, max_iter=5000, random_state=seed)
    if weights is None:
        weights = sample_weights(y, sources, n_labels)
    lr.fit((Z - mean) / scale, y, sample_weight=np.asarray(weights, dtype=np.float64))
    coef, intercept = lr.coef_, lr.intercept_
    if n_labels == 2:
        coef = np.vstack([np.zeros_like(coef[0]), coef[0]])
        intercept = np.array([0.0, intercept[0]])
    return DescriptorRegression(mean=mean, scale=scale, weight=coef, bias=intercept, quantiles=quantiles)


def decision_offset(threshold: float | None, n_labels: int) -> np.ndarray:
    """What to subtract from the logits so that a binary model deciding at P(label 1) >= threshold
    decides at 0.5 instead: logit(threshold) on label 1's logit (zeros otherwise)."""
    offset = np.zeros(n_labels)
    if n_labels == 2 and threshold is not None:
        t = min(max(float(threshold), 1e-3), 1 - 1e-3)
        offset[1] = np.log(t / (1 - t))
    return offset


def fit_temperature(z: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Temperature scaling: the factor a > 0 for which softmax(a z) minimises the (weighted) log loss of
    logits z (n, n_labels) on labels y. It never changes which label wins, only how sure it reads."""
    from scipy.optimize import minimize_scalar

    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)

    def loss(log_a: float) -> float:
        zz = z * np.exp(log_a)
        zz = zz - zz.max(axis=1, keepdims=True)
        logp = zz[np.arange(len(y)), y] - np.log(np.exp(zz).sum(axis=1))
        return float(-(w * logp).sum() / w.sum())

    best = minimize_scalar(loss, bounds=(np.log(TEMPERATURE_BOUNDS[0]), np.log(TEMPERATURE_BOUNDS[1])),
                           method="bounded")
    return float(np.exp(best.x))


def out_of_fold(X, y, sources, groups, *, n_labels: int, C: float, seed: int = 0,
                transform: str = "standard", labels: tuple[str, ...] | None = None) -> np.ndarray:
    """Leave-one-group-out logits (n, n_labels): each group scored by a model trained without it
    (`labels`: the names of y's values, for the message when a group holds all of one label's tracks)."""
    z = np.zeros((len(y), n_labels))
    for g in sorted(set(groups.tolist())):
        test = groups == g
        train = ~test
        missing = sorted(set(range(n_labels)) - set(y[train].tolist()))
        if missing:
            name = labels[missing[0]] if labels else f"#{missing[0]}"
            raise MoodtagError(f"label {name!r}: all its tracks ({int((y == missing[0]).sum())}) are in group {g!r}, so "
                               f"no held-out figure can be made without them; add tracks of {name!r} from other "
                               "groups (or check the label's spelling)")
        z[test] = fit_logistic(X[train], y[train], sources[train], n_labels=n_labels, C=C, seed=seed,
                               transform=transform).logits(X[test])
    return z


# ---------------------------------------------------------------- end to end

def train_descriptor_model(items: list[Item], *, spec: ModelSpec, C: float = 0.01, seed: int = 0,
                           threshold: float | str = "auto", transform: str = "auto",
                           cache_dir: Path | None = None,
                           on_progress: Callable[[int, int, Item], None] | None = None) -> DescriptorFit:
    """Fit `spec.features.descriptors` -> `spec.labels` on `items` (groups as sources and folds).
    `threshold` "auto": a binary model's threshold on P(labels[1]) is the one of best balanced accuracy
    on the leave-one-group-out predictions (0.5 with fewer than 2 groups); a number fixes it.
    `transform` "auto": the quantile-normal transform from 100 tracks up, else plain standardisation."""
    from tagger.descriptors import check_names, vector
    from tagger.evaluate import TrackRow, report_from_rows

    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise MoodtagError("training a descriptor model needs scikit-learn: pip install 'scikit-learn>=1.3' (moodtag's train extra)") from None
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
    empty = [label for label in labels if not any(it.label == label for it in kept)]
    if empty:
        lost = [f"{path} ({error})" for path, error in skipped if any(
            str(it.path) == path and it.label == empty[0] for it in items)]
        raise MoodtagError(f"label {empty[0]!r} has no track that could be read: "
                           + "; ".join(lost[:3]) + (f"; and {len(lost) - 3} more" if len(lost) > 3 else ""))
    X = np.array(rows)
    y = np.array([labels.index(it.label) for it in kept])
    groups = np.array([it.group for it in kept])
    n = len(labels)

    if transform == "auto":
        transform = "quantile" if len(kept) >= MIN_TRACKS_FOR_FITTED_SCALING else "standard"
    held_out, oof, temperature = None, {}, 1.0
    chosen = (0.5 if threshold == "auto" else float(threshold)) if n == 2 else None
    chosen_how = "fixed by the trainer" if threshold != "auto" else "0.5: fewer than 2 groups to validate on"
    if len(set(groups.tolist())) >= 2:
        z = out_of_fold(X, y, groups, groups, n_labels=n, C=C, seed=seed, transform=transform, labels=labels)
        probs = softmax(z)
        rows_ = [TrackRow(path=it.path, group=it.group, label=it.label, predicted=None,
                          scores={lab: float(p) for lab, p in zip(labels, pr)}) for it, pr in zip(kept, probs)]
        # the held-out figures at 0.5: a threshold chosen on these same predictions would flatter them
        report = report_from_rows(rows_, labels=labels, threshold=0.5 if n == 2 else None)
        held_out = {"method": "leave-one-group-out over " + ", ".join(sorted(set(groups.tolist()))) +
                              ": each group's tracks scored by a regression fitted without it; "
                              "balanced accuracy at 0.5",
                    "pooled": report.summary()}
        if n == 2 and threshold == "auto":
            chosen = best_threshold(y, probs[:, 1])
            chosen_how = "best balanced accuracy on the leave-one-group-out predictions"
        z = z - decision_offset(chosen, n)
        # The regularised regression's probabilities crowd near 0.5; one factor on the logits, fitted
        # on these held-out logits, makes a confidence mean closer to how often it is right (validated
        # by inner folds in benchmarks/grouped_cv.py). It never changes a decision. Too few held-out
        # tracks (a perfectly separated handful sends it to its bound) and it stays 1.
        if len(y) >= MIN_TRACKS_FOR_FITTED_SCALING:
            temperature = fit_temperature(z, y)
        oof = {str(it.path): pr.tolist() for it, pr in zip(kept, softmax(temperature * z))}

    fitted = fit_logistic(X, y, groups, n_labels=n, C=C, seed=seed, transform=transform)
    bias = fitted.bias - decision_offset(chosen, n)
    state = replace(fitted, weight=fitted.weight * temperature, bias=bias * temperature).tensors()
    from tagger.train import _now, describe_items

    metrics = {"held_out": held_out} if held_out else {}
    if chosen is not None:
        metrics["threshold"] = {"chosen": chosen, "method": chosen_how,
                                "applied": "folded into the bias: the model decides at P = 0.5, so the chosen "
                                           "label's confidence is never below 0.5"}
    metrics["regression"] = {"C": C, "temperature": round(temperature, 4),
                             "weights": "group x label: 1/max(n_cell, 5); family x label equalised "
                                        "(groups named FAMILY/SOURCE); labels equalised"}
    architecture = {"name": "descriptor_logistic", "n_features": len(names)}
    if fitted.quantiles is not None:
        architecture.update(transform="quantile_normal", n_quantiles=int(fitted.quantiles.shape[0]))
    spec = spec.with_(architecture=architecture,
                      normalization={"mean": 0.0, "std": 1.0},
                      threshold=0.5 if n == 2 else None,
                      metrics=metrics, trained_on=describe_items(kept), created=_now())
    return DescriptorFit(state_dict=state, spec=spec, oof=oof, skipped=skipped)
