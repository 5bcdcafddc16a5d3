"""Training's feature cache: the unnormalised feature matrix of the middle of each track, on disk.

Decoding dominates training time, so each track is decoded once: the middle `span` of it (at least
the inference clips' stretch, at most MAX_SPAN_SECONDS) becomes one long matrix, (features.size[0],
frames), in dB (or MFCC), frequency axis already at the model's height, time axis at the STFT's hop.
Training crops clip-long windows from it at random positions and resizes their time axis as
`features.clip_matrices` does, so a crop equals the clip matrix inference computes for the same start
(up to the STFT's edge frames).

Files: `<cache_dir>/<key[:2]>/<key>.npz` (float16 matrix), keyed by the file's resolved path, size
and mtime, the sample rate, the FeatureSpec and the span (not MAX_SPAN_SECONDS, which changes no track
under it: an entry of a longer stretch, made before the cap, is read as stale). The cache folder: the
`cache_dir` argument, else $MOODTAG_FEATURE_CACHE, else `features/` in the user cache folder (e.g.
~/.cache/moodtag/features).
"""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
import zlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from tagger.audio import decode_segments, probe_duration, short_duration
from tagger.errors import AudioError
from tagger.features import clip_matrices
from tagger.weights import ClipPlan, ModelSpec

CACHE_VERSION = 1
CACHE_ENV = "MOODTAG_FEATURE_CACHE"
# The longest middle stretch decoded (seconds): its STFT is built in one piece, about 1 MB per second of
# it (0.6 GB for 600 s), so the middle 60 % of a 10-hour mix needed 20 GB. Every track up to 16 min 40 s at
# the default --span 0.6 (up to 10 min at any --span) is decoded as before the cap, to the same matrix.
MAX_SPAN_SECONDS = 600.0


@dataclass(frozen=True)
class TrackMatrix:
    """The middle of one track as a feature matrix: (height, frames) float16; frame i is centred
    at `start + i * hop_seconds` seconds into the track."""

    matrix: np.ndarray
    start: float
    duration: float
    hop_seconds: float
    clip_frames: int

    def frame_at(self, seconds: float) -> int:
        """The first frame of a clip starting at `seconds` into the track, clamped to the matrix."""
        k = int(round((seconds - self.start) / self.hop_seconds))
        return max(0, min(k, self.matrix.shape[1] - self.clip_frames))


