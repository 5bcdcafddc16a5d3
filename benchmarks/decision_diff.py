#!/usr/bin/env python3
"""Do two versions of the code give every track the same mood? And how far apart are their numbers?

    python benchmarks/decision_diff.py --against 098d32d ~/corpus/dev ~/more/dev benchmarks/out/sources

Each version (COMMIT, checked out into a temporary git worktree, and this tree) analyses every audio
file under the given folders with its own code (`tagger.analyze.analyze_track`, the default model, or
--model), in a process of its own; then the two are compared track by track: the mood, the
confidence and every score of the track and of each clip, unrounded (a scan's cache and its JSON keep
them to 4 decimals). A speed change must leave every mood as it was; this prints how many differ and
the largest change of a confidence and of any score, and writes every track's pair to OUT/decisions.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import scan_profile as sp  # noqa: E402  (checkout, AUDIO_SUFFIXES)

REPO = HERE.parent
# Runs in the checked-out tree (its cwd and PYTHONPATH): the paths as one JSON list on stdin (a file name
# may hold a newline), one JSON line per track out.
ANALYSE = """
import json, sys
from pathlib import Path
from tagger.analyze import analyze_track
from tagger.weights import load_model
model = load_model(sys.argv[1])
for name in json.load(sys.stdin):
    r = analyze_track(Path(name), model)
    print(json.dumps({"path": str(r.path), "mood": r.mood, "confidence": r.confidence, "scores": r.scores,
                      "clips": [c.scores for c in r.clips], "error": r.error}), flush=True)
"""


def audio_files(folders: list[Path]) -> list[Path]:
    return sorted(p for folder in folders for p in folder.expanduser().resolve().rglob("*")
                  if p.suffix.lower() in sp.AUDIO_SUFFIXES and p.is_file())


def analyse(code: Path, files: list[Path], model: str) -> dict[str, dict]:
    run = subprocess.run([sys.executable, "-c", ANALYSE, model], input=json.dumps([str(f) for f in files]),
                         capture_output=True, text=True, cwd=code, env={**os.environ, "PYTHONPATH": str(code)})
    if run.returncode:
        raise SystemExit(f"analysis with {code} failed:\n{run.stderr[-2000:]}")
    return {r["path"]: r for r in map(json.loads, run.stdout.splitlines())}


def model_argument(model: str) -> str:
    """--model as both versions must read it: a file, as an absolute path (each version runs in its own tree,
    where a relative path would name another file or none); a shipped model's name, as it is (each version
    takes its own). ValueError for a path that names no file."""
    path = Path(model).expanduser()
    if path.is_file():
        return str(path.resolve())
    if path.suffix == ".safetensors" or len(path.parts) > 1:
        raise ValueError(f"--model {model}: no such model file")
    return model


def outcome(r: dict) -> str:
    """A track's result in a line: its mood, or the error it failed with."""
    return f"error {r['error']!r}" if r["error"] is not None else str(r["mood"])


def drop_checkout(tree: Path) -> None:
    """Remove the temporary worktree of the older commit."""
    subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)


def numbers(r: dict) -> list[float]:
    return [r["confidence"] or 0.0, *r["scores"].values(), *(v for c in r["clips"] for v in c.values())]


def compare(old: dict[str, dict], new: dict[str, dict]) -> dict:
    """Tracks, moods that differ, the largest change of a confidence and of any score."""
    moods, confidence, any_score, failures = [], 0.0, 0.0, 0
    for path in sorted(old.keys() & new.keys()):
        a, b = old[path], new[path]
        if a["mood"] != b["mood"] or a["error"] != b["error"]:
            moods.append(path)
            continue
        if a["error"]:
            failures += 1
            continue
        confidence = max(confidence, abs(a["confidence"] - b["confidence"]))
        pairs = list(zip(numbers(a), numbers(b)))
        any_score = max([any_score] + [abs(x - y) for x, y in pairs]) if len(numbers(a)) == len(numbers(b)) \
            else float("inf")
    return {"tracks": len(old.keys() & new.keys()), "failed_on_both": failures, "moods_differ": moods,
            "max_confidence_change": confidence, "max_score_change": any_score}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", type=Path, nargs="+", help="folders of audio files (searched recursively)")
    parser.add_argument("--against", required=True, metavar="COMMIT", help="the older code")
    parser.add_argument("--model", default="moodtag-rhythm", help="model name or file (default moodtag-rhythm)")
    parser.add_argument("--out", type=Path, default=HERE / "out", help="work folder (default benchmarks/out)")
    args = parser.parse_args(argv)
    try:
        model = model_argument(args.model)
    except ValueError as exc:
        parser.error(str(exc))
    files = audio_files(args.folders)
    if not files:
        raise SystemExit("no audio files under " + ", ".join(map(str, args.folders)))
    args.out = args.out.resolve()  # git -C REPO would take a relative one from REPO, this script from the cwd
    args.out.mkdir(parents=True, exist_ok=True)
    tree = sp.checkout(args.against, args.out)
    try:
        old = analyse(tree, files, model)
        new = analyse(REPO, files, model)
    finally:
        drop_checkout(tree)
    res = compare(old, new)
    (args.out / "decisions.json").write_text(json.dumps({"against": args.against, **res, "old": old, "new": new},
                                                        indent=1))
    print(f"{res['tracks']} tracks ({res['failed_on_both']} failed with both): "
          f"{len(res['moods_differ'])} moods differ; largest change of a confidence "
          f"{res['max_confidence_change']:.3g}, of any track or clip score {res['max_score_change']:.3g}")
    for path in res["moods_differ"]:
        print(f"  differs: {path}: {outcome(old[path])} -> {outcome(new[path])}")
    return 1 if res["moods_differ"] else 0


if __name__ == "__main__":
    sys.exit(main())
