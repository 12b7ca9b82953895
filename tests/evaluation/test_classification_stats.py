"""Classification statistics: DeLong AUC variance and test, bootstrap CI, McNemar, threshold metrics, calibration."""

from __future__ import annotations

import json
import logging
import math
import warnings

import numpy as np
import pytest
from scipy import optimize, stats
from scipy.special import expit, logit
from sklearn.metrics import roc_auc_score

from gliomics.evaluation.calibration_metrics import calibration
from gliomics.evaluation.classification import (
    auc_ci_bootstrap,
    auc_ci_delong,
    auc_delong,
    binary_metrics,
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


# ---------------------------------------------------------------- McNemar: every field, boundaries, checks


def test_mcnemar_exact_returns_every_field():
    """Exact test: b, c, statistic min(b, c), the two-sided binomial p-value and the method name."""
    y, a, b = _mcnemar_table(10, 2)
    y[-3:] = 0  # labels of both classes; the concordant cases still do not count
    a[-3:], b[-3:] = 1, 1
    assert mcnemar_test(y, a, b) == {"b": 10, "c": 2, "statistic": 2.0, "p_value": pytest.approx(158 / 4096),
                                     "method": "exact"}
    even = mcnemar_test(*_mcnemar_table(3, 3))
    assert even == {"b": 3, "c": 3, "statistic": 3.0, "p_value": 1.0, "method": "exact"}


def test_mcnemar_switches_to_chi_square_at_25_discordant_pairs():
    """24 discordant pairs use the exact test, 25 the corrected chi-square; exact=True/False override."""
    res24 = mcnemar_test(*_mcnemar_table(17, 7))
    assert res24["method"] == "exact" and res24["statistic"] == 7.0
    assert res24["p_value"] == pytest.approx(stats.binomtest(17, 24, 0.5).pvalue, rel=1e-12)
    res25 = mcnemar_test(*_mcnemar_table(18, 7))
    assert res25 == {"b": 18, "c": 7, "statistic": 4.0, "p_value": pytest.approx(stats.chi2.sf(4.0, 1), rel=1e-12),
                     "method": "chi2_cc"}
    forced = mcnemar_test(*_mcnemar_table(18, 7), exact=True)
    assert forced["method"] == "exact" and forced["statistic"] == 7.0
    assert forced["p_value"] == pytest.approx(stats.binomtest(18, 25, 0.5).pvalue, rel=1e-12)
    chi = mcnemar_test(*_mcnemar_table(4, 1), exact=False)
    assert chi["method"] == "chi2_cc" and chi["statistic"] == pytest.approx(0.8)
    assert chi["p_value"] == pytest.approx(stats.chi2.sf(0.8, df=1), rel=1e-12)


def test_mcnemar_without_discordant_pairs_reports_the_method_chosen():
    """No discordant pairs: statistic 0 and p 1, with the method the caller's choice would have used."""
    y, a, _ = _mcnemar_table(0, 0)
    assert mcnemar_test(y, a, a) == {"b": 0, "c": 0, "statistic": 0.0, "p_value": 1.0, "method": "exact"}
    assert mcnemar_test(y, a, a, exact=False) == {"b": 0, "c": 0, "statistic": 0.0, "p_value": 1.0,
                                                  "method": "chi2_cc"}
    one = mcnemar_test(*_mcnemar_table(1, 0))
    assert one == {"b": 1, "c": 0, "statistic": 0.0, "p_value": 1.0, "method": "exact"}


def test_mcnemar_checks_lengths_and_names_the_bad_argument():
    """Calls of another length, or not 0/1, raise ValueError naming the argument."""
    with pytest.raises(ValueError, match="same length, got 3, 2, 3"):
        mcnemar_test([0, 1, 1], [0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="same length, got 3, 3, 2"):
        mcnemar_test([0, 1, 1], [0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="same length, got 2, 3, 3"):
        mcnemar_test([0, 1], [0, 1, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="^pred_a must hold 0/1"):
        mcnemar_test([0, 1], [0, 2], [0, 1])
    with pytest.raises(ValueError, match="^pred_b must hold 0/1"):
        mcnemar_test([0, 1], [0, 1], [3, 1])
    with pytest.raises(ValueError, match="^y must hold 0/1"):
        mcnemar_test([0, 5], [0, 1], [0, 1])


# ---------------------------------------------------------------- Wilson interval


@pytest.mark.parametrize(("k", "n", "alpha"), [(8, 10, 0.05), (0, 7, 0.05), (13, 13, 0.1), (5, 20, 0.2), (1, 1, 0.05)])
def test_wilson_ci_matches_the_score_interval_formula(k: int, n: int, alpha: float):
    """Wilson's interval with z = Φ⁻¹(1 − α/2), at the level given."""
    from gliomics.evaluation.classification import wilson_ci

    lo, hi = wilson_ci(k, n, alpha)
    assert (lo, hi) == pytest.approx(_wilson(k, n, stats.norm.ppf(1 - alpha / 2)), abs=1e-12)
    assert isinstance(lo, float) and isinstance(hi, float)


def test_wilson_ci_default_level_and_empty_total():
    """Default 95 %; no trials gives NaNs; alpha outside (0, 1) is refused."""
    from gliomics.evaluation.classification import wilson_ci

    assert wilson_ci(3, 9) == pytest.approx(_wilson(3, 9), abs=1e-12)
    assert all(math.isnan(v) for v in wilson_ci(0, 0))
    with pytest.raises(ValueError, match="alpha"):
        wilson_ci(1, 2, alpha=1.0)


def test_binary_metrics_every_field_at_another_level():
    """All keys, counts, ratios and the Wilson CIs at the alpha given (here 80 % intervals)."""
    y = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.6, 0.6, 0.3, 0.1, 0.6, 0.7, 0.2, 0.1, 0.0, 0.4, 0.59])
    m = binary_metrics(y, p, threshold=0.6, alpha=0.2)
    z = stats.norm.ppf(0.9)
    expected = {
        "threshold": 0.6, "n": 12, "n_pos": 5, "n_neg": 7, "tp": 3, "fp": 2, "tn": 5, "fn": 2,
        "accuracy": pytest.approx(8 / 12), "balanced_accuracy": pytest.approx((3 / 5 + 5 / 7) / 2),
        "precision": pytest.approx(3 / 5), "npv": pytest.approx(5 / 7), "recall": pytest.approx(3 / 5),
        "sensitivity": pytest.approx(3 / 5), "specificity": pytest.approx(5 / 7), "f1": pytest.approx(6 / 10),
        "brier": pytest.approx(np.mean((p - y) ** 2)),
        "accuracy_ci": pytest.approx(_wilson(8, 12, z)), "sensitivity_ci": pytest.approx(_wilson(3, 5, z)),
        "specificity_ci": pytest.approx(_wilson(5, 7, z)),
    }
    assert m == expected
    assert binary_metrics(y, p, threshold=0.6)["accuracy_ci"] == pytest.approx(_wilson(8, 12))


def test_binary_metrics_threshold_range_and_ends():
    """Thresholds 0 and 1 are allowed (p >= t), values outside are refused; probabilities 0 and 1 are valid."""
    y, p = [0, 1, 1], [0.0, 1.0, 0.5]
    assert binary_metrics(y, p, threshold=0.0)["tp"] == 2 and binary_metrics(y, p, threshold=0.0)["fp"] == 1
    assert binary_metrics(y, p, threshold=1.0)["tp"] == 1 and binary_metrics(y, p, threshold=1.0)["fp"] == 0
    for bad in (-0.01, 1.01):
        with pytest.raises(ValueError, match="threshold must be in"):
            binary_metrics(y, p, threshold=bad)


def test_binary_metrics_empty_input():
    """No cases: zero counts, NaN ratios and NaN intervals under every key."""
    m = binary_metrics([], [], threshold=0.3)
    nan_keys = {"accuracy", "balanced_accuracy", "precision", "npv", "recall", "sensitivity", "specificity", "f1",
                "brier"}
    ci_keys = {"accuracy_ci", "sensitivity_ci", "specificity_ci"}
    assert set(m) == {"threshold", "n", "n_pos", "n_neg", "tp", "fp", "tn", "fn"} | nan_keys | ci_keys
    assert (m["threshold"], m["n"], m["n_pos"], m["n_neg"]) == (0.3, 0, 0, 0)
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (0, 0, 0, 0)
    assert all(math.isnan(m[k]) for k in nan_keys)
    assert all(len(m[k]) == 2 and all(math.isnan(v) for v in m[k]) for k in ci_keys)


def test_binary_metrics_one_class_calls_and_labels():
    """All positive labels and calls: a 2 × 2 confusion matrix still; undefined ratios NaN, not 0."""
    m = binary_metrics([1, 1, 1], [0.9, 0.8, 0.7], threshold=0.5)
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (3, 0, 0, 0)
    assert m["sensitivity"] == 1.0 and m["precision"] == 1.0 and m["f1"] == 1.0
    assert math.isnan(m["specificity"]) and math.isnan(m["npv"]) and math.isnan(m["balanced_accuracy"])
    neg = binary_metrics([0, 0], [0.1, 0.2], threshold=0.5)
    assert (neg["tn"], neg["n_neg"], neg["specificity"], neg["npv"]) == (2, 2, 1.0, 1.0)
    assert math.isnan(neg["sensitivity"]) and math.isnan(neg["precision"]) and math.isnan(neg["f1"])
    assert neg["brier"] == pytest.approx((0.01 + 0.04) / 2)


# ---------------------------------------------------------------- calibration: every field


def _hand_logistic(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Newton-Raphson fit of logit P(y=1) = a + b·x."""
    design = np.column_stack([np.ones_like(x), x])
    beta = np.zeros(2)
    for _ in range(60):
        mu = expit(design @ beta)
        beta = beta + np.linalg.solve(design.T @ (design * (mu * (1 - mu))[:, None]), design.T @ (y - mu))
    return beta


def _hand_intercept(y: np.ndarray, p: np.ndarray) -> float:
    lp = logit(np.clip(p, 1e-6, 1 - 1e-6))
    return optimize.brentq(lambda a: np.sum(y - expit(a + lp)), -30, 30, xtol=1e-14)


Y_CAL = np.array([0, 1, 0, 1, 0, 1, 0])
P_CAL = np.array([0.05, 0.3, 0.2, 0.7, 0.45, 0.9, 0.62])


def test_calibration_quantile_bins_of_unequal_size():
    """Seven cases in three quantile bins (2, 2, 3): curve, counts, ECE, summaries, slope and intercept by hand."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cal = calibration(Y_CAL, P_CAL, n_bins=3)
    assert set(cal) == {"n", "n_bins", "strategy", "note", "prob_pred", "prob_true", "bin_counts", "ece", "slope",
                        "intercept", "mean_predicted", "observed_rate", "brier"}
    assert (cal["n"], cal["n_bins"], cal["strategy"], cal["note"]) == (7, 3, "quantile", None)
    assert cal["bin_counts"] == [2, 2, 3]
    assert cal["prob_pred"] == pytest.approx([0.125, 0.375, (0.7 + 0.9 + 0.62) / 3])
    assert cal["prob_true"] == pytest.approx([0.0, 0.5, 2 / 3])
    ece = (2 * 0.125 + 2 * 0.125 + 3 * abs(2 / 3 - 2.22 / 3)) / 7
    assert cal["ece"] == pytest.approx(ece, abs=1e-12)
    assert cal["mean_predicted"] == pytest.approx(P_CAL.mean()) and cal["observed_rate"] == pytest.approx(3 / 7)
    assert cal["brier"] == pytest.approx(np.mean((P_CAL - Y_CAL) ** 2))
    assert cal["slope"] == pytest.approx(_hand_logistic(Y_CAL, logit(P_CAL))[1], abs=1e-7)
    assert cal["intercept"] == pytest.approx(_hand_intercept(Y_CAL, P_CAL), abs=1e-7)


def test_calibration_uniform_bins_skip_empty_bins_and_keep_single_cases():
    """Uniform bins of width 1/4: (3, 0, 2, 1) cases, the empty bin left out of curve, counts and ECE."""
    y = np.array([0, 1, 0, 1, 1, 1])
    p = np.array([0.05, 0.12, 0.18, 0.55, 0.61, 0.93])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cal = calibration(y, p, n_bins=4, strategy="uniform")
    assert cal["strategy"] == "uniform" and cal["n_bins"] == 4
    assert cal["bin_counts"] == [3, 2, 1]
    assert cal["prob_pred"] == pytest.approx([0.35 / 3, 0.58, 0.93])
    assert cal["prob_true"] == pytest.approx([1 / 3, 1.0, 1.0])
    assert cal["ece"] == pytest.approx((3 * abs(1 / 3 - 0.35 / 3) + 2 * 0.42 + 0.07) / 6, abs=1e-12)
    quant = calibration(y, p, n_bins=4)
    assert quant["bin_counts"] == [2, 1, 1, 2]
    assert quant["ece"] == pytest.approx((2 * abs(0.5 - 0.085) + 0.18 + 0.45 + 2 * abs(1 - 0.77)) / 6, abs=1e-12)
    assert quant["slope"] == cal["slope"] and quant["intercept"] == cal["intercept"]


def test_calibration_default_has_ten_quantile_bins():
    """Twenty distinct probabilities fall two to a bin in the ten default bins; one bin holds everything."""
    p = np.linspace(0.02, 0.97, 20)
    y = (np.arange(20) % 3 == 0).astype(int)
    cal = calibration(y, p)
    assert cal["n_bins"] == 10 and cal["strategy"] == "quantile" and cal["bin_counts"] == [2] * 10
    assert cal == calibration(y, p, n_bins=10, strategy="quantile")
    one = calibration(y, p, n_bins=1)
    assert one["bin_counts"] == [20] and one["prob_pred"] == pytest.approx([p.mean()])
    assert one["ece"] == pytest.approx(abs(y.mean() - p.mean()))


def test_calibration_clips_probabilities_of_zero_and_one():
    """p = 0 and p = 1 enter the logistic fits as 1e-6 and 1 − 1e-6."""
    y = np.array([0, 1, 1, 0, 1, 0, 1, 0])
    p = np.array([0.0, 1.0, 0.4, 0.6, 0.7, 0.3, 0.2, 0.5])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cal = calibration(y, p, n_bins=2)
    lp = logit(np.clip(p, 1e-6, 1 - 1e-6))
    assert cal["intercept"] == pytest.approx(_hand_intercept(y, p), abs=1e-7)
    assert cal["slope"] == pytest.approx(_hand_logistic(y, lp)[1], abs=1e-7)
    assert cal["note"] is None


def test_calibration_notes_name_the_reason():
    """Separation either way, and a single class, leave the slope NaN with the exact reason."""
    sep_text = "logit(p) separates the classes: calibration slope undefined"
    reversed_quasi = calibration([1, 1, 0, 0, 0], [0.1, 0.5, 0.5, 0.9, 0.8])
    assert reversed_quasi["note"] == sep_text and math.isnan(reversed_quasi["slope"])
    assert reversed_quasi["intercept"] == pytest.approx(
        _hand_intercept(np.array([1, 1, 0, 0, 0]), np.array([0.1, 0.5, 0.5, 0.9, 0.8])), abs=1e-7)
    assert calibration([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.8])["note"] == sep_text
    one = calibration([0, 0, 0], [0.2, 0.5, 0.9], n_bins=2)
    assert one["note"] == "only one class present: calibration slope and intercept undefined"
    assert one["bin_counts"] == [2, 1] and one["observed_rate"] == 0.0
    assert one["ece"] == pytest.approx((0.7 + 0.9) / 3)  # the median case joins the lower bin


def test_calibration_empty_and_bad_arguments():
    """No cases give NaN summaries and a note; n_bins < 1 and unknown strategies are refused."""
    empty = calibration([], [], n_bins=4, strategy="uniform")
    assert {k: empty[k] for k in ("n", "n_bins", "strategy", "prob_pred", "prob_true", "bin_counts", "note")} == {
        "n": 0, "n_bins": 4, "strategy": "uniform", "prob_pred": [], "prob_true": [], "bin_counts": [],
        "note": "no cases"}
    assert all(math.isnan(empty[k]) for k in ("ece", "slope", "intercept", "mean_predicted", "observed_rate",
                                              "brier"))
    assert len(empty) == 13
    with pytest.raises(ValueError, match="n_bins must be >= 1, got 0"):
        calibration([0, 1], [0.2, 0.8], n_bins=0)
    with pytest.raises(ValueError, match="strategy must be"):
        calibration([0, 1], [0.2, 0.8], strategy="kmeans")


def test_logistic_fit_with_an_offset_solves_the_score_equations():
    """Intercept-only fit with an offset, and intercept plus slope, reach the hand Newton solutions."""
    from gliomics.evaluation.calibration_metrics import _logistic_fit

    y = Y_CAL.astype(float)
    lp = logit(P_CAL)
    assert _logistic_fit(y, lp, None) == pytest.approx([_hand_intercept(Y_CAL, P_CAL)], abs=1e-8)
    offset = np.linspace(-1, 1, 7)
    both = _logistic_fit(y, offset, lp)
    design = np.column_stack([np.ones(7), lp])
    assert design.T @ (y - expit(design @ both + offset)) == pytest.approx([0.0, 0.0], abs=1e-8)
    assert _logistic_fit(y, np.zeros(7), lp) == pytest.approx(_hand_logistic(y, lp), abs=1e-7)


def test_logistic_fit_that_cannot_converge_returns_none(caplog: pytest.LogCaptureFixture):
    """An offset so large that the likelihood is flat to machine precision: None, with a warning."""
    from gliomics.evaluation.calibration_metrics import _logistic_fit

    with caplog.at_level(logging.WARNING, logger="gliomics.evaluation.calibration_metrics"):
        assert _logistic_fit(np.array([0.0, 1, 0, 1, 1]), np.full(5, 1e6), None) is None
    assert "logistic recalibration did not converge" in caplog.text


# ---------------------------------------------------------------- evaluate_marker: every field


def test_evaluate_marker_defaults_and_every_field():
    """Defaults: 2000 stratified resamples at seed 0, 95 % intervals, Youden threshold of the same data."""
    from gliomics.inference.calibration import youden_threshold

    y, p = _random_case(8, n=30)[:2]
    res = evaluate_marker(y.tolist(), p.tolist())
    auc, var = auc_delong(y, p)
    threshold = youden_threshold(y, p)
    assert set(res) == {"n", "n_pos", "n_neg", "n_unknown", "auc", "auc_se", "auc_ci_delong", "auc_ci_bootstrap",
                        "n_boot", "seed", "alpha", "threshold", "threshold_source", "metrics", "calibration", "note"}
    assert (res["n"], res["n_pos"], res["n_neg"], res["n_unknown"]) == (30, int(y.sum()), 30 - int(y.sum()), 0)
    assert res["auc"] == auc and res["auc_se"] == pytest.approx(math.sqrt(var))
    assert res["auc_ci_delong"] == list(auc_ci_delong(y, p, 0.05)[1:])
    assert res["auc_ci_bootstrap"] == list(auc_ci_bootstrap(y, p, n_boot=2000, alpha=0.05, seed=0)[1:])
    assert (res["n_boot"], res["seed"], res["alpha"]) == (2000, 0, 0.05)
    assert res["threshold"] == threshold and res["threshold_source"] == "youden_same_data"
    metrics = binary_metrics(y, p, threshold, 0.05)
    assert res["metrics"] == {k: list(v) if isinstance(v, tuple) else v for k, v in metrics.items()}
    assert res["calibration"] == calibration(y, p)
    assert res["note"] == "threshold chosen by Youden's J on the evaluated data: threshold metrics are optimistic"


def test_evaluate_marker_passes_level_seed_and_resamples_through():
    """A given threshold, alpha, seed and n_boot reach the CIs and the metrics."""
    y, p = _random_case(9, n=30)[:2]
    res = evaluate_marker(y, p, threshold=0.45, n_boot=300, seed=4, alpha=0.2)
    assert res["auc_ci_delong"] == list(auc_ci_delong(y, p, 0.2)[1:])
    assert res["auc_ci_bootstrap"] == list(auc_ci_bootstrap(y, p, n_boot=300, alpha=0.2, seed=4, stratified=True)[1:])
    assert res["auc_ci_bootstrap"] != list(auc_ci_bootstrap(y, p, n_boot=300, alpha=0.2, seed=4, stratified=False)[1:])
    assert (res["n_boot"], res["seed"], res["alpha"], res["threshold"]) == (300, 4, 0.2, 0.45)
    assert res["threshold_source"] == "given" and res["note"] is None
    assert res["metrics"]["sensitivity_ci"] == list(binary_metrics(y, p, 0.45, 0.2)["sensitivity_ci"])
    assert isinstance(res["n_boot"], int) and isinstance(res["alpha"], float)


def test_evaluate_marker_single_positive_and_perfect_separation():
    """One positive: DeLong variance undefined (noted, NaN SE); perfect separation: SE exactly 0."""
    res = evaluate_marker([0, 1, 0, 0, np.nan], [0.2, 0.5, 0.7, 0.1, 0.3], threshold=0.5, n_boot=20)
    assert res["note"] == "DeLong variance undefined: a class has a single case"
    assert math.isnan(res["auc_se"]) and all(math.isnan(v) for v in res["auc_ci_delong"])
    assert res["auc"] == pytest.approx(2 / 3) and res["n_unknown"] == 1 and res["n_neg"] == 3
    both = evaluate_marker([0, 1, 0, 0], [0.2, 0.5, 0.7, 0.1], n_boot=20)
    assert both["note"] == ("DeLong variance undefined: a class has a single case; threshold chosen by Youden's J on "
                            "the evaluated data: threshold metrics are optimistic")
    perfect = evaluate_marker([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], threshold=0.5, n_boot=20)
    assert perfect["auc"] == 1.0 and perfect["auc_se"] == 0.0 and perfect["auc_ci_delong"] == [1.0, 1.0]


def test_evaluate_marker_one_class_uses_the_default_threshold():
    """One class only: the AUC is undefined, the threshold falls back to 0.5 and says so."""
    res = evaluate_marker([1, 1, None], [0.2, 0.7, 0.4], n_boot=20)
    assert res["threshold"] == 0.5 and res["threshold_source"] == "default_0.5"
    assert res["note"] == "AUC undefined: 2 altered and 0 not among 2 cases with known labels"
    assert res["metrics"]["tp"] == 1 and res["metrics"]["fn"] == 1
    assert res["calibration"]["note"] == "only one class present: calibration slope and intercept undefined"


def test_evaluate_marker_refuses_malformed_input():
    """2-D labels, text labels, labels other than 0/1 and scores of another shape raise ValueError."""
    with pytest.raises(ValueError, match="y must be 1-D"):
        evaluate_marker([[0, 1]], [[0.2, 0.8]])
    with pytest.raises(ValueError, match="NaN/None for unknown"):
        evaluate_marker(["a", "b"], [0.2, 0.8])
    with pytest.raises(ValueError, match="p must have the shape of y"):
        evaluate_marker([0, 1], [0.2, 0.8, 0.5])
    with pytest.raises(ValueError, match="0/1"):
        evaluate_marker([0, 2], [0.2, 0.8])
    with pytest.raises(ValueError, match="alpha"):
        evaluate_marker([0, 1], [0.2, 0.8], alpha=0.0)


def test_plain_converts_numpy_and_tuples():
    """NumPy scalars become Python numbers, tuples and arrays lists, dicts recursively."""
    from gliomics.evaluation.classification import _plain

    out = _plain({"a": (np.int64(3), np.float32(0.5)), "b": np.array([1, 2]), "c": {"d": np.float64(2.5)}, "e": "x"})
    assert out == {"a": [3, 0.5], "b": [1, 2], "c": {"d": 2.5}, "e": "x"}
    assert type(out["a"][0]) is int and type(out["a"][1]) is float and type(out["b"][0]) is int
    assert type(out["c"]["d"]) is float
