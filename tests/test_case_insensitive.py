"""A library on a case-insensitive file system (exFAT or FAT32 on a USB stick, a CIFS share, macOS), where
`01 one.mp3` also opens `01 ONE.mp3` and `Music` also opens `music`: each file keeps one cache row
whichever spelling reaches it. A real exFAT image on a loop device through exfat-fuse (which gives each
spelling its own inode number), real audio, the real CLI; skipped where it cannot be mounted (root, loop
devices and FUSE), as tests/test_removable.py's drives are."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tagger import synth
from tagger.tags import read_mood
from tests.conftest import run_cli
from tests.test_removable import Drive, plugged_with
from tests.test_scan import rows

TRACKS = (("A/01 one.mp3", "calm", 1), ("A/02 two.ogg", "exciting", 2), ("B/03 three.flac", "calm", 3))


class Stick(Drive):
    SIZE = 32 << 20

    def remount(self) -> None:
        """Unmounted and mounted again: the kernel forgets what it held of each spelling's inode."""
        subprocess.run(["umount", str(self.mount)], check=True, capture_output=True)
        os.waitpid(self.pid, 0)
        self.pid = subprocess.Popen(self.daemon(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid
        for _ in range(100):
            if os.path.ismount(self.mount):
                return
            time.sleep(0.05)
        raise RuntimeError("mount.exfat-fuse did not mount again")


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """The library's tracks, encoded once."""
    folder = tmp_path_factory.mktemp("case")
    for name, mood, seed in TRACKS:
        (folder / name).parent.mkdir(exist_ok=True)
        synth.make_track(folder / name, mood, 6.0, seed=seed)
    return folder


@pytest.fixture
def stick(tmp_path, made):
    """An exFAT stick holding the library in Music/."""
    yield from plugged_with(Stick(tmp_path), lambda mount: shutil.copytree(made, mount / "Music"))


def scan(lib: Path, db: Path) -> dict[str, tuple[str, str]]:
    """path -> (action, tags) of each track of a scan."""
    proc = run_cli("scan", lib, "--db", db, "--jobs", "1", "--json", check=True)
    return {line["path"]: (line["action"], line["tags"]) for line in map(json.loads, proc.stdout.splitlines())}


def test_a_file_renamed_by_case_only_keeps_its_one_row(stick, tmp_path):
    """`mv "01 one.mp3" "01 ONE.mp3"`: the old spelling still opens the file, so its row was never marked
    missing; the file was analysed again beside it, and stats, playlists (the track twice) and prune (which
    never forgot the old row) counted one file as two. The row now goes with the new spelling, as a moved
    file's does: nothing analysed again, one row, the track listed once."""
    lib, db = stick.mount / "Music", tmp_path / "c.db"
    scan(lib, db)
    old, new = lib / "A" / "01 one.mp3", lib / "A" / "01 ONE.mp3"
    old.rename(new)
    assert os.listdir(lib / "A").count("01 ONE.mp3") == 1 and old.exists()  # case-insensitive indeed
    outcomes = scan(lib, db)
    assert outcomes[str(new)] == ("cached", "unchanged"), outcomes
    assert all(action == "cached" for action, _ in outcomes.values()), outcomes
    assert sorted(rows(db)) == sorted(str(lib / name) for name in ("A/01 ONE.mp3", "A/02 two.ogg", "B/03 three.flac"))
    assert {row["status"] for row in rows(db).values()} == {"ok"}
    stats = run_cli("stats", "--db", db, check=True)
    assert "3 tracks" in stats.stdout.splitlines()[0], stats.stdout
    run_cli("playlists", "--db", db, "--out-dir", tmp_path / "pl", check=True)
    listed = [line for path in (tmp_path / "pl").glob("*.m3u8") for line in path.read_text().splitlines()
              if not line.startswith("#")]
    assert sorted(listed) == sorted(f"../stick/Music/{name}" for name in ("A/01 ONE.mp3", "A/02 two.ogg",
                                                                            "B/03 three.flac")), listed


def test_a_folder_renamed_by_case_only_keeps_its_rows(stick, tmp_path):
    """`mv A a`: its files keep their rows under the new spelling; none analysed again, no second rows."""
    lib, db = stick.mount / "Music", tmp_path / "c.db"
    scan(lib, db)
    (lib / "A").rename(lib / "a")
    outcomes = scan(lib, db)
    assert all(action == "cached" for action, _ in outcomes.values()), outcomes
    assert sorted(rows(db)) == sorted(str(lib / name) for name in ("a/01 one.mp3", "a/02 two.ogg", "B/03 three.flac"))


def test_a_scan_of_the_library_spelt_otherwise_analyses_nothing_again(stick, tmp_path):
    """`scan MNT/music` after `scan MNT/Music`: every file was analysed again under the other spelling, and
    the cache held two rows of each. The PATH is spelt as its folder lists it."""
    lib, db = stick.mount / "Music", tmp_path / "c.db"
    first = scan(lib, db)
    outcomes = scan(stick.mount / "music", db)
    assert outcomes == {path: ("cached", "unchanged") for path in first}, outcomes
    assert sorted(rows(db)) == sorted(first)
    assert {row["status"] for row in rows(db).values()} == {"ok"}
    prune = run_cli("prune", stick.mount / "music", "--db", db, "-n", check=True)
    assert "no cached tracks under" not in prune.stderr, prune.stderr


def test_an_untag_of_the_library_spelt_otherwise_stays_untagged(stick, tmp_path):
    """`untag MNT/music` of a library scanned as MNT/Music left its rows saying tagged (no row found under
    that spelling, and exfat-fuse gives it other inode numbers), so the next scan wrote every mood back."""
    lib, db = stick.mount / "Music", tmp_path / "c.db"
    first = scan(lib, db)
    run_cli("untag", stick.mount / "music", "--db", db, check=True)
    stick.remount()
    assert {row["tag_state"] for row in rows(db).values()} == {"untagged"}, rows(db)
    assert sorted(rows(db)) == sorted(first)
    outcomes = scan(lib, db)
    assert all(tags == "untagged" for _, tags in outcomes.values()), outcomes
    stick.remount()
    assert all(read_mood(lib / name) is None for name, _, _ in TRACKS)


def test_a_file_renamed_by_case_and_changed_leaves_a_row_prune_forgets(stick, tmp_path):
    """Renamed by case and changed too (its mtime): analysed again under the new spelling, as a changed
    file is; the old spelling's row is marked missing (it stayed ok for ever) and `prune` forgets it."""
    lib, db = stick.mount / "Music", tmp_path / "c.db"
    scan(lib, db)
    old, new = lib / "A" / "01 one.mp3", lib / "A" / "01 ONE.mp3"
    old.rename(new)
    os.utime(new, (1_600_000_000, 1_600_000_000))  # exFAT keeps 2 s steps: one far from the scan's write
    assert scan(lib, db)[str(new)][0] == "analysed"
    assert rows(db)[str(old)]["status"] == "missing"
    prune = run_cli("prune", "--db", db, check=True)
    assert "forgot 1 missing track" in prune.stdout + prune.stderr, prune.stdout + prune.stderr
    assert sorted(rows(db)) == sorted(str(lib / name) for name in ("A/01 ONE.mp3", "A/02 two.ogg", "B/03 three.flac"))


def test_a_path_on_a_case_sensitive_disk_keeps_its_spelling(tmp_path):
    """On a file system that tells `Music` from `music`, a PATH is left as given, and a row's file is there
    only under its own spelling."""
    from tagger.discover import spelt_on_disk, vanished

    (tmp_path / "Music").mkdir()
    track = tmp_path / "Music" / "a.mp3"
    track.write_bytes(b"x")
    assert spelt_on_disk([tmp_path / "music", tmp_path / "Music" / "A.mp3", track]) == [
        tmp_path / "music", tmp_path / "Music" / "A.mp3", track]
    assert not vanished(track) and vanished(tmp_path / "music" / "a.mp3")


def test_files_given_by_another_spelling_come_back_under_that_spelling(stick, tmp_path):
    """A beets item's file (scan_files with files_only) is given as beets spells it (`STICK/music/...` where
    the folder lists `Music`): its outcome must come back under that path, which the plugin matches to the
    item; respelt, no item matched it, so none got its mood and an item's own mood was written over."""
    from tagger.scan import scan_files

    given = [stick.mount / "music" / name for name, _, _ in TRACKS]
    seen: list[Path] = []
    summary = scan_files(given, db=tmp_path / "c.db", jobs=1, files_only=True, no_write=True,
                         on_event=lambda event: seen.append(event.outcome.ref.path) if event.kind == "track" else None)
    assert summary.analysed == len(TRACKS)
    assert sorted(seen) == sorted(given)


def test_the_second_rows_an_older_moodtag_left_under_another_spelling_are_forgotten(stick, tmp_path):
    """An older moodtag, given MNT/Music and then MNT/music, made two rows of each file: a nightly
    `scan MNT/Music; prune` never cleaned them (the rows under the other spelling were not looked at), and
    each track was counted and listed twice. The scan looks at the rows under the PATH as typed too."""
    import sqlite3

    lib, db = stick.mount / "Music", tmp_path / "c.db"
    scan(lib, db)
    con = sqlite3.connect(db)  # the rows that older moodtag made under the other spelling
    with con:
        columns = [row[1] for row in con.execute("PRAGMA table_info(tracks)")]
        for row in con.execute("SELECT * FROM tracks").fetchall():
            copy = dict(zip(columns, row), path=row[0].replace("/Music/", "/music/"))
            con.execute(f"INSERT INTO tracks ({', '.join(copy)}) VALUES ({', '.join('?' * len(copy))})",
                        list(copy.values()))
    con.close()
    assert len(rows(db)) == 2 * len(TRACKS)
    run_cli("scan", stick.mount / "music", "--db", db, "--jobs", "1", check=True)
    run_cli("prune", "--db", db, check=True)
    assert sorted(rows(db)) == sorted(str(lib / name) for name, _, _ in TRACKS), sorted(rows(db))


def test_the_same_track_renamed_by_case_in_two_folders_keeps_both_rows(stick, tmp_path):
    """The same file copied into A/ and B/ (size and mtime alike), both renamed by case at once: the two gone
    rows tied on the shared tail of the path (compared with case), so both files were analysed again. Each
    folder tells its row apart."""
    lib, db = stick.mount / "Music", tmp_path / "c.db"
    shutil.copy2(lib / "A/01 one.mp3", lib / "B/01 one.mp3")
    scan(lib, db)
    for folder in ("A", "B"):
        (lib / folder / "01 one.mp3").rename(lib / folder / "01 ONE.mp3")
    outcomes = scan(lib, db)
    assert all(action == "cached" for action, _ in outcomes.values()), outcomes
    assert {str(lib / "A/01 ONE.mp3"), str(lib / "B/01 ONE.mp3")} <= set(rows(db))
    assert len(rows(db)) == len(TRACKS) + 1


def test_rows_under_the_path_as_typed_stay_while_its_folder_is_empty(stick, tmp_path):
    """An older moodtag's rows under `STICK/music` (its only rows), the folder emptied for a while: `scan
    STICK/music` marked them missing (the empty folder was looked for under the respelt `Music` only), and
    the next prune forgot them. An empty PATH leaves its rows as they are, whichever spelling holds them."""
    import sqlite3

    lib, db = stick.mount / "Music", tmp_path / "c.db"
    scan(lib, db)
    con = sqlite3.connect(db)
    with con:  # the rows as an older moodtag, given STICK/music, made them
        con.execute("UPDATE tracks SET path = replace(path, '/Music/', '/music/'), path_bytes = NULL")
    con.close()
    shutil.move(str(lib), str(tmp_path / "aside"))
    lib.mkdir()  # emptied for a while
    run_cli("scan", stick.mount / "music", "--db", db, "--jobs", "1")
    assert {row["status"] for row in rows(db).values()} == {"ok"}, rows(db)


def test_a_music_dir_typed_in_another_case_finds_the_tracks(stick, tmp_path):
    """`--for mpd --music-dir STICK/music`, the library scanned as STICK/Music: every track counted as outside
    the music folder, and the MPD playlists were written empty (exit status 0). The folder is spelt as its
    parent lists it, as a PATH is."""
    lib, db = stick.mount / "Music", tmp_path / "c.db"
    scan(lib, db)
    proc = run_cli("playlists", "--db", db, "--for", "mpd", "--music-dir", stick.mount / "music",
                   "--out-dir", tmp_path / "mpd", check=True)
    assert "outside the music folder" not in proc.stderr, proc.stderr
    listed = sorted(line for path in (tmp_path / "mpd").glob("*.m3u") for line in path.read_text().splitlines()
                    if not line.startswith("#"))
    assert listed == sorted(name for name, _, _ in TRACKS), listed


def test_a_file_renamed_by_case_is_still_there_for_beets(stick):
    """beets' `rm` without -d keeps the row of a file still there: `vanished(spelling=False)` asks whether the
    file itself is gone, and a file renamed by case is not (its row under the old spelling is gone as spelt,
    which a scan's vanished says)."""
    from tagger.discover import vanished

    old, new = stick.mount / "Music/A/01 one.mp3", stick.mount / "Music/A/01 ONE.mp3"
    old.rename(new)
    assert vanished(old) and not vanished(old, spelling=False) and not vanished(new)


def beets_on(stick, tmp_path, made):
    """A beets set-up (tests/test_beets.py's, its config and library off the stick) whose items are the
    stick's Music/ files, imported in place as singletons (untagged, so alike: kept) and analysed once by
    `beet moodtag`."""
    from tests.test_beets import Beets

    beet = Beets(tmp_path / "beets", made, moodtag={"auto": False, "jobs": 1},
                 **{"import": {"duplicate_action": "keep"}})
    beet.music = stick.mount / "Music"
    beet("import", "-A", "-q", "-s", str(beet.music))
    assert f"{len(TRACKS)} items: {len(TRACKS)} analysed" in beet("moodtag").stderr
    return beet


def test_beets_items_renamed_by_case_keep_the_one_row_moodtag_scan_keeps(stick, tmp_path, made):
    """A file renamed by case that beets still spells the old way (the old spelling opens it, so `beet
    update` changes nothing), beside a nightly `moodtag scan; moodtag prune`: the scan keys the row by the
    listed spelling, `beet moodtag` looked it up under beets' and analysed the file again, every cycle (a
    second ok row: stats and the calm playlist counted the track twice; prune forgot the beets-spelled row
    marked missing). The plugin gives the scan the file as its folder lists it: nothing analysed again,
    one row."""
    lib, db = stick.mount / "Music", tmp_path / "beets" / "beets" / "moodtag.db"
    beet = beets_on(stick, tmp_path, made)
    (lib / "A" / "01 one.mp3").rename(lib / "A" / "01 ONE.mp3")
    beet("update")
    assert str(lib / "A" / "01 one.mp3") in beet("ls", "-f", "$path").stdout.splitlines()  # beets' spelling
    listed = sorted(str(lib / name) for name in ("A/01 ONE.mp3", "A/02 two.ogg", "B/03 three.flac"))
    for _ in range(2):
        run_cli("scan", lib, "--db", db, "--jobs", "1", "--no-write", check=True)
        run_cli("prune", "--db", db, check=True)
        run = beet("moodtag")
        assert f"{len(TRACKS)} items: 0 analysed, {len(TRACKS)} unchanged (cached)" in run.stderr, run.stderr
        assert sorted(rows(db)) == listed and {row["status"] for row in rows(db).values()} == {"ok"}, rows(db)
    assert f"{len(TRACKS)} tracks" in run_cli("stats", "--db", db, check=True).stdout.splitlines()[0]
    assert beet.fields("$mood") == {Path(name).name: mood for name, mood, _ in TRACKS}


def test_beets_writes_moves_and_removals_find_a_case_renamed_files_row(stick, tmp_path, made):
    """After a rename by case and `moodtag scan` (the row under the listed spelling), beets' own write, `beet
    mv` and `beet rm -d` of the item (beets' old spelling) looked the row up under beets' spelling only:
    the write left the row stale and the move left it behind (the file analysed again at its new path, a
    stale ok row at the old one), and the removal left it ok. Each finds the row under the listed spelling."""
    lib, db = stick.mount / "Music", tmp_path / "beets" / "beets" / "moodtag.db"
    beet = beets_on(stick, tmp_path, made)
    for name in ("A/01 one.mp3", "A/02 two.ogg"):
        (lib / name).rename(lib / name.upper())
    run_cli("scan", lib, "--db", db, "--jobs", "1", "--no-write", check=True)
    old, gone = lib / "A" / "01 one.mp3", lib / "A" / "02 two.ogg"
    run = beet("modify", "-y", "-w", "title=Renamed", f"path:{old}")
    assert "moodtag:" not in run.stderr, run.stderr
    (stick.mount / "Other").mkdir()
    run = beet("mv", "-d", str(stick.mount / "Other"), f"path:{old}")
    assert "Traceback" not in run.stderr and "moodtag:" not in run.stderr, run.stderr
    moved = [p for p in (stick.mount / "Other").rglob("*") if p.is_file()]
    assert len(moved) == 1
    run = beet("rm", "-d", "-f", f"path:{gone}")
    assert os.listdir(lib / "A") == [], run.stderr  # (exists() may still see the kernel's entry of that spelling)
    assert {path: row["status"] for path, row in rows(db).items()} == {
        str(moved[0]): "ok", str(lib / "A" / "02 TWO.OGG"): "missing", str(lib / "B/03 three.flac"): "ok"}
    run = beet("moodtag")
    assert "2 items: 0 analysed, 2 unchanged (cached)" in run.stderr, run.stderr


def test_beets_items_on_a_disk_not_mounted_are_one_line_and_keep_their_rows(stick, tmp_path, made):
    """The stick unplugged: `beet moodtag` printed a `no such file or folder` line per item (a library's
    thousands) and counted each failed. As `moodtag scan` leaves the rows of a disk a scan saw mounted
    that is not mounted now, the plugin leaves its items: one line naming the mount point, a count in the
    summary, the rows and the items' moods as they were."""
    db = tmp_path / "beets" / "beets" / "moodtag.db"
    beet = beets_on(stick, tmp_path, made)
    before = rows(db)
    subprocess.run(["umount", str(stick.mount)], check=True, capture_output=True)
    os.waitpid(stick.pid, 0)
    stick.pid = None
    for args in (("moodtag",), ("moodtag", "-p")):
        run = beet(*args)
        lines = [line for line in run.stderr.splitlines() if str(stick.mount) in line]
        assert len(lines) == 1 and "not mounted now" in lines[0] and "3 items on it" in lines[0], run.stderr
        assert "failed:" not in run.stderr and ", 0 failed, 3 on a disk not mounted" in run.stderr, run.stderr
    assert rows(db) == before
    assert beet.fields("$mood") == {Path(name).name: mood for name, mood, _ in TRACKS}


def test_beets_items_of_one_file_under_two_spellings_each_get_its_mood(stick, tmp_path, made):
    """A file renamed by case and imported again (beets keeps both items: one file, two spellings, which
    exfat-fuse gives two inodes): the scan was given the file once, and the second item got no mood, on
    every run, without a word; its own mood was not kept either (the file tagged over it). Both items are
    one file's now."""
    lib = stick.mount / "Music"
    beet = beets_on(stick, tmp_path, made)
    (lib / "A" / "01 one.mp3").rename(lib / "A" / "01 ONE.mp3")
    beet("import", "-A", "-q", "-s", str(lib / "A" / "01 ONE.mp3"))
    assert len(beet("ls", "-f", "$path").stdout.splitlines()) == len(TRACKS) + 1
    run = beet("moodtag")
    assert f"{len(TRACKS) + 1} items ({len(TRACKS)} files): 0 analysed" in run.stderr, run.stderr
    moods = beet("ls", "-f", "$path\t$mood").stdout.splitlines()
    assert sorted(line.split("\t")[1] for line in moods) == sorted(["calm", "calm", "exciting", "calm"]), moods
    beet("modify", "-y", "mood=dreamy", f"path:{lib / 'A' / '01 ONE.mp3'}")
    run = beet("moodtag", "-w", "-f")
    assert f"kept: {lib / 'A' / '01 ONE.mp3'}: the item's own mood 'dreamy'" in run.stderr, run.stderr
    assert read_mood(lib / "A" / "01 one.mp3") is None, "the file tagged over an item's own mood"
