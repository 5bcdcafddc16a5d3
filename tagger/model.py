"""The networks (architecture only). A model file's spec names which one to build."""
from __future__ import annotations

import torch
from torch import nn


class SeedCNN(nn.Module):
    """The seed project's CNN: 5 x [Conv3x3 -> BN -> ReLU -> MaxPool2], then 4096 -> 120 -> 80 -> labels.

    With a 3 x 128 x 128 input the last block leaves 256 x 4 x 4 = 4096 features.
    """

    def __init__(self, n_labels: int, *, in_channels: int = 3, input_size: int = 128,
                 channels: tuple[int, ...] = (16, 32, 64, 128, 256), hidden: tuple[int, ...] = (120, 80),
                 dropout: float = 0.3) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        prev = in_channels
        for ch in channels:
            blocks += [nn.Conv2d(prev, ch, kernel_size=3, stride=1, padding=1), nn.BatchNorm2d(ch),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2, 2)]
            prev = ch
        self.features = nn.Sequential(*blocks)
        side = input_size // (2 ** len(channels))
        flat = prev * side * side
        layers: list[nn.Module] = [nn.Flatten()]
        for width in hidden:
            layers += [nn.Linear(flat, width), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            flat = width
        layers.append(nn.Linear(flat, n_labels))
        self.classifier = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, channels, H, W) -> logits (batch, n_labels)."""
        return self.classifier(self.features(x))


ARCHITECTURES = {"seed_cnn": SeedCNN}


def build_model(architecture: dict, n_labels: int) -> nn.Module:
    """Build an untrained network from a spec's `architecture` entry: {"name": ..., **kwargs}."""
    params = dict(architecture)
    name = params.pop("name")
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r} (known: {', '.join(ARCHITECTURES)})")
    for key, value in list(params.items()):
        if isinstance(value, list):
            params[key] = tuple(value)
    return ARCHITECTURES[name](n_labels, **params)
