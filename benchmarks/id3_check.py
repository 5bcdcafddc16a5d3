#!/usr/bin/env python3
"""What the damaged-ID3 check costs a tag write, before and after a change, in the same run.

    python benchmarks/id3_check.py [--baseline REV] [--repeat 41] [--seconds 30]

Before every ID3v2 write or removal, `tagger.tags._require_whole_id3` makes sure mutagen read the
whole tag (else its save would drop the frames it skipped). This times, in CPU seconds of this
process (user + system: what the scan's parent spends) and wall seconds:
  write_mood   the whole write, as a scan calls it (parse, check, change, crash-safe save)
  check        `_require_whole_id3` alone, on a file already loaded
  read_mood    a read (every ID3 load notes the frames mutagen parsed, which the check uses)
on a real MP3 (`tagger.synth`, encoded by LAME through libsndfile; `--seconds` long) tagged with a
title and an artist and (a) no cover, (b) a 500 kB cover, (c) a 5 MB cover: an APIC frame added with
mutagen, its data random bytes after a JPEG marker (mutagen does not look inside a picture).

"before" is tagger/tags.py as it is at git revision `--baseline` (default HEAD), loaded beside the
working tree's ("after"); each has its own copies of the files, and the two alternate call by call,
in an order that flips every repeat, so machine load hits them alike. One measure is taken at a time
(all its calls, then the next measure's), so that none is timed in the memory allocator's state that
another left (a 5 MB read just freed makes the next 5 MB allocation cheaper). Each write_mood writes
(the mood alternates). Prints the median milliseconds and the ratio after / before.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MEASURES = ("write_mood", "check", "read_mood")
COVERS = {"no cover": 0, "500 kB cover": 500_000, "5 MB cover": 5_000_000}


def baseline_module(rev: str):
    """tagger/tags.py at `rev`, as a module of its own (tagger._tags_before)."""
    source = subprocess.check_output(["git", "show", f"{rev}:tagger/tags.py"], cwd=ROOT)
    name = "tagger._tags_before"
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader=None))
    sys.modules[name] = module
    exec(compile(source, f"tagger/tags.py@{rev}", "exec"), module.__dict__)
    return module


def build(folder: Path, seconds: float) -> dict[str, Path]:
    from mutagen import id3, mp3

    from tagger import synth

    seed = synth.make_track(folder / "seed.mp3", "calm", seconds, seed=1)
    files = {}
    for case, size in COVERS.items():
        path = folder / f"{case.replace(' ', '-')}.mp3"
        shutil.copyfile(seed, path)
        audio = mp3.MP3(path)
        audio.add_tags()
        audio.tags.add(id3.TIT2(encoding=3, text=["A title"]))
        audio.tags.add(id3.TPE1(encoding=3, text=["An artist"]))
        if size:
            picture = b"\xff\xd8\xff\xe0" + os.urandom(size - 4)
            audio.tags.add(id3.APIC(encoding=3, mime="image/jpeg", type=id3.PictureType.COVER_FRONT,
                                    desc="cover", data=picture))
        audio.save()
        files[case] = path
    return files


def timed(call) -> tuple[float, float]:
    c, w = time.process_time(), time.perf_counter()
    call()
    return time.process_time() - c, time.perf_counter() - w


def measure(m: str, mod, path: Path, r: int, journal) -> tuple[float, float]:
    """(CPU, wall) seconds of one call of measure `m` with tagger.tags version `mod`, repeat `r`."""
    if m == "write_mood":   # the mood alternates, so every call writes
        values = mod.MoodValues(mood=("calm", "exciting")[r % 2],
                                scores={"calm": (0.9, 0.1)[r % 2], "exciting": (0.1, 0.9)[r % 2]},
                                model="moodtag-rhythm 1.1.0")
        return timed(lambda: mod.write_mood(path, values, journal=journal))
    if m == "check":
        with mod._opened(path) as fh:
            audio, _ = mod._load(fh)
            return timed(lambda: mod._require_whole_id3(audio, fh))
    return timed(lambda: mod.read_mood(path))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", default="HEAD", help="git revision of tagger/tags.py for 'before'")
    ap.add_argument("--repeat", type=int, default=41, help="timed calls per file, version and measure")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of the MP3")
    args = ap.parse_args(argv)

    from tagger import tags as after
    from tagger.safewrite import UndoJournal

    versions = {"before": baseline_module(args.baseline), "after": after}
    times = {(v, m, case): [] for v in versions for m in MEASURES for case in COVERS}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = build(root, args.seconds)
        journal = UndoJournal(root / "journal")
        copies = {}
        for v in versions:
            for case, path in files.items():
                copies[v, case] = root / f"{v}-{path.name}"
                shutil.copyfile(path, copies[v, case])
        for m in MEASURES:   # one measure at a time: none runs in the allocator state another left
            for r in range(args.repeat):
                order = list(versions) if r % 2 == 0 else list(reversed(versions))
                for case in COVERS:
                    for v in order:
                        times[v, m, case].append(measure(m, versions[v], copies[v, case], r, journal))
        for case, path in files.items():   # the two versions wrote the same tags
            a, b = (mutagen_tags(copies[v, case]) for v in versions)
            assert a == b, f"{case}: before and after wrote different tags"

    print(f"median ms per call, CPU (user+sys) and wall; {args.repeat} calls each; before = tags.py at "
          f"{args.baseline}, after = working tree")
    head = f"{'measure':11} {'case':13} | {'CPU before':>10} {'after':>7} {'ratio':>6} | {'wall before':>11} {'after':>7} {'ratio':>6}"
    print(head)
    print("-" * len(head))
    for m in MEASURES:
        for case in COVERS:
            cpu = {v: statistics.median(t[0] for t in times[v, m, case]) * 1000 for v in versions}
            wall = {v: statistics.median(t[1] for t in times[v, m, case]) * 1000 for v in versions}
            print(f"{m:11} {case:13} | {cpu['before']:10.3f} {cpu['after']:7.3f} {cpu['after'] / cpu['before']:6.2f} | "
                  f"{wall['before']:11.3f} {wall['after']:7.3f} {wall['after'] / wall['before']:6.2f}")
    return 0


def mutagen_tags(path: Path) -> list[tuple[str, str]]:
    from mutagen import id3

    return sorted((key, repr(frame)) for key, frame in id3.ID3(path).items())


if __name__ == "__main__":
    raise SystemExit(main())
