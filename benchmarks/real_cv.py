#!/usr/bin/env python3
"""How the default model does on real recordings it has never heard: leave-one-game-out, nested.

    python benchmarks/real_cv.py --games CORPUS/dev --games-csv ../shared/corpus/dev.csv \\
        --games MORE/dev --games-csv benchmarks/data/more-games/dev.csv [--jobs 2] [--json OUT] \\
        [--save-model models/moodtag-rhythm.safetensors] [--score-lockbox]

Only real recordings: the game corpus and the project's more-games tracks, each labelled by the game's
own use of the track (the evidence is in the CSVs). Rendered scores are not used.

The lockbox: Starfighter and Hedgewars (LOCKBOX), set aside before any modelling. They are the two
games besides Naev with both labels (3 + 1 calm, 7 + 1 exciting), so the lockbox can measure balanced
accuracy; they are small, so the cross-validation loses little. Their tracks take no part in any
choice below. `--score-lockbox` scores them once, with the final model, and prints the figures for
the model card; run it once.

The rest (0 A.D., UFO:AI, Naev, SuperTuxKart, Lugaru, OpenClonk) are the development games. Every
configuration (descriptor set, regularisation, transform, sign priors, the weight of menu/title/credits
evidence) is chosen inside the folds: for each held-out game, an inner leave-one-game-out over the
other games scores every configuration, the best (mean of pooled inner balanced accuracy and ROC-AUC)
is fitted on all the other games and scores the held-out one. The headline is those held-out
predictions, pooled: balanced accuracy at 0.5, ROC-AUC, 95 % intervals from resampling whole games,
and a table per game. The final model is the configuration the same rule picks over all development
games, fitted on all of them (lockbox excluded).

With --embeddings, the musicnn taggers' embeddings of the development tracks (benchmarks/real_embeddings.py;
the lockbox's are never computed) become candidates too: `--only musicnn` (a logistic head on a layer,
PCA and C chosen in the folds), `--only fusion` (2.0.0's descriptors and a layer), groups that can be
mixed with `descriptors` or with single set names (EMBEDDING_SETS); and the run reports each model's
arousal score without fitting and its late fusion with the run's nested predictions (zero_shot).
Cross-validation only: no model is written from an embedding.

Two more groups of candidates, cross-validation only: `--only tonal` (benchmarks/tonal_features.py:
roughness, spectral flatness, harmonic change, mode, key clarity, beside 2.0.0's descriptors) and `--only
album` (each of 2.0.0's descriptors also less its median over the track's game, its album: labels unseen).
`--zero-shot NAMES` scores descriptors with a sign prior without fitting, and fuses each late with the
nested predictions, as for the musicnn scores.

Robustness, on every development track, of the final model and of each held-out fold's model: the
share of decisions flipped by a -6 dB gain, a +3 dB treble shelf above 1 kHz, and a 128 kbit/s MP3
re-encode (benchmarks/real_features.py makes them).
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import csv
import hashlib
import itertools
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import real_embeddings  # noqa: E402
import real_features  # noqa: E402
from grouped_cv import cached_map  # noqa: E402
from tagger import metrics  # noqa: E402

LOCKBOX = ("starfighter", "hedgewars")
MENU_EVIDENCE = re.compile(r"DEFAULT_MENU_TRACKS|music category \"main\"|credits|title menu|title/menu|"
                           r"frontend|menutheme|stream_menutheme", re.I)

# Orientation priors from music psychology: arousal rises with tempo, event (onset) density, spectral
# flux, loudness, brightness and percussiveness, and with a clear pulse. +1: the weight may not be
# negative; 0: free.
SIGNS = {"onset_rate": 1, "onset_rate_r": 1, "flux_mid": 1, "flux_all_r": 1, "flux_low_r": 1, "flux_mid_r": 1,
         "flux_high_r": 1, "perc_fast": 1, "centroid": 1, "tcent": 1, "tcent_r": 1, "onset_rate25": 1,
         "onset_rate25_r": 1, "acf_max": 1, "acf_max_r": 1, "rms_db": 1, "dyn_range": 0, "crest": 0, "rms_var": 0,
         # tonal_features.py: roughness raises arousal (the field); the others are free
         "roughness": 1, "flatness": 0, "chroma_flux": 0, "mode": 0, "key_clarity": 0}

FEATURE_SETS = {
    # moodtag-rhythm 1.1.0's descriptors (absolute loudness included)
    "rhythm-1.1": ("onset_rate", "rms_db", "perc_fast", "tcent", "onset_rate25", "acf_max", "flux_mid"),
    # the same without loudness, on the gain-invariant scale
    "rhythm-r": ("onset_rate_r", "perc_fast", "tcent_r", "onset_rate25_r", "acf_max_r", "flux_mid_r"),
    # spectral flux in three bands, with percussiveness, tempo and pulse clarity
    "flux3": ("flux_low_r", "flux_mid_r", "flux_high_r", "perc_fast", "tcent_r", "acf_max_r"),
    "flux3-bright": ("flux_low_r", "flux_mid_r", "flux_high_r", "perc_fast", "tcent_r", "acf_max_r", "centroid"),
    "flux3-dyn": ("flux_low_r", "flux_mid_r", "flux_high_r", "perc_fast", "tcent_r", "acf_max_r", "dyn_range",
                  "crest"),
    # the field's five arousal cues: tempo, event density, loudness, brightness, percussiveness
    "psych5": ("tcent_r", "onset_rate_r", "rms_db", "centroid", "perc_fast"),
    "psych4": ("tcent_r", "flux_all_r", "centroid", "perc_fast"),
    "flux-all": ("flux_all_r", "perc_fast", "tcent_r", "acf_max_r"),
}
_RHYTHM_R = FEATURE_SETS["rhythm-r"]
# tonal_features.py's candidates beside 2.0.0's descriptors (`--only tonal`; not in a shipped model)
TONAL_SETS = {
    "rhythm-r+rough": _RHYTHM_R + ("roughness",),
    "rhythm-r+flat": _RHYTHM_R + ("flatness",),
    "rhythm-r+harmony": _RHYTHM_R + ("chroma_flux", "mode", "key_clarity"),
    "rhythm-r+tonal": _RHYTHM_R + ("roughness", "flatness", "chroma_flux", "mode"),
    "psych5+rough": FEATURE_SETS["psych5"] + ("roughness",),
}
# Album context (`--only album`): each of 2.0.0's descriptors also less its median over the track's album
# (here its game, the held-out game's own tracks included: no label is read). A scan would need the
# album's tracks before deciding, so these are a measurement for later, not a model moodtag can ship.
ALBUM = "_g"
ALBUM_SETS = {
    "rhythm-r+album": _RHYTHM_R + tuple(n + ALBUM for n in _RHYTHM_R),
    "rhythm-r-album-only": tuple(n + ALBUM for n in _RHYTHM_R),
}
DESCRIPTOR_SETS = tuple(FEATURE_SETS)
FEATURE_SETS.update(TONAL_SETS)
FEATURE_SETS.update(ALBUM_SETS)
SIGNS.update({n + ALBUM: v for n, v in list(SIGNS.items())})
GRID = {"C": (0.01, 0.1, 1.0), "transform": ("standard", "quantile"), "signs": (False, True),
        "menus": ("keep", "half", "drop")}
BINS = np.linspace(0.0, 1.0, 11)

# musicnn embeddings (--embeddings; benchmarks/real_embeddings.py): each model's layers, averaged over a
# track's ten 3 s patches; a fusion puts moodtag-rhythm 2.0.0's descriptors (FUSE) before them.
EMBEDDING_LAYERS = {"taggram": ("taggram/mean",), "taggram+sd": ("taggram/mean", "taggram/std"),
                    "penultimate": ("penultimate/mean",), "mean_pool": ("mean_pool/mean",),
                    "max_pool": ("max_pool/mean",), "arousal": ("arousal",), "arousal-score": ("arousal-score",)}
FUSED_LAYERS = ("taggram", "penultimate", "mean_pool", "arousal", "arousal-score")
FUSE = "rhythm-r"
# Tags that speak of arousal, chosen by their meaning before any fitting: (raise it, lower it). "arousal":
# their logits (of the mean over patches) as columns; "arousal-score": one column, the mean logit of the
# first group minus that of the second (a zero-shot arousal score; the head only places its threshold).
AROUSAL_TAGS = {
    "MTT_musicnn": (("fast", "loud", "beat", "beats", "dance", "techno", "drums", "rock", "metal"),
                    ("slow", "quiet", "soft", "ambient", "new age", "classical")),
    "MSD_musicnn": (("party", "dance", "House", "electro", "metal", "hard rock", "happy", "catchy"),
                    ("chillout", "Mellow", "chill", "easy listening", "sad", "ambient", "beautiful", "acoustic")),
}
EMBEDDING_GRID = {"C": (0.0001, 0.001, 0.01, 0.1, 1.0), "pca": (0, 4, 16), "menus": ("keep", "drop"),
                  "signs": (False, True), "transform": ("standard", "quantile")}
# a handful of columns already, with a known direction: no PCA; sign priors (SIGNS for the fused
# descriptors, + for a tag that raises arousal, - for one that lowers it) only for them
NO_PCA = ("arousal", "arousal-score")


def embedding_sets() -> dict[str, tuple[tuple[str, ...], str | None]]:
    """name -> (embedding keys, the descriptor set fused before them or None): "MTT/penultimate",
    "rhythm-r+MSD/taggram", ..."""
    out = {}
    for model in real_embeddings.MODELS:
        short = model.split("_")[0]
        for layer, keys in EMBEDDING_LAYERS.items():
            out[f"{short}/{layer}"] = (tuple(f"{model}/{k}" for k in keys), None)
        for layer in FUSED_LAYERS:
            out[f"{FUSE}+{short}/{layer}"] = (tuple(f"{model}/{k}" for k in EMBEDDING_LAYERS[layer]), FUSE)
    return out


EMBEDDING_SETS = embedding_sets()
GROUPS = {"descriptors": DESCRIPTOR_SETS, "tonal": tuple(TONAL_SETS), "album": tuple(ALBUM_SETS),
          "musicnn": tuple(k for k, v in EMBEDDING_SETS.items() if v[1] is None),
          "fusion": tuple(k for k, v in EMBEDDING_SETS.items() if v[1] is not None)}


@dataclass(frozen=True)
class Track:
    path: str
    label: int      # 1 = exciting
    game: str
    menu: bool      # evidence: a menu, title or credits screen (not a situation of play)


# ---------------------------------------------------------------- tracks

def game_tracks(folder: Path, table: Path) -> list[Track]:
    out = []
    if not Path(table).is_file():
        sys.exit(f"{table}: no such label table (the corpus's dev.csv lies in ../shared/corpus/ beside the "
                 f"project's folder; the extra games' in benchmarks/data/more-games/)")
    for r in csv.DictReader(open(table, newline="")):
        name = r["path"].split("!")[-1].rsplit("/", 1)[-1]
        path = folder / r["label"] / f"{r['package']}__{name}"
        if not path.exists():
            sys.exit(f"{table}: {path} not found (build the audio first, see benchmarks/ACCURACY.md)")
        game = r["package"].removesuffix("-data").removesuffix("-music")
        out.append(Track(str(path), int(r["label"] == "exciting"), game,
                         bool(MENU_EVIDENCE.search(r["evidence"])) and "land" not in r["evidence"].split("[")[-1]))
    return out


# ---------------------------------------------------------------- features, cached

def cache_file(cache: Path, path: str, alteration: str) -> Path:
    p = Path(path).resolve()
    st = p.stat()
    key = hashlib.sha1(f"{p}|{st.st_size}|{st.st_mtime_ns}|{alteration}|v{real_features.VERSION}".encode()).hexdigest()
    return cache / key[:2] / f"{key}.json"


def compute(path: str, alteration: str) -> dict:
    from tagger.errors import AudioError

    try:
        samples = real_features.altered_clips(path, alteration)
    except AudioError as exc:
        return {"path": path, "error": str(exc)}
    return {"path": path, "features": real_features.track_candidates(samples)}


def load(tracks: list[Track], alterations, cache: Path, jobs: int, log) -> dict[str, list[dict]]:
    out = {}
    for alt in alterations:
        out[alt] = cached_map(compute, [(t.path, alt) for t in tracks], [cache_file(cache, t.path, alt) for t in tracks],
                              cache, jobs, log, f"descriptors ({alt})")
    return out


def embedding_cache_file(cache: Path, path: str, alteration: str) -> Path:
    p = Path(path).resolve()
    st = p.stat()
    key = hashlib.sha1(f"{p}|{st.st_size}|{st.st_mtime_ns}|{alteration}|musicnn v{real_embeddings.VERSION}".encode()
                       ).hexdigest()
    return cache / "musicnn" / key[:2] / f"{key}.json"


def load_embeddings(tracks: list[Track], alterations, cache: Path, jobs: int, log) -> dict[str, list[dict]]:
    """musicnn embeddings (benchmarks/real_embeddings.py) of the development tracks only: the lockbox's
    are never computed."""
    if any(t.game in LOCKBOX for t in tracks):
        raise ValueError("embeddings of lockbox tracks asked for")
    out = {}
    for alt in alterations:
        out[alt] = cached_map(real_embeddings.compute, [(t.path, alt) for t in tracks],
                              [embedding_cache_file(cache, t.path, alt) for t in tracks], cache, jobs, log,
                              f"musicnn embeddings ({alt})")
    return out


def matrix(rows: list[dict], names, games: np.ndarray | None = None) -> np.ndarray:
    """The rows' descriptors `names`; a name ending in ALBUM (an album-relative column, ALBUM_SETS) is its
    descriptor less the median over the track's game (its album), labels unseen."""
    X = np.array([[r["features"][n.removesuffix(ALBUM)] for n in names] for r in rows], dtype=np.float64)
    for j, n in enumerate(names):
        if n.endswith(ALBUM):
            for g in set(games.tolist()):
                m = games == g
                X[m, j] -= np.median(X[m, j])
    return X


