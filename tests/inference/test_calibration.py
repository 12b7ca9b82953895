"""Marker calibration: temperature scaling, operating points, conformal sets, and their place in a prediction."""

from __future__ import annotations

import numpy as np
import pytest

from gliomics.evaluation.calibration_metrics import calibration
from gliomics.inference.calibration import (
    apply_calibration,
    fit_marker_calibration,
    fit_run_calibration,
    fit_temperature,
    operating_thresholds,
    youden_threshold,
)


def _logit(p):
    return np.log(p) - np.log1p(-p)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _draw(rng, n, squeeze=4.0):
    """Labels drawn from true probabilities, and a model whose logits are those probabilities' divided by
    ``squeeze`` (probabilities crowded around 0.5: calibration slope ``squeeze``)."""
    z = rng.normal(0.0, 2.0, n)
    y = (rng.random(n) < _sigmoid(z)).astype(int)
    return y, _sigmoid(z / squeeze)


def test_temperature_restores_a_slope_near_one():
    rng = np.random.default_rng(0)
    y, p = _draw(rng, 4000)
    assert calibration(y, p)["slope"] > 3.0  # squeezed
    t = fit_temperature(y, p)
    assert t == pytest.approx(0.25, rel=0.15)
    y2, p2 = _draw(rng, 4000)  # fresh cases of the same kind
    fixed = _sigmoid(_logit(p2) / t)
    cal = calibration(y2, fixed)
    assert 0.85 < cal["slope"] < 1.15 and cal["ece"] < 0.05
    # over-confident probabilities are tempered the other way
    y3, p3 = _draw(rng, 4000, squeeze=0.4)
    assert fit_temperature(y3, p3) > 2.0


def test_temperature_stays_one_when_it_cannot_help():
    assert fit_temperature(np.array([1, 1, 1]), np.array([0.2, 0.6, 0.7])) == 1.0
    y = np.array([0, 0, 0, 1, 1, 1] * 5)
    reversed_scores = np.where(y == 1, 0.3, 0.7) + np.linspace(-0.05, 0.05, y.size)
    assert fit_temperature(y, reversed_scores) == 1.0
    fitted = fit_marker_calibration(np.array([0, 1, 1, 1]), np.array([0.4, 0.6, 0.55, 0.7]))
    assert fitted["temperature"] == 1.0 and "fewer than" in fitted["note"]


def test_operating_points_reach_their_rates_on_the_fitting_set():
    rng = np.random.default_rng(1)
    y, p = _draw(rng, 300, squeeze=1.0)
    t = operating_thresholds(y, p)
    calls = {k: p >= v for k, v in t.items()}
    sensitivity = lambda c: c[y == 1].mean()  # noqa: E731
    specificity = lambda c: 1 - c[y == 0].mean()  # noqa: E731
    assert sensitivity(calls["rule_out"]) >= 0.95
    assert specificity(calls["rule_in"]) >= 0.95
    # each is the most useful such threshold: one step further loses the guarantee
    above = np.min(p[p > t["rule_out"]])
    assert sensitivity(p >= above) < 0.95
    below = np.max(p[p < t["rule_in"]])
    assert specificity(p >= below) < 0.95
    assert t["rule_out"] <= t["youden"] <= t["rule_in"]
    assert t["youden"] == youden_threshold(y, p)


def test_conformal_sets_cover_one_minus_alpha_on_exchangeable_data():
    rng = np.random.default_rng(2)
    alpha, coverage, undetermined = 0.1, [], []
    for _ in range(200):
        y, p = _draw(rng, 150, squeeze=1.0)
        fitted = fit_marker_calibration(y, p, alpha=alpha)
        y_new, p_new = _draw(rng, 150, squeeze=1.0)
        entries = [apply_calibration("idh", float(q), fitted) for q in p_new]
        truth = np.where(y_new == 1, "mutant", "wildtype")
        coverage.append(np.mean([t in e["prediction_set"] for t, e in zip(truth, entries, strict=True)]))
        undetermined.append(np.mean([e["set_status"] == "undetermined" for e in entries]))
    assert 1 - alpha - 0.01 <= np.mean(coverage) <= 1 - alpha + 0.04
    assert 0 < np.mean(undetermined) < 1  # informative: some cases get a single class


