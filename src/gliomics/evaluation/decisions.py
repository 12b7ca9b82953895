"""What the calls of a run are worth on new cases: metrics at each operating point and conformal coverage.

The thresholds and the conformal quantiles were fitted on one set (a run's validation cases, or out-of-fold
predictions; the prediction records name it) and are applied here, unchanged, to another.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gliomics.evaluation.classification import binary_metrics, calibration, wilson_ci
from gliomics.inference.calibration import CLASS_NAMES, OPERATING_POINTS

__all__ = ["conformal_summary", "operating_point_summary"]


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
