#!/usr/bin/env python3
"""How well calm/exciting transfers to music from an unseen source: leave-one-source-out CV.

    python benchmarks/grouped_cv.py --games /work/data/corpus/dev --games-csv /work/shared/corpus/dev.csv \\
        [--games CORPUS_MORE/dev --games-csv benchmarks/data/more-games/dev.csv] \\
        --scores /work/shared/corpus/scores [--cache DIR] [--seed 0] [--only baseline,lean6,lean6-flux-q] \\
        [--placement spread] [--jobs 1] [--cnn mel,stft,mfcc] [--json OUT]

Tracks: the game corpus (GAMES/<label>/<package>__<name>.<ext>; labels from --games-csv when given,
else from the label folders) and the rendered scores (SCORES/scores.csv: file, label, source).
Every track has a source and a family:
  games      one fold per game package (0ad-data -> 0ad, ufoai-music -> ufoai, naev-data -> naev;
             with benchmarks/data/more-games also starfighter, hedgewars, lugaru, openclonk)
  folk       one fold each for O'Neill's, Ryan's and music21's miscFolk
  classical  ONE fold for all composers together (Beethoven, Corelli, Handel, Haydn, Mozart,
             R. Schumann, Weber: 1-11 pieces each, some with one label only), as the research did
So a fold holds out one source, whole tracks only: no track has clips on both sides.

Features: each track's default-plan clips (5 contiguous 5 s clips around the middle, 22,050 Hz mono,
tagger.audio.load_clips) are decoded once; the hand features (benchmarks/accuracy_features.py) go to
--cache (default ~/.cache/moodtag/grouped_cv), one JSON per track keyed by the file's resolved path,
size and mtime and the feature version. A track that cannot be decoded is reported and left out.

Models, all on the same folds (StandardScaler -> LogisticRegression, lbfgs):
  baseline    tempo, onset rate, RMS dB, spectral centroid; C=1, labels balanced, sources not
  lean6       onset rate, RMS dB, perc_fast, tcent, onset_rate25, acf_max; C=0.01, family weights
              (moodtag-rhythm 1.0.0's descriptors)
  lean6-flux  lean6 + flux_mid
  lean6-flux-q  the same through the quantile-normal transform (each descriptor mapped through the
              training folds' distribution onto a normal, then standardised): the default since
              moodtag-rhythm 1.1.0, what --save-model writes
  lean5       lean6 without RMS dB;  lean7  lean6 + spectral centroid
  lean6-cell  lean6 with moodtag-rhythm 1.0.0's weights (no family level)
Weights (tagger.train_descriptors.sample_weights): each (fold, label) cell 1/max(n_cell, 5) per track;
"family" then gives every (family, label) cell the same total, so games, folk and classical count
alike however many sources each has (1.0.0 skipped this step, and each tiny new source then moved the
decision level of all); last, the two labels get equal total weight. The research trained on 16 clips per track (5 default + 11 spread); this
script uses the 5 default clips for training too (the research found the same CV either way).

Metrics, pooled over the out-of-fold P(exciting): balanced accuracy at threshold 0.5 and ROC-AUC,
overall, per family and per source (a source with one label gets accuracy, no AUC); a reliability
table (P(exciting) bins: tracks, mean P, share exciting, accuracy). A tuned threshold is also
reported, chosen without the held-out fold: for each outer fold, an inner leave-one-source-out CV over
the training sources gives OOF probabilities, tagger.metrics.best_threshold picks the threshold on
them, and the outer model is scored at that threshold.

--cnn INPUTS (slow on CPU) also trains the seed CNN with tagger.train.train_model (what `moodtag
train --cross-validate` runs) on the same folds, once per input (mel, stft, mfcc), and scores each
held-out track through the real inference path on contiguous and on spread clips (cnn-mel,
cnn-mel-spread, ...).
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import csv
import hashlib
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import accuracy_features  # noqa: E402
from tagger import metrics  # noqa: E402
from tagger.train_descriptors import fit_temperature  # noqa: E402

SAMPLE_RATE = 22050
FAMILIES = ("games", "folk", "classical")
FOLK_SOURCES = {"O'Neill": "oneill", "Ryan": "ryan", "music21 miscFolk": "miscfolk"}
MODELS = {
    "baseline": dict(features=("tempo", "onset_rate", "rms_db", "centroid"), C=1.0, weights="none"),
    "lean6": dict(features=("onset_rate", "rms_db", "perc_fast", "tcent", "onset_rate25", "acf_max"),
                  C=0.01, weights="family"),
    "lean5": dict(features=("onset_rate", "perc_fast", "tcent", "onset_rate25", "acf_max"),
                  C=0.01, weights="family"),
    "lean7": dict(features=("onset_rate", "rms_db", "centroid", "perc_fast", "tcent", "onset_rate25", "acf_max"),
                  C=0.01, weights="family"),
    # lean6 + the mid-band spectral flux, standardised
    "lean6-flux": dict(features=("onset_rate", "rms_db", "perc_fast", "tcent", "onset_rate25", "acf_max",
                                 "flux_mid"), C=0.01, weights="family"),
    # the default since moodtag-rhythm 1.1.0: the same through the quantile-normal transform
    "lean6-flux-q": dict(features=("onset_rate", "rms_db", "perc_fast", "tcent", "onset_rate25", "acf_max",
                                   "flux_mid"), C=0.01, weights="family", transform="quantile"),
    # moodtag-rhythm 1.0.0's weights: (source, label) cells, then labels; no family level
    "lean6-cell": dict(features=("onset_rate", "rms_db", "perc_fast", "tcent", "onset_rate25", "acf_max"),
                       C=0.01, weights="source_cls"),
}
DEFAULT_MODELS = ("baseline", "lean6", "lean6-flux", "lean6-flux-q")
DEFAULT = "lean6-flux-q"  # what --save-model writes
SELECTION_MODELS = ("lean5", "lean6", "lean7", "lean6-flux", "lean6-flux-q")
BINS = np.linspace(0.0, 1.0, 11)
SELECTION_C = (0.003, 0.01, 0.03, 0.1)
# The bar.
BAR_BA, BAR_AUC, BAR_FAMILY_BA = 0.85, 0.90, 0.75


@dataclass(frozen=True)
class Track:
    path: str
    label: int  # 1 = exciting
    source: str  # the game package or the score's source, as in the data
    group: str  # the fold
    family: str


# ---------------------------------------------------------------- the track table

def game_tracks(games: Path, games_csv: Path | None) -> list[Track]:
    """GAMES/<label>/<package>__<name>: labels from the CSV (package, path, label) or the folders."""
    rows = []
    if games_csv is not None:
        for r in csv.DictReader(open(games_csv, newline="")):
            name = r["path"].split("!")[-1].rsplit("/", 1)[-1]
            path = games / r["label"] / f"{r['package']}__{name}"
            if not path.exists():
                sys.exit(f"{games_csv}: {path} not found")
            rows.append((path, r["label"], r["package"]))
    else:
        for label in ("calm", "exciting"):
            for path in sorted((games / label).iterdir()):
                if path.is_file() and "__" in path.name:
                    rows.append((path, label, path.name.split("__")[0]))
    return [Track(path=str(p), label=int(lab == "exciting"), source=pkg,
                  group=pkg.removesuffix("-data").removesuffix("-music"), family="games")
            for p, lab, pkg in sorted(rows)]


def score_tracks(scores: Path) -> list[Track]:
    """SCORES/scores.csv (file, label, source): folk collections are one fold each; every other source
    (the classical composers) is merged into one 'classical' fold."""
    out = []
    for r in csv.DictReader(open(scores / "scores.csv", newline="")):
        src = r["source"]
        group = next((g for prefix, g in FOLK_SOURCES.items() if src.startswith(prefix)), "classical")
        out.append(Track(path=str(scores / r["file"]), label=int(r["label"] == "exciting"), source=src,
                         group=group, family="classical" if group == "classical" else "folk"))
    return out


# ---------------------------------------------------------------- features, cached per track

def cache_file(cache: Path, path: str, placement: str = "contiguous") -> Path:
    p = Path(path).resolve()
    st = p.stat()
    where = "" if placement == "contiguous" else f"|{placement}"
    key = hashlib.sha1(f"{p}|{st.st_size}|{st.st_mtime_ns}|{SAMPLE_RATE}|v{accuracy_features.VERSION}{where}"
                       .encode()).hexdigest()
    return cache / key[:2] / f"{key}.json"


def compute(path: str, placement: str = "contiguous") -> dict:
    """Decode the default plan's clips of one track and compute its features (or the error)."""
    import torch

    torch.set_num_threads(1)
    from tagger.audio import load_clips
    from tagger.errors import AudioError
    from tagger.weights import ClipPlan

    try:
        clips = load_clips(Path(path), plan=ClipPlan(placement=placement), sample_rate=SAMPLE_RATE)
    except AudioError as exc:
        return {"path": path, "error": str(exc)}
    return {"path": path, "clips": len(clips.samples), "starts": list(clips.starts),
            "features": accuracy_features.track_features(clips.samples, sample_rate=SAMPLE_RATE)}


