"""The wheel carries the shipped model and the beets plugin, and an installed package finds them (not only a
checkout)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True)
    return next(out.glob("moodtag-*.whl"))


def test_wheel_contains_the_shipped_models_and_card(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "tagger/models/moodtag-cnn.safetensors" in names
    assert "tagger/models/moodtag-rhythm.safetensors" in names
    assert "tagger/models/MODEL_CARD.md" in names
    assert not [n for n in names if n.endswith((".pkl", ".pickle", ".pt", ".pth"))]


def test_installed_package_finds_its_model(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    code = "from tagger.weights import resolve_model, read_spec; p = resolve_model(None); print(p); print(read_spec(p).name)"
    env = dict(os.environ, PYTHONPATH=str(target))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                          check=True)
    path, name = proc.stdout.split()
    assert Path(path).is_relative_to(target) and name == "moodtag-rhythm"


def test_default_model_runs_without_torch(audio_dir, tmp_path):
    """The default model imports no torch (so torch could become an optional extra); a network model
    without torch is one clear line. A `torch` package that refuses to import, first on PYTHONPATH,
    stands in for an install without torch, in the parent and in every worker."""
    blocker = tmp_path / "block" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('torch is blocked for this test')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(blocker.parent), str(ROOT)])}
    from tests.conftest import run_cli

    track = sorted(p for p in audio_dir.iterdir() if p.suffix == ".flac")[0]
    library = tmp_path / "lib"
    library.mkdir()
    (library / track.name).write_bytes(track.read_bytes())
    scan = run_cli("scan", library, "--db", tmp_path / "c.db", "--jobs", "1", "--json", env=env)
    rows = [json.loads(line) for line in scan.stdout.splitlines()]
    assert scan.returncode == 0 and len(rows) == 1 and rows[0]["mood"] in ("calm", "exciting"), scan.stderr
    cnn = run_cli("classify", library / track.name, "--model", "moodtag-cnn", env=env)
    assert cnn.returncode == 1 and "Traceback" not in cnn.stderr
    assert "torch is not installed" in cnn.stderr and len(cnn.stderr.strip().splitlines()) == 1


def test_wheel_installs_the_beets_plugin_in_beets_namespace(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "beetsplug/moodtag.py" in names and "tagger/beets_plugin.py" in names
    assert "beetsplug/__init__.py" not in names  # beetsplug stays a namespace package that others extend
    assert not [n for n in names if n.startswith("tagger/beetsplug")]


def test_installed_wheel_is_a_plugin_beets_loads(wheel, tmp_path):
    """`plugins: moodtag` and nothing else: no pluginpath, the installed beetsplug/moodtag.py."""
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    beetsdir = tmp_path / "beets"
    beetsdir.mkdir()
    (beetsdir / "config.yaml").write_text(f"library: {tmp_path / 'library.db'}\nplugins: moodtag\n")
    env = dict(os.environ, PYTHONPATH=str(target), BEETSDIR=str(beetsdir))
    proc = subprocess.run([sys.executable, "-m", "beets", "moodtag", "--help"], capture_output=True, text=True,
                          env=env, cwd=tmp_path)
    assert proc.returncode == 0 and "--jobs" in proc.stdout, proc.stderr
    code = "import beetsplug.moodtag as m, tagger; print(m.__file__); print(tagger.__file__)"
    files = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                           check=True).stdout.split()
    assert all(Path(f).is_relative_to(target) for f in files), files
