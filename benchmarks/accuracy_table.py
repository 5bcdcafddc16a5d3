#!/usr/bin/env python3
"""Markdown tables from grouped_cv.py --json outputs (the model card's comparison is made with this).

    python benchmarks/accuracy_table.py benchmarks/out/grouped_cv.json benchmarks/out/cnn_mel.json ...

Prints: the comparison (overall, per family, per game), one row per model and clip placement; then
the reliability of the chosen label's confidence for each model that has it.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grouped_cv import confidence_rows  # noqa: E402

FAMILIES = ("games", "folk", "classical")


def f(x) -> str:
    return "-" if x is None else f"{x:.2f}"


def main(paths: list[str]) -> int:
    docs = [json.loads(Path(p).read_text()) for p in paths]
    games = sorted({t["group"] for d in docs for t in d["tracks"] if t["family"] == "games"})
    print("| model | clips | BA | AUC | BA, threshold tuned on inner folds | games BA / AUC | folk BA / AUC "
          "| classical BA / AUC | " + " | ".join(games) + " | bar |")
    print("|---|---|---|---|---|---|---|---|" + "---|" * len(games) + "---|")
    for doc in docs:
        for name, r in doc["results"].items():
            placement = r["config"].get("placement", doc.get("placement", "contiguous"))
            o = r["overall"]
            tuned = f(o["ba_tuned"]) if "tuned" not in str(r["config"].get("threshold", "")) else "-"
            fam = [f"{f(r['families'][k]['ba'])} / {f(r['families'][k]['auc'])}" for k in FAMILIES]
            per_game = [f"{f(r['sources'][g]['ba'])} / {f(r['sources'][g]['auc'])}" if g in r["sources"] else "-"
                        for g in games]
            print(f"| {name} | {placement} | {f(o['ba'])} | {f(o['auc'])} | {tuned} | {' | '.join(fam)} | "
                  f"{' | '.join(per_game)} | {'yes' if r['meets_bar'] else 'no'} |")
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
    sys.exit(main(sys.argv[1:]))
