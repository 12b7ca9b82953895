"""Slice selection, ROI crop and VOI handling of the slice benchmark, on hand-made masks and synthetic cases."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from gliomics.errors import ConfigError, InputError
from gliomics.io import write_markers
from gliomics.io.markers import MarkerRecord
from gliomics.slices.extraction import (
    axial_spacing,
    axial_stack,
    crop_box,
    parse_voi_labels,
    roi_box,
    select_slices,
)
from gliomics.slices.settings import SliceSettings
from gliomics.slices.slice_set import collect_slices, write_slices


def _mask_with_areas(areas: list[int], side: int = 8) -> np.ndarray:
    mask = np.zeros((len(areas), side, side), dtype=bool)
    for z, area in enumerate(areas):
        mask[z].flat[:area] = True
    return mask


def test_select_slices_takes_the_k_largest_areas_largest_first():
    mask = _mask_with_areas([0, 5, 9, 2, 12, 0, 7])
    assert select_slices(mask, 1) == [4]
    assert select_slices(mask, 3) == [4, 2, 6]


def test_select_slices_breaks_ties_by_index_and_never_takes_empty_slices():
    mask = _mask_with_areas([3, 0, 3, 1])
    assert select_slices(mask, 2) == [0, 2]
    assert select_slices(mask, 10) == [0, 2, 3]
    assert select_slices(np.zeros((4, 5, 5), bool), 2) == []
    with pytest.raises(ValueError):
        select_slices(mask, 0)


def test_roi_box_adds_the_margin_and_squares_the_box():
    mask = np.zeros((40, 50), dtype=bool)
    mask[10:15, 20:30] = True  # 5 rows, 10 columns
    assert roi_box(mask, 2, square=False) == (8, 17, 18, 32)
    assert roi_box(mask, (1, 3), square=False) == (9, 16, 17, 33)
    r0, r1, c0, c1 = roi_box(mask, 2)
    assert (r1 - r0, c1 - c0) == (14, 14)
    assert (c0, c1) == (18, 32)
    assert r0 <= 8 and r1 >= 17 and (r0 + r1) / 2 == pytest.approx((8 + 17) / 2, abs=0.5)
    with pytest.raises(ValueError):
        roi_box(np.zeros((4, 4), bool))


def test_crop_box_pads_outside_the_image_with_the_fill_value():
    image = np.arange(25, dtype=np.float32).reshape(5, 5) + 1
    crop = crop_box(image, (-2, 3, 3, 7))
    assert crop.shape == (5, 4)
    np.testing.assert_array_equal(crop[2:, :2], image[0:3, 3:5])
    assert (crop[:2] == image.min()).all() and (crop[:, 2:] == image.min()).all()
    assert (crop_box(image, (-1, 1, -1, 1), fill=-5.0)[0] == -5.0).all()


def test_axial_stack_is_the_same_for_any_voxel_order():
    rng = np.random.default_rng(0)
    ras = rng.random((6, 7, 5)).astype(np.float32)  # x, y, z in RAS+
    ras_affine = np.diag([1.0, 1.0, 2.0, 1.0])
    reference = axial_stack(ras, ras_affine)
    assert reference.shape == (5, 7, 6)
    # the same voxels stored left-to-right flipped and with the axes as z, x, y
    flipped = ras[::-1]
    lps_affine = np.diag([-1.0, 1.0, 2.0, 1.0])
    lps_affine[0, 3] = 5.0
    np.testing.assert_array_equal(axial_stack(flipped, lps_affine), reference)
    permuted = np.transpose(ras, (2, 0, 1))
    perm_affine = np.array([[0, 1.0, 0, 0], [0, 0, 1.0, 0], [2.0, 0, 0, 0], [0, 0, 0, 1]])
    np.testing.assert_array_equal(axial_stack(permuted, perm_affine), reference)
    # anterior at the top, the patient's right on the left
    assert reference[0, 0, 0] == ras[5, 6, 0]


def test_axial_spacing_follows_the_orientation():
    affine = np.array([[0, 0.5, 0, 0], [0, 0, 2.0, 0], [3.0, 0, 0, 0], [0, 0, 0, 1]])
    assert axial_spacing((3.0, 0.5, 2.0), affine) == (2.0, 0.5)


def test_parse_voi_labels_accepts_names_regions_and_values():
    assert parse_voi_labels("ET,NETC") == (1, 3)
    assert parse_voi_labels("tc") == (1, 3)
    assert parse_voi_labels(["WT"]) == (1, 2, 3)
    assert parse_voi_labels("3, 4") == (3, 4)
    for bad in ("edema", "7", ""):
        with pytest.raises(ConfigError):
            parse_voi_labels(bad)


def _markers(folder, labels: dict[str, int | None]) -> None:
    write_markers([MarkerRecord(cid, idh=0, codel_1p19q=0, tert=t, age=50.0, sex="F") for cid, t in labels.items()],
                  folder / "markers.csv")


def test_collect_slices_takes_k_slices_with_the_margin_in_mm(tiny_case_dir):
    case = tiny_case_dir("CASE-A-000", seed=1)
    tiny_case_dir("CASE-B-000", seed=2)
    _markers(case.parent, {"CASE-A-000": 1, "CASE-B-000": 0})
    settings = SliceSettings(k=2, margin_mm=3.0, size=24)
    slice_set = collect_slices(case.parent, settings)
    assert len(slice_set.records) == 4 and len(slice_set.crops) == 4
    assert {p.patient: p.label for p in slice_set.patients.values()} == {"CASE-A": 1, "CASE-B": 0}
    seg = nib.load(case / "CASE-A-000-seg.nii.gz")
    mask = axial_stack(np.isin(np.asarray(seg.dataobj), (1, 3)), seg.affine)
    first = [r for r in slice_set.records if r.case_id == "CASE-A-000"]
    assert [r.z for r in first] == select_slices(mask, 2)
    for record, crop in zip(first, slice_set.crops):
        assert record.area == int(mask[record.z].sum())
        assert record.box == roi_box(mask[record.z], (3, 3))  # 1 mm in-plane voxels: 3 mm = 3 voxels
        assert crop.shape == (record.box[1] - record.box[0], record.box[3] - record.box[2])
    images = slice_set.images()
    assert images.shape == (4, 24, 24) and images.min() >= 0 and images.max() <= 1


def test_collect_slices_skips_unknown_labels_and_empty_vois(tiny_case_dir):
    case = tiny_case_dir("CASE-A-000", seed=1)
    tiny_case_dir("CASE-B-000", seed=2)
    tiny_case_dir("CASE-C-000", seed=3)
    seg_path = case.parent / "CASE-C-000" / "CASE-C-000-seg.nii.gz"
    seg = nib.load(seg_path)
    nib.save(nib.Nifti1Image(np.where(np.isin(np.asarray(seg.dataobj), (1, 3)), 2, np.asarray(seg.dataobj))
                             .astype(np.uint8), seg.affine), seg_path)
    _markers(case.parent, {"CASE-A-000": 1, "CASE-B-000": None, "CASE-C-000": 0})
    slice_set = collect_slices(case.parent, SliceSettings(k=1, size=16))
    assert list(slice_set.patients) == ["CASE-A"]
    reasons = {s["case_id"]: s["reason"] for s in slice_set.skipped}
    assert reasons == {"CASE-B-000": "tert status unknown", "CASE-C-000": "empty VOI"}
    with pytest.raises(InputError, match="no usable case"):
        collect_slices(case.parent, SliceSettings(k=1, size=16),
                       markers=_only(case.parent, {"CASE-B-000": None, "CASE-C-000": 0}))


def _only(folder, labels):
    sub = folder / "only"
    sub.mkdir()
    _markers(sub, labels)
    return sub / "markers.csv"


def test_collect_slices_reads_voi_masks_and_exports_an_index(tiny_case_dir, tmp_path):
    case = tiny_case_dir("CASE-A-000", seed=1)
    _markers(case.parent, {"CASE-A-000": 1})
    img = nib.load(case / "CASE-A-000-t1c.nii.gz")
    mask = np.zeros(img.shape, dtype=np.uint8)
    mask[4:9, 5:8, 6] = 255  # one axial slice only
    masks = tmp_path / "voi"
    masks.mkdir()
    nib.save(nib.Nifti1Image(mask, img.affine), masks / "CASE-A-000.nii.gz")
    slice_set = collect_slices(case.parent, SliceSettings(k=3, size=16, margin_mm=0), voi_masks=masks)
    assert len(slice_set.records) == 1 and slice_set.records[0].area == 15
    out = tmp_path / "out"
    summary = write_slices(slice_set, out)
    assert summary["slices"] == 1 and "gliomics" in summary["versions"]
    index = (out / "index.csv").read_text().splitlines()
    assert index[0].startswith("patient,slice,label")
    saved = np.load(out / index[1].split(",")[1])
    assert saved.shape == (16, 16) and saved.dtype == np.float32
    with pytest.raises(InputError, match="VOI mask folder"):
        collect_slices(case.parent, SliceSettings(), voi_masks=tmp_path / "nope")
