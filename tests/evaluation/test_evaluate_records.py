"""`gliomics evaluate` pinned on hand-made inputs: reading predictions and references, per-case rows, the review
columns, the summaries with their CIs, the Bayes-optimal AUCs, the written files and the headline."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from gliomics.constants import MARKERS, REGIONS, TUMOUR_LABELS
from gliomics.errors import ImageError, InputError, MarkerTableError, OutputError
from gliomics.evaluation import evaluate as ev
from gliomics.evaluation.bootstrap import mean_ci
from gliomics.evaluation.classification import evaluate_marker
from gliomics.evaluation.decisions import conformal_summary, operating_point_summary, raw_calibration
from gliomics.inference.calibration import OPERATING_POINTS
from gliomics.io import Case
from gliomics.labels import dice, region_mask
from gliomics.provenance import versions

SPACING = (1.0, 1.5, 2.0)


def _affine(shift: float = 0.0) -> np.ndarray:
    aff = np.diag([*SPACING, 1.0])
    aff[0, 3] = shift
    return aff


def _ref_seg() -> np.ndarray:
    seg = np.zeros((8, 8, 8), np.uint8)
    seg[1:5, 1:5, 1:4] = 2
    seg[2:4, 2:4, 2:3] = 3
    seg[2, 2, 1] = 1
    seg[6:8, 6:8, 4:6] = 4
    return seg


def _pred_seg() -> np.ndarray:
    seg = _ref_seg()
    seg[3, 3, 2] = 2  # one ET voxel called SNFH
    seg[6:8, 6:8, 5] = 0  # half the cavity missed
    return seg


def _save(path: Path, seg: np.ndarray, affine: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(seg.astype(np.uint8), _affine() if affine is None else affine), path)
    return path


def _record(case_id: str, **extra) -> dict:
    return {"case_id": case_id, "markers": {m: {"probability": 0.25, "threshold": 0.5} for m in MARKERS}, **extra}


def test_rules_and_names():
    """The accepted rules, the BraTS 2025 column prefix and the phantom truth file."""
    assert ev.RULES == ("brats2024", "brats2025", "both")
    assert ev.BRATS2025 == "brats2025" and ev.PHANTOM_TRUTH == "phantom_truth.csv"
    for rule in ev.RULES:
        assert ev.check_rule(rule) == rule
    with pytest.raises(InputError, match=r"^--rule BOTH: expected one of brats2024, brats2025, both$"):
        ev.check_rule("BOTH")


def test_truth_file_of_a_folder_or_a_file(tmp_path):
    """A cohort folder keeps the truth inside; a file reference keeps it beside."""
    assert ev.truth_file(tmp_path) == tmp_path / "phantom_truth.csv"
    table = tmp_path / "markers.csv"
    table.write_text("case_id,idh\n")
    assert ev.truth_file(table) == tmp_path / "phantom_truth.csv"


def test_load_prediction_finds_either_name_and_the_record(tmp_path):
    """``<case>_seg.nii.gz`` first, then nnU-Net's ``<case>.nii.gz``; the record when ``<case>.json`` exists."""
    assert ev._load_prediction(tmp_path, "a") == (None, None)
    nn = _save(tmp_path / "a.nii.gz", _ref_seg())
    assert ev._load_prediction(tmp_path, "a") == (nn, None)
    ours = _save(tmp_path / "a_seg.nii.gz", _ref_seg())
    (tmp_path / "a.json").write_text(json.dumps(_record("a")))
    seg, record = ev._load_prediction(tmp_path, "a")
    assert seg == ours and record == _record("a")
    (tmp_path / "b.json").write_text(json.dumps(_record("b")))
    assert ev._load_prediction(tmp_path, "b") == (None, _record("b"))


