"""Replace a whole file atomically (a temporary file beside it, then a rename), the way a user's own file
should be replaced: a symlink is written through (the file it points to is replaced, the link stays),
and the replaced file's permission bits and, where this process may give them, its owner are kept.

The temporary file is made with a name of its own that no one else can have taken (tempfile's O_EXCL
creation: never an existing file, never through a symlink planted under that name) and a short one,
so that a destination whose name is already as long as the file system allows can still be written.
A destination that exists and is not a regular file (a named pipe, `/dev/stdout`, a terminal, a
device) is not replaced: the content is written into it, as a shell's `>` would.

Nothing is made through a link that leads nowhere (a playlist or a folder linked to a disk not mounted
now): the folders made under the empty mount point would be hidden, with the file written there, once the
disk is mounted again. A LinkError names the link and where it leads instead; only folders the
destination's own path names, below the last link on it that leads somewhere, are made where missing."""
from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

_TMP_NAME_CHARS = 40  # of the destination's name, in the temporary file's name (kept short: NAME_MAX)


class LinkError(FileNotFoundError):
    """A link on the way to the file to write leads where there is no folder (its disk not mounted, say):
    `strerror` is the cause in words, `filename` the link."""

    def __init__(self, cause: str, link: Path) -> None:
        super().__init__(errno.ENOENT, cause, str(link))


def replace_file(dest: Path, write: Callable[[BinaryIO], None], *, tmp_prefix: str = "") -> None:
    """Write the new content of `dest` with `write(fh)` into a temporary file beside the file `dest` names
    (named `tmp_prefix`, up to 40 characters of its name, a unique part, `.tmp`), then rename it over
    that file; a `dest` that is a named pipe or a device is written into instead. Raises what `write`
    or the file system raises (NotADirectoryError for a destination under a file, LinkError for one through
    a link that leads nowhere: nothing is made there); the temporary file is never left behind."""
    try:
        st = os.stat(dest)  # through links
    except (FileNotFoundError, NotADirectoryError):
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
        with open(dest, "wb") as fh:  # a pipe, a terminal, a device: there is no file to replace
            write(fh)
        return
    if dest.is_symlink():
        target = Path(os.path.realpath(dest))
        error = blocked(dest)  # nothing made through a link: a disk not mounted would hide it
        if error is not None:
            raise error
    else:
        target = dest
        _make_folder(target.parent)
    fd, name = tempfile.mkstemp(prefix=f"{tmp_prefix}{target.name[:_TMP_NAME_CHARS]}.", suffix=".tmp",
                                dir=target.parent)
    tmp = Path(name)
    try:
        with open(fd, "wb") as fh:
            _give_mode(fh.fileno(), target, st)
            write(fh)
        tmp.replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def blocked(dest: Path) -> OSError | None:
    """What replace_file would raise, before writing anything, where a link that leads nowhere or a file
    stands on the way to `dest` (LinkError, NotADirectoryError); None where nothing does (folders that are
    only missing are made). For a check before long work (a training run) that ends in a write."""
    if dest.is_symlink():
        target = Path(os.path.realpath(dest))
        if target.parent.is_dir():
            return None
        return _in_the_way(target.parent) or LinkError(
            f"{dest} links to {target}, whose folder does not exist: a disk not mounted?", dest)
    return _in_the_way(dest.parent)


def _make_folder(folder: Path) -> None:
    """The folder made where it is missing; NotADirectoryError naming the file that stands in its way, LinkError
    naming a link on its path that leads nowhere (mkdir makes nothing through it)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        error = _in_the_way(folder)
        if error is None:
            raise
        raise error from None


def _in_the_way(folder: Path) -> OSError | None:
    """Why `folder` is not there, from the nearest name on its path that is: a link that leads nowhere
    (LinkError naming it and where it leads), a file (NotADirectoryError naming it); None for a folder (the
    rest is only missing)."""
    there = folder
    while not os.path.lexists(there) and there.parent != there:
        there = there.parent
    if there.is_dir():
        return None
    if there.is_symlink() and not there.exists():
        return LinkError(f"{there} links to {os.path.realpath(there)}, which does not exist: a disk not mounted?",
                         there)
    return NotADirectoryError(errno.ENOTDIR, "Not a directory", str(there))


def _give_mode(fd: int, old: Path, st: os.stat_result | None) -> None:
    """Give the new file `fd` the permission bits (and, if allowed, the owner) of the file `old` it is
    about to replace, or, for a new file, the mode a plain open() would have given it (0666 less the
    umask: tempfile makes it 0600, which a player running as another user could not read)."""
    if st is not None and (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()):
        with contextlib.suppress(OSError):
            os.fchown(fd, st.st_uid, st.st_gid)
    try:
        os.fchmod(fd, 0o666 & ~_umask() if st is None else stat.S_IMODE(st.st_mode))
    except OSError as exc:
        if exc.errno not in (errno.ENOSYS, errno.EOPNOTSUPP):   # fusefat: no modes, and no fchmod at all
            raise


def _umask() -> int:
    """This process's umask, read without changing it where Linux tells it (/proc), else set and reset."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def why_not_written(exc: OSError) -> str:
    """replace_file's error in words: the file in the way of a folder named, a link that leads nowhere named
    with where it leads (LinkError's own words), else the system's reason."""
    if isinstance(exc, NotADirectoryError) and exc.filename:
        return f"{exc.filename} is a file, not a folder"
    return exc.strerror or str(exc)
