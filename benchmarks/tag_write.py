#!/usr/bin/env python3
"""The cost of a crash-safe tag write, against mutagen writing in place (moodtag before 0.4).

    python benchmarks/tag_write.py [--files 3] [--mb 40] [--repeat 5] [--dir DIR] [--json OUT.json]

Builds a library in a temporary folder (deleted after): `--files` files per format (MP3, FLAC, Ogg
Vorbis, Opus, AAC and ALAC in M4A, WAV, AIFF) of about `--mb` MB each, made cheaply (repeated MP3
frames, Ogg pages and M4A packets; FLAC, WAV and AIFF of noise). Each file is tagged with an artist
and a title twice over: once with 64 KiB of padding after its tag ("fits": the mood fits the padding),
once with none, the tag in front of the audio ("grows": the mood makes the tag grow, so everything
behind it moves; the WAV and AIFF ID3 chunk placed before the audio).

Three writers, each timed on `tagger.tags.write_mood` as a scan calls it (parse, change, write):
  old       mutagen's save on the file itself, no fsync (what moodtag did: a kill mid-write can
            damage the audio)
  old+sync  the same, then fsync (what the old way costs when the data must reach the disk)
  safe      tagger.safewrite (in place with an undo journal when the tag fits; else a copy renamed
            over the file)
"grows" restores the untagged-by-us file (untimed) before every timed write, and every timed write
starts after an untimed `sync`, so that no writer pays for data another left dirty (on ext4 an fsync
waits for everything the journal commit carries). The writers alternate file by file and repeat by
repeat, so machine load hits them alike. Prints the median milliseconds
per write and the ratios, measured in the same run; `--json` writes them too. Files are in the page
cache (just written), as in a scan, which has just read the file's clips.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FORMATS = ("mp3", "flac", "ogg", "opus", "m4a", "alac.m4a", "wav", "aiff")
WRITERS = ("old", "old+sync", "safe")


def build_library(folder: Path, files: int, size: int) -> dict[str, list[tuple[Path, Path]]]:
    """format -> [(file whose tag has padding, file whose tag has none)] * files."""
    import soundfile as sf

    from tagger import synth
    from tests.test_safewrite import add_tags, id3_chunk_first, noise, repeated_m4a, repeated_mp3, repeated_ogg

    small = folder / "small"
    small.mkdir()
    library: dict[str, list[tuple[Path, Path]]] = {}
    for fmt in FORMATS:
        source = small / f"big.{fmt}"
        seed = synth.make_track(small / f"s.{fmt}", "exciting", 10.0, seed=3)
        if fmt == "mp3":
            repeated_mp3(seed, source, size)
        elif fmt in ("ogg", "opus"):
            repeated_ogg(seed, source, size)
        elif fmt.endswith("m4a"):
            repeated_m4a(seed, source, size)
        else:
            sf.write(str(source), noise(size / (synth.SAMPLE_RATE * 4)), synth.SAMPLE_RATE, subtype="PCM_16",
                     format={"flac": "FLAC", "wav": "WAV", "aiff": "AIFF"}[fmt])
        library[fmt] = []
        for i in range(files):
            fits, grows = folder / f"fits{i}.{fmt}", folder / f"grows{i}.{fmt}"
            shutil.copyfile(source, fits)
            add_tags(fits, 64 << 10)
            shutil.copyfile(source, grows)
            add_tags(grows, 0)
            if fmt in ("wav", "aiff"):
                id3_chunk_first(grows)
            library[fmt].append((fits, grows))
        source.unlink()
    return library


@contextmanager
def writer(name: str, methods: list):
    """tagger.tags writing through `name`'s rewrite; the safe writer's method is appended to `methods`."""
    from tagger import safewrite

    safe = safewrite.rewrite

    def old(path, source, save, *, journal, expect=None, sync=False):   # `expect` unchecked: the old writer's way
        with open(path, "r+b") as fh:
            save(fh)
            fh.flush()
            if sync:
                os.fsync(fh.fileno())
            return safewrite.Rewritten("in place", os.fstat(fh.fileno()))

    def spied(*args, **kwargs):
        method = safe(*args, **kwargs)
        methods.append(method)
        return method

    safewrite.rewrite = {"old": old, "old+sync": lambda *a, **k: old(*a, **k, sync=True), "safe": spied}[name]
    try:
        yield
    finally:
        safewrite.rewrite = safe


def restore(original: Path, copy: Path) -> None:
    """Make `copy` the original's bytes again, on disk (a file at rest, as in a library)."""
    shutil.copyfile(original, copy)
    with open(copy, "rb") as fh:
        os.fsync(fh.fileno())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=3, help="files per format")
    ap.add_argument("--mb", type=float, default=40.0, help="size of each file in MB")
    ap.add_argument("--repeat", type=int, default=5, help="timed writes per file, writer and case")
    ap.add_argument("--dir", type=Path, default=None, help="where to build the library (default: a temp folder)")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args(argv)

    from tagger.safewrite import UndoJournal
    from tagger.tags import MoodValues, write_mood

    values = [MoodValues(mood="calm", scores={"calm": 0.913, "exciting": 0.087}, model="moodtag-rhythm 1.1.0"),
              MoodValues(mood="exciting", scores={"calm": 0.204, "exciting": 0.796}, model="moodtag-rhythm 1.1.0")]
    times = {(fmt, case, w): [] for fmt in FORMATS for case in ("fits", "grows") for w in WRITERS}
    methods = {(fmt, case): [] for fmt in FORMATS for case in ("fits", "grows")}
    sizes = {}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        (root / "library").mkdir()
        library = build_library(root / "library", args.files, int(args.mb * 1e6))
        print(f"library: {args.files} files x {len(FORMATS)} formats x 2 cases, about {args.mb:g} MB each, "
              f"built in {time.perf_counter() - t0:.0f} s in {root}", file=sys.stderr)
        journal = UndoJournal(root / "journal")
        copies = {}   # (file, writer) -> that writer's own copy
        for fmt, pairs in library.items():
            sizes[fmt] = statistics.median(p.stat().st_size for pair in pairs for p in pair) / 1e6
            for pair in pairs:
                for original in pair:
                    for w in WRITERS:
                        copy = original.with_name(f"{w}-{original.name}")
                        shutil.copyfile(original, copy)
                        copies[original, w] = copy
        os.sync()   # start with nothing to write back: a library at rest
        for r in range(args.repeat):
            order = WRITERS[r % 3:] + WRITERS[:r % 3]
            for fmt, pairs in library.items():
                for fits, grows in pairs:
                    for w in order:
                        os.sync()   # untimed: nothing left to write back from the previous write
                        with writer(w, methods[fmt, "fits"] if w == "safe" else []):
                            t = time.perf_counter()
                            write_mood(copies[fits, w], values[r % 2], journal=journal)
                            times[fmt, "fits", w].append(time.perf_counter() - t)
                        restore(grows, copies[grows, w])   # untimed: back to a tag without padding
                        os.sync()
                        with writer(w, methods[fmt, "grows"] if w == "safe" else []):
                            t = time.perf_counter()
                            write_mood(copies[grows, w], values[r % 2], journal=journal)
                            times[fmt, "grows", w].append(time.perf_counter() - t)
            print(f"repeat {r + 1}/{args.repeat} done", file=sys.stderr)

    rows = []
    for fmt in FORMATS:
        row = {"format": fmt, "mb": round(sizes[fmt], 1)}
        for case in ("fits", "grows"):
            ms = {w: statistics.median(times[fmt, case, w]) * 1000 for w in WRITERS}
            how = sorted(set(methods[fmt, case]))
            row[case] = {"ms": {w: round(v, 2) for w, v in ms.items()},
                         "safe/old": round(ms["safe"] / ms["old"], 2),
                         "safe/old+sync": round(ms["safe"] / ms["old+sync"], 2),
                         "safe writes": " / ".join(how)}
        rows.append(row)
    overall = {}
    for case in ("fits", "grows"):
        ms = {w: statistics.median([t for fmt in FORMATS for t in times[fmt, case, w]]) * 1000 for w in WRITERS}
        overall[case] = {"ms": {w: round(v, 2) for w, v in ms.items()},
                         "safe/old": round(ms["safe"] / ms["old"], 2),
                         "safe/old+sync": round(ms["safe"] / ms["old+sync"], 2)}

    head = f"{'format':9} {'MB':>5} | {'fits: old':>9} {'+sync':>7} {'safe':>7} {'ratio':>6} | " \
           f"{'grows: old':>10} {'+sync':>7} {'safe':>7} {'ratio':>6}  safe writes"
    print("median ms per tag write; ratio = safe / old")
    print(head)
    print("-" * len(head))
    for row in rows + [{"format": "all", "mb": float("nan"), **overall}]:
        f, g = row["fits"], row["grows"]
        print(f"{row['format']:9} {row['mb']:5.1f} | {f['ms']['old']:9.1f} {f['ms']['old+sync']:7.1f} "
              f"{f['ms']['safe']:7.1f} {f['safe/old']:6.2f} | {g['ms']['old']:10.1f} {g['ms']['old+sync']:7.1f} "
              f"{g['ms']['safe']:7.1f} {g['safe/old']:6.2f}  {g.get('safe writes', '')}")
    if args.json:
        args.json.write_text(json.dumps({
            "machine": {"platform": platform.platform(), "python": platform.python_version(),
                        "cpus": os.cpu_count()},
            "files_per_format": args.files, "mb": args.mb, "repeat": args.repeat,
            "formats": rows, "all": overall}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
