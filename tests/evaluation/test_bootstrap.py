"""Bootstrap intervals: mean, difference of means, paired AUC difference and F1, pinned to SciPy and to hand
percentile computations at the same seeds, levels and resample counts."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import f1_score, roc_auc_score

from gliomics.evaluation.bootstrap import f1_ci_bootstrap, mean_ci, mean_difference_ci, paired_auc_difference_ci

#: Irregular values, so that neighbouring bootstrap means differ and every percentile position shows.
VALUES = [0.213, 0.948, 0.402, 0.771, 0.105, 0.633, 0.327, 0.519, 0.884, 0.056, 0.691, 0.287]
OTHER = [0.501, 0.118, 0.342, 0.259, 0.977, 0.463, 0.035]


def _scipy_ci(data: tuple[np.ndarray, ...], statistic, n: int, seed: int) -> tuple[float, float]:
    res = stats.bootstrap(data, statistic, n_resamples=n, confidence_level=0.95, method="percentile",
                          random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _hand_mean_ci(x: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Resample indices drawn the way SciPy draws them, then the 2.5th and 97.5th percentiles of the means."""
    idx = np.random.default_rng(seed).integers(0, x.size, (n, x.size))
    return np.percentile(x[idx].mean(axis=1), [2.5, 97.5])


# ---------------------------------------------------------------- mean_ci


def test_mean_ci_defaults_are_2000_resamples_seed_0_at_95_percent():
    """The default call equals SciPy's percentile bootstrap and a hand percentile computation."""
    x = np.asarray(VALUES)
    res = mean_ci(VALUES)
    assert set(res) == {"mean", "lo", "hi", "n"}
    assert res["mean"] == pytest.approx(x.mean(), abs=1e-15)
    assert res["n"] == 12 and isinstance(res["n"], int)
    assert (res["lo"], res["hi"]) == _scipy_ci((x,), np.mean, 2000, 0)
    assert [res["lo"], res["hi"]] == pytest.approx(_hand_mean_ci(x, 2000, 0), abs=1e-12)
    assert res["lo"] == pytest.approx(0.3235770833333333, abs=1e-12)
    assert res["hi"] == pytest.approx(0.6451791666666665, abs=1e-12)


def test_mean_ci_honours_n_boot_and_seed():
    """Other resample counts and seeds give SciPy's interval at those settings."""
    x = np.asarray(VALUES)
    for n_boot, seed in ((2001, 0), (300, 0), (2000, 1), (500, 7)):
        res = mean_ci(VALUES, n_boot=n_boot, seed=seed)
        assert (res["lo"], res["hi"]) == _scipy_ci((x,), np.mean, n_boot, seed)
    assert mean_ci(VALUES, n_boot=2001) != mean_ci(VALUES)
    assert mean_ci(VALUES, seed=1) != mean_ci(VALUES)


def test_mean_ci_drops_none_and_nan():
    """NaN and None are left out before the mean and the resampling."""
    assert mean_ci([None, *VALUES[:6], math.nan, *VALUES[6:], None]) == mean_ci(VALUES)
    assert mean_ci([]) is None
    assert mean_ci([None, math.nan]) is None


def test_mean_ci_degenerate_samples_are_their_mean():
    """One value, or all values equal, give lo = hi = mean exactly (no resampling rounding)."""
    assert mean_ci([0.4]) == {"mean": 0.4, "lo": 0.4, "hi": 0.4, "n": 1}
    third = 1.0 / 3.0
    assert mean_ci([third, third, None, third]) == {"mean": third, "lo": third, "hi": third, "n": 3}
    # 50 resamples of 1/3 would average to 0.33333333333333326 in places.
    assert mean_ci([third] * 3, n_boot=50) == {"mean": third, "lo": third, "hi": third, "n": 3}


def test_mean_ci_of_two_values_is_resampled():
    """Two different values are enough for a bootstrap interval."""
    res = mean_ci([0.2, 0.5], n_boot=400, seed=3)
    assert (res["lo"], res["hi"]) == _scipy_ci((np.array([0.2, 0.5]),), np.mean, 400, 3)
    assert res["lo"] == 0.2 and res["hi"] == 0.5 and res["mean"] == pytest.approx(0.35) and res["n"] == 2


# ---------------------------------------------------------------- mean_difference_ci


def _diff(u: np.ndarray, v: np.ndarray, axis: int = -1) -> np.ndarray:
    return u.mean(axis=axis) - v.mean(axis=axis)


