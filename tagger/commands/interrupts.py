"""Ctrl-C, SIGTERM and a closed terminal (SIGHUP) during a command that writes: noted, never raised
in the middle of a step. The command polls `requested` between two files and stops there; the
process then exits with 128 + the signal's number (130 for Ctrl-C). The handlers stay for the rest
of the process, so a second Ctrl-C while the command winds down changes nothing."""
from __future__ import annotations

import signal

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopRequests:
    """Install with `StopRequests.install()`; `requested` turns true at the first stop signal."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._on_terminal: list = []  # the consoles that write to a terminal (silenced by SIGHUP)

    @classmethod
    def install(cls) -> "StopRequests":
        from tagger.console import err, out

        requests = cls()
        # asked now: once the terminal has hung up, isatty() on it fails, and it would pass for a file
        requests._on_terminal = [console for console in (err, out) if console.is_terminal]
        for sig in STOP_SIGNALS:
            signal.signal(sig, requests._note)
        return requests

    def _note(self, signum, frame) -> None:
        if self.signal is None:
            self.signal = signum
        if signum == signal.SIGHUP:  # the terminal is gone: writing to it would fail
            for console in self._on_terminal:  # output to a file or a pipe goes on: a log keeps its lines
                console.quiet = True

    def exit(self):
        """typer.Exit with 128 + the signal's number. Further stop signals are ignored from here on: at
        its very end Python puts back the default handlers, and one more Ctrl-C then would kill the
        process by SIGINT instead of letting it exit with its status."""
        import typer

        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        return typer.Exit(self.exit_status)

    @property
    def requested(self) -> bool:
        return self.signal is not None

    @property
    def exit_status(self) -> int:
        return 128 + (self.signal or signal.SIGINT)

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal else ""
