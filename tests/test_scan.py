"""`moodtag scan` end to end through the real CLI: real files, real tags, a real SQLite cache."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tagger import synth
from tagger.tags import read_mood
from tests.conftest import moov_first, run_cli

ROOT = os.geteuid() == 0


def rows(db: Path) -> dict[str, dict]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return {r["path"]: dict(r) for r in con.execute("SELECT * FROM tracks")}
    finally:
        con.close()


def snapshot(folder: Path) -> dict[Path, tuple[int, int, bytes]]:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def library(tmp_path, audio_dir) -> Path:
    """A small library: every format, in nested folders, one name with spaces and non-ASCII."""
    lib = tmp_path / "Music"
    for i, src in enumerate(sorted(audio_dir.iterdir())):
        dest = lib / f"Artist {i % 3}" / "Album é" / f"{i:02d} Track #{i}{''.join(src.suffixes)}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dest)
    return lib


def scan(*args, **kw):
    return run_cli("scan", *args, **kw)


def test_scan_tags_every_format_and_caches_every_result(library, test_model, tmp_path):
    db = tmp_path / "cache.db"
    proc = scan(library, "--db", db, "--model", test_model, "--jobs", "2", "--json", check=True)
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    files = sorted(p for p in library.rglob("*") if p.is_file())
    assert len(lines) == len(files) == len(synth.FORMATS)
    for line in lines:
        assert line["action"] == "analysed" and line["error"] is None
        assert set(line) >= {"path", "mood", "confidence", "scores", "clips", "model", "action"}
        assert line["mood"] in ("calm", "exciting") and len(line["clips"]) == 5
        assert line["model"] == {"name": "test-model", "version": "0.0.1"}
    cached = rows(db)
    assert set(cached) == {str(p) for p in files}
    for p in files:
        row = cached[str(p)]
        assert row["status"] == "ok" and row["tagged"] == 1
        # the cache holds the file's state after tagging, so the next scan sees it as current
        assert (row["size"], row["mtime_ns"]) == (p.stat().st_size, p.stat().st_mtime_ns)
        values = read_mood(p)
        assert values.mood == row["mood"]
        assert values.model == "test-model 0.0.1"
        assert values.scores == pytest.approx(json.loads(row["scores"]), abs=0.0006)


def test_scan_with_the_shipped_default_model(library, tmp_path):
    """No --model: the default (moodtag-rhythm) tags every format, in 2 workers, and a model switch
    analyses again rather than trusting results of another model."""
    from tagger.weights import DEFAULT_MODEL, read_spec, resolve_model

    version = read_spec(resolve_model(DEFAULT_MODEL)).version
    db = tmp_path / "cache.db"
    proc = scan(library, "--db", db, "--jobs", "2", "--json", check=True)
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(lines) == len(synth.FORMATS)
    for line in lines:
        assert line["action"] == "analysed" and line["error"] is None, line
        assert line["model"] == {"name": "moodtag-rhythm", "version": version}
        assert line["confidence"] == pytest.approx(line["scores"][line["mood"]], abs=1e-4)
        values = read_mood(Path(line["path"]))
        assert values.mood == line["mood"] and values.model == f"moodtag-rhythm {version}"
    proc = scan(library, "--db", db, "--model", "moodtag-cnn", "--json", check=True)
    switched = [json.loads(line) for line in proc.stdout.splitlines()]
    assert {line["action"] for line in switched} == {"analysed"}
    assert all(read_mood(Path(line["path"])).model == "moodtag-cnn 1.0.0" for line in switched)


def test_rescan_of_an_unchanged_library_touches_nothing(library, test_model, tmp_path):
    db = tmp_path / "cache.db"
    scan(library, "--db", db, "--model", test_model, check=True)
    before, rows_before = snapshot(library), rows(db)
    proc = scan(library, "--db", db, "--model", test_model, "--json", check=True)
    assert {json.loads(line)["action"] for line in proc.stdout.splitlines()} == {"cached"}
    assert snapshot(library) == before
    assert rows(db) == rows_before
    # one changed file is the only one analysed again
    changed = sorted(library.rglob("*.flac"))[0]
    os.utime(changed, ns=(time.time_ns(), time.time_ns()))
    proc = scan(library, "--db", db, "--model", test_model, "--json", check=True)
    actions = {json.loads(line)["path"]: json.loads(line)["action"] for line in proc.stdout.splitlines()}
    assert [p for p, a in actions.items() if a == "analysed"] == [str(changed)]


def test_dry_run_writes_neither_tags_nor_cache(library, test_model, tmp_path):
    db = tmp_path / "cache.db"
    before = snapshot(library)
    proc = scan(library, "--db", db, "--model", test_model, "--dry-run", check=True)
    assert "would tag" in proc.stderr
    assert snapshot(library) == before
    assert not db.exists()
    # the summary counts what the lines say would be written (it said 'tags written 0', under them)
    would = proc.stderr.count("would tag ")
    assert would == len(before) and re.search(rf"tags that would be written +{would}\b", proc.stderr), proc.stderr
    assert "tags written" not in proc.stderr


def test_no_write_fills_the_cache_and_a_later_scan_tags_without_decoding(library, test_model, tmp_path):
    db = tmp_path / "cache.db"
    before = snapshot(library)
    scan(library, "--db", db, "--model", test_model, "--no-write", check=True)
    assert snapshot(library) == before
    assert all(r["status"] == "ok" and r["tagged"] == 0 for r in rows(db).values())
    proc = scan(library, "--db", db, "--model", test_model, "--json", check=True)
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert {(line["action"], line["tags"]) for line in lines} == {("cached", "written")}
    assert all(read_mood(Path(line["path"])).mood == line["mood"] for line in lines)
    assert all(r["tagged"] == 1 for r in rows(db).values())


def test_keep_mtime_restores_modification_times(library, test_model, tmp_path):
    before = {p: p.stat().st_mtime_ns for p in library.rglob("*") if p.is_file()}
    scan(library, "--db", tmp_path / "c.db", "--model", test_model, "--keep-mtime", check=True)
    after = {p: p.stat().st_mtime_ns for p in library.rglob("*") if p.is_file()}
    assert after == before
    assert all(read_mood(p) is not None for p in before)


def _scanned_then_one_gone(library, test_model, db) -> Path:
    """Scan, delete one file, scan again: the deleted file's path."""
    scan(library, "--db", db, "--model", test_model, check=True)
    gone = sorted(library.rglob("*.wav"))[0]
    gone.unlink()
    scan(library, "--db", db, "--model", test_model, check=True)
    return gone


def test_vanished_files_are_marked_missing_then_pruned(library, test_model, tmp_path):
    db = tmp_path / "cache.db"
    gone = _scanned_then_one_gone(library, test_model, db)
    assert rows(db)[str(gone)]["status"] == "missing"
    run_cli("prune", "--db", db, check=True)
    assert str(gone) not in rows(db) and len(rows(db)) == len(synth.FORMATS) - 1


