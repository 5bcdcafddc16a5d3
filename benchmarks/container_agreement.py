#!/usr/bin/env python3
"""Does the same music get the same mood in every container?

    python benchmarks/container_agreement.py --corpus ~/corpus          # the corpus + examples/library
    python benchmarks/container_agreement.py --limit 20 --json           # the first 20 tracks, JSON out

Each source track (every audio file under --corpus, and the six excerpts of examples/library) is
decoded whole (PyAV, gapless), resampled to 44.1 kHz, scaled down if a lossy source overshoots full
scale, and rounded to 16 bits (tagger.synth.as_pcm16), then encoded again by real encoders into WAV,
FLAC, AIFF, ALAC (M4A) -- the same 16-bit samples in each --, MP3 320 kbit/s (LAME via libsndfile),
AAC 256 kbit/s (FFmpeg's encoder via PyAV), Opus 160 kbit/s (libopus via libsndfile) and Vorbis q6
(libvorbis via libsndfile): tagger.synth.CONTAINERS. Every copy is classified with the shipped default
model (tagger.analyze.analyze_track). Per container, against the WAV copy: the share of tracks with
the same mood, the mean and largest |change of P(calm)|, the largest |change of any score| (what the
lossless ones must keep under 0.01), and where the clips start: each clip decoded at 44.1 kHz from
the copy and from the WAV copy, cross-correlated (phase only, GCC-PHAT), the lag (samples) of the
best match; clip starts and durations are compared too. The copies are written to a temporary
folder and deleted: no audio is kept. --seconds cuts each source to its middle N seconds first (the
whole track by default).

Targets (issue 11, item 16): lossless within 0.01 of WAV; lossy the same mood for >= 95 % of tracks
with a mean |change of P(calm)| under 0.03.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples" / "library"
AUDIO = (".ogg", ".oga", ".opus", ".mp3", ".flac", ".m4a", ".wav", ".aif", ".aiff")
SAMPLE_RATE = 44100
MAX_LAG = 2000  # samples searched either way when clips are cross-correlated
SAME_MOOD = 0.95
MEAN_DELTA = 0.03
LOSSLESS_DELTA = 0.01


def sources(corpus: Path | None, *, examples: bool) -> list[Path]:
    found = sorted(p for p in corpus.rglob("*") if p.suffix.lower() in AUDIO) if corpus else []
    if examples:
        found += sorted(p for p in EXAMPLES.rglob("*") if p.suffix.lower() in AUDIO)
    return found


def prepare(path: Path, seconds: float | None):
    """The source as 16-bit-exact float32 (n, channels) at 44.1 kHz, its middle `seconds` if given."""
    from tagger import synth

    x = synth.decode_whole(path, sample_rate=SAMPLE_RATE)
    if seconds and len(x) > seconds * SAMPLE_RATE:
        n = int(seconds * SAMPLE_RATE)
        x = x[(len(x) - n) // 2:(len(x) - n) // 2 + n]
    return synth.as_pcm16(x)


def clip_lags(reference, other) -> list[int]:
    """Per clip, the lag (samples) at which `other` best matches `reference` (positive: other is late),
    by phase-only cross-correlation (GCC-PHAT): a plain one follows the bass, whose phase a lossy codec
    shifts by several samples (Opus on bass-heavy music), so it would report that as a lag."""
    import numpy as np

    lags = []
    for a, b in zip(reference, other):
        n = len(a)
        cross = np.fft.rfft(b, 2 * n) * np.conj(np.fft.rfft(a, 2 * n))
        c = np.fft.irfft(cross / (np.abs(cross) + 1e-12), 2 * n)
        window = np.concatenate([c[-MAX_LAG:], c[:MAX_LAG + 1]])
        lags.append(int(np.argmax(window)) - MAX_LAG)
    return lags


def measure(path: str, seconds: float | None) -> dict:
    """One source in every container: its scores, clip starts, duration and clip lags against WAV."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from tagger import synth
    from tagger.analyze import analyze_track
    from tagger.audio import load_clips
    from tagger.weights import load_model

    model = load_model()
    x = prepare(Path(path), seconds)
    out = {"source": path, "seconds": len(x) / SAMPLE_RATE, "containers": {}}
    with tempfile.TemporaryDirectory(prefix="moodtag-containers-") as tmp:
        reference = None
        for name, (suffix, settings) in synth.CONTAINERS.items():
            file = synth.encode(x, Path(tmp) / f"track{suffix}", sample_rate=SAMPLE_RATE, **settings)
            result = analyze_track(file, model)
            row = {"error": result.error} if result.error else {
                "mood": result.mood, "scores": result.scores, "duration": result.duration,
                "starts": [c.start for c in result.clips]}
            if not result.error:
                clips = load_clips(file, plan=model.spec.clips, sample_rate=SAMPLE_RATE).samples
                if reference is None:
                    reference = clips
                elif clips.shape == reference.shape:
                    row["lags"] = clip_lags(reference, clips)
            out["containers"][name] = row
            file.unlink()
    return out


