"""Validation during training: Dice per region and marker AUC, sharded over ranks and gathered."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from gliomics.constants import LABELS, MARKERS, TUMOUR_LABELS
from gliomics.evaluation.segmentation import LESION_MIN_VOLUME_MM3, lesion_wise
from gliomics.inference.calibration import fit_run_calibration, youden_threshold
from gliomics.inference.engine import forward_volume, marker_probabilities
from gliomics.inference.postprocess import (
    class_argmax,
    fit_min_component_volumes,
    fit_min_label_volumes,
    remove_small_components,
    without_small_components,
)
from gliomics.io import voxel_spacing
from gliomics.labels import dice_per_region, label_volumes_mm3
from gliomics.runtime.distributed import DistInfo, all_gather_objects


def validate_cases(model: torch.nn.Module, samples: Sequence[dict], *, roi_size, device: torch.device,
                   info: DistInfo, overlap: float = 0.25, whole_volume_factor: float = 1.5) -> list[dict]:
    """Per-case Dice and marker probabilities of this rank's preprocessed validation ``samples`` (built once, e.g. a
    cached dataset of :func:`~gliomics.data.transforms.inference_transforms` output), gathered from all ranks."""
    model.eval()
    rows = []
    for i in range(len(samples)):  # by index: a rank may hold no case, and an empty MONAI dataset cannot be iterated
        data = samples[i]
        image = data["image"].as_tensor()[None].to(device)
        present = data["present"][None].to(device)
        res = forward_volume(model, image, present, roi_size=roi_size, overlap=overlap,
                             whole_volume_factor=whole_volume_factor)
        row: dict = {"case_id": data["case_id"], "markers": np.asarray(data["markers"]).tolist()}
        if res["probs"] is not None and "label" in data:
            pred = class_argmax(res["probs"][0]).cpu().numpy().astype(np.uint8)
            affine = np.asarray(data["image"].affine)
            spacing = voxel_spacing(affine)
            pred = remove_small_components(pred, spacing)
            ref = np.asarray(data["label"])[0].astype(np.uint8)
            row["dice"] = dice_per_region(pred, ref)
            voxel_mm3 = float(np.prod(spacing))
            pv, rv = label_volumes_mm3(pred, voxel_mm3), label_volumes_mm3(ref, voxel_mm3)
            row["volumes_mm3"] = {name: [pv[name], rv[name]] for name in TUMOUR_LABELS}
            row["component_dice"] = component_scores(pred, ref, spacing)
        row["prob"] = marker_probabilities(res["markers"])
        rows.append(row)
    gathered = all_gather_objects(rows, info)
    return sorted((r for part in gathered for r in part), key=lambda r: r["case_id"])


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
