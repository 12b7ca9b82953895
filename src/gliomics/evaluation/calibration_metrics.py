"""Calibration metrics of one marker's probabilities: the reliability curve, the expected calibration error and
the logistic recalibration's slope and intercept (:func:`calibration`).

``y`` holds the labels (1 = altered, 0 = not) and ``p`` the predicted probabilities of the same cases; malformed input
raises ``ValueError`` and undefined quantities are NaN.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
from scipy import optimize
from scipy.special import expit, logit
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss

from gliomics.evaluation.auc import _both_classes, _labels, _scores

logger = logging.getLogger(__name__)

__all__ = ["LOGIT_EPS", "calibration"]

#: Probabilities are clipped to this distance from 0 and 1 before the logit of the calibration fits.
LOGIT_EPS = 1e-6


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
