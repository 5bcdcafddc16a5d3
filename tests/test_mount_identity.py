"""A mount point a scan remembered (m007_mount_points) that is a plain folder now: a partition retired, its
files copied into its folder; a systemd service's scan, whose ReadWritePaths= bind-mounts the library onto
itself in the service's own namespace. A scan cannot tell it from a disk away over an older copy of its files,
so it leaves the rows as they are and says so in one line; `prune --forget-disk MOUNT` forgets the files gone
there and the mount point. Real mounts in a private user and mount namespace (tests/test_removable.py's), real
audio, the real CLI."""
from __future__ import annotations

import os
import shlex
from pathlib import Path

from tests.test_removable import _disk, _in_namespace

_TEN = ("A/1.mp3", "A/2.ogg", "B/3.flac", *(f"C/{i}.ogg" for i in range(4, 11)))  # a disk of ten tracks

_MOUNT_ROWS = """
def mount_rows(name, db):
    con = sqlite3.connect(db)
    out[name] = [path for (path,) in con.execute("SELECT path FROM mount_points")]
    con.close()
def retire_delete_prune(lib, db, deleted, point, *linked, later=None):
    cli("retired", "scan", lib, "--db", db, "--jobs", "1")
    mount_rows("mounts", db)
    deleted.unlink()
    cli("deleted", "scan", lib, "--db", db, "--jobs", "1")
    states("deleted states", db)
    cli("dry forget", "prune", "-n", "--forget-disk", point, *linked, "--db", db)
    mount_rows("mounts after dry", db)
    cli("prune", "prune", "--forget-disk", point, *linked, "--db", db)
    states("pruned", db)
    mount_rows("mounts after prune", db)
    if later is not None:
        later.unlink()
        cli("later", "scan", lib, "--db", db, "--jobs", "1")
        states("later states", db)
"""


def _plain_folder_line(folder: Path, *linked: Path) -> str:
    """The scan's line for a remembered mount point not mounted now whose folder holds its files."""
    words = " ".join(shlex.quote(str(place)) for place in (folder, *linked))
    return (f"warning: {folder}: a scan saw a disk mounted here; none is now, but this folder holds the files cached "
            f"under it (a partition retired, its files copied here?): its tracks are left as they are; if it is a "
            f"plain folder now, moodtag prune --forget-disk {words} forgets the tracks gone there and the mount point")


def _forget_line(folder: Path, *, dry: bool = False) -> str:
    return f"{folder}: {'would no longer be' if dry else 'no longer'} taken for a disk's mount point (its folder " \
           f"holds its files)"


def _assert_hinted_then_forgotten(out: dict, point: Path, lib: Path, line: str, deleted: str, kept: dict,
                                  *, inner: list[str] = ()) -> None:
    """retire_delete_prune's outcome: the scan says `line`; none marks a row missing, the mount point kept; the
    dry `prune --forget-disk` writes nothing; the real one forgets the deleted file's row only and the mount
    point; the next scan marks a file deleted later missing, as anywhere."""
    assert out["retired"][0] == 0 and line in out["retired"][2].splitlines(), out["retired"]
    assert sorted(out["mounts"]) == sorted([str(point), *inner])
    deleted_scan = out["deleted"]
    assert deleted_scan[0] == 0, deleted_scan  # (2 of 3 files there as cached: a line no more)
    assert "marked missing" not in deleted_scan[2], deleted_scan
    assert f"1 cached track under {point} left as it is" in deleted_scan[2], deleted_scan
    assert out["deleted states"] == {**kept, deleted: ["ok", "tagged"]}
    assert out["dry forget"][0] == 0 and _forget_line(point, dry=True) in out["dry forget"][1].splitlines(), \
        out["dry forget"]
    assert sorted(out["mounts after dry"]) == sorted(out["mounts"])
    assert out["prune"][0] == 0 and _forget_line(point) in out["prune"][1].splitlines(), out["prune"]
    assert out["prune"][1].endswith("forgot 1 track whose file is gone\n"), out["prune"]
    assert out["pruned"] == kept
    assert out["mounts after prune"] == sorted(inner)


