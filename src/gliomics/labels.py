"""Measurements of BraTS 2024 label maps, in one place: region masks, label volumes and whole-volume Dice with the
BraTS convention (both empty → 1). Used by cohorts, validation, post-processing, prediction and evaluation."""

from __future__ import annotations

import numpy as np

from gliomics.constants import LABELS, NUM_CLASSES, REGIONS, TUMOUR_LABELS


def region_mask(seg: np.ndarray, region: str) -> np.ndarray:
    """Boolean mask of a region (ET, NETC, SNFH, RC, TC, WT) of a BraTS 2024 label map."""
    return np.isin(seg, REGIONS[region])


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice of two boolean masks; 1 when both are empty, 0 when only one is."""
    total = int(pred.sum()) + int(ref.sum())
    if total == 0:
        return 1.0
    return 2.0 * float(np.logical_and(pred, ref).sum()) / total


def dice_per_region(pred: np.ndarray, ref: np.ndarray, regions: tuple[str, ...] = tuple(REGIONS)) -> dict[str, float]:
    """Whole-volume ("legacy") Dice for each region."""
    return {r: dice(region_mask(pred, r), region_mask(ref, r)) for r in regions}


def label_volumes_mm3(seg: np.ndarray, voxel_mm3: float) -> dict[str, float]:
    """Volume in mm³ of each tumour label of a label map."""
    counts = np.bincount(np.asarray(seg).ravel().astype(np.int64), minlength=NUM_CLASSES)
    return {name: float(counts[LABELS[name]]) * voxel_mm3 for name in TUMOUR_LABELS}
