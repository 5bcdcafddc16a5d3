"""What the benchmarks that run the real CLI share: the environment of a measured `python -m tagger`."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def moodtag_env(root: Path = ROOT) -> dict:
    """This checkout's moodtag (or the one in `root`) first on PYTHONPATH, with its modules' bytecode
    cached as an installed package has it (precompile); no MOODTAG_DB (each run names its --db)."""
    precompile(root)
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # set in some environments: else every run compiles moodtag
    env["PYTHONPATH"] = str(root) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("MOODTAG_DB", None)
    return env


_COMPILED: set[Path] = set()


def precompile(root: Path) -> None:
    """Bytecode for `root`/tagger's modules (once per run), as pip writes it when it installs a package.
    Without it, where PYTHONDONTWRITEBYTECODE is set, each measured command compiled moodtag's ~20 modules
    first (0.05-0.08 s of every command's start-up: not what a user's installed moodtag does)."""
    if root not in _COMPILED:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(root / "tagger")], check=True,
                       stdout=subprocess.DEVNULL)
        _COMPILED.add(root)


def say(text: str) -> None:
    print(text, flush=True)
