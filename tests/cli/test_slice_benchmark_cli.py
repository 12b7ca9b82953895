"""`gliomics slices` and `gliomics slice-benchmark` end to end on the tiny phantom, and their bad-input errors."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gliomics.cli.main import app
from gliomics.slices.benchmark import OUTPUT_FILES

runner = CliRunner()
TINY = ["--preset", "cpu", "--size", "32", "--k", "2", "--epochs", "1", "--no-progress", "--device", "cpu",
        "--threads", "1"]


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """The benchmark sets torch's thread count; give the other tests of the session their own back."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("gliomics: error:")]


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_slice_benchmark_writes_every_output(tiny_phantom, tmp_path):
    out = tmp_path / "bench"
    result = runner.invoke(app, ["slice-benchmark", "--data", str(tiny_phantom), "--marker", "tert",
                                 "--backbones", "shufflenet", "-o", str(out), *TINY])
    assert result.exit_code == 0, result.output
    for name in OUTPUT_FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert not _leftovers(tmp_path)
    results = json.loads((out / "results.json").read_text())
    assert "torch" in results["versions"]
    row = results["table2"]["shufflenet"]
    assert row["n"] == len(results["split"]["test"]) >= 2
    assert {"accuracy", "recall", "f1", "precision", "auc", "auc_ci"} <= set(row)
    assert not set(results["split"]["train"]) & set(results["split"]["test"])
    assert sorted(results["split"]["fit"] + results["split"]["val"]) == sorted(results["split"]["train"])
    with (out / "table2_performance.csv").open() as fh:
        assert next(csv.DictReader(fh))["backbone"] == "shufflenet"
    summary = (out / "summary.md").read_text()
    assert "Table 1" in summary and "Table 2" in summary and "ShuffleNetV2" in summary


def test_slices_command_writes_slices_and_index(tiny_phantom, tmp_path):
    out = tmp_path / "slices"
    result = runner.invoke(app, ["slices", "--data", str(tiny_phantom), "--marker", "tert", "-o", str(out),
                                 "--size", "24", "--k", "2", "--format", "png", "--no-progress"])
    assert result.exit_code == 0, result.output
    with (out / "index.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 16 and {"patient", "slice", "label"} <= set(rows[0])
    assert all((out / r["slice"]).is_file() for r in rows)
    assert json.loads((out / "slices_summary.json").read_text())["patients"] == 8


@pytest.fixture
def cohort_copy(tiny_phantom, tmp_path) -> Path:
    copy = tmp_path / "cohort"
    shutil.copytree(tiny_phantom, copy)
    return copy


def _bad_input(args: list[str], tmp_path: Path, match: str) -> None:
    out = tmp_path / "bench"
    result = runner.invoke(app, ["slice-benchmark", *args, "--backbones", "shufflenet", "-o", str(out), *TINY])
    assert result.exit_code == 2, result.output
    errors = _error_lines(result.output)
    assert len(errors) == 1 and match in errors[0], result.output
    assert not out.exists() and not _leftovers(tmp_path)


def test_missing_t1c_is_a_one_line_error(cohort_copy, tmp_path):
    victim = next(p for p in sorted(cohort_copy.iterdir()) if p.is_dir())
    next(victim.glob("*-t1c.nii.gz")).unlink()
    _bad_input(["--data", str(cohort_copy)], tmp_path, "has no T1ce (t1c) image")


def test_unknown_marker_is_a_one_line_error(tiny_phantom, tmp_path):
    _bad_input(["--data", str(tiny_phantom), "--marker", "egfr"], tmp_path, "unknown marker 'egfr'")


def test_no_positive_patients_is_a_one_line_error(cohort_copy, tmp_path):
    path = cohort_copy / "markers.csv"
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        row["tert"] = "0"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    _bad_input(["--data", str(cohort_copy)], tmp_path, "needs both classes")


def test_non_empty_output_folder_is_refused(tiny_phantom, tmp_path):
    out = tmp_path / "bench"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    result = runner.invoke(app, ["slice-benchmark", "--data", str(tiny_phantom), "-o", str(out), *TINY])
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert (out / "keep.txt").read_text() == "x"


def test_weights_option_parsing():
    from gliomics.cli.slices import parse_weights
    from gliomics.errors import ConfigError

    assert parse_weights(["regnet=a.pth", "shufflenet = b.pt"], ["regnet", "shufflenet"]) == {
        "regnet": Path("a.pth"), "shufflenet": Path("b.pt")}
    assert parse_weights(["w.pt"], ["ghostnet"]) == {"ghostnet": Path("w.pt")}
    with pytest.raises(ConfigError, match="NAME=PATH"):
        parse_weights(["w.pt"], ["ghostnet", "regnet"])
    with pytest.raises(ConfigError, match="two files"):
        parse_weights(["regnet=a", "regnet=b"], ["regnet"])


def test_weights_for_a_backbone_not_trained_is_a_one_line_error(tiny_phantom, tmp_path):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"")
    _bad_input(["--data", str(tiny_phantom), "--weights", f"regnet={weights}"], tmp_path, "not among the backbones")
