"""The beets plugin against a real beets library: real files imported by the real `beet import`, the
real `beet moodtag`, `beet ls` queries and the smartplaylist plugin, each in its own process.

beets finds the plugin through its `pluginpath` (this checkout's tagger/beetsplug folder, the file the
wheel installs as beetsplug/moodtag.py; tests/test_packaging.py checks the installed layout).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tagger import synth
from tagger.tags import read_mood
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parent.parent
# name -> (mood, seed): synthetic tracks the shipped model classifies as named, with margin
# (calm in lossless containers: see MODEL_CARD on lossy noise between pure tones)
TRACKS = {"calm_a.flac": ("calm", 5), "calm_b.wav": ("calm", 2),
          "exciting_a.mp3": ("exciting", 3), "exciting_b.ogg": ("exciting", 4)}


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("originals")
    for name, (mood, seed) in TRACKS.items():
        synth.make_track(folder / name, mood, 20.0, seed=seed)
    return folder


class Beets:
    """A beets set-up of its own (BEETSDIR: config.yaml, library.db) over a copy of the tracks."""

    def __init__(self, root: Path, originals: Path, **config) -> None:
        self.music = root / "music"
        shutil.copytree(originals, self.music)
        self.dir = root / "beets"
        self.dir.mkdir()
        self.cache = self.dir / "moodtag.db"
        (root / "library").mkdir()  # beets' `directory`: `beet update` asks before using a missing one
        settings = {"directory": str(root / "library"), "library": str(self.dir / "library.db"),
                    "pluginpath": [str(ROOT / "tagger" / "beetsplug")], "plugins": ["moodtag"],
                    "import": {"copy": False, "write": False},
                    "moodtag": {"db": str(self.cache), "jobs": 2}}
        for key, value in config.items():
            settings[key] = {**settings[key], **value} if isinstance(value, dict) and key in settings else value
        (self.dir / "config.yaml").write_text(json.dumps(settings))  # JSON is YAML

    def __call__(self, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
        """`beet ARGS` with `env` added to the environment (without the caller's MOODTAG_DB, which the
        plugin falls back to)."""
        env = dict({k: v for k, v in os.environ.items() if k != "MOODTAG_DB"}, BEETSDIR=str(self.dir),
                   PYTHONPATH=str(ROOT), **(env or {}))
        proc = subprocess.run([sys.executable, "-m", "beets", *args], capture_output=True, text=True, env=env,
                              timeout=300)
        if check and proc.returncode != 0:
            raise AssertionError(f"beet {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def paths(self, *query: str) -> set[str]:
        """The file names of the items a `beet ls` query returns."""
        out = self("ls", "-f", "$path", *query).stdout
        return {Path(line).name for line in out.splitlines() if line}

    def fields(self, template: str) -> dict[str, str]:
        """File name -> the item's `template` (beets' format) for every item."""
        out = self("ls", "-f", f"$path\t{template}").stdout
        return {Path(p).name: v for p, v in (line.split("\t") for line in out.splitlines() if line)}

    def stored_mtimes(self) -> dict[str, float]:
        with sqlite3.connect(self.dir / "library.db") as db:
            return {Path(os.fsdecode(p)).name: m for p, m in db.execute("SELECT path, mtime FROM items")}

    def digests(self) -> dict[str, str]:
        return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in self.music.iterdir()}


def names(mood: str) -> set[str]:
    return {name for name, (m, _) in TRACKS.items() if m == mood}


def test_moodtag_command_stores_a_queryable_mood_and_a_second_run_analyses_nothing(tmp_path, originals):
    beet = Beets(tmp_path, originals, moodtag={"auto": False})
    beet("import", "-A", "-q", str(beet.music))
    assert set(beet.fields("$mood").values()) == {"$mood"}  # imported, no mood yet
    before = beet.digests()

    run = beet("moodtag")
    assert "4 items: 4 analysed, 0 unchanged (cached), 0 failed, tags written 0" in run.stderr, run.stderr
    assert beet.fields("$mood") == {name: mood for name, (mood, _) in TRACKS.items()}
    assert beet.paths("mood:calm") == names("calm") and beet.paths("mood:exciting") == names("exciting")
    confidence = {name: float(v) for name, v in beet.fields("$mood_confidence").items()}
    assert all(0.5 <= c <= 1.0 for c in confidence.values()), confidence
    # a numeric range query: mood_confidence is declared a float (item_types), not compared as text
    cut = sorted(confidence.values())[1] + 0.001
    assert beet.paths(f"mood_confidence:{cut:.3f}..") == {n for n, c in confidence.items() if c >= cut}
    assert beet.digests() == before  # write: no leaves the files' bytes as they were

    again = beet("moodtag")
    assert "4 items: 0 analysed, 4 unchanged (cached)" in again.stderr, again.stderr
    one = beet("moodtag", "-f", "mood:calm", f"path:{beet.music / 'calm_b.wav'}")
    assert "1 item: 1 analysed" in one.stderr, one.stderr  # the query chooses the items; -f analyses again
    assert beet.digests() == before


def test_write_yes_puts_the_mood_in_the_files_and_beets_stores_their_new_mtime(tmp_path, originals):
    beet = Beets(tmp_path, originals, moodtag={"auto": False}, **{"import": {"write": True}})
    beet("import", "-A", "-q", str(beet.music))
    before = beet.digests()
    nowrite = beet("moodtag", "-W")  # -W overrides the config's write
    assert "tags written 0" in nowrite.stderr and beet.digests() == before

    run = beet("moodtag")  # cached results, now written into the files
    assert "0 analysed, 4 unchanged (cached), 0 failed, tags written 4" in run.stderr, run.stderr
    moods = beet.fields("$mood")
    for name in TRACKS:
        values = read_mood(beet.music / name)
        assert values is not None and values.mood == moods[name], name
        assert values.model.startswith("moodtag-rhythm ")
    stored = beet.stored_mtimes()
    assert stored == {name: float(int(os.path.getmtime(beet.music / name))) for name in TRACKS}
    assert beet("update", "-p").stdout.strip() == ""  # beets sees nothing changed behind its back


def test_import_sets_the_mood_and_writes_it_when_the_import_writes(tmp_path, originals):
    # moodtag.auto: the default (yes); two albums (untagged, so alike: keep both), analysed in one scan
    beet = Beets(tmp_path, originals, **{"import": {"write": True, "duplicate_action": "keep"}})
    albums = {"calm_a.flac": "one", "exciting_a.mp3": "one", "calm_b.wav": "two", "exciting_b.ogg": "two"}
    for name, album in albums.items():
        (beet.music / album).mkdir(exist_ok=True)
        (beet.music / name).rename(beet.music / album / name)
    run = beet("-v", "import", "-A", "-q", str(beet.music))
    assert [line for line in run.stderr.splitlines() if " analysed, " in line] == [
        "moodtag: 4 items: 4 analysed, 0 unchanged (cached), 0 failed, tags written 4; calm 2, exciting 2"]
    assert beet.fields("$mood") == {name: mood for name, (mood, _) in TRACKS.items()}
    files = {name: beet.music / album / name for name, album in albums.items()}
    assert all(read_mood(files[name]).mood == mood for name, (mood, _) in TRACKS.items())
    assert beet.stored_mtimes() == {name: float(int(os.path.getmtime(f))) for name, f in files.items()}
    assert "0 analysed, 4 unchanged (cached)" in beet("moodtag").stderr  # the import's results are cached


def test_import_without_write_leaves_the_files_alone(tmp_path, originals):
    beet = Beets(tmp_path, originals)
    before = beet.digests()
    beet("import", "-A", "-q", str(beet.music))
    assert beet.paths("mood:calm") == names("calm") and beet.digests() == before


def test_a_bad_file_is_one_line_and_the_rest_go_through(tmp_path, originals):
    """Each failed item is one `failed:` line and is counted; the run completed, so the exit status is 0,
    as `moodtag scan`'s is when some files failed (README: both say so)."""
    beet = Beets(tmp_path, originals, moodtag={"auto": False})
    beet("import", "-A", "-q", str(beet.music))
    garbage = beet.music / "exciting_b.ogg"
    garbage.write_bytes(os.urandom(garbage.stat().st_size))
    (beet.music / "calm_b.wav").unlink()

    run = beet("moodtag", check=False)
    assert run.returncode == 0, run.stderr
    failures = [line for line in run.stderr.splitlines() if line.startswith("failed:")]
    assert len(failures) == 2, run.stderr
    assert any(str(garbage) in line for line in failures)
    assert any("calm_b.wav: no such file or folder" in line for line in failures)
    assert "4 items: 2 analysed, 0 unchanged (cached), 2 failed" in run.stderr
    assert beet.fields("$mood") == {"calm_a.flac": "calm", "exciting_a.mp3": "exciting",
                                    "calm_b.wav": "$mood", "exciting_b.ogg": "$mood"}


