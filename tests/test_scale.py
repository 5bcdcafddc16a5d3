"""Large libraries and slow storage: batched cache lookups, streamed listings, reading ahead.

Speed itself is measured by benchmarks/large_library.py and benchmarks/slow_storage.py, not here."""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from tagger import synth
from tagger.cache import LOOKUP_BATCH, TAGGED, Cache
from tagger.query import LISTING_COLUMNS
from tagger.plain_table import SAMPLE_ROWS, table_lines
from tagger.prefetch import ReadAhead, read_into_page_cache
from tagger.records import TrackRef, TrackResult
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def tiny_track(tmp_path_factory) -> Path:
    """A real 5.5 s Opus file of 12 KB, long enough for one clip of the default model."""
    path = tmp_path_factory.mktemp("tiny") / "tiny.opus"
    return synth.encode(synth.render("exciting", 5.5, seed=3), path, bitrate=16_000)


@pytest.fixture(scope="module")
def filled(tmp_path_factory, tiny_track):
    """A library of more files than one lookup batch holds, and a cache whose rows are all fresh: one
    file scanned for real, its row copied (through Cache.record) to every other file, as a scan would."""
    root = tmp_path_factory.mktemp("big")
    lib, db = root / "lib", root / "cache.db"
    count = 2 * LOOKUP_BATCH + 201
    paths = [lib / f"artist {i // 100:02d}" / f"{i:04d}.opus" for i in range(count)]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tiny_track, path)
    run_cli("scan", paths[0], "--db", db, check=True)
    with Cache.open(db) as cache:
        row = cache.get(paths[0])
        assert row["status"] == "ok" and row["tagged"], row
        result = TrackResult(path=paths[0], mood=row["mood"], confidence=row["confidence"],
                             scores=json.loads(row["scores"]), duration=row["duration"],
                             model_name=row["model_name"], model_version=row["model_version"])
        for path in paths[1:]:
            shutil.copyfile(paths[0], path)  # tagged like the first
            cache.record(replace(result, path=path), TrackRef.from_path(path), info={"format": "opus"}, tag_state=TAGGED)
    return {"lib": lib, "db": db, "paths": paths}


def statuses(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT path, status FROM tracks"))


def test_a_rescan_finds_fresh_rows_vanished_files_and_new_ones_across_lookup_batches(filled, tiny_track, tmp_path):
    lib, paths = filled["lib"], filled["paths"]
    db = tmp_path / "cache.db"
    shutil.copyfile(filled["db"], db)
    gone = [paths[0], paths[LOOKUP_BATCH + 7], paths[-1]]  # in the first, second and last batch
    saved = {p: p.read_bytes() for p in gone}
    new = lib / "artist 05" / "new.opus"
    try:
        for path in gone:
            path.unlink()
        shutil.copyfile(tiny_track, new)
        proc = run_cli("scan", lib, "--db", db, "--json", check=True)
    finally:
        new.unlink(missing_ok=True)
        for path, data in saved.items():
            path.write_bytes(data)
    actions = {}
    for line in proc.stdout.splitlines():
        data = json.loads(line)
        actions[data["path"]] = data["action"]
    assert actions.pop(str(new)) == "analysed"
    assert set(actions.values()) == {"cached"} and len(actions) == len(paths) - len(gone)
    status = statuses(db)
    assert [p for p, s in status.items() if s == "missing"] == sorted(map(str, gone))
    assert status[str(new)] == "ok"


def test_query_lists_every_row_as_plain_text_with_whole_paths(filled):
    """Piped, across lookup batches: a TSV header, then one line per row with its whole path."""
    proc = run_cli("query", "--db", filled["db"], check=True, env={"COLUMNS": "60"})
    lines = proc.stdout.splitlines()
    assert lines[0].split("\t") == list(LISTING_COLUMNS)
    assert len(lines) == 1 + len(filled["paths"])
    assert sorted(line.split("\t")[0] for line in lines[1:]) == sorted(map(str, filled["paths"]))


def test_table_lines_take_widths_from_the_first_rows_and_cut_later_ones():
    rows = [("a", "1", "/x")] + [("bb", "22", "/y")] * (SAMPLE_ROWS - 1) + [("c" * 30, "3", "/a/very/long/path")]
    lines = list(table_lines(("name", "n", "path"), rows, max_widths=(None, None, None), right=frozenset({1})))
    assert lines[0] == "name   n  path"
    assert lines[1] == "a      1  /x"
    assert lines[-1] == "ccc…   3  /a/very/long/path"
    capped = list(table_lines(("name", "path"), [("é" * 10 + "日本", "/p")], max_widths=(6, None)))
    assert capped == ["name    path", "ééééé…  /p"]
    assert list(table_lines(("a", "b"), [])) == ["a  b"]


def _touch_atime_old(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_mtime_ns - 10**11, st.st_mtime_ns))


def _was_read(path: Path) -> bool:
    st = path.stat()
    return st.st_atime_ns > st.st_mtime_ns


