"""moodtag's playlists in a real MPD: a daemon started by the test (its own config, a null audio output,
loopback only), a small real library scanned by the real CLI, playlists written into MPD's
playlist_directory, and MPD's own answers over its protocol: every playlist listed, every entry resolved
to a song of MPD's database, and what MPD shows of the mood for the installed version.

Skipped only when `mpd` is not installed and CI is unset; under CI a missing mpd fails.
"""
from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import time
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from tagger import synth
from tagger.weights import read_spec, resolve_model
from tests.conftest import run_cli

# name under the music folder -> mood the synthetic track is rendered as (the model decides the tag)
TRACKS = {
    "Calm Song.flac": "calm",
    "Ünïcødé café ☕.mp3": "exciting",
    "sub dir/#2 deep one.ogg": "calm",
    "Party [live] 100%.m4a": "exciting",
    "#hash first.opus": "calm",
    "Straße & Co.wav": "exciting",
    "sub dir/aiff one.aiff": "calm",
    "back\\slash.flac": "exciting",  # the cache keeps its bytes (its key doubles the backslash); MPD loads it
    "\u00a0no-break space.ogg": "calm",  # not ASCII: MPD does not strip it, so it loads
}
LEADING_SPACE = " lead space.opus"        # MPD strips the space from a playlist line: left out
CONTROL_END = "ends in a control\x01/c.flac"  # and a control character (bytes up to 0x20) at a name's end: left out
OUTSIDE = "Elsewhere/far away.flac"       # beside the music folder: MPD cannot reach it, left out
VORBIS_SUFFIXES = (".flac", ".ogg", ".opus")


def find_mpd() -> str:
    path = shutil.which("mpd") or ("/usr/bin/mpd" if os.access("/usr/bin/mpd", os.X_OK) else None)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("mpd is not installed, and CI must run this test (.ci/run installs Debian's mpd)")
        pytest.skip("mpd is not installed (Debian: apt-get install mpd); CI runs this test")
    return path


class MpdError(Exception):
    """An ACK line from MPD."""


