"""Marker probabilities a researcher can act on: temperature scaling, operating points and conformal sets.

All three are fitted on held-out predictions of a run (its validation cases, or out-of-fold predictions), never on
the cases the network trained on, stored with the run, and applied unchanged by ``gliomics predict``:

- **Temperature scaling** (Guo et al., ICML 2017), one parameter per marker: ``p = sigmoid(logit(p_raw) / T)``, with
  ``1 / T`` the slope of scikit-learn's unpenalised ``LogisticRegression`` of the label on ``logit(p_raw)`` without
  an intercept. ``T < 1`` spreads probabilities crowded around 0.5; ``T > 1`` tempers over-confident ones.
- **Operating points** on the calibrated probability: Youden's J; rule-out, the highest threshold whose sensitivity
  on the fitting set is at least 0.95; rule-in, the lowest whose specificity is at least 0.95.
- **Split-conformal prediction sets**, Mondrian (per class, so that each class gets its coverage): the
  non-conformity of a case is ``1 - p(its class)``; class ``c`` enters a case's set when ``1 - p(c)`` is at most the
  ``ceil((n_c + 1)(1 - alpha)) / n_c`` empirical quantile of the scores of the ``n_c`` fitting cases of class ``c``
  (Vovk et al. 2005; Angelopoulos & Bates 2021). A set with both classes is *undetermined*.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.special import expit, logit

from gliomics.constants import MARKERS

__all__ = ["CLASS_NAMES", "DEFAULT_ALPHA", "OPERATING_POINTS", "apply_calibration", "fit_marker_calibration",
           "fit_run_calibration", "fit_temperature", "operating_thresholds", "youden_threshold"]

#: Miscoverage of the conformal sets unless the user asks for another (sets cover the true class 90 % of the time).
DEFAULT_ALPHA = 0.1
#: The operating points, in the order they are reported, with the rate each guarantees on its fitting set.
OPERATING_POINTS: dict[str, str] = {"youden": "Youden's J", "rule_out": "sensitivity >= 0.95",
                                    "rule_in": "specificity >= 0.95"}
TARGET_RATE = 0.95
#: The two classes of each marker, (not altered, altered).
CLASS_NAMES: dict[str, tuple[str, str]] = {"idh": ("wildtype", "mutant"), "codel_1p19q": ("intact", "codeleted"),
                                           "tert": ("wildtype", "mutant")}
_EPS = 1e-6
#: Fewer fitting cases of either class than this and a marker is left uncalibrated (temperature 1).
MIN_PER_CLASS = 3


def _logit(p: np.ndarray) -> np.ndarray:
    return logit(np.clip(np.asarray(p, dtype=np.float64), _EPS, 1.0 - _EPS))


def fit_temperature(y: np.ndarray, p_raw: np.ndarray) -> float:
    """The temperature ``T`` that minimises the log loss of ``sigmoid(logit(p_raw) / T)`` on ``(y, p_raw)``.

    Returns 1.0 (no change) with a single class, or when the logits rank the classes the wrong way round (a
    negative slope: no temperature can help, and a negative one would flip every call).
    """
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(y, dtype=int)
    if y.size < 2 or y.min() == y.max():
        return 1.0
    z = _logit(p_raw)[:, None]
    # unpenalised; separable data would let the slope grow without bound, so it is capped at T = 0.01
    fit = LogisticRegression(C=np.inf, fit_intercept=False, max_iter=1000).fit(z, y)
    slope = float(fit.coef_[0, 0])
    if not slope > 0 or not math.isfinite(slope):
        return 1.0
    return float(max(1.0 / slope, 0.01))


def youden_threshold(y_true: np.ndarray, prob: np.ndarray) -> float:
    """The probability threshold maximising Youden's J (sensitivity + specificity − 1); 0.5 when undefined."""
    from sklearn.metrics import roc_curve

    y_true, prob = np.asarray(y_true), np.asarray(prob)
    if y_true.size == 0 or y_true.min() == y_true.max():
        return 0.5
    fpr, tpr, thr = roc_curve(y_true, prob)
    best = int(np.argmax(tpr - fpr))
    return float(np.clip(thr[best], 0.0, 1.0))