def embedding_matrix(name: str, rows: list[dict], erows: list[dict | None]) -> np.ndarray:
    """An embedding set's columns: the fused descriptors (from `rows`), then the embedding (from `erows`;
    NaN for a track without one: the lockbox's)."""
    keys, fuse = EMBEDDING_SETS[name]
    width = sum(len(embedding_columns(next(e for e in erows if e), k)) for k in keys)
    emb = np.array([np.concatenate([embedding_columns(e, k) for k in keys]) if e else np.full(width, np.nan)
                    for e in erows])
    return np.hstack([matrix(rows, FEATURE_SETS[fuse]), emb]) if fuse else emb


def embedding_columns(row: dict, key: str) -> np.ndarray:
    """One key of an embedding row: "<model>/<layer>/<stat>" as stored, or "<model>/arousal" and
    "<model>/arousal-score" from the mean taggram (AROUSAL_TAGS)."""
    model, _, what = key.partition("/")
    if what not in ("arousal", "arousal-score"):
        return np.asarray(row["embedding"][key])
    import musicnn_port as musicnn

    labels = musicnn.shipped_tagger(model).labels
    p = np.clip(np.asarray(row["embedding"][f"{model}/taggram/mean"]), 1e-6, 1 - 1e-6)
    logit = dict(zip(labels, np.log(p / (1 - p))))
    up, down = AROUSAL_TAGS[model]
    if what == "arousal":
        return np.array([logit[t] for t in up + down])
    return np.array([np.mean([logit[t] for t in up]) - np.mean([logit[t] for t in down])])


