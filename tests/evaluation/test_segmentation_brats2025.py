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


NETC, ET, RC = 1, 3, 4
COUNTS = ("lesion_tp", "lesion_fp", "lesion_fn")


def _counts(m: dict) -> tuple[int, int, int]:
    assert all(type(m[k]) is int for k in COUNTS)
    return m["lesion_tp"], m["lesion_fp"], m["lesion_fn"]


def test_touching_netc_and_et_are_one_tumour_core_lesion():
    """TC and WT merge their labels before the components are found: touching NETC and ET form one TC lesion."""
    ref = _volume(np.s_[4:10, 4:10, 4:10], label=ET)
    ref[6:8, 6:8, 6:8] = NETC  # a necrotic core inside the enhancing rim
    ref[4:10, 4:10, 10:12] = SNFH  # oedema on one side
    pred = _volume(np.s_[4:10, 4:10, 4:10], label=ET)  # the whole core called enhancing
    m = brats2025_metrics(pred, ref, (1, 1, 1), regions=("TC", "WT", "ET", "NETC"))
    assert _counts(m["TC"]) == (1, 0, 0) and m["TC"]["lesion_dice"] == pytest.approx(1.0)
    assert _counts(m["WT"]) == (1, 0, 0) and m["WT"]["lesion_dice"] == pytest.approx(2 * 216 / (216 + 288))
    assert m["ET"]["lesion_dice"] == pytest.approx(2 * 208 / (208 + 216))
    assert _counts(m["NETC"]) == (0, 0, 1) and m["NETC"]["lesion_dice"] == 0.0
    assert m["NETC"]["global_dice"] == 0.0 and m["TC"]["global_dice"] == pytest.approx(1.0)
    assert list(m) == ["TC", "WT", "ET", "NETC"]


def test_touching_only_at_a_corner_is_one_component():
    """Components are 26-connected: two cubes meeting at a corner are one lesion, matched by one prediction."""
    ref = _volume(np.s_[4:7, 4:7, 4:7], np.s_[7:10, 7:10, 7:10])
    pred = _volume(np.s_[4:7, 4:7, 4:7])
    m = brats2025_metrics(pred, ref, (1, 1, 1), regions=("SNFH",))["SNFH"]
    assert _counts(m) == (1, 0, 0) and m["lesion_dice"] == pytest.approx(2 * 27 / (27 + 54))


def test_any_overlap_matches_and_adjacency_does_not():
    """A single shared voxel is enough to match (threshold 1e-6 on Dice); components side by side do not match."""
    ref = _volume(np.s_[2:12, 2:12, 2:12])  # 1000 voxels
    pred = _volume(np.s_[11:21, 11:21, 11:21])  # 1000 voxels, one voxel in common: Dice 0.001
    m = brats2025_metrics(pred, ref, (1, 1, 1), regions=("SNFH",))["SNFH"]
    assert _counts(m) == (1, 0, 0)
    assert m["lesion_dice"] == pytest.approx(2 / 2000) and m["lesion_f1"] == 1.0
    assert m["panoptic_quality"] == pytest.approx(2 / 2000)
    beside = _volume(np.s_[12:22, 2:12, 2:12])  # shares a face, no voxel
    m = brats2025_metrics(beside, ref, (1, 1, 1), regions=("SNFH",))["SNFH"]
    assert _counts(m) == (0, 1, 1)
    assert (m["lesion_dice"], m["lesion_nsd"], m["lesion_f1"], m["panoptic_quality"]) == (0.0, 0.0, 0.0, 0.0)
    assert m["lesion_hd95"] == HD95_PENALTY_MM == 373.0
    assert m["global_dice"] == 0.0


def test_the_best_overlap_wins_a_contested_lesion():
    """Two predictions on one lesion: the one with the higher Dice is matched, the other is a false positive."""
    ref = _volume(np.s_[4:14, 4:10, 4:10])  # 360 voxels
    pred = _volume(np.s_[4:11, 4:10, 4:10], np.s_[12:14, 4:10, 4:10])  # 252 and 72 voxels inside it
    m = brats2025_metrics(pred, ref, (1, 1, 1), regions=("SNFH",))["SNFH"]
    assert _counts(m) == (1, 1, 0)
    assert m["lesion_dice"] == pytest.approx(2 * 252 / (252 + 360))
    assert m["lesion_f1"] == pytest.approx(2 / 3)
    assert m["global_dice"] == pytest.approx(2 * 324 / (324 + 360))


def test_only_false_positives_score_zero_and_the_penalty():
    """Lesions predicted in an empty reference: every lesion-wise metric is 0 and the HD95 the penalty."""
    pred = _volume(A, np.s_[20:24, 20:24, 20:24])
    m = brats2025_metrics(pred, np.zeros_like(pred), (1, 1, 1), regions=("SNFH",))["SNFH"]
    assert _counts(m) == (0, 2, 0)
    assert (m["lesion_dice"], m["lesion_nsd"], m["lesion_f1"], m["panoptic_quality"]) == (0.0, 0.0, 0.0, 0.0)
    assert m["lesion_hd95"] == 373.0 and m["global_hd95_vox"] == 373.0
    assert m["global_dice"] == 0.0 and m["global_nsd"] == 0.0


