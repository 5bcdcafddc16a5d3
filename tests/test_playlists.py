"""`moodtag playlist` / `playlists`: read every written playlist back with an independent parser and check
that each entry resolves to an existing file whose cached mood is the one asked for."""
from __future__ import annotations

import os
import shutil
import sqlite3
import stat
from pathlib import Path
from urllib.parse import unquote_to_bytes, urlsplit
from xml.etree import ElementTree as ET

import pytest
from typer.testing import CliRunner

from tagger.cache import Cache, path_key
from tagger.cli import app
from tagger.errors import MoodtagError
from tagger.records import TrackRef, TrackResult
from tagger.weights import read_spec, resolve_model

XSPF = "{http://xspf.org/ns/0/}"

# name, mood, P(exciting), tags (artist, title, album) or None, duration
TRACKS = [
    ("Calm Song.wav", "calm", 0.05, ("Ann Artist", "Quiet Night", "Slow Album"), 241.4),
    ("Ünïcødé café ☕.flac", "calm", 0.20, ("Björk", "Jóga", "Homogenic"), 305.0),
    ("#hash first.mp3", "calm", 0.30, None, 62.0),
    ("sub dir/#2 deep one.ogg", "calm", 0.10, ("Zed", "Deep", None), 180.2),
    ("sub dir/loud one.opus", "exciting", 0.95, ("Zed", "Loud", "Fast Album"), 200.0),
    ("Party [live].m4a", "exciting", 0.80, ("Crowd", "Party", "Live"), 150.0),
    ("odd\nline.wav", "calm", 0.15, None, 10.0),          # cannot be written into M3U
    ("gone.mp3", "calm", 0.01, None, 100.0),               # deleted after caching
]


@pytest.fixture(scope="module")
def model(request) -> tuple[list[str], object]:
    """(--model args, spec): the shipped default model if it exists, else the small test model."""
    try:
        return [], read_spec(resolve_model(None))
    except MoodtagError:
        path = request.getfixturevalue("test_model")
        return ["--model", str(path)], read_spec(path)


def _result(path: Path, mood: str, p_exciting: float, spec, *, duration=None, version=None) -> TrackResult:
    scores = {"calm": 1 - p_exciting, "exciting": p_exciting}
    return TrackResult(path, mood=mood, confidence=scores[mood], scores=scores, duration=duration,
                       model_name=spec.name, model_version=version or spec.version)


@pytest.fixture(scope="module")
def library(tmp_path_factory, model) -> dict:
    """A folder of small files (bytes only: playlists never decode audio) and a cache describing them."""
    _, spec = model
    assert tuple(spec.labels) == ("calm", "exciting")
    root = tmp_path_factory.mktemp("lib") / "Music Library"
    db = root.parent / "c.db"
    moods: dict[str, str] = {}
    with Cache.open(db) as cache:
        for name, mood, p, tags, duration in TRACKS:
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"not audio " + name.encode())
            info = {"format": path.suffix[1:], "duration": duration}
            if tags:
                info.update(artist=tags[0], title=tags[1], album=tags[2])
            cache.record(_result(path, mood, p, spec), TrackRef.from_path(path), info=info)
            moods[path_key(path)[0]] = mood
        # a name that is not valid UTF-8: cached with path_bytes, never written into M3U
        raw = os.fsencode(root) + b"/caf\xe9 latin1.wav"
        with open(raw, "wb") as fh:
            fh.write(b"x")
        raw_path = Path(os.fsdecode(raw))
        cache.record(_result(raw_path, "calm", 0.25, spec), TrackRef.from_path(raw_path), info={"format": "wav"})
        # results of another model version, a failure, and a file gone from disk
        other = root / "old model.wav"
        other.write_bytes(b"x")
        cache.record(_result(other, "calm", 0.02, spec, version="0.0.0-old"), TrackRef.from_path(other))
        moods[str(other)] = "calm"
        broken = root / "broken.mp3"
        broken.write_bytes(b"x")
        cache.record(TrackResult.failed(broken, "cannot decode: bad header", model_name=spec.name,
                                        model_version=spec.version), TrackRef.from_path(broken))
    (root / "gone.mp3").unlink()
    return {"root": root, "db": db, "moods": moods, "raw": raw, "other": other}


def run(args: list[str], model_args: list[str]):
    result = CliRunner().invoke(app, [*args, *model_args])
    return result


def expected_calm(library, *, m3u: bool) -> set[str]:
    """The calm, current-model, present files (absolute); the unwritable ones only for XSPF."""
    root = library["root"]
    names = {"Calm Song.wav", "Ünïcødé café ☕.flac", "#hash first.mp3", "sub dir/#2 deep one.ogg"}
    found = {str(root / n) for n in names}
    if not m3u:
        found |= {str(root / "odd\nline.wav"), os.fsdecode(library["raw"])}
    return found


# -- an independent M3U reader -------------------------------------------------------------------

def read_m3u(text: str, base: Path | None) -> list[tuple[str, str]]:
    """[(#EXTINF line, absolute path)], the way a line-oriented player reads an extended M3U."""
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U"
    entries, extinf = [], None
    for line in lines[1:]:
        if not line.strip():
            continue
        if line.startswith("#"):
            if line.startswith("#EXTINF:"):
                extinf = line
            continue
        path = line if os.path.isabs(line) else os.path.normpath(os.path.join(base, line))
        entries.append((extinf, path))
        extinf = None
    return entries


def check_entries(paths: list[str], library, mood: str) -> None:
    for path in paths:
        assert os.path.isfile(path), path
        assert library["moods"].get(path) == mood or path == os.fsdecode(library["raw"]), path


# -- M3U8 ------------------------------------------------------------------------------------------

def test_m3u8_file_relative_to_its_folder(library, model, tmp_path):
    out = library["root"].parent / "playlists" / "calm list.m3u8"
    result = run(["playlist", "calm", "--db", str(library["db"]), "-o", str(out)], model[0])
    assert result.exit_code == 0, result.output
    raw = out.read_bytes()
    text = raw.decode("utf-8")  # valid UTF-8
    assert "\r" not in text and not raw.startswith(b"\xef\xbb\xbf")
    entries = read_m3u(text, out.parent)
    paths = [p for _, p in entries]
    check_entries(paths, library, "calm")
    assert set(paths) == expected_calm(library, m3u=True)
    # relative paths only; the name starting with '#' is written as ./#...
    path_lines = [line for line in text.splitlines()[1:] if not line.startswith("#")]
    assert all(not os.path.isabs(line) for line in path_lines)
    assert "../Music Library/#hash first.mp3" in path_lines
    assert "../Music Library/sub dir/#2 deep one.ogg" in path_lines
    # every entry has its #EXTINF; the unwritable ones are warned about, never split over lines
    assert all(extinf for extinf, _ in entries)
    assert "odd" not in text and "latin1" not in text
    assert "line break" in result.stderr and "not valid UTF-8" in result.stderr
    assert "no longer on disk" in result.stderr  # gone.mp3


def test_m3u8_hash_name_in_same_folder_gets_dot_slash(library, model):
    out = library["root"] / "here.m3u8"
    result = run(["playlist", "calm", "--db", str(library["db"]), "-o", str(out)], model[0])
    assert result.exit_code == 0, result.output
    lines = out.read_text(encoding="utf-8").splitlines()
    assert "./#hash first.mp3" in lines
    assert "sub dir/#2 deep one.ogg" in lines
    assert set(p for _, p in read_m3u("\n".join(lines), out.parent)) == expected_calm(library, m3u=True)
    out.unlink()


def test_m3u8_extinf_and_score_order(library, model):
    result = run(["playlist", "calm", "--db", str(library["db"])], model[0])
    assert result.exit_code == 0, result.stderr
    entries = read_m3u(result.stdout_bytes.decode("utf-8"), None)
    root = library["root"]
    # stdout: absolute paths; most confidently calm first
    assert [p for _, p in entries] == [str(root / n) for n in (
        "Calm Song.wav", "sub dir/#2 deep one.ogg", "Ünïcødé café ☕.flac", "#hash first.mp3")]
    assert entries[0][0] == "#EXTINF:241,Ann Artist - Quiet Night"
    assert entries[2][0] == "#EXTINF:305,Björk - Jóga"
    assert entries[3][0] == "#EXTINF:62,#hash first"  # no tags: the file stem


def test_m3u8_absolute_and_relative_to(library, model, tmp_path):
    db = str(library["db"])
    out = tmp_path / "abs.m3u8"
    assert run(["playlist", "exciting", "--db", db, "-o", str(out), "--absolute"], model[0]).exit_code == 0
    paths = [p for _, p in read_m3u(out.read_text(encoding="utf-8"), None)]
    assert all(os.path.isabs(p) for p in paths)
    check_entries(paths, library, "exciting")
    assert len(paths) == 2

    result = run(["playlist", "exciting", "--db", db, "--relative-to", str(library["root"])], model[0])
    lines = [line for line in result.stdout.splitlines() if not line.startswith("#")]
    assert sorted(lines) == ["Party [live].m4a", "sub dir/loud one.opus"]
    check_entries([p for _, p in read_m3u(result.stdout, library["root"])], library, "exciting")

    both = run(["playlist", "calm", "--db", db, "--absolute", "--relative-to", str(tmp_path)], model[0])
    assert both.exit_code == 2 and "--absolute and --relative-to exclude each other" in both.stderr


