"""`gliomics robustness`: every condition is predicted and scored, intact equals `gliomics evaluate`, drops with
CIs, CMAF weights per region, and bad input leaves nothing behind."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from gliomics.cli.main import app
from gliomics.evaluation.robustness import INTACT, condition_names

runner = CliRunner()


def test_conditions_are_every_subset_and_each_sequence_degraded():
    names = condition_names()
    assert names[0] == INTACT and len(names) == 1 + 14 + 4 * 5 and len(set(names)) == len(names)
    assert "only T1ce + FLAIR" in names and "only T2" in names and "FLAIR Rician noise 15%" in names


def test_robustness_writes_each_condition_and_intact_matches_evaluate(tiny_phantom, tiny_run, tmp_path):
    out = tmp_path / "robust"
    result = runner.invoke(app, ["robustness", "-m", str(tiny_run), "-d", str(tiny_phantom), "-k",
                                 str(tiny_phantom / "markers.csv"), "-o", str(out), "--conditions",
                                 "only T1ce + FLAIR,FLAIR bias field", "--n-boot", "100", "--device", "cpu",
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "robustness.json").read_text())
    assert [c["condition"] for c in data["conditions"]] == [INTACT, "only T1ce + FLAIR", "FLAIR bias field"]
    assert (out / "robustness.md").is_file() and (out / "robustness_dice_drop.png").stat().st_size > 0

    evaluated = tmp_path / "eval"
    assert runner.invoke(app, ["predict", "-m", str(tiny_run), "-i", str(tiny_phantom), "-o", str(tmp_path / "pred"),
                               "--device", "cpu", "--no-progress"]).exit_code == 0
    assert runner.invoke(app, ["evaluate", "-p", str(tmp_path / "pred"), "-r", str(tiny_phantom), "-k",
                               str(tiny_phantom / "markers.csv"), "-o", str(evaluated), "--n-boot", "100"]
                         ).exit_code == 0
    summary = json.loads((evaluated / "summary.json").read_text())
    intact, subset, degraded = data["conditions"]
    for region, stat in intact["dice"].items():
        assert stat["mean"] == summary["segmentation"][region]["dice"]["mean"]
    for m, auc in intact["auc"].items():
        assert auc == summary["markers"][m]["auc"] or (auc != auc and summary["markers"][m]["auc"] != auc)
    assert "drop" not in intact and {"mean", "ET", "SNFH"} <= set(subset["drop"])
    # without T1 and T2 their CMAF weights are absent; what is left sums to one
    for weights in subset["cmaf"].values():
        assert set(weights) == {"t1c", "t2f"} and abs(sum(weights.values()) - 1.0) < 1e-2
    assert "FLAIR bias field" in (out / "robustness.md").read_text()
    assert degraded["drop"]["mean"]["lo"] <= degraded["drop"]["mean"]["mean"] <= degraded["drop"]["mean"]["hi"]


def test_unknown_condition_and_missing_run_are_one_line_and_leave_nothing(tiny_phantom, tiny_run, tmp_path):
    out = tmp_path / "robust"
    result = runner.invoke(app, ["robustness", "-m", str(tiny_run), "-d", str(tiny_phantom), "-o", str(out),
                                 "--conditions", "FLAIR motion", "--device", "cpu", "--no-progress"])
    assert result.exit_code == 2 and "unknown condition 'FLAIR motion'" in result.output
    result = runner.invoke(app, ["robustness", "-m", str(tmp_path / "nope"), "-d", str(tiny_phantom), "-o", str(out),
                                 "--device", "cpu", "--no-progress"])
    assert result.exit_code == 2 and "nope" in result.output
    assert not out.exists()
