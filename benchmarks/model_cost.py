#!/usr/bin/env python3
"""Inference cost per track of the shipped models, measured side by side.

    python benchmarks/model_cost.py [--tracks 16] [--repeat 5] [--models moodtag-rhythm,moodtag-cnn] [FILE...]

For each track (FILEs, or `--tracks` generated 3-4 min tracks in several formats), each model runs
`tagger.analyze.analyze_track` (decode the 5 clips, features, model) and, separately, only the
part after decoding (`tagger.analyze.predict` on the decoded clips). The models alternate track by
track and repeat by repeat, so machine load hits them alike. One torch/BLAS thread, as a scan worker
has. Prints the median milliseconds per track and each model's ratio to the first one's median.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def make_tracks(folder: Path, n: int) -> list[Path]:
    from tagger.synth import make_track

    formats = ("mp3", "ogg", "flac", "m4a", "opus", "wav")
    return [make_track(folder / f"t{i:02d}.{formats[i % len(formats)]}", ("calm", "exciting")[i % 2],
                       180.0 + 60.0 * (i % 2), seed=i) for i in range(n)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--tracks", type=int, default=16, help="generated tracks when no FILE is given")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--models", default="moodtag-rhythm,moodtag-cnn")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from tagger.analyze import analyze_track, predict
    from tagger.audio import load_clips
    from tagger.weights import load_model

    names = [m.strip() for m in args.models.split(",") if m.strip()]
    models = [load_model(m) for m in names]
    with tempfile.TemporaryDirectory() as tmp:
        files = args.files or make_tracks(Path(tmp), args.tracks)
        decoded = [load_clips(f, plan=models[0].spec.clips, sample_rate=models[0].spec.sample_rate).samples
                   for f in files]
        for m in models:  # warm up: first calls build filterbanks, import scipy
            analyze_track(files[0], m)
        total = {n: [] for n in names}
        after = {n: [] for n in names}
        for r in range(args.repeat):
            for i, (f, clips) in enumerate(zip(files, decoded)):
                order = list(zip(names, models))
                if (i + r) % 2:
                    order.reverse()
                for n, m in order:
                    t0 = time.perf_counter()
                    result = analyze_track(f, m)
                    t1 = time.perf_counter()
                    predict(m, clips)
                    t2 = time.perf_counter()
                    assert result.ok, result.error
                    total[n].append(t1 - t0)
                    after[n].append(t2 - t1)
    base_total = statistics.median(total[names[0]])
    base_after = statistics.median(after[names[0]])
    print(f"{len(files)} tracks x {args.repeat} repeats, 1 thread, load average {os.getloadavg()[0]:.1f}")
    print(f"{'model':20s} {'track ms':>9s} {'ratio':>6s} {'after decoding ms':>18s} {'ratio':>6s}")
    for n in names:
        t, a = statistics.median(total[n]), statistics.median(after[n])
        print(f"{n:20s} {t * 1000:9.1f} {t / base_total:6.2f} {a * 1000:18.1f} {a / base_after:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
