"""The descriptor model at inference: (a quantile-normal transform,) standardise, a linear map, softmax;
numpy and scipy only (no torch)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TENSORS = ("mean", "scale", "linear.weight", "linear.bias")
QUANTILES = "quantiles"  # optional: (n_quantiles, n_features), the training data's quantiles
BOUNDS = 1e-7  # scikit-learn's QuantileTransformer: how close to 0 or 1 a quantile may get


@dataclass(frozen=True)
class DescriptorRegression:
    """Multinomial logistic regression on standardised descriptors: logits = W ((t(x) - mean) / scale) + b,
    t the quantile-normal transform when `quantiles` are given (each descriptor mapped through the
    training data's distribution onto a standard normal: a track far outside the training range counts
    as very high or very low, not as 10 standard deviations), else the identity. A binary model has its
    first row and bias at zero, so softmax gives the regression's P(label 1)."""

    mean: np.ndarray      # (n_features,)
    scale: np.ndarray     # (n_features,)
    weight: np.ndarray    # (n_labels, n_features)
    bias: np.ndarray      # (n_labels,)
    quantiles: np.ndarray | None = None  # (n_quantiles, n_features)

    @classmethod
    def from_tensors(cls, tensors: dict, *, n_features: int, n_labels: int) -> "DescriptorRegression":
        """From a model file's tensors; ValueError if one is missing or has the wrong shape."""
        missing = [k for k in TENSORS if k not in tensors]
        if missing:
            raise ValueError(f"missing tensor {missing[0]!r}")
        q = tensors.get(QUANTILES)
        model = cls(*(np.asarray(tensors[k], dtype=np.float64) for k in TENSORS),
                    quantiles=None if q is None else np.asarray(q, dtype=np.float64))
        shapes = {"mean": (n_features,), "scale": (n_features,), "linear.weight": (n_labels, n_features),
                  "linear.bias": (n_labels,)}
        for key, value in zip(TENSORS, (model.mean, model.scale, model.weight, model.bias)):
            if value.shape != shapes[key]:
                raise ValueError(f"tensor {key!r} has shape {value.shape}, the spec needs {shapes[key]}")
        if not np.all(model.scale > 0):
            raise ValueError("tensor 'scale' must be positive")
        if model.quantiles is not None:
            qs = model.quantiles
            if qs.ndim != 2 or qs.shape[1] != n_features or qs.shape[0] < 2:
                raise ValueError(f"tensor 'quantiles' has shape {qs.shape}, the spec needs (n >= 2, {n_features})")
            if not np.all(np.isfinite(qs)) or np.any(np.diff(qs, axis=0) < 0):
                raise ValueError("tensor 'quantiles' must be finite and non-decreasing down each column")
        return model

    def tensors(self) -> dict[str, np.ndarray]:
        out = {k: np.ascontiguousarray(v, dtype=np.float32)
               for k, v in zip(TENSORS, (self.mean, self.scale, self.weight, self.bias))}
        if self.quantiles is not None:
            # float64: the transform compares raw values against these, so keep them as fitted
            out[QUANTILES] = np.ascontiguousarray(self.quantiles, dtype=np.float64)
        return out

    def standardised(self, x: np.ndarray) -> np.ndarray:
        """(n, n_features) raw descriptor values -> what the linear map sees."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        if self.quantiles is not None:
            x = quantile_normal(x, self.quantiles)
        return (x - self.mean) / self.scale

    def logits(self, x: np.ndarray) -> np.ndarray:
        """(n, n_features) raw descriptor values -> (n, n_labels)."""
        return self.standardised(x) @ self.weight.T + self.bias

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        return softmax(self.logits(x))


def softmax(z: np.ndarray) -> np.ndarray:
    """(n, n_labels) logits -> probabilities, row by row."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def quantile_normal(x: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """scikit-learn's QuantileTransformer(output_distribution="normal").transform, from its fitted
    quantiles (n_quantiles, n_features): each value's rank in the training distribution (interpolated
    both ways, so that ties sit in the middle), then the standard normal quantile of that rank; values
    at or beyond the training range map to the ends (about ±5.2)."""
    from scipy.special import ndtri

    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    refs = np.linspace(0.0, 1.0, quantiles.shape[0])
    lo, hi = ndtri(BOUNDS - np.spacing(1)), ndtri(1 - (BOUNDS - np.spacing(1)))
    out = np.empty_like(x)
    for j in range(x.shape[1]):
        q, col = quantiles[:, j], x[:, j]
        u = 0.5 * (np.interp(col, q, refs) - np.interp(-col, -q[::-1], -refs[::-1]))
        u[col + BOUNDS > q[-1]] = 1.0
        u[col - BOUNDS < q[0]] = 0.0
        with np.errstate(divide="ignore"):
            out[:, j] = np.clip(ndtri(u), lo, hi)
    return out


def fit_quantiles(X: np.ndarray, n_quantiles: int) -> np.ndarray:
    """The quantiles QuantileTransformer(n_quantiles) stores: evenly spaced ranks, linear interpolation
    (at most one per track)."""
    n = min(n_quantiles, len(X))
    return np.percentile(np.asarray(X, dtype=np.float64), np.linspace(0.0, 100.0, n), axis=0)