def test_a_file_that_failed_before_is_counted_on_the_next_run(tmp_path, originals):
    """A file that failed was counted `unchanged (cached)` and `0 failed` by every later `beet moodtag`,
    as if fine, where `moodtag scan` says `failed before, unchanged (--force tries again)`; -f tries it."""
    beet = Beets(tmp_path, originals, moodtag={"auto": False})
    beet("import", "-A", "-q", str(beet.music))
    garbage = beet.music / "exciting_b.ogg"
    garbage.write_bytes(os.urandom(garbage.stat().st_size))
    assert "4 items: 3 analysed, 0 unchanged (cached), 1 failed, tags written 0;" in beet("moodtag").stderr

    run = beet("moodtag")
    assert ("4 items: 0 analysed, 4 unchanged (cached), 0 failed, 1 failed before and unchanged (-f tries "
            "again), tags written 0;") in run.stderr, run.stderr
    run = beet("moodtag", "-f", f"path:{garbage}")
    assert "1 item: 0 analysed, 0 unchanged (cached), 1 failed, tags written 0" in run.stderr, run.stderr


def test_an_item_whose_path_holds_a_folder_now_is_one_line_and_the_folder_is_not_walked(tmp_path, originals):
    """An item's file replaced by a folder of audio gave no `failed:` line, and the scan walked the
    folder: its files, no items of the library, were analysed, tagged and cached. The item's path is
    taken as a file only: one line (the walk's wording for a FIFO there), and its row marked missing."""
    beet = Beets(tmp_path, originals)
    beet("import", "-A", "-q", str(beet.music))  # auto: the four analysed
    item = beet.music / "calm_a.flac"
    item.unlink()
    item.mkdir()
    stranger = item / "stranger.mp3"
    shutil.copy(originals / "exciting_a.mp3", stranger)
    before = stranger.read_bytes()

    run = beet("moodtag", "-w")
    failures = [line for line in run.stderr.splitlines() if line.startswith("failed:")]
    assert failures == [f"failed: {item}: not a regular file (a folder), skipped"], run.stderr
    assert "4 items: 0 analysed, 3 unchanged (cached), 1 failed, tags written 3;" in run.stderr, run.stderr
    assert stranger.read_bytes() == before and beet.fields("$mood")["calm_a.flac"] == "calm"
    assert dict(cache_rows(beet)) == {**{str(beet.music / n): "ok" for n in TRACKS}, str(item): "missing"}


def test_smartplaylist_builds_a_playlist_from_the_mood(tmp_path, originals):
    playlists = tmp_path / "playlists"
    beet = Beets(tmp_path, originals, plugins=["moodtag", "smartplaylist"],
                 smartplaylist={"playlist_dir": str(playlists), "auto": False,
                                "playlists": [{"name": "calm.m3u", "query": "mood:calm"},
                                              {"name": "exciting.m3u", "query": "mood:exciting"}]})
    beet("import", "-A", "-q", str(beet.music))
    beet("splupdate")
    for mood in ("calm", "exciting"):
        lines = (playlists / f"{mood}.m3u").read_text().split()
        assert {Path(line).name for line in lines} == names(mood)


def test_dry_run_stores_and_writes_nothing(tmp_path, originals):
    beet = Beets(tmp_path, originals, moodtag={"auto": False}, **{"import": {"write": True}})
    beet("import", "-A", "-q", str(beet.music))
    before = beet.digests()
    run = beet("moodtag", "--dry-run")
    assert sum(line.startswith("would set mood ") for line in run.stderr.splitlines()) == 4, run.stderr
    assert beet.paths("mood:calm") == set() and beet.digests() == before and not beet.cache.exists()


def test_dry_run_says_would_set_only_for_items_that_would_get_the_mood(tmp_path, originals):
    """`beet moodtag -p` said `would set mood calm` for an item whose own mood a real run keeps (beside
    its `kept:` line); now each item that would get moodtag's mood has one line, and a kept one none."""
    beet = Beets(tmp_path, originals, moodtag={"auto": False})
    beet("import", "-A", "-q", str(beet.music))  # no mood yet
    own = beet.music / "calm_a.flac"
    beet("modify", "-y", "mood=dreamy", f"path:{own}")

    run = beet("moodtag", "-p")
    lines = run.stderr.splitlines()
    would = sorted(line.rsplit(": ", 1)[1] for line in lines if line.startswith("would set mood "))
    assert would == sorted(str(beet.music / n) for n in TRACKS if n != own.name), run.stderr
    assert [line for line in lines if line.startswith("kept:")] == [
        f"kept: {own}: the item's own mood 'dreamy' (not moodtag's calm) is kept (--replace-mood replaces it)"]
    assert beet.fields("$mood")["calm_a.flac"] == "dreamy"


def test_dry_run_says_nothing_of_items_that_hold_the_mood_already(tmp_path, originals):
    """`beet moodtag -p` on a library moodtag had stored said `would set mood ...` for every item, though
    a real run changed none. Now only an item whose mood or confidence would change has its line."""
    beet = Beets(tmp_path, originals)
    beet("import", "-A", "-q", str(beet.music))  # auto: the four analysed and stored
    run = beet("moodtag", "-p")
    assert "4 items: 0 analysed, 4 unchanged (cached)" in run.stderr, run.stderr
    assert "would set" not in run.stderr, run.stderr

    would_set_only_a_changed_confidence(beet)
    assert beet.fields("$mood_confidence")["calm_b.wav"] == "0.10"  # a dry run stores nothing


def test_an_unusable_model_is_one_error_line(tmp_path, originals):
    beet = Beets(tmp_path, originals, moodtag={"auto": False})
    beet("import", "-A", "-q", str(beet.music))
    run = beet("moodtag", "--model", str(tmp_path / "nope.safetensors"), check=False)
    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "nope.safetensors" in errors[0], run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("setting, message", [
    ({"db": 5}, "configuration error: moodtag.db: must be a string"),
    ({"model": 123}, "configuration error: moodtag.model: must be a string"),
    ({"auto": "maybe"}, "configuration error: moodtag.auto: must be a bool"),
    ({"jobs": -1}, "configuration error: moodtag.jobs: must be 0 (one per core) or more, not -1"),
    ({"jobs": 1.5}, "configuration error: moodtag.jobs: must be a whole number"),
    ({"db": ""}, "configuration error: moodtag.db: an empty path (an unset variable?)"),
])
def test_a_bad_setting_is_one_configuration_error(tmp_path, originals, setting, message):
    """A number for moodtag.db or moodtag.model ended in a TypeError traceback, and `auto: maybe` in a
    traceback while loading the plugin, after which beets knew no `moodtag` command. Now each is one
    line, as beets gives for its own settings (and as `jobs: abc` already gave)."""
    beet = Beets(tmp_path, originals, moodtag=setting)
    run = beet("moodtag", check=False)
    assert "Traceback" not in run.stderr and message in run.stderr, run.stderr
    if "auto" in setting:  # the plugin loads, with imports left alone, and its command works
        assert run.returncode == 0 and "0 items" in run.stderr, run.stderr
    else:
        assert run.returncode == 1


def test_a_mood_another_tool_wrote_is_kept_unless_replace_mood(tmp_path, originals):
    """The file keeps its own mood field (Picard's MOOD) until `--replace-mood`, and the summary line
    counts the files that kept theirs. Its item got moodtag's mood all the same (calm, where the file
    says Mellow: `beet ls mood:Mellow` found nothing); now it takes the file's, with one `kept:` line
    (in place of the scan's), as the mood moodtag stored, so it follows the file. An import that writes
    no tags gave it moodtag's calm (only a scan that writes tags read the file's): it reads the file's."""
    from mutagen import flac

    beet = Beets(tmp_path, originals)
    track = beet.music / "calm_a.flac"
    audio = flac.FLAC(track)
    audio["MOOD"] = ["Mellow"]
    audio.save()
    run = beet("import", "-A", "-q", str(beet.music))  # auto, no tags written
    assert beet.paths("mood:Mellow") == {"calm_a.flac"}, run.stderr
    assert [line for line in run.stderr.splitlines() if line.startswith("kept:")] == [
        f"kept: {track}: the file's own mood 'Mellow' (not moodtag's calm) is kept, and the item takes it "
        f"(--replace-mood replaces it)"], run.stderr
    assert beet.fields("$mood_confidence")["calm_a.flac"] == "$mood_confidence"  # no confidence of moodtag's

    run = beet("moodtag", "-w")  # nothing new to say: the item holds the file's mood already
    assert flac.FLAC(track)["MOOD"] == ["Mellow"] and beet.paths("mood:Mellow") == {"calm_a.flac"}
    assert "tags written 3, own mood kept 1 (--replace-mood replaces it)" in run.stderr, run.stderr
    assert "kept:" not in run.stderr and "beets' own mood kept" not in run.stderr, run.stderr

    run = beet("moodtag", "-w", "--replace-mood")
    assert "tags written 1" in run.stderr, run.stderr
    assert flac.FLAC(track)["MOOD"] == ["calm"] and flac.FLAC(track)["MOODTAG_REPLACED_MOOD"] == ["Mellow"]
    assert beet.fields("$mood")["calm_a.flac"] == "calm"


