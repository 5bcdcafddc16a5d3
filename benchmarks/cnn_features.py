#!/usr/bin/env python3
"""The seed CNN's inputs for the development games, packed for `benchmarks/cnn_cv.py` (issue 12).

    python benchmarks/cnn_features.py --games CORPUS/dev --games-csv ../shared/corpus/dev.csv \\
        --games MORE/dev --games-csv benchmarks/data/more-games/dev.csv --out benchmarks/out/cnn/dev.npz

The same tracks as `benchmarks/real_cv.py`, lockbox games (Starfighter, Hedgewars) left out: their audio is
never read here. For each track, moodtag-cnn's own feature matrix (`tagger.feature_cache.track_matrix`: the
mel spectrogram in dB of the middle 60 % of the track, moodtag's feature cache used) gives

- `infer`: the five inference clips exactly as `moodtag scan` takes them (5 contiguous 5 s clips from the
  middle, each resized to 128 x 128), and
- `pool`: the middle of the matrix (at most `--pool-seconds`, default 50 s) with its time axis resized by
  the same factor (216 frames of a 5 s clip -> 128 columns), so that any 128 columns are a 5 s training crop
  resized as inference resizes it (up to the interpolation's phase at the crop's edges).

Both are stored as uint8 at 0.6 dB steps from -100 dB to +53 dB (`DB_LO`, `DB_STEP`), about 40 MB for 183 tracks: small
enough to travel to a GPU machine that has torch but no librosa. Labels, games and the menu/title/credits
flag come from the label tables, as in real_cv.py.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DB_LO, DB_STEP = -100.0, 0.6


def quantize(db: np.ndarray) -> np.ndarray:
    return np.clip(np.rint((db - DB_LO) / DB_STEP), 0, 255).astype(np.uint8)


def track_inputs(path: str, pool_seconds: float) -> dict:
    from tagger.audio import clip_offsets
    from tagger.feature_cache import default_cache_dir, track_matrix
    from tagger.features import resize
    from tagger.weights import load_model

    spec = load_model(Path(__file__).resolve().parents[1] / "models" / "moodtag-cnn.safetensors").spec
    tm = track_matrix(Path(path), spec=spec, span=0.6, cache_dir=default_cache_dir())
    m = tm.matrix.astype(np.float32)
    starts = [tm.frame_at(s) for s in clip_offsets(tm.duration, spec.clips)]
    infer = resize(np.stack([m[:, k:k + tm.clip_frames] for k in starts]), spec.features.size)
    cols = max(128, int(round(m.shape[1] * 128 / tm.clip_frames)))
    whole = resize(m[None], (m.shape[0], cols))[0]
    keep = min(cols, int(round(pool_seconds / spec.clips.seconds * 128)))
    lo = (cols - keep) // 2
    return {"infer": quantize(infer), "pool": quantize(whole[:, lo:lo + keep]),
            "db_max": float(m.max()), "clips": len(starts)}


def main(argv=None) -> int:
    import real_cv
    from joblib import Parallel, delayed

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--games", type=Path, action="append", required=True)
    ap.add_argument("--games-csv", type=Path, action="append", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--pool-seconds", type=float, default=50.0)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    tracks = [t for folder, table in zip(args.games, args.games_csv) for t in real_cv.game_tracks(folder, table)]
    tracks = [t for t in tracks if t.game not in real_cv.LOCKBOX]
    got = Parallel(n_jobs=args.jobs, verbose=5)(delayed(track_inputs)(t.path, args.pool_seconds) for t in tracks)
    short = [t.path for t, g in zip(tracks, got) if g["clips"] != 5]
    if short:
        print(f"{len(short)} tracks with fewer than 5 clips (kept, padded by repeating): {short}", file=sys.stderr)
    infer = np.stack([np.concatenate([g["infer"]] * 5)[:5] for g in got])
    lengths = np.array([g["pool"].shape[1] for g in got])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, infer=infer, pool=np.concatenate([g["pool"] for g in got], axis=1),
                        lengths=lengths, y=np.array([t.label for t in tracks]),
                        games=np.array([t.game for t in tracks]), menu=np.array([t.menu for t in tracks]),
                        paths=np.array([Path(t.path).name for t in tracks]), db_lo=DB_LO, db_step=DB_STEP)
    print(f"{len(tracks)} tracks, {sorted(set(t.game for t in tracks))}; pool {lengths.sum()} columns "
          f"(median {np.median(lengths):.0f}); loudest value {max(g['db_max'] for g in got):.1f} dB; "
          f"{args.out.stat().st_size / 1e6:.1f} MB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
