"""A drive that goes away under moodtag (a USB stick pulled out, its FUSE daemon gone): a close that fails
never hides the error in flight nor escapes a read-ahead thread, and a decoder's disk error reads as the
disk's ('cannot read: ...', which a scan tries again), not as undecodable audio.

The tests without a drive close a file's descriptor underneath it (a real EBADF on close), or read
/proc/self/mem (a real EIO); those with one make an exFAT image on a loop device, mount it with
exfat-fuse and kill the daemon (a real ENOTCONN): root, loop devices and FUSE, skipped where missing."""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tagger import prefetch, synth
from tagger.errors import AudioError, TagError, unreadable
from tagger.tags import MoodValues, _opened, read_info, read_mood, write_mood

VALUES = MoodValues(mood="calm", scores={"calm": 0.9, "exciting": 0.1}, model="test 1")


def _fds_of(path: Path) -> list[int]:
    """This process's descriptors open on `path` (Linux: /proc/self/fd)."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target in (str(path), f"{path} (deleted)"):
            found.append(int(name))
    return found


linux_only = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc (Linux)")


@pytest.fixture(scope="module")
def flac(tmp_path_factory) -> Path:
    return synth.make_track(tmp_path_factory.mktemp("removable") / "a.flac", "calm", 6.0, seed=1)


@linux_only
def test_a_close_that_fails_is_the_files_tag_error_and_never_hides_the_error_in_flight(flac):
    """The stick pulled out during a scan: closing the file raised (ENOTCONN) out of `with fh:`, in place of
    the TagError in flight, and the scan ended in a traceback. A close that fails alone is the file's one-line
    TagError; one that fails while another error is in flight leaves that error as it is."""
    with pytest.raises(TagError, match="^bad file descriptor$"):
        with _opened(flac) as fh:
            os.close(fh.fileno())  # a real OS error on close: the descriptor is gone underneath
    with pytest.raises(TagError, match="^the real cause$"):
        with _opened(flac) as fh:
            os.close(fh.fileno())
            raise TagError("the real cause")
    assert _fds_of(flac) == []


@linux_only
def test_a_tag_write_made_stands_when_closing_the_file_read_fails(flac, tmp_path):
    """write_mood writes and syncs through a descriptor of its own (tagger.safewrite): once that is done,
    the read-only one failing to close loses nothing, and the write is not reported as failed."""
    path = shutil.copy(flac, tmp_path / "b.flac")

    def close_underneath(_stat) -> None:
        for fd in _fds_of(Path(path)):
            os.close(fd)

    assert write_mood(path, VALUES, journal=None, on_written=close_underneath) is True
    assert read_mood(path) == VALUES


@linux_only
def test_a_read_ahead_whose_close_fails_says_nothing(flac, monkeypatch):
    """'Exception in thread moodtag-read-ahead-2: Traceback ... os.close(fd) OSError' was printed in the
    middle of a scan: the read-ahead's errors are ignored (the worker that opens the file reports them), its
    close's too."""
    planned = prefetch.planned_ranges

    def close_underneath(path, size, plan):  # the file's descriptor closed while it is read
        for fd in _fds_of(Path(path)):
            os.close(fd)
        return planned(path, size, plan)

    monkeypatch.setattr(prefetch, "planned_ranges", close_underneath)
    assert prefetch.read_into_page_cache(flac) == 0
    escaped: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: escaped.append(args.exc_value))
    with prefetch.ReadAhead([flac, flac], tracks=2) as ahead:
        ahead.done(2)
    assert escaped == []


def _skip_unless_proc_mem_fails() -> None:
    """/proc/self/mem read at offset 0 fails with EIO, a real one: the test is skipped where it does not."""
    try:
        with open("/proc/self/mem", "rb") as fh:
            fh.read(16)
        pytest.skip("/proc/self/mem reads here")
    except OSError as exc:
        if exc.errno != errno.EIO:
            pytest.skip(f"/proc/self/mem: {exc}")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/mem: Linux")
def test_a_disk_error_under_a_decoder_is_cannot_read_not_undecodable(flac):
    """FFmpeg's EIO, ENOTCONN or ENODEV from reading the file is the disk's: 'cannot read: CAUSE' (retried by
    the next scan), not 'not a decodable audio file (Transport endpoint is not connected)', a failure a scan
    keeps until the file changes. /proc/self/mem read at offset 0 fails with EIO, a real one."""
    from tagger.audio import _open_source

    _skip_unless_proc_mem_fails()
    for suffix in (".m4a", ".flac"):  # FFmpeg alone; libsndfile first, then FFmpeg
        with pytest.raises(AudioError) as caught:
            _open_source("/proc/self/mem", suffix)
        assert str(caught.value) == "cannot read: Input/output error"
        assert unreadable(str(caught.value))
    # FFmpeg also says EIO of data cut short: where the file reads, that stays the decoder's failure
    import av

    from tagger.audio import _disk_failure

    assert _disk_failure(av.error.OSError(errno.EIO, "Input/output error"), str(flac)) is None
    assert _disk_failure(av.error.OSError(errno.ENOTCONN, "Transport endpoint is not connected"), str(flac)) \
        is not None


