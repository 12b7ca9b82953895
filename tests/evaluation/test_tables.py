"""The markdown result tables of ``gliomics evaluate`` and ``gliomics compare``: exact rows, columns and numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gliomics.evaluation.tables import (
    SHORT_MARKER,
    brats2025_table,
    cmaf_table,
    comparison_table,
    decision_table,
    fmt,
    fmt_p,
    marker_table,
    review_table,
    segmentation_table,
    site_table,
)


def _stat(mean, lo, hi, n=None):
    out = {"mean": mean, "lo": lo, "hi": hi}
    if n is not None:
        out["n"] = n
    return out


@pytest.mark.parametrize("value, digits, text", [
    (0.12345, None, "0.123"),
    (0.12345, 1, "0.1"),
    (2, None, "2.000"),
    (np.float64(0.5), 2, "0.50"),
    (-1.25, 1, "-1.2"),
    (None, None, "–"),
    (math.nan, None, "–"),
    (math.inf, None, "–"),
    (-math.inf, 2, "–"),
    ("0.5", None, "–"),
    ([0.5], None, "–"),
])
def test_fmt_gives_the_decimals_asked_and_a_dash_for_anything_else(value, digits, text):
    """Three decimals by default, ``digits`` otherwise; a dash for None, NaN, infinities and non-numbers."""
    assert (fmt(value) if digits is None else fmt(value, digits)) == text


@pytest.mark.parametrize("value, text", [
    (None, ""),
    (math.nan, "–"),
    (np.float64("nan"), "–"),
    (0.0, "< 0.001"),
    (0.000999, "< 0.001"),
    (0.001, "0.001"),
    (0.0126, "0.013"),
    (0.5, "0.500"),
    (1, "1.000"),
])
def test_fmt_p_marks_tiny_p_values_and_leaves_untested_ones_blank(value, text):
    """``< 0.001`` strictly below 0.001, three decimals from 0.001 on, a dash for NaN, empty for None."""
    assert fmt_p(value) == text


def test_segmentation_table_gives_every_region_in_order_with_its_ci():
    """Dice with three decimals, HD95 with one, lesion-wise columns; missing regions and statistics skipped."""
    summary = {
        "WT": {"dice": _stat(0.9, 0.85, 0.95), "lesion_dice": _stat(0.8, 0.7, 0.9),
               "hd95": _stat(3.14159, 2.0, 4.25), "lesion_hd95": _stat(10.0, 5.55, 20.04)},
        "ET": {"dice": _stat(0.71234, 0.61111, 0.81999), "hd95": _stat(1.26, 1.0, 2.0)},
        "NETC": {},
        "TC": {"dice": _stat(math.nan, 0.1, 0.2), "lesion_dice": None, "hd95": None,
               "lesion_hd95": _stat(1.0, 0.95, 1.05)},
    }
    assert segmentation_table(summary) == (
        "### Segmentation, lesion-wise by the BraTS 2024 rule\n"
        "\n"
        "| region | Dice | lesion-wise Dice | HD95 (mm) | lesion-wise HD95 (mm) |\n"
        "|---|---|---|---|---|\n"
        "| ET | 0.712 [0.611, 0.820] | – | 1.3 [1.0, 2.0] | – |\n"
        "| TC | – [0.100, 0.200] | – | – | 1.0 [0.9, 1.1] |\n"
        "| WT | 0.900 [0.850, 0.950] | 0.800 [0.700, 0.900] | 3.1 [2.0, 4.2] | 10.0 [5.5, 20.0] |\n"
    )


def test_segmentation_table_without_the_lesion_wise_columns():
    """``lesion_wise=False`` keeps the title as given and only the region, Dice and HD95 columns."""
    summary = {"SNFH": {"dice": _stat(0.5, 0.4, 0.6), "lesion_dice": _stat(0.1, 0.0, 0.2),
                        "hd95": _stat(7.77, 6.0, 9.0), "lesion_hd95": _stat(1.0, 1.0, 1.0)},
               "RC": {"dice": _stat(0.25, 0.125, 0.375), "hd95": _stat(0.0, 0.0, 0.0)}}
    assert segmentation_table(summary, "Whole volume", lesion_wise=False) == (
        "### Whole volume\n"
        "\n"
        "| region | Dice | HD95 (mm) |\n"
        "|---|---|---|\n"
        "| SNFH | 0.500 [0.400, 0.600] | 7.8 [6.0, 9.0] |\n"
        "| RC | 0.250 [0.125, 0.375] | 0.0 [0.0, 0.0] |\n"
    )
    assert segmentation_table({}, "Empty").startswith("### Empty, lesion-wise by the BraTS 2024 rule\n")


def test_brats2025_table_gives_the_lesion_wise_scores_and_the_mean():
    """Five statistics per region (HD95 with one decimal), regions in order, and the mean lesion-wise Dice line."""
    summary = {
        "RC": {"lesion_dice": _stat(0.5, 0.25, 0.75)},
        "ET": {"lesion_dice": _stat(0.81234, 0.7, 0.9), "lesion_nsd": _stat(0.6, 0.5, 0.7),
               "lesion_hd95": _stat(2.345, 1.25, 3.96), "lesion_f1": _stat(0.75, 0.5, 1.0),
               "panoptic_quality": _stat(0.6092, 0.35, 0.9)},
        "SNFH": None,
        "mean_lesion_dice": _stat(0.4, 0.3, 0.5),
    }
    intro = ("One-to-one matching of connected components; Dice, NSD and HD95 over matched lesions; F1 of the "
             "matching; panoptic quality = Dice × F1. Regions absent from both sides are left out.")
    assert brats2025_table(summary) == (
        "### Segmentation, lesion-wise by the BraTS 2025 rule\n"
        "\n"
        f"{intro}\n"
        "\n"
        "| region | lesion-wise Dice | lesion-wise NSD | lesion-wise HD95 (mm) | lesion F1 | panoptic quality |\n"
        "|---|---|---|---|---|---|\n"
        "| ET | 0.812 [0.700, 0.900] | 0.600 [0.500, 0.700] | 2.3 [1.2, 4.0] | 0.750 [0.500, 1.000] "
        "| 0.609 [0.350, 0.900] |\n"
        "| RC | 0.500 [0.250, 0.750] | – | – | – | – |\n"
        "\n"
        "Mean lesion-wise Dice over NETC, SNFH, ET and RC: 0.400 [0.300, 0.500]\n"
    )


def test_brats2025_table_without_a_mean_has_no_mean_line():
    """No ``mean_lesion_dice`` (or None): the table ends after the region rows; the title can be changed."""
    text = brats2025_table({"NETC": {"lesion_f1": _stat(1.0, 1.0, 1.0)}, "mean_lesion_dice": None}, "T")
    assert text.startswith("### T\n\n")
    assert text.endswith("|---|---|---|---|---|---|\n| NETC | – | – | – | 1.000 [1.000, 1.000] | – |\n")


def _marker(auc=0.8123, n=10, n_pos=4):
    return {"n": n, "n_pos": n_pos, "auc": auc, "auc_ci_delong": [0.61234, 0.95], "auc_ci_bootstrap": [0.6, 0.97],
            "metrics": {"accuracy": 0.7, "sensitivity": 0.75, "specificity": 2 / 3, "precision": 0.6, "f1": 0.66666,
                        "brier": 0.1875},
            "calibration": {"slope": 1.23456, "ece": 0.0449}}


_MARKER_HEAD = ("| marker | n (pos) | AUC [DeLong 95% CI] | AUC bootstrap CI | accuracy | sensitivity | specificity "
                "| precision | F1 | Brier | cal. slope | ECE |")


def test_marker_table_gives_every_statistic_of_each_marker():
    """One row per marker in the fixed order, absent markers skipped, calibration slope with two decimals."""
    summary = {"tert": _marker(), "idh": {"auc": math.nan}}
    assert marker_table(summary) == (
        "### Molecular markers\n"
        "\n"
        f"{_MARKER_HEAD}\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        "| IDH mutation | 0 (0) | – [–, –] | [–, –] | – | – | – | – | – | – | – | – |\n"
        "| TERT promoter mutation | 10 (4) | 0.812 [0.612, 0.950] | [0.600, 0.970] | 0.700 | 0.750 | 0.667 | 0.600 "
        "| 0.667 | 0.188 | 1.23 | 0.045 |\n"
    )


def test_marker_table_adds_the_bayes_optimal_auc_column():
    """With Bayes-optimal AUCs, one more column (a dash for a marker without one) and a custom title."""
    summary = {"codel_1p19q": _marker(0.5, 6, 3), "tert": _marker(0.75, 8, 2)}
    text = marker_table(summary, {"codel_1p19q": 0.91234}, title="Markers, test")
    assert text.splitlines() == [
        "### Markers, test",
        "",
        f"{_MARKER_HEAD} Bayes-optimal AUC |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        "| 1p/19q codeletion | 6 (3) | 0.500 [0.612, 0.950] | [0.600, 0.970] | 0.700 | 0.750 | 0.667 | 0.600 "
        "| 0.667 | 0.188 | 1.23 | 0.045 | 0.912 |",
        "| TERT promoter mutation | 8 (2) | 0.750 [0.612, 0.950] | [0.600, 0.970] | 0.700 | 0.750 | 0.667 | 0.600 "
        "| 0.667 | 0.188 | 1.23 | 0.045 | – |",
    ]
    assert text.endswith("|\n")
    assert "Bayes-optimal" not in marker_table(summary, {})


def _decision_marker(fitted_on="val", operating_points=True):
    op = {"rule": "youden", "threshold": 0.41234, "sensitivity": 0.8, "sensitivity_ci": [0.5, 0.95],
          "specificity": 0.666, "specificity_ci": (0.4, 0.9), "ppv": 0.7, "ppv_ci": [0.45, 0.85], "npv": 1.0,
          "npv_ci": [0.755, 1.0]}
    out = {"fitted_on": fitted_on, "calibration_raw": {"slope": 0.456, "ece": 0.1234},
           "calibration": {"slope": 1.004, "ece": 0.0301},
           "conformal": {"coverage": 0.9, "coverage_ci": [0.855, 0.96], "target": 0.9, "undetermined": 0.125}}
    if operating_points:
        out["operating_points"] = {"youden": op, "sens90": {**op, "rule": "sensitivity 0.90", "threshold": 0.2}}
    return out


def test_decision_table_lists_calibration_conformal_sets_and_operating_points():
    """Markers with a conformal summary only, in marker order; rates and their CIs with two decimals."""
    summary = {"tert": _decision_marker("ignored", operating_points=False), "idh": _decision_marker(),
               "codel_1p19q": {"auc": 0.5, "conformal": None}}
    assert decision_table(summary) == (
        "### Calibrated calls (thresholds and conformal sets fitted on: val)\n"
        "\n"
        "| marker | slope raw → calibrated | ECE raw → calibrated | coverage (target) | undetermined |\n"
        "|---|---|---|---|---|\n"
        "| IDH mutation | 0.46 → 1.00 | 0.123 → 0.030 | 0.90 [0.85, 0.96] (0.90) | 0.12 |\n"
        "| TERT promoter mutation | 0.46 → 1.00 | 0.123 → 0.030 | 0.90 [0.85, 0.96] (0.90) | 0.12 |\n"
        "\n"
        "| marker | operating point | threshold | sensitivity | specificity | PPV | NPV |\n"
        "|---|---|---|---|---|---|---|\n"
        "| IDH mutation | youden | 0.412 | 0.80 [0.50, 0.95] | 0.67 [0.40, 0.90] | 0.70 [0.45, 0.85] "
        "| 1.00 [0.76, 1.00] |\n"
        "| IDH mutation | sensitivity 0.90 | 0.200 | 0.80 [0.50, 0.95] | 0.67 [0.40, 0.90] | 0.70 [0.45, 0.85] "
        "| 1.00 [0.76, 1.00] |\n"
    )


def test_decision_table_with_missing_fields_and_without_calibrated_markers():
    """Missing calibrations and conformal fields give dashes; no marker with a conformal summary gives nothing."""
    summary = {"codel_1p19q": {"conformal": {"target": 0.95}, "operating_points": None}}
    assert decision_table(summary).splitlines()[4] == "| 1p/19q codeletion | – → – | – → – | – [–, –] (0.95) | – |"
    assert decision_table(summary).endswith("| marker | operating point | threshold | sensitivity | specificity "
                                            "| PPV | NPV |\n|---|---|---|---|---|---|---|\n")
    assert decision_table({"tert": {"conformal": {}}}) == ""
    assert decision_table({}) == ""


def _split(flagged, others, drop, rise):
    return {"groups": {"flagged": {"n": flagged, "mean_dice": _stat(0.5, 0.4, 0.6), "brier": _stat(0.3, 0.2, 0.4)},
                       "others": {"n": others, "mean_dice": _stat(0.8, 0.75, 0.85), "brier": None}},
            "dice_drop": drop, "brier_rise": rise}


def test_review_table_compares_the_flagged_cases_with_the_others():
    """Counts in the title, the rule, both groups and the difference of each split, then the Spearman line."""
    review = {"n": 40, "needs_review": 7, "rule": "needs review when the set holds both classes",
              "any_reason": _split(7, 33, _stat(0.3, 0.2, 0.4), _stat(0.15, 0.05, 0.25)),
              "uncertainty": _split(5, 35, None, _stat(0.1, -0.05, 0.2)),
              "spearman_score_vs_dice": {"rho": -0.81234, "lo": -0.9, "hi": -0.7, "p": 0.0000123456, "n": 40}}
    assert review_table(review) == (
        "### Review flags (7 of 40 cases flagged)\n"
        "\n"
        "Rule: needs review when the set holds both classes.\n"
        "\n"
        "| flag | group | cases | mean Dice | marker Brier |\n"
        "|---|---|---|---|---|\n"
        "| needs_review | flagged | 7 | 0.500 [0.400, 0.600] | 0.300 [0.200, 0.400] |\n"
        "| needs_review | others | 33 | 0.800 [0.750, 0.850] | – |\n"
        "| needs_review | difference | | 0.300 [0.200, 0.400] lower | 0.150 [0.050, 0.250] higher |\n"
        "| uncertainty above threshold | flagged | 5 | 0.500 [0.400, 0.600] | 0.300 [0.200, 0.400] |\n"
        "| uncertainty above threshold | others | 35 | 0.800 [0.750, 0.850] | – |\n"
        "| uncertainty above threshold | difference | | – lower | 0.100 [-0.050, 0.200] higher |\n"
        "\n"
        "Spearman correlation of the uncertainty score with the case's mean Dice: -0.812 [-0.900, -0.700] "
        "(p = 1.23e-05, 40 cases).\n"
    )


def test_review_table_without_a_rule_splits_or_correlation():
    """No rule: the conformal-set wording; an absent split and an empty correlation leave their lines out."""
    review = {"n": 3, "needs_review": 1, "rule": "", "any_reason": None,
              "uncertainty": _split(1, 2, _stat(0.1, 0.0, 0.2), None), "spearman_score_vs_dice": {}}
    assert review_table(review).splitlines() == [
        "### Review flags (1 of 3 cases flagged)",
        "",
        "Rule: an undetermined conformal set (no uncertainty threshold).",
        "",
        "| flag | group | cases | mean Dice | marker Brier |",
        "|---|---|---|---|---|",
        "| uncertainty above threshold | flagged | 1 | 0.500 [0.400, 0.600] | 0.300 [0.200, 0.400] |",
        "| uncertainty above threshold | others | 2 | 0.800 [0.750, 0.850] | – |",
        "| uncertainty above threshold | difference | | 0.100 [0.000, 0.200] lower | – higher |",
    ]
    assert review_table({"n": 3, "needs_review": 0}).endswith("|---|---|---|---|---|\n")
    assert review_table({}) == ""


_SITE_HEAD = ("| site | cases | mean Dice (ET, NETC, SNFH, RC) | lesion-wise mean Dice | AUC IDH mutation "
              "| AUC 1p/19q codeletion | AUC TERT promoter mutation |")


def test_site_table_gives_the_mean_dice_and_aucs_per_site():
    """Sites in the given order, markers absent from a site as dashes, no coverage columns without conformal sets."""
    by_site = {"siteB": {"cases": 3, "mean_dice": _stat(0.81234, 0.7, 0.9), "mean_lesion_dice": None,
                         "markers": {"tert": {"auc": 0.6666}, "idh": {"auc": None}}},
               "siteA": {"cases": 12, "markers": {}}}
    assert site_table(by_site) == (
        "### By site\n"
        "\n"
        f"{_SITE_HEAD}\n"
        "|---|---|---|---|---|---|---|\n"
        "| siteB | 3 | 0.812 [0.700, 0.900] | – | – | – | 0.667 |\n"
        "| siteA | 12 | – | – | – | – | – |\n"
    )


def test_site_table_adds_coverage_columns_when_a_marker_has_conformal_sets():
    """One site with a conformal summary adds a coverage column per marker, with two decimals, to every site."""
    by_site = {"a": {"cases": 2, "mean_dice": _stat(0.5, 0.5, 0.5), "mean_lesion_dice": _stat(0.25, 0.2, 0.3),
                     "markers": {"idh": {"auc": 0.75}}},
               "b": {"cases": 4, "mean_dice": None,
                     "markers": {"codel_1p19q": {"auc": 1.0, "conformal": {"coverage": 0.875}},
                                 "tert": {"auc": 0.5, "conformal": {}}}}}
    assert site_table(by_site).splitlines() == [
        "### By site",
        "",
        f"{_SITE_HEAD} coverage IDH mutation | coverage 1p/19q codeletion | coverage TERT promoter mutation |",
        "|---|---|---|---|---|---|---|---|---|---|",
        "| a | 2 | 0.500 [0.500, 0.500] | 0.250 [0.200, 0.300] | 0.750 | – | – | – | – | – |",
        "| b | 4 | – | – | – | 1.000 | 0.500 | – | 0.88 | – |",
    ]


def test_cmaf_table_gives_the_mean_weight_of_each_sequence_per_region():
    """Sequences in T1, T1ce, T2, FLAIR order with two decimals, the most cases of any sequence, dashes for gaps."""
    cmaf = {"SNFH": {"t2f": _stat(0.4567, 0.4, 0.5, n=5), "t1n": _stat(0.1, 0.05, 0.15, n=7),
                     "t2w": _stat(0.25, 0.2, 0.3, n=6)},
            "ET": {"t1c": _stat(0.333, 0.3, 0.375, n=2)},
            "NETC": {}}
    assert cmaf_table(cmaf) == (
        "### Mean CMAF weight by region\n"
        "\n"
        "| region | T1 | T1ce | T2 | FLAIR | cases |\n"
        "|---|---|---|---|---|---|\n"
        "| SNFH | 0.10 [0.05, 0.15] | – | 0.25 [0.20, 0.30] | 0.46 [0.40, 0.50] | 7 |\n"
        "| ET | – | 0.33 [0.30, 0.38] | – | – | 2 |\n"
        "| NETC | – | – | – | – | 0 |\n"
    )


_COMPARISON_HEAD = ("| model | Dice ET | Dice NETC | Dice SNFH | Dice RC | mean lesion-wise Dice | AUC IDH "
                    "| AUC 1p/19q | AUC TERT | mean AUC | DeLong p (IDH / 1p/19q / TERT) "
                    "| McNemar p (IDH / 1p/19q / TERT) |")


def test_short_marker_names():
    """The short marker names of the comparison table."""
    assert SHORT_MARKER == {"idh": "IDH", "codel_1p19q": "1p/19q", "tert": "TERT"}


def test_comparison_table_gives_one_row_per_model_against_the_reference():
    """The reference row says ``ref.``; the others give DeLong and McNemar p-values per marker, dashes when unknown."""
    rows = [{"name": "base", "seg": {"ET": {"dice": _stat(0.8, 0.7, 0.9)}, "RC": {"dice": _stat(0.4, 0.3, 0.5)},
                                     "WT": {"dice": _stat(0.9, 0.9, 0.9)}},
             "mean_lesion_dice": _stat(0.6, 0.5, 0.7), "mean_auc": 0.75,
             "auc": {"idh": 0.9, "codel_1p19q": None, "tert": 0.6}, "delong_p_idh": 0.5},
            {"name": "new", "seg": {"NETC": {"dice": _stat(0.55555, 0.5, 0.6)}, "SNFH": {"dice": _stat(0.25, 0.2, 0.3)},
                                    "RC": {}},
             "mean_lesion_dice": None, "mean_auc": math.nan, "delong_p_idh": 0.0004, "delong_p_tert": 0.12345,
             "mcnemar_p_codel_1p19q": 1.0}]
    assert comparison_table(rows, "base") == (
        f"{_COMPARISON_HEAD}\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        "| base | 0.800 [0.700, 0.900] | – | – | 0.400 [0.300, 0.500] | 0.600 [0.500, 0.700] | 0.900 | – | 0.600 "
        "| 0.750 | ref. | ref. |\n"
        "| new | – | 0.556 [0.500, 0.600] | 0.250 [0.200, 0.300] | – | – | – | – | – | – | 0.000 / – / 0.123 "
        "| – / 1.000 / – |\n"
    )


def test_comparison_table_ends_with_the_bayes_optimal_row():
    """The Bayes-optimal row gives each marker's AUC and their mean over the known ones (None and NaN left out)."""
    rows = [{"name": "m", "seg": {}, "mean_auc": 0.5}]
    lines = comparison_table(rows, "other", {"idh": 0.9, "codel_1p19q": math.nan, "tert": 0.65}).splitlines()
    assert lines[-2] == "| m | – | – | – | – | – | – | – | – | 0.500 | – / – / – | – / – / – |"
    assert lines[-1] == "| Bayes-optimal (phantom truth) | – | – | – | – | – | 0.900 | – | 0.650 | 0.775 | | |"
    lines = comparison_table(rows, "m", {"idh": None, "tert": 0.8}).splitlines()
    assert lines[-1] == "| Bayes-optimal (phantom truth) | – | – | – | – | – | – | – | 0.800 | 0.800 | | |"
    lines = comparison_table(rows, "m", {"idh": math.nan}).splitlines()
    assert lines[-1] == "| Bayes-optimal (phantom truth) | – | – | – | – | – | – | – | – | – | | |"
    assert len(comparison_table(rows, "m", {}).splitlines()) == 3
