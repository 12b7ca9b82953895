"""Classification statistics: DeLong AUC variance and test, bootstrap CI, McNemar, threshold metrics, calibration."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import optimize, stats
from scipy.special import expit, logit
from sklearn.metrics import roc_auc_score

from gliomics.evaluation.classification import (
    auc_ci_bootstrap,
    auc_ci_delong,
    auc_delong,
    binary_metrics,
    calibration,
    delong_test,
    evaluate_marker,
    mcnemar_test,
)

# ---------------------------------------------------------------- brute-force DeLong (DeLong et al. 1988)


def _psi(x: float, y: float) -> float:
    """Mann-Whitney kernel: 1 if the positive scores higher, 1/2 for a tie."""
    return 1.0 if x > y else 0.5 if x == y else 0.0


def _placements(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Structural components V10 (one per positive) and V01 (one per negative) by an explicit double loop."""
    pos, neg = p[y == 1], p[y == 0]
    v10 = np.array([np.mean([_psi(x, yy) for yy in neg]) for x in pos])
    v01 = np.array([np.mean([_psi(x, yy) for x in pos]) for yy in neg])
    return v10, v01


def _brute_cov(y: np.ndarray, pa: np.ndarray, pb: np.ndarray) -> np.ndarray:
    """DeLong 1988 covariance of two AUCs: S10/m + S01/n with S the (m−1)/(n−1)-normalised covariances."""
    a10, a01 = _placements(y, pa)
    b10, b01 = _placements(y, pb)
    m, n = a10.size, a01.size
    return np.cov(np.vstack([a10, b10])) / m + np.cov(np.vstack([a01, b01])) / n


def _random_case(seed: int, n: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.binomial(1, 0.4, n)
    y[:2] = [0, 1]
    # Coarse scores so that ties within and across classes occur.
    pa = np.round(expit(1.2 * y + rng.normal(0, 1, n)), 1)
    pb = np.round(expit(0.6 * y + rng.normal(0, 1, n) + 0.3 * pa), 1)
    return y, pa, pb


def test_auc_delong_hand_computed_case() -> None:
    # Positives 0.8, 0.6; negatives 0.6, 0.2, 0.1 (one tie across classes, cases deliberately interleaved).
    # V10 = (1, 2.5/3) -> AUC = 11/12; V01 = (0.75, 1, 1).
    # var(V10) = 2·(1/12)² / 1 = 1/72; var(V01) = ((1/6)² + 2·(1/12)²) / 2 = 1/48.
    # DeLong variance = (1/72)/2 + (1/48)/3 = 1/72.
    y = np.array([0, 1, 0, 1, 0])
    p = np.array([0.6, 0.8, 0.2, 0.6, 0.1])
    auc, var = auc_delong(y, p)
    assert auc == pytest.approx(11 / 12)
    assert var == pytest.approx(1 / 72)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_delong_matches_brute_force_placements(seed: int) -> None:
    y, p, _ = _random_case(seed)
    v10, v01 = _placements(y, p)
    expected_var = v10.var(ddof=1) / v10.size + v01.var(ddof=1) / v01.size
    auc, var = auc_delong(y, p)
    assert auc == pytest.approx(v10.mean(), abs=1e-12)
    assert auc == pytest.approx(v01.mean(), abs=1e-12)
    assert auc == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert var == pytest.approx(expected_var, rel=1e-10)


def test_auc_hanley_mcneil_ct_ratings() -> None:
    # Five-point CT ratings of Hanley & McNeil (Radiology 1982): 58 normal, 51 abnormal; published AUC 0.893.
    ratings = np.arange(1, 6)
    p = np.r_[np.repeat(ratings, [33, 6, 6, 11, 2]), np.repeat(ratings, [3, 2, 2, 11, 33])].astype(float)
    y = np.r_[np.zeros(58), np.ones(51)]
    auc, var = auc_delong(y, p)
    assert auc == pytest.approx(0.893, abs=5e-4)
    v10, v01 = _placements(y.astype(int), p)
    assert var == pytest.approx(v10.var(ddof=1) / 51 + v01.var(ddof=1) / 58, rel=1e-10)


def test_auc_ci_delong_is_normal_interval_clipped() -> None:
    y, p, _ = _random_case(3)
    auc, var = auc_delong(y, p)
    a, lo, hi = auc_ci_delong(y, p, alpha=0.05)
    assert a == auc
    assert lo == pytest.approx(auc - 1.959964 * math.sqrt(var), abs=1e-6)
    assert hi == pytest.approx(auc + 1.959964 * math.sqrt(var), abs=1e-6)
    # A near-perfect separation would reach above 1 without the clip.
    y2 = np.array([0, 0, 0, 1, 1, 1])
    auc2, lo2, hi2 = auc_ci_delong(y2, np.array([0.1, 0.2, 0.5, 0.4, 0.8, 0.9]))
    assert auc2 == pytest.approx(8 / 9)
    assert 0.0 <= lo2 <= auc2 <= hi2 <= 1.0
    assert auc_ci_delong(y2, np.r_[0.1, 0.2, 0.3, 0.7, 0.8, 0.9])[1:] == (1.0, 1.0)


# ---------------------------------------------------------------- bootstrap


def _separable_sample(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.binomial(1, 0.5, n)
    return y, expit(y + rng.normal(0, 1, n))


def test_bootstrap_ci_contains_auc_and_narrows_with_n() -> None:
    widths = []
    for n in (60, 600):
        y, p = _separable_sample(n, seed=n)
        auc, lo, hi = auc_ci_bootstrap(y, p, n_boot=200, seed=0)
        assert auc == pytest.approx(roc_auc_score(y, p))
        assert lo < auc < hi
        widths.append(hi - lo)
    assert widths[1] < 0.6 * widths[0]


def test_bootstrap_is_seeded_and_unstratified_redraws_one_class_resamples() -> None:
    y, p = _separable_sample(80, seed=5)
    assert auc_ci_bootstrap(y, p, n_boot=200, seed=1) == auc_ci_bootstrap(y, p, n_boot=200, seed=1)
    # One positive among 6: about a third of plain resamples hold no positive and must be redrawn.
    y_small = np.array([0, 0, 0, 0, 0, 1])
    auc, lo, hi = auc_ci_bootstrap(y_small, np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.5]), n_boot=200, stratified=False)
    assert auc == pytest.approx(0.8)
    assert np.isfinite([lo, hi]).all() and 0.0 <= lo <= hi <= 1.0