def test_a_retired_partitions_folder_holding_its_files_is_left_to_prune_forget_disk(tmp_path):
    """The library's partition retired: unmounted, its files copied into the plain folder of its mount point.
    A scan cannot tell that from a disk away over an older copy of its files: it leaves the rows as they are
    (a file deleted there is not marked missing) and says so in one line, a dry run too, naming the command;
    `prune --forget-disk` forgets the file gone and the mount point, so that a file deleted later is marked
    missing as anywhere; a disk mounted there again is remembered again."""
    _disk(tmp_path)
    out = _in_namespace(tmp_path, _MOUNT_ROWS + """
import shutil
mnt, db = top / "mnt", top / "c.db"
plug(top / "disk", mnt)
cli("scan", "scan", mnt / "Music", "--db", db, "--jobs", "1")
unplug(mnt, remove=False)
shutil.copytree(top / "disk/Music", mnt / "Music")  # (copy2: the mtimes kept, nothing analysed again)
cli("dry scan", "scan", "-n", mnt / "Music", "--db", db, "--jobs", "1")
retire_delete_prune(mnt / "Music", db, mnt / "Music/A/2.ogg", mnt, later=mnt / "Music/B/3.flac")
plug(top / "disk", mnt)
cli("mounted again", "scan", mnt / "Music", "--db", db, "--jobs", "1")
mount_rows("mounts again", db)
print(json.dumps(out))
""")
    mnt, line = tmp_path / "mnt", _plain_folder_line(tmp_path / "mnt")
    assert out["scan"][0] == 0, out["scan"]
    assert out["dry scan"][0] == 0 and line in out["dry scan"][2].splitlines(), out["dry scan"]
    _assert_hinted_then_forgotten(out, mnt, mnt / "Music", line, "2.ogg",
                                  {"1.mp3": ["ok", "tagged"], "3.flac": ["ok", "tagged"]})
    later = out["later"]
    assert later[0] == 0 and "vanished (marked missing)  1 " in later[2] and line not in later[2], later
    assert "not mounted now" not in later[2], later
    assert out["later states"] == {"1.mp3": ["ok", "tagged"], "3.flac": ["missing", "tagged"]}
    assert out["mounted again"][0] == 0 and line not in out["mounted again"][2], out["mounted again"]
    assert out["mounts again"] == [str(mnt)]


