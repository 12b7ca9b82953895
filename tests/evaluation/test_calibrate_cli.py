"""`gliomics calibrate`, then `predict` and `evaluate` with the run's calibration: raw and calibrated probabilities,
calls at three operating points, conformal sets, the review flag, coverage and operating-point metrics."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from gliomics.cli.main import app
from gliomics.evaluation.decisions import conformal_summary, operating_point_summary
from gliomics.inference.predictor import Predictor
from gliomics.io import read_markers
from gliomics.io.predictions import record_paths
from gliomics.runtime.checkpoint import load_checkpoint
from gliomics.runtime.fitted import read_fitted

runner = CliRunner()


@pytest.fixture(scope="module")
def calibrated_run(tiny_run, tmp_path_factory):
    run = tmp_path_factory.mktemp("calibrated") / "run"
    shutil.copytree(tiny_run, run)
    result = runner.invoke(app, ["calibrate", "-m", str(run), "--no-tta", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "fitted on validation" in result.output
    return run


def test_calibration_is_stored_with_the_run(calibrated_run):
    fitted = read_fitted(calibrated_run).calibration
    assert fitted["source"] == "validation" and fitted["alpha"] == 0.1
    assert json.loads((calibrated_run / "fitted.json").read_text())["calibration"] == fitted
    assert "calibration" not in load_checkpoint(calibrated_run / "best.pt")
    # the last checkpoint predicts with the same calibration: it is the run's, not a checkpoint's
    assert Predictor("cpu").load(calibrated_run, "last").fitted.calibration == fitted
    for f in fitted["markers"].values():
        assert f["temperature"] > 0 and set(f["thresholds"]) == {"youden", "rule_out", "rule_in"}


def test_predict_and_evaluate_use_it(calibrated_run, tiny_phantom, tmp_path):
    pred = tmp_path / "pred"
    result = runner.invoke(app, ["predict", "-i", str(tiny_phantom), "-o", str(pred), "-m", str(calibrated_run),
                                 "--device", "cpu", "--no-progress"])
    assert result.exit_code == 0, result.output
    record = json.loads(record_paths(pred)[0].read_text())
    assert record["calibration"]["source"] == "validation"
    for m in record["markers"]:
        entry = record["markers"][m]
        assert {"probability", "probability_raw", "calls", "prediction_set", "set_status"} <= set(entry)
        assert entry["calibrated"] and entry["call"] == entry["calls"]["youden"]
    assert isinstance(record["needs_review"], bool)
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", "--pred", str(pred), "--ref", str(tiny_phantom), "--markers",
                                 str(tiny_phantom / "markers.csv"), "-o", str(out), "--by", "site",
                                 "--n-boot", "100"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    idh = summary["markers"]["idh"]
    # coverage: the share of cases whose set holds their true class, recounted from the records
    table = read_markers(tiny_phantom / "markers.csv")
    records = [json.loads(p.read_text()) for p in record_paths(pred)]
    truth = [("mutant" if table[r["case_id"]].idh else "wildtype", r["markers"]["idh"]["prediction_set"])
             for r in records if table[r["case_id"]].idh is not None]
    assert idh["fitted_on"] == "validation"
    assert idh["conformal"]["coverage"] == pytest.approx(np.mean([t in s for t, s in truth]))
    assert set(idh["operating_points"]) == {"youden", "rule_out", "rule_in"}
    assert "calibration_raw" in idh
    assert all("conformal" in s["markers"]["idh"] for s in summary["by_site"].values())
    assert "Calibrated calls" in (out / "tables.md").read_text()


def _calibrated(run, source: str, temperature: float, rule_out: float, rule_in: float) -> Predictor:
    """A predictor whose calibration makes IDH's set undetermined and the other two markers' sets decided."""
    predictor = Predictor("cpu").load(run)
    base = {"temperature": temperature, "alpha": 0.1,
            "thresholds": {"youden": 0.5, "rule_out": rule_out, "rule_in": rule_in}}
    calibration = {"source": source, "alpha": 0.1,
                   "markers": {"idh": {**base, "conformal_q": [1.0, 1.0]},
                               "codel_1p19q": {**base, "conformal_q": [0.0, 1.0]},
                               "tert": {**base, "conformal_q": [0.0, 1.0]}}}
    predictor.fitted = predictor.fitted.model_copy(update={"calibration": calibration})
    return predictor


def test_an_undetermined_set_raises_the_review_flag(tiny_run):
    predictor = _calibrated(tiny_run, "test", 1.0, 0.3, 0.7)
    out = predictor.marker_record({"idh": 0.9, "codel_1p19q": 0.2, "tert": 0.2})
    assert out["markers"]["idh"]["set_status"] == "undetermined" and out["needs_review"]
    assert out["review_reasons"] == ["idh: the conformal prediction set holds both classes"]
    assert out["who_cns5"]["key"] == "indeterminate"
    predictor.fitted.calibration["markers"]["idh"]["conformal_q"] = [0.0, 1.0]
    assert not predictor.marker_record({"idh": 0.9, "codel_1p19q": 0.2, "tert": 0.2})["needs_review"]


def test_calibrate_refuses_training_cases(tiny_run, tiny_phantom, tmp_path):
    train = json.loads((tiny_run / "splits.json").read_text())["train"][0]
    pred = tmp_path / "pred"
    runner.invoke(app, ["predict", "-i", str(tiny_phantom / train), "-o", str(pred), "-m", str(tiny_run),
                        "--device", "cpu", "--no-progress"])
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    result = runner.invoke(app, ["calibrate", "-m", str(run), "--pred", str(pred), "--markers",
                                 str(tiny_phantom / "markers.csv")])
    assert result.exit_code == 2 and "training split" in result.output


def test_decision_summaries():
    y = np.array([1, 1, 1, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.4, 0.3, 0.2, 0.6])
    ops = operating_point_summary(y, p, {"youden": 0.5})
    assert ops["youden"]["sensitivity"] == pytest.approx(2 / 3) and ops["youden"]["ppv"] == pytest.approx(2 / 3)
    assert ops["youden"]["npv"] == pytest.approx(2 / 3) and len(ops["youden"]["npv_ci"]) == 2
    sets = ["mutant", "undetermined", "wildtype", "wildtype", None, "mutant"]
    conf = conformal_summary("idh", y.astype(float), sets, 0.1)
    # covered: mutant (y=1), undetermined, wildtype (y=0); not: wildtype for y=1; mutant for y=0
    assert conf["n"] == 5 and conf["coverage"] == pytest.approx(3 / 5) and conf["undetermined"] == pytest.approx(1 / 5)
    assert conf["target"] == pytest.approx(0.9)


def test_case_report_shows_calibrated_probability_set_and_calls(tiny_run):
    from gliomics.report.case_report import build_case_html

    predictor = _calibrated(tiny_run, "out-of-fold (5 folds)", 0.5, 0.2, 0.9)
    record = {"case_id": "C1", **predictor.marker_record({"idh": 0.7, "codel_1p19q": 0.3, "tert": 0.6})}
    html = build_case_html(record)
    assert "conformal set" in html and "wildtype or mutant" in html and "out-of-fold (5 folds)" in html
    assert "rule-out call" in html and f"{record['markers']['idh']['probability_raw']:.4f}" in html
    assert "Indeterminate" in html  # IDH's set holds both classes
    # a run without a fitted calibration
    predictor.fitted = predictor.fitted.model_copy(update={"calibration": {}})
    plain = build_case_html({"case_id": "C1", **predictor.marker_record({"idh": 0.7, "codel_1p19q": 0.3, "tert": 0.6})})
    assert "conformal set" not in plain and "0.7000" in plain


def test_cohort_calibration_figure_adds_the_raw_curve():
    from gliomics.report.cohort_figures import calibration_figure

    cal = {"prob_pred": [0.2, 0.5, 0.8], "prob_true": [0.1, 0.5, 0.9], "bin_counts": [5, 5, 5], "ece": 0.05,
           "slope": 1.1, "intercept": 0.0, "brier": 0.2}
    raw = {**cal, "prob_pred": [0.45, 0.5, 0.55], "slope": 6.0, "ece": 0.3}
    without = calibration_figure({"markers": {"idh": {"calibration": cal}}})
    with_raw = calibration_figure({"markers": {"idh": {"calibration": cal, "calibration_raw": raw}}})
    assert without and with_raw and without != with_raw


def test_no_calibration_restores_the_raw_probabilities(calibrated_run, tiny_phantom, tmp_path):
    case = sorted(p for p in tiny_phantom.iterdir() if p.is_dir())[0]
    for flag, out in (([], tmp_path / "cal"), (["--no-calibration"], tmp_path / "raw")):
        result = runner.invoke(app, ["predict", "-i", str(case), "-o", str(out), "-m", str(calibrated_run),
                                     "--device", "cpu", "--no-progress", *flag])
        assert result.exit_code == 0, result.output
    cal, raw = (json.loads((d / f"{case.name}.json").read_text()) for d in (tmp_path / "cal", tmp_path / "raw"))
    assert "calibration" not in raw and raw["needs_review"] is False
    for m, entry in raw["markers"].items():
        assert not entry["calibrated"] and entry["probability"] == cal["markers"][m]["probability_raw"]


def test_calibrate_with_tta_fits_the_review_threshold_and_evaluate_tests_it(tiny_run, tiny_phantom, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    result = runner.invoke(app, ["calibrate", "-m", str(run), "--tta", "--device", "cpu", "--review-quantile", "0.5"])
    assert result.exit_code == 0, result.output
    review = read_fitted(run).calibration["review"]
    val = json.loads((run / "splits.json").read_text())["val"]
    assert review["passes"] == 2 and review["n"] == len(val) and review["quantile"] == 0.5
    assert "review: needs review when" in result.output
    pred = tmp_path / "pred"
    result = runner.invoke(app, ["predict", "-i", str(tiny_phantom), "-o", str(pred), "-m", str(run), "--tta",
                                 "--device", "cpu", "--no-progress"])
    assert result.exit_code == 0, result.output
    records = [json.loads(p.read_text()) for p in record_paths(pred)]
    for r in records:
        u = r["uncertainty"]
        assert u["review_threshold"] == pytest.approx(review["threshold"])
        assert (u["score"] > u["review_threshold"]) == any(x.startswith("uncertainty") for x in r["review_reasons"])
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", "--pred", str(pred), "--ref", str(tiny_phantom), "--markers",
                                 str(tiny_phantom / "markers.csv"), "-o", str(out), "--n-boot", "100"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())["review"]
    assert summary["n"] == len(records) and summary["needs_review"] == sum(r["needs_review"] for r in records)
    assert summary["flagged_by_uncertainty"] == sum(r["uncertainty"]["score"] > review["threshold"] for r in records)
    assert "Review flags" in (out / "tables.md").read_text()


def test_calibrate_without_tta_has_no_review_threshold(calibrated_run):
    assert read_fitted(calibrated_run).calibration["review"] is None
