"""`moodtag prune`, `moodtag untag` and `moodtag model-info` on the cases a review found wrong: real audio
(tagger.synth), real SQLite caches, real mutagen, the real CLI."""
from __future__ import annotations

import json
import os
import shutil
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


def _states(db: Path) -> dict[str, tuple[str, str]]:
    """Each row's file name -> (status, tag_state)."""
    return {Path(key).name: (row["status"], row["tag_state"]) for key, row in rows(db).items()}


def test_the_nightly_scan_and_prune_of_an_empty_mount_point_forget_nothing(library, tmp_path):
    """`scan PATH; prune PATH` (a nightly job) while the disk mounted at PATH was away: the scan marked
    every row missing (exit 0, no word), prune PATH forgot them, and after the disk came back the next
    scan analysed everything again and wrote the mood back into the file the user had untagged. A PATH
    that is an empty folder the cache holds tracks under is now taken as one not there: its rows are left
    as they are, with one warning line and exit status 1."""
    db = tmp_path / "c.db"
    scan(library, db)
    run_cli("untag", library / "B/x/b.ogg", "--db", db, check=True)
    before = _states(db)
    assert before["b.ogg"] == ("ok", "untagged") and before["c.wav"] == ("ok", "tagged")
    away = unmount(library)  # Music/B is the disk's mount point, the nightly job's PATH
    mount_point = library / "B"
    proc = run_cli("scan", mount_point, "--db", db, "--jobs", "1")
    warning = (f"warning: {mount_point}: it is empty (a disk not mounted?); 2 cached tracks under it left as they "
               f"are (emptied on purpose? remove the folder, then moodtag prune {mount_point})")
    assert proc.returncode == 1 and warning in proc.stderr.splitlines(), proc.stderr
    assert "not reached (folders, links, PATHs)  1" in proc.stderr and "marked missing" not in proc.stderr
    assert _states(db) == before
    assert run_cli("prune", mount_point, "--db", db, check=True).stdout == "forgot 0 missing tracks\n"
    assert _states(db) == before
    # beside other PATHs (the others scanned), and inside one (`scan lib lib/B`): the same
    proc = run_cli("scan", library / "A", mount_point, "--db", db, "--jobs", "1", "--json")
    assert proc.returncode == 1 and warning in proc.stderr.splitlines(), proc.stderr
    assert sorted(Path(json.loads(line)["path"]).name for line in proc.stdout.splitlines()) == ["a.flac", "d.flac"]
    proc = run_cli("scan", library, mount_point, "--db", db, "--jobs", "1")
    assert proc.returncode == 1 and warning in proc.stderr.splitlines(), proc.stderr
    assert _states(db) == before
    mount(library, away)
    outcomes = {Path(o["path"]).name: (o["action"], o["tags"]) for o in scan(mount_point, db)}
    assert outcomes == {"b.ogg": ("cached", "untagged"), "c.wav": ("cached", "unchanged")}, outcomes
    assert read_mood(library / "B/x/b.ogg") is None and read_mood(library / "B/x/c.wav") is not None
    assert _states(db) == before
    # an empty folder the cache holds nothing under is a new library: no word, exit status 0
    new = tmp_path / "New"
    new.mkdir()
    proc = run_cli("scan", new, "--db", db, "--jobs", "1", check=True)
    assert "warning" not in proc.stderr and "not reached" not in proc.stderr, proc.stderr


