"""Benchmark metrics in numpy: AUROC, AUPRC, R², Pearson, their macro averages and bootstrap intervals.

Classification metrics take probabilities (or any scores), never thresholded labels. For 2-D inputs
``(n, k)`` each column is one label/target and the metric is the mean over columns where it is defined
(both classes present; non-constant targets).
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def _ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(len(x), dtype=np.float64)
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], len(x)]
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = (s + 1 + e) / 2
    return ranks


def auroc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half); NaN when one class is absent."""
    y = np.asarray(y_true).astype(bool).ravel()
    s = np.asarray(y_score, dtype=np.float64).ravel()
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r = _ranks(s)
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auprc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Average precision: sum over score thresholds of precision × recall increment (tied scores form one step)."""
    y = np.asarray(y_true).astype(bool).ravel()
    s = np.asarray(y_score, dtype=np.float64).ravel()
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == len(y):
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last_of_tie = np.r_[s[1:] != s[:-1], True]
    tp = np.cumsum(y)[last_of_tie]
    seen = (np.flatnonzero(last_of_tie) + 1).astype(np.float64)
    precision = tp / seen
    recall_step = np.diff(np.r_[0, tp]) / n_pos
    return float(np.sum(precision * recall_step))


def r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Coefficient of determination 1 - SS_res / SS_tot; NaN for a constant target."""
    y = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    ss_tot = np.sum((y - y.mean()) ** 2)
    if ss_tot == 0:
        return float("nan")
    return float(1 - np.sum((y - p) ** 2) / ss_tot)


def pearson(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Pearson correlation; NaN when either side is constant."""
    y = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    yc, pc = y - y.mean(), p - p.mean()
    denom = np.sqrt(np.sum(yc**2) * np.sum(pc**2))
    if denom == 0:
        return float("nan")
    return float(np.sum(yc * pc) / denom)


_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "auroc": auroc,
    "auprc": auprc,
    "r2": r2,
    "pearson": pearson,
}


def per_label(name: str, y_true: np.ndarray, y_pred: np.ndarray) -> list[float]:
    """Metric ``name`` of each column of ``(n, k)`` inputs (NaN where undefined); 1-D inputs are one column.

    Inputs with more dimensions ``(n, ..., k)`` are flattened to ``(n·..., k)`` first (CAGE: bins × tracks).
    """
    fn = _METRICS[name]
    y, p = np.asarray(y_true), np.asarray(y_pred)
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and predictions {p.shape} differ in shape")
    if y.ndim == 1:
        return [fn(y, p)]
    y, p = y.reshape(-1, y.shape[-1]), p.reshape(-1, p.shape[-1])
    return [fn(y[:, j], p[:, j]) for j in range(y.shape[1])]


def macro(name: str, y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Metric ``name`` on 1-D inputs, or its mean over the columns (:func:`per_label`) where it is defined."""
    values = np.array(per_label(name, y_true, y_pred))
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


def bootstrap_ci(
    name: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    n: int,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of :func:`macro` over ``n`` resamples of the examples (axis 0)."""
    y, p = np.asarray(y_true), np.asarray(y_pred)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n):
        idx = rng.integers(0, len(y), len(y))
        v = macro(name, y[idx], p[idx])
        if not np.isnan(v):
            values.append(v)
    if not values:
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)
