"""`gliomics train`: the work budget in steps, the precision option and the timing line."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from gliomics.cli.main import app
from gliomics_testing import TINY_OVERRIDES

runner = CliRunner()


def _args(tiny_phantom, out, *extra):
    args = ["train", "--data", str(tiny_phantom), "--markers", str(tiny_phantom / "markers.csv"), "--out", str(out),
            "--device", "cpu", "--no-progress", *extra]
    for item in TINY_OVERRIDES:
        args += ["--set", item]
    return args


def test_steps_budget_and_timing_line(tiny_phantom, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, _args(tiny_phantom, out, "--steps", "2", "--precision", "fp32"))
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps_run"] == 2 and summary["epochs_run"] == 1
    assert "(2 steps)" in result.output
    assert "s per epoch" in result.output and "fp32" in result.output and summary["hardware"]["cpu"] in result.output


def test_unknown_precision_is_a_usage_error_before_anything_is_written(tiny_phantom, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, _args(tiny_phantom, out, "--epochs", "1", "--precision", "fp16"))
    assert result.exit_code == 2
    assert "fp16" in result.output
    assert not out.exists()


def test_working_spacing_flag_sets_the_networks_voxel_size(tiny_phantom, tmp_path):
    import yaml

    out = tmp_path / "run"
    result = runner.invoke(app, _args(tiny_phantom, out, "--steps", "1", "--precision", "fp32",
                                      "--working-spacing", "5"))
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((out / "config.yaml").read_text())["data"]["working_spacing"] == [5.0, 5.0, 5.0]
    bad = runner.invoke(app, _args(tiny_phantom, tmp_path / "bad", "--steps", "1", "--working-spacing", "3,0"))
    assert bad.exit_code == 2 and "--working-spacing" in bad.output
    assert not (tmp_path / "bad").exists()