@pytest.mark.parametrize("rule", ["brats2024", "brats2025", "both"])
def test_score_case_columns_by_rule(tmp_path, rule):
    """Whole-volume metrics per region always; BraTS 2024 lesion-wise ones unless ``brats2025``; BraTS 2025 ones
    unless ``brats2024``; the mean Dice over the four labels."""
    ref = _save(tmp_path / "ref.nii.gz", _ref_seg())
    pred = _save(tmp_path / "pred.nii.gz", _pred_seg())
    row = ev._score_case(Case("x", {}, seg=ref), pred, None, rule)
    assert row["case_id"] == "x"
    expected = {r: dice(region_mask(_pred_seg(), r), region_mask(_ref_seg(), r)) for r in REGIONS}
    for r in REGIONS:
        assert row[f"{r}_dice"] == pytest.approx(expected[r])
    assert expected["ET"] == pytest.approx(6 / 7) and expected["RC"] == pytest.approx(2 / 3)
    assert row["mean_dice"] == pytest.approx((1.0 + expected["SNFH"] + 6 / 7 + 2 / 3) / 4)
    assert ("WT_lesion_dice" in row) == (rule != "brats2025")
    assert ("WT_brats2025_lesion_dice" in row) == (rule != "brats2024")
    assert ("RC_brats2025_global_dice" in row) == (rule != "brats2024")
    assert not any(k.startswith("prob_") for k in row)
    if rule != "brats2024":
        assert row["RC_brats2025_global_dice"] == pytest.approx(2 / 3)


def test_score_case_needs_the_reference_geometry(tmp_path):
    """A prediction of another shape, or whose affine differs by more than 1e-3, is an image error; 5e-4 is fine."""
    ref = Case("x", {}, seg=_save(tmp_path / "ref.nii.gz", _ref_seg()))
    near = _save(tmp_path / "near.nii.gz", _ref_seg(), _affine(5e-4))
    assert ev._score_case(ref, near, None)["WT_dice"] == 1.0
    with pytest.raises(ImageError, match="does not match the reference"):
        ev._score_case(ref, _save(tmp_path / "far.nii.gz", _ref_seg(), _affine(0.5)), None)
    longer = np.zeros((8, 8, 9), np.uint8)
    with pytest.raises(ImageError, match=r"\(8, 8, 9\)"):
        ev._score_case(ref, _save(tmp_path / "longer.nii.gz", longer), None)


def test_score_case_without_a_segmentation_on_either_side(tmp_path):
    """No prediction file, or no reference segmentation: no segmentation columns at all."""
    seg = _save(tmp_path / "s.nii.gz", _ref_seg())
    assert ev._score_case(Case("x", {}, seg=seg), None, None) == {"case_id": "x"}
    assert ev._score_case(Case("x", {}), seg, None) == {"case_id": "x"}


def test_score_case_marker_columns_of_raw_and_calibrated_records():
    """Raw markers give probability and threshold; calibrated ones also the raw probability, the set, alpha, where
    the calibration was fitted and each operating point's threshold; CMAF weights become columns."""
    record = {"calibration": {"source": "val split"},
              "markers": {"idh": {"probability": 0.8, "threshold": 0.4, "calibrated": True, "probability_raw": 0.9,
                                  "set_status": "mutant", "alpha": 0.1,
                                  "thresholds": {"youden": 0.4, "rule_out": 0.2}},
                          "tert": {"probability": 0.3, "threshold": 0.5}},
              "mean_cmaf_weight": {"ET": {"t1c": 0.6, "t2f": 0.4}}}
    row = ev._score_case(Case("x", {}), None, record)
    assert row == {"case_id": "x", "prob_idh": 0.8, "threshold_idh": 0.4, "prob_raw_idh": 0.9, "set_idh": "mutant",
                   "alpha_idh": 0.1, "fitted_on_idh": "val split", "threshold_idh_youden": 0.4,
                   "threshold_idh_rule_out": 0.2, "prob_tert": 0.3, "threshold_tert": 0.5,
                   "cmaf_ET_t1c": 0.6, "cmaf_ET_t2f": 0.4}
    bare = ev._score_case(Case("x", {}), None, {"markers": {"idh": {"probability": 0.1, "threshold": 0.5,
                                                                    "calibrated": True}},
                                                "mean_cmaf_weight": None})
    assert bare == {"case_id": "x", "prob_idh": 0.1, "threshold_idh": 0.5, "prob_raw_idh": None, "set_idh": None,
                    "alpha_idh": None, "fitted_on_idh": None}