def load_features(tracks: list[Track], cache: Path, jobs: int, log, placement: str = "contiguous") -> list[dict]:
    return cached_map(compute, [(t.path, placement) for t in tracks],
                      [cache_file(cache, t.path, placement) for t in tracks], cache, jobs, log, "features")


def cached_map(fn, work: list[tuple], files: list[Path], cache: Path, jobs: int, log, what: str) -> list[dict]:
    """fn(*args) for every args in `work`, each result kept as JSON in its file (written atomically) and
    read from there next time; `jobs` > 1 computes in that many processes. Progress every 50."""
    results: list[dict | None] = [json.loads(f.read_text()) if f.exists() else None for f in files]
    todo = [i for i, r in enumerate(results) if r is None]
    log(f"{what}: {len(files) - len(todo)} cached, {len(todo)} to compute under {cache}")
    started = time.perf_counter()
    args = [work[i] for i in todo]
    with ProcessPoolExecutor(max(1, jobs)) as pool:
        done = (pool.map(fn, *zip(*args), chunksize=4) if jobs > 1 and len(args) > 1
                else (fn(*a) for a in args))
        for n, (i, res) in enumerate(zip(todo, done), 1):
            files[i].parent.mkdir(parents=True, exist_ok=True)
            tmp = files[i].with_suffix(".tmp")
            tmp.write_text(json.dumps(res))
            tmp.replace(files[i])
            results[i] = res
            if n % 50 == 0:
                log(f"  {n}/{len(todo)} ({time.perf_counter() - started:.0f} s)")
    return results