# -- a real drive pulled out: exFAT on a loop device through exfat-fuse, its daemon killed ----------

def _can_mount(mkfs: str = "mkfs.exfat", mounter: str = "mount.exfat-fuse") -> str | None:
    """Why a FUSE drive cannot be made here, or None."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return "needs root on Linux"
    missing = [tool for tool in ("losetup", mkfs, mounter, "umount") if not shutil.which(tool)]
    if missing:
        return f"needs {', '.join(missing)}"
    if not os.path.exists("/dev/fuse"):
        return "needs /dev/fuse"
    return None


class Drive:
    MKFS = ["mkfs.exfat"]
    SIZE = 16 << 20

    def __init__(self, folder: Path) -> None:
        self.image, self.mount = folder / "stick.img", folder / "stick"
        self.loop = self.pid = None

    def daemon(self) -> list[str]:
        return ["mount.exfat-fuse", "-d", self.loop, str(self.mount)]   # -d: in the foreground

    def plug(self) -> None:
        with open(self.image, "wb") as fh:
            fh.truncate(self.SIZE)
        subprocess.run([*self.MKFS, str(self.image)], check=True, capture_output=True)
        self.loop = subprocess.run(["losetup", "-f", "--show", str(self.image)], check=True, capture_output=True,
                                   text=True).stdout.strip()
        self.mount.mkdir()
        daemon = subprocess.Popen(self.daemon(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.pid = daemon.pid
        for _ in range(100):
            if os.path.ismount(self.mount):
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.daemon()[0]} did not mount")

    def pull(self) -> None:
        """The daemon killed: every open file's next call, close included, fails with ENOTCONN."""
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        self.pid = None

    def remove(self) -> None:
        if self.pid is not None:
            self.pull()
        subprocess.run(["umount", "-l", str(self.mount)], capture_output=True)   # a daemon killed: ENOTCONN
        if self.loop:
            subprocess.run(["losetup", "-d", self.loop], capture_output=True)
        self.image.unlink(missing_ok=True)


def _plugged(stick: Drive, *tools: str) -> Drive:
    """The drive plugged in, or the test skipped where it cannot be."""
    why = _can_mount(*tools)
    if why:
        pytest.skip(why)
    try:
        stick.plug()
    except (OSError, subprocess.CalledProcessError, RuntimeError) as exc:
        stick.remove()
        pytest.skip(f"no FUSE drive here: {exc}")
    return stick


def plugged_with(drive: "Drive", fill):
    """A fixture's body: `drive` plugged in (_plugged), `fill(its mount)` run, the drive yielded, and removed
    after the test whatever happened."""
    drive = _plugged(drive)
    try:
        fill(drive.mount)
        yield drive
    finally:
        drive.remove()


@pytest.fixture
def drive(tmp_path, flac):
    def fill(mount: Path) -> None:
        shutil.copy(flac, mount / "a.flac")
        shutil.copy(flac, mount / "b.flac")
        synth.make_track(mount / "c.m4a", "calm", 6.0, seed=2)
    yield from plugged_with(Drive(tmp_path), fill)


def test_a_drive_pulled_out_while_its_files_are_open(drive, monkeypatch):
    """ENOTCONN on close, as the review's scans met it: the file's TagError (open alone), the error in flight
    (another one failing), a write made stands; the read-ahead says nothing; FFmpeg's ENOTCONN on opening a
    file whose stat still answers is 'cannot read', not undecodable."""
    from tagger.audio import _open_source

    a, b, m4a = drive.mount / "a.flac", drive.mount / "b.flac", drive.mount / "c.m4a"
    read_info(a)
    planned = prefetch.planned_ranges

    def pull_while_read(path, size, plan):
        drive.pull()
        return planned(path, size, plan)

    with pytest.raises(TagError, match="^the real cause$"):
        with _opened(b):
            with pytest.raises(TagError, match="^transport endpoint is not connected$"):
                with _opened(a):
                    monkeypatch.setattr(prefetch, "planned_ranges", pull_while_read)
                    prefetch.read_into_page_cache(m4a)  # pulls the drive, then its close fails: said nothing
            raise TagError("the real cause")
    with pytest.raises(AudioError, match="^cannot read: Transport endpoint is not connected$"):
        _open_source(str(m4a), ".m4a")


# -- FAT32 through fusefat: no size in statvfs, no fchown/fchmod, a file grown only by writing at its end --

class FatDrive(Drive):
    MKFS = ["mkfs.vfat", "-F", "32"]
    SIZE = 64 << 20   # FAT32's least

    def daemon(self) -> list[str]:
        return ["fusefat", "-f", "-o", "rw+", self.loop, str(self.mount)]   # -f: in the foreground


