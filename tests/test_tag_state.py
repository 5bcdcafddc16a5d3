"""What the cache says of a file's tags, through the real CLI (real files, real SQLite, real writes):
`untag` leaves rows that say untagged and stay current, a failed tag write is a failure in the cache
with its cause and is tried again, `--retag`, and a cache from before the tag state is upgraded."""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from mutagen import flac

from tagger.tags import read_mood
from tests.conftest import run_cli
from tests.test_scan import ROOT, _without_root_powers, rows


@pytest.fixture
def lib(tmp_path, audio_dir) -> Path:
    """Four real tracks: FLAC, WAV, MP3, Ogg Vorbis."""
    folder = tmp_path / "lib"
    folder.mkdir()
    for src in sorted(audio_dir.iterdir()):
        if src.suffix in (".flac", ".wav", ".mp3", ".ogg"):
            shutil.copy(src, folder / f"{src.stem}{src.suffix}")
    return folder


def scan(lib: Path, db: Path, model: Path, *extra) -> list[dict]:
    """`moodtag scan --json`: one object per track, by file name."""
    proc = run_cli("scan", lib, "--db", db, "--model", model, "--jobs", "1", "--json", *extra, check=True)
    return sorted((json.loads(line) for line in proc.stdout.splitlines()), key=lambda o: o["path"])


def flat(text: str) -> str:
    return " ".join(text.split())


def stats(db: Path) -> dict:
    return json.loads(run_cli("stats", "--db", db, "--json", check=True).stdout)


def query(db: Path, *args) -> list[dict]:
    proc = run_cli("query", "--db", db, "--json", *args, check=True)
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_untag_leaves_rows_that_say_untagged_and_the_next_scan_analyses_nothing(lib, tmp_path, test_model):
    db = tmp_path / "c.db"
    first = scan(lib, db, test_model)
    assert [o["tags"] for o in first] == ["written"] * 4 and stats(db)["tagged"] == 4

    proc = run_cli("untag", lib, "--db", db, check=True)
    assert "untagged 4 files" in " ".join(proc.stdout.split())
    files = sorted(lib.iterdir())
    assert all(read_mood(p) is None for p in files)
    cached = rows(db)
    for p in files:  # the untagged file as it is now: its row stays current
        row = cached[str(p)]
        assert (row["tag_state"], row["tagged"], row["status"]) == ("untagged", 0, "ok")
        assert (row["size"], row["mtime_ns"]) == (p.stat().st_size, p.stat().st_mtime_ns)
    summary = stats(db)
    assert (summary["tagged"], summary["untagged"], summary["by_status"]) == (0, 4, {"ok": 4})
    header = run_cli("stats", "--db", db, check=True).stdout.splitlines()[0]  # the text said nothing of them
    assert header == f"{db}: 4 tracks (4 analysed: 0 tagged, 4 untagged; 0 failed, 0 missing)"

    again = scan(lib, db, test_model)   # a plain scan: nothing analysed, nothing written back
    assert [(o["action"], o["tags"]) for o in again] == [("cached", "untagged")] * 4
    assert [o["mood"] for o in again] == [o["mood"] for o in first]
    assert all(read_mood(p) is None for p in files)
    text = flat(run_cli("scan", lib, "--db", db, "--model", test_model, check=True).stderr)
    assert "left untagged (--retag tags those without a mood of their own) 4" in text and "analysed 0" in text

    retag = scan(lib, db, test_model, "--retag")   # the mood back, from the cache
    assert [(o["action"], o["tags"]) for o in retag] == [("cached", "written")] * 4
    assert all(read_mood(p).mood == o["mood"] for p, o in zip(files, first))
    assert stats(db)["tagged"] == 4 and {r["tag_state"] for r in rows(db).values()} == {"tagged"}