def test_apply_calibration_records_raw_calibrated_calls_and_set():
    fitted = {"temperature": 0.5, "thresholds": {"youden": 0.5, "rule_out": 0.2, "rule_in": 0.8}, "alpha": 0.1,
              "conformal_q": [0.6, 0.6]}
    e = apply_calibration("codel_1p19q", 0.6, fitted)
    assert e["probability_raw"] == 0.6 and e["probability"] == pytest.approx(_sigmoid(2 * _logit(0.6)), abs=1e-4)
    assert e["calibrated"] and e["call"] == 1 and e["calls"] == {"youden": 1, "rule_out": 1, "rule_in": 0}
    assert e["prediction_set"] == ["codeleted"] and e["set_status"] == "codeleted"
    both = apply_calibration("idh", 0.5, {**fitted, "conformal_q": [0.9, 0.9]})
    assert both["set_status"] == "undetermined" and both["prediction_set"] == ["wildtype", "mutant"]
    raw = apply_calibration("tert", 0.3, None, default_threshold=0.25)
    assert raw == {"probability": 0.3, "probability_raw": 0.3, "calibrated": False, "threshold": 0.25, "call": 1}


def test_fit_run_calibration_skips_markers_without_labels():
    labels = np.array([[1, np.nan, 0], [0, np.nan, 1], [1, np.nan, 1], [0, np.nan, 0]], dtype=float)
    probs = [dict.fromkeys(("idh", "codel_1p19q", "tert"), p) for p in (0.6, 0.4, 0.7, 0.3)]
    fitted = fit_run_calibration(labels, probs, source="validation")
    assert fitted["source"] == "validation" and set(fitted["markers"]) == {"idh", "tert"}


# ---------------------------------------------------------------- youden_threshold


def test_youden_separates_a_separable_example() -> None:
    y = np.array([0, 0, 0, 0, 1, 1, 1])
    prob = np.array([0.05, 0.2, 0.3, 0.35, 0.6, 0.7, 0.9])
    thr = youden_threshold(y, prob)
    assert 0.35 < thr <= 0.6
    np.testing.assert_array_equal((prob >= thr).astype(int), y)


def test_youden_separable_with_shuffled_order() -> None:
    rng = np.random.default_rng(0)
    neg, pos = rng.uniform(0.0, 0.4, 20), rng.uniform(0.55, 1.0, 15)
    y = np.r_[np.zeros(20, int), np.ones(15, int)]
    prob = np.r_[neg, pos]
    order = rng.permutation(y.size)
    thr = youden_threshold(y[order], prob[order])
    assert neg.max() < thr <= pos.min()
    assert 0.0 <= thr <= 1.0


@pytest.mark.parametrize("y", [[0, 0, 0], [1, 1], []])
def test_youden_one_class_is_half(y: list[int]) -> None:
    prob = np.linspace(0.1, 0.9, len(y))
    assert youden_threshold(np.array(y, dtype=int), prob) == 0.5


def test_youden_is_within_unit_interval() -> None:
    # a reversed classifier: the best J is at the extreme threshold, which is clipped into [0, 1]
    y = np.array([1, 1, 0, 0])
    prob = np.array([0.1, 0.2, 0.8, 0.9])
    assert 0.0 <= youden_threshold(y, prob) <= 1.0


# ---------------------------------------------------------------- exact values on hand-built examples


def test_constants_name_the_operating_points_and_classes() -> None:
    """The operating points, their order and wording, the class names and the default miscoverage."""
    from gliomics.inference.calibration import CLASS_NAMES, DEFAULT_ALPHA, MIN_PER_CLASS, OPERATING_POINTS

    assert list(OPERATING_POINTS.items()) == [("youden", "Youden's J"), ("rule_out", "sensitivity >= 0.95"),
                                              ("rule_in", "specificity >= 0.95")]
    assert CLASS_NAMES == {"idh": ("wildtype", "mutant"), "codel_1p19q": ("intact", "codeleted"),
                           "tert": ("wildtype", "mutant")}
    assert DEFAULT_ALPHA == 0.1 and MIN_PER_CLASS == 3