def _cache_bytes(db: Path) -> list[bytes]:
    """The cache's file and its WAL (a reader may leave an empty -wal where there was none, as query does)."""
    return [p.read_bytes() if p.exists() else b"" for p in (db, Path(f"{db}-wal"))]


def test_prune_dry_run_lists_what_it_would_forget_and_changes_nothing(library, test_model, tmp_path):
    db = tmp_path / "cache.db"
    gone = _scanned_then_one_gone(library, test_model, db)
    before = _cache_bytes(db)
    for flag in ("--dry-run", "-n"):
        proc = run_cli("prune", flag, "--db", db, check=True)
        assert proc.stdout.splitlines() == [f"would forget: {gone}", "would forget 1 missing track"], proc.stderr
        assert _cache_bytes(db) == before
    elsewhere = next(folder for folder in library.iterdir() if not gone.is_relative_to(folder))
    assert run_cli("prune", "-n", elsewhere, "--db", db, check=True).stdout == "would forget 0 missing tracks\n"
    assert str(gone) in rows(db)


def test_prune_through_a_link_to_the_scanned_folder(library, test_model, tmp_path):
    db = tmp_path / "cache.db"
    gone = _scanned_then_one_gone(library, test_model, db)
    link = tmp_path / "music link"
    link.symlink_to(library, target_is_directory=True)
    proc = run_cli("prune", link, "--db", db, check=True)
    assert str(gone) not in rows(db) and len(rows(db)) == len(synth.FORMATS) - 1, proc.stdout + proc.stderr


def test_prune_of_a_moved_library_forgets_its_rows(library, test_model, tmp_path):
    """A scan leaves rows under a PATH that is not there; prune PATH forgets those whose files are gone."""
    db = tmp_path / "cache.db"
    scan(library, "--db", db, "--model", test_model, check=True)
    other = tmp_path / "Other"
    other.mkdir()
    shutil.copy(next(library.rglob("*.wav")), other / "kept.wav")
    scan(other, "--db", db, "--model", test_model, check=True)
    library.rename(tmp_path / "Music moved")
    assert "forgot 0 missing tracks" in run_cli("prune", "--db", db, check=True).stdout
    before = _cache_bytes(db)
    proc = run_cli("prune", "--dry-run", library, "--db", db, check=True)
    assert proc.stdout.splitlines()[-1] == f"would forget {len(synth.FORMATS)} tracks whose files are gone"
    assert _cache_bytes(db) == before
    proc = run_cli("prune", library, "--db", db, check=True)
    assert proc.stdout.strip() == f"forgot {len(synth.FORMATS)} tracks whose files are gone", proc.stdout + proc.stderr
    assert list(rows(db)) == [str(other / "kept.wav")]


def test_a_folder_of_links_into_the_library_adds_no_track(library, test_model, tmp_path):
    """A "Favorites" folder of links, walked before the albums it points into: each file stays one
    track under its own path, analysed once, refreshed when it changes; a link to a file outside the
    library is a track under the link's path."""
    db = tmp_path / "cache.db"
    scan(library, "--db", db, "--model", test_model, check=True)
    real = next(library.rglob("*.flac"))
    favorites = library / "0 Favorites"
    favorites.mkdir()
    (favorites / "best.flac").symlink_to(real)
    outside = synth.make_track(tmp_path / "outside.wav", "calm", 12.0)
    (favorites / "outside.wav").symlink_to(outside)
    con = sqlite3.connect(db)  # the row an older moodtag made under the link's path: the file's second row
    con.execute("CREATE TEMP TABLE alias AS SELECT * FROM tracks WHERE path = ?", [str(real)])
    con.execute("UPDATE alias SET path = ?", [str(favorites / "best.flac")])
    con.execute("INSERT INTO tracks SELECT * FROM alias")
    con.commit()
    con.close()
    proc = scan(library, "--db", db, "--model", test_model, "--json", check=True)
    actions = {line["path"]: line["action"] for line in map(json.loads, proc.stdout.splitlines())}
    assert actions[str(real)] == "cached" and actions[str(favorites / "outside.wav")] == "analysed"
    assert rows(db)[str(favorites / "best.flac")]["status"] == "missing"
    assert "forgot 1 missing track" in run_cli("prune", "--db", db, check=True).stdout
    assert sorted(actions) == sorted(rows(db)) and len(actions) == len(synth.FORMATS) + 1
    listed = run_cli("query", "--db", db, "--paths", check=True).stdout.splitlines()
    assert sorted(listed) == sorted(actions)
    synth.make_track(real, "exciting", 12.0, seed=5)  # re-encoded: the real file's row learns it
    proc = scan(library, "--db", db, "--model", test_model, "--json", check=True)
    assert [line["path"] for line in map(json.loads, proc.stdout.splitlines()) if line["action"] == "analysed"] == [str(real)]
    assert rows(db)[str(real)]["size"] == real.stat().st_size and len(rows(db)) == len(synth.FORMATS) + 1


def test_a_link_given_as_the_path_is_its_files_track(library, test_model, tmp_path):
    """`scan Favorites/best.flac`, a link into the library, made a second row under the link's name and
    analysed the file again, and the next scan of the library marked that row missing while the link was
    still there. Now it is the file's one track where the cache has its row under the name a scan of the
    library gives it; else (a library reached through another link, a file on another disk, a file in a
    hidden folder) the link keeps its own name, as in a walk; untag through the link finds the row."""
    db = tmp_path / "cache.db"
    real = next(library.rglob("*.flac"))
    favorites = library / "0 Favorites"
    favorites.mkdir()
    (favorites / "best.flac").symlink_to(real)
    hidden = library / ".stash" / "h.wav"
    hidden.parent.mkdir()
    synth.make_track(hidden, "calm", 12.0)
    (favorites / "hidden.wav").symlink_to(hidden)
    through = tmp_path / "Linked"  # the library reached through a link to it
    through.symlink_to(library, target_is_directory=True)
    (tmp_path / "nas").mkdir()
    outside = synth.make_track(tmp_path / "nas" / "x.wav", "calm", 12.0)  # another disk: no row of its own
    (favorites / "outside.wav").symlink_to(outside)
    scan(library, "--db", db, "--model", test_model, check=True)  # the library's walk: outside.wav by the link's name
    before = rows(db)
    for given, name, action in ((favorites / "best.flac", real, "cached"),
                                (through / "0 Favorites" / "best.flac", through / "0 Favorites" / "best.flac", "analysed"),
                                (favorites / "outside.wav", favorites / "outside.wav", "cached")):
        proc = scan(given, "--db", db, "--model", test_model, "--json", check=True)
        assert [(line["path"], line["action"]) for line in map(json.loads, proc.stdout.splitlines())] == [
            (str(name), action)]
    proc = scan(favorites / "hidden.wav", "--db", db, "--model", test_model, "--json", check=True)
    assert json.loads(proc.stdout)["path"] == str(favorites / "hidden.wav")
    proc = scan(library, "--db", db, "--model", test_model, "--json", check=True)
    assert {line["action"] for line in map(json.loads, proc.stdout.splitlines())} == {"cached"}
    assert {path for path, row in rows(db).items() if row["status"] != "ok"} == set()
    assert set(rows(db)) == set(before) | {str(through / "0 Favorites" / "best.flac")}
    proc = run_cli("untag", favorites / "best.flac", "--db", db, check=True)
    assert rows(db)[str(real)]["tag_state"] == "untagged", proc.stdout + proc.stderr


