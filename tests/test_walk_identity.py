"""Which row a scan gives a file, and when a row's file is gone, on the cases a review found wrong: a
file replaced by a folder or a FIFO, nested PATHs, a folder linked to a disk not mounted now, a library
scanned under two names (through a symlink and by its real path; a link into a hidden folder with and
without --hidden). Real audio (tagger.synth), real SQLite caches, the real CLI."""
from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
from pathlib import Path

from tagger import synth
from tagger.tags import read_mood
from tests.conftest import run_cli
from tests.test_scan import rows


def scan(*paths, db: Path, extra=()) -> list[dict]:
    proc = run_cli("scan", *paths, "--db", db, "--jobs", "1", "--json", *extra, check=True)
    return [json.loads(line) for line in proc.stdout.splitlines()]


def track(path: Path, mood: str, seed: int) -> Path:
    """An 8 s track made by real encoders, its folders made first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return synth.make_track(path, mood, 8.0, seed=seed)


def actions(lines: list[dict]) -> dict[str, tuple[str, str]]:
    return {line["path"]: (line["action"], line["tags"]) for line in lines}


def statuses(db: Path) -> dict[str, str]:
    return {path: row["status"] for path, row in rows(db).items()}


def test_a_file_replaced_by_a_folder_or_a_fifo_is_gone(tmp_path):
    """An audio file replaced by a folder of that name, or by a FIFO, kept its `ok` row for good: playlists
    listed the folder or the FIFO (a player opening it blocks), and prune never forgot it. Such a path is
    no file of the library: the row is marked missing, leaves the playlists, and prune forgets it."""
    lib, db = tmp_path / "lib", tmp_path / "c.db"
    for i, name in enumerate(("keep.wav", "f.ogg", "c.flac")):
        track(lib / name, "calm" if i % 2 else "exciting", i)
    scan(lib, db=db, extra=["--no-write"])
    (lib / "f.ogg").unlink()
    os.mkfifo(lib / "f.ogg")
    (lib / "c.flac").unlink()
    (lib / "c.flac").mkdir()
    track(lib / "c.flac" / "inner.wav", "calm", 7)
    proc = run_cli("scan", lib, "--db", db, "--jobs", "1", "--no-write", check=True)
    assert re.search(r"vanished \(marked missing\) +2\b", proc.stderr), proc.stderr
    assert f"failed: {lib / 'f.ogg'}: not a regular file (a FIFO), skipped" in proc.stderr
    assert statuses(db) == {str(lib / "keep.wav"): "ok", str(lib / "f.ogg"): "missing",
                            str(lib / "c.flac"): "missing", str(lib / "c.flac" / "inner.wav"): "ok"}
    listed = [line for mood in ("calm", "exciting")
              for line in run_cli("playlist", mood, "--db", db, "-o", "-", check=True).stdout.splitlines()
              if not line.startswith("#")]
    assert sorted(listed) == [str(lib / "c.flac" / "inner.wav"), str(lib / "keep.wav")]
    assert run_cli("prune", "--db", db, check=True).stdout == "forgot 2 missing tracks\n"
    assert sorted(rows(db)) == [str(lib / "c.flac" / "inner.wav"), str(lib / "keep.wav")]


def test_nested_paths_count_a_vanished_file_once(tmp_path):
    """`scan lib lib/A lib/` said 'vanished (marked missing) 3' for one file gone."""
    lib, db = tmp_path / "lib", tmp_path / "c.db"
    track(lib / "A" / "a.flac", "calm", 1)
    track(lib / "A" / "b.ogg", "exciting", 2)
    scan(lib, db=db, extra=["--no-write"])
    (lib / "A" / "b.ogg").unlink()
    proc = run_cli("scan", lib, lib / "A", f"{lib}/", "--db", db, "--jobs", "1", "--no-write", check=True)
    assert re.search(r"vanished \(marked missing\) +1\b", proc.stderr), proc.stderr
    assert statuses(db) == {str(lib / "A" / "a.flac"): "ok", str(lib / "A" / "b.ogg"): "missing"}


def _linked_disk(tmp_path: Path) -> tuple[Path, Path, Path]:
    """lib/A/a.flac, and lib/Live -> mnt/ext/Music/Live (o.ogg, p.wav): a folder on another disk."""
    lib, disk = tmp_path / "lib", tmp_path / "mnt" / "ext"
    track(lib / "A" / "a.flac", "calm", 1)
    track(disk / "Music" / "Live" / "o.ogg", "exciting", 2)
    track(disk / "Music" / "Live" / "p.wav", "calm", 3)
    (lib / "Live").symlink_to(disk / "Music" / "Live", target_is_directory=True)
    return lib, disk, tmp_path / "away"


def test_a_folder_linked_to_a_disk_not_mounted_keeps_its_rows(tmp_path):
    """lib/Live, a link to a folder of a disk not mounted now (its mount point empty): the scan said
    nothing, marked the disk's tracks missing, prune forgot them, and with the disk back every file was
    analysed again and an untagged one tagged again. Now the link is one line, its rows stay as they are
    (as under a PATH that is not there), and the disk back is current at once."""
    lib, disk, away = _linked_disk(tmp_path)
    db = tmp_path / "c.db"
    scan(lib, db=db)
    run_cli("untag", lib / "Live" / "o.ogg", "--db", db, check=True)
    before = rows(db)
    (disk / "Music").rename(away)  # unmounted: /mnt/ext stays, empty
    proc = run_cli("scan", lib, "--db", db, "--jobs", "1", check=True)
    assert [line for line in proc.stderr.splitlines() if line.startswith("failed:")] == [
        f"failed: {lib / 'Live'}: broken symlink (its target does not exist)"], proc.stderr
    assert "vanished" not in proc.stderr and rows(db) == before
    assert run_cli("prune", "--db", db, check=True).stdout == "forgot 0 missing tracks\n"
    away.rename(disk / "Music")
    assert actions(scan(lib, db=db)) == {str(lib / "A" / "a.flac"): ("cached", "unchanged"),
                                         str(lib / "Live" / "o.ogg"): ("cached", "untagged"),
                                         str(lib / "Live" / "p.wav"): ("cached", "unchanged")}
    assert read_mood(lib / "Live" / "o.ogg") is None and rows(db) == before


def test_a_dead_link_with_nothing_of_the_library_behind_it_is_passed_over(tmp_path):
    """A dead link not named like audio (cover.jpg to a deleted picture, or a folder link made after the
    disk went away) holds nothing the cache knows: scan and untag pass over it without a line, as they
    pass over any file that is not audio; only a link with cached tracks behind it is one."""
    lib = tmp_path / "lib"
    track(lib / "a.flac", "calm", 1)
    (lib / "cover.jpg").symlink_to(tmp_path / "deleted.jpg")
    (lib / "New").symlink_to(tmp_path / "mnt" / "new", target_is_directory=True)
    db = tmp_path / "c.db"
    for command in (["scan", lib, "--jobs", "1"], ["untag", lib], ["scan", lib, "--retag", "--jobs", "1"]):
        proc = run_cli(*command, "--db", db, check=True)
        assert "failed:" not in proc.stderr + proc.stdout and "broken" not in proc.stderr + proc.stdout, proc
        assert command[0] != "untag" or proc.stdout.rstrip().endswith(", 0 failed"), proc.stdout


def test_prune_keeps_rows_behind_a_broken_link_while_its_disk_is_away(tmp_path):
    """Rows under lib/Live marked missing (by an older moodtag, or files gone before the disk went away)
    were forgotten by a bare prune while the link dangled: the nearest folder was looked for along the
    link's own path (lib, not empty). It is looked for along the link's target: /mnt/ext, empty, keeps
    them, and `prune /mnt/ext` (as the line says) or `prune lib/Live` forgets them. A link whose target
    was deleted from a disk that is there is forgotten by a bare prune, as a deleted file is."""
    lib, disk, away = _linked_disk(tmp_path)
    track(tmp_path / "data" / "Old" / "x.wav", "calm", 4)
    (tmp_path / "data" / "keep.txt").write_text("the disk is there\n")
    (lib / "Old").symlink_to(tmp_path / "data" / "Old", target_is_directory=True)
    db = tmp_path / "c.db"
    scan(lib, db=db, extra=["--no-write"])
    (disk / "Music").rename(away)
    (tmp_path / "data" / "Old" / "x.wav").unlink()
    (tmp_path / "data" / "Old").rmdir()
    con = sqlite3.connect(db)
    con.execute("UPDATE tracks SET status = 'missing' WHERE path NOT LIKE ?", [f"{lib / 'A'}%"])
    con.commit()
    con.close()
    proc = run_cli("prune", "--db", db, check=True)
    assert proc.stdout.splitlines() == [
        f"kept 2 missing tracks under {disk}: it is empty (a disk not mounted?); moodtag prune {disk} forgets them",
        "forgot 1 missing track"], proc.stdout
    assert sorted(Path(key).name for key in rows(db)) == ["a.flac", "o.ogg", "p.wav"]
    assert run_cli("prune", "-n", lib / "Live", "--db", db, check=True).stdout.splitlines()[-1] == \
        "would forget 2 missing tracks"
    assert run_cli("prune", disk, "--db", db, check=True).stdout == "forgot 2 missing tracks\n"
    assert list(rows(db)) == [str(lib / "A" / "a.flac")]


def test_a_library_scanned_through_a_link_and_by_its_real_path_keeps_one_row_per_file(tmp_path):
    """Music -> data/music: `scan Music`, then `scan data/music` analysed everything again and doubled
    every row (stats '4 tracks' for 2 files, playlists listing each file twice). The file is found by
    itself (device and inode): its row, current, takes the name this scan walks it by, with its result
    and its untag, whichever name is used first; a copy of the library (other files) is analysed."""
    real = tmp_path / "data" / "music"
    track(real / "A" / "a.flac", "calm", 1)
    track(real / "A" / "b.ogg", "exciting", 2)
    link = tmp_path / "Music"
    link.symlink_to(real, target_is_directory=True)
    db = tmp_path / "c.db"
    scan(link, db=db)
    run_cli("untag", link / "A" / "b.ogg", "--db", db, check=True)
    before = {Path(p).relative_to(link): row for p, row in rows(db).items()}
    a, b = Path("A/a.flac"), Path("A/b.ogg")
    for given, names in ((real, (real / a, real / b)), (link, (link / a, link / b)),
                         (real / a, (real / a, link / b)), (link, (link / a, link / b)), (real, (real / a, real / b))):
        lines = scan(given, db=db)
        assert {action for action, _ in actions(lines).values()} == {"cached"}, (given, lines)
        assert sorted(rows(db)) == sorted(map(str, names)), given
    assert {Path(p).relative_to(real): row for p, row in rows(db).items()} == {
        rel: dict(row, path=str(real / rel)) for rel, row in before.items()}
    assert actions(scan(real, db=db))[str(real / b)] == ("cached", "untagged")
    assert run_cli("stats", "--db", db, check=True).stdout.splitlines()[0] == \
        f"{db}: 2 tracks (2 analysed: 1 tagged, 1 untagged; 0 failed, 0 missing)"
    listed = [line for mood in ("calm", "exciting")
              for line in run_cli("playlist", mood, "--db", db, "-o", "-", check=True).stdout.splitlines()
              if not line.startswith("#")]
    assert sorted(listed) == [str(real / "A" / "a.flac"), str(real / "A" / "b.ogg")]
    (real / "B").mkdir()
    shutil.copy2(real / a, real / "B" / "a.flac")  # same size, mtime and name, another file: analysed
    assert {path: action for path, (action, _) in actions(scan(link, db=db)).items()} == {
        str(link / a): "cached", str(link / b): "cached", str(link / "B" / "a.flac"): "analysed"}
    assert len(rows(db)) == 3


def test_two_libraries_sharing_files_by_hard_links_each_keep_their_rows(tmp_path):
    """`cp -al Music/Album Phone/Album`, each library scanned into one cache: a hard link is a name of
    its own, not another spelling of the same path, so each scan must leave the other library's rows
    where they are (taking them swapped the rows at every scan and left the album out of each
    library's playlists)."""
    music, phone = tmp_path / "Music", tmp_path / "Phone"
    track(music / "Album" / "a.flac", "calm", 1)
    (phone / "Album").mkdir(parents=True)
    os.link(music / "Album" / "a.flac", phone / "Album" / "a.flac")
    db = tmp_path / "c.db"
    both = sorted(str(lib / "Album" / "a.flac") for lib in (music, phone))
    scan(music, db=db)
    scan(phone, db=db)
    assert sorted(rows(db)) == both
    for lib in (music, phone):
        assert actions(scan(lib, db=db)) == {str(lib / "Album" / "a.flac"): ("cached", "unchanged")}
        assert sorted(rows(db)) == both


def test_a_link_into_a_hidden_folder_with_and_without_hidden_keeps_one_row(tmp_path):
    """lib/Fav -> .stash: a scan walks s.ogg as Fav/s.ogg, one with --hidden as .stash/s.ogg (its own
    path; the link is passed over). Switching analysed the file again and left two ok rows of it."""
    lib, db = tmp_path / "lib", tmp_path / "c.db"
    track(lib / "A" / "a.flac", "calm", 1)
    track(lib / ".stash" / "s.ogg", "exciting", 2)
    (lib / "Fav").symlink_to(".stash", target_is_directory=True)
    scan(lib, db=db, extra=["--no-write"])
    for extra, name in ((["--hidden"], ".stash"), ([], "Fav"), (["--hidden"], ".stash"), ([], "Fav")):
        lines = scan(lib, db=db, extra=["--no-write", *extra])
        assert {action for action, _ in actions(lines).values()} == {"cached"}, (extra, lines)
        assert statuses(db) == {str(lib / "A" / "a.flac"): "ok", str(lib / name / "s.ogg"): "ok"}, extra


def test_a_path_with_dotdot_after_a_symlink_is_the_folder_the_os_opens(tmp_path):
    """x -> nas/music/incoming: `ls x/../lib` lists nas/music/lib, but `scan x/../lib` walked and tagged
    ./lib (os.path.abspath drops `x/..` by its spelling), and `untag -n`, `playlist` picked ./lib's files
    too. A PATH's part up to its last '..' is taken as the OS resolves it; a PATH without '..' (a library
    through a symlink) keeps its spelling."""
    db = tmp_path / "c.db"
    local = [track(tmp_path / "lib" / "A" / name, mood, i) for i, (name, mood) in
             enumerate((("a.flac", "calm"), ("b.ogg", "exciting")))]
    (tmp_path / "nas" / "music" / "incoming").mkdir(parents=True)
    share = tmp_path / "nas" / "music" / "lib"
    for i, (name, mood) in enumerate((("c.flac", "calm"), ("d.ogg", "exciting"), ("e.wav", "exciting"))):
        track(share / "B" / name, mood, 10 + i)
    (tmp_path / "x").symlink_to(Path("nas") / "music" / "incoming", target_is_directory=True)
    given = f"{tmp_path}/x/../lib"
    real = Path(os.path.realpath(share))
    names = sorted(str(real / "B" / name) for name in ("c.flac", "d.ogg", "e.wav"))
    assert sorted(actions(scan(given, db=db))) == names
    assert sorted(rows(db)) == names
    assert [read_mood(path) for path in local] == [None, None]  # ./lib is another folder, left alone
    scan(tmp_path / "lib", db=db)
    listed = run_cli("untag", "-n", given, "--db", db, check=True).stdout.splitlines()
    assert sorted(line for line in listed if line.startswith("would untag: ")) == [
        f"would untag: {name}" for name in names]
    in_playlists = [line for mood in ("calm", "exciting")
                    for line in run_cli("playlist", mood, given, "--db", db, "-o", "-", check=True).stdout.splitlines()
                    if not line.startswith("#")]
    assert sorted(in_playlists) == names
    (tmp_path / "y").symlink_to(share, target_is_directory=True)  # no '..': the names as spelt
    assert sorted(actions(scan(tmp_path / "y", db=db))) == sorted(
        str(tmp_path / "y" / "B" / name) for name in ("c.flac", "d.ogg", "e.wav"))
    # a '..' after a plain folder drops its name, as spelt: `y/B/..` is still y (its rows keep their keys;
    # resolving the whole prefix gave them the target's names, and the next `scan y` gave them back)
    again = actions(scan(tmp_path / "y" / "B" / "..", db=db))
    assert sorted(again) == sorted(str(tmp_path / "y" / "B" / name) for name in ("c.flac", "d.ogg", "e.wav"))
    assert {action for action, _ in again.values()} == {"cached"}, again
