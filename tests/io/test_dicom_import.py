"""DICOM in: series selection by description, conversion to NIfTI, dicom_sources.json without patient data."""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from dicom_testing import PATIENT_ID, PATIENT_NAME, PIXEL_SPACING, SHAPE, SLICE_STEP, phantom_volume, write_study
from gliomics.cli.main import app
from gliomics.io.dicom import compile_patterns, match_sequence

runner = CliRunner()


@pytest.mark.parametrize(("description", "expected"), [
    ("AX T1 POST GD", "t1c"), ("T1_MPRAGE_GD", "t1c"), ("sag t1 +C", "t1c"), ("T1 SE contrast", "t1c"),
    ("AX T1 PRE", "t1n"), ("T1 MPRAGE", "t1n"), ("T1 pre-contrast", "t1n"), ("AX T1 FLAIR", "t1n"),
    ("Ax T2 FLAIR", "t2f"), ("FLAIR 3D", "t2f"), ("AX T2 FSE", "t2w"), ("t2_tse_tra", "t2w"),
    ("T2* GRE", None), ("Localizer", None), ("DWI b1000", None),
])
def test_default_patterns_assign_usual_descriptions(description, expected):
    assert match_sequence(description, compile_patterns()) == expected


def test_import_converts_each_series_in_scanner_geometry(tmp_path):
    uids = write_study(tmp_path / "study01", reverse_files=True)
    out = tmp_path / "out"
    result = runner.invoke(app, ["import", "--format", "dicom", "-i", str(tmp_path / "study01"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    case = out / "study01"
    assert sorted(p.name for p in case.iterdir()) == [
        "dicom_sources.json", "study01-t1c.nii.gz", "study01-t1n.nii.gz", "study01-t2f.nii.gz", "study01-t2w.nii.gz"]
    t1c = nib.load(case / "study01-t1c.nii.gz")
    assert t1c.shape == (SHAPE[2], SHAPE[1], SHAPE[0])  # columns, rows, slices
    np.testing.assert_allclose(t1c.header.get_zooms(), (PIXEL_SPACING[1], PIXEL_SPACING[0], SLICE_STEP))
    # DICOM LPS origin (-10, -12, 30) is RAS (10, 12, 30); voxel (i, j, k) = column, row, slice.
    np.testing.assert_allclose(t1c.affine[:3, 3], (10.0, 12.0, 30.0))
    np.testing.assert_array_equal(np.asarray(t1c.dataobj)[:, :, 0].T, phantom_volume(0)[0])
    sources = json.loads((case / "dicom_sources.json").read_text())
    assert sources["sequences"]["t1c"]["series_instance_uid"] == uids["AX T1 POST GD"]
    assert sources["sequences"]["t2f"]["series_description"] == "Ax T2 FLAIR"
    assert len(sources["sequences"]["t1n"]["files"]) == SHAPE[0]
    with (out / "manifest.csv").open() as fh:
        row = next(csv.DictReader(fh))
    assert row["case_id"] == "study01" and row["t1c"] == "study01/study01-t1c.nii.gz"


def test_json_outputs_hold_no_patient_identity(tmp_path):
    write_study(tmp_path / "study01")
    out = tmp_path / "out"
    assert runner.invoke(app, ["import", "--format", "dicom", "-i", str(tmp_path / "study01"), "-o",
                               str(out)]).exit_code == 0
    for path in out.rglob("*.json"):
        text = path.read_text()
        for secret in (PATIENT_NAME, PATIENT_ID, "Testpatient", "19700101"):
            assert secret not in text, f"{secret} found in {path}"


def test_several_studies_become_several_cases_and_match_overrides_apply(tmp_path):
    write_study(tmp_path / "all" / "A", {"mprage post": 0, "tirm dark fluid": 1})
    write_study(tmp_path / "all" / "B", {"mprage post": 2, "tirm dark fluid": 3})
    out = tmp_path / "out"
    result = runner.invoke(app, ["import", "--format", "dicom", "-i", str(tmp_path / "all"), "-o", str(out),
                                 "--match", "t2f=dark fluid"])
    assert result.exit_code == 0, result.output
    for cid in ("A", "B"):
        assert sorted(p.name for p in (out / cid).glob("*.nii.gz")) == [f"{cid}-t1c.nii.gz", f"{cid}-t2f.nii.gz"]


def test_no_matching_series_lists_the_descriptions_and_exits_2(tmp_path):
    write_study(tmp_path / "s", {"Localizer": 0, "DWI b1000": 1})
    result = runner.invoke(app, ["import", "--format", "dicom", "-i", str(tmp_path / "s"), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "'Localizer'" in result.output and "'DWI b1000'" in result.output and "--match" in result.output
    assert not (tmp_path / "o").exists()


def test_bad_match_pattern_is_a_clear_error(tmp_path):
    write_study(tmp_path / "s")
    result = runner.invoke(app, ["import", "--format", "dicom", "-i", str(tmp_path / "s"), "-o", str(tmp_path / "o"),
                                 "--match", "t9=x"])
    assert result.exit_code == 2 and "unknown sequence 't9'" in result.output
