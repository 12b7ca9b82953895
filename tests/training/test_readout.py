"""The trainer fits the marker readout of ``train.marker_readout`` on the training split and stores it with the
best checkpoint; predictions then use it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gliomics.constants import MARKERS
from gliomics.data.splits import run_cohort
from gliomics.inference.marker_readout import MarkerReadout
from gliomics.inference.predictor import Predictor
from gliomics.inference.tumour_features import tumour_features
from gliomics.io import voxel_spacing
from gliomics.runtime.fitted import read_fitted
from gliomics.training.trainer import run_training
from gliomics_testing import tiny_config


@pytest.fixture(scope="module")
def readout_run(tmp_path_factory):
    from gliomics.phantom import PhantomSettings, generate_cohort

    cohort = tmp_path_factory.mktemp("phantom24")
    generate_cohort(cohort, PhantomSettings(cases=32, spacing=4.0, sites=2, seed=5), progress=False)
    out = tmp_path_factory.mktemp("readout_run")
    summary = run_training(tiny_config("train.marker_readout=true"), data=cohort, markers=cohort / "markers.csv",
                           out=out, steps=4, device="cpu", progress=False)
    return out, summary


def test_readout_is_fitted_on_the_training_split_and_stored_with_the_best_checkpoint(readout_run):
    run, summary = readout_run
    readout = MarkerReadout.from_dict(read_fitted(run).marker_readout)
    cohort, splits, _ = run_cohort(run)
    n_train = {m: sum(not np.isnan(cohort[c].marker_vector()[k]) for c in splits["train"])
               for k, m in enumerate(MARKERS)}
    assert readout.coef and all(readout.info["n_cases"][m] == n_train[m] for m in readout.coef)
    assert summary["marker_readout"]["n_cases"] == readout.info["n_cases"]
    on_disk = json.loads((run / "train_summary.json").read_text())
    assert on_disk["marker_readout"]["cv_auc"] == pytest.approx(readout.info["cv_auc"])
    # the held-out predictions and thresholds are the readout's
    val_rows = json.loads((run / "validation_predictions.json").read_text())
    assert sorted(r["case_id"] for r in val_rows) == sorted(splits["val"])
    assert read_fitted(run).thresholds == on_disk["thresholds"]

    # a prediction's markers are the readout's on the features of its own segmentation
    case = cohort[splits["val"][0]].case
    predictor = Predictor("cpu").load(run)
    data, res = predictor.forward(case)
    image = data["image"]
    features = tumour_features(image.as_tensor().numpy(), res.passes["labels"][0].numpy(),
                               float(np.prod(voxel_spacing(image.affine))))
    for m, logit in readout.logits(features).items():
        assert float(res.markers[m].flatten()[0]) == pytest.approx(logit, abs=1e-5)
    row = next(r for r in val_rows if r["case_id"] == case.case_id)
    for m in readout.coef:
        assert row["prob"][m] == pytest.approx(1.0 / (1.0 + np.exp(-readout.logits(features)[m])), abs=1e-5)


def test_readout_command_refits_on_extra_cases_the_network_never_saw(readout_run, tmp_path):
    import shutil

    from typer.testing import CliRunner

    from gliomics.cli.main import app
    from gliomics.phantom import PhantomSettings, generate_cohort

    run = tmp_path / "run"
    shutil.copytree(readout_run[0], run)
    before = MarkerReadout.from_dict(read_fitted(run).marker_readout)
    extra = tmp_path / "extra"  # other site letters: other case ids
    generate_cohort(extra, PhantomSettings(cases=16, spacing=4.0, sites=2, seed=9, site_start=4), progress=False)
    result = CliRunner().invoke(app, ["readout", "-m", str(run), "-d", str(extra), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    after = MarkerReadout.from_dict(read_fitted(run).marker_readout)
    cohort, splits, datas = run_cohort(run)
    for k, m in enumerate(MARKERS):
        if m in after.coef:
            n_train = sum(not np.isnan(cohort[c].marker_vector()[k]) for c in splits["train"])
            assert after.info["n_cases"][m] == n_train + 16
            assert m not in before.info["n_cases"] or before.info["n_cases"][m] == n_train
    assert after.coef
    assert "training + 16 extra cases" in result.output

    # the training cohort itself adds nothing: one error line, and the readout is left as it was
    again = CliRunner().invoke(app, ["readout", "-m", str(run), "-d", str(datas[0]), "--device", "cpu"])
    assert again.exit_code == 2 and "no case with a known marker that the run's own cohort lacks" in again.output
    mismatched = CliRunner().invoke(app, ["readout", "-m", str(run), "-d", str(extra), "-k", "a.csv", "-k", "b.csv"])
    assert mismatched.exit_code == 2 and "one --markers per --data" in mismatched.output
