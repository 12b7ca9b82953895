"""Classification statistics for marker predictions: paired tests, threshold metrics, and everything for one marker
(:func:`evaluate_marker`); the AUCs and their CIs live in :mod:`gliomics.evaluation.auc`, the calibration metrics
in :mod:`gliomics.evaluation.calibration_metrics`.

Everything here works on one marker at a time: ``y`` holds the labels (1 = altered, 0 = not) and ``p`` the
predicted probabilities of the same cases. Scikit-learn and SciPy supply the metrics they provide; the DeLong
variance has no library implementation and follows the fast algorithm of

- E. R. DeLong, D. M. DeLong, D. L. Clarke-Pearson. "Comparing the areas under two or more correlated receiver
  operating characteristic curves: a nonparametric approach." Biometrics 44(3):837-845, 1988.
- X. Sun, W. Xu. "Fast implementation of DeLong's algorithm for comparing the areas under correlated receiver
  operating characteristic curves." IEEE Signal Processing Letters 21(11):1389-1393, 2014.
  https://doi.org/10.1109/LSP.2014.2337313

Undefined quantities (an AUC with one class present, a ratio with a zero denominator) are NaN, never exceptions;
malformed input (mismatched lengths, labels other than 0/1, probabilities outside [0, 1]) raises ``ValueError``.
"""


from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
from scipy import stats
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
)

from gliomics.evaluation.auc import (
    _both_classes,
    _check_alpha,
    _labels,
    _scores,
    auc_ci_bootstrap,
    auc_ci_delong,
    auc_delong,
    delong_test,
)
from gliomics.evaluation.calibration_metrics import calibration
from gliomics.inference.calibration import youden_threshold

logger = logging.getLogger(__name__)

__all__ = [
    "auc_ci_bootstrap",
    "auc_ci_delong",
    "auc_delong",
    "binary_metrics",
    "delong_test",
    "evaluate_marker",
    "mcnemar_test",
    "wilson_ci",
]

#: Below this many discordant pairs (b + c) McNemar's test uses the exact binomial distribution.
MCNEMAR_EXACT_BELOW = 25

# ---------------------------------------------------------------- McNemar


def mcnemar_test(y: Any, pred_a: Any, pred_b: Any, exact: bool | None = None) -> dict[str, Any]:
    """McNemar's test of equal accuracy for two classifiers' 0/1 calls on the same cases.

    Only the discordant cases count: ``b`` = cases model A gets right and model B gets wrong, ``c`` = cases A
    gets wrong and B gets right.

    Args:
        y: Labels, 1 = altered, 0 = not.
        pred_a: 0/1 calls of model A.
        pred_b: 0/1 calls of model B.
        exact: True forces the exact binomial test, False the chi-square; None (default) chooses exact when
            ``b + c < 25``.

    Returns:
        ``b``, ``c``, ``statistic``, ``p_value`` and ``method``. Exact (``"exact"``): two-sided binomial test of
        ``b`` out of ``b + c`` with probability 1/2, statistic ``min(b, c)``. Otherwise (``"chi2_cc"``):
        ``(|b − c| − 1)² / (b + c)`` against chi-square with 1 degree of freedom. No discordant cases give
        ``p_value = 1``.
    """
    y = _labels(y)
    a = _labels(pred_a, "pred_a")
    b_pred = _labels(pred_b, "pred_b")
    if not a.size == b_pred.size == y.size:
        raise ValueError(f"y, pred_a and pred_b must have the same length, got {y.size}, {a.size}, {b_pred.size}")
    right_a, right_b = a == y, b_pred == y
    b = int(np.sum(right_a & ~right_b))
    c = int(np.sum(~right_a & right_b))
    use_exact = (b + c < MCNEMAR_EXACT_BELOW) if exact is None else bool(exact)
    if b + c == 0:
        return {"b": b, "c": c, "statistic": 0.0, "p_value": 1.0, "method": "exact" if use_exact else "chi2_cc"}
    if use_exact:
        p_value = stats.binomtest(b, b + c, 0.5, alternative="two-sided").pvalue
        return {"b": b, "c": c, "statistic": float(min(b, c)), "p_value": float(p_value), "method": "exact"}
    statistic = (abs(b - c) - 1.0) ** 2 / (b + c)
    return {
        "b": b,
        "c": c,
        "statistic": float(statistic),
        "p_value": float(stats.chi2.sf(statistic, df=1)),
        "method": "chi2_cc",
    }


