"""Cohort-level Grad-CAM shares: the energy of one map split by the predicted regions, the cohort means with their
CIs written into an evaluation folder, and their markdown table."""

from __future__ import annotations

import json
import math
import sys
import types
from types import SimpleNamespace

import numpy as np
import pytest

import gliomics.io
import gliomics.io.predictions
from gliomics.evaluation.bootstrap import mean_ci
from gliomics.evaluation.interpretability import SHARE_REGIONS, explain_cohort, gradcam_share_table, gradcam_shares

#: One voxel each of outside, NETC, SNFH, ET, RC, outside, an unknown label 7 and NETC again.
SEG = np.array([0, 1, 2, 3, 4, 0, 7, 1], dtype=np.uint8).reshape(2, 2, 2)


def _cam(values):
    return np.array(values, dtype=float).reshape(2, 2, 2)


def test_share_regions_are_the_four_labels_and_outside():
    """The regions of a share, in label order, then the outside of the tumour."""
    assert SHARE_REGIONS == ("NETC", "SNFH", "ET", "RC", "outside")


def test_gradcam_shares_divide_each_region_by_the_whole_energy():
    """Each region's share of the total over the defined voxels; voxels of other labels count in the total only."""
    shares = gradcam_shares(_cam([1, 2, 3, 4, 5, 6, 7, 8]), SEG)
    assert list(shares) == list(SHARE_REGIONS)
    assert shares == pytest.approx({"NETC": 10 / 36, "SNFH": 3 / 36, "ET": 4 / 36, "RC": 5 / 36, "outside": 7 / 36},
                                   rel=1e-12)
    assert all(isinstance(v, float) for v in shares.values())


def test_gradcam_shares_leave_out_undefined_voxels():
    """NaN voxels (outside the explained window) count neither in a region nor in the total."""
    shares = gradcam_shares(_cam([math.nan, 2, 3, 4, 5, 6, 7, math.nan]), SEG)
    assert shares == pytest.approx({"NETC": 2 / 27, "SNFH": 3 / 27, "ET": 4 / 27, "RC": 5 / 27, "outside": 6 / 27},
                                   rel=1e-12)


@pytest.mark.parametrize("values", [[0] * 8, [1, -1, 0, 0, 0, 0, 0, 0], [-1, 0, 0, 0, 0, 0, 0, 0.5],
                                    [math.nan] * 8])
def test_gradcam_shares_of_a_map_without_energy_is_none(values):
    """A map whose defined voxels sum to zero or less has no shares."""
    assert gradcam_shares(_cam(values), SEG) is None


def test_gradcam_shares_of_a_barely_positive_map():
    """A map with any positive total has shares, even when they exceed one."""
    shares = gradcam_shares(_cam([-1, 0, 0, 0, 0, 0, 0, 1.5]), SEG)
    assert shares == pytest.approx({"NETC": 3.0, "SNFH": 0.0, "ET": 0.0, "RC": 0.0, "outside": -2.0})


def test_gradcam_share_table_gives_each_marker_its_shares_and_cases():
    """Two decimals per share and CI, a dash for a region without a value, the most cases of any region."""
    result = {"idh": {"NETC": {"mean": 0.12345, "lo": 0.1, "hi": 0.15, "n": 4},
                      "SNFH": {"mean": 0.5, "lo": 0.333, "hi": 0.6789, "n": 6},
                      "ET": None, "RC": {"mean": 0.0, "lo": 0.0, "hi": 0.0, "n": 5},
                      "outside": {"mean": 0.375, "lo": 0.25, "hi": 0.5, "n": 3}},
              "tert": {r: None for r in SHARE_REGIONS}}
    assert gradcam_share_table(result) == (
        "### Share of each marker's Grad-CAM energy by predicted region\n"
        "\n"
        "| marker | NETC | SNFH | ET | RC | outside | cases |\n"
        "|---|---|---|---|---|---|---|\n"
        "| idh | 0.12 [0.10, 0.15] | 0.50 [0.33, 0.68] | – | 0.00 [0.00, 0.00] | 0.38 [0.25, 0.50] | 6 |\n"
        "| tert | – | – | – | – | – | 0 |\n"
    )
    assert gradcam_share_table({}).count("\n") == 4


CAMS = {"A": {"idh": _cam([1, 2, 3, 4, 5, 6, 7, 8]), "tert": _cam([0] * 8)},
        "B": {"idh": _cam([8, 1, 1, 2, 0, 3, 5, 9]), "tert": _cam([2, 2, 1, 0, 4, 1, 0, 3])},
        "E": {"idh": _cam([0.5, 4, 2, 7, 1, 0, 3, 6])},
        "F": {"idh": _cam([3, 1, 4, 1, 5, 9, 2, 6])}, "G": {"idh": _cam([2, 7, 1, 8, 2, 8, 1, 8])},
        "H": {"idh": _cam([1, 4, 1, 4, 2, 1, 3, 5])}}