def test_review_columns():
    """The flag, the score, whether the score alone is above the threshold (strictly), and the rule."""
    row: dict = {}
    ev._review_columns(row, {"uncertainty": {"score": 0.3}})
    assert row == {}
    ev._review_columns(row, {"needs_review": 1, "uncertainty": {"score": 0.3, "review_threshold": 0.2,
                                                                 "review_rule": "q95"}})
    assert row == {"needs_review": True, "uncertainty_score": 0.3, "flag_uncertainty": True, "review_rule": "q95"}
    ev._review_columns(row, {"needs_review": 0, "uncertainty": {"score": 0.2, "review_threshold": 0.2}})
    assert row == {"needs_review": False, "uncertainty_score": 0.2, "flag_uncertainty": False, "review_rule": None}
    ev._review_columns(row, {"needs_review": True, "uncertainty": {"score": 0.2}})
    assert row["flag_uncertainty"] is None
    ev._review_columns(row, {"needs_review": True, "uncertainty": {"review_threshold": 0.2}})
    assert row["flag_uncertainty"] is None and row["uncertainty_score"] is None
    ev._review_columns(row, {"needs_review": True, "uncertainty": None})
    assert row == {"needs_review": True, "uncertainty_score": None, "flag_uncertainty": None, "review_rule": None}


DICES = [0.2, 0.9, 0.5, 0.7, 0.85]


def _seg_rows() -> list[dict]:
    rows = []
    for i, d in enumerate(DICES):
        row = {"case_id": f"c{i}", "WT_dice": d}
        for r in REGIONS:
            row.update({f"{r}_dice": d, f"{r}_lesion_dice": d / 2, f"{r}_hd95": 10 * d, f"{r}_sensitivity": 1 - d})
            if i:
                row[f"{r}_lesion_hd95"] = 3 * d
        rows.append(row)
    return rows


def test_segmentation_summary_means_with_their_bootstrap_cis():
    """Per region and metric the mean with a bootstrap CI of ``n_boot`` resamples over the scored cases; a missing
    value is left out; rows without ``WT_dice`` are not scored."""
    rows = [*_seg_rows(), {"case_id": "markers only", "ET_dice": 0.0}]
    out = ev._seg_summary(rows, 50)
    assert list(out) == list(REGIONS)
    assert list(out["ET"]) == ["dice", "lesion_dice", "hd95", "lesion_hd95", "sensitivity"]
    assert out["ET"]["dice"] == mean_ci(DICES, 50) and out["ET"]["dice"]["mean"] == pytest.approx(0.63)
    assert out["ET"]["dice"] != mean_ci(DICES, 2000)
    assert out["TC"]["lesion_dice"] == mean_ci([d / 2 for d in DICES], 50)
    assert out["WT"]["hd95"] == mean_ci([10 * d for d in DICES], 50)
    assert out["RC"]["lesion_hd95"] == mean_ci([3 * d for d in DICES[1:]], 50) and out["RC"]["lesion_hd95"]["n"] == 4
    assert out["NETC"]["sensitivity"] == mean_ci([1 - d for d in DICES], 50)
    assert ev._seg_summary([{"case_id": "x", "ET_dice": 1.0}], 50) == {}


def test_case_mean_needs_all_four_labels():
    """The case mean over the four labels, only for cases that have all four."""
    rows = [{f"{lab}_dice": v for lab, v in zip(TUMOUR_LABELS, (0.2, 0.4, 0.6, 1.0), strict=True)},
            {"NETC_dice": 1.0, "SNFH_dice": 1.0, "ET_dice": 1.0},
            {"NETC_dice": 1.0, "SNFH_dice": 1.0, "ET_dice": 1.0, "RC_dice": None},
            dict.fromkeys((f"{lab}_dice" for lab in TUMOUR_LABELS), 0.5)]
    assert ev._case_mean(rows, "dice") == pytest.approx([0.55, 0.5])
    assert ev._case_mean(rows, "lesion_dice") == []


