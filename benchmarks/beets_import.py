#!/usr/bin/env python3
"""What the beets plugin costs: `beet import` with and without it, and `beet moodtag` afterwards.

    python benchmarks/beets_import.py                      # 16 tracks in 4 album folders, 3 repeats
    python benchmarks/beets_import.py --tracks 32 --albums 8 --jobs 2 --repeats 5

A library of --tracks synthetic 20-second tracks (tagger.synth: calm and exciting, FLAC, WAV, MP3,
Ogg Vorbis in turn) in --albums folders is made once under benchmarks/out/beets/. Each case runs the
real `beet` (`python -m beets`, this checkout on PYTHONPATH, the plugin through `pluginpath`) on a
fresh copy of the library with a fresh beets folder and moodtag cache, `import.copy: no`,
`import.write: no`, moodtag.jobs --jobs:

  import (no plugin)       `beet import -A -q LIB` with no plugin: beets' own cost, the baseline
  import, auto (albums)    the plugin on (`auto: yes`): each album is analysed once its files are in place
  import, auto (singles)   the same with `-s`: one import task, so one worker pool, per track
  import + beet moodtag    `auto: no`, then `beet moodtag` over the whole library: one pool for all
  beet moodtag again       the same command on the unchanged library: everything comes from the cache

Wall clock from process start (beets' and moodtag's imports count); medians over --repeats, and the
plugin's share as the difference from the baseline measured in the same run. Results also go to
benchmarks/out/beets_import.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
KINDS = (("calm", ".flac"), ("exciting", ".mp3"), ("calm", ".wav"), ("exciting", ".ogg"))


def make_library(folder: Path, tracks: int, albums: int) -> Path:
    """--tracks 20 s tracks in --albums folders, made once (kept while the plan is the same)."""
    sys.path.insert(0, str(ROOT))
    from tagger import synth

    library = folder / f"library-{tracks}-{albums}"
    if library.is_dir():
        return library
    partial = folder / "partial"
    shutil.rmtree(partial, ignore_errors=True)
    for i in range(tracks):
        mood, suffix = KINDS[i % len(KINDS)]
        album = partial / f"album{i % albums:02d}"
        album.mkdir(parents=True, exist_ok=True)
        synth.make_track(album / f"{i:03d}_{mood}{suffix}", mood, 20.0, seed=i)
    partial.rename(library)
    return library


def beet(beetsdir: Path, *args: str) -> float:
    """Run `beet ARGS` in its own beets folder; seconds of wall clock."""
    started = time.perf_counter()
    _run(beetsdir, *args)
    return time.perf_counter() - started


def _run(beetsdir: Path, *args: str) -> str:
    env = dict(os.environ, BEETSDIR=str(beetsdir), PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "beets", *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"beet {' '.join(args)} -> {proc.returncode}\n{proc.stderr}")
    return proc.stdout


def check_moods(beetsdir: Path, tracks: int, *, moods: bool = True) -> None:
    """Every track was imported, each with a mood (or, for the baseline, none)."""
    found = _run(beetsdir, "ls", "-f", "$mood").split()
    expected = ["calm", "exciting"] if moods else ["$mood"]
    if len(found) != tracks or not set(found) <= set(expected):
        raise SystemExit(f"expected {tracks} items with {expected}, found {found}")


def setup(work: Path, library: Path, *, plugin: bool, auto: bool, jobs: int) -> tuple[Path, Path]:
    """A fresh copy of the library and a fresh beets folder; returns (beets folder, library copy)."""
    shutil.rmtree(work, ignore_errors=True)
    music = work / "music"
    shutil.copytree(library, music)
    beetsdir = work / "beets"
    beetsdir.mkdir()
    config = {"directory": str(work / "lib"), "library": str(beetsdir / "library.db"),
              "import": {"copy": False, "write": False, "duplicate_action": "keep"},  # untagged: alike
              "plugins": []}
    if plugin:
        config.update(pluginpath=[str(ROOT / "tagger" / "beetsplug")], plugins=["moodtag"],
                      moodtag={"auto": auto, "jobs": jobs, "db": str(beetsdir / "moodtag.db")})
    (beetsdir / "config.yaml").write_text(json.dumps(config))
    return beetsdir, music


def run_cases(library: Path, *, tracks: int, jobs: int, work: Path) -> dict[str, float]:
    times = {}
    beetsdir, music = setup(work, library, plugin=False, auto=False, jobs=jobs)
    times["import (no plugin)"] = beet(beetsdir, "import", "-A", "-q", str(music))
    check_moods(beetsdir, tracks, moods=False)
    beetsdir, music = setup(work, library, plugin=True, auto=True, jobs=jobs)
    times["import, auto (albums)"] = beet(beetsdir, "import", "-A", "-q", str(music))
    check_moods(beetsdir, tracks)
    beetsdir, music = setup(work, library, plugin=True, auto=True, jobs=jobs)
    times["import, auto (singles)"] = beet(beetsdir, "import", "-A", "-q", "-s", str(music))
    check_moods(beetsdir, tracks)
    beetsdir, music = setup(work, library, plugin=True, auto=False, jobs=jobs)
    imported = beet(beetsdir, "import", "-A", "-q", str(music))
    command = beet(beetsdir, "moodtag")
    times["import + beet moodtag"] = imported + command
    check_moods(beetsdir, tracks)
    times["beet moodtag again"] = beet(beetsdir, "moodtag")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=16)
    parser.add_argument("--albums", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    folder = OUT / "beets"
    folder.mkdir(parents=True, exist_ok=True)
    library = make_library(folder, args.tracks, args.albums)
    runs = []
    with tempfile.TemporaryDirectory(prefix="moodtag-beets-bench-") as tmp:
        for _ in range(args.repeats):
            runs.append(run_cases(library, tracks=args.tracks, jobs=args.jobs, work=Path(tmp) / "work"))
    medians = {case: statistics.median(run[case] for run in runs) for case in runs[0]}
    base = medians["import (no plugin)"]
    print(f"{args.tracks} tracks of 20 s in {args.albums} albums, --jobs {args.jobs}, "
          f"median of {args.repeats} runs (wall clock, s)")
    for case, seconds in medians.items():
        extra = f"  plugin's share {seconds - base:6.2f} s ({(seconds - base) / args.tracks:.3f} s/track)" \
            if case.startswith("import") and case != "import (no plugin)" else ""
        print(f"  {case:24s} {seconds:7.2f}{extra}")
    print(f"  singles / albums, the plugin's share: "
          f"{(medians['import, auto (singles)'] - base) / (medians['import, auto (albums)'] - base):.2f}")
    (OUT / "beets_import.json").write_text(json.dumps(
        {"tracks": args.tracks, "albums": args.albums, "jobs": args.jobs, "runs": runs, "medians": medians},
        indent=2))


if __name__ == "__main__":
    main()