def test_a_folder_linked_into_the_library_adds_no_track(library, test_model, tmp_path):
    """An album folder linked into a "Favorites" folder that sorts before it was walked under the link's
    name, and the album itself skipped as seen: every file became a second row, analysed again, and the
    real rows went stale. A link to a folder above it is still a loop, reported once."""
    db = tmp_path / "cache.db"
    album = library / "Artist 2" / "Album é"
    assert len(list(album.iterdir())) >= 2
    scan(library, "--db", db, "--model", test_model, check=True)
    before = rows(db)
    favorites = library / "0 Favorites"
    favorites.mkdir()
    (favorites / "Album").symlink_to(album, target_is_directory=True)
    con = sqlite3.connect(db)  # rows an older moodtag made under the link's name: each file's second row
    for track in album.iterdir():
        con.execute("CREATE TEMP TABLE alias AS SELECT * FROM tracks WHERE path = ?", [str(track)])
        con.execute("UPDATE alias SET path = ?", [str(favorites / "Album" / track.name)])
        con.execute("INSERT INTO tracks SELECT * FROM alias")
        con.execute("DROP TABLE alias")
    con.commit()
    con.close()
    (favorites / "Up").symlink_to(library, target_is_directory=True)
    proc = scan(library, "--db", db, "--model", test_model, "--json", check=True)
    actions = {line["path"]: line["action"] for line in map(json.loads, proc.stdout.splitlines())}
    assert sorted(actions) == sorted(before) and set(actions.values()) == {"cached"}
    assert [line for line in proc.stderr.splitlines() if "symlink loop" in line] == [
        f"failed: {favorites / 'Up'}: symlink loop (points to a folder already scanned), skipped"]
    assert {path for path, row in rows(db).items() if row["status"] == "missing"} == {
        str(favorites / "Album" / track.name) for track in album.iterdir()}


def test_a_new_model_version_analyses_again(library, test_model, tmp_path):
    from tagger.weights import read_spec, save_model
    from safetensors.torch import load_file

    db = tmp_path / "cache.db"
    scan(library, "--db", db, "--model", test_model, check=True)
    newer = tmp_path / "newer.safetensors"
    save_model(newer, read_spec(test_model).with_(version="0.0.2"), load_file(str(test_model)))
    proc = scan(library, "--db", db, "--model", newer, "--json", check=True)
    assert {json.loads(line)["action"] for line in proc.stdout.splitlines()} == {"analysed"}
    assert {r["model_version"] for r in rows(db).values()} == {"0.0.2"}


def test_missing_path_is_fatal_with_a_clear_message(tmp_path, test_model):
    proc = scan(tmp_path / "nope", "--db", tmp_path / "c.db", "--model", test_model)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == f"error: {tmp_path / 'nope'}: no such file or folder"


def test_a_cache_in_a_folder_that_does_not_exist_is_refused(library, tmp_path, test_model):
    """`--db ~/Muisc/moodtag.db` (a typo) made the folders and a fresh cache: a full re-analysis."""
    db = tmp_path / "no such folder" / "c.db"
    for command in (["scan", library], ["untag", library], ["stats"]):
        proc = run_cli(*command, "--db", db, "--model", test_model) if command[0] == "scan" else \
            run_cli(*command, "--db", db)
        assert proc.returncode == 1 and proc.stderr.splitlines()[-1] == (
            f"error: {db}: no folder {db.parent} for the cache (a typo? moodtag makes the cache file, not its folders)"
        ), command
    assert not db.parent.exists()


def test_malformed_options_fail_clearly(tmp_path, test_model):
    proc = scan(tmp_path, "--jobs", "two", "--model", test_model)
    assert proc.returncode == 2 and "--jobs" in proc.stderr
    proc = scan(tmp_path, "--model", tmp_path / "missing.safetensors")
    assert proc.returncode == 1 and "no such model file" in proc.stderr
    bad_db = tmp_path / "not-a-db.db"
    bad_db.write_text("this is not sqlite" * 100)
    proc = scan(tmp_path, "--db", bad_db, "--model", test_model)
    assert proc.returncode == 1 and "not an SQLite database" in proc.stderr