@pytest.fixture
def fat_drive(tmp_path):
    stick = _plugged(FatDrive(tmp_path), "mkfs.vfat", "fusefat")
    try:
        yield stick
    finally:
        stick.remove()


def test_a_library_on_a_fusefat_drive_is_tagged_and_untagged_with_its_audio_intact(fat_drive, tmp_path):
    """fusefat reports 0 blocks (read as a full disk: "disk full (0 KB free)", nothing written), has no
    fchown or fchmod (ENOSYS: playlists and safe copies failed), and refuses fallocate and any ftruncate
    that grows a file (EPERM: every in-place write failed as "read-only file"). Each is now taken for what
    it is: the size unknown, no owner or mode to keep, a copy where the file cannot grow in place."""
    from tests.conftest import run_cli

    lib = fat_drive.mount / "Music"
    lib.mkdir()
    here = tmp_path / "here"
    here.mkdir()
    for name, mood, seed in (("a.mp3", "calm", 1), ("b.flac", "exciting", 2), ("c.ogg", "calm", 3),
                             ("d.m4a", "exciting", 4)):
        synth.make_track(here / name, mood, 12.0, seed=seed)
        shutil.copyfile(here / name, lib / name)
    db = tmp_path / "cache.db"
    scan = run_cli("scan", lib, "--jobs", "1", "--db", db)
    assert scan.returncode == 0, scan.stdout + scan.stderr
    assert re.search(r"tags written +4 ", scan.stderr) and re.search(r"failed +0 ", scan.stderr), scan.stderr
    for name in ("a.mp3", "b.flac", "c.ogg", "d.m4a"):
        assert read_mood(lib / name) is not None, name
        assert np.array_equal(synth.decode_whole(lib / name), synth.decode_whole(here / name)), name
    made = run_cli("playlists", "--db", db, "-d", fat_drive.mount / "Playlists")
    assert made.returncode == 0, made.stdout + made.stderr
    assert "../Music/" in (fat_drive.mount / "Playlists" / "calm.m3u8").read_text()
    undone = run_cli("untag", lib, "--db", db)
    assert undone.returncode == 0, undone.stdout + undone.stderr
    for name in ("a.mp3", "b.flac", "c.ogg", "d.m4a"):
        assert read_mood(lib / name) is None, name
        assert np.array_equal(synth.decode_whole(lib / name), synth.decode_whole(here / name)), name


@pytest.mark.parametrize("suffix", [".flac", ".wav", ".mp3"])
def test_a_drive_pulled_out_while_libsndfile_decodes_is_cannot_read(drive, tmp_path, suffix):
    """libsndfile names no OS error ('System error.', 'Internal psf_fseek() failed.'): a FLAC, WAV or MP3
    whose drive was pulled out after it was opened failed as 'cannot decode at 10.0 s, corrupt or truncated
    file (...)', a failure of the file that a scan keeps (and puts over a good result). Reading the file again
    fails with ENOTCONN: 'cannot read: ...', as FFmpeg's M4A and Opus say, which the next scan retries."""
    from tagger.audio import _check_readable, _open_track

    here = tmp_path / "here"
    here.mkdir()
    path = Path(shutil.copyfile(synth.make_track(here / f"d{suffix}", "calm", 20.0, seed=3),
                                drive.mount / f"d{suffix}"))
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # none of it in the page cache: read from the drive
    finally:
        os.close(fd)
    with pytest.raises(AudioError) as caught:
        with _open_track(path, _check_readable(path)) as track:
            drive.pull()
            track.clip(10.0, 5.0, 22050)
    assert str(caught.value) == "cannot read: Transport endpoint is not connected"
    assert unreadable(str(caught.value))


