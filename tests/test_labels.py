"""Region masks, whole-volume Dice (BraTS convention) and Youden thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from gliomics.constants import LABELS, REGIONS
from gliomics.evaluation.thresholds import youden_threshold
from gliomics.labels import dice, dice_per_region, region_mask

# ---------------------------------------------------------------- dice


def test_dice_hand_computed() -> None:
    pred = np.zeros((3, 3, 3), dtype=bool)
    ref = np.zeros((3, 3, 3), dtype=bool)
    pred[0, 0, :3] = True  # voxels (0,0,0), (0,0,1), (0,0,2)
    ref[0, 0, 1:] = True  # (0,0,1), (0,0,2)
    ref[1, 1, 1] = True  # and one elsewhere: 3 voxels, 2 shared
    assert dice(pred, ref) == pytest.approx(2 * 2 / 6)
    assert dice(ref, pred) == pytest.approx(2 / 3)


def test_dice_identical_and_disjoint() -> None:
    a = np.zeros((4, 4), dtype=bool)
    a[1:3, 1:3] = True
    b = np.zeros_like(a)
    b[0, 0] = True
    assert dice(a, a) == 1.0
    assert dice(a, b) == 0.0


def test_dice_empty_cases() -> None:
    empty = np.zeros((2, 2, 2), dtype=bool)
    full = np.ones((2, 2, 2), dtype=bool)
    assert dice(empty, empty) == 1.0
    assert dice(empty, full) == 0.0
    assert dice(full, empty) == 0.0


# ---------------------------------------------------------------- regions


def test_region_membership() -> None:
    seg = np.arange(5, dtype=np.uint8)  # one voxel per label: 0 bg, 1 NETC, 2 SNFH, 3 ET, 4 RC
    expected = {
        "TC": [LABELS["NETC"], LABELS["ET"]],
        "WT": [LABELS["NETC"], LABELS["SNFH"], LABELS["ET"]],
        "ET": [LABELS["ET"]],
        "NETC": [LABELS["NETC"]],
        "SNFH": [LABELS["SNFH"]],
        "RC": [LABELS["RC"]],
    }
    assert set(expected) == set(REGIONS)
    for region, labels in expected.items():
        mask = region_mask(seg, region)
        assert mask.dtype == bool
        assert np.flatnonzero(mask).tolist() == labels, region
    assert not region_mask(seg, "WT")[LABELS["RC"]]  # the resection cavity is not tumour
    assert not region_mask(seg, "WT")[0]


def test_region_mask_unknown_region() -> None:
    with pytest.raises(KeyError):
        region_mask(np.zeros(3, dtype=np.uint8), "XYZ")


def test_dice_per_region() -> None:
    ref = np.array([0, 1, 2, 3, 3, 4], dtype=np.uint8)
    pred = np.array([0, 3, 2, 3, 2, 0], dtype=np.uint8)
    scores = dice_per_region(pred, ref)
    assert set(scores) == set(REGIONS)
    assert scores["ET"] == pytest.approx(2 * 1 / (2 + 2))  # ET at indices: pred {1,3}, ref {3,4}
    assert scores["NETC"] == 0.0  # pred has none, ref has one
    assert scores["TC"] == pytest.approx(2 * 2 / (2 + 3))  # indices: pred {1,3}, ref {1,3,4}
    assert scores["WT"] == pytest.approx(1.0)  # indices {1,2,3,4} in both
    assert scores["RC"] == 0.0
    assert dice_per_region(pred, ref, regions=("WT",)) == {"WT": pytest.approx(1.0)}


def test_dice_per_region_both_empty_is_one() -> None:
    seg = np.zeros((2, 2, 2), dtype=np.uint8)
    assert all(v == 1.0 for v in dice_per_region(seg, seg).values())


# ---------------------------------------------------------------- youden_threshold


def test_youden_separates_a_separable_example() -> None:
    y = np.array([0, 0, 0, 0, 1, 1, 1])
    prob = np.array([0.05, 0.2, 0.3, 0.35, 0.6, 0.7, 0.9])
    thr = youden_threshold(y, prob)
    assert 0.35 < thr <= 0.6
    np.testing.assert_array_equal((prob >= thr).astype(int), y)


def test_youden_separable_with_shuffled_order() -> None:
    rng = np.random.default_rng(0)
    neg, pos = rng.uniform(0.0, 0.4, 20), rng.uniform(0.55, 1.0, 15)
    y = np.r_[np.zeros(20, int), np.ones(15, int)]
    prob = np.r_[neg, pos]
    order = rng.permutation(y.size)
    thr = youden_threshold(y[order], prob[order])
    assert neg.max() < thr <= pos.min()
    assert 0.0 <= thr <= 1.0


@pytest.mark.parametrize("y", [[0, 0, 0], [1, 1], []])
def test_youden_one_class_is_half(y: list[int]) -> None:
    prob = np.linspace(0.1, 0.9, len(y))
    assert youden_threshold(np.array(y, dtype=int), prob) == 0.5


def test_youden_is_within_unit_interval() -> None:
    # a reversed classifier: the best J is at the extreme threshold, which is clipped into [0, 1]
    y = np.array([1, 1, 0, 0])
    prob = np.array([0.1, 0.2, 0.8, 0.9])
    assert 0.0 <= youden_threshold(y, prob) <= 1.0
