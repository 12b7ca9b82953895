"""Two evaluation folders side by side: the Dice differences bootstrapped per group, the AUC differences from the
two DeLong standard errors, and the markdown of both."""

from __future__ import annotations

import csv
import json
import math

import pytest

from gliomics.errors import InputError
from gliomics.evaluation.bootstrap import mean_difference_ci
from gliomics.evaluation.side_by_side import SIDE_BY_SIDE, compare_evaluations, load_evaluation, side_by_side_table

LABELS = ("NETC", "SNFH", "ET", "RC")
Z95 = 1.959963984540054

# Per case: Dice and lesion-wise Dice of NETC, SNFH, ET and RC ("" where the case has no value).
DICE_A = [(0.91, 0.83, 0.72, 0.65), (0.97, 0.58, 0.52, 0.61), (0.44, 0.70, 0.33, 0.88), (0.76, "", 0.81, 0.59),
          (0.63, 0.92, 0.47, 0.75), (0.85, 0.68, 0.94, 0.39)]
LESION_A = [(0.90, 0.80, 0.70, 0.60), (0.95, 0.55, 0.50, 0.58), (0.40, 0.66, 0.31, 0.85), (0.74, 0.60, 0.79, 0.57),
            (0.61, 0.90, "", 0.73), (0.83, 0.66, 0.92, 0.37)]
DICE_B = [(0.52, 0.61, 0.44, 0.70), (0.33, 0.79, 0.58, 0.49), (0.67, 0.45, 0.71, 0.36), (0.29, 0.84, 0.62, 0.55),
          ("", 0.50, 0.48, 0.77)]
LESION_B = [(0.50, 0.60, 0.41, 0.68), (0.31, 0.77, 0.55, 0.47), (0.65, 0.43, 0.69, 0.34), (0.27, 0.82, 0.60, 0.53),
            (0.45, 0.48, 0.46, 0.75)]


def _stat(mean, lo, hi):
    return {"mean": mean, "lo": lo, "hi": hi}


