"""The `moodtag` command's entry point (the console script, and `python -m tagger`): what must happen
before tagger.cli (typer, click, rich: a few tenths of a second) is imported."""
from __future__ import annotations

import os
import sys


def main() -> None:
    """Standard streams made usable, then tagger.cli.main. A Ctrl-C while tagger.cli is still being
    imported (typer, click, rich: before main's own handler is there) exits with status 130, as main
    does, without a traceback."""
    _open_closed_standard_fds()
    try:
        from tagger.cli import main as run

        run()
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def _open_closed_standard_fds() -> None:
    """Each of file descriptors 0, 1 and 2 that is closed (`moodtag scan ... >&-`, a daemon's job) opened
    on /dev/null, and sys.stdin/stdout/stderr made for those Python left as None. Else the next file
    opened takes the free number: with 1 closed, the cache database became standard output and what was
    printed went into it; and a worker pool that flushes sys.stdout failed on None, analysing nothing."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        null = os.open(os.devnull, os.O_RDONLY if fd == 0 else os.O_WRONLY)
        if null != fd:  # lower ones are open (checked first), so this is unusual: move it there
            os.dup2(null, fd)
            os.close(null)
        os.set_inheritable(fd, True)  # as a standard stream is: worker processes (exec'd) get it too
    for name, fd, mode in (("stdin", 0, "r"), ("stdout", 1, "w"), ("stderr", 2, "w")):
        if getattr(sys, name) is None:
            stream = open(fd, mode, buffering=1 if fd == 2 else -1, closefd=False, errors="backslashreplace")
            setattr(sys, name, stream)
            setattr(sys, f"__{name}__", stream)


if __name__ == "__main__":
    main()
