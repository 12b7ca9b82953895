"""ROC AUCs, DeLong variance, CIs and test, and the bootstrap CI, pinned to hand computations and SciPy/sklearn."""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from gliomics.evaluation.auc import (
    _both_classes,
    _labels,
    _scores,
    auc_ci_bootstrap,
    auc_ci_delong,
    auc_delong,
    delong_test,
)

# ---------------------------------------------------------------- helpers


def _placements(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """V10 (one per positive: share of negatives below it) and V01 (one per negative), ties one half."""
    pos, neg = p[y == 1], p[y == 0]
    v10 = ((pos[:, None] > neg) + 0.5 * (pos[:, None] == neg)).mean(axis=1)
    v01 = ((pos[:, None] > neg) + 0.5 * (pos[:, None] == neg)).mean(axis=0)
    return v10, v01


def _mw_aucs(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Row-wise Mann-Whitney AUCs (SciPy's U statistic of the positives over m·n)."""
    return stats.mannwhitneyu(pos, neg, axis=1).statistic / (pos.shape[1] * neg.shape[1])


#: Ten cases, ties across and within the classes, positives not first.
Y10 = np.array([0, 1, 0, 1, 1, 0, 0, 1, 0, 0])
P10 = np.array([0.3, 0.8, 0.5, 0.5, 0.9, 0.1, 0.6, 0.35, 0.3, 0.2])
Q10 = np.array([0.6, 0.7, 0.2, 0.4, 0.55, 0.3, 0.5, 0.45, 0.1, 0.65])


def _sample(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and coarse (tied) scores of moderate AUC."""
    rng = np.random.default_rng(seed)
    y = rng.binomial(1, 0.4, n)
    return y, np.round(1 / (1 + np.exp(-(y + rng.normal(0, 1, n)))), 1)


Y40, P40 = _sample()


# ---------------------------------------------------------------- input checks


def test_labels_are_int64_from_bool_int_and_float():
    """0/1 labels of any numeric or boolean dtype come back as int64."""
    for raw in ([True, False, True], [1, 0, 1], [1.0, 0.0, 1.0], np.array([1, 0, 1], dtype=np.uint8)):
        out = _labels(raw)
        assert out.dtype == np.int64
        assert out.tolist() == [1, 0, 1]


def test_labels_reject_other_values_shapes_and_dtypes():
    """Not 0/1, not 1-D, not numeric: ValueError naming the argument; at most five offending values listed."""
    with pytest.raises(ValueError, match=r"^y must hold 0/1 labels \(1 = altered\); found \[2.0\]$"):
        _labels([0, 2, 1])
    with pytest.raises(ValueError, match=r"found \[-1.0, 2.0, 3.0, 4.0, 5.0\]$"):
        _labels([0, 1, 2, 3, 4, 5, 6, -1, 1])
    with pytest.raises(ValueError, match="^y must hold 0/1 labels"):
        _labels([0.0, math.nan])
    with pytest.raises(ValueError, match=r"^y must be 1-D, got shape \(2, 1\)"):
        _labels([[0], [1]])
    with pytest.raises(ValueError, match="^lab must hold 0/1 labels, got dtype"):
        _labels(["a", "b"], "lab")
    with pytest.raises(ValueError, match="^y must hold 0/1 labels, got dtype object"):
        _labels(np.array([{}, 1], dtype=object))


def test_scores_are_float64_and_checked():
    """Scores are float64 of the labels' length and finite; probabilities must lie in [0, 1], ends included."""
    assert _scores([1, 2, 3], 3).dtype == np.float64
    assert _scores([-4.0, 7.5], 2).tolist() == [-4.0, 7.5]  # any monotone score unless probability=True
    assert _scores([0.0, 1.0], 2, probability=True).tolist() == [0.0, 1.0]
    assert _scores([], 0, probability=True).size == 0
    with pytest.raises(ValueError, match=r"^p must be 1-D with 3 values like the labels, got shape \(2,\)"):
        _scores([0.1, 0.2], 3)
    with pytest.raises(ValueError, match=r"^p must be 1-D with 2 values like the labels, got shape \(2, 1\)"):
        _scores([[0.1], [0.2]], 2)
    with pytest.raises(ValueError, match="^q holds 2 non-finite values"):
        _scores([0.1, math.nan, math.inf], 3, "q")
    with pytest.raises(ValueError, match=r"^p must be probabilities in \[0, 1\]"):
        _scores([0.5, 1.5], 2, probability=True)
    with pytest.raises(ValueError, match=r"^p must be probabilities in \[0, 1\]"):
        _scores([-0.1, 0.5], 2, probability=True)
    with pytest.raises(ValueError, match="^p must be 1-D"):
        auc_delong([0, 1, 1], [0.1, 0.2])


def test_both_classes_needs_a_positive_and_a_negative():
    """Two cases, one of each class, are enough; a single class or a single case is not."""
    assert _both_classes(np.array([0, 1]))
    assert _both_classes(np.array([1, 0, 0]))
    assert not _both_classes(np.array([1, 1, 1]))
    assert not _both_classes(np.array([0, 0]))
    assert not _both_classes(np.array([1]))
    assert not _both_classes(np.array([], dtype=np.int64))


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1, 1.5])
def test_alpha_outside_open_unit_interval_is_refused(alpha: float):
    """alpha must lie strictly between 0 and 1 for both CIs."""
    with pytest.raises(ValueError, match="alpha must be in"):
        auc_ci_delong(Y10, P10, alpha=alpha)
    with pytest.raises(ValueError, match="alpha must be in"):
        auc_ci_bootstrap(Y10, P10, n_boot=10, alpha=alpha)


# ---------------------------------------------------------------- DeLong variance


def test_auc_delong_two_by_two_hand_case():
    """Positives 0.9, 0.4; negatives 0.6, 0.2: AUC 3/4, V10 = (1, 1/2), V01 = (1/2, 1), variance 1/8/2 + 1/8/2."""
    auc, var = auc_delong([0, 1, 0, 1], [0.6, 0.9, 0.2, 0.4])
    assert auc == pytest.approx(0.75, abs=1e-15)
    assert var == pytest.approx(1 / 8, abs=1e-15)


def test_auc_delong_unequal_classes_matches_placements():
    """Four positives and six negatives with ties: var = var(V10)/m + var(V01)/n with ddof 1."""
    v10, v01 = _placements(Y10, P10)
    auc, var = auc_delong(Y10, P10)
    assert auc == pytest.approx(roc_auc_score(Y10, P10), abs=1e-15)
    assert auc == pytest.approx(v10.mean(), abs=1e-15)
    assert var == pytest.approx(v10.var(ddof=1) / 4 + v01.var(ddof=1) / 6, rel=1e-12)
    # The same cases in another order, and the scores on another monotone scale, change nothing.
    order = np.argsort(P10, kind="stable")
    assert auc_delong(Y10[order], P10[order]) == pytest.approx((auc, var), rel=1e-12)
    assert auc_delong(Y10, 10 * P10 - 3) == pytest.approx((auc, var), rel=1e-12)
    assert isinstance(auc, float) and isinstance(var, float)


def test_auc_delong_single_case_class_gives_nan_variance_quietly():
    """One positive: the AUC exists, the variance is NaN, and no degrees-of-freedom warning is raised."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        auc, var = auc_delong([0, 1, 0, 0], [0.2, 0.5, 0.7, 0.1])
        auc2, var2 = auc_delong([1, 0, 1, 1], [0.2, 0.5, 0.7, 0.9])
        auc3, var3 = auc_delong([1, 0], [0.9, 0.2])
    assert auc == pytest.approx(2 / 3) and math.isnan(var)
    assert auc2 == pytest.approx(2 / 3) and math.isnan(var2)
    assert auc3 == 1.0 and math.isnan(var3)


@pytest.mark.parametrize("y", [[1, 1, 1], [0, 0, 0], [1], []])
def test_auc_delong_one_class_is_nan(y: list[int]):
    """No AUC without both classes."""
    auc, var = auc_delong(y, [0.5] * len(y))
    assert math.isnan(auc) and math.isnan(var)


# ---------------------------------------------------------------- DeLong CI


@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.32])
def test_auc_ci_delong_normal_interval(alpha: float):
    """auc ± Φ⁻¹(1 − α/2)·sqrt(var), with the level given."""
    auc, var = auc_delong(Y40, P40)
    z = stats.norm.ppf(1 - alpha / 2)
    a, lo, hi = auc_ci_delong(Y40, P40, alpha=alpha)
    assert a == auc
    assert lo == pytest.approx(auc - z * math.sqrt(var), abs=1e-12)
    assert hi == pytest.approx(auc + z * math.sqrt(var), abs=1e-12)
    assert 0.0 < lo < hi < 1.0


def test_auc_ci_delong_default_is_95_percent():
    """The default level is 95 %."""
    auc, var = auc_delong(Y40, P40)
    half = 1.959963984540054 * math.sqrt(var)
    assert auc_ci_delong(Y40, P40) == pytest.approx((auc, auc - half, auc + half), abs=1e-12)


def test_auc_ci_delong_is_clipped_to_the_unit_interval():
    """Bounds beyond [0, 1] are clipped exactly to 0 or 1."""
    y = np.array([1, 1, 1, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.3, 0.4, 0.2, 0.1])  # AUC 8/9 with a wide interval
    auc, var = auc_delong(y, p)
    assert auc + 1.96 * math.sqrt(var) > 1.0
    assert auc_ci_delong(y, p) == (pytest.approx(8 / 9), pytest.approx(auc - stats.norm.ppf(0.975) * math.sqrt(var)),
                                   1.0)
    low = auc_ci_delong(y, 1.0 - p)  # the reversed score, AUC 1/9
    assert low[0] == pytest.approx(1 / 9) and low[1] == 0.0 and low[2] < 1.0
    assert auc_ci_delong(y, np.r_[0.9, 0.8, 0.7, 0.3, 0.2, 0.1]) == (1.0, 1.0, 1.0)


def test_auc_ci_delong_undefined_variance_or_auc():
    """A single positive gives the AUC with NaN bounds; one class gives NaN throughout."""
    auc, lo, hi = auc_ci_delong([0, 1, 0, 0], [0.2, 0.5, 0.7, 0.1])
    assert auc == pytest.approx(2 / 3) and math.isnan(lo) and math.isnan(hi)
    assert all(math.isnan(v) for v in auc_ci_delong([1, 1], [0.2, 0.5]))


# ---------------------------------------------------------------- bootstrap CI


def _hand_stratified(y: np.ndarray, p: np.ndarray, n_boot: int, alpha: float, seed: int) -> tuple[float, float]:
    """Positives then negatives resampled with replacement, all resamples in one draw."""
    rng = np.random.default_rng(seed)
    pos, neg = p[y == 1], p[y == 0]
    aucs = _mw_aucs(rng.choice(pos, size=(n_boot, pos.size)), rng.choice(neg, size=(n_boot, neg.size)))
    lo, hi = np.quantile(aucs, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _pair_aucs(yy: np.ndarray, pp: np.ndarray) -> np.ndarray:
    """Row-wise AUCs by counting (positive, negative) pairs of each resample, ties one half."""
    pairs = (yy[:, :, None] == 1) & (yy[:, None, :] == 0)
    wins = (pp[:, :, None] > pp[:, None, :]) + 0.5 * (pp[:, :, None] == pp[:, None, :])
    return (wins * pairs).sum(axis=(1, 2)) / pairs.sum(axis=(1, 2))


def _hand_plain(y: np.ndarray, p: np.ndarray, n_boot: int, alpha: float, seed: int) -> tuple[float, float]:
    """All cases resampled together; resamples with one class redrawn until n_boot hold both."""
    rng = np.random.default_rng(seed)
    aucs: list[np.ndarray] = []
    kept = 0
    while kept < n_boot:
        idx = rng.integers(0, y.size, size=(n_boot - kept, y.size))
        both = (y[idx].sum(axis=1) > 0) & (y[idx].sum(axis=1) < y.size)
        aucs.append(_pair_aucs(y[idx[both]], p[idx[both]]))
        kept += int(both.sum())
    lo, hi = np.quantile(np.concatenate(aucs), [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def test_auc_ci_bootstrap_defaults_are_stratified_2000_resamples_seed_0_at_95_percent():
    """The default call equals a hand stratified resampling with 2000 resamples, seed 0 and the 2.5/97.5 % quantiles."""
    auc, lo, hi = auc_ci_bootstrap(Y10, P10)
    assert auc == pytest.approx(roc_auc_score(Y10, P10), abs=1e-15)
    assert (lo, hi) == pytest.approx(_hand_stratified(Y10, P10, 2000, 0.05, 0), abs=1e-12)
    assert isinstance(lo, float) and isinstance(hi, float)


@pytest.mark.parametrize(("n_boot", "alpha", "seed"), [(2001, 0.05, 0), (2000, 0.05, 1), (700, 0.2, 0), (1, 0.5, 3)])
def test_auc_ci_bootstrap_stratified_honours_arguments(n_boot: int, alpha: float, seed: int):
    """Resample count, level and seed are those given (one resample is allowed)."""
    _, lo, hi = auc_ci_bootstrap(Y10, Q10, n_boot=n_boot, alpha=alpha, seed=seed)
    assert (lo, hi) == pytest.approx(_hand_stratified(Y10, Q10, n_boot, alpha, seed), abs=1e-12)


@pytest.mark.parametrize(("n_boot", "alpha", "seed"), [(2000, 0.05, 0), (300, 0.1, 4)])
def test_auc_ci_bootstrap_plain_redraws_one_class_resamples(n_boot: int, alpha: float, seed: int,
                                                           caplog: pytest.LogCaptureFixture):
    """Unstratified: one-class resamples are redrawn until n_boot hold both classes, without a warning."""
    y = np.array([1, 0, 0, 0, 1, 0])
    p = np.array([0.7, 0.2, 0.75, 0.1, 0.4, 0.3])
    with caplog.at_level(logging.WARNING, logger="gliomics.evaluation.auc"):
        auc, lo, hi = auc_ci_bootstrap(y, p, n_boot=n_boot, alpha=alpha, seed=seed, stratified=False)
    assert not caplog.records
    assert auc == pytest.approx(0.75)
    assert (lo, hi) == pytest.approx(_hand_plain(y, p, n_boot, alpha, seed), abs=1e-12)


def test_auc_ci_bootstrap_in_several_chunks():
    """More scores than one chunk holds (2 million): the resamples are drawn chunk by chunk, in the same order."""
    rng = np.random.default_rng(0)
    y = rng.binomial(1, 0.4, 800)
    p = np.round(rng.normal(0, 1, 800) + y, 2)
    pos, neg = p[y == 1], p[y == 0]
    auc, lo, hi = auc_ci_bootstrap(y, p, n_boot=2600, alpha=0.1, seed=5)
    draw = np.random.default_rng(5)
    aucs = []
    for rows in (2500, 100):  # 2 000 000 // 800 resamples in the first chunk
        aucs.append(_mw_aucs(draw.choice(pos, size=(rows, pos.size)), draw.choice(neg, size=(rows, neg.size))))
    assert auc == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert (lo, hi) == pytest.approx(np.quantile(np.concatenate(aucs), [0.05, 0.95]), abs=1e-12)


def test_auc_ci_bootstrap_refuses_no_resamples_and_needs_both_classes():
    """n_boot below 1 is refused; one class gives NaN throughout."""
    with pytest.raises(ValueError, match="n_boot must be >= 1, got 0"):
        auc_ci_bootstrap(Y10, P10, n_boot=0)
    assert all(math.isnan(v) for v in auc_ci_bootstrap([1, 1, 1], [0.1, 0.2, 0.3], n_boot=5))
    assert all(math.isnan(v) for v in auc_ci_bootstrap([0, 0, 0], [0.1, 0.2, 0.3], n_boot=5, stratified=False))


def test_auc_ci_bootstrap_smallest_sample():
    """One positive and one negative: every resample has AUC 1 (stratified)."""
    assert auc_ci_bootstrap([0, 1], [0.2, 0.9], n_boot=20) == (1.0, 1.0, 1.0)


# ---------------------------------------------------------------- DeLong test


def _brute_delong(y: np.ndarray, pa: np.ndarray, pb: np.ndarray) -> tuple[float, float]:
    a10, a01 = _placements(y, pa)
    b10, b01 = _placements(y, pb)
    cov = np.cov(np.vstack([a10, b10])) / a10.size + np.cov(np.vstack([a01, b01])) / a01.size
    diff = a10.mean() - b10.mean()
    return diff, diff / math.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])


def test_delong_test_matches_brute_force():
    """AUCs, their difference, z from the paired DeLong covariance and the two-sided normal p-value."""
    diff, z = _brute_delong(Y10, P10, Q10)
    res = delong_test(Y10, P10, Q10)
    assert set(res) == {"auc_a", "auc_b", "diff", "z", "p_value"}
    assert res["auc_a"] == pytest.approx(roc_auc_score(Y10, P10), abs=1e-15)
    assert res["auc_b"] == pytest.approx(roc_auc_score(Y10, Q10), abs=1e-15)
    assert res["diff"] == pytest.approx(diff, abs=1e-15)
    assert res["z"] == pytest.approx(z, rel=1e-12)
    assert res["p_value"] == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-12)
    assert 0.0 < res["p_value"] < 1.0
    back = delong_test(Y10, Q10, P10)
    assert back["z"] == pytest.approx(-z, rel=1e-12) and back["p_value"] == pytest.approx(res["p_value"], rel=1e-12)


def test_delong_test_zero_variance_difference_is_infinite():
    """A perfect model against one that ties everything: variance 0, z = ±inf, p = 0."""
    y = [1, 1, 0, 0]
    perfect, flat = [0.9, 0.8, 0.2, 0.1], [0.5, 0.5, 0.5, 0.5]
    res = delong_test(y, perfect, flat)
    assert res == {"auc_a": 1.0, "auc_b": 0.5, "diff": 0.5, "z": math.inf, "p_value": 0.0}
    assert delong_test(y, flat, perfect) == {"auc_a": 0.5, "auc_b": 1.0, "diff": -0.5, "z": -math.inf, "p_value": 0.0}


def test_delong_test_identical_models():
    """The same scores twice: diff = z = 0 and p = 1."""
    assert delong_test(Y10, P10, P10) == {"auc_a": pytest.approx(roc_auc_score(Y10, P10)),
                                          "auc_b": pytest.approx(roc_auc_score(Y10, P10)),
                                          "diff": 0.0, "z": 0.0, "p_value": 1.0}


def test_delong_test_single_positive_and_one_class():
    """A single positive gives AUCs and their difference but NaN z and p; one class gives NaN throughout."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = delong_test([0, 1, 0, 0], [0.2, 0.5, 0.7, 0.1], [0.2, 0.9, 0.7, 0.1])
    assert res["auc_a"] == pytest.approx(2 / 3) and res["auc_b"] == 1.0 and res["diff"] == pytest.approx(-1 / 3)
    assert math.isnan(res["z"]) and math.isnan(res["p_value"])
    nan = delong_test([1, 1], [0.2, 0.4], [0.3, 0.1])
    assert set(nan) == {"auc_a", "auc_b", "diff", "z", "p_value"} and all(math.isnan(v) for v in nan.values())


def test_delong_test_checks_both_score_arrays():
    """Each score array is checked against the labels, and named in the error."""
    with pytest.raises(ValueError, match="^p_a must be 1-D"):
        delong_test([0, 1, 1], [0.1, 0.2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="^p_b holds 1 non-finite"):
        delong_test([0, 1, 1], [0.1, 0.2, 0.3], [0.1, math.nan, 0.3])