# ---------------------------------------------------------------- DeLong test


def test_delong_test_model_against_itself() -> None:
    y, p, _ = _random_case(4)
    res = delong_test(y, p, p)
    assert res["diff"] == 0.0
    assert res["z"] == 0.0
    assert res["p_value"] == 1.0
    assert res["auc_a"] == res["auc_b"] == pytest.approx(roc_auc_score(y, p))


def test_delong_test_matches_brute_force_covariance() -> None:
    y, pa, pb = _random_case(6, n=50)
    cov = _brute_cov(y, pa, pb)
    diff = roc_auc_score(y, pa) - roc_auc_score(y, pb)
    z = diff / math.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    res = delong_test(y, pa, pb)
    assert res["diff"] == pytest.approx(diff, abs=1e-12)
    assert res["z"] == pytest.approx(z, rel=1e-9)
    assert res["p_value"] == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)


def test_delong_test_detects_clearly_better_model() -> None:
    rng = np.random.default_rng(7)
    y = rng.binomial(1, 0.5, 300)
    good = expit(2.5 * y + rng.normal(0, 1, 300))
    weak = expit(0.3 * y + rng.normal(0, 1, 300))
    res = delong_test(y, good, weak)
    assert res["diff"] > 0.2
    assert res["p_value"] < 1e-6
    assert delong_test(y, weak, good)["z"] == pytest.approx(-res["z"])


# ---------------------------------------------------------------- McNemar


def _mcnemar_table(b: int, c: int, both_right: int = 5, both_wrong: int = 3) -> tuple[np.ndarray, ...]:
    """Labels and calls with b cases only A gets right and c cases only B gets right."""
    y = np.ones(b + c + both_right + both_wrong, dtype=int)
    a = np.r_[np.ones(b), np.zeros(c), np.ones(both_right), np.zeros(both_wrong)].astype(int)
    bb = np.r_[np.zeros(b), np.ones(c), np.ones(both_right), np.zeros(both_wrong)].astype(int)
    return y, a, bb