# ---------------------------------------------------------------- models and folds

def fit_predict(cfg: dict, X: np.ndarray, y: np.ndarray, sources: np.ndarray, train: np.ndarray,
                test: np.ndarray, seed: int) -> np.ndarray:
    """Logit margins of the held-out tracks from the regression `moodtag train --feature descriptors`
    fits (tagger.train_descriptors.fit_logistic): standardised (after the quantile-normal transform
    when the config says so), L2 with strength 1/C, and sample weights per family, source and label
    ("family"), per (source, label) cell ("source_cls") or per label only ("none")."""
    from tagger.train_descriptors import fit_logistic

    if cfg["weights"] == "family":
        src = sources
    elif cfg["weights"] == "source_cls":
        src = np.array([s.split("/", 1)[-1] for s in sources], dtype=object)
    else:
        src = np.zeros(len(y), dtype=object)
    z = fit_logistic(X[train], y[train], src[train], n_labels=2, C=cfg["C"], seed=seed,
                     transform=cfg.get("transform", "standard")).logits(X[test])
    return z[:, 1] - z[:, 0]


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def grouped_cv(cfg: dict, X: np.ndarray, y: np.ndarray, groups: np.ndarray, sources: np.ndarray, seed: int):
    """Leave-one-group-out. Per held-out fold, an inner leave-one-group-out over that fold's training
    groups gives out-of-fold logits from which (a) a threshold is tuned (tagger.metrics.best_threshold)
    and (b) a temperature is fitted (as tagger.train_descriptors does for the shipped model, which
    keeps the threshold at 0.5), each applied to the held-out fold. -> OOF P(exciting) raw, the tuned
    thresholds, the calibrated P(exciting), and its threshold (0.5: a temperature keeps the
    decisions)."""

    n = len(y)
    p, thr, p_cal, thr_cal = np.zeros(n), np.full(n, 0.5), np.zeros(n), np.full(n, 0.5)
    for hold in sorted(set(groups)):
        test = groups == hold
        train = ~test
        z = fit_predict(cfg, X, y, sources, train, test, seed)
        inner = np.zeros(n)
        for h2 in sorted(set(groups[train])):
            t2 = groups == h2
            inner[t2] = fit_predict(cfg, X, y, sources, train & ~t2, t2, seed)
        p[test] = _sigmoid(z)
        thr[test] = metrics.best_threshold(y[train], _sigmoid(inner[train]))
        # what the shipped default does: threshold 0.5, a temperature fitted on held-out logits
        zi = np.stack([np.zeros(int(train.sum())), inner[train]], axis=1)
        a = fit_temperature(zi, y[train])
        p_cal[test] = _sigmoid(a * z)
    return p, thr, p_cal, thr_cal


