"""Classification metrics in plain numpy (no scikit-learn at runtime).

Labels are integer indices 0..n_labels-1; `scores` are (n, n_labels) probabilities.
"""
from __future__ import annotations

import numpy as np


def confusion_matrix(y_true, y_pred, n_labels: int) -> np.ndarray:
    """(n_labels, n_labels) counts: rows are true labels, columns predicted ones."""
    m = np.zeros((n_labels, n_labels), dtype=np.int64)
    np.add.at(m, (np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)), 1)
    return m


def accuracy(y_true, y_pred) -> float | None:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean(y_true == y_pred)) if len(y_true) else None


def balanced_accuracy(y_true, y_pred, n_labels: int) -> float | None:
    """Mean recall over the labels present in y_true (None when y_true is empty)."""
    m = confusion_matrix(y_true, y_pred, n_labels)
    support = m.sum(axis=1)
    present = support > 0
    if not present.any():
        return None
    return float(np.mean(np.diag(m)[present] / support[present]))


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(len(x), dtype=np.float64)
    i = 0
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and xs[j + 1] == xs[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def binary_auc(positive, score) -> float | None:
    """ROC-AUC of `score` for the boolean `positive` (Mann-Whitney U); None if one class is absent."""
    positive = np.asarray(positive, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = _average_ranks(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_auc(y_true, scores) -> float | None:
    """Binary: AUC of P(label 1). More labels: mean one-vs-rest AUC over the labels present."""
    y_true = np.asarray(y_true, dtype=int)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape[1] == 2:
        return binary_auc(y_true == 1, scores[:, 1])
    aucs = [binary_auc(y_true == k, scores[:, k]) for k in range(scores.shape[1])]
    aucs = [a for a in aucs if a is not None]
    return float(np.mean(aucs)) if aucs else None


def predict(scores, threshold: float | None) -> np.ndarray:
    """(n, n_labels) probabilities -> label indices, as `analyze.decide` does: a binary model with a
    threshold picks label 1 when P(label 1) >= threshold; otherwise the most probable label."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape[1] == 2 and threshold is not None:
        return (scores[:, 1] >= threshold).astype(int)
    return np.argmax(scores, axis=1)


def best_threshold(y_true, p_positive) -> float:
    """The threshold on P(label 1) that maximises balanced accuracy (ties: the one nearest 0.5).

    Candidates are midpoints between consecutive distinct scores; 0.5 when one class is absent."""
    y_true = np.asarray(y_true, dtype=int)
    p = np.asarray(p_positive, dtype=np.float64)
    if len(set(y_true.tolist())) < 2:
        return 0.5
    values = np.unique(p)
    candidates = np.concatenate([[0.5], (values[1:] + values[:-1]) / 2, [values[0] - 1e-6, values[-1] + 1e-6]])
    candidates = np.clip(candidates, 0.0, 1.0)
    best, best_score = 0.5, -1.0
    for t in sorted(candidates, key=lambda c: abs(c - 0.5)):
        score = balanced_accuracy(y_true, (p >= t).astype(int), 2)
        if score > best_score + 1e-12:
            best, best_score = float(t), score
    return round(best, 4)