def _write(folder, dice, lesion, summary):
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps(summary))
    rows = []
    for i, (d, le) in enumerate(zip(dice, lesion)):
        row = {"case_id": f"C{i}"}
        row.update({f"{lab}_dice": v for lab, v in zip(LABELS, d)})
        row.update({f"{lab}_lesion_dice": v for lab, v in zip(LABELS, le)})
        rows.append(row)
    with open(folder / "per_case.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder


def _seg(base):
    return {lab: {"dice": _stat(base + i / 10, base, 1.0), "lesion_dice": _stat(base - i / 10, 0.0, base)}
            for i, lab in enumerate(LABELS)}


SUMMARY_A = {"segmentation": {**_seg(0.5), "WT": {"dice": _stat(0.9, 0.8, 1.0)}},
             "mean_dice": _stat(0.7, 0.6, 0.8), "mean_lesion_dice": _stat(0.65, 0.55, 0.75),
             "markers": {"idh": {"auc": 0.8, "auc_se": 0.05, "auc_ci_delong": [0.7, 0.9]},
                         "codel_1p19q": {"auc": 0.6},
                         "tert": {"auc": 0.7, "auc_se": 0.1}}}
SUMMARY_B = {"segmentation": {lab: s for lab, s in _seg(0.3).items() if lab != "SNFH"},
             "mean_dice": _stat(0.5, 0.4, 0.6), "mean_lesion_dice": _stat(0.45, 0.35, 0.55),
             "markers": {"idh": {"auc": 0.7, "auc_se": 0.12, "auc_ci_delong": [0.45678, 0.94321]},
                         "codel_1p19q": {"auc": 0.75, "auc_se": 0.1, "auc_ci_delong": None},
                         "tert": {"auc": None, "auc_se": 0.1}}}


@pytest.fixture
def folders(tmp_path):
    """Evaluation folders of two cohorts: six cases in ``a``, five in ``b`` (SNFH not in b's summary)."""
    return (_write(tmp_path / "a", DICE_A, LESION_A, SUMMARY_A), _write(tmp_path / "b", DICE_B, LESION_B, SUMMARY_B))


def _column(cases, index):
    return [c[index] for c in cases if c[index] != ""]


def _case_means(cases):
    return [(c[0] + c[1] + c[2] + c[3]) / 4 for c in cases if "" not in c]


def test_load_evaluation_reads_the_summary_and_the_rows(folders):
    """The summary as written and the per-case rows as strings."""
    summary, rows = load_evaluation(folders[0])
    assert summary == SUMMARY_A
    assert len(rows) == 6 and rows[3]["SNFH_dice"] == "" and rows[0]["NETC_dice"] == "0.91"
    assert SIDE_BY_SIDE == "side_by_side.md"


@pytest.mark.parametrize("keep", ["summary.json", "per_case.csv", None])
def test_load_evaluation_needs_both_files(folders, keep):
    """A folder without the summary or without the per-case table is not an evaluation folder."""
    folder = folders[0]
    for name in ("summary.json", "per_case.csv"):
        if name != keep:
            (folder / name).unlink()
    with pytest.raises(InputError) as err:
        load_evaluation(folder)
    assert str(err.value) == (f"{folder}: not an evaluation folder (needs summary.json and per_case.csv from "
                              "`gliomics evaluate`)")


def test_compare_evaluations_gives_each_region_both_sides_and_the_difference(folders):
    """Regions known on both sides, in label order, then the mean; Dice and lesion-wise Dice, each difference the
    bootstrap of the per-case values (missing values dropped; the mean over cases with all four labels)."""
    result = compare_evaluations(*folders, n_boot=101)
    assert list(result) == ["dice", "auc"]
    assert list(result["dice"]) == ["NETC dice", "ET dice", "RC dice", "mean dice",
                                    "NETC lesion_dice", "ET lesion_dice", "RC lesion_dice", "mean lesion_dice"]
    for kind, cases_a, cases_b in (("dice", DICE_A, DICE_B), ("lesion_dice", LESION_A, LESION_B)):
        for index, lab in enumerate(LABELS):
            if lab == "SNFH":
                continue
            entry = result["dice"][f"{lab} {kind}"]
            assert entry["a"] == SUMMARY_A["segmentation"][lab][kind]
            assert entry["b"] == SUMMARY_B["segmentation"][lab][kind]
            assert entry["diff"] == mean_difference_ci(_column(cases_a, index), _column(cases_b, index), 101)
        mean = result["dice"][f"mean {kind}"]
        assert mean["a"] == SUMMARY_A[f"mean_{kind}"] and mean["b"] == SUMMARY_B[f"mean_{kind}"]
        assert mean["diff"] == mean_difference_ci(_case_means(cases_a), _case_means(cases_b), 101)
    assert result["dice"]["mean dice"]["diff"]["n_a"] == 5 and result["dice"]["mean dice"]["diff"]["n_b"] == 4
    assert result["dice"]["ET lesion_dice"]["diff"]["n_a"] == 5
    assert result["dice"]["mean dice"]["diff"]["mean"] == pytest.approx(
        (0.7775 + 0.67 + 0.5875 + 0.6925 + 0.715) / 5 - (0.5675 + 0.5475 + 0.5475 + 0.575) / 4)


def test_compare_evaluations_bootstraps_2000_times_by_default(folders):
    """The default number of resamples is 2000."""
    result = compare_evaluations(*folders)
    assert result["dice"]["NETC dice"]["diff"] == mean_difference_ci(_column(DICE_A, 0), _column(DICE_B, 0), 2000)
    assert result["dice"]["NETC dice"]["diff"] != mean_difference_ci(_column(DICE_A, 0), _column(DICE_B, 0), 2001)


def test_compare_evaluations_gives_the_auc_difference_with_independent_delong_errors(folders):
    """AUC difference a − b with a normal 95% CI from ``sqrt(se_a² + se_b²)``; a NaN CI without a standard error;
    markers without an AUC on either side left out."""
    auc = compare_evaluations(*folders, n_boot=101)["auc"]
    assert list(auc) == ["idh", "codel_1p19q"]
    idh = auc["idh"]
    assert idh["a"] is not None and idh["a"] == SUMMARY_A["markers"]["idh"]
    assert idh["b"] == SUMMARY_B["markers"]["idh"]
    assert idh["diff"]["mean"] == pytest.approx(0.1)
    assert idh["diff"]["lo"] == pytest.approx(0.1 - Z95 * 0.13, abs=1e-12)
    assert idh["diff"]["hi"] == pytest.approx(0.1 + Z95 * 0.13, abs=1e-12)
    codel = auc["codel_1p19q"]["diff"]
    assert codel["mean"] == pytest.approx(-0.15) and math.isnan(codel["lo"]) and math.isnan(codel["hi"])


def test_compare_evaluations_leaves_out_what_one_side_lacks(tmp_path):
    """A side without a segmentation, mean Dice or markers gives no row for them; too few values give no CI."""
    a = _write(tmp_path / "a", DICE_A[:1], LESION_A[:1],
               {"segmentation": _seg(0.5), "mean_dice": _stat(0.7, 0.6, 0.8), "mean_lesion_dice": None,
                "markers": {"idh": {"auc": 0.8, "auc_se": 0.1}}})
    b = _write(tmp_path / "b", DICE_B, LESION_B, {"mean_dice": None})
    assert compare_evaluations(a, b, n_boot=101) == {"dice": {}, "auc": {}}
    result = compare_evaluations(a, a, n_boot=101)
    assert list(result["dice"]) == [f"{lab} dice" for lab in LABELS] + ["mean dice"] + \
        [f"{lab} lesion_dice" for lab in LABELS]
    assert all(v["diff"] is None for v in result["dice"].values())
    assert result["auc"]["idh"]["diff"] == pytest.approx({"mean": 0.0, "lo": -Z95 * math.sqrt(0.02),
                                                          "hi": Z95 * math.sqrt(0.02)}, abs=1e-12)


def test_side_by_side_table_gives_each_row_with_its_ci(folders):
    """Header with both names; Dice rows with underscores spelt as spaces; AUC rows with DeLong CIs (NaN where a side
    has none); a dash for a difference without a CI."""
    result = {"dice": {"ET lesion_dice": {"a": _stat(0.81234, 0.7, 0.9), "b": _stat(0.5, 0.25, 0.75),
                                          "diff": {"mean": 0.31234, "lo": 0.1, "hi": 0.55555, "n_a": 3, "n_b": 4}},
                       "mean dice": {"a": _stat(0.7, 0.6, 0.8), "b": None, "diff": None}},
              "auc": {"idh": {"a": {"auc": 0.8, "auc_ci_delong": [0.70001, 0.9]},
                              "b": {"auc": 0.65432, "auc_ci_delong": None},
                              "diff": {"mean": 0.14568, "lo": -0.05, "hi": 0.3}}}}
    assert side_by_side_table(result, "internal", "external") == (
        "| | internal | external | difference [95% CI] |\n"
        "|---|---|---|---|\n"
        "| ET lesion dice | 0.812 [0.700, 0.900] | 0.500 [0.250, 0.750] | 0.312 [0.100, 0.556] |\n"
        "| mean dice | 0.700 [0.600, 0.800] | – | – |\n"
        "| idh AUC | 0.800 [0.700, 0.900] | 0.654 [nan, nan] | 0.146 [-0.050, 0.300] |\n"
    )


def test_side_by_side_table_of_two_evaluations(folders):
    """The table of a real comparison has one line per Dice row and per marker."""
    text = side_by_side_table(compare_evaluations(*folders, n_boot=101), "a", "b")
    lines = text.splitlines()
    assert len(lines) == 2 + 8 + 2
    assert lines[-2].startswith("| idh AUC | 0.800 [0.700, 0.900] | 0.700 [0.457, 0.943] | 0.100 [")
    assert lines[-1].startswith("| codel_1p19q AUC | 0.600 [nan, nan] | 0.750 [nan, nan] | -0.150 [nan, nan] |")
