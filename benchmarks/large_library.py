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

Each command is the real CLI in a subprocess (`python -m tagger ... --db N.db`, stdout to a file),
started by a small launcher process (Linux carries a process's peak RSS across exec: started from
this benchmark, each command would report at least the benchmark's own); wall clock from its start
(Python start-up and imports included), its CPU time (user + system, which other load on a shared
machine barely changes) and its peak RSS (os.wait4's rusage). The
first row, `query --limit 0`, is the start-up every command pays whatever the library's size. Sizes run one after the other inside each repeat, so the ratios compare runs made under
the same load. With `--baseline DIR` (another checkout, e.g. `git worktree add /tmp/base main`), each
command of that checkout's moodtag runs right beside this one's, on the same library and caches, the
pair's order alternating from one repeat to the next: before/after figures from the same run (that
checkout reads a copy of each cache with the schema steps it does not know undone, see baseline_cache),
and the two outputs (standard output and playlist files) of each pair compared.
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

# Starts the measured command and reports its wall clock, CPU time and peak RSS into the file argv[1]. Linux
# keeps the peak RSS of a process across exec, so a command started straight from this benchmark (which
# holds a library's worth of objects after making a cache) would report at least the benchmark's own:
# this small launcher stands between them.
LAUNCHER = """import json, os, sys, time
t0 = time.perf_counter()
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - t0
with open(sys.argv[1], "w") as fh:
    json.dump([wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, os.waitstatus_to_exitcode(status)], fh)
"""


def measure(cmd: list[str], log: Path, root: Path = ROOT) -> tuple[float, float, int, str]:
    """(wall seconds, CPU seconds, peak RSS bytes, stderr) of one run of the moodtag in `root`; fails
    loudly on a non-zero exit."""
    report = log.with_suffix(".json")
    with open(log, "wb") as stdout, open(log.with_suffix(".err"), "wb") as stderr:
        subprocess.run([sys.executable, "-c", LAUNCHER, str(report), *cmd], stdout=stdout, stderr=stderr,
                       env=moodtag_env(root), cwd=root, check=True)  # cwd: python -m puts it first
    wall, cpu, rss, returncode = json.loads(report.read_text())
    err = log.with_suffix(".err").read_text(errors="replace")
    if returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: exit status {returncode}\n{err[-2000:]}")
    return wall, cpu, rss, err


def commands(lib: Path, db: Path, size: int, work: Path) -> dict[str, list[str]]:
    parts = [str(lib / f"part{p:02d}") for p in range(size // PART)]
    common = ["--db", str(db)]
    playlists = ["playlists", "--out-dir", str(work / "playlists")]
    return {
        "start-up (query --limit 0)": cli("query", "--limit", "0", *common),
        "rescan": cli("scan", *parts, *common),
        "playlists": cli(*playlists, *common),
        "playlists --format xspf": cli(*playlists, "--format", "xspf", *common),
        "playlists --for mpd --music-dir LIB": cli(*playlists, "--for", "mpd", "--music-dir", str(lib), *common),
        "playlists --order shuffle --seed 1": cli(*playlists, "--order", "shuffle", "--seed", "1", *common),
        "query": cli("query", *common),
        "query --paths": cli("query", "--paths", *common),
        "query --csv": cli("query", "--csv", *common),
        "query --json": cli("query", "--json", *common),
        "query --mood calm --min-confidence 0.5": cli("query", "--mood", "calm", "--min-confidence", "0.5", *common),
        "query --artist 'artist 00042'": cli("query", "--artist", "artist 00042", *common),
        "stats": cli("stats", *common),
    }


# Schema steps an older checkout may not know, and what each made (undone in that checkout's copy of a cache).
STEP_INDEXES = {"m005_playlist_index": ("idx_tracks_playlist",)}
STEP_TABLES = {"m007_mount_points": "mount_points"}  # a step that only adds a table: dropped for an older moodtag


def baseline_cache(db: Path, root: Path) -> Path:
    """A copy of the cache `db` that the moodtag in `root` can read: the schema steps it does not know
    (an index each, see STEP_INDEXES, or a table, STEP_TABLES) undone, as its own scans would have left
    the cache."""
    import sqlite3

    known = set(subprocess.run([sys.executable, "-c", "from tagger.cache import known_migrations; "
                                "print(*sorted(known_migrations()))"], env=moodtag_env(root), cwd=root,
                               capture_output=True, text=True, check=True).stdout.split())
    copy = db.with_name(f"{db.stem}.before.db")
    for stale in db.parent.glob(f"{copy.name}*"):
        stale.unlink()
    shutil.copyfile(db, copy)
    conn = sqlite3.connect(copy)
    with conn:
        for (name,) in conn.execute("SELECT name FROM _sqlite_migrations WHERE migration_set = 'moodtag'").fetchall():
            if name in known:
                continue
            if name not in STEP_INDEXES and name not in STEP_TABLES:
                raise SystemExit(f"{root}: does not know the schema step {name}, which this benchmark cannot undo")
            for index in STEP_INDEXES.get(name, ()):
                conn.execute(f"DROP INDEX IF EXISTS {index}")
            if name in STEP_TABLES:
                conn.execute(f"DROP TABLE IF EXISTS {STEP_TABLES[name]}")
            conn.execute("DELETE FROM _sqlite_migrations WHERE migration_set = 'moodtag' AND name = ?", [name])
    conn.execute("VACUUM")
    conn.close()
    return copy


def output_digest(work: Path) -> str:
    """SHA-256 of what the last command wrote: its standard output and the playlist files (then removed)."""
    import hashlib

    digest = hashlib.sha256((work / "last.out").read_bytes())
    folder = work / "playlists"
    for path in sorted(folder.iterdir()) if folder.is_dir() else ():
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    shutil.rmtree(folder, ignore_errors=True)
    return digest.hexdigest()


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
    known = list(commands(Path("LIB"), Path("DB"), PART, Path("WORK")))  # the names only: nothing runs
    if args.only is not None and not any(name.startswith(args.only) for name in known):
        parser.error(f"--only {args.only!r}: no command's name starts so (the commands: {', '.join(known)})")
    sys.path.insert(0, str(ROOT))
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    say(f"library in {out} (generated once, kept for reruns)")
    sources = ensure_sources(out)
    lib = ensure_library(out, max(sizes) // PART, sources)
    dbs = {size: ensure_cache(out, lib, size, sources) for size in sizes}

    base_dbs = {size: baseline_cache(dbs[size], checkouts[1][1]) for size in sizes} if args.baseline else {}
    runs: dict[tuple[str, int], list[tuple[float, float, int]]] = {}
    digests: dict[tuple[str, int, int], set[str]] = {}  # one per command, size and repeat: the same output
    work = out / "work"
    work.mkdir(exist_ok=True)
    for r in range(args.repeat):
        for size in sizes:
            mine = commands(lib, dbs[size], size, work)
            theirs = commands(lib, base_dbs[size], size, work) if args.baseline else mine
            for name, cmd in mine.items():
                if args.only and not name.startswith(args.only):
                    continue
                for label, root in (checkouts if r % 2 else checkouts[::-1]):
                    wall, cpu, rss, err = measure(theirs[name] if label else cmd, work / "last.out", root)
                    if name == "rescan":
                        check_rescan(err, size)
                    elif name != "stats":  # stats names its cache file: each checkout reads its own
                        digests.setdefault((name, size, r), set()).add(output_digest(work))
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
    differing = sorted({(name, size) for (name, size, _), found in digests.items() if len(found) > 1})
    results["outputs_differ"] = [f"{name} at {size}" for name, size in differing]
    if args.baseline:
        say("outputs (standard output and playlist files) of the two checkouts: "
            + ("identical in every run" if not differing else "DIFFERENT for " + ", ".join(results["outputs_differ"])))
    (out / "results.json").write_text(json.dumps(results, indent=2))
    say(f"\nresults: {out / 'results.json'}")
    return 0 if all(verdicts) and not differing else 1


if __name__ == "__main__":
    sys.exit(main())