def operating_thresholds(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Youden, rule-out (sensitivity >= 0.95) and rule-in (specificity >= 0.95) thresholds of ``p`` on ``y``; a
    case is called altered when ``p >= threshold``."""
    from sklearn.metrics import roc_curve

    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    if y.size == 0 or y.min() == y.max():
        return dict.fromkeys(OPERATING_POINTS, 0.5)
    # every distinct score is a candidate threshold (roc_curve would drop the ones off the ROC hull)
    fpr, tpr, thr = roc_curve(y, p, drop_intermediate=False)
    thr = np.clip(thr, 0.0, 1.0)
    # roc_curve's thresholds decrease; the first reaching the sensitivity is the highest such threshold, the last
    # keeping the specificity the lowest
    rule_out = float(thr[int(np.argmax(tpr >= TARGET_RATE))])
    keep = np.flatnonzero(1.0 - fpr >= TARGET_RATE)
    rule_in = float(thr[keep[-1]]) if keep.size else 1.0
    return {"youden": youden_threshold(y, p), "rule_out": rule_out, "rule_in": rule_in}


def _conformal_quantile(scores: np.ndarray, alpha: float) -> float:
    """The split-conformal quantile of ``scores``: 1.0 (every set holds the class) when there are too few."""
    n = scores.size
    rank = math.ceil((n + 1) * (1.0 - alpha))
    if n == 0 or rank > n:
        return 1.0
    return float(np.sort(scores)[rank - 1])


def fit_marker_calibration(y: np.ndarray, p_raw: np.ndarray, *, alpha: float = DEFAULT_ALPHA) -> dict[str, Any]:
    """Temperature, operating points and Mondrian conformal quantiles of one marker, fitted on ``(y, p_raw)``.

    Returns a JSON-serialisable dict: ``n``, ``n_pos``, ``temperature``, ``thresholds`` (on the calibrated
    probability), ``alpha``, ``conformal_q`` (``[q_not_altered, q_altered]``) and ``note`` (why the temperature
    stayed 1, or None).
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    y = np.asarray(y, dtype=float)
    p_raw = np.asarray(p_raw, dtype=float)
    known = np.isfinite(y)
    y, p_raw = y[known].astype(int), p_raw[known]
    n_pos = int(y.sum())
    note = None
    if min(n_pos, y.size - n_pos) < MIN_PER_CLASS:
        temperature, note = 1.0, f"fewer than {MIN_PER_CLASS} cases of a class: not calibrated"
    else:
        temperature = fit_temperature(y, p_raw)
    p = expit(_logit(p_raw) / temperature)
    # non-conformity 1 - p(class): p for a case that is not altered, 1 - p for an altered one
    q = [_conformal_quantile(p[y == 0], alpha), _conformal_quantile(1.0 - p[y == 1], alpha)]
    return {"n": int(y.size), "n_pos": n_pos, "temperature": temperature,
            "thresholds": operating_thresholds(y, p), "alpha": float(alpha), "conformal_q": q, "note": note}


def fit_run_calibration(labels: Sequence[Sequence[float]], probabilities: Sequence[Mapping[str, float]], *,
                        source: str, alpha: float = DEFAULT_ALPHA) -> dict[str, Any]:
    """The calibration of every marker from held-out predictions, one row per case: ``labels`` in :data:`MARKERS`
    order (NaN unknown) and ``probabilities`` the raw probability of each marker the model predicts. A marker is
    fitted when every case has its probability and some case its label. ``source`` names the fitting set (e.g.
    ``"validation"``, ``"out-of-fold"``) and is recorded with every prediction."""
    labels = np.asarray(labels, dtype=float).reshape(len(probabilities), len(MARKERS))
    markers = {m: fit_marker_calibration(labels[:, k], np.array([p[m] for p in probabilities]), alpha=alpha)
               for k, m in enumerate(MARKERS)
               if probabilities and all(m in p for p in probabilities) and np.isfinite(labels[:, k]).any()}
    return {"source": source, "alpha": float(alpha), "markers": markers}


def apply_calibration(marker: str, p_raw: float, fitted: Mapping[str, Any] | None,
                      default_threshold: float = 0.5) -> dict[str, Any]:
    """One marker's entry of ``<case>.json``: the raw and calibrated probability, the call at each operating
    point (``call`` is Youden's), and the conformal set with its status (a class name, or ``"undetermined"``).

    Without a fitted calibration the probability stays raw, the only call is at ``default_threshold`` and there is
    no set.
    """
    if fitted is None:
        return {"probability": round(p_raw, 4), "probability_raw": round(p_raw, 4), "calibrated": False,
                "threshold": round(default_threshold, 4), "call": int(p_raw >= default_threshold)}
    p = float(expit(_logit(p_raw) / float(fitted["temperature"])))
    thresholds = fitted["thresholds"]
    names = CLASS_NAMES[marker]
    q0, q1 = fitted["conformal_q"]
    members = [names[c] for c, (score, q) in enumerate(((p, q0), (1.0 - p, q1))) if score <= q + 1e-12]
    status = members[0] if len(members) == 1 else "undetermined" if members else "empty"
    return {"probability": round(p, 4), "probability_raw": round(p_raw, 4), "calibrated": True,
            "temperature": round(float(fitted["temperature"]), 4),
            "threshold": round(float(thresholds["youden"]), 4), "call": int(p >= thresholds["youden"]),
            "calls": {k: int(p >= thresholds[k]) for k in OPERATING_POINTS},
            "thresholds": {k: round(float(thresholds[k]), 4) for k in OPERATING_POINTS},
            "prediction_set": members, "set_status": status, "alpha": fitted["alpha"]}
