"""A mount point a scan remembered (m007_mount_points) that is a plain folder now: a partition retired, its
files copied into its folder; a systemd service's scan, whose ReadWritePaths= bind-mounts the library onto
itself in the service's own namespace. A row whose file is gone there was taken for a disk's that is away:
never marked missing, kept by prune for ever with a false 'not mounted' line. Real mounts in a private user
and mount namespace (tests/test_removable.py's), real audio, the real CLI."""
from __future__ import annotations

import os
from pathlib import Path

from tests.test_removable import _disk, _in_namespace

_TEN = ("A/1.mp3", "A/2.ogg", "B/3.flac", *(f"C/{i}.ogg" for i in range(4, 11)))  # a disk of ten tracks

_MOUNT_ROWS = """
def mount_rows(name, db):
    con = sqlite3.connect(db)
    out[name] = [path for (path,) in con.execute("SELECT path FROM mount_points")]
    con.close()
def retire_delete_prune(lib, db, deleted):
    cli("retired", "scan", lib, "--db", db, "--jobs", "1")
    mount_rows("mounts", db)
    deleted.unlink()
    cli("deleted", "scan", lib, "--db", db, "--jobs", "1")
    states("deleted states", db)
    cli("prune", "prune", lib, "--db", db)
    states("pruned", db)
"""


def _plain_folder_line(folder: Path, *, dry: bool = False) -> str:
    taken = "would be taken for a plain folder" if dry else "a plain folder"
    return (f"warning: {folder}: a scan saw a disk mounted here, but none is now and this folder holds the tracks "
            f"cached under it: {taken} from now on, not a disk's mount point")


