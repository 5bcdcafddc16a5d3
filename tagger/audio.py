"""Clip placement, and decoding of just those clips (never the whole track) to mono float32.

libsndfile (soundfile) reads WAV, AIFF, FLAC, Ogg Vorbis/Opus and MP3 with seeking; PyAV, which ships
its own FFmpeg libraries, reads M4A/MP4 (AAC, ALAC), Opus and whatever libsndfile rejects. No system ffmpeg.

Every decoder puts time 0 at the first sample a gapless player would play: libsndfile's mpg123 drops
the MP3 encoder delay and padding that a LAME/Xing header gives, libsndfile and FFmpeg drop the Opus
pre-skip, FFmpeg applies an M4A's edit list (or iTunSMPB) and an MP3's LAME header. Here a clip at
`start` s is read at FFmpeg's timestamp `stream.start_time + start` (an MP3's start_time is its
encoder delay), an Ogg Opus duration from FFmpeg has its pre-skip taken off, and a chained Ogg file
(streams one after the other) is read link by link.
"""
from __future__ import annotations

import errno
import math
import mmap
import os
import re
import stat
import struct
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tagger.errors import BROKEN_LINK, AudioError
from tagger.iff import overrun, read_chunk
from tagger.stages import stage
from tagger.weights import ClipPlan

# Opus goes to PyAV: libsndfile's Opus seeking decodes from the start (2x slower per track).
SNDFILE_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".aifc"}
# After a seek, libsndfile's first samples can be wrong: MP3 frames use bits of earlier frames (the bit
# reservoir), a Vorbis block overlaps the one before it. Decode this many samples early and drop them.
SNDFILE_PREROLL = {"MP3": 4 * 1152, "OGG": 8192}
# PyAV seeks this far before a clip (AAC and Opus frames overlap their predecessors too).
AV_PREROLL_SECONDS = 0.5
# Samples beyond this (full scale is 1.0; 80 dB above it) are a float file's damage or a wrong scale.
FLOAT_PEAK_LIMIT = 1e4
# A float sample beyond SPIKE_FLOOR and this many times (60 dB) above the clip's level (SPIKE_PERCENTILE
# of |x|) is damage, as a NaN is: a flipped exponent bit multiplies a sample by 2**16 or more. Music's
# loudest sample stays within 12 dB of that level (at most 11.2 dB over 1,005 clips of the dev sets).
SPIKE_RATIO = 1000.0
# The level is taken below the loudest 1% of a clip: ten times the damage a clip may hold (1 in 1,000),
# so heavier damage is counted, and reported as 'corrupt', rather than taken for the clip's level.
SPIKE_PERCENTILE = 99.0
# And beyond this (40 dB above full scale) whatever the clip's level: a lossy decoder's overshoot of a
# sparse clip (a few loud hits in room tone, its 99th percentile near 0) or a hot float master's +3 dBFS
# are music, not damage.
SPIKE_FLOOR = 100.0
# Why FFmpeg cannot read an audio stream whose codec it has no decoder for (an unknown WAV format tag).
NO_DECODER = "no decoder for its audio"
# libsndfile reports SF_COUNT_MAX frames when it cannot find the end (a chained Ogg file, for one).
SF_UNKNOWN_FRAMES = 2 ** 62
# The container FFmpeg should find for each suffix; another one (or a suffix not listed) means the
# name and the content disagree, and the file must show that its audio decodes before it is trusted.
AV_FORMATS = {".m4a": "mov,mp4,m4a,3gp,3g2,mj2", ".mp4": "mov,mp4,m4a,3gp,3g2,mj2", ".opus": "ogg",
              ".spx": "ogg", ".ogg": "ogg", ".oga": "ogg", ".mp3": "mp3", ".flac": "flac", ".wav": "wav",
              ".aif": "aiff", ".aiff": "aiff", ".aifc": "aiff"}
# OS errors of the disk under a file, not of its content: a failing drive (EIO), a USB drive unplugged
# (ENODEV; ENOTCONN or ECONNABORTED from a FUSE file system whose daemon is gone). A decoder failing with
# one says 'cannot read: CAUSE', as _check_readable does, and a scan tries the file again
# (tagger.errors.unreadable).
DISK_ERRNOS = (errno.EIO, errno.ENOTCONN, errno.ECONNABORTED, errno.ENODEV)
OGG_PAGE = struct.Struct("<4sBBqIIIB")  # capture, version, flags, granule, serial, sequence, crc, segments
OGG_BOS = 0x02
OGG_EOS = 0x04


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
        raise AudioError(f"too short: {short_duration(duration or 0, seconds)} s, a clip needs {seconds:g} s",
                         duration=duration or None)
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


def short_duration(duration: float, limit: float) -> str:
    """`duration` (s), shorter than `limit`, as text that does not read as `limit` or more: one decimal,
    more where rounding would make it look long enough (4.99 s, never '5.0 s')."""
    for digits in (1, 2, 3):
        text = f"{duration:.{digits}f}"
        if float(text) < limit:
            return text
    return f"{math.floor(duration * 1000) / 1000:.3f}"


def probe_duration(path: Path) -> float:
    """Duration in seconds, as load_clips places clips by (from the container, without decoding)."""
    path = Path(path)
    head = _check_readable(path)
    with _quiet_stderr(), _disk_errors(path), _open_track(path, head) as track:
        return track.duration


def load_clips(path: Path, *, plan: ClipPlan, sample_rate: int) -> DecodedClips:
    """Decode the clips `plan` places in `path`, as mono float32 at `sample_rate`."""
    path = Path(path)
    head = _check_readable(path)
    return _decode(path, head, plan=plan, starts=None, seconds=plan.seconds, sample_rate=sample_rate)


def decode_segments(path: Path, starts: list[float], *, seconds: float, sample_rate: int) -> DecodedClips:
    """Decode segments at the given start times (used by training for random clip positions)."""
    path = Path(path)
    head = _check_readable(path)
    return _decode(path, head, plan=None, starts=starts, seconds=seconds, sample_rate=sample_rate)