def test_a_library_a_service_scanned_through_its_own_bind_mount_is_a_plain_folder_in_the_shell(tmp_path):
    """The nightly scan runs as a systemd service whose ReadWritePaths=~/Music bind-mounts ~/Music onto itself
    in the service's namespace, so the scan remembers it as a mount point; in the user's shell it is a plain
    folder. A track deleted there is left ok by the shell's scan, whose line says that the folder holds its
    files and names `prune --forget-disk`; that forgets the track and the mount point."""
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
cli("prune", "prune", "--forget-disk", music, "--db", db)
states("pruned", db)
mount_rows("pruned mounts", db)
print(json.dumps(out))
""")
    music = tmp_path / "home/u/Music"
    assert out["service"][0] == 0, out["service"]
    assert out["service mounts"] == [str(music)]
    scan = out["shell scan"]
    assert scan[0] == 0 and _plain_folder_line(music) in scan[2].splitlines(), scan
    assert "marked missing" not in scan[2], scan
    ten = {Path(name).name: ["ok", "tagged"] for name in _TEN}
    assert out["scanned"] == ten
    assert out["shell"] == [str(music)]
    assert out["prune"][0] == 0 and _forget_line(music) in out["prune"][1].splitlines(), out["prune"]
    assert out["prune"][1].endswith("forgot 1 track whose file is gone\n"), out["prune"]
    assert out["pruned"] == {name: state for name, state in ten.items() if name != "2.ogg"}
    assert out["pruned mounts"] == []
    assert os.path.exists(disk / "Music/A/2.ogg")


def test_whether_a_mount_points_folder_holds_its_files_is_told_by_a_sample_spread_over_its_rows(tmp_path):
    """Whether the folder holds the files cached under it (the scan's line, `prune --forget-disk`) is decided by
    a few dozen of its rows, spread over them in key order (two queries, once per mount point), not by all of a
    library's rows nor by the first few: with 95% of the files there (the first ones by key, each of its row's
    size and mtime) it holds them; with 60% (an older copy of part of the disk's files), not. Either way the
    point is a disk away."""
    from tagger.cache import Cache

    def retired_of(there: int) -> tuple[bytes | None, list[bytes], list[str]]:
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
            assert mounts.away(folder / "other" / "gone.flac") == point
            retired = mounts.retired
            assert mounts.retired == retired  # asked once
            cache.conn.set_trace_callback(None)
        return point, retired, queries

    point, retired, queries = retired_of(1900)
    assert point == os.fsencode(tmp_path / "X1900") and retired == [point] and len(queries) == 2, queries
    point, retired, queries = retired_of(1200)
    assert point == os.fsencode(tmp_path / "X1200") and retired == [] and len(queries) == 2, queries


def test_beet_moodtag_says_too_that_a_remembered_mount_points_folder_holds_its_files(tmp_path):
    """`beet moodtag` says what a scan says of such a mount point: the plugin shows the scan's lines through
    the progress bar, which has a line for it, as the CLI's."""
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
        assert away[0] == 0 and "holds the files cached under it" not in away[2], away
        left = f"{gone} cached tracks under {mnt} left as they are" if gone > 1 else \
            f"1 cached track under {mnt} left as it is"
        assert f"{left}: the disk a scan saw mounted there is not mounted now" in away[2], away
        assert out[part + " away states"]["10.ogg"] == ["ok", "untagged"], out[part + " away states"]
        assert "missing" not in str(out[part + " away states"]), out[part + " away states"]
        assert out[part + " mounts"] == [str(mnt)]
        they = f"{gone} tracks under {mnt}: the disk a scan saw mounted there is not mounted now; if they are" \
            if gone > 1 else f"1 track under {mnt}: the disk a scan saw mounted there is not mounted now; if it is"
        assert out[part + " prune"][:2] == [0, f"kept {they} gone for good, moodtag prune --forget-disk {mnt}\n"
                                               f"forgot 0 missing tracks\n"], out[part + " prune"]
        assert out[part + " back states"]["10.ogg"] == ["ok", "untagged"], out[part + " back states"]


def test_a_disk_mounted_inside_a_retired_one_is_no_part_of_its_sample(tmp_path):
    """Disk A at music, disk B at music/Archive; A retired (its files copied into music's folder), B away.
    B's rows, gone, are no part of A's sample: the scan says that music's folder holds its files, not
    Archive's; `prune --forget-disk music` forgets A's file deleted and A's mount point, B's rows kept."""
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
retire_delete_prune(music, db, music / "Lib/a1.mp3", music)
print(json.dumps(out))
""")
    music, archive = tmp_path / "music", tmp_path / "music/Archive"
    assert out["scan"][0] == 0, out["scan"]
    assert _plain_folder_line(archive) not in out["retired"][2], out["retired"]
    b = {"1.mp3": ["ok", "tagged"], "2.ogg": ["ok", "tagged"], "3.flac": ["ok", "tagged"]}
    _assert_hinted_then_forgotten(out, music, music, _plain_folder_line(music), "a1.mp3",
                                  {**b, "a2.ogg": ["ok", "tagged"]}, inner=[str(archive)])
    assert (f"3 cached tracks under {archive} left as they are: the disk a scan saw mounted there is not mounted "
            f"now") in out["deleted"][2], out["deleted"]


def test_a_retired_partition_the_library_reaches_through_a_link_is_a_plain_folder(tmp_path):
    """~/Music -> /mnt/music/Music, the partition retired (its files copied into /mnt/music's folder): the
    rows lie under ~/Music, none under the mount point; those reached through the link are sampled too, the
    scan's line names the link beside the mount point, and following it forgets the file gone and the point."""
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
retire_delete_prune(link, db, mnt / "Music/A/2.ogg", mnt, link, later=mnt / "Music/B/3.flac")
print(json.dumps(out))
""")
    mnt, link = tmp_path / "mnt/music", tmp_path / "home/Music"
    assert out["scan"][0] == 0, out["scan"]
    _assert_hinted_then_forgotten(out, mnt, link, _plain_folder_line(mnt, link), "2.ogg",
                                  {"1.mp3": ["ok", "tagged"], "3.flac": ["ok", "tagged"]})
    assert "vanished (marked missing)  1 " in out["later"][2], out["later"]
    assert out["later states"] == {"1.mp3": ["ok", "tagged"], "3.flac": ["missing", "tagged"]}


def test_a_disk_away_over_an_exact_copy_of_most_of_its_files_keeps_its_rows(tmp_path):
    """The library lived in the plain folder M, then moved to a disk (`cp -a M/. disk/`) mounted over M, the old
    copy left underneath; an album added to the disk since, untagged. One night the disk is not mounted: nine
    in ten of the files cached under M are there as cached (the old copy), so M was taken for a retired
    partition: the new album's row marked missing, forgotten by prune with its untag, tagged again when the
    disk came back. The scan leaves the rows as they are (its line may say the folder holds its files)."""
    from tagger import synth

    _disk(tmp_path, _TEN)
    (tmp_path / "new").mkdir()
    synth.make_track(tmp_path / "new" / "11.mp3", "calm", 6.0, seed=31)
    out = _in_namespace(tmp_path, _MOUNT_ROWS + """
import shutil
mnt, db, disk = top / "mnt/music", top / "c.db", top / "disk2"
shutil.copytree(top / "disk", mnt)
cli("plain scan", "scan", mnt, "--db", db, "--jobs", "1")
disk.mkdir()
sh("cp", "-a", f"{mnt}/.", disk)
plug(disk, mnt)
cli("moved", "scan", mnt, "--db", db, "--jobs", "1")
(disk / "New").mkdir()
shutil.copy2(top / "new/11.mp3", disk / "New/11.mp3")
cli("new", "scan", mnt, "--db", db, "--jobs", "1")
cli("untag", "untag", mnt / "New", "--db", db)
unplug(mnt, remove=False)
cli("away", "scan", mnt, "--db", db, "--jobs", "1")
states("away states", db)
mount_rows("away mounts", db)
cli("prune", "prune", mnt, "--db", db)
plug(disk, mnt)
cli("back", "scan", mnt, "--db", db, "--jobs", "1")
states("back states", db)
print(json.dumps(out))
""")
    mnt = tmp_path / "mnt/music"
    for step in ("plain scan", "moved", "new", "untag", "back"):
        assert out[step][0] == 0, (step, out[step])
    away = out["away"]
    assert away[0] == 0 and "marked missing" not in away[2], away
    assert f"1 cached track under {mnt} left as it is: the disk a scan saw mounted there is not mounted now" \
        in away[2], away
    assert out["away states"]["11.mp3"] == ["ok", "untagged"], out["away states"]
    assert "missing" not in str(out["away states"]), out["away states"]
    assert out["away mounts"] == [str(mnt)]
    assert out["prune"][:2] == [0, f"kept 1 track under {mnt}: the disk a scan saw mounted there is not mounted now; "
                                   f"if it is gone for good, moodtag prune --forget-disk {mnt}\n"
                                   f"forgot 0 missing tracks\n"], out["prune"]
    assert out["back states"]["11.mp3"] == ["ok", "untagged"], out["back states"]
