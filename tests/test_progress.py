"""The scan's progress bar on a real terminal (a pseudo-terminal), as narrow as a phone's or a split
pane's: what it must keep is the count and the time left."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import on_a_terminal

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "library"


def scan_on_a_terminal(library: Path, db: Path, columns: int) -> list[str]:
    """`moodtag scan` with its standard error on a pseudo-terminal COLUMNS wide: each frame it drew (the
    lines between carriage returns and newlines), without colour and cursor codes."""
    text = on_a_terminal(["scan", str(library), "--db", str(db), "--jobs", "1"], stream="stderr", columns=columns)
    return [frame for frame in re.split(r"[\r\n]+", text) if frame.strip()]


@pytest.mark.parametrize("columns", [40, 50, 120])
def test_a_narrow_terminal_keeps_the_count_and_the_time_left(tmp_path, columns):
    """Below about 60 columns rich cut the count ('4/6') and the ETA first and kept the description
    ('scanning (6 to analyse) 4.3 tracks/s e…'); a narrow terminal now gets one line that starts with
    them and cuts the description, and a wide one the whole bar."""
    library = tmp_path / "library"
    shutil.copytree(EXAMPLES, library)
    total = sum(1 for p in library.rglob("*") if p.is_file() and p.suffix != ".md")
    frames = [f for f in scan_on_a_terminal(library, tmp_path / "c.db", columns) if "tracks/s" in f]
    assert frames, "no progress frame with a rate was drawn"
    last = frames[-1]
    assert re.search(rf"\b{total}/{total}\b", last) and re.search(r"eta \d+:\d\d:\d\d", last), last
    assert all(len(frame) <= columns for frame in frames), frames
    if columns >= 80:
        assert "scanning" in last and "━" in last, last


def test_a_file_bind_mounted_read_only_on_its_own_is_named_as_its_own_mount():
    """A read-only bind mount of one file (`mount --bind f.ogg f.ogg; mount -o remount,bind,ro`) was named
    as the read-only file system '/' (its folder's mount), lumping it with the root's files. The file's
    own path is looked up first; mount points are matched on whole path parts."""
    from pathlib import Path

    from tagger.progress import mount_point

    points = [b"/", b"/mnt/music", b"/mnt/music/a b/f3.ogg"]
    assert mount_point(b"/mnt/music/a b/f3.ogg", points) == Path("/mnt/music/a b/f3.ogg")
    assert mount_point(b"/mnt/music/a b/f4.ogg", points) == Path("/mnt/music")
    assert mount_point(b"/mnt/musicx/f.ogg", points) == Path("/")
    assert mount_point(b"/mnt/music", points) == Path("/mnt/music")
