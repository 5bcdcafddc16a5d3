"""The default model's descriptors against librosa, and descriptor models trained and used end to end."""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from tagger import descriptors
from tagger.audio import load_clips
from tagger.cli import app
from tagger.synth import make_track
from tagger.weights import DEFAULT_MODEL, ClipPlan, load_model, read_spec, resolve_model

SR = 22050


def librosa_reference(clips: np.ndarray) -> dict[str, float]:
    """The descriptors as the grouped-CV research computed them, with librosa itself."""
    import librosa
    import scipy.ndimage as ndi

    per_clip, mels = [], []
    for y in clips:
        S = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=2048, hop_length=512, n_mels=128)
        Sdb = librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=None)
        rms = librosa.feature.rms(y=y, frame_length=2048, hop_length=512)[0]
        onsets = librosa.onset.onset_detect(onset_envelope=librosa.onset.onset_strength(S=Sdb, sr=SR), sr=SR)
        H = ndi.maximum_filter1d(ndi.minimum_filter1d(S, 17, axis=1), 17, axis=1)
        P = ndi.maximum_filter1d(ndi.minimum_filter1d(S, 17, axis=0), 17, axis=0)
        freqs = librosa.mel_frequencies(n_mels=128, fmax=SR / 2)
        cent = (freqs[:, None] * S).sum(0) / (S.sum(0) + 1e-20)
        per_clip.append({"onset_rate": len(onsets) / (len(y) / SR), "rms_db": float((20 * np.log10(rms + 1e-5)).mean()),
                         "perc_fast": float((P ** 2 / (H ** 2 + P ** 2 + 1e-20) * S).sum() / S.sum()),
                         "centroid": float(np.log2(np.median(cent) + 1)),
                         "flux_mid": float(librosa.onset.onset_strength(S=Sdb[(freqs >= 200) & (freqs < 2000)], sr=SR,
                                                                       lag=2, max_size=3)[2:].mean())})
        mels.append(Sdb)
    out = {k: float(np.mean([c[k] for c in per_clip])) for k in per_clip[0]}
    env = np.concatenate([librosa.onset.onset_strength(S=m, sr=SR, lag=2, max_size=3)[2:] for m in mels])
    x = env - env.mean()
    n = len(x)
    acf = np.fft.irfft(np.abs(np.fft.rfft(x, 2 * n)) ** 2)[:n]
    acf /= acf[0] + 1e-9
    lags = np.arange(n) / (SR / 512)
    keep = (lags >= 0.125) & (lags <= 2.0)
    w = np.maximum(acf[keep], 0)
    out["tcent"] = float((w * np.log2(60 / lags[keep])).sum() / (w.sum() + 1e-9))
    out["onset_rate25"] = len(librosa.onset.onset_detect(onset_envelope=env, sr=SR)) / (n / (SR / 512))
    out["acf_max"] = float(acf[keep].max())
    return out


@pytest.mark.parametrize("mood,fmt", [("calm", "ogg"), ("exciting", "mp3"), ("exciting", "flac")])
def test_descriptors_equal_librosa_on_encoded_audio(tmp_path, mood, fmt):
    path = make_track(tmp_path / f"t.{fmt}", mood, 40.0, seed=3)
    clips = load_clips(path, plan=ClipPlan(), sample_rate=SR).samples
    ours, per_clip = descriptors.track_descriptors(clips, SR)
    ref = librosa_reference(clips)
    assert set(ours) == set(descriptors.NAMES) and len(per_clip) == 5
    # Equal up to float32 rounding of the spectrum (torch's FFT vs numpy's): that can flip one
    # borderline onset, worth 0.2/s in one 5 s clip (0.04 in the mean of 5) or 1/25 s in the joined envelope.
    tolerance = {"onset_rate": 0.041, "onset_rate25": 0.041}
    for name in ref:
        assert ours[name] == pytest.approx(ref[name], rel=1e-4, abs=tolerance.get(name, 1e-4)), name


