"""Table 1 (baseline characteristics, train vs test, with p-values) and Table 2 (patient-level performance per
backbone with 95% CIs) of the TERT slice benchmark, as rows and as markdown.

Tests of Table 1 (SciPy): Welch's t-test for the mean age; for counts, the χ² test of independence
(``chi2_contingency``, Yates-corrected for 2×2 tables) unless a 2×2 table has an expected count below 5, where
Fisher's exact test is used instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from gliomics.constants import MARKER_NAMES
from gliomics.evaluation.auc import auc_ci_bootstrap, auc_ci_delong
from gliomics.evaluation.bootstrap import f1_ci_bootstrap
from gliomics.evaluation.classification import binary_metrics, wilson_ci
from gliomics.evaluation.tables import fmt, fmt_p
from gliomics.slices.slice_set import PatientInfo

__all__ = ["AGE_CUTOFF", "baseline_table", "baseline_markdown", "count_test", "performance_row", "performance_markdown"]

#: Age split of Table 1, as in the paper: > 60 against ≤ 60 years.
AGE_CUTOFF = 60.0
_STATUS = {"idh": ("mutant", "wild-type"), "tert": ("mutant", "wild-type"), "codel_1p19q": ("codeleted", "intact")}


def count_test(table: Sequence[Sequence[int]]) -> tuple[float, str]:
    """p-value of independence for a groups × categories table of counts, and the test used.

    Categories (columns) with no count are dropped. 2×2: Fisher's exact test if an expected count is below 5, else
    χ² with Yates' correction; larger tables: χ². Fewer than two categories or groups give ``(nan, "")``.
    """
    arr = np.asarray(table, dtype=np.int64)
    arr = arr[:, arr.sum(axis=0) > 0]
    arr = arr[arr.sum(axis=1) > 0]
    if arr.ndim != 2 or min(arr.shape) < 2:
        return math.nan, ""
    expected = stats.contingency.expected_freq(arr)
    if arr.shape == (2, 2) and expected.min() < 5:
        return float(stats.fisher_exact(arr).pvalue), "Fisher"
    return float(stats.chi2_contingency(arr).pvalue), "chi2"


def _pct(n: int, total: int) -> float:
    return 100.0 * n / total if total else math.nan


def _count_rows(characteristic: str, categories: list[tuple[str, Any]], train: list[Any], test: list[Any]) -> list:
    """One row per category (value counts in each group) and a p-value on the first row."""
    table = [[sum(v == value for v in group) for _, value in categories] for group in (train, test)]
    p, test_name = count_test(table)
    rows = []
    for j, (name, _) in enumerate(categories):
        rows.append({"characteristic": characteristic, "group": name,
                     "train_n": table[0][j], "train_pct": _pct(table[0][j], len(train)),
                     "test_n": table[1][j], "test_pct": _pct(table[1][j], len(test)),
                     "p_value": p if j == 0 else None, "test": test_name if j == 0 else ""})
    return rows


def baseline_table(train: Sequence[PatientInfo], test: Sequence[PatientInfo], marker: str) -> list[dict[str, Any]]:
    """Table 1: age (mean ± SD; > 60 / ≤ 60), sex and marker status of the training and test patients.

    Returns:
        Rows with ``characteristic``, ``group``, counts and percentages per set (``train_n``, ``train_pct``,
        ``test_n``, ``test_pct``; for the age row ``train_mean``, ``train_sd``...), ``p_value`` (on the first row
        of each characteristic) and ``test``. Unknown ages or sexes get their own row and stay out of the tests.
    """
    rows: list[dict[str, Any]] = [{"characteristic": "Patients", "group": "", "train_n": len(train),
                                   "train_pct": 100.0, "test_n": len(test), "test_pct": 100.0, "p_value": None,
                                   "test": ""}]
    ages = [[p.age for p in group if p.age is not None] for group in (train, test)]
    age_row: dict[str, Any] = {"characteristic": "Age (years)", "group": "mean ± SD", "p_value": math.nan,
                               "test": ""}
    for name, values in zip(("train", "test"), ages):
        age_row[f"{name}_n"] = len(values)
        age_row[f"{name}_mean"] = float(np.mean(values)) if values else math.nan
        age_row[f"{name}_sd"] = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
    if min(len(a) for a in ages) >= 2:
        age_row["p_value"] = float(stats.ttest_ind(ages[0], ages[1], equal_var=False).pvalue)
        age_row["test"] = "Welch t"
    rows.append(age_row)

    def age_group(p: PatientInfo) -> str | None:
        return None if p.age is None else ("> 60" if p.age > AGE_CUTOFF else "≤ 60")

    def unknown_row(characteristic: str, values: list[list[Any]]) -> list[dict[str, Any]]:
        unknown = [sum(v is None for v in group) for group in values]
        if not any(unknown):
            return []
        return [{"characteristic": characteristic, "group": "unknown", "train_n": unknown[0],
                 "train_pct": _pct(unknown[0], len(train)), "test_n": unknown[1],
                 "test_pct": _pct(unknown[1], len(test)), "p_value": None, "test": ""}]

    groups = [[age_group(p) for p in group] for group in (train, test)]
    rows += _count_rows("Age group", [("> 60", "> 60"), ("≤ 60", "≤ 60")], *groups)
    rows += unknown_row("Age group", groups)
    sexes = [[p.sex for p in group] for group in (train, test)]
    seen = sorted({s for g in sexes for s in g if s is not None}, key=lambda s: ({"M": 0, "F": 1}.get(s, 2), s))
    names = {"M": "male", "F": "female"}
    rows += _count_rows("Sex", [(names.get(s, s), s) for s in seen], *sexes)
    rows += unknown_row("Sex", sexes)
    altered, not_altered = _STATUS.get(marker, ("altered", "not altered"))
    labels = [[p.label for p in group] for group in (train, test)]
    rows += _count_rows(MARKER_NAMES.get(marker, marker), [(altered, 1), (not_altered, 0)], *labels)
    return rows


def performance_row(y: Sequence[int], p: Sequence[float], *, threshold: float = 0.5, n_boot: int = 2000,
                    seed: int = 0) -> dict[str, Any]:
    """Table 2 entries of one backbone from patient labels and patient probabilities.

    Returns:
        ``n``, ``n_pos``, ``tp``/``fp``/``tn``/``fn``, ``accuracy``, ``recall``, ``precision`` (each with a Wilson
        95% CI), ``f1`` (bootstrap CI), ``auc`` with its DeLong CI (``auc_ci``) and percentile bootstrap CI
        (``auc_ci_bootstrap``), and the ``threshold``.
    """
    m = binary_metrics(y, p, threshold)
    auc, lo, hi = auc_ci_delong(y, p)
    _, b_lo, b_hi = auc_ci_bootstrap(y, p, n_boot=n_boot, seed=seed)
    pred = (np.asarray(p) >= threshold).astype(np.int64)
    return {
        "n": m["n"], "n_pos": m["n_pos"], "tp": m["tp"], "fp": m["fp"], "tn": m["tn"], "fn": m["fn"],
        "threshold": threshold,
        "accuracy": m["accuracy"], "accuracy_ci": list(m["accuracy_ci"]),
        "recall": m["recall"], "recall_ci": list(m["sensitivity_ci"]),
        "precision": m["precision"], "precision_ci": list(wilson_ci(m["tp"], m["tp"] + m["fp"])),
        "f1": m["f1"], "f1_ci": list(f1_ci_bootstrap(y, pred, n_boot=n_boot, seed=seed)),
        "auc": auc, "auc_ci": [lo, hi], "auc_ci_bootstrap": [b_lo, b_hi],
    }


def baseline_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """Table 1 as markdown: n (%) per set, mean ± SD for age, and the p-value with its test."""
    train_n = rows[0]["train_n"]
    test_n = rows[0]["test_n"]
    lines = [f"| characteristic | | train (n = {train_n}) | test (n = {test_n}) | p-value | test |",
             "|---|---|---|---|---|---|"]
    for r in rows[1:]:
        if "train_mean" in r:
            cells = [f"{fmt(r[f'{s}_mean'], 2)} ± {fmt(r[f'{s}_sd'], 2)}" for s in ("train", "test")]
        else:
            cells = [f"{r[f'{s}_n']} ({fmt(r[f'{s}_pct'], 1)} %)" for s in ("train", "test")]
        lines.append(f"| {r['characteristic']} | {r['group']} | {cells[0]} | {cells[1]} | {fmt_p(r['p_value'])} | "
                     f"{r['test']} |")
    return "\n".join(lines) + "\n"


def performance_markdown(rows: dict[str, dict[str, Any]], titles: dict[str, str] | None = None) -> str:
    """Table 2 as markdown: one row per backbone, value [95% CI]."""
    titles = titles or {}

    def cell(r: dict, key: str) -> str:
        lo, hi = r[f"{key}_ci"]
        return f"{fmt(r[key])} [{fmt(lo)}, {fmt(hi)}]"

    lines = ["| model | accuracy | recall | F1 | precision | AUC [DeLong 95% CI] |", "|---|---|---|---|---|---|"]
    for key, r in rows.items():
        cells = " | ".join(cell(r, k) for k in ("accuracy", "recall", "f1", "precision", "auc"))
        lines.append(f"| {titles.get(key, key)} | {cells} |")
    return "\n".join(lines) + "\n"