def test_logit_clips_to_one_in_a_million() -> None:
    """Probabilities of exactly 0 and 1 are clipped to 1e-6 and 1 - 1e-6 before the logit."""
    from gliomics.inference.calibration import _logit

    z = _logit(np.array([0.0, 1.0, 0.25]))
    np.testing.assert_allclose(z, [_logit(np.array([1e-6]))[0], -_logit(np.array([1e-6]))[0], np.log(1 / 3)],
                               rtol=1e-9)
    assert z[0] == pytest.approx(np.log(1e-6 / (1 - 1e-6)), rel=1e-9)
    assert z[1] == pytest.approx(-np.log(1e-6 / (1 - 1e-6)), rel=1e-9)
    single = _logit(np.array([0.3], dtype=np.float32))  # computed in double precision
    assert single.dtype == np.float64 and single[0] == pytest.approx(
        np.log(float(np.float32(0.3)) / (1 - float(np.float32(0.3)))), rel=1e-12)


def test_temperature_is_the_inverse_slope_of_a_logistic_fit_without_intercept() -> None:
    """T = 1 / argmin of the log loss of sigmoid(s * logit(p)), checked against a scalar minimisation."""
    from scipy.optimize import minimize_scalar

    y = np.array([0, 1, 0, 1, 1, 0, 1])
    p = np.array([0.7, 0.8, 0.4, 0.9, 0.3, 0.2, 0.6])
    z = _logit(p)
    res = minimize_scalar(lambda s: np.sum(np.logaddexp(0, s * z) - y * s * z), bounds=(1e-3, 50), method="bounded",
                          options={"xatol": 1e-12})
    assert fit_temperature(y, p) == pytest.approx(1.0 / res.x, rel=1e-4)
    assert fit_temperature(y, p) == pytest.approx(1.0633, abs=1e-3)  # an intercept would give 1.076
    # two cases are enough when they hold both classes
    z2 = _logit(np.array([0.7, 0.8]))
    res2 = minimize_scalar(lambda s: np.sum(np.logaddexp(0, s * z2) - np.array([0, 1]) * s * z2), bounds=(1e-3, 50),
                           method="bounded", options={"xatol": 1e-12})
    assert fit_temperature(np.array([0, 1]), np.array([0.7, 0.8])) == pytest.approx(1.0 / res2.x, rel=1e-3)
    assert fit_temperature(np.array([1]), np.array([0.7])) == 1.0


def test_temperature_of_separable_logits_is_capped() -> None:
    """Logits that separate the classes perfectly drive the slope up; the temperature stops at 0.01."""
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.499, 0.4995, 0.4999, 0.5001, 0.5005, 0.501])
    assert fit_temperature(y, p) == 0.01


