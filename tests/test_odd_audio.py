"""Odd but real audio files: damaged float samples, a container under another suffix, free-format MP3,
a WAV header never finished, a multiplexed Ogg file, silent clips. Each file is made here, small."""
from __future__ import annotations

import io
import os

import numpy as np
import pytest
import soundfile as sf

from tagger import synth
from tagger.analyze import analyze_track, predict
from tagger.audio import load_clips, probe_duration
from tagger.errors import AudioError, TagError
from tagger.weights import ClipPlan, load_model

PLAN = ClipPlan()


@pytest.fixture(scope="module")
def model():
    return load_model(None)


def _encode(container, stream, planar: np.ndarray, frame: int, fmt: str) -> None:
    """Stereo samples (2, n) encoded by PyAV into `stream` of `container`, `frame` samples a frame at 44.1 kHz."""
    import av

    for i in range(0, planar.shape[1], frame):
        fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(planar[:, i:i + frame]), format=fmt, layout="stereo")
        fr.sample_rate, fr.pts = 44100, i
        for p in stream.encode(fr):
            container.mux(p)
    for p in stream.encode(None):
        container.mux(p)


def test_a_few_huge_float_samples_are_damage_and_a_loud_file_is_not(tmp_path, model):
    """One sample in 100,000 at 1e5 or 1e20 (a flipped exponent bit) set the clip's scale: the music was
    crushed 100-400 dB under it and the track judged calm 1.000. Such samples are mended as NaN is; a
    file loud as a whole is read as before; many such samples are 'corrupt'."""
    x = synth.render("exciting", 30.0, seed=3)
    files = {}
    for name, change in {"clean": lambda y: y, "x50": lambda y: y * 50, "x1e6": lambda y: y * 1e6}.items():
        files[name] = tmp_path / f"{name}.wav"
        sf.write(files[name], change(x.copy()).astype(np.float32), synth.SAMPLE_RATE, subtype="FLOAT")
    for value in (1e5, 1e20):
        y = x.copy()
        y[::100_000] = value
        files[value] = tmp_path / f"spike{value:g}.wav"
        sf.write(files[value], y, synth.SAMPLE_RATE, subtype="FLOAT")
    clean = load_clips(files["clean"], plan=PLAN, sample_rate=22050).samples
    assert np.allclose(load_clips(files["x50"], plan=PLAN, sample_rate=22050).samples, clean * 50, rtol=1e-4, atol=1e-4)
    results = {name: analyze_track(path, model) for name, path in files.items()}
    for name, result in results.items():
        assert result.mood == results["clean"].mood == "exciting", name
        assert result.confidence == pytest.approx(results["clean"].confidence, abs=0.01), name
    many = x.copy()
    many[::500] = 1e6  # 1 in 500: over the limit of 1 in 1,000
    sf.write(tmp_path / "many.wav", many, synth.SAMPLE_RATE, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"^corrupt: [\d,]+ of a clip's [\d,]+ samples are damaged \(NaN, "
                                         r"infinite, or 60 dB above the rest of the clip\)$"):
        load_clips(tmp_path / "many.wav", plan=PLAN, sample_rate=22050)


def test_a_damaged_sample_is_mended_from_its_neighbours_not_zeroed(tmp_path, model):
    """Zeroed, one damaged sample in a tonal passage is a click: three in a synthetic track moved two
    clips from P(calm) 0.28 and 0.08 to 0.999 and 1.000, the track from exciting to calm 1.00. Drawn
    between its neighbours, it leaves the clip's scores where the undamaged file has them."""
    x = synth.render("calm", 30.0, seed=6).astype(np.float32)
    sf.write(tmp_path / "clean.wav", x, synth.SAMPLE_RATE, subtype="FLOAT")
    y = x.copy()
    y[[1000, 500_000, 900_000]] = 1e5
    sf.write(tmp_path / "damaged.wav", y, synth.SAMPLE_RATE, subtype="FLOAT")
    clean, damaged = (analyze_track(tmp_path / f"{name}.wav", model) for name in ("clean", "damaged"))
    assert damaged.mood == clean.mood and len(damaged.clips) == len(clean.clips) == 5
    for ours, theirs in zip(damaged.clips, clean.clips):
        assert ours.scores["calm"] == pytest.approx(theirs.scores["calm"], abs=0.01)