@pytest.mark.parametrize("mood,fmt", [("calm", "ogg"), ("exciting", "mp3")])
def test_relative_floor_equals_librosa_top_db_and_ignores_gain(tmp_path, mood, fmt):
    """With top_db, every descriptor that reads the dB is what librosa gives on power_to_db(top_db=80)
    of each clip, and a quieter copy (-6 dB, -20 dB) changes none of them; the extra dynamics
    descriptors are unchanged by gain too. Only rms_db moves, by the gain."""
    import librosa

    path = make_track(tmp_path / f"t.{fmt}", mood, 40.0, seed=5)
    clips = load_clips(path, plan=ClipPlan(placement="spread"), sample_rate=SR).samples
    ours, _ = descriptors.track_descriptors(clips, SR, top_db=80.0)
    for i, y in enumerate(clips):  # the floor itself, against librosa
        S = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=2048, hop_length=512, n_mels=128)
        _, Sdb = descriptors.mels(y[None], SR, top_db=80.0)
        np.testing.assert_allclose(Sdb[0], librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=80.0), atol=1e-3)
    for gain_db in (-6.0, -20.0):
        quieter, _ = descriptors.track_descriptors(clips * np.float32(10 ** (gain_db / 20)), SR, top_db=80.0)
        for name in descriptors.NAMES:
            if name == "rms_db":
                assert quieter[name] == pytest.approx(ours[name] + gain_db, abs=0.05)
            else:
                assert quieter[name] == pytest.approx(ours[name], rel=1e-4, abs=1e-6), name
    some = ("tcent", "flux_mid", "perc_fast")
    subset, _ = descriptors.track_descriptors(clips, SR, top_db=80.0, names=some)
    assert {k: subset[k] for k in some} == {k: ours[k] for k in some}
    assert "rms_db" not in subset and "dyn_range" not in subset  # a model computes only what it reads


def test_onset_counting_equals_librosa_peak_picking():
    import librosa

    rng = np.random.default_rng(0)
    envelopes = [rng.random(400), np.abs(rng.standard_normal(1075)) ** 3, np.zeros(200), np.ones(50),
                 np.r_[5.0, np.zeros(30), 1.0, 0.0, 1.0, np.zeros(20)], np.sin(np.arange(300) / 3) ** 2]
    for env in envelopes:
        expected = len(librosa.onset.onset_detect(onset_envelope=env.astype(np.float32), sr=SR, hop_length=512))
        assert descriptors.count_onsets(env.astype(np.float32), SR) == expected


def test_a_click_track_has_its_onsets_and_a_clear_pulse():
    """Clicks twice a second: 2 onsets per second and a strong periodicity; noise has no pulse."""
    t = np.arange(25 * SR) / SR
    clicks = (0.6 * np.sin(2 * np.pi * 880 * t) * np.exp(-40 * (t % 0.5))).astype(np.float32)
    noise = (0.2 * np.random.default_rng(1).standard_normal(len(t))).astype(np.float32)
    as_clips = lambda x: x.reshape(5, 5 * SR)  # noqa: E731
    c, _ = descriptors.track_descriptors(as_clips(clicks), SR)
    n, _ = descriptors.track_descriptors(as_clips(noise), SR)
    assert c["onset_rate"] == pytest.approx(2.0, abs=0.2) and c["onset_rate25"] == pytest.approx(2.0, abs=0.2)
    assert c["acf_max"] > 0.5 > n["acf_max"]


# ---------------------------------------------------------------- descriptor models, end to end

@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """3 groups x (2 calm + 2 exciting) 30 s tracks, as real Ogg Vorbis and FLAC files."""
    root = tmp_path_factory.mktemp("desc-data")
    for g in range(3):
        for k in range(4):
            mood = ("calm", "exciting")[k % 2]
            (root / mood).mkdir(exist_ok=True)
            make_track(root / mood / f"g{g}__t{k}.{('ogg', 'flac')[k // 2]}", mood, 30.0, seed=10 * g + k)
    return root


