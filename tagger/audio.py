"""Clip placement, and decoding of just those clips (never the whole track) to mono float32.

libsndfile (soundfile) reads WAV, AIFF, FLAC, Ogg Vorbis/Opus and MP3 with seeking; PyAV, which ships
its own FFmpeg libraries, reads M4A/MP4 (AAC, ALAC) and whatever libsndfile rejects. No system ffmpeg.
"""
from __future__ import annotations

import math
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tagger.errors import AudioError
from tagger.weights import ClipPlan

# Opus goes to PyAV: libsndfile's Opus seeking decodes from the start (2x slower per track).
SNDFILE_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".aifc"}
# MP3 frames can use bits from earlier frames (the bit reservoir): start decoding this many samples
# early and drop them, or the first milliseconds of a clip are garbage.
MP3_PREROLL = 4 * 1152


@dataclass(frozen=True)
class DecodedClips:
    """Clips of one track: the track's duration, each clip's start (s), samples (n_clips, n_samples)."""

    duration: float
    starts: tuple[float, ...]
    samples: np.ndarray


def clip_offsets(duration: float, plan: ClipPlan) -> list[float]:
    """Start times (s) of the clips to take from a track of `duration` seconds.

    A track shorter than one clip raises AudioError ('too short'). A track shorter than the whole plan
    gets as many whole back-to-back clips as fit, centred on its midpoint (at least one).
    """
    seconds, count = plan.seconds, plan.count
    if not duration or duration < seconds:
        raise AudioError(f"too short: {duration or 0:.1f} s, a clip needs {seconds:g} s")
    fit = min(count, int(math.floor(duration / seconds + 1e-9)))
    if plan.placement == "spread" and count > 1:
        lo, hi = duration * (1 - plan.span) / 2, duration * (1 + plan.span) / 2
        if hi - lo >= count * seconds:
            step = (hi - lo - seconds) / (count - 1)
            return [round(lo + i * step, 4) for i in range(count)]
    elif plan.placement not in ("contiguous", "spread"):
        raise ValueError(f"unknown clip placement {plan.placement!r}")
    first = (duration - fit * seconds) / 2
    return [round(first + i * seconds, 4) for i in range(fit)]


def probe_duration(path: Path) -> float:
    """Duration in seconds from the container, without decoding."""
    path = Path(path)
    _check_readable(path)
    try:
        return _sf_duration(path) if path.suffix.lower() in SNDFILE_SUFFIXES else _av_duration(path)
    except AudioError:
        raise
    except Exception:
        return _av_duration(path)


def load_clips(path: Path, *, plan: ClipPlan, sample_rate: int) -> DecodedClips:
    """Decode the clips `plan` places in `path`, as mono float32 at `sample_rate`."""
    path = Path(path)
    _check_readable(path)
    return _decode(path, plan=plan, starts=None, seconds=plan.seconds, sample_rate=sample_rate)


def decode_segments(path: Path, starts: list[float], *, seconds: float, sample_rate: int) -> DecodedClips:
    """Decode segments at the given start times (used by training for random clip positions)."""
    path = Path(path)
    _check_readable(path)
    return _decode(path, plan=None, starts=starts, seconds=seconds, sample_rate=sample_rate)


def _check_readable(path: Path) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise AudioError("file not found") from None
    except OSError as exc:
        raise AudioError(f"cannot stat: {exc.strerror or exc}") from None
    if size == 0:
        raise AudioError("empty file (0 bytes)")
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except PermissionError:
        raise AudioError("permission denied (cannot read the file)") from None
    except OSError as exc:
        raise AudioError(f"cannot read: {exc.strerror or exc}") from None


