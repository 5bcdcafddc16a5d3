#!/usr/bin/env python3
"""How much a scan loses on a slow network share, with and without reading ahead.

    python benchmarks/slow_storage.py                     # 48 tracks, 20 ms a read, 5 runs each
    python benchmarks/slow_storage.py --latency-ms 50 --tracks 24 --repeat 1

The share is real: benchmarks/slowfs.py, a FUSE passthrough under the system's Python 3 (needs
/dev/fuse, root, and fuse-python: `apt install python3-fuse`), mirrors the library read only and makes
every read request the kernel sends wait --latency-ms; the kernel keeps what it read in its page cache
as the NFS and SMB clients do. Each slow scan gets a fresh mount, so nothing is cached in it yet.

The library is generated once into benchmarks/out/slow/: 12 music-like tracks of 3 minutes (calm and
exciting, MP3, FLAC, Ogg Vorbis, Opus, M4A, WAV; tagger.synth), copied to --tracks files. The files
on local disk are in the page cache (just written or read), as are those the share serves, so the
difference is the share's latency alone. Each scan is the real CLI, `python -m tagger scan LIB --db
NEW.db --no-write --jobs 2` (no tag writes: the share is read only), wall clock from its start. Per
repeat: local and slow with `--read-ahead 0` (before), then local and slow with the default
read-ahead (after), local first in odd repeats and slow first in even ones; both scans of a pair
must analyse every track, with the same results. The loss is
slow / local - 1 within each pair, run one right after the other; medians are reported.
Results: the console and benchmarks/out/slow/results.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_env import moodtag_env, say

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_OUT = HERE / "out" / "slow"
SYSTEM_PYTHON = "/usr/bin/python3"
SOURCES = [(mood, fmt) for fmt in ("mp3", "flac", "ogg", "opus", "m4a", "wav") for mood in ("calm", "exciting")]
SECONDS = 180
TARGET_LOSS = 0.20   # a scan over the share may take at most 20 % longer than over local disk


def ensure_library(out: Path, tracks: int) -> Path:
    from tagger.synth import make_track

    sources = out / "sources"
    sources.mkdir(parents=True, exist_ok=True)
    made = []
    for i, (mood, fmt) in enumerate(SOURCES):
        path = sources / f"{i:02d}-{mood}.{fmt}"
        if not path.exists():
            tmp = path.with_name(f"tmp-{path.name}")
            make_track(tmp, mood, SECONDS, seed=200 + i)
            tmp.rename(path)
        made.append(path)
    lib = out / f"lib-{tracks}"
    if not lib.exists():
        tmp = out / f"tmp-lib-{tracks}"
        shutil.rmtree(tmp, ignore_errors=True)
        for n in range(tracks):
            source = made[n % len(made)]
            dest = tmp / f"album {n // 12:02d}" / f"{n:03d}-{source.name}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, dest)
        tmp.rename(lib)
    for path in lib.rglob("*"):  # into the page cache: the local scan reads from memory, as the share's server does
        if path.is_file():
            path.read_bytes()
    return lib


class SlowMount:
    """benchmarks/slowfs.py serving `source` at `mountpoint`, for one `with` block."""

    def __init__(self, source: Path, mountpoint: Path, latency_ms: float, stats: Path) -> None:
        self.source, self.mountpoint, self.latency_ms, self.stats = source, mountpoint, latency_ms, stats

    def __enter__(self) -> Path:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([SYSTEM_PYTHON, str(HERE / "slowfs.py"), str(self.source), str(self.mountpoint),
                                      "--latency-ms", str(self.latency_ms), "--stats", str(self.stats)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while not os.path.ismount(self.mountpoint):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise SystemExit(f"slowfs did not mount: {self.proc.communicate()[1][-2000:]}")
            time.sleep(0.05)
        return self.mountpoint

    def __exit__(self, *exc) -> None:
        subprocess.run(["fusermount", "-u", str(self.mountpoint)], check=False)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def scan(lib: Path, db: Path, read_ahead: int | None, jobs: int) -> tuple[float, dict]:
    for stale in db.parent.glob(db.name + "*"):
        stale.unlink()
    cmd = [sys.executable, "-m", "tagger", "scan", str(lib), "--db", str(db), "--no-write", "--jobs", str(jobs)]
    if read_ahead is not None:
        cmd += ["--read-ahead", str(read_ahead)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=moodtag_env(), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: exit status {proc.returncode}\n{proc.stderr[-2000:]}")
    return wall, results_of(db, lib)


def results_of(db: Path, lib: Path) -> dict[str, tuple]:
    """(mood, confidence) of each track by its path under `lib`; every track must have been analysed."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT path, status, mood, round(confidence, 6) FROM tracks").fetchall()
    failed = [(path, status) for path, status, _, _ in rows if status != "ok"]
    if failed:
        raise SystemExit(f"the scan of {lib} did not analyse every track: {failed[:5]}")
    return {os.path.relpath(path, lib): (mood, confidence) for path, _, mood, confidence in rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracks", type=int, default=48)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if not os.path.exists("/dev/fuse") or not os.path.exists(SYSTEM_PYTHON):
        raise SystemExit("needs /dev/fuse and the system's Python 3 with fuse-python (apt install python3-fuse)")
    if subprocess.run([SYSTEM_PYTHON, "-c", "import fuse"], capture_output=True).returncode != 0:
        raise SystemExit(f"{SYSTEM_PYTHON} cannot import fuse: apt install python3-fuse")
    sys.path.insert(0, str(ROOT))
    out = args.out.resolve()
    lib = ensure_library(out, args.tracks)
    say(f"library: {args.tracks} tracks in {lib}; share: {args.latency_ms:g} ms a read")
    settings = {"before (--read-ahead 0)": 0, "after (default read-ahead)": None}
    runs: dict[str, dict[str, list[float]]] = {name: {"local": [], "slow": []} for name in settings}
    requests = {}
    for r in range(args.repeat):
        for name, read_ahead in settings.items():
            stats = out / "slowfs-stats.json"
            local_first = r % 2 == 0  # alternate, so that a trend in the machine's load favours neither
            if local_first:
                local, local_results = scan(lib, out / "local.db", read_ahead, args.jobs)
            with SlowMount(lib, out / "mnt", args.latency_ms, stats) as mounted:
                slow, slow_results = scan(mounted, out / "slow.db", read_ahead, args.jobs)
            if not local_first:
                local, local_results = scan(lib, out / "local.db", read_ahead, args.jobs)
            if slow_results != local_results or len(local_results) != args.tracks:
                raise SystemExit("the scans over the share and over local disk disagree")
            reads = json.loads(stats.read_text())
            requests[name] = (sum(v["requests"] for v in reads.values()), sum(v["bytes"] for v in reads.values()))
            runs[name]["local"].append(local)
            runs[name]["slow"].append(slow)
            say(f"  run {r + 1}/{args.repeat} {name:<28} local {local:6.2f} s  slow {slow:6.2f} s  "
                f"loss {slow / local - 1:+6.1%}  ({requests[name][0]} reads, {requests[name][1] / 2**20:.0f} MB)")
    results = {"tracks": args.tracks, "latency_ms": args.latency_ms, "jobs": args.jobs, "repeat": args.repeat,
               "load_average": os.getloadavg(), "settings": {}}
    say(f"\nmedians of {args.repeat}: {args.tracks} tracks, --jobs {args.jobs}, {args.latency_ms:g} ms a read")
    ok = True
    for name in settings:
        local, slow = runs[name]["local"], runs[name]["slow"]
        loss = statistics.median(s / l - 1 for s, l in zip(slow, local))
        results["settings"][name] = {"local_s": local, "slow_s": slow, "median_loss": round(loss, 4),
                                     "share_reads": requests[name][0], "share_bytes": requests[name][1]}
        verdict = "met" if loss <= TARGET_LOSS else "NOT met"
        say(f"  {name:<28} local {statistics.median(local):6.2f} s  slow {statistics.median(slow):6.2f} s  "
            f"loss {loss:+.1%}  (target <= {TARGET_LOSS:.0%}: {verdict})")
        ok = ok and (loss <= TARGET_LOSS or settings[name] == 0)  # the target is for the default
    (out / "results.json").write_text(json.dumps(results, indent=2))
    say(f"results: {out / 'results.json'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
