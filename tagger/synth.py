"""Music-like test signals, encoded by real codecs: for tests, benchmarks and the bundled example.

`render(mood, seconds)` makes a stereo track (calm: slow soft chords; exciting: fast drums and bright
synths); `encode(samples, path)` writes it in the format its suffix names, through libsndfile
(WAV, AIFF, FLAC, Ogg Vorbis, Opus, MP3: LAME with a gapless LAME/Xing header) or PyAV's FFmpeg
encoders (M4A as AAC, or ALAC), at a bitrate or Vorbis quality if one is given.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

SAMPLE_RATE = 44100
FORMATS = ("mp3", "flac", "ogg", "opus", "m4a", "alac.m4a", "wav", "aiff")
# One piece of audio in each container it is compared in (tests/test_containers.py,
# benchmarks/container_agreement.py): name -> (file suffix, encode() settings). Lossless ones first.
CONTAINERS = {
    "wav": (".wav", {}), "flac": (".flac", {}), "aiff": (".aiff", {}), "alac": (".alac.m4a", {}),
    "mp3-320k": (".mp3", {"bitrate": 320_000}), "aac-256k": (".m4a", {"bitrate": 256_000}),
    "opus-160k": (".opus", {"bitrate": 160_000}), "vorbis-q6": (".ogg", {"quality": 6}),
}
LOSSLESS = ("wav", "flac", "aiff", "alac")
_SNDFILE = {  # suffix -> (libsndfile format, subtype, sample rate)
    ".wav": ("WAV", "PCM_16", SAMPLE_RATE),
    ".aiff": ("AIFF", "PCM_16", SAMPLE_RATE),
    ".aif": ("AIFF", "PCM_16", SAMPLE_RATE),
    ".flac": ("FLAC", "PCM_16", SAMPLE_RATE),
    ".ogg": ("OGG", "VORBIS", SAMPLE_RATE),
    ".oga": ("OGG", "VORBIS", SAMPLE_RATE),
    ".opus": ("OGG", "OPUS", 48000),
    ".mp3": ("MP3", "MPEG_LAYER_III", SAMPLE_RATE),
}


def render(mood: str, seconds: float, *, seed: int = 0, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A (n, 2) float32 track in [-1, 1]: 'calm' or 'exciting' (any other mood: a plain tone)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    out = np.zeros(n, dtype=np.float64)
    root = 110.0 * 2 ** (rng.integers(0, 12) / 12)
    if mood == "calm":
        bpm = rng.uniform(55, 75)
        chord_len = 4 * 60 / bpm
        for k, ratio in enumerate((1.0, 1.25, 1.5, 2.0)):
            wobble = 1 + 0.002 * np.sin(2 * np.pi * 0.2 * t + k)
            out += 0.12 * np.sin(2 * np.pi * root * ratio * wobble * t)
        out *= 0.6 + 0.4 * np.sin(np.pi * (t % chord_len) / chord_len) ** 2
    elif mood == "exciting":
        bpm = rng.uniform(140, 175)
        beat = 60 / bpm
        phase = (t % beat) / beat
        kick = np.sin(2 * np.pi * 55 * t) * np.exp(-phase * 12)
        hat_phase = (t % (beat / 2)) / (beat / 2)
        hats = rng.standard_normal(n) * np.exp(-hat_phase * 40) * 0.25
        step = np.floor(t / (beat / 2)).astype(int) % 4
        freq = root * 2 * np.array([1.0, 1.5, 1.25, 2.0])[step]
        saw = 2 * ((freq * t) % 1.0) - 1
        out = 0.5 * kick + hats + 0.25 * saw * np.exp(-hat_phase * 3)
    else:
        out = 0.3 * np.sin(2 * np.pi * 440 * t)
    out /= max(1e-9, np.abs(out).max()) / 0.8
    fade = np.minimum(1, np.minimum(t, t[-1] - t) / 0.05) if n else out
    out *= fade
    stereo = np.stack([out, np.roll(out, 7)], axis=1)
    return stereo.astype(np.float32)


def encode(samples: np.ndarray, path: Path, *, sample_rate: int = SAMPLE_RATE, bitrate: int | None = None,
           quality: float | None = None) -> Path:
    """Write (n,) or (n, channels) samples to `path`, float or int16 (written as they are by WAV, AIFF,
    FLAC and ALAC: the same PCM in each); the suffix picks the codec ('.alac.m4a' means ALAC in M4A,
    '.m4a' AAC).

    `bitrate` (bit/s, all channels) sets MP3 (constant bitrate), AAC and Opus; `quality` sets Vorbis
    on oggenc's scale (-1 to 10; 6 is about 192 kbit/s). Unset: each encoder's default."""
    path = Path(path)
    name = path.name.lower()
    suffix = path.suffix.lower()
    if name.endswith(".alac.m4a"):
        _check_settings(suffix, bitrate, quality, allowed=())
        return _encode_av(samples, path, codec="alac", sample_rate=sample_rate)
    if suffix in (".m4a", ".mp4"):
        _check_settings(suffix, bitrate, quality, allowed=("bitrate",))
        return _encode_av(samples, path, codec="aac", sample_rate=sample_rate, bitrate=bitrate)
    if suffix not in _SNDFILE:
        raise ValueError(f"cannot encode {suffix!r}")
    import soundfile as sf

    fmt, subtype, rate = _SNDFILE[suffix]
    samples = np.asarray(samples)
    if samples.dtype != np.int16 or subtype != "PCM_16" or rate != sample_rate:
        samples = _as_float(samples)
    if rate != sample_rate:
        import soxr

        samples = soxr.resample(samples, sample_rate, rate).astype(np.float32)
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    # libsndfile's 'compression level' (0 best .. 1 smallest) is what sets each of its lossy encoders.
    level, mode = None, None
    if subtype == "MPEG_LAYER_III":
        _check_settings(suffix, bitrate, quality, allowed=("bitrate",))
        if bitrate is not None:  # LAME at 44.1/48 kHz: 320 - level * 288 kbit/s, constant
            level, mode = min(1.0, max(0.0, (320_000 - bitrate) / 288_000)), "CONSTANT"
    elif subtype == "OPUS":
        _check_settings(suffix, bitrate, quality, allowed=("bitrate",))
        if bitrate is not None:  # libopus: (6 + (1 - level) * 250) kbit/s per channel
            level = min(1.0, max(0.0, 1 - (bitrate / channels - 6000) / 250_000))
    elif subtype == "VORBIS":
        _check_settings(suffix, bitrate, quality, allowed=("quality",))
        if quality is not None:  # libvorbis VBR quality (oggenc -q / 10) = 1 - level
            level = min(1.0, max(0.0, 1 - quality / 10))
    else:
        _check_settings(suffix, bitrate, quality, allowed=())
    # Written in blocks: libsndfile's Vorbis encoder crashes on one very large write.
    with sf.SoundFile(str(path), "w", rate, channels, format=fmt, subtype=subtype,
                      compression_level=level, bitrate_mode=mode) as fh:
        for i in range(0, len(samples), 16384):
            fh.write(samples[i:i + 16384])
    return path


def _check_settings(suffix: str, bitrate, quality, *, allowed: tuple[str, ...]) -> None:
    for name, value in (("bitrate", bitrate), ("quality", quality)):
        if value is not None and name not in allowed:
            raise ValueError(f"{suffix} takes no {name}")


def _encode_av(samples: np.ndarray, path: Path, *, codec: str, sample_rate: int, bitrate: int | None = None) -> Path:
    import av

    x = np.asarray(samples)
    x = x if x.dtype == np.int16 and codec == "alac" else _as_float(x)
    if x.ndim == 1:
        x = x[:, None]
    layout = "stereo" if x.shape[1] == 2 else "mono"
    with av.open(str(path), "w", format="ipod") as container:
        stream = container.add_stream(codec, rate=sample_rate, layout=layout)
        if bitrate is not None:
            stream.codec_context.bit_rate = bitrate
        fmt = "s16p" if codec == "alac" else "fltp"
        planar = x.T.copy()
        if fmt == "s16p" and planar.dtype != np.int16:
            planar = (np.clip(planar, -1, 1) * 32767).astype(np.int16)
        block = 4096
        for i in range(0, planar.shape[1], block):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planar[:, i:i + block]),
                                               format=fmt, layout=layout)
            frame.sample_rate = sample_rate
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def decode_whole(path: Path, *, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """All of a file (PyAV; an encoder's delay or priming dropped, as for a clip) as (n, channels) float32 at
    `sample_rate`: real music to encode again in other containers."""
    import av
    import soxr

    with av.open(str(Path(path))) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        resampler = av.AudioResampler(format="flt", layout=stream.codec_context.layout.name, rate=rate)
        pieces = [f.to_ndarray().reshape(-1, stream.codec_context.channels)
                  for frame in container.decode(stream) for f in resampler.resample(frame)]
        pieces += [f.to_ndarray().reshape(-1, stream.codec_context.channels) for f in resampler.resample(None)]
    x = np.concatenate(pieces).astype(np.float32)
    return soxr.resample(x, rate, sample_rate).astype(np.float32) if rate != sample_rate else x


def as_pcm16(x: np.ndarray) -> np.ndarray:
    """Float samples as int16, scaled under full scale first if they pass 0.98 (a lossy decode
    overshoots): what encode() writes unchanged into every lossless container."""
    peak = float(np.abs(x).max(initial=0.0))
    if peak > 0.98:
        x = x * (0.98 / peak)
    return np.round(np.asarray(x, dtype=np.float64) * 32768).astype(np.int16)


def _as_float(x: np.ndarray) -> np.ndarray:
    """int16 -> float32 / 32768 (as libsndfile and FFmpeg read 16-bit PCM); float -> float32."""
    x = np.asarray(x)
    return x.astype(np.float32) / 32768 if x.dtype == np.int16 else x.astype(np.float32, copy=False)


def make_track(path: Path, mood: str, seconds: float, *, seed: int = 0) -> Path:
    """Render and encode one track."""
    return encode(render(mood, seconds, seed=seed), path)