def kept_lines(run) -> list[str]:
    return [line for line in run.stderr.splitlines() if line.startswith("kept:")]


def set_tmoo(path: Path, mood: str) -> None:
    """Another tool's mood in an MP3: a TMOO frame, no moodtag fields."""
    from mutagen import id3

    try:
        tags = id3.ID3(path)
    except id3.ID3NoHeaderError:
        tags = id3.ID3()
    tags.add(id3.TMOO(encoding=3, text=[mood]))
    tags.save(path)


def test_a_files_own_mood_that_agrees_with_moodtags_keeps_the_confidence_and_says_nothing(tmp_path, originals):
    """Another tool's mood equal to moodtag's (TMOO exciting) took the item's confidence away at every
    `-w`, and one that differs only in case (MOOD Calm, moodtag's calm) was `kept: ... the file's own
    mood 'Calm' (not moodtag's calm)`. Agreement is no conflict: the item holds moodtag's mood and
    confidence, nothing said; the files keep their own."""
    from mutagen import flac, id3

    beet = Beets(tmp_path, originals)
    set_tmoo(beet.music / "exciting_a.mp3", "exciting")
    audio = flac.FLAC(beet.music / "calm_a.flac")
    audio["MOOD"] = ["Calm"]
    audio.save()
    run = beet("import", "-A", "-q", str(beet.music))  # auto
    assert not kept_lines(run), run.stderr
    for written in (2, 0):
        run = beet("moodtag", "-w")
        assert not kept_lines(run) and f"tags written {written}, own mood kept 2" in run.stderr, run.stderr
        assert beet.fields("$mood $moodtag_mood") == {n: f"{m} {m}" for n, (m, _) in TRACKS.items()}
        assert all(0.5 <= float(c) <= 1.0 for c in beet.fields("$mood_confidence").values())
    assert flac.FLAC(beet.music / "calm_a.flac")["MOOD"] == ["Calm"]
    assert "TXXX:MOODTAG_MODEL" not in id3.ID3(beet.music / "exciting_a.mp3")


def test_a_files_own_mood_is_its_items_in_every_run_with_or_without_tag_writes(tmp_path, originals):
    """A file's own mood (another tool's TMOO chill) reached its item only from `-w`, the one scan that
    reads the tags: `beet moodtag -p` said the item would take it and `beet moodtag` then gave it
    moodtag's exciting; so did `-w` once `moodtag untag` had put chill back (the file left untagged).
    Now the plugin reads the file's mood where the scan did not, and every run gives the item chill."""
    from mutagen import id3

    beet = Beets(tmp_path, originals, moodtag={"auto": False})
    track = beet.music / "exciting_a.mp3"
    set_tmoo(track, "chill")
    beet("import", "-A", "-q", str(beet.music))
    takes = (f"kept: {track}: the file's own mood 'chill' (not moodtag's exciting) is kept, and the item {{}} it "
             f"(--replace-mood replaces it)")

    run = beet("moodtag", "-p")
    assert kept_lines(run) == [takes.format("would take")], run.stderr
    assert beet.fields("$mood")["exciting_a.mp3"] == "$mood"
    run = beet("moodtag")
    assert kept_lines(run) == [takes.format("takes")], run.stderr
    assert beet.fields("$mood $moodtag_mood $mood_confidence")["exciting_a.mp3"] == "chill chill $mood_confidence"
    for args in ((), ("-w",), ("-p",)):  # nothing new to say
        run = beet("moodtag", *args)
        assert not kept_lines(run) and beet.paths("mood:chill") == {"exciting_a.mp3"}, run.stderr

    beet("moodtag", "-w", "--replace-mood")
    assert beet.fields("$mood")["exciting_a.mp3"] == "exciting" and read_mood(track).mood == "exciting"
    run_cli("untag", "--db", beet.cache, track, check=True)
    assert id3.ID3(track).getall("TMOO")[0].text == ["chill"]
    run = beet("moodtag", "-w")
    assert "left untagged 1" in run.stderr and kept_lines(run) == [takes.format("takes")], run.stderr
    assert beet.paths("mood:chill") == {"exciting_a.mp3"}


def test_an_item_without_a_mood_of_its_own_takes_its_files_when_another_item_leaves_it_untagged(tmp_path,
                                                                                               originals):
    """One file (TMOO chill, another tool's), two items (a symlink imported as a duplicate): the first
    holds a mood of its own, so the file is not tagged; the second got moodtag's exciting, though the
    file says chill. It takes the file's mood, as it would from a scan that tags the file."""
    from mutagen import id3

    beet = Beets(tmp_path, originals, moodtag={"auto": False}, **{"import": {"duplicate_action": "keep"}})
    track = beet.music / "exciting_a.mp3"
    set_tmoo(track, "chill")
    links = tmp_path / "links"
    links.mkdir()
    link = links / "exciting_link.mp3"
    link.symlink_to(track)
    beet("import", "-A", "-q", str(beet.music))
    beet("import", "-A", "-q", str(links))
    beet("modify", "-y", "mood=dreamy", f"path:{track}")

    run = beet("moodtag", "-w")
    assert kept_lines(run) == [
        f"kept: {track}: the item's own mood 'dreamy' (not moodtag's exciting) is kept (--replace-mood replaces it)",
        f"kept: {link}: the file's own mood 'chill' (not moodtag's exciting) is kept, and the item takes it "
        f"(--replace-mood replaces it)"], run.stderr
    assert beet.fields("$mood")["exciting_link.mp3"] == "chill" and beet.fields("$mood")["exciting_a.mp3"] == "dreamy"
    assert id3.ID3(track).getall("TMOO")[0].text == ["chill"] and read_mood(track).scores == {}


def test_an_item_whose_files_tags_cannot_be_read_is_left_as_it_is(tmp_path, originals):
    """Where the plugin reads a file's mood itself and cannot (a damaged tag: its audio, cached, is
    fine), whether the file holds a mood of its own is not known: the item is left as it is, one line."""
    beet = Beets(tmp_path, originals)
    beet("import", "-A", "-q", str(beet.music))  # auto: analysed
    track = beet.music / "calm_a.flac"
    beet("modify", "-y", "mood!", "mood_confidence!", "moodtag_mood!", f"path:{track}")
    before = os.stat(track)
    data = bytearray(track.read_bytes())
    at = 4  # the FLAC metadata blocks: the Vorbis comment's vendor length made far too long
    while data[at] & 0x7F != 4:
        at += 4 + int.from_bytes(data[at + 1:at + 4], "big")
    data[at + 4:at + 8] = (0x7FFFFFFF).to_bytes(4, "little")
    track.write_bytes(bytes(data))
    os.utime(track, ns=(before.st_atime_ns, before.st_mtime_ns))  # the cache's row still current

    run = beet("moodtag")
    assert "4 items: 0 analysed, 4 unchanged (cached)" in run.stderr, run.stderr
    [line] = [line for line in run.stderr.splitlines() if line.startswith("warning:")]
    assert line.startswith(f"warning: {track}: its file's tags cannot be read (broken FLAC file: ") and line.endswith(
        "), so whether it holds a mood of its own is not known; the item is left as it is"), run.stderr
    assert beet.fields("$mood")["calm_a.flac"] == "$mood" and beet.fields("$mood")["calm_b.wav"] == "calm"


def test_a_dry_runs_summary_counts_the_tags_the_run_would_write(tmp_path, originals):
    """`beet moodtag -p -w` said `tags written 0` and `-w` then wrote them. A dry run says `tags that would
    be written N`: the files a run with its options would tag (not the file of an item with a mood of
    its own, none without -w)."""
    beet = Beets(tmp_path, originals)
    beet("import", "-A", "-q", str(beet.music))  # auto: analysed, no tags written
    beet("modify", "-y", "mood=dreamy", f"path:{beet.music / 'calm_a.flac'}")
    run = beet("moodtag", "-p", "-w")
    assert "0 failed, tags that would be written 3, beets' own mood kept 1" in run.stderr, run.stderr
    assert "tags that would be written 0," in beet("moodtag", "-p").stderr
    assert "0 failed, tags written 3, beets' own mood kept 1" in beet("moodtag", "-w").stderr