def test_prune_of_a_library_folder_on_a_disk_not_mounted_keeps_its_rows(tmp_path):
    """The library is a folder on the disk (media/usb/Music; media/usb empty while the disk is away): the
    nightly scan failed (its PATH not there) and left the rows as they were, but `prune media/usb/Music`
    forgot them all, 'forgot 3 missing tracks' of rows that said ok, the untagged one included: a place
    inside the empty folder counted as naming it. They are kept now, with a line naming the empty folder;
    once it is removed (the disk gone for good), prune forgets them, without calling them missing."""
    usb = tmp_path / "media" / "usb"
    music = usb / "Music"
    for i, rel in enumerate(("A/1.mp3", "A/2.ogg", "A/3.flac")):
        (music / rel).parent.mkdir(parents=True, exist_ok=True)
        synth.make_track(music / rel, "calm", 6.0, seed=i)
    db = tmp_path / "c.db"
    scan(music, db)
    run_cli("untag", music / "A/1.mp3", "--db", db, check=True)
    before = _states(db)
    assert before == {"1.mp3": ("ok", "untagged"), "2.ogg": ("ok", "tagged"), "3.flac": ("ok", "tagged")}
    stash = tmp_path / "stash"
    stash.mkdir()
    music.rename(stash / "Music")  # unmounted: media/usb is left empty
    proc = run_cli("scan", music, "--db", db, "--jobs", "1")
    assert (proc.returncode, proc.stderr) == (1, f"error: {music}: no such file or folder\n")
    kept = (f"3 tracks under {usb}: it is empty (a disk not mounted?); if they are gone for good, remove "
            f"that folder and prune again")
    proc = run_cli("prune", "-n", music, "--db", db, check=True)
    assert proc.stdout.splitlines() == [f"would keep {kept}", "would forget 0 missing tracks"], proc.stdout
    proc = run_cli("prune", music, "--db", db, check=True)  # the nightly job's prune
    assert proc.stdout.splitlines() == [f"kept {kept}", "forgot 0 missing tracks"], proc.stdout
    for args in ([usb], []):  # the empty folder named, or no PATH: nothing marked missing to forget
        assert run_cli("prune", *args, "--db", db, check=True).stdout == "forgot 0 missing tracks\n"
    assert _states(db) == before
    (stash / "Music").rename(music)  # mounted again: nothing analysed, the untagged file stays so
    outcomes = {Path(o["path"]).name: (o["action"], o["tags"]) for o in scan(music, db)}
    assert outcomes == {"1.mp3": ("cached", "untagged"), "2.ogg": ("cached", "unchanged"),
                        "3.flac": ("cached", "unchanged")}, outcomes
    assert read_mood(music / "A/1.mp3") is None and _states(db) == before
    music.rename(stash / "Music")  # the disk gone for good: its mount point removed, then prune again
    usb.rmdir()
    (usb.parent / "cdrom").mkdir()  # media/ not empty: another mount point
    assert run_cli("prune", "-n", music, "--db", db, check=True).stdout.splitlines()[-1] == \
        "would forget 3 tracks whose files are gone"
    assert run_cli("prune", music, "--db", db, check=True).stdout == "forgot 3 tracks whose files are gone\n"
    assert rows(db) == {}


def test_prune_of_a_place_inside_an_empty_folder_keeps_the_rows_marked_missing(library, tmp_path):
    """Rows marked missing under an empty folder (Music/B, a disk's mount point) were forgotten by naming
    any place inside it (`prune Music/B/x`); only the folder itself forgets them."""
    db = tmp_path / "c.db"
    scan(library, db)
    unmount(library)
    scan(library, db)
    assert [state for name, state in _states(db).items() if name in ("b.ogg", "c.wav")] == [("missing", "tagged")] * 2
    proc = run_cli("prune", library / "B/x", "--db", db, check=True)
    assert proc.stdout.splitlines() == [
        f"kept 2 missing tracks under {library / 'B'}: it is empty (a disk not mounted?); "
        f"moodtag prune {library / 'B'} forgets them", "forgot 0 missing tracks"], proc.stdout
    assert len(rows(db)) == 4
    assert run_cli("prune", library / "B", "--db", db, check=True).stdout == "forgot 2 missing tracks\n"
    assert sorted(_states(db)) == ["a.flac", "d.flac"]


def test_prune_of_a_path_the_cache_knows_nothing_under_says_so(tmp_path, audio_dir, test_model):
    """`prune ~/Msuic` (a typo) or a folder never scanned said only 'forgot 0 missing tracks', exit 0, as if
    the library were clean; `playlist` names such a PATH. Now one warning line names it; a PATH with rows,
    given by its real path through a link to it, says nothing."""
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copy(sorted(audio_dir.glob("*.flac"))[0], lib / "a.flac")
    db = tmp_path / "c.db"
    run_cli("scan", lib, "--db", db, "--model", test_model, "--no-write", check=True)
    typo = tmp_path / "lbi"
    for flags in ([], ["-n"]):
        proc = run_cli("prune", typo, "--db", db, *flags, check=True)
        assert proc.stderr.strip() == f"warning: no cached tracks under {typo} (a typo, or a place never scanned?): " \
                                      "nothing to forget there", proc.stderr
    link = tmp_path / "link"
    link.symlink_to(lib)
    for path in (lib, link):
        proc = run_cli("prune", path, "--db", db, check=True)
        assert proc.stderr == "" and proc.stdout.strip() == "forgot 0 missing tracks", proc.stdout + proc.stderr