def _bad_library(tmp_path: Path, audio_dir: Path) -> tuple[Path, dict[str, str]]:
    """A folder of bad inputs beside good ones; returns it and {file name: expected cause}."""
    lib = tmp_path / "bad"
    lib.mkdir()
    shutil.copy(next(audio_dir.glob("*.flac")), lib / "good.flac")
    shutil.copy(next(audio_dir.glob("*.ogg")), lib / "good.ogg")
    (lib / "empty.mp3").write_bytes(b"")
    for fmt in ("mp3", "flac", "ogg", "opus"):
        data = next(audio_dir.glob(f"*_{synth.FORMATS.index(fmt)}.{fmt}")).read_bytes()
        (lib / f"truncated.{fmt}").write_bytes(data[: len(data) // 3])
    (lib / "random.ogg").write_bytes(os.urandom(50_000))
    (lib / "notes.mp3").write_text("shopping list: milk, eggs\n" * 20)
    synth.make_track(lib / "short.wav", "calm", 3.0)
    synth.encode(np.zeros((40 * synth.SAMPLE_RATE, 2), dtype=np.float32), lib / "silence.flac")
    broken = lib / "broken-tags.mp3"
    shutil.copy(next(audio_dir.glob("*.mp3")), broken)
    import mutagen.id3

    tag = mutagen.id3.ID3()
    tag.add(mutagen.id3.TIT2(encoding=3, text="Title"))
    tag.add(mutagen.id3.TPE1(encoding=3, text="Artist"))
    tag.save(broken)
    data = bytearray(broken.read_bytes())
    at = data.find(b"TIT2")
    data[at + 4:at + 8] = b"\x00\x00\x7f\x7f"  # a frame whose size runs past the end of the tag
    broken.write_bytes(bytes(data))
    # A comment frame whose ID is damaged, in the middle of the tag: mutagen's save would drop it.
    tag.delall("TIT2")
    tag.add(mutagen.id3.COMM(encoding=3, lang="eng", desc="", text="my comment"))
    tag.add(mutagen.id3.TXXX(encoding=3, desc="after it", text="kept"))
    damaged = lib / "damaged-frame.mp3"
    shutil.copy(next(audio_dir.glob("*.mp3")), damaged)
    tag.save(damaged)
    data = bytearray(damaged.read_bytes())
    at = data.find(b"COMM")
    data[at:at + 4] = b"CoMM"
    damaged.write_bytes(bytes(data))
    bad_name = os.fsencode(str(lib)) + b"/caf\xe9-latin1.wav"
    shutil.copy(next(audio_dir.glob("*.wav")), bad_name)
    os.symlink(lib, lib / "loop")
    expected = {
        "empty.mp3": "empty file",
        "truncated.mp3": "truncated: the MP3 stream breaks off at",
        "truncated.flac": "truncated: the FLAC stream breaks off at",
        "truncated.ogg": "truncated: the Ogg stream breaks off at",
        "truncated.opus": "truncated: the Ogg stream breaks off at",
        "random.ogg": "not a decodable audio file",
        "notes.mp3": "not a decodable audio file",
        "short.wav": "too short",
        "silence.flac": "silent: no clip sounds above -80 dBFS for 5% of its length",
        "loop": "symlink loop",
        "broken-tags.mp3": "tags not written: damaged ID3 tag (frame 1, TIT2, runs past the end of the tag; "
                           "the tag was not changed)",
        "damaged-frame.mp3": "tags not written: damaged ID3 tag (unreadable data after frame 2; the tag was not changed)",
    }
    return lib, expected


def test_bad_inputs_each_give_one_clear_line_and_the_scan_goes_on(tmp_path, audio_dir, test_model):
    lib, expected = _bad_library(tmp_path, audio_dir)
    broken_audio = sf.read(str(lib / "broken-tags.mp3"))[0]
    damaged_tags = {name: (lib / name).read_bytes() for name in ("broken-tags.mp3", "damaged-frame.mp3")}
    db = tmp_path / "c.db"
    proc = scan(lib, "--db", db, "--model", test_model, "--jobs", "2")
    assert proc.returncode == 0, proc.stderr
    failed_lines = [line for line in proc.stderr.splitlines() if line.startswith("failed: ")]
    for name, cause in expected.items():
        hits = [line for line in failed_lines if line.startswith(f"failed: {lib / name}: ")]
        assert len(hits) == 1, (name, proc.stderr)
        assert cause in hits[0], hits[0]
    cached = rows(db)
    for name in ("good.flac", "good.ogg"):
        assert cached[str(lib / name)]["status"] == "ok"
        assert read_mood(lib / name) is not None
    # the file with a non-UTF-8 name was analysed and is in the cache under an escaped key
    assert cached[str(lib) + "/caf\\xe9-latin1.wav"]["status"] == "ok"
    assert cached[str(lib) + "/caf\\xe9-latin1.wav"]["path_bytes"] == bad_name_bytes(lib)
    # a broken or damaged ID3 tag (saving it would lose frames): the audio is classified, the mood kept
    # in the cache, and the file left as it was
    for name, data in damaged_tags.items():
        row = cached[str(lib / name)]
        assert (row["status"], row["tag_state"], row["mood"] is not None) == ("failed", "failed", True), row
        assert (lib / name).read_bytes() == data
    assert np.array_equal(sf.read(str(lib / "broken-tags.mp3"))[0], broken_audio)
    for name in ("empty.mp3", "truncated.flac", "truncated.ogg", "truncated.opus", "random.ogg", "notes.mp3",
                 "short.wav", "silence.flac"):
        assert cached[str(lib / name)]["status"] == "failed"
    for name in ("silence.flac", "truncated.mp3", "truncated.flac", "truncated.ogg", "truncated.opus"):
        assert read_mood(lib / name) is None  # nothing (or half a track) to judge: no tag written
    # `moodtag classify` gives the same cause
    proc = run_cli("classify", lib / "truncated.ogg", lib / "truncated.opus", "--model", test_model)
    assert proc.returncode == 1
    assert sorted(proc.stderr.splitlines()) == sorted(line for line in failed_lines if "/truncated.o" in line), proc.stderr
    # a second scan does not retry the unchanged failures
    proc = scan(lib, "--db", db, "--model", test_model, "--json")
    assert {json.loads(line)["action"] for line in proc.stdout.splitlines()} <= {"cached"}


@pytest.mark.parametrize("fmt", ["flac", "mp3", "m4a"])
def test_a_download_in_progress_is_left_alone_and_tagged_once_whole(tmp_path, test_model, fmt):
    """A file still being downloaded (nine tenths of it written, the downloader's file still open)
    was analysed on what was there and tagged through a copy; the downloader wrote the rest into the
    old file, and it was lost. Its header says how long it is: it is a failed track ('truncated'),
    left as it is, and tagged by the first scan after the download is done."""
    lib, db = tmp_path / "Music", tmp_path / "c.db"
    lib.mkdir()
    source = synth.make_track(tmp_path / f"source.{fmt}", "calm", 60.0, seed=5)  # its clips all in the first 9/10
    if fmt == "m4a":  # its index first, as stores deliver it: FFmpeg decodes what there is of its audio
        source = moov_first(source, tmp_path / "moov-first.m4a")
    whole = source.read_bytes()
    path, cut = lib / f"download.{fmt}", len(whole) * 9 // 10
    with open(path, "wb") as download:
        download.write(whole[:cut])
        download.flush()
        proc = scan(lib, "--db", db, "--model", test_model, "--jobs", "1")
        assert proc.returncode == 0, proc.stderr
        assert re.search(rf"^failed: {re.escape(str(path))}: truncated: ", proc.stderr, re.M), proc.stderr
        assert path.read_bytes() == whole[:cut]
        download.write(whole[cut:])
    assert path.read_bytes() == whole  # the download was not cut off from its file
    proc = scan(lib, "--db", db, "--model", test_model, "--jobs", "1", "--json", check=True)
    assert json.loads(proc.stdout)["action"] == "analysed"
    assert read_mood(path) is not None and rows(db)[str(path)]["status"] == "ok"


def bad_name_bytes(lib: Path) -> bytes:
    return os.fsencode(str(lib)) + b"/caf\xe9-latin1.wav"


def _without_root_powers(cmd: list[str]) -> list[str]:
    """Root ignores file permissions; drop the capabilities that let it (CI runs as root)."""
    caps = "-dac_override,-dac_read_search,-fowner"
    return ["setpriv", f"--bounding-set={caps}", *cmd] if ROOT else cmd


@pytest.mark.skipif(ROOT and not shutil.which("setpriv"), reason="needs setpriv to drop root's powers")
def test_unreadable_file_read_only_file_and_locked_folder(tmp_path, audio_dir, test_model):
    """Files and folders the user may not read or write: each is reported, the rest is tagged."""
    lib = tmp_path / "perm"
    lib.mkdir()
    for name in ("ok.flac", "readonly.flac", "secret.flac"):
        shutil.copy(next(audio_dir.glob("*.flac")), lib / name)
    (lib / "locked").mkdir()
    shutil.copy(next(audio_dir.glob("*.ogg")), lib / "locked" / "inside.ogg")
    work = tmp_path / "work"
    work.mkdir()
    model = test_model
    (lib / "readonly.flac").chmod(0o444)
    (lib / "secret.flac").chmod(0o000)
    (lib / "locked").chmod(0o000)
    ro_before = (lib / "readonly.flac").read_bytes()
    env = dict(os.environ, HOME=str(work), XDG_DATA_HOME=str(work))
    proc = subprocess.run(_without_root_powers([sys.executable, "-m", "tagger", "scan", str(lib), "--db", str(work / "c.db"),
                                      "--model", str(model), "--jobs", "1"]),
                          capture_output=True, text=True, env=env, timeout=300)
    (lib / "locked").chmod(0o755)
    assert proc.returncode == 0, proc.stderr
    assert f"failed: {lib / 'secret.flac'}: permission denied" in proc.stderr
    assert f"failed: {lib / 'locked'}: cannot list the folder: permission denied" in proc.stderr
    ro_line = [line for line in proc.stderr.splitlines() if line.startswith(f"failed: {lib / 'readonly.flac'}")]
    assert len(ro_line) == 1 and "read-only" in ro_line[0]
    assert (lib / "readonly.flac").read_bytes() == ro_before
    assert read_mood(lib / "ok.flac") is not None
    cached = rows(work / "c.db")
    readonly = cached[str(lib / "readonly.flac")]      # analysed, its mood kept; the failure is its tags
    assert (readonly["status"], readonly["tag_state"], readonly["tagged"]) == ("failed", "failed", 0)
    assert readonly["mood"] is not None and readonly["error"] == "tags not written: read-only file (permission denied)"
    # the summary: the two files among the tracks found and failed, the folder apart from them
    summary = {line.rsplit(None, 1)[0].strip(): line.rsplit(None, 1)[1] for line in proc.stderr.splitlines()
               if line.startswith(" ") and len(line.split()) > 1}
    assert (summary["tracks found"], summary["failed"], summary["not reached (folders, links, PATHs)"]) == ("3", "2", "1")
    assert "3 problems (listed above)" in proc.stderr


def test_a_fifo_named_like_audio_is_counted_failed_not_unreached(tmp_path, audio_dir, test_model):
    """A FIFO named like audio gets its `failed:` line, and the summary counted it among the places the walk
    did not reach (folders, links, PATHs); it is a file that failed. A broken link and a PATH not there are
    still not reached."""
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copy(next(audio_dir.glob("*.flac")), lib / "ok.flac")
    os.mkfifo(lib / "pipe.mp3")
    (lib / "gone.ogg").symlink_to(tmp_path / "nowhere.ogg")
    proc = run_cli("scan", lib, tmp_path / "not-there", "--db", tmp_path / "c.db", "--model", test_model)
    assert proc.returncode == 1, proc.stderr  # the PATH not there
    assert f"failed: {lib / 'pipe.mp3'}: not a regular file (a FIFO), skipped" in proc.stderr
    summary = {line.rsplit(None, 1)[0].strip(): line.rsplit(None, 1)[1] for line in proc.stderr.splitlines()
               if line.startswith(" ") and len(line.split()) > 1}
    assert (summary["tracks found"], summary["failed"], summary["not reached (folders, links, PATHs)"]) == ("1", "1", "2")
    assert "3 problems (listed above)" in proc.stderr


def test_a_file_named_directly_that_is_not_music_is_one_line_and_neither_read_nor_cached(tmp_path, test_model):
    """`moodtag scan list.m3u8` decoded the playlist and cached it as a failed track, where a folder's walk
    passes it over. A file named directly whose name is none of the audio suffixes (tagger.discover) is one
    line naming it and the cause, a bad PATH (exit status 1, as a PATH not there); the rest is scanned, the
    file never decoded nor cached, and `classify` says the same. Named alone, it is the error, as a lone
    PATH not there is."""
    from tagger.scan import scan_library

    lib = tmp_path / "lib"
    lib.mkdir()
    song = synth.make_track(lib / "song.flac", "calm", 6.0, seed=1)
    playlist, notes = lib / "list.m3u8", lib / "notes"
    playlist.write_text(f"#EXTM3U\n{song}\n")
    notes.write_text("liner notes\n")
    db = tmp_path / "c.db"
    proc = scan(playlist, song, notes, "--db", db, "--model", test_model, "--jobs", "1")
    assert proc.returncode == 1, proc.stderr
    failed = [line for line in proc.stderr.splitlines() if line.startswith("failed:")]
    assert failed == [f"failed: {playlist}: not a music file moodtag reads (.m3u8)",
                      f"failed: {notes}: not a music file moodtag reads (no suffix)"], proc.stderr
    assert re.search(r"tracks found +1\b", proc.stderr) and re.search(r"analysed +1\b", proc.stderr), proc.stderr
    assert set(rows(db)) == {str(song)}
    dry = scan(playlist, song, "--db", db, "--model", test_model, "--dry-run")
    assert dry.returncode == 1 and f"failed: {playlist}: not a music file moodtag reads (.m3u8)" in dry.stderr

    alone = scan(playlist, "--db", db, "--model", test_model)
    assert alone.returncode == 1
    assert alone.stderr.strip().splitlines()[-1] == f"error: {playlist}: not a music file moodtag reads (.m3u8)"
    assert set(rows(db)) == {str(song)}
    summary = scan_library([playlist, song], db=db, model=str(test_model), no_write=True, jobs=1)
    assert (summary.missing_paths, summary.found, summary.problems) == (
        1, 1, [(str(playlist), "not a music file moodtag reads (.m3u8)")])

    classified = run_cli("classify", playlist, song, "--model", test_model)
    assert classified.returncode == 1
    assert [line for line in classified.stderr.splitlines() if line.startswith("failed:")] == [
        f"failed: {playlist}: not a music file moodtag reads (.m3u8)"], classified.stderr
    assert str(song) in classified.stdout and str(playlist) not in classified.stdout


def test_audio_named_directly_under_another_suffix_is_analysed_as_before(tmp_path, test_model):
    """Refusing named files by their suffix alone (d836363) refused real audio that moodtag analysed before: an
    audiobook's .m4b, WavPack's or Matroska's names, a file without a suffix, a link named `fav.lnk` to an
    MP3. A file whose first bytes are audio's is taken whatever its name; a playlist or a text is not."""
    lib = tmp_path / "lib"
    lib.mkdir()
    mp3 = synth.make_track(lib / "a.mp3", "calm", 6.0, seed=1)
    m4a = synth.make_track(lib / "b.m4a", "exciting", 6.0, seed=2)
    named = {"book.m4b": m4a, "noext": mp3, "x.wv": mp3, "x.mka": mp3}
    for name, source in named.items():
        (tmp_path / name).write_bytes(source.read_bytes())
    (tmp_path / "fav.lnk").symlink_to(mp3)
    (tmp_path / "list.m3u8").write_text(f"#EXTM3U\n{mp3}\n")
    (tmp_path / "win.m3u").write_text(f"\ufeff#EXTM3U\r\n{mp3}\r\n", encoding="utf-16-le")  # FF FE: no MPEG frame
    paths = [tmp_path / name for name in [*named, "fav.lnk", "win.m3u", "list.m3u8"]]
    db = tmp_path / "c.db"
    proc = scan(*paths, "--db", db, "--model", test_model, "--jobs", "1", "--no-write")
    assert proc.returncode == 1, proc.stderr  # the playlist
    assert [line for line in proc.stderr.splitlines() if line.startswith("failed:")] == [
        f"failed: {tmp_path / 'win.m3u'}: not a music file moodtag reads (.m3u)",
        f"failed: {tmp_path / 'list.m3u8'}: not a music file moodtag reads (.m3u8)"], proc.stderr
    assert set(rows(db)) == {str(tmp_path / name) for name in [*named, "fav.lnk"]}  # (no row of a.mp3 yet)
    classified = run_cli("classify", *paths[:-2], "--model", test_model)
    assert classified.returncode == 0 and classified.stderr == "", classified.stderr


def _start_scan(lib: Path, db: Path, model: Path, jobs: int = 1) -> subprocess.Popen:
    # Output to a file, not a pipe: after a SIGKILL, orphaned workers may hold a pipe open a while.
    log = open(db.parent / f"scan-{time.monotonic_ns()}.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "tagger", "scan", str(lib), "--db", str(db), "--model",
                             str(model), "--jobs", str(jobs)], stdout=log, stderr=subprocess.STDOUT, text=True)
    proc.log = log
    return proc


def _finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    proc.wait(timeout=timeout)
    proc.log.seek(0)
    text = proc.log.read()
    proc.log.close()
    return text


def _wait_for_rows(db: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "scan finished before it could be interrupted"
        if db.exists():
            try:
                if len(rows(db)) >= n:
                    return
            except sqlite3.DatabaseError:
                pass
        time.sleep(0.05)
    raise AssertionError("scan made no progress")


@pytest.fixture
def big_library(tmp_path, audio_dir) -> Path:
    lib = tmp_path / "big"
    lib.mkdir()
    sources = [p for p in sorted(audio_dir.iterdir()) if p.suffix in (".flac", ".wav", ".ogg")]
    for i in range(24):
        src = sources[i % len(sources)]
        shutil.copy(src, lib / f"{i:02d}{src.suffix}")
    return lib


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_scan_keeps_finished_results_and_resumes(big_library, test_model, tmp_path, sig):
    db = tmp_path / "c.db"
    proc = _start_scan(big_library, db, test_model, jobs=2)
    _wait_for_rows(db, 3, proc)
    proc.send_signal(sig)
    _finish(proc, timeout=60)
    assert proc.returncode == (130 if sig == signal.SIGINT else -signal.SIGKILL)
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    done = rows(db)
    assert 3 <= len(done) < 24
    for p in big_library.iterdir():
        values = read_mood(p)  # every file still parses; tagged ones hold the cached mood
        if str(p) in done and done[str(p)]["tagged"]:
            assert values is not None and values.mood == done[str(p)]["mood"]
            assert (p.stat().st_size, p.stat().st_mtime_ns) == (done[str(p)]["size"], done[str(p)]["mtime_ns"])
    resumed = scan(big_library, "--db", db, "--model", test_model, "--json", check=True)
    actions = [json.loads(line)["action"] for line in resumed.stdout.splitlines()]
    assert len(actions) == 24
    assert actions.count("cached") >= len([r for r in done.values() if r["tagged"]])
    assert all(read_mood(p) is not None for p in big_library.iterdir())


def test_two_scans_at_once_on_one_database(big_library, test_model, tmp_path):
    db = tmp_path / "c.db"
    a = _start_scan(big_library, db, test_model)
    b = _start_scan(big_library, db, test_model)
    out_a, out_b = _finish(a), _finish(b)
    assert a.returncode == 0, out_a
    assert b.returncode == 0, out_b
    assert "waiting for another moodtag command that writes" in out_a + out_b
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    assert len(rows(db)) == 24
    assert all(r["status"] == "ok" for r in rows(db).values())


def test_scan_files_takes_exactly_its_files_and_a_missing_one_is_a_problem(tmp_path):
    """scan_files (the beets plugin's entry): only the files named, whatever else their folder holds; one
    that is gone is a problem line and the rest go through; so does scan_library, which counts it as a
    missing PATH, and refuses a list of PATHs none of which exists."""
    from tagger.errors import MoodtagError
    from tagger.scan import scan_files, scan_library

    lib = tmp_path / "lib"
    lib.mkdir()
    wanted = synth.make_track(lib / "wanted.wav", "calm", 12.0, seed=2)
    synth.make_track(lib / "other.wav", "calm", 12.0, seed=3)
    gone = lib / "gone.flac"
    events = []
    summary = scan_files([wanted, gone], db=tmp_path / "c.db", jobs=1, no_write=True, on_event=events.append)
    assert (summary.found, summary.analysed, summary.failed) == (1, 1, 0)
    assert summary.problems == [(str(gone), "no such file or folder")]
    assert [e.path for e in events if e.kind == "problem"] == [gone]
    assert set(rows(tmp_path / "c.db")) == {str(wanted)}
    assert scan_files([], db=tmp_path / "c.db").found == 0
    summary = scan_library([wanted, gone], db=tmp_path / "c.db", no_write=True)
    assert (summary.missing_paths, summary.cached, summary.problems) == (1, 1, [(str(gone), "no such file or folder")])
    with pytest.raises(MoodtagError, match="gone.flac: no such file or folder"):
        scan_library([gone], db=tmp_path / "c.db")


def test_names_that_look_like_rich_codes_come_out_as_they_are(tmp_path, audio_dir):
    """A file name holding `:smile:` or `[red]` is text, not an emoji code or markup: in the --json lines
    and the failure lines, which go through rich (it renders both kinds of code by default); the piped
    query listing, which does not, is checked too."""
    lib = tmp_path / "Music :thumbs_up:"
    lib.mkdir()
    good = lib / "01 :smile: [red]x.ogg"
    shutil.copy(next(audio_dir.glob("*.ogg")), good)
    bad = lib / "02 :warning: broken.flac"
    bad.write_bytes(b"fLaC" + b"\x00" * 64)
    db = tmp_path / "cache.db"
    proc = scan(lib, "--db", db, "--json")
    lines = {json.loads(line)["path"]: json.loads(line) for line in proc.stdout.splitlines()}
    assert set(lines) == {str(good), str(bad)}
    assert lines[str(good)]["action"] == "analysed" and lines[str(bad)]["error"]
    assert f"failed: {bad}: " in proc.stderr
    table = run_cli("query", "--db", db, env={"COLUMNS": "400"}, check=True)
    assert ":smile:" in table.stdout and "[red]x" in table.stdout
    assert "\U0001f604" not in table.stdout + proc.stdout + proc.stderr  # 😄


def test_json_into_a_pipe_closed_early_ends_quietly_and_keeps_the_results(big_library, tmp_path):
    """`scan --json | head -1`: the reader goes away after a line, the next write fails (EPIPE), and the
    scan ends with click's status for a closed output (1, as `query` does), no traceback: the worker pool
    is shut down quietly (loky's manager thread once failed on a work id still queued, 2 runs in 8), and
    every result committed before is in the cache. Several runs: the failure was a race."""
    for attempt in range(10):
        db = tmp_path / f"c{attempt}.db"
        proc = subprocess.Popen([sys.executable, "-m", "tagger", "scan", str(big_library), "--db", str(db), "--json",
                                 "--no-write", "--jobs", "4", "--oversubscribe"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        first = json.loads(proc.stdout.readline())
        proc.stdout.close()
        stderr = proc.stderr.read().decode(errors="replace")
        assert proc.wait(timeout=120) == 1, stderr
        assert stderr == "", f"run {attempt + 1}: {stderr}"
        done = rows(db)
        assert 1 <= len(done) < 24
        assert done[first["path"]]["mood"] == first["mood"] and done[first["path"]]["status"] == "ok"


def test_the_worker_pool_lets_its_threads_end_before_the_scan_goes_on():
    """The cause of a rare line on stderr after `scan --json | head -1` ('resource_tracker: There appear
    to be 1 leaked semlock objects', 3 runs in ~110 under load): the call queue's feeder thread, a
    daemon, unlinks the queue's semaphore as it ends and only then tells loky's resource tracker; a
    process that exits in between leaves the tracker to report a leak. The pool waits for the thread."""
    from tagger.pool import _pool

    with _pool(2) as executor:
        assert executor.submit(os.getpid).result(timeout=60) != os.getpid()
        threads = [executor._executor_manager_thread, executor._call_queue._thread]
        assert all(thread.is_alive() for thread in threads)
    assert [thread.name for thread in threads if thread.is_alive()] == []


def _actions(proc: subprocess.CompletedProcess) -> dict[str, str]:
    return {line["path"]: line["action"] for line in map(json.loads, proc.stdout.splitlines())}


def test_files_back_after_an_unmount_are_current_again(library, test_model, tmp_path):
    """A folder gone for one scan (a disk unmounted) and back as it was: its rows, marked missing, hold
    the results for exactly these files, and take back the status they had (ok, or failed) instead of
    the files being analysed again."""
    db = tmp_path / "cache.db"
    disk = library / "Artist 1"
    (disk / "broken.flac").write_bytes(b"fLaC" + b"\x00" * 64)
    scan(library, "--db", db, "--model", test_model, check=True)
    before = rows(db)
    assert before[str(disk / "broken.flac")]["status"] == "failed"
    disk.rename(tmp_path / "away")
    scan(library, "--db", db, "--model", test_model, check=True)
    on_disk = {path for path, row in rows(db).items() if Path(path).is_relative_to(disk)}
    assert {rows(db)[path]["status"] for path in on_disk} == {"missing"} and len(on_disk) > 1
    (tmp_path / "away").rename(disk)
    proc = scan(library, "--db", db, "--model", test_model, "--json", check=True)
    assert set(_actions(proc).values()) == {"cached"}, proc.stdout
    failed = [line for line in map(json.loads, proc.stdout.splitlines()) if line["error"]]
    assert [line["path"] for line in failed] == [str(disk / "broken.flac")]
    assert rows(db) == before


def test_a_moved_library_or_album_keeps_its_results_and_a_copy_is_analysed(library, test_model, tmp_path):
    """`mv Music Music2`, an album renamed: every file is what its row describes (same size, mtime,
    name, model) under another path; the rows move with the files (result, tag state and all) instead
    of each file being analysed again beside an old row still counted as present."""
    db = tmp_path / "cache.db"
    scan(library, "--db", db, "--model", test_model, check=True)
    untagged = sorted(library.rglob("*.flac"))[0]
    run_cli("untag", untagged, "--db", db, check=True)
    before = rows(db)
    moved = tmp_path / "Music2"
    library.rename(moved)
    to_new = {path: str(moved / Path(path).relative_to(library)) for path in before}

    cache_bytes = _cache_bytes(db)
    dry = scan(moved, "--db", db, "--model", test_model, "--dry-run", "--json", check=True)
    assert set(_actions(dry).values()) == {"cached"} and _cache_bytes(db) == cache_bytes

    proc = scan(moved, "--db", db, "--model", test_model, "--json", check=True)
    assert set(_actions(proc).values()) == {"cached"}, proc.stdout
    assert {line["path"]: line["tags"] for line in map(json.loads, proc.stdout.splitlines())}[
        to_new[str(untagged)]] == "untagged"
    assert rows(db) == {to_new[path]: dict(row, path=to_new[path]) for path, row in before.items()}
    assert "0 missing" in run_cli("stats", "--db", db, check=True).stdout

    album = moved / "Artist 2"
    album.rename(moved / "Artist 2 (2019)")
    assert set(_actions(scan(moved, "--db", db, "--model", test_model, "--json", check=True)).values()) == {"cached"}
    assert len(rows(db)) == len(before) and not any(Path(p).is_relative_to(album) for p in rows(db))

    shutil.copytree(moved / "Artist 0", moved / "Artist 0 copy", copy_function=shutil.copy2)  # same mtimes
    actions = _actions(scan(moved, "--db", db, "--model", test_model, "--json", check=True))
    assert {Path(p).relative_to(moved).parts[0] for p, a in actions.items() if a == "analysed"} == {"Artist 0 copy"}
    assert all(rows(db)[p]["status"] == "ok" for p in actions)


def test_a_moved_row_is_never_guessed_nor_taken_from_an_unmounted_disk(test_model, tmp_path):
    """Two albums' '01 Intro.wav' with the same size and mtime, both albums renamed: each file took the
    first row in path order, and was tagged with the other track's mood; now a tie is analysed. A copy of
    a disk's album scanned while the disk is unmounted (its mount point there, empty) took the disk's
    rows, so the disk's files, back, were analysed again and an untagged one tagged again."""
    from tagger import synth

    lib = tmp_path / "lib"
    for album, mood, seed in (("Alpha", "exciting", 1), ("Beta", "calm", 2)):
        (lib / album).mkdir(parents=True)
        path = synth.encode(synth.render(mood, 12, seed=seed), lib / album / "01 Intro.wav")
        os.utime(path, ns=(1_700_000_000 * 10**9, 1_700_000_000 * 10**9))
    db = tmp_path / "c.db"
    scan(lib, "--db", db, "--model", test_model, "--no-write", check=True)
    moods = {Path(p).parent.name: row["mood"] for p, row in rows(db).items()}
    (lib / "Alpha").rename(lib / "Zeta (remaster)")
    (lib / "Beta").rename(lib / "Ceta (remaster)")
    actions = _actions(scan(lib, "--db", db, "--model", test_model, "--no-write", "--json", check=True))
    assert set(actions.values()) == {"analysed"}
    after = {Path(p).parent.name: row["mood"] for p, row in rows(db).items() if row["status"] == "ok"}
    assert (after["Zeta (remaster)"], after["Ceta (remaster)"]) == (moods["Alpha"], moods["Beta"])

    disk, home = tmp_path / "mnt" / "disk", tmp_path / "home"
    (disk / "Music" / "Album").mkdir(parents=True)
    synth.make_track(disk / "Music" / "Album" / "01.flac", "calm", 8.0, seed=3)
    db2 = tmp_path / "d.db"
    scan(disk, "--db", db2, "--model", test_model, check=True)
    run_cli("untag", disk / "Music" / "Album" / "01.flac", "--db", db2, check=True)
    shutil.copytree(disk / "Music", home / "Music", copy_function=shutil.copy2)
    (disk / "Music").rename(tmp_path / "away")   # unmounted: the mount point stays, empty
    assert set(_actions(scan(home, "--db", db2, "--model", test_model, "--json", check=True)).values()) == {"analysed"}
    (tmp_path / "away").rename(disk / "Music")
    proc = scan(disk, "--db", db2, "--model", test_model, "--json", check=True)
    assert [(a["action"], a["tags"]) for a in map(json.loads, proc.stdout.splitlines())] == [("cached", "untagged")]


def test_looking_for_moved_rows_is_one_indexed_query_per_batch(tmp_path):
    """A new library of 100,000 files is compared with the cache 500 at a time: for the files without a
    row, one query by the (size, mtime_ns) index finds the rows of the same model, size, mtime and name."""
    from tagger.cache import LOOKUP_BATCH, Cache
    from tagger.records import TrackRef

    with Cache.open(tmp_path / "c.db") as cache:
        cache.conn.executemany(
            "INSERT INTO tracks (path, size, mtime_ns, status, model_name, model_version) VALUES (?, ?, ?, 'ok', ?, ?)",
            [(f"/old/{i}.flac", 1000 + i, 7, "m", "1" if i % 2 else "2") for i in range(2 * LOOKUP_BATCH)])
        refs = [TrackRef(Path(f"/new/{i}.flac"), 1000 + i, 7) for i in range(LOOKUP_BATCH)]
        seen: list[str] = []
        cache.conn.set_trace_callback(seen.append)
        like = cache.rows_like(refs, model_name="m", model_version="1")
        cache.conn.set_trace_callback(None)
        assert len(seen) == 1
        plan = " ".join(row[-1] for row in cache.conn.execute("EXPLAIN QUERY PLAN " + seen[0]))
        assert "USING INDEX idx_tracks_size_mtime" in plan, plan
    assert sorted(row.path for rows_ in like.values() for row in rows_) == sorted(
        f"/old/{i}.flac" for i in range(1, LOOKUP_BATCH, 2))


def test_a_row_whose_scores_are_not_json_is_analysed_again(library, test_model, tmp_path):
    """A `scores` cell edited by hand (sqlite-utils, datasette) stopped the scan that writes the cached
    moods with a JSONDecodeError traceback; that one track is now not current: analysed again, its row
    replaced, and the scan goes on."""
    db = tmp_path / "cache.db"
    scan(library, "--db", db, "--model", test_model, "--no-write", check=True)
    bad = sorted(rows(db))[:2]
    con = sqlite3.connect(db)
    with con:
        con.execute("UPDATE tracks SET scores = '{bad' WHERE path = ?", [bad[0]])
        con.execute("UPDATE tracks SET scores = '[0.1, 0.9]' WHERE path = ?", [bad[1]])
    con.close()
    proc = scan(library, "--db", db, "--model", test_model, "--json", check=True)
    assert "Traceback" not in proc.stderr
    lines = {line["path"]: line for line in map(json.loads, proc.stdout.splitlines())}
    assert {p: (o["action"], o["tags"]) for p, o in lines.items()} == {
        p: ("analysed" if p in bad else "cached", "written") for p in rows(db)}
    for path in bad:
        assert set(json.loads(rows(db)[path]["scores"])) == {"calm", "exciting"}
        assert read_mood(Path(path)).mood == rows(db)[path]["mood"]


def test_a_files_only_path_that_cannot_be_looked_at_is_a_problem_not_an_exception(tmp_path, test_model):
    """scan_files(files_only=True) (beets' items) asked Path.is_dir of each path, which raises for
    EACCES, ENAMETOOLONG or EIO: `beet moodtag` ended in a traceback where a share's folder was not
    readable. Such a path is one problem, as the walk names it, and the other files go through."""
    from tagger.scan import scan_files

    good = synth.make_track(tmp_path / "ok.flac", "calm", 6.0)
    too_long = tmp_path / ("x" * 300) / "a.flac"
    summary = scan_files([good, too_long], db=tmp_path / "c.db", model=str(test_model), files_only=True,
                         no_write=True, jobs=1)
    assert summary.analysed == 1
    assert summary.problems == [(str(too_long), "file name too long")]  # lower-case, as moodtag's own causes


# --- another program rewrites a file at the moment it is tagged ---------------------------------------

_ANOTHER_PROGRAM = r"""
import shutil, sys
import tagger.tags as tags
when, other = sys.argv[1], sys.argv[2]
real = tags.write_mood
def write_mood(path, *args, **kwargs):
    if when == "before":  # after the scan's check that the file is as analysed, before the write opens it
        shutil.copyfile(other, path)
    changed = real(path, *args, **kwargs)
    if when == "after":  # the write finished, its row not told yet
        shutil.copyfile(other, path)
    return changed
tags.write_mood = write_mood
sys.argv = ["moodtag", "scan", *sys.argv[3:]]
from tagger.cli import main
main()
"""


@pytest.mark.parametrize("when", ["before", "after"])
def test_audio_another_program_writes_while_a_file_is_tagged_is_analysed_again(tmp_path, audio_dir, test_model,
                                                                                when):
    """Another program rewrites a file (other audio, same inode) just before moodtag's tag write opens it,
    or just after the write: the mood of the audio analysed must not go into the other audio's file
    ("before": one line, nothing written), and the row must not take the new file for the one analysed
    (its size and mtime are those of the file moodtag wrote, not a new stat of the path), so the next
    scan analyses it. Before, the old audio's mood was written into the new file, or the row took the new
    file's size and mtime, and later scans said 'cached' with the wrong mood."""
    lib = tmp_path / "lib"
    lib.mkdir()
    track = lib / "track.flac"
    shutil.copy(next(p for p in sorted(audio_dir.iterdir()) if p.suffix == ".flac"), track)
    other = synth.make_track(tmp_path / "other.flac", "exciting", 20.0, seed=11)
    db = tmp_path / "c.db"
    first = subprocess.run([sys.executable, "-c", _ANOTHER_PROGRAM, when, other, lib, "--db", db,
                            "--model", test_model, "-j1"], capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert track.read_bytes()[-4096:] == other.read_bytes()[-4096:]   # the other program's audio is there
    if when == "before":
        assert f"{track}: tags not written: the file changed while it was being tagged; not written" \
            in first.stderr, first.stderr
        assert track.read_bytes() == other.read_bytes()   # nothing written into it
    again = scan(lib, "--db", db, "--model", test_model, "--json", check=True)
    assert _actions(again) == {str(track): "analysed"}, again.stdout