def test_mean_difference_ci_defaults_match_scipy_and_hand():
    """mean(a) − mean(b) with each group resampled on its own: 2000 resamples, seed 0, 95 %."""
    x, y = np.asarray(VALUES), np.asarray(OTHER)
    res = mean_difference_ci(VALUES, OTHER)
    assert set(res) == {"mean", "lo", "hi", "n_a", "n_b"}
    assert res["mean"] == pytest.approx(x.mean() - y.mean(), abs=1e-15)
    assert (res["n_a"], res["n_b"]) == (12, 7)
    assert (res["lo"], res["hi"]) == _scipy_ci((x, y), _diff, 2000, 0)
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, x.size, (2000, x.size)), rng.integers(0, y.size, (2000, y.size))
    hand = np.percentile(x[i].mean(axis=1) - y[j].mean(axis=1), [2.5, 97.5])
    assert [res["lo"], res["hi"]] == pytest.approx(hand, abs=1e-12)
    swapped = mean_difference_ci(OTHER, VALUES)
    assert swapped["mean"] == pytest.approx(-res["mean"]) and (swapped["n_a"], swapped["n_b"]) == (7, 12)


def test_mean_difference_ci_honours_n_boot_and_seed():
    """Non-default resample counts and seeds are passed through to the resampling."""
    x, y = np.asarray(VALUES), np.asarray(OTHER)
    for n_boot, seed in ((2001, 0), (250, 0), (2000, 1), (600, 9)):
        res = mean_difference_ci(VALUES, OTHER, n_boot=n_boot, seed=seed)
        assert (res["lo"], res["hi"]) == _scipy_ci((x, y), _diff, n_boot, seed)
    assert mean_difference_ci(VALUES, OTHER, n_boot=2001) != mean_difference_ci(VALUES, OTHER)


def test_mean_difference_ci_needs_two_values_per_group():
    """Fewer than two finite values in either group gives None; two in each is enough."""
    assert mean_difference_ci([1.0], [0.0, 1.0]) is None
    assert mean_difference_ci([0.0, 1.0], [1.0, None, math.nan]) is None
    assert mean_difference_ci([], []) is None
    res = mean_difference_ci([0.0, 1.0], [0.25, 0.5], n_boot=100)
    assert (res["n_a"], res["n_b"], res["mean"]) == (2, 2, 0.125)
    assert res["lo"] < res["mean"] < res["hi"]


def test_mean_difference_ci_constant_groups():
    """Constant groups give the exact difference as both bounds."""
    third = 1.0 / 3.0
    diff = float(np.mean([third] * 3) - np.mean([0.1] * 7))
    res = mean_difference_ci([third] * 3, [0.1] * 7)
    assert res == {"mean": diff, "lo": diff, "hi": diff, "n_a": 3, "n_b": 7}


def test_mean_difference_ci_nan_bounds_fall_back_to_the_difference(monkeypatch: pytest.MonkeyPatch):
    """When SciPy reports NaN bounds (degenerate resamples in some versions), both bounds are the difference."""

    nan_result = SimpleNamespace(confidence_interval=SimpleNamespace(low=math.nan, high=math.nan))
    monkeypatch.setattr(stats, "bootstrap", lambda *args, **kwargs: nan_result)
    res = mean_difference_ci([0.75, 0.25], [0.5, 0.0, 0.25])
    assert res == {"mean": 0.25, "lo": 0.25, "hi": 0.25, "n_a": 2, "n_b": 3}


# ---------------------------------------------------------------- paired_auc_difference_ci

Y_SMALL = np.array([1, 0, 1, 0, 0, 1, 1, 0, 0, 1])
A_SMALL = np.array([0.9, 0.3, 0.7, 0.4, 0.2, 0.35, 0.8, 0.6, 0.1, 0.65])
B_SMALL = np.array([0.6, 0.5, 0.4, 0.3, 0.7, 0.8, 0.55, 0.2, 0.45, 0.35])
_RNG = np.random.default_rng(11)
#: Thirty cases with continuous scores, so that the AUC differences of the resamples are finely spread.
Y30 = np.r_[np.ones(13, dtype=int), np.zeros(17, dtype=int)]
A30 = Y30 * 0.8 + _RNG.normal(0, 1, 30)
B30 = Y30 * 0.5 + _RNG.normal(0, 1, 30)


