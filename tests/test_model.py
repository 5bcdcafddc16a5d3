"""The seed CNN's layers, and model files: safetensors with the spec inside, never pickle."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import torch
from torch import nn

from tagger.errors import ModelError
from tagger.model import SeedCNN, build_model
from tagger.weights import ClipPlan, FeatureSpec, ModelSpec, load_model, read_spec, save_model
from tests.test_faults import one_error_line
from tests.test_scan import ROOT, _without_root_powers


def _spec(**changes) -> ModelSpec:
    return ModelSpec(**{"name": "tiny", "version": "0.0.1", "labels": ("calm", "exciting"), **changes})


def test_seed_cnn_layers():
    net = SeedCNN(2)
    convs = [m for m in net.features if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(3, 16), (16, 32), (32, 64), (64, 128), (128, 256)]
    for c in convs:
        assert c.kernel_size == (3, 3) and c.stride == (1, 1) and c.padding == (1, 1)
    kinds = [type(m) for m in net.features]
    assert kinds == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d] * 5
    for pool in (m for m in net.features if isinstance(m, nn.MaxPool2d)):
        assert pool.kernel_size == 2 and pool.stride == 2
    linears = [m for m in net.classifier if isinstance(m, nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(4096, 120), (120, 80), (80, 2)]


def test_seed_cnn_shapes():
    net = SeedCNN(3).eval()
    x = torch.zeros(2, 3, 128, 128)
    assert net.features(x).shape == (2, 256, 4, 4)
    assert net(x).shape == (2, 3)
    assert isinstance(build_model({"name": "seed_cnn"}, 2), SeedCNN)


def test_save_load_round_trip(tmp_path):
    spec = _spec(clips=ClipPlan(placement="spread", count=4), features=FeatureSpec(kind="mfcc", n_mfcc=20),
                 normalization={"mean": -40.5, "std": 17.25}, threshold=0.42, trained_on="nothing",
                 metrics={"held_out": {"roc_auc": 0.5}}, created="2024-01-01T00:00:00+00:00")
    torch.manual_seed(0)
    net = build_model(spec.architecture, 2)
    path = save_model(tmp_path / "m.safetensors", spec, net.state_dict())
    assert read_spec(path) == spec
    loaded = load_model(path)
    assert loaded.spec == spec
    assert not loaded.network.training
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.network.state_dict()[key], value)
    assert ModelSpec.from_json(spec.to_json()) == spec


def test_pickled_file_is_refused(tmp_path):
    path = tmp_path / "pickled.safetensors"
    torch.save(SeedCNN(2).state_dict(), path)
    with pytest.raises(ModelError, match="not a moodtag model file"):
        load_model(path)


def test_safetensors_without_spec_is_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "bare.safetensors"
    save_file({k: v.contiguous() for k, v in SeedCNN(2).state_dict().items()}, str(path))
    with pytest.raises(ModelError, match="without a moodtag spec"):
        load_model(path)


def test_tensors_that_do_not_fit_are_refused(tmp_path):
    path = save_model(tmp_path / "m.safetensors", _spec(labels=("a", "b", "c")), SeedCNN(2).state_dict())
    with pytest.raises(ModelError, match="do not fit"):
        load_model(path)


def _raw_model(path, header: bytes, body: bytes = b""):
    """A file laid out as safetensors (8-byte length, JSON header, data), its header as given."""
    path.write_bytes(len(header).to_bytes(8, "little") + header + body)
    return path


def test_json_nested_too_deeply_is_one_line(tmp_path, audio_dir):
    """A header, or a spec, of '[[[[...' 100,000 deep ended model-info and classify in a RecursionError
    traceback; 900 deep parsed, and model-info's rendering then recursed too deep. One line now."""
    import json

    from safetensors.torch import save

    from tests.conftest import run_cli

    deep = "[" * 100_000 + "]" * 100_000
    tensors = {k: v.contiguous() for k, v in SeedCNN(2).state_dict().items()}
    header = _raw_model(tmp_path / "header.safetensors", ('{"__metadata__": {"moodtag_spec": "{}"}, "x": '
                                                           + deep + "}").encode())
    spec = tmp_path / "spec.safetensors"
    spec.write_bytes(save(tensors, metadata={"moodtag_spec": deep}))
    metrics = tmp_path / "metrics.safetensors"
    nested = json.loads("[" * 900 + "]" * 900)
    metrics.write_bytes(save(tensors, metadata={"moodtag_spec": json.dumps({**_spec().to_json(),
                                                                            "metrics": {"a": nested}})}))
    track = sorted(audio_dir.glob("*.wav"))[0]
    for path, message in [(header, "not a moodtag model file (the header's JSON is nested more than 64 deep)"),
                          (spec, "malformed model spec (the spec's JSON is nested more than 64 deep)"),
                          (metrics, "malformed model spec (the spec's JSON is nested more than 64 deep)")]:
        for command in (["model-info", path], ["classify", track, "--model", path]):
            assert one_error_line(run_cli(*command)) == f"error: {path}: {message}"


