"""Decisions on new cases: metrics at each operating point, conformal coverage, raw calibration, and whether the
cases flagged for review fare worse, each field pinned by hand or against the functions it is built from."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from gliomics.evaluation.bootstrap import mean_ci, mean_difference_ci
from gliomics.evaluation.calibration_metrics import calibration
from gliomics.evaluation.decisions import (
    _case_brier,
    _spearman,
    _split,
    conformal_summary,
    operating_point_summary,
    raw_calibration,
    review_summary,
)


def _wilson(k: int, n: int, alpha: float = 0.05) -> list[float]:
    z = stats.norm.ppf(1 - alpha / 2)
    centre = (k + z * z / 2) / (n + z * z)
    half = z * math.sqrt(k * (n - k) / n + z * z / 4) / (n + z * z)
    return [centre - half, centre + half]


# ---------------------------------------------------------------- operating points

Y_OP = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
P_OP = np.array([0.9, 0.6, 0.6, 0.3, 0.1, 0.6, 0.7, 0.2, 0.1, 0.0, 0.4, 0.59])


def test_operating_point_summary_every_field():
    """Counts at p >= threshold give sensitivity, specificity, PPV, NPV with their 95 % Wilson CIs."""
    out = operating_point_summary(Y_OP, P_OP, {"youden": 0.6, "rule_out": 0.1, "custom": 0.95})
    assert list(out) == ["youden", "rule_out", "custom"]
    # youden at 0.6: TP 3, FN 2, FP 2, TN 5.
    assert out["youden"] == {
        "threshold": 0.6, "rule": "Youden's J", "n": 12,
        "sensitivity": pytest.approx(3 / 5), "sensitivity_ci": pytest.approx(_wilson(3, 5)),
        "specificity": pytest.approx(5 / 7), "specificity_ci": pytest.approx(_wilson(5, 7)),
        "ppv": pytest.approx(3 / 5), "ppv_ci": pytest.approx(_wilson(3, 5)),
        "npv": pytest.approx(5 / 7), "npv_ci": pytest.approx(_wilson(5, 7)),
    }
    # rule_out at 0.1: TP 5, FN 0, FP 6 (0.6, 0.7, 0.2, 0.1, 0.4, 0.59), TN 1 (0.0).
    ro = out["rule_out"]
    assert ro["rule"] == "sensitivity >= 0.95"
    assert (ro["sensitivity"], ro["specificity"], ro["ppv"], ro["npv"]) == pytest.approx((1.0, 1 / 7, 5 / 11, 1.0))
    assert ro["ppv_ci"] == pytest.approx(_wilson(5, 11)) and ro["npv_ci"] == pytest.approx(_wilson(1, 1))
    # An unknown name keeps its own name as the rule; nothing called positive leaves the PPV undefined.
    cu = out["custom"]
    assert cu["rule"] == "custom" and cu["sensitivity"] == 0.0 and math.isnan(cu["ppv"])
    assert all(math.isnan(v) for v in cu["ppv_ci"]) and cu["npv_ci"] == pytest.approx(_wilson(7, 12))
    assert isinstance(cu["ppv_ci"], list) and isinstance(cu["sensitivity_ci"], list)


def test_operating_point_summary_at_another_level():
    """alpha reaches every interval."""
    out = operating_point_summary(Y_OP, P_OP, {"rule_in": 0.65}, alpha=0.2)["rule_in"]
    # TP 1 (0.9), FN 4, FP 1 (0.7), TN 6.
    assert out["rule"] == "specificity >= 0.95" and out["threshold"] == 0.65
    assert out["sensitivity_ci"] == pytest.approx(_wilson(1, 5, 0.2))
    assert out["specificity_ci"] == pytest.approx(_wilson(6, 7, 0.2))
    assert out["ppv_ci"] == pytest.approx(_wilson(1, 2, 0.2))
    assert out["npv_ci"] == pytest.approx(_wilson(6, 10, 0.2))
    assert operating_point_summary(Y_OP, P_OP, {}) == {}


# ---------------------------------------------------------------- conformal sets


def test_conformal_summary_counts_coverage_undetermined_and_empty():
    """Undetermined sets cover, the right class covers, the wrong class and empty sets do not; NaN labels and
    missing sets are left out."""
    y = np.array([1, 0, 1, 0, 1, 0, np.nan, 1, 0])
    sets = ["mutant", "wildtype", "wildtype", "undetermined", "empty", "mutant", "mutant", None, "undetermined"]
    out = conformal_summary("idh", y, sets, 0.1)
    assert out == {"n": 7, "target": pytest.approx(0.9), "coverage": pytest.approx(4 / 7),
                   "coverage_ci": pytest.approx(_wilson(4, 7)), "undetermined": pytest.approx(2 / 7),
                   "empty": pytest.approx(1 / 7)}
    assert isinstance(out["coverage_ci"], list)


def test_conformal_summary_uses_the_marker_class_names_and_optional_target():
    """Class names come from the marker; no target gives None; nothing usable gives n = 0 only."""
    y = np.array([1.0, 0.0, 1.0])
    out = conformal_summary("codel_1p19q", y, ["codeleted", "intact", "intact"], None)
    assert out["target"] is None and out["coverage"] == pytest.approx(2 / 3) and out["empty"] == 0.0
    assert conformal_summary("idh", y, ["codeleted", "intact", "intact"], 0.2)["coverage"] == 0.0
    assert conformal_summary("idh", np.array([np.nan, 1.0]), ["mutant", None], 0.1) == {"n": 0}


# ---------------------------------------------------------------- raw calibration


def test_raw_calibration_drops_unknown_labels():
    """The calibration of the cases with a known label, labels as integers."""
    y = np.array([0.0, 1.0, np.nan, 1.0, 0.0, np.nan, 1.0])
    p = np.array([0.2, 0.7, 0.9, 0.4, 0.55, 0.1, 0.8])
    known = ~np.isnan(y)
    assert raw_calibration(y, p) == calibration(y[known].astype(int), p[known])
    assert raw_calibration(y, p)["n"] == 5


# ---------------------------------------------------------------- review flags


def test_case_brier_is_the_mean_over_known_markers():
    """Squared errors averaged over the markers with both a probability and a label."""
    row = {"prob_idh": 0.8, "label_idh": 0, "prob_codel_1p19q": 0.3, "label_codel_1p19q": None,
           "prob_tert": None, "label_tert": 1}
    assert _case_brier(row) == pytest.approx(0.64)
    row.update(label_codel_1p19q=1)
    assert _case_brier(row) == pytest.approx((0.64 + 0.49) / 2)
    row.update(prob_tert=0.9)
    assert _case_brier(row) == pytest.approx((0.64 + 0.49 + 0.01) / 3)
    assert _case_brier({"prob_idh": 0.8}) is None
    assert _case_brier({"label_idh": 1}) is None


def _row(i: int, dice: float, flag: bool | None, prob: float = 0.7, label: int = 1) -> dict:
    return {"case_id": f"C{i}", "mean_dice": dice, "needs_review": flag, "prob_idh": prob, "label_idh": label}


DICE = [0.91, 0.52, 0.88, 0.47, 0.79, 0.95, 0.33, 0.84, 0.61, 0.9]
FLAGS = [False, True, False, True, False, False, True, False, True, False]
PROBS = [0.9, 0.35, 0.8, 0.6, 0.75, 0.85, 0.2, 0.3, 0.5, 0.95]


def _rows() -> list[dict]:
    return [_row(i, d, f, pr) for i, (d, f, pr) in enumerate(zip(DICE, FLAGS, PROBS, strict=True))]


def test_split_groups_and_differences():
    """Flagged and unflagged groups; Dice drop = unflagged − flagged, Brier rise = flagged − unflagged."""
    rows = [*_rows(), _row(99, 0.1, None)]  # no flag: in neither group
    out = _split(rows, "needs_review", 300)
    flagged = [d for d, f in zip(DICE, FLAGS, strict=True) if f]
    unflagged = [d for d, f in zip(DICE, FLAGS, strict=True) if not f]
    brier_f = [(1 - p) ** 2 for p, f in zip(PROBS, FLAGS, strict=True) if f]
    brier_u = [(1 - p) ** 2 for p, f in zip(PROBS, FLAGS, strict=True) if not f]
    assert set(out) == {"groups", "dice_drop", "brier_rise"}
    assert out["groups"] == {
        "flagged": {"n": 4, "mean_dice": mean_ci(flagged, 300), "brier": mean_ci(brier_f, 300)},
        "unflagged": {"n": 6, "mean_dice": mean_ci(unflagged, 300), "brier": mean_ci(brier_u, 300)},
    }
    assert out["dice_drop"] == mean_difference_ci(unflagged, flagged, 300)
    assert out["brier_rise"] == mean_difference_ci(brier_f, brier_u, 300)
    assert out["dice_drop"]["mean"] == pytest.approx(np.mean(unflagged) - np.mean(flagged))
    assert out["brier_rise"]["mean"] == pytest.approx(np.mean(brier_f) - np.mean(brier_u))


def _spearman_ci(x: list[float], y: list[float], n_boot: int) -> tuple[float, float]:
    res = stats.bootstrap((np.asarray(x), np.asarray(y)), lambda a, b: stats.spearmanr(a, b).statistic, paired=True,
                          vectorized=False, n_resamples=n_boot, confidence_level=0.95, method="percentile",
                          random_state=np.random.default_rng(0))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def test_spearman_with_paired_bootstrap_interval():
    """rho and its p-value from SciPy, a paired percentile 95 % bootstrap CI at seed 0, and n."""
    x = [0.05, 0.3, 0.12, 0.25, 0.18, 0.02, 0.28, 0.09]
    y = [0.9, 0.5, 0.85, 0.7, 0.6, 0.95, 0.4, 0.8]
    out = _spearman(x, y, 200)
    ref = stats.spearmanr(x, y)
    assert set(out) == {"rho", "p", "lo", "hi", "n"}
    assert out["rho"] == pytest.approx(ref.statistic) and out["p"] == pytest.approx(ref.pvalue) and out["n"] == 8
    assert (out["lo"], out["hi"]) == _spearman_ci(x, y, 200)


@pytest.mark.filterwarnings("ignore")
def test_spearman_needs_four_pairs_and_two_distinct_values_each():
    """Three pairs, or a constant side, give None; four pairs with two distinct values a side suffice."""
    assert _spearman([0.1, 0.2, 0.3], [0.3, 0.2, 0.1], 50) is None
    assert _spearman([0.1, 0.1, 0.1, 0.1], [0.3, 0.2, 0.1, 0.4], 50) is None
    assert _spearman([0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.5, 0.5], 50) is None
    out = _spearman([0.1, 0.1, 0.2, 0.2], [0.6, 0.5, 0.2, 0.1], 50)
    assert out["n"] == 4 and out["rho"] == pytest.approx(stats.spearmanr([1, 1, 2, 2], [4, 3, 2, 1]).statistic)


def test_review_summary_every_key_with_uncertainty():
    """Counts, the first stated rule, both splits and the score-Dice correlation, each from its parts."""
    rows = _rows()
    scores = [0.02, 0.31, 0.08, 0.27, 0.15, 0.01, 0.35, 0.11, 0.22, 0.04]
    for r, s in zip(rows, scores, strict=True):
        r["uncertainty_score"] = s
        r["flag_uncertainty"] = s > 0.25
    rows[0]["review_rule"] = ""
    rows[3]["review_rule"] = "rule A"
    rows[5]["review_rule"] = "rule B"
    rows[6]["flag_uncertainty"] = None  # left out of the uncertainty split only
    rows[7]["uncertainty_score"] = None  # left out of the correlation only
    rows.append({"case_id": "X", "mean_dice": 0.0, "needs_review": None})  # not reviewed: left out everywhere
    out = review_summary(rows, n_boot=120)
    assert set(out) == {"n", "needs_review", "rule", "any_reason", "flagged_by_uncertainty", "uncertainty",
                        "spearman_score_vs_dice"}
    assert (out["n"], out["needs_review"], out["rule"]) == (10, 4, "rule A")
    assert out["any_reason"] == _split(rows[:10], "needs_review", 120)
    scored = [r for i, r in enumerate(rows[:10]) if i != 6]
    assert out["flagged_by_uncertainty"] == 2
    assert out["uncertainty"] == _split(scored, "flag_uncertainty", 120)
    pairs = [(s, d) for i, (s, d) in enumerate(zip(scores, DICE, strict=True)) if i != 7]
    assert out["spearman_score_vs_dice"] == _spearman([s for s, _ in pairs], [d for _, d in pairs], 120)


def test_review_summary_without_uncertainty_uses_2000_resamples():
    """Without uncertainty fields only the overall split is reported, with 2000 resamples by default."""
    rows = _rows()
    out = review_summary(rows)
    assert set(out) == {"n", "needs_review", "rule", "any_reason"}
    assert out["rule"] is None
    flagged = [d for d, f in zip(DICE, FLAGS, strict=True) if f]
    unflagged = [d for d, f in zip(DICE, FLAGS, strict=True) if not f]
    assert out["any_reason"]["groups"]["flagged"]["mean_dice"] == mean_ci(flagged, 2000)
    assert out["any_reason"]["dice_drop"] == mean_difference_ci(unflagged, flagged, 2000)
    assert out["any_reason"]["dice_drop"] != mean_difference_ci(unflagged, flagged, 2001)
    assert review_summary([_row(0, 0.5, None)]) == {}
