"""tagger.atomic through a link that leads nowhere: a playlist (or its folder) linked to a disk not mounted now,
`playlists/calm.m3u -> /media/usb/Playlists/calm.m3u` over an empty mount point. moodtag made the missing folders
under the mount point, wrote there and said so (exit 0): once the disk is mounted that file is hidden and the
disk's playlist is stale. Now nothing is made through such a link and the error names it and where it leads.
The real CLI over a real library (tagger.synth audio) scanned into a real cache."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tagger import synth
from tagger.atomic import replace_file, why_not_written
from tagger.errors import MoodtagError
from tests.conftest import run_cli

NOT_MOUNTED = "does not exist: a disk not mounted?"


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("atomic")
    music = root / "Music"
    music.mkdir()
    synth.make_track(music / "a.flac", "calm", 5.0, seed=0)
    synth.make_track(music / "b.flac", "exciting", 5.0, seed=1)
    db = root / "c.db"
    run_cli("scan", music, "--db", db, "--jobs", "1", check=True)
    return {"music": music, "db": db}


@pytest.fixture
def usb(tmp_path) -> Path:
    """An empty mount point: its disk not mounted now."""
    point = tmp_path / "media" / "usb"
    point.mkdir(parents=True)
    return point


def everything_under(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*"))


def one_error(proc, dest: Path, cause: str) -> None:
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.splitlines() == [f"error: {dest}: cannot write the playlist ({cause})"]


def test_a_playlist_linked_to_a_disk_not_mounted_is_not_written_under_its_mount_point(library, usb, tmp_path):
    out = tmp_path / "playlists"
    out.mkdir()
    link = out / "calm.m3u"
    target = usb / "Playlists" / "calm.m3u"
    link.symlink_to(target)
    for args in (["playlists", "--for", "mpd", "--music-dir", library["music"], "--out-dir", out],
                 ["playlist", "calm", "-o", link]):
        proc = run_cli(*args, "--db", library["db"], env={"COLUMNS": "500"})
        one_error(proc, link, f"{link} links to {target}, whose folder does not exist: a disk not mounted?")
        assert everything_under(usb) == []  # nothing made under the mount point
        assert link.is_symlink() and os.readlink(link) == str(target)
    (usb / "Playlists").mkdir()  # the disk mounted: written through the link, as before
    run_cli("playlist", "calm", "-o", link, "--db", library["db"], check=True)
    assert link.is_symlink() and target.read_text(encoding="utf-8").startswith("#EXTM3U")


def test_a_link_to_a_missing_folder_makes_none_of_it(library, tmp_path):
    """Not only the mount point's folder: no folder of the path the link leads to is made (a link to
    /nonexistent/dir/calm.m3u made /nonexistent/dir at the root of the file system)."""
    link = tmp_path / "calm.m3u8"
    target = tmp_path / "gone" / "dir" / "calm.m3u8"
    link.symlink_to(target)
    proc = run_cli("playlist", "calm", "-o", link, "--db", library["db"], env={"COLUMNS": "500"})
    one_error(proc, link, f"{link} links to {target}, whose folder does not exist: a disk not mounted?")
    assert not (tmp_path / "gone").exists()


def test_a_playlist_folder_linked_to_a_disk_not_mounted_is_named(library, usb, tmp_path):
    """`--out-dir ~/Playlists`, `Playlists -> /media/usb/Playlists`: the error named ~ as "a file, not a
    folder". Now it names the link and where it leads, for the folder itself or one to be made under it."""
    home = tmp_path / "home"
    home.mkdir()
    folder = home / "Playlists"
    folder.symlink_to(usb / "Playlists", target_is_directory=True)
    cause = f"{folder} links to {usb / 'Playlists'}, which {NOT_MOUNTED}"
    for args, dest in ((["playlists", "--out-dir", folder], folder / "calm.m3u8"),
                       (["playlists", "--out-dir", folder / "sub"], folder / "sub" / "calm.m3u8"),
                       (["playlist", "calm", "-o", folder / "sub" / "calm.m3u8"], folder / "sub" / "calm.m3u8")):
        proc = run_cli(*args, "--db", library["db"], env={"COLUMNS": "500"})
        one_error(proc, dest, cause)
        assert everything_under(usb) == [] and everything_under(home) == [folder]


def test_a_model_linked_to_a_disk_not_mounted_is_not_saved_there(usb, tmp_path):
    from tagger.weights import ModelSpec, save_model

    link = tmp_path / "current.safetensors"
    target = usb / "models" / "m.safetensors"
    link.symlink_to(target)
    with pytest.raises(MoodtagError) as caught:
        save_model(link, ModelSpec(name="tiny", version="0.0.1", labels=("calm", "exciting")),
                   {"w": np.zeros(3, dtype=np.float32)})
    assert str(caught.value) == (f"{link}: cannot write ({link} links to {target}, whose folder does not exist: "
                                 "a disk not mounted?)")
    assert everything_under(usb) == []


def test_what_stands_in_the_way_is_named_as_before(tmp_path):
    """A file in the way is still "a file, not a folder", through a link or not; a folder the destination's
    own path names is still made where missing, and so is one under a link that leads to a folder."""
    (tmp_path / "a-file").write_text("")
    link = tmp_path / "link.m3u8"
    link.symlink_to(tmp_path / "a-file" / "sub" / "calm.m3u8")
    for dest in (link, tmp_path / "a-file" / "sub" / "calm.m3u8"):
        with pytest.raises(NotADirectoryError) as caught:
            replace_file(dest, lambda fh: fh.write(b"x"))
        assert why_not_written(caught.value) == f"{tmp_path / 'a-file'} is a file, not a folder"
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "to-real").symlink_to(real, target_is_directory=True)
    for dest in (tmp_path / "new" / "deeper" / "p.m3u8", tmp_path / "to-real" / "new" / "p.m3u8"):
        replace_file(dest, lambda fh: fh.write(b"x"))
        assert dest.read_bytes() == b"x"
    assert (real / "new" / "p.m3u8").read_bytes() == b"x"


def test_a_link_error_is_a_file_not_found_error(tmp_path):
    """Callers that catch OSError (or FileNotFoundError) still catch it; its filename is the link."""
    from tagger.atomic import LinkError

    link = tmp_path / "l.m3u8"
    link.symlink_to(tmp_path / "nowhere" / "l.m3u8")
    with pytest.raises(LinkError) as caught:
        replace_file(link, lambda fh: fh.write(b"x"))
    assert isinstance(caught.value, FileNotFoundError) and caught.value.filename == str(link)
    assert not (tmp_path / "nowhere").exists()
