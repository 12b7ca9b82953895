"""Validation during training: the validation cases predicted as ``gliomics predict`` would, scored (Dice per
region, marker AUC) and summarised into what the run fits (thresholds, minimums, calibration); sharded over ranks and
gathered."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from gliomics.constants import LABELS, MARKERS, TUMOUR_LABELS
from gliomics.data.cohort import CohortCase
from gliomics.evaluation.segmentation import LESION_MIN_VOLUME_MM3, lesion_wise
from gliomics.inference.calibration import fit_run_calibration, youden_threshold
from gliomics.inference.postprocess import (
    fit_min_component_volumes,
    fit_min_label_volumes,
    without_small_components,
)
from gliomics.io import load_label, voxel_spacing
from gliomics.labels import dice_per_region, label_volumes_mm3
from gliomics.runtime.distributed import DistInfo, all_gather_objects

#: What validation changes in a run's prediction options: it fits the label and component minimums, the marker
#: thresholds and the calibration, so it predicts without them (and with the network's heads: the readout is fitted
#: after training). Everything else (TTA, cavity rule, small components, resampling to the input grid) is the run's.
VALIDATION_OPTIONS = {"label_minimums": False, "component_minimums": False, "marker_readout": False,
                      "calibration": False}


def validate_cases(predictor, samples: Sequence[dict], cases: Sequence[CohortCase], *, info: DistInfo,
                   references: dict[str, Any] | None = None) -> list[dict]:
    """Per-case Dice and raw marker probabilities of this rank's validation ``cases`` (``samples``: their
    preprocessed inputs, built once by ``predictor``'s preprocessing, e.g. a cached dataset), gathered from all
    ranks.

    ``predictor`` is the network being trained (:meth:`Predictor.from_network
    <gliomics.inference.predictor.Predictor.from_network>` with :data:`VALIDATION_OPTIONS`): each case is predicted
    as ``gliomics predict`` predicts it and scored on the grid its labels are written on, against its reference
    segmentation (kept in ``references`` across calls), so that the minimums fitted from these rows are applied to
    the same label maps they were fitted on."""
    predictor.model.eval()
    references = {} if references is None else references
    rows = []
    for i in range(len(samples)):  # by index: a rank may hold no case, and an empty MONAI dataset cannot be iterated
        case = cases[i]
        prediction = predictor.predict(case.case, data=samples[i])
        row: dict = {"case_id": case.case_id, "markers": case.marker_vector().tolist(),
                     "prob": prediction.raw_markers}
        if prediction.seg is not None and case.case.seg is not None:
            if case.case_id not in references:
                references[case.case_id] = load_label(case.case.seg, label_map=case.case.label_map).array
            row.update(segmentation_row(prediction.seg, references[case.case_id], voxel_spacing(prediction.affine)))
        rows.append(row)
    gathered = all_gather_objects(rows, info)
    return sorted((r for part in gathered for r in part), key=lambda r: r["case_id"])


def segmentation_row(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> dict[str, Any]:
    """Dice per region, predicted and reference volume per tumour label, and the lesion-wise Dice under each
    candidate component minimum (:func:`component_scores`) of one predicted label map."""
    voxel_mm3 = float(np.prod(spacing))
    pv, rv = label_volumes_mm3(pred, voxel_mm3), label_volumes_mm3(ref, voxel_mm3)
    return {"dice": dice_per_region(pred, ref), "volumes_mm3": {name: [pv[name], rv[name]] for name in TUMOUR_LABELS},
            "component_dice": component_scores(pred, ref, spacing)}


def component_scores(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> dict[str, list[float]]:
    """Per tumour label, its lesion-wise Dice with the components below each candidate minimum removed
    (:func:`~gliomics.inference.postprocess.without_small_components`), for
    :func:`~gliomics.inference.postprocess.fit_min_component_volumes`."""
    voxel_mm3 = float(np.prod(spacing))
    out = {}
    for name in TUMOUR_LABELS:
        truth = ref == LABELS[name]
        out[name] = [lesion_wise(mask, truth, spacing, LESION_MIN_VOLUME_MM3[name], with_hd95=False)["lesion_dice"]
                     for mask in without_small_components(pred == LABELS[name], voxel_mm3)]
    return out


def summarise(rows: list[dict], auc_weight: float = 0.5, volume_caps: dict[str, float] | None = None) -> dict:
    """Mean Dice per region, AUC and Youden thresholds per marker, minimum label volumes, the number of cases behind
    each (``n_dice``, ``n_<marker>``), the model-selection score, and the marker calibration of these cases
    (:func:`~gliomics.inference.calibration.fit_run_calibration`: temperature, operating points, conformal sets).

    The score is ``(1 - auc_weight) * mean Dice + auc_weight * mean AUC``: the mean Dice over the four labels and
    the mean AUC over markers that have both classes in validation. When only one of the two is defined (no AUC,
    or a model without segmentation), the score is that one. ``min_label_mm3`` holds the per-label minimum volumes
    of :func:`~gliomics.inference.postprocess.fit_min_label_volumes` and ``min_component_mm3`` the per-label
    minimum component volumes of :func:`~gliomics.inference.postprocess.fit_min_component_volumes`, both bounded by
    ``volume_caps`` (the Dice above is before either).
    """
    out: dict = {}
    dice_rows = [r["dice"] for r in rows if "dice" in r]
    # the cases each figure rests on: Dice on the cases with subregion labels, AUC on those with the marker known
    out["n_dice"] = len(dice_rows)
    if dice_rows:
        for region in dice_rows[0]:
            out[f"dice_{region}"] = float(np.mean([d[region] for d in dice_rows]))
        out["dice_mean"] = float(np.mean([out[f"dice_{r}"] for r in TUMOUR_LABELS]))
    aucs, thresholds = [], {}
    for k, m in enumerate(MARKERS):
        pairs = [(r["markers"][k], r["prob"][m]) for r in rows if m in r["prob"] and not np.isnan(r["markers"][k])]
        if not pairs:
            continue
        y, p = np.array(pairs).T
        out[f"n_{m}"] = len(pairs)
        thresholds[m] = youden_threshold(y.astype(int), p)
        if 0 < y.sum() < len(y):
            out[f"auc_{m}"] = float(roc_auc_score(y, p))
            aucs.append(out[f"auc_{m}"])
    if aucs:
        out["auc_mean"] = float(np.mean(aucs))
    # temperature, operating points and conformal sets, fitted on these held-out cases and stored with the run
    calibration = fit_run_calibration([r["markers"] for r in rows], [r["prob"] for r in rows], source="validation")
    out["calibration"] = calibration if calibration["markers"] else {}
    if "dice_mean" in out and "auc_mean" in out:
        out["score"] = (1.0 - auc_weight) * out["dice_mean"] + auc_weight * out["auc_mean"]
    else:
        out["score"] = float(out.get("dice_mean", out.get("auc_mean", 0.0)))
    out["thresholds"] = thresholds
    volume_rows = [{n: (*r["volumes_mm3"][n], r["dice"][n]) for n in r["volumes_mm3"]} for r in rows
                   if "volumes_mm3" in r]
    out["min_label_mm3"] = fit_min_label_volumes(volume_rows, volume_caps) if volume_rows else {}
    component_rows = [r["component_dice"] for r in rows if "component_dice" in r]
    out["min_component_mm3"] = fit_min_component_volumes(component_rows, volume_caps) if component_rows else {}
    return out
