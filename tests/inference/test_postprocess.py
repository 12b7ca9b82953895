"""Removal of tiny connected components from label maps (26-connectivity, volumes in mm³)."""

from __future__ import annotations

import numpy as np
import pytest

from gliomics.constants import LABELS
from gliomics.inference.postprocess import remove_small_components

NETC, SNFH, ET, RC = LABELS["NETC"], LABELS["SNFH"], LABELS["ET"], LABELS["RC"]
ISO = (1.0, 1.0, 1.0)


def _big_tumour(shape: tuple[int, int, int] = (20, 20, 20)) -> np.ndarray:
    seg = np.zeros(shape, dtype=np.uint8)
    seg[2:10, 2:10, 2:10] = SNFH  # 512 voxels
    seg[4:8, 4:8, 4:8] = ET
    seg[5:7, 5:7, 5:7] = NETC
    return seg


def test_big_blob_survives_and_input_untouched() -> None:
    seg = _big_tumour()
    original = seg.copy()
    out = remove_small_components(seg, ISO, min_volume_mm3=50.0)
    np.testing.assert_array_equal(out, seg)
    np.testing.assert_array_equal(seg, original)
    assert out is not seg


def test_tiny_isolated_blob_removed_with_all_labels() -> None:
    seg = _big_tumour()
    seg[15:17, 15:17, 15:17] = SNFH  # 8 voxels, mixed labels, far from the big one
    seg[15, 15, 15] = ET
    seg[16, 16, 16] = NETC
    out = remove_small_components(seg, ISO, min_volume_mm3=50.0)
    assert not out[14:18, 14:18, 14:18].any()
    np.testing.assert_array_equal(out, _big_tumour())


def test_tiny_rc_island_removed_big_rc_kept() -> None:
    seg = _big_tumour()
    seg[12:18, 12:18, 12:18] = RC  # 216 voxels
    seg[0, 19, 0] = RC  # a 1-voxel stray cavity
    seg[0:2, 17:19, 18:20] = RC  # and an 8-voxel one, apart from everything else
    out = remove_small_components(seg, ISO, min_volume_mm3=50.0)
    assert (out == RC).sum() == 216
    assert out[0, 19, 0] == 0 and not out[0:2, 17:19, 18:20].any()
    # the tumour is unaffected by the RC pass
    np.testing.assert_array_equal(np.where(out == RC, 0, out), _big_tumour())


def test_rc_has_its_own_limit() -> None:
    seg = _big_tumour()
    seg[15:17, 15:17, 15:17] = RC  # 8 voxels of cavity
    kept = remove_small_components(seg, ISO, min_volume_mm3=50.0, min_rc_volume_mm3=5.0)
    assert (kept == RC).sum() == 8
    dropped = remove_small_components(seg, ISO, min_volume_mm3=50.0, min_rc_volume_mm3=10.0)
    assert (dropped == RC).sum() == 0


def test_rc_next_to_tumour_is_not_part_of_the_wt_component() -> None:
    seg = np.zeros((10, 10, 10), dtype=np.uint8)
    seg[0:2, 0:2, 0:2] = SNFH  # 8 voxels of WT
    seg[2:8, 0:6, 0:6] = RC  # large cavity touching it: RC does not count towards the WT volume
    out = remove_small_components(seg, ISO, min_volume_mm3=50.0)
    assert not np.isin(out, (NETC, SNFH, ET)).any()
    assert (out == RC).sum() == 6 * 6 * 6


def test_spacing_is_used() -> None:
    seg = np.zeros((10, 10, 10), dtype=np.uint8)
    seg[2:5, 2:5, 2:5] = ET  # 27 voxels: 27 mm³ at 1 mm, 216 mm³ at 2 mm
    assert not remove_small_components(seg, (1.0, 1.0, 1.0), min_volume_mm3=100.0).any()
    np.testing.assert_array_equal(remove_small_components(seg, (2.0, 2.0, 2.0), min_volume_mm3=100.0), seg)
    # anisotropic: 27 × 1 × 1 × 4 = 108 mm³
    np.testing.assert_array_equal(remove_small_components(seg, (1.0, 1.0, 4.0), min_volume_mm3=100.0), seg)


def test_limit_is_strict_lower_bound() -> None:
    seg = np.zeros((6, 6, 6), dtype=np.uint8)
    seg[1:3, 1:3, 1:3] = SNFH  # exactly 8 mm³
    np.testing.assert_array_equal(remove_small_components(seg, ISO, min_volume_mm3=8.0), seg)
    assert not remove_small_components(seg, ISO, min_volume_mm3=8.5).any()


def test_diagonal_voxels_form_one_component() -> None:
    seg = np.zeros((8, 8, 8), dtype=np.uint8)
    for k in range(6):
        seg[k, k, k] = SNFH  # a chain touching only at corners: 6 voxels if 26-connected, 6 × 1 otherwise
    out = remove_small_components(seg, ISO, min_volume_mm3=5.0)
    np.testing.assert_array_equal(out, seg)


def test_non_positive_limit_disables() -> None:
    seg = np.zeros((5, 5, 5), dtype=np.uint8)
    seg[0, 0, 0] = ET
    seg[4, 4, 4] = RC
    np.testing.assert_array_equal(remove_small_components(seg, ISO, min_volume_mm3=0.0), seg)


def test_empty_and_background_only() -> None:
    seg = np.zeros((4, 4, 4), dtype=np.uint8)
    np.testing.assert_array_equal(remove_small_components(seg, ISO), seg)


@pytest.mark.parametrize("dtype", [np.uint8, np.int64])
def test_dtype_and_shape_preserved(dtype: type) -> None:
    seg = _big_tumour().astype(dtype)
    out = remove_small_components(seg, ISO)
    assert out.dtype == seg.dtype and out.shape == seg.shape