def test_a_dry_run_fails_a_read_only_file_as_the_run_that_writes_does(tmp_path, originals):
    """`beet moodtag -p -w` counted a read-only file among the tags that would be written, and `-w` then
    failed it. The dry run now fails it as `-w` does (its line, counted failed); the file of an item with a
    mood of its own, which `-w` leaves alone, is no failure, and neither is anything without -w."""
    beet = Beets(tmp_path, originals)
    beet("import", "-A", "-q", str(beet.music))  # auto: analysed, no tags written
    beet("modify", "-y", "mood=dreamy", f"path:{beet.music / 'calm_a.flac'}")
    locked = beet.music / "exciting_a.mp3"
    for name in ("calm_a.flac", "exciting_a.mp3"):
        (beet.music / name).chmod(0o444)
    before = beet.digests()
    line = f"failed: {locked}: tags not written: read-only file (permission denied)"

    run = beet("moodtag", "-p", "-w")
    assert [x for x in run.stderr.splitlines() if x.startswith("failed:")] == [line], run.stderr
    assert "1 failed, tags that would be written 2, beets' own mood kept 1" in run.stderr, run.stderr
    assert "0 failed, tags that would be written 0," in beet("moodtag", "-p").stderr
    assert beet.digests() == before
    run = beet("moodtag", "-w")
    assert [x for x in run.stderr.splitlines() if x.startswith("failed:")] == [line], run.stderr
    assert "1 failed, tags written 2, beets' own mood kept 1" in run.stderr, run.stderr


def test_an_edit_another_tool_made_stays_one_for_beet_update(tmp_path, originals):
    """`beet moodtag -w` stored the file's new mtime in every item it tagged, so a title Picard wrote
    before it (newer than the item) was taken for seen: `beet update` never read it. An item that was
    current before moodtag's write still stores the new mtime (test_write_yes_...)."""
    from mutagen import flac

    beet = Beets(tmp_path, originals, moodtag={"auto": False})
    beet("import", "-A", "-q", str(beet.music))
    track = beet.music / "calm_a.flac"
    audio = flac.FLAC(track)
    audio["TITLE"] = ["Edited in Picard"]
    audio.save()
    later = beet.stored_mtimes()["calm_a.flac"] + 5
    os.utime(track, (later, later))

    assert "tags written 4" in beet("moodtag", "-w").stderr
    assert beet.stored_mtimes()["calm_b.wav"] == float(int(os.path.getmtime(beet.music / "calm_b.wav")))
    assert "Edited in Picard" in beet("update").stdout
    assert beet.fields("$title")["calm_a.flac"] == "Edited in Picard"


def test_every_item_of_a_file_gets_its_mood_hard_links_and_symlinks(tmp_path, originals):
    """The scan takes a file once (by inode), so the second item of a file (a hard link, a symlink to it,
    imported with duplicate_action: keep) got no mood and counted nowhere in the summary."""
    beet = Beets(tmp_path, originals, moodtag={"auto": False}, **{"import": {"duplicate_action": "keep"}})
    links = tmp_path / "links"
    links.mkdir()
    os.link(beet.music / "calm_a.flac", links / "calm_hard.flac")
    (links / "exciting_link.mp3").symlink_to(beet.music / "exciting_a.mp3")
    beet("import", "-A", "-q", str(beet.music))
    beet("import", "-A", "-q", str(links))

    run = beet("moodtag")
    assert ("6 items (4 files): 4 analysed, 0 unchanged (cached), 0 failed, tags written 0; calm 3, exciting 3"
            in run.stderr), run.stderr
    moods = beet.fields("$mood")
    assert moods == {**{name: mood for name, (mood, _) in TRACKS.items()},
                     "calm_hard.flac": "calm", "exciting_link.mp3": "exciting"}


def test_a_library_of_symlinks_to_files_moodtag_scanned_gets_their_moods(tmp_path, originals):
    """import.link: each item is a symlink, which the scan names by its target where the cache has a row
    there (`moodtag scan` of the music folder): the items were said cached and got no mood."""
    beet = Beets(tmp_path, originals, moodtag={"auto": False}, **{"import": {"link": True}})
    run_cli("scan", "--no-write", "--db", beet.cache, beet.music, check=True)
    beet("import", "-A", "-q", str(beet.music))
    assert all(Path(p).is_symlink() for p in beet("ls", "-f", "$path").stdout.split())

    run = beet("moodtag")
    assert "4 items: 0 analysed, 4 unchanged (cached)" in run.stderr, run.stderr
    assert sorted(beet.fields("$mood").values()) == ["calm", "calm", "exciting", "exciting"]


def test_db_null_is_the_cache_moodtag_scan_uses_moodtag_db_too(tmp_path, originals):
    """README: `db: null` is the cache `moodtag scan` uses, which is $MOODTAG_DB where it is set; beets
    took moodtag's default cache instead and analysed everything again."""
    beet = Beets(tmp_path, originals, moodtag={"auto": False, "db": None})
    env = {"MOODTAG_DB": str(tmp_path / "my-cache.db"), "XDG_DATA_HOME": str(tmp_path / "xdg")}
    beet("import", "-A", "-q", str(beet.music))
    run_cli("scan", "--no-write", beet.music, env=env, check=True)

    run = beet("moodtag", env=env)
    assert "4 items: 0 analysed, 4 unchanged (cached)" in run.stderr, run.stderr
    assert not (tmp_path / "xdg").exists()


def test_an_empty_db_option_is_refused_not_the_default_cache(tmp_path, originals):
    """`--db ''` (an unset variable) took moodtag's default cache, where `moodtag scan --db ''` refuses."""
    beet = Beets(tmp_path, originals, moodtag={"auto": False})
    beet("import", "-A", "-q", str(beet.music))
    run = beet("moodtag", "--db", "", check=False, env={"XDG_DATA_HOME": str(tmp_path / "xdg")})
    assert run.returncode == 1 and "error: --db: an empty path (an unset variable?)" in run.stderr, run.stderr
    assert not (tmp_path / "xdg").exists() and set(beet.fields("$mood").values()) == {"$mood"}


def test_jobs_capped_to_the_cores_are_named_as_they_were_set(tmp_path, originals):
    """`moodtag.jobs: 999` in beets' config gave `warning: --jobs 999 capped at ...`, naming an option never
    given; the warning names the config's key, or -j/--jobs where that set them."""
    beet = Beets(tmp_path, originals, moodtag={"auto": False, "jobs": 999})
    run = beet("moodtag")
    assert "warning: moodtag.jobs: 999 capped at " in run.stderr and "--jobs" not in run.stderr, run.stderr
    run = beet("moodtag", "-j", "999")
    assert "warning: --jobs 999 capped at " in run.stderr and "moodtag.jobs" not in run.stderr, run.stderr


def test_a_bad_jobs_setting_stops_an_import_as_other_settings_do(tmp_path, originals):
    """`jobs: -1` on import was logged as a `--jobs` error and the import exited 0; `force: maybe` exits 1."""
    beet = Beets(tmp_path, originals, moodtag={"jobs": -1})
    run = beet("import", "-A", "-q", str(beet.music), check=False)
    assert run.returncode == 1, run.stderr
    assert "configuration error: moodtag.jobs: must be 0 (one per core) or more, not -1" in run.stderr
    assert "--jobs" not in run.stderr


def test_a_mood_set_in_beets_is_kept_unless_replace_mood(tmp_path, originals):
    """`beet modify mood=dreamy` was overwritten by the next `beet moodtag` from the cache. A mood moodtag
    did not store is kept (one line, counted), as in files; --replace-mood replaces it. An item stored
    before moodtag noted its own mood (mood and confidence, no moodtag_mood: an older library) with the
    mood the cache's row holds is still moodtag's, and one with a mood and no confidence (another
    plugin's) is kept."""
    beet = Beets(tmp_path, originals, moodtag={"auto": False})
    beet("import", "-A", "-q", str(beet.music))
    beet("moodtag")
    def modify(name: str, *changes: str) -> None:
        beet("modify", "-y", *changes, f"path:{beet.music / name}")

    modify("calm_a.flac", "mood=dreamy")
    modify("exciting_a.mp3", "mood_confidence=0.5", "moodtag_mood!")  # an older library's item
    modify("calm_b.wav", "mood=happy", "mood_confidence!", "moodtag_mood!")  # another plugin's

    run = beet("moodtag")
    kept = [line for line in run.stderr.splitlines() if line.startswith("kept:")]
    assert len(kept) == 2 and any("calm_a.flac: the item's own mood 'dreamy' (not moodtag's calm)" in line
                                  for line in kept), run.stderr
    assert "0 analysed, 4 unchanged (cached), 0 failed, tags written 0, beets' own mood kept 2" in run.stderr
    assert beet.fields("$mood") == {"calm_a.flac": "dreamy", "calm_b.wav": "happy",
                                    "exciting_a.mp3": "exciting", "exciting_b.ogg": "exciting"}

    run = beet("moodtag", "--replace-mood")
    assert "kept" not in run.stderr and beet.fields("$mood") == {n: m for n, (m, _) in TRACKS.items()}


def would_set_only_a_changed_confidence(beet: Beets) -> subprocess.CompletedProcess:
    """calm_b.wav's confidence changed by hand: `beet moodtag -p` has a `would set` line for it alone."""
    changed = beet.music / "calm_b.wav"
    beet("modify", "-y", "mood_confidence=0.1", f"path:{changed}")
    run = beet("moodtag", "-p")
    would = [line for line in run.stderr.splitlines() if line.startswith("would set ")]
    assert len(would) == 1 and would[0].startswith("would set mood calm (") and would[0].endswith(f": {changed}"), \
        run.stderr
    return run


