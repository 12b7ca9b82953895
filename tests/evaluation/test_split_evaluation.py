"""`gliomics evaluate --run RUN --split val`: a run's own held-out split, and `--against` side by side."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from gliomics.cli.main import app
from gliomics.evaluation.side_by_side import compare_evaluations, side_by_side_table

runner = CliRunner()


def test_the_validation_split_is_predicted_and_scored(tiny_run, tmp_path):
    out = tmp_path / "internal"
    result = runner.invoke(app, ["evaluate", "--run", str(tiny_run), "--split", "val", "-o", str(out),
                                 "--device", "cpu", "--n-boot", "100"])
    assert result.exit_code == 0, result.output
    splits = json.loads((tiny_run / "splits.json").read_text())
    predicted = {p.name[: -len(".json")] for p in (out / "predictions").glob("*.json")}
    assert predicted == set(splits["val"])  # the validation cases, and no training case
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cases"] == len(splits["val"]) and summary["cases_without_prediction"] == 0
    assert "bayes_optimal_auc" in summary  # the phantom truth of the run's cohort was found
    assert "the val split of" in (out / "tables.md").read_text()


@pytest.mark.parametrize("args, message", [
    (["--split", "train"], "--split train"),
    (["--split", "test"], "no test cases"),
])
def test_splits_that_cannot_be_evaluated_are_refused(tiny_run, tmp_path, args, message):
    out = tmp_path / "out"
    result = runner.invoke(app, ["evaluate", "--run", str(tiny_run), "-o", str(out), *args])
    assert result.exit_code == 2 and message in result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()


def test_run_and_prediction_folder_exclude_each_other(tiny_run, tiny_phantom, tmp_path):
    result = runner.invoke(app, ["evaluate", "--run", str(tiny_run), "--pred", str(tmp_path), "-o",
                                 str(tmp_path / "out")])
    assert result.exit_code == 2 and "leave out --pred" in result.output
    result = runner.invoke(app, ["evaluate", "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and "--run" in result.output and not (tmp_path / "out").exists()


def _evaluation(tiny_phantom, tmp_path, name, broken_case: str | None = None):
    """An evaluation folder of perfect predictions of the tiny cohort, one case given an empty map if asked."""
    import nibabel as nib
    import numpy as np

    pred = tmp_path / f"pred_{name}"
    pred.mkdir()
    for case in sorted(p for p in tiny_phantom.iterdir() if p.is_dir()):
        shutil.copy(case / f"{case.name}-seg.nii.gz", pred / f"{case.name}_seg.nii.gz")
        probability = 0.9 if int(case.name[-3]) % 2 else 0.1
        (pred / f"{case.name}.json").write_text(json.dumps(
            {"case_id": case.name, "markers": {"idh": {"probability": probability, "threshold": 0.5}}}))
    if broken_case:
        img = nib.load(pred / f"{broken_case}_seg.nii.gz")
        nib.save(nib.Nifti1Image(np.zeros(img.shape, np.uint8), img.affine), pred / f"{broken_case}_seg.nii.gz")
    out = tmp_path / name
    result = runner.invoke(app, ["evaluate", "--pred", str(pred), "--ref", str(tiny_phantom), "--markers",
                                 str(tiny_phantom / "markers.csv"), "-o", str(out), "--n-boot", "100"])
    assert result.exit_code == 0, result.output
    return out


def test_two_evaluations_side_by_side(tiny_phantom, tmp_path):
    first = sorted(p.name for p in tiny_phantom.iterdir() if p.is_dir())[0]
    perfect = _evaluation(tiny_phantom, tmp_path, "perfect")
    worse = _evaluation(tiny_phantom, tmp_path, "worse", broken_case=first)
    same = compare_evaluations(perfect, perfect, n_boot=100)
    assert same["dice"]["mean dice"]["diff"]["mean"] == 0.0
    result = compare_evaluations(perfect, worse, n_boot=100)
    diff = result["dice"]["mean dice"]["diff"]
    assert diff["mean"] > 0 and diff["lo"] <= diff["mean"] <= diff["hi"]
    assert "ET lesion dice" in side_by_side_table(result, "a", "b")

    out = tmp_path / "again"
    res = runner.invoke(app, ["evaluate", "--pred", str(tmp_path / "pred_perfect"), "--ref", str(tiny_phantom),
                              "-o", str(out), "--n-boot", "100", "--against", str(worse)])
    assert res.exit_code == 0, res.output
    text = (out / "side_by_side.md").read_text()
    assert "| again | worse |" in text and "mean lesion dice" in text
    bad = runner.invoke(app, ["evaluate", "--pred", str(tmp_path / "pred_perfect"), "--ref", str(tiny_phantom),
                              "-o", str(tmp_path / "never"), "--against", str(tmp_path)])
    assert bad.exit_code == 2 and "not an evaluation folder" in bad.output and not (tmp_path / "never").exists()