def test_relative_to_and_music_dir_through_a_symlink(library, model, tmp_path):
    """--relative-to and --music-dir compare paths with symlinks resolved on both sides, and write them under
    the folder as named (MPD follows its music_directory's link): a cache scanned through the real folder and
    a folder named through a link to it, or the reverse, give the lines of the plain case, never `../`."""
    _, spec = model
    db, root = str(library["db"]), library["root"]
    link = tmp_path / "linked music"
    link.symlink_to(root)
    plain = run(["playlist", "calm", "--db", db, "--relative-to", str(root)], model[0])
    via_link = run(["playlist", "calm", "--db", db, "--relative-to", str(link)], model[0])
    assert via_link.exit_code == 0 and via_link.stdout == plain.stdout and "../" not in plain.stdout
    xspf = run(["playlist", "calm", "--db", db, "--relative-to", str(link), "--format", "xspf"], model[0])
    locations = [e.text for e in ET.fromstring(xspf.stdout.encode()).iter(f"{XSPF}location")]
    assert len(locations) == len(expected_calm(library, m3u=False))  # the name that is not UTF-8 too
    assert not any(loc.startswith("..") for loc in locations)
    assert all(os.path.isfile(os.fsencode(link) + b"/" + unquote_to_bytes(loc)) for loc in locations)
    mpd = run(["playlist", "calm", "--db", db, "--for", "mpd", "--music-dir", str(link),
               "-o", str(tmp_path / "calm.m3u")], model[0])
    assert mpd.exit_code == 0 and "outside the music folder" not in mpd.stderr
    assert m3u_lines(tmp_path / "calm.m3u") == [line for line in plain.stdout.splitlines()[1:]
                                                if not line.startswith("#")]
    # the reverse: a cache whose keys go through the link, the real folder named
    through = tmp_path / "through-link.db"
    raw = os.fsencode(link) + library["raw"][len(os.fsencode(root)):]
    with Cache.open(through) as cache:
        for path in (link / "Calm Song.wav", Path(os.fsdecode(raw))):
            cache.record(_result(path, "calm", 0.1, spec), TrackRef.from_path(path), info={"format": "wav"})
    mpd = run(["playlist", "calm", "--db", str(through), "--for", "mpd", "--music-dir", str(root)], model[0])
    assert mpd.exit_code == 0 and "outside the music folder" not in mpd.stderr
    assert [line for line in mpd.stdout.splitlines() if not line.startswith("#")] == ["Calm Song.wav"]
    assert "not valid UTF-8" in mpd.stderr  # left out for M3U, named with its path under --music-dir
    xspf = run(["playlist", "calm", "--db", str(through), "--relative-to", str(root), "--format", "xspf"], model[0])
    assert [e.text for e in ET.fromstring(xspf.stdout.encode()).iter(f"{XSPF}location")] == [
        "Calm%20Song.wav", "caf%E9%20latin1.wav"]


def test_filters_order_limit_and_paths(library, model):
    db = str(library["db"])
    root = library["root"]

    def paths(*extra):
        result = run(["playlist", "calm", "--db", db, *extra], model[0])
        assert result.exit_code == 0, result.output
        found = [p for _, p in read_m3u(result.stdout, None)]
        check_entries(found, library, "calm")
        return found

    assert paths("--min-confidence", "0.85") == [str(root / "Calm Song.wav"), str(root / "sub dir/#2 deep one.ogg")]
    assert paths("--limit", "1") == [str(root / "Calm Song.wav")]
    assert paths("--order", "path") == sorted(expected_calm(library, m3u=True))
    assert paths(str(root / "sub dir")) == [str(root / "sub dir/#2 deep one.ogg")]
    assert paths(str(root / "Calm Song.wav"), str(root / "sub dir")) == [
        str(root / "Calm Song.wav"), str(root / "sub dir/#2 deep one.ogg")]
    by_album = paths("--order", "album")
    assert by_album[:2] == [str(root / "Ünïcødé café ☕.flac"), str(root / "Calm Song.wav")]  # Homogenic, Slow...
    assert set(by_album[2:]) == {str(root / "#hash first.mp3"), str(root / "sub dir/#2 deep one.ogg")}  # no album
    shuffled = paths("--order", "shuffle", "--seed", "7")
    assert shuffled == paths("--order", "shuffle", "--seed", "7")
    assert paths("--order", "shuffle", "--seed", "7", "--limit", "2") == shuffled[:2]
    assert sorted(shuffled) == sorted(expected_calm(library, m3u=True))
    # another model version's rows count only with --any-model
    assert str(library["other"]) not in paths()
    assert paths("--any-model")[0] == str(library["other"])


def test_a_path_through_a_symlink_selects_the_tracks_scanned_by_the_real_name(library, model, tmp_path):
    """The cache holds the paths as scanned (the real folder); a PATH given through a link to the folder,
    or to one inside it, selects the same tracks (written as cached)."""
    root = library["root"]
    link = tmp_path / "link to music"
    link.symlink_to(root, target_is_directory=True)
    (tmp_path / "link to sub").symlink_to(root / "sub dir", target_is_directory=True)

    def paths(*where):
        result = run(["playlist", "calm", "--db", str(library["db"]), "--order", "path", *where], model[0])
        assert result.exit_code == 0, result.output
        return [p for _, p in read_m3u(result.stdout, None)]

    assert paths(str(link)) == paths(str(root)) == sorted(expected_calm(library, m3u=True))
    assert paths(str(tmp_path / "link to sub")) == [str(root / "sub dir/#2 deep one.ogg")]


# -- XSPF ------------------------------------------------------------------------------------------

def read_xspf(path: Path) -> list[dict]:
    tree = ET.parse(path)  # valid XML
    root = tree.getroot()
    assert root.tag == f"{XSPF}playlist" and root.get("version") == "1"
    tracks = []
    for track in root.iter(f"{XSPF}track"):
        loc = track.findtext(f"{XSPF}location")
        parts = urlsplit(loc)
        raw = unquote_to_bytes(parts.path)
        if parts.scheme == "file":
            fs = raw
        else:
            assert parts.scheme == "" and not parts.netloc and not raw.startswith(b"/")
            fs = os.path.normpath(os.fsencode(path.parent) + b"/" + raw)
        tracks.append({"location": loc, "path": os.fsdecode(fs),
                       **{k: track.findtext(f"{XSPF}{k}") for k in ("title", "creator", "album", "duration")}})
    return tracks


@pytest.mark.parametrize("absolute", [False, True])
def test_xspf(library, model, tmp_path, absolute):
    out = tmp_path / "pl" / "calm.xspf"  # format from the suffix
    result = run(["playlist", "calm", "--db", str(library["db"]), "-o", str(out),
                  *(["--absolute"] if absolute else [])], model[0])
    assert result.exit_code == 0, result.output
    tracks = read_xspf(out)
    paths = [t["path"] for t in tracks]
    check_entries(paths, library, "calm")
    # URIs carry what M3U cannot: a line break, a name that is not UTF-8
    assert set(paths) == expected_calm(library, m3u=False)
    for t in tracks:
        assert all(c not in t["location"] for c in " #\n?") and t["location"].isascii()
        assert t["location"].startswith("file:///") == absolute
    song = next(t for t in tracks if t["path"].endswith("café ☕.flac"))
    assert (song["title"], song["creator"], song["album"], song["duration"]) == ("Jóga", "Björk", "Homogenic", "305000")
    hashed = next(t for t in tracks if t["path"].endswith("#hash first.mp3"))
    assert hashed["title"] == "#hash first" and hashed["creator"] is None


# -- playlists --out-dir ---------------------------------------------------------------------------

def test_playlists_one_per_label(library, model, tmp_path):
    out_dir = tmp_path / "moods"
    result = run(["playlists", "--db", str(library["db"]), "--out-dir", str(out_dir)], model[0])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out_dir.iterdir()) == ["calm.m3u8", "exciting.m3u8"]
    for mood in ("calm", "exciting"):
        paths = [p for _, p in read_m3u((out_dir / f"{mood}.m3u8").read_text(encoding="utf-8"), out_dir)]
        check_entries(paths, library, mood)
        assert paths
    assert set(paths) == {str(library["root"] / "sub dir/loud one.opus"), str(library["root"] / "Party [live].m4a")}

    result = run(["playlists", "--db", str(library["db"]), "-d", str(out_dir), "--format", "xspf"], model[0])
    assert result.exit_code == 0, result.output
    check_entries([t["path"] for t in read_xspf(out_dir / "exciting.xspf")], library, "exciting")


def test_playlists_report_one_plain_line_each(library, model, tmp_path):
    """One line per playlist written: its count, mood and file; the folder's name shown as it is, its
    brackets not taken for markup, a control character escaped."""
    out_dir = tmp_path / "moods [live]\x1b"
    result = run(["playlists", "--db", str(library["db"]), "--out-dir", str(out_dir)], model[0])
    assert result.exit_code == 0, result.output
    shown = str(tmp_path / "moods [live]\\x1b")
    counts = {mood: len(m3u_lines(out_dir / f"{mood}.m3u8")) for mood in ("calm", "exciting")}
    assert result.stdout.splitlines() == [
        f"wrote {counts['calm']} calm tracks to {shown}/calm.m3u8",
        f"wrote {counts['exciting']} exciting tracks to {shown}/exciting.m3u8"]