def _mw_auc(y: np.ndarray, p: np.ndarray) -> float:
    """AUC by counting pairs (ties one half); one class raises like sklearn's."""
    pos, neg = p[y == 1], p[y == 0]
    if not pos.size or not neg.size:
        raise ValueError("only one class present")
    return float(((pos[:, None] > neg) + 0.5 * (pos[:, None] == neg)).mean())


@pytest.fixture
def fast_auc(monkeypatch: pytest.MonkeyPatch) -> None:
    """Swap sklearn's roc_auc_score (milliseconds a call) for the pair count, so thousands of resamples are cheap."""
    import sklearn.metrics

    monkeypatch.setattr(sklearn.metrics, "roc_auc_score", _mw_auc)


def _hand_paired(y: np.ndarray, a: np.ndarray, b: np.ndarray, n_boot: int, seed: int) -> tuple[np.ndarray, int]:
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n_boot):
        idx = rng.integers(0, y.size, y.size)
        if 0 < y[idx].sum() < y.size:
            diffs.append(_mw_auc(y[idx], a[idx]) - _mw_auc(y[idx], b[idx]))
    return np.percentile(diffs, [2.5, 97.5]), len(diffs)


def test_paired_auc_difference_with_sklearn_auc():
    """With sklearn's own AUC: the difference of the two AUCs and the hand resampling's percentiles."""
    res = paired_auc_difference_ci(Y_SMALL.tolist(), A_SMALL.tolist(), B_SMALL.tolist(), n_boot=60, seed=1)
    assert set(res) == {"mean", "lo", "hi", "n"}
    assert res["mean"] == pytest.approx(roc_auc_score(Y_SMALL, A_SMALL) - roc_auc_score(Y_SMALL, B_SMALL))
    assert res["n"] == 10
    assert [res["lo"], res["hi"]] == pytest.approx(_hand_paired(Y_SMALL, A_SMALL, B_SMALL, 60, 1)[0], abs=1e-12)


@pytest.mark.usefixtures("fast_auc")
def test_paired_auc_difference_defaults_match_hand_resampling():
    """2000 paired resamples at seed 0; one-class resamples skipped; 2.5th and 97.5th percentiles."""
    res = paired_auc_difference_ci(Y30, A30, B30)
    assert [res["lo"], res["hi"]] == pytest.approx(_hand_paired(Y30, A30, B30, 2000, 0)[0], abs=1e-12)
    assert [res["lo"], res["hi"]] != pytest.approx(_hand_paired(Y30, A30, B30, 2001, 0)[0], abs=1e-12)
    assert res["mean"] == pytest.approx(_mw_auc(Y30, A30) - _mw_auc(Y30, B30))
    assert res["n"] == 30
    small = paired_auc_difference_ci(Y_SMALL, A_SMALL, B_SMALL)
    hand, kept = _hand_paired(Y_SMALL, A_SMALL, B_SMALL, 2000, 0)
    assert kept < 2000  # some resamples hold one class only
    assert [small["lo"], small["hi"]] == pytest.approx(hand, abs=1e-12)


@pytest.mark.usefixtures("fast_auc")
@pytest.mark.parametrize(("n_boot", "seed"), [(2001, 0), (300, 0), (400, 5)])
def test_paired_auc_difference_honours_n_boot_and_seed(n_boot: int, seed: int):
    """Resample count and seed are those given."""
    res = paired_auc_difference_ci(Y_SMALL, A_SMALL, B_SMALL, n_boot=n_boot, seed=seed)
    assert [res["lo"], res["hi"]] == pytest.approx(_hand_paired(Y_SMALL, A_SMALL, B_SMALL, n_boot, seed)[0],
                                                   abs=1e-12)


@pytest.mark.usefixtures("fast_auc")
def test_paired_auc_difference_skips_one_class_resamples_of_tiny_samples():
    """Six cases, half positive: all-negative and all-positive resamples occur and are left out."""
    y = np.array([1, 0, 1, 0, 0, 1])
    a = np.array([0.8, 0.1, 0.7, 0.5, 0.3, 0.4])
    b = np.array([0.2, 0.6, 0.9, 0.4, 0.3, 0.5])
    res = paired_auc_difference_ci(y, a, b, n_boot=500, seed=2)
    hand, kept = _hand_paired(y, a, b, 500, 2)
    assert kept < 490
    assert [res["lo"], res["hi"]] == pytest.approx(hand, abs=1e-12)
    assert res["mean"] == pytest.approx(_mw_auc(y, a) - _mw_auc(y, b))


