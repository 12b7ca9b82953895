"""Fixtures of the report tests: a case predicted with ``--report`` and a cohort evaluated with ``--report``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from gliomics.cli.main import app
from gliomics.constants import MARKERS, PHANTOM_TRUTH_FILE
from gliomics.io import read_markers

#: Put into a NIfTI header of the input; it must never reach a report.
IDENTIFYING_TEXT = "Doe^Jane 1970-01-01"


@pytest.fixture(scope="session")
def identifying_text() -> str:
    """The fake patient name written into an input header by :func:`report_case`."""
    return IDENTIFYING_TEXT


@pytest.fixture(scope="session")
def report_case(tiny_phantom, tmp_path_factory) -> Path:
    """A copy of one phantom case whose T1ce header carries a (fake) patient name in its description field; its
    cohort's truth table comes along, so that it stays a phantom (whose markers are not flagged)."""
    src = sorted(p for p in tiny_phantom.iterdir() if p.is_dir())[0]
    dst = tmp_path_factory.mktemp("report_cases") / src.name
    shutil.copytree(src, dst)
    shutil.copy(tiny_phantom / PHANTOM_TRUTH_FILE, dst.parent / PHANTOM_TRUTH_FILE)
    path = dst / f"{src.name}-t1c.nii.gz"
    img = nib.load(path)
    header = img.header.copy()
    header["descrip"] = IDENTIFYING_TEXT.encode()
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), img.affine, header), path)
    return dst


@pytest.fixture(scope="session")
def predicted_with_report(report_case, tiny_run, tmp_path_factory) -> Path:
    """The output folder of ``gliomics predict --report`` on :func:`report_case`."""
    out = tmp_path_factory.mktemp("report_pred")
    # fp32 on every CPU, so that the maps' checks (CMAF weights summing to 1) do not depend on the machine
    result = CliRunner().invoke(app, ["predict", "-i", str(report_case), "-o", str(out), "-m", str(tiny_run),
                                      "--device", "cpu", "--no-progress", "--report", "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def evaluated_with_report(tiny_phantom, tmp_path_factory) -> dict[str, Path]:
    """``gliomics evaluate --report`` of fake predictions (the true segmentations, spread marker probabilities),
    with an ablation table and a ``gliomics compare``-style folder appended."""
    root = tmp_path_factory.mktemp("report_cohort")
    pred = root / "pred"
    pred.mkdir()
    table = read_markers(tiny_phantom / "markers.csv")
    rng = np.random.default_rng(0)
    for case in sorted(p for p in tiny_phantom.iterdir() if p.is_dir()):
        cid = case.name
        shutil.copy(case / f"{cid}-seg.nii.gz", pred / f"{cid}_seg.nii.gz")
        markers = {}
        for m in MARKERS:
            label = table[cid].label(m)
            p = float(np.clip((0.65 if label else 0.35) + rng.normal(0, 0.2), 0.01, 0.99))
            markers[m] = {"probability": round(p, 4), "threshold": 0.5, "call": int(p >= 0.5)}
        (pred / f"{cid}.json").write_text(json.dumps({"case_id": cid, "markers": markers}))
    ablation = root / "ablation_table.md"
    ablation.write_text("| variant | mean Dice |\n|---|---|\n| fusion=concat ABLATION-ROW | 0.71 |\n"
                        "| <b>raw html</b> | 0.70 |\n")
    compare_dir = root / "cmp"
    compare_dir.mkdir()
    (compare_dir / "comparison.md").write_text("# Comparison\n\n| model | mean AUC |\n|---|---|\n"
                                               "| COMPARE-ROW | 0.80 |\n")
    out = root / "eval"
    result = CliRunner().invoke(app, ["evaluate", "--pred", str(pred), "--ref", str(tiny_phantom), "--markers",
                                      str(tiny_phantom / "markers.csv"), "--by", "site", "-o", str(out), "--n-boot",
                                      "200", "--report", "--tables", str(ablation), "--tables", str(compare_dir)])
    assert result.exit_code == 0, result.output
    return {"eval": out, "pred": pred, "ablation": ablation, "compare": compare_dir}
