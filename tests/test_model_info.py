"""`moodtag model-info`: the shipped models' spec and metrics, read in full in a pipe at 80 columns."""
from __future__ import annotations

import re

from tests.conftest import run_cli


def model_info(*args: str, columns: int = 80) -> str:
    proc = run_cli("model-info", *args, env={"COLUMNS": str(columns)})  # captured: stdout is a pipe
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return proc.stdout


def test_counts_of_one_are_singular():
    text = " ".join(model_info().split())  # moodtag-rhythm: OpenClonk holds one track
    assert "(1 track)" in text and not re.search(r"\b1 tracks\b", text), text


def test_sha256_and_a_long_path_show_in_full(tmp_path):
    import shutil

    from tagger.weights import file_sha256, resolve_model

    path = tmp_path / ("long-folder-name-" * 4) / "a-copy-of-the-default-model.safetensors"
    path.parent.mkdir()
    shutil.copy(resolve_model(None), path)
    text = model_info(str(path))
    assert "…" not in text and all(len(line) <= 80 for line in text.splitlines())
    joined = "".join(text.split())  # a value longer than its column folds onto the next lines
    assert str(path) in joined and file_sha256(path) in joined


def test_nested_figures_first_then_the_plain_ones_marked_optimistic():
    flat = " ".join(model_info(columns=200).split())  # a label on one line
    nested = flat.index("nested leave-one-game-out balanced accuracy 0.785 (interval 0.633-0.925), ROC-AUC 0.787")
    plain = flat.index("plain leave-one-game-out (optimistic) balanced accuracy 0.815")
    assert nested < plain
    assert '"ba":' not in flat.split("metric lockbox")[0], "the nested figures as raw JSON"


def test_json_carries_the_whole_spec():
    import json

    from tagger.weights import file_sha256, read_spec, resolve_model

    path = resolve_model(None)
    info = json.loads(run_cli("model-info", "--json", check=True).stdout)
    assert info["sha256"] == file_sha256(path) and info["path"] == str(path)
    assert info["spec"] == json.loads(json.dumps(read_spec(path).to_json()))
    assert "nested_leave_one_game_out" in info["spec"]["metrics"] and "held_out" in info["spec"]["metrics"]
