"""The wheel carries the shipped model, and an installed package finds it (not only a checkout)."""
from __future__ import annotations

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
