"""Clip placement and decoding of just the clips, in every format, with real encoded files."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import soxr

from tagger import synth
from tagger.audio import clip_offsets, decode_segments, load_clips, probe_duration
from tagger.discover import AUDIO_SUFFIXES
from tagger.errors import AudioError
from tagger.weights import ClipPlan
from tests.conftest import moov_first


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
    (np.random.default_rng(7).bytes(20000), "not a decodable audio file"),
])
def test_bad_files_raise_a_clear_audio_error(tmp_path, content, cause):
    path = tmp_path / "bad.mp3"
    path.write_bytes(content)
    with pytest.raises(AudioError, match=cause):
        load_clips(path, plan=ClipPlan(), sample_rate=22050)


def test_a_broken_symlink_is_named_so_as_the_scan_names_it(tmp_path):
    (tmp_path / "link.mp3").symlink_to(tmp_path / "gone.mp3")
    with pytest.raises(AudioError, match=r"^broken symlink \(its target does not exist\)$"):
        load_clips(tmp_path / "link.mp3", plan=ClipPlan(), sample_rate=22050)
    with pytest.raises(AudioError, match="^file not found$"):
        load_clips(tmp_path / "gone.mp3", plan=ClipPlan(), sample_rate=22050)


# Starts of real files, to make garbage that a decoder takes for its format at first sight.
MAGIC = [b"", b"OggS\x00\x02", b"ID3\x03\x00\x00\x00\x00\x00\x10", b"fLaC", b"\xff\xfb\x90\x64",
         b"\x00\x00\x00\x20ftypM4A ", b"RIFF\x00\x00\x01\x00WAVE", b"FORM\x00\x00\x01\x00AIFF"]


@pytest.mark.parametrize("suffix", sorted(AUDIO_SUFFIXES | {".aac", ".webm", ".ogx"}))
def test_garbage_under_any_audio_name_is_not_a_decodable_audio_file(tmp_path, suffix):
    """Issue 11 item 12b: random bytes were sometimes 'too short: 0.0 s' or 'no audio stream in the
    file' (FFmpeg, after libsndfile had rejected them, found a FLAC or MP3 stream with no length, or
    a lyrics file); with or without a real format's first bytes, they are now undecodable, every time."""
    for seed in range(3 * len(MAGIC)):
        rng = np.random.default_rng(seed)
        path = tmp_path / f"{seed}{suffix}"
        path.write_bytes(MAGIC[seed % len(MAGIC)] + rng.bytes(int(rng.integers(100, 30_000))))
        with pytest.raises(AudioError) as caught:
            load_clips(path, plan=ClipPlan(), sample_rate=22050)
        assert str(caught.value).startswith("not a decodable audio file ("), (seed, str(caught.value))
        with pytest.raises(AudioError, match="^not a decodable audio file"):
            probe_duration(path)


def _no_decoder_m4a(source, path) -> None:
    """An M4A whose audio is of a codec FFmpeg has no decoder for: its sample entry and the object type
    of its decoder config made unknown."""
    data = bytearray(source.read_bytes())
    entry = data.find(b"mp4a", data.find(b"stsd"))
    config = data.find(b"\x04\x80\x80\x80", data.find(b"esds"))  # DecoderConfigDescriptor; object type 5 bytes on
    assert entry > 0 and config > 0 and data[config + 5] == 0x40
    data[entry:entry + 4], data[config + 5] = b"zzzz", 0xFE
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("case, cause", [
    ("format_tag", r"no decoder for its audio: WAV format tag 0x1234, 16 bits per sample; libsndfile: .+"),
    ("bits_0", r"no decoder for its audio: WAV format tag 0x0001, 0 bits per sample; libsndfile: .+"),
    ("m4a", r"no decoder for its audio"),
])
def test_audio_no_decoder_reads_is_named_so(tmp_path, audio_dir, case, cause):
    """FFmpeg opens a stream of a codec it has no decoder for without a codec context: the scan said
    'cannot decode (AttributeError: 'NoneType' object has no attribute 'sample_rate')'."""
    if case == "m4a":
        path = tmp_path / "x.m4a"
        _no_decoder_m4a(next(audio_dir.glob("*_[0-9].m4a")), path)
    else:
        data = bytearray(next(audio_dir.glob("*.wav")).read_bytes())
        fmt = data.find(b"fmt ") + 8
        at, value = (fmt, 0x1234) if case == "format_tag" else (fmt + 14, 0)
        data[at:at + 2] = value.to_bytes(2, "little")
        path = tmp_path / "x.wav"
        path.write_bytes(bytes(data))
    for attempt in (probe_duration, lambda p: load_clips(p, plan=ClipPlan(), sample_rate=22050)):
        with pytest.raises(AudioError, match=rf"^not a decodable audio file \({cause}\)$"):
            attempt(path)