def older_library(beet: Beets) -> None:
    """The items as moodtag 0.4's plugin left them: each with a mood and its confidence, no moodtag_mood."""
    beet("modify", "-y", "moodtag_mood!")


def test_a_mood_set_since_in_an_older_library_is_kept(tmp_path, originals):
    """An item moodtag 0.4's plugin stored (mood and confidence, no moodtag_mood) whose mood was set by
    hand since (`beet modify mood=sleepy`) took moodtag's calm back at the next `beet moodtag`, silently:
    the confidence beside it made it moodtag's. Now the cache's row, which holds the mood moodtag gave
    the file last, tells: a mood that differs from it is the item's own, kept with its `kept:` line, its
    file left untagged, moodtag's mood noted as its moodtag_mood. Where the file has no row, the item
    stays moodtag's, as before."""
    beet = Beets(tmp_path, originals)
    beet("import", "-A", "-q", str(beet.music))  # auto: analysed, no tags written
    older_library(beet)
    own = beet.music / "calm_a.flac"
    beet("modify", "-y", "mood=sleepy", f"path:{own}")
    line = f"kept: {own}: the item's own mood 'sleepy' (not moodtag's calm) is kept (--replace-mood replaces it)"

    for args in (("-p",), ("-w",)):
        run = beet("moodtag", *args)
        assert kept_lines(run) == [line], run.stderr
        assert "0 analysed, 4 unchanged (cached), 0 failed" in run.stderr and "beets' own mood kept 1" in run.stderr
    assert "tags written 3," in run.stderr and read_mood(own) is None, run.stderr
    assert beet.fields("$mood $moodtag_mood") == {"calm_a.flac": "sleepy calm", "calm_b.wav": "calm calm",
                                                  "exciting_a.mp3": "exciting exciting",
                                                  "exciting_b.ogg": "exciting exciting"}
    run = beet("moodtag")
    assert kept_lines(run) == [line], run.stderr  # its moodtag_mood tells now

    # another mood and another confidence than the row's: its file analysed again since (an upgrade's new
    # model, by `moodtag scan`), not a mood set by hand: moodtag's
    beet("modify", "-y", "mood=calm", "mood_confidence=0.31", "moodtag_mood!", f"path:{beet.music / 'exciting_a.mp3'}")
    run = beet("moodtag")
    assert kept_lines(run) == [line], run.stderr
    assert beet.fields("$mood $moodtag_mood")["exciting_a.mp3"] == "exciting exciting"

    # the other label with the row's confidence: what a track near the threshold analysed again may have
    # given (a flip at the same confidence), not told from a hand-set label: moodtag's, as before
    beet("modify", "-y", "mood=exciting", "moodtag_mood!", f"path:{beet.music / 'calm_b.wav'}")
    run = beet("moodtag")
    assert kept_lines(run) == [line], run.stderr
    assert beet.fields("$mood $moodtag_mood")["calm_b.wav"] == "calm calm"

    # no row for its file (another cache, new): an older library's item is moodtag's, as before
    beet("modify", "-y", "mood=wrong", "moodtag_mood!", f"path:{beet.music / 'exciting_a.mp3'}")
    run = beet("moodtag", "--db", str(tmp_path / "fresh.db"))
    assert kept_lines(run) == [line] and "4 analysed" in run.stderr, run.stderr
    assert beet.fields("$mood $moodtag_mood")["exciting_a.mp3"] == "exciting exciting"


def test_a_dry_run_says_nothing_of_an_older_librarys_items_that_hold_the_mood_already(tmp_path, originals):
    """The first `beet moodtag -p` after upgrading said `would set mood ...` for every item moodtag 0.4's
    plugin had stored, though a real run changed none of their moods or confidences (it only notes the
    moodtag_mood they lack). Now such an item gets no line; one whose confidence would change does."""
    beet = Beets(tmp_path, originals)
    beet("import", "-A", "-q", str(beet.music))  # auto: analysed, no tags written
    older_library(beet)
    run = would_set_only_a_changed_confidence(beet)
    assert "kept" not in run.stderr and beet.fields("$moodtag_mood")["calm_a.flac"] == "$moodtag_mood"

    run = beet("moodtag")
    assert "kept" not in run.stderr, run.stderr
    assert beet.fields("$mood $moodtag_mood") == {n: f"{m} {m}" for n, (m, _) in TRACKS.items()}
    assert "would set" not in beet("moodtag", "-p").stderr


def test_an_items_own_mood_leaves_its_files_tags_alone(tmp_path, originals):
    """`beet moodtag -w` said the item's own mood (`beet modify mood=dreamy`) was kept, and wrote
    moodtag's other mood into its file all the same: beets said dreamy, the file calm. Now a file with an
    item of its own mood is not tagged (analysed and cached still), also where another item of the file
    (a symlink to it, imported as a duplicate) holds none: that item gets moodtag's mood, the file keeps
    its tags."""
    beet = Beets(tmp_path, originals, **{"import": {"duplicate_action": "keep"}})
    links = tmp_path / "links"
    links.mkdir()
    link = links / "exciting_link.mp3"
    link.symlink_to(beet.music / "exciting_a.mp3")
    beet("import", "-A", "-q", str(beet.music))  # auto: analysed, no tags written
    beet("import", "-A", "-q", str(links))
    beet("modify", "-y", "mood=dreamy", f"path:{beet.music / 'calm_a.flac'}")
    beet("modify", "-y", "mood=wild", f"path:{link}")
    before = beet.digests()

    run = beet("moodtag", "-w")
    assert ("5 items (4 files): 0 analysed, 4 unchanged (cached), 0 failed, tags written 2, beets' own mood "
            "kept 2 (--replace-mood replaces it)") in run.stderr, run.stderr
    assert {line for line in run.stderr.splitlines() if line.startswith("kept:")} == {
        f"kept: {beet.music / 'calm_a.flac'}: the item's own mood 'dreamy' (not moodtag's calm) is kept "
        f"(--replace-mood replaces it)",
        f"kept: {link}: the item's own mood 'wild' (not moodtag's exciting) is kept (--replace-mood replaces it)"}
    after = beet.digests()
    for name in ("calm_a.flac", "exciting_a.mp3"):
        assert after[name] == before[name] and read_mood(beet.music / name) is None, name
    for name in ("calm_b.wav", "exciting_b.ogg"):
        assert read_mood(beet.music / name).mood == TRACKS[name][0], name
    assert beet.fields("$mood") == {"calm_a.flac": "dreamy", "calm_b.wav": "calm", "exciting_a.mp3": "exciting",
                                    "exciting_b.ogg": "exciting", "exciting_link.mp3": "wild"}

    run = beet("moodtag", "-w", "--replace-mood")
    assert "tags written 2" in run.stderr and "kept" not in run.stderr, run.stderr
    assert read_mood(beet.music / "calm_a.flac").mood == "calm"
    assert read_mood(beet.music / "exciting_a.mp3").mood == "exciting"
    assert beet.fields("$mood")["exciting_link.mp3"] == "exciting"


