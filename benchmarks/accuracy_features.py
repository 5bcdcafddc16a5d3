"""Hand features for benchmarks/grouped_cv.py: one track's default-plan clips -> named scalars.

Every descriptor the default model uses comes from `tagger.descriptors` (the code inference runs;
tests/test_descriptors.py checks it against librosa). The baseline's tempo is the one thing added:
  tempo   librosa.feature.tempo of each clip's onset envelope, averaged over the clips (on a 5 s clip
          this is mostly librosa's 120 bpm prior: the research found it carries almost nothing)
"""
from __future__ import annotations

import numpy as np

from tagger import descriptors

FEATURES = ("tempo",) + descriptors.NAMES
VERSION = 4  # 4: flux_mid; bump when a feature's definition changes: cached values are then recomputed


def track_features(clips: np.ndarray, *, sample_rate: int) -> dict[str, float]:
    """(n_clips, n_samples) float32, the default plan's contiguous clips -> every name in FEATURES."""
    import librosa

    clips = np.asarray(clips, dtype=np.float32)
    out, _ = descriptors.track_descriptors(clips, sample_rate)
    _, Sdb = descriptors.mels(clips, sample_rate)
    tempos = [librosa.feature.tempo(onset_envelope=descriptors.onset_strength(m), sr=sample_rate,
                                    hop_length=descriptors.HOP)[0] for m in Sdb]
    out["tempo"] = float(np.mean(tempos))
    return out
