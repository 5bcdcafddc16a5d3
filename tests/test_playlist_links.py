"""`playlist MOOD PATH` / `playlists PATH` where PATH is a folder of symlinks ("Favorites"): the real CLI over a
real library (tagger.synth audio) scanned into a real cache. A scan keeps a linked file's row under the file's
own path (README, `scan`), so the PATH itself matches no row: what its links lead to is taken."""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from tagger import synth
from tagger.playlists import m3u_mark
from tests.conftest import run_cli

TRACKS = {"Album/a0.flac": "calm", "Album/a1.flac": "exciting", "Album/a2.flac": "calm",
          "Other/b0.flac": "exciting", "Other/b1.flac": "calm"}


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> dict:
    """Music/ with two albums and a Favorites folder of links (two files, one album) inside it, scanned
    (the default model); a folder of links outside it, and an empty folder."""
    root = tmp_path_factory.mktemp("links")
    music = root / "Music"
    for i, (name, mood) in enumerate(TRACKS.items()):
        (music / name).parent.mkdir(parents=True, exist_ok=True)
        synth.make_track(music / name, mood, 8.0, seed=i)
    favorites = music / "Favorites"
    favorites.mkdir()
    (favorites / "best.flac").symlink_to("../Album/a0.flac")
    (favorites / "a1.flac").symlink_to("../Album/a1.flac")
    (favorites / "Other album").symlink_to("../Other", target_is_directory=True)
    outside = root / "Favs"
    (outside / "deeper").mkdir(parents=True)
    (outside / "deeper" / "x.flac").symlink_to(music / "Album" / "a2.flac")
    (root / "Empty").mkdir()
    db = root / "c.db"
    run_cli("scan", music, "--db", db, check=True)
    with sqlite3.connect(db) as conn:
        moods = dict(conn.execute("SELECT path, mood FROM tracks WHERE status = 'ok'"))
    assert sorted(moods) == sorted(str(music / name) for name in TRACKS)  # one row per file, under its own path
    return {"root": root, "music": music, "favorites": favorites, "outside": outside, "db": db, "moods": moods}


