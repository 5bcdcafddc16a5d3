"""Training's feature cache on a track hours long: the stretch it decodes has a bound, whatever the
track's length (the middle 60 % of a 3-hour file took 6.5 GB, of a 10-hour mix some 20 GB)."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from tagger import feature_cache
from tagger.feature_cache import segment_bounds, track_matrix
from tagger.weights import ClipPlan, ModelSpec

SR, HOP = 22050, 512
CAPPED_FRAMES = 1 + int(600 * SR) // HOP  # 600 s of audio at the default spec's hop


def _spec() -> ModelSpec:
    return ModelSpec(name="t", version="1", labels=("calm", "exciting"), sample_rate=SR)


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory):
    """A 40-minute silent mono 16-bit WAV at the model's rate: a header over a sparse file."""
    path = tmp_path_factory.mktemp("long") / "ambient_40min.wav"
    data = SR * 2400 * 2
    with open(path, "wb") as fh:
        fh.write(b"RIFF" + struct.pack("<I", 36 + data) + b"WAVEfmt "
                 + struct.pack("<IHHIIHH", 16, 1, 1, SR, SR * 2, 2, 16) + b"data" + struct.pack("<I", data))
        fh.truncate(44 + data)
    return path


def test_a_long_track_decodes_600_seconds_around_its_middle(long_wav):
    """The middle 60 % of a 40-minute track is 1,440 s: it was decoded and turned into one spectrogram
    in one piece (memory grew ~1 MB per second of it). Now at most 600 s around the middle are, and a
    track whose span is 600 s or less (16 min 40 s at --span 0.6) keeps the stretch it had."""
    tm = track_matrix(long_wav, spec=_spec(), span=0.6, cache_dir=None)
    assert tm.matrix.shape == (128, CAPPED_FRAMES)
    assert tm.start == 900.0 and tm.duration == 2400.0
    assert tm.frame_at(1200.0) == round(300.0 / tm.hop_seconds)  # the track's midpoint is the matrix's
    plan = ClipPlan()
    assert segment_bounds(1000.0, plan, 0.6) == (200.0, 600.0)  # the longest span left as it was
    assert segment_bounds(240.0, plan, 1.0) == (0.0, 240.0)
    assert segment_bounds(36000.0, plan, 0.6) == (17700.0, 600.0)
    assert segment_bounds(36000.0, ClipPlan(count=200), 0.6) == (17499.5, 1001.0)  # a plan's clips still fit


def test_an_entry_of_a_longer_stretch_made_before_the_bound_is_decoded_again(long_wav, tmp_path):
    """A cache entry of the whole 1,440 s (what training stored before the bound) is stale: read as it
    is, one long track would still hold its hours of matrix, and the run would depend on the cache."""
    spec = _spec()
    key = feature_cache._key(long_wav, spec, 0.6)
    entry = tmp_path / key[:2] / f"{key}.npz"
    entry.parent.mkdir()
    old_frames = 1 + int(1440 * SR) // HOP
    np.savez_compressed(entry, matrix=np.zeros((128, old_frames), np.float16), start=480.0, duration=2400.0,
                        hop_seconds=HOP / SR, clip_frames=feature_cache.clip_frames(spec))
    tm = track_matrix(long_wav, spec=spec, span=0.6, cache_dir=tmp_path)
    assert tm.matrix.shape == (128, CAPPED_FRAMES) and tm.start == 900.0
    with np.load(entry) as z:  # replaced by the bounded one, which is then read as it is
        assert z["matrix"].shape == (128, CAPPED_FRAMES)
    again = track_matrix(long_wav, spec=spec, span=0.6, cache_dir=tmp_path)
    assert np.array_equal(again.matrix, tm.matrix) and again.start == 900.0
