#!/usr/bin/env python3
"""How fast `moodtag scan` is, measured beside the seed's approach and the floor in the same run.

    python benchmarks/scan_speed.py                  # speed: cold scans with 1 and 2 jobs, rescan, seed, floor
    python benchmarks/scan_speed.py --memory-check   # peak memory at 200 vs 1,000 tracks, rescan of 1,000,
                                                     # 1 vs 2 jobs at 1,000 tracks

The library is generated, never committed: two 3-6 minute music-like tracks per format (tagger.synth),
rendered and encoded once into benchmarks/out/sources/, then copied (real copies, not links: a scan
writes tags) into a library of --tracks files, round-robin over the sources so that every format is
equally represented. What is measured:

  cold scan  the real CLI, `python -m tagger scan LIB --db NEW.db --jobs N --model M --json`, on a fresh
             copy of the library; wall clock, the peak RSS summed over the whole process tree (parent
             and workers, sampled every 50 ms) and the tree's CPU time (user + system)
  rescan     the same command (without --json) again, on the unchanged library and database
  seed       the seed's approach, one process: librosa.load of each whole track at the model's sample
             rate, then the same clips sliced out, the same features and model
  floor      one process: tagger.analyze.analyze_track per track (the same clips decoded and classified),
             without tags, cache or worker pool

Seed and floor run as subprocesses measured exactly like the scan (wall clock from process start, so
imports and the model load count for everyone); both pin torch and BLAS to one thread, as the scan's
workers do. Thread variables (OMP_NUM_THREADS, ...) are removed from every measured process's
environment: the CLI's own thread settings are what is measured. Each measured process gets a session
of its own, as if started from its own terminal. Files are in the page cache (just copied); "cold"
means an empty moodtag cache. Every ratio is also given by CPU time, which other load on the machine
barely changes (see benchmarks/README.md). The figures go to the console and benchmarks/out/results.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "out"
SOURCES_PER_FORMAT = 2
MIN_SECONDS, MAX_SECONDS = 180, 360
SOURCE_VERSION = 1  # bump when the source plan changes: the sources are generated again
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "BLIS_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
HEAVY_MODULES = ("torch", "librosa", "av", "soundfile", "soxr", "joblib", "mutagen")

# The targets of the issue, as ratios taken in the same run.
SEED_SPEEDUP = 6.0        # cold scan (1 job) tracks/s >= 6 x the seed's
FLOOR_SLOWDOWN = 1.3      # cold scan (1 job) time per track <= 1.3 x the floor's
JOBS_SPEEDUP = 1.7        # 2 jobs tracks/s >= 1.7 x 1 job
RESCAN_SHARE = 0.02       # unchanged rescan < 2 % of the cold scan's time
PEAK_BYTES = 1.5e9        # peak RSS of the process tree with 2 jobs < 1.5 GB
FLAT_GROWTH = 1.10        # peak at 1,000 tracks <= 1.1 x the peak at 200


# -- the library ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Source:
    """One generated track: its file name, format (a tagger.synth.FORMATS entry), mood, length, seed."""

    name: str
    fmt: str
    mood: str
    seconds: int
    seed: int


def source_plan() -> list[Source]:
    """SOURCES_PER_FORMAT tracks per format, calm and exciting, lengths spread over 3-6 minutes."""
    from tagger.synth import FORMATS

    plan = []
    for i, fmt in enumerate(FORMATS):
        for k in range(SOURCES_PER_FORMAT):
            index = i * SOURCES_PER_FORMAT + k
            seconds = MIN_SECONDS + round((MAX_SECONDS - MIN_SECONDS) * ((index * 0.6180339887) % 1.0))
            mood = ("calm", "exciting")[k % 2]
            plan.append(Source(f"{index:02d}-{mood}-{seconds}s.{fmt}", fmt, mood, seconds, 1000 + index))
    return plan


def _make_source(source: Source, folder: str) -> str:
    from tagger.synth import encode, render

    final = Path(folder) / source.name
    tmp = final.with_name(".part-" + source.name)  # same suffix: encode() picks the codec from it
    encode(render(source.mood, source.seconds, seed=source.seed), tmp)
    tmp.replace(final)
    return source.name


def ensure_sources(out: Path, say) -> list[tuple[Path, str]]:
    """Generate the sources that are missing (two processes); returns [(path, format)]."""
    folder = out / "sources"
    folder.mkdir(parents=True, exist_ok=True)
    plan = source_plan()
    manifest = folder / "manifest.json"
    wanted = {"version": SOURCE_VERSION, "sources": [asdict(s) for s in plan]}
    if manifest.is_file() and json.loads(manifest.read_text()) != wanted:
        for p in folder.iterdir():
            p.unlink()
    missing = [s for s in plan if not (folder / s.name).is_file()]
    if missing:
        say(f"generating {len(missing)} source tracks of 3-6 min in {folder} (once; slow encoders)...")
        started = time.perf_counter()
        with ProcessPoolExecutor(max_workers=2) as pool:
            for name in pool.map(_make_source, missing, [str(folder)] * len(missing)):
                say(f"  {name}")
        say(f"  done in {time.perf_counter() - started:.0f} s")
    manifest.write_text(json.dumps(wanted, indent=1))
    return [(folder / s.name, s.fmt) for s in plan]


def build_library(dest: Path, n: int, sources: list[tuple[Path, str]], *, part: int = 0) -> list[tuple[Path, str]]:
    """A fresh folder of `n` distinct copies of the sources, round-robin; with `part`, in subfolders
    part0, part1, ... of `part` tracks each. Synced to disk before returning."""
    if dest.exists():
        shutil.rmtree(dest)
    files = []
    for i in range(n):
        src, fmt = sources[i % len(sources)]
        folder = dest / (f"part{i // part}" if part else "") / fmt.replace(".", "-")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{i:04d} {src.name.split('-')[1]}.{fmt}"
        shutil.copyfile(src, path)
        files.append((path, fmt))
    os.sync()  # no writeback of the copies during the measurement
    return files


# -- measuring a process -------------------------------------------------------------------------

@dataclass
class Run:
    """One measured process: wall clock (s), peak RSS of its process tree (bytes), CPU seconds (user +
    system) of the whole tree and of its first process, exit status, the 1-minute load before it."""

    what: str
    wall_s: float
    peak_rss: int
    peak_processes: int
    cpu_s: float
    parent_cpu_s: float
    returncode: int
    load_before: float
    stdout: str = ""
    stderr: str = ""
    line_s: list[float] = field(default_factory=list)  # with line_times: when each stdout line arrived

    def figures(self) -> dict:
        return {"wall_s": self.wall_s, "peak_rss": self.peak_rss, "peak_processes": self.peak_processes,
                "cpu_s": self.cpu_s, "parent_cpu_s": self.parent_cpu_s, "load_before": self.load_before}


def _env(extra: dict | None = None) -> dict:
    """The measured processes' environment: no thread settings, and bytecode cached as an installed
    package has it (PYTHONDONTWRITEBYTECODE dropped: else every process compiles moodtag's modules)."""
    env = dict(os.environ)
    for var in (*THREAD_VARS, "PYTHONDONTWRITEBYTECODE"):
        env.pop(var, None)
    for var, value in (extra or {}).items():
        if value is None:
            env.pop(var, None)
        else:
            env[var] = value
    return env


class TreeSampler:
    """RSS and CPU time of a process and its descendants. Memory and CPU of the known processes are
    read every 50 ms (cheap: /proc/PID/statm and stat); the tree is walked for new processes every
    0.25 s (psutil reads every process on the machine for that)."""

    def __init__(self, root) -> None:
        self.root = root
        self.procs = {root.pid: root}
        self.cpu: dict[int, float] = {}
        self.peak = (0, 0)

    def run(self, stop: threading.Event) -> None:
        import psutil

        tick = 0
        while True:
            if tick % 5 == 0:
                try:
                    for child in self.root.children(recursive=True):
                        self.procs.setdefault(child.pid, child)
                except psutil.Error:
                    pass
            total = count = 0
            for pid, p in list(self.procs.items()):
                try:
                    with p.oneshot():
                        total += p.memory_info().rss
                        times = p.cpu_times()
                    self.cpu[pid] = times.user + times.system
                    count += 1
                except psutil.Error:
                    self.procs.pop(pid, None)
            if total > self.peak[0]:
                self.peak = (total, count)
            tick += 1
            if stop.wait(0.05):
                return


def precompile(code: Path) -> None:
    """Bytecode for the modules of `code`/tagger, as an installed package has (the measured processes
    then load it instead of compiling each module in every process)."""
    import subprocess

    subprocess.run([sys.executable, "-m", "compileall", "-q", str(code / "tagger")], check=True)


def run_measured(what: str, cmd: list[str], *, logs: Path, env: dict | None = None, cwd: Path | None = None,
                 line_times: bool = False) -> Run:
    """Run `cmd` in a session of its own (as from its own terminal: its own share of the CPU under
    Linux's autogroup scheduling), timing it and sampling its process tree's RSS and CPU time.
    `env`: variables set (or, with None values, removed) for it on top of this environment; `cwd`:
    its folder (`python -m` imports from there before PYTHONPATH). `line_times`: its standard output
    comes through a pipe, read line by line as it arrives, and Run.line_s holds each line's arrival
    (seconds from the start; a program that flushes each line, as the scan's `--json` does, gives the
    time it printed it)."""
    import psutil

    logs.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", what).strip("-")
    out_path, err_path = logs / f"{slug}.out", logs / f"{slug}.err"
    stop = threading.Event()
    load = os.getloadavg()[0]
    line_s: list[float] = []
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.perf_counter()
        proc = psutil.Popen(cmd, stdout=subprocess.PIPE if line_times else out, stderr=err, env=_env(env), cwd=cwd,
                            start_new_session=True)
        sampler = TreeSampler(proc)
        thread = threading.Thread(target=sampler.run, args=(stop,), daemon=True)
        thread.start()
        reader = None
        if line_times:
            def read_lines() -> None:
                for line in proc.stdout:  # a line as soon as the pipe holds one
                    line_s.append(time.perf_counter() - started)
                    out.write(line)
            reader = threading.Thread(target=read_lines, daemon=True)
            reader.start()
        try:
            returncode = proc.wait()
        except BaseException:
            for p in [proc] + proc.children(recursive=True):
                try:
                    p.kill()
                except psutil.Error:
                    pass
            raise
        wall = time.perf_counter() - started
        stop.set()
        thread.join()
        if reader is not None:
            reader.join()
            proc.stdout.close()
    # CPU as last sampled: each process's last 50 ms at most are missed
    run = Run(what, wall, sampler.peak[0], sampler.peak[1], sum(sampler.cpu.values()),
              sampler.cpu.get(proc.pid, 0.0), returncode, load,
              out_path.read_text(errors="replace"), err_path.read_text(errors="replace"), line_s)
    if returncode != 0:
        raise SystemExit(f"{what}: exit status {returncode}\n{run.stderr[-3000:]}")
    return run


def scan_cmd(lib: Path, db: Path, model: Path, *, jobs: int, json_lines: bool = True,
             no_write: bool = False, python_flags: tuple[str, ...] = ()) -> list[str]:
    cmd = [sys.executable, *python_flags, "-m", "tagger", "scan", str(lib), "--db", str(db), "--jobs", str(jobs),
           "--model", str(model)]
    return cmd + (["--json"] if json_lines else []) + (["--no-write"] if no_write else [])


def fresh_db(path: Path) -> Path:
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    return path


def cold_scan(what: str, lib: Path, db: Path, model: Path, n: int, *, jobs: int, logs: Path,
              no_write: bool = False) -> dict:
    """A scan with an empty cache; checks that every track was analysed and none failed."""
    run = run_measured(what, scan_cmd(lib, fresh_db(db), model, jobs=jobs, no_write=no_write), logs=logs)
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    analysed = sum(1 for r in lines if r.get("action") == "analysed")
    failed = sum(1 for r in lines if r.get("action") == "failed" or r.get("tags") == "failed")
    if analysed != n or failed:
        raise SystemExit(f"{what}: {analysed} of {n} tracks analysed, {failed} failed (see {logs})")
    return dict(run.figures(), what=what, jobs=jobs, tracks=n, tracks_per_s=n / run.wall_s,
                cpu_per_track_s=run.cpu_s / n, tags_written=sum(1 for r in lines if r.get("tags") == "written"))


def rescan(what: str, lib: Path, db: Path, model: Path, n: int, *, jobs: int, logs: Path,
           no_write: bool = False) -> dict:
    """The same scan again on an unchanged library: checks that nothing was analysed."""
    run = run_measured(what, scan_cmd(lib, db, model, jobs=jobs, json_lines=False, no_write=no_write), logs=logs)
    analysed = _summary_count(run.stderr, "analysed")
    cached = _summary_count(run.stderr, r"unchanged \(cached\)")
    if analysed != 0 or cached != n:
        raise SystemExit(f"{what}: expected 0 analysed and {n} cached, got {analysed} and {cached}")
    return dict(run.figures(), what=what, tracks=n)


def heavy_imports_of_rescan(lib: Path, db: Path, model: Path, *, jobs: int, logs: Path,
                            no_write: bool = False) -> list[str]:
    """The heavy modules an unchanged rescan imports (python -X importtime; not timed)."""
    cmd = scan_cmd(lib, db, model, jobs=jobs, json_lines=False, no_write=no_write, python_flags=("-X", "importtime"))
    run = run_measured("rescan-importtime", cmd, logs=logs)
    names = {line.rsplit("|", 1)[-1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
    return sorted(m for m in HEAVY_MODULES if m in names)


def _summary_count(text: str, label: str) -> int | None:
    found = re.search(rf"^\s*{label}\s+(\d+)\s*$", text, re.MULTILINE)
    return int(found.group(1)) if found else None


def in_process(what: str, kind: str, model: Path, files: list[tuple[Path, str]], *, logs: Path,
               repeats: int = 1) -> dict:
    """Run the seed, floor or decode loop in a subprocess of this script, measured like a scan."""
    logs.mkdir(parents=True, exist_ok=True)
    listing = logs / f"{kind}-files.json"
    listing.write_text(json.dumps([[str(p), fmt] for p, fmt in files]))
    result = logs / f"{kind}-result.json"
    result.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--model", str(model),
           "--files", str(listing), "--result", str(result), "--repeats", str(repeats)]
    run = run_measured(what, cmd, logs=logs)
    data = json.loads(result.read_text())
    data.update(run.figures(), what=what, tracks_per_s=len(files) / run.wall_s,
                cpu_per_track_s=run.cpu_s / len(files))
    return data


# -- the in-process loops (run with --worker) ---------------------------------------------------

def worker_main(kind: str, model_path: Path, files: list[tuple[str, str]], result: Path, repeats: int) -> None:
    started = time.perf_counter()
    import torch
    from threadpoolctl import threadpool_limits

    from tagger.weights import load_model

    torch.set_num_threads(1)
    rows = []
    with threadpool_limits(1):
        if kind == "seed":
            import librosa  # noqa: F401  (its import is part of the seed's cost)
        model = load_model(model_path)
        setup_s = time.perf_counter() - started
        if kind == "seed":
            rows = _seed_loop(model, files)
        elif kind == "floor":
            rows = _floor_loop(model, files)
        elif kind == "decode":
            rows = _decode_loop(model, files, repeats)
    result.write_text(json.dumps({"kind": kind, "setup_s": setup_s, "tracks": rows}))


def _floor_loop(model, files) -> list[dict]:
    from tagger.analyze import analyze_track

    rows = []
    for path, fmt in files:
        t = time.perf_counter()
        outcome = analyze_track(Path(path), model)
        rows.append({"format": fmt, "total_s": time.perf_counter() - t, "ok": outcome.ok, "error": outcome.error})
    return rows


def _decode_loop(model, files, repeats: int) -> list[dict]:
    from tagger.audio import load_clips

    spec = model.spec
    for path, fmt in {fmt: (p, fmt) for p, fmt in files}.values():  # warm-up: lazy imports, one per format
        load_clips(Path(path), plan=spec.clips, sample_rate=spec.sample_rate)
    rows = []
    for _ in range(repeats):
        for path, fmt in files:
            t = time.perf_counter()
            load_clips(Path(path), plan=spec.clips, sample_rate=spec.sample_rate)
            rows.append({"format": fmt, "load_s": time.perf_counter() - t})
    return rows


def _seed_loop(model, files) -> list[dict]:
    import numpy as np

    from tagger.analyze import decide, predict
    from tagger.audio import clip_offsets

    spec = model.spec
    sr = spec.sample_rate
    need = int(round(spec.clips.seconds * sr))
    rows = []
    for path, fmt in files:
        t = time.perf_counter()
        y, decoder = _load_whole(path, sr)
        loaded = time.perf_counter()
        clips = []
        for start in clip_offsets(len(y) / sr, spec.clips):
            first = int(round(start * sr))
            clip = y[first:first + need]
            clips.append(np.pad(clip, (0, need - len(clip))))
        track_scores, _ = predict(model, np.stack(clips))
        decide(spec, track_scores)
        rows.append({"format": fmt, "load_s": loaded - t, "total_s": time.perf_counter() - t, "decoder": decoder})
    return rows


def _load_whole(path: str, sr: int):
    """The seed's decode: librosa.load of the whole track. librosa reads M4A only through audioread,
    which needs a system FFmpeg (absent here): those files are decoded whole with PyAV instead and
    resampled by librosa, which is faster than audioread's FFmpeg pipe, so it favours the seed."""
    import warnings

    import librosa
    import numpy as np

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y, _ = librosa.load(path, sr=sr, mono=True)
        return y, "librosa.load"
    except Exception:
        pass
    import av

    with av.open(path) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        parts = []
        for frame in container.decode(stream):
            parts.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
        parts.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    y = np.concatenate(parts)
    return librosa.resample(y, orig_sr=rate, target_sr=sr, res_type="soxr_hq"), "pyav + librosa.resample"


# -- the model -----------------------------------------------------------------------------------

def pick_model(arg: str | None, out: Path, say) -> tuple[Path, str]:
    """--model, else the shipped default, else an untrained SeedCNN (fixed seed) saved under out/."""
    from tagger.errors import MoodtagError
    from tagger.weights import resolve_model

    if arg:
        return resolve_model(arg), "given with --model"
    try:
        return resolve_model(None), "the shipped default"
    except MoodtagError:
        pass
    path = out / "bench-seedcnn.safetensors"
    if not path.is_file():
        import torch

        from tagger.model import SeedCNN
        from tagger.weights import ModelSpec, save_model

        torch.manual_seed(0)
        spec = ModelSpec(name="bench-seedcnn", version="0.0.0", labels=("calm", "exciting"),
                         normalization={"mean": -40.0, "std": 20.0}, trained_on="nothing (benchmark stand-in)")
        save_model(path, spec, SeedCNN(2).state_dict())
    note = ("no shipped model: an untrained SeedCNN (seed 0) with the default spec, the shipped model's "
            "architecture and input, so the same cost")
    say(f"[yellow]{note}[/]")
    return path, note


# -- summaries -----------------------------------------------------------------------------------

def median(values) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def per_format(rows: list[dict], key: str) -> dict[str, float]:
    formats = sorted({r["format"] for r in rows})
    return {fmt: median(r[key] for r in rows if r["format"] == fmt) for fmt in formats}


def machine() -> dict:
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "load_average": os.getloadavg()}


def verdict(ok: bool) -> str:
    return "[green]PASS[/]" if ok else "[red]FAIL[/]"


def mb(n: float) -> str:
    return f"{n / 1e6:,.0f} MB"


def speed(args, out: Path, console) -> dict:
    say = console.print
    sources = ensure_sources(out, say)
    model, model_note = pick_model(args.model, out, say)
    precompile(HERE.parent)
    logs = out / "runs"
    n = args.tracks
    lib, db = out / "lib-speed", out / "speed.db"
    scans = {1: [], 2: []}
    rescans, floors = [], []
    seed = None
    say(f"library: {n} tracks, {len(sources)} sources in {len({f for _, f in sources})} formats; "
        f"{args.repeats} repeats; model {model} ({model_note})")
    for r in range(args.repeats):
        for jobs in (1, 2):
            files = build_library(lib, n, sources)
            result = cold_scan(f"cold scan {jobs} job(s) #{r + 1}", lib, db, model, n, jobs=jobs, logs=logs)
            scans[jobs].append(result)
            say(f"[{r + 1}/{args.repeats}] cold scan, {jobs} job(s): {result['wall_s']:.1f} s, "
                f"{result['tracks_per_s']:.2f} tracks/s, CPU {result['cpu_s']:.1f} s, peak {mb(result['peak_rss'])}")
            if jobs == 2:
                again = rescan(f"rescan #{r + 1}", lib, db, model, n, jobs=2, logs=logs)
                again["share_of_cold"] = again["wall_s"] / result["wall_s"]
                rescans.append(again)
                say(f"[{r + 1}/{args.repeats}] unchanged rescan: {again['wall_s']:.2f} s "
                    f"({100 * again['share_of_cold']:.1f} % of the cold scan), peak {mb(again['peak_rss'])}")
        floor = in_process(f"floor #{r + 1}", "floor", model, files, logs=logs)
        bad = [t for t in floor["tracks"] if not t["ok"]]
        if bad:
            raise SystemExit(f"floor: {len(bad)} tracks failed, e.g. {bad[0]['error']}")
        floors.append(floor)
        say(f"[{r + 1}/{args.repeats}] floor: {floor['wall_s']:.1f} s, {floor['tracks_per_s']:.2f} tracks/s, "
            f"CPU {floor['cpu_s']:.1f} s")
        if seed is None:
            seed = in_process("seed", "seed", model, files, logs=logs)
            say(f"seed's approach: {seed['wall_s']:.1f} s, {seed['tracks_per_s']:.2f} tracks/s, CPU {seed['cpu_s']:.1f} s")
    imports = heavy_imports_of_rescan(lib, db, model, jobs=2, logs=logs)
    decode = in_process("decode", "decode", model, sources, logs=logs, repeats=3)
    if not args.keep:
        shutil.rmtree(lib, ignore_errors=True)

    tps1 = median(s["tracks_per_s"] for s in scans[1])
    tps2 = median(s["tracks_per_s"] for s in scans[2])
    cpu1 = median(s["cpu_per_track_s"] for s in scans[1])
    cpu2 = median(s["cpu_per_track_s"] for s in scans[2])
    seed_tps, seed_cpu = seed["tracks_per_s"], seed["cpu_per_track_s"]
    floor_tps = median(f["tracks_per_s"] for f in floors)
    floor_cpu = median(f["cpu_per_track_s"] for f in floors)
    rescan_share = median(r["wall_s"] / s["wall_s"] for r, s in zip(rescans, scans[2]))
    rescan_cpu_share = median(r["cpu_s"] / s["cpu_s"] for r, s in zip(rescans, scans[2]))
    peak2 = max(s["peak_rss"] for s in scans[2])
    floor_rows = [t for f in floors for t in f["tracks"]]
    targets = [  # name, by wall clock, by CPU time, wanted, test
        ("cold scan 1 job vs seed, per track", tps1 / seed_tps, seed_cpu / cpu1, f">= {SEED_SPEEDUP:g}x faster",
         lambda v: v >= SEED_SPEEDUP),
        ("cold scan 1 job vs floor, time per track", floor_tps / tps1, cpu1 / floor_cpu,
         f"<= {FLOOR_SLOWDOWN:g}x slower", lambda v: v <= FLOOR_SLOWDOWN),
        ("2 jobs vs 1 job, throughput", tps2 / tps1, 2 * cpu1 / cpu2, f">= {JOBS_SPEEDUP:g}x",
         lambda v: v >= JOBS_SPEEDUP),
        ("peak RSS, 2 jobs", peak2, None, f"< {mb(PEAK_BYTES)}", lambda v: v < PEAK_BYTES),
    ]
    return {
        "mode": "speed", "tracks": n, "repeats": args.repeats, "model": str(model), "model_note": model_note,
        "machine": machine(),
        "cold_scan_1_job": {"tracks_per_s": tps1, "cpu_per_track_s": cpu1, "runs": scans[1]},
        "cold_scan_2_jobs": {"tracks_per_s": tps2, "cpu_per_track_s": cpu2,
                             "cores_used": median(s["cpu_s"] / s["wall_s"] for s in scans[2]), "runs": scans[2]},
        "rescan": {"wall_s": median(r["wall_s"] for r in rescans), "cpu_s": median(r["cpu_s"] for r in rescans),
                   "share_of_cold": rescan_share, "cpu_share_of_cold": rescan_cpu_share, "heavy_imports": imports,
                   "runs": rescans},
        "seed": {"tracks_per_s": seed_tps, "cpu_per_track_s": seed_cpu, "wall_s": seed["wall_s"],
                 "cpu_s": seed["cpu_s"], "setup_s": seed["setup_s"], "peak_rss": seed["peak_rss"],
                 "per_track_median_s": median(t["total_s"] for t in seed["tracks"]),
                 "decoders": sorted({t["decoder"] for t in seed["tracks"]})},
        "floor": {"tracks_per_s": floor_tps, "cpu_per_track_s": floor_cpu,
                  "setup_s": median(f["setup_s"] for f in floors), "peak_rss": max(f["peak_rss"] for f in floors),
                  "per_track_median_s": median(t["total_s"] for t in floor_rows),
                  "runs": [{k: f[k] for k in ("wall_s", "cpu_s", "tracks_per_s", "setup_s", "load_before")}
                           for f in floors]},
        "per_format": {
            "load_clips_s": per_format(decode["tracks"], "load_s"),
            "floor_track_s": per_format(floor_rows, "total_s"),
            "seed_librosa_load_s": per_format(seed["tracks"], "load_s"),
            "seed_track_s": per_format(seed["tracks"], "total_s"),
        },
        "targets": _targets(targets),
    }


def _targets(rows) -> dict:
    return {name: {"wall": wall, "cpu": cpu, "target": wanted, "pass": test(wall),
                   "pass_by_cpu": None if cpu is None else test(cpu)}
            for name, wall, cpu, wanted, test in rows}


def memory(args, out: Path, console) -> dict:
    say = console.print
    sources = ensure_sources(out, say)
    model, model_note = pick_model(args.model, out, say)
    precompile(HERE.parent)
    logs = out / "runs"
    small, large = args.memory_sizes
    lib = out / "lib-memory"
    say(f"building a library of {large} tracks (parts of {small}) in {lib}...")
    build_library(lib, large, sources, part=small)
    runs = {}

    def cold(label: str, folder: Path, n: int, jobs: int, db: Path) -> dict:
        runs[label] = cold_scan(f"memory cold scan {label}", folder, fresh_db(db), model, n, jobs=jobs, logs=logs,
                                no_write=True)
        say(f"cold scan of {label}, --no-write: {runs[label]['wall_s']:.1f} s, CPU {runs[label]['cpu_s']:.1f} s, "
            f"peak {mb(runs[label]['peak_rss'])}")
        return runs[label]

    cold_small = cold(f"{small} tracks, 2 jobs", lib / "part0", small, 2, out / f"memory-{small}.db")
    db = out / f"memory-{large}.db"
    cold_large = cold(f"{large} tracks, 2 jobs", lib, large, 2, db)
    again = [rescan(f"memory rescan {large} #{i + 1}", lib, db, model, large, jobs=2, logs=logs, no_write=True)
             for i in range(3)]
    rescan_wall = median(r["wall_s"] for r in again)
    share = rescan_wall / cold_large["wall_s"]
    cpu_share = median(r["cpu_s"] for r in again) / cold_large["cpu_s"]
    say(f"unchanged rescan of {large}: {rescan_wall:.2f} s (median of 3), {100 * share:.2f} % of the cold scan")
    imports = heavy_imports_of_rescan(lib, db, model, jobs=2, logs=logs, no_write=True)
    one_job = cold(f"{large} tracks, 1 job", lib, large, 1, out / f"memory-{large}-1job.db")
    if not args.keep:
        shutil.rmtree(lib, ignore_errors=True)
    growth = cold_large["peak_rss"] / cold_small["peak_rss"]
    targets = [
        (f"peak RSS, 2 jobs, {large} tracks", cold_large["peak_rss"], None, f"< {mb(PEAK_BYTES)}",
         lambda v: v < PEAK_BYTES),
        (f"peak RSS growth, {small} -> {large} tracks", growth, None, f"<= {FLAT_GROWTH:g}x",
         lambda v: v <= FLAT_GROWTH),
        (f"unchanged rescan of {large} vs cold scan (2 jobs)", share, cpu_share, f"< {100 * RESCAN_SHARE:g} %",
         lambda v: v < RESCAN_SHARE),
        ("heavy modules the rescan imports", ", ".join(imports) or "none", None, "none", lambda v: v == "none"),
        (f"2 jobs vs 1 job, throughput, {large} tracks", cold_large["tracks_per_s"] / one_job["tracks_per_s"],
         2 * one_job["cpu_s"] / cold_large["cpu_s"], f">= {JOBS_SPEEDUP:g}x", lambda v: v >= JOBS_SPEEDUP),
    ]
    return {
        "mode": "memory", "model": str(model), "model_note": model_note, "machine": machine(), "no_write": True,
        "cold_scans": runs,
        "rescan": {"tracks": large, "wall_s": rescan_wall, "share_of_cold": share, "cpu_share_of_cold": cpu_share,
                   "heavy_imports": imports, "runs": again},
        "targets": _targets(targets),
    }


def render_speed(res: dict, console) -> None:
    from rich.table import Table

    n = res["tracks"]
    t = Table(title=f"moodtag scan speed: {n} tracks of 3-6 min in {len(res['per_format']['load_clips_s'])} "
                    f"formats; medians of {res['repeats']} runs (seed: 1 run); the rescan target is for "
                    f"1,000 files (--memory-check)")
    for col in ("", "tracks/s", "s per track", "CPU s per track", "wall (s)", "peak RSS (tree)"):
        t.add_column(col, justify="right" if col else "left")
    c1, c2 = res["cold_scan_1_job"], res["cold_scan_2_jobs"]
    for label, part, runs in (("cold scan, 1 job", c1, c1["runs"]), ("cold scan, 2 jobs", c2, c2["runs"]),
                              ("seed's approach", res["seed"], [res["seed"]]), ("floor", res["floor"], res["floor"]["runs"])):
        t.add_row(label, f"{part['tracks_per_s']:.2f}", f"{1 / part['tracks_per_s']:.3f}", f"{part['cpu_per_track_s']:.3f}",
                  f"{median(r['wall_s'] for r in runs):.1f}", mb(part.get("peak_rss") or max(r["peak_rss"] for r in runs)))
    rs = res["rescan"]
    t.add_row(f"unchanged rescan ({n})", f"{100 * rs['share_of_cold']:.1f} % of cold", "",
              f"{rs['cpu_s']:.2f} in all", f"{rs['wall_s']:.2f}", mb(max(r["peak_rss"] for r in rs["runs"])))
    console.print(t)

    f = Table(title="per format, medians (s): the clips decoded by moodtag, the whole track by librosa")
    for col in ("format", "load_clips", "floor per track", "librosa.load", "seed per track", "seed / floor"):
        f.add_column(col, justify="right" if col != "format" else "left")
    pf = res["per_format"]
    for fmt in pf["load_clips_s"]:
        f.add_row(fmt, f"{pf['load_clips_s'][fmt]:.3f}", f"{pf['floor_track_s'][fmt]:.3f}",
                  f"{pf['seed_librosa_load_s'][fmt]:.3f}", f"{pf['seed_track_s'][fmt]:.3f}",
                  f"{pf['seed_track_s'][fmt] / pf['floor_track_s'][fmt]:.1f}x")
    console.print(f)
    console.print(f"2 jobs used {c2['cores_used']:.2f} cores on average (CPU / wall). Seed decoders: "
                  f"{', '.join(res['seed']['decoders'])}. Imports + model load: seed {res['seed']['setup_s']:.1f} s, "
                  f"floor {res['floor']['setup_s']:.1f} s. Heavy modules the rescan imports: "
                  f"{', '.join(rs['heavy_imports']) or 'none'}. Load average {res['machine']['load_average'][0]:.1f} "
                  f"on {res['machine']['cpus']} CPUs.")
    render_targets(res, console)


def render_memory(res: dict, console) -> None:
    from rich.table import Table

    t = Table(title="moodtag scan memory: cold cache, --no-write (files untouched)")
    for col in ("scan", "wall (s)", "tracks/s", "CPU s per track", "peak RSS (tree)", "processes at peak"):
        t.add_column(col, justify="right")
    for k, run in res["cold_scans"].items():
        t.add_row(k, f"{run['wall_s']:.1f}", f"{run['tracks_per_s']:.2f}", f"{run['cpu_per_track_s']:.3f}",
                  mb(run["peak_rss"]), str(run["peak_processes"]))
    rs = res["rescan"]
    t.add_row(f"unchanged rescan, {rs['tracks']} tracks", f"{rs['wall_s']:.2f}", "", "",
              mb(max(r["peak_rss"] for r in rs["runs"])), "")
    console.print(t)
    render_targets(res, console)


def render_targets(res: dict, console) -> None:
    from rich.table import Table

    t = Table(title="targets: ratios from this run, by wall clock (the target) and by CPU time (load-independent)")
    for col in ("target", "wanted", "wall clock", "", "CPU time", ""):
        t.add_column(col)
    for name, row in res["targets"].items():
        t.add_row(name, row["target"], _shown(row["wall"], row["target"]), verdict(row["pass"]),
                  _shown(row["cpu"], row["target"]), "" if row["pass_by_cpu"] is None else verdict(row["pass_by_cpu"]))
    console.print(t)


def _shown(v, target: str) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if "%" in target:
        return f"{100 * v:.2f} %"
    if "MB" in target:
        return mb(v)
    return f"{v:.2f}x"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracks", type=int, default=128, help="library size for the speed runs (default 128)")
    parser.add_argument("--repeats", type=int, default=3, help="cold scans of each kind, fresh copy each (default 3)")
    parser.add_argument("--model", help="model file or shipped name (default: the shipped default, if any)")
    parser.add_argument("--memory-check", action="store_true",
                        help="peak memory at 200 vs 1,000 tracks (2 jobs, --no-write), a rescan of 1,000, "
                             "and 1 job vs 2 jobs at 1,000 tracks")
    parser.add_argument("--memory-sizes", type=int, nargs=2, default=(200, 1000), metavar=("SMALL", "LARGE"))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="work folder (default benchmarks/out)")
    parser.add_argument("--keep", action="store_true", help="keep the copied libraries")
    parser.add_argument("--worker", choices=("seed", "floor", "decode"), help=argparse.SUPPRESS)
    parser.add_argument("--files", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        files = [tuple(x) for x in json.loads(args.files.read_text())]
        worker_main(args.worker, Path(args.model), files, args.result, args.repeats)
        return

    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console = Console(width=110)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.memory_check:
        small, large = args.memory_sizes
        if not 0 < small < large or large % small:
            parser.error("--memory-sizes: SMALL < LARGE, and LARGE a multiple of SMALL")
        res = memory(args, out, console)
        render_memory(res, console)
    else:
        res = speed(args, out, console)
        render_speed(res, console)
    path = out / "results.json"
    previous = json.loads(path.read_text()) if path.is_file() else {}
    previous[res["mode"]] = dict(res, finished=time.strftime("%Y-%m-%d %H:%M:%S"))
    path.write_text(json.dumps(previous, indent=1, default=str))
    console.print(f"written to {path}")


if __name__ == "__main__":
    main()
