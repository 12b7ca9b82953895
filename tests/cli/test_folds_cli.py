"""`gliomics train --folds K --fold all`: fold runs with one stored split, an out-of-fold calibration, and
`gliomics predict` on the folder averaging the folds' probabilities."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from gliomics.cli.main import app
from gliomics.inference.predictor import Predictor
from gliomics.io import discover_cases
from gliomics_testing import TINY_OVERRIDES

runner = CliRunner()


@pytest.fixture(scope="module")
def ensemble(tiny_phantom, tmp_path_factory):
    out = tmp_path_factory.mktemp("cv") / "cv"
    sets = [arg for o in TINY_OVERRIDES for arg in ("--set", o)]
    result = runner.invoke(app, ["train", "--data", str(tiny_phantom), "--markers", str(tiny_phantom / "markers.csv"),
                                 "-o", str(out), "--folds", "2", "--fold", "all", "--epochs", "1", "--device", "cpu",
                                 "--no-progress", *sets])
    assert result.exit_code == 0, result.output
    assert "out-of-fold (2 folds)" in result.output
    return out


def test_every_fold_trains_on_one_stored_split(ensemble, tiny_phantom):
    splits = [json.loads((ensemble / f"fold_{k}" / "splits.json").read_text()) for k in range(2)]
    assert splits[0]["folds"] == splits[1]["folds"]
    assert splits[0]["val"] == splits[0]["folds"][0] and splits[1]["val"] == splits[1]["folds"][1]
    assert set(splits[0]["val"]) == set(splits[1]["train"])
    oof = [r["case_id"] for k in range(2)
           for r in json.loads((ensemble / f"fold_{k}" / "validation_predictions.json").read_text())]
    assert sorted(oof) == sorted(c.name for c in tiny_phantom.iterdir() if c.is_dir())  # the whole cohort
    fitted = json.loads((ensemble / "fitted.json").read_text())["calibration"]
    assert fitted["source"] == "out-of-fold (2 folds)"
    assert all(f["n"] == len(oof) for f in fitted["markers"].values())


def test_predicting_with_the_folder_averages_the_folds(ensemble, tiny_phantom, tmp_path):
    case = discover_cases(tiny_phantom)[0]
    members = [Predictor("cpu").load(ensemble / f"fold_{k}") for k in range(2)]
    outs = [p.forward(case)[1] for p in members]
    joint = Predictor("cpu").load(ensemble)
    assert len(joint.members) == 2 and joint.fitted.calibration["source"] == "out-of-fold (2 folds)"
    res = joint.forward(case)[1]
    torch.testing.assert_close(res.probs, (outs[0].probs + outs[1].probs) / 2)
    single = [o.marker_probabilities for o in outs]
    for m, p in res.marker_probabilities.items():
        assert p == pytest.approx((single[0][m] + single[1][m]) / 2, abs=1e-5)
    assert outs[0].probs.ne(outs[1].probs).any()  # two different networks, so the mean is a real mean
    result = runner.invoke(app, ["predict", "-i", str(case.images["t1c"].parent), "-o", str(tmp_path / "p"),
                                 "-m", str(ensemble), "--device", "cpu", "--no-progress"])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "p" / f"{case.case_id}.json").read_text())
    assert record["model"]["ensemble_members"] == 2 and record["calibration"]["source"].startswith("out-of-fold")


def test_fold_options_are_checked(tiny_phantom, tmp_path):
    for args in (["--folds", "3"], ["--fold", "0"], ["--folds", "3", "--fold", "3"], ["--folds", "3", "--fold", "x"]):
        result = runner.invoke(app, ["train", "--data", str(tiny_phantom), "-o", str(tmp_path / "r"), *args])
        assert result.exit_code == 2 and "--fold" in result.output, args