def test_brats2025_case_means_and_summary():
    """Per case the mean lesion-wise Dice over the labels either side has, NaN when none; per region every BraTS
    2025 metric with its CI, and the mean over cases."""
    rows = [{"WT_brats2025_lesion_dice": 0.5, "NETC_brats2025_lesion_dice": 0.2, "ET_brats2025_lesion_dice": 0.6,
             "SNFH_brats2025_lesion_dice": math.nan},
            {"WT_brats2025_lesion_dice": 1.0},
            {"WT_brats2025_lesion_dice": 0.7, "RC_brats2025_lesion_dice": 0.9},
            {"WT_brats2025_lesion_dice": 0.1, "NETC_brats2025_lesion_dice": 0.3, "SNFH_brats2025_lesion_dice": 0.5,
             "ET_brats2025_lesion_dice": 0.7, "RC_brats2025_lesion_dice": 0.9,
             "WT_brats2025_global_nsd": 0.8},
            {"case_id": "not scored", "NETC_brats2025_lesion_dice": 0.0}]
    means = ev._brats2025_case_means(rows[:4])
    assert means[0] == pytest.approx(0.4) and math.isnan(means[1]) and means[2] == pytest.approx(0.9)
    assert means[3] == pytest.approx(0.6)
    out = ev._brats2025_summary(rows, 40)
    assert list(out) == [*REGIONS, "mean_lesion_dice"]
    assert list(out["WT"]) == ["lesion_dice", "lesion_nsd", "lesion_hd95", "lesion_f1", "panoptic_quality",
                               "global_dice", "global_nsd"]
    assert out["WT"]["lesion_dice"] == mean_ci([0.5, 1.0, 0.7, 0.1], 40)
    assert out["WT"]["lesion_dice"] != mean_ci([0.5, 1.0, 0.7, 0.1], 2000)
    assert out["WT"]["global_nsd"] == mean_ci([0.8], 40) and out["WT"]["lesion_nsd"] is None
    assert out["NETC"]["lesion_dice"] == mean_ci([0.2, 0.3], 40)
    assert out["mean_lesion_dice"] == mean_ci([0.4, 0.9, 0.6], 40)
    assert ev._brats2025_summary([{"WT_dice": 1.0}], 40) == {}


def test_cmaf_summary_over_cases_that_have_the_region():
    """Per region and sequence the mean CMAF weight with its CI; regions no case has are left out."""
    rows = [{"cmaf_ET_t1c": 0.6, "cmaf_ET_t2f": 0.4}, {"cmaf_ET_t1c": 0.5, "cmaf_ET_t2f": None},
            {"cmaf_ET_t1c": 0.9, "cmaf_NETC_t1n": 0.25}, {}]
    out = ev._cmaf_summary(rows, 30)
    assert list(out) == ["NETC", "ET"]
    assert out["ET"] == {"t1c": mean_ci([0.6, 0.5, 0.9], 30), "t2f": mean_ci([0.4], 30)}
    assert out["ET"]["t1c"] != mean_ci([0.6, 0.5, 0.9], 2000)
    assert out["NETC"] == {"t1n": {"mean": 0.25, "lo": 0.25, "hi": 0.25, "n": 1}}
    assert ev._cmaf_summary([{}], 30) == {}


def _marker_rows() -> list[dict]:
    labels = [1, 0, 1, 0, None, 1, 0]
    probs = [0.9, 0.2, 0.6, 0.7, 0.5, 0.8, 0.1]
    rows = []
    for i, (y, p) in enumerate(zip(labels, probs, strict=True)):
        rows.append({"case_id": f"c{i}", "label_idh": y, "prob_idh": p, "threshold_idh": 0.55, "label_tert": y,
                     "prob_tert": p, "threshold_tert": 0.3 if i == 0 else 0.5})
    rows.append({"case_id": "no prediction", "label_idh": 1, "label_tert": 0})
    return rows


def test_marker_summary_matches_evaluate_marker():
    """Per marker, the cases with a probability (unknown labels kept as NaN), at the threshold they share; mixed
    thresholds fall back to none; markers without probabilities are left out."""
    out = ev._marker_summary(_marker_rows(), 60)
    assert list(out) == ["idh", "tert"]
    y = np.array([1, 0, 1, 0, np.nan, 1, 0])
    p = np.array([0.9, 0.2, 0.6, 0.7, 0.5, 0.8, 0.1])
    assert out["idh"] == evaluate_marker(y, p, threshold=0.55, n_boot=60)
    assert out["idh"]["threshold"] == 0.55 and out["idh"]["n_unknown"] == 1 and out["idh"]["n"] == 6
    assert out["tert"] == evaluate_marker(y, p, threshold=None, n_boot=60)
    assert out["tert"]["threshold_source"] == "youden_same_data"
    assert out["idh"]["n_boot"] == 60 and out["tert"]["n_boot"] == 60