def test_youden_threshold_exact_values() -> None:
    """Youden's threshold is the score where J peaks; a reversed classifier gets the clipped extreme 1.0."""
    y = np.array([0, 0, 0, 0, 1, 1, 1])
    prob = np.array([0.05, 0.2, 0.3, 0.35, 0.6, 0.7, 0.9])
    assert youden_threshold(y, prob) == 0.6
    assert youden_threshold(np.array([1, 1, 0, 0]), np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    # J: 1/3 at 0.9, 0 at 0.8, 2/3 at 0.7 (the maximum), 1/3 at 0.4
    assert youden_threshold(np.array([1, 0, 1, 1, 0, 0]), np.array([0.9, 0.8, 0.75, 0.7, 0.4, 0.2])) == 0.7


def _boundary_cohort() -> tuple[np.ndarray, np.ndarray]:
    """20 negatives and 20 positives: one negative at 0.9 (specificity exactly 0.95 below it), one positive at 0.45
    below a vertical run of positives (sensitivity exactly 0.95 at 0.5)."""
    neg = [0.9, 0.3] + [0.01 * k for k in range(1, 19)]
    pos = [0.95, 0.85, 0.8, 0.75, 0.7, 0.68, 0.66, 0.64, 0.62, 0.6, 0.58, 0.57, 0.56, 0.555, 0.553, 0.552, 0.551,
           0.55, 0.5, 0.45]
    return np.r_[np.zeros(20, int), np.ones(20, int)], np.array(neg + pos)


def test_operating_thresholds_hit_the_rates_exactly_at_the_boundary() -> None:
    """Rates of exactly 0.95 qualify; every distinct score is a candidate (none dropped off the ROC hull)."""
    y, p = _boundary_cohort()
    t = operating_thresholds(y, p)
    assert t == {"youden": 0.45, "rule_out": 0.5, "rule_in": 0.45}
    assert list(t) == ["youden", "rule_out", "rule_in"]
    assert (p[y == 1] >= 0.5).mean() == 0.95 and 1 - (p[y == 0] >= 0.45).mean() == 0.95


def test_rule_in_is_one_when_the_top_score_is_a_negative() -> None:
    """With fewer than 20 negatives one false positive breaks the specificity: only the threshold above all scores
    (clipped to 1.0) keeps it."""
    y = np.array([0, 1, 1, 0, 1, 0])
    p = np.array([0.95, 0.9, 0.8, 0.6, 0.4, 0.2])
    t = operating_thresholds(y, p)
    assert t["rule_in"] == 1.0 and t["rule_out"] == 0.4 and t["youden"] == 0.4


@pytest.mark.parametrize("y", [[1, 1, 1], [0, 0], []])
def test_operating_thresholds_of_one_class_are_one_half(y: list[int]) -> None:
    """Without both classes every operating point falls back to 0.5."""
    p = np.linspace(0.2, 0.8, len(y))
    assert operating_thresholds(np.array(y), p) == {"youden": 0.5, "rule_out": 0.5, "rule_in": 0.5}


@pytest.mark.parametrize(("n", "alpha", "expected"), [
    (10, 0.3, 0.7),   # rank ceil(11 * 0.7) = 8
    (5, 0.2, 0.4),    # rank ceil(6 * 0.8) = 5 = n: the largest score
    (4, 0.1, 1.0),    # rank ceil(5 * 0.9) = 5 > n: too few, every set holds the class
    (1, 0.6, 0.0),    # rank ceil(2 * 0.4) = 1: the only score
    (0, 0.5, 1.0),
])
def test_conformal_quantile_rank(n: int, alpha: float, expected: float) -> None:
    """The conformal quantile is the ceil((n + 1)(1 - alpha))-th smallest score, 1.0 when that rank exceeds n."""
    from gliomics.inference.calibration import _conformal_quantile

    scores = np.arange(n)[::-1] / 10.0  # unsorted: n-1, ..., 0 tenths
    assert _conformal_quantile(scores, alpha) == pytest.approx(expected)


def test_fit_marker_calibration_fields_and_per_class_quantiles() -> None:
    """Every field of one marker's fit: unknown labels dropped, no temperature with two positives, and each class's
    quantile on its own scores (p for the negatives, 1 - p for the positives)."""
    y = np.array([0, 0, np.nan, 0, 0, 1, 0, 1])
    p = np.array([0.1, 0.2, 0.99, 0.3, 0.4, 0.9, 0.5, 0.7])
    fitted = fit_marker_calibration(y, p, alpha=0.4)
    assert set(fitted) == {"n", "n_pos", "temperature", "thresholds", "alpha", "conformal_q", "note"}
    assert fitted["n"] == 7 and fitted["n_pos"] == 2 and fitted["temperature"] == 1.0 and fitted["alpha"] == 0.4
    assert fitted["note"] == "fewer than 3 cases of a class: not calibrated"
    # negatives: n = 5, rank ceil(6 * 0.6) = 4 -> 0.4; positives: scores 0.1, 0.3, rank ceil(3 * 0.6) = 2 -> 0.3
    assert fitted["conformal_q"] == pytest.approx([0.4, 0.3])
    assert fitted["thresholds"] == pytest.approx({"youden": 0.7, "rule_out": 0.7, "rule_in": 0.7})
    assert fit_marker_calibration(y, p)["alpha"] == 0.1


def test_three_cases_of_each_class_are_enough_to_calibrate() -> None:
    """Exactly three cases of the rarer class: the temperature is fitted and there is no note."""
    y = np.array([0, 1, 0, 1, 1, 0, 0])
    p = np.array([0.7, 0.8, 0.4, 0.9, 0.3, 0.2, 0.6])
    fitted = fit_marker_calibration(y, p)
    assert fitted["note"] is None and fitted["n_pos"] == 3 and fitted["n"] == 7
    assert fitted["temperature"] == pytest.approx(fit_temperature(y, p))
    assert fitted["temperature"] != 1.0


def test_thresholds_and_sets_are_fitted_on_the_calibrated_probabilities() -> None:
    """Operating points and conformal quantiles are those of sigmoid(logit(p_raw) / T), not of p_raw."""
    rng = np.random.default_rng(5)
    y, p_raw = _draw(rng, 60, squeeze=3.0)
    fitted = fit_marker_calibration(y, p_raw, alpha=0.2)
    t = fitted["temperature"]
    assert t < 0.6
    p = _sigmoid(_logit(np.clip(p_raw, 1e-6, 1 - 1e-6)) / t)
    expected = operating_thresholds(y, p)
    assert fitted["thresholds"] == pytest.approx(expected, rel=1e-9)
    assert fitted["thresholds"]["rule_out"] != pytest.approx(operating_thresholds(y, p_raw)["rule_out"])
    n0, n1 = int((y == 0).sum()), int((y == 1).sum())
    q0 = np.sort(p[y == 0])[int(np.ceil((n0 + 1) * 0.8)) - 1]
    q1 = np.sort(1 - p[y == 1])[int(np.ceil((n1 + 1) * 0.8)) - 1]
    assert fitted["conformal_q"] == pytest.approx([q0, q1], rel=1e-9)


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1, 1.5])
def test_alpha_outside_the_open_unit_interval_is_refused(alpha: float) -> None:
    """alpha must lie strictly between 0 and 1."""
    with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\), got"):
        fit_marker_calibration(np.array([0, 1, 0, 1]), np.array([0.2, 0.8, 0.3, 0.7]), alpha=alpha)


