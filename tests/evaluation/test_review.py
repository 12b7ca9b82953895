"""Do the cases flagged for review fare worse? The review summary of `gliomics evaluate`, and its bootstrap CIs."""

from __future__ import annotations

import numpy as np
import pytest

from gliomics.evaluation.bootstrap import mean_ci, mean_difference_ci
from gliomics.evaluation.decisions import review_summary
from gliomics.evaluation.tables import review_table


def test_mean_difference_ci_covers_the_difference_and_needs_two_values_a_side():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 0.1, 40), rng.normal(0.5, 0.1, 40)
    d = mean_difference_ci(list(a), list(b), n_boot=500)
    assert d["lo"] < d["mean"] < d["hi"] and d["lo"] > 0.4 and d["hi"] < 0.6
    assert mean_difference_ci([1.0], [0.0, 1.0]) is None
    same = mean_difference_ci([1.0, 1.0], [0.5, 0.5])
    assert same["mean"] == same["lo"] == same["hi"] == 0.5
    assert mean_ci([np.nan, None, 2.0])["mean"] == 2.0


def _rows(rng, n=40):
    rows = []
    for i in range(n):
        score = float(rng.uniform(0, 0.3))
        dice = float(np.clip(0.95 - 2.0 * score + rng.normal(0, 0.03), 0, 1))
        flag = score > 0.25
        rows.append({"case_id": f"C{i}", "mean_dice": dice, "uncertainty_score": score, "flag_uncertainty": flag,
                     "needs_review": flag or i == 0, "review_rule": "needs review when …", "prob_idh": 0.8,
                     "label_idh": int(i % 2)})
    return rows


def test_review_summary_finds_the_worse_cases_when_the_score_tracks_the_error():
    rows = _rows(np.random.default_rng(1))
    out = review_summary(rows, n_boot=300)
    assert out["n"] == 40 and out["needs_review"] == sum(r["needs_review"] for r in rows)
    assert out["flagged_by_uncertainty"] == sum(r["flag_uncertainty"] for r in rows)
    split = out["uncertainty"]
    assert split["groups"]["flagged"]["mean_dice"]["mean"] < split["groups"]["unflagged"]["mean_dice"]["mean"]
    assert split["dice_drop"]["lo"] > 0
    assert out["spearman_score_vs_dice"]["rho"] < -0.8 and out["spearman_score_vs_dice"]["hi"] < 0
    assert split["groups"]["flagged"]["brier"]["mean"] == pytest.approx(
        np.mean([(0.8 - r["label_idh"]) ** 2 for r in rows if r["flag_uncertainty"]]))
    text = review_table(out)
    assert "Review flags" in text and "Spearman" in text and "uncertainty above threshold" in text


def test_review_summary_shows_a_useless_score_as_useless():
    rows = _rows(np.random.default_rng(2))
    rng = np.random.default_rng(3)
    for r in rows:
        r["mean_dice"] = float(rng.uniform(0.5, 0.9))  # unrelated to the score
    out = review_summary(rows, n_boot=300)
    assert out["spearman_score_vs_dice"]["lo"] < 0 < out["spearman_score_vs_dice"]["hi"]


def test_no_flags_no_summary():
    assert review_summary([{"case_id": "C1", "mean_dice": 0.8}]) == {}
    assert review_table({}) == ""