def test_m3u_suffix_and_for_mpd(library, model, tmp_path):
    """.m3u is the M3U8 text under MPD's suffix; --for mpd: paths relative to --music-dir, one line per
    problem (MPD itself is in tests/test_mpd.py)."""
    from tagger.playlists import m3u_mark

    db, root = str(library["db"]), library["root"]
    out = tmp_path / "calm.m3u"  # format from the suffix
    assert run(["playlist", "calm", "--db", db, "-o", str(out), "--relative-to", str(root)], model[0]).exit_code == 0
    text = out.read_text(encoding="utf-8")
    assert text.startswith(f"#EXTM3U\n{m3u_mark('calm')}\n#EXTINF:") and "./#hash first.mp3\n" in text
    assert set(p for _, p in read_m3u(text, root)) == expected_calm(library, m3u=True)

    result = run(["playlists", "--db", db, "--for", "mpd", "--music-dir", str(root / "sub dir"),
                  "--out-dir", str(tmp_path / "mpd")], model[0])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "mpd").iterdir()) == ["calm.m3u", "exciting.m3u"]
    assert m3u_lines(tmp_path / "mpd" / "calm.m3u") == ["./#2 deep one.ogg"]  # MPD reads ./ (tests/test_mpd.py)
    assert m3u_lines(tmp_path / "mpd" / "exciting.m3u") == ["loud one.opus"]
    assert "5 calm tracks outside the music folder" in result.stderr  # one line, not one per track
    assert "1 exciting track outside the music folder" in result.stderr


def m3u_lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]


@pytest.mark.parametrize("args, message", [
    (["--for", "mpd"], "needs --music-dir"),
    (["--music-dir", "."], "goes with --for"),
    (["--for", "mpd", "--music-dir", ".", "--format", "xspf"], "writes m3u"),
    (["--for", "mpd", "--music-dir", ".", "--absolute"], "leave out --absolute"),
    (["--for", "mpd", "--music-dir", ".", "-o", "x.m3u8"], "must be named NAME.m3u"),
    (["--for", "mpd", "--music-dir", "nowhere-at-all"], "is not a folder"),
    (["--seed", "7"], "--seed orders a shuffled playlist: add --order shuffle (the order is score)"),
    (["--seed", "7", "--order", "album"], "(the order is album)"),
])
def test_for_mpd_option_errors(library, model, args, message):
    """Options that contradict each other are usage errors (exit status 2, click's lines, as the README says
    of usage errors); a --music-dir that is no folder is an error of the library's (1), as a missing PATH."""
    from tests.conftest import run_cli

    commands = [["playlist", "calm"], ["playlists", "-d", library["root"].parent / "not written"]]
    for command in commands[:1] if "-o" in args else commands:
        proc = run_cli(*command, "--db", library["db"], *args, *model[0], env={"COLUMNS": "400"})
        assert proc.stdout == "" and message in proc.stderr and proc.stderr.count("\n") == (
            1 if message == "is not a folder" else 4), proc.stderr
        if message == "is not a folder":
            assert proc.returncode == 1 and proc.stderr.startswith("error: ")
        else:
            assert proc.returncode == 2 and proc.stderr.startswith(f"Usage: moodtag {command[0]} [OPTIONS]")
        assert not (library["root"].parent / "not written").exists()


def test_output_dash_is_standard_output(library, model, tmp_path):
    """`-o -` wrote a file named `-`; it now prints the playlist, as without -o (a file named `-`: `-o ./-`)."""
    import subprocess
    import sys

    def playlist(*args):
        return subprocess.run([sys.executable, "-m", "tagger", "playlist", "calm", "--db", str(library["db"]), *args,
                               *model[0]], capture_output=True, cwd=tmp_path, check=True)

    for fmt in ([], ["--format", "xspf"]):
        printed = playlist(*fmt)
        assert playlist("-o", "-", *fmt).stdout == printed.stdout and b"Song.wav" in printed.stdout
        assert not (tmp_path / "-").exists()
    assert b"wrote 4 calm tracks to -" in playlist("-o", "./-").stdout and (tmp_path / "-").is_file()


# -- errors ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["missing", "file"])
def test_relative_to_must_be_a_folder_as_music_dir_must(library, model, tmp_path, kind):
    """--relative-to took a mistyped folder, or a file, and wrote ../../.. lines that resolve nowhere; it is
    now refused as --music-dir is: one line, exit status 1, nothing written."""
    from tests.conftest import run_cli

    target = tmp_path / ("no such folder" if kind == "missing" else "a file.txt")
    if kind == "file":
        target.write_text("x")
    db, out = library["db"], tmp_path / "lists"
    for args in (["playlist", "calm"], ["playlist", "calm", "-o", out / "calm.m3u8"], ["playlists", "-d", out]):
        proc = run_cli(*args, "--db", db, "--relative-to", target, *model[0], env={"COLUMNS": "400"})
        assert (proc.returncode, proc.stdout) == (1, ""), args
        assert proc.stderr == f"error: {target}: --relative-to is not a folder\n", args
        assert not out.exists()

def test_unknown_mood_lists_labels(library, model):
    result = run(["playlist", "happy", "--db", str(library["db"])], model[0])
    assert result.exit_code == 1
    assert isinstance(result.exception, MoodtagError)
    assert "'happy'" in str(result.exception) and "calm, exciting" in str(result.exception)


def test_a_path_that_does_not_exist_is_an_error_and_replaces_no_playlist(library, model, tmp_path):
    """A mistyped PATH names itself, as in `scan`; the playlists already there are left as they were."""
    db, out_dir = str(library["db"]), tmp_path / "lists"
    assert run(["playlists", "--db", db, "-d", str(out_dir)], model[0]).exit_code == 0
    before = {p.name: p.read_bytes() for p in out_dir.iterdir()}
    assert before["calm.m3u8"].count(b"#EXTINF") == 4
    missing = str(library["root"] / "no such folder")
    result = run(["playlists", str(library["root"]), missing, "--db", db, "-d", str(out_dir)], model[0])
    assert result.exit_code == 1 and isinstance(result.exception, MoodtagError)
    assert str(result.exception) == f"{missing}: no such file or folder"
    assert {p.name: p.read_bytes() for p in out_dir.iterdir()} == before
    printed = run(["playlist", "calm", missing, "--db", db], model[0])
    assert printed.exit_code == 1 and printed.stdout == ""
    assert str(printed.exception) == f"{missing}: no such file or folder"
    saved = run(["playlist", "calm", missing, "--db", db, "-o", str(out_dir / "calm.m3u8")], model[0])
    assert saved.exit_code == 1 and (out_dir / "calm.m3u8").read_bytes() == before["calm.m3u8"]


def test_missing_db_is_one_line_naming_the_file(tmp_path, model):
    from tests.conftest import run_cli

    missing = tmp_path / "nope.db"
    proc = run_cli("playlist", "calm", "--db", missing, *model[0], env={"COLUMNS": "400"})
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0] and lines[0].startswith("error:")
    assert not missing.exists()


def test_playlist_does_not_write_the_cache(library, model, tmp_path):
    before = library["db"].read_bytes()
    run(["playlist", "calm", "--db", str(library["db"]), "-o", str(tmp_path / "x.m3u8")], model[0])
    assert library["db"].read_bytes() == before
    with sqlite3.connect(library["db"]) as conn:
        assert conn.execute("SELECT count(*) FROM tracks").fetchone()[0] == len(TRACKS) + 3


# -- the rendering API, without a cache --------------------------------------------------------------

def test_tags_with_line_breaks_or_control_characters_stay_on_one_line_and_valid_xml(tmp_path):
    from tagger.playlists import PlaylistEntry, render_m3u8, render_xspf

    entry = PlaylistEntry("/m/a.mp3", None, "calm", 0.9, duration=None, artist="A\r\nB", title="T\u2028x\x07")
    assert render_m3u8([entry]).splitlines() == ["#EXTM3U", "#EXTINF:-1,A B - T x\x07", "/m/a.mp3"]
    out = tmp_path / "p.xspf"
    out.write_text(render_xspf([entry], title="t"), encoding="utf-8")
    (track,) = read_xspf(out)
    assert track["path"] == "/m/a.mp3" and track["title"] == "T\u2028x" and track["duration"] is None


# --- a WAV whose artist and title are in its RIFF INFO chunk, as MPD reads it ----------------------

