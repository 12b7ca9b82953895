"""Intensity quirks of real scans: stored data types, flags, clipping of small negatives and the robust z-score."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from gliomics.preprocess.intensity import (
    INT16_MAX,
    clip_negatives,
    flag_relative_scale,
    intensity_flags,
    intensity_warnings,
    robust_zscore,
    stored_dtype,
)


def _scan(seed: int = 0, scale: float = 1.0) -> np.ndarray:
    array = np.zeros((20, 20, 16), dtype=np.float32)
    array[4:16, 4:16, 3:13] = scale * (300.0 + np.random.default_rng(seed).normal(0.0, 20.0, (12, 12, 10)))
    return array


def test_stored_dtype_reads_the_header(tmp_path):
    for dtype in (np.float64, np.int16, np.uint8):
        path = tmp_path / f"{np.dtype(dtype).name}.nii.gz"
        image = nib.Nifti1Image(_scan().astype(dtype), np.eye(4))
        image.set_data_dtype(dtype)
        nib.save(image, path)
        assert stored_dtype(path) == np.dtype(dtype).name
    assert stored_dtype(tmp_path / "missing.nii.gz") == "unknown"


def test_ordinary_scan_raises_no_flag():
    flags = intensity_flags(_scan())
    assert not flags["saturated"] and not flags["large_values"] and flags["negative_voxels"] == 0
    assert 300 < flags["p99"] < 400
    assert intensity_warnings("t1n", flags) == []


def test_int16_maximum_and_large_values_are_flagged():
    saturated = _scan()
    saturated[8:10, 8:10, 8:10] = INT16_MAX
    flags = intensity_flags(saturated)
    assert flags["saturated"] and flags["int16_max_voxels"] == 8 and not flags["large_values"]
    big = intensity_flags(_scan(scale=60.0))
    assert big["large_values"] and not big["saturated"]
    assert any("int16 maximum" in w for w in intensity_warnings("t1c", flags))
    assert any("unusually large" in w for w in intensity_warnings("t1c", big))


def test_scale_relative_to_the_other_sequences():
    flags = {"t1n": intensity_flags(_scan(1)), "t1c": intensity_flags(_scan(2)), "t2w": intensity_flags(_scan(3)),
             "t2f": intensity_flags(_scan(4, scale=20.0))}
    flag_relative_scale(flags)
    assert flags["t2f"]["large_vs_others"] and 15 < flags["t2f"]["scale_vs_others"] < 25
    assert not any(flags[s]["large_vs_others"] for s in ("t1n", "t1c", "t2w"))
    assert any("times those of the other sequences" in w for w in intensity_warnings("t2f", flags["t2f"]))


def test_few_negative_values_are_clipped_and_many_are_kept():
    few = _scan()
    few[5, 5, 5] = few[6, 6, 6] = -3.0
    flags = intensity_flags(few)
    assert flags["negative_voxels"] == 2 and flags["min"] == -3.0
    clipped = clip_negatives(sitk.GetImageFromArray(few), flags)
    assert flags["clipped_negatives"] and float(sitk.GetArrayViewFromImage(clipped).min()) == 0.0
    assert intensity_warnings("t2w", flags) == []  # clipped undershoot is recorded, not warned about

    signed = _scan() - 300.0  # about half the voxels negative: signed data
    flags = intensity_flags(signed)
    kept = clip_negatives(sitk.GetImageFromArray(signed), flags)
    assert not flags["clipped_negatives"] and float(sitk.GetArrayViewFromImage(kept).min()) < -10
    assert any("kept" in w for w in intensity_warnings("t2w", flags))


def test_robust_zscore_is_not_dominated_by_a_saturated_region():
    image = _scan()
    mask = image > 0
    image[6:8, 6:8, 5] = INT16_MAX  # 4 saturated voxels: 0.3% of the mask, above its 99.5th percentile
    z = robust_zscore(image, mask)
    assert abs(z[mask].mean()) < 1e-4 and abs(z[mask].std() - 1.0) < 1e-4
    assert np.all(z[~mask] == 0)
    # the tissue keeps its spread: a plain z-score would squeeze it to a sliver of one s.d.
    tissue = mask.copy()
    tissue[6:8, 6:8, 5] = False
    assert z[tissue].std() > 0.5
    plain = (image[mask] - image[mask].mean()) / image[mask].std()
    assert plain[tissue[mask]].std() < 0.1
