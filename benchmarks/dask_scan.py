"""What `scan --dask-scheduler` costs beside a local scan, on one machine.

Builds a small library of synthetic tracks (tagger.synth; FLAC, MP3, Ogg Vorbis, WAV), starts a Dask
LocalCluster on loopback (N worker processes, one thread each), and times cold scans with the real
CLI (`--no-write`, a fresh cache each time): local with `--jobs N`, and on the cluster, alternating,
`--repeat` times each. Prints each run, the medians and their ratio, and checks that both caches
hold the same moods and confidences. The cluster's workers keep the model loaded between scans, as
a long-running cluster would; the local scan starts its worker processes every time.

    python benchmarks/dask_scan.py --tracks 24 --seconds 60 --workers 2 --repeat 3
"""
from __future__ import annotations

import argparse
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FORMATS = ("flac", "mp3", "ogg", "wav")


def build_library(folder: Path, tracks: int, seconds: float) -> None:
    from tagger import synth

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(tracks):
        mood = "calm" if i % 2 == 0 else "exciting"
        synth.make_track(folder / f"{i:03d}-{mood}.{FORMATS[i % len(FORMATS)]}", mood, seconds, seed=i)


def timed_scan(lib: Path, db: Path, extra: list[str]) -> float:
    db.unlink(missing_ok=True)
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "tagger", "scan", str(lib), "--db", str(db), "--no-write", *extra],
                   check=True, capture_output=True, text=True)
    return time.monotonic() - started


def cached(db: Path) -> dict[str, tuple]:
    with sqlite3.connect(db) as con:
        return {Path(p).name: (m, c) for p, m, c in con.execute("SELECT path, mood, confidence FROM tracks")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each synthetic track")
    parser.add_argument("--workers", type=int, default=2, help="local --jobs, and the cluster's worker processes")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--model", default=None, help="a model name or file (default: the shipped default)")
    args = parser.parse_args()

    from distributed import LocalCluster

    model = ["--model", args.model] if args.model else []
    with tempfile.TemporaryDirectory(prefix="moodtag-dask-bench-") as tmp:
        base = Path(tmp)
        build_library(base / "lib", args.tracks, args.seconds)
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=":0") as cluster:
            runs = {"local": [], "dask": []}
            for _ in range(args.repeat):
                runs["local"].append(timed_scan(base / "lib", base / "local.db", ["--jobs", str(args.workers), *model]))
                runs["dask"].append(timed_scan(base / "lib", base / "dask.db",
                                               ["--dask-scheduler", cluster.scheduler_address, *model]))
            same = cached(base / "local.db") == cached(base / "dask.db")
    local, dask = statistics.median(runs["local"]), statistics.median(runs["dask"])
    print(f"{args.tracks} tracks of {args.seconds:g} s, {args.workers} workers, model {args.model or 'default'}")
    for kind, times in runs.items():
        print(f"  {kind:5s} runs: {', '.join(f'{t:.2f}' for t in times)} s; median {statistics.median(times):.2f} s "
              f"({args.tracks / statistics.median(times):.2f} tracks/s)")
    print(f"  dask / local time: {dask / local:.2f}x; same moods and confidences: {same}")


if __name__ == "__main__":
    main()