def test_an_empty_case_is_undefined_not_zero():
    """Neither side has a lesion: the lesion-wise metrics are NaN, the counts 0 and the global Dice 1."""
    empty = np.zeros((8, 8, 8), np.uint8)
    m = brats2025_metrics(empty, empty, (1, 1, 1), regions=("RC",))["RC"]
    assert _counts(m) == (0, 0, 0)
    for key in ("lesion_dice", "lesion_nsd", "lesion_hd95", "lesion_f1", "panoptic_quality"):
        assert math.isnan(m[key]), key
    assert set(m) == {"global_dice", "global_nsd", "global_hd95_vox", "lesion_dice", "lesion_nsd", "lesion_hd95",
                      "lesion_f1", "panoptic_quality", "lesion_tp", "lesion_fp", "lesion_fn"}


def test_lesion_distances_are_in_mm_and_global_ones_in_voxels():
    """A 3-voxel shift along an axis of 2.5 mm: lesion HD95 7.5 mm, global HD95 3 voxels."""
    ref = _volume(np.s_[4:10, 4:10, 4:10], label=RC)
    pred = _volume(np.s_[4:10, 4:10, 7:13], label=RC)
    m = brats2025_metrics(pred, ref, (1.0, 1.0, 2.5), regions=("RC",))["RC"]
    assert m["lesion_hd95"] == pytest.approx(7.5) and m["global_hd95_vox"] == pytest.approx(3.0)
    assert m["lesion_dice"] == pytest.approx(0.5) and m["global_dice"] == pytest.approx(0.5)
    assert _counts(m) == (1, 0, 0) and m["lesion_f1"] == 1.0


def test_rc_label_is_accepted_and_nothing_is_printed_or_warned(capsys):
    """Label 4 (RC) is a BraTS 2024 label; a fresh evaluator prints nothing and the scoring issues no warning."""
    import warnings

    from gliomics.evaluation.segmentation_brats2025 import brats2025_evaluator

    brats2025_evaluator.cache_clear()
    ref = _volume(A, label=RC)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = brats2025_metrics(ref, ref, (1, 1, 1))
    assert capsys.readouterr().out == ""
    assert m["RC"]["lesion_dice"] == 1.0 and m["RC"]["global_nsd"] == 1.0 and m["RC"]["lesion_hd95"] == 0.0
    assert list(m) == ["ET", "NETC", "SNFH", "RC", "TC", "WT"]


def test_only_the_requested_regions_are_evaluated(monkeypatch):
    """The regions not asked for are skipped by name (lower case), in the call to panoptica."""
    from gliomics.evaluation.segmentation_brats2025 import brats2025_evaluator

    evaluator = brats2025_evaluator()
    calls = []
    original = evaluator.evaluate

    def spy(pred, ref, **kwargs):
        calls.append((pred.dtype, ref.dtype, kwargs))
        return original(pred, ref, **kwargs)

    monkeypatch.setattr(evaluator, "evaluate", spy)
    ref = _volume(A).astype(np.int64)
    brats2025_metrics(ref, ref, [2, 1, 1], regions=("WT", "ET"))
    (pred_dtype, ref_dtype, kwargs), = calls
    assert pred_dtype == ref_dtype == np.uint8
    assert kwargs["voxelspacing"] == (2.0, 1.0, 1.0)
    assert sorted(kwargs["skip_groups"]) == ["netc", "rc", "snfh", "tc"]


def test_bad_labels_and_spacing_are_named_in_the_error():
    """The message lists the labels outside 0-4 and the spacing given."""
    bad = np.arange(64, dtype=np.uint8).reshape(4, 4, 4) % 5  # every label 0-4 ...
    bad[0, 0, 0], bad[1, 1, 1] = 5, 9  # ... and two others
    with pytest.raises(ValueError, match=r"^label values \[5, 9\] are not BraTS 2024 labels \(0-4\)\.$"):
        brats2025_metrics(np.zeros((4, 4, 4)), bad, (1, 1, 1))
    for spacing in ((1, 1), (1, 0, 1), (1, -1, 1), (1, math.inf, 1)):
        with pytest.raises(ValueError, match=r"^spacing must be one positive value per axis \(3\)"):
            brats2025_metrics(bad, bad, spacing)
    with pytest.raises(ValueError, match=r"^unknown regions \['XX'\]"):
        brats2025_metrics(np.zeros((4, 4, 4)), np.zeros((4, 4, 4)), (1, 1, 1), regions=("ET", "XX"))


def test_a_case_with_every_label_is_accepted():
    """Labels 0-4 all present at once are all BraTS 2024 labels."""
    ref = _volume(A, label=RC)
    ref[5:7, 5:7, 5:7] = NETC
    ref[7:9, 7:9, 7:9] = ET
    ref[20:24, 20:24, 20:24] = SNFH
    m = brats2025_metrics(ref, ref, (1, 1, 1), regions=("RC", "TC", "WT"))
    assert m["RC"]["lesion_dice"] == 1.0 and _counts(m["TC"]) == (1, 0, 0) and _counts(m["WT"]) == (2, 0, 0)
