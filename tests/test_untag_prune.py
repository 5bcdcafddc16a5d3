"""`moodtag prune`, `moodtag untag` and `moodtag model-info` on the cases a review found wrong: real audio
(tagger.synth), real SQLite caches, real mutagen, the real CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tagger import synth
from tagger.tags import read_mood
from tests.conftest import run_cli
from tests.test_scan import rows


@pytest.fixture
def library(tmp_path) -> Path:
    """Music/A/a.flac and Music/B/x/b.ogg, c.wav: B stands for a second disk mounted at Music/B."""
    lib = tmp_path / "Music"
    for i, rel in enumerate(("A/a.flac", "A/d.flac", "B/x/b.ogg", "B/x/c.wav")):
        (lib / rel).parent.mkdir(parents=True, exist_ok=True)
        synth.make_track(lib / rel, "calm" if i % 2 else "exciting", 8.0, seed=i)
    return lib


def scan(lib: Path, db: Path, *extra) -> list[dict]:
    proc = run_cli("scan", lib, "--db", db, "--jobs", "1", "--json", *extra, check=True)
    return [json.loads(line) for line in proc.stdout.splitlines()]


def unmount(lib: Path) -> Path:
    """The disk at Music/B taken away: its files elsewhere, its mount point left empty."""
    away = lib.parent / "B.away"
    (lib / "B").rename(away)
    (lib / "B").mkdir()
    return away


def mount(lib: Path, away: Path) -> None:
    (lib / "B").rmdir()
    away.rename(lib / "B")


def test_prune_keeps_the_rows_of_files_that_are_back(library, tmp_path):
    """Untagged, its disk away during one scan (rows marked missing), mounted again, then prune: prune
    forgot the rows (results lost, 'forgot 2 missing tracks' of files that are there) and the next
    scan analysed the files and tagged those the user had untagged."""
    db = tmp_path / "c.db"
    scan(library, db)
    run_cli("untag", library / "B", "--db", db, check=True)
    away = unmount(library)
    scan(library, db)
    b_rows = [key for key in rows(db) if "/B/" in key]
    assert len(b_rows) == 2 and all(rows(db)[key]["status"] == "missing" for key in b_rows)
    mount(library, away)
    proc = run_cli("prune", "-n", "--db", db, check=True)
    assert proc.stdout.splitlines() == ["would keep 2 missing tracks whose files are there again (the next scan "
                                        "takes them back)", "would forget 0 missing tracks"]
    proc = run_cli("prune", "--db", db, check=True)
    assert proc.stdout.splitlines()[-1] == "forgot 0 missing tracks"
    assert all(rows(db)[key]["tag_state"] == "untagged" for key in b_rows)
    outcomes = {Path(o["path"]).name: (o["action"], o["tags"]) for o in scan(library, db)}
    assert outcomes["b.ogg"] == outcomes["c.wav"] == ("cached", "untagged"), outcomes
    assert read_mood(library / "B/x/b.ogg") is None and read_mood(library / "B/x/c.wav") is None


def test_prune_keeps_the_rows_under_an_empty_folder_until_it_is_named(library, tmp_path):
    """A bare prune while a disk is not mounted (its mount point empty) forgot every row of the disk,
    untagged ones included; it now keeps them, says so, and forgets them when the folder is named. A
    file deleted beside others is forgotten in the same run, as before."""
    db = tmp_path / "c.db"
    scan(library, db)
    run_cli("untag", library / "B", "--db", db, check=True)
    away = unmount(library)
    (library / "A/d.flac").unlink()
    scan(library, db)
    proc = run_cli("prune", "--db", db, check=True)
    assert proc.stdout.splitlines() == [
        f"kept 2 missing tracks under {library / 'B'}: it is empty (a disk not mounted?); "
        f"moodtag prune {library / 'B'} forgets them", "forgot 1 missing track"], proc.stdout
    assert sorted(Path(key).name for key in rows(db)) == ["a.flac", "b.ogg", "c.wav"]
    assert run_cli("prune", library, "--db", db, check=True).stdout.splitlines()[-1] == "forgot 0 missing tracks"
    proc = run_cli("prune", "-n", library / "B", "--db", db, check=True)
    assert proc.stdout.splitlines()[-1] == "would forget 2 missing tracks"
    mount(library, away)  # back before the forgetting prune: nothing of it is forgotten
    assert run_cli("prune", library / "B", "--db", db, check=True).stdout.splitlines()[-1] == "forgot 0 missing tracks"
    unmount(library)
    assert run_cli("prune", library / "B", "--db", db, check=True).stdout.splitlines()[-1] == "forgot 2 missing tracks"
    assert [Path(key).name for key in rows(db)] == ["a.flac"]


def test_prune_waits_for_a_scan_holding_the_cache(library, tmp_path):
    """prune took no lock: it could forget a row that a running scan was about to give to a moved file."""
    from filelock import FileLock

    db = tmp_path / "c.db"
    scan(library, db)
    (library / "A/d.flac").unlink()
    scan(library, db)
    lock = FileLock(os.path.realpath(db) + ".lock")
    lock.acquire()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "tagger", "prune", "--db", str(db)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(3)
        assert proc.poll() is None, proc.communicate()
        assert len(rows(db)) == 4
    finally:
        lock.release()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and out == "forgot 1 missing track\n", err
    # it waits for any moodtag command that writes the cache (another prune, an untag, beets' plugin)
    assert f"waiting for another moodtag command that writes {os.path.realpath(db)} to finish..." in err
    assert len(rows(db)) == 3


def test_untag_with_a_path_that_is_not_there_untags_the_others(library, tmp_path):
    """`untag A GONE` untagged nothing at all (`error: GONE: no such file or folder`)."""
    db = tmp_path / "c.db"
    scan(library, db)
    gone = library / "gone.flac"
    proc = run_cli("untag", library / "A", gone, "--db", db)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == f"failed: {gone}: no such file or folder\n"
    assert proc.stdout == "untagged 2 files, 0 without moodtag fields, 1 failed\n"
    assert read_mood(library / "A/a.flac") is None and read_mood(library / "B/x/b.ogg") is not None
    assert rows(db)[str(library / "A/a.flac")]["tag_state"] == "untagged"
    proc = run_cli("untag", gone, "--db", db)  # none there: one error, as scan
    assert (proc.returncode, proc.stderr) == (1, f"error: {gone}: no such file or folder\n")


def test_untag_dry_run_onto_a_full_disk_is_one_error(library, tmp_path):
    """Each file's 'would untag' line that could not be written was 'failed: FILE: untagged, but cannot
    stat it now (No space left on device)'; it is one error line, as for classify and prune -n."""
    db = tmp_path / "c.db"
    scan(library, db)
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "tagger", "untag", "-n", str(library), "--db", str(db)],
                              stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert (proc.returncode, proc.stderr) == (1, "error: cannot write to standard output (No space left on device)\n")


