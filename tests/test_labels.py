"""Region masks and whole-volume Dice (BraTS convention)."""

from __future__ import annotations

import numpy as np
import pytest

from gliomics.constants import LABELS, REGIONS
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