def test_an_m4a_named_mp3_is_decoded_as_what_its_bytes_say(tmp_path):
    """libsndfile's mpg123 found chance MPEG frames in MP4 data: this AAC file read as 25.0 s (and
    others as 'truncated'). Its first bytes ('ftyp') send it to FFmpeg."""
    m4a = synth.encode(synth.render("exciting", 60.0, seed=1), tmp_path / "x.m4a")
    named = tmp_path / "exciting.mp3"
    os.rename(m4a, named)
    assert probe_duration(named) == pytest.approx(60.0, abs=0.05)
    assert load_clips(named, plan=PLAN, sample_rate=22050).samples.shape == (5, 5 * 22050)


def _free_format_mp3(path, seconds: float, seed: int):
    """A CBR MP3 (no Xing header) whose frame headers then get bitrate index 0 (free format): the
    same frames, sized by where the next one starts. mpg123 plays it."""
    import av

    x = synth.render("exciting", seconds, seed=seed)
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp3", options={"write_xing": "0", "id3v2_version": "0"}) as c:
        s = c.add_stream("libmp3lame", rate=44100, layout="stereo")
        s.codec_context.bit_rate = 128000
        _encode(c, s, (np.clip(x.T, -1, 1) * 2**31 * 0.999).astype(np.int32), 1152, "s32p")
    b, pos = bytearray(buf.getvalue()), 0
    rates = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320]
    while pos + 4 <= len(b) and b[pos] == 0xFF:
        size = 144000 * rates[b[pos + 2] >> 4] // 44100 + ((b[pos + 2] >> 1) & 1)
        b[pos + 2] &= 0x0F
        pos += size
    path.write_bytes(bytes(b))
    return path


def test_a_free_format_mp3_is_read_whole(tmp_path):
    """Free-format frames were passed over, and two chance 'frames' inside the audio data taken for
    the stream: 'too short: 0.0 s'. libsndfile (mpg123) reads it, 30 s."""
    path = _free_format_mp3(tmp_path / "free.mp3", 30.0, seed=3)
    assert probe_duration(path) == pytest.approx(30.0, abs=0.2)  # no Xing header: LAME's delay counted
    assert load_clips(path, plan=PLAN, sample_rate=22050).samples.shape == (5, 5 * 22050)
    junk = tmp_path / "junk_first.mp3"  # bytes before the first frame: the index's plausibility test
    junk.write_bytes(b"\0" * 100 + path.read_bytes())
    assert probe_duration(junk) == pytest.approx(30.0, abs=0.2)


def test_a_wav_whose_sizes_were_left_0_is_read_to_its_end_and_left_untagged(tmp_path):
    """A recorder stopped before finishing the header leaves 0 in the 'data' (and RIFF) size: it failed
    as 'too short: 0.0 s' while FFmpeg plays all 30 s. Read as a size never written (0xFFFFFFFF), and
    the tag writer refuses it with that cause, not an odd chunk read from the audio."""
    from tagger.tags import MoodValues, write_mood

    buf = io.BytesIO()
    sf.write(buf, synth.render("exciting", 30.0, seed=13), 44100, format="WAV", subtype="PCM_16")
    whole = bytearray(buf.getvalue())
    (tmp_path / "whole.wav").write_bytes(whole)
    at = whole.find(b"data")
    data0 = bytearray(whole)
    data0[at + 4:at + 8] = bytes(4)
    both0 = bytearray(data0)
    both0[4:8] = bytes(4)
    expected = load_clips(tmp_path / "whole.wav", plan=PLAN, sample_rate=22050).samples
    for name, content in {"data0": data0, "both0": both0}.items():
        path = tmp_path / f"{name}.wav"
        path.write_bytes(content)
        assert probe_duration(path) == pytest.approx(30.0, abs=0.01), name
        assert np.allclose(load_clips(path, plan=PLAN, sample_rate=22050).samples, expected, atol=1e-4), name
    with pytest.raises(TagError, match=r"its 'data' chunk declares 0 bytes and [\d,]+ follow it \(its header "
                                       r"never finished"):
        write_mood(tmp_path / "data0.wav", MoodValues("exciting", {"calm": 0.1, "exciting": 0.9}, "m 1"))
    assert (tmp_path / "data0.wav").read_bytes() == data0