# ---------------------------------------------------------------- the regression

def weights_of(y: np.ndarray, games: np.ndarray, menu: np.ndarray, menus: str, *,
               factor: np.ndarray | None = None, scale: float | None = None) -> np.ndarray:
    """Each (game, label) cell 1/max(n, 5) per track; menu/title/credits tracks at half weight or none;
    then each row times `factor` (default 1; pseudo_cv.py weighs its pseudo-labelled sources so);
    then both labels the same total; `scale` in all (default: the number of rows)."""
    w = np.ones(len(y))
    if menus == "half":
        w[menu] = 0.5
    elif menus == "drop":
        w[menu] = 0.0
    for g in set(games.tolist()):
        for c in (0, 1):
            m = (games == g) & (y == c)
            if m.any():
                w[m] /= max(float((w[m] > 0).sum()), 5.0)
    if factor is not None:
        w *= factor
    for c in (0, 1):
        if w[y == c].sum() > 0:
            w[y == c] *= 0.5 / w[y == c].sum()
    return w * (len(y) if scale is None else scale)


@dataclass(frozen=True)
class Fit:
    names: tuple
    quantiles: np.ndarray | None
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def margin(self, X: np.ndarray) -> np.ndarray:
        from tagger.regression import quantile_normal

        Z = quantile_normal(X, self.quantiles) if self.quantiles is not None else X
        return ((Z - self.mean) / self.scale) @ self.coef + self.intercept


