"""Table 1 p-values against SciPy on hand examples, and the Table 2 metrics of one backbone."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import f1_score, roc_auc_score

from gliomics.slices.slice_set import PatientInfo
from gliomics.slices.tables import (
    baseline_markdown,
    baseline_table,
    count_test,
    performance_markdown,
    performance_row,
)


def test_count_test_uses_chi2_for_large_and_fisher_for_small_tables():
    large = [[46, 34], [11, 9]]
    p, name = count_test(large)
    assert name == "chi2" and p == pytest.approx(stats.chi2_contingency(large).pvalue)
    small = [[8, 2], [1, 5]]
    p, name = count_test(small)
    assert name == "Fisher" and p == pytest.approx(stats.fisher_exact(small).pvalue)
    three = [[10, 12, 9], [8, 15, 11]]
    assert count_test(three)[0] == pytest.approx(stats.chi2_contingency(three).pvalue)
    p, name = count_test([[5, 0], [7, 0]])  # one category: nothing to test
    assert math.isnan(p) and name == ""


def _patients(ages, sexes, labels, prefix):
    return [PatientInfo(f"{prefix}{i}", y, age=a, sex=s) for i, (a, s, y) in enumerate(zip(ages, sexes, labels))]


def test_baseline_table_matches_scipy_on_a_hand_example():
    train = _patients([45, 62, 70, 58, 66, 39, 61, 75, 52, 64], list("MFMFMMFFMF"), [1, 1, 0, 1, 1, 0, 1, 1, 0, 1], "T")
    test = _patients([55, 68, 61, None], list("FMF") + [None], [1, 0, 1, 0], "S")
    rows = baseline_table(train, test, "tert")
    by = {(r["characteristic"], r["group"]): r for r in rows}
    age = by[("Age (years)", "mean ± SD")]
    train_ages = [45, 62, 70, 58, 66, 39, 61, 75, 52, 64]
    assert age["train_mean"] == pytest.approx(np.mean(train_ages))
    assert age["train_sd"] == pytest.approx(np.std(train_ages, ddof=1))
    assert age["test_n"] == 3
    assert age["p_value"] == pytest.approx(stats.ttest_ind(train_ages, [55, 68, 61], equal_var=False).pvalue)
    old = by[("Age group", "> 60")]
    assert (old["train_n"], old["test_n"]) == (6, 2)  # 61 > 60; 60 would count as ≤ 60
    assert old["p_value"] == pytest.approx(stats.fisher_exact([[6, 4], [2, 1]]).pvalue)
    assert by[("Age group", "unknown")]["test_n"] == 1
    male = by[("Sex", "male")]
    assert (male["train_n"], male["test_n"]) == (5, 1)
    assert male["p_value"] == pytest.approx(stats.fisher_exact([[5, 5], [1, 2]]).pvalue)
    mutant = by[("TERT promoter mutation", "mutant")]
    assert (mutant["train_n"], mutant["train_pct"]) == (7, 70.0)
    assert mutant["p_value"] == pytest.approx(stats.fisher_exact([[7, 3], [2, 2]]).pvalue)
    text = baseline_markdown(rows)
    assert "train (n = 10)" in text and "Welch t" in text and "wild-type" in text


def test_performance_row_on_known_patients():
    y = np.array([1, 1, 1, 0, 0, 1, 0, 1])
    p = np.array([0.9, 0.6, 0.4, 0.3, 0.7, 0.8, 0.1, 0.55])
    row = performance_row(y, p, threshold=0.5, n_boot=500, seed=1)
    pred = (p >= 0.5).astype(int)
    assert (row["tp"], row["fp"], row["tn"], row["fn"]) == (4, 1, 2, 1)
    assert row["accuracy"] == pytest.approx(6 / 8)
    assert row["recall"] == pytest.approx(4 / 5) and row["precision"] == pytest.approx(4 / 5)
    assert row["f1"] == pytest.approx(f1_score(y, pred))
    assert row["auc"] == pytest.approx(roc_auc_score(y, p))
    for key in ("accuracy", "recall", "precision", "f1", "auc"):
        lo, hi = row[f"{key}_ci"]
        assert lo <= row[key] <= hi
    assert "| regnet | 0.750 [" in performance_markdown({"regnet": row})
