"""Do augmentation or more clips help the default model? Leave-one-source-out on the folds of grouped_cv.py.

The issue names these ways past the source confound for a model that falls short: timbre and EQ
changes, mixing, more clips per track in training and test-time clip averaging. This script measures
each one for the default model (moodtag-rhythm: grouped_cv.py's lean6-flux-q recipe, with the same
tracks, folds, family weights, quantile-normal transform and C). The held-out tracks are always
scored the way a scan scores them, on their own unaltered clips.

  python benchmarks/augment_cv.py --games CORPUS/dev --games-csv ../shared/corpus/dev.csv \\
      --games MORE/dev --games-csv benchmarks/data/more-games/dev.csv \\
      --scores ../shared/corpus/scores --jobs 2 --json benchmarks/out/augment_cv.json

Each alteration is applied to the track's decoded clips (the default plan: 5 x 5 s spread over the
middle 60 %), and the descriptors are computed from the result with the shipped code
(tagger.descriptors.track_descriptors):
  tilt_up, tilt_down   a spectral tilt of +3 / -3 dB per octave about 1 kHz (a brighter / darker timbre)
  lowpass              a low-pass at 3 kHz (magnitude 1/sqrt(1 + (f/3000)^8)): muffled, band-limited
  highpass             a high-pass at 250 Hz (magnitude 1/sqrt(1 + (250/f)^4)): no bass
  gain                 -8 dB: a quieter master
  mix                  plus the clips of a track of another family at -12 dB of the track's RMS (the
                       partner is drawn with --seed; a fold never trains on a mix whose partner it
                       holds out): an acoustic track over electronics and back
An altered track that would clip is turned down as a whole (peak 1), as a mastering engineer would.
More clips:
  sets                 two more sets of clips per training track: the odd and the even clips of a
                       10-clip spread plan
  clips10              the 10-clip plan for training and for the held-out tracks: test-time averaging
                       over twice the clips, at twice the cost
In training, a track's weight (tagger.train_descriptors.sample_weights) is shared evenly by its
original and its altered copies, so no source or label gains weight, and the quantile transform and
standardisation are fitted on the original rows only. Last, it reports how far each
alteration moves the shipped model's own decisions on the same tracks (--model). Features are cached per track
(~/.cache/moodtag/augment_cv): about 11 minutes cold on 2 cores with --jobs 2, seconds warm.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import grouped_cv  # noqa: E402
from tagger import metrics  # noqa: E402

VERSION = 2  # 2: an altered track that would clip is turned down, not clipped
SR = grouped_cv.SAMPLE_RATE
ALTERATIONS = ("tilt_up", "tilt_down", "lowpass", "highpass", "gain", "mix")
MIX_DB, GAIN_DB = -12.0, -8.0
# the rows of the table: name -> (training copies, the held-out tracks' descriptors)
ROWS = {
    "default (no augmentation)": ((), "orig"),
    **{f"+ {a}": ((a,), "orig") for a in ALTERATIONS},
    "+ timbre (tilts, low-pass, high-pass)": (("tilt_up", "tilt_down", "lowpass", "highpass"), "orig"),
    "+ timbre + mix": (("tilt_up", "tilt_down", "lowpass", "highpass", "mix"), "orig"),
    "+ all six": (ALTERATIONS, "orig"),
    "+ 2 more clip sets per training track": (("even", "odd"), "orig"),
    "10 clips per track, training and test": ((), "clips10"),
}


# ---------------------------------------------------------------- the alterations

def _filtered(clips: np.ndarray, gain) -> np.ndarray:
    """Each clip through a zero-phase filter of magnitude gain(f Hz)."""
    spectrum = np.fft.rfft(clips, axis=-1)
    f = np.fft.rfftfreq(clips.shape[-1], 1 / SR)
    return np.fft.irfft(spectrum * gain(f), n=clips.shape[-1], axis=-1)


def altered(clips: np.ndarray, partner: np.ndarray) -> dict[str, np.ndarray]:
    """The track's clips (n, samples) -> {alteration: clips}; `partner` is another track's clips."""
    if len(partner) != len(clips):
        partner = np.resize(partner, clips.shape)
    rms = np.sqrt(np.mean(clips.astype(np.float64) ** 2)) + 1e-9
    p_rms = np.sqrt(np.mean(partner.astype(np.float64) ** 2)) + 1e-9
    out = {
        "tilt_up": _filtered(clips, lambda f: (np.maximum(f, 50.0) / 1000.0) ** 0.5),
        "tilt_down": _filtered(clips, lambda f: (np.maximum(f, 50.0) / 1000.0) ** -0.5),
        "lowpass": _filtered(clips, lambda f: 1 / np.sqrt(1 + (f / 3000.0) ** 8)),
        "highpass": _filtered(clips, lambda f: 1 / np.sqrt(1 + (250.0 / np.maximum(f, 1.0)) ** 4)),
        "gain": clips * 10 ** (GAIN_DB / 20),
        "mix": clips + partner * (rms / p_rms) * 10 ** (MIX_DB / 20),
    }
    # an altered track that would clip is turned down as a whole, as a mastering engineer would
    return {k: (v / max(1.0, float(np.abs(v).max()))).astype(np.float32) for k, v in out.items()}


def compute(args: tuple[str, str]) -> dict:
    """One track (and its mixing partner) -> {variant: descriptors} or {"error": ...}."""
    import torch

    torch.set_num_threads(1)
    from tagger.audio import load_clips
    from tagger.descriptors import track_descriptors
    from tagger.errors import AudioError
    from tagger.weights import ClipPlan

    path, partner = args

    def clips_of(p: str, count: int = 5) -> np.ndarray | None:
        try:
            return load_clips(Path(p), plan=ClipPlan(count=count, placement="spread"), sample_rate=SR).samples
        except AudioError:
            return None

    try:
        clips = load_clips(Path(path), plan=ClipPlan(placement="spread"), sample_rate=SR).samples
    except AudioError as exc:
        return {"error": str(exc)}
    out = {"orig": track_descriptors(clips, SR)[0]}
    ten = clips_of(path, 10)
    if ten is not None:  # without it the "10 clips" row scores the track on its 5 clips
        out["clips10"] = track_descriptors(ten, SR)[0]
        if len(ten) >= 2:
            out["even"] = track_descriptors(ten[0::2], SR)[0]
            out["odd"] = track_descriptors(ten[1::2], SR)[0]
    other = clips_of(partner)
    versions = altered(clips, other if other is not None else clips)
    if other is None:  # the partner does not decode: no mixed copy
        del versions["mix"]
    out.update({k: track_descriptors(v, SR)[0] for k, v in versions.items()})
    return out


def cache_file(cache: Path, path: str, partner: str) -> Path:
    p, q = Path(path).resolve(), Path(partner).resolve()
    st, sq = p.stat(), q.stat()
    key = hashlib.sha1(f"{p}|{st.st_size}|{st.st_mtime_ns}|{q}|{sq.st_size}|{sq.st_mtime_ns}|v{VERSION}"
                       .encode()).hexdigest()
    return cache / key[:2] / f"{key}.json"


def load(pairs: list[tuple[str, str]], cache: Path, jobs: int, log) -> list[dict]:
    return grouped_cv.cached_map(compute, [(pair,) for pair in pairs], [cache_file(cache, *pair) for pair in pairs],
                                 cache, jobs, log, "augmented descriptors")


def partners(tracks: list, seed: int) -> list[str]:
    """For each track, a track of another family to mix in (seeded)."""
    rng = np.random.default_rng(seed)
    fam = np.array([t.family for t in tracks])
    return [tracks[int(rng.choice(np.flatnonzero(fam != t.family)))].path for t in tracks]


# ---------------------------------------------------------------- the folds

def cross_validate(values: list[dict], copies: tuple[str, ...], test_key: str, y, groups, sources,
                   partner_groups, cfg: dict, seed: int) -> np.ndarray:
    """Leave-one-group-out P(exciting): each fold trained on its tracks plus their `copies`, each copy
    carrying an equal share of its track's weight (a mixed copy only where its partner is not in the
    held-out fold); the transform and standardisation fitted on the tracks' own rows; held-out tracks
    scored on `test_key` descriptors (a track without them on its own 5 clips)."""
    from tagger.train_descriptors import fit_logistic, sample_weights

    names = cfg["features"]

    def matrix(key: str, rows: np.ndarray) -> np.ndarray:
        return np.array([[values[i].get(key, values[i]["orig"])[k] for k in names] for i in rows])

    train_key = "clips10" if test_key == "clips10" else "orig"
    p = np.zeros(len(y))
    for hold in sorted(set(groups.tolist())):
        test, train = np.flatnonzero(groups == hold), np.flatnonzero(groups != hold)
        w = sample_weights(y[train], sources[train], 2)
        have = {c: np.array([c in values[i] and (c != "mix" or partner_groups[i] != hold) for i in train])
                for c in copies}
        share = w / (1 + sum(have.values()))
        X = [matrix(train_key, train)]
        Y, W = [y[train]], [share]
        for c in copies:
            rows = train[have[c]]
            X.append(matrix(c, rows))
            Y.append(y[rows])
            W.append(share[have[c]])
        own = np.arange(sum(len(x) for x in X)) < len(train)
        model = fit_logistic(np.vstack(X), np.concatenate(Y), None, n_labels=2, C=cfg["C"], seed=seed,
                             transform=cfg.get("transform", "standard"), weights=np.concatenate(W), fit_rows=own)
        z = model.logits(matrix(test_key, test))
        p[test] = 1 / (1 + np.exp(-(z[:, 1] - z[:, 0])))
    return p


def summary(y, p, fam, groups) -> dict:
    def sc(m):
        return {"ba": float(metrics.balanced_accuracy(y[m], (p[m] >= 0.5).astype(int), 2)),
                "auc": metrics.binary_auc(y[m] == 1, p[m])}

    out = {"overall": sc(np.ones(len(y), bool))}
    out.update({f: sc(fam == f) for f in grouped_cv.FAMILIES})
    # inside each source with both labels and at least 8 tracks: does the ranking transfer within a game?
    out["within_source_auc"] = {g: metrics.binary_auc(y[groups == g] == 1, p[groups == g])
                                for g in dict.fromkeys(groups)
                                if len(set(y[groups == g].tolist())) == 2 and (groups == g).sum() >= 8}
    return out


def sensitivity(values: list[dict], fam: np.ndarray, model: Path) -> dict:
    """How much each alteration moves the shipped model's decision on the same tracks: median |change|
    of the logit, mean change, and the share of decisions that flip, overall and on the games."""
    from tagger.weights import load_model

    loaded = load_model(model)
    names = loaded.spec.features.descriptors

    def logit(key: str) -> np.ndarray:
        """The logits on `key` descriptors (a track without them: on its own, so it cannot flip)."""
        z = loaded.network.logits(np.array([[v.get(key, v["orig"])[k] for k in names] for v in values]))
        return z[:, 1] - z[:, 0]

    t = loaded.spec.threshold if loaded.spec.threshold is not None else 0.5
    cut = np.log(t / (1 - t))  # the model decides "exciting" at P >= threshold
    base = logit("orig")
    out = {"model": f"{loaded.spec.name} {loaded.spec.version}", "logit_sd": float(base.std())}
    for key in ALTERATIONS + ("clips10",):
        z = logit(key)
        flip = (z >= cut) != (base >= cut)
        out[key] = {"median_abs_change": float(np.median(np.abs(z - base))), "mean_change": float(np.mean(z - base)),
                    "flips": float(flip.mean()), "games_flips": float(flip[fam == "games"].mean())}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--games", type=Path, required=True, action="append")
    ap.add_argument("--games-csv", type=Path, action="append")
    ap.add_argument("--scores", type=Path, required=True)
    ap.add_argument("--cache", type=Path, default=Path("~/.cache/moodtag/augment_cv").expanduser())
    ap.add_argument("--seed", type=int, default=0, help="mixing partners and the regression")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--model", type=Path, default=HERE.parent / "models" / "moodtag-rhythm.safetensors",
                    help="the model whose sensitivity to each alteration is reported (default: the shipped one)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    log = lambda msg: print(msg, file=sys.stderr)  # noqa: E731

    csvs = args.games_csv or [None] * len(args.games)
    if len(csvs) != len(args.games):
        ap.error("give one --games-csv per --games (or none)")
    tracks = [t for g, c in zip(args.games, csvs) for t in grouped_cv.game_tracks(g.expanduser(), c)]
    tracks += grouped_cv.score_tracks(args.scores.expanduser())
    started = time.perf_counter()
    mates = partners(tracks, args.seed)
    group_of = {t.path: t.group for t in tracks}
    values = load(list(zip([t.path for t in tracks], mates)), args.cache.expanduser(), args.jobs, log)
    for t, v in zip(tracks, values):
        if "error" in v:
            log(f"left out: {t.path}: {v['error']}")
    keep = [i for i, v in enumerate(values) if "error" not in v]
    tracks, values = [tracks[i] for i in keep], [values[i] for i in keep]
    partner_groups = [group_of[mates[i]] for i in keep]
    y = np.array([t.label for t in tracks])
    groups = np.array([t.group for t in tracks])
    fam = np.array([t.family for t in tracks])
    sources = np.array([f"{t.family}/{t.group}" for t in tracks], dtype=object)
    cfg = grouped_cv.MODELS[grouped_cv.DEFAULT]

    results = {}
    for name, (copies, test_key) in ROWS.items():
        p = cross_validate(values, copies, test_key, y, groups, sources, partner_groups, cfg, args.seed)
        results[name] = summary(y, p, fam, groups)
    seconds = time.perf_counter() - started

    def cell(r):
        return f"{r['ba']:.3f} / {r['auc']:.3f}" if r["auc"] is not None else f"{r['ba']:.3f} / -"

    both = list(next(iter(results.values()))["within_source_auc"])
    print(f"Leave-one-source-out, {len(tracks)} tracks, {len(set(groups.tolist()))} folds; "
          f"BA at 0.5 / ROC-AUC, pooled out of fold; default recipe {grouped_cv.DEFAULT}")
    print(f"{'training':42s} {'overall':>15s} " + " ".join(f"{f:>15s}" for f in grouped_cv.FAMILIES)
          + "   within-source AUC: " + " ".join(both))
    for name, r in results.items():
        print(f"{name:42s} {cell(r['overall']):>15s} " + " ".join(f"{cell(r[f]):>15s}" for f in grouped_cv.FAMILIES)
              + "   " + " ".join(f"{r['within_source_auc'][g]:.2f}" for g in both))
    sens = sensitivity(values, fam, args.model)
    print(f"\nSensitivity of {sens['model']} to each alteration, same tracks (its logit's SD over the tracks: "
          f"{sens['logit_sd']:.2f})")
    print(f"{'alteration':12s} {'median |change|':>16s} {'mean change':>12s} {'flips':>7s} {'games':>7s}")
    for key in ALTERATIONS + ("clips10",):
        r = sens[key]
        print(f"{key:12s} {r['median_abs_change']:16.2f} {r['mean_change']:+12.2f} {r['flips']:7.3f} {r['games_flips']:7.3f}")
    print(f"{seconds:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"command": " ".join(sys.argv), "seed": args.seed, "tracks": len(tracks),
                                         "seconds": round(seconds, 1), "recipe": grouped_cv.DEFAULT,
                                         "rows": {k: {"copies": list(c), "test": t} for k, (c, t) in ROWS.items()},
                                         "results": results, "sensitivity": sens}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
