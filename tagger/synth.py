"""Music-like test signals, encoded by real codecs: for tests, benchmarks and the bundled example.

`render(mood, seconds)` makes a stereo track (calm: slow soft chords; exciting: fast drums and bright
synths); `encode(samples, path)` writes it in the format its suffix names, through libsndfile
(WAV, AIFF, FLAC, Ogg Vorbis, Opus, MP3) or PyAV's FFmpeg encoders (M4A as AAC, or ALAC).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

SAMPLE_RATE = 44100
FORMATS = ("mp3", "flac", "ogg", "opus", "m4a", "alac.m4a", "wav", "aiff")
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


def encode(samples: np.ndarray, path: Path, *, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write (n,) or (n, channels) float samples to `path`; the suffix picks the codec
    ('.alac.m4a' means ALAC in M4A, '.m4a' AAC)."""
    path = Path(path)
    name = path.name.lower()
    suffix = path.suffix.lower()
    if name.endswith(".alac.m4a"):
        return _encode_av(samples, path, codec="alac", sample_rate=sample_rate)
    if suffix in (".m4a", ".mp4"):
        return _encode_av(samples, path, codec="aac", sample_rate=sample_rate)
    if suffix not in _SNDFILE:
        raise ValueError(f"cannot encode {suffix!r}")
    import soundfile as sf

    fmt, subtype, rate = _SNDFILE[suffix]
    if rate != sample_rate:
        import soxr

        samples = soxr.resample(samples, sample_rate, rate)
    samples = np.asarray(samples, dtype=np.float32)
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    # Written in blocks: libsndfile's Vorbis encoder crashes on one very large write.
    with sf.SoundFile(str(path), "w", rate, channels, format=fmt, subtype=subtype) as fh:
        for i in range(0, len(samples), 16384):
            fh.write(samples[i:i + 16384])
    return path


def _encode_av(samples: np.ndarray, path: Path, *, codec: str, sample_rate: int) -> Path:
    import av

    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 1:
        x = x[:, None]
    layout = "stereo" if x.shape[1] == 2 else "mono"
    with av.open(str(path), "w", format="ipod") as container:
        stream = container.add_stream(codec, rate=sample_rate, layout=layout)
        fmt = "s16p" if codec == "alac" else "fltp"
        planar = x.T.copy()
        if fmt == "s16p":
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


def make_track(path: Path, mood: str, seconds: float, *, seed: int = 0) -> Path:
    """Render and encode one track."""
    return encode(render(mood, seconds, seed=seed), path)