def test_fit_run_calibration_reads_label_columns_in_marker_order() -> None:
    """Each marker is fitted on its own column of the label table; a marker missing from one case's probabilities is
    skipped; source and alpha are recorded."""
    labels = [[1, 0, 0], [1, 0, 1], [0, 1, 1], [1, np.nan, 1], [0, 0, 0]]
    probs = [{"idh": 0.9, "codel_1p19q": 0.1, "tert": 0.2}, {"idh": 0.8, "codel_1p19q": 0.2, "tert": 0.7},
             {"idh": 0.3, "codel_1p19q": 0.8, "tert": 0.6}, {"idh": 0.7, "codel_1p19q": 0.5, "tert": 0.9},
             {"idh": 0.2, "codel_1p19q": 0.3}]
    fitted = fit_run_calibration(labels, probs, source="out-of-fold (2 folds)", alpha=0.25)
    assert fitted["source"] == "out-of-fold (2 folds)" and fitted["alpha"] == 0.25
    assert list(fitted["markers"]) == ["idh", "codel_1p19q"]
    idh, codel = fitted["markers"]["idh"], fitted["markers"]["codel_1p19q"]
    assert (idh["n"], idh["n_pos"], codel["n"], codel["n_pos"]) == (5, 3, 4, 1)
    assert idh["alpha"] == 0.25
    assert idh == fit_marker_calibration(np.array([1, 1, 0, 1, 0]), np.array([0.9, 0.8, 0.3, 0.7, 0.2]), alpha=0.25)
    assert fit_run_calibration(labels, probs, source="v")["alpha"] == 0.1
    assert fit_run_calibration([], [], source="v") == {"source": "v", "alpha": 0.1, "markers": {}}