def entries(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def of_mood(library: dict, mood: str, *names: str) -> list[str]:
    return sorted(str(library["music"] / n) for n in names if library["moods"][str(library["music"] / n)] == mood)


@pytest.mark.parametrize("where, names", [
    ("favorites", ("Album/a0.flac", "Album/a1.flac", "Other/b0.flac", "Other/b1.flac")),
    ("outside", ("Album/a2.flac",)),
])
def test_a_folder_of_links_selects_the_files_they_lead_to(library, where, names):
    """Was 'wrote 0 calm tracks', exit 0, no warning: the PATH matched no row."""
    for mood in ("calm", "exciting"):
        proc = run_cli("playlist", mood, library[where], "--db", library["db"], "--absolute", check=True)
        assert sorted(entries(proc.stdout)) == of_mood(library, mood, *names)
        assert proc.stderr == ""


def test_playlists_of_a_folder_of_links_replace_a_playlist_with_its_tracks(library, tmp_path):
    """`playlists Favorites` replaced a playlist holding entries with an empty one."""
    out = tmp_path / "pl"
    out.mkdir()
    (out / "calm.m3u8").write_text(f"#EXTM3U\n{m3u_mark('calm')}\nold.flac\n", encoding="utf-8")  # moodtag's own
    proc = run_cli("playlists", library["favorites"], library["root"] / "Empty", "--db", library["db"], "-d", out,
                   "--absolute", check=True)
    names = ("Album/a0.flac", "Album/a1.flac", "Other/b0.flac", "Other/b1.flac")
    for mood in ("calm", "exciting"):
        assert sorted(entries((out / f"{mood}.m3u8").read_text(encoding="utf-8"))) == of_mood(library, mood, *names)
    # one warning for the PATH that finds nothing, not one per playlist
    assert proc.stderr.count("no cached tracks under") == 1 and str(library["root"] / "Empty") in proc.stderr


def test_a_path_with_no_cached_track_is_a_warning_not_silence(library):
    proc = run_cli("playlist", "calm", library["root"] / "Empty", "--db", library["db"], "--absolute", check=True)
    assert entries(proc.stdout) == []
    [line] = proc.stderr.splitlines()
    assert "no cached tracks under" in line and str(library["root"] / "Empty") in line


def test_one_place_named_several_ways_is_one_warning(library):
    """`playlist calm Empty Empty/ Empty/.` warned once for each spelling."""
    empty = library["root"] / "Empty"
    proc = run_cli("playlist", "calm", empty, f"{empty}/", f"{empty}/.", "--db", library["db"], "--absolute", check=True)
    [line] = proc.stderr.splitlines()
    assert "no cached tracks under" in line and str(empty) in line


def test_a_path_that_holds_rows_is_not_walked(library, tmp_path):
    """A PATH with rows under it is taken as it is (one indexed query on any library): a link below it to a
    folder scanned under its own path is not followed."""
    ext = tmp_path / "ext"
    ext.mkdir()
    synth.make_track(ext / "far.flac", "calm", 8.0, seed=20)
    db = tmp_path / "c.db"
    music = tmp_path / "Music"
    (music / "Album").mkdir(parents=True)
    synth.make_track(music / "Album" / "near.flac", "calm", 8.0, seed=21)
    (music / "Ext").symlink_to(ext, target_is_directory=True)
    run_cli("scan", ext, music, "--db", db, check=True)  # ext's file keeps its own path; Music/Ext is passed over
    listed = {*entries(run_cli("playlist", "calm", "--db", db, "--absolute", "--any-model", check=True).stdout),
              *entries(run_cli("playlist", "exciting", "--db", db, "--absolute", "--any-model", check=True).stdout)}
    assert listed == {str(ext / "far.flac"), str(music / "Album" / "near.flac")}
    for mood in ("calm", "exciting"):
        of_music = entries(run_cli("playlist", mood, music, "--db", db, "--absolute", "--any-model", check=True).stdout)
        assert str(ext / "far.flac") not in of_music


def test_many_folders_in_one_filter_are_one_query(tmp_path):
    """A filter of more places than SQLite's expression depth (1,000) allows in a chain of ORs (a folder of
    hundreds of album links) selects as a short one does."""
    from tagger.cache import Cache
    from tagger.playlists import PlaylistRequest, select_entries
    from tagger.records import TrackRef, TrackResult

    db = tmp_path / "c.db"
    path = tmp_path / "Album" / "a.flac"
    path.parent.mkdir()
    synth.make_track(path, "calm", 8.0, seed=30)
    with Cache.open(db) as cache:
        cache.record(TrackResult(path, mood="calm", confidence=0.9, scores={"calm": 0.9, "exciting": 0.1},
                                 duration=8.0, model_name="m", model_version="1"), TrackRef.from_path(path))
    roots = tuple(tmp_path / f"none{i}" for i in range(1200)) + (path.parent,)
    with Cache.open_readonly(db) as cache:
        found = [e.path for e in select_entries(cache, PlaylistRequest("calm", roots=roots))]
        assert found == [str(path)]
        many = tuple(str(tmp_path / f"gone{i}.flac") for i in range(5000)) + (str(path),)
        assert [e.path for e in select_entries(cache, PlaylistRequest("calm", files=many))] == [str(path)]


def test_a_folder_of_links_whose_old_rows_are_marked_missing_is_still_followed(library, tmp_path):
    """An older moodtag kept rows under a Favorites folder's link names; a scan now marks them missing (the
    files' own rows hold the results). The PATH then held rows, so it was not walked: empty playlists, no
    word. Rows marked missing do not count: its links are followed."""
    import shutil

    db = tmp_path / "c.db"
    shutil.copy(library["db"], db)
    outside = library["outside"]
    with sqlite3.connect(db) as conn:  # the row an older moodtag made under the link's name, now missing
        conn.execute("INSERT INTO tracks (path, path_bytes, size, mtime_ns, mood, confidence, scores, clips, "
                     "duration, model_name, model_version, status, tag_state, analyzed_at, format, error) "
                     "SELECT ?, NULL, size, mtime_ns, mood, confidence, scores, clips, duration, model_name, "
                     "model_version, 'missing', tag_state, analyzed_at, format, error FROM tracks WHERE path = ?",
                     [str(outside / "deeper" / "x.flac"), str(library["music"] / "Album" / "a2.flac")])
    mood = library["moods"][str(library["music"] / "Album" / "a2.flac")]
    proc = run_cli("playlist", mood, outside, "--db", db, "--absolute", check=True)
    assert entries(proc.stdout) == [str(library["music"] / "Album" / "a2.flac")], proc.stderr


def test_a_link_that_cannot_be_followed_is_passed_over(library, tmp_path):
    """A PATH whose links cannot be followed (to /proc/2/exe; a link gone since it was listed) gave a
    traceback; each such link is passed over, and the PATH gets its one warning line."""
    if not os.path.lexists("/proc/2/exe"):
        pytest.skip("no /proc/2 here")
    folder = tmp_path / "links"
    folder.mkdir()
    (folder / "kernel.flac").symlink_to("/proc/2/exe")  # a kernel thread's: reading it fails (ENOENT)
    proc = run_cli("playlist", "calm", folder, "--db", library["db"], "--absolute")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.count("no cached tracks under") == 1, proc.stderr


def test_a_link_in_the_music_folder_that_cannot_be_followed_is_passed_over(library, tmp_path):
    """`--for mpd`: the music folder's links are looked through when a track lies outside it; one that
    cannot be followed (to /proc/2/exe: realpath fails) was a traceback. It is passed over, and the
    tracks outside keep their warning."""
    if not os.path.lexists("/proc/2/exe"):
        pytest.skip("no /proc/2 here")
    music = tmp_path / "mpd-music"
    music.mkdir()
    (music / "kernel").symlink_to("/proc/2/exe")
    proc = run_cli("playlists", "--db", library["db"], "--for", "mpd", "--music-dir", music, "-d", tmp_path / "pl")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "outside the music folder" in proc.stderr, proc.stderr
