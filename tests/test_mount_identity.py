"""A mount point a scan remembered (m007_mount_points) that is a plain folder now: a partition retired, its
files copied into its folder; a systemd service's scan, whose ReadWritePaths= bind-mounts the library onto
itself in the service's own namespace. A row whose file is gone there was taken for a disk's that is away:
never marked missing, kept by prune for ever with a false 'not mounted' line. Real mounts in a private user
and mount namespace (tests/test_removable.py's), real audio, the real CLI."""
from __future__ import annotations

import os
from pathlib import Path

from tests.test_removable import _disk, _in_namespace

_MOUNT_ROWS = """
def mount_rows(name, db):
    con = sqlite3.connect(db)
    out[name] = [path for (path,) in con.execute("SELECT path FROM mount_points")]
    con.close()
"""


def _plain_folder_line(folder: Path) -> str:
    return (f"warning: {folder}: a scan saw a disk mounted here, but none is now and this folder holds the tracks "
            f"cached under it: a plain folder from now on, not a disk's mount point")


def test_a_retired_partitions_folder_holding_its_files_is_no_disk_away(tmp_path):
    """The library's partition retired: unmounted, its files copied into the plain folder of its mount point.
    A file deleted there was never marked missing (every scan said the disk is not mounted) and prune kept its
    row. The first scan that finds the folder holding the files cached under it says so once and forgets the
    mount point (a dry run says so and forgets nothing); a file deleted since is marked missing and pruned as
    anywhere; a disk mounted there again is remembered again."""
    _disk(tmp_path)
    out = _in_namespace(tmp_path, _MOUNT_ROWS + """
import shutil
mnt, db = top / "mnt", top / "c.db"
plug(top / "disk", mnt)
cli("scan", "scan", mnt / "Music", "--db", db, "--jobs", "1")
unplug(mnt, remove=False)
shutil.copytree(top / "disk/Music", mnt / "Music")  # (copy2: the mtimes kept, nothing analysed again)
cli("dry scan", "scan", "-n", mnt / "Music", "--db", db, "--jobs", "1")
mount_rows("after dry", db)
cli("moved scan", "scan", mnt / "Music", "--db", db, "--jobs", "1")
mount_rows("after move", db)
(mnt / "Music/A/2.ogg").unlink()
cli("deleted scan", "scan", mnt / "Music", "--db", db, "--jobs", "1")
states("deleted", db)
cli("prune", "prune", mnt / "Music", "--db", db)
states("pruned", db)
plug(top / "disk", mnt)
cli("mounted again", "scan", mnt / "Music", "--db", db, "--jobs", "1")
mount_rows("mounts again", db)
print(json.dumps(out))
""")
    mnt, line = tmp_path / "mnt", _plain_folder_line(tmp_path / "mnt")
    assert out["scan"][0] == 0, out["scan"]
    assert out["dry scan"][0] == 0 and line in out["dry scan"][2].splitlines(), out["dry scan"]
    assert out["after dry"] == [str(mnt)]
    assert out["moved scan"][0] == 0 and line in out["moved scan"][2].splitlines(), out["moved scan"]
    assert "not mounted now" not in out["moved scan"][2]
    assert out["after move"] == []
    assert out["deleted scan"][0] == 0 and "vanished (marked missing)  1 " in out["deleted scan"][2], out["deleted scan"]
    assert "not mounted now" not in out["deleted scan"][2] and line not in out["deleted scan"][2]
    assert out["deleted"] == {"1.mp3": ["ok", "tagged"], "2.ogg": ["missing", "tagged"], "3.flac": ["ok", "tagged"]}
    assert out["prune"][:2] == [0, "forgot 1 missing track\n"], out["prune"]
    assert out["pruned"] == {"1.mp3": ["ok", "tagged"], "3.flac": ["ok", "tagged"]}
    assert out["mounted again"][0] == 0 and line not in out["mounted again"][2], out["mounted again"]
    assert out["mounts again"] == [str(mnt)]