def _mpd_songs(music: Path, tmp_path: Path) -> dict[str, dict[str, str]]:
    """Start a real MPD on loopback over `music`, let it scan, and return lsinfo: file -> tag -> value."""
    import socket
    import subprocess
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    state = tmp_path / "mpd"
    state.mkdir()
    conf = state / "mpd.conf"
    conf.write_text(f'music_directory "{music}"\ndb_file "{state}/db"\nstate_file "{state}/state"\n'
                    f'log_file "{state}/log"\nbind_to_address "127.0.0.1"\nport "{port}"\n'
                    'audio_output {\n type "null"\n name "null"\n}\n')
    mpd = subprocess.Popen(["mpd", "--no-daemon", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=10)
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError(f"MPD did not start: {(state / 'log').read_text() if (state / 'log').exists() else ''}")
        with conn, conn.makefile("rwb") as wire:
            def command(line: str) -> list[tuple[str, str]]:
                wire.write(line.encode() + b"\n")
                wire.flush()
                pairs = []
                while not (reply := wire.readline().decode("utf-8").rstrip("\n")).startswith(("OK", "ACK")):
                    key, _, value = reply.partition(": ")
                    pairs.append((key, value))
                assert reply == "OK", reply
                return pairs
            assert wire.readline().startswith(b"OK MPD")
            command("update")
            while any(key == "updating_db" for key, _ in command("status")):
                time.sleep(0.1)
            songs: dict[str, dict[str, str]] = {}
            for key, value in command("listallinfo"):
                if key == "file":
                    current = songs[value] = {}
                elif key != "directory" and songs:
                    current[key] = value
            return songs
    finally:
        mpd.terminate()
        mpd.wait(timeout=30)


@pytest.mark.skipif(shutil.which("mpd") is None, reason="needs MPD")
def test_wav_riff_info_reaches_the_cache_and_the_playlist_as_mpd_shows_it(tmp_path, audio_dir, test_model):
    """A WAV whose artist, title and album are in a LIST/INFO chunk written by FFmpeg's muxer: the
    cache and the playlist's #EXTINF line hold what MPD shows for it."""
    import json
    import soundfile as sf

    from tests.conftest import run_cli
    from tests.test_tags import write_wav_with_info

    music = tmp_path / "music"
    music.mkdir()
    samples, rate = sf.read(str(next(audio_dir.glob("*.wav"))), dtype="float32", always_2d=True)
    track = music / "satie.wav"
    write_wav_with_info(track, samples, rate, {"artist": "Erik Satie", "title": "Gymnopédie No. 1",
                                               "album": "Piano Works"})
    db = tmp_path / "c.db"
    run_cli("scan", music, "--db", db, "--model", test_model, check=True)
    [row] = [json.loads(line) for line in run_cli("query", "--db", db, "--json", check=True).stdout.splitlines()]
    shown = _mpd_songs(music, tmp_path)["satie.wav"]     # after tagging: MPD reads the tagged file
    assert (row["artist"], row["title"], row["album"]) == (shown["Artist"], shown["Title"], shown["Album"]) \
        == ("Erik Satie", "Gymnopédie No. 1", "Piano Works")
    playlist = run_cli("playlist", row["mood"], "--db", db, "--absolute", "--any-model", check=True).stdout
    assert f"#EXTINF:{round(row['duration'])},Erik Satie - Gymnopédie No. 1" in playlist.splitlines()


def test_the_player_folder_check_per_folder_gives_the_names_check(tmp_path):
    """--for mpd checks a path's names in one search (_Inside.names_problem): the same answer as checking every
    name of every path, for folders and files whose names begin or end with a space or a control character
    (what MPD strips: U+0000-U+0020), or with other whitespace (U+00A0, U+3000, U+2028: kept), or hold one
    inside, asked twice."""
    from tagger.playlists import _Inside, names_problem

    inside = _Inside(tmp_path)
    paths = [tmp_path, tmp_path / "a.mp3", tmp_path / " b.mp3", tmp_path / "x " / "a.mp3", tmp_path / "x " / "b.mp3",
             tmp_path / "ok" / " c" / "d.mp3", tmp_path / "ok" / "e.mp3", tmp_path / "ok" / "f.mp3 ", tmp_path / "ok",
             tmp_path / "a b" / "c d.mp3", tmp_path / "\u00a0nbsp.mp3", tmp_path / "ideo\u3000", tmp_path / "x\x1f" / "y.mp3",
             tmp_path / "t\tab" / "line\n", tmp_path / "mid\nline.mp3", tmp_path / "\u2028" / "z.mp3", tmp_path / "é" / "ü.mp3"]
    answers = [inside.names_problem(str(p)) for p in paths + paths]
    assert answers == [names_problem(inside.names(str(p))) for p in paths + paths]
    assert answers[:len(paths)].count(None) == 10


def test_playlists_into_a_file_is_one_line_before_anything_is_written(library, model, tmp_path):
    from tests.conftest import run_cli

    not_a_folder = tmp_path / "moods"
    not_a_folder.write_text("mine\n")
    proc = run_cli("playlists", "--db", library["db"], "--out-dir", not_a_folder, *model[0])
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr.splitlines() == [f"error: {not_a_folder}: --out-dir is a file, not a folder"]
    assert not_a_folder.read_text() == "mine\n"


def test_a_name_with_a_backslash_is_written_into_m3u_only_real_non_utf8_and_line_breaks_left_out(model, tmp_path):
    """The cache keeps the bytes of a name holding a backslash (its key doubles it), and M3U took those bytes
    for a name that is not UTF-8: `back\\slash.wav` was left out of M3U and --for mpd with a false warning.
    Now it is written as its real name (MPD loads it: tests/test_mpd.py); a name that is not UTF-8 or that
    holds a line break is still left out with its warning, and XSPF still takes all three."""
    from tests.conftest import run_cli

    _, spec = model
    root, db = tmp_path / "Music", tmp_path / "c.db"
    root.mkdir()
    names = [b"back\\slash.wav", b"caf\xe9 latin1.wav", b"two\nlines.wav", b"plain.wav"]
    with Cache.open(db) as cache:
        for i, name in enumerate(names):
            raw = os.fsencode(root) + b"/" + name
            with open(raw, "wb") as fh:
                fh.write(b"x")
            path = Path(os.fsdecode(raw))
            cache.record(_result(path, "calm", 0.1 + i / 100, spec), TrackRef.from_path(path), info={"format": "wav"})
    backslash = str(root / "back\\slash.wav")
    for args, folder, suffix in ((["--out-dir", tmp_path / "m3u8"], None, "m3u8"),
                                 (["--for", "mpd", "--music-dir", root, "--out-dir", tmp_path / "mpd"], root, "m3u")):
        proc = run_cli("playlists", "--db", db, *args, *model[0])
        assert proc.returncode == 0, proc.stderr
        out = Path(args[-1]) / f"calm.{suffix}"
        paths = [p for _, p in read_m3u(out.read_text(encoding="utf-8"), folder or out.parent)]
        assert sorted(paths) == [backslash, str(root / "plain.wav")] and all(os.path.isfile(p) for p in paths)
        warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
        assert len(warnings) == 2 and "slash.wav" not in proc.stderr, proc.stderr
        assert "not valid UTF-8" in warnings[0] + warnings[1] and "line break" in warnings[0] + warnings[1]
    xspf = run_cli("playlist", "calm", "--db", db, "-o", tmp_path / "calm.xspf", *model[0])
    assert xspf.returncode == 0 and xspf.stderr == "", xspf.stderr
    assert sorted(t["path"] for t in read_xspf(tmp_path / "calm.xspf")) == sorted(
        os.fsdecode(os.fsencode(root) + b"/" + name) for name in names)


def test_for_mpd_a_name_holding_a_vertical_tab_or_a_unicode_line_separator_is_written(model, tmp_path):
    """--for mpd left out a name holding \\v, \\f, \\x1c-\\x1e, U+0085, U+2028 or U+2029 ('its name holds a line
    break'), though MPD splits a playlist on \\n only and loads them (tests/test_mpd.py). For MPD only \\n and \\r
    keep a name out now; a plain M3U, for players whose readers may split on any of them, still leaves all out."""
    from tests.conftest import run_cli

    _, spec = model
    root, db = tmp_path / "Music", tmp_path / "c.db"
    root.mkdir()
    odd = ["v\x0bmid.wav", "f\x0cmid.wav", "fs\x1cmid.wav", "rs\x1emid.wav", "nel\x85mid.wav", "ls\u2028mid.wav",
           "ps\u2029mid.wav"]
    broken = ["two\nlines.wav", "cr\rmid.wav"]
    with Cache.open(db) as cache:
        for i, name in enumerate(["plain.wav", *odd, *broken]):
            (root / name).write_bytes(b"x")
            cache.record(_result(root / name, "calm", 0.1 + i / 100, spec), TrackRef.from_path(root / name),
                         info={"format": "wav"})
    mpd = run_cli("playlists", "--db", db, "--for", "mpd", "--music-dir", root, "-d", tmp_path / "mpd", *model[0])
    assert mpd.returncode == 0, mpd.stderr
    written = (tmp_path / "mpd" / "calm.m3u").read_text(encoding="utf-8").split("\n")  # as MPD splits it
    assert sorted(line for line in written if line and not line.startswith("#")) == sorted(["plain.wav", *odd])
    assert mpd.stderr.count("its name holds a line break") == 2 and "\\r" in mpd.stderr, mpd.stderr
    plain = run_cli("playlists", "--db", db, "--format", "m3u", "--relative-to", root, "-d", tmp_path / "m3u",
                    *model[0])
    assert plain.returncode == 0, plain.stderr
    assert m3u_lines(tmp_path / "m3u" / "calm.m3u") == ["plain.wav"]
    assert plain.stderr.count("its name holds a line break") == len(odd) + len(broken)


def test_tracks_of_another_model_version_are_named_and_never_empty_a_playlist_silently(model, tmp_path):
    """After an upgrade, before the rescan, every cached row is another model version's: `playlists` wrote
    empty playlists over good ones, exit 0, no word. Now a line says how many tracks another model analysed
    and what to do; a playlist file with entries is not replaced by an empty one (exit 1, nothing written,
    for a cron job to see); one that does not exist yet is written, and --any-model takes the old rows."""
    from tagger.playlists import m3u_mark
    from tagger.records import command_word
    from tests.conftest import run_cli

    _, spec = model
    root, db, out = tmp_path / "Music", tmp_path / "c.db", tmp_path / "lists"
    _two_calm_one_exciting(root, db, spec)
    assert run_cli("playlists", "--db", db, "-d", out, *model[0]).returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert before["calm.m3u8"].count(b"#EXTINF") == 2
    with sqlite3.connect(db) as conn:  # one calm track rescanned by the current model, the others not yet
        conn.execute("UPDATE tracks SET model_version = '0.0.0-old' WHERE path LIKE '%/b.wav'")
    partly = run_cli("playlists", "--db", db, "-d", out, *model[0])
    assert partly.returncode == 0, partly.stderr
    scan = " ".join(["moodtag scan", *map(command_word, model[0])])  # with the --model given: the same model
    assert partly.stderr.splitlines() == [
        f"warning: 1 cached calm track analysed by another model ({spec.name} 0.0.0-old) left out: run "
        f"`{scan}`, or --any-model"]
    kept = {p.name: p.read_bytes() for p in out.iterdir()}
    assert kept["calm.m3u8"].count(b"#EXTINF") == 1
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE tracks SET model_version = '0.0.0-old'")
    for args in (["playlists", "-d", out], ["playlist", "calm", "-o", out / "calm.m3u8"]):
        refused = run_cli(*args, "--db", db, *model[0], env={"COLUMNS": "400"})
        assert (refused.returncode, refused.stdout) == (1, ""), refused.stderr
        assert refused.stderr == (f"error: {out / 'calm.m3u8'}: not replaced by an empty calm playlist: its 2 cached "
                                  f"tracks were analysed by another model ({spec.name} 0.0.0-old): run `{scan}`, "
                                  "or --any-model\n")
        assert {p.name: p.read_bytes() for p in out.iterdir()} == kept  # exciting.m3u8 not written either
    printed = run_cli("playlist", "calm", "--db", db, *model[0])
    assert printed.returncode == 0 and printed.stdout == f"#EXTM3U\n{m3u_mark('calm')}\n"
    assert "2 cached calm tracks analysed by another model" in printed.stderr
    fresh = run_cli("playlists", "--db", db, "-d", tmp_path / "new", *model[0])  # nothing to lose: written, warned
    assert fresh.returncode == 0 and fresh.stderr.count("analysed by another model") == 2
    assert (tmp_path / "new" / "calm.m3u8").read_text() == f"#EXTM3U\n{m3u_mark('calm')}\n"
    taken = run_cli("playlists", "--db", db, "-d", out, "--any-model", *model[0])
    assert taken.returncode == 0 and taken.stderr == ""
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def _two_calm_one_exciting(root: Path, db: Path, spec) -> None:
    """A cache of a.wav and b.wav (calm) and c.wav (exciting) under `root`, as `spec`'s model analysed them."""
    root.mkdir()
    with Cache.open(db) as cache:
        for name, mood, p in (("a.wav", "calm", 0.1), ("b.wav", "calm", 0.2), ("c.wav", "exciting", 0.9)):
            (root / name).write_bytes(b"x")
            cache.record(_result(root / name, mood, p, spec), TrackRef.from_path(root / name))


def test_tracks_of_another_shipped_model_name_the_model_option_that_lists_them(tmp_path):
    """A library scanned with `--model moodtag-cnn` into its own cache (the README's beets example): `playlists`
    on it wrote empty playlists and advised `moodtag scan`, which analyses the whole library again with the
    default model and rewrites every file's mood. The warning (playlist and playlists) and the refusal now
    name `--model moodtag-cnn`, which pasted lists the tracks; several models: the one with the most tracks."""
    import re

    from tests.conftest import run_cli

    try:
        cnn, rhythm = (read_spec(resolve_model(name)) for name in ("moodtag-cnn", "moodtag-rhythm"))
    except MoodtagError:
        pytest.skip("the shipped models are not installed")
    root, db, out = tmp_path / "Music", tmp_path / "cnn.db", tmp_path / "lists"
    _two_calm_one_exciting(root, db, cnn)
    # the current model, another than moodtag-cnn: the default one, or named
    model_args = [] if resolve_model(None) == resolve_model("moodtag-rhythm") else ["--model", "moodtag-rhythm"]
    scan = "moodtag scan" + (" --model moodtag-rhythm" if model_args else "")
    advice = f"`--model moodtag-cnn` lists {{}}, or --any-model; `{scan}` analyses {{}} again with {rhythm.name} " \
             f"{rhythm.version}"
    made = run_cli("playlists", "--db", db, "-d", out, *model_args)
    assert made.returncode == 0, made.stderr
    assert made.stderr.splitlines() == [
        f"warning: 2 cached calm tracks analysed by another model (moodtag-cnn {cnn.version}) left out: "
        + advice.format("them", "them"),
        f"warning: 1 cached exciting track analysed by another model (moodtag-cnn {cnn.version}) left out: "
        + advice.format("it", "it")]
    option = re.search(r"`(--model [^`]+)` lists", made.stderr).group(1).split()
    followed = run_cli("playlists", "--db", db, "-d", out, *option)  # the advice pasted: the tracks listed
    assert (followed.returncode, followed.stderr) == (0, ""), followed.stderr
    assert m3u_lines(out / "calm.m3u8") == ["../Music/a.wav", "../Music/b.wav"]
    refused = run_cli("playlists", "--db", db, "-d", out, *model_args, env={"COLUMNS": "400"})
    assert refused.returncode == 1 and refused.stderr == (
        f"error: {out / 'calm.m3u8'}: not replaced by an empty calm playlist: its 2 cached tracks were analysed by "
        f"another model (moodtag-cnn {cnn.version}): {advice.format('them', 'them')}\n"), refused.stderr
    printed = run_cli("playlist", "calm", "--db", db, *model_args)  # one mood, to standard output: the same advice
    assert printed.returncode == 0 and printed.stderr.splitlines() == made.stderr.splitlines()[:1]
    listed = run_cli("playlist", "calm", "--db", db, "--absolute", "-m", "moodtag-cnn")
    assert (listed.returncode, listed.stderr) == (0, "")
    assert [line for line in listed.stdout.splitlines() if not line.startswith("#")] == [
        str(root / "a.wav"), str(root / "b.wav")]
    with Cache.open(db) as cache:  # a third calm track of an older version: the model of the most tracks named
        older = root / "d.wav"
        older.write_bytes(b"x")
        cache.record(_result(older, "calm", 0.3, rhythm, version="0.0.0-old"), TrackRef.from_path(older))
    several = run_cli("playlist", "calm", "--db", db, *model_args)
    assert several.stderr.splitlines() == [
        f"warning: 3 cached calm tracks analysed by another model (moodtag-cnn {cnn.version}, {rhythm.name} "
        f"0.0.0-old) left out: `--model moodtag-cnn` lists those of moodtag-cnn {cnn.version}, --any-model all; "
        f"`{scan}` analyses them again with {rhythm.name} {rhythm.version}"]
    with sqlite3.connect(db) as conn:  # the other way round: the scan advised is the --model given
        conn.execute("UPDATE tracks SET model_name = ?, model_version = ?", (rhythm.name, rhythm.version))
    other_way = run_cli("playlist", "exciting", "--db", db, "--model", "moodtag-cnn")
    assert other_way.stderr.splitlines() == [
        f"warning: 1 cached exciting track analysed by another model ({rhythm.name} {rhythm.version}) left out: "
        f"`--model moodtag-rhythm` lists it, or --any-model; `moodtag scan --model moodtag-cnn` analyses it again "
        f"with moodtag-cnn {cnn.version}"]
    with sqlite3.connect(db) as conn:  # an older moodtag-cnn's rows, after an upgrade: a rescan by moodtag-cnn, not
        conn.execute("UPDATE tracks SET model_name = ?, model_version = '0.9.0'", (cnn.name,))  # the default
    upgraded = run_cli("playlist", "exciting", "--db", db, *model_args)
    assert upgraded.stderr.splitlines() == [
        f"warning: 1 cached exciting track analysed by another model (moodtag-cnn 0.9.0) left out: `moodtag scan "
        f"--model moodtag-cnn` analyses it again with moodtag-cnn {cnn.version}, then `--model moodtag-cnn` lists it; "
        f"or --any-model"]
    given = run_cli("playlist", "exciting", "--db", db, "--model", "moodtag-rhythm")  # the user's choice: kept
    assert given.stderr.splitlines() == [
        "warning: 1 cached exciting track analysed by another model (moodtag-cnn 0.9.0) left out: run `moodtag "
        "scan --model moodtag-rhythm`, or --any-model"]
    same = run_cli("playlist", "exciting", "--db", db, "--model", "moodtag-cnn")  # its own model's older version
    assert same.stderr.splitlines() == [
        "warning: 1 cached exciting track analysed by another model (moodtag-cnn 0.9.0) left out: run `moodtag scan "
        "--model moodtag-cnn`, or --any-model"]


def test_a_library_not_on_disk_now_never_empties_a_playlist(model, tmp_path):
    """The cache keys tracks by absolute path: a USB stick mounted at another place (/media/USER/STICK1, the
    cache on the stick) or not mounted at all made `playlists` warn '4 cached calm tracks no longer on disk
    left out', then write 0 calm tracks over a working playlist, exit 0. A playlist file with entries is not
    replaced by an empty one when no file of its selection is on disk now (exit 1, one line naming it,
    before any playlist is written); some files gone, a new playlist, or one already empty: written, as before."""
    from tagger.playlists import m3u_mark
    from tests.conftest import run_cli

    _, spec = model
    stick = tmp_path / "STICK"
    root, db, out = stick / "Music", tmp_path / "c.db", tmp_path / "lists"
    root.mkdir(parents=True)
    with Cache.open(db) as cache:
        for name, mood, p in (("a.wav", "calm", 0.1), ("b.wav", "calm", 0.2), ("c.wav", "exciting", 0.9)):
            (root / name).write_bytes(b"x")
            cache.record(_result(root / name, mood, p, spec), TrackRef.from_path(root / name))
    assert run_cli("playlists", "--db", db, "-d", out, *model[0]).returncode == 0
    before = {p.name: (p.read_bytes(), p.stat().st_ino) for p in out.iterdir()}
    assert before["calm.m3u8"][0].count(b"#EXTINF") == 2
    stick.rename(tmp_path / "STICK1")  # mounted at another place
    message = (f"error: {out / 'calm.m3u8'}: not replaced by an empty calm playlist: none of its 2 cached calm "
               "tracks is on disk now (a disk not mounted, or the library moved?): mount it, or `moodtag scan` the "
               "library where it is now and where it was; `moodtag prune` forgets the tracks gone\n")
    for args in (["playlists", "-d", out], ["playlist", "calm", "-o", out / "calm.m3u8"]):
        refused = run_cli(*args, "--db", db, *model[0], env={"COLUMNS": "400"})
        assert (refused.returncode, refused.stdout, refused.stderr) == (1, "", message)
        assert {p.name: (p.read_bytes(), p.stat().st_ino) for p in out.iterdir()} == before  # exciting too
    printed = run_cli("playlist", "calm", "--db", db, *model[0], env={"COLUMNS": "400"})  # no file to lose
    assert printed.returncode == 0 and printed.stdout == f"#EXTM3U\n{m3u_mark('calm')}\n"
    assert printed.stderr == ("warning: 2 cached calm tracks no longer on disk left out (a disk not mounted? else "
                              "`moodtag scan` the library where it is now and where it was; `moodtag prune` forgets "
                              "the tracks gone)\n")
    fresh = run_cli("playlists", "--db", db, "-d", tmp_path / "new", *model[0])  # nothing to lose: written, warned
    assert fresh.returncode == 0 and fresh.stderr.count("no longer on disk left out") == 2
    assert (tmp_path / "new" / "calm.m3u8").read_text() == f"#EXTM3U\n{m3u_mark('calm')}\n"
    again = run_cli("playlists", "--db", db, "-d", tmp_path / "new", *model[0])  # empty ones replaced
    assert again.returncode == 0, again.stderr
    (tmp_path / "STICK1").rename(stick)  # back where it was, one calm file deleted: the other is written
    (root / "a.wav").unlink()
    partly = run_cli("playlists", "--db", db, "-d", out, *model[0], env={"COLUMNS": "400"})
    assert partly.returncode == 0, partly.stderr
    assert partly.stderr.startswith("warning: 1 cached calm track no longer on disk left out (")
    assert (out / "calm.m3u8").read_bytes().count(b"#EXTINF") == 1


def test_a_path_that_finds_no_cached_track_never_empties_a_playlist(model, tmp_path):
    """A USB stick scanned at media/STICK and mounted at media/STICK1 now: `playlists media/STICK1/Music -d
    media/STICK1/Playlists` warned 'no cached tracks under media/STICK1/Music', then wrote 0 tracks over the
    stick's working playlists, exit 0 (check_not_gone looks at the tracks selected, and none was). When no PATH
    given finds a cached track, a playlist file with entries is not replaced by an empty one: exit 1, one line
    naming the PATHs, nothing written; `playlist -o` the same. Printed, or a playlist not there yet: written
    empty with the warning, as before; after a scan of the new place the playlists are written again."""
    from tagger import synth
    from tagger.playlists import m3u_mark
    from tests.conftest import run_cli

    media = tmp_path / "media"
    music, lists, db = media / "STICK" / "Music", media / "STICK" / "Playlists", tmp_path / "c.db"
    music.mkdir(parents=True)
    for i in range(4):
        synth.make_track(music / f"t{i}.flac", "calm" if i % 2 else "exciting", 8.0, seed=i)
    run_cli("scan", music, "--db", db, "-j1", *model[0], check=True)
    run_cli("playlists", music, "-d", lists, "--db", db, *model[0], check=True)
    before = {p.name: (p.read_bytes(), p.stat().st_ino) for p in lists.iterdir()}
    moods = [name.removesuffix(".m3u8") for name in sorted(before) if before[name][0].count(b"\n../Music/t")]
    assert moods, before  # relative paths: they load wherever the stick is mounted
    (media / "STICK").rename(media / "STICK1")  # mounted at another place; the old mount point stays, empty
    (media / "STICK").mkdir()
    music, lists = media / "STICK1" / "Music", media / "STICK1" / "Playlists"
    for args in (["playlists", music, "-d", lists], ["playlist", moods[0], music, "-o", lists / f"{moods[0]}.m3u8"]):
        refused = run_cli(*args, "--db", db, *model[0], env={"COLUMNS": "400"})
        assert (refused.returncode, refused.stdout) == (1, ""), refused.stderr
        assert refused.stderr == (
            f"error: {lists / f'{moods[0]}.m3u8'}: not replaced by an empty {moods[0]} playlist: no cached tracks "
            f"under {music}, nor where its symlinks lead (a disk mounted at another place than where it was scanned, "
            "or a PATH never scanned?): `moodtag scan` it, or name it as it was scanned\n")
        assert {p.name: (p.read_bytes(), p.stat().st_ino) for p in lists.iterdir()} == before
    other = tmp_path / "Favorites"  # a second PATH that finds none either
    other.mkdir()
    both = run_cli("playlists", music, other, "-d", lists, "--db", db, *model[0], env={"COLUMNS": "400"})
    assert (both.returncode, both.stdout) == (1, "")
    assert both.stderr.startswith(f"error: {lists / f'{moods[0]}.m3u8'}: not replaced by an empty {moods[0]} "
                                  f"playlist: no cached tracks under {music}, {other}, nor where their "
                                  "symlinks lead (") and both.stderr.count("\n") == 1, both.stderr
    assert {p.name: (p.read_bytes(), p.stat().st_ino) for p in lists.iterdir()} == before
    warning = (f"warning: no cached tracks under {music}, nor where its symlinks lead (`moodtag scan` it, or name it "
               "as it was scanned)\n")
    printed = run_cli("playlist", moods[0], music, "--db", db, *model[0], env={"COLUMNS": "400"})  # no file to lose
    assert (printed.returncode, printed.stdout, printed.stderr) == (0, f"#EXTM3U\n{m3u_mark(moods[0])}\n", warning)
    for _ in range(2):  # not there yet, then there and empty: written empty, warned once
        fresh = run_cli("playlists", music, "-d", tmp_path / "new", "--db", db, *model[0], env={"COLUMNS": "400"})
        assert (fresh.returncode, fresh.stderr) == (0, warning)
        assert (tmp_path / "new" / "calm.m3u8").read_text() == f"#EXTM3U\n{m3u_mark('calm')}\n"
    run_cli("scan", music, "--db", db, "-j1", *model[0], check=True)  # the new place scanned: written again
    again = run_cli("playlists", music, "-d", lists, "--db", db, *model[0])
    assert (again.returncode, again.stderr) == (0, "")
    assert {p.name: p.read_bytes() for p in lists.iterdir()} == {name: text for name, (text, _) in before.items()}


def test_a_folder_with_a_playlists_name_in_out_dir_is_an_error_before_any_playlist_is_written(library, model, tmp_path):
    """`playlists` wrote calm.m3u8, then failed on a folder named exciting.m3u8 with `playlist -o`'s message
    ('give a playlist file name'). Every target is checked first now; the message fits `playlists`. (With
    --force: the user's calm.m3u8 is not replaced either.)"""
    from tests.conftest import run_cli

    out = tmp_path / "lists"
    (out / "exciting.m3u8").mkdir(parents=True)
    (out / "calm.m3u8").write_text("#EXTM3U\nmine.mp3\n")
    proc = run_cli("playlists", "--db", library["db"], "-d", out, "--force", *model[0], env={"COLUMNS": "400"})
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == (f"error: {out / 'exciting.m3u8'}: a folder has the name of the exciting playlist; move it, "
                           "or choose another --out-dir\n")
    assert (out / "calm.m3u8").read_text() == "#EXTM3U\nmine.mp3\n" and (out / "exciting.m3u8").is_dir()


REFUSED = ("{file}: not replaced by the {mood} playlist: it has entries and no {mark}, the mark of a playlist "
           "moodtag wrote (a player that saved it, as MPD does after an edit, leaves it out, and moodtag 0.4 or "
           "earlier wrote none): move it, or --force to replace it\n")


def test_a_playlist_moodtag_did_not_write_is_replaced_only_with_force(library, model, tmp_path):
    """`playlists --for mpd` replaced the calm.m3u that `mpc save calm` had written into MPD's playlist folder
    (bare paths, no #EXTM3U), and `playlist -o` or `playlists` a user's own calm.m3u8 or calm.xspf, with exit
    status 0. A file with entries and without moodtag's mark is now an error naming it (exit status 1, every
    playlist checked before any is written, the file left byte for byte), --force replaces it, and what
    moodtag wrote (marked) is replaced by the next run without --force."""
    from tagger.playlists import m3u_mark
    from tests.conftest import run_cli

    db, root = library["db"], library["root"]
    m3u = "'# moodtag:' line"
    cases = [  # (the user's file, its text, the command, the mark the message names)
        ("mpd/calm.m3u", "Calm Song.wav\nsub dir/#2 deep one.ogg\n",  # as `mpc save calm` writes it
         ["playlists", "--for", "mpd", "--music-dir", root, "-d", tmp_path / "mpd"], m3u),
        ("lists/exciting.m3u8", "#EXTM3U\n#EXTINF:200,Zed - Loud\n../Music Library/sub dir/loud one.opus\n",
         ["playlists", "-d", tmp_path / "lists"], m3u),
        ("own/mine.m3u8", "/music/a.mp3\n", ["playlist", "calm", "-o", tmp_path / "own" / "mine.m3u8"], m3u),
        ("xspf/calm.xspf", '<?xml version="1.0" encoding="UTF-8"?>\n<playlist xmlns="http://xspf.org/ns/0/" '
         'version="1">\n  <title>Evening</title>\n  <creator>me</creator>\n  <trackList>\n    <track>\n      '
         '<location>file:///music/a.mp3</location>\n    </track>\n  </trackList>\n</playlist>\n',
         ["playlists", "--format", "xspf", "-d", tmp_path / "xspf"], "<creator>moodtag</creator>"),
    ]
    for name, text, command, mark in cases:
        mine = tmp_path / name
        mine.parent.mkdir()
        mine.write_text(text, encoding="utf-8")
        refused = run_cli(*command, "--db", db, *model[0], env={"COLUMNS": "400"})
        assert (refused.returncode, refused.stdout) == (1, ""), refused.stderr
        mood = "exciting" if "exciting" in name else "calm"
        assert refused.stderr == "error: " + REFUSED.format(file=mine, mood=mood, mark=mark)
        assert [p.name for p in mine.parent.iterdir()] == [mine.name]  # nothing written, not even the other mood's
        assert mine.read_bytes() == text.encode()
        replaced = run_cli(*command, "--force", "--db", db, *model[0])
        assert replaced.returncode == 0 and replaced.stderr.count("error") == 0, replaced.stderr
        first = mine.read_bytes()
        assert first != text.encode() and (f"#EXTM3U\n{m3u_mark(mood)}\n".encode() in first
                                           or b"<creator>moodtag</creator>" in first)
        again = run_cli(*command, "--db", db, *model[0])  # moodtag's own: replaced as before
        assert again.returncode == 0, again.stderr
        assert mine.read_bytes() == first


def test_an_unmarked_playlist_of_moodtag_0_4_needs_force_once_and_an_empty_file_none(library, model, tmp_path):
    """moodtag 0.4 wrote #EXTM3U, then #EXTINF and path lines, no mark: refused with the message that says
    --force is needed once; after it, the playlist is marked and replaced as moodtag's own. A file without
    entries (empty, or only #EXTM3U) has nothing to lose: replaced without a word, as before."""
    from tagger.playlists import m3u_mark
    from tests.conftest import run_cli

    out = tmp_path / "lists"
    out.mkdir()
    old = "#EXTM3U\n#EXTINF:241,Ann Artist - Quiet Night\n../Music Library/Calm Song.wav\n"
    (out / "calm.m3u8").write_text(old, encoding="utf-8")
    (out / "exciting.m3u8").write_text("#EXTM3U\n", encoding="utf-8")
    refused = run_cli("playlists", "--db", library["db"], "-d", out, *model[0], env={"COLUMNS": "400"})
    assert refused.returncode == 1 and refused.stderr == "error: " + REFUSED.format(
        file=out / "calm.m3u8", mood="calm", mark="'# moodtag:' line")
    assert (out / "calm.m3u8").read_text(encoding="utf-8") == old
    assert (out / "exciting.m3u8").read_text(encoding="utf-8") == "#EXTM3U\n"
    assert run_cli("playlists", "--db", library["db"], "-d", out, "--force", *model[0]).returncode == 0
    (out / "exciting.m3u8").write_bytes(b"")
    again = run_cli("playlists", "--db", library["db"], "-d", out, *model[0])
    assert again.returncode == 0 and "error" not in again.stderr, again.stderr
    for mood in ("calm", "exciting"):
        assert (out / f"{mood}.m3u8").read_text(encoding="utf-8").startswith(f"#EXTM3U\n{m3u_mark(mood)}\n#EXTINF:")
    check_entries([p for _, p in read_m3u((out / "calm.m3u8").read_text(encoding="utf-8"), out)], library, "calm")


@pytest.mark.parametrize("head", ["#EXTM3U\n\n{mark}\n", "#EXTM3U\n#PLAYLIST:Evening\n{mark}\n", "{mark}\n",
                                  "#extm3u\r\n{mark}\r\n", "\ufeff#EXTM3U\n  {mark}\n"])
def test_the_mark_is_found_where_an_editor_moved_it_and_not_after_an_entry(library, model, tmp_path, head):
    """The mark was looked for only as the line right after #EXTM3U: a blank line or a #PLAYLIST: title
    put before it, or #EXTM3U taken out or lower-cased, and moodtag refused its own playlist, saying it
    had no mark. Any line before the first entry carries it now; after an entry it is no mark."""
    from tagger.playlists import m3u_mark, written_by_moodtag

    path = tmp_path / "calm.m3u8"
    path.write_text(head.format(mark=m3u_mark("calm")) + "a.flac\n", encoding="utf-8", newline="")
    assert written_by_moodtag(path)
    path.write_text("#EXTM3U\na.flac\n" + m3u_mark("calm") + "\n", encoding="utf-8")
    assert not written_by_moodtag(path)


def test_a_playlist_kept_elsewhere_through_a_symlink_stays_linked_and_private(library, model, tmp_path):
    """The atomic rename replaced a symlink `calm.m3u8 -> ../mine/calm.m3u8` with a plain file (the
    user's own file never updated again) and made a 0600 playlist 0644."""
    out, mine = tmp_path / "lists", tmp_path / "mine"
    out.mkdir()
    mine.mkdir()
    (mine / "calm.m3u8").write_text("#EXTM3U\nold.mp3\n")
    (mine / "calm.m3u8").chmod(0o600)
    (out / "calm.m3u8").symlink_to(Path("..") / "mine" / "calm.m3u8")
    result = run(["playlists", "--db", str(library["db"]), "--out-dir", str(out), "--force"], model[0])
    assert result.exit_code == 0, result.output
    assert (out / "calm.m3u8").is_symlink() and os.readlink(out / "calm.m3u8") == str(Path("..") / "mine" / "calm.m3u8")
    text = (mine / "calm.m3u8").read_text(encoding="utf-8")
    assert "old.mp3" not in text
    check_entries([p for _, p in read_m3u(text, out)], library, "calm")
    assert stat.S_IMODE((mine / "calm.m3u8").stat().st_mode) == 0o600
    assert sorted(p.name for p in mine.iterdir()) == ["calm.m3u8"]  # no temporary file left
    assert stat.S_IMODE((out / "exciting.m3u8").stat().st_mode) == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _on_a_terminal(args: list) -> bytes:
    """What the real CLI writes to its standard output when that is a terminal (a pseudo-terminal)."""
    import pty
    import subprocess
    import sys

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "tagger", *map(str, args)], stdout=slave,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    os.close(slave)
    out = b""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the program has closed its side
            break
        if not data:
            break
        out += data
    os.close(master)
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    return out