def _calibrated_rows(shared: bool = True) -> list[dict]:
    rows = []
    for i, (y, p, s) in enumerate([(1, 0.9, "mutant"), (0, 0.2, "wildtype"), (1, 0.4, "undetermined"),
                                    (0, 0.7, "mutant"), (None, 0.5, "wildtype"), (1, 0.8, None)]):
        row = {"case_id": f"c{i}", "label_idh": y, "prob_idh": p, "threshold_idh": 0.5, "prob_raw_idh": p / 2,
               "set_idh": s, "alpha_idh": 0.1, "fitted_on_idh": "validation"}
        for op in OPERATING_POINTS:
            row[f"threshold_idh_{op}"] = 0.5 if shared or i else 0.6
        rows.append(row)
    return rows


def test_decisions_of_calibrated_records():
    """Raw calibration, conformal coverage and each operating point on the known labels, as their functions give."""
    rows = _calibrated_rows()
    y = np.array([1, 0, 1, 0, np.nan, 1], dtype=float)
    p = np.array([0.9, 0.2, 0.4, 0.7, 0.5, 0.8])
    out = ev._decisions("idh", rows, y)
    assert list(out) == ["fitted_on", "calibration_raw", "conformal", "operating_points"]
    assert out["fitted_on"] == "validation"
    assert out["calibration_raw"] == raw_calibration(y, p / 2)
    assert out["conformal"] == conformal_summary("idh", y, ["mutant", "wildtype", "undetermined", "mutant",
                                                            "wildtype", None], 0.1)
    assert out["conformal"]["n"] == 4 and out["conformal"]["coverage"] == 0.75
    known = ~np.isnan(y)
    assert out["operating_points"] == operating_point_summary(y[known].astype(int), p[known],
                                                              dict.fromkeys(OPERATING_POINTS, 0.5))
    mixed = ev._decisions("idh", _calibrated_rows(shared=False), y)
    assert "operating_points" not in mixed and "conformal" in mixed
    missing = _calibrated_rows()
    missing[2][f"threshold_idh_{next(iter(OPERATING_POINTS))}"] = None
    assert "operating_points" not in ev._decisions("idh", missing, y)
    raw_missing = _calibrated_rows()
    raw_missing[3]["prob_raw_idh"] = None
    assert ev._decisions("idh", raw_missing, y) == {}
    assert ev._decisions("idh", [], y[:0]) == {}


def test_marker_summary_adds_the_decisions_of_calibrated_records():
    """The decisions join the marker's statistics where every record is calibrated."""
    rows = _calibrated_rows()
    out = ev._marker_summary(rows, 40)
    y = np.array([1, 0, 1, 0, np.nan, 1], dtype=float)
    assert out["idh"]["fitted_on"] == "validation"
    assert out["idh"]["conformal"] == ev._decisions("idh", rows, y)["conformal"]
    assert out["idh"]["auc"] == evaluate_marker(y, [0.9, 0.2, 0.4, 0.7, 0.5, 0.8], threshold=0.5, n_boot=40)["auc"]


def test_bayes_auc_of_the_phantom_truth(tmp_path):
    """AUC of the truth's posteriors over the cases with a known label; NaN with one class; None without truth."""
    truth = tmp_path / "phantom_truth.csv"
    with open(truth, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["case_id", *(f"posterior_{m}" for m in MARKERS)])
        for cid, (a, b, c) in {"c0": (0.9, 0.3, 0.2), "c1": (0.2, 0.4, 0.1), "c2": (0.6, 0.5, 0.3),
                               "c3": (0.4, 0.1, 0.4)}.items():
            writer.writerow([cid, a, b, c])
    rows = [{"case_id": "c0", "label_idh": 1, "label_codel_1p19q": 0, "label_tert": 1},
            {"case_id": "c1", "label_idh": 0, "label_codel_1p19q": 0, "label_tert": None},
            {"case_id": "c2", "label_idh": 0, "label_codel_1p19q": 0, "label_tert": None},
            {"case_id": "c3", "label_idh": 1, "label_codel_1p19q": 0, "label_tert": None},
            {"case_id": "elsewhere", "label_idh": 0, "label_codel_1p19q": 1, "label_tert": 0}]
    out = ev._bayes_auc([tmp_path / "missing.csv", truth], rows)
    assert list(out) == ["idh", "codel_1p19q", "tert"]
    assert out["idh"] == pytest.approx(0.75)  # 3 of the 4 (mutant, wildtype) pairs ordered right
    assert math.isnan(out["codel_1p19q"]) and math.isnan(out["tert"])
    assert ev._bayes_auc([tmp_path / "missing.csv"], rows) is None
    assert ev._bayes_auc([truth], [{"case_id": "c0", "label_idh": None}]) == {}


