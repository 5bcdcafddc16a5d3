"""Where a scan's time goes: an optional stage clock inside the real code path.

Off unless the environment has MOODTAG_STAGES=1 (worker processes inherit it). Then the code that
decodes, resamples, computes the descriptors or writes tags and rows wraps its work in
`stage("name")`, and the CPU time (of the calling thread) and wall time of each stage are added up
per track, exclusively (a stage inside another is taken out of the outer one). The worker attaches
its track's totals to the TrackResult (`stages`), the parent its own to the TrackOutcome; `scan
--json` then prints them, and benchmarks/scan_profile.py reads them. Off, `stage()` costs one
dictionary lookup.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from typing import Iterator

ENV = "MOODTAG_STAGES"


def enabled() -> bool:
    return os.environ.get(ENV, "") not in ("", "0")


class StageClock:
    """CPU and wall seconds per stage name, exclusive of nested stages."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}
        self.wall: dict[str, float] = {}
        self._stack: list[str] = []

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        cpu0, wall0 = time.thread_time(), time.perf_counter()
        self._stack.append(name)
        try:
            yield
        finally:
            self._stack.pop()
            self.add(name, time.thread_time() - cpu0, time.perf_counter() - wall0)

    def add(self, name: str, cpu: float, wall: float) -> None:
        """Count `cpu`/`wall` seconds to `name`, and take them out of the stage it ran inside."""
        self.cpu[name] = self.cpu.get(name, 0.0) + cpu
        self.wall[name] = self.wall.get(name, 0.0) + wall
        if self._stack:
            outer = self._stack[-1]
            self.cpu[outer] = self.cpu.get(outer, 0.0) - cpu
            self.wall[outer] = self.wall.get(outer, 0.0) - wall

    def as_dict(self) -> dict[str, dict[str, float]]:
        """{"cpu_ms": {stage: ms}, "wall_ms": {stage: ms}}"""
        return {"cpu_ms": {name: round(1000 * s, 3) for name, s in self.cpu.items()},
                "wall_ms": {name: round(1000 * s, 3) for name, s in self.wall.items()}}


_clock: StageClock | None = None


@contextmanager
def recording() -> Iterator[StageClock | None]:
    """Collect the stages run inside this block on a fresh clock (None, and nothing kept, when off)."""
    global _clock
    if not enabled():
        yield None
        return
    outer, _clock = _clock, StageClock()
    try:
        yield _clock
    finally:
        _clock = outer


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time the block as stage `name` on the clock of the enclosing `recording()` (if any)."""
    clock = _clock
    if clock is None:
        yield
        return
    with clock.stage(name):
        yield
