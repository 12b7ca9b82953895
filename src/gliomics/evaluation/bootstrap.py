"""Percentile bootstrap confidence intervals: of a mean and of a difference of two means (SciPy), of a paired
difference of AUCs, and of an F1 score."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

__all__ = ["f1_ci_bootstrap", "mean_ci", "mean_difference_ci", "paired_auc_difference_ci"]


def _finite(values: Sequence[float | None]) -> np.ndarray:
    return np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)


def mean_ci(values: Sequence[float | None], n_boot: int = 2000, seed: int = 0) -> dict[str, float] | None:
    """Mean with a percentile bootstrap 95% CI (SciPy); NaNs and Nones are dropped."""
    arr = _finite(values)
    if arr.size == 0:
        return None
    if arr.size < 2 or np.all(arr == arr[0]):
        return {"mean": float(arr.mean()), "lo": float(arr.mean()), "hi": float(arr.mean()), "n": int(arr.size)}
    res = stats.bootstrap((arr,), np.mean, n_resamples=n_boot, confidence_level=0.95, method="percentile",
                          random_state=np.random.default_rng(seed))
    return {"mean": float(arr.mean()), "lo": float(res.confidence_interval.low),
            "hi": float(res.confidence_interval.high), "n": int(arr.size)}


def mean_difference_ci(a: Sequence[float | None], b: Sequence[float | None], n_boot: int = 2000,
                       seed: int = 0) -> dict[str, float] | None:
    """``mean(a) - mean(b)`` of two independent groups, with a percentile bootstrap 95% CI (each group resampled on
    its own); None unless both groups have at least two values."""
    x, y = _finite(a), _finite(b)
    if x.size < 2 or y.size < 2:
        return None
    diff = float(x.mean() - y.mean())
    res = stats.bootstrap((x, y), lambda u, v, axis=-1: u.mean(axis) - v.mean(axis), n_resamples=n_boot,
                          confidence_level=0.95, method="percentile", random_state=np.random.default_rng(seed))
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if math.isnan(lo):  # every resample gave the same difference
        lo = hi = diff
    return {"mean": diff, "lo": lo, "hi": hi, "n_a": int(x.size), "n_b": int(y.size)}


def paired_auc_difference_ci(y: Sequence[int], p_a: Sequence[float], p_b: Sequence[float], n_boot: int = 2000,
                             seed: int = 0) -> dict[str, float] | None:
    """``AUC(p_a) - AUC(p_b)`` on the same cases, with a paired percentile bootstrap 95% CI (the cases resampled
    together; resamples with one class only are skipped); None unless both classes are present."""
    from sklearn.metrics import roc_auc_score

    y, a, b = np.asarray(y, dtype=int), np.asarray(p_a, dtype=float), np.asarray(p_b, dtype=float)
    if len(set(y.tolist())) < 2:
        return None
    diff = float(roc_auc_score(y, a) - roc_auc_score(y, b))
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        if 0 < y[idx].sum() < len(idx):
            samples.append(roc_auc_score(y[idx], a[idx]) - roc_auc_score(y[idx], b[idx]))
    lo, hi = (np.percentile(samples, [2.5, 97.5]) if samples else (diff, diff))
    return {"mean": diff, "lo": float(lo), "hi": float(hi), "n": int(len(y))}


def f1_ci_bootstrap(y: Sequence[int], pred: Sequence[int], n_boot: int = 2000, alpha: float = 0.05,
                    seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the F1 score over patients (resamples where F1 is undefined are left out)."""
    y, pred = np.asarray(y, dtype=np.int64), np.asarray(pred, dtype=np.int64)
    if y.size == 0:
        return math.nan, math.nan
    idx = np.random.default_rng(seed).integers(0, y.size, size=(n_boot, y.size))
    yy, pp = y[idx], pred[idx]
    tp = ((yy == 1) & (pp == 1)).sum(axis=1)
    wrong = (yy != pp).sum(axis=1)
    den = 2 * tp + wrong
    f1 = np.where(den > 0, 2 * tp / np.maximum(den, 1), np.nan)
    if np.isnan(f1).all():
        return math.nan, math.nan
    lo, hi = np.nanquantile(f1, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)