@pytest.fixture
def files_with_old_atimes(tmp_path) -> list[Path]:
    paths = []
    for i in range(6):
        path = tmp_path / f"{i}.bin"
        path.write_bytes(os.urandom(3 << 20))
        _touch_atime_old(path)
        paths.append(path)
    read_into_page_cache(paths[0])
    if not _was_read(paths[0]):
        pytest.skip("this file system does not record reads in atime (noatime)")
    _touch_atime_old(paths[0])
    return paths


def _wait_for(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_read_ahead_reads_the_next_files_in_order_and_no_further_than_asked(files_with_old_atimes):
    paths = files_with_old_atimes
    with ReadAhead(paths, tracks=2, threads=2) as reader:
        assert _wait_for(lambda: all(_was_read(p) for p in paths[:2]))
        time.sleep(0.3)
        assert not any(_was_read(p) for p in paths[2:])
        reader.done()
        assert _wait_for(lambda: _was_read(paths[2]))
        time.sleep(0.3)
        assert not any(_was_read(p) for p in paths[3:])
        reader.done(3)
        assert _wait_for(lambda: all(_was_read(p) for p in paths))


def test_read_ahead_never_blocks_on_a_fifo_or_fails_on_a_missing_file(tmp_path):
    fifo = tmp_path / "pipe.mp3"
    os.mkfifo(fifo)
    assert read_into_page_cache(fifo) == 0
    assert read_into_page_cache(tmp_path / "gone.mp3") == 0
    reader = ReadAhead([fifo, tmp_path / "gone.mp3"], tracks=4)
    closed = threading.Event()
    threading.Thread(target=lambda: (reader.close(), closed.set()), daemon=True).start()
    assert closed.wait(10)


def test_of_a_large_file_only_the_parts_around_its_clips_are_read_ahead(tmp_path):
    """A 3-minute WAV (32 MB): PCM, so the bytes each clip's decoding reads are known exactly."""
    from tagger.audio import clip_offsets
    from tagger.prefetch import WHOLE_FILE_BYTES, planned_ranges
    from tagger.weights import read_spec, resolve_model

    plan = read_spec(resolve_model(None)).clips
    path = synth.encode(synth.render("calm", 180.0, seed=1), tmp_path / "long.wav")
    size = path.stat().st_size
    assert size > WHOLE_FILE_BYTES
    ranges = planned_ranges(path, size, plan)
    read = sum(length for _, length in ranges)
    assert read < size / 2
    bytes_per_second, header = synth.SAMPLE_RATE * 2 * 2, size - 180 * synth.SAMPLE_RATE * 4
    for start in clip_offsets(180.0, plan):
        first, last = header + int(start * bytes_per_second), header + int((start + plan.seconds) * bytes_per_second)
        assert any(offset <= first and last <= offset + length for offset, length in ranges), (start, ranges)
    assert ranges[0][0] == 0 and ranges[-1][0] + ranges[-1][1] == size  # head and tail
    assert read_into_page_cache(path, plan) == read
    small = synth.encode(synth.render("calm", 30.0, seed=1), tmp_path / "short.ogg")
    assert planned_ranges(small, small.stat().st_size, plan) == [(0, small.stat().st_size)]


def test_read_ahead_reads_the_same_bytes_where_sendfile_cannot(tmp_path, monkeypatch):
    """A file system without sendfile from its files (EINVAL): the planned ranges are read and dropped
    in Python instead, every byte of them."""
    import errno

    from tagger.prefetch import planned_ranges
    from tagger.weights import read_spec, resolve_model

    plan = read_spec(resolve_model(None)).clips
    path = synth.encode(synth.render("calm", 180.0, seed=2), tmp_path / "long.wav")
    planned = sum(length for _, length in planned_ranges(path, path.stat().st_size, plan))
    assert read_into_page_cache(path, plan) == planned

    def no_sendfile(*args):
        raise OSError(errno.EINVAL, "sendfile not supported here")

    monkeypatch.setattr(os, "sendfile", no_sendfile)
    assert read_into_page_cache(path, plan) == planned
    assert read_into_page_cache(path) == path.stat().st_size


@pytest.mark.parametrize("command", ["query", "stats", "playlists", "playlist", "rescan"])
def test_reading_the_cache_imports_neither_numpy_nor_sqlite_utils(filled, tmp_path, command):
    """Start-up is what every command pays whatever the library's size: sqlite-utils (with numpy and click)
    is for writing the schema and rows, numpy for analysing, pydantic for Typer's coercion of values
    moodtag coerces itself (tagger/commands/coercion.py); a command that only reads the cache, and a
    rescan that finds every file fresh, import none of them."""
    db = tmp_path / "cache.db"
    shutil.copyfile(filled["db"], db)
    args = {"query": ["query", "--limit", "0"], "stats": ["stats"], "playlists": ["playlists", "--out-dir", tmp_path],
            "playlist": ["playlist", "exciting", "--order", "shuffle"], "rescan": ["scan", filled["lib"]]}[command]
    if command == "rescan":  # other tests rewrite some files (new mtimes): bring every row up to date first
        run_cli("scan", filled["lib"], "--db", db, check=True)
    proc = run_cli(*args, "--db", db, env={"PYTHONPROFILEIMPORTTIME": "1"}, check=True)
    imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "tagger.cli" in imported and "sqlite3" in imported
    assert not {name for name in imported if name.split(".")[0] in ("numpy", "sqlite_utils", "click", "pydantic")}
    if command == "rescan":
        text = " ".join(proc.stderr.split())
        assert f"tracks found {len(filled['paths'])}" in text and "analysed 0" in text, text[-2000:]


def _playlist_paths(playlist: Path, base: Path) -> list[Path]:
    """The files a written M3U or XSPF playlist names, in its order (relative entries resolved against `base`)."""
    from urllib.parse import unquote, urlparse
    from xml.etree import ElementTree

    if playlist.suffix == ".xspf":
        ns = {"x": "http://xspf.org/ns/0/"}
        uris = [e.text for e in ElementTree.parse(playlist).getroot().findall("x:trackList/x:track/x:location", ns)]
        return [Path(unquote(urlparse(uri).path)) if uri.startswith("file://")
                else Path(os.path.normpath(base / unquote(uri))) for uri in uris]
    lines = playlist.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "#EXTM3U" and lines[1].startswith("# moodtag: ") and len(lines) % 2 == 0
    return [Path(os.path.normpath(base / line)) for line in lines[3::2]]


@pytest.mark.parametrize("options, suffix", [
    ([], "m3u8"), (["--format", "xspf"], "xspf"), (["--for", "mpd", "--music-dir", "LIB"], "m3u"),
    (["--order", "path", "--absolute"], "m3u8"), (["--order", "shuffle", "--seed", "5"], "m3u8")])
def test_playlists_of_many_chunks_leave_out_files_gone_since_the_scan(filled, tmp_path, options, suffix):
    """Playlists longer than one chunk of text (CHUNK_LINES) hold
    every cached track once, in order, except the files deleted since the scan and a link whose target
    is gone; a link to a file that is there stays."""
    from tagger.playlists import CHUNK_LINES

    lib, paths = filled["lib"], filled["paths"]
    assert len(paths) > CHUNK_LINES // 2 + 100
    db = tmp_path / "cache.db"
    shutil.copyfile(filled["db"], db)
    gone = [paths[0], paths[CHUNK_LINES // 2 + 3], paths[-1]]
    dangling, linked = paths[CHUNK_LINES // 4 + 1], paths[7]
    saved = {p: p.read_bytes() for p in [*gone, dangling, linked]}
    out = tmp_path / "playlists"
    try:
        for path in [*gone, dangling, linked]:
            path.unlink()
        dangling.symlink_to(tmp_path / "nothing.opus")
        linked.symlink_to(paths[8])
        args = [str(lib) if o == "LIB" else o for o in options]
        proc = run_cli("playlists", "--out-dir", out, *args, "--db", db, check=True)
    finally:
        for path, data in saved.items():
            path.unlink(missing_ok=True)
            path.write_bytes(data)
    mood = json.loads(run_cli("query", "--db", db, "--json", "--limit", "1", check=True).stdout)["mood"]
    listed = _playlist_paths(out / f"{mood}.{suffix}", lib if "LIB" in options else out)
    kept = [p for p in paths if p not in gone and p != dangling]
    if "shuffle" in options:
        assert sorted(listed) == sorted(kept) and listed != sorted(listed)
    else:
        assert listed == kept  # one confidence for all: in path order either way
    assert "4 cached" in " ".join(proc.stderr.split()) and "no longer on disk left out" in proc.stderr


@pytest.mark.parametrize("removed", [0, 4], ids=["dense row ids", "sparse row ids"])
def test_a_shuffled_playlist_is_the_path_ordered_rows_shuffled_by_the_seed(filled, tmp_path, removed):
    """`--order shuffle --seed S` is random.Random(S).shuffle of the playlist's files in path order, whatever
    way the rows are read (moodtag 0.x wrote that order, and the same seed must keep giving it): over
    more rows than one chunk, with row ids spread far apart (rows removed: 4 of every 5), with --limit."""
    import random

    db = tmp_path / "cache.db"
    shutil.copyfile(filled["db"], db)
    paths = [str(p) for p in filled["paths"]]
    if removed:
        with sqlite3.connect(db) as conn:  # the row ids left: 1, 6, 11, ...: too far apart for an array of places
            conn.execute("DELETE FROM tracks WHERE rowid % 5 != 1")
            paths = [p for (p,) in conn.execute("SELECT path FROM tracks")]
            assert conn.execute("SELECT max(rowid) - min(rowid) FROM tracks").fetchone()[0] >= 4 * len(paths) - 4
    mood = json.loads(run_cli("query", "--db", db, "--json", "--limit", "1", check=True).stdout)["mood"]
    for seed, limit in ((5, None), (123456789, None), (5, 7)):
        expected = sorted(paths)
        random.Random(seed).shuffle(expected)
        args = ["--limit", str(limit)] if limit else []
        out = run_cli("playlist", mood, "--order", "shuffle", "--seed", str(seed), "--absolute", *args, "--db", db,
                      check=True).stdout.splitlines()
        assert out[0] == "#EXTM3U" and out[1].startswith("# moodtag: ") and out[3::2] == expected[:limit]
