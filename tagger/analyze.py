"""One track end to end: decode its clips, run the model, decide. Never raises for a bad file."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tagger.audio import load_clips
from tagger.errors import AudioError
from tagger.records import ClipScore, TrackResult
from tagger.stages import stage
from tagger.weights import LoadedModel, ModelSpec

# A clip sounds when at least SOUNDING_SHARE of its 50 ms frames, the clip's DC offset taken off, reach
# SILENCE_LEVEL RMS (-80 dBFS: above 16-bit dither, -96 dBFS, and digital silence; the quietest frame
# of 1,005 clips of the dev sets was -87 dBFS, and in every clip over 90% of the frames were above it).
# A click (one frame), a DC offset, the silence before a hidden track hold no music to judge: such a
# clip is left out of the decision, and a track without a sounding clip is 'silent'.
SILENCE_LEVEL = 1e-4
SILENCE_FRAME_SECONDS = 0.05
SOUNDING_SHARE = 0.05  # 0.25 s of a 5 s clip
SILENT = "silent"      # the mood shown for a silent clip (its scores 0)
CLIP_BATCH = 32      # a CNN's clips go through the network this many at a time (bounds GPU memory)


def predict_clips(model: LoadedModel, samples: np.ndarray) -> np.ndarray:
    """(n_clips, n_samples) -> (n_clips, n_labels) probabilities, each clip on its own."""
    return predict(model, samples)[1]


def predict(model: LoadedModel, samples: np.ndarray, *, batch: int = CLIP_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """(n_clips, n_samples) -> (the track's (n_labels,) probabilities, each clip's (n_clips, n_labels)).

    A CNN scores each clip, `batch` clips per pass on the model's device (batch 1: one at a time);
    the track gets the mean. A descriptor model scores the track from the descriptors of all its
    clips together (the rhythm ones need them joined), and each clip from its own."""
    spec = model.spec
    if spec.features.kind == "descriptors":
        from tagger.descriptors import track_descriptors, vector

        names = spec.features.descriptors
        with stage("descriptors"):
            track, per_clip = track_descriptors(samples, spec.sample_rate, top_db=spec.features.top_db, names=names)
            probs = model.network.probabilities(np.stack([vector(track, names)] + [vector(c, names) for c in per_clip]))
        return probs[0], probs[1:]
    import torch

    from tagger.features import features_for_clips

    with stage("spectrogram"):
        x = features_for_clips(samples, spec)
    with stage("network"), torch.inference_mode():
        parts = [torch.softmax(model.network(x[i:i + batch].to(model.device)), dim=1).cpu()
                 for i in range(0, len(x), max(1, batch))]
    per_clip = torch.cat(parts).numpy().astype(np.float64)
    return per_clip.mean(axis=0), per_clip


def decide(spec: ModelSpec, scores: np.ndarray) -> tuple[str, float]:
    """Mean label probabilities -> (label, confidence). Binary models use the spec's threshold on
    the second label; others take the most probable label. Confidence is the chosen label's probability."""
    if len(spec.labels) == 2 and spec.threshold is not None:
        index = 1 if scores[1] >= spec.threshold else 0
    else:
        index = int(np.argmax(scores))
    return spec.labels[index], float(scores[index])


def clip_scores(spec: ModelSpec, starts, per_clip, sounding=None) -> tuple[ClipScore, ...]:
    """Each clip's start (s) and (n_labels,) probabilities -> ClipScores with the clip length and the
    mood that clip alone would get. `sounding` (a bool per start; all if None): the clips `per_clip`
    holds rows for, in order; the others are silent, left out of the decision (mood 'silent', scores 0)."""
    rows = iter(per_clip)
    clips = []
    for i, start in enumerate(starts):
        if sounding is not None and not sounding[i]:
            clips.append(ClipScore(start=float(start), scores={label: 0.0 for label in spec.labels},
                                   seconds=spec.clips.seconds, mood=SILENT))
            continue
        row = np.asarray(next(rows), dtype=np.float64)
        clips.append(ClipScore(start=float(start), scores={label: float(p) for label, p in zip(spec.labels, row)},
                               seconds=spec.clips.seconds, mood=decide(spec, row)[0]))
    return tuple(clips)


def sounding_clips(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """(n_clips, n_samples) -> a bool per clip: whether it holds sound to judge (SILENCE_LEVEL's note).
    Only decides which clips are scored; the model gets each sounding clip as it was decoded."""
    frame = max(1, int(SILENCE_FRAME_SECONDS * sample_rate))
    n_frames = max(1, samples.shape[1] // frame)
    sounding = np.zeros(len(samples), dtype=bool)
    for i, clip in enumerate(samples):
        x = clip[:n_frames * frame].astype(np.float64)
        x -= x.mean()
        rms = np.sqrt(np.mean(x.reshape(n_frames, -1) ** 2, axis=1))
        sounding[i] = np.count_nonzero(rms >= SILENCE_LEVEL) >= SOUNDING_SHARE * n_frames
    return sounding


def decision_rule(spec: ModelSpec, clips: int) -> str:
    """How `predict` turned a track's `clips` clips (fewer than the plan's count in a short track) into
    its probabilities, in words."""
    if spec.features.kind == "descriptors":
        return ("one regression on the descriptors of its one clip" if clips == 1
                else f"one regression on the descriptors of all {clips} clips together")
    return "the probabilities of its one clip" if clips == 1 else f"the mean of the {clips} clips' probabilities"


def analyze_track(path: Path, model: LoadedModel) -> TrackResult:
    """Classify one file; a file that cannot be decoded gives a failed TrackResult with the cause."""
    spec = model.spec
    ident = {"model_name": spec.name, "model_version": spec.version}
    try:
        clips = load_clips(path, plan=spec.clips, sample_rate=spec.sample_rate)
    except AudioError as exc:
        return TrackResult.failed(path, str(exc), duration=exc.duration, **ident)
    except Exception as exc:  # a decoder bug must not stop a library scan
        return TrackResult.failed(path, f"cannot decode ({type(exc).__name__}: {exc})", **ident)
    sounding = sounding_clips(clips.samples, spec.sample_rate)
    if not sounding.any():
        return TrackResult.failed(path, "silent: no clip sounds above -80 dBFS for 5% of its length "
                                        f"({clips.starts[0]:.1f}-{clips.starts[-1] + spec.clips.seconds:.1f} s)",
                                  duration=clips.duration, **ident)
    try:
        mean, per_clip = predict(model, clips.samples if sounding.all() else clips.samples[sounding])
    except Exception as exc:
        return TrackResult.failed(path, f"model failed ({type(exc).__name__}: {exc})",
                                  duration=clips.duration, **ident)
    if not np.all(np.isfinite(mean)):
        return TrackResult.failed(path, "model failed (its scores are not numbers)", duration=clips.duration,
                                  **ident)
    mood, confidence = decide(spec, mean)
    return TrackResult(
        path=path, mood=mood, confidence=confidence,
        scores={label: float(p) for label, p in zip(spec.labels, mean)},
        clips=clip_scores(spec, clips.starts, per_clip, sounding),
        duration=clips.duration, **ident)
