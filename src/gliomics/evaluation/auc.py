"""Areas under the ROC curve with confidence intervals, and the paired DeLong test, for one marker at a time.

``y`` holds the labels (1 = altered, 0 = not) and ``p`` the predicted probabilities of the same cases. The DeLong
variance has no library implementation and follows the fast algorithm of

- E. R. DeLong, D. M. DeLong, D. L. Clarke-Pearson. "Comparing the areas under two or more correlated receiver
  operating characteristic curves: a nonparametric approach." Biometrics 44(3):837-845, 1988.
- X. Sun, W. Xu. "Fast implementation of DeLong's algorithm for comparing the areas under correlated receiver
  operating characteristic curves." IEEE Signal Processing Letters 21(11):1389-1393, 2014.
  https://doi.org/10.1109/LSP.2014.2337313

An AUC with one class present is NaN; malformed input raises ``ValueError``.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
from scipy import stats

logger = logging.getLogger(__name__)

__all__ = ["auc_ci_bootstrap", "auc_ci_delong", "auc_delong", "delong_test"]

#: Upper bound on the number of bootstrap scores computed at once (rows × cases), to bound memory.
_BOOT_CHUNK_ELEMENTS = 2_000_000

# ---------------------------------------------------------------- input checks


def _labels(y: Any, name: str = "y") -> np.ndarray:
    """Labels as a 1-D int array of 0/1; raises ``ValueError`` for anything else (NaN included)."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.int64)
    try:
        values = arr.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must hold 0/1 labels, got dtype {arr.dtype}") from exc
    bad = ~np.isin(values, (0.0, 1.0))
    if bad.any():
        raise ValueError(f"{name} must hold 0/1 labels (1 = altered); found {np.unique(values[bad])[:5].tolist()}")
    return values.astype(np.int64)


def _scores(p: Any, n: int, name: str = "p", probability: bool = False) -> np.ndarray:
    """Scores as a finite 1-D float array of length ``n`` (within [0, 1] if ``probability``)."""
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must be 1-D with {n} values like the labels, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds {int((~np.isfinite(arr)).sum())} non-finite values")
    if probability and arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
        raise ValueError(f"{name} must be probabilities in [0, 1], got range [{arr.min():.4g}, {arr.max():.4g}]")
    return arr


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def _both_classes(y: np.ndarray) -> bool:
    return y.size >= 2 and 0 < int(y.sum()) < y.size


# ---------------------------------------------------------------- DeLong


