"""`moodtag model-info`: the shipped models' spec and metrics, read in full in a pipe at 80 columns."""
from __future__ import annotations

import re

from tests.conftest import run_cli


def model_info(*args: str) -> str:
    proc = run_cli("model-info", *args, env={"COLUMNS": "80"})  # captured: stdout is a pipe
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return proc.stdout


def test_counts_of_one_are_singular():
    text = model_info()  # moodtag-rhythm: OpenClonk holds one track
    assert re.search(r"\(1 track\)", text) and not re.search(r"\b1 tracks\b", text), text
