"""The marker readout: fitting, the markers it leaves to the heads, storage in a checkpoint and use by the
Predictor."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from gliomics.cli.main import app
from gliomics.constants import MARKERS
from gliomics.errors import CheckpointError
from gliomics.inference.marker_readout import MarkerReadout, fit_marker_readout
from gliomics.inference.predictor import Predictor
from gliomics.inference.tumour_features import FEATURE_NAMES
from gliomics.io import discover_cases
from gliomics.runtime.fitted import update_fitted

runner = CliRunner()


def _data(n=80, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURE_NAMES)))
    y = np.stack([(x[:, 0] + 0.3 * rng.normal(size=n) > 0), (x[:, 1] > 0.8), (x[:, 2] - x[:, 3] > 0)], 1)
    return x, y.astype(float)


def test_fitted_readout_ranks_held_out_cases_by_their_signal():
    x, y = _data()
    readout = fit_marker_readout(x, y)
    xt, yt = _data(200, seed=1)
    for k, m in enumerate(MARKERS):
        scores = [readout.logits(row)[m] for row in xt]
        assert roc_auc_score(yt[:, k], scores) > 0.8
        assert readout.info["n_cases"][m] == 80 and 0.5 < readout.info["cv_auc"][m] <= 1.0


def test_unknown_labels_are_left_out_and_a_rare_marker_gets_no_readout():
    x, y = _data()
    y[:10, 0] = np.nan
    y[:, 1] = 0.0
    y[:3, 1] = 1.0  # three positives: too few
    readout = fit_marker_readout(x, y)
    assert readout.info["n_cases"]["idh"] == 70
    assert "codel_1p19q" not in readout.coef and "codel_1p19q" not in readout.logits(x[0])
    y[:, 0], y[:, 2] = 0.0, 1.0
    assert fit_marker_readout(x, y) is None


def test_round_trip_and_refusal_of_other_features():
    readout = fit_marker_readout(*_data())
    again = MarkerReadout.from_dict(json.loads(json.dumps(readout.to_dict())))
    x, _ = _data(5, seed=2)
    assert again.logits(x[0]) == pytest.approx(readout.logits(x[0]))
    stored = readout.to_dict()
    stored["features"] = stored["features"][:-1] + ["something_else"]
    with pytest.raises(ValueError, match="other tumour features"):
        MarkerReadout.from_dict(stored)


def _run_with_readout(tiny_run, tmp_path, readout: dict):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    update_fitted(run, marker_readout=readout)
    return run


def test_predictor_takes_markers_from_the_readout_unless_told_not_to(tiny_phantom, tiny_run, tmp_path):
    x, y = _data()
    readout = fit_marker_readout(x, y)
    # a readout that says the same whatever the case: only its intercepts
    stored = readout.to_dict()
    stored["coef"] = {m: [0.0] * len(FEATURE_NAMES) for m in stored["coef"]}
    stored["intercept"] = {"idh": 2.0, "codel_1p19q": -2.0, "tert": 0.0}
    run = _run_with_readout(tiny_run, tmp_path, stored)
    case = discover_cases(tiny_phantom)[0]

    p = Predictor("cpu", tta=True).load(run)
    p.fitted = p.fitted.model_copy(update={"calibration": {}})
    record = p.predict_case(case, tmp_path / "readout").record
    assert record["markers_from"] == "readout"
    raw = {m: record["markers"][m]["probability_raw"] for m in MARKERS}
    assert raw == pytest.approx({"idh": 1 / (1 + np.exp(-2.0)), "codel_1p19q": 1 / (1 + np.exp(2.0)), "tert": 0.5},
                          abs=1e-3)

    heads = Predictor("cpu", tta=True, marker_readout=False).load(run)
    record = heads.predict_case(case, tmp_path / "heads").record
    assert record["markers_from"] == "network heads"
    assert record["markers"]["idh"]["probability_raw"] != pytest.approx(raw["idh"])

    result = runner.invoke(app, ["predict", "-m", str(run), "-i", str(tiny_phantom), "-o", str(tmp_path / "cli"),
                                 "--no-marker-readout", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "cli" / f"{case.case_id}.json").read_text())["markers_from"] == "network heads"


def test_a_readout_of_other_features_is_one_clear_line(tiny_phantom, tiny_run, tmp_path):
    stored = fit_marker_readout(*_data()).to_dict()
    stored["features"] = ["volume"] * len(stored["features"])
    run = _run_with_readout(tiny_run, tmp_path, stored)
    with pytest.raises(CheckpointError, match="best.pt: its marker readout is malformed .*other tumour features"):
        Predictor("cpu").load(run)
    result = runner.invoke(app, ["predict", "-m", str(run), "-i", str(tiny_phantom), "-o", str(tmp_path / "out"),
                                 "--no-progress"])
    assert result.exit_code == 2 and "other tumour features" in result.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
