"""What the benchmarks that run the real CLI share: the environment of a measured `python -m tagger`."""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def moodtag_env(root: Path = ROOT) -> dict:
    """This checkout's moodtag (or the one in `root`) first on PYTHONPATH; no MOODTAG_DB (each run names
    its --db)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(root) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("MOODTAG_DB", None)
    return env


def say(text: str) -> None:
    print(text, flush=True)