def test_mcnemar_exact_hand_table() -> None:
    y, a, b = _mcnemar_table(10, 2)
    res = mcnemar_test(y, a, b)
    assert (res["b"], res["c"], res["method"]) == (10, 2, "exact")
    # Two-sided binomial: 2 · P(X <= 2 | n = 12, 1/2) = 2 · (1 + 12 + 66) / 4096.
    assert res["p_value"] == pytest.approx(158 / 4096, abs=1e-12)
    assert round(res["p_value"], 4) == 0.0386
    swapped = mcnemar_test(y, b, a)
    assert (swapped["b"], swapped["c"]) == (2, 10)
    assert swapped["p_value"] == pytest.approx(res["p_value"])


def test_mcnemar_chi_square_with_continuity_correction() -> None:
    y, a, b = _mcnemar_table(10, 2)
    res = mcnemar_test(y, a, b, exact=False)
    assert res["method"] == "chi2_cc"
    assert res["statistic"] == pytest.approx(49 / 12)
    assert res["p_value"] == pytest.approx(stats.chi2.sf(49 / 12, 1))
    # b + c >= 25 switches to the chi-square automatically.
    y, a, b = _mcnemar_table(18, 7)
    res = mcnemar_test(y, a, b)
    assert res["method"] == "chi2_cc"
    assert res["statistic"] == pytest.approx(100 / 25)


def test_mcnemar_no_discordant_pairs() -> None:
    y, a, _ = _mcnemar_table(0, 0)
    assert mcnemar_test(y, a, a)["p_value"] == 1.0


# ---------------------------------------------------------------- metrics at a threshold


def _wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    centre = (k + z * z / 2) / (n + z * z)
    half = z * math.sqrt(k * (n - k) / n + z * z / 4) / (n + z * z)
    return centre - half, centre + half


def test_binary_metrics_hand_confusion_matrix() -> None:
    # TP 8, FN 2, TN 15, FP 5; the threshold itself counts as positive (p >= t).
    y = np.r_[np.ones(10), np.zeros(20)].astype(int)
    p = np.r_[np.full(7, 0.9), 0.5, np.full(2, 0.2), np.full(15, 0.1), np.full(5, 0.7)]
    m = binary_metrics(y, p, threshold=0.5)
    assert (m["tp"], m["fn"], m["tn"], m["fp"], m["n"], m["n_pos"]) == (8, 2, 15, 5, 30, 10)
    assert m["accuracy"] == pytest.approx(23 / 30)
    assert m["precision"] == pytest.approx(8 / 13)
    assert m["recall"] == m["sensitivity"] == pytest.approx(0.8)
    assert m["specificity"] == pytest.approx(0.75)
    assert m["npv"] == pytest.approx(15 / 17)
    assert m["f1"] == pytest.approx(2 * 8 / (2 * 8 + 5 + 2))
    assert m["brier"] == pytest.approx(np.mean((p - y) ** 2))
    assert m["accuracy_ci"] == pytest.approx(_wilson(23, 30))
    assert m["sensitivity_ci"] == pytest.approx(_wilson(8, 10))
    assert m["specificity_ci"] == pytest.approx(_wilson(15, 20))


def test_binary_metrics_undefined_ratios_are_nan() -> None:
    m = binary_metrics([0, 1, 1], [0.1, 0.2, 0.3], threshold=0.9)  # nothing called positive
    assert math.isnan(m["precision"])
    assert m["recall"] == 0.0 and m["f1"] == 0.0
    m = binary_metrics([1, 1], [0.8, 0.3], threshold=0.5)  # no negatives
    assert math.isnan(m["specificity"]) and m["specificity_ci"] == pytest.approx((math.nan, math.nan), nan_ok=True)
    assert m["sensitivity"] == 0.5


# ---------------------------------------------------------------- calibration


@pytest.fixture(scope="module")
def calibrated_sample() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2024)
    p = expit(rng.normal(0, 1.5, 20000))
    return rng.binomial(1, p), p