def _check_readable(path: Path) -> bytes:
    """The file's first bytes; AudioError if it is missing, empty or unreadable."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise AudioError(BROKEN_LINK if os.path.islink(path) else "file not found") from None
    except OSError as exc:
        raise AudioError(f"cannot stat: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):  # a FIFO would block the first read, /dev/zero never end
        from tagger.discover import file_kind

        raise AudioError(f"not a regular file ({file_kind(st.st_mode)})")
    size = st.st_size
    if size == 0:
        raise AudioError("empty file (0 bytes)")
    try:
        with open(path, "rb") as fh:
            return fh.read(OGG_PAGE.size)
    except PermissionError:
        raise AudioError("permission denied (cannot read the file)") from None
    except OSError as exc:
        raise AudioError(f"cannot read: {exc.strerror or exc}") from None


def _decode(path: Path, head: bytes, *, plan: ClipPlan | None, starts, seconds: float,
            sample_rate: int) -> DecodedClips:
    with stage("decode"), _quiet_stderr(), _disk_errors(path), _open_track(path, head) as track:
        if starts is None:
            starts = clip_offsets(track.duration, plan)
        n_out = int(round(seconds * sample_rate))
        out = np.empty((len(starts), n_out), dtype=np.float32)
        for i, start in enumerate(starts):
            out[i] = track.clip(start, seconds, sample_rate)
        return DecodedClips(duration=track.duration, starts=tuple(float(s) for s in starts), samples=out)


def _sane(samples: np.ndarray) -> np.ndarray:
    """One clip's decoded `samples` made fit for analysis (in place), before the resampler spreads a bad
    one over its neighbours. A float WAV or AIFF can hold any float: a NaN or an infinity (a damaged
    file) would turn every spectrum of the clip into NaN, and a lone huge value (a flipped exponent bit:
    1e5, 1e20) would set the clip's scale, its music 100 dB and more below it. Such samples (_damaged)
    are mended from their neighbours (_mend; AudioError if they are more than 1 in 1,000); a clip far too loud as a whole is then
    scaled down to full scale, which the default model's descriptors, read relative to the clip's
    loudest bin, do not see. A clip within SPIKE_FLOOR (every integer PCM file, a lossy decoder's overshoot)
    is left as it is."""
    high, low = float(samples.max(initial=0.0)), float(samples.min(initial=0.0))
    if math.isfinite(high) and math.isfinite(low) and max(high, -low) <= SPIKE_FLOOR:
        return samples
    bad = _damaged(samples)
    n_bad = int(bad.sum())
    if n_bad > samples.size // 1000:
        raise AudioError(f"corrupt: {n_bad:,} of a clip's {samples.size:,} samples are damaged (NaN, infinite, "
                         "or 60 dB above the rest of the clip)")
    _mend(samples, bad)
    peak = float(np.abs(samples).max(initial=0.0))
    if peak > FLOAT_PEAK_LIMIT:
        samples *= np.float32(1.0 / peak)
    return samples


def _mend(samples: np.ndarray, bad: np.ndarray) -> None:
    """Each damaged sample (`bad`) of `samples` (in place) drawn on the line between its channel's good
    neighbours: set to 0 instead, one sample in a quiet or tonal passage is a click, which moved a
    clip of synthetic tones from P(calm) 0.28 to 0.999; 0 where a channel has no good sample."""
    pairs = [(samples, bad)] if samples.ndim == 1 else zip(samples.T, bad.T)  # views: written in place
    for channel, damaged in pairs:
        if damaged.any():
            good = np.flatnonzero(~damaged)
            where = np.flatnonzero(damaged)
            channel[where] = np.interp(where, good, channel[good]) if len(good) else 0.0


def _damaged(samples: np.ndarray) -> np.ndarray:
    """Which of a clip's samples are damage: NaN or infinite, or beyond SPIKE_FLOOR and SPIKE_RATIO times
    above the clip's level. Relative to that level, a file scaled loud as a whole (x50, x1e6) has none."""
    finite = np.isfinite(samples)
    size = np.abs(np.where(finite, samples, np.float32(0.0)))
    level = float(np.percentile(size[finite], SPIKE_PERCENTILE)) if finite.any() else 0.0
    return ~finite | (size > max(SPIKE_FLOOR, SPIKE_RATIO * level))


@contextmanager
def _open_track(path: Path, head: bytes):
    """The opened track of `path`: a chained Ogg file link by link, else one file with one decoder."""
    if head[4:8] == b"ftyp":  # before the decoder: an MP4 cut before its index is not a decodable file to it
        with stage("length check"):
            _check_boxes_end(path)
    links = _ogg_links(path) if head.startswith(b"OggS") else None
    if links is None:
        try:
            track = _open_source(str(path), path.suffix.lower(), _sniffed_suffix(head, path.suffix.lower()))
        except AudioError:
            # a FLAC cut inside its metadata (a large cover): said so where it starts as a FLAC file does
            # (its STREAMINFO block first, 34 bytes); garbage after 'fLaC' stays 'not a decodable audio file'
            if head.startswith(b"fLaC") and head[4] & 0x7F == 0 and head[5:8] == b"\0\0\x22":
                _check_flac_or_mpeg_ends(path)
            raise
    else:
        track = _ChainedTrack(path, links)
    try:
        with stage("length check"):
            _check_ends(path, head, track.duration)
        yield track
    except BaseException:
        try:
            track.close()
        except Exception:  # a drive gone: libsndfile's sf_close fails too
            pass  # the error in flight is the track's failure, not the close's
        raise
    try:
        track.close()
    except (OSError, RuntimeError):  # RuntimeError: libsndfile's
        pass  # the file was only read, and its clips are decoded: a close that fails loses nothing


def _check_ends(path: Path, head: bytes, duration: float) -> None:
    """AudioError ('truncated') if the file ends before its own headers say its audio does (a
    download in progress, a copy cut short): decoders read what is there without a word. Run after
    the decoder took the file: garbage stays 'not a decodable audio file'."""
    if head.startswith(b"OggS"):
        _check_ogg_ends(path, duration)
    elif head[:4] in (b"RIFF", b"RIFX", b"FORM"):
        _check_chunks_end(path, duration)
    elif head.startswith((b"fLaC", b"ID3")) or _mpeg_frame(head, 0) is not None:
        _check_flac_or_mpeg_ends(path)


def _sniffed_suffix(head: bytes, suffix: str) -> str:
    """The suffix to pick a decoder by: `suffix`, unless the file's first bytes `head` show another
    container (an M4A saved as .mp3: libsndfile's mpg123 takes chance bytes of its MP4 data for MPEG
    frames, and the track fails as 'truncated'), then that container's usual suffix."""
    if head[4:8] == b"ftyp":
        kind = ".m4a"
    elif head.startswith(b"OggS"):
        kind = ".ogg"
    elif head.startswith(b"fLaC"):
        kind = ".flac"
    elif head[:4] in (b"RIFF", b"RIFX") and head[8:12] == b"WAVE":
        kind = ".wav"
    elif head.startswith(b"FORM") and head[8:12] in (b"AIFF", b"AIFC"):
        kind = ".aiff"
    elif _mpeg_frame(head, 0) is not None:
        kind = ".mp3"
    else:
        return suffix  # the bytes do not tell (an ID3 tag, which any stream may follow; raw data)
    return suffix if AV_FORMATS.get(suffix) == AV_FORMATS[kind] else kind


def _open_source(source, suffix: str, route: str | None = None):
    """libsndfile for its formats, PyAV for the rest and for what libsndfile rejects. `source` is a
    path or a file object (one link of a chained Ogg file); `route`: the suffix its first bytes call
    for (_sniffed_suffix), if not `suffix`, which FFmpeg's container is still checked against."""
    if (route or suffix) not in SNDFILE_SUFFIXES:
        return _AvTrack(source, suffix, verify=False)
    try:
        track = _SndfileTrack(source)
    except AudioError as first_error:
        try:
            return _AvTrack(source, suffix, verify=True)
        except AudioError as exc:
            if str(exc).startswith("not a decodable") and not str(first_error).startswith("not a decodable"):
                raise first_error from None
            ours, theirs = _undecodable_reason(exc), _undecodable_reason(first_error)
            if ours and ours.startswith(NO_DECODER) and theirs:  # FFmpeg names the codec, libsndfile its objection
                raise AudioError(f"not a decodable audio file ({ours}; libsndfile: {theirs})") from None
            raise
    if track.fh.frames == 0 and _riff_size_unwritten(source):  # FFmpeg reads its audio to the file's end
        track.close()
        return _AvTrack(source, suffix, verify=True)
    if track.fh.format == "MP3" and isinstance(source, (str, os.PathLike)):
        try:
            index = _mp3_vbr_index(source)
        except (OSError, ValueError):
            index = None  # libsndfile's reading, as before
        if index is not None:  # libsndfile's length is a guess from the first frame, and it reads no further
            track.close()
            return _MpegFramesTrack(source, index)
    return track


def _riff_size_unwritten(source) -> bool:
    """Whether `source` is a WAV or AIFF file whose audio chunk declares 0 bytes with its audio after it
    (a recorder stopped before it finished the header: tagger.iff). libsndfile reads no audio in it,
    FFmpeg reads to the file's end, as for a size left unknown (0xFFFFFFFF, which libsndfile reads)."""
    if not isinstance(source, (str, os.PathLike)):
        return False
    with open(source, "rb") as fh:
        found = overrun(fh, within_form=False)
    return found is not None and found.audio and found.declared == 0


def _wav_codec(source) -> str:
    """What a WAV file's 'fmt ' chunk says its audio is (': WAV format tag 0x1234, 16 bits per sample'),
    to name a codec FFmpeg has no decoder for; '' for any other file."""
    if not isinstance(source, (str, os.PathLike)):
        return ""
    with open(source, "rb") as fh:
        fmt = read_chunk(fh, b"fmt ", 16) if fh.read(4) == b"RIFF" else None
    if fmt is None or len(fmt) < 16:
        return ""
    tag, bits = struct.unpack_from("<H", fmt)[0], struct.unpack_from("<H", fmt, 14)[0]
    return f": WAV format tag 0x{tag:04X}, {bits} bits per sample"


@contextmanager
def _disk_errors(path: Path):
    """An error of the disk (DISK_ERRNOS) that a read of `path` raises as 'cannot read: CAUSE'."""
    try:
        yield
    except OSError as exc:
        failure = _disk_failure(exc, path)
        if failure is None:
            raise
        raise failure from None


def _disk_failure(exc: BaseException, source) -> AudioError | None:
    """AudioError 'cannot read: CAUSE' if a decoder's failure `exc` on `source` (a path or a file object)
    is the disk's (DISK_ERRNOS), else None. FFmpeg says EIO of a file's data cut short too: its EIO is
    the disk's only where reading `source` (a path) fails as well. libsndfile names no OS error at all
    ('System error.', 'Internal psf_fseek() failed.' from a drive pulled out), and FFmpeg's MP4 demuxer
    calls a share's EIO 'Invalid data found': a decoder's other failures are the disk's where reading
    `source` fails with a disk error (the file read once more, only after a failure)."""
    named = isinstance(exc, OSError) and exc.errno in DISK_ERRNOS
    if type(exc).__module__.startswith(("soundfile", "av")) and not (named and exc.errno != errno.EIO):
        exc = _read_error(source)
        named = exc is not None and exc.errno in DISK_ERRNOS
    if not named:
        return None
    return AudioError(f"cannot read: {exc.strerror or exc}")


def _read_error(source) -> OSError | None:
    """The OS error reading all of the file at `source` raises; None if it reads (or is not a path)."""
    if not isinstance(source, (str, os.PathLike)):
        return None
    try:
        with open(source, "rb") as fh:
            while fh.read(1 << 20):
                pass
    except OSError as exc:
        return exc
    return None


def _undecodable_reason(error: AudioError) -> str | None:
    """The REASON of 'not a decodable audio file (REASON)'; None for another message."""
    text, prefix = str(error), "not a decodable audio file ("
    return text[len(prefix):-1] if text.startswith(prefix) and text.endswith(")") else None


class _SndfileTrack:
    """One file opened by libsndfile."""

    def __init__(self, source):
        import soundfile as sf

        try:
            self.fh = sf.SoundFile(source)
        except Exception as exc:
            raise _disk_failure(exc, source) or AudioError(f"not a decodable audio file ({_first_line(exc)})") from None
        self.source = source
        self.sr = self.fh.samplerate
        if not self.sr or self.fh.frames >= SF_UNKNOWN_FRAMES:
            self.fh.close()
            raise AudioError("not a decodable audio file (libsndfile cannot tell where its audio ends)")
        self.duration = self.fh.frames / self.sr
        self.preroll = SNDFILE_PREROLL.get(self.fh.format, 0)
        self.position = 0
        # libsndfile cannot tell where it is after a seek into an Ogg stream's last page (its end is
        # trimmed): a seek that would land there goes to a second before the page, and decodes on.
        last_page = _ogg_last_page_seconds(source, self.sr) if self.fh.format == "OGG" else None
        self.safe_frames = None if last_page is None else int((self.duration - last_page - 1.0) * self.sr)

    def clip(self, start: float, seconds: float, sample_rate: int) -> np.ndarray:
        need = int(round(seconds * self.sr))
        first = int(round(start * self.sr))
        skip = min(self.preroll, first)
        if self.safe_frames is not None and first - skip > self.safe_frames:
            skip = first - max(0, self.safe_frames)
        try:
            if self.position and self.fh.format in ("MP3", "OGG"):
                # From where an earlier read left them, libsndfile's Vorbis decoder lands up to a few
                # blocks off after a seek of less than 2 s forward, and mpg123 after one a few frames
                # back; from the start (as when just opened) both seek exactly.
                self.fh.seek(0)
            self.fh.seek(first - skip)
            data = self.fh.read(need + skip, dtype="float32", always_2d=True)
            self.position = first - skip + len(data)
        except Exception as exc:
            raise _disk_failure(exc, self.source) or AudioError(
                f"cannot decode at {start:.1f} s, corrupt or truncated file ({_first_line(exc)})") from None
        data = _to_mono(data[skip:])
        _check_length(data, need, start, seconds, self.duration)
        return _resample(data, self.sr, sample_rate, int(round(seconds * sample_rate)))

    def close(self) -> None:
        self.fh.close()


class _AvTrack:
    """One file opened by PyAV. `verify`: check that its audio decodes before trusting the container
    (libsndfile rejected the file); also done when FFmpeg finds another container than the suffix
    names, or a length under one second or none at all."""

    def __init__(self, source, suffix: str, *, verify: bool):
        import av

        try:
            # metadata_errors: a tag that is not UTF-8 (an old tagger's Latin-1) does not stop the decoding
            self.container = av.open(source, metadata_errors="replace")
        except Exception as exc:
            raise _disk_failure(exc, source) or AudioError(f"not a decodable audio file ({_first_line(exc)})") from None
        self.source = source
        try:
            audio = [s for s in self.container.streams if s.type == "audio"]
            if not audio:
                raise AudioError("not a decodable audio file (no audio stream in it)")
            self.stream = stream = audio[0]
            if stream.codec_context is None:  # FFmpeg has no decoder for its codec (PyAV then opens none)
                raise AudioError(f"not a decodable audio file ({NO_DECODER}{_wav_codec(source)})")
            self.sr = stream.codec_context.sample_rate or stream.rate
            if not self.sr:
                raise AudioError("not a decodable audio file (its audio stream has no sample rate)")
            # FFmpeg's timestamp of the first sample a player plays: an MP3's encoder delay, usually 0.
            self.origin = float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0
            self.duration = _av_stream_duration(self.container, stream)
            self.fresh = True  # nothing read yet: a clip at 0 s is decoded without a seek
            # FFmpeg, too, misplaces what it decodes after a seek into an Ogg stream's last page.
            last_page = _ogg_last_page_seconds(source, self.sr) if self.container.format.name == "ogg" else None
            self.safe_seconds = None if last_page is None else self.duration - last_page - 1.0
            if verify or AV_FORMATS.get(suffix) != self.container.format.name or not self.duration >= 1.0:
                self._verify()
        except Exception:
            self.container.close()
            raise

    def _verify(self) -> None:
        """Decode from the start (all of it if its length is unknown or short, else the first second):
        AudioError unless most packets decode; a length FFmpeg did not know becomes the decoded one."""
        import av

        whole = not self.duration >= 1.0
        packets = errors = samples = 0
        self.fresh = False
        try:
            for packet in self.container.demux(self.stream):
                if packet.size == 0:
                    continue
                packets += 1
                try:
                    samples += sum(frame.samples for frame in self.stream.decode(packet))
                except av.FFmpegError:
                    errors += 1
                if not whole and samples >= self.sr and packets >= 8:
                    break
        except av.FFmpegError as exc:
            failure = _disk_failure(exc, self.source)
            if failure is not None:
                raise failure from None
            errors += 1
        if samples == 0:
            raise AudioError("not a decodable audio file (no audio in it decodes)")
        if errors * 2 > packets:
            raise AudioError(f"not a decodable audio file ({errors} of {packets} audio packets do not decode)")
        if whole:
            self.duration = samples / self.sr

    def clip(self, start: float, seconds: float, sample_rate: int) -> np.ndarray:
        need = int(round(seconds * self.sr))
        try:
            data = self._read_at(start, need)
        except AudioError:
            raise
        except Exception as exc:
            raise _disk_failure(exc, self.source) or AudioError(
                f"cannot decode at {start:.1f} s, corrupt or truncated file ({_first_line(exc)})") from None
        _check_length(data, need, start, seconds, self.duration)
        return _resample(data, self.sr, sample_rate, int(round(seconds * sample_rate)))

    def _read_at(self, start: float, need: int) -> np.ndarray:
        """Decode `need` samples from exactly `start` s on (FFmpeg timestamp origin + start)."""
        container, stream, sr = self.container, self.stream, self.sr
        target = int(round((self.origin + start) * sr))
        from_start = self.fresh and start < AV_PREROLL_SECONDS
        if not from_start:
            # A seek skips an M4A's priming packet, so its first frame would lack its overlap: a clip
            # near 0 s is read from a container that nothing has been read from yet.
            when = start - AV_PREROLL_SECONDS
            if self.safe_seconds is not None:
                when = min(when, self.safe_seconds)
            from_start = when <= 0
            container.seek(int(max(0.0, self.origin + when) / stream.time_base), stream=stream, backward=True)
        self.fresh = False
        # Frames are kept as they come and turned into samples once, at the end, and only those that
        # overlap the clip (not the preroll): per frame, the conversion cost more than decoding AAC.
        kept, first, origin, have, expected = [], 0, None, 0, None
        slack = 1 + int(float(stream.time_base) * sr)  # a timestamp's rounding, in samples
        for frame in container.decode(stream):
            if origin is None:
                # Placed by a frame whose timestamp the one before it confirms (from the start of the
                # stream, the first): FFmpeg's Vorbis decoder stamps a frame where the block size
                # changes 448 samples late, and the first frame after a seek can be one of those.
                if frame.time is None:  # no timestamps: take the decoder to be where it was sent
                    origin = target
                else:
                    begin = int(round(frame.time * sr))
                    confirmed = from_start or (expected is not None and abs(begin - expected) <= slack)
                    expected = begin + frame.samples
                    if not confirmed:
                        continue
                    origin = begin
                    if origin > target:  # nothing confirmed before our start (should not happen): pad
                        have, origin = origin - target, target
            end = have + frame.samples  # this frame holds samples origin + have .. origin + end
            if origin + end > target:
                if not kept:
                    first = have
                kept.append(frame)
            have = end
            if origin + have >= target + need:
                break
        if origin is None:
            return np.zeros(0, dtype=np.float32)
        data = _frames_samples(kept)
        if first > target - origin:  # the padded start
            data = np.concatenate([np.zeros(first - (target - origin), dtype=np.float32), data])
            first = target - origin
        return data[target - origin - first: target - origin - first + need]

    def close(self) -> None:
        self.container.close()


class _MpegFramesTrack:
    """A VBR MP3 without a Xing/Info/VBRI header (the frame that gives its frame count and seek table):
    libsndfile and FFmpeg take its length from the first frame's bitrate (48 s for a 120 s track, and
    libsndfile reads no further) and seek by it. Its frames are counted and indexed (_mp3_vbr_index), and
    a clip is decoded by FFmpeg from a few frames before it (the bit reservoir), from that frame's byte."""

    def __init__(self, path, index: _MpegIndex):
        self.raw = open(path, "rb")
        self.index = index
        self.sr = index.sample_rate
        self.duration = len(index.offsets) * index.frame_samples / index.sample_rate

    def clip(self, start: float, seconds: float, sample_rate: int) -> np.ndarray:
        sr, index = self.sr, self.index
        need, target = int(round(seconds * sr)), int(round(start * sr))
        first = max(0, min(target // index.frame_samples, len(index.offsets)) - MP3_PREROLL_FRAMES)
        offset = index.offsets[first] if first < len(index.offsets) else index.end
        frames = _ByteRange(self.raw, offset, index.end - offset)
        try:
            data = self._decode(frames, target - first * index.frame_samples, need)
        except Exception as exc:
            raise _disk_failure(exc, self.raw.name) or AudioError(
                f"cannot decode at {start:.1f} s, corrupt or truncated file ({_first_line(exc)})") from None
        _check_length(data, need, start, seconds, self.duration)
        return _resample(data, sr, sample_rate, int(round(seconds * sample_rate)))

    def _decode(self, source, skip: int, need: int) -> np.ndarray:
        """`need` samples from sample `skip` of the MPEG frames in `source`, placed by their timestamps
        (a first frame the decoder drops for want of its reservoir leaves no gap)."""
        import av

        kept, first, position = [], None, 0
        with av.open(source, format="mp3") as container:
            stream = container.streams.audio[0]
            for frame in _frames_passing_bad_packets(container, stream):
                if frame.time is not None and first is None:  # after that, counted: past junk the
                    position = int(round(frame.time * self.sr))  # demuxer's timestamps leap ahead
                if position + frame.samples > skip:
                    if first is None:
                        first = position
                    kept.append(frame)
                position += frame.samples
                if position >= skip + need:
                    break
        if first is None:
            return np.zeros(0, dtype=np.float32)
        data = _frames_samples(kept)
        if first > skip:
            data = np.concatenate([np.zeros(first - skip, dtype=np.float32), data])
            first = skip
        return data[skip - first: skip - first + need]

    def close(self) -> None:
        self.raw.close()


def _frames_passing_bad_packets(container, stream):
    """The decoded frames of `stream`, packet by packet, passing over a packet the decoder refuses (junk
    between two MPEG frames that the demuxer took for one), as libsndfile's mpg123 and ffmpeg's own
    tool do; container.decode() raised InvalidDataError there, and the whole clip failed."""
    import av

    for packet in container.demux(stream):
        try:
            yield from packet.decode()  # the empty packet at the end flushes the decoder
        except av.error.InvalidDataError:
            continue


class _ChainedTrack:
    """A chained Ogg file: logical streams one after the other (`cat a.ogg b.ogg`, a stream ripper's
    output). Each link is opened on its own byte range, by the decoder its suffix picks; the track's
    time runs through the links in order."""

    def __init__(self, path: Path, chain: _OggChain):
        self.raw = open(path, "rb")
        self.suffix = path.suffix.lower()
        self.links = links = chain.links
        self.starts, t = [], 0.0
        try:
            for offset, size in links:
                with self._open(offset, size) as link:
                    self.starts.append(t)
                    t += link.duration
        except Exception:
            self.raw.close()
            raise
        self.durations = [b - a for a, b in zip(self.starts, self.starts[1:] + [t])]
        self.duration = t
        if chain.cut:  # the last link's end: _check_ogg_ends
            self.raw.close()
            i = chain.cut[0]
            raise AudioError(f"truncated: link {i + 1} of {len(links)} of the chained Ogg stream breaks off at "
                             f"{self.starts[i] + self.durations[i]:.1f} s (its last page has no end-of-stream flag)")

    @contextmanager
    def _open(self, offset: int, size: int):
        track = _open_source(_ByteRange(self.raw, offset, size), self.suffix)
        try:
            yield track
        finally:
            track.close()

    def clip(self, start: float, seconds: float, sample_rate: int) -> np.ndarray:
        n_out = int(round(seconds * sample_rate))
        pieces, t, end = [], start, start + seconds
        for (offset, size), begin, length in zip(self.links, self.starts, self.durations):
            if t >= end - 1e-9:
                break
            if t >= begin + length:
                continue
            take = min(end, begin + length) - t
            with self._open(offset, size) as link:
                pieces.append(link.clip(t - begin, take, sample_rate))
            t += take
        if t < end - 0.02 * seconds:
            raise AudioError(f"truncated: audio ends before {end:.1f} s although the header says {self.duration:.1f} s")
        data = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
        return _resample(data, sample_rate, sample_rate, n_out)

    def close(self) -> None:
        self.raw.close()


class _ByteRange:
    """A read-only file object over bytes [offset, offset + size) of an open file."""

    def __init__(self, raw, offset: int, size: int):
        self.raw, self.offset, self.size, self.pos = raw, offset, size, 0

    def read(self, n: int = -1) -> bytes:
        n = self.size - self.pos if n is None or n < 0 else min(n, self.size - self.pos)
        if n <= 0:
            return b""
        self.raw.seek(self.offset + self.pos)
        data = self.raw.read(n)
        self.pos += len(data)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.pos, os.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def seekable(self) -> bool:
        return True


def _ogg_links(path: Path) -> _OggChain | None:
    """The links of a chained Ogg file; None for a file of one link.

    Cheap for the common case: a file whose last page belongs to the stream of its first page is one
    link. Otherwise every page header is read: a beginning-of-stream page after pages of data starts
    a new link (RFC 3533: a link's BOS pages come before its other pages)."""
    with open(path, "rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(0)
        first = fh.read(OGG_PAGE.size)
        if len(first) < OGG_PAGE.size:
            return None
        pages = _ogg_tail_pages(fh, size)
        if not pages or pages[-1][0] == OGG_PAGE.unpack_from(first)[4]:
            return None
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            starts, pos, in_data = [], 0, False
            unended: set[int] = set()  # the serials of this link's streams whose last page is still to come
            cut: list[int] = []  # the links (0-based) that a later link follows before their streams ended
            while pos + OGG_PAGE.size <= size:
                if data[pos:pos + 4] != b"OggS" or not _ogg_page_fits(data, pos) or _ogg_page_cut(data, pos):
                    pos = data.find(b"OggS", pos + 1)  # damaged bytes, or a page cut short: the next page
                    if pos < 0:
                        break
                    continue
                _, _, flags, _, serial, *_ = OGG_PAGE.unpack_from(data, pos)
                if flags & OGG_BOS:
                    if in_data or not starts:
                        if unended:
                            cut.append(len(starts) - 1)
                        starts.append(pos)
                        unended = set()
                    in_data = False
                    unended.add(serial)
                else:
                    in_data = True
                if flags & OGG_EOS:
                    unended.discard(serial)
                pos = _ogg_page_end(data, pos)
    if len(starts) < 2:
        return None
    ends = starts[1:] + [size]
    return _OggChain([(a, b - a) for a, b in zip(starts, ends)], cut=tuple(cut))


def _ogg_page_cut(data, at: int) -> bool:
    """Whether the Ogg page at `at`, which fits in `data` (_ogg_page_fits), was cut short all the same:
    another page starts inside the bytes it claims (the next link's first pages, which it would
    swallow) and none starts at its end. A whole page followed by other bytes (a tagger's ID3v1
    between two links) is not."""
    end = _ogg_page_end(data, at)
    if end == len(data) or data[end:end + 4] == b"OggS":
        return False
    return data.find(b"OggS", at + 1, end) >= 0


@dataclass(frozen=True)
class _OggChain:
    """The links of a chained Ogg file: (offset, size) of each, and the links (0-based) whose streams
    break off (no end-of-stream page) before the next link begins: pieces of a cut download, joined."""
    links: list[tuple[int, int]]
    cut: tuple[int, ...] = ()


# MPEG audio frame headers: bitrates (kbit/s) by (MPEG-1?, layer) and index, sample rates by version.
_MPEG_BITRATES = {
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}  # version bits -> Hz
# Where the bitrates of an MP3 without a Xing/VBRI header are sampled: frames from these fractions of the file.
MP3_BITRATE_SAMPLES = (0.0, 0.25, 0.5, 0.75)
MP3_PREROLL_FRAMES = 10  # decoded before a clip: a frame's data can start up to 511 bytes back (the bit reservoir)


@dataclass(frozen=True)
class _MpegFrame:
    """One MPEG audio frame header: its stream's kind (version, layer, sample rate) and its own size."""
    kind: tuple[int, int, int]
    bitrate: int
    length: int         # bytes, the header counted
    samples: int        # per frame
    sample_rate: int
    side_info: int      # where the Xing/Info header would start, from the frame's start


def _mpeg_frame(data, at: int) -> _MpegFrame | None:
    """The MPEG audio frame header at `at` of `data`, or None if there is none (free-format bitrates,
    which need the next frame to size one, are none too)."""
    if at + 4 > len(data) or data[at] != 0xFF or data[at + 1] & 0xE0 != 0xE0:
        return None
    b1, b2, b3 = data[at + 1], data[at + 2], data[at + 3]
    version, layer_bits, rate_index, rate_bits = (b1 >> 3) & 3, (b1 >> 1) & 3, b2 >> 4, (b2 >> 2) & 3
    if version == 1 or layer_bits == 0 or rate_index in (0, 15) or rate_bits == 3:
        return None
    layer, mpeg1 = 4 - layer_bits, version == 3
    bitrate = _MPEG_BITRATES[(mpeg1, layer)][rate_index] * 1000
    sample_rate = _MPEG_RATES[version][rate_bits]
    padding = (b2 >> 1) & 1
    if layer == 1:
        length, samples = (12 * bitrate // sample_rate + padding) * 4, 384
    else:
        samples = 1152 if layer == 2 or mpeg1 else 576
        length = samples // 8 * bitrate // sample_rate + padding
    mono = (b3 >> 6) == 3
    side_info = 4 + (0 if b1 & 1 else 2) + ((17 if mono else 32) if mpeg1 else (9 if mono else 17))
    return _MpegFrame((version, layer, sample_rate), bitrate, length, samples, sample_rate, side_info)


def _mpeg_sync(data, at: int, kind=None, *, limit: int = 65536) -> int:
    """Where the first MPEG frame at or after `at` (within `limit` bytes) starts that the next frame
    follows (of the same kind; of `kind` if given); -1 if none."""
    end = min(len(data), at + limit)
    while at < end:
        at = data.find(b"\xff", at, end)
        if at < 0:
            return -1
        frame = _mpeg_frame(data, at)
        if frame is not None and (kind is None or frame.kind == kind):
            following = _mpeg_frame(data, at + frame.length)
            if following is not None and following.kind == frame.kind:
                return at
        at += 1
    return -1


@dataclass(frozen=True)
class _MpegIndex:
    """Where each MPEG frame of an MP3 starts, and where the last one ends."""
    offsets: object     # array of byte offsets
    end: int
    frame_samples: int
    sample_rate: int
    covered: int = 0    # bytes in the frames (what lies between them, damage or tags, not counted)


def _mp3_vbr_index(path) -> _MpegIndex | None:
    """The frame index of an MP3 whose length a decoder would have to guess: no Xing, Info or VBRI
    header in its first frame, and frames of different bitrates (sampled at a few places; a CBR file's
    length follows from its size). None for any other MP3, at the cost of a few reads."""
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        audio = _id3v2_end(data)
        if _mpeg_free_format(data, audio):  # frames this index cannot size: libsndfile's mpg123 reads them
            return None
        start = _mpeg_sync(data, audio)
        if start < 0:
            return None
        first = _mpeg_frame(data, start)
        if data[start + first.side_info:start + first.side_info + 4] in (b"Xing", b"Info") or \
                data[start + 36:start + 40] == b"VBRI":
            return None
        bitrates = set()
        for where in MP3_BITRATE_SAMPLES:
            bitrates |= _mpeg_bitrates(data, max(start, int(len(data) * where)), first.kind)
        if len(bitrates) <= 1:
            return None
        index = _mpeg_walk(data, start, first)
        # Frames that cover under half the file are chance bytes of something else (a free-format
        # stream behind junk): libsndfile's reading, as for any MP3 this index does not fit.
        return index if index.covered * 2 >= len(data) - audio else None


def _mpeg_free_format(data, at: int) -> bool:
    """Whether an MPEG audio frame header at `at` of `data` gives the free-format bitrate (index 0):
    its frames' sizes follow from where the next one starts, not from the header."""
    if at + 4 > len(data) or data[at] != 0xFF or data[at + 1] & 0xE0 != 0xE0:
        return False
    b1, b2 = data[at + 1], data[at + 2]
    return (b1 >> 3) & 3 != 1 and (b1 >> 1) & 3 != 0 and b2 >> 4 == 0 and (b2 >> 2) & 3 != 3


def _id3v2_end(data) -> int:
    """Where the ID3v2 tags at the start of `data` end (several, as some taggers leave them; 0 if none)."""
    at = 0
    while data[at:at + 3] == b"ID3" and at + 10 <= len(data):
        size = 0
        for byte in data[at + 6:at + 10]:  # syncsafe: 7 bits a byte
            size = size << 7 | byte & 0x7F
        at += 10 + size + (10 if data[at + 5] & 0x10 else 0)
    return at


def _mpeg_bitrates(data, at: int, kind, count: int = 8) -> set[int]:
    """The bitrates of up to `count` frames in a row from the first frame of `kind` at or after `at`."""
    at = _mpeg_sync(data, at, kind)
    rates: set[int] = set()
    for _ in range(count if at >= 0 else 0):
        frame = _mpeg_frame(data, at)
        if frame is None or frame.kind != kind:
            break
        rates.add(frame.bitrate)
        at += frame.length
    return rates


def _mpeg_walk(data, start: int, first: _MpegFrame) -> _MpegIndex:
    """Every frame of the stream `first` (at `start`) begins, frame by frame; bytes that are not a
    frame of its kind (damage, a tag) are skipped to the next frame; a last frame cut short is left out."""
    from array import array

    offsets, at, size = array("q"), start, len(data)
    end, covered = start, 0
    while at >= 0:
        frame = _mpeg_frame(data, at)
        if frame is None or frame.kind != first.kind:
            at = _mpeg_sync(data, at + 1, first.kind, limit=size)
            continue
        if at + frame.length > size:
            break
        offsets.append(at)
        at += frame.length
        end, covered = at, covered + frame.length
    return _MpegIndex(offsets, end, first.samples, first.sample_rate, covered)


def _check_ogg_ends(path: Path, duration: float) -> None:
    """AudioError ('truncated') if the last Ogg page of the file does not end its stream.

    A stream's last page carries the end-of-stream flag (RFC 3533), and so does the last page of a
    file (of a chained or multiplexed one, too). A file cut short ends on a page without it, or on a
    part of a page, which is passed over as trailing bytes are: its granule positions describe only
    the audio that is left, so it would decode cleanly and be judged on a part of the track. A tail
    with no whole page in it (trailing bytes beyond a page's length) does not tell: the file is read."""
    with open(path, "rb") as fh:
        tail = _ogg_tail(fh, fh.seek(0, os.SEEK_END))
    at = _ogg_last_page_at(tail)
    if at >= 0 and not OGG_PAGE.unpack_from(tail, at)[2] & OGG_EOS:
        raise AudioError(f"truncated: the Ogg stream breaks off at {duration:.1f} s "
                         "(its last page has no end-of-stream flag)")


def _check_chunks_end(path: Path, duration: float) -> None:
    """AudioError ('truncated') if a WAV or AIFF file's audio chunk declares more bytes than the file
    holds: libsndfile reads what is there, and the track would pass for a shorter one (tagger.iff). A
    size left unknown (a WAV written to a pipe) or a missing pad byte is no loss of audio."""
    with open(path, "rb") as fh:
        found = overrun(fh, within_form=False)  # decoders read the chunks to the file's end
    if found is None or not found.audio or found.pad_only or found.unknown_size:
        return
    missing = found.declared - found.present
    if duration < 0.05:
        raise AudioError(f"truncated: the file ends where its audio data begins ({missing:,} bytes missing)")
    declared = duration * found.declared / found.present
    raise AudioError(f"truncated: the audio data breaks off at {duration:.1f} s although the header says "
                     f"{declared:.1f} s ({missing:,} bytes missing)")


def _check_flac_or_mpeg_ends(path: Path) -> None:
    """AudioError ('truncated') if a FLAC or MP3 file ends before the length its own header declares
    (a download still in progress, a copy cut short). Decoders take the length from that header and
    read the audio that is there without a word: the track was judged on clips of what is left, and
    tagged through a copy, which lost the rest of a download still being written to the old file.

    FLAC: the STREAMINFO sample count against the end of the last frame in the file's tail (a frame
    header, its CRC-8 checked, whose first sample is where an earlier one's frame ends); a last frame
    shorter than a fixed-block stream's block is its real end, whatever the count says (files joined
    by a stream copy keep the first one's count). MP3: the byte count of a Xing, Info or VBRI header
    (LAME writes one, for CBR files too) against the file's size, where the file also ends inside an
    MPEG frame and lacks more than the rest of that frame (a file cut by an editor that left the
    header as it was ends on a frame's edge; an old file a few bytes short plays whole). A file whose
    header gives no length (an MP3 without one, a FLAC stream encoded from a pipe) does not tell: it
    is read. Plain reads of the head and the tail, not a memory map: a file cut while it is read here
    reads short, where a mapped page past its new end would kill the process (SIGBUS)."""
    with open(path, "rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        start = _id3v2_end_of(fh, size)
        first = _read_at(fh, start, MPEG_FIRST)
        if not first.startswith(b"fLaC") and _mpeg_sync(first, 0) < 0:
            first = _read_at(fh, start, MPEG_HEAD)  # junk before the first frame
        cause = _flac_cut(fh, start, size) if first.startswith(b"fLaC") else _mpeg_cut(fh, first, start, size)
    if cause:
        raise AudioError(f"truncated: {cause}")


def _id3v2_end_of(fh, size: int) -> int:
    """Where the ID3v2 tags at the start of the file `fh` end (several, as some taggers leave them; 0 if none)."""
    at = 0
    for _ in range(ID3V2_TAGS_MAX):
        header = _read_at(fh, at, 10)
        if len(header) < 10 or not header.startswith(b"ID3"):
            break
        at += _id3v2_end(header)
    return at


ID3V2_TAGS_MAX = 1000  # ID3v2 tags one after the other at a file's start, read at most


def _read_at(fh, offset: int, length: int) -> bytes:
    fh.seek(offset)
    return fh.read(length)


FLAC_TAIL = 64 << 10  # of a FLAC file, the bytes searched for its last frames (4 of its largest frames, if more)
FLAC_TAIL_MAX = 256 << 10  # at most (prefetch's TAIL_BYTES: what a slow share has read ahead)
FLAC_BLOCKS_MAX = 10_000  # metadata blocks walked at most (a file has a handful)


def _flac_cut(fh, at: int, size: int) -> str | None:
    """Why the FLAC stream at `at` of the file `fh` (`size` bytes) is cut short, or None (whole, or its
    length not declared)."""
    end, last, blocks = at + 4, False, 0
    while not last and blocks < FLAC_BLOCKS_MAX:  # the metadata blocks: a 4-byte header each (last-block flag, type, size)
        header = _read_at(fh, end, 4)
        if len(header) < 4:
            return "the file ends inside its FLAC metadata"
        last, blocks = bool(header[0] & 0x80), blocks + 1
        end += 4 + int.from_bytes(header[1:4], "big")
    if end > size:
        return f"the file ends inside its FLAC metadata ({end - size:,} bytes missing)"
    info = _read_at(fh, at + 4, 38)
    if len(info) < 38 or info[0] & 0x7F != 0 or at + 8 + 34 > end:
        return None  # no STREAMINFO first: not for this check to judge
    info = info[4:]
    min_block, max_block = int.from_bytes(info[0:2], "big"), int.from_bytes(info[2:4], "big")
    max_frame = int.from_bytes(info[7:10], "big")
    rate, total = int.from_bytes(info[10:13], "big") >> 4, int.from_bytes(info[13:18], "big") & (2 ** 36 - 1)
    if not rate or not total:
        return None
    tail_at = max(end, size - min(max(FLAC_TAIL, 4 * max_frame), FLAC_TAIL_MAX))
    fixed = max_block if min_block == max_block else None
    found = _flac_last_frame(_read_at(fh, tail_at, size - tail_at), fixed_block=fixed)
    if found is None:
        return None
    first, block = found
    if first + block >= total or fixed and block < fixed:  # a short last block: the stream's own end
        return None
    return f"the FLAC stream breaks off at {(first + block) / rate:.1f} s although its header says {total / rate:.1f} s"


def _flac_last_frame(data: bytes, *, fixed_block: int | None) -> tuple[int, int] | None:
    """(first sample, block size) of the last FLAC frame in `data` (the tail of a file) that follows on
    from one before it: a frame header whose first sample is where an earlier header's frame ends (a
    chance look-alike inside a frame's audio, CRC-8 and all, has no such predecessor, and does not
    hide the real one). None if there is none."""
    ends: set[int] = set()
    found = None
    for match in _FLAC_SYNC.finditer(data):
        frame = _flac_frame(data, match.start(), fixed_block)
        if frame is None:
            continue
        if frame[0] in ends:
            found = frame
        ends.add(frame[0] + frame[1])
    return found


_FLAC_SYNC = re.compile(rb"\xff[\xf8\xf9]")
_UTF8_LEADS = (0x80, 0xE0, 0xF0, 0xF8, 0xFC, 0xFE, 0xFF)  # the mask of a lead byte's marker bits, by count of bytes after it
_FLAC_BLOCK_SIZES = {1: 192, 2: 576, 3: 1152, 4: 2304, 5: 4608, **{code: 256 << (code - 8) for code in range(8, 16)}}


def _flac_frame(data, at: int, fixed_block: int | None) -> tuple[int, int] | None:
    """(first sample, block size) of the FLAC frame whose header is at `at` of `data`, or None if
    there is none there (its CRC-8 is checked), or its numbering needs a fixed block size not given."""
    head = bytes(data[at:at + 16])
    if len(head) < 6:
        return None
    block_code, rate_code = head[2] >> 4, head[2] & 15
    channels, depth = head[3] >> 4, (head[3] >> 1) & 7
    if block_code == 0 or rate_code == 15 or channels > 10 or depth == 3 or head[3] & 1:
        return None
    # the frame or sample number, coded as UTF-8 codes a character: 0xxxxxxx, 110xxxxx 10xxxxxx, ...,
    # up to 11111110 and six 10xxxxxx (36 bits)
    lead = head[4]
    count = next((n for n, mask in enumerate(_UTF8_LEADS) if lead & mask == (mask << 1) & 0xFF), None)
    if count is None:
        return None
    number = lead & ~_UTF8_LEADS[count] & 0xFF
    pos = 5
    for byte in head[pos:pos + count]:
        if byte & 0xC0 != 0x80:
            return None
        number = number << 6 | byte & 0x3F
    pos += count
    extra_block = {6: 1, 7: 2}.get(block_code, 0)
    extra_rate = {12: 1, 13: 2, 14: 2}.get(rate_code, 0)
    if pos + extra_block + extra_rate >= len(head):
        return None
    size = _FLAC_BLOCK_SIZES.get(block_code) or int.from_bytes(head[pos:pos + extra_block], "big") + 1
    pos += extra_block + extra_rate
    if _crc8(head[:pos]) != head[pos]:
        return None
    if head[1] & 1:  # variable block size: the header numbers its first sample
        return number, size
    return (number * fixed_block, size) if fixed_block else None


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = _CRC8[crc ^ byte]
    return crc


def _crc8_table() -> tuple[int, ...]:
    table = []
    for n in range(256):  # polynomial x^8 + x^2 + x + 1 (FLAC's frame header CRC)
        for _ in range(8):
            n = (n << 1 ^ 0x07) & 0xFF if n & 0x80 else n << 1
        table.append(n)
    return tuple(table)


_CRC8 = _crc8_table()
MPEG_TAIL = 16 << 10  # of an MP3 file, the bytes walked frame by frame to see whether it ends inside a frame
MPEG_FIRST = 8192  # of an MP3 file, the bytes read from its audio's start: its first frames, as a rule,
MPEG_HEAD = 65536 + 4096  # or these where they are not there (_mpeg_sync's reach, and a frame)


def _mpeg_cut(fh, first: bytes, start: int, size: int) -> str | None:
    """Why the MP3 stream at `start` of the file `fh` (`size` bytes; `first`: its bytes from there) is cut
    short (see _check_flac_or_mpeg_ends), or None."""
    at = _mpeg_sync(first, 0)
    if at < 0:
        return None
    frame = _mpeg_frame(first, at)
    header = at + frame.side_info
    frames = None
    if first[header:header + 4] in (b"Xing", b"Info"):
        flags = int.from_bytes(first[header + 4:header + 8], "big")
        if not flags & 2:
            return None
        if flags & 1:
            frames = int.from_bytes(first[header + 8:header + 12], "big")
        declared = int.from_bytes(first[header + 8 + 4 * (flags & 1):header + 12 + 4 * (flags & 1)], "big")
    elif first[at + 36:at + 40] == b"VBRI":
        declared = int.from_bytes(first[at + 46:at + 50], "big")
        frames = int.from_bytes(first[at + 50:at + 54], "big")
    else:
        return None
    missing = start + at + declared - size
    if missing <= 0 or not declared:
        return None
    tail_at = max(start + at, size - MPEG_TAIL)
    lacking = _mpeg_frame_lacking(_read_at(fh, tail_at, size - tail_at), frame.kind)
    if lacking is None or missing <= lacking:  # ends on a frame's edge, or lacks only the rest of its last frame
        return None
    said = f" although its header says {frames * frame.samples / frame.sample_rate:.1f} s" if frames else ""
    reached = (size - start - at) / declared * frames * frame.samples / frame.sample_rate if frames else None
    where = f" at {reached:.1f} s" if reached is not None else ""
    return f"the MP3 stream breaks off{where}{said} ({missing:,} bytes missing)"


def _mpeg_frame_lacking(data: bytes, kind) -> int | None:
    """How many bytes the last of the MPEG frames found in `data` (a file's tail), one after the other,
    lacks where `data` ends inside it; None where they end on a frame's edge, or other bytes after them
    (a tag) end the walk."""
    at = _mpeg_sync(data, 0, kind, limit=len(data))
    while at >= 0:
        if len(data) - at < 4:
            return 1 if data[at:at + 1] == b"\xff" else None  # a frame header cut off: at least its rest
        frame = _mpeg_frame(data, at)
        if frame is None or frame.kind != kind:
            return None
        at += frame.length
        if at >= len(data):
            return at - len(data) or None
    return None


MP4_BOXES_MAX = 10_000  # top-level boxes walked at most (an MP4 has a handful: ftyp, moov, mdat, free)
# The boxes an MP4 file holds at its top level (ISO/IEC 14496-12, QuickTime's 'wide'); anything else
# there is bytes another program put after the boxes (an ID3v1 tag that a tagger added).
MP4_TOP_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"meta", b"uuid", b"pdin", b"moof",
                 b"mfra", b"sidx", b"styp", b"ssix", b"prft", b"emsg", b"udta", b"pnot", b"junk"}
MP4_AUDIO_BOXES = {b"mdat", b"moov", b"moof"}  # the audio and its index: one cut short has lost some


def _check_boxes_end(path: Path) -> None:
    """AudioError ('truncated') if a top-level box of an MP4/M4A file runs past the file's end (a
    download in progress, a copy cut short). FFmpeg decodes what there is of its 'mdat' without a
    word where the index ('moov') comes first, and finds no index where it comes last. Bytes after
    the boxes that are not a top-level box are left to the decoder."""
    with open(path, "rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        at = 0
        for _ in range(MP4_BOXES_MAX):
            if at + 8 > size:
                return
            fh.seek(at)
            head = fh.read(16)
            length, name = struct.unpack(">I4s", head[:8])
            if length == 1 and len(head) == 16:
                length = int.from_bytes(head[8:16], "big")
            if length < 8 or name not in MP4_TOP_BOXES:
                return  # 0: a box that runs to the file's end; a short size or another name: not a box
            if at + length > size:
                if name not in MP4_AUDIO_BOXES:  # padding ('free') a tagger sized wrong: no audio lost
                    return
                raise AudioError(f"truncated: the file ends inside its '{name.decode()}' box "
                                 f"({at + length - size:,} bytes missing)")
            at += length


def _ogg_tail(fh, size: int) -> bytes:
    """The last 70 kB of a file: room for the longest Ogg page (65,307 bytes) whatever the cut."""
    start = max(0, size - 70_000)
    fh.seek(start)
    return fh.read(size - start)


def _ogg_last_page_at(tail: bytes) -> int:
    """Where the last whole Ogg page of `tail` starts (-1: none); bytes after it are passed over."""
    at = tail.rfind(b"OggS")
    while at >= 0 and not _ogg_page_fits(tail, at):
        at = tail.rfind(b"OggS", 0, at)
    return at


def _ogg_tail_pages(fh, size: int) -> list[tuple[int, int]]:
    """(serial, granule) of the Ogg pages at the end of a file (the last 70 kB), in order: the pages
    that chain (each ending where the next begins) up to the last page of the file."""
    tail = _ogg_tail(fh, size)
    at = _ogg_last_page_at(tail)
    pages = []
    while at >= 0:
        _, _, _, granule, serial, *_ = OGG_PAGE.unpack_from(tail, at)
        pages.append((serial, granule))
        prev = tail.rfind(b"OggS", 0, at)
        while prev >= 0 and not (_ogg_page_fits(tail, prev) and _ogg_page_end(tail, prev) == at):
            prev = tail.rfind(b"OggS", 0, prev)
        at = prev
    return pages[::-1]


def _ogg_last_page_seconds(source, sample_rate: int) -> float | None:
    """How much of an Ogg stream's time its last page holds (from the granule positions of its last
    two pages); None if the tail of the file does not tell. `source`: a path or a file object."""
    fh = open(source, "rb") if isinstance(source, (str, os.PathLike)) else source
    try:
        pos = fh.tell()
        size = fh.seek(0, os.SEEK_END)
        pages = _ogg_tail_pages(fh, size)
        fh.seek(pos)
    finally:
        if fh is not source:
            fh.close()
    if not pages:
        return None
    serial, last = pages[-1]
    earlier = [g for s, g in pages[:-1] if s == serial and g >= 0]
    if last < 0 or not earlier or earlier[-1] > last:
        return None
    return (last - earlier[-1]) / sample_rate


def _ogg_page_end(buf: bytes, at: int) -> int:
    segments = buf[at + OGG_PAGE.size - 1]
    return at + OGG_PAGE.size + segments + sum(buf[at + OGG_PAGE.size: at + OGG_PAGE.size + segments])


def _ogg_page_fits(buf: bytes, at: int) -> bool:
    """Whether an Ogg page header at `at` of `buf` is plausible and its page ends within `buf`."""
    if at + OGG_PAGE.size > len(buf):
        return False
    capture, version, flags, *_, segments = OGG_PAGE.unpack_from(buf, at)
    if version != 0 or flags > 7 or at + OGG_PAGE.size + segments > len(buf):
        return False
    return _ogg_page_end(buf, at) <= len(buf)


def _check_length(data: np.ndarray, need: int, start: float, seconds: float, duration: float) -> None:
    if len(data) < need * 0.98:
        raise AudioError(f"truncated: audio ends before {start + seconds:.1f} s "
                         f"although the header says {duration:.1f} s")


def _to_mono(x: np.ndarray) -> np.ndarray:
    """(n, channels) -> (n,) float32, equal to x.mean(axis=1): numpy's reduction over a short last
    axis is some 20 times slower than adding the columns."""
    return x if x.ndim == 1 else _mean_of([x[:, c] for c in range(x.shape[1])])


def _mean_of(channels: list[np.ndarray]) -> np.ndarray:
    """The element-wise mean of equal-length channels, as float32, summed in order (as numpy's mean)."""
    if len(channels) > 1 and all(c.dtype == np.float32 for c in channels):
        out, rest = channels[0] + channels[1], channels[2:]  # a new array: the same sum, one copy less
    else:
        out, rest = channels[0].astype(np.float32), channels[1:]  # a copy
    for channel in rest:
        out += channel
    if len(channels) > 1:
        out /= len(channels)
    return out


def _resample(x: np.ndarray, sr: int, target: int, n_out: int) -> np.ndarray:
    import soxr

    x = _sane(x)
    if sr != target:
        with stage("resample"):
            x = soxr.resample(x, sr, target, quality="HQ")
    if len(x) < n_out:
        x = np.pad(x, (0, n_out - len(x)))
    return np.ascontiguousarray(x[:n_out], dtype=np.float32)


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


def _av_stream_duration(container, stream) -> float:
    """The stream's duration in seconds from the container (0.0 if it does not say: _AvTrack then
    decodes the stream to count its samples).

    FFmpeg's Ogg demuxer takes an Opus stream's duration from its last granule position, which counts
    the pre-skip (RFC 7845: the samples a decoder drops first; FFmpeg's codec `delay`): taken off here."""
    if stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif container.duration and sum(s.type == "audio" for s in container.streams) == 1:
        duration = container.duration / 1_000_000
    else:  # the container's is its longest stream's (a multiplexed Ogg file's other one): decoded instead
        return 0.0
    if container.format.name == "ogg" and stream.codec_context.name == "opus" and stream.codec_context.delay:
        duration -= stream.codec_context.delay / 48000  # Opus granules count 48 kHz samples
    return max(0.0, duration)


# Planar sample formats read straight from the frame's planes: (dtype, full scale).
_PLANAR = {"fltp": (np.float32, 1.0), "s16p": (np.int16, 32768.0), "s32p": (np.int32, 2147483648.0)}


def _frames_samples(frames: list) -> np.ndarray:
    """Consecutive AudioFrames -> their samples, mono float32, joined; a planar format's conversion is
    done once for each run of frames of one format (per frame, its few numpy calls cost more than
    decoding AAC), with the same values as frame by frame."""
    if not frames:
        return np.zeros(0, dtype=np.float32)
    runs, start = [], 0
    key = _frame_kind(frames[0])
    for i in range(1, len(frames)):
        k = _frame_kind(frames[i])
        if k != key:
            runs.append(_run_samples(frames[start:i], key))
            start, key = i, k
    runs.append(_run_samples(frames[start:], key))
    return runs[0] if len(runs) == 1 else np.concatenate(runs)


def _frame_kind(frame) -> tuple[str, int]:
    layout = frame.layout  # nb_channels (PyAV 13+): len(layout.channels) builds a tuple of objects, 10x slower
    return frame.format.name, layout.nb_channels if hasattr(layout, "nb_channels") else len(layout.channels)


def _run_samples(frames: list, kind: tuple[str, int]) -> np.ndarray:
    """Frames of one sample format and channel count -> mono float32, joined. A planar format read
    straight from the frames' planes (to_ndarray() stacks the planes first: that costs more than
    decoding AAC); fltp is read as it is (views: _mean_of copies)."""
    name, channels = kind
    planar = _PLANAR.get(name)
    if planar is None:
        return np.concatenate([_frame_samples(f, channels) for f in frames])
    dtype, scale = planar
    per_channel = [[] for _ in range(channels)]
    for frame in frames:
        n = frame.samples
        for plane, pieces in zip(frame.planes, per_channel):
            pieces.append(np.frombuffer(plane, dtype=dtype, count=n))
    planes = [np.concatenate(pieces) if len(pieces) > 1 else pieces[0] for pieces in per_channel]
    if dtype is not np.float32:
        planes = [p.astype(np.float32) for p in planes]
        for plane in planes:
            plane /= scale
    return _mean_of(planes)


def _frame_samples(frame, channels: int) -> np.ndarray:
    """An AudioFrame of a format not in _PLANAR -> mono float32, whatever its sample format and layout."""
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


def _first_line(exc: BaseException) -> str:
    strerror = getattr(exc, "strerror", None)
    if strerror and type(exc).__module__.startswith("av"):
        return strerror  # FFmpeg's reason without its errno and the file name
    reason = getattr(exc, "error_string", None)
    if reason and type(exc).__module__.startswith("soundfile"):
        return reason.strip()  # libsndfile's reason without "Error opening 'PATH': "
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
