"""Every command of the CLI is documented in the README, and answers --help quickly."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tagger.cli import app
from tests.conftest import run_cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
COMMANDS = sorted(c.name for c in app.registered_commands)


def test_all_commands_are_registered():
    assert set(COMMANDS) >= {"scan", "prune", "untag", "classify", "playlist", "playlists", "query", "stats",
                             "train", "evaluate", "model-info"}


@pytest.mark.parametrize("name", COMMANDS)
def test_command_is_documented_with_an_example(name):
    assert re.search(rf"^#+ .*`moodtag {re.escape(name)}\b", README, re.M), f"no README section for {name}"
    examples = re.findall(rf"^moodtag {re.escape(name)}\b.*$", README, re.M)
    assert examples, f"no example command line for moodtag {name}"


@pytest.mark.parametrize("name", COMMANDS)
def test_help(name):
    proc = run_cli(name, "--help")
    assert proc.returncode == 0 and "Usage" in proc.stdout


def test_help_does_not_import_torch():
    proc = run_cli("--help", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert proc.returncode == 0
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "torch" not in imported and "librosa" not in imported


def test_ci_runs_exactly_the_readme_test_command():
    section = README.split("## Run the tests", 1)[1]
    command = re.search(r"^```\n(.+?)\n```", section, re.M | re.S).group(1)
    assert "\n" not in command and "pytest" in command and "mpd" in command
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert ci.rstrip("\n").splitlines()[-1] == command