RECORDS = {"A": {"sequences_present": ["t1c", "t2f"], "hardware": {"precision": "bf16"}},
           "B": {}, "E": {"hardware": None, "sequences_present": ["t1n"]},
           "F": {}, "G": {}, "H": {}}


@pytest.fixture
def fake_explain(monkeypatch, tmp_path):
    """Predictor, case discovery, prediction records and Grad-CAM maps replaced; calls recorded.

    Cases A, B, E, F, G and H have a record and a segmentation, C a record only and D a segmentation only."""
    calls = {"predictor": [], "discover": [], "records": [], "maps": []}

    class Predictor:
        def __init__(self, device):
            self.device = f"device:{device}"
            calls["predictor"].append(device)

        def load(self, run):
            calls["predictor"].append(run)
            return self

        def predict(self, case, *, options):
            return {"case": case.case_id, "options": options}

    def compute_case_maps(predictor, case, prediction):
        calls["maps"].append({"predictor": predictor.device, "case": case.case_id, **prediction["options"]})
        return SimpleNamespace(gradcam=CAMS[case.case_id], seg=SEG)

    def discover_cases(ref, allow_missing):
        calls["discover"].append((ref, allow_missing))
        return [SimpleNamespace(case_id=c) for c in "ABCDEFGH"]

    def read_prediction_record(path, case_id):
        calls["records"].append((path, case_id))
        return RECORDS[case_id]

    for name, attr, value in (("gliomics.inference.predictor", "Predictor", Predictor),
                              ("gliomics.inference.explanation_maps", "compute_case_maps", compute_case_maps)):
        module = types.ModuleType(name)
        setattr(module, attr, value)
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(gliomics.io, "discover_cases", discover_cases)
    monkeypatch.setattr(gliomics.io.predictions, "read_prediction_record", read_prediction_record)

    pred = tmp_path / "pred"
    pred.mkdir()
    for c in "ABCEFGH":
        (pred / f"{c}.json").write_text("{}")
    for c in "ABDEFGH":
        (pred / f"{c}_seg.nii.gz").write_text("")
    out = tmp_path / "eval"
    out.mkdir()
    (out / "summary.json").write_text(json.dumps({"cases": 5, "markers": {}}))
    (out / "tables.md").write_text("# Evaluation\n\n| table |\n\n\n")
    return calls, pred, out


def _expected(cases, marker, n_boot):
    shares = [gradcam_shares(CAMS[c][marker], SEG) for c in cases]
    return {r: mean_ci([s[r] for s in shares], n_boot) for r in SHARE_REGIONS}


def test_explain_cohort_averages_the_shares_of_the_predicted_cases(fake_explain, tmp_path):
    """Cases with a record and a segmentation are explained with the record's sequences; maps
    without energy are left out; markers without any map are absent; the shares are the cohort means with CIs."""
    calls, pred, out = fake_explain
    result = explain_cohort(tmp_path / "run", str(pred), tmp_path / "ref", str(out), device="cuda", n_boot=101)
    assert calls["predictor"] == ["cuda", tmp_path / "run"]
    assert calls["discover"] == [(tmp_path / "ref", True)]
    assert calls["records"] == [(pred / f"{c}.json", c) for c in "ABEFGH"]
    # each case predicted again with the sequences its record used
    assert calls["maps"] == [
        {"predictor": "device:cuda", "case": "A", "sequences": ["t1c", "t2f"]},
        {"predictor": "device:cuda", "case": "B", "sequences": None},
        {"predictor": "device:cuda", "case": "E", "sequences": ["t1n"]}] + [
        {"predictor": "device:cuda", "case": c, "sequences": None} for c in "FGH"]
    assert list(result) == ["idh", "tert"]
    assert list(result["idh"]) == list(SHARE_REGIONS)
    assert result["idh"] == _expected("ABEFGH", "idh", 101)
    assert result["idh"]["NETC"]["n"] == 6 and result["idh"]["NETC"]["lo"] < result["idh"]["NETC"]["hi"]
    assert result["tert"] == _expected("B", "tert", 101)
    assert result["tert"]["NETC"] == {"mean": 5 / 13, "lo": 5 / 13, "hi": 5 / 13, "n": 1}


def test_explain_cohort_writes_the_shares_into_the_evaluation(fake_explain, tmp_path):
    """``gradcam_share`` is added to ``summary.json`` and the share table appended to ``tables.md`` after one blank
    line; the default device is the CPU and the default bootstrap has 1000 resamples."""
    calls, pred, out = fake_explain
    result = explain_cohort(tmp_path / "run", pred, tmp_path / "ref", out)
    assert calls["predictor"][0] == "cpu"
    assert result["idh"] == _expected("ABEFGH", "idh", 1000)
    assert result["idh"] != _expected("ABEFGH", "idh", 1001)
    text = (out / "summary.json").read_text()
    assert json.loads(text) == {"cases": 5, "markers": {}, "gradcam_share": result}
    assert text == json.dumps({"cases": 5, "markers": {}, "gradcam_share": result}, indent=2)
    assert (out / "tables.md").read_text() == "# Evaluation\n\n| table |\n\n" + gradcam_share_table(result)