def nested_selection(features: dict[str, list[dict]], y: np.ndarray, groups: np.ndarray, sources: np.ndarray,
                     seed: int, log):
    """The whole choice of the default, validated: in each outer fold, every candidate (descriptor set
    lean5/lean6/lean7/lean6-flux/lean6-flux-q x C in SELECTION_C x clip placement) is scored by an inner leave-one-source-out
    over the training sources only, the best by inner pooled BA (then AUC) is refitted on all training
    sources and predicts the held-out source. -> OOF P(exciting) and each fold's choice. `features` maps
    a placement to the per-track feature dicts."""
    candidates = [(m, c, pl) for m in SELECTION_MODELS for c in SELECTION_C for pl in features]
    mats = {(m, pl): np.array([[f["features"][k] for k in MODELS[m]["features"]] for f in features[pl]])
            for m in SELECTION_MODELS for pl in features}
    p = np.zeros(len(y))
    chosen = {}
    for hold in sorted(set(groups)):
        test, train = groups == hold, groups != hold
        best, best_key = None, None
        for m, c, pl in candidates:
            cfg = dict(MODELS[m], C=c)
            X = mats[(m, pl)]
            inner = np.zeros(len(y))
            for h2 in sorted(set(groups[train])):
                t2 = groups == h2
                inner[t2] = fit_predict(cfg, X, y, sources, train & ~t2, t2, seed)
            yt, pt = y[train], _sigmoid(inner[train])
            key = (metrics.balanced_accuracy(yt, (pt >= 0.5).astype(int), 2), metrics.binary_auc(yt == 1, pt) or 0)
            if best_key is None or key > best_key:
                best, best_key = (m, c, pl), key
        m, c, pl = best
        p[test] = _sigmoid(fit_predict(dict(MODELS[m], C=c), mats[(m, pl)], y, sources, train, test, seed))
        chosen[hold] = {"model": m, "C": c, "placement": pl, "inner_ba": round(best_key[0], 4)}
        log(f"  nested selection, {hold} held out: chose {m}, C={c}, {pl} (inner BA {best_key[0]:.3f})")
    return p, chosen


# ---------------------------------------------------------------- metrics

def _ba(y, pred):
    if len(set(y.tolist())) < 2:  # one label only: plain accuracy
        return metrics.accuracy(y, pred)
    return metrics.balanced_accuracy(y, pred, 2)


def scores_of(y: np.ndarray, p: np.ndarray, thr: np.ndarray) -> dict:
    return {"tracks": int(len(y)), "exciting": int(y.sum()),
            "ba": _ba(y, (p >= 0.5).astype(int)), "auc": metrics.binary_auc(y == 1, p),
            "ba_tuned": _ba(y, (p >= thr).astype(int))}


def ece(y: np.ndarray, p: np.ndarray, thr: np.ndarray) -> float:
    """Expected calibration error of the chosen label's confidence (10 equal-width bins)."""
    pred = (p >= thr).astype(int)
    conf = np.where(pred == 1, p, 1 - p)
    right = (pred == y).astype(float)
    total = 0.0
    for lo in np.arange(0.0, 1.0, 0.1):
        m = (conf >= lo) & (conf < lo + 0.1 if lo < 0.9 else conf <= 1.0)
        if m.any():
            total += m.sum() * abs(conf[m].mean() - right[m].mean())
    return float(total / len(y))


def reliability(y: np.ndarray, p: np.ndarray) -> list[dict]:
    rows = []
    for lo, hi in zip(BINS[:-1], BINS[1:]):
        m = (p >= lo) & ((p < hi) if hi < 1 else (p <= hi))
        if m.any():
            rows.append({"bin": f"{lo:.1f}-{hi:.1f}", "tracks": int(m.sum()), "mean_p": float(p[m].mean()),
                         "share_exciting": float(y[m].mean()),
                         "accuracy": float(((p[m] >= 0.5).astype(int) == y[m]).mean())})
    return rows


CONF_BINS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def confidence_table(y: np.ndarray, p: np.ndarray, thr: np.ndarray) -> list[dict]:
    """Is a prediction made with confidence c right about c of the time? Confidence = the probability
    of the chosen label (P or 1 - P), binned; accuracy of the predictions in each bin."""
    pred = (p >= thr).astype(int)
    conf = np.where(pred == 1, p, 1 - p)
    rows = []
    for lo, hi in zip((0.0,) + CONF_BINS[:-1], CONF_BINS):
        m = (conf >= lo) & ((conf < hi) if hi < 1 else (conf <= hi))
        if m.any():
            rows.append({"confidence": f"{lo:.1f}-{hi:.1f}" if lo else f"<{hi:.1f}", "tracks": int(m.sum()),
                         "mean_confidence": float(conf[m].mean()), "accuracy": float((pred[m] == y[m]).mean())})
    return rows


BOOTSTRAP = 2000


