"""musicnn embeddings of the real-recordings study's tracks (benchmarks/real_cv.py --embeddings).

The clips are the default plan's (5 x 5 s spread over the middle 60 %, real_features.PLAN), decoded at
musicnn's 16 kHz; each clip's log-mel spectrogram (313 frames) gives two overlapping 3 s patches (frames
0-186 and 126-312), ten a track. Every patch goes through both converted taggers (benchmarks/musicnn_port.py:
MTT_musicnn, MSD_musicnn); a track's features are each layer's mean over its ten patches (and, for the
taggram and the penultimate layer, the standard deviation too), named "<model>/<layer>/<stat>".
"""
from __future__ import annotations

import numpy as np

import real_features

VERSION = 1
MODELS = ("MTT_musicnn", "MSD_musicnn")
PATCH_HOP = 126   # frames between a clip's patches: 0 and 126 cover its 313 frames
WITH_STD = ("taggram", "penultimate")


def altered_clips(path: str, alteration: str) -> np.ndarray:
    """The default plan's clips at 16 kHz under an alteration (the same ones real_features makes)."""
    from pathlib import Path

    import musicnn_port as musicnn
    from tagger.audio import load_clips

    if alteration == "original":
        return load_clips(Path(path), plan=real_features.PLAN, sample_rate=musicnn.SAMPLE_RATE).samples
    if alteration == "gain-6db":
        return (altered_clips(path, "original") * 10 ** (-6 / 20)).astype(np.float32)
    if alteration == "treble+3db":
        return real_features.treble_shelf(altered_clips(path, "original"), musicnn.SAMPLE_RATE)
    if alteration == "mp3-128k":
        import tempfile

        from tagger import synth

        with tempfile.TemporaryDirectory() as tmp:
            audio = synth.decode_whole(Path(path), sample_rate=44100)
            mp3 = synth.encode(audio, Path(tmp) / "x.mp3", bitrate=128_000)
            return load_clips(mp3, plan=real_features.PLAN, sample_rate=musicnn.SAMPLE_RATE).samples
    raise ValueError(alteration)


def track_embedding(samples: np.ndarray) -> dict[str, list[float]]:
    """(n_clips, n_samples) at 16 kHz -> {"<model>/<layer>/mean" (and /std): values}."""
    import musicnn_port as musicnn

    patches = musicnn.patches(musicnn.log_mel(samples), PATCH_HOP)
    out = {}
    for model in MODELS:
        layers = musicnn.embed(musicnn.shipped_tagger(model), patches)
        for layer, values in layers.items():
            out[f"{model}/{layer}/mean"] = values.mean(axis=0).round(6).tolist()
            if layer in WITH_STD:
                out[f"{model}/{layer}/std"] = values.std(axis=0).round(6).tolist()
    return out


def compute(path: str, alteration: str) -> dict:
    import torch

    from tagger.errors import AudioError

    torch.set_num_threads(2)
    try:
        samples = altered_clips(path, alteration)
    except AudioError as exc:
        return {"path": path, "error": str(exc)}
    return {"path": path, "embedding": track_embedding(samples)}