def _read_fields(path: Path) -> list[tuple[str, str]]:
    """The file's moodtag fields (the mood field and MOODTAG_*), as tagger.tags reads them."""
    from tagger import tags

    with tags._opened(path) as fh:
        audio, fmt = tags._load(fh)
        return [(name, text) for name, text in tags._current_fields(audio, fmt) if tags._is_ours(name)]


def test_untag_removes_the_mood_another_models_scan_wrote_since(library, tmp_path):
    """A library scanned with --db a.db, then tagged again by another model with another cache (`scan --db
    b.db --model moodtag-cnn`), which changed the mood of some files: `untag --db a.db` removed every
    MOODTAG_* field of those but kept their mood, taken for one the user typed over a.db's label, and from
    then on no moodtag command removed it. Fields all of another model are moodtag's, mood and all; a label
    typed by hand over the model's own (its fields left as they were) is still the user's."""
    from tagger.tags import MoodValues, write_mood

    db = tmp_path / "a.db"
    scan(library, db)
    other, by_hand = library / "A/a.flac", library / "A/d.flac"
    flipped = {"calm": "exciting", "exciting": "calm"}
    new = flipped[read_mood(other).mood]  # what another model's scan writes where it disagrees with a.db's
    write_mood(other, MoodValues(mood=new, scores={new: 0.9, flipped[new]: 0.1}, model="moodtag-cnn 1.0.0"))
    mutagen = pytest.importorskip("mutagen")
    hand = mutagen.File(by_hand)
    typed = flipped[hand["MOOD"][0]]
    hand["MOOD"] = [typed]  # the user's own label, over moodtag's; its fields stay
    hand.save()
    assert len(_read_fields(other)) == 4 and len(_read_fields(by_hand)) == 4

    dry = run_cli("untag", library / "A", "--db", db, "-n", check=True)
    assert dry.stdout == (f"would untag: {other}\nwould untag: {by_hand}\n"
                          "would untag 2 files, 0 without moodtag fields, 0 failed\n"), dry.stdout
    run_cli("untag", library / "A", "--db", db, check=True)
    assert _read_fields(other) == [], "the other model's mood was kept"
    assert _read_fields(by_hand) == [("MOOD", typed)]
    assert {rows(db)[str(p)]["tag_state"] for p in (other, by_hand)} == {"untagged"}


def test_a_scan_takes_another_models_mood_for_moodtags_and_a_label_typed_over_it_for_the_users(library, tmp_path):
    """The scan side of the rule above: after another model's scan with another cache changed a file's
    mood, a scan with the first cache (the file changed since: analysed again) called that model's label
    "the file's own mood (not moodtag's)" and kept it, its row saying kept, so `untag` kept it for good too.
    It is moodtag's now, and the scan writes over it; a label typed over those fields is still the user's,
    and kept."""
    from tagger.tags import MoodValues, write_mood

    db = tmp_path / "a.db"
    scan(library, db)
    other, typed_over = library / "A/a.flac", library / "A/d.flac"
    flipped = {"calm": "exciting", "exciting": "calm"}
    mine = {p: read_mood(p).mood for p in (other, typed_over)}
    for path in (other, typed_over):  # another model's scan, its scores saying its label
        new = flipped[mine[path]]
        write_mood(path, MoodValues(mood=new, scores={new: 0.9, mine[path]: 0.1}, model="moodtag-cnn 1.0.0"))
    mutagen = pytest.importorskip("mutagen")
    hand = mutagen.File(typed_over)
    hand["MOOD"] = ["Dreamy"]  # the user's label, typed over the other model's
    hand.save()
    outcomes = {Path(o["path"]): o["tags"] for o in scan(library / "A", db)}
    assert outcomes == {other: "written", typed_over: "kept"}, outcomes
    assert read_mood(other).mood == mine[other] and read_mood(other).model != "moodtag-cnn 1.0.0"
    assert rows(db)[str(other)]["tag_state"] == "tagged" and rows(db)[str(typed_over)]["tag_state"] == "kept"