def test_an_architecture_is_checked_against_the_tensors_before_it_is_built(tmp_path):
    """A 700-byte file (no tensors) whose spec asked for a hidden layer of 100,000 units built and
    initialised it (1.8 GB, 7 s) before the tensors were compared; a layer of millions asked for tens of
    GB in every scan worker. The architecture is built on the meta device first: nothing allocated."""
    import json

    spec = {**_spec().to_json(), "architecture": {"name": "seed_cnn", "hidden": [50_000_000]}}
    path = _raw_model(tmp_path / "huge.safetensors", json.dumps({"__metadata__": {"moodtag_spec": json.dumps(spec)}}).encode())
    with pytest.raises(ModelError, match=r"huge.safetensors: tensors do not fit the spec's architecture "
                                         r"\(tensor 'features.0.weight' is missing\)$"):
        load_model(path)  # 800 GB of weights, had they been built


def test_a_tensor_that_does_not_fit_is_named(tmp_path, audio_dir):
    """The message named no tensor ('Error(s) in loading state_dict for SeedCNN:'), and a zero-sized
    layer printed torch's UserWarnings first. The first tensor that does not fit, and how, in one line."""
    from tests.conftest import run_cli

    state = SeedCNN(2).state_dict()
    shape = dict(state, **{"classifier.1.weight": state["classifier.1.weight"][:1].clone()})
    missing = {k: v for k, v in state.items() if k != "classifier.7.weight"}
    extra = dict(state, **{"extra.weight": torch.zeros(3)})
    cases = [(shape, _spec(), "tensor 'classifier.1.weight' has shape [1, 4096], the architecture needs [120, 4096]"),
             (missing, _spec(), "tensor 'classifier.7.weight' is missing"),
             (extra, _spec(), "tensor 'extra.weight' has no place in the architecture"),
             (state, _spec(architecture={"name": "seed_cnn", "hidden": [0]}),
              "tensor 'classifier.1.weight' has shape [120, 4096], the architecture needs [0, 4096]")]
    track = sorted(audio_dir.glob("*.wav"))[0]
    for i, (tensors, spec, why) in enumerate(cases):
        path = save_model(tmp_path / f"m{i}.safetensors", spec, tensors)
        proc = run_cli("classify", track, "--model", path)
        assert one_error_line(proc) == f"error: {path}: tensors do not fit the spec's architecture ({why})"


@pytest.mark.skipif(ROOT and not shutil.which("setpriv"), reason="needs setpriv to drop root's powers")
def test_a_model_path_that_is_no_readable_file_is_one_line_naming_why(tmp_path):
    """A folder, a FIFO (never opened: the read would block) and a file without read permission given
    as the model: each one error line with its own cause, from the real CLI."""
    from tagger.weights import resolve_model

    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    locked = tmp_path / "locked.safetensors"
    shutil.copy(resolve_model(None), locked)
    locked.chmod(0o000)
    cases = [(["model-info", tmp_path], f"{tmp_path}: is a folder, not a model file"),
             (["model-info", fifo], f"{fifo}: not a regular file (a FIFO)"),
             (["classify", "--model", fifo, tmp_path / "any.wav"], f"{fifo}: not a regular file (a FIFO)"),
             (["model-info", locked], f"{locked}: permission denied")]
    for args, message in cases:
        proc = subprocess.run(_without_root_powers([sys.executable, "-m", "tagger", *map(str, args)]),
                              capture_output=True, text=True, timeout=120)
        assert one_error_line(proc) == f"error: {message}", args


def test_a_spec_with_an_empty_name_or_version_is_one_line(tmp_path, audio_dir):
    """A model whose name or version is '' (or blank) was taken: a scan's cache and the MOODTAG_MODEL tag,
    which tell models apart by them, got '' and 'x ' (a trailing space). It is a malformed spec now, one
    error line from every command that reads it, as any other bad spec."""
    from tests.conftest import run_cli

    track = sorted(audio_dir.glob("*.wav"))[0]
    for i, (changes, cause) in enumerate([({"name": ""}, "name '' is empty"),
                                          ({"version": ""}, "version '' is empty"),
                                          ({"version": " "}, "version ' ' is empty")]):
        path = save_model(tmp_path / f"m{i}.safetensors", _spec(**changes), SeedCNN(2).state_dict())
        with pytest.raises(ModelError, match=f"malformed model spec \\({cause}\\)"):
            read_spec(path)
        for command in (["model-info", path], ["classify", track, "--model", path]):
            assert one_error_line(run_cli(*command)) == f"error: {path}: malformed model spec ({cause})"


def test_every_input_recipe_train_writes_is_within_the_bounds_on_what_a_recipe_adds_up_to():
    """weights.MAX_SPECTROGRAM_VALUES refuses recipes each of whose settings is in range but that together
    would not fit in memory (n_fft 65536, hop 1: 144 GB a track); what train writes for each feature kind,
    and the shipped models, stay well inside it, as does a heavier recipe of 48 kHz and five 30 s clips."""
    from tagger.features import FEATURE_KINDS
    from tagger.weights import shipped_models, spec_problem

    for kind in FEATURE_KINDS:  # train's recipe: FeatureSpec's defaults but the kind and centring
        assert spec_problem(_spec(features=FeatureSpec(kind=kind, center="band"))) is None, kind
    assert spec_problem(_spec(sample_rate=48000, clips=ClipPlan(seconds=30.0),
                              features=FeatureSpec(kind="stft", n_fft=4096, hop_length=256))) is None
    assert all(spec_problem(read_spec(p)) is None for p in shipped_models())
    assert "spectrogram values" in spec_problem(_spec(features=FeatureSpec(kind="stft", n_fft=65536, hop_length=1)))
