#!/usr/bin/env python3
"""Inference cost per track of the shipped models, measured side by side.

    python benchmarks/model_cost.py [--tracks 16] [--repeat 5] [--models moodtag-rhythm,moodtag-cnn] [FILE...]

For each track (FILEs, or `--tracks` generated 3-4 min tracks in several formats), each model runs
`tagger.analyze.analyze_track` (decode the 5 clips, features, model) and, separately, only the
part after decoding (`tagger.analyze.predict` on the decoded clips). The models alternate track by
track and repeat by repeat, so machine load hits them alike. One torch/BLAS thread, as a scan worker
has. Prints the median milliseconds per track and each model's ratio to the first one's median.

`--musicnn 1|2` adds a row for the musicnn MTT embedding (benchmarks/musicnn_port.py) of 1 or 2 3 s patches per clip
of the same 5 clips decoded at 16 kHz: what a linear head on it would cost (benchmarks/ACCURACY.md).
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


class MusicnnCost:
    """The musicnn MTT embedding of `per_clip` 3 s patches of each clip of `plan`, decoded at 16 kHz."""

    def __init__(self, per_clip: int, plan) -> None:
        import musicnn_port as musicnn

        self.per_clip, self.plan, self.tagger = per_clip, plan, musicnn.shipped_tagger("MTT_musicnn")

    def embed(self, clips16):
        import musicnn_port as musicnn

        mel = musicnn.log_mel(clips16)
        patches = musicnn.patches(mel, 126) if self.per_clip == 2 else mel[:, :musicnn.FRAMES]
        return musicnn.embed(self.tagger, patches)

    def track(self, path: Path):
        from tagger.audio import load_clips

        return self.embed(load_clips(path, plan=self.plan, sample_rate=16000).samples)


def run(model, path: Path) -> None:
    """One track end to end: analyze_track for a model, decode + embedding for MusicnnCost."""
    from tagger.analyze import analyze_track

    if isinstance(model, MusicnnCost):
        model.track(path)
        return
    result = analyze_track(path, model)
    assert result.ok, result.error


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--tracks", type=int, default=16, help="generated tracks when no FILE is given")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--models", default="moodtag-rhythm,moodtag-cnn")
    ap.add_argument("--musicnn", type=int, choices=(1, 2), help="also time the musicnn embedding, patches per clip")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from tagger.analyze import predict
    from tagger.audio import load_clips
    from tagger.weights import load_model

    names = [m.strip() for m in args.models.split(",") if m.strip()]
    models = [load_model(m) for m in names]
    if args.musicnn:
        names.append(f"musicnn-MTT x{5 * args.musicnn}")
        models.append(MusicnnCost(args.musicnn, models[0].spec.clips))
    with tempfile.TemporaryDirectory() as tmp:
        files = args.files or make_tracks(Path(tmp), args.tracks)
        decoded = [load_clips(f, plan=models[0].spec.clips, sample_rate=models[0].spec.sample_rate).samples
                   for f in files]
        decoded16 = [load_clips(f, plan=models[0].spec.clips, sample_rate=16000).samples for f in files]
        for m in models:  # warm up: first calls build filterbanks, import scipy
            run(m, files[0])
        total = {n: [] for n in names}
        after = {n: [] for n in names}
        for r in range(args.repeat):
            for i, (f, clips, clips16) in enumerate(zip(files, decoded, decoded16)):
                order = list(zip(names, models))
                if (i + r) % 2:
                    order.reverse()
                for n, m in order:
                    t0 = time.perf_counter()
                    run(m, f)
                    t1 = time.perf_counter()
                    m.embed(clips16) if isinstance(m, MusicnnCost) else predict(m, clips)
                    t2 = time.perf_counter()
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
