"""A "Favorites" folder of symlinks to a library's files, outside the library, scanned as its own PATH
after (or before) the library: each file is one track with one row, never analysed again because of
a link, and alternate scans of the library and of the folder leave the rows where they are. Real audio
(tagger.synth), real SQLite caches, the real CLI."""
from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

from tests.conftest import run_cli
from tests.test_scan import rows
from tests.test_walk_identity import actions, scan, statuses, track


def album(music: Path) -> list[Path]:
    """Three 8 s tracks in Music/Album."""
    return [track(music / "Album" / f"0{i} song.flac", "calm" if i % 2 else "exciting", i) for i in range(3)]


def favorites(folder: Path, files: list[Path]) -> dict[Path, Path]:
    """Favorites/best ever.flac -> the first file (another name), Favorites/01 song.flac -> the second (the
    same name): link -> file."""
    folder.mkdir()
    links = {folder / "best ever.flac": files[0], folder / files[1].name: files[1]}
    for link, file in links.items():
        link.symlink_to(file)
    return links


def listed(*paths, db: Path) -> list[str]:
    """The tracks of every mood's playlist of `paths` (the whole cache without), as printed."""
    return sorted(line for mood in ("calm", "exciting")
                  for line in run_cli("playlist", mood, *paths, "--db", db, "-o", "-", check=True).stdout.splitlines()
                  if not line.startswith("#"))


def test_favorites_scanned_after_the_library_are_its_rows(tmp_path):
    """`scan Music; scan Favorites`: the link with another name was analysed again into a second row
    (playlists listed the file twice, stats counted 4 tracks for 3 files), and the link with the file's
    name took the file's row away from Music/Album until Music was scanned again, which took it back: the
    row went to and fro at every scan. Now each link is its file's row, cached, at every scan."""
    music, fav, db = tmp_path / "Music", tmp_path / "Favorites", tmp_path / "c.db"
    files = album(music)
    scan(music, db=db)
    before = rows(db)
    favorites(fav, files)
    for given in (fav, music, fav, music, fav):
        lines = scan(given, db=db)
        assert {action for action, _ in actions(lines).values()} == {"cached"}, (given, lines)
        assert rows(db) == before, given
    assert sorted(actions(scan(fav, db=db))) == sorted(map(str, files[:2]))
    proc = run_cli("scan", fav, "--db", db, "--jobs", "1", check=True)
    assert re.search(r"tracks found +2\b", proc.stderr) and re.search(r"analysed +0\b", proc.stderr), proc.stderr
    assert listed(db=db) == listed(music / "Album", db=db) == sorted(map(str, files))
    assert run_cli("stats", "--db", db, check=True).stdout.splitlines()[0] == \
        f"{db}: 3 tracks (3 analysed: 3 tagged; 0 failed, 0 missing)"


def test_favorites_scanned_before_the_library_end_with_one_row_per_file(tmp_path):
    """Favorites scanned first holds the links' rows (no other row of their files yet); the library's
    scan takes the same-named one and analyses the other file under its own name; from then on the link's
    own row is a second row, marked missing by the next scan of Favorites, and every scan is cached."""
    music, fav, db = tmp_path / "Music", tmp_path / "Favorites", tmp_path / "c.db"
    files = album(music)
    links = favorites(fav, files)
    assert sorted(actions(scan(fav, db=db))) == sorted(map(str, links))
    assert actions(scan(music, db=db)) == {str(files[0]): ("analysed", "unchanged"),
                                          str(files[1]): ("cached", "unchanged"),
                                          str(files[2]): ("analysed", "written")}
    proc = run_cli("scan", fav, "--db", db, "--jobs", "1", check=True)
    assert re.search(r"vanished \(marked missing\) +1\b", proc.stderr), proc.stderr
    assert statuses(db) == {**{str(file): "ok" for file in files}, str(fav / "best ever.flac"): "missing"}
    ok = {path: row for path, row in rows(db).items() if row["status"] == "ok"}
    for given in (music, fav, music, fav):
        lines = scan(given, db=db)
        assert {action for action, _ in actions(lines).values()} == {"cached"}, (given, lines)
        assert {path: row for path, row in rows(db).items() if row["status"] == "ok"} == ok, given
    assert run_cli("prune", "--db", db, check=True).stdout == "forgot 1 missing track\n"
    assert listed(db=db) == sorted(map(str, files))