def test_an_empty_data_chunk_followed_by_a_chunk_is_still_empty(tmp_path):
    """A 0-byte 'data' chunk that a whole chunk follows (a LIST) is an empty WAV, not a size never written."""
    buf = io.BytesIO()
    sf.write(buf, np.zeros((0, 1), np.float32), 44100, format="WAV", subtype="PCM_16")
    data = buf.getvalue()
    info = b"INFOINAM\x04\x00\x00\x00abc\x00"
    path = tmp_path / "empty.wav"
    path.write_bytes(data[:4] + (len(data) - 8 + 8 + len(info)).to_bytes(4, "little") + data[8:]
                     + b"LIST" + len(info).to_bytes(4, "little") + info)
    with pytest.raises(AudioError, match="too short: 0.0 s"):
        load_clips(path, plan=PLAN, sample_rate=22050)


def test_a_multiplexed_ogg_is_timed_by_its_own_stream(tmp_path):
    """Two Vorbis streams side by side, the first (decoded) one shorter: its clips were placed by the
    container's duration (the longer stream's), past its end: 'truncated'."""
    import av

    path = tmp_path / "short_first.ogg"
    with av.open(str(path), "w", format="ogg") as c:
        tracks = []
        for data in (synth.render("exciting", 12.0, seed=5), synth.render("calm", 24.0, seed=6)):
            s = c.add_stream("vorbis", rate=44100, layout="stereo")
            s.codec_context.options = {"strict": "-2"}
            tracks.append((s, np.ascontiguousarray(data.T.astype(np.float32))))
        for s, x in tracks:
            _encode(c, s, x, 1024, "fltp")
    assert probe_duration(path) == pytest.approx(12.0, abs=0.05)
    assert load_clips(path, plan=PLAN, sample_rate=22050).samples.shape == (2, 5 * 22050)