def _damaged(tmp_path: Path, how: str) -> Path:
    """A copy of the default model whose tensors are damaged `how`; the spec as it is."""
    from safetensors.numpy import load_file, save_file

    from tagger.weights import resolve_model, safetensors_metadata

    source = resolve_model(None)
    tensors = load_file(str(source))
    name = sorted(tensors)[0]
    path = tmp_path / f"{how}.safetensors"
    if how == "shape":
        tensors[name] = tensors[name].reshape(-1)[:-1].copy()
    elif how == "nan":
        tensors[name] = tensors[name].copy()
        tensors[name].reshape(-1)[0] = float("nan")
    elif how == "missing":
        del tensors[name]
    save_file(tensors, str(path), metadata=safetensors_metadata(source))
    if how == "offsets":  # two tensors' data overlapping: the header's offsets are whole numbers within the file
        whole = source.read_bytes()
        length = int.from_bytes(whole[:8], "little")
        header = json.loads(whole[8:8 + length])
        names = sorted(key for key in header if key != "__metadata__")
        start, end = header[names[-1]]["data_offsets"]
        header[names[-1]]["data_offsets"] = [0, end - start]
        text = json.dumps(header).encode()
        path.write_bytes(len(text).to_bytes(8, "little") + text + whole[8 + length:])
    return path


@pytest.mark.parametrize("how", ["shape", "nan", "missing", "offsets"])
def test_model_info_refuses_a_damaged_model_as_classify_does(tmp_path, how):
    """model-info read the header alone and showed such a model as fine (exit 0); classify refused it."""
    path = _damaged(tmp_path, how)
    clip = synth.make_track(tmp_path / "a.flac", "calm", 8.0)
    classify = run_cli("classify", "--model", path, clip)
    assert classify.returncode == 1 and classify.stderr.startswith(f"error: {path}: "), classify.stderr
    proc = run_cli("model-info", path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", classify.stderr)


_UNTAG_THEN_OTHER = """
import shutil, sys
import tagger.tags as tags
real, other = tags.remove_mood, sys.argv[1]
def remove_mood(path, *a, **k):
    changed = real(path, *a, **k)
    shutil.copyfile(other, path)    # another program rewrites the file right after untag's write
    return changed
tags.remove_mood = remove_mood
sys.argv = ["moodtag", "untag", *sys.argv[2:]]
from tagger.cli import main
main()
"""


def test_a_file_rewritten_right_after_untag_is_analysed_again(tmp_path, test_model):
    """untag's row took a fresh stat of the path after its write: other audio put there right after it took
    the row of the audio analysed, and the next scan said 'cached'. The row takes the stat of the file
    untag wrote (as the scan's does since f985d08)."""
    library = tmp_path / "lib"
    library.mkdir()
    track = synth.make_track(library / "track.flac", "calm", 8.0, seed=1)
    other = synth.make_track(tmp_path / "other.flac", "exciting", 9.0, seed=2)
    db = tmp_path / "c.db"
    run_cli("scan", library, "--db", db, "--model", test_model, "-j1", check=True)
    proc = subprocess.run([sys.executable, "-c", _UNTAG_THEN_OTHER, str(other), str(library), "--db", str(db)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert track.read_bytes() == other.read_bytes()
    again = run_cli("scan", library, "--db", db, "--model", test_model, "-j1", "--json", check=True)
    assert [json.loads(line)["action"] for line in again.stdout.splitlines()] == ["analysed"], again.stdout


def test_untag_of_a_file_moved_since_the_scan_holds(library, tmp_path):
    """A file moved (beets `move`, a file manager) and then untagged: untag found no row under its new
    path, so the cache kept the old path's row as tagged, and the next scan, no longer finding the moved
    file by its size and mtime (untag changed them), analysed it again and wrote the mood back. untag
    now finds the moved file's row as a scan would, and it takes the file's new path, untagged."""
    db = tmp_path / "c.db"
    scan(library, db)
    (library / "B" / "y").mkdir()
    moved = library / "B" / "y" / "a.flac"
    (library / "A" / "a.flac").rename(moved)
    assert "untagged 1 file" in run_cli("untag", moved, "--db", db, check=True).stdout
    assert read_mood(moved) is None
    results = scan(library, db)
    assert read_mood(moved) is None, "the next scan wrote the mood back"
    assert [r["action"] for r in results if r["path"] == str(moved)] == ["cached"], results
    cached = rows(db)
    assert cached[str(moved)]["tag_state"] == "untagged" and str(library / "A" / "a.flac") not in cached
