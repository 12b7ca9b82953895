"""`gliomics demo` end to end (the pipeline of `make demo`) with a tiny preset, a tiny cohort and a one-epoch budget."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from gliomics.cli.main import app
from gliomics.io.predictions import record_paths
from gliomics_testing import TINY_OVERRIDES

runner = CliRunner()


def _tiny_preset(path: Path) -> Path:
    """A YAML preset inheriting ``mgmtnet_cpu`` with the tiny overrides of the other tests."""
    config: dict = {"inherits_from": "mgmtnet_cpu"}
    for item in TINY_OVERRIDES:
        key, value = item.split("=", 1)
        node = config
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    path.write_text(yaml.safe_dump(config))
    return path


def test_demo_runs_every_step_and_skips_what_is_done(tmp_path):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--train-cases", "12", "--external-cases", "3", "--spacing", "4",
            "--epochs", "1", "--seed", "5", "--preset", str(_tiny_preset(tmp_path / "tiny.yaml")), "--no-progress",
            "--readout-cases", "24"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "demo_summary.json").read_text())
    assert summary["cases"] == 3 and summary["cases_without_prediction"] == 0
    assert set(summary["by_site"]) == {"G"}  # the external site is the one after the six training sites
    train_sites = {line.split(",")[1] for line in (out / "cohort_train" / "markers.csv").read_text().splitlines()[1:]}
    assert train_sites == set("ABCDEF")
    assert (out / "run" / "best.pt").is_file() and (out / "evaluation_external" / "per_case.csv").is_file()
    # the readout is fitted again on 24 cases of the training sites: the 12 of the training cohort and the 12 after
    readout_rows = [line.split(",") for line in (out / "cohort_readout" / "markers.csv").read_text().splitlines()[1:]]
    train_ids = {line.split(",")[0] for line in (out / "cohort_train" / "markers.csv").read_text().splitlines()[1:]}
    assert len(readout_rows) == 12 and not train_ids & {r[0] for r in readout_rows}
    assert {r[1] for r in readout_rows} == set("ABCDEF")
    assert sorted(int(r[0].split("-")[2]) for r in readout_rows) == list(range(13, 25))
    refit = json.loads((out / "run" / "readout_refit.json").read_text())
    assert refit["extra_cases"] == 12, refit
    assert len(list((out / "predictions_external").glob("*_seg.nii.gz"))) == 3
    assert "Dice" in result.output
    # a work budget: the epochs asked for, whatever the machine's speed, with the time it took recorded
    assert summary["demo_training"]["epochs_run"] == 1 and summary["demo_training"]["stop_reason"] == "epochs"
    assert summary["demo_training"]["seconds_per_epoch"] > 0
    assert summary["demo_prediction"]["seconds_per_case"] > 0
    # the calibration is refitted on the validation split predicted as the external cases are (flip TTA)
    calibration = json.loads((out / "run" / "fitted.json").read_text())["calibration"]
    assert calibration["source"] == "validation (flip TTA)" and calibration["review"]["passes"] == 2
    record = json.loads(record_paths(out / "predictions_external")[0].read_text())
    assert record["uncertainty"]["review_threshold"] == calibration["review"]["threshold"]
    assert "s per epoch" in result.output and summary["demo_training"]["hardware"]["cpu"] in result.output
    # a second call finds cohorts, run and predictions in place and only re-evaluates
    best = (out / "run" / "best.pt").stat().st_mtime_ns
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert (out / "run" / "best.pt").stat().st_mtime_ns == best
