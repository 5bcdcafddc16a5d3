"""Clip placement and decoding of just the clips, in every format, with real encoded files."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import soxr

from tagger import synth
from tagger.audio import clip_offsets, decode_segments, load_clips, probe_duration
from tagger.errors import AudioError
from tagger.weights import ClipPlan


def test_contiguous_clips_sit_around_the_midpoint():
    starts = clip_offsets(100.0, ClipPlan(count=5, seconds=5.0, placement="contiguous"))
    assert starts == [37.5, 42.5, 47.5, 52.5, 57.5]
    assert (starts[0] + starts[-1] + 5) / 2 == 50.0


def test_spread_clips_cover_the_middle_span():
    starts = clip_offsets(200.0, ClipPlan(count=5, seconds=5.0, placement="spread", span=0.6))
    assert starts[0] == pytest.approx(40.0) and starts[-1] + 5 == pytest.approx(160.0)
    assert np.allclose(np.diff(starts), np.diff(starts)[0])


def test_short_tracks_get_fewer_whole_clips_and_very_short_ones_fail():
    assert clip_offsets(12.0, ClipPlan()) == [1.0, 6.0]
    assert clip_offsets(5.0, ClipPlan()) == [0.0]
    with pytest.raises(AudioError, match="too short"):
        clip_offsets(4.9, ClipPlan())


@pytest.mark.parametrize("fmt", synth.FORMATS)
def test_every_format_decodes_the_right_clips(audio_dir, fmt):
    path = next(audio_dir.glob(f"*_{synth.FORMATS.index(fmt)}.{fmt}"))
    plan = ClipPlan()
    clips = load_clips(path, plan=plan, sample_rate=22050)
    duration = probe_duration(path)
    assert clips.duration == pytest.approx(duration, abs=0.1)
    assert clips.samples.shape == (5, 5 * 22050) and clips.samples.dtype == np.float32
    assert clips.starts == tuple(clip_offsets(clips.duration, plan))
    # The clips are the audio at those times: compare with the source signal (lossy codecs: loosely).
    mood = path.name.split("_")[0]
    source = synth.render(mood, 30.0 if fmt != "mp3" else 27.0, seed=synth.FORMATS.index(fmt)).mean(axis=1)
    ref = soxr.resample(source, synth.SAMPLE_RATE, 22050)
    for start, clip in zip(clips.starts, clips.samples):
        s = int(round(start * 22050))
        expected = ref[s:s + 22050]
        got = clip[:22050]
        corr = np.corrcoef(expected, got)[0, 1]
        assert corr > 0.9, f"{fmt}: clip at {start} s does not match the source (r={corr:.2f})"


def test_mp3_clips_have_no_glitch_at_the_seek_point(tmp_path):
    path = synth.make_track(tmp_path / "t.mp3", "calm", 20.0, seed=3)
    whole, sr = sf.read(str(path), dtype="float32")
    whole = whole.mean(axis=1)
    clips = decode_segments(path, [7.3], seconds=2.0, sample_rate=sr)
    s = int(round(7.3 * sr))
    assert np.abs(clips.samples[0] - whole[s:s + 2 * sr]).max() < 1e-4


def test_segments_anywhere_in_the_track(audio_dir):
    path = next(audio_dir.glob("*.flac"))
    clips = decode_segments(path, [0.0, 12.5, 25.0], seconds=5.0, sample_rate=22050)
    assert clips.samples.shape == (3, 110250)


@pytest.mark.parametrize("content, cause", [
    (b"", "empty file"),
    (b"this is not audio at all\n" * 40, "not a decodable audio file"),
    (os.urandom(20000), "not a decodable audio file"),
])
def test_bad_files_raise_a_clear_audio_error(tmp_path, content, cause):
    path = tmp_path / "bad.mp3"
    path.write_bytes(content)
    with pytest.raises(AudioError, match=cause):
        load_clips(path, plan=ClipPlan(), sample_rate=22050)


@pytest.mark.parametrize("fmt", ["flac", "mp3"])
def test_truncated_files_fail_clearly(tmp_path, fmt):
    path = synth.make_track(tmp_path / f"t.{fmt}", "exciting", 30.0, seed=1)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(AudioError):
        load_clips(path, plan=ClipPlan(), sample_rate=22050)


def test_too_short_track(tmp_path):
    path = synth.make_track(tmp_path / "short.wav", "calm", 3.0)
    with pytest.raises(AudioError, match="too short: 3.0 s"):
        load_clips(path, plan=ClipPlan(), sample_rate=22050)


@pytest.mark.skipif(os.geteuid() == 0 and not shutil.which("setpriv"), reason="needs setpriv to drop root's powers")
def test_unreadable_file(tmp_path):
    """Root reads any file, so (as in CI) the check runs with root's DAC capabilities dropped."""
    path = synth.make_track(tmp_path / "t.wav", "calm", 10.0)
    path.chmod(0)
    code = ("import sys; from tagger.audio import load_clips; from tagger.weights import ClipPlan\n"
            "try:\n    load_clips(sys.argv[1], plan=ClipPlan(), sample_rate=22050)\n"
            "except Exception as exc:\n    print(type(exc).__name__, exc)")
    cmd = [sys.executable, "-c", code, str(path)]
    if os.geteuid() == 0:
        cmd = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    assert out == "AudioError permission denied (cannot read the file)"