# ---------------------------------------------------------------- metrics at a threshold


def wilson_ci(successes: int, total: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval of a proportion (SciPy's ``binomtest(...).proportion_ci(method="wilson")``).

    Returns:
        ``(lo, hi)``; ``(nan, nan)`` when ``total`` is 0.
    """
    _check_alpha(alpha)
    if total <= 0:
        return math.nan, math.nan
    ci = stats.binomtest(int(successes), int(total)).proportion_ci(confidence_level=1.0 - alpha, method="wilson")
    return float(ci.low), float(ci.high)


def binary_metrics(y: Any, p: Any, threshold: float, alpha: float = 0.05) -> dict[str, Any]:
    """Confusion-matrix metrics of the calls ``p >= threshold`` (the convention of ``sklearn.metrics.roc_curve``).

    Args:
        y: Labels, 1 = altered, 0 = not.
        p: Predicted probabilities of the same cases.
        threshold: Decision threshold in [0, 1].
        alpha: 1 − confidence level of the Wilson CIs.

    Returns:
        ``threshold``, ``n``, ``n_pos``, ``n_neg``, ``tp``, ``fp``, ``tn``, ``fn``, ``accuracy``,
        ``balanced_accuracy``, ``precision`` (PPV), ``npv``, ``recall`` and its alias ``sensitivity``,
        ``specificity``, ``f1``, ``brier``, and Wilson CIs ``accuracy_ci``, ``sensitivity_ci``,
        ``specificity_ci`` as ``(lo, hi)``. A ratio with a zero denominator is NaN.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    y = _labels(y)
    p = _scores(p, y.size, probability=True)
    n, n_pos = int(y.size), int(y.sum())
    out: dict[str, Any] = {"threshold": float(threshold), "n": n, "n_pos": n_pos, "n_neg": n - n_pos}
    if n == 0:  # sklearn refuses empty input
        nan_keys = ("accuracy", "balanced_accuracy", "precision", "npv", "recall", "sensitivity", "specificity")
        return {
            **out,
            **{"tp": 0, "fp": 0, "tn": 0, "fn": 0},
            **dict.fromkeys((*nan_keys, "f1", "brier"), math.nan),
            **dict.fromkeys(("accuracy_ci", "sensitivity_ci", "specificity_ci"), (math.nan, math.nan)),
        }
    pred = (p >= threshold).astype(np.int64)
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(y, pred, labels=[0, 1]).ravel())
    sensitivity = float(recall_score(y, pred, labels=[0, 1], pos_label=1, zero_division=np.nan))
    specificity = float(recall_score(y, pred, labels=[0, 1], pos_label=0, zero_division=np.nan))
    out.update(
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
        accuracy=float(accuracy_score(y, pred)),
        # Mean of sensitivity and specificity; NaN (not sklearn's one-class value) when either is undefined.
        balanced_accuracy=(sensitivity + specificity) / 2.0,
        precision=float(precision_score(y, pred, labels=[0, 1], pos_label=1, zero_division=np.nan)),
        npv=float(precision_score(y, pred, labels=[0, 1], pos_label=0, zero_division=np.nan)),
        recall=sensitivity,
        sensitivity=sensitivity,
        specificity=specificity,
        f1=float(f1_score(y, pred, labels=[0, 1], pos_label=1, zero_division=np.nan)),
        brier=float(brier_score_loss(y, p, pos_label=1)),
        accuracy_ci=wilson_ci(tp + tn, n, alpha),
        sensitivity_ci=wilson_ci(tp, tp + fn, alpha),
        specificity_ci=wilson_ci(tn, tn + fp, alpha),
    )
    return out


# ---------------------------------------------------------------- everything for one marker


def _plain(value: Any) -> Any:
    """Tuples and NumPy scalars to JSON-friendly lists and Python numbers."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def _known_cases(y: Any, p: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """Check ``y`` and ``p`` and keep the cases with a known label: their labels, their probabilities and the number
    of cases dropped."""
    y_arr = np.asarray(y)
    if y_arr.ndim != 1:
        raise ValueError(f"y must be 1-D, got shape {y_arr.shape}")
    try:
        # None (an empty cell read as object) is an unknown label like NaN.
        y_float = np.array([math.nan if v is None else v for v in y_arr.tolist()], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"y must hold 0/1 labels or NaN/None for unknown, got dtype {y_arr.dtype}") from exc
    p_all = np.asarray(p, dtype=np.float64)
    if p_all.shape != y_arr.shape:
        raise ValueError(f"p must have the shape of y {y_arr.shape}, got {p_all.shape}")
    known = ~np.isnan(y_float)
    y_known = _labels(y_float[known])
    p_known = _scores(p_all[known], y_known.size, probability=True)
    return y_known, p_known, int((~known).sum())


def _auc_with_cis(y: np.ndarray, p: np.ndarray, n_boot: int, alpha: float, seed: int,
                  notes: list[str]) -> tuple[float, float, tuple[float, float], tuple[float, float]]:
    """The AUC, its DeLong variance and its DeLong and bootstrap CIs (NaN when undefined, with a line in ``notes``)."""
    n, n_pos = int(y.size), int(y.sum())
    auc, var = auc_delong(y, p)
    if math.isnan(auc):
        notes.append(f"AUC undefined: {n_pos} altered and {n - n_pos} not among {n} cases with known labels")
        ci_delong, ci_boot = (math.nan, math.nan), (math.nan, math.nan)
    else:
        ci_delong = auc_ci_delong(y, p, alpha)[1:]
        ci_boot = auc_ci_bootstrap(y, p, n_boot=n_boot, alpha=alpha, seed=seed, stratified=True)[1:]
        if math.isnan(var):
            notes.append("DeLong variance undefined: a class has a single case")
    return auc, var, ci_delong, ci_boot


def _choose_threshold(threshold: float | None, y: np.ndarray, p: np.ndarray,
                      notes: list[str]) -> tuple[float, str]:
    """The decision threshold and its source: the one given, else Youden's on these data (noted), else 0.5."""
    if threshold is not None:
        return threshold, "given"
    if _both_classes(y):
        notes.append("threshold chosen by Youden's J on the evaluated data: threshold metrics are optimistic")
        return youden_threshold(y, p), "youden_same_data"
    return 0.5, "default_0.5"


def evaluate_marker(
    y: Any,
    p: Any,
    threshold: float | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """All statistics of one marker: AUC with DeLong and bootstrap CIs, metrics at a threshold, calibration.

    Cases with an unknown label (NaN or None in ``y``) are dropped first, never imputed.

    Args:
        y: Labels, 1 = altered, 0 = not, NaN/None = unknown.
        p: Predicted probabilities of the same cases.
        threshold: Decision threshold, ideally chosen on validation data. If None, the Youden threshold of
            *these* data is used, which is optimistic; ``threshold_source`` says so.
        n_boot: Number of bootstrap resamples of the AUC CI (stratified by class).
        seed: Seed of the bootstrap.
        alpha: 1 − confidence level of every CI.

    Returns:
        A JSON-serialisable dict (Python floats, ints, lists; undefined values are NaN): ``n``, ``n_pos``,
        ``n_neg``, ``n_unknown``, ``auc``, ``auc_se`` (DeLong), ``auc_ci_delong`` and ``auc_ci_bootstrap`` as
        ``[lo, hi]``, ``n_boot``, ``seed``, ``alpha``, ``threshold``, ``threshold_source`` (``"given"``,
        ``"youden_same_data"``, or ``"default_0.5"`` when Youden's J is undefined), ``metrics``
        (:func:`binary_metrics`), ``calibration`` (:func:`calibration`) and ``note`` (None, or why the AUC is
        NaN and other caveats).
    """
    _check_alpha(alpha)
    y_known, p_known, n_unknown = _known_cases(y, p)
    n, n_pos = int(y_known.size), int(y_known.sum())
    notes: list[str] = []
    auc, var, ci_delong, ci_boot = _auc_with_cis(y_known, p_known, n_boot, alpha, seed, notes)
    threshold, source = _choose_threshold(threshold, y_known, p_known, notes)
    cal = calibration(y_known, p_known)
    return _plain(
        {
            "n": n,
            "n_pos": n_pos,
            "n_neg": n - n_pos,
            "n_unknown": n_unknown,
            "auc": auc,
            "auc_se": math.sqrt(var) if var >= 0 else math.nan,
            "auc_ci_delong": ci_delong,
            "auc_ci_bootstrap": ci_boot,
            "n_boot": int(n_boot),
            "seed": int(seed),
            "alpha": float(alpha),
            "threshold": float(threshold),
            "threshold_source": source,
            "metrics": binary_metrics(y_known, p_known, float(threshold), alpha),
            "calibration": cal,
            "note": "; ".join(notes) if notes else None,
        }
    )