def _decode(path: Path, *, plan: ClipPlan | None, starts, seconds: float, sample_rate: int) -> DecodedClips:
    first_error = None
    if path.suffix.lower() in SNDFILE_SUFFIXES:
        try:
            return _decode_sndfile(path, plan=plan, starts=starts, seconds=seconds, sample_rate=sample_rate)
        except AudioError as exc:
            if "too short" in str(exc) or "truncated" in str(exc):
                raise
            first_error = exc
    try:
        return _decode_av(path, plan=plan, starts=starts, seconds=seconds, sample_rate=sample_rate)
    except AudioError as exc:
        if first_error is not None and str(exc).startswith("not a decodable") and not str(
                first_error).startswith("not a decodable"):
            raise first_error from None
        raise


def _to_mono(x: np.ndarray) -> np.ndarray:
    """(n, channels) -> (n,) float32, equal to x.mean(axis=1): numpy's reduction over a short last
    axis is some 20 times slower than adding the columns."""
    return x if x.ndim == 1 else _mean_of([x[:, c] for c in range(x.shape[1])])


def _mean_of(channels: list[np.ndarray]) -> np.ndarray:
    """The element-wise mean of equal-length channels, as float32, summed in order (as numpy's mean)."""
    out = channels[0].astype(np.float32)  # a copy
    for channel in channels[1:]:
        out += channel
    if len(channels) > 1:
        out /= len(channels)
    return out


def _resample(x: np.ndarray, sr: int, target: int, n_out: int) -> np.ndarray:
    import soxr

    if sr != target:
        x = soxr.resample(x, sr, target, quality="HQ")
    if len(x) < n_out:
        x = np.pad(x, (0, n_out - len(x)))
    return np.ascontiguousarray(x[:n_out], dtype=np.float32)


def _sf_duration(path: Path) -> float:
    import soundfile as sf

    try:
        with _quiet_stderr():
            info = sf.info(str(path))
    except Exception as exc:
        raise AudioError(f"not a decodable audio file ({_first_line(exc)})") from None
    return info.frames / info.samplerate if info.samplerate else 0.0


