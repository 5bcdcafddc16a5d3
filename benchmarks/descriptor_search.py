#!/usr/bin/env python3
"""How the default's 7th descriptor (flux_mid) was found, and how optimistic that search is.

    python benchmarks/descriptor_search.py --games CORPUS/dev --games-csv ../shared/corpus/dev.csv \\
        --games CORPUS_MORE/dev --games-csv benchmarks/data/more-games/dev.csv \\
        --scores ../shared/corpus/scores [--jobs 2] [--json OUT]

Same tracks, folds, families and weights as benchmarks/grouped_cv.py (spread clips, C = 0.01,
standardised descriptors: the search was run before the quantile transform was adopted). For 17
candidate descriptors besides lean6's 6 (band-limited spectral flux and onset rates, loudness
dynamics, loudness modulation, spectral shares, zero-crossing rate, a beat-range autocorrelation, how
much the 5 clips differ; with --with-pitch 3 more, tried after 1.1.0 for the classical pieces: how
fast the pitch classes change, and librosa's tempo estimate), it prints:
  1. each descriptor's ROC-AUC for "exciting" inside every source that has both labels (a cue that
     transfers points the same way in all of them);
  2. leave-one-source-out BA / ROC-AUC of lean6 plus each candidate, overall and per family;
  3. the search itself validated: in each outer fold, a forward selection (up to 2 descriptors added to
     lean6, each step the best by inner leave-one-source-out BA + AUC over the training sources, kept
     if it gains at least 0.005) picks the set, which then predicts the held-out source.
Part 3 is the honest figure for "lean6 + the best extra descriptor"; part 2's best row is optimistic.

Candidates are computed from each track's spread clips with tagger.descriptors' building blocks,
cached per track under --cache (default ~/.cache/moodtag/descriptor_search). About 80 s cold on
2 cores with --jobs 2, seconds warm.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import hashlib
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import grouped_cv  # noqa: E402
from tagger import descriptors as D  # noqa: E402
from tagger import metrics  # noqa: E402

SR = grouped_cv.SAMPLE_RATE
VERSION = 2  # 2: + chroma_flux, chroma_rate, tempo_lr
LEAN6 = grouped_cv.MODELS["lean6"]["features"]
C = 0.01


PITCH = ("chroma_flux", "chroma_rate", "tempo_lr")


def pitch_and_tempo(x: np.ndarray, Sdb: np.ndarray) -> dict[str, float]:
    """Candidates added in the 1.1.0 follow-up, aimed at the rendered classical pieces, whose labels are
    tempo markings and whose soft string attacks leave few onsets: how fast the notes change, read from
    the pitch classes instead of the attacks, and librosa's own tempo estimate.
      chroma_flux  mean over frames of half the L1 change of the frame-normalised chroma over 4 frames
                   (93 ms): 0 when the pitch classes hold, 1 when they all change
      chroma_rate  changes per second: peaks (librosa onset peak picking) of that change over 2 frames
      tempo_lr     log2 of librosa.feature.tempo on the clips' joined superflux onset envelope"""
    import librosa

    flux, rate = [], []
    for y in x:
        power = np.abs(librosa.stft(y, n_fft=D.N_FFT, hop_length=D.HOP)) ** 2
        chroma = librosa.feature.chroma_stft(S=power, sr=SR, norm=None)
        chroma = chroma / (chroma.sum(axis=0, keepdims=True) + 1e-12)
        flux.append(np.abs(chroma[:, 4:] - chroma[:, :-4]).sum(0).mean() / 2)
        change = np.abs(chroma[:, 2:] - chroma[:, :-2]).sum(0) / 2
        rate.append(len(librosa.onset.onset_detect(onset_envelope=change, sr=SR, hop_length=D.HOP)) / (len(y) / SR))
    env = np.concatenate([D.onset_strength(m, lag=2, max_size=3)[2:] for m in Sdb])
    tempo = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=env, sr=SR, hop_length=D.HOP))[0])
    return {"chroma_flux": float(np.mean(flux)), "chroma_rate": float(np.mean(rate)),
            "tempo_lr": float(np.log2(max(tempo, 1.0)))}