def _cohort(root: Path) -> Path:
    """Three reference cases (sites A, A, B) with segmentations and a markers table."""
    ref = root / "ref"
    for cid in ("r1", "r2", "r3"):
        _save(ref / cid / f"{cid}-t1c.nii.gz", _ref_seg().astype(np.float32) * 10 + 1)
        _save(ref / cid / f"{cid}-seg.nii.gz", _ref_seg())
    (ref / "markers.csv").write_text("case_id,idh,codel_1p19q,tert,site\nr1,1,0,0,A\nr2,0,0,1,A\nr3,1,,0,B\n")
    return ref


def _predictions(root: Path) -> Path:
    """r1 perfect, r2 with two errors, r3 without a prediction; records from two runs, one repeated."""
    pred = root / "pred"
    _save(pred / "r1_seg.nii.gz", _ref_seg())
    _save(pred / "r2_seg.nii.gz", _pred_seg())
    model_a = {"name": "a", "config_sha256": "1"}
    (pred / "r1.json").write_text(json.dumps(_record("r1", model=model_a, mean_cmaf_weight={"ET": {"t1c": 0.7}})))
    (pred / "r2.json").write_text(json.dumps(_record("r2", model=dict(reversed(model_a.items())))))
    return pred


def test_score_cases_writes_the_rows_summary_and_tables(tmp_path, caplog):
    """Two of three cases scored: the summary's parts, provenance with the distinct models, the files written."""
    ref, pred, out = _cohort(tmp_path), _predictions(tmp_path), tmp_path / "eval"
    with caplog.at_level("WARNING", logger="gliomics.evaluation.evaluate"):
        summary = ev.evaluate_predictions(pred, ref, markers=ref / "markers.csv", out=out, by="site", n_boot=30,
                                          rule="both")
    assert f"1 reference cases have no prediction in {pred}" in caplog.text
    assert list(summary) == ["cases", "cases_without_prediction", "segmentation", "mean_dice", "mean_lesion_dice",
                             "rule", "markers", "review", "provenance", "segmentation_brats2025", "cmaf",
                             "by_site", "text"]
    assert summary["cases"] == 2 and summary["cases_without_prediction"] == 1 and summary["rule"] == "both"
    assert summary["provenance"] == {"versions": versions(), "bootstrap_seed": 0, "n_boot": 30,
                                     "models": [{"name": "a", "config_sha256": "1"}]}
    et = dice(region_mask(_pred_seg(), "ET"), region_mask(_ref_seg(), "ET"))
    assert summary["segmentation"]["ET"]["dice"] == mean_ci([1.0, et], 30)
    rows = list(csv.DictReader(open(out / "per_case.csv", newline="")))
    assert [r["case_id"] for r in rows] == ["r1", "r2"]
    assert [r["site"] for r in rows] == ["A", "A"] and rows[0]["label_idh"] == "1" and rows[1]["label_tert"] == "1"
    assert float(rows[1]["ET_dice"]) == pytest.approx(6 / 7)
    assert summary["mean_dice"] == mean_ci([1.0, float(rows[1]["mean_dice"])], 30)
    assert summary["cmaf"] == {"ET": {"t1c": {"mean": 0.7, "lo": 0.7, "hi": 0.7, "n": 1}}}
    assert summary["review"] == {}
    assert list(summary["by_site"]) == ["A"] and summary["by_site"]["A"]["cases"] == 2
    assert set(summary["by_site"]["A"]) == {"cases", "mean_dice", "mean_lesion_dice", "mean_lesion_dice_brats2025",
                                            "markers"}
    assert summary["by_site"]["A"]["mean_dice"] == summary["mean_dice"]
    written = json.loads((out / "summary.json").read_text())
    assert "text" not in written and written["cases"] == 2
    tables = (out / "tables.md").read_text()
    assert tables.startswith(f"# Evaluation of {pred} against {ref} (2 cases)\n\n### Segmentation, lesion-wise by "
                             "the BraTS 2024 rule\n")
    assert "by the BraTS 2025 rule" in tables and "### Mean CMAF weight by region" in tables
    assert "| site | cases |" in tables
    assert summary["text"] == ev._headline(summary)
    assert "bayes_optimal_auc" not in summary


