"""The stage clock (tagger.stages): MOODTAG_STAGES=1 makes the real scan report where each track's time
went, and changes nothing else."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tagger import stages, synth

from .conftest import run_cli

WORKER_STAGES = {"decode", "resample", "spectrogram", "onset envelope", "descriptors", "tags read", "pickle result"}


def _copy(audio_dir: Path, dest: Path) -> Path:
    dest.mkdir()
    for src in sorted(audio_dir.iterdir()):
        shutil.copy(src, dest / src.name)
    return dest


def _lines(proc) -> dict[str, dict]:
    return {Path(r["path"]).name: r for r in map(json.loads, proc.stdout.splitlines())}


def test_profiled_scan_reports_every_stage_and_the_same_moods(tmp_path, audio_dir):
    plain = _lines(run_cli("scan", _copy(audio_dir, tmp_path / "a"), "--db", tmp_path / "a.db", "--jobs", "2",
                           "--json", check=True))
    profiled = _lines(run_cli("scan", _copy(audio_dir, tmp_path / "b"), "--db", tmp_path / "b.db", "--jobs", "2",
                              "--json", env={stages.ENV: "1"}, check=True))
    assert len(profiled) == len(plain) == len(synth.FORMATS)
    first_tracks: dict[int, int] = {}
    for name, line in profiled.items():
        assert "stages" not in plain[name]
        stage_times = line.pop("stages")
        assert {**line, "path": name} == {**plain[name], "path": name}  # the same mood, scores, clips
        worker, parent = stage_times["worker"], stage_times["parent"]
        assert WORKER_STAGES <= set(worker["cpu_ms"]) and set(worker["cpu_ms"]) == set(worker["wall_ms"])
        assert {"cache write", "tag write"} <= set(parent["cpu_ms"])
        assert worker["cpu_ms"]["decode"] > 0 and worker["cpu_ms"]["spectrogram"] > 0
        task = worker["task"]
        assert task["start_s"] < task["end_s"] <= parent["received_s"] and task["result_bytes"] > 0
        first_tracks.setdefault(task["pid"], 0)
        if "worker start" in worker["cpu_ms"]:  # a worker's start-up rides on its first track alone
            first_tracks[task["pid"]] += 1
            assert worker["cpu_ms"]["worker start"] > 0 and worker["cpu_ms"]["model load"] > 0
    assert set(first_tracks.values()) == {1}


def test_a_stage_inside_another_is_taken_out_of_it():
    import time

    clock = stages.StageClock()
    with clock.stage("outer"):
        with clock.stage("inner"):
            time.sleep(0.05)
    assert clock.wall["inner"] >= 0.05
    assert 0.0 <= clock.wall["outer"] < 0.01
    assert set(clock.as_dict()["cpu_ms"]) == {"outer", "inner"}


def test_off_by_default_records_nothing(monkeypatch):
    monkeypatch.delenv(stages.ENV, raising=False)
    with stages.recording() as clock, stages.stage("decode"):
        pass
    assert clock is None
