"""The BraTS 2025 rule (panoptica as the GLI scorer runs it) on hand-built volumes with known answers, beside the
BraTS 2024 rule on the same volumes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gliomics.evaluation.segmentation import segmentation_metrics
from gliomics.evaluation.segmentation_brats2025 import HD95_PENALTY_MM, brats2025_metrics

SNFH = 2


def _volume(*boxes: tuple[slice, slice, slice], label: int = SNFH, shape=(32, 32, 32)) -> np.ndarray:
    vol = np.zeros(shape, dtype=np.uint8)
    for box in boxes:
        vol[box] = label
    return vol


A = np.s_[4:10, 4:10, 4:10]     # 216 voxels
B = np.s_[12:18, 4:10, 4:10]    # 216 voxels, 2 voxels from A: one lesion after the 2024 rule's 3 dilations
BOTH = np.s_[4:18, 4:10, 4:10]  # 504 voxels: A, B and the gap between them


def test_matching_is_one_to_one():
    # two reference lesions, each overlapped by its own predicted component of known Dice
    ref = _volume(np.s_[2:8, 2:8, 2:8], np.s_[20:26, 20:26, 20:26])
    pred = _volume(np.s_[2:8, 2:8, 2:7], np.s_[20:26, 20:26, 20:26], np.s_[2:4, 28:30, 28:30])  # + a false positive
    m = brats2025_metrics(pred, ref, (1, 1, 1))["SNFH"]
    assert (m["lesion_tp"], m["lesion_fp"], m["lesion_fn"]) == (2, 1, 0)
    dice_first = 2 * 180 / (180 + 216)
    assert m["lesion_dice"] == pytest.approx((dice_first + 1.0) / 2)  # over the matched pairs only
    assert m["lesion_f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 0))
    assert m["panoptic_quality"] == pytest.approx(m["lesion_dice"] * m["lesion_f1"])
    assert m["global_dice"] == pytest.approx(2 * (180 + 216) / (180 + 216 + 8 + 216 + 216))


def test_a_merged_pair_is_one_lesion_in_2024_and_two_in_2025():
    ref, pred = _volume(A, B), _volume(BOTH)
    old = segmentation_metrics(pred, ref, (1, 1, 1), regions=("SNFH",))["SNFH"]
    assert (old["lesion_tp"], old["lesion_fp"], old["lesion_fn"]) == (1, 0, 0)
    assert old["lesion_dice"] == pytest.approx(2 * 432 / (504 + 432))

    new = brats2025_metrics(pred, ref, (1, 1, 1), regions=("SNFH",))["SNFH"]
    assert (new["lesion_tp"], new["lesion_fp"], new["lesion_fn"]) == (1, 0, 1)  # one component matches one lesion
    assert new["lesion_dice"] == pytest.approx(2 * 216 / (504 + 216))
    assert new["lesion_f1"] == pytest.approx(2 / 3)
    assert new["panoptic_quality"] == pytest.approx(0.6 * 2 / 3)


def test_a_split_prediction_of_one_lesion_leaves_a_false_positive_in_2025():
    ref, pred = _volume(BOTH), _volume(A, B)
    old = segmentation_metrics(pred, ref, (1, 1, 1), regions=("SNFH",))["SNFH"]
    assert (old["lesion_tp"], old["lesion_fp"]) == (1, 0)  # both components touch the one lesion
    new = brats2025_metrics(pred, ref, (1, 1, 1), regions=("SNFH",))["SNFH"]
    assert (new["lesion_tp"], new["lesion_fp"], new["lesion_fn"]) == (1, 1, 0)


def test_no_minimum_lesion_size_in_2025():
    ref = _volume(np.s_[4:12, 4:12, 4:12], np.s_[20:22, 20:22, 20:22])  # 512 voxels and an 8-voxel lesion
    pred = _volume(np.s_[4:12, 4:12, 4:12])
    old = segmentation_metrics(pred, ref, (1, 1, 1), regions=("SNFH",))["SNFH"]
    assert (old["lesion_tp"], old["lesion_fn"], old["lesion_dice"]) == (1, 0, 1.0)  # 8 mm³ ≤ 20 mm³: ignored
    new = brats2025_metrics(pred, ref, (1, 1, 1), regions=("SNFH",))["SNFH"]
    assert (new["lesion_tp"], new["lesion_fn"]) == (1, 1)
    assert new["lesion_dice"] == 1.0 and new["lesion_f1"] == pytest.approx(2 / 3)


def test_nsd_counts_surface_voxels_within_one_voxel_spacing():
    # reference: a one-voxel plate (every voxel on its surface); prediction: the plate three voxels thick.
    # Prediction surface: 300 - 64 interior = 236 voxels, of which 100 (z=5) at 0 mm and 36 (z=6, rim) at 1 mm
    # lie within the tolerance (the smallest spacing, 1 mm) and 100 (z=7) at 2 mm do not; every reference surface
    # voxel lies on the prediction. panoptica's NSD: (136/236 + 1) / (136/236 + 1 + 100/236 + 0) = 372/472.
    ref = _volume(np.s_[5:15, 5:15, 5:6])
    pred = _volume(np.s_[5:15, 5:15, 5:8])
    m = brats2025_metrics(pred, ref, (1, 1, 1), regions=("SNFH",))["SNFH"]
    assert m["lesion_nsd"] == pytest.approx(372 / 472)
    assert m["lesion_dice"] == pytest.approx(0.5)
    # identical masks: NSD 1; a one-voxel shift lies within the tolerance at any spacing
    assert brats2025_metrics(ref, ref, (2, 2, 2), regions=("SNFH",))["SNFH"]["lesion_nsd"] == pytest.approx(1.0)
    shifted = _volume(np.s_[4:14, 4:14, 4:14])
    cube = _volume(np.s_[5:15, 4:14, 4:14])
    m = brats2025_metrics(shifted, cube, (2, 2, 2), regions=("SNFH",))["SNFH"]
    assert m["lesion_nsd"] == pytest.approx(1.0) and m["lesion_dice"] == pytest.approx(0.9)
    assert m["lesion_hd95"] == pytest.approx(2.0)  # lesion-wise distances in mm


def test_empty_sides():
    ref, empty = _volume(A), np.zeros((32, 32, 32), np.uint8)
    missed = brats2025_metrics(empty, ref, (1, 1, 1), regions=("SNFH",))["SNFH"]
    assert (missed["lesion_dice"], missed["lesion_hd95"], missed["lesion_fn"]) == (0.0, HD95_PENALTY_MM, 1)
    assert missed["global_hd95_vox"] == HD95_PENALTY_MM
    nothing = brats2025_metrics(empty, empty, (1, 1, 1), regions=("ET",))["ET"]
    assert math.isnan(nothing["lesion_dice"]) and nothing["lesion_tp"] == 0  # left out of cohort means


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="same shape"):
        brats2025_metrics(np.zeros((4, 4, 4)), np.zeros((4, 4, 5)), (1, 1, 1))
    with pytest.raises(ValueError, match="not BraTS 2024 labels"):
        brats2025_metrics(np.full((4, 4, 4), 7), np.zeros((4, 4, 4)), (1, 1, 1))
    with pytest.raises(ValueError, match="unknown regions"):
        brats2025_metrics(np.zeros((4, 4, 4)), np.zeros((4, 4, 4)), (1, 1, 1), regions=("XX",))