def test_apply_calibration_without_a_fit_rounds_and_calls_at_the_default() -> None:
    """Without a fit the raw probability is rounded to 4 places and called at 0.5 (inclusive)."""
    assert apply_calibration("idh", 0.5, None) == {"probability": 0.5, "probability_raw": 0.5, "calibrated": False,
                                                   "threshold": 0.5, "call": 1}
    entry = apply_calibration("idh", 0.123456, None, default_threshold=0.123456)
    assert entry == {"probability": 0.1235, "probability_raw": 0.1235, "calibrated": False, "threshold": 0.1235,
                     "call": 1}
    assert apply_calibration("idh", 0.4999, None)["call"] == 0


def test_apply_calibration_every_field() -> None:
    """Every field of a calibrated entry: rounded probabilities, calls at the exact thresholds, the set."""
    p_cal = float(_sigmoid(_logit(0.3) / 2.0))
    fitted = {"temperature": 2.0, "alpha": 0.2,
              "thresholds": {"youden": p_cal, "rule_out": 0.123456, "rule_in": 0.5},
              "conformal_q": [p_cal, 1.0 - p_cal]}
    e = apply_calibration("tert", 0.3, fitted)
    assert e == {"probability": round(p_cal, 4), "probability_raw": 0.3, "calibrated": True, "temperature": 2.0,
                 "threshold": round(p_cal, 4), "call": 1, "calls": {"youden": 1, "rule_out": 1, "rule_in": 0},
                 "thresholds": {"youden": round(p_cal, 4), "rule_out": 0.1235, "rule_in": 0.5},
                 "prediction_set": ["wildtype", "mutant"], "set_status": "undetermined", "alpha": 0.2}
    assert list(e["calls"]) == ["youden", "rule_out", "rule_in"]
    assert apply_calibration("tert", 0.3, {**fitted, "temperature": 1.234567})["temperature"] == 1.2346
    assert apply_calibration("tert", 0.123456, fitted)["probability_raw"] == 0.1235


def test_conformal_membership_is_inclusive_up_to_a_tolerance() -> None:
    """A class enters the set when its score is at most q + 1e-12; none entering gives an empty set."""
    base = {"temperature": 1.0, "alpha": 0.1, "thresholds": {"youden": 0.5, "rule_out": 0.5, "rule_in": 0.5}}
    # p = 0.5 exactly: a score 0.5 equals (0.5 - 1e-12) + 1e-12
    tol = apply_calibration("idh", 0.5, {**base, "conformal_q": [0.5 - 1e-12, 0.4]})
    assert tol["prediction_set"] == ["wildtype"] and tol["set_status"] == "wildtype"
    below = apply_calibration("idh", 0.5, {**base, "conformal_q": [0.5 - 1e-9, 0.4]})
    assert below["prediction_set"] == [] and below["set_status"] == "empty"
    one = apply_calibration("codel_1p19q", 0.8, {**base, "conformal_q": [0.5, 0.2]})
    assert one["prediction_set"] == ["codeleted"] and one["set_status"] == "codeleted"
    other = apply_calibration("codel_1p19q", 0.2, {**base, "conformal_q": [0.2, 0.5]})
    assert other["prediction_set"] == ["intact"] and other["set_status"] == "intact"


def test_unknown_labels_given_as_none_are_left_out_of_the_fit() -> None:
    y = [0, 1, 0, 1, 0, 1, 1, 0]
    p = [0.2, 0.7, 0.4, 0.9, 0.1, 0.6, 0.8, 0.3]
    with_unknown = fit_marker_calibration([*y, None, None], [*p, 0.99, 0.01])
    assert with_unknown == fit_marker_calibration(y, p)
    assert with_unknown["n"] == 8 and with_unknown["n_pos"] == 4
