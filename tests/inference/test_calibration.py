"""Marker calibration: temperature scaling, operating points, conformal sets, and their place in a prediction."""

from __future__ import annotations

import numpy as np
import pytest

from gliomics.evaluation.classification import calibration
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