def test_an_untagged_file_that_changes_is_analysed_again_and_stays_untagged(lib, tmp_path, test_model):
    db = tmp_path / "c.db"
    scan(lib, db, test_model)
    edited, stale = next(lib.glob("*.flac")), next(lib.glob("*.ogg"))
    os.utime(stale, ns=(stale.stat().st_atime_ns, stale.stat().st_mtime_ns + 10**9))  # changed before untag
    run_cli("untag", lib, "--db", db, check=True)
    assert rows(db)[str(stale)]["mtime_ns"] != stale.stat().st_mtime_ns  # its analysis is not vouched for
    tags = flac.FLAC(edited)                                              # edited in a tag editor since
    tags["title"] = "A new title"
    tags.save()

    plain = {Path(o["path"]).name: (o["action"], o["tags"]) for o in scan(lib, db, test_model)}
    assert plain == {p.name: ("analysed" if p in (edited, stale) else "cached", "untagged") for p in lib.iterdir()}
    forced = scan(lib, db, test_model, "--force")
    assert [(o["action"], o["tags"]) for o in forced] == [("analysed", "untagged")] * 4  # --force alone does not retag
    assert all(read_mood(p) is None for p in lib.iterdir())
    assert {r["tag_state"] for r in rows(db).values()} == {"untagged"}


def test_untag_of_some_files_touches_only_their_rows(lib, tmp_path, test_model):
    db = tmp_path / "c.db"
    scan(lib, db, test_model)
    one = next(lib.glob("*.wav"))
    run_cli("untag", one, "--db", db, check=True)
    states = {Path(k).name: r["tag_state"] for k, r in rows(db).items()}
    assert states == {p.name: ("untagged" if p == one else "tagged") for p in lib.iterdir()}
    assert [o["action"] for o in scan(lib, db, test_model)] == ["cached"] * 4


def test_untag_through_a_link_to_the_scanned_folder_finds_the_rows(lib, tmp_path, test_model):
    """The rows are under the path the scan walked; untag given a link to that folder (or to one file)
    finds them by the real path, so the next scan leaves the files untagged."""
    db = tmp_path / "c.db"
    scan(lib, db, test_model)
    link = tmp_path / "lib link"
    link.symlink_to(lib, target_is_directory=True)
    one = tmp_path / "one.wav"
    one.symlink_to(next(lib.glob("*.wav")))
    assert "untagged 1 file" in flat(run_cli("untag", one, "--db", db, check=True).stdout)
    assert "untagged 3 files" in flat(run_cli("untag", link, "--db", db, check=True).stdout)
    assert sorted(rows(db)) == sorted(str(p) for p in lib.iterdir())
    assert {r["tag_state"] for r in rows(db).values()} == {"untagged"}
    assert [(o["action"], o["tags"]) for o in scan(lib, db, test_model)] == [("cached", "untagged")] * 4
    assert all(read_mood(p) is None for p in lib.iterdir())


def test_untag_by_the_real_path_of_a_folder_scanned_through_a_link_finds_the_rows(lib, tmp_path, test_model):
    """The reverse: a library that reaches a folder through a link (`music/Ext -> lib`) keeps its rows
    under the link's path; untag given the real folder untagged the files but found no row, and the
    next scan of the library wrote the moods back without a word. Now the rows are found by the files
    themselves (a row current for the file, whose path is the same file)."""
    db = tmp_path / "c.db"
    music = tmp_path / "music"
    music.mkdir()
    (music / "Ext").symlink_to(lib, target_is_directory=True)
    scan(music, db, test_model)
    assert sorted(rows(db)) == sorted(str(music / "Ext" / p.name) for p in lib.iterdir())
    assert "untagged 4 files" in flat(run_cli("untag", lib, "--db", db, check=True).stdout)
    assert {r["tag_state"] for r in rows(db).values()} == {"untagged"} and len(rows(db)) == 4
    assert [(o["action"], o["tags"]) for o in scan(music, db, test_model)] == [("cached", "untagged")] * 4
    assert all(read_mood(p) is None for p in lib.iterdir())


def test_untag_dry_run_and_no_cache_change_nothing_in_the_cache(lib, tmp_path, test_model):
    db = tmp_path / "c.db"
    scan(lib, db, test_model)
    before = rows(db)
    run_cli("untag", lib, "--db", db, "--dry-run", check=True)
    assert rows(db) == before
    other = tmp_path / "none.db"   # a --db that is not there: an error (a typo), nothing untagged
    assert run_cli("untag", lib, "--db", other).returncode == 1
    assert not other.exists() and all(read_mood(p) is not None for p in lib.iterdir())
    data = tmp_path / "data"   # the default cache not there: untagged, and no cache is made
    run_cli("untag", lib, env={"XDG_DATA_HOME": str(data)}, check=True)
    assert not (data / "moodtag" / "moodtag.db").exists() and rows(db) == before


