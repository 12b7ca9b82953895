"""Classification statistics for marker predictions: paired tests, threshold metrics, calibration, and everything
for one marker (:func:`evaluate_marker`); the AUCs and their CIs live in :mod:`gliomics.evaluation.auc`.

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
from scipy import optimize, stats
from scipy.special import expit, logit
from sklearn.calibration import calibration_curve
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
from gliomics.inference.calibration import youden_threshold

logger = logging.getLogger(__name__)

__all__ = [
    "auc_ci_bootstrap",
    "auc_ci_delong",
    "auc_delong",
    "binary_metrics",
    "calibration",
    "delong_test",
    "evaluate_marker",
    "mcnemar_test",
    "wilson_ci",
]

#: Probabilities are clipped to this distance from 0 and 1 before the logit of the calibration fits.
LOGIT_EPS = 1e-6
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


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


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


# ---------------------------------------------------------------- calibration


def _logistic_fit(y: np.ndarray, offset: np.ndarray, x: np.ndarray | None) -> np.ndarray | None:
    """Unpenalised maximum-likelihood fit of ``logit P(y=1) = a + b·x + offset`` (``b`` only if ``x`` is given).

    SciPy rather than sklearn because sklearn's LogisticRegression has no offset term. The mean rather than the
    summed log-likelihood keeps the convergence tolerance independent of the sample size. Returns None if the
    optimiser does not reach a stationary point.
    """
    design = np.ones((y.size, 1)) if x is None else np.column_stack([np.ones(y.size), x])
    scale = 1.0 / y.size

    def nll(beta: np.ndarray) -> float:
        eta = design @ beta + offset
        return float(np.sum(np.logaddexp(0.0, eta) - y * eta) * scale)

    def grad(beta: np.ndarray) -> np.ndarray:
        return design.T @ (expit(design @ beta + offset) - y) * scale

    def hess(beta: np.ndarray) -> np.ndarray:
        mu = expit(design @ beta + offset)
        return design.T @ (design * (mu * (1.0 - mu))[:, None]) * scale

    x0 = np.zeros(design.shape[1])
    if x is not None:
        x0[1] = 1.0  # start from "already calibrated"
    res = optimize.minimize(nll, x0, jac=grad, hess=hess, method="trust-ncg", options={"gtol": 1e-10})
    # Near the optimum the trust region may stop on rounding ("precision loss") at a stationary point.
    if res.success or float(np.max(np.abs(grad(res.x)))) < 1e-7:
        return res.x
    logger.warning("logistic recalibration did not converge: %s", res.message)
    return None


def _bin_counts(p: np.ndarray, n_bins: int, strategy: str, n_curve: int) -> np.ndarray:
    """Cases per non-empty bin of ``sklearn.calibration.calibration_curve``, which does not return them, recounted
    with its own binning rule; ``n_curve`` is the number of points of its curve."""
    if strategy == "quantile":
        edges = np.percentile(p, np.linspace(0, 1, n_bins + 1) * 100)
    else:
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    counts = np.bincount(np.searchsorted(edges[1:-1], p), minlength=n_bins)
    counts = counts[counts > 0]
    if counts.size != n_curve:  # guards against a change of sklearn's binning rule
        raise RuntimeError("bin counts do not match sklearn.calibration.calibration_curve")
    return counts


def _recalibration(y: np.ndarray, p: np.ndarray) -> tuple[float, float, str | None]:
    """Calibration intercept and slope by logistic recalibration of labels of both classes, NaN where undefined or
    not converged, and a note why the slope is NaN (None if it is not)."""
    intercept, slope = math.nan, math.nan
    lp = logit(np.clip(p, LOGIT_EPS, 1.0 - LOGIT_EPS))
    fit = _logistic_fit(y.astype(np.float64), lp, None)
    if fit is not None:
        intercept = float(fit[0])
    # Complete or quasi-complete separation (ties only at the boundary): the slope's MLE does not exist.
    if lp[y == 1].min() >= lp[y == 0].max() or lp[y == 1].max() <= lp[y == 0].min():
        return intercept, slope, "logit(p) separates the classes: calibration slope undefined"
    fit = _logistic_fit(y.astype(np.float64), np.zeros(y.size), lp)
    if fit is not None:
        return intercept, float(fit[1]), None
    return intercept, slope, "the logistic recalibration fit did not converge"


def calibration(y: Any, p: Any, n_bins: int = 10, strategy: str = "quantile") -> dict[str, Any]:
    """Reliability curve, expected calibration error and logistic recalibration (slope, intercept).

    The bins default to ``strategy="quantile"`` (equal numbers of cases): marker probabilities tend to crowd
    near 0 or 1, where uniform-width bins would leave many bins empty or with a handful of cases, so every point
    of the curve and every term of the ECE gets a similar sample size. ``"uniform"`` gives the equal-width bins
    of Guo et al. (2017). The ECE is Σ_bins (n_bin / n) · |observed rate − mean probability| over the same bins
    as ``sklearn.calibration.calibration_curve``.

    The calibration slope ``b`` comes from the fit ``y ~ a + b·logit(p)``, and the intercept
    ("calibration-in-the-large") ``a`` from ``y ~ a + offset(logit(p))`` with the slope fixed at 1; both are
    unpenalised maximum-likelihood fits, with ``p`` clipped to [1e-6, 1 − 1e-6]. Perfect calibration gives slope
    1 and intercept 0; slope < 1 means over-confident (too extreme) probabilities, intercept > 0 too low ones.

    Args:
        y: Labels, 1 = altered, 0 = not.
        p: Predicted probabilities of the same cases.
        n_bins: Number of bins of the reliability curve.
        strategy: ``"quantile"`` or ``"uniform"``.

    Returns:
        ``n``, ``n_bins``, ``strategy``, ``prob_pred`` and ``prob_true`` (the curve, non-empty bins only),
        ``bin_counts``, ``ece``, ``slope``, ``intercept``, ``mean_predicted``, ``observed_rate``, ``brier`` and
        ``note`` (why a value is NaN, or None). Slope and intercept are NaN with one class, and the slope also
        when ``logit(p)`` separates the classes, completely or quasi-completely (the estimate diverges).
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if strategy not in ("quantile", "uniform"):
        raise ValueError(f"strategy must be 'quantile' or 'uniform', got {strategy!r}")
    y = _labels(y)
    p = _scores(p, y.size, probability=True)
    out: dict[str, Any] = {"n": int(y.size), "n_bins": int(n_bins), "strategy": strategy, "note": None}
    if y.size == 0:
        return {
            **out,
            **{"prob_pred": [], "prob_true": [], "bin_counts": []},
            **dict.fromkeys(("ece", "slope", "intercept", "mean_predicted", "observed_rate", "brier"), math.nan),
            "note": "no cases",
        }
    prob_true, prob_pred = calibration_curve(y, p, n_bins=n_bins, strategy=strategy, pos_label=1)
    counts = _bin_counts(p, n_bins, strategy, prob_true.size)
    ece = float(np.sum(counts / y.size * np.abs(prob_true - prob_pred)))
    out.update(
        prob_pred=prob_pred.tolist(),
        prob_true=prob_true.tolist(),
        bin_counts=counts.tolist(),
        ece=ece,
        mean_predicted=float(p.mean()),
        observed_rate=float(y.mean()),
        brier=float(brier_score_loss(y, p, pos_label=1)),
        slope=math.nan,
        intercept=math.nan,
    )
    if not _both_classes(y):
        out["note"] = "only one class present: calibration slope and intercept undefined"
        return out
    out["intercept"], out["slope"], out["note"] = _recalibration(y, p)
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