@contextmanager
def _quiet_stderr():
    """Silence what C decoders print straight to file descriptor 2 (mpg123's 'Note: ...' lines);
    moodtag reports each failure itself, as one line."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _decode_sndfile(path: Path, *, plan, starts, seconds, sample_rate) -> DecodedClips:
    with _quiet_stderr():
        return _decode_sndfile_quiet(path, plan=plan, starts=starts, seconds=seconds, sample_rate=sample_rate)


def _decode_sndfile_quiet(path: Path, *, plan, starts, seconds, sample_rate) -> DecodedClips:
    import soundfile as sf

    try:
        fh = sf.SoundFile(str(path))
    except Exception as exc:
        raise AudioError(f"not a decodable audio file ({_first_line(exc)})") from None
    with fh:
        sr = fh.samplerate
        duration = fh.frames / sr if sr else 0.0
        if starts is None:
            starts = clip_offsets(duration, plan)
        need = int(round(seconds * sr))
        n_out = int(round(seconds * sample_rate))
        preroll = MP3_PREROLL if fh.format == "MP3" else 0
        out = np.empty((len(starts), n_out), dtype=np.float32)
        for i, start in enumerate(starts):
            first = int(round(start * sr))
            skip = min(preroll, first)
            try:
                fh.seek(first - skip)
                data = fh.read(need + skip, dtype="float32", always_2d=True)
            except Exception as exc:
                raise AudioError(f"cannot decode at {start:.1f} s, corrupt or truncated file ({_first_line(exc)})") from None
            data = _to_mono(data[skip:])
            if len(data) < need * 0.98:
                raise AudioError(f"truncated: audio ends before {start + seconds:.1f} s "
                                 f"although the header says {duration:.1f} s")
            out[i] = _resample(data, sr, sample_rate, n_out)
    return DecodedClips(duration=duration, starts=tuple(float(s) for s in starts), samples=out)


def _open_av(path: Path):
    import av

    try:
        container = av.open(str(path))
    except Exception as exc:
        raise AudioError(f"not a decodable audio file ({_first_line(exc)})") from None
    audio = [s for s in container.streams if s.type == "audio"]
    if not audio:
        container.close()
        raise AudioError("no audio stream in the file")
    return container, audio[0]


def _av_stream_duration(container, stream) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000
    return 0.0


def _av_duration(path: Path) -> float:
    container, stream = _open_av(path)
    with container:
        return _av_stream_duration(container, stream)


# Planar sample formats read straight from the frame's planes: (dtype, full scale).
_PLANAR = {"fltp": (np.float32, 1.0), "s16p": (np.int16, 32768.0), "s32p": (np.int32, 2147483648.0)}


def _frame_samples(frame) -> np.ndarray:
    """An AudioFrame -> mono float32, whatever its sample format and layout."""
    channels = len(frame.layout.channels)
    planar = _PLANAR.get(frame.format.name)
    if planar is not None:  # to_ndarray() stacks the planes first: that costs more than decoding AAC
        dtype, scale = planar
        planes = [np.frombuffer(p, dtype=dtype, count=frame.samples).astype(np.float32)
                  for p in frame.planes[:channels]]
        if scale != 1.0:
            for plane in planes:
                plane /= scale
        return _mean_of(planes)
    arr = frame.to_ndarray()
    if arr.dtype == np.int16:
        arr = arr.astype(np.float32) / 32768.0
    elif arr.dtype == np.int32:
        arr = arr.astype(np.float32) / 2147483648.0
    elif arr.dtype == np.uint8:
        arr = (arr.astype(np.float32) - 128.0) / 128.0
    else:
        arr = arr.astype(np.float32, copy=False)
    if frame.format.is_planar:
        return _mean_of(list(arr))
    flat = arr.reshape(-1)
    return _to_mono(flat.reshape(-1, channels)) if channels > 1 else flat


def _decode_av(path: Path, *, plan, starts, seconds, sample_rate) -> DecodedClips:
    container, stream = _open_av(path)
    with container:
        sr = stream.codec_context.sample_rate or stream.rate
        duration = _av_stream_duration(container, stream)
        if starts is None:
            starts = clip_offsets(duration, plan)
        need = int(round(seconds * sr))
        n_out = int(round(seconds * sample_rate))
        out = np.empty((len(starts), n_out), dtype=np.float32)
        for i, start in enumerate(starts):
            try:
                data = _av_read_at(container, stream, start, need, sr)
            except AudioError:
                raise
            except Exception as exc:
                raise AudioError(f"cannot decode at {start:.1f} s, corrupt or truncated file ({_first_line(exc)})") from None
            if len(data) < need * 0.98:
                raise AudioError(f"truncated: audio ends before {start + seconds:.1f} s "
                                 f"although the header says {duration:.1f} s")
            out[i] = _resample(data, sr, sample_rate, n_out)
    return DecodedClips(duration=duration, starts=tuple(float(s) for s in starts), samples=out)


def _av_read_at(container, stream, start: float, need: int, sr: int) -> np.ndarray:
    """Seek to just before `start` and decode `need` samples from exactly `start` on."""
    target = int(round(start * sr))
    if start > 0:
        container.seek(int(max(0.0, start - 0.5) / stream.time_base), stream=stream, backward=True)
    else:
        container.seek(0, stream=stream, backward=True)
    pieces, origin, have = [], None, 0
    for frame in container.decode(stream):
        samples = _frame_samples(frame)
        if origin is None:
            t = frame.time if frame.time is not None else 0.0
            origin = int(round(t * sr))
            if origin > target:  # the decoder started after our start (should not happen): pad
                pieces.append(np.zeros(origin - target, dtype=np.float32))
                have, origin = origin - target, target
        pieces.append(samples)
        have += len(samples)
        if origin + have >= target + need:
            break
    if origin is None:
        return np.zeros(0, dtype=np.float32)
    data = np.concatenate(pieces)
    return data[target - origin: target - origin + need]


def _first_line(exc: BaseException) -> str:
    strerror = getattr(exc, "strerror", None)
    if strerror and type(exc).__module__.startswith("av"):
        return strerror  # FFmpeg's reason without its errno and the file name
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