def fit(cfg: dict, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> Fit:
    """Weighted L2 logistic regression (strength 1/C) on standardised X (after the quantile-normal
    transform when asked); with signs, each weight is kept on the side SIGNS gives (L-BFGS-B bounds)."""
    from tagger.regression import fit_quantiles, quantile_normal

    if cfg["features"] in EMBEDDING_SETS:
        return fit_embedding(cfg, X, y, w)
    names = FEATURE_SETS[cfg["features"]]
    keep = w > 0
    X, y, w = X[keep], y[keep], w[keep]
    quantiles = fit_quantiles(X, 200) if cfg["transform"] == "quantile" else None
    Z = quantile_normal(X, quantiles) if quantiles is not None else X
    mean, scale = Z.mean(axis=0), Z.std(axis=0)
    scale[scale == 0] = 1.0
    Z = (Z - mean) / scale
    sign = np.array([SIGNS[n] if cfg["signs"] else 0 for n in names])
    coef, intercept = logistic(Z, y, w, cfg["C"], sign)
    return Fit(names, quantiles, mean, scale, coef, intercept)


def logistic(Z: np.ndarray, y: np.ndarray, w: np.ndarray, C: float, sign: np.ndarray) -> tuple[np.ndarray, float]:
    """Weighted L2 logistic regression (strength 1/C, intercept free); each weight kept on the side `sign`
    gives (+1, -1; 0 free) by L-BFGS-B bounds."""
    from scipy.optimize import minimize

    t = 2.0 * y - 1.0

    def loss(theta):
        b, c = theta[0], theta[1:]
        m = Z @ c + b
        lm = np.logaddexp(0.0, -t * m)
        g = -t * np.exp(-np.logaddexp(0.0, t * m))  # d loss / d margin
        val = (w * lm).sum() + 0.5 / C * (c @ c)
        grad = np.concatenate([[(w * g).sum()], Z.T @ (w * g) + c / C])
        return val, grad

    bounds = [(None, None)] + [(0.0, None) if s > 0 else (None, 0.0) if s < 0 else (None, None) for s in sign]
    res = minimize(loss, np.zeros(Z.shape[1] + 1), jac=True, method="L-BFGS-B", bounds=bounds)
    return res.x[1:], float(res.x[0])


@dataclass(frozen=True)
class EmbeddingFit:
    """A linear head on an embedding (after `n_fused` descriptor columns): standardised, the embedding's
    columns projected on their first principal components (fitted on the training rows) when asked; the
    fused descriptors quantile-normal first when asked."""
    n_fused: int
    quantiles: np.ndarray | None    # of the fused descriptors
    mean: np.ndarray
    scale: np.ndarray
    components: np.ndarray | None   # (k, embedding width): the first principal axes (unit length)
    coef: np.ndarray
    intercept: float

    def inputs(self, X: np.ndarray) -> np.ndarray:
        from tagger.regression import quantile_normal

        if self.quantiles is not None:
            X = np.hstack([quantile_normal(X[:, :self.n_fused], self.quantiles), X[:, self.n_fused:]])
        Z = (X - self.mean) / self.scale
        if self.components is None:
            return Z
        return np.hstack([Z[:, :self.n_fused], Z[:, self.n_fused:] @ self.components.T])

    def margin(self, X: np.ndarray) -> np.ndarray:
        return self.inputs(X) @ self.coef + self.intercept


def fit_embedding(cfg: dict, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> EmbeddingFit:
    keys, fuse = EMBEDDING_SETS[cfg["features"]]
    n_fused = len(FEATURE_SETS[fuse]) if fuse else 0
    keep = w > 0
    X, y, w = X[keep], y[keep], w[keep]
    quantiles = None
    if cfg["transform"] == "quantile":
        from tagger.regression import fit_quantiles, quantile_normal

        quantiles = fit_quantiles(X[:, :n_fused], 200)
        X = np.hstack([quantile_normal(X[:, :n_fused], quantiles), X[:, n_fused:]])
    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale[scale == 0] = 1.0
    components = None
    if cfg["pca"]:
        E = (X[:, n_fused:] - mean[n_fused:]) / scale[n_fused:]
        _, sv, vt = np.linalg.svd(E, full_matrices=False)
        k = min(cfg["pca"], len(sv))
        # not whitened (the penalty then shrinks the minor axes most), scaled to a mean variance of 1
        # per column, as the fused descriptors have
        components = vt[:k] / np.sqrt(np.mean(sv[:k] ** 2) / len(E))
    head = EmbeddingFit(n_fused, None, mean, scale, components, np.zeros(0), 0.0)
    Z = head.inputs(X)
    sign = np.zeros(Z.shape[1])
    if cfg["signs"]:
        fused = [SIGNS[n] for n in FEATURE_SETS[fuse]] if fuse else []
        model, _, what = keys[0].partition("/")
        up, down = AROUSAL_TAGS[model]
        sign = np.array(fused + ([1] if what == "arousal-score" else [1] * len(up) + [-1] * len(down)))
    coef, intercept = logistic(Z, y, w, cfg["C"], sign)
    return EmbeddingFit(n_fused, quantiles, mean, scale, components, coef, intercept)


def model_inputs(feature_set: str) -> tuple[tuple[str, ...], float | None]:
    """A feature set -> (tagger.descriptors names, features.top_db) of the model file that computes it."""
    names = FEATURE_SETS[feature_set]
    relative = [n.endswith("_r") for n in names]
    reads_db = {f"{n}_r" for n in real_features.RELATIVE}
    if any(relative) and any(n + "_r" in reads_db for n in names):
        raise ValueError(f"{feature_set} mixes descriptors on the absolute and the relative dB floor")
    return tuple(n.removesuffix("_r") for n in names), (real_features.TOP_DB if any(relative) else None)


def configs() -> list[dict]:
    """Every configuration: each feature set with every value of GRID, each embedding set with every value
    of EMBEDDING_GRID."""
    out = []
    for sets, grid in ((FEATURE_SETS, GRID), (EMBEDDING_SETS, EMBEDDING_GRID)):
        grid = {"features": tuple(sets), **grid}
        out += [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    return [c for c in out if not (c.get("pca") and c["features"].endswith(NO_PCA))
            and not (c["features"] in EMBEDDING_SETS and c["signs"] and not c["features"].endswith(NO_PCA))
            and not (c["features"] in GROUPS["musicnn"] and c["transform"] == "quantile")]


# ---------------------------------------------------------------- folds

def pooled(y, p) -> tuple[float, float]:
    return metrics.balanced_accuracy(y, (p >= 0.5).astype(int), 2), metrics.binary_auc(y == 1, p)


def oof(cfg, feats, y, games, menu, train: np.ndarray) -> np.ndarray:
    """Leave-one-game-out margins over the games `train` selects (NaN elsewhere)."""
    X = feats[cfg["features"]]
    z = np.full(len(y), np.nan)
    for g in sorted(set(games[train].tolist())):
        test = train & (games == g)
        tr = train & (games != g)
        if len(set(y[tr].tolist())) < 2:
            continue
        w = weights_of(y[tr], games[tr], menu[tr], cfg["menus"])
        z[test] = fit(cfg, X[tr], y[tr], w).margin(X[test])
    return z


def choose(cands, feats, y, games, menu, train: np.ndarray) -> tuple[dict, list]:
    """The configuration of best pooled inner-LOGO (BA + AUC) / 2 over the games `train` selects."""
    scored = []
    for cfg in cands:
        z = oof(cfg, feats, y, games, menu, train)
        m = train & ~np.isnan(z)
        ba, auc = pooled(y[m], 1 / (1 + np.exp(-z[m])))
        scored.append(((ba + auc) / 2, ba, auc, cfg))
    scored.sort(key=lambda s: -s[0])
    return scored[0][3], scored


def nested(cands, feats, y, games, menu, dev: np.ndarray, log) -> tuple[np.ndarray, list]:
    """Held-out P(exciting) of every development track: its game's model chosen and fitted without it,
    its confidence scaled by a temperature fitted on the inner held-out margins, as the shipped model's
    is (tagger.train_descriptors; it never changes a decision)."""
    from tagger.train_descriptors import fit_temperature

    p = np.full(len(y), np.nan)
    picks = []
    for g in sorted(set(games[dev].tolist())):
        test = dev & (games == g)
        train = dev & (games != g)
        cfg, _ = choose(cands, feats, y, games, menu, train)
        X = feats[cfg["features"]]
        model = fit(cfg, X[train], y[train], weights_of(y[train], games[train], menu[train], cfg["menus"]))
        inner = oof(cfg, feats, y, games, menu, train)
        m = train & ~np.isnan(inner)
        temperature = fit_temperature(np.stack([np.zeros(int(m.sum())), inner[m]], axis=1), y[m])
        p[test] = 1 / (1 + np.exp(-temperature * model.margin(X[test])))
        picks.append({"held_out": g, "config": cfg, "temperature": temperature})
        log(f"  held out {g}: {cfg}, temperature {temperature:.2f}")
    return p, picks


def game_bootstrap(y, p, games, draws: int = 2000, seed: int = 0) -> dict:
    """95 % intervals of pooled BA and AUC, resampling whole games with replacement."""
    rng = np.random.default_rng(seed)
    names = sorted(set(games.tolist()))
    idx = {g: np.flatnonzero(games == g) for g in names}
    bas, aucs = [], []
    for _ in range(draws):
        pick = np.concatenate([idx[g] for g in rng.choice(names, len(names))])
        if len(set(y[pick].tolist())) < 2:
            continue
        ba, auc = pooled(y[pick], p[pick])
        bas.append(ba)
        aucs.append(auc)
    return {"ba": [float(np.percentile(bas, 2.5)), float(np.percentile(bas, 97.5))],
            "auc": [float(np.percentile(aucs, 2.5)), float(np.percentile(aucs, 97.5))], "draws": len(bas)}


def per_game(y, p, games) -> list[dict]:
    out = []
    for g in sorted(set(games.tolist())):
        m = games == g
        yy, pp = y[m], p[m]
        row = {"game": g, "tracks": int(m.sum()), "calm": int((yy == 0).sum()), "exciting": int((yy == 1).sum()),
               "accuracy": float(((pp >= 0.5) == yy).mean())}
        if len(set(yy.tolist())) == 2:
            row["ba"], row["auc"] = pooled(yy, pp)
        out.append(row)
    return out


def user_rates(y, p) -> dict:
    """What a user sees: how often a calm track is tagged exciting, and the reverse."""
    pred = p >= 0.5
    return {"calm_tagged_exciting": float(pred[y == 0].mean()), "exciting_tagged_calm": float((~pred[y == 1]).mean())}


def reliability(y, p) -> list[dict]:
    """Confidence of the chosen label (max(p, 1 - p)) in bins, against how often it is right."""
    conf = np.maximum(p, 1 - p)
    right = (p >= 0.5) == (y == 1)
    rows = []
    for lo, hi in zip(np.linspace(0.5, 1.0, 6)[:-1], np.linspace(0.5, 1.0, 6)[1:]):
        m = (conf >= lo) & ((conf < hi) | (hi == 1.0))
        if m.any():
            rows.append({"confidence": f"{lo:.1f}-{hi:.1f}", "tracks": int(m.sum()),
                         "mean_confidence": float(conf[m].mean()), "right": float(right[m].mean())})
    return rows


def zero_shot(p, scores: dict[str, np.ndarray], y, games, menu, dev, log) -> dict:
    """Each score (higher: more exciting; no fitting) on the development tracks: its ROC-AUC as it is; its
    BA with the threshold at the midpoint of the other games' two class means (the weights of weights_of),
    scaled by their standard deviation (z); and a late fusion with this run's nested predictions `p`,
    logit(p) + a z, for a = 0.5, 1 (the prior choice: equal say) and 2."""
    out = {}
    for model, s in scores.items():
        z = np.full(len(y), np.nan)
        for g in sorted(set(games[dev].tolist())):
            test, train = dev & (games == g), dev & (games != g)
            w = weights_of(y[train], games[train], menu[train], "keep")
            means = [np.average(s[train][y[train] == c], weights=w[y[train] == c]) for c in (0, 1)]
            z[test] = (s[test] - np.mean(means)) / s[train].std()
        row = {"auc_no_fit": metrics.binary_auc(y[dev] == 1, s[dev])}
        fusions = [(f"late_fusion_{a:g}", np.log(p / (1 - p)) + a * z) for a in (0.5, 1, 2)]
        for name, margin in [("zero_shot", z)] + fusions:
            q = 1 / (1 + np.exp(-margin[dev]))
            ba, auc = pooled(y[dev], q)
            row[name] = {"ba": ba, "auc": auc, "intervals": game_bootstrap(y[dev], q, games[dev]),
                         "per_game": per_game(y[dev], q, games[dev])}
            log(f"  {model} {name}: BA {ba:.3f}, AUC {auc:.3f} {row[name]['intervals']}")
        out[model] = row
    return out


def musicnn_scores(erows) -> dict[str, np.ndarray]:
    """Each musicnn model's arousal score (AROUSAL_TAGS), NaN for a track without an embedding."""
    return {model: np.array([embedding_columns(e, f"{model}/arousal-score")[0] if e else np.nan for e in erows])
            for model in real_embeddings.MODELS}


# ---------------------------------------------------------------- the shipped model

def save_final(out: Path, cfg: dict, tracks: list[Track], *, version: str, cache: Path, log,
               extra_metrics: dict):
    """Fit the chosen configuration on the development games with `moodtag train --feature descriptors`'s
    code (tagger.train_descriptors: the same weighted regression, a temperature fitted on its
    leave-one-game-out margins, threshold 0.5) and write it; returns its P(exciting) on candidate rows."""
    from tagger.dataset import Item
    from tagger.train import prepare_spec
    from tagger.train_descriptors import train_descriptor_model
    from tagger.weights import ClipPlan, FeatureSpec, ModelSpec, load_model, save_model

    if cfg["signs"] or cfg["menus"] == "half":
        sys.exit(f"--save-model: moodtag train cannot fit {cfg} (sign bounds, half weights)")
    names, top_db = model_inputs(cfg["features"])
    items = [Item(Path(t.path), ("calm", "exciting")[t.label], t.game) for t in tracks
             if not (cfg["menus"] == "drop" and t.menu)]
    spec = prepare_spec(ModelSpec(name="moodtag-rhythm", version=version, labels=("calm", "exciting"),
                                  clips=real_features.PLAN,
                                  features=FeatureSpec(kind="descriptors", descriptors=names, top_db=top_db)),
                        items, ("calm", "exciting"))
    fitted = train_descriptor_model(items, spec=spec, C=cfg["C"], threshold=0.5, transform=cfg["transform"],
                                    cache_dir=cache / "train")
    save_model(out, fitted.spec.with_(metrics={**fitted.spec.metrics, **extra_metrics}), fitted.state_dict)
    log(f"wrote {out}: {names}, top_db {top_db}")
    network = load_model(out).network
    columns = FEATURE_SETS[cfg["features"]]
    return lambda rows: network.probabilities(matrix(rows, columns))[:, 1]


def add_metrics(path: Path, extra: dict) -> None:
    """Store more figures in a model file's spec (the weights stay byte for byte)."""
    from safetensors.numpy import load_file

    from tagger.weights import read_spec, save_model

    spec = read_spec(path)
    save_model(path, spec.with_(metrics={**spec.metrics, **extra}), load_file(str(path)))


def score_lockbox(model_path: Path, tracks: list[Track], log) -> dict:
    """The lockbox, once, through moodtag's own inference (decoding included)."""
    from tagger.analyze import analyze_track
    from tagger.weights import load_model

    model = load_model(model_path)
    results = [analyze_track(Path(t.path), model) for t in tracks]
    y = np.array([t.label for t in tracks])
    p = np.array([r.scores["exciting"] for r in results])
    ba, auc = pooled(y, p)
    log(f"LOCKBOX (scored once): BA {ba:.3f}, AUC {auc:.3f} on {len(tracks)} tracks of {', '.join(LOCKBOX)}")
    return {"games": list(LOCKBOX), "tracks": len(tracks), "ba": ba, "auc": auc, "user": user_rates(y, p),
            "per_track": [{"path": t.path, "label": t.label, "p_exciting": float(q)} for t, q in zip(tracks, p)]}


# ---------------------------------------------------------------- main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--games", type=Path, action="append", required=True)
    ap.add_argument("--games-csv", type=Path, action="append", required=True)
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "moodtag" / "real_cv")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--only", help="comma-separated feature sets, or groups of them (descriptors, tonal, album, "
                                   "musicnn, fusion), to consider (default: descriptors)")
    ap.add_argument("--embeddings", action="store_true",
                    help="compute the musicnn embeddings of the development tracks (needed by musicnn and fusion)")
    ap.add_argument("--zero-shot", help="comma-separated descriptors (with a sign prior) scored without fitting, and "
                                        "each fused late with the nested predictions")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--no-robustness", action="store_true", help="skip the altered copies (MP3 encoding is slow)")
    ap.add_argument("--save-model", type=Path, help="write the final model here (moodtag train's recipe)")
    ap.add_argument("--version", default="2.0.0", help="the saved model's version")
    ap.add_argument("--compare-with", type=Path, help="a model file: how many tracks change mood against it")
    ap.add_argument("--score-lockbox", action="store_true", help="score the lockbox with the saved model (once!)")
    args = ap.parse_args(argv)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    if args.embeddings and (args.save_model or args.compare_with or not args.no_robustness):
        sys.exit("--embeddings: cross-validation only (give --no-robustness; no --save-model, --compare-with)")

    sets = [n for x in (args.only or "descriptors").split(",") for n in GROUPS.get(x, (x,))]
    unknown = [n for n in sets if n not in FEATURE_SETS and n not in EMBEDDING_SETS]
    if unknown:
        sys.exit(f"--only: no feature set or group {unknown[0]!r} (groups: {', '.join(GROUPS)})")
    if any(n in TONAL_SETS for n in sets) and args.save_model:
        sys.exit("--only tonal: cross-validation only (no moodtag model computes tonal_features.py's candidates)")
    if any(n in ALBUM_SETS for n in sets) and (args.save_model or args.compare_with or not args.no_robustness):
        sys.exit("--only album: cross-validation only (album context needs the album; give --no-robustness)")
    tracks = [t for folder, table in zip(args.games, args.games_csv) for t in game_tracks(folder, table)]
    alterations = ("original",) if args.no_robustness else real_features.ALTERATIONS
    rows = load(tracks, alterations, args.cache, args.jobs, log)
    ok = np.array([all("features" in rows[a][i] for a in alterations) for i in range(len(tracks))])
    for i in np.flatnonzero(~ok):
        log(f"left out {tracks[i].path}: {rows['original'][i].get('error')}")
    tracks = [t for t, k in zip(tracks, ok) if k]
    rows = {a: [r for r, k in zip(rs, ok) if k] for a, rs in rows.items()}
    y = np.array([t.label for t in tracks])
    games = np.array([t.game for t in tracks])
    menu = np.array([t.menu for t in tracks])
    dev = ~np.isin(games, LOCKBOX)
    feats = {name: matrix(rows["original"], FEATURE_SETS[name], games) for name in sets if name in FEATURE_SETS}
    if any(name in EMBEDDING_SETS for name in sets) and not args.embeddings:
        sys.exit("musicnn and fusion sets need --embeddings")
    if args.embeddings:
        found = load_embeddings([t for t, d in zip(tracks, dev) if d], ("original",), args.cache, args.jobs, log)
        it = iter(found["original"])
        erows = [next(it) if d else None for d in dev]
        bad = [t.path for t, e in zip(tracks, erows) if e and "embedding" not in e]
        if bad:
            sys.exit(f"no embedding for {bad[0]} (and {len(bad) - 1} more)")
        feats.update({name: embedding_matrix(name, rows["original"], erows) for name in sets if name in EMBEDDING_SETS})
    cands = [c for c in configs() if c["features"] in sets]
    log(f"{int(dev.sum())} development tracks in {len(set(games[dev]))} games, {int((~dev).sum())} in the lockbox; "
        f"{len(cands)} configurations")

    started = time.perf_counter()
    p, picks = nested(cands, feats, y, games, menu, dev, log)
    ba, auc = pooled(y[dev], p[dev])
    result = {"development": {"tracks": int(dev.sum()), "games": sorted(set(games[dev].tolist())),
                              "ba": ba, "auc": auc, "intervals": game_bootstrap(y[dev], p[dev], games[dev]),
                              "per_game": per_game(y[dev], p[dev], games[dev]), "user": user_rates(y[dev], p[dev]),
                              "reliability": reliability(y[dev], p[dev]), "picks": picks}}
    log(f"nested leave-one-game-out: BA {ba:.3f}, AUC {auc:.3f} ({time.perf_counter() - started:.0f} s)")
    log(json.dumps(result["development"]["intervals"]))
    for r in result["development"]["per_game"]:
        log(f"  {r}")
    if args.embeddings:
        log("musicnn arousal scores (no fitting), and late fusions with the predictions above:")
        result["musicnn_zero_shot"] = zero_shot(p, musicnn_scores(erows), y, games, menu, dev, log)
    if args.zero_shot:
        names = args.zero_shot.split(",")
        if any(not SIGNS.get(n) for n in names):
            sys.exit(f"--zero-shot: only descriptors with a sign prior in SIGNS ({', '.join(n for n, v in SIGNS.items() if v)})")
        log("descriptors as scores (no fitting, oriented by SIGNS), and late fusions with the predictions above:")
        result["descriptor_zero_shot"] = zero_shot(p, {n: SIGNS[n] * matrix(rows["original"], (n,))[:, 0] for n in names},
                                                   y, games, menu, dev, log)

    # the final choice: the same rule over all development games; every configuration's plain
    # (not nested) leave-one-game-out figures kept for the record
    final_cfg, scored = choose(cands, feats, y, games, menu, dev)
    result["configurations"] = [{"config": c, "ba": b, "auc": a} for _, b, a, c in scored]
    log(f"final: {final_cfg}")
    if final_cfg["features"] in EMBEDDING_SETS:
        result["final"] = {"config": final_cfg}
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=1, default=str))
        return 0
    names, top_db = model_inputs(final_cfg["features"])
    result["final"] = {"config": final_cfg, "descriptors": names, "top_db": top_db}
    if args.save_model:
        nested_figures = {k: result["development"][k] for k in ("tracks", "games", "ba", "auc", "intervals", "user")}
        decide = save_final(args.save_model, final_cfg, [t for t, d in zip(tracks, dev) if d], version=args.version,
                            cache=args.cache, log=log, extra_metrics={"nested_leave_one_game_out": {
                                "method": "benchmarks/real_cv.py: every configuration chosen inside the folds; "
                                          "intervals from resampling whole games", **nested_figures}})
    else:
        X = feats[final_cfg["features"]]
        fitted = fit(final_cfg, X[dev], y[dev], weights_of(y[dev], games[dev], menu[dev], final_cfg["menus"]))
        decide = lambda rs: 1 / (1 + np.exp(-fitted.margin(matrix(rs, fitted.names))))  # noqa: E731
    if not args.no_robustness:
        base = decide(rows["original"]) >= 0.5
        result["final"]["flips"] = {a: {"all": float(((decide(rows[a]) >= 0.5) != base).mean()),
                                        "development": float(((decide(rows[a]) >= 0.5) != base)[dev].mean())}
                                    for a in alterations if a != "original"}
        log(f"flips: {result['final']['flips']}")
    if args.compare_with:
        from tagger.weights import load_model

        old = load_model(args.compare_with)
        names_old = old.spec.features.descriptors
        p_old = old.network.probabilities(np.array([[r["features"][n] for n in names_old] for r in rows["original"]]))[:, 1]
        changed = (p_old >= 0.5) != (decide(rows["original"]) >= 0.5)
        result["upgrade"] = {"from": f"{old.spec.name} {old.spec.version}", "tracks": len(tracks),
                             "change_mood": int(changed.sum()),
                             "old_on_development": dict(zip(("ba", "auc"), pooled(y[dev], p_old[dev])))}
        log(f"upgrade from {old.spec.name} {old.spec.version}: {int(changed.sum())} of {len(tracks)} tracks change mood")
    if args.score_lockbox:
        if not args.save_model:
            sys.exit("--score-lockbox scores the model --save-model writes: give both")
        result["lockbox"] = score_lockbox(args.save_model, [t for t, d in zip(tracks, dev) if not d], log)
    if args.save_model:
        add_metrics(args.save_model, {k: v for k, v in (("robustness_flips", result["final"].get("flips")),
                                                          ("lockbox", {x: result.get("lockbox", {}).get(x) for x in
                                                                       ("games", "tracks", "ba", "auc", "user")}
                                                           if "lockbox" in result else None)) if v})
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
