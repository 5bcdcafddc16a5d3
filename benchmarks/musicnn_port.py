"""The musicnn tagger (Pons & Serra 2019; musicnn 0.1.0, ISC) as a frozen embedding, in torch.

The weights are benchmarks/data/musicnn/*.safetensors, converted from the package's TensorFlow checkpoints by
benchmarks/convert_musicnn.py; tests/test_musicnn.py holds this port to a golden from the original. The
network reads 3 s patches (187 frames) of a 96-band log-compressed mel spectrogram at 16 kHz:

    front end   batch norm; timbral convolutions (7 x 38, 7 x 67 time x frequency, 204 filters each) and
                temporal ones (128, 64, 32 x 1, 51 filters each), ReLU, batch norm, max over frequency
    mid end     three 7-frame convolutions over the 561 front-end features (64 filters), the last two residual
    back end    max and mean over time of the 753 dense-connected features, batch norm, dense 200 (ReLU, batch
                norm: "penultimate"), dense 50: the tags' logits
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SAMPLE_RATE = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
FRAMES = 187          # 3 s: librosa.time_to_frames(3, sr=16000, hop_length=256, n_fft=512) + 1
EPS = 1e-3            # tf.compat.v1.layers.batch_normalization's default
TIMBRAL = {"timbral74": 38, "timbral77": 67}      # kernel height in mel bands: int(0.4 * 96), int(0.7 * 96)
TEMPORAL = {"temporal128": 128, "temporal64": 64, "temporal32": 32}
LAYERS = ("taggram", "penultimate", "mean_pool", "max_pool")


def weights_dir() -> Path:
    """benchmarks/data/musicnn: the converted weights, kept with the study (not shipped in the wheel)."""
    return Path(__file__).resolve().parent / "data" / "musicnn"


def log_mel(samples: np.ndarray) -> np.ndarray:
    """(n_clips, n_samples) at 16 kHz -> (n_clips, frames, 96) as musicnn's extractor computes it:
    librosa's centred power mel spectrogram, rounded to float16 (the training data's storage), then
    log10(10000 x + 1). The extractor took that product in float16 too (numpy < 1.17's casting), which
    overflows to infinity above 6.55 (up to 3 % of the bins of a loud game track); here it is float32."""
    from tagger.filters import mel_power

    S = mel_power(np.atleast_2d(samples).astype(np.float32), SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS)
    S = np.minimum(S, np.finfo(np.float16).max).astype(np.float16).astype(np.float32)
    return np.log10(10000 * S + 1).transpose(0, 2, 1)


def patches(mel: np.ndarray, hop: int) -> np.ndarray:
    """(n_clips, frames, 96) -> (n_clips * k, 187, 96): patches every `hop` frames, the last one flush with
    the clip's end so every frame is read."""
    n = mel.shape[1]
    if n < FRAMES:
        raise ValueError(f"a clip of {n} frames is shorter than one {FRAMES}-frame patch")
    starts = list(range(0, n - FRAMES + 1, hop))
    if starts[-1] != n - FRAMES:
        starts.append(n - FRAMES)
    return np.stack([mel[:, s:s + FRAMES] for s in starts], axis=1).reshape(-1, FRAMES, mel.shape[2])


class Musicnn(nn.Module):
    """musicnn's build_musicnn (num_filt_midend=64, num_units_backend=200), inference only."""

    def __init__(self, n_tags: int = 50) -> None:
        super().__init__()
        self.input_bn = nn.BatchNorm2d(1, eps=EPS)
        for name, height in TIMBRAL.items():
            setattr(self, name, nn.Conv2d(1, 204, (7, height)))
            setattr(self, name + "_bn", nn.BatchNorm2d(204, eps=EPS))
        for name, length in TEMPORAL.items():
            setattr(self, name, nn.Conv2d(1, 51, (length, 1)))
            setattr(self, name + "_bn", nn.BatchNorm2d(51, eps=EPS))
        self.mid1 = nn.Conv1d(561, 64, 7)
        self.mid2 = nn.Conv1d(64, 64, 7)
        self.mid3 = nn.Conv1d(64, 64, 7)
        for name in ("mid1_bn", "mid2_bn", "mid3_bn"):
            setattr(self, name, nn.BatchNorm1d(64, eps=EPS))
        self.pool_bn = nn.BatchNorm1d(1506, eps=EPS)
        self.dense = nn.Linear(1506, 200)
        self.dense_bn = nn.BatchNorm1d(200, eps=EPS)
        self.logits = nn.Linear(200, n_tags)

    def _branch(self, x: torch.Tensor, name: str, pad: tuple[int, int]) -> torch.Tensor:
        """conv (time padded by `pad`) -> ReLU -> batch norm -> max over frequency: (B, filters, time)."""
        y = F.relu(getattr(self, name)(F.pad(x, (0, 0, *pad))))
        return getattr(self, name + "_bn")(y).amax(dim=3)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: (B, 187, 96) log-mel patches -> {"taggram": sigmoid of the logits (B, 50), "penultimate" (B, 200),
        "mean_pool", "max_pool" (B, 753)}."""
        x = self.input_bn(x[:, None])
        # TensorFlow's "same" for an even kernel k pads (k - 1) // 2 before and k // 2 after
        front = [self._branch(x, name, (3, 3)) for name in TIMBRAL]
        front += [self._branch(x, name, ((k - 1) // 2, k // 2)) for name, k in TEMPORAL.items()]
        front = torch.cat(front, dim=1)                                  # (B, 561, T)
        m1 = self.mid1_bn(F.relu(self.mid1(F.pad(front, (3, 3)))))
        m2 = self.mid2_bn(F.relu(self.mid2(F.pad(m1, (3, 3))))) + m1
        m3 = self.mid3_bn(F.relu(self.mid3(F.pad(m2, (3, 3))))) + m2
        feats = torch.cat([front, m1, m2, m3], dim=1)                    # (B, 753, T)
        max_pool, mean_pool = feats.amax(dim=2), feats.mean(dim=2)
        flat = torch.stack([max_pool, mean_pool], dim=2).flatten(1)      # TF flattens (753, 2): max, mean, max, ...
        penultimate = self.dense_bn(F.relu(self.dense(self.pool_bn(flat))))
        return {"taggram": torch.sigmoid(self.logits(penultimate)), "penultimate": penultimate,
                "mean_pool": mean_pool, "max_pool": max_pool}


@dataclass(frozen=True)
class Tagger:
    """A converted musicnn model: its network (eval mode) and what its file says of itself."""

    name: str
    network: Musicnn
    info: dict

    @property
    def labels(self) -> list[str]:
        return self.info["labels"]


def load_tagger(path: Path) -> Tagger:
    """A converted file (benchmarks/convert_musicnn.py) -> Tagger; safetensors only, nothing executable."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as fh:
        info = json.loads(fh.metadata()["musicnn"])
    net = Musicnn(len(info["labels"]))
    tensors = load_file(str(path))
    expected = {k for k in net.state_dict() if not k.endswith("num_batches_tracked")}
    if set(tensors) != expected:
        raise ValueError(f"{path}: tensors differ from musicnn's: {sorted(set(tensors) ^ expected)[:3]}")
    net.load_state_dict(tensors, strict=False)
    return Tagger(info["model"], net.eval(), info)


@lru_cache(maxsize=4)
def shipped_tagger(name: str) -> Tagger:
    return load_tagger(weights_dir() / f"{name}.safetensors")


def embed(tagger: Tagger, mel_patches: np.ndarray, *, batch: int = 16) -> dict[str, np.ndarray]:
    """(n, 187, 96) patches -> each of LAYERS, (n, width) float32."""
    outs: dict[str, list] = {k: [] for k in LAYERS}
    with torch.inference_mode():
        for i in range(0, len(mel_patches), batch):
            got = tagger.network(torch.from_numpy(np.ascontiguousarray(mel_patches[i:i + batch])))
            for k in LAYERS:
                outs[k].append(got[k].numpy())
    return {k: np.concatenate(v) for k, v in outs.items()}