class MpdClient:
    """Just enough of the MPD protocol: one command, its `key: value` lines, OK or ACK."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.file = self.sock.makefile("rwb")
        hello = self.file.readline().decode()
        assert hello.startswith("OK MPD "), hello
        self.protocol = hello.split()[2]

    def command(self, name: str, *args: str) -> list[tuple[str, str]]:
        quoted = ['"' + a.replace("\\", "\\\\").replace('"', '\\"') + '"' for a in args]
        self.file.write((" ".join([name, *quoted]) + "\n").encode("utf-8"))
        self.file.flush()
        pairs = []
        while True:
            line = self.file.readline().decode("utf-8").rstrip("\n")
            if line == "OK":
                return pairs
            if line.startswith("ACK") or not line:
                raise MpdError(line or "connection closed")
            key, _, value = line.partition(": ")
            pairs.append((key, value))

    def values(self, name: str, *args: str, key: str) -> list[str]:
        return [v for k, v in self.command(name, *args) if k == key]

    def loaded(self, playlist: str) -> list[str]:
        """The queue's files after `load PLAYLIST` into an empty queue."""
        self.command("clear")
        self.command("load", playlist)
        return self.values("playlistinfo", key="file")

    def update(self) -> None:
        """Rescan the music folder and wait until MPD has finished."""
        self.command("update")
        deadline = time.monotonic() + 60
        while any(k == "updating_db" for k, _ in self.command("status")):
            assert time.monotonic() < deadline, "MPD's database update did not finish in 60 s"
            time.sleep(0.05)

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mpd_setup(tmp_path_factory) -> dict:
    """A real library scanned by the real CLI, and a real MPD whose music_directory it is."""
    mpd = find_mpd()
    root = tmp_path_factory.mktemp("mpd")
    music, playlists = root / "Music", root / "playlists"
    playlists.mkdir()
    for i, (name, mood) in enumerate([*TRACKS.items(), (LEADING_SPACE, "calm"), (CONTROL_END, "exciting")]):
        (music / name).parent.mkdir(parents=True, exist_ok=True)
        synth.make_track(music / name, mood, 8.0, seed=i)
    (root / OUTSIDE).parent.mkdir(parents=True)
    synth.make_track(root / OUTSIDE, "calm", 8.0, seed=99)
    db = root / "moodtag.db"
    run_cli("scan", music, root / OUTSIDE, "--db", db, check=True)

    port = free_port()
    conf = root / "mpd.conf"
    conf.write_text(
        f'music_directory "{music}"\nplaylist_directory "{playlists}"\ndb_file "{root / "mpd.db"}"\n'
        f'pid_file "{root / "mpd.pid"}"\nlog_file "{root / "mpd.log"}"\nbind_to_address "127.0.0.1"\n'
        f'port "{port}"\nauto_update "no"\nzeroconf_enabled "no"\n'
        'audio_output {\n  type "null"\n  name "null"\n}\n', encoding="utf-8")
    log = open(root / "mpd.out", "wb")
    proc = subprocess.Popen([mpd, "--no-daemon", str(conf)], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    client = None
    try:
        deadline = time.monotonic() + 20
        while client is None:
            if proc.poll() is not None:
                pytest.fail(f"mpd exited with {proc.returncode}: {(root / 'mpd.out').read_text(errors='replace')}")
            try:
                client = MpdClient(port)
            except OSError:
                assert time.monotonic() < deadline, "mpd did not listen within 20 s"
                time.sleep(0.1)
        version = subprocess.run([mpd, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
        yield {"root": root, "music": music, "playlists": playlists, "db": db, "client": client, "version": version}
    finally:
        if client is not None:
            client.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def cached_moods(db: Path) -> dict[str, str]:
    """Each analysed file's real path (its name's bytes where the key escapes them) -> its mood."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT path, path_bytes, mood FROM tracks WHERE status = 'ok'")
        return {path if raw is None else os.fsdecode(raw): mood for path, raw, mood in rows}


def m3u_paths(path: Path) -> list[str]:
    """The path lines of an M3U, split as MPD splits it: on \\n only (not str.splitlines' \\v, U+2028 and others)."""
    return [line for line in path.read_text(encoding="utf-8").split("\n") if line and not line.startswith("#")]


def test_mpd_lists_and_loads_every_playlist(mpd_setup):
    from tagger.playlists import m3u_mark

    music, playlists, client = mpd_setup["music"], mpd_setup["playlists"], mpd_setup["client"]
    result = run_cli("playlists", "--db", mpd_setup["db"], "--for", "mpd", "--music-dir", music,
                     "--out-dir", playlists, check=True)
    moods = cached_moods(mpd_setup["db"])
    labels = sorted(read_spec(resolve_model(None)).labels)  # the default model's: one playlist each
    assert sorted(p.name for p in playlists.iterdir()) == [f"{m}.m3u" for m in labels]
    # the two tracks MPD could not load are left out, each with its reason
    assert "begins or ends with a space" in result.stderr and LEADING_SPACE.strip() in result.stderr
    assert "ends in a control\\x01/c.flac" in result.stderr  # named, the control character escaped
    assert "outside the music folder" in result.stderr and "far away.flac" in result.stderr

    client.update()
    assert sorted(client.values("listplaylists", key="playlist")) == labels
    database = set(client.values("listall", key="file"))
    seen = []
    for mood in labels:
        # moodtag's mark, the line after #EXTM3U: a comment to MPD, which loads every entry all the same
        assert (playlists / f"{mood}.m3u").read_text(encoding="utf-8").split("\n")[:2] == ["#EXTM3U", m3u_mark(mood)]
        written = m3u_paths(playlists / f"{mood}.m3u")
        expected = [os.path.normpath(p) for p in written]
        assert client.values("listplaylist", mood, key="file") == expected
        loaded = client.loaded(mood)
        assert loaded == expected, f"MPD loaded {len(loaded)} of {len(written)} entries of {mood}.m3u"
        assert set(loaded) <= database
        for uri in loaded:
            assert moods[str(music / uri)] == mood
        seen += loaded
    # every track MPD can reach is in exactly one playlist
    assert sorted(seen) == sorted(TRACKS)


def test_a_music_folder_named_or_scanned_through_a_symlink(mpd_setup, tmp_path):
    """Debian's /var/lib/mpd/music is often a link to ~/Music: --music-dir named through a link to MPD's
    music_directory, or a library scanned through one, gives the playlists of the plain case, and MPD loads
    every entry of them."""
    music, playlists, client = mpd_setup["music"], mpd_setup["playlists"], mpd_setup["client"]
    link = tmp_path / "music-link"
    link.symlink_to(music)
    through = tmp_path / "through-link.db"
    run_cli("scan", link, "--db", through, "--no-write", check=True)
    assert all(path.startswith(str(link) + os.sep) for path in cached_moods(through))
    written = {}
    for case, db, music_dir in (("plain", mpd_setup["db"], music), ("named", mpd_setup["db"], link),
                                ("scanned", through, music)):
        result = run_cli("playlists", "--db", db, "--for", "mpd", "--music-dir", music_dir,
                         "--out-dir", tmp_path / case, check=True)
        assert ("outside the music folder" in result.stderr) == (db == mpd_setup["db"])  # the fixture's one beside it
        written[case] = {p.name: m3u_paths(p) for p in (tmp_path / case).iterdir()}
    assert written["named"] == written["plain"] == written["scanned"]
    client.update()
    loaded = []
    for name, paths in written["scanned"].items():
        shutil.copyfile(tmp_path / "scanned" / name, playlists / f"link-{name}")
        assert client.loaded(f"link-{Path(name).stem}") == [os.path.normpath(p) for p in paths]
        (playlists / f"link-{name}").unlink()
        loaded += paths
    assert sorted(os.path.normpath(p) for p in loaded) == sorted(TRACKS)


def test_tracks_reached_through_a_folder_link_inside_the_music_folder(mpd_setup, tmp_path):
    """Music/NAS -> /nas/music, the NAS scanned by its own path: --for mpd left its tracks out as outside the
    music folder, though MPD follows the link and loads them as NAS/...: they are written through the link,
    and MPD loads every entry; a track behind no link (the fixture's one beside the music folder) is still
    left out, with its warning."""
    music, playlists, client = mpd_setup["music"], mpd_setup["playlists"], mpd_setup["client"]
    nas = tmp_path / "nas" / "music"
    names = {"Album/one.flac": "calm", "Album/two [2].mp3": "exciting", "three.ogg": "calm", "Deep/er/four.opus": "exciting"}
    for i, (name, mood) in enumerate(names.items()):
        (nas / name).parent.mkdir(parents=True, exist_ok=True)
        synth.make_track(nas / name, mood, 8.0, seed=60 + i)
    db = tmp_path / "nas.db"
    run_cli("scan", nas, mpd_setup["root"] / OUTSIDE, "--db", db, "--no-write", check=True)
    link = music / "NAS"
    link.symlink_to(nas, target_is_directory=True)
    try:
        result = run_cli("playlists", "--db", db, "--for", "mpd", "--music-dir", music, "--out-dir", tmp_path / "pl",
                         check=True)
        assert result.stderr.count("outside the music folder") == 1 and "far away.flac" in result.stderr
        written = _loaded_by_mpd(tmp_path / "pl", playlists, client, "nas")
        assert sorted(p for paths in written.values() for p in paths) == sorted(f"NAS/{name}" for name in names)
    finally:
        link.unlink()
        client.update()


def _loaded_by_mpd(out: Path, playlists: Path, client, prefix: str) -> dict[str, list[str]]:
    """Each playlist moodtag wrote into `out` (mood -> its entries), after checking that MPD, given it in its
    playlist folder as PREFIX-MOOD.m3u, loads every entry of it."""
    written = {p.stem: m3u_paths(p) for p in out.iterdir()}
    client.update()
    for mood, paths in written.items():
        shutil.copyfile(out / f"{mood}.m3u", playlists / f"{prefix}-{mood}.m3u")
        assert client.loaded(f"{prefix}-{mood}") == paths, f"MPD loaded not every entry of {mood}"
        (playlists / f"{prefix}-{mood}.m3u").unlink()
    return written


def test_names_holding_a_vertical_tab_or_a_unicode_line_separator_load(mpd_setup, tmp_path):
    """MPD splits a playlist on \\n only: a name holding \\v, \\f, \\x1c-\\x1e, U+0085, U+2028 or U+2029 inside
    is one line to it, and loads. --for mpd left them out as holding a line break; it writes them now, and MPD
    loads every entry."""
    music, playlists, client = mpd_setup["music"], mpd_setup["playlists"], mpd_setup["client"]
    odd = music / "odd names"
    names = ["v\x0bmid.flac", "f\x0cmid.ogg", "fs\x1cmid.flac", "gs\x1dmid.opus", "rs\x1emid.flac",
             "nel\x85mid.ogg", "ls\u2028mid.flac", "ps\u2029mid.opus"]
    odd.mkdir()
    try:
        for i, name in enumerate(names):
            made = odd / f"track{i}{Path(name).suffix}"
            synth.make_track(made, "calm" if i % 2 else "exciting", 8.0, seed=70 + i)
            try:
                made.rename(odd / name)
            except OSError as exc:
                pytest.skip(f"this file system takes no name {name!r} ({exc})")
        db = tmp_path / "odd.db"
        run_cli("scan", odd, "--db", db, "--no-write", check=True)
        result = run_cli("playlists", "--db", db, "--for", "mpd", "--music-dir", music, "--out-dir", tmp_path / "pl",
                         check=True)
        assert "line break" not in result.stderr, result.stderr
        written = _loaded_by_mpd(tmp_path / "pl", playlists, client, "odd")
        assert sorted(p for paths in written.values() for p in paths) == sorted(f"odd names/{n}" for n in names)
    finally:
        shutil.rmtree(odd)
        client.update()


def test_the_explicit_m3u_recipe_is_the_same(mpd_setup, tmp_path):
    """`--format m3u --relative-to MUSIC` (only the music folder's tracks) writes what `--for mpd` writes."""
    music, playlists = mpd_setup["music"], mpd_setup["playlists"]
    run_cli("playlists", "--db", mpd_setup["db"], "--for", "mpd", "--music-dir", music, "--out-dir", playlists,
            check=True)
    run_cli("playlists", music, "--db", mpd_setup["db"], "--format", "m3u", "--relative-to", music,
            "--out-dir", tmp_path, check=True)
    for path in playlists.iterdir():
        explicit = m3u_paths(tmp_path / path.name)
        assert [p for p in explicit if p not in ("./" + LEADING_SPACE, CONTROL_END)] == m3u_paths(path)


def test_mpd_strips_leading_spaces_and_reads_no_relative_m3u8_in_its_playlist_folder(mpd_setup):
    """What the MPD layout guards against, shown with MPD itself."""
    music, playlists, client = mpd_setup["music"], mpd_setup["playlists"], mpd_setup["client"]
    client.update()
    assert LEADING_SPACE in client.values("listall", key="file")
    (playlists / "probe-space.m3u").write_text(f"./{LEADING_SPACE}\n", encoding="utf-8")
    assert client.loaded("probe-space") == []
    # the default layout (paths relative to the playlist's own folder, .m3u8) is not for this folder
    run_cli("playlist", "calm", "--db", mpd_setup["db"], "-o", playlists / "calm-default.m3u8", check=True)
    run_cli("playlist", "calm", "--db", mpd_setup["db"], "-o", playlists / "calm-renamed.m3u", check=True)
    names = client.values("listplaylists", key="playlist")
    assert "calm-default" not in names and "calm-renamed" in names
    assert client.loaded("calm-renamed") == []
    for name in ("probe-space.m3u", "calm-default.m3u8", "calm-renamed.m3u"):
        (playlists / name).unlink()


def test_playlists_inside_the_music_folder(mpd_setup):
    """MPD also loads playlist files from its music folder: M3U8 relative to its own folder fully; XSPF only
    where a location needs no percent-escape (MPD 0.23 takes <location> verbatim, see README)."""
    music, client = mpd_setup["music"], mpd_setup["client"]
    lists = music / "lists"
    run_cli("playlists", "--db", mpd_setup["db"], "--out-dir", lists, check=True)
    run_cli("playlists", "--db", mpd_setup["db"], "--out-dir", lists, "--format", "xspf", check=True)
    client.update()
    for m3u8 in sorted(lists.glob("*.m3u8")):
        written = [os.path.relpath(os.path.normpath(lists / p), music) for p in m3u_paths(m3u8)]
        inside = [p for p in written if not p.startswith("..") and p not in (LEADING_SPACE, CONTROL_END)]  # MPD strips
        assert client.loaded(f"lists/{m3u8.name}") == inside
    for xspf in sorted(lists.glob("*.xspf")):
        locations = [e.text for e in ET.parse(xspf).iter("{http://xspf.org/ns/0/}location")]
        unescaped = [os.path.relpath(os.path.normpath(lists / loc), music) for loc in locations if "%" not in loc]
        plain = [p for p in unescaped if not p.startswith("..")]
        assert len(plain) < len(locations)  # the library's names need escapes
        assert client.loaded(f"lists/{xspf.name}") == plain, (
            "MPD now decodes percent-escapes in XSPF locations: update the players table in README.md")
    shutil.rmtree(lists)
    client.update()


def test_what_mpd_shows_of_the_mood(mpd_setup):
    """Records what the installed MPD reports: the Mood tag where it has one (0.24 on), else only the raw
    comments `readcomments` lists."""
    music, client = mpd_setup["music"], mpd_setup["client"]
    client.update()
    moods = cached_moods(mpd_setup["db"])
    tagtypes = client.values("tagtypes", key="tagtype")
    if "Mood" in tagtypes:
        for mood in sorted(set(moods.values())):
            found = set(client.values("find", f'(Mood == "{mood}")', key="file"))
            for name in TRACKS:
                if name.endswith(VORBIS_SUFFIXES):
                    assert (name in found) == (moods[str(music / name)] == mood), (name, mood)
        return
    with pytest.raises(MpdError, match="Unknown tag type"):
        client.command("list", "mood")
    shown = {}
    for name in TRACKS:
        comments = dict(client.command("readcomments", name))
        shown[name] = comments.get("MOOD")
    for name, value in shown.items():
        if name.endswith((*VORBIS_SUFFIXES, ".m4a")):  # Vorbis comments; MP4 through FFmpeg
            assert value == moods[str(music / name)], (mpd_setup["version"], name, value)
        else:  # ID3 (MP3, WAV, AIFF): readcomments lists TXXX frames only, not TMOO
            assert value is None, (mpd_setup["version"], name, value)