def intervals(tracks: list[Track], p: np.ndarray, seed: int = 0) -> dict:
    """95 % bootstrap intervals of BA at 0.5 and ROC-AUC, overall and per family: the tracks are
    resampled within each (fold, label) cell, so every fold keeps its size and its labels. They show
    how much the figures move with the draw of tracks from these sources; a new source can move them
    more (the spread between folds in the per-source table says how much)."""
    y = np.array([t.label for t in tracks])
    fam = np.array([t.family for t in tracks])
    grp = np.array([t.group for t in tracks])
    cells = [np.flatnonzero((grp == g) & (y == c)) for g in dict.fromkeys(grp) for c in (0, 1)]
    cells = [c for c in cells if len(c)]
    rng = np.random.default_rng(seed)
    masks = {"overall": np.ones(len(y), bool), **{f: fam == f for f in FAMILIES if (fam == f).any()}}
    draws = {k: ([], []) for k in masks}
    for _ in range(BOOTSTRAP):
        idx = np.concatenate([rng.choice(c, len(c)) for c in cells])
        for k, m in masks.items():
            i = idx[m[idx]]
            draws[k][0].append(_ba(y[i], (p[i] >= 0.5).astype(int)))
            auc = metrics.binary_auc(y[i] == 1, p[i])
            if auc is not None:
                draws[k][1].append(auc)
    return {k: {"ba": [float(np.percentile(b, 2.5)), float(np.percentile(b, 97.5))],
                "auc": [float(np.percentile(a, 2.5)), float(np.percentile(a, 97.5))] if a else None}
            for k, (b, a) in draws.items()}


def evaluate(tracks: list[Track], p: np.ndarray, thr: np.ndarray, p_cal=None, thr_cal=None) -> dict:
    y = np.array([t.label for t in tracks])
    fam = np.array([t.family for t in tracks])
    grp = np.array([t.group for t in tracks])
    out = {"overall": scores_of(y, p, thr),
           "families": {f: scores_of(y[fam == f], p[fam == f], thr[fam == f]) for f in FAMILIES if (fam == f).any()},
           "sources": {g: scores_of(y[grp == g], p[grp == g], thr[grp == g]) for g in dict.fromkeys(grp)},
           "thresholds": {g: float(thr[grp == g][0]) for g in dict.fromkeys(grp)},
           "reliability": reliability(y, p), "intervals": intervals(tracks, p)}
    if p_cal is not None:
        out["calibrated"] = {"overall": scores_of(y, p_cal, thr_cal), "confidence": confidence_table(y, p_cal, thr_cal),
                             "expected_calibration_error": ece(y, p_cal, thr_cal),
                             "raw_confidence": confidence_table(y, p, np.full(len(y), 0.5)),
                             "raw_expected_calibration_error": ece(y, p, np.full(len(y), 0.5))}
    o, fams = out["overall"], out["families"].values()
    out["meets_bar"] = bool(o["ba"] >= BAR_BA and (o["auc"] or 0) >= BAR_AUC
                            and all((f["ba"] or 0) >= BAR_FAMILY_BA for f in fams))
    return out


# ---------------------------------------------------------------- the CNN (optional)

def cnn_cv(tracks: list[Track], *, feature: str, seed: int, epochs: int, clips_per_track: int,
           cache_dir: Path | None, log) -> dict[str, np.ndarray]:
    """The seed CNN on `feature` input (mel, stft, mfcc; each band's mean over the clip removed, as
    `moodtag train` does by default), trained once per held-out group with tagger.train.train_model
    (what `moodtag train --cross-validate` runs); each held-out track is then scored through the real
    inference path (tagger.evaluate.evaluate_model) twice, on contiguous and on spread clips.
    -> {placement: OOF P(exciting)}."""
    import torch

    torch.set_num_threads(1)
    from tagger.dataset import Item
    from tagger.evaluate import evaluate_model
    from tagger.feature_cache import default_cache_dir
    from tagger.train import train_model
    from tagger.weights import ClipPlan, FeatureSpec, ModelSpec

    items = [Item(path=Path(t.path), label=("calm", "exciting")[t.label], group=t.group) for t in tracks]
    spec = ModelSpec(name="moodtag-cnn", version="cv", labels=("calm", "exciting"), clips=ClipPlan(),
                     features=FeatureSpec(kind=feature, center="band"))
    index = {t.path: i for i, t in enumerate(tracks)}
    out = {pl: np.full(len(tracks), np.nan) for pl in ("contiguous", "spread")}
    groups = list(dict.fromkeys(t.group for t in tracks))
    for k, group in enumerate(groups, 1):
        t0 = time.perf_counter()
        result = train_model(items, spec=spec, val_groups=[group], threshold=0.5, epochs=epochs,
                             clips_per_track=clips_per_track, seed=seed,
                             cache_dir=cache_dir or default_cache_dir(), threads=1)
        held = [it for it in items if it.group == group]
        loaded = result.loaded()
        for placement in out:
            loaded.spec = loaded.spec.with_(clips=ClipPlan(placement=placement))
            for row in evaluate_model(held, loaded).rows:
                if row.error is None:
                    out[placement][index[str(row.path)]] = row.scores["exciting"]
        log(f"  cnn-{feature} fold {k}/{len(groups)} ({group}) {time.perf_counter() - t0:.0f} s")
    return out