def test_a_retired_partitions_folder_holding_its_files_is_no_disk_away(tmp_path):
    """The library's partition retired: unmounted, its files copied into the plain folder of its mount point.
    A file deleted there was never marked missing (every scan said the disk is not mounted) and prune kept its
    row. The first scan that finds the folder holding the files cached under it says so once and forgets the
    mount point (a dry run says what it would do, forgetting nothing); a file deleted since is marked missing
    and pruned as anywhere; a disk mounted there again is remembered again."""
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
    dry_line = _plain_folder_line(mnt, dry=True)
    assert out["dry scan"][0] == 0 and dry_line in out["dry scan"][2].splitlines(), out["dry scan"]
    assert line not in out["dry scan"][2], out["dry scan"]
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
    mounted now') and kept by prune. The shell's scan finds the folder holding the files cached under it (one
    of ten gone: nine in ten are there): the one line, the track marked missing, and prune forgets it."""
    disk = _disk(tmp_path, _TEN)
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
    ten = {Path(name).name: ["ok", "tagged"] for name in _TEN}
    assert out["scanned"] == {**ten, "2.ogg": ["missing", "tagged"]}
    assert out["shell"] == []
    assert out["prune"][:2] == [0, "forgot 1 missing track\n"], out["prune"]
    assert out["pruned"] == {name: state for name, state in ten.items() if name != "2.ogg"}
    assert os.path.exists(disk / "Music/A/2.ogg")


def test_whether_a_mount_points_folder_holds_its_files_is_told_by_a_sample_spread_over_its_rows(tmp_path):
    """Whether the folder holds the files cached under it is decided by a few dozen of its rows, spread over
    them in key order (two queries, once per mount point), not by all of a library's rows nor by the first
    few: with 95% of the files there (the first ones by key, each of its row's size and mtime) it is a plain
    folder; with 60% (an older copy of part of the disk's files left in the folder under it), a disk away."""
    from tagger.cache import Cache

    def away_of(there: int) -> tuple[bytes | None, list[str]]:
        folder = tmp_path / f"X{there}"
        (folder / "lib").mkdir(parents=True)
        names = [folder / "lib" / f"{i:04d}.flac" for i in range(2000)]
        for name in names[:there]:
            name.touch()
            os.utime(name, ns=(0, 0))  # as the rows hold it
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

    point, queries = away_of(1900)
    assert point is None and len(queries) == 2, queries
    point, queries = away_of(1200)
    assert point == os.fsencode(tmp_path / "X1200") and len(queries) == 2, queries


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


def test_an_older_copy_of_a_disks_files_under_its_mount_point_is_no_plain_folder(tmp_path):
    """The disk away, the folder under its mount point holds an older copy of its files (a sync tool wrote
    there while it was away): six of its ten files as they are on the disk, or nine of them as they were
    before the scan tagged them. Half or more of the files there by name made the folder a plain one: the
    others (an untagged one among them) were marked missing, prune forgot them, and the disk back, they were
    analysed and tagged again. A folder holds the disk's files only where nine in ten of them are there with
    the size and mtime their rows hold: here the disk is away, its rows kept, untag included."""
    _disk(tmp_path, _TEN)
    out = _in_namespace(tmp_path, _MOUNT_ROWS + """
import shutil
def copy(src, dst, names):
    for rel in names:
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, dst / rel)
names = [str(p.relative_to(top / "disk/Music")) for p in sorted((top / "disk/Music").rglob("*.*"))]
shutil.copytree(top / "disk", top / "disk2")
copy(top / "disk2/Music", top / "before", [n for n in names if n != "C/10.ogg"])  # as they were, untagged
for part, disk, copied in (("six", top / "disk", None), ("stale", top / "disk2", top / "before")):
    mnt, db = top / "mnt" / part, top / f"{part}.db"
    plug(disk, mnt)
    cli(part + " scan", "scan", mnt / "Music", "--db", db, "--jobs", "1")
    cli(part + " untag", "untag", mnt / "Music/C/10.ogg", "--db", db)
    unplug(mnt, remove=False)
    if copied is None:
        copy(disk / "Music", mnt / "Music", [n for n in names if n[2:] not in ("7.ogg", "8.ogg", "9.ogg", "10.ogg")])
    else:
        copy(copied, mnt / "Music", [n for n in names if n != "C/10.ogg"])
    cli(part + " away", "scan", mnt / "Music", "--db", db, "--jobs", "1")
    states(part + " away states", db)
    mount_rows(part + " mounts", db)
    cli(part + " prune", "prune", mnt / "Music", "--db", db)
    plug(disk, mnt)
    cli(part + " back", "scan", mnt / "Music", "--db", db, "--jobs", "1")
    states(part + " back states", db)
print(json.dumps(out))
""")
    for part, gone in (("six", 4), ("stale", 1)):
        mnt = tmp_path / "mnt" / part
        assert out[part + " scan"][0] == 0 and out[part + " untag"][0] == 0, out[part + " untag"]
        away = out[part + " away"]
        assert away[0] == 0 and "a plain folder" not in away[2], away
        left = f"{gone} cached tracks under {mnt} left as they are" if gone > 1 else \
            f"1 cached track under {mnt} left as it is"
        assert f"{left}: the disk a scan saw mounted there is not mounted now" in away[2], away
        assert out[part + " away states"]["10.ogg"] == ["ok", "untagged"], out[part + " away states"]
        assert "missing" not in str(out[part + " away states"]), out[part + " away states"]
        assert out[part + " mounts"] == [str(mnt)]
        assert out[part + " prune"][:2] == [0, "forgot 0 missing tracks\n"], out[part + " prune"]
        assert out[part + " back states"]["10.ogg"] == ["ok", "untagged"], out[part + " back states"]


def test_a_disk_mounted_inside_a_retired_one_is_no_part_of_its_sample(tmp_path):
    """Disk A at music, disk B at music/Archive; A retired (its files copied into music's folder), B away.
    B's rows, gone, were in A's sample: A was taken for a disk away, a file deleted there never marked
    missing. A's sample holds A's rows only: A is a plain folder, its file deleted is marked missing and
    pruned; B is still a disk away, its rows kept."""
    from tagger import synth

    _disk(tmp_path)
    for i, name in enumerate(("Lib/a1.mp3", "Lib/a2.ogg")):
        (tmp_path / "outer" / name).parent.mkdir(parents=True, exist_ok=True)
        synth.make_track(tmp_path / "outer" / name, "calm", 6.0, seed=20 + i)
    out = _in_namespace(tmp_path, _MOUNT_ROWS + """
import shutil
music, archive, db = top / "music", top / "music/Archive", top / "c.db"
plug(top / "outer", music)
plug(top / "disk", archive)
cli("scan", "scan", music, "--db", db, "--jobs", "1")
unplug(archive, remove=False)
unplug(music, remove=False)
shutil.copytree(top / "outer/Lib", music / "Lib")  # A retired
(music / "Archive").mkdir()
retire_delete_prune(music, db, music / "Lib/a1.mp3")
print(json.dumps(out))
""")
    music, archive = tmp_path / "music", tmp_path / "music/Archive"
    assert out["scan"][0] == 0, out["scan"]
    retired = out["retired"]
    assert retired[0] == 0 and _plain_folder_line(music) in retired[2].splitlines(), retired
    assert _plain_folder_line(archive) not in retired[2], retired
    assert out["mounts"] == [str(archive)]
    deleted = out["deleted"]
    assert "vanished (marked missing)  1 " in deleted[2], deleted
    assert (f"3 cached tracks under {archive} left as they are: the disk a scan saw mounted there is not mounted "
            f"now") in deleted[2], deleted
    b = {"1.mp3": ["ok", "tagged"], "2.ogg": ["ok", "tagged"], "3.flac": ["ok", "tagged"]}
    assert out["deleted states"] == {**b, "a1.mp3": ["missing", "tagged"], "a2.ogg": ["ok", "tagged"]}
    assert out["prune"][0] == 0 and out["prune"][1].endswith("forgot 1 missing track\n"), out["prune"]
    assert out["pruned"] == {**b, "a2.ogg": ["ok", "tagged"]}


def test_a_retired_partition_the_library_reaches_through_a_link_is_a_plain_folder(tmp_path):
    """~/Music -> /mnt/music/Music, the partition retired (its files copied into /mnt/music's folder): the
    rows lie under ~/Music, none under the mount point, so its sample was empty and it stayed a disk away, a
    file deleted there never marked missing. The rows reached through the link are sampled too."""
    _disk(tmp_path)
    out = _in_namespace(tmp_path, _MOUNT_ROWS + """
import shutil
mnt, link, db = top / "mnt/music", top / "home/Music", top / "c.db"
plug(top / "disk", mnt)
link.parent.mkdir(parents=True)
link.symlink_to(mnt / "Music")
cli("scan", "scan", link, "--db", db, "--jobs", "1")
unplug(mnt, remove=False)
shutil.copytree(top / "disk/Music", mnt / "Music")
retire_delete_prune(link, db, mnt / "Music/A/2.ogg")
print(json.dumps(out))
""")
    mnt = tmp_path / "mnt/music"
    assert out["scan"][0] == 0, out["scan"]
    assert out["retired"][0] == 0 and _plain_folder_line(mnt) in out["retired"][2].splitlines(), out["retired"]
    assert out["mounts"] == []
    assert "vanished (marked missing)  1 " in out["deleted"][2], out["deleted"]
    assert out["deleted states"] == {"1.mp3": ["ok", "tagged"], "2.ogg": ["missing", "tagged"],
                                     "3.flac": ["ok", "tagged"]}
    assert out["prune"][:2] == [0, "forgot 1 missing track\n"], out["prune"]
    assert out["pruned"] == {"1.mp3": ["ok", "tagged"], "3.flac": ["ok", "tagged"]}