def test_paired_auc_difference_without_resamples_or_classes():
    """No resamples give lo = hi = the difference; a single class gives None."""
    res = paired_auc_difference_ci([0, 1, 1], [0.2, 0.9, 0.4], [0.5, 0.3, 0.6], n_boot=0)
    assert res == {"mean": 0.5, "lo": 0.5, "hi": 0.5, "n": 3}
    assert paired_auc_difference_ci([1, 1, 1], [0.2, 0.9, 0.4], [0.5, 0.3, 0.6]) is None
    assert paired_auc_difference_ci([0, 0], [0.2, 0.9], [0.5, 0.3]) is None


# ---------------------------------------------------------------- f1_ci_bootstrap

Y_F1 = [1, 0, 1, 1, 0, 0, 1, 1, 0, 1, 0, 0, 1]
P_F1 = [1, 0, 0, 1, 1, 0, 1, 1, 0, 0, 0, 1, 1]


def _hand_f1_ci(y: list[int], pred: list[int], n_boot: int, alpha: float, seed: int) -> tuple[float, float]:
    """F1 = 2TP / (2TP + FP + FN) per resample, undefined resamples dropped, then the alpha/2 quantiles."""
    y_arr, p_arr = np.asarray(y), np.asarray(pred)
    idx = np.random.default_rng(seed).integers(0, y_arr.size, size=(n_boot, y_arr.size))
    scores = []
    for row in idx:
        yy, pp = y_arr[row], p_arr[row]
        tp = int(np.sum((yy == 1) & (pp == 1)))
        fp = int(np.sum((yy == 0) & (pp == 1)))
        fn = int(np.sum((yy == 1) & (pp == 0)))
        if 2 * tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    lo, hi = np.quantile(scores, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def test_f1_bootstrap_interval_is_seeded_and_covers_the_estimate():
    """Same seed, same interval; the interval covers the point F1; perfect calls give (1, 1); no cases NaN."""
    y, pred = [1, 0, 1, 1, 0, 0, 1, 1, 0, 1], [1, 0, 0, 1, 1, 0, 1, 1, 0, 0]
    lo, hi = f1_ci_bootstrap(y, pred, seed=3)
    assert (lo, hi) == f1_ci_bootstrap(y, pred, seed=3)
    assert lo < f1_score(y, pred) < hi
    assert f1_ci_bootstrap(y, pred, n_boot=200, seed=4) != f1_ci_bootstrap(y, pred, n_boot=200, seed=5)
    assert f1_ci_bootstrap(y, y) == (1.0, 1.0)
    assert all(math.isnan(v) for v in f1_ci_bootstrap([], []))


def test_f1_ci_defaults_match_hand_quantiles():
    """Defaults: 2000 resamples, alpha 0.05, seed 0."""
    ci = f1_ci_bootstrap(Y_F1, P_F1)
    assert ci == pytest.approx(_hand_f1_ci(Y_F1, P_F1, 2000, 0.05, 0), abs=1e-12)
    assert isinstance(ci[0], float) and isinstance(ci[1], float)


@pytest.mark.parametrize(("n_boot", "alpha", "seed"), [(2001, 0.05, 0), (2000, 0.05, 1), (500, 0.2, 0), (800, 0.5, 4)])
def test_f1_ci_honours_n_boot_alpha_and_seed(n_boot: int, alpha: float, seed: int):
    """Resample count, level and seed are those given."""
    ci = f1_ci_bootstrap(Y_F1, P_F1, n_boot=n_boot, alpha=alpha, seed=seed)
    assert ci == pytest.approx(_hand_f1_ci(Y_F1, P_F1, n_boot, alpha, seed), abs=1e-12)


def test_f1_ci_leaves_out_resamples_without_positives():
    """Resamples with no positive label and no positive call have undefined F1 and are dropped, not scored 0."""
    y, pred = [1, 0, 0, 0], [1, 0, 0, 1]
    ci = f1_ci_bootstrap(y, pred, n_boot=400, alpha=0.5, seed=1)
    assert ci == pytest.approx(_hand_f1_ci(y, pred, 400, 0.5, 1), abs=1e-12)
    assert ci == pytest.approx((0.0, 13 / 14), abs=1e-12)  # 6/7 if they were scored 0
    assert all(math.isnan(v) for v in f1_ci_bootstrap([0, 0, 0], [0, 0, 0], n_boot=50))
