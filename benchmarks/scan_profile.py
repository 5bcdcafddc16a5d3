#!/usr/bin/env python3
"""Where a cold `moodtag scan` spends its time, stage by stage, and how it compares with older code.

    python benchmarks/scan_profile.py                          # stage table, 1 and 2 jobs, 3 scans each
    python benchmarks/scan_profile.py --corpus ~/corpus/dev    # on copies of real recordings instead
    python benchmarks/scan_profile.py --compare-with 098d32d   # + that commit against this tree, same run
    python benchmarks/scan_profile.py --profile-commit c3c81c6 # + the stage table of older instrumented code
    python benchmarks/scan_profile.py --ceiling --no-profile   # what the machine allows: see below

Profile: the real CLI, `python -m tagger scan LIB --db NEW.db --jobs N --json`, on a fresh copy of the
library, with MOODTAG_STAGES=1: the scan's own code (tagger.stages) then times each stage per track,
in the workers (decode, resample, spectrogram, onset envelope, descriptors or network, tags read,
pickling the result, and each worker's start-up: Python, loky and imports before its first track, the
model load, the lazy imports of its first track) and in the parent (cache write, tag write); the
parent's remaining CPU (the pool's threads, progress, JSON output, its own start) is its CPU time less
those. The process tree's CPU time is sampled as in scan_speed.py. Per-track figures are medians over
the tracks (each worker's first track left out: its lazy imports count as start-up) of every scan of
that kind; start-up is per worker and per track (spread over the library). Times are CPU ms of the
thread that ran the stage, unless marked wall.

Rates: "whole" is the tracks over the scan's wall clock, from the process's start to its exit (its
fixed costs included: the parent's start-up, the cache's creation, each worker's start-up and model
load, the last track's wait); "steady" is the rate once the scan runs: the results that arrive after
the STEADY_FROM-th (10th) over the time from its arrival to the last one's. Each `--json` line is
timestamped as it arrives through the scan's standard output (the scan flushes each line).

Compare (`--compare-with COMMIT`): COMMIT is checked out into a temporary git worktree and both it and
this tree scan fresh copies of the same library with stages off, alternately (old, new, old, new, ...),
with 1 and 2 jobs; then every cache row of the two scans is compared (mood exactly, confidence and
the scores to 1e-6). Figures go to the console (Markdown tables) and OUT/profile.json.

Ceiling (`--ceiling`): what this machine gives the workers' own work when nothing else runs. The analysis
a worker does for a track (tagger.analyze.analyze_track, the model loaded, one BLAS thread) runs in a loop
over the library's files in N separate processes at once, for N in 1 and each of --jobs: no pool, no
parent, no tags, no cache, the files in the page cache. Alternately with those loops, this tree scans a
fresh copy of the library with N jobs (stages off). The loops' rate: the results that arrive after each
process's STEADY_FROM-th and no later than the end of the first process to finish, over that span, so all
N processes run throughout; the scans' rate is their steady one. If N loops run less than N times one loop,
the machine (shared cores, memory bandwidth, a hypervisor's steal) caps what N jobs can gain, whatever the
scan does; scan / loop says how much of what is left the scan loses to its parent, pool and writes.
The same scans with `--no-write` run beside them (the cache filled, no tag written): the difference is
what writing the tags costs, which includes work the parent's CPU time does not show (a tag that
outgrows its padding is a copy of the file, fsynced: the kernel's writeback). Whole-scan rates too.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import scan_speed as ss  # noqa: E402  (the library and the measured runs are shared with it)

REPO = HERE.parent
AUDIO_SUFFIXES = {".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".mp4", ".wav", ".aif", ".aiff", ".aifc"}
WORKER_STAGES = ("length check", "decode", "resample", "spectrogram", "onset envelope", "descriptors", "network",
                 "tags read", "pickle result")
PARENT_STAGES = ("cache write", "tag write")
START_STAGES = ("worker start", "model load")
SAME = 1e-6
STEADY_FROM = 10  # the steady rate counts from the arrival of this result (1-based) to the last one's


def steady_rate(times: list[float]) -> float | None:
    """Tracks/s between the STEADY_FROM-th result's arrival and the last one's: the results after the
    STEADY_FROM-th over that span (None if there are too few)."""
    if len(times) <= STEADY_FROM or times[-1] <= times[STEADY_FROM - 1]:
        return None
    return (len(times) - STEADY_FROM) / (times[-1] - times[STEADY_FROM - 1])


def corpus_library(dest: Path, corpus: Path, n: int) -> list[Path]:
    """Copies (a scan writes tags) of the first `n` audio files under `corpus`, sorted by path."""
    if dest.exists():
        shutil.rmtree(dest)
    files = sorted(p for p in corpus.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())[:n]
    for i, src in enumerate(files):
        target = dest / f"{i:04d}-{src.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
    subprocess.run(["sync"], check=False)
    return files


def make_library(args, lib: Path) -> int:
    if args.corpus:
        return len(corpus_library(lib, args.corpus.expanduser(), args.tracks))
    ss.build_library(lib, args.tracks, ss.ensure_sources(args.out, print))
    return args.tracks


def scan(label: str, lib: Path, db: Path, n: int, *, jobs: int, model: str, logs: Path, stages: bool,
         code: Path = REPO, no_write: bool = False) -> dict:
    """One cold scan by the code in `code`; returns its figures and JSON lines."""
    cmd = ss.scan_cmd(lib, ss.fresh_db(db), model, jobs=jobs, no_write=no_write)
    env = {"PYTHONPATH": str(code), "MOODTAG_STAGES": "1" if stages else None}
    run = ss.run_measured(label, cmd, logs=logs, env=env, cwd=code,  # `-m tagger` imports from the cwd first
                          line_times=True)
    timed = [(t, line) for t, line in zip(run.line_s, run.stdout.split("\n")) if line.startswith("{")]
    lines = [json.loads(line) for _, line in timed]
    times = [t for t, _ in timed]
    analysed = sum(1 for r in lines if r.get("action") == "analysed")
    failed = [r["path"] for r in lines if r.get("action") == "failed" or r.get("tags") == "failed"]
    if analysed != n or failed:
        raise SystemExit(f"{label}: {analysed} of {n} tracks analysed, {len(failed)} failed (see {logs})")
    return dict(run.figures(), label=label, jobs=jobs, tracks=n, tracks_per_s=n / run.wall_s,
                steady_tracks_per_s=steady_rate(times), first_result_s=times[0] if times else None,
                last_result_s=times[-1] if times else None,
                cpu_ms_per_track=1000 * run.cpu_s / n, parent_cpu_ms_per_track=1000 * run.parent_cpu_s / n,
                lines=lines)


def loop_rate(lib: Path, n: int, *, processes: int, model: str, logs: Path) -> float:
    """Tracks/s of `processes` analysis loops run at once over the audio files of `lib` (see the module)."""
    files = sorted(str(p) for p in lib.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if len(files) != n or n <= STEADY_FROM:
        raise SystemExit(f"--ceiling: {len(files)} audio files in {lib}, {n} expected (more than {STEADY_FROM})")
    logs.mkdir(parents=True, exist_ok=True)
    listing = logs / "loop-files.json"
    listing.write_text(json.dumps(files))
    outs = [logs / f"loop-{k}.json" for k in range(processes)]
    env = ss._env({"PYTHONPATH": str(REPO), **{var: "1" for var in ss.THREAD_VARS}})
    procs = [subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--loop-worker", str(listing), str(out),
                               model], env=env, cwd=REPO) for out in outs]
    if any(p.wait() for p in procs):
        raise SystemExit(f"--ceiling: an analysis loop failed (exit {[p.returncode for p in procs]})")
    ends = [json.loads(out.read_text()) for out in outs]
    start, stop = max(e[STEADY_FROM - 1] for e in ends), min(e[-1] for e in ends)
    done = sum(1 for e in ends for t in e if start < t <= stop)
    return done / (stop - start)


def loop_worker(listing: Path, out: Path, model: str) -> None:
    """--loop-worker: analyse every file of `listing` and read its tags, as a scan's worker does, one after the other; write
    each one's end (time.perf_counter, the system's monotonic clock, the same in every process)."""
    import time

    from tagger.analyze import analyze_track
    from tagger.tags import read_info
    from tagger.weights import load_model, resolve_model

    loaded = load_model(resolve_model(model))
    files = [Path(f) for f in json.loads(listing.read_text())]
    analyze_track(files[0], loaded)  # lazy imports: a worker pays them once too
    ends = []
    for path in files:
        result = analyze_track(path, loaded)
        if not result.ok:
            raise SystemExit(f"{path}: {result.error}")
        read_info(path)  # as a worker does after the analysis
        ends.append(time.perf_counter())
    out.write_text(json.dumps(ends))


def render_ceiling(res: dict) -> str:
    counts = sorted(res["loop"], key=int)
    lines = ["| processes / jobs | analysis loops, tracks/s | x 1 process | scan, steady tracks/s | x 1 job | "
             "scan / loops | scan, whole | x 1 job | `--no-write`, steady | x 1 job | `--no-write`, whole | x 1 job |",
             "| --- |" + " ---: |" * 11]
    first = counts[0]
    for n in counts:
        cells = [rate(res["loop"][n]), ratio(res["loop"][n], res["loop"][first])]
        cells += [rate(res["scan"].get(n)), ratio(res["scan"].get(n), res["scan"].get(first)),
                  ratio(res["scan"].get(n), res["loop"][n])]
        for key in ("whole", "no_write", "no_write_whole"):
            cells += [rate(res[key].get(n)), ratio(res[key].get(n), res[key].get(first))]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines.append(f"\n(medians of {res['repeats']} alternations; loops: see --ceiling in the module's docstring)")
    return "\n".join(lines)


def median_of(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def ratio(a: float | None, b: float | None) -> str:
    return "-" if not a or not b else f"{a / b:.2f}x"


# -- the stage table ---------------------------------------------------------------------------

def stage_rows(runs: list[dict]) -> dict:
    """Per-track medians and means of every stage over `runs` (scans of one kind), start-up per worker."""
    per_track: dict[str, list[float]] = defaultdict(list)
    start: dict[str, list[float]] = defaultdict(list)
    idle, result_wait, result_bytes = [], [], []
    for run in runs:
        by_pid: dict[int, list[dict]] = defaultdict(list)
        for line in run["lines"]:
            worker = line["stages"]["worker"]
            by_pid[worker["task"]["pid"]].append(line)
        totals = []
        for tracks in by_pid.values():
            tracks.sort(key=lambda r: r["stages"]["worker"]["task"]["start_s"])
            for k, line in enumerate(tracks):
                w, p = line["stages"]["worker"], line["stages"]["parent"]
                task = w["task"]
                result_wait.append(1000 * (p["received_s"] - task["end_s"]))
                result_bytes.append(task["result_bytes"])
                if k:
                    idle.append(1000 * (task["start_s"] - tracks[k - 1]["stages"]["worker"]["task"]["end_s"]))
                if k == 0:
                    for name in START_STAGES:
                        start[name].append(w["cpu_ms"].get(name, 0.0))
                    continue
                for name in WORKER_STAGES:
                    per_track[name].append(w["cpu_ms"].get(name, 0.0))
                for name in PARENT_STAGES:
                    per_track[name].append(p["cpu_ms"].get(name, 0.0))
                totals.append(sum(w["cpu_ms"].get(name, 0.0) for name in WORKER_STAGES))
        typical = statistics.median(totals) if totals else 0.0
        for tracks in by_pid.values():  # lazy imports and first calls of a worker's first track
            first = tracks[0]["stages"]["worker"]["cpu_ms"]
            start["first track's extra"].append(sum(first.get(n, 0.0) for n in WORKER_STAGES) - typical)
        staged = sum(line["stages"]["parent"]["cpu_ms"].get(n, 0.0) for line in run["lines"] for n in PARENT_STAGES)
        per_track["parent other"].append(run["parent_cpu_ms_per_track"] - staged / run["tracks"])
        start["workers"].append(len(by_pid))
    out = {"per_track": {k: {"median": statistics.median(v), "mean": statistics.fmean(v)} for k, v in per_track.items()},
           "start_per_worker": {k: statistics.median(v) for k, v in start.items()},
           "idle_between_tracks_wall_ms": {"median": statistics.median(idle or [0.0]), "mean": statistics.fmean(idle or [0.0])},
           "result_wait_wall_ms": {"median": statistics.median(result_wait), "mean": statistics.fmean(result_wait)},
           "result_bytes": statistics.median(result_bytes)}
    for key in ("tracks_per_s", "steady_tracks_per_s", "first_result_s", "cpu_ms_per_track", "parent_cpu_ms_per_track",
                "wall_s", "load_before"):
        out[key] = median_of(runs, key)
    n = runs[0]["tracks"]
    out["start_ms_per_track"] = out["start_per_worker"]["workers"] * sum(
        out["start_per_worker"][k] for k in (*START_STAGES, "first track's extra")) / n
    return out


def render_profile(profiles: dict[int, dict]) -> str:
    jobs = sorted(profiles)
    head = "| stage (CPU ms per track) | " + " | ".join(f"{j} job{'s' * (j > 1)} median | mean" for j in jobs) + " |"
    lines = [head, "| --- |" + " ---: | ---: |" * len(jobs)]
    labels = {"length check": "length check (a cut file's end)",
              "decode": "decode (open, seek, decode, mono)", "resample": "resample (soxr)",
              "spectrogram": "spectrogram (STFT, mel, dB)", "onset envelope": "onset envelopes",
              "descriptors": "descriptors and model", "network": "network (CNN)", "tags read": "tags read (worker)",
              "pickle result": "pickling the result (worker)", "cache write": "cache writes (parent)",
              "tag write": "tag writes (parent)", "parent other": "parent: pool, output, start (rest)"}
    for name, label in labels.items():
        cells = [profiles[j]["per_track"].get(name) for j in jobs]
        if all(c is None or c["mean"] == 0 for c in cells):
            continue
        lines.append(f"| {label} | " + " | ".join("" if c is None else f"{c['median']:.1f} | {c['mean']:.1f}"
                                                   for c in cells) + " |")
    rows = [("worker start (Python, loky, imports), per worker", lambda p: p["start_per_worker"]["worker start"]),
            ("model load, per worker", lambda p: p["start_per_worker"]["model load"]),
            ("first track's lazy imports, per worker", lambda p: p["start_per_worker"]["first track's extra"]),
            ("start-up spread over the tracks", lambda p: p["start_ms_per_track"]),
            ("process tree CPU per track", lambda p: p["cpu_ms_per_track"]),
            ("parent CPU per track", lambda p: p["parent_cpu_ms_per_track"])]
    for label, key in (("worker idle between tracks (wall)", "idle_between_tracks_wall_ms"),
                       ("result waiting for the parent (wall)", "result_wait_wall_ms")):
        lines.append(f"| {label} | " + " | ".join(f"{profiles[j][key]['median']:.1f} | {profiles[j][key]['mean']:.1f}"
                                                   for j in jobs) + " |")
    for label, get in rows:
        lines.append(f"| {label} | " + " | ".join(f"{get(profiles[j]):.1f} | " for j in jobs) + " |")
    lines.append("| tracks/s (wall, whole scan) | " + " | ".join(f"{profiles[j]['tracks_per_s']:.2f} | " for j in jobs) + " |")
    lines.append(f"| tracks/s steady (result {STEADY_FROM} to the last) | "
                 + " | ".join(f"{rate(profiles[j]['steady_tracks_per_s'])} | " for j in jobs) + " |")
    lines.append("| first result, s after the start | "
                 + " | ".join(f"{rate(profiles[j]['first_result_s'])} | " for j in jobs) + " |")
    if 1 in profiles and 2 in profiles:
        lines.append(f"\n2 jobs / 1 job: {ratio(profiles[2]['tracks_per_s'], profiles[1]['tracks_per_s'])} whole scan, "
                     f"{ratio(profiles[2]['steady_tracks_per_s'], profiles[1]['steady_tracks_per_s'])} steady")
    return "\n".join(lines)


# -- the comparison with another commit --------------------------------------------------------

def checkout(commit: str, out: Path) -> Path:
    sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", commit + "^{commit}"], check=True,
                         capture_output=True, text=True).stdout.strip()
    tree = out / f"compare-{sha[:10]}"
    if not (tree / "tagger").is_dir():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), sha], check=True,
                       capture_output=True)
    return tree


def cache_rows(db: Path) -> dict[str, tuple]:
    with sqlite3.connect(db) as con:
        return {path: (mood, conf, json.loads(scores or "{}"), json.loads(clips or "[]"))
                for path, mood, conf, scores, clips in con.execute(
                    "SELECT path, mood, confidence, scores, clips FROM tracks")}


def compare_rows(old: dict, new: dict) -> dict:
    """Moods equal, confidences and every score within SAME."""
    moods = sum(1 for k in old if k in new and old[k][0] == new[k][0])
    worst = 0.0
    for k in old.keys() & new.keys():
        (_, c0, s0, k0), (_, c1, s1, k1) = old[k], new[k]
        values0 = [c0 or 0.0, *s0.values(), *(v for c in k0 for v in c["scores"].values())]
        values1 = [c1 or 0.0, *s1.values(), *(v for c in k1 for v in c["scores"].values())]
        if len(values0) != len(values1):
            return {"rows": len(old), "same_mood": moods, "max_abs_diff": float("inf")}
        worst = max([worst] + [abs(a - b) for a, b in zip(values0, values1)])
    return {"rows": len(old), "new_rows": len(new), "same_mood": moods, "max_abs_diff": worst,
            "identical": old == new}


def render_compare(res: dict) -> str:
    lines = ["| | old tracks/s | new tracks/s | new / old | old CPU ms/track | new CPU ms/track | "
             "old parent CPU ms/track | new parent CPU ms/track |", "| --- |" + " ---: |" * 7]
    for jobs, r in sorted(res["jobs"].items()):
        lines.append(f"| {jobs} job{'s' * (int(jobs) > 1)} | {r['old']['tracks_per_s']:.2f} | {r['new']['tracks_per_s']:.2f} | "
                     f"{r['new']['tracks_per_s'] / r['old']['tracks_per_s']:.2f}x | {r['old']['cpu_ms_per_track']:.1f} | "
                     f"{r['new']['cpu_ms_per_track']:.1f} | {r['old']['parent_cpu_ms_per_track']:.1f} | "
                     f"{r['new']['parent_cpu_ms_per_track']:.1f} |")
    lines += ["", f"| | old tracks/s whole | old steady | new tracks/s whole | new steady | new / old whole | "
                  f"new / old steady | old first result, s | new first result, s |", "| --- |" + " ---: |" * 8]
    for jobs, r in sorted(res["jobs"].items()):
        old, new = r["old"], r["new"]
        lines.append(f"| {jobs} job{'s' * (int(jobs) > 1)} | {rate(old['tracks_per_s'])} | "
                     f"{rate(old['steady_tracks_per_s'])} | {rate(new['tracks_per_s'])} | "
                     f"{rate(new['steady_tracks_per_s'])} | {ratio(new['tracks_per_s'], old['tracks_per_s'])} | "
                     f"{ratio(new['steady_tracks_per_s'], old['steady_tracks_per_s'])} | "
                     f"{rate(old['first_result_s'])} | {rate(new['first_result_s'])} |")
    lines.append(f"\n(steady: the results after the {STEADY_FROM}th over the time from its arrival to the last one's)")
    for side in ("old", "new"):
        one, two = res["jobs"].get(1, {}).get(side), res["jobs"].get(2, {}).get(side)
        if one and two:
            lines.append(f"\n{side}: 2 jobs / 1 job {two['tracks_per_s'] / one['tracks_per_s']:.2f}x by wall clock, "
                         f"{2 * one['cpu_ms_per_track'] / two['cpu_ms_per_track']:.2f}x by CPU time "
                         "(2 x CPU per track of 1 job / CPU per track of 2 jobs), "
                         f"{ratio(two['steady_tracks_per_s'], one['steady_tracks_per_s'])} steady")
    rows = res["rows"]
    lines.append(f"\ncache rows: {rows['same_mood']} of {rows['rows']} with the same mood; largest difference of a "
                 f"confidence or score {rows['max_abs_diff']:.2g}; rows identical: {rows.get('identical')}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracks", type=int, default=128, help="library size (default 128)")
    parser.add_argument("--repeats", type=int, default=3, help="cold scans of each kind (default 3)")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="worker counts (default 1 2)")
    parser.add_argument("--model", default="moodtag-rhythm", help="model name or file (default moodtag-rhythm)")
    parser.add_argument("--corpus", type=Path, help="copy audio files from here instead of the generated library")
    parser.add_argument("--compare-with", metavar="COMMIT", help="also scan with this commit's code, alternately")
    parser.add_argument("--no-profile", action="store_true", help="only the comparison")
    parser.add_argument("--profile-commit", metavar="COMMIT",
                        help="also profile this commit's code (one with tagger/stages.py), alternately")
    parser.add_argument("--ceiling", action="store_true",
                        help="also the workers' analysis in 1 and N separate processes, beside scans (alternately)")
    parser.add_argument("--out", type=Path, default=ss.DEFAULT_OUT, help="work folder (default benchmarks/out)")
    parser.add_argument("--loop-worker", nargs=3, metavar=("LISTING", "OUT", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.loop_worker:
        listing, out, model = args.loop_worker
        return loop_worker(Path(listing), Path(out), model)
    if args.no_profile and not (args.compare_with or args.ceiling):
        parser.error("--no-profile leaves nothing to do without --compare-with or --ceiling")
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    logs, lib, db = args.out / "profile-logs", args.out / "profile-lib", args.out / "profile.db"
    res: dict = {"machine": ss.machine(), "args": {k: str(v) for k, v in vars(args).items()}}

    ss.precompile(REPO)
    if not args.no_profile:
        trees = [("", REPO)]
        if args.profile_commit:  # older code that already has the stage clock (tagger/stages.py)
            trees.append((args.profile_commit, checkout(args.profile_commit, args.out)))
            ss.precompile(trees[-1][1])
        runs: dict[str, dict[int, list[dict]]] = {name: defaultdict(list) for name, _ in trees}
        for rep in range(args.repeats):
            for jobs in args.jobs:
                for name, code in trees:
                    n = make_library(args, lib)
                    run = scan(f"profile-{name or 'HEAD'}-{jobs}j-{rep}", lib, db, n, jobs=jobs, model=args.model,
                               logs=logs, stages=True, code=code)
                    print(f"profiled scan{' of ' + name if name else ''}, {jobs} job(s): {run['tracks_per_s']:.2f} "
                          f"tracks/s ({rate(run['steady_tracks_per_s'])} steady), {run['cpu_ms_per_track']:.1f} CPU "
                          f"ms/track, load {run['load_before']:.1f}", flush=True)
                    runs[name][jobs].append(run)
        for name, code in trees:
            key = "profile" if not name else f"profile {name}"
            res[key] = {jobs: stage_rows(r) for jobs, r in runs[name].items()}
            print(f"\n{name or 'this tree'}:\n" + render_profile(res[key]) + "\n")
            if name:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(code)], check=False)

    if args.compare_with:
        old_tree = checkout(args.compare_with, args.out)
        ss.precompile(old_tree)
        figures: dict = defaultdict(lambda: defaultdict(list))
        dbs = {}
        for rep in range(args.repeats):
            for jobs in args.jobs:
                for side, code in (("old", old_tree), ("new", REPO)):
                    n = make_library(args, lib)
                    side_db = args.out / f"compare-{side}.db"
                    run = scan(f"compare-{side}-{jobs}j-{rep}", lib, side_db, n, jobs=jobs, model=args.model,
                               logs=logs, stages=False, code=code)
                    run.pop("lines")
                    figures[jobs][side].append(run)
                    dbs[side] = cache_rows(side_db)
                    print(f"{side} ({'HEAD' if side == 'new' else args.compare_with}), {jobs} job(s): "
                          f"{run['tracks_per_s']:.2f} tracks/s ({rate(run['steady_tracks_per_s'])} steady), "
                          f"{run['cpu_ms_per_track']:.1f} CPU ms/track, "
                          f"load {run['load_before']:.1f}", flush=True)
                rows = compare_rows(dbs["old"], dbs["new"])
                if rows["same_mood"] != rows["rows"] or rows["max_abs_diff"] > SAME:
                    print(f"  rows differ: {rows}", flush=True)
        keys = ("tracks_per_s", "steady_tracks_per_s", "first_result_s", "cpu_ms_per_track", "parent_cpu_ms_per_track",
                "wall_s")
        res["compare"] = {"commit": args.compare_with, "steady_from": STEADY_FROM,
                          "rows": compare_rows(dbs["old"], dbs["new"]), "jobs": {
            jobs: {side: {k: median_of(runs, k) for k in keys} | {"runs": runs}
                   for side, runs in sides.items()} for jobs, sides in figures.items()}}
        print("\n" + render_compare(res["compare"]))
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old_tree)], check=False)
    if args.ceiling:
        counts = sorted({1, *args.jobs})
        loops: dict = defaultdict(list)
        scans: dict = defaultdict(list)
        whole: dict = defaultdict(list)
        bare: dict = defaultdict(list)          # --no-write, steady
        bare_whole: dict = defaultdict(list)    # --no-write, whole scan
        for rep in range(args.repeats):
            for n in counts:
                for no_write in ((False, True) if rep % 2 == 0 else (True, False)):
                    tracks = make_library(args, lib)
                    run = scan(f"ceiling-scan-{n}j-{rep}{'-no-write' if no_write else ''}", lib, db, tracks, jobs=n,
                               model=args.model, logs=logs, stages=False, no_write=no_write)
                    (bare if no_write else scans)[n].append(run["steady_tracks_per_s"])
                    (bare_whole if no_write else whole)[n].append(run["tracks_per_s"])
                loops[n].append(loop_rate(lib, tracks, processes=n, model=args.model, logs=logs))
                print(f"ceiling, {n}: scan {rate(scans[n][-1])} tracks/s steady ({whole[n][-1]:.2f} whole), "
                      f"--no-write {rate(bare[n][-1])} ({bare_whole[n][-1]:.2f} whole), {n} analysis loop(s) "
                      f"{loops[n][-1]:.2f} tracks/s", flush=True)

        def medians(runs: dict) -> dict:
            return {n: statistics.median([x for x in v if x]) for n, v in runs.items()}

        res["ceiling"] = {"repeats": args.repeats, "steady_from": STEADY_FROM,
                          "loop": {n: statistics.median(v) for n, v in loops.items()},
                          "scan": medians(scans), "whole": medians(whole), "no_write": medians(bare),
                          "no_write_whole": medians(bare_whole),
                          "runs": {"loop": loops, "scan": scans, "whole": whole, "no_write": bare,
                                   "no_write_whole": bare_whole}}
        print("\n" + render_ceiling(res["ceiling"]))
    (args.out / "profile.json").write_text(json.dumps(res, indent=1, default=str))


if __name__ == "__main__":
    main()