def candidates(samples: np.ndarray) -> dict[str, float]:
    """The candidate descriptors of one track's clips (n_clips, n_samples)."""
    x = np.atleast_2d(np.asarray(samples, dtype=np.float32))
    S, Sdb = D.mels(x, SR)
    freqs = D.band_centres(S.shape[1], SR)
    fps = SR / D.HOP

    def flux(sdb, lo, hi):
        return D.onset_strength(sdb[(freqs >= lo) & (freqs < hi)], lag=2, max_size=3)[2:]

    per = []
    for y, s, sdb in zip(x, S, Sdb):
        env = D.onset_strength(sdb, lag=2, max_size=3)[2:]
        low, high = flux(sdb, 0, 200), flux(sdb, 4000, SR / 2 + 1)
        frames = np.lib.stride_tricks.sliding_window_view(np.pad(y, D.N_FFT // 2), D.N_FFT)[::D.HOP]
        rms_db = 20 * np.log10(np.sqrt((frames.astype(np.float64) ** 2).mean(1)) + 1e-5)
        r = 10 ** (rms_db / 20)
        mod = np.abs(np.fft.rfft(r - r.mean())) ** 2
        mod_hz = np.fft.rfftfreq(len(r), 1 / fps)
        e = env - env.mean()
        acf = np.fft.irfft(np.abs(np.fft.rfft(e, 2 * len(e))) ** 2)[:len(e)]
        acf /= acf[0] + 1e-9
        lags = np.arange(len(e)) / fps
        per.append({
            "flux_mean": env.mean(), "flux_cv": env.std() / (env.mean() + 1e-9),
            "flux_low": low.mean(), "flux_mid": D.flux_mid(sdb, SR), "flux_high": high.mean(),
            "onset_low": D.count_onsets(low, SR) / (len(y) / SR),
            "onset_high": D.count_onsets(high, SR) / (len(y) / SR),
            "rms_std": rms_db.std(), "rms_range": np.percentile(rms_db, 95) - np.percentile(rms_db, 5),
            "mod_2_8": mod[(mod_hz >= 2) & (mod_hz <= 8)].sum() / (mod[mod_hz > 0.2].sum() + 1e-12),
            "mel_spread_db": sdb.std(0).mean(),
            "low_share": s[freqs < 200].sum() / (s.sum() + 1e-20),
            "high_share": s[freqs > 4000].sum() / (s.sum() + 1e-20),
            "zcr": np.abs(np.diff(np.signbit(y).astype(np.int8))).mean(),
            "beat_acf": acf[(lags >= 0.3) & (lags <= 1.0)].max(),
        })
    out = {k: float(np.mean([p[k] for p in per])) for k in per[0]}
    out.update(pitch_and_tempo(x, Sdb))
    out["clip_rms_sd"] = float(np.std([D.rms_db(y) for y in x]))
    fm = np.array([p["flux_mean"] for p in per])
    out["clip_flux_sd"] = float(fm.std() / (fm.mean() + 1e-9))
    return out


def compute(path: str) -> dict:
    from tagger.audio import load_clips
    from tagger.errors import AudioError
    from tagger.weights import ClipPlan

    try:
        clips = load_clips(Path(path), plan=ClipPlan(placement="spread"), sample_rate=SR)
    except AudioError as exc:
        return {"error": str(exc)}
    return candidates(clips.samples)


def cached(args: tuple[str, str]) -> dict:
    path, cache = args
    p = Path(path).resolve()
    st = p.stat()
    key = hashlib.sha1(f"{p}|{st.st_size}|{st.st_mtime_ns}|v{VERSION}".encode()).hexdigest()
    f = Path(cache) / key[:2] / f"{key}.json"
    if f.exists():
        return json.loads(f.read_text())
    res = compute(path)
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(json.dumps(res))
    return res


def oof(X: np.ndarray, y, groups, sources, train: np.ndarray) -> np.ndarray:
    """Leave-one-group-out P(exciting) over the groups in `train` (NaN elsewhere)."""
    from tagger.train_descriptors import fit_logistic

    p = np.full(len(y), np.nan)
    for g in sorted(set(groups[train])):
        test = groups == g
        fit = train & ~test
        z = fit_logistic(X[fit], y[fit], sources[fit], n_labels=2, C=C, transform="standard").logits(X[test])
        p[test] = 1 / (1 + np.exp(-(z[:, 1] - z[:, 0])))
    return p


def scores(y, p, mask) -> tuple[float, float | None]:
    ba = metrics.balanced_accuracy(y[mask], (p[mask] >= 0.5).astype(int), 2)
    return float(ba), metrics.binary_auc(y[mask] == 1, p[mask])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--games", type=Path, required=True, action="append")
    ap.add_argument("--games-csv", type=Path, action="append")
    ap.add_argument("--scores", type=Path, required=True)
    ap.add_argument("--cache", type=Path, default=Path("~/.cache/moodtag/descriptor_search").expanduser())
    ap.add_argument("--gc-cache", type=Path, default=Path("~/.cache/moodtag/grouped_cv").expanduser(),
                    help="grouped_cv.py's cache, for lean6's descriptors")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--with-pitch", action="store_true",
                    help=f"add the candidates of the 1.1.0 follow-up ({', '.join(PITCH)}) to the 17 of the search "
                         "that found flux_mid")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    from tagger.train_descriptors import fit_logistic

    csvs = args.games_csv or [None] * len(args.games)
    tracks = [t for g, c in zip(args.games, csvs) for t in grouped_cv.game_tracks(g.expanduser(), c)]
    tracks += grouped_cv.score_tracks(args.scores.expanduser())
    log = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    base = grouped_cv.load_features(tracks, args.gc_cache.expanduser(), args.jobs, log, "spread")
    jobs = [(t.path, str(args.cache.expanduser())) for t in tracks]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            cand = list(pool.map(cached, jobs, chunksize=4))
    else:
        cand = [cached(j) for j in jobs]
    keep = [i for i, (b, c) in enumerate(zip(base, cand)) if "error" not in b and "error" not in c]
    tracks = [tracks[i] for i in keep]
    values = [{**base[i]["features"], **cand[i]} for i in keep]
    y = np.array([t.label for t in tracks])
    groups = np.array([t.group for t in tracks])
    fam = np.array([t.family for t in tracks])
    sources = np.array([f"{t.family}/{t.group}" for t in tracks], dtype=object)
    names = list(LEAN6) + sorted(k for k in cand[keep[0]] if k not in LEAN6 and (args.with_pitch or k not in PITCH))
    col = {k: np.array([v[k] for v in values]) for k in names}
    everyone = np.ones(len(y), bool)
    out = {"tracks": len(y), "candidates": names[len(LEAN6):]}

    both = [g for g in dict.fromkeys(groups) if len(set(y[groups == g])) == 2 and (groups == g).sum() >= 8]
    print(f"1. ROC-AUC of each descriptor for 'exciting' inside each source with both labels ({', '.join(both)})")
    out["within_source_auc"] = {}
    for k in names:
        a = [metrics.binary_auc(y[groups == g] == 1, col[k][groups == g]) for g in both]
        out["within_source_auc"][k] = dict(zip(both, a))
        print(f"   {k:14s} " + " ".join(f"{v:.2f}" for v in a) + f"   min {min(a):.2f}")

    def row(feats: list[str], p: np.ndarray) -> dict:
        r = {"features": feats, "overall": scores(y, p, everyone)}
        r.update({f: scores(y, p, fam == f) for f in grouped_cv.FAMILIES})
        return r

    def fmt(r: dict) -> str:
        return "  ".join(f"{k} {r[k][0]:.2f}/{r[k][1]:.2f}" for k in ("overall",) + grouped_cv.FAMILIES)

    print("2. leave-one-source-out, lean6 + one candidate (BA / ROC-AUC)")
    out["single"] = {}
    for k in [None] + names[len(LEAN6):]:
        feats = list(LEAN6) + ([k] if k else [])
        r = row(feats, oof(np.stack([col[f] for f in feats], 1), y, groups, sources, everyone))
        out["single"][k or "lean6"] = r
        print(f"   {'lean6' if k is None else '+' + k:15s} {fmt(r)}")

    print("3. the search validated: forward selection inside each outer fold")
    p = np.zeros(len(y))
    chosen = {}
    for hold in dict.fromkeys(groups):
        test, train = groups == hold, groups != hold

        def inner(feats):
            q = oof(np.stack([col[f] for f in feats], 1), y, groups, sources, train)
            ba, auc = scores(y, q, train)
            return ba + (auc or 0)

        cur, best = list(LEAN6), inner(list(LEAN6))
        for _ in range(2):
            gain, k = max((inner(cur + [k]), k) for k in names[len(LEAN6):] if k not in cur)
            if gain < best + 0.005:
                break
            cur, best = cur + [k], gain
        X = np.stack([col[f] for f in cur], 1)
        z = fit_logistic(X[train], y[train], sources[train], n_labels=2, C=C,
                         transform="standard").logits(X[test])
        p[test] = 1 / (1 + np.exp(-(z[:, 1] - z[:, 0])))
        chosen[hold] = cur[len(LEAN6):]
        print(f"   {hold} held out: + {', '.join(chosen[hold]) or 'nothing'}", file=sys.stderr)
    out["nested_forward_selection"] = {**row([], p), "chosen": chosen}
    print(f"   nested forward selection   {fmt(out['nested_forward_selection'])}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
