"""`gliomics predict --native --dicom-seg` end to end: DICOM study → import → preprocess → predict → DICOM-SEG."""

from __future__ import annotations

import highdicom as hd
import nibabel as nib
import pydicom
from typer.testing import CliRunner

from dicom_testing import PATIENT_ID, PATIENT_NAME, write_study
from gliomics.cli.main import app

runner = CliRunner()


def _run(tiny_run, tmp_path, *extra: str) -> dict[str, str]:
    uids = write_study(tmp_path / "dicom" / "study01")
    steps = [
        ["import", "--format", "dicom", "-i", str(tmp_path / "dicom" / "study01"), "-o", str(tmp_path / "nifti")],
        ["preprocess", "-i", str(tmp_path / "nifti"), "-o", str(tmp_path / "pre"), "--skip-registration", "--no-n4",
         "--grid", "24,28,20", "--no-progress"],
        ["predict", "-i", str(tmp_path / "pre"), "-o", str(tmp_path / "pred"), "-m", str(tiny_run), "--device",
         "cpu", "--no-progress", "--native", "--dicom-seg", *extra],
    ]
    for args in steps:
        result = runner.invoke(app, args)
        assert result.exit_code == 0, f"{args[0]}: {result.output}"
    return uids


def _no_patient_identity(tmp_path, suffixes: tuple[str, ...]) -> list:
    outputs = [p for root in ("nifti", "pre", "pred") for p in (tmp_path / root).rglob("*") if p.suffix in suffixes]
    for path in outputs:
        text = path.read_text()
        for secret in (PATIENT_NAME, PATIENT_ID, "Testpatient", "19700101"):
            assert secret not in text, f"{secret} in {path}"
    return outputs


def test_dicom_study_round_trip_with_native_and_dicom_seg_outputs(tiny_run, tmp_path):
    uids = _run(tiny_run, tmp_path)
    pred = tmp_path / "pred"
    native = nib.load(pred / "study01_seg_native.nii.gz")
    assert native.shape == nib.load(tmp_path / "nifti" / "study01" / "study01-t1c.nii.gz").shape
    seg = hd.seg.segread(pred / "study01_seg.dcm")
    assert {series for _, series, _ in seg.get_source_image_uids()} == {uids["AX T1 POST GD"]}
    assert pydicom.dcmread(pred / "study01_seg.dcm").ReferencedSeriesSequence[0].SeriesInstanceUID == \
        uids["AX T1 POST GD"]
    outputs = _no_patient_identity(tmp_path, (".json",))
    assert {p.name for p in outputs} >= {"study01.json", "dicom_sources.json", "geometry.json"}


def test_html_report_of_a_dicom_case_holds_no_patient_identity(tiny_run, tmp_path):
    _run(tiny_run, tmp_path, "--report")
    outputs = _no_patient_identity(tmp_path, (".json", ".html"))
    assert any(p.name == "study01.html" for p in outputs)