def test_calibration_of_calibrated_scores(calibrated_sample: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = calibrated_sample
    cal = calibration(y, p)
    assert cal["slope"] == pytest.approx(1.0, abs=0.1)
    assert cal["intercept"] == pytest.approx(0.0, abs=0.1)
    assert cal["ece"] < 0.02
    assert sum(cal["bin_counts"]) == y.size and len(cal["prob_true"]) == 10
    assert cal["note"] is None


def test_calibration_overconfident_and_shifted(calibrated_sample: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = calibrated_sample
    over = calibration(y, expit(2 * logit(p)))
    assert over["slope"] == pytest.approx(0.5, abs=0.05)
    assert over["ece"] > 0.05
    low = calibration(y, expit(logit(p) - 1.0))  # probabilities too low by one logit
    assert low["intercept"] == pytest.approx(1.0, abs=0.1)
    # The intercept solves the score equation of the offset model: Σ y = Σ expit(a + logit p).
    lp = logit(np.clip(expit(logit(p) - 1.0), 1e-6, 1 - 1e-6))
    root = optimize.brentq(lambda a: np.sum(y - expit(a + lp)), -5, 5)
    assert low["intercept"] == pytest.approx(root, abs=1e-6)


def test_calibration_ece_by_hand_uniform_bins() -> None:
    y = np.array([0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.7, 0.9])
    cal = calibration(y, p, n_bins=2, strategy="uniform")
    # Bin [0, .5): confidence .15, accuracy .5; bin [.5, 1]: confidence .8, accuracy 1.
    assert cal["bin_counts"] == [2, 2]
    assert cal["ece"] == pytest.approx(0.5 * 0.35 + 0.5 * 0.2)


def test_calibration_separated_and_one_class() -> None:
    sep = calibration([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.8])
    assert math.isnan(sep["slope"]) and np.isfinite(sep["intercept"]) and "separates" in sep["note"]
    quasi = calibration([0, 0, 1, 1, 1], [0.1, 0.5, 0.5, 0.9, 0.8])  # overlap only in a tie at the boundary
    assert math.isnan(quasi["slope"]) and "separates" in quasi["note"]
    one = calibration([1, 1, 1], [0.2, 0.5, 0.9])
    assert math.isnan(one["slope"]) and math.isnan(one["intercept"]) and one["note"]


# ---------------------------------------------------------------- evaluate_marker


def test_evaluate_marker_drops_unknown_labels() -> None:
    y, p = _separable_sample(60, seed=11)
    y_unknown = np.r_[y.astype(float), np.nan, np.nan]
    p_unknown = np.r_[p, 0.99, 0.01]
    res = evaluate_marker(y_unknown, p_unknown, threshold=0.5, n_boot=200)
    ref = evaluate_marker(y, p, threshold=0.5, n_boot=200)
    assert res["n_unknown"] == 2 and res["n"] == 60
    assert {k: v for k, v in res.items() if k != "n_unknown"} == {k: v for k, v in ref.items() if k != "n_unknown"}
    assert res["auc"] == pytest.approx(roc_auc_score(y, p))
    assert res["auc_ci_delong"][0] < res["auc"] < res["auc_ci_delong"][1]
    assert res["auc_ci_bootstrap"][0] < res["auc"] < res["auc_ci_bootstrap"][1]
    assert res["threshold_source"] == "given" and res["metrics"]["n"] == 60
    json.dumps(res)  # plain Python types throughout
    # None (an empty table cell) counts as unknown too.
    assert evaluate_marker([None, 1, 0, 1], [0.5, 0.9, 0.2, 0.6], n_boot=50)["n_unknown"] == 1


def test_evaluate_marker_youden_threshold_is_flagged() -> None:
    y, p = _separable_sample(40, seed=12)
    res = evaluate_marker(y, p, n_boot=50)
    assert res["threshold_source"] == "youden_same_data"
    assert "optimistic" in res["note"]


@pytest.mark.parametrize(("y", "p"), [([1, 1, np.nan, 1], [0.2, 0.7, 0.5, 0.9]), ([0], [0.3]), ([], [])])
def test_evaluate_marker_one_class_or_tiny_gives_nan_auc(y: list, p: list) -> None:
    res = evaluate_marker(y, p, n_boot=50)
    assert math.isnan(res["auc"])
    assert all(math.isnan(v) for v in res["auc_ci_delong"] + res["auc_ci_bootstrap"])
    assert "AUC undefined" in res["note"]
    json.dumps(res)


def test_bad_input_raises_value_error() -> None:
    with pytest.raises(ValueError, match="0/1"):
        auc_delong([0, 2, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="shape"):
        auc_delong([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="probabilities"):
        binary_metrics([0, 1], [0.1, 1.2], threshold=0.5)
