#!/usr/bin/env python3
"""Markdown tables from grouped_cv.py --json outputs (the model card's comparison is made with this).

    python benchmarks/accuracy_table.py benchmarks/out/grouped_cv.json benchmarks/out/cnn_mel.json ...

Prints: the comparison (overall, per family, per game), one row per model and clip placement; then
the reliability of the chosen label's confidence for each model that has it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grouped_cv import confidence_rows  # noqa: E402

FAMILIES = ("games", "folk", "classical")


def f(x) -> str:
    return "-" if x is None else f"{x:.2f}"


def table_row(cells: list[str]) -> str:
    """One line of a Markdown table: every cell between bars (no empty cell where a list of them is empty)."""
    return "| " + " | ".join(cells) + " |"


def read_doc(path: Path) -> dict:
    """A grouped_cv.py --json output; ValueError, one line naming the file and the cause, for anything else."""
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), dict) or not isinstance(doc.get("tracks"), list):
        raise ValueError(f"{path}: not a grouped_cv.py --json output (no 'results' and 'tracks')")
    return doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", type=Path, nargs="+", metavar="JSON", help="outputs of grouped_cv.py --json")
    args = parser.parse_args(argv)
    docs, problems = [], []
    for path in args.paths:
        try:
            docs.append(read_doc(path))
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        print("\n".join(f"error: {p}" for p in problems), file=sys.stderr)
        return 1
    games = sorted({t["group"] for d in docs for t in d["tracks"] if t["family"] == "games"})
    header = ["model", "clips", "BA", "AUC", "BA, threshold tuned on inner folds",
              *(f"{k} BA / AUC" for k in FAMILIES), *games, "bar"]
    print(table_row(header))
    print("|" + "---|" * len(header))
    for doc in docs:
        for name, r in doc["results"].items():
            placement = r["config"].get("placement", doc.get("placement", "contiguous"))
            o = r["overall"]
            tuned = f(o["ba_tuned"]) if "tuned" not in str(r["config"].get("threshold", "")) else "-"
            fam = [f"{f(r['families'][k]['ba'])} / {f(r['families'][k]['auc'])}" if k in r["families"] else "-"
                   for k in FAMILIES]  # grouped_cv.py leaves out a family the data has no track of
            per_game = [f"{f(r['sources'][g]['ba'])} / {f(r['sources'][g]['auc'])}" if g in r["sources"] else "-"
                        for g in games]
            print(table_row([name, placement, f(o["ba"]), f(o["auc"]), tuned, *fam, *per_game,
                             "yes" if r["meets_bar"] else "no"]))
    for doc in docs:
        for name, r in doc["results"].items():
            cal = r.get("calibrated")
            if not cal:
                continue
            print(f"\n{name}, {doc.get('placement', 'contiguous')} clips: confidence of the chosen label "
                  "(out of fold) -> how often right")
            print("| confidence | tracks | mean confidence | accuracy | with a temperature from inner folds (as shipped): tracks "
                  "| mean confidence | accuracy |")
            print("|---|---|---|---|---|---|---|")
            for row in confidence_rows(cal):
                print(f"| {' | '.join(row)} |")
            print(f"expected calibration error: {cal['raw_expected_calibration_error']:.3f} raw, "
                  f"{cal['expected_calibration_error']:.3f} with the temperature")
    return 0


if __name__ == "__main__":
    sys.exit(main())