def save_default_model(out: Path, tracks: list[Track], *, version: str, seed: int, placement: str, log) -> None:
    """The default (lean6-flux-q) on all tracks through tagger.train_descriptors (what `moodtag train
    --feature descriptors` runs), each fold one group named FAMILY/FOLD: the same weights as the CV, and
    the same leave-one-group-out for the held-out figures stored in the model file."""
    from tagger.dataset import Item
    from tagger.feature_cache import default_cache_dir
    from tagger.train_descriptors import train_descriptor_model
    from tagger.weights import ClipPlan, FeatureSpec, ModelSpec, save_model

    cfg = MODELS[DEFAULT]
    items = [Item(path=Path(t.path), label=("calm", "exciting")[t.label], group=f"{t.family}/{t.group}")
             for t in tracks]
    spec = ModelSpec(name="moodtag-rhythm", version=version, labels=("calm", "exciting"),
                     clips=ClipPlan(placement=placement),
                     features=FeatureSpec(kind="descriptors", descriptors=tuple(cfg["features"])))
    # threshold 0.5, not tuned: a threshold tuned on the held-out folds raises the pooled BA through the
    # folk tunes (0.94 -> 0.97) and lowers it on the games (0.73 -> 0.69; ACCURACY.md)
    fit = train_descriptor_model(items, spec=spec, C=cfg["C"], seed=seed, threshold=0.5,
                                 transform=cfg.get("transform", "standard"), cache_dir=default_cache_dir())
    for path, error in fit.skipped:
        log(f"skipped: {path}: {error}")
    save_model(out, fit.spec, fit.state_dict)
    pooled = fit.spec.metrics["held_out"]["pooled"]
    log(f"wrote {out}: held out BA {pooled['balanced_accuracy']}, ROC-AUC {pooled['roc_auc']}, "
        f"(leave-one-group-out)")


# ---------------------------------------------------------------- output

def _f(x) -> str:
    return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.2f}"


def confidence_rows(cal: dict) -> list[list[str]]:
    """A model's "calibrated" entry -> rows [bin, raw tracks, mean confidence, accuracy, the same three
    with a temperature fitted on inner folds, as the shipped default has]."""
    raw = {r["confidence"]: r for r in cal["raw_confidence"]}
    scaled = {r["confidence"]: r for r in cal["confidence"]}
    rows = []
    for b in sorted(set(raw) | set(scaled), key=lambda k: k.strip("<")):
        cells = [b]
        for table in (raw, scaled):
            r = table.get(b)
            cells += [str(r["tracks"]), _f(r["mean_confidence"]), _f(r["accuracy"])] if r else ["-"] * 3
        rows.append(cells)
    return rows


