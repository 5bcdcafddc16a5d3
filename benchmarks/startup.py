#!/usr/bin/env python3
"""What a read command costs before it has anything to read: each command of the real CLI on the example
library's cache (six tracks), its output to a file, wall clock from its start to its end.

    python benchmarks/startup.py                              # this checkout, 21 runs of each command
    python benchmarks/startup.py --baseline /tmp/base         # another checkout beside it, alternating

The example library (examples/library/) is copied and scanned once, into benchmarks/out/startup/. With
`--baseline DIR` (e.g. `git worktree add /tmp/base main`), each run of a command alternates the two
checkouts (which goes first alternates too), so both see the same load; the figures are medians, and the
difference is worked out per command. Both checkouts run with their modules' bytecode, as an installed
package has it (bench_env.moodtag_env).
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_env import ROOT, moodtag_env, say

COMMANDS = {
    "query (piped: TSV)": ["query"],
    "query --limit 0": ["query", "--limit", "0"],
    "query --csv": ["query", "--csv"],
    "query --json": ["query", "--json"],
    "query --paths": ["query", "--paths"],
    "stats": ["stats"],
    "playlists": ["playlists", "--out-dir", "{out}/playlists"],
}


def prepare(out: Path) -> Path:
    """A scanned copy of the example library; its cache's path."""
    lib, db = out / "library", out / "cache.db"
    if not db.exists():
        shutil.rmtree(lib, ignore_errors=True)
        shutil.copytree(ROOT / "examples" / "library", lib)
        subprocess.run([sys.executable, "-m", "tagger", "scan", str(lib), "--db", str(db)], env=moodtag_env(),
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return db


def timed(cmd: list[str], root: Path, sink: Path) -> float:
    with open(sink, "wb") as stdout:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "tagger", *cmd], env=moodtag_env(root), cwd=root, stdout=stdout,
                       stderr=subprocess.DEVNULL, check=True)
        return time.perf_counter() - start


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", type=Path, help="another checkout of moodtag, measured beside this one")
    ap.add_argument("--repeat", type=int, default=21, help="runs of each command (median)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "startup")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    db = prepare(args.out.resolve())
    sides = [("after", ROOT)] + ([("before", args.baseline.resolve())] if args.baseline else [])
    say(f"{'command':22s} " + "  ".join(f"{name:>8s}" for name, _ in sides) + ("   saved" if args.baseline else ""))
    for name, cmd in COMMANDS.items():
        cmd = [c.format(out=args.out) for c in cmd] + ["--db", str(db)]
        times: dict[str, list[float]] = {side: [] for side, _ in sides}
        for i in range(args.repeat):
            for side, root in (sides if i % 2 == 0 else sides[::-1]):
                times[side].append(timed(cmd, root, args.out / "stdout"))
        med = {side: statistics.median(t) for side, t in times.items()}
        line = f"{name:22s} " + "  ".join(f"{med[side] * 1000:6.0f}ms" for side, _ in sides)
        if args.baseline:
            line += f"  {(med['before'] - med['after']) * 1000:5.0f}ms"
        say(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
