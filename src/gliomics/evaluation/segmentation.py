"""Segmentation metrics per case and region: whole-volume ("legacy") and BraTS 2024 lesion-wise.

Legacy metrics (one number per region over the whole volume):

- **Dice**, with the BraTS convention: both masks empty → 1, exactly one empty → 0
  (:func:`gliomics.evaluation.regions.dice`).
- **HD95** in mm (:func:`hd95`): the symmetric 95th-percentile Hausdorff distance, i.e. the *maximum of the two
  directed 95th percentiles* of the surface distances (prediction surface → reference surface and back). This is
  what the BraTS 2024 reference (``metrics_GLI.py``, via DeepMind's ``surface_distance.compute_robust_hausdorff``)
  and MONAI's :func:`monai.metrics.compute_hausdorff_distance` (``percentile=95, directed=False``) compute; we call
  the MONAI function. Surface voxels are the voxels of a mask removed by a 6-connected erosion, distances are
  Euclidean in mm between voxel centres using the (possibly anisotropic) spacing, and each percentile is linearly
  interpolated over surface voxels. ``surface_distance`` weights its percentile by surfel area instead, so on
  jagged surfaces the two can differ by a fraction of a voxel. Both empty → 0; exactly one empty →
  :data:`HD95_PENALTY_MM` (374 mm, the BraTS 2024 penalty).
- **Sensitivity** TP / (TP + FN): NaN when the reference is empty. **Specificity** TN / (TN + FP) over all voxels of
  the volume (so it is close to 1 for any reasonable prediction); NaN only if the reference fills the volume.
- **Volumes** of prediction and reference in mL (voxel count × voxel volume / 1000).

Lesion-wise metrics, as scored in BraTS 2024 GLI (``metrics_GLI.py``, Apache-2.0):

1. Connected components are 26-connected (3×3×3 structure).
2. Ground-truth components that meet after :data:`DILATION_ITERATIONS` (3) dilations with the 26-connected
   structure form one lesion: the ground-truth mask is dilated 3 times, the dilated mask is labelled, and each
   original component takes the label of the dilated component it lies in. The 3-times-dilated mask of a lesion is
   therefore its dilated component.
3. Each ground-truth lesion is compared with the union of the predicted components that touch its dilated mask:
   lesion Dice and lesion HD95 between the lesion and that union. A lesion no predicted component touches is
   missed (false negative): Dice 0, HD95 374.
4. Ground-truth lesions of at most :data:`LESION_MIN_VOLUME_MM3` (20 mm³; 10 mm³ for ET) are left out of the score
   entirely; predicted components that touch only such lesions are not false positives.
5. A predicted component that touches no dilated ground-truth lesion is a false positive: Dice 0, HD95 374.
6. The case score is the sum of lesion Dice over (scored lesions + false positives); HD95 is averaged over the same
   count. With no scored lesion and no false positive, the case scores Dice 1 and HD95 0.

Some BraTS 2024 scripts (e.g. for other sub-challenges) further merge *predicted* components by dilation, drop
small predicted components or merge touching ET and NETC labels before scoring; we do not, and follow the
definition above.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from gliomics.constants import REGIONS
from gliomics.labels import dice, region_mask

logger = logging.getLogger(__name__)

#: HD95 (mm) given to a missed or false-positive lesion and to a legacy HD95 with exactly one empty mask (BraTS 2024).
HD95_PENALTY_MM: float = 374.0
#: Dilations (26-connected) that merge nearby ground-truth components into one lesion and define "touching".
DILATION_ITERATIONS: int = 3
#: Ground-truth lesions of at most this volume (mm³) are left out of the lesion-wise score.
LESION_MIN_VOLUME_MM3: dict[str, float] = {region: 10.0 if region == "ET" else 20.0 for region in REGIONS}

__all__ = [
    "DILATION_ITERATIONS",
    "HD95_PENALTY_MM",
    "LESION_MIN_VOLUME_MM3",
    "hd95",
    "lesion_wise",
    "segmentation_metrics",
]


def _check_pair(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> tuple[float, ...]:
    """Validate shapes and spacing; return the spacing as floats."""
    if pred.shape != ref.shape:
        raise ValueError(f"prediction and reference must have the same shape, got {pred.shape} and {ref.shape}.")
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != pred.ndim:
        raise ValueError(f"spacing must have one value per axis ({pred.ndim}), got {spacing}.")
    if not all(math.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"spacing must be positive and finite, got {spacing}.")
    return spacing


def _bbox(mask: np.ndarray, margin: int = 0) -> tuple[slice, ...] | None:
    """Bounding box of a mask widened by `margin` voxels and clipped to the array; None if empty."""
    if not mask.any():
        return None
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        idx = np.flatnonzero(mask.any(axis=other))
        box.append(slice(max(int(idx[0]) - margin, 0), min(int(idx[-1]) + 1 + margin, mask.shape[axis])))
    return tuple(box)


def _union_box(*boxes: tuple[slice, ...] | None) -> tuple[slice, ...] | None:
    boxes = tuple(b for b in boxes if b is not None)
    if not boxes:
        return None
    return tuple(slice(min(s.start for s in axis), max(s.stop for s in axis)) for axis in zip(*boxes))


def _hd95_nonempty(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> float:
    """HD95 of two non-empty boolean masks (no checks)."""
    # Local import: torch-backed MONAI is only needed once a distance is actually computed.
    from monai.metrics import compute_hausdorff_distance

    box = _union_box(_bbox(pred, margin=1), _bbox(ref, margin=1))
    with warnings.catch_warnings():
        # MONAI 1.5-1.6 passes its own deprecated `always_return_as_numpy` argument internally.
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy.*", category=FutureWarning)
        value = compute_hausdorff_distance(
            pred[box][None, None],
            ref[box][None, None],
            include_background=True,
            percentile=95,
            directed=False,
            spacing=list(spacing),
        )
    return float(value.item())


def hd95(pred_mask: np.ndarray, ref_mask: np.ndarray, spacing: Sequence[float]) -> float:
    """Symmetric 95th-percentile Hausdorff distance in mm between two binary masks.

    The maximum of the two directed 95th percentiles of surface-voxel distances (see the module docstring), computed
    with :func:`monai.metrics.compute_hausdorff_distance` on the bounding box of the two masks.

    Args:
        pred_mask: predicted mask (nonzero = foreground).
        ref_mask: reference mask, same shape.
        spacing: voxel size in mm along each axis of the arrays.

    Returns:
        HD95 in mm; 0 if both masks are empty, :data:`HD95_PENALTY_MM` if exactly one is.

    Raises:
        ValueError: if the shapes differ or the spacing does not fit.
    """
    pred, ref = np.asarray(pred_mask).astype(bool), np.asarray(ref_mask).astype(bool)
    spacing = _check_pair(pred, ref, spacing)
    has_pred, has_ref = bool(pred.any()), bool(ref.any())
    if not has_pred and not has_ref:
        return 0.0
    if not has_pred or not has_ref:
        return HD95_PENALTY_MM
    return _hd95_nonempty(pred, ref, spacing)


def _label_lesions(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, int, np.ndarray, int, np.ndarray]:
    """Label the 26-connected predicted components and the reference lesions (components merged by dilation).

    Returns the predicted labels and their count, the labels of the dilated reference and their count, and the
    reference voxels labelled with their lesion.
    """
    structure = np.ones((3,) * pred.ndim, dtype=bool)
    pred_labels, n_pred = ndimage.label(pred, structure=structure)
    if ref.any():
        dilated = ndimage.binary_dilation(ref, structure=structure, iterations=DILATION_ITERATIONS)
        dilated_labels, n_lesions = ndimage.label(dilated, structure=structure)
    else:
        dilated_labels, n_lesions = np.zeros(ref.shape, dtype=np.int32), 0
    lesion_labels = np.where(ref, dilated_labels, 0)
    return pred_labels, n_pred, dilated_labels, n_lesions, lesion_labels


def _touching_pairs(pred_labels: np.ndarray, n_pred: int, dilated_labels: np.ndarray, n_lesions: int) -> np.ndarray:
    """The (predicted component, lesion) pairs that touch, i.e. overlap within the lesion's dilated mask, as a
    ``2 x n`` array sorted by pair."""
    touching = (pred_labels > 0) & (dilated_labels > 0)
    keys = pred_labels[touching].astype(np.int64) * (n_lesions + 1) + dilated_labels[touching]
    # A histogram of the pair keys is much faster than sorting them when the label counts are modest.
    if (n_pred + 1) * (n_lesions + 1) <= 1 << 20:
        keys = np.flatnonzero(np.bincount(keys, minlength=1))
    else:
        keys = np.unique(keys)
    return np.stack([keys // (n_lesions + 1), keys % (n_lesions + 1)])


def _score_lesions(
    pred_labels: np.ndarray,
    dilated_labels: np.ndarray,
    lesion_labels: np.ndarray,
    pairs: np.ndarray,
    lesion_volumes: np.ndarray,
    min_volume_mm3: float,
    spacing: tuple[float, ...],
    with_hd95: bool,
) -> tuple[float, float, int, int]:
    """Sum the Dice and HD95 of every reference lesion over ``min_volume_mm3`` against the predicted components
    touching it.

    Returns the Dice sum, the HD95 sum (penalty for missed lesions), and the counts of touched and missed lesions.
    """
    pred_boxes = ndimage.find_objects(pred_labels)
    lesion_boxes = ndimage.find_objects(dilated_labels)
    dice_sum, hd_sum, n_tp, n_fn = 0.0, 0.0, 0, 0
    for lesion in range(1, len(lesion_volumes)):
        if lesion_volumes[lesion] <= min_volume_mm3:
            continue
        components = pairs[0][pairs[1] == lesion]
        if components.size == 0:
            n_fn += 1
            hd_sum += HD95_PENALTY_MM
            continue
        n_tp += 1
        # The lesion lies in its dilated box and each touching component in its own box: their union holds both.
        sub = _union_box(lesion_boxes[lesion - 1], *(pred_boxes[c - 1] for c in components))
        lesion_mask = lesion_labels[sub] == lesion
        pred_union = np.isin(pred_labels[sub], components)
        dice_sum += dice(pred_union, lesion_mask)
        if with_hd95:
            hd_sum += _hd95_nonempty(pred_union, lesion_mask, spacing)
    return dice_sum, hd_sum, n_tp, n_fn


def lesion_wise(
    pred_mask: np.ndarray,
    ref_mask: np.ndarray,
    spacing: Sequence[float],
    min_volume_mm3: float = LESION_MIN_VOLUME_MM3["WT"],
    *,
    with_hd95: bool = True,
) -> dict[str, float]:
    """BraTS 2024 lesion-wise Dice and HD95 of one region (definition in the module docstring).

    Args:
        pred_mask: predicted mask of the region (nonzero = foreground).
        ref_mask: reference mask of the region, same shape.
        spacing: voxel size in mm along each axis of the arrays.
        min_volume_mm3: reference lesions of at most this volume are ignored (20 mm³ in BraTS 2024, 10 mm³ for ET).
        with_hd95: False skips the distances (``lesion_hd95`` is then NaN), for a fast lesion-wise Dice.

    Returns:
        ``lesion_dice`` and ``lesion_hd95`` (case scores), ``lesion_tp`` (scored reference lesions touched by the
        prediction), ``lesion_fn`` (scored reference lesions missed) and ``lesion_fp`` (predicted components touching
        no reference lesion).

    Raises:
        ValueError: if the shapes differ or the spacing does not fit.
    """
    pred, ref = np.asarray(pred_mask).astype(bool), np.asarray(ref_mask).astype(bool)
    spacing = _check_pair(pred, ref, spacing)
    voxel_mm3 = float(np.prod(spacing))

    # Everything below happens inside the bounding box of pred ∪ dilated ref: the dilation of a 26-connected
    # structure reaches exactly DILATION_ITERATIONS voxels along each axis, so nothing is cut off.
    box = _union_box(_bbox(pred), _bbox(ref, margin=DILATION_ITERATIONS))
    if box is None:
        return {"lesion_dice": 1.0, "lesion_hd95": 0.0, "lesion_tp": 0, "lesion_fn": 0, "lesion_fp": 0}
    pred, ref = pred[box], ref[box]

    pred_labels, n_pred, dilated_labels, n_lesions, lesion_labels = _label_lesions(pred, ref)
    lesion_volumes = np.bincount(lesion_labels.ravel(), minlength=n_lesions + 1) * voxel_mm3
    pairs = _touching_pairs(pred_labels, n_pred, dilated_labels, n_lesions)
    n_fp = n_pred - np.unique(pairs[0]).size
    dice_sum, hd_sum, n_tp, n_fn = _score_lesions(
        pred_labels, dilated_labels, lesion_labels, pairs, lesion_volumes, min_volume_mm3, spacing, with_hd95
    )

    hd_sum += n_fp * HD95_PENALTY_MM
    count = n_tp + n_fn + n_fp
    if count == 0:
        lesion_dice, lesion_hd95 = 1.0, 0.0
    else:
        lesion_dice, lesion_hd95 = dice_sum / count, hd_sum / count
    if not with_hd95:
        lesion_hd95 = math.nan
    return {
        "lesion_dice": lesion_dice,
        "lesion_hd95": lesion_hd95,
        "lesion_tp": n_tp,
        "lesion_fn": n_fn,
        "lesion_fp": int(n_fp),
    }


def _legacy(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> dict[str, float]:
    """Whole-volume metrics of two boolean masks (shapes and spacing already checked)."""
    n_pred, n_ref = int(pred.sum()), int(ref.sum())
    tp = int(np.count_nonzero(pred & ref))
    fp, fn = n_pred - tp, n_ref - tp
    tn = pred.size - tp - fp - fn
    voxel_ml = float(np.prod(spacing)) / 1000.0
    return {
        "dice": dice(pred, ref),
        "hd95": hd95(pred, ref, spacing),
        "sensitivity": tp / n_ref if n_ref else math.nan,
        "specificity": tn / (tn + fp) if tn + fp else math.nan,
        "volume_pred_ml": n_pred * voxel_ml,
        "volume_ref_ml": n_ref * voxel_ml,
    }


def segmentation_metrics(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: tuple[float, float, float],
    regions: Sequence[str] = tuple(REGIONS),
    *,
    with_lesion_wise: bool = True,
) -> dict[str, dict[str, float]]:
    """Legacy and lesion-wise metrics of one case for each region (definitions in the module docstring).

    Args:
        pred: predicted BraTS 2024 label map (0 background, 1 NETC, 2 SNFH, 3 ET, 4 RC).
        ref: reference label map, same shape.
        spacing: voxel size in mm along each array axis.
        regions: region names from :data:`gliomics.constants.REGIONS`.
        with_lesion_wise: False leaves out the BraTS 2024 lesion-wise metrics.

    Returns:
        ``{region: {"dice", "hd95", "sensitivity", "specificity", "volume_pred_ml", "volume_ref_ml",
        "lesion_dice", "lesion_hd95", "lesion_tp", "lesion_fn", "lesion_fp"}}``. Lesions are ignored below
        :data:`LESION_MIN_VOLUME_MM3` of the region.

    Raises:
        ValueError: if the shapes differ, the spacing does not fit, or a region is unknown.
    """
    pred, ref = np.asarray(pred), np.asarray(ref)
    spacing = _check_pair(pred, ref, spacing)
    unknown = [r for r in regions if r not in REGIONS]
    if unknown:
        raise ValueError(f"unknown regions {unknown}; expected some of {list(REGIONS)}.")
    results: dict[str, dict[str, float]] = {}
    for region in regions:
        pred_mask, ref_mask = region_mask(pred, region), region_mask(ref, region)
        results[region] = _legacy(pred_mask, ref_mask, spacing)
        if with_lesion_wise:
            results[region].update(lesion_wise(pred_mask, ref_mask, spacing, LESION_MIN_VOLUME_MM3[region]))
    return results
