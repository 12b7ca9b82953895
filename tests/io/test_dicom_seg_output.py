"""DICOM out: a segmentation on imported (and preprocessed) DICOM becomes a DICOM-SEG on the source series."""

from __future__ import annotations

from types import SimpleNamespace

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest

from dicom_testing import PATIENT_ID, phantom_volume, write_study
from gliomics.data.datasets import import_dataset
from gliomics.errors import InputError
from gliomics.io import discover_cases, save_image
from gliomics.preprocess import PreprocessSettings, native_outputs, preprocess_cohort


def _prediction(labels: np.ndarray, affine: np.ndarray) -> SimpleNamespace:
    """What native_outputs reads of a prediction: its labels in the input geometry and their affine."""
    return SimpleNamespace(seg=labels, affine=np.asarray(affine))


def _ball_labels(nifti) -> np.ndarray:
    """Label 3 where the phantom ball is bright, 2 on one slab, as a stand-in for a predicted segmentation."""
    data = np.asarray(nifti.dataobj)
    labels = np.where(data > 350, 3, 0).astype(np.uint8)
    labels[:, :, 2][labels[:, :, 2] == 0] = 2
    return labels


@pytest.fixture
def imported(tmp_path):
    uids = write_study(tmp_path / "study01")
    import_dataset("dicom", tmp_path / "study01", tmp_path / "nifti")
    return tmp_path / "nifti", uids


def _frames_by_position(seg: hd.seg.Segmentation, source_dir) -> dict[float, np.ndarray]:
    """Label map per source slice position (z), read back from the SEG."""
    sources = {ds.SOPInstanceUID: float(ds.ImagePositionPatient[2])
               for ds in (pydicom.dcmread(p, stop_before_pixels=True) for p in source_dir.glob("*.dcm"))}
    uids = [uid for _, _, uid in seg.get_source_image_uids()]
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, combine_segments=True,
                                               skip_overlap_checks=True)
    return {sources[uid]: pixels[k] for k, uid in enumerate(uids)}


def test_dicom_seg_references_the_source_series_and_holds_the_labels(imported, tmp_path):
    nifti, uids = imported
    case = discover_cases(nifti / "manifest.csv")[0]
    t1c = nib.load(case.images["t1c"])
    labels = _ball_labels(t1c)
    pred = tmp_path / "pred"
    save_image(labels, t1c.affine, pred / "study01_seg.nii.gz")
    written = native_outputs(case, _prediction(labels, t1c.affine), pred, native=True, dicom_seg=True)
    assert [p.name for p in written] == ["study01_seg.dcm"]  # not preprocessed: no separate native file
    raw = pydicom.dcmread(pred / "study01_seg.dcm")
    assert raw.Modality == "SEG"
    assert raw.ReferencedSeriesSequence[0].SeriesInstanceUID == uids["AX T1 POST GD"]
    seg = hd.seg.segread(pred / "study01_seg.dcm")
    assert {d.segment_label for d in (seg.get_segment_description(n) for n in seg.segment_numbers)} >= {
        "ET enhancing tumour", "SNFH surrounding FLAIR hyperintensity"}
    by_z = _frames_by_position(seg, tmp_path / "study01" / "001")
    assert len(by_z) == labels.shape[2]
    for k, z in enumerate(sorted(by_z)):
        np.testing.assert_array_equal(by_z[z], labels[:, :, k].T)  # rows × columns = (j, i)


def test_dicom_seg_of_a_preprocessed_case_goes_back_through_the_transforms(imported, tmp_path):
    nifti, uids = imported
    pre = tmp_path / "pre"
    preprocess_cohort(nifti / "study01", pre, PreprocessSettings(skip_registration=True, n4=False, shape=(24, 28, 20),
                                                                 spacing=1.0, skull_strip="atlas"),
                      progress=False)
    assert (pre / "study01" / "dicom_sources.json").is_file()
    case = discover_cases(pre)[0]
    grid = nib.load(case.images["t1c"])
    labels = _ball_labels(grid)
    pred = tmp_path / "pred"
    save_image(labels, grid.affine, pred / "study01_seg.nii.gz")
    written = native_outputs(case, _prediction(labels, grid.affine), pred, native=True, dicom_seg=True)
    assert sorted(p.name for p in written) == ["study01_seg.dcm", "study01_seg_native.nii.gz"]
    native = nib.load(pred / "study01_seg_native.nii.gz")
    original = nib.load(nifti / "study01" / "study01-t1c.nii.gz")
    assert native.shape == original.shape
    np.testing.assert_allclose(native.affine, original.affine, atol=1e-4)
    expected = (phantom_volume(0) > 350).transpose(2, 1, 0)  # the ball, in the native voxel order
    got = np.asarray(native.dataobj) == 3
    assert 2 * (got & expected).sum() / (got.sum() + expected.sum()) > 0.9
    by_z = _frames_by_position(hd.seg.segread(pred / "study01_seg.dcm"), tmp_path / "study01" / "001")
    stacked = np.stack([by_z[z] for z in sorted(by_z)], axis=-1).transpose(1, 0, 2)
    np.testing.assert_array_equal(stacked, np.asarray(native.dataobj))
    assert PATIENT_ID not in (pre / "study01" / "preprocess" / "geometry.json").read_text()


def test_dicom_seg_needs_an_imported_case(tmp_path, tiny_case_dir):
    folder = tiny_case_dir("CASE-1")
    case = discover_cases(folder.parent)[0]
    with pytest.raises(InputError, match="dicom_sources.json"):
        native_outputs(case, _prediction(np.zeros((16, 16, 12), np.uint8), np.eye(4)), tmp_path / "pred",
                       dicom_seg=True)
