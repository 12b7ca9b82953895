"""Legacy and BraTS 2024 lesion-wise segmentation metrics on tiny hand-built volumes with known answers."""

from __future__ import annotations

import math
import warnings

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


# ---------------------------------------------------------------- exact boundaries


def _spy_hausdorff(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """Record the spatial shape of every array MONAI's Hausdorff distance receives (the result is unchanged)."""
    import monai.metrics

    shapes: list[tuple[int, ...]] = []
    original = monai.metrics.compute_hausdorff_distance

    def spy(y_pred, y, **kwargs):
        shapes.append(tuple(np.asarray(y_pred).shape[2:]))
        assert np.asarray(y_pred).shape[:2] == (1, 1) and np.asarray(y).shape == np.asarray(y_pred).shape
        return original(y_pred, y, **kwargs)

    monkeypatch.setattr(monai.metrics, "compute_hausdorff_distance", spy)
    return shapes


@pytest.mark.parametrize(("gap", "merged"), [(1, True), (2, True), (3, True), (4, True), (6, True), (7, False),
                                             (8, False)])
def test_lesions_merge_up_to_a_gap_of_six_voxels(gap: int, merged: bool) -> None:
    """Three 26-connected dilations from each side close a gap of at most 6 empty voxels between two cubes."""
    shape = (3 + gap + 3 + 8, 9, 9)
    first = _box(shape, slice(4, 7), slice(3, 6), slice(3, 6))
    second = _box(shape, slice(7 + gap, 10 + gap), slice(3, 6), slice(3, 6))
    out = lesion_wise(first, first | second, ISO)
    if merged:
        assert (out["lesion_tp"], out["lesion_fn"], out["lesion_fp"]) == (1, 0, 0)
        assert out["lesion_dice"] == pytest.approx(2 * 27 / (27 + 54))
    else:
        assert (out["lesion_tp"], out["lesion_fn"], out["lesion_fp"]) == (1, 1, 0)
        assert out["lesion_dice"] == pytest.approx(0.5)
        assert out["lesion_hd95"] == pytest.approx(374.0 / 2)


@pytest.mark.parametrize(("gap", "merged"), [(6, True), (7, False)])
def test_dilation_merges_along_a_diagonal_like_along_an_axis(gap: int, merged: bool) -> None:
    """The dilation is 26-connected: cubes offset by the same gap along all three axes merge like axis neighbours."""
    n = 2 + 2 + gap + 2 + 2
    first = _box((n, n, n), slice(2, 4), slice(2, 4), slice(2, 4))
    second = _box((n, n, n), *(slice(4 + gap, 6 + gap),) * 3)
    out = lesion_wise(first | second, first | second, ISO, min_volume_mm3=1.0)
    assert (out["lesion_tp"], out["lesion_fn"], out["lesion_fp"]) == ((1, 0, 0) if merged else (2, 0, 0))
    assert out["lesion_dice"] == 1.0 and out["lesion_hd95"] == 0.0


def test_a_prediction_touching_the_dilated_lesion_is_a_detection() -> None:
    """A predicted component inside a lesion's dilated mask (2 empty voxels between) detects it with Dice 0; one just
    outside it (3 empty voxels between) is a false positive and the lesion is missed."""
    shape = (20, 9, 9)
    lesion = _box(shape, slice(3, 6), slice(3, 6), slice(3, 6))
    near = _box(shape, slice(8, 9), slice(3, 6), slice(3, 6))  # in the third dilation layer
    far = _box(shape, slice(9, 10), slice(3, 6), slice(3, 6))  # just beyond it
    out = lesion_wise(near, lesion, ISO, with_hd95=False)
    assert (out["lesion_tp"], out["lesion_fn"], out["lesion_fp"]) == (1, 0, 0)
    assert out["lesion_dice"] == 0.0
    out = lesion_wise(far, lesion, ISO)
    assert (out["lesion_tp"], out["lesion_fn"], out["lesion_fp"]) == (0, 1, 1)
    assert out["lesion_dice"] == 0.0 and out["lesion_hd95"] == 374.0


def test_near_detection_scores_the_hd95_of_the_pair() -> None:
    """The lesion HD95 of a detection is the symmetric HD95 between the lesion and the component that touches it."""
    shape = (20, 9, 9)
    lesion = _box(shape, slice(3, 6), slice(3, 6), slice(3, 6))
    near = _box(shape, slice(8, 11), slice(3, 6), slice(3, 6))  # the cube shifted by 5 voxels along axis 0
    expected = hd95(near, lesion, ISO)
    assert expected == pytest.approx(5.0)  # faces 5 apart; the 95th percentile lies among the distances of 5 and 6
    out = lesion_wise(near, lesion, ISO)
    assert out["lesion_hd95"] == pytest.approx(expected) and out["lesion_dice"] == 0.0


def test_two_components_on_one_lesion_are_scored_as_their_union() -> None:
    """Both halves of a split prediction touch the lesion: one detection whose Dice is that of their union."""
    shape = (16, 10, 10)
    lesion = _box(shape, slice(3, 9), slice(3, 6), slice(3, 6))  # 54 voxels
    halves = _box(shape, slice(3, 5), slice(3, 6), slice(3, 6)) | _box(shape, slice(7, 9), slice(3, 6), slice(3, 6))
    out = lesion_wise(halves, lesion, (1.0, 1.0, 2.0))
    assert (out["lesion_tp"], out["lesion_fn"], out["lesion_fp"]) == (1, 0, 0)
    assert out["lesion_dice"] == pytest.approx(2 * 36 / (36 + 54))
    assert out["lesion_hd95"] == pytest.approx(hd95(halves, lesion, (1.0, 1.0, 2.0)))
    assert out["lesion_hd95"] > 0.0


def test_one_component_touching_two_lesions_detects_both() -> None:
    """A bridge across two separate lesions is a detection of each (no false positive), scored once per lesion."""
    shape = (24, 7, 7)
    first = _box(shape, slice(1, 4), slice(2, 5), slice(2, 5))
    second = _box(shape, slice(19, 22), slice(2, 5), slice(2, 5))
    bridge = _box(shape, slice(1, 22), slice(3, 4), slice(3, 4))  # 21 voxels, 3 inside each lesion
    out = lesion_wise(bridge, first | second, ISO, with_hd95=False)
    assert (out["lesion_tp"], out["lesion_fn"], out["lesion_fp"]) == (2, 0, 0)
    assert out["lesion_dice"] == pytest.approx(2 * 3 / (21 + 27))


def test_lesion_counts_with_several_lesions_components_and_false_positives() -> None:
    """In scan order an ignored small lesion, two missed lesions and two detected ones, with two false positives:
    every count and both means (each lesion is scored whatever comes before it)."""
    shape = (50, 20, 8)
    small = _box(shape, slice(0, 2), slice(2, 4), slice(2, 4))  # 8 voxels, ignored
    lesions = [_box(shape, slice(a, a + 3), slice(2, 5), slice(2, 5)) for a in (10, 20, 30, 40)]
    ref = small | lesions[0] | lesions[1] | lesions[2] | lesions[3]
    fps = _box(shape, slice(2, 4), slice(14, 16), slice(2, 4)) | _box(shape, slice(46, 48), slice(14, 16), slice(5, 7))
    pred = small | lesions[2] | lesions[3] | fps
    out = lesion_wise(pred, ref, ISO)
    assert (out["lesion_tp"], out["lesion_fn"], out["lesion_fp"]) == (2, 2, 2)
    assert isinstance(out["lesion_fp"], int) and set(out) == {"lesion_dice", "lesion_hd95", "lesion_tp",
                                                               "lesion_fn", "lesion_fp"}
    assert out["lesion_dice"] == pytest.approx(2 / 6)
    assert out["lesion_hd95"] == pytest.approx(4 * 374.0 / 6)
    # a larger minimum leaves every lesion out: only the false positives remain
    out = lesion_wise(pred, ref, ISO, min_volume_mm3=27.0)
    assert (out["lesion_tp"], out["lesion_fn"], out["lesion_fp"]) == (0, 0, 2)
    assert out["lesion_dice"] == 0.0 and out["lesion_hd95"] == 374.0


def test_many_components_and_lesions_are_paired_like_few() -> None:
    """32 768 one-voxel predicted components around 48 one-voxel lesions (over a million possible pairs): each
    lesion is touched by the 64 components within its dilated mask, all the others are false positives."""
    pred = np.zeros((64, 64, 64), dtype=bool)
    pred[::2, ::2, ::2] = True
    ref = np.zeros_like(pred)
    ref[9:40:8, 9:40:8, 9:32:8] = True  # 4 × 4 × 3 lesions, 8 voxels apart
    out = lesion_wise(pred, ref, ISO, min_volume_mm3=0.0, with_hd95=False)
    assert (out["lesion_tp"], out["lesion_fn"], out["lesion_fp"]) == (48, 0, 32768 - 48 * 64)
    assert out["lesion_dice"] == 0.0


def test_lesion_minimum_volume_is_inclusive_and_in_mm3() -> None:
    """A lesion of exactly the minimum is ignored, one voxel more is scored; the default minimum is 20 mm³."""
    for voxels, scored in ((20, False), (21, True)):
        ref = np.zeros((30, 5, 5), dtype=bool)
        ref[2 : 2 + voxels, 2, 2] = True
        out = lesion_wise(np.zeros_like(ref), ref, ISO)
        assert out["lesion_fn"] == int(scored)
    ref = np.zeros((30, 5, 5), dtype=bool)
    ref[2:12, 2, 2] = True  # 10 voxels of 0.5 × 2 × 2 mm = 20 mm³, then 10.5 × 2 = 21 mm³
    assert lesion_wise(np.zeros_like(ref), ref, (0.5, 2.0, 2.0))["lesion_fn"] == 0
    assert lesion_wise(np.zeros_like(ref), ref, (0.525, 2.0, 2.0))["lesion_fn"] == 1


def test_et_lesion_minimum_is_ten_mm3_exactly() -> None:
    """ET: 10 voxels ignored, 11 scored; the same 11 voxels as TC fall under TC's 20 mm³."""
    for voxels, scored in ((10, False), (11, True)):
        ref = np.zeros((20, 5, 5), dtype=np.uint8)
        ref[2 : 2 + voxels, 2, 2] = LABELS["ET"]
        out = segmentation_metrics(np.zeros_like(ref), ref, ISO, regions=("ET", "TC"))
        assert out["ET"]["lesion_fn"] == int(scored) and out["TC"]["lesion_fn"] == 0


def test_legacy_hd95_is_not_directed() -> None:
    """A prediction inside the reference: the reference → prediction direction sets the HD95, in either order."""
    ref = _box((14, 14, 14), slice(1, 13), slice(1, 13), slice(1, 13))
    pred = _box((14, 14, 14), slice(6, 8), slice(6, 8), slice(6, 8))
    value = hd95(pred, ref, ISO)
    assert value == hd95(ref, pred, ISO)
    assert value > 4.0


def test_hd95_works_on_the_bounding_box_plus_one_voxel(monkeypatch: pytest.MonkeyPatch) -> None:
    """The distance is computed on the bounding box of both masks widened by one voxel, clipped to the array."""
    shapes = _spy_hausdorff(monkeypatch)
    shape = (30, 30, 30)
    pred = _box(shape, slice(10, 13), slice(5, 8), slice(20, 22))
    ref = _box(shape, slice(11, 15), slice(6, 9), slice(24, 25))
    hd95(pred, ref, ISO)
    assert shapes == [(7, 6, 7)]  # axis 0: 9..15, axis 1: 4..9, axis 2: 19..25
    edge = _box(shape, slice(0, 2), slice(28, 30), slice(0, 30))
    hd95(edge, edge, ISO)
    assert shapes[-1] == (3, 3, 30)


def test_lesion_hd95_works_on_the_dilated_lesion_box(monkeypatch: pytest.MonkeyPatch) -> None:
    """A detected lesion's distance is computed on the box of the lesion and its component, one voxel wider."""
    shapes = _spy_hausdorff(monkeypatch)
    lesion = _box((20, 20, 20), slice(8, 11), slice(8, 11), slice(8, 11))
    assert lesion_wise(lesion, lesion, ISO)["lesion_hd95"] == 0.0
    assert shapes == [(5, 5, 5)]


def test_hd95_emits_no_warnings() -> None:
    """The single-channel call to MONAI neither drops the foreground channel nor leaks MONAI's deprecation notice."""
    mask = _box((8, 8, 8), slice(2, 5), slice(2, 5), slice(2, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert hd95(mask, np.roll(mask, 1, axis=0), ISO) == pytest.approx(1.0)


def test_region_dice_with_empty_regions_in_a_label_map() -> None:
    """Regions empty in both maps score Dice 1 and HD95 0, regions empty in one map Dice 0 and the penalty."""
    ref = np.zeros((10, 10, 10), dtype=np.uint8)
    ref[2:6, 2:6, 2:6] = LABELS["SNFH"]  # no NETC, ET or RC in the reference
    pred = ref.copy()
    pred[3:5, 3:5, 3:5] = LABELS["ET"]  # ET predicted inside the oedema
    out = segmentation_metrics(pred, ref, (1.0, 2.0, 1.0))
    for region in ("NETC", "RC"):
        r = out[region]
        assert (r["dice"], r["hd95"], r["specificity"], r["volume_pred_ml"], r["volume_ref_ml"]) == (1.0, 0.0, 1.0,
                                                                                                     0.0, 0.0)
        assert math.isnan(r["sensitivity"])
        assert (r["lesion_dice"], r["lesion_hd95"], r["lesion_tp"], r["lesion_fn"], r["lesion_fp"]) == (1.0, 0.0, 0, 0,
                                                                                                         0)
    for region in ("ET", "TC"):
        r = out[region]
        assert r["dice"] == 0.0 and r["hd95"] == 374.0 and math.isnan(r["sensitivity"])
        assert r["specificity"] == pytest.approx(992 / 1000) and r["volume_pred_ml"] == pytest.approx(8 * 2.0 / 1000)
        assert (r["lesion_tp"], r["lesion_fn"], r["lesion_fp"], r["lesion_dice"]) == (0, 0, 1, 0.0)
    snfh = out["SNFH"]
    assert snfh["dice"] == pytest.approx(2 * 56 / (56 + 64)) and snfh["sensitivity"] == pytest.approx(56 / 64)
    assert snfh["specificity"] == 1.0 and snfh["volume_ref_ml"] == pytest.approx(64 * 2.0 / 1000)
    wt = out["WT"]
    assert wt["dice"] == 1.0 and wt["sensitivity"] == 1.0 and wt["lesion_dice"] == 1.0


def test_specificity_is_nan_when_the_reference_fills_the_volume() -> None:
    """No true negative or false positive can exist when the reference covers every voxel."""
    ref = np.full((3, 3, 3), LABELS["SNFH"], dtype=np.uint8)
    pred = ref.copy()
    pred[0] = 0
    out = segmentation_metrics(pred, ref, ISO, regions=("SNFH",), with_lesion_wise=False)["SNFH"]
    assert math.isnan(out["specificity"]) and out["sensitivity"] == pytest.approx(18 / 27)
    assert out["volume_pred_ml"] == pytest.approx(0.018) and out["volume_ref_ml"] == pytest.approx(0.027)
    # as many false positives as true negatives: specificity one half
    half = np.zeros((2, 2, 2), dtype=np.uint8)
    half[0] = LABELS["SNFH"]
    out = segmentation_metrics(half, np.zeros_like(half), ISO, regions=("SNFH",), with_lesion_wise=False)["SNFH"]
    assert out["specificity"] == 0.5 and math.isnan(out["sensitivity"])


def test_without_lesion_wise_only_the_legacy_metrics_are_returned() -> None:
    """``with_lesion_wise=False`` leaves the lesion-wise keys out, for the requested regions only."""
    seg = np.zeros((6, 6, 6), dtype=np.uint8)
    seg[1:4, 1:4, 1:4] = LABELS["NETC"]
    out = segmentation_metrics(seg, seg, ISO, regions=("TC", "NETC"), with_lesion_wise=False)
    assert list(out) == ["TC", "NETC"]
    for region in out:
        assert set(out[region]) == {"dice", "hd95", "sensitivity", "specificity", "volume_pred_ml", "volume_ref_ml"}
        assert out[region]["dice"] == 1.0 and out[region]["sensitivity"] == 1.0


def test_spacing_must_be_finite_and_positive() -> None:
    """Infinite, zero or negative voxel sizes are refused, with the offending spacing in the message."""
    a = np.zeros((4, 4, 4), dtype=bool)
    for spacing in ((1.0, math.inf, 1.0), (1.0, 1.0, 0.0), (-1.0, 1.0, 1.0), (1.0, math.nan, 1.0)):
        with pytest.raises(ValueError, match=r"^spacing must be positive and finite"):
            lesion_wise(a, a, spacing)
    with pytest.raises(ValueError, match=r"^spacing must have one value per axis \(3\)"):
        hd95(a, a, (1.0, 1.0))
    with pytest.raises(ValueError, match=r"^prediction and reference must have the same shape"):
        hd95(a, a[:3], ISO)
    assert lesion_wise(a, a, (0.5, 0.5, 0.5)) == {"lesion_dice": 1.0, "lesion_hd95": 0.0, "lesion_tp": 0,
                                                  "lesion_fn": 0, "lesion_fp": 0}


def test_hd95_takes_any_nonzero_value_as_foreground() -> None:
    """Masks given as label values (here 2 and 3) are read as nonzero = foreground, like boolean masks."""
    pred = _box((12, 12, 12), slice(2, 6), slice(2, 6), slice(2, 6))
    ref = _box((12, 12, 12), slice(3, 8), slice(2, 6), slice(2, 6))
    expected = hd95(pred, ref, ISO)
    assert expected == pytest.approx(2.0)
    assert hd95(pred.astype(np.uint8) * 2, ref.astype(np.uint8) * 3, ISO) == pytest.approx(expected)
    assert hd95(pred.astype(np.float32) * 0.5, ref.astype(np.int16) * -4, ISO) == pytest.approx(expected)


def test_a_detection_reaching_beyond_the_dilated_lesion_counts_whole() -> None:
    """A long component overlapping a lesion counts with all its voxels, also those far outside the lesion's dilated
    mask, whatever other components the case has."""
    shape = (34, 16, 8)
    lesion = _box(shape, slice(10, 13), slice(3, 6), slice(3, 6))
    bar = _box(shape, slice(11, 30), slice(3, 6), slice(3, 6))  # 171 voxels, 18 inside the lesion
    stray = _box(shape, slice(0, 2), slice(12, 14), slice(0, 2))  # first in scan order
    out = lesion_wise(bar | stray, lesion, ISO)
    assert (out["lesion_tp"], out["lesion_fn"], out["lesion_fp"]) == (1, 0, 1)
    assert out["lesion_dice"] == pytest.approx(2 * 18 / (171 + 27) / 2)
    assert out["lesion_hd95"] == pytest.approx((hd95(bar, lesion, ISO) + 374.0) / 2)