def test_a_playlist_printed_on_a_terminal_cannot_drive_it(tmp_path, model):
    """A title holding an escape sequence went raw to the terminal in the #EXTINF line (the query
    table escaped the same value); into a pipe or a file the playlist stays byte for byte as written."""
    _, spec = model
    db, song = tmp_path / "c.db", tmp_path / "song.flac"
    song.write_bytes(b"not audio")
    with Cache.open(db) as cache:
        cache.record(_result(song, "calm", 0.1, spec), TrackRef.from_path(song),
                     info={"format": "flac", "duration": 10.0, "artist": "\x1b]0;owned\x07Band",
                           "title": "\x1b[31mred\x7f"})
    shown = _on_a_terminal(["playlist", "calm", "--db", db, *model[0]])
    assert b"\x1b" not in shown and b"\x07" not in shown and b"\x7f" not in shown
    assert b"\\x1b]0;owned\\x07Band - \\x1b[31mred\\x7f" in shown and str(song).encode() in shown
    from tests.conftest import run_cli

    piped = run_cli("playlist", "calm", "--db", db, *model[0], check=True).stdout
    assert "\x1b[31mred" in piped


def test_a_playlist_into_a_pipe_or_a_device_is_written_into_it_never_replacing_it(library, model, tmp_path):
    """-o FIFO (or /dev/stdout, a device) writes the playlist into it, as a shell's `>` would: the pipe stays
    a pipe (it was replaced by a regular file: as root, `-o /dev/null` replaced the system's /dev/null), and
    its paths are absolute, as when printed (a pipe has no folder of its own to be relative to)."""
    import threading

    from tests.conftest import run_cli

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    proc = run_cli("playlist", "calm", "--db", library["db"], "-o", fifo, *model[0], timeout=60)
    reader.join(30)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    paths = {path for _, path in read_m3u(got[0].decode("utf-8"), None)}
    assert paths == expected_calm(library, m3u=True) and all(p.startswith(os.sep) for p in paths)
    proc = run_cli("playlist", "calm", "--db", library["db"], "-o", "/dev/stdout", *model[0])
    assert proc.returncode == 0, proc.stderr
    assert {path for _, path in read_m3u(proc.stdout, None)} == expected_calm(library, m3u=True)


