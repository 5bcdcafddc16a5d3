"""Shared fixtures: real audio files made by real encoders, a small test model, the real CLI."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tagger import synth

# Keep each test process to one BLAS/torch thread: CI has 2 cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# A command run without --db uses the default cache (and its undo journal) in the user data folder:
# keep those out of the real home folder.
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="moodtag-tests-data-")


@pytest.fixture(scope="session")
def audio_dir(tmp_path_factory) -> Path:
    """One 30 s track per supported format (calm or exciting alternately), encoded once per session."""
    folder = tmp_path_factory.mktemp("audio")
    for i, fmt in enumerate(synth.FORMATS):
        mood = "calm" if i % 2 == 0 else "exciting"
        synth.make_track(folder / f"{mood}_{i}.{fmt}", mood, 30.0 if fmt != "mp3" else 27.0, seed=i)
    return folder


@pytest.fixture(scope="session")
def test_model(tmp_path_factory) -> Path:
    """A small untrained model file (fixed seed) for pipeline tests; never shipped."""
    import torch

    from tagger.model import SeedCNN
    from tagger.weights import ModelSpec, save_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "test-model.safetensors"
    spec = ModelSpec(name="test-model", version="0.0.1", labels=("calm", "exciting"),
                     normalization={"mean": -40.0, "std": 20.0})
    return save_model(path, spec, SeedCNN(2).state_dict())


def run_cli(*args: str, env: dict | None = None, check: bool = False, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real `moodtag` command (the installed console script's module) in a subprocess."""
    full_env = {key: value for key, value in os.environ.items() if key != "MOODTAG_DB"}  # a developer's own
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "tagger", *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"moodtag {' '.join(map(str, args))} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def on_a_terminal(args: list[str], *, stream: str, columns: int, timeout: float = 300) -> str:
    """The real CLI (`python -m tagger ARGS`) with its `stream` ("stdout" or "stderr") on a pseudo-terminal
    COLUMNS wide (the other one dropped): what it showed there, without colour and cursor codes, once it
    exited with status 0."""
    import pty
    import re

    controller, terminal = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("TTY_COMPATIBLE", "FORCE_COLOR", "NO_COLOR")}
    streams = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, stream: terminal}
    proc = subprocess.Popen([sys.executable, "-m", "tagger", *args], **streams,
                            env=dict(env, COLUMNS=str(columns), TERM="xterm"))
    os.close(terminal)
    shown = b""
    while True:
        try:
            data = os.read(controller, 1 << 16)
        except OSError:  # EIO: the command closed the terminal
            break
        if not data:
            break
        shown += data
    os.close(controller)
    assert proc.wait(timeout=timeout) == 0
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown.decode("utf-8"))


def first_block_in_flight(path, journal):
    """An in-place tag write of `path`'s first 4 KiB begun by this process: its undo journal entry written
    and locked (the writer alive), the block not yet written (the caller writes it, or not). (fd, entry),
    for the caller to end as the writer would (entry.abandon(), os.close(fd)). Run in a subprocess: a live
    writer elsewhere."""
    fd = os.open(path, os.O_RDWR)
    st = os.fstat(fd)
    header = {"kind": "in place", "path": os.fsencode(path).hex(), "dev": st.st_dev, "ino": st.st_ino,
              "old_size": st.st_size, "new_size": st.st_size, "atime_ns": st.st_atime_ns,
              "mtime_ns": st.st_mtime_ns, "write_set": [[0, 4096]], "new_sha256": None}
    return fd, journal._begin(header, [(0, 4096)], fd)


def moov_first(path, out) -> Path:
    """The M4A `path` remuxed into `out` with its index ('moov') before its audio ('mdat'), as iTunes
    and stores write it."""
    import av

    with av.open(str(path)) as src, av.open(str(out), "w", format="ipod", options={"movflags": "faststart"}) as dst:
        stream = src.streams.audio[0]
        target = dst.add_stream_from_template(stream)
        for packet in src.demux(stream):
            if packet.dts is not None:
                packet.stream = target
                dst.mux(packet)
    return Path(out)
