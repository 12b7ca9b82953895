"""The whole pipeline on a tiny raw case: atlas registration, co-registration, outputs, and the way back to native."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from gliomics.io import discover_cases
from gliomics.io.sitk_images import image_from_array, read_image
from gliomics.preprocess import PreprocessSettings, RegistrationSettings, preprocess_case, seg_to_native
from gliomics.preprocess.geometry import Grid, resample
from gliomics.preprocess.registration import affine_from_matrix, affine_matrix, transform_error_mm
from preprocess_testing import (
    ATLAS_AFFINE,
    ATLAS_SHAPE,
    ATLAS_SPACING,
    QUIRK_SHAPE,
    QUIRK_SPACING,
    write_quirky_case,
    write_raw_case,
)

FAST = RegistrationSettings(working_spacing=0.0, sampling=0.5, shrink=(2, 1), smoothing=(1.0, 0.0), iterations=100)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def _settings(raw_case, **kwargs) -> PreprocessSettings:
    kwargs.setdefault("skull_strip", "atlas")
    return PreprocessSettings(atlas=raw_case.atlas, mask=raw_case.atlas_mask, shape=ATLAS_SHAPE,
                              spacing=ATLAS_SPACING, registration=FAST, **kwargs)


@pytest.fixture
def raw_case(tmp_path):
    """One raw case (T1ce, FLAIR, seg) and the tiny atlas it was made from."""
    return write_raw_case(tmp_path)


@pytest.fixture
def preprocessed(raw_case, tmp_path):
    case = discover_cases(raw_case.folder.parent, allow_missing=True)[0]
    out = tmp_path / "out" / case.case_id
    # repeatable: preprocess_case fixes ITK's thread counts (registrations on one thread) and the sampling seed
    record = preprocess_case(case, out, _settings(raw_case, n4_shrink=2))
    return case, out, record


def test_atlas_registration_and_co_registration_find_the_known_transforms(raw_case, preprocessed):
    case, out, record = preprocessed
    assert record["reference"] == "t1c"
    brain = np.argwhere(nib.load(raw_case.atlas_mask).get_fdata() > 0)[::25]
    points = [tuple(float(v) for v in (ATLAS_AFFINE[:3, :3] @ p + ATLAS_AFFINE[:3, 3]) * (-1, -1, 1)) for p in brain]
    to_t1c = sitk.ReadTransform(str(out / "preprocess" / "t1c.tfm"))
    assert transform_error_mm(to_t1c, raw_case.to_subject, points) < ATLAS_SPACING
    to_t2f = sitk.ReadTransform(str(out / "preprocess" / "t2f.tfm"))
    flair = affine_from_matrix(affine_matrix(to_t2f) @ np.linalg.inv(affine_matrix(to_t1c)))
    subject_points = [raw_case.to_subject.TransformPoint(p) for p in points]
    assert transform_error_mm(flair, raw_case.to_flair, subject_points) < ATLAS_SPACING


def test_outputs_lie_on_the_output_grid_and_the_lesion_lands_on_the_atlas(raw_case, preprocessed):
    case, out, record = preprocessed
    names = sorted(p.name for p in out.iterdir())
    assert names == ["RAW-001-seg.nii.gz", "RAW-001-t1c.nii.gz", "RAW-001-t2f.nii.gz", "preprocess"]
    assert sorted(p.name for p in (out / "preprocess").iterdir()) == [
        "brain_mask.nii.gz", "geometry.json", "qc.json", "qc.png", "t1c.tfm", "t2f.tfm"]
    t1c = nib.load(out / "RAW-001-t1c.nii.gz")
    assert t1c.shape == ATLAS_SHAPE and nib.aff2axcodes(t1c.affine) == ("R", "A", "S")
    assert np.allclose(np.abs(np.diag(t1c.affine))[:3], ATLAS_SPACING)
    # The case's lesion, carried to the atlas by the registration, matches the lesion drawn on the atlas.
    grid = Grid.from_dict(record["output_grid"])
    expected = resample(image_from_array(raw_case.atlas_lesion, ATLAS_AFFINE), grid, nearest=True)
    seg = read_image(out / "RAW-001-seg.nii.gz", sitk.sitkUInt8)
    assert set(np.unique(sitk.GetArrayViewFromImage(seg))) == {0, 3}
    assert _dice(sitk.GetArrayFromImage(seg), sitk.GetArrayFromImage(expected)) > 0.85
    # Skull-stripped: nothing outside the brain mask.
    mask = nib.load(out / "preprocess" / "brain_mask.nii.gz").get_fdata() > 0
    assert np.all(t1c.get_fdata()[~mask] == 0)
    geometry = json.loads((out / "preprocess" / "geometry.json").read_text())
    assert geometry["native"]["t1c"]["grid"]["size"] == [46, 50, 34]
    assert geometry["steps"]["atlas"]["name"] == "atlas.nii.gz"
    assert set(geometry["timings_s"]) >= {"n4", "coregistration", "atlas_registration"}


def test_inverse_mapping_round_trips_a_label_map_to_native_space(raw_case, preprocessed, tmp_path):
    case, out, _ = preprocessed
    native = tmp_path / "native_seg.nii.gz"
    seg_to_native(out / "RAW-001-seg.nii.gz", out, native)
    back, original = nib.load(native), nib.load(raw_case.seg)
    assert back.shape == original.shape
    np.testing.assert_allclose(back.affine, original.affine, atol=1e-4)
    assert _dice(np.asarray(back.dataobj), np.asarray(original.dataobj)) > 0.9


def test_zscore_standardises_inside_the_brain(raw_case, tmp_path):
    case = discover_cases(raw_case.folder.parent, allow_missing=True)[0]
    out = tmp_path / "z" / case.case_id
    preprocess_case(case, out, _settings(raw_case, n4=False, zscore=True))
    mask = nib.load(out / "preprocess" / "brain_mask.nii.gz").get_fdata() > 0
    for s in ("t1c", "t2f"):
        data = nib.load(out / f"{case.case_id}-{s}.nii.gz").get_fdata()
        assert abs(data[mask].mean()) < 1e-3 and abs(data[mask].std() - 1.0) < 1e-3
        assert np.all(data[~mask] == 0)


def _files(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("skull_strip", ["atlas", "deepbet"])
def test_the_same_case_preprocessed_twice_gives_the_same_bytes(raw_case, tmp_path, skull_strip):
    """Fixed seed, fixed thread counts, deterministic torch and NIfTI files without a time stamp: whatever ITK's
    default thread count."""
    case = discover_cases(raw_case.folder.parent, allow_missing=True)[0]
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    runs = []
    try:
        for k, count in enumerate((1, 3)):
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(count)
            out = tmp_path / f"run{k}" / case.case_id
            preprocess_case(case, out, _settings(raw_case, n4_shrink=2, skull_strip=skull_strip))
            runs.append(_files(out))
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    first, second = runs
    assert set(first) == set(second) and len(first) == 9
    geometry = "preprocess/geometry.json"
    assert [name for name in first if first[name] != second[name]] in ([], [geometry])
    records = [json.loads(run[geometry]) for run in runs]
    for record in records:
        record.pop("timings_s")
    assert records[0] == records[1]  # everything but the timings
    assert records[0]["steps"]["registration"]["seed"] != 0  # 0 would seed ITK from the wall clock


def test_quirks_of_real_scans_are_recorded_not_refused(tmp_path):
    folder = write_quirky_case(tmp_path)
    case = discover_cases(folder.parent)[0]
    out = tmp_path / "pp" / case.case_id
    settings = PreprocessSettings(skip_registration=True, n4=False, skull_strip="atlas", zscore=True,
                                  shape=QUIRK_SHAPE, spacing=QUIRK_SPACING)
    record = preprocess_case(case, out, settings)
    qc = json.loads((out / "preprocess" / "qc.json").read_text())
    assert set(qc) >= {"brain_mask", "registration_similarity", "coverage", "intensity", "stored_dtype", "warnings"}
    assert (out / "preprocess" / "qc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert qc["stored_dtype"] == {"t1n": "float64", "t1c": "int16", "t2w": "float32", "t2f": "float32"}
    assert record["native"]["t1n"]["stored_dtype"] == "float64"
    flags = qc["intensity"]
    assert flags["t1c"]["saturated"] and flags["t1c"]["int16_max_voxels"] == 8
    assert not any(flags[s]["saturated"] for s in ("t1n", "t2w", "t2f"))
    assert flags["t2w"]["negative_voxels"] > 0 and flags["t2w"]["clipped_negatives"]
    assert record["steps"]["negatives_clipped"] == ["t2w"]
    assert qc["coverage"]["t2f"] < 0.6 and min(qc["coverage"][s] for s in ("t1n", "t1c", "t2w")) > 0.99
    assert any(w.startswith("t2f: covers") for w in qc["warnings"])
    assert any(w.startswith("t1c:") and "int16 maximum" in w for w in qc["warnings"])
    assert set(qc["registration_similarity"]["to_reference"]) == {"t1n", "t1c", "t2w", "t2f"}
    assert qc["registration_similarity"]["to_reference"]["t1n"] > 1.2  # the same tissue, co-registered
    assert qc["registration_similarity"]["to_atlas"] is None  # no atlas registration
    mask = nib.load(out / "preprocess" / "brain_mask.nii.gz").get_fdata() > 0
    for s in ("t1n", "t1c", "t2w", "t2f"):
        data = nib.load(out / f"{case.case_id}-{s}.nii.gz")
        assert data.get_data_dtype() == np.float32
        values = data.get_fdata()
        assert abs(values[mask].mean()) < 1e-3 and abs(values[mask].std() - 1.0) < 1e-3
    # the saturated voxels cannot set T1ce's scale: the robust z-score clips them first
    t1c = nib.load(out / f"{case.case_id}-t1c.nii.gz").get_fdata()
    assert t1c.max() < 5.0