def test_score_cases_by_site_groups_unknown_sites_and_refuses_other_groupings(tmp_path):
    """Cases without a site go to ``unknown``; only ``--by site`` is known; brats2024 has no BraTS 2025 parts."""
    ref, pred, out = _cohort(tmp_path), _predictions(tmp_path), tmp_path / "eval"
    summary = ev.evaluate_predictions(pred, ref, out=out, by="site", rule="brats2024")
    assert summary["provenance"]["n_boot"] == 2000
    assert list(summary["by_site"]) == ["unknown"]
    assert "mean_lesion_dice_brats2025" not in summary["by_site"]["unknown"]
    assert "segmentation_brats2025" not in summary and summary["markers"] != {}
    with pytest.raises(InputError, match="--by scanner: only 'site' is supported"):
        ev.evaluate_predictions(pred, ref, out=tmp_path / "e2", by="scanner", n_boot=20)


def test_evaluate_predictions_refusals(tmp_path):
    """A missing prediction folder, an output that is a file, a table of other cases, and no matching prediction
    are each a clear error."""
    ref, pred = _cohort(tmp_path), _predictions(tmp_path)
    with pytest.raises(InputError, match="prediction folder not found"):
        ev.evaluate_predictions(tmp_path / "nope", ref, out=tmp_path / "e")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        ev.evaluate_predictions(pred, ref, out=tmp_path / "file")
    other = tmp_path / "other.csv"
    other.write_text("case_id,idh\nz1,1\n")
    with pytest.raises(MarkerTableError, match=r"none of its 1 case ids matches.*'z1' vs 'r1'"):
        ev.evaluate_predictions(pred, ref, markers=other, out=tmp_path / "e")
    with pytest.raises(InputError, match="--rule x"):
        ev.evaluate_predictions(pred, ref, out=tmp_path / "e", rule="x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"no predictions match the cases \(T\)"):
        ev.score_cases(tmp_path / "empty", [Case("r1", {})], {}, out=tmp_path / "e", title="T")
    with pytest.raises(InputError, match="--rule"):
        ev.score_cases(pred, [], {}, out=tmp_path / "e", rule="none")
    assert not (tmp_path / "e").exists()


def test_headline():
    """The first line quotes each label's Dice with its lesion-wise Dice of the rule; then the mean Dice, the
    lesion-wise means and each marker's AUC with its Bayes-optimal ceiling."""
    stat = {"mean": 0.5, "lo": 0.25, "hi": 0.75}
    summary = {"cases": 3, "rule": "both",
               "segmentation": {"ET": {"dice": {"mean": 0.8}, "lesion_dice": {"mean": 0.7}},
                                "NETC": {"dice": {"mean": 0.6}}, "SNFH": {"dice": None}},
               "segmentation_brats2025": {"ET": {"lesion_dice": {"mean": 0.65}}, "mean_lesion_dice": stat},
               "mean_dice": stat, "mean_lesion_dice": {"mean": 0.4, "lo": 0.3, "hi": 0.45},
               "markers": {"idh": {"auc": 0.9, "auc_ci_delong": [0.8, 0.95]}, "tert": {}},
               "bayes_optimal_auc": {"idh": 0.97, "tert": math.nan}}
    assert ev._headline(summary) == (
        "3 cases. Dice: NETC 0.600 (BraTS 2024 lesion-wise –), ET 0.800 (BraTS 2024 lesion-wise 0.700)\n"
        "mean Dice over ET/NETC/SNFH/RC: 0.500 [0.250, 0.750]\n"
        "mean lesion-wise Dice, BraTS 2024 rule: 0.400 [0.300, 0.450]\n"
        "mean lesion-wise Dice, BraTS 2025 rule: 0.500 [0.250, 0.750]\n"
        "idh: AUC 0.900 [0.800, 0.950] (Bayes-optimal 0.970)\n"
        "tert: AUC nan [nan, nan]")
    summary["rule"] = "brats2025"
    summary["mean_dice"] = None
    assert ev._headline(summary).splitlines()[0] == (
        "3 cases. Dice: NETC 0.600 (BraTS 2025 lesion-wise –), ET 0.800 (BraTS 2025 lesion-wise 0.650)")
    assert "mean Dice over" not in ev._headline(summary)
    summary["mean_lesion_dice"] = None
    assert "BraTS 2024 rule" not in ev._headline(summary)


def test_score_cases_makes_nested_output_folders_writes_indented_json_and_reruns(tmp_path):
    ref, pred, out = _cohort(tmp_path), _predictions(tmp_path), tmp_path / "deep" / "er" / "eval"
    ev.evaluate_predictions(pred, ref, markers=ref / "markers.csv", out=out, n_boot=30)
    assert (out / "summary.json").read_text().startswith('{\n  "cases": 2,\n')
    again = ev.evaluate_predictions(pred, ref, markers=ref / "markers.csv", out=out, n_boot=30)
    assert again["cases"] == 2  # an existing output folder is written again


def test_score_cases_uses_n_boot_for_every_ci_and_keeps_each_distinct_model(tmp_path):
    ref, pred, out = _cohort(tmp_path), _predictions(tmp_path), tmp_path / "eval"
    record = json.loads((pred / "r2.json").read_text())
    record["model"] = {"name": "b", "config_sha256": "2"}
    (pred / "r2.json").write_text(json.dumps(record))
    third = _pred_seg()
    third[1:3, 1:5, 1:4] = 0  # a third case, with part of the oedema missed
    _save(pred / "r3_seg.nii.gz", third)
    summary = ev.evaluate_predictions(pred, ref, markers=ref / "markers.csv", out=out, n_boot=30)
    assert summary["provenance"]["models"] == [{"name": "a", "config_sha256": "1"}, {"name": "b", "config_sha256": "2"}]
    rows = list(csv.DictReader(open(out / "per_case.csv", newline="")))
    lesion_means = [float(np.mean([float(r[f"{lab}_lesion_dice"]) for lab in TUMOUR_LABELS])) for r in rows]
    assert summary["mean_lesion_dice"] == mean_ci(lesion_means, 30)
    assert summary["mean_lesion_dice"] != mean_ci(lesion_means)  # the default 2000 resamples give another CI


def test_score_cases_gives_the_bayes_optimal_auc_of_a_phantom_cohort(tmp_path):
    ref, pred, out = _cohort(tmp_path), _predictions(tmp_path), tmp_path / "eval"
    (ref / "phantom_truth.csv").write_text("case_id,posterior_idh,posterior_codel_1p19q,posterior_tert\n"
                                           "r1,0.9,0.2,0.1\nr2,0.3,0.1,0.8\nr3,0.6,0.5,0.2\n")
    summary = ev.evaluate_predictions(pred, ref, markers=ref / "markers.csv", out=out, n_boot=30)
    assert summary["bayes_optimal_auc"]["idh"] == 1.0  # r1 mutant above r2 wildtype
    assert math.isnan(summary["bayes_optimal_auc"]["codel_1p19q"])  # one class among the predicted cases


def test_reference_labels_are_mapped_with_the_cases_label_map(tmp_path):
    old_style = _ref_seg()
    old_style[old_style == 3] = 5  # a reference whose ET value the case's label map turns into 3
    seg = _save(tmp_path / "ref-seg.nii.gz", old_style)
    pred = _save(tmp_path / "pred_seg.nii.gz", _ref_seg())
    row = ev._score_case(Case("r", {}, seg=seg, label_map={0: 0, 1: 1, 2: 2, 5: 3, 4: 4}), pred, None, "brats2024")
    assert row["ET_dice"] == 1.0 and row["mean_dice"] == 1.0


def test_brats2025_case_means_of_a_case_without_lesions_is_nan_without_a_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(ev._brats2025_case_means([{"case_id": "empty"}])[0])