def test_a_truncated_flac_on_a_healthy_disk_is_still_corrupt_or_truncated(tmp_path):
    """libsndfile's failure is the disk's only where the file cannot be read: a FLAC whose second half is
    zeros (its length as it was: no header tells it is cut) on a disk that reads keeps its 'corrupt or
    truncated' message, a failure the scan does not retry."""
    from tagger.audio import decode_segments

    path = synth.make_track(tmp_path / "cut.flac", "calm", 20.0, seed=3)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2] + bytes(len(data) - len(data) // 2))
    with pytest.raises(AudioError) as caught:
        decode_segments(path, [12.0], seconds=5.0, sample_rate=22050)
    assert re.match(r"^cannot decode at 12\.0 s, corrupt or truncated file \(.+\)$", str(caught.value))
    assert not unreadable(str(caught.value))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/mem: Linux")
def test_ffmpegs_invalid_data_from_a_file_that_cannot_be_read_is_cannot_read(flac):
    """FFmpeg's MP4 demuxer reports a share's EIO in the middle of an M4A as 'Invalid data found when
    processing input': that was cached as an undecodable file, never retried, and put over a good result.
    Where reading the file fails with a disk error (/proc/self/mem: a real EIO), it is 'cannot read';
    where the file reads, the decoder's own failure stands."""
    import av

    from tagger.audio import _disk_failure

    _skip_unless_proc_mem_fails()
    invalid = av.error.InvalidDataError(-1094995529, "Invalid data found when processing input")
    assert str(_disk_failure(invalid, "/proc/self/mem")) == "cannot read: Input/output error"
    assert _disk_failure(invalid, str(flac)) is None


# -- a disk not mounted now, whose mount point udisks removed (or someone wrote into): prune and scan ---------
# Real mounts in a private user and mount namespace (`unshare -rm`): the disk is a folder bind-mounted at its
# mount point, unmounted (its files kept aside, to be mounted again) as udisks does, its folder then removed.

_PRELUDE = """
import json, os, sqlite3, subprocess, sys
from pathlib import Path
top, out = Path(sys.argv[1]), {}
def sh(*args):
    subprocess.run([str(a) for a in args], check=True, capture_output=True)
def plug(disk, point):
    point.mkdir(parents=True, exist_ok=True)
    sh("mount", "--bind", disk, point)
def unplug(point, remove=True):
    sh("umount", point)
    if remove:
        point.rmdir()  # udisks removes /media/USER/LABEL on unmount
def cli(name, *args):
    proc = subprocess.run([sys.executable, "-m", "tagger", *map(str, args)], capture_output=True, text=True)
    out[name] = [proc.returncode, proc.stdout, proc.stderr]
def states(name, db):
    con = sqlite3.connect(db)
    out[name] = {Path(p).name: [s, t] for p, s, t in con.execute("SELECT path, status, tag_state FROM tracks")}
    con.close()
"""


def _in_namespace(tmp_path: Path, script: str) -> dict:
    """Run `script` (Python, after _PRELUDE: `top` is tmp_path, `out` what it reports) as root of a private
    user and mount namespace; skipped where one cannot be had."""
    from tests.test_tags import namespace_available

    reason = namespace_available()
    if reason:
        pytest.skip(reason)
    proc = subprocess.run(["unshare", "-rm", sys.executable, "-c", _PRELUDE + script, str(tmp_path)],
                          cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _disk(tmp_path: Path, names=("A/1.mp3", "A/2.ogg", "B/3.flac")) -> Path:
    """A disk's files (bind-mounted where a test plugs it in): Music/NAMES."""
    disk = tmp_path / "disk"
    for i, rel in enumerate(names):
        (disk / "Music" / rel).parent.mkdir(parents=True, exist_ok=True)
        synth.make_track(disk / "Music" / rel, "calm" if i % 2 else "exciting", 6.0, seed=i)
    return disk


def test_the_nightly_scan_and_prune_of_a_library_on_a_disk_udisks_unmounted_forget_nothing(tmp_path):
    """udisks mounts a disk at /media/USER/LABEL and removes that folder on unmount, while another disk's
    folder stays beside it: the nightly `scan LIB; prune LIB` (LIB on the disk, or ~/Music linked to it)
    forgot the whole library, untags included, since no empty folder was left above it. A disk a scan saw
    mounted that is not mounted now keeps its rows, with one line naming its mount point; mounted again,
    nothing is analysed and the untagged file stays so."""
    _disk(tmp_path)
    out = _in_namespace(tmp_path, """
usb, music, link, db = top / "media/user/USB", top / "media/user/USB/Music", top / "home/Music", top / "c.db"
(top / "media/user/OTHER").mkdir(parents=True)
(top / "media/user/OTHER/photo.txt").write_text("x")
(top / "home").mkdir()
link.symlink_to(music)
plug(top / "disk", usb)
cli("scan", "scan", music, "--db", db, "--jobs", "1")
cli("scan link", "scan", link, "--db", top / "l.db", "--jobs", "1")  # (its own cache: before the untag)
cli("untag", "untag", music / "A/1.mp3", "--db", db)
states("before", db)
unplug(usb)
cli("nightly scan", "scan", music, "--db", db, "--jobs", "1")
cli("dry prune", "prune", "-n", music, "--db", db)
cli("nightly prune", "prune", music, "--db", db)
cli("prune all", "prune", "--db", db)
states("unplugged", db)
cli("link scan", "scan", link, "--db", top / "l.db", "--jobs", "1")
cli("link prune", "prune", link, "--db", top / "l.db")
states("link", top / "l.db")
plug(top / "disk", usb)
cli("back", "scan", music, "--db", db, "--jobs", "1", "--json")
states("after", db)
print(json.dumps(out))
""")
    for step in ("scan", "untag", "scan link"):
        assert out[step][0] == 0, out[step]
    before = out["before"]
    assert before == {"1.mp3": ["ok", "untagged"], "2.ogg": ["ok", "tagged"], "3.flac": ["ok", "tagged"]}
    usb = tmp_path / "media/user/USB"
    assert out["nightly scan"][:3:2] == [1, f"error: {tmp_path / 'media/user/USB/Music'}: no such file or folder\n"]
    kept = (f"3 tracks under {usb}: the disk a scan saw mounted there is not mounted now; if they are gone for "
            f"good, moodtag prune --forget-disk {usb}")
    assert out["dry prune"][:2] == [0, f"would keep {kept}\nwould forget 0 missing tracks\n"]
    assert out["nightly prune"][:2] == [0, f"kept {kept}\nforgot 0 missing tracks\n"]
    assert out["prune all"][:2] == [0, f"kept {kept}\nforgot 0 missing tracks\n"], out["prune all"]
    assert out["unplugged"] == before
    link = tmp_path / "home/Music"
    assert out["link prune"][:2] == [0, f"kept {kept} {link}\nforgot 0 missing tracks\n"], out["link prune"]
    assert len(out["link"]) == 3 and all(state == ["ok", "tagged"] for state in out["link"].values())
    outcomes = {Path(o["path"]).name: (o["action"], o["tags"]) for o in map(json.loads, out["back"][1].splitlines())}
    assert outcomes == {"1.mp3": ("cached", "untagged"), "2.ogg": ("cached", "unchanged"),
                        "3.flac": ("cached", "unchanged")}, out["back"]
    assert out["after"] == before
    assert read_mood(tmp_path / "disk/Music/A/1.mp3") is None


def test_a_scan_of_the_folder_above_two_disks_marks_nothing_of_the_one_unplugged_missing(tmp_path):
    """`scan /media/USER; prune` with one of its two disks unplugged (udisks removed its folder): the scan
    marked that disk's rows missing and prune forgot them. They are left as they are now; a file deleted for
    real beside them (on a disk mounted, or on no disk of its own) is marked missing and forgotten as before;
    and `prune --forget-disk MOUNT` (the disk gone for good) forgets its rows, refused while a disk is
    mounted there; the mount point stays remembered (rows behind a link into it may be left)."""
    _disk(tmp_path)
    other = tmp_path / "media/user/OTHER"
    for i, name in enumerate(("Live/4.ogg", "Live/5.mp3", "6.flac")):
        (other / name).parent.mkdir(parents=True, exist_ok=True)
        synth.make_track(other / name, "calm", 6.0, seed=10 + i)
    out = _in_namespace(tmp_path, """
media, usb, db = top / "media/user", top / "media/user/USB", top / "c.db"
plug(top / "disk", usb)
cli("scan", "scan", media, "--db", db, "--jobs", "1")
unplug(usb)
for name in ("4.ogg", "5.mp3"):
    (media / "OTHER/Live" / name).unlink()
(media / "OTHER/Live").rmdir()  # a folder deleted for real, on the root file system
cli("nightly scan", "scan", media, "--db", db, "--jobs", "1")
states("unplugged", db)
cli("nightly prune", "prune", "--db", db)
states("pruned", db)
cli("prune usb", "prune", usb, "--db", db)
def mount_rows():
    con = sqlite3.connect(db)
    try:
        return [path for (path,) in con.execute("SELECT path FROM mount_points")]
    except sqlite3.OperationalError as exc:  # a cache without the table
        return str(exc)
    finally:
        con.close()
out["mount points"] = mount_rows()
plug(top / "disk", usb)
cli("forget mounted", "prune", "--forget-disk", usb, "--db", db)
unplug(usb)
cli("forget dry", "prune", "-n", "--forget-disk", usb, "--db", db)
cli("gone for good", "prune", "--forget-disk", usb, "--db", db)
out["mount points after"] = mount_rows()
states("forgotten", db)
print(json.dumps(out))
""")
    usb = tmp_path / "media/user/USB"
    assert out["scan"][0] == 0, out["scan"]
    assert out["nightly scan"][0] == 0 and "vanished (marked missing)  2 " in out["nightly scan"][2], out["nightly scan"]
    assert out["unplugged"] == {"1.mp3": ["ok", "tagged"], "2.ogg": ["ok", "tagged"], "3.flac": ["ok", "tagged"],
                                "4.ogg": ["missing", "tagged"], "5.mp3": ["missing", "tagged"],
                                "6.flac": ["ok", "tagged"]}
    kept = (f"kept 3 tracks under {usb}: the disk a scan saw mounted there is not mounted now; if they are gone for "
            f"good, moodtag prune --forget-disk {usb}\n")
    assert out["nightly prune"][:2] == [0, f"{kept}forgot 2 missing tracks\n"], out["nightly prune"]
    assert out["pruned"] == {name: ["ok", "tagged"] for name in ("1.mp3", "2.ogg", "3.flac", "6.flac")}
    assert out["prune usb"][:2] == [0, f"{kept}forgot 0 missing tracks\n"]
    assert str(usb) in out["mount points"] and "/" not in out["mount points"]
    assert out["forget mounted"][0] == 1 and out["forget mounted"][2].startswith(
        f"error: {usb}: a disk is mounted there now"), out["forget mounted"]
    assert out["forget dry"][0] == 0 and out["forget dry"][1].endswith("would forget 3 tracks whose files are gone\n")
    assert out["gone for good"][:2] == [0, "forgot 3 tracks whose files are gone\n"]
    assert str(usb) in out["mount points after"]
    assert out["forgotten"] == {"6.flac": ["ok", "tagged"]}


def test_a_mount_point_written_into_while_its_disk_is_away_is_not_the_disk(tmp_path):
    """The disk's mount point stays (fstab), and while the disk is away something writes there (a download
    client: MNT/Music/Incoming/new.flac): the nightly `scan MNT/Music` found the one new file, marked every
    row of the disk missing, and `prune MNT/Music` forgot them. The rows are left as they are now; one marked
    missing while the disk was mounted (its file deleted) is kept too, with a line naming the mount point,
    and forgotten by naming it."""
    disk = _disk(tmp_path)
    synth.make_track(tmp_path / "new.flac", "calm", 6.0, seed=7)
    out = _in_namespace(tmp_path, """
import shutil
mnt, db = top / "mnt", top / "c.db"
plug(top / "disk", mnt)
cli("scan", "scan", mnt / "Music", "--db", db, "--jobs", "1")
(mnt / "Music/B/3.flac").unlink()  # deleted for real, the disk mounted
cli("scan again", "scan", mnt / "Music", "--db", db, "--jobs", "1")
unplug(mnt, remove=False)
(mnt / "Music/Incoming").mkdir(parents=True)
shutil.copyfile(top / "new.flac", mnt / "Music/Incoming/new.flac")
cli("nightly scan", "scan", mnt / "Music", "--db", db, "--jobs", "1")
states("unplugged", db)
cli("nightly prune", "prune", mnt / "Music", "--db", db)
cli("prune mnt", "prune", mnt, "--db", db)
states("pruned", db)
print(json.dumps(out))
""")
    mnt = tmp_path / "mnt"
    assert out["scan"][0] == 0 and out["scan again"][0] == 0, out["scan again"]
    assert out["nightly scan"][0] == 0 and "marked missing" not in out["nightly scan"][2], out["nightly scan"]
    assert out["unplugged"] == {"1.mp3": ["ok", "tagged"], "2.ogg": ["ok", "tagged"], "3.flac": ["missing", "tagged"],
                                "new.flac": ["ok", "tagged"]}
    away = "the disk a scan saw mounted there is not mounted now; if they are gone for good, moodtag prune --forget-disk"
    assert out["nightly prune"][:2] == [0, f"kept 3 tracks under {mnt}: {away} {mnt}\nforgot 0 missing tracks\n"], \
        out["nightly prune"]
    assert out["prune mnt"][:2] == [0, f"kept 2 tracks under {mnt}: {away} {mnt}\nforgot 1 missing track\n"], \
        out["prune mnt"]
    assert out["pruned"] == {"1.mp3": ["ok", "tagged"], "2.ogg": ["ok", "tagged"], "new.flac": ["ok", "tagged"]}
    assert (disk / "Music/A/1.mp3").exists()


def test_a_disk_reached_through_a_link_in_the_library_is_remembered_and_forgotten_through_it(tmp_path):
    """`Music/Ext -> MNT/Music`, MNT a disk in fstab: the scan remembered only the mount points of its PATHs,
    so once the disk was away and something wrote into MNT meanwhile, the nightly scan marked its rows
    missing and prune forgot them. And `prune --forget-disk`, as prune's own line says it for a library
    linked into the disk, found no row (they are kept under the link's path) and only dropped the mount
    point; named through a link to the mount point (/media -> /run/media) it did nothing. With the library's
    PATH named beside it (as prune's line names it), it forgets them; a typo'd disk gets its warning."""
    _disk(tmp_path)
    out = _in_namespace(tmp_path, """
lib, mnt, db = top / "lib", top / "run/media/USB", top / "c.db"
(lib / "Own").mkdir(parents=True)
(top / "media").symlink_to(top / "run/media")
(lib / "Ext").symlink_to(mnt / "Music")
plug(top / "disk", mnt)
cli("scan", "scan", lib, "--db", db, "--jobs", "1")
unplug(mnt, remove=False)
(mnt / "Music/Incoming").mkdir(parents=True)  # written into while the disk is away
(mnt / "Music/Incoming/notes.txt").write_text("x")
cli("nightly scan", "scan", lib, "--db", db, "--jobs", "1")
cli("nightly prune", "prune", lib, "--db", db)
states("kept", db)
cli("forget typo", "prune", "--forget-disk", top / "media/USBB", "--db", db)
cli("forget", "prune", "--forget-disk", top / "media/USB", lib, "--db", db)
states("forgotten", db)
print(json.dumps(out))
""")
    assert out["scan"][0] == 0, out["scan"]
    assert "vanished" not in out["nightly scan"][2], out["nightly scan"]
    # (its rows reached through a link into the disk: prune of the library reads no row's file to find it)
    assert out["nightly prune"][:2] == [0, "forgot 0 missing tracks\n"], out["nightly prune"]
    assert out["kept"] == {"1.mp3": ["ok", "tagged"], "2.ogg": ["ok", "tagged"], "3.flac": ["ok", "tagged"]}
    assert out["forget typo"] == [0, "forgot 0 missing tracks\n", f"warning: no cached tracks under "
                                  f"{tmp_path / 'media/USBB'} (a typo, or a place never scanned?): nothing to forget "
                                  f"there\n"], out["forget typo"]
    assert out["forget"][:2] == [0, "forgot 3 tracks whose files are gone\n"], out["forget"]
    assert out["forgotten"] == {}


def test_an_empty_mount_point_scanned_or_pruned_names_the_disk_and_what_forgets_it(tmp_path):
    """A disk's mount point left empty (fstab's, or udisks' folder above it once that is removed): the scan's
    line said 'emptied on purpose? remove the folder, then moodtag prune MOUNT', which forgets nothing (the
    cache remembers the disk: its rows are kept wherever its folder is), and `prune MOUNT` kept them without
    a word. The scan's line now names the disk and `--forget-disk`; prune says what it keeps, one line for the
    disk, as with the folder gone."""
    _disk(tmp_path)
    out = _in_namespace(tmp_path, """
media, usb, db = top / "media", top / "media/USB", top / "c.db"
plug(top / "disk", usb)
cli("scan", "scan", usb, "--db", db, "--jobs", "1")
unplug(usb, remove=False)  # its folder stays, empty
cli("nightly scan", "scan", usb, "--db", db, "--jobs", "1")
cli("nightly prune", "prune", usb, "--db", db)
cli("dry prune", "prune", "-n", usb, "--db", db)
cli("prune all", "prune", "--db", db)
usb.rmdir()  # the folder above it is left empty
cli("scan media", "scan", media, "--db", db, "--jobs", "1")
cli("prune media", "prune", media, "--db", db)
states("kept", db)
cli("forget", "prune", "--forget-disk", usb, "--db", db)
states("forgotten", db)
print(json.dumps(out))
""")
    media, usb = tmp_path / "media", tmp_path / "media/USB"
    assert out["scan"][0] == 0, out["scan"]
    warning = (f"warning: {usb}: it is empty: the disk a scan saw mounted there is not mounted now; 3 cached tracks "
               f"under it left as they are (mount it; gone for good? moodtag prune --forget-disk {usb})")
    assert out["nightly scan"][0] == 1 and warning in out["nightly scan"][2].splitlines(), out["nightly scan"]
    kept = (f"3 tracks under {usb}: the disk a scan saw mounted there is not mounted now; if they are gone for "
            f"good, moodtag prune --forget-disk {usb}")
    assert out["nightly prune"][:2] == [0, f"kept {kept}\nforgot 0 missing tracks\n"], out["nightly prune"]
    assert out["dry prune"][:2] == [0, f"would keep {kept}\nwould forget 0 missing tracks\n"], out["dry prune"]
    assert out["prune all"][:2] == [0, f"kept {kept}\nforgot 0 missing tracks\n"], out["prune all"]
    warning = (f"warning: {media}: it is empty: the disk a scan saw mounted at {usb} is not mounted now; 3 cached "
               f"tracks under it left as they are (mount it; gone for good? moodtag prune --forget-disk {usb})")
    assert out["scan media"][0] == 1 and warning in out["scan media"][2].splitlines(), out["scan media"]
    assert out["prune media"][:2] == [0, f"kept {kept}\nforgot 0 missing tracks\n"], out["prune media"]
    assert out["kept"] == {name: ["ok", "tagged"] for name in ("1.mp3", "2.ogg", "3.flac")}
    assert out["forget"][:2] == [0, "forgot 3 tracks whose files are gone\n"], out["forget"]
    assert out["forgotten"] == {}


def _other_disk_and_root_fs(tmp_path: Path) -> None:
    """The disk's files (_disk, mounted at media/USB by the test), and beside it files on the root file system:
    media/OTHER/4.ogg, 5.mp3, 6.flac."""
    _disk(tmp_path)
    other = tmp_path / "media/OTHER"
    other.mkdir(parents=True)
    for i, (name, mood) in enumerate((("4.ogg", "calm"), ("5.mp3", "exciting"), ("6.flac", "calm"))):
        synth.make_track(other / name, mood, 6.0, seed=10 + i)


def test_a_scan_counts_the_tracks_it_leaves_as_they_are_on_a_disk_not_mounted(tmp_path):
    """`scan /media` with the disk at /media/USB away left its rows as they are without a word: the summary
    now ends with one line per such disk under the scan's PATHs (below the table; with --json, on standard
    error, stdout holding the tracks only), none where the PATHs do not cover it."""
    _other_disk_and_root_fs(tmp_path)
    out = _in_namespace(tmp_path, """
media, usb, db = top / "media", top / "media/USB", top / "c.db"
plug(top / "disk", usb)
cli("scan", "scan", media, "--db", db, "--jobs", "1")
unplug(usb)
cli("nightly scan", "scan", media, "--db", db, "--jobs", "1")
cli("json", "scan", media, "--db", db, "--jobs", "1", "--json")
cli("dry", "scan", "-n", media, "--db", db, "--jobs", "1")
cli("other", "scan", media / "OTHER", "--db", db, "--jobs", "1")
states("after", db)
print(json.dumps(out))
""")
    usb = tmp_path / "media/USB"
    assert out["scan"][0] == 0, out["scan"]
    line = (f"3 cached tracks under {usb} left as they are: the disk a scan saw mounted there is not mounted now "
            f"(gone for good? moodtag prune --forget-disk {usb})")
    for step in ("nightly scan", "dry"):
        assert out[step][0] == 0 and out[step][2].splitlines()[-1] == line, out[step]
        assert "marked missing" not in out[step][2]
    assert out["json"][0] == 0 and out["json"][2] == line + "\n", out["json"]
    assert sorted(Path(json.loads(o)["path"]).name for o in out["json"][1].splitlines()) == ["4.ogg", "5.mp3", "6.flac"]
    assert out["other"][0] == 0 and "left as they are" not in out["other"][2], out["other"]
    assert out["after"] == {name: ["ok", "tagged"] for name in ("1.mp3", "2.ogg", "3.flac", "4.ogg", "5.mp3", "6.flac")}


def test_playlists_say_the_tracks_they_leave_out_are_on_a_disk_not_mounted(tmp_path):
    """A playlist's line for its tracks not on disk said '`moodtag prune` forgets the tracks gone', which is
    not so for those on a disk a scan saw mounted that is not mounted now: prune keeps them until the disk is
    back or `--forget-disk` names it. The line names the disk and says so; with some of the tracks gone
    elsewhere too, it says both; with none on such a disk, it is as it was."""
    _other_disk_and_root_fs(tmp_path)
    out = _in_namespace(tmp_path, """
media, usb, db, pl = top / "media", top / "media/USB", top / "c.db", top / "pl"
plug(top / "disk", usb)
cli("scan", "scan", media, "--db", db, "--jobs", "1")
con = sqlite3.connect(db)
out["moods"] = {Path(p).name: m for p, m in con.execute("SELECT path, mood FROM tracks")}
con.close()
unplug(usb)
mood = out["moods"]["1.mp3"]
cli("playlists", "playlists", "-d", pl, "--db", db)
cli("playlist", "playlist", mood, "--db", db)
other = next(name for name in ("4.ogg", "5.mp3", "6.flac") if out["moods"][name] == mood)
(media / "OTHER" / other).unlink()  # deleted, no scan since
cli("some gone", "playlist", mood, "--db", db)
plug(top / "disk", usb)
cli("back", "playlist", mood, "--db", db)
print(json.dumps(out))
""")
    usb, moods = tmp_path / "media/USB", out["moods"]
    mood = moods["1.mp3"]
    on_usb = sum(moods[name] == mood for name in ("1.mp3", "2.ogg", "3.flac"))
    tracks = f"{on_usb} cached {mood} track{'s' if on_usb != 1 else ''}"
    line = (f"warning: {tracks} on a disk not mounted now left out ({usb}: kept until it is mounted again, or "
            f"`moodtag prune --forget-disk {usb}` if it is gone for good)")
    assert out["playlists"][0] == 0 and line in out["playlists"][2].splitlines(), out["playlists"]
    assert "`moodtag prune` forgets" not in out["playlists"][2]
    assert out["playlist"][0] == 0 and out["playlist"][2] == line + "\n", out["playlist"]
    tracks = f"{on_usb + 1} cached {mood} tracks"
    assert out["some gone"][0] == 0 and out["some gone"][2] == (
        f"warning: {tracks} no longer on disk left out (those on a disk not mounted now, {usb}, are kept until it "
        f"is mounted again, or `moodtag prune --forget-disk {usb}` if it is gone for good; the others: a disk not "
        "mounted? else `moodtag scan` the library where it is now and where it was; `moodtag prune` forgets the "
        "tracks gone)\n"), out["some gone"]
    assert out["back"][0] == 0 and out["back"][2] == (
        f"warning: 1 cached {mood} track no longer on disk left out (a disk not mounted? else `moodtag scan` the "
        "library where it is now and where it was; `moodtag prune` forgets the tracks gone)\n"), out["back"]
