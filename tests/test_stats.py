"""`moodtag stats` through the real CLI over a real scan: its mood, format and model tables and its histogram
count the same tracks as its header's 'analysed' figure and as the playlists."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_cli


@pytest.fixture
def lib(tmp_path, audio_dir) -> Path:
    """Six real tracks: FLAC, WAV, MP3, Ogg Vorbis, two M4A (AAC, ALAC)."""
    folder = tmp_path / "lib"
    folder.mkdir()
    for src in sorted(audio_dir.iterdir()):
        if src.suffix in (".flac", ".wav", ".mp3", ".ogg", ".m4a"):
            shutil.copy(src, folder / f"{src.stem}{src.suffix}")
    return folder


def test_tracks_whose_tag_write_failed_count_in_every_table_as_in_the_playlists(lib, tmp_path, test_model):
    """A read-only file is analysed (its mood kept, listed in its playlist) but its tags are not written:
    stats counted it 'analysed' in its header and left it out of by_mood, by_model and the histogram, while
    by_format counted every row (failed and missing too), so no two tables added up to the same figure."""
    db = tmp_path / "c.db"
    files = sorted(lib.iterdir())
    locked = [f for f in files if f.suffix in (".flac", ".mp3")]
    for f in locked:
        f.chmod(0o444)
    run_cli("scan", lib, "--db", db, "--model", test_model, "--jobs", "1", check=True)
    gone = next(f for f in files if f.suffix == ".wav")
    gone.unlink()
    run_cli("scan", lib, "--db", db, "--model", test_model, "--jobs", "1", check=True)  # marks it missing

    data = json.loads(run_cli("stats", "--db", db, "--json", check=True).stdout)
    assert data["by_status"] == {"ok": len(files) - 3, "failed": 2, "missing": 1} and data["tag_failed"] == 2
    analysed = data["by_status"]["ok"] + data["tag_failed"]
    assert data["analysed"] == analysed  # the header's figure, which by_status's "failed" is not
    for table in ("by_mood", "by_format", "by_model"):
        assert sum(data[table].values()) == analysed, (table, data[table])
    assert sum(data["histogram"]["bins"]) == analysed
    assert set(data["mean_confidence"]) == set(data["by_mood"])

    out = tmp_path / "pl"
    run_cli("playlists", "--db", db, "--any-model", "--absolute", "-d", out, check=True)
    listed = {p.stem: [line for line in p.read_text().splitlines() if line and not line.startswith("#")]
              for p in out.iterdir()}
    assert {mood: len(paths) for mood, paths in listed.items() if paths} == data["by_mood"]
    assert {str(f) for f in locked} <= {path for paths in listed.values() for path in paths}

    header = run_cli("stats", "--db", db, check=True).stdout.splitlines()[0]
    assert header.endswith(f"{len(files)} tracks ({analysed} analysed: {analysed - 2} tagged, 2 whose tags could not "
                           "be written; 0 failed, 1 missing)")

    table = run_cli("stats", "--db", db, check=True).stdout  # a pipe: no line padded to the tables' width
    assert "tracks" in table and not [line for line in table.splitlines() if line.endswith(" ")], table
