"""Replace a whole file atomically (a temporary file beside it, then a rename), the way a user's own file
should be replaced: a symlink is written through (the file it points to is replaced, the link stays),
and the replaced file's permission bits and, where this process may give them, its owner are kept."""
from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import BinaryIO, Callable


def replace_file(dest: Path, write: Callable[[BinaryIO], None], *, tmp_prefix: str = "") -> None:
    """Write the new content of `dest` with `write(fh)` into a temporary file beside the file `dest` names
    (its name with `tmp_prefix` before and .tmp after), then rename it over that file. Raises what `write`
    or the file system raises; the temporary file is never left behind."""
    target = Path(os.path.realpath(dest)) if dest.is_symlink() else dest
    tmp = target.with_name(f"{tmp_prefix}{target.name}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            _keep_owner_and_mode(fh.fileno(), target)
            write(fh)
        tmp.replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def _keep_owner_and_mode(fd: int, old: Path) -> None:
    """Give the new file `fd` the permission bits (and, if allowed, the owner) of the file `old` it is
    about to replace; nothing if there is none."""
    try:
        st = old.stat()
    except OSError:
        return
    if (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()):
        with contextlib.suppress(OSError):
            os.fchown(fd, st.st_uid, st.st_gid)
    os.fchmod(fd, stat.S_IMODE(st.st_mode))