def test_a_playlist_never_writes_through_a_name_planted_beside_it(library, model, tmp_path):
    """The temporary file is made with a name of its own (O_EXCL): a symlink planted at the old fixed name
    `.calm.m3u8.tmp` is not followed (it made calm.m3u8 a link to the planted target), a file of the user's
    with that name stays, a new playlist gets the mode a plain file gets (0666 less the umask, not
    tempfile's 0600: MPD runs as another user), and a name as long as the file system allows is written
    (the temporary name had 5 bytes more)."""
    from tests.conftest import run_cli

    out = tmp_path / "out"
    out.mkdir()
    (out / ".calm.m3u8.tmp").symlink_to(tmp_path / "victim")
    (out / ".exciting.m3u8.tmp").write_text("mine")
    old = os.umask(0o022)
    try:
        proc = run_cli("playlists", "--db", library["db"], "-d", out, *model[0])
        long_name = out / ("x" * 250 + ".m3u8")
        longer = run_cli("playlist", "calm", "--db", library["db"], "-o", long_name, *model[0])
    finally:
        os.umask(old)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "victim").exists()
    assert not (out / "calm.m3u8").is_symlink() and (out / ".exciting.m3u8.tmp").read_text() == "mine"
    assert stat.S_IMODE((out / "calm.m3u8").stat().st_mode) == 0o644
    assert longer.returncode == 0, longer.stderr
    assert long_name.read_text(encoding="utf-8").startswith("#EXTM3U")
    assert sorted(p.name for p in out.iterdir()) == sorted([".calm.m3u8.tmp", ".exciting.m3u8.tmp", "calm.m3u8",
                                                            "exciting.m3u8", long_name.name])


