"""The montage of predictions against references (``gliomics evaluate --montage``) and its place in the cohort
report."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image
from typer.testing import CliRunner

from gliomics.cli.main import app
from gliomics.evaluation.evaluate import evaluate_predictions
from gliomics.evaluation.montage import MONTAGE_FILE, write_montage
from gliomics.io import discover_cases

runner = CliRunner()


def _predictions(cases_root: Path, out: Path, *, emptied: str | None = None) -> Path:
    """Predictions equal to the references, except ``emptied`` (no tumour predicted)."""
    out.mkdir(parents=True, exist_ok=True)
    for case in discover_cases(cases_root):
        img = nib.load(case.seg)
        data = np.asarray(img.dataobj).astype(np.uint8)
        if case.case_id == emptied:
            data[:] = 0
        nib.save(nib.Nifti1Image(data, img.affine), out / f"{case.case_id}_seg.nii.gz")
    return out


def test_evaluate_montage_draws_each_case_and_the_report_embeds_it(tiny_case_dir, tmp_path):
    for k in range(3):
        tiny_case_dir(f"CASE-{k}", seed=k)
    root = tmp_path / "brats"
    pred = _predictions(root, tmp_path / "pred", emptied="CASE-2")
    result = runner.invoke(app, ["evaluate", "--pred", str(pred), "--ref", str(root), "--out", str(tmp_path / "ev"),
                                 "--montage", "--n-boot", "100", "--report"])
    assert result.exit_code == 0, result.output
    png = tmp_path / "ev" / MONTAGE_FILE
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > 300
    html = (tmp_path / "ev" / "report.html").read_text(encoding="utf-8")
    assert "Predictions against references" in html


def test_montage_leaves_out_cases_without_a_reference_tumour_or_prediction(tiny_case_dir, tmp_path):
    tiny_case_dir("WITH", seed=0)
    tiny_case_dir("NO-PRED", seed=1)
    root = tmp_path / "brats"
    pred = _predictions(root, tmp_path / "pred")
    (pred / "NO-PRED_seg.nii.gz").unlink()
    cases = discover_cases(root)
    rows = [{"case_id": "WITH", "WT_dice": 1.0}]
    one = write_montage(pred, cases, rows, tmp_path / "one.png", columns=1)
    with Image.open(one) as im:
        one_height = im.size[1]
    shutil.copy(pred / "WITH_seg.nii.gz", pred / "NO-PRED_seg.nii.gz")
    two = write_montage(pred, cases, rows, tmp_path / "two.png", columns=1)
    with Image.open(two) as im:
        assert im.size[1] > one_height  # a second row
    assert write_montage(tmp_path / "nothing", cases, rows, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()


def test_without_the_flag_there_is_no_montage(tiny_case_dir, tmp_path):
    tiny_case_dir("CASE-0")
    root = tmp_path / "brats"
    pred = _predictions(root, tmp_path / "pred")
    summary = evaluate_predictions(pred, root, out=tmp_path / "ev", n_boot=100)
    assert "montage" not in summary and not (tmp_path / "ev" / MONTAGE_FILE).exists()
    summary = evaluate_predictions(pred, root, out=tmp_path / "ev2", n_boot=100, montage=True)
    assert summary["montage"] == MONTAGE_FILE and (tmp_path / "ev2" / MONTAGE_FILE).is_file()