def test_untag_with_a_cache_that_is_not_there(library, tmp_path):
    """`untag --db modtag.db` (a typo) said 'untagged 4 files', left modtag.db.lock and modtag.db-undo/, and
    the next scan with the real cache tagged every file again. A --db or MOODTAG_DB that does not exist is
    an error before any file is touched, as stats says it; without the default cache the files are untagged,
    a line says a scan tags them again, and nothing is left beside the default cache's path."""
    db = tmp_path / "moodtag.db"
    scan(library, db)
    before = {p: p.read_bytes() for p in sorted(library.rglob("*.*"))}
    typo = tmp_path / "modtag.db"
    stats = run_cli("stats", "--db", typo)
    for proc in (run_cli("untag", library, "--db", typo), run_cli("untag", library, env={"MOODTAG_DB": str(typo)}),
                 run_cli("untag", library, "-n", "--db", typo)):
        assert (proc.returncode, proc.stdout) == (1, ""), proc.stdout
        assert proc.stderr == stats.stderr == f"error: {typo}: no cache database here (run `moodtag scan` first, " \
                                              "or pass --db)\n", proc.stderr
    assert {p: p.read_bytes() for p in sorted(library.rglob("*.*"))} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Music", "moodtag.db", "moodtag.db-undo", "moodtag.db.lock"]

    data = tmp_path / "data"  # the default cache's folder: no cache there
    proc = run_cli("untag", library / "A", env={"XDG_DATA_HOME": str(data)})
    assert (proc.returncode, proc.stdout) == (0, "untagged 2 files, 0 without moodtag fields, 0 failed\n"), proc.stderr
    default = data / "moodtag" / "moodtag.db"
    assert proc.stderr == (f"warning: {default}: no cache database here, so nothing records these files as "
                           "untagged: a scan with this cache tags them again (pass --db to name the library's "
                           "cache)\n"), proc.stderr
    assert read_mood(library / "A/a.flac") is None and read_mood(library / "B/x/b.ogg") is not None
    assert not list(data.rglob("*")) or [p.name for p in data.rglob("*")] == ["moodtag"], list(data.rglob("*"))


_UNTAG_READ_ONLY = """
import json, subprocess, sys
from pathlib import Path
from tests.conftest import run_cli
lib, db = Path(sys.argv[1]), Path(sys.argv[2])
for what in (["--bind", str(lib), str(lib)], ["-o", "remount,ro,bind", str(lib)]):
    subprocess.run(["mount", *what], check=True)
out = {}
for name, extra in (("dry", ["-n"]), ("real", [])):
    proc = run_cli("untag", lib, "--db", db, *extra)
    out[name] = {"rc": proc.returncode, "out": proc.stdout, "err": proc.stderr}
print(json.dumps(out))
"""


def test_untag_on_a_read_only_file_system_is_one_line_and_a_count(library, tmp_path):
    """untag of a library on a read-only file system printed a line per file; it is one line naming the
    mount point and what to do, and a count in the summary, as a scan's."""
    from tests.test_tags import in_namespace, namespace_available

    reason = namespace_available()
    if reason:
        pytest.skip(reason)
    db = tmp_path / "c.db"
    scan(library, db)
    before = rows(db)
    out = in_namespace(_UNTAG_READ_ONLY, library, db)
    mount = os.path.realpath(library)
    for name, verb in (("dry", "would untag"), ("real", "untagged")):
        proc = out[name]
        assert proc["rc"] == 0, proc["err"]
        assert proc["out"] == (f"{verb} 0 files, 0 without moodtag fields, 4 failed (read-only file system "
                               f"{mount}: 4)\n"), proc["out"]
        lines = proc["err"].splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"failed: {library}/"), proc["err"]
        assert f": tags not written: read-only file system {mount} (" in lines[0] and "untag them again" in lines[0]
    assert rows(db) == before and all(read_mood(p) is not None for p in library.rglob("*.*"))