def test_a_failed_tag_write_is_a_failure_in_the_cache_and_is_tried_again(lib, tmp_path, test_model):
    """A read-only file (no write permission bit: moodtag refuses it even as root) is analysed; the
    scan summary, `stats` and `query --status failed` all count it failed and say why; once it is
    writable the next scan writes its tags without analysing it again."""
    db = tmp_path / "c.db"
    locked = next(lib.glob("*.mp3"))
    data = locked.read_bytes()
    locked.chmod(0o444)
    try:
        proc = run_cli("scan", lib, "--db", db, "--model", test_model, "--jobs", "1", env={"COLUMNS": "300"})
        assert proc.returncode == 0, proc.stderr
        assert f"failed: {locked}: tags not written: read-only file (permission denied)" in proc.stderr
        assert "failed 1" in flat(proc.stderr) and "tags written 3" in flat(proc.stderr)
        assert locked.read_bytes() == data
        summary = stats(db)
        assert summary["by_status"] == {"ok": 3, "failed": 1} and summary["tagged"] == 3
        assert summary["top_errors"] == [{"error": "tags not written: read-only file (permission denied)", "count": 1}]
        assert summary["tag_failed"] == 1  # analysed: the text counted it among neither analysed nor tagged
        header = run_cli("stats", "--db", db, check=True).stdout.splitlines()[0]
        assert header == f"{db}: 4 tracks (4 analysed: 3 tagged, 1 whose tags could not be written; 0 failed, 0 missing)"
        [failed] = query(db, "--status", "failed")
        assert failed["path"] == str(locked) and failed["tag_state"] == "failed" and failed["mood"] is not None
        assert failed["error"] == "tags not written: read-only file (permission denied)"
        playlist = run_cli("playlist", failed["mood"], "--db", db, "--absolute", "--any-model", check=True).stdout
        assert str(locked) in playlist.splitlines()   # the mood is known: the track is in its playlist

        still = {Path(o["path"]).name: o for o in scan(lib, db, test_model)}   # still read-only
        assert (still[locked.name]["action"], still[locked.name]["tags"]) == ("cached", "failed")
    finally:
        locked.chmod(0o644)

    after = {Path(o["path"]).name: o for o in scan(lib, db, test_model)}
    assert (after[locked.name]["action"], after[locked.name]["tags"]) == ("cached", "written")
    assert read_mood(locked).mood == failed["mood"]
    row = rows(db)[str(locked)]
    assert (row["status"], row["error"], row["tag_state"], row["tagged"]) == ("ok", None, "tagged", 1)
    assert (row["size"], row["mtime_ns"]) == (locked.stat().st_size, locked.stat().st_mtime_ns)
    assert stats(db)["by_status"] == {"ok": 4} and query(db, "--status", "failed") == []


def test_untag_forgets_a_failed_tag_write(lib, tmp_path, test_model):
    db = tmp_path / "c.db"
    locked = next(lib.glob("*.ogg"))
    locked.chmod(0o444)
    try:
        scan(lib, db, test_model)
    finally:
        locked.chmod(0o644)
    run_cli("untag", lib, "--db", db, check=True)
    row = rows(db)[str(locked)]
    assert (row["status"], row["error"], row["tag_state"]) == ("ok", None, "untagged")
    assert [o["tags"] for o in scan(lib, db, test_model)] == ["untagged"] * 4


def _as_before_tag_state(db: Path) -> None:
    """Make a cache as moodtag 0.4 left it: no tag_state column, m003 and later steps not applied."""
    con = sqlite3.connect(db)
    with con:
        for (index,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql LIKE '%tag_state%'"
                                    ).fetchall():
            con.execute(f"DROP INDEX {index}")
        con.execute("ALTER TABLE tracks DROP COLUMN tag_state")
        con.execute("DELETE FROM _sqlite_migrations WHERE name >= 'm003'")
    con.close()


