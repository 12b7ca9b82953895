"""What the calls of a run are worth on new cases: metrics at each operating point, conformal coverage, and whether
the cases flagged for review fare worse than the others.

The thresholds, the conformal quantiles and the review threshold were fitted on one set (a run's validation cases,
or out-of-fold predictions; the prediction records name it) and are applied here, unchanged, to another.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

from gliomics.constants import MARKERS
from gliomics.evaluation.bootstrap import mean_ci, mean_difference_ci
from gliomics.evaluation.calibration_metrics import calibration
from gliomics.evaluation.classification import binary_metrics, wilson_ci
from gliomics.inference.calibration import CLASS_NAMES, OPERATING_POINTS

__all__ = ["conformal_summary", "operating_point_summary", "review_summary"]


def operating_point_summary(y: np.ndarray, p: np.ndarray, thresholds: dict[str, float],
                            alpha: float = 0.05) -> dict[str, dict[str, Any]]:
    """Sensitivity, specificity, PPV and NPV, each with its Wilson CI, at every operating point's threshold."""
    out = {}
    for name, threshold in thresholds.items():
        m = binary_metrics(y, p, threshold, alpha)
        tp, fp, tn, fn = m["tp"], m["fp"], m["tn"], m["fn"]
        out[name] = {"threshold": float(threshold), "rule": OPERATING_POINTS.get(name, name), "n": m["n"],
                     "sensitivity": m["sensitivity"], "sensitivity_ci": list(m["sensitivity_ci"]),
                     "specificity": m["specificity"], "specificity_ci": list(m["specificity_ci"]),
                     "ppv": m["precision"], "ppv_ci": list(wilson_ci(tp, tp + fp, alpha)),
                     "npv": m["npv"], "npv_ci": list(wilson_ci(tn, tn + fn, alpha))}
    return out


def conformal_summary(marker: str, y: np.ndarray, sets: list[str | None], alpha_target: float | None) -> dict:
    """Empirical coverage of the conformal sets (the fraction whose set holds the true class, with its Wilson CI)
    and the fractions of undetermined (both classes) and empty sets, over the cases with a known label and a set."""
    names = CLASS_NAMES[marker]
    pairs = [(int(t), s) for t, s in zip(y, sets, strict=True) if s is not None and not math.isnan(t)]
    n = len(pairs)
    if not n:
        return {"n": 0}
    covered = sum(s == "undetermined" or s == names[t] for t, s in pairs)
    undetermined = sum(s == "undetermined" for _, s in pairs)
    empty = sum(s == "empty" for _, s in pairs)
    return {"n": n, "target": None if alpha_target is None else 1.0 - alpha_target, "coverage": covered / n,
            "coverage_ci": list(wilson_ci(covered, n)), "undetermined": undetermined / n, "empty": empty / n}


def raw_calibration(y: np.ndarray, p_raw: np.ndarray) -> dict:
    """Calibration of the raw (uncalibrated) probabilities, to set beside that of the calibrated ones."""
    known = ~np.isnan(y)
    return calibration(y[known].astype(int), p_raw[known])


def _case_brier(row: dict) -> float | None:
    """Mean squared error of a case's marker probabilities over its known markers."""
    errs = [(row[f"prob_{m}"] - row[f"label_{m}"]) ** 2 for m in MARKERS
            if row.get(f"prob_{m}") is not None and row.get(f"label_{m}") is not None]
    return float(np.mean(errs)) if errs else None


def _split(rows: list[dict], flag: str, n_boot: int) -> dict:
    """Flagged against unflagged cases: mean Dice and marker Brier score of each group, and the differences (Dice
    unflagged − flagged, Brier flagged − unflagged: both positive when the flag finds the worse cases)."""
    groups = {"flagged": [r for r in rows if r.get(flag) is True],
              "unflagged": [r for r in rows if r.get(flag) is False]}
    dice = {k: [r.get("mean_dice") for r in g] for k, g in groups.items()}
    brier = {k: [_case_brier(r) for r in g] for k, g in groups.items()}
    return {"groups": {k: {"n": len(g), "mean_dice": mean_ci(dice[k], n_boot), "brier": mean_ci(brier[k], n_boot)}
                       for k, g in groups.items()},
            "dice_drop": mean_difference_ci(dice["unflagged"], dice["flagged"], n_boot),
            "brier_rise": mean_difference_ci(brier["flagged"], brier["unflagged"], n_boot)}


def _spearman(x: list[float], y: list[float], n_boot: int) -> dict | None:
    """Spearman's rank correlation with its p-value and a paired percentile bootstrap 95% CI."""
    if len(x) < 4 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    res = stats.spearmanr(x, y)
    boot = stats.bootstrap((np.asarray(x), np.asarray(y)), lambda a, b: stats.spearmanr(a, b).statistic, paired=True,
                           vectorized=False, n_resamples=n_boot, method="percentile",
                           random_state=np.random.default_rng(0))
    return {"rho": float(res.statistic), "p": float(res.pvalue), "lo": float(boot.confidence_interval.low),
            "hi": float(boot.confidence_interval.high), "n": len(x)}


def review_summary(rows: list[dict], n_boot: int = 2000) -> dict:
    """Do the cases flagged for review fare worse? For every flag (``needs_review``, and the uncertainty part of it
    alone) the two groups' mean Dice and marker Brier score with their differences; and the rank correlation of the
    uncertainty score with the case's mean Dice. Empty when no record carries a review flag."""
    flagged = [r for r in rows if r.get("needs_review") is not None]
    if not flagged:
        return {}
    out: dict[str, Any] = {"n": len(flagged), "needs_review": sum(r["needs_review"] for r in flagged),
                           "rule": next((r["review_rule"] for r in flagged if r.get("review_rule")), None),
                           "any_reason": _split(flagged, "needs_review", n_boot)}
    scored = [r for r in flagged if r.get("flag_uncertainty") is not None]
    if scored:
        out["flagged_by_uncertainty"] = sum(r["flag_uncertainty"] for r in scored)
        out["uncertainty"] = _split(scored, "flag_uncertainty", n_boot)
    pairs = [(r["uncertainty_score"], r["mean_dice"]) for r in flagged
             if r.get("uncertainty_score") is not None and r.get("mean_dice") is not None]
    if pairs:
        out["spearman_score_vs_dice"] = _spearman([a for a, _ in pairs], [b for _, b in pairs], n_boot)
    return out
