"""A drive that goes away under moodtag (a USB stick pulled out, its FUSE daemon gone): a close that fails
never hides the error in flight nor escapes a read-ahead thread, and a decoder's disk error reads as the
disk's ('cannot read: ...', which a scan tries again), not as undecodable audio.

The tests without a drive close a file's descriptor underneath it (a real EBADF on close), or read
/proc/self/mem (a real EIO); those with one make an exFAT image on a loop device, mount it with
exfat-fuse and kill the daemon (a real ENOTCONN): root, loop devices and FUSE, skipped where missing."""
from __future__ import annotations

import errno
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


@pytest.fixture
def drive(tmp_path, flac):
    stick = _plugged(Drive(tmp_path))
    try:
        shutil.copy(flac, stick.mount / "a.flac")
        shutil.copy(flac, stick.mount / "b.flac")
        synth.make_track(stick.mount / "c.m4a", "calm", 6.0, seed=2)
        yield stick
    finally:
        stick.remove()


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