def test_rows_an_older_moodtag_made_under_favorites_links_are_marked_missing(tmp_path):
    """Rows an older moodtag left under the links' names (the files' second rows) are marked missing by a
    scan of Favorites, which names each link's file by its own row; prune forgets them."""
    music, fav, db = tmp_path / "Music", tmp_path / "Favorites", tmp_path / "c.db"
    files = album(music)
    scan(music, db=db)
    links = favorites(fav, files)
    con = sqlite3.connect(db)
    for link, file in links.items():
        con.execute("CREATE TEMP TABLE alias AS SELECT * FROM tracks WHERE path = ?", [str(file)])
        con.execute("UPDATE alias SET path = ?", [str(link)])
        con.execute("INSERT INTO tracks SELECT * FROM alias")
        con.execute("DROP TABLE alias")
    con.commit()
    con.close()
    assert actions(scan(fav, db=db)) == {str(file): ("cached", "unchanged") for file in links.values()}
    assert statuses(db) == {**{str(file): "ok" for file in files}, **{str(link): "missing" for link in links}}
    assert run_cli("prune", "--db", db, check=True).stdout == "forgot 2 missing tracks\n"
    assert sorted(rows(db)) == sorted(map(str, files))


def test_favorites_of_a_library_scanned_through_a_link_to_its_folder(tmp_path):
    """Music -> data/music scanned as Music (rows under Music/...), Favorites linking to the files' real
    paths: the file is found by itself (same real path, size and mtime), so the link is its Music row."""
    real, link, fav, db = tmp_path / "data" / "music", tmp_path / "Music", tmp_path / "Favorites", tmp_path / "c.db"
    files = album(real)
    link.symlink_to(real, target_is_directory=True)
    scan(link, db=db)
    before = rows(db)
    favorites(fav, files)
    for given in (fav, link, fav):
        lines = scan(given, db=db)
        assert {action for action, _ in actions(lines).values()} == {"cached"}, (given, lines)
        assert rows(db) == before, given
    assert sorted(actions(scan(fav, db=db))) == sorted(str(link / "Album" / file.name) for file in files[:2])


def test_a_hard_link_and_a_link_to_a_file_without_a_row_keep_their_own_names(tmp_path):
    """A hard link in Favorites is a name of its own (its own row, as `cp -al` libraries keep theirs), and
    a symlink to a file the cache has no row for is a track under the link's path, as before; a link to
    that file in another folder is not taken for the file's own name either (each keeps its row)."""
    music, fav, db = tmp_path / "Music", tmp_path / "Favorites", tmp_path / "c.db"
    files = album(music)
    scan(music, db=db)
    fav.mkdir()
    os.link(files[2], fav / "hard.flac")
    outside = track(tmp_path / "nas" / "x.flac", "calm", 9)
    (fav / "x.flac").symlink_to(outside)
    assert actions(scan(fav, db=db, extra=["--no-write"])) == {
        str(fav / "hard.flac"): ("analysed", "not written"), str(fav / "x.flac"): ("analysed", "not written")}
    (tmp_path / "Fav2").mkdir()
    (tmp_path / "Fav2" / "z.flac").symlink_to(outside)
    assert actions(scan(tmp_path / "Fav2", db=db, extra=["--no-write"])) == {
        str(tmp_path / "Fav2" / "z.flac"): ("analysed", "not written")}
    for given in (fav, music, fav, tmp_path / "Fav2"):
        assert {action for action, _ in actions(scan(given, db=db, extra=["--no-write"])).values()} == {"cached"}
    assert statuses(db) == {**{str(file): "ok" for file in files}, str(fav / "hard.flac"): "ok",
                            str(fav / "x.flac"): "ok", str(tmp_path / "Fav2" / "z.flac"): "ok"}