def _fast_delong(scores: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """AUCs and their DeLong covariance for k models, by the midrank algorithm of Sun & Xu (2014).

    Args:
        scores: k × N scores, the ``m`` positive cases first, then the ``N - m`` negative ones.
        m: Number of positive cases.

    Returns:
        The k AUCs and the k × k covariance matrix S10/m + S01/n (NaN if a class has a single case).
    """
    n = scores.shape[1] - m
    x, y = scores[:, :m], scores[:, m:]
    tx = stats.rankdata(x, axis=1)  # midranks within the positives
    ty = stats.rankdata(y, axis=1)  # within the negatives
    tz = stats.rankdata(scores, axis=1)  # within all cases
    # Placement values: V10 = share of negatives below a positive, V01 = share of positives above a negative
    # (ties count one half). Their means are both the AUC (the Mann-Whitney statistic).
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    aucs = v10.mean(axis=1)
    k = scores.shape[0]
    if m < 2 or n < 2:
        return aucs, np.full((k, k), np.nan)
    s10 = np.atleast_2d(np.cov(v10))
    s01 = np.atleast_2d(np.cov(v01))
    return aucs, s10 / m + s01 / n


def _ordered(y: np.ndarray, *score_arrays: np.ndarray) -> tuple[np.ndarray, int]:
    """Stack the score arrays (k × N) with the positive cases first, as :func:`_fast_delong` expects."""
    order = np.argsort(-y, kind="stable")
    return np.vstack([s[order] for s in score_arrays]), int(y.sum())


def auc_delong(y: Any, p: Any) -> tuple[float, float]:
    """ROC AUC and its DeLong variance (fast algorithm of Sun & Xu 2014).

    Args:
        y: Labels, 1 = altered, 0 = not.
        p: Scores of the same cases; any monotone score works (higher means more likely altered).

    Returns:
        ``(auc, var)``. The AUC is NaN if only one class is present; the variance also when a class has a
        single case.
    """
    y = _labels(y)
    p = _scores(p, y.size)
    if not _both_classes(y):
        return math.nan, math.nan
    scores, m = _ordered(y, p)
    aucs, cov = _fast_delong(scores, m)
    return float(aucs[0]), float(cov[0, 0])


def auc_ci_delong(y: Any, p: Any, alpha: float = 0.05) -> tuple[float, float, float]:
    """ROC AUC with the normal-approximation CI ``auc ± z·sqrt(var_DeLong)`` on the AUC scale, clipped to [0, 1].

    Args:
        y: Labels, 1 = altered, 0 = not.
        p: Scores of the same cases.
        alpha: 1 − confidence level (0.05 gives a 95% CI).

    Returns:
        ``(auc, lo, hi)``, all NaN if the AUC is undefined.
    """
    _check_alpha(alpha)
    auc, var = auc_delong(y, p)
    if math.isnan(auc) or math.isnan(var):
        return auc, math.nan, math.nan
    half = stats.norm.ppf(1.0 - alpha / 2.0) * math.sqrt(max(var, 0.0))
    return auc, float(max(0.0, auc - half)), float(min(1.0, auc + half))


def _rank_aucs(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Row-wise Mann-Whitney AUCs of B × N scores with B × N 0/1 labels (each row must hold both classes)."""
    ranks = stats.rankdata(scores, axis=1)
    n_pos = labels.sum(axis=1)
    n_neg = labels.shape[1] - n_pos
    return ((ranks * labels).sum(axis=1) - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def _stratified_boot_aucs(y: np.ndarray, p: np.ndarray, n_boot: int, chunk: int,
                          rng: np.random.Generator) -> list[np.ndarray]:
    """AUCs of ``n_boot`` resamples that redraw positives and negatives separately, ``chunk`` resamples at a
    time."""
    boot: list[np.ndarray] = []
    collected = 0
    pos, neg = p[y == 1], p[y == 0]
    labels = np.concatenate([np.ones(pos.size), np.zeros(neg.size)])
    while collected < n_boot:
        rows = min(chunk, n_boot - collected)
        scores = np.hstack([rng.choice(pos, size=(rows, pos.size)), rng.choice(neg, size=(rows, neg.size))])
        boot.append(_rank_aucs(scores, np.broadcast_to(labels, scores.shape)))
        collected += rows
    return boot


def _pooled_boot_aucs(y: np.ndarray, p: np.ndarray, n_boot: int, chunk: int,
                      rng: np.random.Generator) -> list[np.ndarray]:
    """AUCs of up to ``n_boot`` resamples of all cases together, ``chunk`` at a time, leaving out the resamples that
    hold one class (a warning when fewer than ``n_boot`` remain)."""
    n = y.size
    boot: list[np.ndarray] = []
    collected = 0
    # Redraw one-class resamples; bounded so that a near-one-class sample cannot loop for ever.
    for _ in range(1000):
        if collected >= n_boot:
            break
        rows = min(chunk, n_boot - collected)
        idx = rng.integers(0, n, size=(rows, n))
        labels = y[idx]
        n_pos = labels.sum(axis=1)
        keep = (n_pos > 0) & (n_pos < n)
        if keep.any():
            boot.append(_rank_aucs(p[idx[keep]], labels[keep]))
            collected += int(keep.sum())
    if collected < n_boot:
        logger.warning("only %d of %d bootstrap resamples held both classes", collected, n_boot)
    return boot


def auc_ci_bootstrap(
    y: Any,
    p: Any,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
    stratified: bool = True,
) -> tuple[float, float, float]:
    """ROC AUC with a percentile bootstrap CI over cases.

    The AUC of each resample is the Mann-Whitney statistic (identical to ``sklearn.metrics.roc_auc_score``),
    computed for all resamples at once from midranks, which is far faster than one sklearn call per resample.

    Args:
        y: Labels, 1 = altered, 0 = not.
        p: Scores of the same cases.
        n_boot: Number of resamples.
        alpha: 1 − confidence level.
        seed: Seed of the resampling (same seed, same CI).
        stratified: Resample positives and negatives separately, keeping the class counts (every resample then
            has both classes). Otherwise resample all cases together and redraw resamples that hold one class.

    Returns:
        ``(auc, lo, hi)`` with ``auc`` from the full data; all NaN if the AUC is undefined.
    """
    _check_alpha(alpha)
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    y = _labels(y)
    p = _scores(p, y.size)
    if not _both_classes(y):
        return math.nan, math.nan, math.nan
    auc = float(_rank_aucs(p[None, :], y[None, :])[0])
    rng = np.random.default_rng(seed)
    chunk = max(1, _BOOT_CHUNK_ELEMENTS // y.size)
    if stratified:
        boot = _stratified_boot_aucs(y, p, n_boot, chunk, rng)
    else:
        boot = _pooled_boot_aucs(y, p, n_boot, chunk, rng)
    values = np.concatenate(boot)[:n_boot]
    lo, hi = np.quantile(values, [alpha / 2.0, 1.0 - alpha / 2.0])
    return auc, float(lo), float(hi)


def delong_test(y: Any, p_a: Any, p_b: Any) -> dict[str, float]:
    """Paired DeLong test of equal AUCs for two models scored on the same cases.

    Args:
        y: Labels, 1 = altered, 0 = not.
        p_a: Scores of model A.
        p_b: Scores of model B, same cases and order.

    Returns:
        ``auc_a``, ``auc_b``, ``diff`` (A − B), ``z`` and the two-sided ``p_value``, using the DeLong covariance
        of the two AUCs. Identical scores give ``diff = z = 0`` and ``p_value = 1``; NaN throughout if the AUC is
        undefined.
    """
    y = _labels(y)
    p_a = _scores(p_a, y.size, "p_a")
    p_b = _scores(p_b, y.size, "p_b")
    nan = {"auc_a": math.nan, "auc_b": math.nan, "diff": math.nan, "z": math.nan, "p_value": math.nan}
    if not _both_classes(y):
        return nan
    scores, m = _ordered(y, p_a, p_b)
    aucs, cov = _fast_delong(scores, m)
    diff = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
    out = {"auc_a": float(aucs[0]), "auc_b": float(aucs[1]), "diff": diff}
    if math.isnan(var):
        return {**out, "z": math.nan, "p_value": math.nan}
    # Rounding can leave a tiny non-zero difference or variance for (near-)identical models.
    if abs(diff) < 1e-12 or var <= 1e-15:
        z = 0.0 if abs(diff) < 1e-12 else math.copysign(math.inf, diff)
    else:
        z = diff / math.sqrt(var)
    return {**out, "z": float(z), "p_value": float(2.0 * stats.norm.sf(abs(z)))}
