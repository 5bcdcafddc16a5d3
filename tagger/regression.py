"""The descriptor model at inference: standardise, a linear map, softmax; numpy only (no torch)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TENSORS = ("mean", "scale", "linear.weight", "linear.bias")


@dataclass(frozen=True)
class DescriptorRegression:
    """Multinomial logistic regression on standardised descriptors: logits = W ((x - mean) / scale) + b.
    A binary model has its first row and bias at zero, so softmax gives the regression's P(label 1)."""

    mean: np.ndarray      # (n_features,)
    scale: np.ndarray     # (n_features,)
    weight: np.ndarray    # (n_labels, n_features)
    bias: np.ndarray      # (n_labels,)

    @classmethod
    def from_tensors(cls, tensors: dict, *, n_features: int, n_labels: int) -> "DescriptorRegression":
        """From a model file's tensors; ValueError if one is missing or has the wrong shape."""
        missing = [k for k in TENSORS if k not in tensors]
        if missing:
            raise ValueError(f"missing tensor {missing[0]!r}")
        model = cls(*(np.asarray(tensors[k], dtype=np.float64) for k in TENSORS))
        shapes = {"mean": (n_features,), "scale": (n_features,), "linear.weight": (n_labels, n_features),
                  "linear.bias": (n_labels,)}
        for key, value in zip(TENSORS, (model.mean, model.scale, model.weight, model.bias)):
            if value.shape != shapes[key]:
                raise ValueError(f"tensor {key!r} has shape {value.shape}, the spec needs {shapes[key]}")
        if not np.all(model.scale > 0):
            raise ValueError("tensor 'scale' must be positive")
        return model

    def tensors(self) -> dict[str, np.ndarray]:
        return {k: np.ascontiguousarray(v, dtype=np.float32)
                for k, v in zip(TENSORS, (self.mean, self.scale, self.weight, self.bias))}

    def logits(self, x: np.ndarray) -> np.ndarray:
        """(n, n_features) raw descriptor values -> (n, n_labels)."""
        return ((np.atleast_2d(x) - self.mean) / self.scale) @ self.weight.T + self.bias

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        return softmax(self.logits(x))


def softmax(z: np.ndarray) -> np.ndarray:
    """(n, n_labels) logits -> probabilities, row by row."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