def test_silent_clips_are_left_out_and_a_click_or_dc_alone_is_silent(tmp_path, model):
    """A click in digital silence and a DC offset alone were judged calm 1.00 and tagged, and the
    silent middle of a hidden-track layout pulled the decision with clips at P(calm) 1.000. A clip
    without sound is shown as 'silent' and left out; a track of such clips is 'silent'."""
    sr, n = 44100, 30 * 44100
    click = np.zeros(n, np.float32)
    click[n // 2] = 0.9
    sf.write(tmp_path / "click.wav", click, sr, subtype="PCM_16")
    sf.write(tmp_path / "dc.wav", np.full(n, 0.5, np.float32), sr, subtype="PCM_16")
    for name in ("click", "dc"):
        result = analyze_track(tmp_path / f"{name}.wav", model)
        assert result.mood is None and result.error.startswith("silent: "), name
    song = [synth.render("exciting", 30.0, seed=s, sample_rate=22050).mean(axis=1) for s in (3, 4)]
    hidden = np.concatenate([song[0], np.zeros(60 * 22050, np.float32), song[1]])
    sf.write(tmp_path / "hidden.wav", hidden, 22050, subtype="PCM_16")
    result = analyze_track(tmp_path / "hidden.wav", model)
    moods = [clip.mood for clip in result.clips]
    assert moods.count("silent") == 3 and len(moods) == 5
    assert all(set(c.scores.values()) == {0.0} for c in result.clips if c.mood == "silent")
    samples = load_clips(tmp_path / "hidden.wav", plan=model.spec.clips, sample_rate=model.spec.sample_rate).samples
    sounding = np.array([m != "silent" for m in moods])
    mean, per_clip = predict(model, samples[sounding])
    assert result.scores == {label: float(p) for label, p in zip(model.spec.labels, mean)}
    assert result.mood == "exciting"


def test_clips_view_counts_the_sounding_clips_it_decided_on(tmp_path):
    """`classify --clips` of a hidden-track layout: its summary line counted the silent clips as clips
    the regression read ('all 5 clips together', '2 of 5 clips alone say'); it names the sounding ones
    and says how many silent ones were left out."""
    from tests.conftest import run_cli

    song = [synth.render("exciting", 30.0, seed=s, sample_rate=22050).mean(axis=1) for s in (3, 4)]
    sf.write(tmp_path / "hidden.wav", np.concatenate([song[0], np.zeros(60 * 22050, np.float32), song[1]]),
             22050, subtype="PCM_16")
    result = run_cli("classify", "--clips", str(tmp_path / "hidden.wav"))
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "of 2 sounding clips alone say exciting; the track's scores are one regression on the descriptors " \
           "of all 2 clips together (3 silent clips left out)." in text, text


def test_sparse_loud_hits_in_room_tone_are_music_not_damage(tmp_path, model):
    """Room tone at -70 dBFS with a 30 ms hit every 6 s: the 99th percentile of such a clip is near 0, so
    a lossy decoder's overshoot past 1.0 (MP3) or a float master's +3 dBFS hit was taken for damage: the
    file failed as 'corrupt' (or its hits were zeroed). Only samples beyond 100 (40 dB over full scale)
    can be damage."""
    sr, n = 44100, 30 * 44100
    x = (np.random.default_rng(1).standard_normal(n) * 10 ** (-70 / 20)).astype(np.float32)
    hot = x.copy()
    for start in np.arange(0.7, 30, 6.0):
        i, length = int(start * sr), int(0.03 * sr)
        t = np.arange(length) / sr
        x[i:i + length] = np.sign(np.sin(2 * np.pi * 180 * t)).astype(np.float32) * 0.999
        hot[i:i + length] += np.clip(3 * np.sin(2 * np.pi * 180 * t), -1.41, 1.41).astype(np.float32)
    synth.encode(np.stack([x, x], 1), tmp_path / "hits.mp3")
    sf.write(tmp_path / "hot.wav", np.stack([hot, hot], 1), sr, subtype="FLOAT")
    for name in ("hits.mp3", "hot.wav"):
        result = analyze_track(tmp_path / name, model)
        assert result.error is None and result.mood in ("calm", "exciting"), (name, result.error)
    clips = load_clips(tmp_path / "hot.wav", plan=PLAN, sample_rate=22050).samples
    assert clips.max() > 1.2  # the +3 dBFS hits are kept, not zeroed


def test_a_cached_silent_clip_is_shown_silent_as_when_it_was_analysed(tmp_path):
    """A track with a silent gap: a fresh `scan --json` showed its clip as 'silent', the next (cached) one as
    'calm' with scores 0 (the stored row read back without the silent clips left out)."""
    import json

    from tests.conftest import run_cli

    music = synth.render("exciting", 60.0, seed=5)
    music[20 * synth.SAMPLE_RATE:34 * synth.SAMPLE_RATE] = 0
    lib = tmp_path / "lib"
    lib.mkdir()
    synth.encode(music, lib / "gap.flac")
    runs = []
    for _ in range(2):
        proc = run_cli("scan", lib, "--db", tmp_path / "c.db", "--json", "--no-write", check=True)
        line = json.loads(proc.stdout.splitlines()[0])
        runs.append((line["action"], [clip["mood"] for clip in line["clips"]], [clip["scores"] for clip in line["clips"]]))
    (first, moods, scores), (second, moods_again, scores_again) = runs
    assert (first, second) == ("analysed", "cached") and "silent" in moods
    assert moods_again == moods and scores_again == scores