def render(results: dict, tracks: list[Track], console) -> None:
    from rich.table import Table

    names = list(results)
    t = Table(title="Leave-one-source-out CV, pooled out-of-fold (BA at 0.5 / ROC-AUC)")
    t.add_column("model")
    for col in ("BA", "AUC", "BA tuned¹", *FAMILIES, "bar"):
        t.add_column(col, justify="right")
    for n in names:
        r = results[n]
        o = r["overall"]
        t.add_row(n, _f(o["ba"]), _f(o["auc"]), _f(o["ba_tuned"]),
                  *[f"{_f(r['families'][f]['ba'])} / {_f(r['families'][f]['auc'])}" if f in r["families"] else "-"
                    for f in FAMILIES], "yes" if r["meets_bar"] else "no")
    console.print(t)
    console.print("¹ threshold chosen by an inner leave-one-source-out CV on the training sources only")

    t = Table(title=f"95 % bootstrap intervals (BA at 0.5 / ROC-AUC; tracks resampled within fold and label, "
                    f"{BOOTSTRAP} draws)")
    t.add_column("model")
    for col in ("overall", *FAMILIES):
        t.add_column(col, justify="right")
    for n in names:
        iv = results[n]["intervals"]
        t.add_row(n, *[(f"{_f(iv[k]['ba'][0])}-{_f(iv[k]['ba'][1])} / "
                        + (f"{_f(iv[k]['auc'][0])}-{_f(iv[k]['auc'][1])}" if iv[k]["auc"] else "-"))
                       if k in iv else "-" for k in ("overall", *FAMILIES)])
    console.print(t)

    grp = sorted(dict.fromkeys(tr.group for tr in tracks),
                 key=lambda g: FAMILIES.index(next(tr.family for tr in tracks if tr.group == g)))
    t = Table(title="Per source (fold): BA at 0.5 / ROC-AUC; tracks (exciting)")
    t.add_column("model")
    for g in grp:
        s = results[names[0]]["sources"][g]
        t.add_column(f"{g}\n{s['tracks']} ({s['exciting']})", justify="right")
    for n in names:
        t.add_row(n, *[f"{_f(results[n]['sources'][g]['ba'])} / {_f(results[n]['sources'][g]['auc'])}" for g in grp])
    console.print(t)

    for n in names:
        t = Table(title=f"Reliability, {n}: out-of-fold P(exciting) bins")
        for col in ("P(exciting)", "tracks", "mean P", "share exciting", "accuracy at 0.5"):
            t.add_column(col, justify="right")
        for row in results[n]["reliability"]:
            t.add_row(row["bin"], str(row["tracks"]), _f(row["mean_p"]), _f(row["share_exciting"]),
                      _f(row["accuracy"]))
        console.print(t)
        cal = results[n].get("calibrated")
        if cal:
            t = Table(title=f"Confidence of the chosen label, {n}: raw vs with a temperature (fitted on inner folds; the shipped default has one)")
            for col in ("confidence", "raw: tracks", "mean conf", "accuracy", "temperature: tracks", "mean conf",
                        "accuracy"):
                t.add_column(col, justify="right")
            for row in confidence_rows(cal):
                t.add_row(*row)
            console.print(t)
            console.print(f"expected calibration error: raw {cal['raw_expected_calibration_error']:.3f}, "
                          f"with the temperature {cal['expected_calibration_error']:.3f} (the same decisions)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--games", type=Path, required=True, action="append",
                    help="game corpus: GAMES/<label>/<package>__<name> (repeat for more sets)")
    ap.add_argument("--games-csv", type=Path, action="append",
                    help="labels of the game tracks (dev.csv: package, path, label); one per --games, in order")
    ap.add_argument("--scores", type=Path, required=True, help="rendered scores: SCORES/scores.csv + audio")
    ap.add_argument("--cache", type=Path, default=Path("~/.cache/moodtag/grouped_cv").expanduser(),
                    help="per-track feature cache (default: ~/.cache/moodtag/grouped_cv)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default=",".join(DEFAULT_MODELS),
                    help=f"models, comma-separated (of {', '.join(MODELS)}; default {','.join(DEFAULT_MODELS)})")
    ap.add_argument("--placement", choices=("contiguous", "spread"), default="contiguous",
                    help="where the hand-feature models take their clips (contiguous: the default plan)")
    ap.add_argument("--jobs", type=int, default=1, help="processes for feature extraction (1 thread each)")
    ap.add_argument("--cnn", default="", metavar="INPUT,...",
                    help="also the seed CNN, once per input (mel, stft, mfcc), each scored on contiguous and "
                         "on spread clips; slow on CPU: 7 trainings per input")
    ap.add_argument("--cnn-epochs", type=int, default=12)
    ap.add_argument("--cnn-clips", type=int, default=16, help="random clips per training track and epoch")
    ap.add_argument("--cnn-cache", type=Path, help="the CNN's feature cache (default: moodtag train's)")
    ap.add_argument("--json", type=Path, help="write every figure and the OOF probabilities here")
    ap.add_argument("--nested-selection", action="store_true",
                    help="also validate the choice of the default itself: per outer fold, pick among lean5/6/7/6-flux/6-flux-q, "
                         "C and both placements by inner folds only (computes the features of both placements)")
    ap.add_argument("--save-model", type=Path, metavar="MODEL",
                    help="also train the default model (lean6-flux-q, on --placement clips) on every track, with these "
                         "folds as its groups, and write it here (how models/moodtag-rhythm.safetensors is made)")
    ap.add_argument("--model-version", default="1.1.0", help="the saved model's version")
    args = ap.parse_args(argv)

    from rich.console import Console

    console = Console(width=None if sys.stdout.isatty() else 150)
    err = Console(stderr=True)
    log = lambda msg: err.print(msg, markup=False, highlight=False)  # noqa: E731

    only = [m.strip() for m in args.only.split(",") if m.strip()]
    unknown = [m for m in only if m not in MODELS]
    if unknown:
        ap.error(f"--only: unknown model {unknown[0]!r} (known: {', '.join(MODELS)})")
    started = time.perf_counter()
    csvs = args.games_csv or [None] * len(args.games)
    if len(csvs) != len(args.games):
        ap.error("give one --games-csv per --games (or none)")
    tracks = [t for g, c in zip(args.games, csvs) for t in game_tracks(g.expanduser(), c)]
    if len({t.path for t in tracks}) != len(tracks):
        ap.error("a game track is listed twice")
    tracks += score_tracks(args.scores.expanduser())
    feats = load_features(tracks, args.cache.expanduser(), args.jobs, log, args.placement)
    failed = [(t.path, f["error"]) for t, f in zip(tracks, feats) if "error" in f]
    for path, error in failed:
        log(f"left out: {path}: {error}")
    keep = [i for i, f in enumerate(feats) if "error" not in f]
    tracks = [tracks[i] for i in keep]
    feats = [feats[i] for i in keep]
    t_features = time.perf_counter() - started
    y = np.array([t.label for t in tracks])
    groups = np.array([t.group for t in tracks])
    # weights per fold unit (the classical composers count as one source, as in the folds), named
    # FAMILY/FOLD so that tagger.train_descriptors.sample_weights also balances the families
    sources = np.array([f"{t.family}/{t.group}" for t in tracks], dtype=object)
    log(f"{len(tracks)} tracks, folds: " + ", ".join(
        f"{g} {int((groups == g).sum())}" for g in dict.fromkeys(groups)))

    results, oof = {}, {}
    for name in only:
        cfg = MODELS[name]
        X = np.array([[f["features"][k] for k in cfg["features"]] for f in feats])
        p, thr, p_cal, thr_cal = grouped_cv(cfg, X, y, groups, sources, args.seed)
        results[name] = {"config": {**cfg, "features": list(cfg["features"])},
                         **evaluate(tracks, p, thr, p_cal, thr_cal)}
        oof[name] = p
    for feature in [v.strip() for v in args.cnn.split(",") if v.strip()]:
        if feature not in ("mel", "stft", "mfcc"):
            ap.error(f"--cnn {feature}: expected mel, stft or mfcc")
        log(f"cnn-{feature}: leave-one-source-out, {args.cnn_epochs} epochs x {args.cnn_clips} clips/track per fold")
        t0 = time.perf_counter()
        by_placement = cnn_cv(tracks, feature=feature, seed=args.seed, epochs=args.cnn_epochs,
                              clips_per_track=args.cnn_clips, cache_dir=args.cnn_cache, log=log)
        for placement, p in by_placement.items():
            name = f"cnn-{feature}" + ("" if placement == "contiguous" else "-spread")
            ok = ~np.isnan(p)
            sub = [t for t, k in zip(tracks, ok) if k]
            results[name] = {"config": {"model": f"seed CNN on {feature}, band-centred (tagger.train.train_model)",
                                        "placement": placement, "epochs": args.cnn_epochs,
                                        "clips_per_track": args.cnn_clips,
                                        "seconds": round(time.perf_counter() - t0),
                                        "threshold": "0.5 (tuned threshold not computed for the CNN)"},
                             **evaluate(sub, p[ok], np.full(int(ok.sum()), 0.5))}
            oof[name] = p
    seconds = time.perf_counter() - started

    if args.nested_selection:
        other = "spread" if args.placement == "contiguous" else "contiguous"
        by_placement = {args.placement: feats,
                        other: load_features(tracks, args.cache.expanduser(), args.jobs, log, other)}
        if any("error" in f for f in by_placement[other]):
            ap.error("a track decodes with one placement and not the other")
        p, chosen = nested_selection(by_placement, y, groups, sources, args.seed, log)
        results["nested-selection"] = {"config": {"what": "lean5/6/7/6-flux/6-flux-q x C x placement chosen per outer fold by "
                                                          "inner folds", "C": list(SELECTION_C), "chosen": chosen},
                                       **evaluate(tracks, p, np.full(len(p), 0.5))}
        oof["nested-selection"] = p
    if args.save_model:
        save_default_model(args.save_model, tracks, version=args.model_version, seed=args.seed,
                           placement=args.placement, log=log)
    render(results, tracks, console)
    console.print(f"{len(tracks)} tracks ({len(failed)} left out), features {t_features:.0f} s, "
                  f"total {seconds:.0f} s")
    if args.json:
        doc = {"command": " ".join(sys.argv), "seed": args.seed, "placement": args.placement, "seconds": round(seconds, 1),
               "feature_seconds": round(t_features, 1), "left_out": failed,
               "folds": {g: int((groups == g).sum()) for g in dict.fromkeys(groups)},
               "bar": {"ba": BAR_BA, "auc": BAR_AUC, "family_ba": BAR_FAMILY_BA},
               "results": results,
               "tracks": [{**asdict(t), **{f"p_{n}": (None if np.isnan(v[i]) else round(float(v[i]), 5))
                                          for n, v in oof.items()}} for i, t in enumerate(tracks)]}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1, default=float))
        console.print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