def _without_first_frame(path, out) -> None:
    """The MP3 without its first frame, the one holding the Xing/Info header (valid MPEG audio, as tools
    that write no such header leave it)."""
    data = path.read_bytes()
    assert data[:2] == b"\xff\xfb" and data[36:40] in (b"Xing", b"Info"), data[:40]  # MPEG-1 layer III, stereo
    kbps = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)[data[2] >> 4]
    out.write_bytes(data[144_000 * kbps // synth.SAMPLE_RATE + (data[2] >> 1 & 1):])


def _ffmpeg_mono(path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        mono = [frame.to_ndarray().mean(axis=0) for frame in container.decode(audio=0)]
    return np.concatenate(mono).astype(np.float32)


def test_a_vbr_mp3_without_a_xing_header_is_measured_by_its_frames_and_read_where_asked(tmp_path):
    """Without the Xing/VBRI header, libsndfile guesses a VBR MP3's length from its first frame's bitrate
    (48 s for a 120 s track; here the first frames are silence, at the lowest bitrate) and reads no
    further: every clip came from the start. Its frames are counted, and a clip in the middle is the
    audio a whole decode has there."""
    samples = np.concatenate([np.zeros((2 * synth.SAMPLE_RATE, 2), np.float32),
                              synth.render("exciting", 19, seed=2), synth.render("calm", 19, seed=1)])
    source = synth.encode(samples, tmp_path / "vbr.mp3")
    path = tmp_path / "noxing.mp3"
    _without_first_frame(source, path)
    whole = _ffmpeg_mono(path)
    assert probe_duration(path) == pytest.approx(len(whole) / synth.SAMPLE_RATE, abs=1e-6)
    starts = [0.0, 18.3, 30.0, 21.5, 34.0]
    clips = decode_segments(path, starts, seconds=5.0, sample_rate=synth.SAMPLE_RATE)
    for start, clip in zip(starts, clips.samples):
        at = int(round(start * synth.SAMPLE_RATE))
        assert np.abs(clip - whole[at:at + len(clip)]).max() < 1e-3, start
    assert load_clips(path, plan=ClipPlan(), sample_rate=22050).duration == pytest.approx(40.0, abs=0.1)


def test_junk_between_the_frames_of_a_vbr_mp3_without_a_xing_header_is_passed_over(tmp_path):
    """A few bytes of junk between two frames (a stream rip, a damaged download): libsndfile and players
    resync; the frame-index reader failed the clip over it ('Invalid data found when processing input')."""
    from tagger import audio

    samples = np.concatenate([np.zeros((2 * synth.SAMPLE_RATE, 2), np.float32),
                              synth.render("exciting", 19, seed=2), synth.render("calm", 19, seed=1)])
    source = synth.encode(samples, tmp_path / "vbr.mp3")
    clean = tmp_path / "noxing.mp3"
    _without_first_frame(source, clean)
    data = clean.read_bytes()
    index = audio._mpeg_walk(data, 0, audio._mpeg_frame(data, 0))
    middle = index.offsets[len(index.offsets) // 2]
    path = tmp_path / "junk.mp3"
    path.write_bytes(data[:middle] + b"JUNK" * 8 + data[middle:])
    duration = probe_duration(path)
    assert duration == pytest.approx(probe_duration(clean), abs=0.1)
    starts = [duration / 2 - 2.5]  # over the junk
    (clip,) = decode_segments(path, starts, seconds=5.0, sample_rate=synth.SAMPLE_RATE).samples
    (plain,) = decode_segments(clean, starts, seconds=5.0, sample_rate=synth.SAMPLE_RATE).samples
    half = len(plain) // 2 - 4410  # up to the junk, the same audio; past it, the frame the junk spoilt is
    assert len(clip) == len(plain) and np.abs(clip[:half] - plain[:half]).max() < 1e-3  # lost, as players lose it
    after, frame = clip[len(plain) // 2 + 4410:], 1152
    shifted = [np.corrcoef(after[:-3 * frame], plain[len(plain) // 2 + 4410 + lag:][:len(after) - 3 * frame])[0, 1]
               for lag in range(0, 3 * frame, 16)]
    assert max(shifted) > 0.99


def test_a_cbr_mp3_without_an_info_header_keeps_its_length(tmp_path):
    """A constant bitrate's length follows from the file's size: such an MP3 is left to libsndfile."""
    source = synth.encode(synth.render("calm", 20, seed=1), tmp_path / "cbr.mp3", bitrate=128_000)
    path = tmp_path / "noinfo.mp3"
    _without_first_frame(source, path)
    assert probe_duration(path) == pytest.approx(len(_ffmpeg_mono(path)) / synth.SAMPLE_RATE, abs=0.05)


@pytest.mark.parametrize("fmt", ["ogg", "opus"])
def test_a_cut_ogg_file_is_truncated_and_a_whole_one_is_read(tmp_path, audio_dir, fmt):
    """A cut Ogg file decoded cleanly (its granule positions tell only what is left) and was judged on
    half a track: its last page, unlike a whole stream's, has no end-of-stream flag. Whole files keep
    working: with bytes after the last page (a tagger's ID3v1), or chained (the flag ends each link)."""
    whole = next(audio_dir.glob(f"*.{fmt}")).read_bytes()
    other = synth.make_track(tmp_path / f"other.{fmt}", "exciting", 10.0, seed=9).read_bytes()
    last_page = whole.rfind(b"OggS")
    cut = {"half": whole[:len(whole) // 2], "last page": whole[:last_page],
           "last byte": whole[:-1], "chained, second link": other + whole[:len(whole) // 2]}
    for name, data in cut.items():
        path = tmp_path / f"{name}.{fmt}"
        path.write_bytes(data)
        message = r"^truncated: the Ogg stream breaks off at \d+\.\d s \(its last page has no end-of-stream flag\)$"
        with pytest.raises(AudioError, match=message):
            load_clips(path, plan=ClipPlan(), sample_rate=22050)
        with pytest.raises(AudioError, match=message):
            probe_duration(path)
    # Cut inside the chain: the first link ends without its flag where the next one begins (pieces
    # of a cut download joined); its audio, decoded link by link, would be judged with a gap in it.
    for name, data in {"chained, first link": whole[:len(whole) // 2] + other,
                       "chained, first link's last page": whole[:last_page] + other}.items():
        path = tmp_path / f"{name}.{fmt}"
        path.write_bytes(data)
        message = (r"^truncated: link 1 of 2 of the chained Ogg stream breaks off at (\d+\.\d) s "
                   r"\(its last page has no end-of-stream flag\)$")
        with pytest.raises(AudioError, match=message) as caught:
            load_clips(path, plan=ClipPlan(), sample_rate=22050)
        assert 0 < float(re.match(message, str(caught.value)).group(1)) < 30.0, name
        with pytest.raises(AudioError, match=message):
            probe_duration(path)
    kept = {"whole": (whole, 30.0), "ID3v1 after it": (whole + b"TAG" + bytes(125), 30.0),
            "chained": (other + whole, 40.0),
            "chained, ID3v1 after each": (other + b"TAG" + bytes(125) + whole + b"TAG" + bytes(125), 40.0)}
    for name, (data, seconds) in kept.items():
        path = tmp_path / f"{name}.{fmt}"
        path.write_bytes(data)
        assert probe_duration(path) == pytest.approx(seconds, abs=0.01), name
        assert load_clips(path, plan=ClipPlan(), sample_rate=22050).duration == pytest.approx(seconds, abs=0.01)


@pytest.mark.parametrize("fmt", ["wav", "aiff"])
def test_a_cut_wav_or_aiff_file_is_truncated_and_a_whole_one_is_read(tmp_path, audio_dir, fmt):
    """libsndfile reads what is left of a cut WAV or AIFF file without a word: it was judged as a
    shorter track (and then tagged inside its declared audio). A WAV whose header sizes were never
    written (streamed to a pipe) has lost nothing and is read."""
    whole = next(audio_dir.glob(f"*.{fmt}")).read_bytes()
    path = tmp_path / f"cut.{fmt}"
    path.write_bytes(whole[:len(whole) // 2])
    message = (r"^truncated: the audio data breaks off at 15\.0 s although the header says 30\.0 s "
               r"\([\d,]+ bytes missing\)$")
    with pytest.raises(AudioError, match=message):
        load_clips(path, plan=ClipPlan(), sample_rate=22050)
    with pytest.raises(AudioError, match=message):
        probe_duration(path)
    if fmt == "wav":
        path.write_bytes(whole[:whole.find(b"data") + 8])
        with pytest.raises(AudioError, match=r"^truncated: the file ends where its audio data begins \([\d,]+ "
                                             r"bytes missing\)$"):
            probe_duration(path)
        streamed = bytearray(whole)
        at = streamed.find(b"data")
        streamed[4:8] = streamed[at + 4:at + 8] = b"\xff\xff\xff\xff"
        path.write_bytes(bytes(streamed))
        assert probe_duration(path) == pytest.approx(30.0, abs=0.01)


def _flac_frame_starts(data: bytes) -> list[int]:
    """Where the FLAC frames of `data` start (frame headers whose CRC-8 holds, that follow on)."""
    from tagger import audio

    return [m.start() for m in audio._FLAC_SYNC.finditer(data, data.find(b"\xff\xf8"))
            if audio._flac_frame(data, m.start(), 4096) is not None]


@pytest.mark.parametrize("fmt", ["flac", "mp3", "m4a", "m4a moov first"])
def test_a_cut_flac_mp3_or_m4a_file_is_truncated_and_a_whole_one_is_read(tmp_path, audio_dir, fmt):
    """A FLAC, an MP3 with a Xing/Info header, and an M4A whose index comes first decoded what was
    left of them without a word: a download in progress was judged on its clips and tagged through a
    copy, and the rest of the download, written to the old file, was lost. Their headers say how long
    they are. Whole files keep working, with an ID3v1 tag after them (FLAC, MP3, M4A alike: taggers add
    one), and so does a file that declares no length: an MP3 without a Xing header, a FLAC stream of
    unknown length, an MP3 whose end an editor cut on a frame's edge, leaving its header as it was."""
    source = next(audio_dir.glob(f"*.{fmt.split()[0]}"))
    if fmt == "m4a moov first":
        moov_first(source, tmp_path / "source.m4a")
        source = tmp_path / "source.m4a"
    whole = source.read_bytes()
    suffix = source.suffix
    id3v1 = b"TAG" + b"Title of the track".ljust(30, b"\0") + bytes(95)
    cut = {"half": whole[:len(whole) // 2], "nine tenths": whole[:len(whole) * 9 // 10]}
    kept = {"whole": whole, "ID3v1 after it": whole + id3v1}
    from tagger import audio

    if fmt == "flac":
        message = r"^truncated: the FLAC stream breaks off at (\d+\.\d) s although its header says 30\.0 s$"
        starts = _flac_frame_starts(whole)
        cut["on a frame's edge"] = whole[:starts[len(starts) // 2]]
        cut["behind an ID3v2 tag"] = b"ID3\x04\x00\x00\x00\x00\x01\x00" + bytes(128) + whole[:len(whole) // 2]
        padded = bytearray(whole[:4 + 4 + 34])  # fLaC, STREAMINFO; then 1 MB of padding (a cover's room), cut inside
        padded[4] &= 0x7F
        padded += bytes([0x81]) + (1 << 20).to_bytes(3, "big") + bytes(1 << 20)
        metadata_cut = bytes(padded[:len(padded) // 2])
        unknown = bytearray(whole)
        unknown[8 + 13:8 + 18] = bytes([unknown[8 + 13] & 0xF0, 0, 0, 0, 0])  # 36-bit sample count: 0
        kept["no length declared, cut"] = bytes(unknown[:len(whole) // 2])
        # a count larger than its audio (two files joined by a stream copy keep the first one's count):
        # the last frame, shorter than the block, is the stream's own end
        longer = bytearray(whole)
        count = int.from_bytes(longer[8 + 13:8 + 18], "big") + 44100
        longer[8 + 13:8 + 18] = (count | (longer[8 + 13] & 0xF0) << 32).to_bytes(5, "big")
        kept["its sample count a second too large"] = bytes(longer)
        # a chance look-alike of a frame header (CRC-8 and all) inside the audio of the last frame but one
        lookalike = b"\xff\xf8\xc9\x18\x05"
        lookalike += bytes([audio._crc8(lookalike)])
        inside = starts[-2] + (starts[-1] - starts[-2]) // 2
        kept["a frame header look-alike near the end"] = whole[:inside] + lookalike + whole[inside + len(lookalike):]
    elif fmt == "mp3":
        message = (r"^truncated: the MP3 stream breaks off at (\d+\.\d) s although its header says 27\.\d s "
                   r"\([\d,]+ bytes missing\)$")
        index = audio._mpeg_walk(whole, 0, audio._mpeg_frame(whole, 0))
        kept["its last second cut on a frame's edge"] = whole[:index.offsets[-40]]
        kept["50 bytes of its last frame lost"] = whole[:-50]  # an old file that has played whole for years
        _without_first_frame(source, tmp_path / "noinfo.mp3")
        kept["no Xing header, cut"] = (tmp_path / "noinfo.mp3").read_bytes()[:len(whole) // 2]
    else:
        message = r"^truncated: the file ends inside its 'mdat' box \([\d,]+ bytes missing\)$"
        kept["padding after it sized past the end"] = whole + b"\0\0\x10\0free" + bytes(64)
    for name, data in cut.items():
        path = tmp_path / f"{name}{suffix}"
        path.write_bytes(data)
        with pytest.raises(AudioError, match=message) as caught:
            load_clips(path, plan=ClipPlan(), sample_rate=22050)
        if fmt in ("flac", "mp3"):
            assert 0 < float(re.match(message, str(caught.value)).group(1)) < 27.5, name
        with pytest.raises(AudioError, match=message):
            probe_duration(path)
    if fmt == "flac":  # the decoder refuses it; the line says why
        path = tmp_path / "metadata cut.flac"
        path.write_bytes(metadata_cut)
        with pytest.raises(AudioError, match=r"^truncated: the file ends inside its FLAC metadata \([\d,]+ bytes "
                                             r"missing\)$"):
            probe_duration(path)
    for name, data in kept.items():
        path = tmp_path / f"{name}{suffix}"
        path.write_bytes(data)
        assert probe_duration(path) > 10, name
        assert load_clips(path, plan=ClipPlan(), sample_rate=22050).samples.shape[0] >= 1, name


def test_nan_infinite_and_far_too_loud_float_samples(tmp_path):
    """A float WAV can hold any float. One NaN or infinity made its whole clip NaN, and the track was
    called 'silent'; samples near 1e20 overflowed the spectrogram (NaN scores, 'NaN' in --json). A few
    bad samples are zeroed, a far too loud clip is scaled to full scale, and many bad ones are a clear
    failure."""
    from tagger.analyze import analyze_track
    from tagger.weights import load_model

    source = synth.render("exciting", 30.0, seed=3).mean(axis=1).astype(np.float32)
    files = {}
    for name, change in {"plain": lambda x: x, "loud": lambda x: x * np.float32(1e20),
                         "one bad": lambda x: np.where(np.arange(len(x)) % 400_000 == 7, np.inf, x),
                         "many bad": lambda x: np.where(np.arange(len(x)) % 100 == 7, np.nan, x)}.items():
        files[name] = tmp_path / f"{name}.wav"
        sf.write(files[name], change(source.copy()).astype(np.float32), synth.SAMPLE_RATE, subtype="FLOAT")
    plain = load_clips(files["plain"], plan=ClipPlan(), sample_rate=22050).samples
    for name in ("loud", "one bad"):
        clips = load_clips(files[name], plan=ClipPlan(), sample_rate=22050).samples
        assert np.all(np.isfinite(clips)) and np.abs(clips).max() <= 1.5, name
    loud = load_clips(files["loud"], plan=ClipPlan(), sample_rate=22050).samples  # each clip scaled as a whole
    gain = np.abs(loud).max(axis=1, keepdims=True) / np.abs(plain).max(axis=1, keepdims=True)
    assert np.allclose(loud, plain * gain, atol=1e-4)
    with pytest.raises(AudioError, match=r"^corrupt: [\d,]+ of a clip's [\d,]+ samples are damaged "
                                         r"\(NaN, infinite, or 60 dB above the rest of the clip\)$"):
        load_clips(files["many bad"], plan=ClipPlan(), sample_rate=22050)
    model = load_model(None)
    results = {name: analyze_track(files[name], model) for name in ("plain", "loud", "one bad")}
    for name, result in results.items():
        assert result.error is None and result.mood == results["plain"].mood, name
        assert result.confidence == pytest.approx(results["plain"].confidence, abs=0.02), name


def test_a_track_just_under_a_clip_is_not_called_as_long_as_one(tmp_path):
    path = tmp_path / "short.wav"
    sf.write(path, synth.render("calm", 4.99, seed=1), synth.SAMPLE_RATE)
    with pytest.raises(AudioError, match=r"^too short: 4\.99 s, a clip needs 5 s$"):
        load_clips(path, plan=ClipPlan(), sample_rate=22050)


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3", "ogg", "opus", "m4a", "alac.m4a"])
@pytest.mark.parametrize("seconds", [0.6, 3.0])
def test_a_real_short_file_is_too_short(tmp_path, fmt, seconds):
    path = synth.make_track(tmp_path / f"short.{fmt}", "calm", seconds)
    with pytest.raises(AudioError, match=f"^too short: {seconds:.1f} s, a clip needs 5 s$"):
        load_clips(path, plan=ClipPlan(), sample_rate=22050)


def test_an_mp3_named_m4a_is_read_by_ffmpeg_from_the_same_sample(tmp_path):
    """FFmpeg stamps MP3 frames from the encoder delay on (its start_time, 1105 samples for LAME):
    clips are read from start_time + start, so they match libsndfile's gapless ones."""
    mp3 = synth.make_track(tmp_path / "t.mp3", "exciting", 20.0, seed=4)
    named = tmp_path / "t.m4a"  # a mislabelled file: PyAV reads it, FFmpeg finds MP3 in it
    named.write_bytes(mp3.read_bytes())
    starts = [0.0, 0.3, 6.1, 12.7]
    by_sndfile = decode_segments(mp3, starts, seconds=2.0, sample_rate=44100)
    by_ffmpeg = decode_segments(named, starts, seconds=2.0, sample_rate=44100)
    assert by_ffmpeg.duration == pytest.approx(by_sndfile.duration, abs=0.001)
    assert np.abs(by_ffmpeg.samples - by_sndfile.samples).max() < 1e-3


@pytest.mark.parametrize("mood, seed, settings", [("calm", 1, {}), ("exciting", 5, {"quality": 6})])
@pytest.mark.parametrize("encoded, read_as", [(".ogg", ".ogg"), (".ogg", ".ogx"), (".mp3", ".mp3")])
def test_clips_anywhere_and_in_any_order_equal_the_whole_decode(tmp_path, encoded, read_as, mood, seed, settings):
    """After a seek the decoders can start wrong: libsndfile's Vorbis and FFmpeg's Ogg demuxer inside an
    Ogg stream's last page (end-trimmed), libsndfile's Vorbis less than 2 s ahead of its last read (a
    spread clip plan on a 42-55 s track does that), mpg123 a few frames back, FFmpeg's Vorbis decoder at
    a block size change. Clips near the end, overlapping, a little apart, backwards: each equals the
    whole decode there.
    '.ogx', a name libsndfile does not take, has PyAV (FFmpeg) read the Vorbis stream."""
    settings = settings if encoded == ".ogg" else {}
    path = synth.encode(synth.render(mood, 20.0, seed=seed), tmp_path / f"t{encoded}", **settings)
    whole, sr = sf.read(str(path), dtype="float32")
    whole = whole.mean(axis=1)
    read = tmp_path / f"copy{read_as}"
    read.write_bytes(path.read_bytes())
    # 0.1 s clips 0.113 s apart (each seek a little before where the last read ended), 0.77 s apart
    # (each one a little ahead), then near the end and backwards.
    starts = ([round(i * 0.113, 3) for i in range(60)] + [round(7 + i * 0.77, 2) for i in range(15)]
              + [19.8, 18.9, 19.3, 19.05, 12.5, 0.0])
    clips = decode_segments(read, starts, seconds=0.1, sample_rate=sr)
    for start, clip in zip(starts, clips.samples):
        s = int(round(start * sr))
        assert np.abs(clip - whole[s:s + len(clip)]).max() < 2e-3, (read_as, start)
