"""Legacy and BraTS 2024 lesion-wise segmentation metrics on tiny hand-built volumes with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from gliomics.constants import LABELS, REGIONS
from gliomics.evaluation.segmentation import (
    HD95_PENALTY_MM,
    LESION_MIN_VOLUME_MM3,
    hd95,
    lesion_wise,
    segmentation_metrics,
)

ISO = (1.0, 1.0, 1.0)


def _box(shape: tuple[int, ...], *slices: slice) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(slices)] = True
    return mask


# ---------------------------------------------------------------- hd95


def test_identical_masks() -> None:
    mask = _box((10, 10, 10), slice(2, 7), slice(3, 6), slice(1, 8))
    assert hd95(mask, mask, ISO) == 0.0
    out = segmentation_metrics(mask.astype(np.uint8) * LABELS["ET"], mask.astype(np.uint8) * LABELS["ET"], ISO)
    assert out["ET"]["dice"] == 1.0 and out["ET"]["hd95"] == 0.0
    assert out["ET"]["lesion_dice"] == 1.0 and out["ET"]["lesion_hd95"] == 0.0
    assert (out["ET"]["lesion_tp"], out["ET"]["lesion_fn"], out["ET"]["lesion_fp"]) == (1, 0, 0)


@pytest.mark.parametrize(("spacing", "expected"), [(ISO, 6.0), ((1.0, 1.0, 2.5), 15.0), ((0.5, 3.0, 2.0), 12.0)])
def test_disjoint_cubes(spacing: tuple[float, float, float], expected: float) -> None:
    # Two 3×3×3 cubes along axis 2: z = 0..2 and z = 6..8. Every surface voxel at z = 0, 1, 2 of one cube has its
    # nearest surface voxel straight across at z = 6, so its distances are 6, 5, 4 voxels (9, 8 and 9 surface
    # voxels; the centre is not surface). The 95th percentile of those 26 values (linear interpolation, position
    # 0.95 × 25 = 23.75 in the sorted list) is 6 voxels, by symmetry in both directions: 6 × spacing along axis 2.
    a = _box((3, 3, 9), slice(None), slice(None), slice(0, 3))
    b = _box((3, 3, 9), slice(None), slice(None), slice(6, 9))
    assert hd95(a, b, spacing) == pytest.approx(expected)
    assert hd95(b, a, spacing) == pytest.approx(expected)


@pytest.mark.parametrize(("axis", "spacing", "expected"), [(0, (2.0, 1.0, 1.0), 6.0), (2, (1.0, 1.0, 2.5), 7.5)])
def test_parallel_plates_anisotropic(axis: int, spacing: tuple[float, float, float], expected: float) -> None:
    # One-voxel-thick plates 3 voxels apart along `axis`: every surface distance is 3 × spacing[axis].
    index_a, index_b = [slice(None)] * 3, [slice(None)] * 3
    index_a[axis], index_b[axis] = 1, 4
    a, b = np.zeros((6, 6, 6), dtype=bool), np.zeros((6, 6, 6), dtype=bool)
    a[tuple(index_a)], b[tuple(index_b)] = True, True
    assert hd95(a, b, spacing) == pytest.approx(expected)


def test_hd95_is_a_percentile_not_the_maximum() -> None:
    ref = _box((30, 10, 10), slice(2, 7), slice(2, 7), slice(2, 7))
    pred = ref.copy()
    pred[27, 4, 4] = True  # one stray voxel among 99 surface voxels
    assert hd95(pred, ref, ISO) == 0.0


def test_hd95_matches_brute_force_symmetric_definition() -> None:
    # Max of the two directed 95th percentiles of surface-voxel distances (6-connected erosion for the surface).
    z, y, x = np.ogrid[:12, :12, :8]
    ref = (z - 5.5) ** 2 + (y - 5.0) ** 2 + 4 * (x - 3.5) ** 2 < 16  # ellipsoid
    pred = ((z - 7.0) ** 2 / 2 + (y - 6.0) ** 2 + (x - 4.0) ** 2 < 9) | ((z == 1) & (y == 10))  # offset, plus a rod
    spacing = (1.0, 0.7, 2.5)

    def surface_points(mask: np.ndarray) -> np.ndarray:
        return np.argwhere(mask ^ ndimage.binary_erosion(mask)) * np.asarray(spacing)

    a, b = surface_points(pred), surface_points(ref)
    distances = np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1))
    expected = max(np.percentile(distances.min(1), 95), np.percentile(distances.min(0), 95))
    assert hd95(pred, ref, spacing) == pytest.approx(expected, rel=1e-5)


def test_empty_masks() -> None:
    empty = np.zeros((6, 6, 6), dtype=np.uint8)
    full = empty.copy()
    full[1:4, 1:4, 1:4] = LABELS["NETC"]

    both = segmentation_metrics(empty, empty, ISO, regions=("NETC",))["NETC"]
    assert both["dice"] == 1.0 and both["hd95"] == 0.0
    assert math.isnan(both["sensitivity"]) and both["specificity"] == 1.0
    assert both["lesion_dice"] == 1.0 and both["lesion_hd95"] == 0.0

    no_pred = segmentation_metrics(empty, full, ISO, regions=("NETC",))["NETC"]
    assert no_pred["dice"] == 0.0 and no_pred["hd95"] == HD95_PENALTY_MM == 374.0
    assert no_pred["sensitivity"] == 0.0 and no_pred["specificity"] == 1.0
    assert no_pred["lesion_dice"] == 0.0 and no_pred["lesion_hd95"] == 374.0
    assert (no_pred["lesion_tp"], no_pred["lesion_fn"], no_pred["lesion_fp"]) == (0, 1, 0)

    no_ref = segmentation_metrics(full, empty, ISO, regions=("NETC",))["NETC"]
    assert no_ref["dice"] == 0.0 and no_ref["hd95"] == 374.0
    assert math.isnan(no_ref["sensitivity"]) and no_ref["specificity"] == pytest.approx((216 - 27) / 216)
    assert no_ref["lesion_dice"] == 0.0 and no_ref["lesion_hd95"] == 374.0
    assert (no_ref["lesion_tp"], no_ref["lesion_fn"], no_ref["lesion_fp"]) == (0, 0, 1)


def test_sensitivity_specificity_hand_table() -> None:
    # 100 voxels; reference 10, prediction 8 of which 6 overlap: TP 6, FP 2, FN 4, TN 88.
    pred = np.zeros((4, 5, 5), dtype=np.uint8)
    ref = np.zeros_like(pred)
    ref.reshape(-1)[:10] = LABELS["SNFH"]
    pred.reshape(-1)[4:12] = LABELS["SNFH"]
    out = segmentation_metrics(pred, ref, ISO, regions=("SNFH",))["SNFH"]
    assert out["sensitivity"] == pytest.approx(6 / 10)
    assert out["specificity"] == pytest.approx(88 / 90)
    assert out["dice"] == pytest.approx(2 * 6 / 18)


def test_volumes_in_ml_use_spacing() -> None:
    pred = np.zeros((10, 10, 10), dtype=np.uint8)
    ref = np.zeros_like(pred)
    ref[:5, :5, :4] = LABELS["RC"]  # 100 voxels of 2 × 2 × 2.5 = 10 mm³: 1 mL
    pred[:5, :5, :2] = LABELS["RC"]  # 50 voxels: 0.5 mL
    out = segmentation_metrics(pred, ref, (2.0, 2.0, 2.5), regions=("RC",))["RC"]
    assert out["volume_ref_ml"] == pytest.approx(1.0)
    assert out["volume_pred_ml"] == pytest.approx(0.5)


# ---------------------------------------------------------------- lesion-wise


def test_lesion_wise_detected_missed_and_false_positive() -> None:
    shape = (40, 20, 20)
    # Lesion A, 4×4×4, detected by the same cube shifted by one voxel along axis 0: Dice 2·48/128 = 0.75.
    # HD95 = 1: the surface voxels off by one are 20 of 56 on each side, all at distance 1, the rest at 0.
    lesion_a = _box(shape, slice(2, 6), slice(2, 6), slice(2, 6))
    detection = _box(shape, slice(3, 7), slice(2, 6), slice(2, 6))
    lesion_b = _box(shape, slice(20, 23), slice(2, 5), slice(2, 5))  # 27 mm³, missed
    false_positive = _box(shape, slice(30, 32), slice(12, 14), slice(12, 14))
    ref, pred = lesion_a | lesion_b, detection | false_positive

    d, h = 0.75, 1.0
    assert hd95(detection, lesion_a, ISO) == pytest.approx(h)
    out = lesion_wise(pred, ref, ISO, min_volume_mm3=20.0)
    assert out["lesion_dice"] == pytest.approx(d / 3)
    assert out["lesion_hd95"] == pytest.approx((h + 374 + 374) / 3)
    assert (out["lesion_tp"], out["lesion_fn"], out["lesion_fp"]) == (1, 1, 1)
    fast = lesion_wise(pred, ref, ISO, min_volume_mm3=20.0, with_hd95=False)
    assert fast["lesion_dice"] == out["lesion_dice"] and math.isnan(fast["lesion_hd95"])


def test_nearby_ground_truth_components_merge_into_one_lesion() -> None:
    shape = (24, 8, 8)
    first = _box(shape, slice(2, 5), slice(2, 5), slice(2, 5))
    pred = first

    # A gap of 2 voxels closes after 3 dilations: one lesion of 54 voxels, of which the prediction finds half.
    near = first | _box(shape, slice(7, 10), slice(2, 5), slice(2, 5))
    out = lesion_wise(pred, near, ISO)
    assert (out["lesion_tp"], out["lesion_fn"], out["lesion_fp"]) == (1, 0, 0)
    assert out["lesion_dice"] == pytest.approx(2 * 27 / (27 + 54))

    # A gap of 7 voxels stays open (3 + 3 dilations leave one voxel): two lesions, the second missed.
    far = first | _box(shape, slice(12, 15), slice(2, 5), slice(2, 5))
    out = lesion_wise(pred, far, ISO)
    assert (out["lesion_tp"], out["lesion_fn"], out["lesion_fp"]) == (1, 1, 0)
    assert out["lesion_dice"] == pytest.approx(0.5)
    assert out["lesion_hd95"] == pytest.approx((0 + 374) / 2)


def test_components_are_26_connected() -> None:
    pred = np.zeros((8, 8, 8), dtype=bool)
    pred[2, 2, 2] = pred[3, 3, 3] = True  # corner-touching voxels: one component, one false positive
    out = lesion_wise(pred, np.zeros_like(pred), ISO)
    assert (out["lesion_tp"], out["lesion_fn"], out["lesion_fp"]) == (0, 0, 1)


def test_small_lesions_are_ignored() -> None:
    shape = (12, 12, 12)
    small = _box(shape, slice(2, 4), slice(2, 4), slice(2, 7))  # 20 voxels
    for pred in (np.zeros(shape, dtype=bool), small):  # missed, or detected: neither counts
        out = lesion_wise(pred, small, ISO, min_volume_mm3=20.0)
        assert (out["lesion_tp"], out["lesion_fn"], out["lesion_fp"]) == (0, 0, 0)
        assert out["lesion_dice"] == 1.0 and out["lesion_hd95"] == 0.0
    # A prediction touching only the ignored lesion is not a false positive, but one elsewhere is.
    stray = _box(shape, slice(9, 11), slice(9, 11), slice(9, 11))
    out = lesion_wise(small | stray, small, ISO, min_volume_mm3=20.0)
    assert (out["lesion_tp"], out["lesion_fn"], out["lesion_fp"]) == (0, 0, 1)
    assert out["lesion_dice"] == 0.0 and out["lesion_hd95"] == 374.0
    # The threshold is in mm³: the same 20 voxels at 1 × 1 × 1.5 mm are 30 mm³ and scored.
    out = lesion_wise(np.zeros(shape, dtype=bool), small, (1.0, 1.0, 1.5), min_volume_mm3=20.0)
    assert (out["lesion_tp"], out["lesion_fn"], out["lesion_fp"]) == (0, 1, 0)


def test_et_threshold_is_10_mm3() -> None:
    assert LESION_MIN_VOLUME_MM3["ET"] == 10.0
    assert all(LESION_MIN_VOLUME_MM3[r] == 20.0 for r in REGIONS if r != "ET")
    pred = np.zeros((20, 12, 12), dtype=np.uint8)
    ref = pred.copy()
    ref[2:4, 2:4, 2:5] = LABELS["ET"]  # 12 mm³ of ET, missed
    ref[15:17, 8:10, 8:10] = LABELS["ET"]  # 8 mm³ of ET far away, missed but too small to count anywhere
    out = segmentation_metrics(pred, ref, ISO, regions=("ET", "TC"))
    assert (out["ET"]["lesion_tp"], out["ET"]["lesion_fn"], out["ET"]["lesion_fp"]) == (0, 1, 0)
    assert out["ET"]["lesion_dice"] == 0.0 and out["ET"]["lesion_hd95"] == 374.0
    # The same voxels as TC fall under the 20 mm³ threshold.
    assert (out["TC"]["lesion_tp"], out["TC"]["lesion_fn"], out["TC"]["lesion_fp"]) == (0, 0, 0)
    assert out["TC"]["lesion_dice"] == 1.0


def test_region_composition_of_a_label_map() -> None:
    ref = np.zeros((6, 6, 12), dtype=np.uint8)
    ref[1:4, 1:4, 0:3] = LABELS["NETC"]
    ref[1:4, 1:4, 3:6] = LABELS["ET"]
    ref[1:4, 1:4, 6:9] = LABELS["SNFH"]
    pred = ref.copy()
    pred[pred == LABELS["ET"]] = LABELS["NETC"]  # enhancing tumour called necrosis: TC and WT unaffected
    out = segmentation_metrics(pred, ref, (1.0, 1.0, 2.0))
    assert set(out) == set(REGIONS)
    assert out["ET"]["dice"] == 0.0 and out["ET"]["hd95"] == 374.0
    assert out["NETC"]["dice"] == pytest.approx(2 * 27 / (54 + 27))
    assert out["SNFH"]["dice"] == 1.0
    for region in ("TC", "WT"):
        assert out[region]["dice"] == 1.0 and out[region]["hd95"] == 0.0 and out[region]["lesion_dice"] == 1.0
    assert out["TC"]["volume_ref_ml"] == pytest.approx(54 * 2.0 / 1000)
    assert out["WT"]["volume_ref_ml"] == pytest.approx(81 * 2.0 / 1000)
    rc = out["RC"]
    assert rc["dice"] == 1.0 and rc["hd95"] == 0.0 and math.isnan(rc["sensitivity"]) and rc["lesion_dice"] == 1.0
    expected_keys = {"dice", "hd95", "sensitivity", "specificity", "volume_pred_ml", "volume_ref_ml"}
    expected_keys |= {"lesion_dice", "lesion_hd95", "lesion_tp", "lesion_fn", "lesion_fp"}
    assert set(rc) == expected_keys


# ---------------------------------------------------------------- argument checks


def test_bad_arguments_raise_value_error() -> None:
    a, b = np.zeros((4, 4, 4), dtype=np.uint8), np.zeros((4, 4, 5), dtype=np.uint8)
    with pytest.raises(ValueError, match="shape"):
        segmentation_metrics(a, b, ISO)
    with pytest.raises(ValueError, match="shape"):
        hd95(a, b, ISO)
    with pytest.raises(ValueError, match="shape"):
        lesion_wise(a, b, ISO)
    with pytest.raises(ValueError, match="spacing"):
        segmentation_metrics(a, a, (1.0, 1.0))
    with pytest.raises(ValueError, match="spacing"):
        hd95(a, a, (1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="unknown regions"):
        segmentation_metrics(a, a, ISO, regions=("XX",))
