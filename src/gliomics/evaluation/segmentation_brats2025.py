"""Segmentation metrics per case and region under the BraTS 2025 rule, computed by ``panoptica``.

From BraTS 2025 on, the challenges score with ``panoptica`` (Apache-2.0), configured for the glioma task (GLI) as
follows, which is what :func:`brats2025_evaluator` builds:

1. The label map is read as a semantic map; each region (NETC = 1, SNFH = 2, ET = 3, RC = 4, TC = 1+3,
   WT = 1+2+3) is split into connected components (``ConnectedComponentsInstanceApproximator``; connectivity of
   ``connected-components-3d``'s default, 26 in 3D).
2. Predicted and reference components are matched **one to one** by maximum bipartite matching on Dice, any overlap
   counting (``MaxBipartiteMatching``, threshold 1e-6). There is no dilation merge and no minimum lesion size: two
   reference lesions a few voxels apart stay two lesions, and every predicted component takes part.
3. Per matched pair: Dice, normalised surface Dice (NSD) and HD95. The tolerance of NSD is the smallest voxel
   spacing (panoptica's default, which the GLI configuration keeps: 1 mm at the BraTS resolution).
4. Per case and region: ``lesion_dice`` = mean Dice over the matched pairs (panoptica's segmentation quality
   ``sq_dsc``, the "lesion-wise Dice" of the official scorer's table); likewise ``lesion_nsd`` and ``lesion_hd95``;
   ``lesion_f1`` = 2·TP / (2·TP + FP + FN) (recognition quality) and ``panoptic_quality`` = ``lesion_dice`` ×
   ``lesion_f1``. With no match, the lesion-wise metrics are 0 (HD95: the penalty) when either side has lesions,
   and undefined (NaN, left out of means) when neither has any.
5. Global metrics of the region's whole masks: ``global_dice``, ``global_nsd`` and ``global_hd95_vox``. panoptica
   2.1.7 computes these without the voxel spacing, so, as the official scorer reports them, the global HD95 is in
   voxels and the global NSD has a tolerance of 0.5 voxel; the lesion-wise HD95 and NSD are in mm.

An infinite HD95 (one side empty) is reported as :data:`HD95_PENALTY_MM` (373, the diagonal of the BraTS SRI-24
volume in mm, which the official table writes in place of an infinite global HD95; gliomics writes it for the
lesion-wise HD95 too, where that table keeps the infinity).

The 2024 rule lives in :mod:`gliomics.evaluation.segmentation`; ``gliomics evaluate --rule`` picks one or both.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import warnings
from collections.abc import Sequence

import numpy as np

from gliomics.constants import REGIONS

#: HD95 (mm) written for an infinite distance, as the BraTS 2025 scorer's table does.
HD95_PENALTY_MM: float = 373.0
#: Columns this rule adds per region (see the module docstring).
METRICS: tuple[str, ...] = ("global_dice", "global_nsd", "global_hd95_vox", "lesion_dice", "lesion_nsd", "lesion_hd95",
                            "lesion_f1", "panoptic_quality", "lesion_tp", "lesion_fp", "lesion_fn")

#: panoptica's name of each value, by the name gliomics gives it.
PANOPTICA_KEYS = {"global_dice": "global_bin_dsc", "global_nsd": "global_bin_nsd",
                   "global_hd95_vox": "global_bin_hd95",
                   "lesion_dice": "sq_dsc", "lesion_nsd": "sq_nsd", "lesion_hd95": "sq_hd95", "lesion_f1": "rq",
                   "panoptic_quality": "pq_dsc", "lesion_tp": "tp", "lesion_fp": "fp", "lesion_fn": "fn"}

__all__ = ["HD95_PENALTY_MM", "METRICS", "PANOPTICA_KEYS", "brats2025_evaluator", "brats2025_metrics"]


@functools.lru_cache(maxsize=1)
def brats2025_evaluator():
    """The ``panoptica`` evaluator configured as the BraTS 2025 GLI scorer (module docstring), built once."""
    from panoptica import (
        ConnectedComponentsInstanceApproximator,
        InputType,
        MaxBipartiteMatching,
        Metric,
        Panoptica_Evaluator,
    )
    from panoptica.utils.citation_reminder import disable_citation_reminder
    from panoptica.utils.edge_case_handling import EdgeCaseHandler, EdgeCaseResult, MetricZeroTPEdgeCaseHandling
    from panoptica.utils.label_group import LabelGroup, LabelMergeGroup
    from panoptica.utils.segmentation_class import SegmentationClassGroups

    disable_citation_reminder()

    def zero_tp(value):
        return MetricZeroTPEdgeCaseHandling(no_instances_result=EdgeCaseResult.NAN, default_result=value)

    groups = {region.lower(): (LabelGroup if len(labels) == 1 else LabelMergeGroup)(list(labels))
              for region, labels in REGIONS.items()}
    metrics = [Metric.DSC, Metric.NSD, Metric.HD95]
    with contextlib.redirect_stdout(io.StringIO()):  # TC and WT share labels by design; panoptica prints a notice
        class_groups = SegmentationClassGroups(groups)
    return Panoptica_Evaluator(
        expected_input=InputType.SEMANTIC,
        instance_approximator=ConnectedComponentsInstanceApproximator(),
        instance_matcher=MaxBipartiteMatching(matching_metric=Metric.DSC, matching_threshold=1e-6),
        edge_case_handler=EdgeCaseHandler(
            listmetric_zeroTP_handling={Metric.DSC: zero_tp(EdgeCaseResult.ZERO),
                                        Metric.NSD: zero_tp(EdgeCaseResult.ZERO),
                                        Metric.HD95: zero_tp(EdgeCaseResult.INF)},
            empty_list_std=EdgeCaseResult.NAN),
        segmentation_class_groups=class_groups,
        instance_metrics=metrics,
        global_metrics=metrics,
    )


def _value(result, key: str) -> float:
    value = getattr(result, PANOPTICA_KEYS[key])
    if value is None:
        return math.nan
    value = float(value)
    return HD95_PENALTY_MM if "hd95" in key and math.isinf(value) else value


def brats2025_metrics(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float],
                      regions: Sequence[str] = tuple(REGIONS)) -> dict[str, dict[str, float]]:
    """The BraTS 2025 metrics of one case for each region (definitions in the module docstring).

    Args:
        pred: predicted BraTS 2024 label map (0 background, 1 NETC, 2 SNFH, 3 ET, 4 RC).
        ref: reference label map, same shape.
        spacing: voxel size in mm along each array axis.
        regions: region names from :data:`gliomics.constants.REGIONS`.

    Returns:
        ``{region: {name: value for name in METRICS}}``; counts are integers.

    Raises:
        ValueError: if the shapes differ, the spacing does not fit, a region is unknown or a label is not one of
            0-4.
    """
    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction and reference must have the same shape, got {pred.shape} and {ref.shape}.")
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != pred.ndim or not all(math.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"spacing must be one positive value per axis ({pred.ndim}), got {spacing}.")
    unknown = [r for r in regions if r not in REGIONS]
    if unknown:
        raise ValueError(f"unknown regions {unknown}; expected some of {list(REGIONS)}.")
    labels = set(np.unique(pred).tolist()) | set(np.unique(ref).tolist())
    if not labels <= {0, 1, 2, 3, 4}:
        raise ValueError(f"label values {sorted(labels - {0, 1, 2, 3, 4})} are not BraTS 2024 labels (0-4).")
    with warnings.catch_warnings():  # the global NSD's tolerance of 0.5 voxel (module docstring)
        warnings.filterwarnings("ignore", message="The threshold is set to 0.5")
        results = brats2025_evaluator().evaluate(pred.astype(np.uint8), ref.astype(np.uint8), voxelspacing=spacing,
                                                 skip_groups=[r.lower() for r in REGIONS if r not in regions])
    out: dict[str, dict[str, float]] = {}
    for region in regions:
        result = results[region.lower()]
        out[region] = {k: (int(_value(result, k)) if k in ("lesion_tp", "lesion_fp", "lesion_fn")
                           else _value(result, k)) for k in METRICS}
    return out