def test_a_cache_from_before_the_tag_state_is_upgraded_by_a_read_command(lib, tmp_path, test_model):
    db = tmp_path / "c.db"
    scan(lib, db, test_model, "--no-write")
    one = next(lib.glob("*.flac"))
    run_cli("scan", one, "--db", db, "--model", test_model, check=True)   # tagged = 1 for this one only
    _as_before_tag_state(db)
    listed = {Path(t["path"]).name: t["tag_state"] for t in query(db)}
    assert listed == {p.name: ("tagged" if p == one else None) for p in lib.iterdir()}
    assert "m003_tag_state" in {r[0] for r in sqlite3.connect(db).execute("SELECT name FROM _sqlite_migrations")}


@pytest.mark.skipif(ROOT and not shutil.which("setpriv"), reason="needs setpriv to drop root's powers")
def test_an_old_cache_in_a_read_only_folder_is_read_from_an_upgraded_copy(lib, tmp_path, test_model):
    db = tmp_path / "ro" / "c.db"
    db.parent.mkdir()
    scan(lib, db, test_model)
    _as_before_tag_state(db)
    before = db.read_bytes()
    db.parent.chmod(0o555)
    try:
        for args in (["query", "--json"], ["stats"], ["playlists", "--out-dir", str(tmp_path / "pl"), "--any-model"]):
            proc = subprocess.run(_without_root_powers([sys.executable, "-m", "tagger", *args, "--db", str(db)]),
                                  capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0, (args, proc.stderr)
            if args[0] == "query":
                assert {json.loads(line)["tag_state"] for line in proc.stdout.splitlines()} == {"tagged"}
    finally:
        db.parent.chmod(0o755)
    assert db.read_bytes() == before


def test_untag_with_an_unusable_cache_touches_no_file(lib, tmp_path, test_model):
    """The cache is checked before the first file is changed, so files and rows never disagree."""
    db = tmp_path / "c.db"
    scan(lib, db, test_model)
    before = {p: p.read_bytes() for p in lib.iterdir()}
    foreign = tmp_path / "notes.db"
    con = sqlite3.connect(foreign)
    with con:
        con.execute("CREATE TABLE notes (text TEXT)")
    con.close()
    proc = run_cli("untag", lib, "--db", foreign)
    assert proc.returncode == 1 and proc.stderr.startswith(f"error: {foreign}: not a moodtag cache")
    assert {p: p.read_bytes() for p in lib.iterdir()} == before


def test_a_files_own_mood_is_kept_and_replace_mood_puts_moodtags_over_it(lib, tmp_path, test_model):
    """A mood another tool wrote (Picard: Vorbis MOOD) is kept by a scan: one line names the file, the
    row says kept, rescans leave it quietly; --replace-mood writes moodtag's, and untag puts it back."""
    db = tmp_path / "c.db"
    track = next(p for p in lib.iterdir() if p.suffix == ".flac")
    audio = flac.FLAC(track)
    audio["MOOD"] = ["Happy", "Dreamy"]
    audio.save()
    before = track.read_bytes()

    proc = run_cli("scan", lib, "--db", db, "--model", test_model, "--jobs", "1", check=True)
    assert flat(proc.stderr).count("kept:") == 1
    assert f"kept: {track}: the file's own mood 'Happy'; 'Dreamy' (not moodtag's) is kept" in flat(proc.stderr)
    assert "own mood kept (--replace-mood replaces it) 1" in flat(proc.stderr)
    assert track.read_bytes() == before
    assert [r["tag_state"] for r in query(db) if r["path"] == str(track)] == ["kept"]
    assert (stats(db)["tagged"], stats(db)["kept"]) == (3, 1)

    again = run_cli("scan", lib, "--db", db, "--model", test_model, "--jobs", "1", check=True)
    assert "kept:" not in again.stderr and "analysed 0" in flat(again.stderr)
    assert "own mood kept (--replace-mood replaces it) 1" in flat(again.stderr)
    dry = scan(lib, db, test_model, "--dry-run", "--force")
    assert [o["tags"] for o in dry if o["path"] == str(track)] == ["kept"]
    assert track.read_bytes() == before

    out = {o["path"]: o for o in scan(lib, db, test_model, "--replace-mood")}
    assert out[str(track)]["tags"] == "written" and out[str(track)]["action"] == "cached"
    assert flac.FLAC(track)["MOOD"] == [out[str(track)]["mood"]]
    assert flac.FLAC(track)["MOODTAG_REPLACED_MOOD"] == ["Happy", "Dreamy"]
    assert stats(db)["tagged"] == 4

    run_cli("untag", track, "--db", db, check=True)
    assert flac.FLAC(track)["MOOD"] == ["Happy", "Dreamy"]
    assert not [key for key, _ in flac.FLAC(track).tags if key.upper().startswith("MOODTAG_")]


def test_the_summary_of_untagged_files_holds_for_an_own_mood_untag_put_back(lib, tmp_path, test_model):
    """After `untag` put a file's own mood back (MOODTAG_REPLACED_MOOD), the next scan's summary said `left
    untagged (--retag tags them)`, though --retag rightly keeps that mood. The hint now says which ones it
    tags: those without a mood of their own."""
    db = tmp_path / "c.db"
    own = next(p for p in lib.iterdir() if p.suffix == ".flac")
    plain = next(p for p in lib.iterdir() if p.suffix == ".ogg")
    audio = flac.FLAC(own)
    audio["MOOD"] = ["Happy"]
    audio.save()
    run_cli("scan", lib, "--db", db, "--model", test_model, "--jobs", "1", "--replace-mood", check=True)
    run_cli("untag", own, plain, "--db", db, check=True)
    assert flac.FLAC(own)["MOOD"] == ["Happy"] and read_mood(plain) is None

    text = flat(run_cli("scan", lib, "--db", db, "--model", test_model, check=True).stderr)
    assert "left untagged (--retag tags those without a mood of their own) 2" in text, text
    retag = {o["path"]: o["tags"] for o in scan(lib, db, test_model, "--retag")}
    assert (retag[str(own)], retag[str(plain)]) == ("kept", "written")  # as the hint says
    assert flac.FLAC(own)["MOOD"] == ["Happy"] and read_mood(plain) is not None


def _scan_as_user(lib: Path, db: Path, model: Path, *extra) -> subprocess.CompletedProcess:
    """`moodtag scan` as a user that file permissions apply to (root's powers dropped)."""
    return subprocess.run(_without_root_powers([sys.executable, "-m", "tagger", "scan", str(lib), "--db", str(db),
                                                "--model", str(model), "--jobs", "1", *map(str, extra)]),
                          capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parent.parent)


@pytest.mark.skipif(ROOT and not shutil.which("setpriv"), reason="needs setpriv to drop root's powers")
def test_a_folder_that_cannot_be_listed_loses_no_row(lib, tmp_path, test_model):
    """Its files are not 'missing' (prune would forget them): their rows, untagged state included,
    stay as they were, and the next scan, once the folder is readable, analyses nothing."""
    db = tmp_path / "c.db"
    sub = lib / "sub"
    sub.mkdir()
    for p in list(lib.iterdir())[:2]:
        if p.is_file():
            p.rename(sub / p.name)
    scan(lib, db, test_model)
    run_cli("untag", sub, "--db", db, check=True)
    before = {r["path"]: (r["status"], r["tag_state"]) for r in query(db)}
    sub.chmod(0o000)
    try:
        proc = _scan_as_user(lib, db, test_model)
        assert f"{sub}: cannot list the folder: permission denied" in flat(proc.stderr), proc.stderr
        assert {r["path"]: (r["status"], r["tag_state"]) for r in query(db)} == before
        assert "forgot 0 missing tracks" in run_cli("prune", "--db", db, check=True).stdout
    finally:
        sub.chmod(0o755)
    assert {o["action"] for o in scan(lib, db, test_model)} == {"cached"}


@pytest.mark.skipif(ROOT and not shutil.which("setpriv"), reason="needs setpriv to drop root's powers")
def test_an_unreadable_file_keeps_its_result_and_is_tried_again_once_readable(lib, tmp_path, test_model):
    db = tmp_path / "c.db"
    track = next(p for p in sorted(lib.iterdir()) if p.suffix == ".mp3")
    first = {o["path"]: o for o in scan(lib, db, test_model)}[str(track)]
    track.chmod(0o000)
    try:  # --force cannot read it: one line, and the result the cache holds for it stays
        proc = _scan_as_user(lib, db, test_model, "--force")
        assert f"{track}: permission denied (cannot read the file)" in flat(proc.stderr), proc.stderr
        row = {r["path"]: r for r in query(db)}[str(track)]
        assert (row["status"], row["mood"]) == ("ok", first["mood"])
    finally:
        track.chmod(0o644)
    new = tmp_path / "new"  # a file unreadable on its first scan fails, and is tried again once readable
    new.mkdir()
    shutil.copy(track, new / "late.mp3")
    (new / "late.mp3").chmod(0o000)
    _scan_as_user(new, db, test_model)
    assert {r["path"]: r["status"] for r in query(db)}[str(new / "late.mp3")] == "failed"
    (new / "late.mp3").chmod(0o644)
    assert [o["action"] for o in scan(new, db, test_model)] == ["analysed"]


@pytest.mark.skipif(ROOT and not shutil.which("setpriv"), reason="needs setpriv to drop root's powers")
def test_a_changed_file_that_cannot_be_read_keeps_its_result_until_it_can(lib, tmp_path, test_model):
    """Its row keeps the mood and the size and mtime it was made for: the next scan tries again."""
    db = tmp_path / "c.db"
    track = next(p for p in sorted(lib.iterdir()) if p.suffix == ".flac")
    first = {o["path"]: o for o in scan(lib, db, test_model)}[str(track)]
    before = rows(db)[str(track)]
    os.utime(track, ns=(track.stat().st_atime_ns, track.stat().st_mtime_ns + 10**9))  # touched
    track.chmod(0o000)
    try:
        proc = _scan_as_user(lib, db, test_model)
        assert f"{track}: permission denied (cannot read the file)" in flat(proc.stderr), proc.stderr
        assert rows(db)[str(track)] == before and {r["path"]: r["mood"] for r in query(db)}[str(track)] == first["mood"]
    finally:
        track.chmod(0o644)
    again = {o["path"]: o for o in scan(lib, db, test_model)}[str(track)]
    assert (again["action"], again["mood"]) == ("analysed", first["mood"])
    assert rows(db)[str(track)]["mtime_ns"] == track.stat().st_mtime_ns


def test_a_missing_path_is_one_line_and_the_others_are_scanned(lib, tmp_path, test_model):
    db = tmp_path / "c.db"
    scan(lib, db, test_model)
    other = tmp_path / "other"
    shutil.copytree(lib, other)
    shutil.rmtree(lib)  # a PATH that is gone (an unmounted share): its rows are not marked missing
    proc = run_cli("scan", other, lib, "--db", db, "--model", test_model, "--jobs", "1")
    assert proc.returncode == 1
    assert f"{lib}: no such file or folder" in flat(proc.stderr), proc.stderr
    assert "analysed 4" in flat(proc.stderr)
    assert {r["status"] for r in query(db) if r["path"].startswith(str(lib) + os.sep)} == {"ok"}
    gone = run_cli("scan", tmp_path / "nope", lib, "--db", db, "--model", test_model)
    assert gone.returncode == 1 and "no such file or folder" in gone.stderr


def _the_other_label_by_hand(lib: Path, db: Path, model: Path):
    """Scan; then put the other label into a FLAC's MOOD, as Picard does. (file, moodtag's mood, the
    user's, the file's tags as the user left them)."""
    track = next(p for p in lib.iterdir() if p.suffix == ".flac")
    ours = {o["path"]: o for o in scan(lib, db, model)}[str(track)]["mood"]
    theirs = "calm" if ours == "exciting" else "exciting"
    audio = flac.FLAC(track)
    audio["MOOD"] = [theirs]
    audio.save()
    return track, ours, theirs, audio


def test_a_label_changed_by_hand_is_kept_when_the_file_is_scanned_again(lib, tmp_path, test_model):
    """moodtag wrote a mood; the user put the other label there (Picard: the file changes): the scan
    analyses the changed file again and keeps the user's label (the cache knows what moodtag wrote);
    --replace-mood then writes moodtag's, and untag puts the user's back."""
    db = tmp_path / "c.db"
    track, ours, theirs, audio = _the_other_label_by_hand(lib, db, test_model)

    again = {o["path"]: o for o in scan(lib, db, test_model)}[str(track)]
    assert (again["action"], again["tags"], again["mood"]) == ("analysed", "kept", ours)
    assert f"'{theirs}' (not moodtag's) is kept" in again["tag_note"]
    assert flac.FLAC(track)["MOOD"] == [theirs]
    assert {o["path"]: o for o in scan(lib, db, test_model)}[str(track)]["tags"] == "kept"

    scan(lib, db, test_model, "--replace-mood")
    assert flac.FLAC(track)["MOOD"] == [ours] and flac.FLAC(track)["MOODTAG_REPLACED_MOOD"] == [theirs]
    run_cli("untag", track, "--db", db, check=True)
    assert flac.FLAC(track)["MOOD"] == [theirs]


def test_untag_leaves_a_label_changed_by_hand(lib, tmp_path, test_model):
    """untag reads the cache for the mood moodtag wrote: the other label there now is the user's, and
    stays (a dry run says the same); moodtag's other fields go."""
    db = tmp_path / "c.db"
    track, ours, theirs, audio = _the_other_label_by_hand(lib, db, test_model)
    assert "would untag" in run_cli("untag", track, "--db", db, "--dry-run", check=True).stdout
    run_cli("untag", track, "--db", db, check=True)
    assert list(flac.FLAC(track).tags) == [(k, v) for k, v in audio.tags if not k.upper().startswith("MOODTAG_")]
    assert flac.FLAC(track)["MOOD"] == [theirs]


def test_a_label_kept_by_a_scan_survives_later_changes_and_untag(lib, tmp_path, test_model):
    """Once a scan had kept the user's label (row: kept), the file still held moodtag's old scores and
    model fields beside it, so the label looked like moodtag's own: the next scan after any other edit
    (a new title) wrote moodtag's mood over it, and untag deleted it. The cache's word (kept) now rules;
    --replace-mood still puts moodtag's over it, and untag puts the user's back."""
    db = tmp_path / "c.db"
    track, ours, theirs, audio = _the_other_label_by_hand(lib, db, test_model)
    assert {o["path"]: o for o in scan(lib, db, test_model)}[str(track)]["tags"] == "kept"
    assert "MOODTAG_MODEL" in flac.FLAC(track)  # moodtag's old fields, left beside the user's label
    run_cli("untag", track, "--db", db, check=True)
    assert flac.FLAC(track)["MOOD"] == [theirs] and "MOODTAG_MODEL" not in flac.FLAC(track)
    assert {o["path"]: o for o in scan(lib, db, test_model)}[str(track)]["tags"] == "untagged"
    scan(lib, db, test_model, "--retag")  # the user's label is still the file's own
    assert flac.FLAC(track)["MOOD"] == [theirs]

    track, ours, theirs, audio = _the_other_label_by_hand(lib, tmp_path / "d.db", test_model)
    db = tmp_path / "d.db"
    assert {o["path"]: o for o in scan(lib, db, test_model)}[str(track)]["tags"] == "kept"
    edited = flac.FLAC(track)
    edited["TITLE"] = ["a new title"]
    edited.save()
    again = {o["path"]: o for o in scan(lib, db, test_model)}[str(track)]
    assert (again["action"], again["tags"]) == ("analysed", "kept")
    assert flac.FLAC(track)["MOOD"] == [theirs] and flac.FLAC(track)["TITLE"] == ["a new title"]
    assert "would untag" in run_cli("untag", track, "--db", db, "--dry-run", check=True).stdout
    run_cli("untag", track, "--db", db, check=True)
    assert flac.FLAC(track)["MOOD"] == [theirs]
    scan(lib, db, test_model, "--retag", "--replace-mood")
    assert flac.FLAC(track)["MOOD"] == [ours] and flac.FLAC(track)["MOODTAG_REPLACED_MOOD"] == [theirs]
    run_cli("untag", track, "--db", db, check=True)
    assert flac.FLAC(track)["MOOD"] == [theirs]


def test_a_rescan_counts_the_failures_it_does_not_try_again(lib, tmp_path, test_model):
    """A file that failed on its content (corrupt) and has not changed is not analysed again, and the
    summary says how many such files there are, so a rescan does not read as if nothing failed."""
    db = tmp_path / "c.db"
    (lib / "broken.flac").write_bytes(b"fLaC" + b"\x00" * 64)
    first = run_cli("scan", lib, "--db", db, "--model", test_model, "--jobs", "1", check=True)
    assert "failed before" not in first.stderr
    again = run_cli("scan", lib, "--db", db, "--model", test_model, "--jobs", "1", check=True)
    assert "failed before, unchanged (--force tries again) 1" in flat(again.stderr), again.stderr
    assert "analysed 0" in flat(again.stderr)


def _broken_for_one_scan(lib: Path, db: Path, model: Path, track: Path) -> dict:
    """Replace `track` by a truncated copy (a bad download), scan (it fails on its content), put the
    good file back. The failed scan's row."""
    good = track.read_bytes()
    track.write_bytes(good[:6000])
    failed = {o["path"]: o for o in scan(lib, db, model)}[str(track)]
    assert failed["action"] == "failed" and "corrupt or truncated" in failed["error"]
    row = rows(db)[str(track)]
    track.write_bytes(good)
    return row


def test_a_failure_keeps_the_users_own_label_for_when_the_file_is_good_again(lib, tmp_path, test_model):
    """The row said kept (the user's label); one scan found the file broken: its failed row forgot
    kept, and the scan after the file was fixed wrote moodtag's mood over the user's label."""
    db = tmp_path / "c.db"
    track, ours, theirs, audio = _the_other_label_by_hand(lib, db, test_model)
    assert {o["path"]: o for o in scan(lib, db, test_model)}[str(track)]["tags"] == "kept"

    row = _broken_for_one_scan(lib, db, test_model, track)
    assert (row["status"], row["tag_state"], row["tagged"]) == ("failed", "kept", 0)
    again = {o["path"]: o for o in scan(lib, db, test_model)}[str(track)]
    assert (again["action"], again["tags"], again["mood"]) == ("analysed", "kept", ours)
    assert flac.FLAC(track)["MOOD"] == [theirs]
    assert rows(db)[str(track)]["tag_state"] == "kept"


def test_a_failure_keeps_untag_for_when_the_file_is_good_again(lib, tmp_path, test_model):
    """`moodtag untag`, then one scan found the file broken: its failed row forgot untagged, and the
    scan after the file was fixed wrote moodtag's fields back into it."""
    db = tmp_path / "c.db"
    scan(lib, db, test_model)
    track = next(lib.glob("*.flac"))
    run_cli("untag", track, "--db", db, check=True)

    row = _broken_for_one_scan(lib, db, test_model, track)
    assert (row["status"], row["tag_state"]) == ("failed", "untagged")
    again = {o["path"]: o for o in scan(lib, db, test_model)}[str(track)]
    assert (again["action"], again["tags"]) == ("analysed", "untagged")
    assert read_mood(track) is None and "MOODTAG_MODEL" not in flac.FLAC(track)
    assert rows(db)[str(track)]["tag_state"] == "untagged"
    scan(lib, db, test_model, "--retag")  # still written on request
    assert read_mood(track) is not None


def test_a_kept_file_whose_own_mood_is_taken_out_is_tagged_by_the_next_scan(lib, tmp_path, test_model):
    """The row's `kept` holds while the file has a mood of its own; once the user takes the mood field
    out, nothing of theirs is left to keep, and the next scan tags the file (README, scan)."""
    db = tmp_path / "c.db"
    track = next(p for p in lib.iterdir() if p.suffix == ".flac")
    audio = flac.FLAC(track)
    audio["MOOD"] = ["Happy"]
    audio.save()
    run_cli("scan", lib, "--db", db, "--model", test_model, "--jobs", "1", check=True)
    assert [r["tag_state"] for r in query(db) if r["path"] == str(track)] == ["kept"]
    audio = flac.FLAC(track)
    del audio["MOOD"]
    audio.save()
    out = {o["path"]: o for o in scan(lib, db, test_model)}
    assert out[str(track)]["tags"] == "written"
    assert flac.FLAC(track)["MOOD"] == [out[str(track)]["mood"]]
    assert [r["tag_state"] for r in query(db) if r["path"] == str(track)] == ["tagged"]