def summarise(results: list[dict]) -> dict:
    """Per container, against WAV: same mood share, |change of P(calm)|, largest |change of a score|,
    clip lags, tracks whose clip starts or duration differ."""
    from tagger import synth

    summary = {}
    for name in synth.CONTAINERS:
        if name == "wav":
            continue
        deltas, score_deltas, lags, same, compared, failed, moved, longer = [], [], [], 0, 0, [], [], []
        for r in results:
            wav, other = r["containers"].get("wav", {}), r["containers"].get(name, {})
            if "scores" not in wav or "scores" not in other:
                if "scores" in wav:
                    failed.append(f"{r['source']}: {other.get('error')}")
                continue
            compared += 1
            same += other["mood"] == wav["mood"]
            deltas.append(abs(other["scores"]["calm"] - wav["scores"]["calm"]))
            score_deltas.append(max(abs(other["scores"][k] - v) for k, v in wav["scores"].items()))
            lags += other.get("lags", [])
            if other["starts"] != wav["starts"]:
                moved.append(r["source"])
            if abs(other["duration"] - wav["duration"]) > 0.001:
                longer.append((r["source"], round(other["duration"] - wav["duration"], 4)))
        lossless = name in synth.LOSSLESS
        row = {"tracks": compared, "same_mood": same / compared if compared else None,
               "mean_abs_dp_calm": statistics.fmean(deltas) if deltas else None,
               "max_abs_dp_calm": max(deltas, default=None),
               "max_abs_d_score": max(score_deltas, default=None),
               "clip_lag_samples": {"max_abs": max(map(abs, lags), default=None),
                                    "nonzero": sum(1 for g in lags if g), "clips": len(lags)},
               "clip_starts_differ": moved, "duration_differs": longer, "failed": failed}
        if lossless:
            row["meets_target"] = bool(compared) and row["max_abs_d_score"] <= LOSSLESS_DELTA
        else:
            row["meets_target"] = bool(compared) and row["same_mood"] >= SAME_MOOD and row["mean_abs_dp_calm"] < MEAN_DELTA
        summary[name] = row
    return summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--corpus", type=Path, help="folder of real music (e.g. ~/corpus, see shared/corpus/README.md)")
    ap.add_argument("--no-examples", action="store_true", help="leave out examples/library")
    ap.add_argument("--limit", type=int, default=0, help="only the first N sources")
    ap.add_argument("--seconds", type=float, default=0, help="cut each source to its middle N seconds")
    ap.add_argument("--jobs", "-j", type=int, default=2)
    ap.add_argument("--json", action="store_true", help="print the per-container figures as JSON")
    ap.add_argument("--details", type=Path, help="also write every track's figures to this JSON file")
    args = ap.parse_args(argv)

    paths = sources(args.corpus, examples=not args.no_examples)
    if args.limit:
        paths = paths[:args.limit]
    if not paths:
        ap.error("no source tracks (give --corpus, or keep the examples)")
    started = time.time()
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = []
        for i, r in enumerate(pool.map(measure, map(str, paths), [args.seconds or None] * len(paths)), 1):
            results.append(r)
            print(f"[{i}/{len(paths)}] {r['source']}", file=sys.stderr)
    summary = summarise(results)
    report = {"sources": len(paths), "seconds_total": round(sum(r["seconds"] for r in results), 1),
              "wall_s": round(time.time() - started, 1), "containers": summary}
    if args.details:
        args.details.write_text(json.dumps(results, indent=1))
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"{len(paths)} tracks ({report['seconds_total'] / 60:.0f} min of audio), {report['wall_s']:.0f} s")
    print(f"{'container':<11} {'same mood':>9} {'mean|dP|':>9} {'max|dP|':>8} {'max|dS|':>8} "
          f"{'max|lag|':>8} {'lag!=0':>8} {'starts!=':>8} {'target':>7}")
    for name, row in summary.items():
        lag = row["clip_lag_samples"]
        print(f"{name:<11} {row['same_mood']:>9.1%} {row['mean_abs_dp_calm']:>9.4f} {row['max_abs_dp_calm']:>8.4f} "
              f"{row['max_abs_d_score']:>8.4f} {lag['max_abs']!s:>8} {lag['nonzero']:>3}/{lag['clips']:<4} "
              f"{len(row['clip_starts_differ']):>8} {'met' if row['meets_target'] else 'MISSED':>7}")
        for problem in row["failed"] + [f"duration differs: {s} {d:+} s" for s, d in row["duration_differs"]]:
            print(f"    {problem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
