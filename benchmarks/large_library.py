#!/usr/bin/env python3
"""How moodtag copes with a large library: an unchanged rescan, playlists, query and stats at 10k, 30k
and 100k files, with the peak memory of each command.

    python benchmarks/large_library.py                       # 10k, 30k, 100k files, 3 runs each
    python benchmarks/large_library.py --sizes 10000 --repeat 1

The library is generated once into benchmarks/out/large/ (about 3 GB, kept for reruns): four real
5.5-second tracks (calm and exciting, MP3 at 64 kbit/s and Opus at 16 kbit/s, tagger.synth) are scanned
for real by `moodtag scan`, which analyses and tags them; then they are copied (real files: the walk
counts a hard link once, as it should) into part00 ... part09 of 10,000 files each,
`partNN/Artist NNNN/Album NN/NN Track.ext`. For each size a cache holds one row per file of the
first parts, made as a scan makes it: `Cache.record` with the source's real result, the copy's size
and mtime, and tagged, as after the tag write. So every file is fresh, and the measured scan walks
and compares everything and analyses nothing (it is checked: found = cached = N).

Each command is the real CLI in a subprocess (`python -m tagger ... --db N.db`, stdout to a file);
wall clock from its start (Python start-up and imports included), its CPU time (user + system,
which other load on a shared machine barely changes) and its peak RSS (os.wait4's rusage). The
first row, `query --limit 0`, is the start-up every command pays whatever the library's size. Sizes run one after the other inside each repeat, so the ratios compare runs made under
the same load. With `--baseline DIR` (another checkout, e.g. `git worktree add /tmp/base main`), each
command of that checkout's moodtag runs right beside this one's, on the same library and caches, the
pair's order alternating from one repeat to the next: before/after figures from the same run.
Results: the console and benchmarks/out/large/results.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from bench_env import moodtag_env, say

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_OUT = HERE / "out" / "large"
PART = 10_000               # files per part folder: a size is a whole number of parts
ALBUM_TRACKS, ARTIST_ALBUMS = 10, 10
LAYOUT_VERSION = 1          # bump when the library plan changes: it is generated again
SOURCES = (("calm", ".mp3", {"bitrate": 64_000}), ("exciting", ".mp3", {"bitrate": 64_000}),
           ("calm", ".opus", {"bitrate": 16_000}), ("exciting", ".opus", {"bitrate": 16_000}))
SOURCE_SECONDS = 5.5

# The targets of the issue.
RESCAN_PER_10K_S = 5.0      # unchanged rescan: under 5 s per 10,000 files
COMMAND_S = 1.0             # playlists, query, stats: under 1 s at the largest size
FLAT_RATIO = 1.25           # peak RSS at the largest size / at the smallest: "near 1"
BASELINE = "before: "       # names the commands of the --baseline checkout


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "tagger", *args]


# -- the library ---------------------------------------------------------------------------------

def ensure_sources(out: Path) -> list[tuple[Path, object, dict]]:
    """The four source tracks, scanned (analysed and tagged) once: [(path, TrackResult, info)]."""
    from tagger.cache import Cache
    from tagger.records import TrackResult
    from tagger.synth import encode, render

    folder = out / "sources"
    db = out / "sources.db"
    if not db.exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for i, (mood, suffix, settings) in enumerate(SOURCES):
            encode(render(mood, SOURCE_SECONDS, seed=100 + i), folder / f"{mood}-{i}{suffix}", **settings)
        subprocess.run(cli("scan", str(folder), "--db", str(db)), env=moodtag_env(), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sources = []
    with Cache.open_readonly(db) as cache:
        for path in sorted(folder.iterdir()):
            row = cache.get(path)
            if row is None or row["status"] != "ok" or not row["tagged"]:
                raise SystemExit(f"{path}: the source scan did not analyse and tag it ({row and row['error']})")
            result = TrackResult(path=path, mood=row["mood"], confidence=row["confidence"],
                                 scores=json.loads(row["scores"]),
                                 clips=tuple(_clip(c) for c in json.loads(row["clips"])),
                                 duration=row["duration"], model_name=row["model_name"],
                                 model_version=row["model_version"])
            sources.append((path, result, {"format": row["format"], "duration": row["duration"]}))
    return sources


def _clip(data: dict):
    from tagger.records import ClipScore

    return ClipScore(data["start"], data["scores"])


def part_files(lib: Path, part: int, sources) -> list[tuple[Path, int]]:
    """The files of one part folder: (path, index of its source)."""
    files = []
    for i in range(PART):
        n = part * PART + i
        artist, album, track = n // (ARTIST_ALBUMS * ALBUM_TRACKS), (n // ALBUM_TRACKS) % ARTIST_ALBUMS, n % ALBUM_TRACKS
        source = n % len(sources)
        suffix = sources[source][0].suffix
        files.append((lib / f"part{part:02d}" / f"Artist {artist:05d}" / f"Album {album:02d}"
                      / f"{track + 1:02d} Track {n}{suffix}", source))
    return files


def ensure_library(out: Path, parts: int, sources) -> Path:
    lib = out / "lib"
    marker = out / "layout.json"
    wanted = {"version": LAYOUT_VERSION, "sources": [str(p) for p, _, _ in sources]}
    have = json.loads(marker.read_text()) if marker.exists() else {}
    if {k: have.get(k) for k in wanted} != wanted:
        shutil.rmtree(lib, ignore_errors=True)
        shutil.rmtree(out / "db", ignore_errors=True)
        have = dict(wanted, parts=0)
    for part in range(have["parts"], parts):
        t0 = time.monotonic()
        for path, source in part_files(lib, part, sources):
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(sources[source][0], path)
        have["parts"] = part + 1
        marker.write_text(json.dumps(have))
        say(f"  part{part:02d}: {PART} files copied in {time.monotonic() - t0:.1f} s")
    return lib


def ensure_cache(out: Path, lib: Path, size: int, sources) -> Path:
    """A cache with a fresh, tagged row for each file of the first size // PART parts."""
    from tagger.cache import TAGGED, Cache
    from tagger.records import TrackRef

    db = out / "db" / f"{size}.db"
    done = db.with_suffix(".done")
    if done.exists():
        Cache.open(db).close()  # its schema brought up to date, as the first scan after an upgrade does
        return db
    for stale in db.parent.glob(f"{size}.db*"):
        stale.unlink()
    db.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with Cache.open(db) as cache:
        for part in range(size // PART):
            for path, source in part_files(lib, part, sources):
                _, result, info = sources[source]
                info = dict(info, artist=path.parent.parent.name, album=path.parent.name,
                            title=path.stem[3:])
                cache.record(replace(result, path=path), TrackRef.from_path(path), info=info, tag_state=TAGGED)
    done.write_text("")
    say(f"  cache of {size} rows filled in {time.monotonic() - t0:.1f} s")
    return db


# -- measuring -----------------------------------------------------------------------------------

def measure(cmd: list[str], log: Path, root: Path = ROOT) -> tuple[float, float, int, str]:
    """(wall seconds, CPU seconds, peak RSS bytes, stderr) of one run of the moodtag in `root`; fails
    loudly on a non-zero exit."""
    with open(log, "wb") as stdout, open(log.with_suffix(".err"), "wb") as stderr:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, env=moodtag_env(root), cwd=root)  # -m: cwd first
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    err = log.with_suffix(".err").read_text(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: exit status {proc.returncode}\n{err[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, err


def commands(lib: Path, db: Path, size: int, work: Path) -> dict[str, list[str]]:
    parts = [str(lib / f"part{p:02d}") for p in range(size // PART)]
    common = ["--db", str(db)]
    return {
        "start-up (query --limit 0)": cli("query", "--limit", "0", *common),
        "rescan": cli("scan", *parts, *common),
        "playlists": cli("playlists", "--out-dir", str(work / "playlists"), *common),
        "query": cli("query", *common),
        "query --mood calm --min-confidence 0.5": cli("query", "--mood", "calm", "--min-confidence", "0.5", *common),
        "query --artist 'artist 00042'": cli("query", "--artist", "artist 00042", *common),
        "stats": cli("stats", *common),
    }


def check_rescan(err: str, size: int) -> None:
    """The rescan found every file, and analysed none (all of them fresh)."""
    import re

    text = " ".join(err.split())
    found = re.search(r"tracks found (\d+)", text)
    analysed = re.search(r"analysed (\d+)", text)
    if not found or int(found.group(1)) != size or not analysed or int(analysed.group(1)) != 0:
        raise SystemExit(f"the rescan of {size} files did not find them all fresh:\n{err[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,30000,100000", help="library sizes (multiples of 10,000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command per size (median)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--only", default=None, help="measure only the commands whose name starts so")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="another checkout of moodtag to measure beside this one (before/after)")
    args = parser.parse_args(argv)
    checkouts = [("", ROOT)]
    if args.baseline is not None:
        if not (args.baseline / "tagger" / "__init__.py").is_file():
            parser.error(f"{args.baseline}: not a moodtag checkout (no tagger/__init__.py)")
        checkouts.append((BASELINE, args.baseline.resolve()))
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if any(s % PART or s <= 0 for s in sizes):
        parser.error(f"--sizes must be multiples of {PART}")
    sys.path.insert(0, str(ROOT))
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    say(f"library in {out} (generated once, kept for reruns)")
    sources = ensure_sources(out)
    lib = ensure_library(out, max(sizes) // PART, sources)
    dbs = {size: ensure_cache(out, lib, size, sources) for size in sizes}

    runs: dict[tuple[str, int], list[tuple[float, float, int]]] = {}
    work = out / "work"
    work.mkdir(exist_ok=True)
    for r in range(args.repeat):
        for size in sizes:
            for name, cmd in commands(lib, dbs[size], size, work).items():
                if args.only and not name.startswith(args.only):
                    continue
                for label, root in (checkouts if r % 2 else checkouts[::-1]):
                    wall, cpu, rss, err = measure(cmd, work / "last.out", root)
                    if name == "rescan":
                        check_rescan(err, size)
                    runs.setdefault((label + name, size), []).append((wall, cpu, rss))
                    say(f"  run {r + 1}/{args.repeat} {size:>7,} files  {label + name:<50} {wall:6.2f} s  "
                        f"(CPU {cpu:5.2f} s)  {rss / 2**20:6.0f} MB")

    mine = [name for name in dict.fromkeys(name for name, _ in runs) if not name.startswith(BASELINE)]
    names = [n for name in mine for n in (BASELINE + name, name) if (n, sizes[0]) in runs]  # before, after
    smallest, largest = sizes[0], sizes[-1]
    results = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                           "load_average": os.getloadavg()}, "repeat": args.repeat, "commands": {}}
    say(f"\nmedians of {args.repeat} run(s): wall seconds (CPU seconds) peak RSS MB; load average {os.getloadavg()[1]:.1f}")
    say(f"{'command':<44}" + "".join(f"{s:>27,}" for s in sizes) + f"{'RSS ratio':>11}  target")
    verdicts = []
    for name in names:
        cells, entry = [], {}
        for size in sizes:
            wall = statistics.median(w for w, _, _ in runs[(name, size)])
            cpu = statistics.median(c for _, c, _ in runs[(name, size)])
            rss = statistics.median(m for _, _, m in runs[(name, size)])
            entry[size] = {"seconds": round(wall, 3), "cpu_seconds": round(cpu, 3), "peak_rss_mb": round(rss / 2**20, 1)}
            cells.append(f"{wall:6.2f} s ({cpu:5.2f}) {rss / 2**20:4.0f} MB")
        ratio = entry[largest]["peak_rss_mb"] / entry[smallest]["peak_rss_mb"]
        if name.removeprefix(BASELINE) == "rescan":
            worst = max(entry[s]["seconds"] / (s / 10_000) for s in sizes)
            ok = worst < RESCAN_PER_10K_S
            target = f"< {RESCAN_PER_10K_S:g} s per 10k (worst {worst:.2f}): {'met' if ok else 'NOT met'}"
        else:
            ok = entry[largest]["seconds"] < COMMAND_S
            target = f"< {COMMAND_S:g} s at {largest:,}: {'met' if ok else 'NOT met'}"
        flat = ratio <= FLAT_RATIO
        target += f"; RSS ratio <= {FLAT_RATIO}: {'met' if flat else 'NOT met'}"
        if not name.startswith(BASELINE):
            verdicts.append(ok and flat)
        results["commands"][name] = {"sizes": entry, "rss_ratio": round(ratio, 3), "target": target}
        say(f"{name:<44}" + "".join(f"{c:>27}" for c in cells) + f"{ratio:>10.2f}x  {target}")
    (out / "results.json").write_text(json.dumps(results, indent=2))
    say(f"\nresults: {out / 'results.json'}")
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