def test_an_items_own_mood_that_agrees_with_moodtags_is_no_conflict_and_stays_the_items(tmp_path, originals):
    """A mood set by hand that moodtag's result agrees with was `kept: ... the item's own mood 'calm' (not
    moodtag's calm)` at every run, its file left. Then it became moodtag's (moodtag_mood set to it), so a
    later result that differs (another model, the file's audio changed) replaced it silently, in beets
    and in the file. Now agreement is silent (not counted kept, the file tagged, moodtag's confidence
    stored where the item holds the mood moodtag stored before), and the mood stays the item's: a later
    result that differs keeps it, with its `kept:` line, and leaves its file alone. Another plugin's mood
    (no moodtag_mood, no confidence) gets no confidence, which would make it moodtag's."""
    beet = Beets(tmp_path, originals)
    beet("import", "-A", "-q", str(beet.music))  # auto: analysed, no tags written
    track = beet.music / "calm_a.flac"
    beet("modify", "-y", "mood=calm", "moodtag_mood=exciting", "mood_confidence!", f"path:{track}")
    beet("modify", "-y", "mood=calm", "moodtag_mood!", "mood_confidence!", f"path:{beet.music / 'calm_b.wav'}")

    for _ in range(2):
        run = beet("moodtag", "-w")
        assert "kept" not in run.stderr and "tags written" in run.stderr, run.stderr
    assert "tags written 0;" in run.stderr and read_mood(track).mood == "calm"
    assert beet.fields("$mood $moodtag_mood")["calm_a.flac"] == "calm exciting"
    assert 0.5 <= float(beet.fields("$mood_confidence")["calm_a.flac"]) <= 1.0
    assert beet.fields("$mood $moodtag_mood $mood_confidence")["calm_b.wav"] == \
        "calm $moodtag_mood $mood_confidence"

    before = os.stat(track)  # other audio (moodtag's result: exciting), without tags
    synth.make_track(track, "exciting", 20.0, seed=3)
    os.utime(track, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
    run = beet("moodtag", "-w")
    assert [line for line in run.stderr.splitlines() if line.startswith("kept:")] == [
        f"kept: {track}: the item's own mood 'calm' (not moodtag's exciting) is kept (--replace-mood replaces it)"
    ], run.stderr
    assert "1 analysed, 3 unchanged (cached), 0 failed, tags written 0, beets' own mood kept 1" in run.stderr
    assert beet.fields("$mood $moodtag_mood")["calm_a.flac"] == "calm exciting"
    assert read_mood(track) is None


def test_an_items_own_mood_that_differs_from_moodtags_only_in_case_is_no_conflict(tmp_path, originals):
    """`beet modify mood=Calm` on an item moodtag calls calm was `kept: ... the item's own mood 'Calm'
    (not moodtag's calm)`, counted, and its file left untagged, while a file's own Calm agreed with calm
    (and beets' `mood:calm` finds Calm). Now an item's own mood is compared case aside too: no conflict,
    the file tagged, the item keeps its Calm."""
    beet = Beets(tmp_path, originals)
    beet("import", "-A", "-q", str(beet.music))  # auto: analysed, no tags written
    track = beet.music / "calm_a.flac"
    beet("modify", "-y", "mood=Calm", f"path:{track}")

    run = beet("moodtag", "-w")
    assert not kept_lines(run) and "kept" not in run.stderr, run.stderr
    assert "0 analysed, 4 unchanged (cached), 0 failed, tags written 4;" in run.stderr, run.stderr
    assert read_mood(track).mood == "calm"
    assert beet.fields("$mood $moodtag_mood")["calm_a.flac"] == "Calm calm"
    assert beet.paths("mood:calm") == names("calm")


def test_retag_writes_the_mood_back_after_moodtag_untag(tmp_path, originals):
    """After `moodtag untag`, `-w` and `-w -f` said `tags written 0` with no reason, and there was no way
    to write the mood back; now the summary says the file is left untagged, and --retag tags it."""
    beet = Beets(tmp_path, originals, moodtag={"auto": False})
    beet("import", "-A", "-q", str(beet.music))
    beet("moodtag", "-w")
    track = beet.music / "calm_a.flac"
    run_cli("untag", "--db", beet.cache, track, check=True)
    assert read_mood(track) is None

    for args in (("-w",), ("-w", "-f")):
        run = beet("moodtag", *args)
        assert "tags written 0, left untagged 1 (--retag tags those without a mood of their own)" in run.stderr, run.stderr
    run = beet("moodtag", "-w", "--retag")
    assert "0 analysed, 4 unchanged (cached), 0 failed, tags written 1;" in run.stderr, run.stderr
    assert read_mood(track).mood == "calm"


def scan_actions(beet: Beets) -> dict[str, str]:
    """`moodtag scan` (the real CLI, with the beets config's cache) of the music folder: file name -> its
    action (analysed, cached, failed)."""
    run = run_cli("scan", "--json", "--db", beet.cache, beet.music, check=True)
    return {Path(row["path"]).name: row["action"] for row in map(json.loads, run.stdout.splitlines())}


def test_beets_own_tag_writes_leave_nothing_to_analyse_again(tmp_path, originals):
    """`beet modify -w` and `beet write` change only tags, but also each file's size and mtime: the next
    `moodtag scan` (or `beet moodtag`) analysed every file again (after `beet mbsync` of 50,000 files,
    40 minutes). The plugin hears beets' writes: a row current before one takes the file's new size and
    mtime, and the moods stay in the files."""
    from mutagen import flac

    beet = Beets(tmp_path, originals, moodtag={"auto": False})
    beet("import", "-A", "-q", str(beet.music))
    assert "tags written 4" in beet("moodtag", "-w").stderr
    run = beet("modify", "-y", "-w", "title=Renamed")
    assert "Traceback" not in run.stderr and "moodtag:" not in run.stderr, run.stderr
    assert flac.FLAC(beet.music / "calm_a.flac")["TITLE"] == ["Renamed"]  # beets wrote the files

    assert scan_actions(beet) == dict.fromkeys(TRACKS, "cached")
    for name, (mood, _) in TRACKS.items():
        assert read_mood(beet.music / name).mood == mood, name

    # another tool's edit is analysed again (as before); after `beet write` puts beets' title back, nothing
    audio = flac.FLAC(beet.music / "calm_a.flac")
    audio["TITLE"] = ["Edited in Picard"]
    audio.save()
    assert scan_actions(beet)["calm_a.flac"] == "analysed"
    beet("write")
    assert flac.FLAC(beet.music / "calm_a.flac")["TITLE"] == ["Renamed"]
    assert scan_actions(beet) == dict.fromkeys(TRACKS, "cached")
    assert all(read_mood(beet.music / name).mood == mood for name, (mood, _) in TRACKS.items())


def test_beets_id3v23_write_keeps_moodtags_mood_in_the_mp3(tmp_path, originals):
    """With beets' `id3v23: yes`, beets' write turned the MP3's tag into v2.3 and mutagen's conversion
    dropped TMOO, a frame v2.3 lacks: moodtag's mood was gone from the file (its MOODTAG_* frames left),
    while beets' item still said exciting. The plugin writes it back, as v2.3's TXXX:mood."""
    from mutagen.id3 import ID3

    beet = Beets(tmp_path, originals, moodtag={"auto": False}, id3v23=True)
    beet("import", "-A", "-q", str(beet.music))
    beet("moodtag", "-w")
    mp3 = beet.music / "exciting_a.mp3"
    assert ID3(mp3).version[:2] == (2, 4) and "TMOO" in ID3(mp3)

    run = beet("modify", "-y", "-w", "title=Renamed", f"path:{mp3}")
    assert "Traceback" not in run.stderr and "moodtag:" not in run.stderr, run.stderr
    tags = ID3(mp3)
    assert tags.version[:2] == (2, 3) and str(tags["TIT2"]) == "Renamed"
    assert tags["TXXX:mood"].text == ["exciting"] and "TMOO" not in tags
    values = read_mood(mp3)
    assert values.mood == "exciting" and values.model.startswith("moodtag-rhythm ")
    assert beet.fields("$mood")["exciting_a.mp3"] == "exciting"
    assert beet("update", "-p").stdout.strip() == ""  # the item stored the file's mtime after the write back
    assert scan_actions(beet) == dict.fromkeys(TRACKS, "cached")
    assert read_mood(mp3).mood == "exciting"


def test_beets_id3v23_write_that_drops_a_files_own_mood_leaves_the_file_to_be_tagged(tmp_path, originals):
    """An MP3's own mood (another tool's TMOO Upbeat) was kept by `-w` (row: kept); beets' write with
    `id3v23: yes` then dropped TMOO, but the row still said kept, with the file's new size and mtime: every
    later `-w` (and `moodtag scan`) said `own mood kept` of a file holding no mood at all, and never tagged
    it. Now such a row says nothing written: the next `-w` tags the file, without analysing it, and the
    item takes moodtag's mood. A file whose own mood beets' write left (a FLAC's MOOD) stays kept."""
    from mutagen import flac
    from mutagen.id3 import ID3

    beet = Beets(tmp_path, originals, moodtag={"auto": False}, id3v23=True)
    mp3, track = beet.music / "exciting_a.mp3", beet.music / "calm_a.flac"
    set_tmoo(mp3, "Upbeat")
    audio = flac.FLAC(track)
    audio["MOOD"] = ["Mellow"]
    audio.save()
    beet("import", "-A", "-q", str(beet.music))
    run = beet("moodtag", "-w")
    assert "tags written 2, own mood kept 2 (" in run.stderr, run.stderr
    assert beet.fields("$mood")["exciting_a.mp3"] == "Upbeat"

    run = beet("modify", "-y", "-w", "title=Renamed")
    assert "Traceback" not in run.stderr and "moodtag:" not in run.stderr, run.stderr
    assert ID3(mp3).version[:2] == (2, 3) and "TMOO" not in ID3(mp3) and read_mood(mp3) is None
    assert flac.FLAC(track)["MOOD"] == ["Mellow"]

    run = beet("moodtag", "-w")
    assert "0 analysed, 4 unchanged (cached), 0 failed, tags written 1, own mood kept 1 (" in run.stderr, \
        run.stderr
    assert read_mood(mp3).mood == "exciting" and beet.fields("$mood")["exciting_a.mp3"] == "exciting"
    assert flac.FLAC(track)["MOOD"] == ["Mellow"] and beet.fields("$mood")["calm_a.flac"] == "Mellow"
    assert scan_actions(beet) == dict.fromkeys(TRACKS, "cached")


def test_a_file_another_tool_changed_before_beets_write_is_analysed_again(tmp_path, originals):
    """Only a row current before beets' write is carried over: a file another tool changed since moodtag
    saw it may hold other audio, and the next scan analyses it, while the files beets alone wrote are cached."""
    from mutagen import flac

    beet = Beets(tmp_path, originals, moodtag={"auto": False})
    beet("import", "-A", "-q", str(beet.music))
    beet("moodtag", "-w")
    changed = beet.music / "calm_a.flac"
    audio = flac.FLAC(changed)
    audio["TITLE"] = ["Edited in Picard"]
    audio.save()

    beet("modify", "-y", "-w", "title=Renamed")
    assert flac.FLAC(changed)["TITLE"] == ["Renamed"]
    assert scan_actions(beet) == {**dict.fromkeys(TRACKS, "cached"), "calm_a.flac": "analysed"}


def test_an_unusable_cache_is_one_warning_and_beets_writes_go_through(tmp_path, originals):
    """The plugin's part of beets' write never fails it: a cache that cannot be opened is said once, for
    every file beets writes."""
    from mutagen import flac

    beet = Beets(tmp_path, originals, moodtag={"auto": False})
    beet("import", "-A", "-q", str(beet.music))
    beet("moodtag", "-w")
    beet.cache.write_bytes(b"not a database" * 100)

    run = beet("modify", "-y", "-w", "title=Renamed")
    warnings = [line for line in run.stderr.splitlines() if line.startswith("moodtag:")]
    assert len(warnings) == 1 and str(beet.cache) in warnings[0] and "Traceback" not in run.stderr, run.stderr
    assert flac.FLAC(beet.music / "calm_a.flac")["TITLE"] == ["Renamed"]


def cache_rows(beet: Beets) -> list[tuple[str, str]]:
    """The cache's rows: (path, status), by path."""
    with sqlite3.connect(beet.cache) as db:
        return sorted(db.execute("SELECT path, status FROM tracks"))


def test_import_link_rows_are_the_music_folders_and_moodtag_scan_analyses_nothing_again(tmp_path, originals):
    """import.link: the plugin gave the scan each item's symlink, and kept the cache rows under the links'
    names: `moodtag scan` of the music folder analysed every file again (a second row each), and a scan of
    beets' folder of links then marked the links' rows missing. The scan is given the links' files: one
    row per file, which both scans find."""
    beet = Beets(tmp_path, originals, **{"import": {"link": True}})
    beet("import", "-A", "-q", str(beet.music))  # auto: analysed, no tags written
    links = [Path(p) for p in beet("ls", "-f", "$path").stdout.split()]
    assert len(links) == 4 and all(p.is_symlink() for p in links)
    rows = [(str(beet.music / name), "ok") for name in sorted(TRACKS)]
    assert cache_rows(beet) == rows

    assert scan_actions(beet) == dict.fromkeys(TRACKS, "cached")
    run = run_cli("scan", "--json", "--db", beet.cache, tmp_path / "library", check=True)
    assert [row["action"] for row in map(json.loads, run.stdout.splitlines())] == ["cached"] * 4, run.stdout
    assert cache_rows(beet) == rows
    assert "4 items: 0 analysed, 4 unchanged (cached)" in beet("moodtag").stderr


def annexed(music: Path, names: list[str]) -> dict[str, Path]:
    """The files `names` moved into a hidden store as git-annex keeps them (`.git/annex/objects/...`), each
    name a relative symlink to its file there: name -> the file's real path."""
    store = music / ".git" / "annex" / "objects" / "aa" / "bb"
    real = {}
    for name in names:
        key = f"SHA256E-s1--{hashlib.sha256(name.encode()).hexdigest()[:16]}{Path(name).suffix}"
        (store / key).mkdir(parents=True)
        os.rename(music / name, store / key / key)
        (music / name).symlink_to(os.path.relpath(store / key / key, music))
        real[name] = store / key / key
    return real


def test_links_into_a_hidden_store_keep_the_rows_moodtag_scan_finds(tmp_path, originals):
    """A library of symlinks into a hidden store (git-annex: `x.flac -> .git/annex/objects/.../x.flac`),
    imported in place: the plugin gave the scan every item's real path, so the rows were the hidden
    files'; `moodtag scan` of the music folder, which names such a file by the link, analysed every file
    again, and each file had two rows. The scan is given the link, as `moodtag scan` names the file; and
    the real path only where the cache holds a row there and none under the link (the store scanned by
    its own name)."""
    beet = Beets(tmp_path, originals)
    real = annexed(beet.music, ["calm_a.flac", "exciting_a.mp3"])
    beet("import", "-A", "-q", str(beet.music))  # auto: analysed
    rows = [(str(beet.music / name), "ok") for name in sorted(TRACKS)]
    assert cache_rows(beet) == rows

    assert scan_actions(beet) == dict.fromkeys(TRACKS, "cached")
    assert "4 items: 0 analysed, 4 unchanged (cached)" in beet("moodtag").stderr
    assert cache_rows(beet) == rows
    assert beet.fields("$mood") == {name: mood for name, (mood, _) in TRACKS.items()}

    other = Beets(tmp_path / "other", originals)  # the store scanned by its own name first
    real = annexed(other.music, ["calm_a.flac", "exciting_a.mp3"])
    run_cli("scan", "--no-write", "--db", other.cache, other.music / ".git", check=True)
    other("import", "-A", "-q", str(other.music))
    assert cache_rows(other) == sorted([(str(path), "ok") for path in real.values()] +
                                       [(str(other.music / n), "ok") for n in ("calm_b.wav", "exciting_b.ogg")])
    assert "4 items: 0 analysed, 4 unchanged (cached)" in other("moodtag").stderr


def test_beet_mv_takes_the_cache_rows_along_and_nothing_is_analysed_again(tmp_path, originals):
    """`beet mv` renames the files: their cache rows stayed under the old paths (status ok), the next
    `beet moodtag` or `moodtag scan` analysed every moved file again, and the cache held two ok rows per
    file. The plugin hears beets' moves: each current row takes its file's new path."""
    beet = Beets(tmp_path, originals, moodtag={"auto": False})
    beet("import", "-A", "-q", str(beet.music))
    assert "tags written 4" in beet("moodtag", "-w").stderr
    dest = tmp_path / "moved"
    dest.mkdir()
    run = beet("mv", "-d", str(dest))
    assert "Traceback" not in run.stderr and "moodtag:" not in run.stderr, run.stderr
    moved = sorted(p for p in dest.rglob("*") if p.is_file())
    assert len(moved) == 4 and not any(beet.music.glob("*.*"))  # beets moved the files

    assert cache_rows(beet) == [(str(p), "ok") for p in moved]  # one ok row per file, at its new path
    run = run_cli("scan", "--json", "--db", beet.cache, dest, check=True)
    assert [row["action"] for row in map(json.loads, run.stdout.splitlines())] == ["cached"] * 4, run.stdout
    assert "4 items: 0 analysed, 4 unchanged (cached)" in beet("moodtag").stderr
    assert cache_rows(beet) == [(str(p), "ok") for p in moved]


def test_failed_rows_follow_beets_writes_and_moves(tmp_path, originals):
    """A file whose tag write failed (its row failed, the mood kept) was followed neither through beets'
    write nor its move (the plugin took only ok rows): the next `beet moodtag -w` analysed it again, and
    after `beet mv` a stale row stayed at the old path. Now a row holding a result follows both, and a
    file that failed to decode keeps its failure through a move (as a scan's rename does), so neither
    is decoded again."""
    beet = Beets(tmp_path, originals)
    beet("import", "-A", "-q", str(beet.music))  # auto: the four analysed, no tags written
    written, moved_locked, garbage = (beet.music / n for n in ("calm_a.flac", "exciting_b.ogg", "exciting_a.mp3"))
    garbage.write_bytes(os.urandom(garbage.stat().st_size))
    for locked in (written, moved_locked):
        locked.chmod(0o444)  # moodtag's writer refuses a file without a write bit, even as root
    run = beet("moodtag", "-w")
    assert "4 items: 0 analysed, 3 unchanged (cached), 3 failed, tags written 1" in run.stderr, run.stderr
    for locked in (written, moved_locked):
        locked.chmod(0o644)

    beet("modify", "-y", "-w", "title=Renamed", f"path:{written}")
    dest = tmp_path / "moved"
    dest.mkdir()
    run = beet("mv", "-d", str(dest), "mood:exciting")  # the tag-failed .ogg, the garbage .mp3
    assert "Traceback" not in run.stderr and "moodtag:" not in run.stderr, run.stderr
    moved = {p.suffix: p for p in dest.rglob("*") if p.is_file()}
    assert sorted(moved) == [".mp3", ".ogg"] and not garbage.exists() and not moved_locked.exists()

    run = beet("moodtag", "-w")
    assert ("4 items: 0 analysed, 4 unchanged (cached), 0 failed, 1 failed before and unchanged (-f tries again), "
            "tags written 2;") in run.stderr, run.stderr
    assert read_mood(written).mood == "calm" and read_mood(moved[".ogg"]).mood == "exciting"
    assert dict(cache_rows(beet)) == {str(written): "ok", str(beet.music / "calm_b.wav"): "ok",
                                      str(moved[".ogg"]): "ok", str(moved[".mp3"]): "failed"}


def test_beet_rm_d_marks_the_row_missing_and_prune_forgets_it(tmp_path, originals):
    """`beet rm -d` deletes the file; its cache row stayed ok, so `moodtag prune` (no PATH) forgot
    nothing. The plugin marks the row of a removed item's file that is gone missing; `beet rm` without
    -d leaves the file, and its row."""
    beet = Beets(tmp_path, originals, moodtag={"auto": False})
    beet("import", "-A", "-q", str(beet.music))
    beet("moodtag")
    deleted, kept = beet.music / "calm_a.flac", beet.music / "calm_b.wav"

    run = beet("rm", "-d", "-f", f"path:{deleted}")
    assert "Traceback" not in run.stderr and "moodtag:" not in run.stderr, run.stderr
    beet("rm", "-f", f"path:{kept}")
    assert not deleted.exists() and kept.exists()
    statuses = dict(cache_rows(beet))
    assert statuses == {**{str(beet.music / n): "ok" for n in TRACKS}, str(deleted): "missing"}

    run_cli("prune", "--db", beet.cache, check=True)
    assert dict(cache_rows(beet)) == {str(beet.music / n): "ok" for n in TRACKS if n != deleted.name}


# Run in a private mount namespace (as its root, tests.test_tags.in_namespace): read-only tmpfs mounts at
# argv[2]/a and argv[2]/b take the tracks argv[3] names out of the beets set-up argv[1] (BEETSDIR); its
# music folder keeps the rest, writable. The real `beet import` (which writes tags: import.write) and `beet
# moodtag -w` run over them, then `beet moodtag` once a is writable again.
READ_ONLY_BEETS = """
import json, os, shutil, subprocess, sys
from pathlib import Path
from tagger.tags import read_mood
beetsdir, mnt, tracks, music = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3]), Path(sys.argv[4])
env = dict({k: v for k, v in os.environ.items() if k != "MOODTAG_DB"}, BEETSDIR=str(beetsdir), PYTHONPATH=os.getcwd())
def beet(*args):
    proc = subprocess.run([sys.executable, "-m", "beets", *map(str, args)], capture_output=True, text=True, env=env)
    return {"rc": proc.returncode, "out": proc.stdout, "err": proc.stderr}
for name, files in tracks.items():
    (mnt / name).mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt / name)], check=True)
    for f in files:
        shutil.move(music / f, mnt / name / f)
    subprocess.run(["mount", "-o", "remount,ro", str(mnt / name)], check=True)
out = {"import": beet("import", "-A", "-q", mnt / "a", mnt / "b", music)}
out["moodtag"] = beet("moodtag", "-w")
out["moods"] = beet("ls", "-f", "$path\\t$mood")["out"]
subprocess.run(["mount", "-o", "remount,rw", str(mnt / "a")], check=True)
out["writable"] = beet("moodtag")
out["tags"] = {str(p): getattr(read_mood(p), "mood", None) for p in [*mnt.glob("*/*"), *music.iterdir()]}
print(json.dumps(out))
"""


def test_a_read_only_file_system_is_one_line_and_a_count_in_beets(tmp_path, originals):
    """A library on read-only file systems (a share mounted ro): `beet moodtag -w` and an import that writes
    tags printed a `tags not written: read-only file system` line per file. Now one line per file system,
    naming its mount point and beets' option that writes no tags (-W, --nowrite), and the summary counts its
    files per mount point; the items get their moods all the same, and a run once it is writable tags its
    files without analysing them again."""
    from tests.test_tags import in_namespace, namespace_available

    reason = namespace_available()
    if reason:
        pytest.skip(reason)
    beet = Beets(tmp_path, originals, **{"import": {"write": True, "duplicate_action": "keep"}})  # 3 untitled albums
    tracks = {"a": ["calm_a.flac", "exciting_a.mp3"], "b": ["calm_b.wav"]}
    mnt = tmp_path / "mnt"
    out = in_namespace(READ_ONLY_BEETS, beet.dir, mnt, json.dumps(tracks), beet.music)
    mounts = {name: Path(os.path.realpath(mnt / name)) for name in tracks}

    def failed_lines(run: dict) -> list[str]:
        assert run["rc"] == 0, run["err"]
        return [line for line in run["err"].splitlines() if line.startswith("failed:")]

    for run, nowrite in ((out["import"], "; import with -W (--nowrite) not to try;"),
                         (out["moodtag"], "; -W (--nowrite) not to try;")):
        lines = failed_lines(run)
        assert len(lines) == 2, run["err"]
        for name, mount in mounts.items():
            on_it = [line for line in lines if line.startswith(f"failed: {mnt / name}/")]
            assert len(on_it) == 1, run["err"]
            assert f": tags not written: read-only file system {mount} (" in on_it[0] and nowrite in on_it[0], on_it[0]
    assert (f"4 items: 0 analysed, 4 unchanged (cached), 3 failed (tags not written on a read-only file system: "
            f"{mounts['a']} 2, {mounts['b']} 1), tags written 0;") in out["moodtag"]["err"], out["moodtag"]["err"]
    moods = dict(line.split("\t") for line in out["moods"].splitlines() if line)
    assert {Path(p).name: m for p, m in moods.items()} == {name: mood for name, (mood, _) in TRACKS.items()}

    lines = failed_lines(out["writable"])  # a writable again: its files tagged from the cache; b still refuses
    assert len(lines) == 1 and lines[0].startswith(f"failed: {mnt / 'b'}/"), out["writable"]["err"]
    assert (f"4 items: 0 analysed, 4 unchanged (cached), 1 failed (tags not written on a read-only file system: "
            f"{mounts['b']} 1), tags written 2;") in out["writable"]["err"], out["writable"]["err"]
    assert {Path(p).name: m for p, m in out["tags"].items()} == {
        name: None if name in tracks["b"] else mood for name, (mood, _) in TRACKS.items()}


def test_two_files_whose_names_differ_only_by_case_keep_their_own_rows(tmp_path, originals):
    """On a case-sensitive disk `calm_a.flac` and `CALM_A.FLAC` are two files: the plugin's spelling on disk
    (for a case-insensitive one, where a file renamed by case keeps one row) never takes one for the other,
    whether both are there or one item's file is gone."""
    beet = Beets(tmp_path, originals, moodtag={"auto": False})
    lower, upper = beet.music / "calm_a.flac", beet.music / "CALM_A.FLAC"  # each the other in the other case
    synth.make_track(upper, "calm", 20.0, seed=9)
    beet("import", "-A", "-q", str(beet.music))
    assert "5 items: 5 analysed" in beet("moodtag").stderr
    assert "5 items: 0 analysed, 5 unchanged (cached)" in beet("moodtag").stderr
    assert [path for path, _ in cache_rows(beet)] == sorted(str(beet.music / n) for n in [*TRACKS, upper.name])
    confidence = beet.fields("$mood_confidence")
    assert confidence[lower.name] != confidence[upper.name]

    lower.unlink()
    run = beet("moodtag")
    assert "5 items: 0 analysed, 4 unchanged (cached), 1 failed" in run.stderr, run.stderr
    assert f"failed: {lower}: " in run.stderr
    assert beet.fields("$mood_confidence") == confidence
    assert dict(cache_rows(beet))[str(upper)] == "ok"


def test_a_plain_beet_rm_does_not_open_moodtags_cache(tmp_path, originals):
    """`beet rm` without -d keeps the files and their rows: it never needed moodtag's cache, and opened it
    for each item (a cache that cannot be opened was a warning about beets' tag writes)."""
    beet = Beets(tmp_path, originals, moodtag={"auto": False})
    beet("import", "-A", "-q", str(beet.music))
    beet.cache.write_bytes(b"not a database, whatever it was")
    run = beet("rm", "-f", f"path:{beet.music / 'calm_a.flac'}")
    assert "moodtag" not in run.stderr, run.stderr
    assert beet.cache.read_bytes() == b"not a database, whatever it was"


def test_a_broken_link_and_the_missing_file_it_names_are_two_files(tmp_path, originals):
    """Items of files that are not there are never taken for one file: a broken symlink and the missing file
    it names counted as one in the summary."""
    beet = Beets(tmp_path, originals, moodtag={"auto": False})
    (beet.music / "a_dead.flac").symlink_to(beet.music / "calm_a.flac")  # (the link's item first)
    beet("import", "-A", "-q", str(beet.music))
    (beet.music / "calm_a.flac").unlink()
    run = beet("moodtag", check=False)
    assert f"{len(TRACKS) + 1} items: " in run.stderr and "files)" not in run.stderr, run.stderr