def test_train_a_descriptor_model_and_classify_unseen_tracks(data, tmp_path):
    model = tmp_path / "rhythm.safetensors"
    result = CliRunner().invoke(app, ["train", str(data), "--feature", "descriptors", "--out", str(model),
                                      "--cache-dir", str(tmp_path / "cache"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    spec = read_spec(model)
    assert spec.name == "rhythm" and spec.features.kind == "descriptors"  # the file's name, not the shipped one's
    # 12 tracks: too few for quantiles ("auto" standardises) or a temperature (stays 1)
    default = read_spec(resolve_model(DEFAULT_MODEL)).features
    assert spec.architecture == {"name": "descriptor_logistic", "n_features": len(default.descriptors)}
    assert spec.threshold == 0.5 and spec.metrics["regression"]["temperature"] == 1.0
    assert (spec.features.descriptors, spec.features.top_db) == (default.descriptors, default.top_db) == (
        ("onset_rate", "perc_fast", "tcent", "onset_rate25", "acf_max", "flux_mid"), 80.0)  # the default's recipe
    assert spec.clips.placement == "spread"  # the validated placement for descriptors
    assert spec.trained_on.startswith("12 tracks (calm 6, exciting 6) in 3 groups")
    held = spec.metrics["held_out"]["pooled"]
    assert held["tracks"] == 12 and held["balanced_accuracy"] >= 0.75  # the synthetic moods are easy
    assert summary["spec"]["name"] == "rhythm"

    # lossless calm: a lossy encoder's noise between synthetic pure tones reads as movement (MODEL_CARD)
    unseen = [make_track(tmp_path / "calm.flac", "calm", 35.0, seed=99),
              make_track(tmp_path / "fast.m4a", "exciting", 35.0, seed=98)]
    out = CliRunner().invoke(app, ["classify", *map(str, unseen), "--model", str(model), "--json"])
    assert out.exit_code == 0, out.output
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["mood"] for r in rows] == ["calm", "exciting"]
    for r in rows:
        assert r["model"] == {"name": "rhythm", "version": spec.version}
        assert sum(r["scores"].values()) == pytest.approx(1.0, abs=1e-3)
        assert r["confidence"] == pytest.approx(r["scores"][r["mood"]], abs=1e-4)
        assert len(r["clips"]) == 5 and all(sum(c["scores"].values()) == pytest.approx(1.0, abs=1e-3)
                                            for c in r["clips"])

    ev = CliRunner().invoke(app, ["evaluate", str(data), "--model", str(model), "--json"])
    assert ev.exit_code == 0, ev.output
    report = json.loads(ev.stdout)
    assert report["tracks"] == 12 and report["balanced_accuracy"] >= 0.9  # its own training data
    info = CliRunner().invoke(app, ["model-info", str(model)])
    assert info.exit_code == 0 and "track descriptors onset_rate, perc_fast" in info.stdout


def test_the_same_data_gives_the_same_model(data, tmp_path):
    from safetensors.numpy import load_file

    files = []
    for k in range(2):
        files.append(tmp_path / f"m{k}.safetensors")
        result = CliRunner().invoke(app, ["train", str(data), "--feature", "descriptors", "--out", str(files[-1]),
                                          "--cache-dir", str(tmp_path / f"cache{k}")])
        assert result.exit_code == 0, result.output
    a, b = load_file(str(files[0])), load_file(str(files[1]))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_ternary_descriptor_model(tmp_path):
    """calm / exciting / sad: no labelled 'sad' data exists under the corpus rule, so the three-label
    path is kept working on synthetic data (sad = the plain tone synth.render gives any other mood)."""
    for g in range(2):
        for k, mood in enumerate(("calm", "exciting", "sad") * 2):
            (tmp_path / "data" / mood).mkdir(parents=True, exist_ok=True)
            make_track(tmp_path / "data" / mood / f"g{g}__{k}.ogg", mood, 26.0, seed=20 * g + k)
    model = tmp_path / "three.safetensors"
    result = CliRunner().invoke(app, ["train", str(tmp_path / "data"), "--feature", "descriptors", "--out", str(model),
                                      "--labels", "calm,exciting,sad", "--c", "1", "--cache-dir", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    loaded = load_model(model)
    assert loaded.spec.labels == ("calm", "exciting", "sad") and loaded.spec.threshold is None
    assert loaded.spec.metrics["held_out"]["pooled"]["tracks"] == 12
    track = make_track(tmp_path / "x.wav", "exciting", 26.0, seed=77)
    out = CliRunner().invoke(app, ["classify", str(track), "--model", str(model), "--json"])
    row = json.loads(out.stdout)
    assert set(row["scores"]) == {"calm", "exciting", "sad"} and row["mood"] == "exciting"
    assert sum(row["scores"].values()) == pytest.approx(1.0, abs=1e-3)
    timeline = CliRunner().invoke(app, ["classify", str(track), "--model", str(model), "--clips"])
    assert timeline.exit_code == 0, timeline.output
    assert "P(sad)" in timeline.stdout and "exciting (confidence" in timeline.stdout
    assert "the most probable label" in timeline.stdout


@pytest.mark.parametrize("args,message", [
    (["--descriptors", "onset_rate,loudness"], "--descriptors: unknown descriptor 'loudness'"),
    (["--c", "0"], "--c 0.0: must be positive"),
    (["--C", "0"], "--c 0.0: must be positive"),  # the 0.4 spelling, hidden
    (["--transform", "rank"], "--transform rank: expected auto, quantile or standard"),
])
def test_bad_descriptor_options_are_usage_errors(data, tmp_path, args, message):
    """Wrong whatever the data: click's usage error (exit status 2), before any track is read."""
    result = CliRunner().invoke(app, ["train", str(data), "--feature", "descriptors", "--out",
                                      str(tmp_path / "m.safetensors"), *args])
    assert result.exit_code == 2 and f"Invalid value: {message}" in result.output, result.output
    assert not (tmp_path / "m.safetensors").exists()


def test_one_group_cannot_be_validated_but_still_trains(tmp_path):
    for k, mood in enumerate(("calm", "exciting", "calm", "exciting")):
        (tmp_path / "d" / mood).mkdir(parents=True, exist_ok=True)
        make_track(tmp_path / "d" / mood / f"t{k}.ogg", mood, 26.0, seed=k)
    model = tmp_path / "m.safetensors"
    result = CliRunner().invoke(app, ["train", str(tmp_path / "d"), "--feature", "descriptors", "--out", str(model),
                                      "--cache-dir", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    assert "held_out" not in read_spec(model).metrics


def test_the_default_model_runs_without_torch(audio_dir):
    """A scan worker with the default model imports neither torch, librosa nor scipy.ndimage (start-up
    and memory)."""
    import subprocess
    import sys

    track = sorted(audio_dir.glob("*.ogg"))[0]
    code = ("import sys; from pathlib import Path; from tagger.worker import analyze_in_worker; "
            "from tagger.weights import resolve_model; "
            f"p, r, info = analyze_in_worker(Path({str(track)!r}), str(resolve_model(None))); "
            "assert r.ok, r.error; "
            "print(r.mood, r.model_name, 'torch' in sys.modules, 'librosa' in sys.modules, "
            "'scipy.ndimage' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] in ("calm", "exciting") and out[1] == "moodtag-rhythm"
    assert out[2:] == ["False", "False", "False"]


@pytest.mark.parametrize("shape", [(128, 216), (40, 2), (3, 5), (1, 1), (2, 3, 7)])
def test_running_extreme_is_scipys_filter_exactly(shape):
    """The numpy maximum/minimum filters give scipy.ndimage's values bit for bit, edges (mirrored),
    windows longer than the axis and even sizes included."""
    import scipy.ndimage as ndi

    x = np.random.default_rng(len(shape)).standard_normal(shape)
    for size in (1, 2, 3, 4, 5, 16, 17, 18, 33):
        for axis in range(-len(shape), len(shape)):
            for largest, reference in ((True, ndi.maximum_filter1d), (False, ndi.minimum_filter1d)):
                ours = descriptors.running_extreme(x, size, axis=axis, largest=largest)
                assert np.array_equal(ours, reference(x, size, axis=axis)), (size, axis, largest)


def test_power_spectrogram_is_numpys_float32_transform_exactly():
    """The blocked float64 transform rounded to complex64 equals numpy's float32 transform of every
    frame, bit for bit (so the descriptors of every track are unchanged)."""
    from tagger.filters import hann, power_spectrogram

    rng = np.random.default_rng(3)
    clips = np.concatenate([rng.standard_normal((2, 22050)) * 0.2,
                            np.sin(np.arange(22050) * 0.05)[None] * 1e-4]).astype(np.float32)
    padded = np.pad(clips, ((0, 0), (1024, 1024)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, 2048, axis=1)[:, ::512]
    spec = np.fft.rfft(frames * hann(2048), axis=-1)  # float32 in, complex64 out
    expected = (spec.real ** 2 + spec.imag ** 2).astype(np.float32).transpose(0, 2, 1)
    assert np.array_equal(power_spectrogram(clips, 2048, 512), expected)


@pytest.mark.parametrize("sr, n_fft, n_mels", [(22050, 2048, 128), (22050, 256, 128), (16000, 1024, 40)])
def test_mel_power_projects_only_the_bins_each_filter_covers(sr, n_fft, n_mels):
    """mel_power (groups of bands over the bins their filters cover) equals the full product of the
    filterbank and the power to float32 rounding, bands whose filters are empty (n_fft 256 for 128
    bands) included; the perc_fast openings in float32 give float64's value exactly."""
    from tagger.filters import mel_filterbank, mel_power, power_spectrogram

    rng = np.random.default_rng(5)
    clips = np.concatenate([rng.standard_normal((2, sr)) * 0.2,
                            np.sin(np.arange(sr) * 0.05)[None] * 1e-4]).astype(np.float32)
    full = np.matmul(mel_filterbank(sr, n_fft, n_mels).astype(np.float64),
                     power_spectrogram(clips, n_fft, n_fft // 4).astype(np.float64))
    ours = mel_power(clips, sr, n_fft=n_fft, hop_length=n_fft // 4, n_mels=n_mels)
    assert ours.shape == full.shape and ours.dtype == np.float32
    assert np.allclose(ours, full, rtol=2e-6, atol=1e-30)
    S = ours[0].astype(np.float64)
    assert descriptors.perc_fast(S) == _perc_fast_in_float64(S)


def _perc_fast_in_float64(S: np.ndarray) -> float:
    """perc_fast as it was, its openings in float64."""
    def opening(axis: int) -> np.ndarray:
        eroded = descriptors.running_extreme(S, descriptors.OPEN_SIZE, axis=axis, largest=False)
        return descriptors.running_extreme(eroded, descriptors.OPEN_SIZE, axis=axis, largest=True)

    H, P = opening(1), opening(0)
    return float((P ** 2 / (H ** 2 + P ** 2 + 1e-20) * S).sum() / (S.sum() + 1e-20))


def test_a_descriptor_model_with_nan_weights_is_one_clear_error(tmp_path):
    """It loaded, and tagged every track calm with the score NaN ('NaN' in --json, 'nan' in the tags)."""
    import numpy as np
    from safetensors.numpy import load_file

    from tagger.errors import ModelError
    from tagger.weights import resolve_model, save_model

    shipped = resolve_model(None)
    tensors = load_file(str(shipped))
    tensors["linear.weight"] = np.full_like(tensors["linear.weight"], np.nan)
    bad = save_model(tmp_path / "nan.safetensors", read_spec(shipped), tensors)
    with pytest.raises(ModelError, match="its tensors hold NaN or infinite values"):
        load_model(bad)


def test_a_damaged_descriptor_model_is_one_clear_error(tmp_path):
    import numpy as np
    from safetensors.numpy import load_file

    from tagger.errors import ModelError
    from tagger.weights import resolve_model, save_model

    shipped = resolve_model(None)
    spec = read_spec(shipped)
    tensors = load_file(str(shipped))
    tensors["linear.weight"] = tensors["linear.weight"][:, :3].copy()
    bad = save_model(tmp_path / "bad.safetensors", spec, tensors)
    with pytest.raises(ModelError, match="tensors do not fit the spec.*linear.weight"):
        load_model(bad)
    n = len(spec.features.descriptors)
    quantile_spec = spec.with_(architecture={**spec.architecture, "transform": "quantile_normal", "n_quantiles": 4})
    tensors = load_file(str(shipped))
    tensors.pop("quantiles", None)  # the spec says quantile_normal: its quantiles must be there
    bad = save_model(tmp_path / "bad2.safetensors", quantile_spec, tensors)
    with pytest.raises(ModelError, match="transform and the 'quantiles' tensor disagree"):
        load_model(bad)
    tensors["quantiles"] = np.tile(np.arange(4.0)[::-1, None], (1, n))  # not sorted
    bad = save_model(tmp_path / "bad3.safetensors", quantile_spec, tensors)
    with pytest.raises(ModelError, match="non-decreasing"):
        load_model(bad)


@pytest.mark.filterwarnings("ignore:n_quantiles .* is greater than the total number of samples")
def test_quantile_normal_is_scikit_learns_transform():
    """Inference maps descriptors the way the QuantileTransformer the research used does, without
    scikit-learn: ties, values between quantiles, and values beyond the training range."""
    from sklearn.preprocessing import QuantileTransformer

    from tagger.regression import fit_quantiles, quantile_normal

    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=300), rng.exponential(size=300), np.repeat([1.0, 2.0, 3.0], 100)])
    new = np.vstack([X[:40], [[-10.0, 100.0, 0.5], [10.0, -1.0, 3.0], [0.1, 0.5, 2.0]]])
    for n in (200, 1000):  # fewer quantiles than tracks, and more (then one per track)
        reference = QuantileTransformer(n_quantiles=n, output_distribution="normal").fit(X)
        ours = fit_quantiles(X, n)
        assert ours.shape == reference.quantiles_.shape
        np.testing.assert_allclose(ours, reference.quantiles_, rtol=0, atol=1e-12)
        np.testing.assert_allclose(quantile_normal(new, ours), reference.transform(new), rtol=0, atol=1e-12)


def test_the_quantile_transform_travels_in_the_model_file(data, tmp_path):
    from safetensors.numpy import load_file

    from tagger.regression import quantile_normal
    from tagger.train_descriptors import track_values

    model = tmp_path / "q.safetensors"
    result = CliRunner().invoke(app, ["train", str(data), "--feature", "descriptors", "--transform", "quantile",
                                      "--out", str(model), "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    spec, tensors = read_spec(model), load_file(str(model))
    assert spec.architecture["transform"] == "quantile_normal" and tensors["quantiles"].shape == (12, 6)
    net = load_model(model).network
    paths = sorted(p for p in data.rglob("*.*") if p.is_file())
    X = np.array([descriptors.vector(track_values(p, spec, tmp_path / "cache"), spec.features.descriptors)
                  for p in paths])
    # each training track maps to the normal quantile of its rank (ties in the middle)
    np.testing.assert_allclose(net.standardised(X) * net.scale + net.mean, quantile_normal(X, tensors["quantiles"]))


def test_sample_weights_balance_sources_then_families_then_labels():
    from tagger.train_descriptors import sample_weights

    # games: a big one-sided game and a small game; folk: one big balanced collection
    sources = np.array(["games/a"] * 40 + ["games/a"] * 2 + ["games/b"] * 3 + ["games/b"] * 3
                       + ["folk/x"] * 100 + ["folk/x"] * 100)
    y = np.array([0] * 40 + [1] * 2 + [0] * 3 + [1] * 3 + [0] * 100 + [1] * 100)
    w = sample_weights(y, sources, 2)
    assert w.mean() == pytest.approx(1.0)
    fam = np.array([s.split("/")[0] for s in sources])
    total = {(f, c): w[(fam == f) & (y == c)].sum() for f in ("games", "folk") for c in (0, 1)}
    # every (family, label) cell carries the same weight: 200 folk tracks do not outvote 48 game tracks
    assert len({round(v, 9) for v in total.values()}) == 1
    # within a family and label, each source's cell counts alike, a cell under 5 tracks as if it had 5
    assert w[:40].sum() / w[42:45].sum() == pytest.approx(5 / 3)
    assert np.all(w[:40] == w[0]) and np.all(w[40:42] == w[40])
    # without family names every source is its own cell in one family (moodtag-rhythm 1.0.0's weights)
    flat = sample_weights(y, np.array([s.split("/")[1] for s in sources]), 2)
    assert flat[48] == pytest.approx(flat[0] * 40 / 100)


def test_given_weights_replace_the_source_weights():
    """benchmarks/augment_cv.py trains on tracks plus altered copies that share their track's weight:
    a track twice at half its weight must be the same fit as the track once."""
    from tagger.train_descriptors import fit_logistic, sample_weights

    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 3))
    y = (X[:, 0] + 0.5 * rng.normal(size=60) > 0).astype(int)
    sources = np.array(["games/a"] * 20 + ["games/b"] * 40, dtype=object)
    once = fit_logistic(X, y, sources, n_labels=2, C=0.1)
    w = sample_weights(y, sources, 2)
    assert np.allclose(fit_logistic(X, y, None, n_labels=2, C=0.1, weights=w).weight, once.weight)
    twice = fit_logistic(np.vstack([X, X]), np.concatenate([y, y]), None, n_labels=2, C=0.1,
                         weights=np.concatenate([w, w]) / 2)
    np.testing.assert_allclose(twice.weight, once.weight, atol=1e-5)
    np.testing.assert_allclose(twice.bias, once.bias, atol=1e-5)
    # with the quantile transform, fitted on the first copy only: the same fit again
    once_q = fit_logistic(X, y, sources, n_labels=2, C=0.1, transform="quantile")
    twice_q = fit_logistic(np.vstack([X, X]), np.concatenate([y, y]), None, n_labels=2, C=0.1,
                           transform="quantile", weights=np.concatenate([w, w]) / 2,
                           fit_rows=np.arange(120) < 60)
    np.testing.assert_allclose(twice_q.quantiles, once_q.quantiles)
    np.testing.assert_allclose(twice_q.weight, once_q.weight, atol=1e-5)
    with pytest.raises(ValueError, match="59 weights for 60 rows"):
        fit_logistic(X, y, None, n_labels=2, C=0.1, weights=w[:-1])
    # and the weights are used: all the weight on source b is another model
    other = fit_logistic(X, y, None, n_labels=2, C=0.1, weights=np.where(sources == "games/b", 1.0, 1e-6))
    assert not np.allclose(other.weight, once.weight, atol=1e-3)


def test_temperature_makes_confidence_match_how_often_right():
    from tagger.train_descriptors import fit_temperature

    rng = np.random.default_rng(0)
    truth = rng.normal(size=4000)                       # true logit of label 1
    y = (rng.random(4000) < 1 / (1 + np.exp(-truth))).astype(int)
    z = np.stack([np.zeros_like(truth), truth], axis=1)
    assert fit_temperature(z, y) == pytest.approx(1.0, abs=0.1)        # already calibrated
    assert fit_temperature(z / 3, y) == pytest.approx(3.0, rel=0.1)    # crowded near 0.5: spread out
    assert fit_temperature(z * 4, y) == pytest.approx(0.25, rel=0.1)   # overconfident: pulled in


def test_a_chosen_threshold_is_folded_into_the_bias(data, tmp_path):
    """A binary model deciding at P >= t is stored deciding at 0.5: the same decisions as its regression
    at t, and the chosen label's confidence is never below 0.5."""
    from tagger.regression import DescriptorRegression
    from tagger.train_descriptors import track_values

    models = {}
    for t in ("0.5", "0.7"):
        models[t] = tmp_path / f"m{t}.safetensors"
        # strong regularisation: margins small enough on these easy synthetic moods for 0.7 to matter
        result = CliRunner().invoke(app, ["train", str(data), "--feature", "descriptors", "--threshold", t,
                                          "--C", "0.01", "--out", str(models[t]), "--cache-dir", str(tmp_path / "cache")])
        assert result.exit_code == 0, result.output
    specs = {t: read_spec(m) for t, m in models.items()}
    assert specs["0.7"].threshold == 0.5 and specs["0.7"].metrics["threshold"]["chosen"] == 0.7
    regs = {t: load_model(m).network for t, m in models.items()}
    assert all(isinstance(r, DescriptorRegression) for r in regs.values())
    temps = {t: s.metrics["regression"]["temperature"] for t, s in specs.items()}
    X = np.array([descriptors.vector(track_values(p, specs["0.5"], tmp_path / "cache"), specs["0.5"].features.descriptors)
                  for p in sorted(data.rglob("*.*"))])
    raw = np.diff(regs["0.5"].logits(X), axis=1)[:, 0] / temps["0.5"]  # the untempered regression's logit
    shifted = regs["0.7"].probabilities(X)[:, 1]
    assert np.array_equal(shifted >= 0.5, raw >= np.log(0.7 / 0.3))
    assert not np.array_equal(shifted >= 0.5, raw >= 0.0)  # the shift changed some decision
