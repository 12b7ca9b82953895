"""`gliomics evaluate` on fake predictions: perfect segmentations and known marker scores."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from gliomics.cli.main import app
from gliomics.constants import MARKERS
from gliomics.io import read_markers

runner = CliRunner()


def _fake_predictions(cohort, out, *, perfect_markers: bool):
    out.mkdir()
    table = read_markers(cohort / "markers.csv")
    for case in sorted(p for p in cohort.iterdir() if p.is_dir()):
        cid = case.name
        shutil.copy(case / f"{cid}-seg.nii.gz", out / f"{cid}_seg.nii.gz")
        rec = table[cid]
        markers = {m: {"probability": (0.9 if rec.label(m) else 0.1) if perfect_markers else 0.5, "threshold": 0.5}
                   for m in MARKERS}
        (out / f"{cid}.json").write_text(json.dumps({"case_id": cid, "markers": markers}))


def test_evaluate_writes_all_files_and_scores_perfect_predictions(tiny_phantom, tmp_path):
    pred = tmp_path / "pred"
    _fake_predictions(tiny_phantom, pred, perfect_markers=True)
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", "--pred", str(pred), "--ref", str(tiny_phantom), "--markers",
                                 str(tiny_phantom / "markers.csv"), "--by", "site", "-o", str(out), "--n-boot", "200"])
    assert result.exit_code == 0, result.output
    for name in ("per_case.csv", "summary.json", "tables.md"):
        assert (out / name).is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cases"] == 8
    for region in ("ET", "NETC", "SNFH", "RC", "TC", "WT"):
        assert summary["segmentation"][region]["dice"]["mean"] == 1.0
        assert summary["segmentation"][region]["lesion_dice"]["mean"] == 1.0
        assert summary["segmentation"][region]["hd95"]["mean"] == 0.0
    both_classes = {m for m, s in summary["markers"].items() if s["n_pos"] and s["n_neg"]}
    assert both_classes, "the tiny cohort must have a marker with both classes"
    assert {m: summary["markers"][m]["auc"] for m in both_classes} == {m: 1.0 for m in both_classes}
    assert set(summary["by_site"]) == {"A", "B"}
    assert "bayes_optimal_auc" in summary
    tables = (out / "tables.md").read_text()
    assert "lesion-wise Dice" in tables and "Bayes-optimal AUC" in tables and "By site" in tables


@pytest.mark.parametrize("rule", ["both", "brats2024", "brats2025"])
def test_evaluate_scores_by_the_chosen_brats_rules(tiny_phantom, tmp_path, rule):
    pred = tmp_path / "pred"
    _fake_predictions(tiny_phantom, pred, perfect_markers=True)
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", "--pred", str(pred), "--ref", str(tiny_phantom), "--rule", rule,
                                 "-o", str(out), "--n-boot", "100", "--by", "site"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    header = (out / "per_case.csv").read_text().splitlines()[0].split(",")
    tables = (out / "tables.md").read_text()
    assert summary["rule"] == rule
    assert ("WT_lesion_dice" in header) == (rule != "brats2025")
    assert ("WT_brats2025_lesion_nsd" in header) == (rule != "brats2024")
    assert ("by the BraTS 2025 rule" in tables) == (rule != "brats2024")
    assert ("BraTS 2025 rule: 1.000" in result.output) == (rule != "brats2024")
    if rule != "brats2024":
        b25 = summary["segmentation_brats2025"]
        for region in ("NETC", "SNFH", "ET", "RC", "TC", "WT"):  # perfect predictions
            assert b25[region]["lesion_dice"]["mean"] == 1.0 and b25[region]["lesion_nsd"]["mean"] == 1.0
            assert b25[region]["lesion_f1"]["mean"] == 1.0
        assert b25["mean_lesion_dice"]["mean"] == 1.0
        assert all(s["mean_lesion_dice_brats2025"]["mean"] == 1.0 for s in summary["by_site"].values())
    else:
        assert "segmentation_brats2025" not in summary


def test_evaluate_refuses_an_unknown_rule(tiny_phantom, tmp_path):
    result = runner.invoke(app, ["evaluate", "--pred", str(tmp_path), "--ref", str(tiny_phantom), "--rule",
                                 "brats2023", "-o", str(tmp_path / "eval")])
    assert result.exit_code == 2
    assert "--rule brats2023" in result.output
    assert not (tmp_path / "eval").exists()


def test_evaluate_without_matching_predictions_is_a_clear_error(tiny_phantom, tmp_path):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["evaluate", "--pred", str(tmp_path / "empty"), "--ref", str(tiny_phantom),
                                 "-o", str(tmp_path / "eval")])
    assert result.exit_code == 2
    assert "no predictions match" in result.output
    assert not (tmp_path / "eval").exists()


def test_compare_two_runs_writes_table_with_p_values(tiny_phantom, tiny_run, tmp_path):
    out = tmp_path / "cmp"
    result = runner.invoke(app, ["compare", str(tiny_run), str(tiny_run / "last.pt"), "--data", str(tiny_phantom),
                                 "--markers", str(tiny_phantom / "markers.csv"), "-o", str(out), "--device", "cpu",
                                 "--n-boot", "100", "--no-progress"])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "comparison.json").read_text())
    assert len(data["models"]) == 2
    table = (out / "comparison.md").read_text()
    assert "Dice ET" in table and "DeLong p (IDH / 1p/19q / TERT)" in table and "ref." in table
    assert "AUC IDH" in table and "AUC TERT" in table
    # a phantom cohort: the Bayes-optimal AUC on the same cases is the last row
    assert set(data["bayes_optimal_auc"]) == {"idh", "codel_1p19q", "tert"}
    assert table.strip().splitlines()[-1].startswith("| Bayes-optimal")


def test_compare_needs_two_runs(tiny_phantom, tiny_run, tmp_path):
    result = runner.invoke(app, ["compare", str(tiny_run), "--data", str(tiny_phantom), "-o", str(tmp_path / "c")])
    assert result.exit_code == 2 and "at least two runs" in result.output


def test_comparison_table_gives_the_p_values_of_every_marker():
    from gliomics.evaluation.tables import comparison_table

    seg = {r: {"dice": {"mean": 0.5, "lo": 0.4, "hi": 0.6}} for r in ("ET", "NETC", "SNFH", "RC")}
    rows = [{"name": "a", "seg": seg, "auc": {}, "mean_lesion_dice": None},
            {"name": "b", "seg": seg, "auc": {}, "mean_lesion_dice": None, "delong_p_idh": 0.011,
             "delong_p_codel_1p19q": 0.022, "delong_p_tert": 0.033, "mcnemar_p_idh": 0.044,
             "mcnemar_p_codel_1p19q": 0.055, "mcnemar_p_tert": 0.066}]
    line = comparison_table(rows, "a").splitlines()[-1]
    assert "0.011 / 0.022 / 0.033" in line and "0.044 / 0.055 / 0.066" in line



def test_evaluate_gives_the_cohorts_mean_cmaf_weight_per_region(tiny_phantom, tiny_run, tmp_path):
    pred, out = tmp_path / "pred", tmp_path / "eval"
    assert runner.invoke(app, ["predict", "-m", str(tiny_run), "-i", str(tiny_phantom), "-o", str(pred),
                               "--device", "cpu", "--no-progress"]).exit_code == 0
    result = runner.invoke(app, ["evaluate", "-p", str(pred), "-r", str(tiny_phantom), "-o", str(out),
                                 "--n-boot", "100"])
    assert result.exit_code == 0, result.output
    cmaf = json.loads((out / "summary.json").read_text())["cmaf"]
    records = [json.loads(p.read_text()) for p in pred.glob("*.json") if "mean_cmaf_weight" in p.read_text()]
    region = next(iter(cmaf))
    per_case = [r["mean_cmaf_weight"][region]["t2f"] for r in records if region in (r["mean_cmaf_weight"] or {})]
    assert cmaf[region]["t2f"]["mean"] == pytest.approx(float(np.mean(per_case)))
    assert cmaf[region]["t2f"]["lo"] <= cmaf[region]["t2f"]["mean"] <= cmaf[region]["t2f"]["hi"]
    assert sum(w["mean"] for w in cmaf[region].values()) == pytest.approx(1.0, abs=0.01)
    assert "Mean CMAF weight by region" in (out / "tables.md").read_text()


def test_gradcam_shares_split_the_energy_by_region():
    from gliomics.evaluation.interpretability import gradcam_shares

    seg = np.zeros((4, 4, 4), dtype=np.uint8)
    seg[0] = 1  # NETC
    seg[1] = 3  # ET
    cam = np.zeros((4, 4, 4))
    cam[0], cam[1], cam[3] = 1.0, 3.0, 4.0
    cam[2, 0, 0] = np.nan  # outside the explained window
    shares = gradcam_shares(cam, seg)
    assert shares == pytest.approx({"NETC": 16 / 128, "SNFH": 0.0, "ET": 48 / 128, "RC": 0.0, "outside": 64 / 128})
    assert gradcam_shares(np.zeros((4, 4, 4)), seg) is None


def test_evaluate_explain_gives_the_cohorts_gradcam_shares(tiny_phantom, tiny_run, tmp_path):
    pred, out = tmp_path / "pred", tmp_path / "eval"
    assert runner.invoke(app, ["predict", "-m", str(tiny_run), "-i", str(tiny_phantom), "-o", str(pred),
                               "--device", "cpu", "--no-progress"]).exit_code == 0
    result = runner.invoke(app, ["evaluate", "-p", str(pred), "-r", str(tiny_phantom), "-o", str(out),
                                 "--n-boot", "100", "--explain", str(tiny_run), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    shares = json.loads((out / "summary.json").read_text())["gradcam_share"]
    assert set(shares) <= set(MARKERS) and shares
    for per_region in shares.values():
        assert sum(s["mean"] for s in per_region.values()) == pytest.approx(1.0, abs=1e-6)
    assert "Grad-CAM energy by predicted region" in (out / "tables.md").read_text()
    bad = runner.invoke(app, ["evaluate", "-p", str(pred), "-r", str(tiny_phantom), "-o", str(tmp_path / "e2"),
                              "--explain", str(tmp_path / "nope")])
    assert bad.exit_code == 2 and "nope" in bad.output and not (tmp_path / "e2").exists()
