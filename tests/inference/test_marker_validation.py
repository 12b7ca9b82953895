"""Marker probabilities of a run not validated on real patients: flagged on real scans, WHO suggestion withheld."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from gliomics.cli.main import app
from gliomics.constants import MARKERS, MODEL_CARD_FILE
from gliomics.errors import CheckpointError
from gliomics.inference.marker_validation import (
    FLAG,
    WHO_WITHHELD,
    apply_marker_flag,
    ensemble_marker_validation,
    flagged,
    is_phantom_case,
    read_marker_validation,
)
from gliomics.inference.predictor import Predictor
from gliomics.io import discover_cases

runner = CliRunner()
UNVALIDATED = {"validated_on_real_patients": False, "evidence": None}
VALIDATED = {"validated_on_real_patients": True, "evidence": "AUC 0.9 on 200 patients of a held-out hospital"}


def _record():
    return {"markers": {m: {"probability": 0.8, "threshold": 0.5} for m in MARKERS},
            "who_cns5": {"category": "astrocytoma"}}


def _scan_copy(tiny_phantom, tmp_path):
    """A phantom case copied out of its cohort: to gliomics it is a scan like any other."""
    case = sorted(p for p in tiny_phantom.iterdir() if p.is_dir())[0]
    dest = tmp_path / "scans" / case.name
    shutil.copytree(case, dest)
    return dest


def test_phantom_cases_are_known_by_their_cohort_truth_table(tiny_phantom, tmp_path):
    cases = discover_cases(tiny_phantom)
    assert cases and all(is_phantom_case(c) for c in cases)
    copied = _scan_copy(tiny_phantom, tmp_path)
    assert not is_phantom_case(discover_cases(copied.parent)[0])


def test_an_unvalidated_run_flags_every_marker_of_a_scan_and_withholds_the_who_suggestion():
    record = _record()
    apply_marker_flag(record, UNVALIDATED, phantom=False)
    assert {m: v["flag"] for m, v in record["markers"].items()} == {m: FLAG for m in MARKERS}
    assert record["who_cns5"] is None and record["who_cns5_withheld"] == WHO_WITHHELD
    assert record["marker_validation"] == {**UNVALIDATED, "input": "scan", "flag": FLAG}
    assert flagged(record)


@pytest.mark.parametrize(("validation", "phantom"), [(UNVALIDATED, True), (VALIDATED, False)])
def test_phantoms_and_validated_runs_are_not_flagged(validation, phantom):
    record = _record()
    apply_marker_flag(record, validation, phantom=phantom)
    assert record["who_cns5"] == {"category": "astrocytoma"} and "who_cns5_withheld" not in record
    assert all("flag" not in v for v in record["markers"].values())
    assert record["marker_validation"]["flag"] is None and not flagged(record)
    assert record["marker_validation"]["input"] == ("phantom" if phantom else "scan")


def test_a_record_without_markers_carries_no_flag():
    record = {"markers": {}}
    apply_marker_flag(record, UNVALIDATED, phantom=False)
    assert record["marker_validation"]["flag"] is None and "who_cns5_withheld" not in record


def test_model_cards_are_read_strictly(tmp_path):
    assert read_marker_validation(tmp_path) == UNVALIDATED  # no card: not validated
    card = tmp_path / MODEL_CARD_FILE
    card.write_text(json.dumps({"markers": VALIDATED}))
    assert read_marker_validation(tmp_path) == VALIDATED
    card.write_text(json.dumps({"markers": {"validated_on_real_patients": True, "evidence": "  "}}))
    with pytest.raises(CheckpointError, match="evidence"):
        read_marker_validation(tmp_path)
    card.write_text("{not json")
    with pytest.raises(CheckpointError, match=MODEL_CARD_FILE):
        read_marker_validation(tmp_path)
    card.write_text(json.dumps({"markers": {"validated_on_real_patients": "yes", "evidence": "x"}}))
    assert read_marker_validation(tmp_path) == UNVALIDATED  # only a JSON true counts


def test_an_ensemble_is_validated_only_where_every_fold_is(tmp_path):
    folds = [tmp_path / "fold_0", tmp_path / "fold_1"]
    for f in folds:
        f.mkdir()
        (f / MODEL_CARD_FILE).write_text(json.dumps({"markers": VALIDATED}))
    assert ensemble_marker_validation(folds) == VALIDATED
    (folds[1] / MODEL_CARD_FILE).unlink()
    assert ensemble_marker_validation(folds) == UNVALIDATED
    assert ensemble_marker_validation([])["validated_on_real_patients"] is False


def test_training_writes_a_model_card_and_prediction_flags_scans_not_phantoms(tiny_run, tiny_phantom, tmp_path):
    card = json.loads((tiny_run / MODEL_CARD_FILE).read_text())
    assert card["markers"] == UNVALIDATED
    assert card["training_data"]["cases"] == 8 and card["training_data"]["phantom_cases"] == 8
    assert card["training_data"]["other_cases"] == 0 and card["training_data"]["other_case_ids"] == []
    assert card["training_data"]["started_from"] is None

    predictor = Predictor("cpu").load(tiny_run)
    phantom = predictor.predict(discover_cases(tiny_phantom)[0]).record
    assert not flagged(phantom) and phantom["who_cns5"] is not None
    scan = predictor.predict(discover_cases(_scan_copy(tiny_phantom, tmp_path).parent)[0]).record
    assert flagged(scan) and scan["who_cns5"] is None and scan["who_cns5_withheld"] == WHO_WITHHELD
    assert all(v["flag"] == FLAG for v in scan["markers"].values())


def test_predict_says_so_on_the_console_and_the_report_withholds_the_who_suggestion(tiny_run, tiny_phantom, tmp_path):
    scans = _scan_copy(tiny_phantom, tmp_path).parent
    out = tmp_path / "pred"
    result = runner.invoke(app, ["predict", "-m", str(tiny_run), "-i", str(scans), "-o", str(out), "--report",
                                 "--device", "cpu", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert f"marker probabilities of 1 of the 1 cases in {out} are flagged: {FLAG}" in result.output
    html = next(out.glob("*.html")).read_text(encoding="utf-8")
    assert 'id="marker-flag"' in html and FLAG in html
    assert 'id="who"' not in html