def test_a_library_a_service_scanned_through_its_own_bind_mount_is_a_plain_folder_in_the_shell(tmp_path):
    """The nightly scan runs as a systemd service whose ReadWritePaths=~/Music bind-mounts ~/Music onto itself
    in the service's namespace, so the scan remembers it as a mount point; in the user's shell it is a plain
    folder. A track deleted there was left ok by the shell's scan ('the disk a scan saw mounted there is not
    mounted now') and kept by prune. The shell's scan finds the folder holding the files cached under it: the
    one line, the track marked missing, and prune forgets it."""
    disk = _disk(tmp_path)
    out = _in_namespace(tmp_path, _MOUNT_ROWS + """
import shutil
music, db = top / "home/u/Music", top / "c.db"
shutil.copytree(top / "disk/Music", music)
service = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                          'mount --bind "$0" "$0" && exec "$1" -m tagger scan "$0" --db "$2" --jobs 1',
                          music, sys.executable, db], capture_output=True, text=True)
out["service"] = [service.returncode, service.stdout, service.stderr]
mount_rows("service mounts", db)
(music / "A/2.ogg").unlink()
cli("shell scan", "scan", music, "--db", db, "--jobs", "1")
states("scanned", db)
mount_rows("shell", db)
cli("prune", "prune", music, "--db", db)
states("pruned", db)
print(json.dumps(out))
""")
    music = tmp_path / "home/u/Music"
    assert out["service"][0] == 0, out["service"]
    assert out["service mounts"] == [str(music)]
    scan = out["shell scan"]
    assert scan[0] == 0 and _plain_folder_line(music) in scan[2].splitlines(), scan
    assert "vanished (marked missing)  1 " in scan[2] and "not mounted now" not in scan[2], scan
    assert out["scanned"] == {"1.mp3": ["ok", "tagged"], "2.ogg": ["missing", "tagged"], "3.flac": ["ok", "tagged"]}
    assert out["shell"] == []
    assert out["prune"][:2] == [0, "forgot 1 missing track\n"], out["prune"]
    assert out["pruned"] == {"1.mp3": ["ok", "tagged"], "3.flac": ["ok", "tagged"]}
    assert os.path.exists(disk / "Music/A/2.ogg")


def test_whether_a_mount_points_folder_holds_its_files_is_told_by_a_sample_spread_over_its_rows(tmp_path):
    """Whether the folder holds the files cached under it is decided by a few dozen of its rows, spread over
    them in key order (two queries, once per mount point), not by all of a library's rows nor by the first
    few: with 60% of the files there (the first ones by key) it is a plain folder; with 40%, a disk away."""
    from tagger.cache import Cache

    def away_of(there: int) -> tuple[bytes | None, list[str]]:
        folder = tmp_path / f"X{there}"
        (folder / "lib").mkdir(parents=True)
        names = [folder / "lib" / f"{i:04d}.flac" for i in range(2000)]
        for name in names[:there]:
            name.touch()
        with Cache.open(tmp_path / f"c{there}.db") as cache:
            cache.note_mounts([folder], [b"/", os.fsencode(folder)])
            cache.conn.executemany("INSERT INTO tracks (path, size, mtime_ns, status) VALUES (?, 0, 0, 'ok')",
                                   [(str(name),) for name in names])
            mounts = cache.mounts([b"/"])  # not mounted now
            queries: list[str] = []
            cache.conn.set_trace_callback(queries.append)
            point = mounts.away(names[-1])
            assert mounts.away(folder / "other" / "gone.flac") == point  # asked once
            cache.conn.set_trace_callback(None)
        return point, queries

    point, queries = away_of(1200)
    assert point is None and len(queries) == 2, queries
    point, queries = away_of(800)
    assert point == os.fsencode(tmp_path / "X800") and len(queries) == 2, queries


def test_beet_moodtag_says_too_that_a_remembered_mount_point_is_a_plain_folder_now(tmp_path):
    """`beet moodtag` forgets such a mount point as a scan does, but said nothing of it: the plugin shows
    the scan's lines through the progress bar, which had no line for it. It has one now, as the CLI's."""
    _disk(tmp_path)
    out = _in_namespace(tmp_path, """
import shutil
mnt, db, beets = top / "mnt", top / "c.db", top / "beets"
beets.mkdir()
(top / "library").mkdir()
root = Path.cwd()
(beets / "config.yaml").write_text(json.dumps({
    "directory": str(top / "library"), "library": str(beets / "library.db"),
    "pluginpath": [str(root / "tagger" / "beetsplug")], "plugins": ["moodtag"],
    "import": {"copy": False, "write": False, "duplicate_action": "keep"},
    "moodtag": {"db": str(db), "jobs": 1, "auto": False}}))
def beet(name, *args):
    env = dict({k: v for k, v in os.environ.items() if k != "MOODTAG_DB"}, BEETSDIR=str(beets), PYTHONPATH=str(root))
    proc = subprocess.run([sys.executable, "-m", "beets", *map(str, args)], capture_output=True, text=True, env=env)
    out[name] = [proc.returncode, proc.stdout, proc.stderr]
plug(top / "disk", mnt)
cli("scan", "scan", mnt / "Music", "--db", db, "--jobs", "1")
beet("import", "import", "-A", "-q", "-s", mnt / "Music")
unplug(mnt, remove=False)
shutil.copytree(top / "disk/Music", mnt / "Music")  # (copy2: the mtimes kept, nothing analysed again)
beet("moodtag", "moodtag")
print(json.dumps(out))
""")
    assert out["scan"][0] == 0 and out["import"][0] == 0, out
    assert out["moodtag"][0] == 0 and _plain_folder_line(tmp_path / "mnt") in out["moodtag"][2].splitlines(), out
    assert "3 items: 0 analysed, 3 unchanged (cached)" in out["moodtag"][2], out["moodtag"]