def default_cache_dir() -> Path:
    """$MOODTAG_FEATURE_CACHE, else `features` in the user cache folder."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("moodtag")) / "features"


def segment_bounds(duration: float, plan: ClipPlan, span: float) -> tuple[float, float]:
    """(start, seconds) of the middle stretch to decode: `span` of the track, widened to hold the
    inference clips of `plan`, cut to MAX_SPAN_SECONDS (unless the plan's clips back to back need more),
    never past the track's ends. A spread plan's clips beyond the stretch of a long track are not in it."""
    if duration < plan.seconds:
        raise AudioError(f"too short: {short_duration(duration, plan.seconds)} s, a clip needs {plan.seconds:g} s")
    width = max(span, plan.span if plan.placement == "spread" else 0.0) * duration
    width = min(width, MAX_SPAN_SECONDS)
    width = min(duration, max(width, plan.count * plan.seconds + 1.0, plan.seconds))
    start = max(0.0, (duration - width) / 2)
    return round(start, 4), round(width, 4)


def clip_frames(spec: ModelSpec) -> int:
    """Frames of one clip's STFT (centred frames, as librosa computes them)."""
    n = int(round(spec.clips.seconds * spec.sample_rate))
    return 1 + n // spec.features.hop_length


def max_frames(spec: ModelSpec) -> int:
    """Frames of the longest matrix segment_bounds allows (MAX_SPAN_SECONDS, or the plan's clips)."""
    plan = spec.clips
    seconds = round(max(MAX_SPAN_SECONDS, plan.count * plan.seconds + 1.0, plan.seconds), 4)
    return 1 + int(round(seconds * spec.sample_rate)) // spec.features.hop_length


def _key(path: Path, spec: ModelSpec, span: float) -> str:
    st = path.stat()
    # `center` acts on each clip when it becomes the network's input, not on the cached matrix.
    features = {k: v for k, v in asdict(spec.features).items() if k != "center"}
    ident = {"v": CACHE_VERSION, "path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
             "sr": spec.sample_rate, "features": features, "clip_seconds": spec.clips.seconds,
             "span": span, "plan": asdict(spec.clips)}
    return hashlib.sha1(json.dumps(ident, sort_keys=True).encode()).hexdigest()


def compute_matrix(path: Path, *, spec: ModelSpec, span: float) -> TrackMatrix:
    """Decode the middle of `path` and compute its feature matrix (no cache)."""
    duration = probe_duration(path)
    start, seconds = segment_bounds(duration, spec.clips, span)
    decoded = decode_segments(path, [start], seconds=seconds, sample_rate=spec.sample_rate)
    samples = decoded.samples[0]
    hop = spec.features.hop_length
    frames = 1 + len(samples) // hop
    # clip_matrices with the time axis left as it is: only the frequency axis is resized.
    features = replace(spec.features, size=(spec.features.size[0], frames))
    matrix = clip_matrices(samples[None], features, spec.sample_rate)[0]
    return TrackMatrix(matrix=matrix.astype(np.float16), start=start, duration=decoded.duration or duration,
                       hop_seconds=hop / spec.sample_rate, clip_frames=clip_frames(spec))


# What reading a damaged entry raises: EOFError for an empty file (what a crash between write and rename
# can leave), BadZipFile or zlib.error for a cut or overwritten one, KeyError for an array missing,
# ValueError or TypeError for an array of another shape or kind.
_DAMAGED = (OSError, EOFError, ValueError, TypeError, KeyError, zipfile.BadZipFile, zlib.error)


def _read_entry(file: Path, spec: ModelSpec) -> TrackMatrix:
    """A cache entry as a TrackMatrix; one of _DAMAGED if it is not a whole entry of `spec`'s shape."""
    with np.load(file, allow_pickle=False) as z:
        tm = TrackMatrix(matrix=z["matrix"], start=float(z["start"]), duration=float(z["duration"]),
                         hop_seconds=float(z["hop_seconds"]), clip_frames=int(z["clip_frames"]))
    if tm.matrix.ndim != 2 or tm.matrix.shape[0] != spec.features.size[0] or tm.clip_frames != clip_frames(spec):
        raise ValueError(f"a matrix of shape {tm.matrix.shape} is not this spec's")
    if tm.matrix.shape[1] > max_frames(spec):  # made before MAX_SPAN_SECONDS: the track is decoded again
        raise ValueError(f"a matrix of {tm.matrix.shape[1]} frames is longer than the span decoded now")
    return tm


def track_matrix(path: Path, *, spec: ModelSpec, span: float, cache_dir: Path | None) -> TrackMatrix:
    """The cached matrix of `path`, computed and stored on a miss. `cache_dir` None: no caching.
    Raises AudioError for a file that cannot be decoded or is too short."""
    path = Path(path)
    if cache_dir is None:
        return compute_matrix(path, spec=spec, span=span)
    try:
        key = _key(path, spec, span)
    except OSError as exc:
        raise AudioError(f"cannot stat: {exc.strerror or exc}") from None
    file = Path(cache_dir) / key[:2] / f"{key}.npz"
    if file.is_file():
        try:
            return _read_entry(file, spec)
        except _DAMAGED:
            pass  # a damaged cache entry is recomputed (and replaced)
    tm = compute_matrix(path, spec=spec, span=span)
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_name(f"{key}.{os.getpid()}.tmp.npz")
        np.savez_compressed(tmp, matrix=tm.matrix, start=tm.start, duration=tm.duration,
                            hop_seconds=tm.hop_seconds, clip_frames=tm.clip_frames)
        tmp.replace(file)
    except OSError:
        pass  # an unwritable cache only costs time
    return tm