def test_a_playlist_under_a_file_names_the_file(library, model, tmp_path):
    from tests.conftest import run_cli

    (tmp_path / "notes").write_text("x")
    proc = run_cli("playlist", "calm", "--db", library["db"], "-o", tmp_path / "notes" / "sub" / "calm.m3u8",
                   *model[0], env={"COLUMNS": "400"})
    assert proc.returncode == 1
    assert proc.stderr.strip().endswith(f"({tmp_path / 'notes'} is a file, not a folder)"), proc.stderr


def test_paths_resolve_from_where_the_playlist_really_is(library, model, tmp_path):
    """A playlist folder reached through a symlink (~/Playlists -> /data/playlists) or named through `link/..`:
    each line resolves, as a player's open() does it, from the folder the file really is in (the lines were
    worked out from the name as typed: '../Music/...' from /data/playlists went nowhere)."""
    from tests.conftest import run_cli

    real = tmp_path / "data" / "deeper" / "playlists"  # not as deep as the link: '..' lands elsewhere
    real.mkdir(parents=True)
    home = tmp_path / "home"
    home.mkdir()
    (home / "Playlists").symlink_to(real)
    (home / "lnk").symlink_to(real)
    for dest in (home / "Playlists" / "calm.m3u8", home / "lnk" / ".." / "dotdot.m3u8"):
        proc = run_cli("playlist", "calm", "--db", library["db"], "-o", dest, *model[0])
        assert proc.returncode == 0, proc.stderr
    for written in (real / "calm.m3u8", real.parent / "dotdot.m3u8"):
        lines = [line for line in written.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
        assert lines and not any(line.startswith(os.sep) for line in lines)
        resolved = {os.path.realpath(os.path.join(written.parent, line)) for line in lines}
        assert resolved == {os.path.realpath(p) for p in expected_calm(library, m3u=True)}


def test_a_playlist_for_mpd_must_have_a_name_mpd_lists(library, model, tmp_path):
    """MPD lists NAME.m3u with the suffix in lower case, and no name holding a line break."""
    from tests.conftest import run_cli

    for name in ("Calm.M3U", "calm.m3U", "two\nlines.m3u"):
        proc = run_cli("playlist", "calm", "--db", library["db"], "--for", "mpd", "--music-dir", library["root"],
                       "-o", tmp_path / name, *model[0])
        assert proc.returncode == 2 and "must be named NAME.m3u" in proc.stderr, (name, proc.stderr)
        assert not (tmp_path / name).exists()


def test_a_suffix_that_is_not_the_format_written_is_a_usage_error(library, model, tmp_path):
    """`-o calm.pls` wrote M3U8 text into a file players read as PLS, and `-o calm.m3u8 --format xspf` XML into
    an .m3u8, without a word: a usage error naming the file and what moodtag writes, nothing written. The
    suffixes of the format (.m3u and .m3u8 are the same text, in any case) and a name without one still write."""
    from tests.conftest import run_cli

    refused = [(["calm.pls"], "calm.pls: a .pls name, but moodtag writes M3U8 (.m3u8), M3U (.m3u) and XSPF (.xspf)"),
               (["calm.m3u8", "--format", "xspf"], "calm.m3u8: a .m3u8 name for the XSPF playlist that --format xspf "
                                                    "writes; name the file NAME.xspf, or leave out --format"),
               (["calm.xspf", "--format", "m3u"], "calm.xspf: a .xspf name for the M3U playlist that --format m3u"),
               (["calm.txt", "--format", "m3u8"], "calm.txt: a .txt name for the M3U8 playlist that --format m3u8")]
    for (name, *fmt), message in refused:
        proc = run_cli("playlist", "calm", "--db", library["db"], "-o", tmp_path / name, *fmt, *model[0],
                       env={"COLUMNS": "400"})
        assert proc.returncode == 2 and message in proc.stderr and proc.stdout == "", (name, proc.stderr)
        assert not (tmp_path / name).exists()
    for (name, *fmt), head in ((["a.M3U8"], "#EXTM3U"), (["b.m3u", "--format", "m3u8"], "#EXTM3U"),
                               (["c.XSPF"], "<?xml"), (["d.xspf", "--format", "xspf"], "<?xml"), (["e"], "#EXTM3U"),
                               (["Vol. 2"], "#EXTM3U"), (["J.S. Bach", "--format", "m3u"], "#EXTM3U")):  # no suffix
        proc = run_cli("playlist", "calm", "--db", library["db"], "-o", tmp_path / name, *fmt, *model[0])
        assert proc.returncode == 0, (name, proc.stderr)
        assert (tmp_path / name).read_text(encoding="utf-8").startswith(head), name


def test_standard_output_on_a_full_disk_is_one_line(library, model):
    """`moodtag playlist calm > /dev/full` (or query): one error line, exit status 1 (was a traceback)."""
    import subprocess
    import sys

    for args in (["playlist", "calm"], ["query"], ["query", "--json"]):
        with open("/dev/full", "w") as full:
            proc = subprocess.run([sys.executable, "-m", "tagger", *args, "--db", str(library["db"]),
                                   *(model[0] if args[0] == "playlist" else [])],
                                  stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
        assert proc.returncode == 1
        assert proc.stderr.splitlines() == ["error: cannot write to standard output (No space left on device)"], \
            proc.stderr


def test_many_names_mpd_strips_are_ten_warnings_and_one_line(model, tmp_path):
    """A library of names MPD cannot load (a leading space: MPD strips it) gave a warning per track:
    thousands of lines. The first ten are named, the rest one line with their cause."""
    _, spec = model
    root = tmp_path / "Music"
    root.mkdir()
    db = tmp_path / "c.db"
    with Cache.open(db) as cache:
        for i in range(14):
            path = root / f" {i:02d} space first.flac"
            path.write_bytes(b"x")
            cache.record(_result(path, "calm", 0.1, spec), TrackRef.from_path(path), info={"format": "flac"})
    result = run(["playlist", "calm", "--db", str(db), "--for", "mpd", "--music-dir", str(root),
                  "-o", str(tmp_path / "calm.m3u")], model[0])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(lines) == 11, result.stderr
    assert all(f" {i:02d} space first.flac" in lines[i] for i in range(10))
    assert "4 more calm tracks left out of the playlist: " in lines[10]
    assert "begins or ends with a space" in lines[10]


def test_mpd_playlists_are_not_emptied_while_the_music_folders_disk_is_away(tmp_path):
    """MPD's music folder on disk B, another library on disk A in the same cache: with B away (its folder
    empty), `playlists --for mpd --music-dir B` wrote empty calm.m3u and exciting.m3u, exit status 0, since A's
    files (there, but outside MPD's folder and left out) counted as "some of its files on disk". Only the
    tracks in the music folder count: the playlists are kept, exit status 1, one line each."""
    from tagger import synth
    from tests.conftest import run_cli

    a, b, db = tmp_path / "a", tmp_path / "b", tmp_path / "c.db"
    for folder in (a, b):
        for i, mood in enumerate(("calm", "exciting")):
            folder.mkdir(exist_ok=True)
            synth.make_track(folder / f"{mood}{i}.ogg", mood, 6.0, seed=i)
    run_cli("scan", a, b, "--db", db, "--jobs", "1", "--no-write", check=True)
    out = tmp_path / "mpd"
    command = ("playlists", "--db", db, "--for", "mpd", "--music-dir", b, "--out-dir", out, "--any-model")
    run_cli(*command, check=True)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert any(m3u_lines(out / name) for name in before), before  # (the model's moods decide which)
    shutil.move(str(b), str(tmp_path / "away"))
    b.mkdir()  # the mount point, its disk away
    proc = run_cli(*command)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "not replaced by an empty" in proc.stderr, proc.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
