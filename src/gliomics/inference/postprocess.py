"""Post-processing of label maps, as the BraTS winners do.

* :func:`remove_small_components` drops tiny whole-tumour and cavity components.
* :func:`suppress_small_labels` relabels a tumour label whose whole predicted volume in a case is below a
  per-label minimum (a few stray ET voxels in a non-enhancing tumour, a small "cavity" in a pre-operative case):
  the BraTS Dice of an absent region is 1 when nothing is predicted and 0 otherwise, so such voxels cost a whole
  case. The minima are fitted on the validation cases of a run by :func:`fit_min_label_volumes` and stored in its
  checkpoints.
* :func:`relabel_small_components` gives each connected component of a tumour label that is smaller than the
  label's minimum component volume to the next most probable label: BraTS lesion-wise scoring counts every stray
  component that touches no reference lesion as a lesion of Dice 0. The minima are chosen on the validation cases
  of a run by :func:`fit_min_component_volumes`, among :data:`COMPONENT_CANDIDATES_MM3`.
* :func:`relabel_detached_cavities` makes each resection-cavity component that touches no tumour label background,
  in a case that has a tumour: a resection cavity is the cavity of the tumour it was cut from, and a cavity apart
  from it is CSF (a ventricle, a sulcus) taken for one. Such a component in a pre-operative case costs the case's
  whole RC score.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from gliomics.constants import LABELS, REGIONS, TUMOUR_LABELS

#: 26-connectivity, the connectivity of BraTS lesion-wise scoring.
STRUCTURE = np.ones((3, 3, 3), dtype=bool)
#: Minimum component volumes (mm³) tried per label on validation; 0 keeps every component. At the 3 mm of the
#: demo they drop components of at most 1, 2, 3, 5, 9, 14 and 23 voxels.
COMPONENT_CANDIDATES_MM3 = (0.0, 30.0, 60.0, 100.0, 160.0, 250.0, 400.0, 630.0)


def remove_small_components(seg: np.ndarray, spacing: tuple[float, ...], *, min_volume_mm3: float = 50.0,
                            min_rc_volume_mm3: float | None = None) -> np.ndarray:
    """Drop whole-tumour components and RC components smaller than ``min_volume_mm3``.

    Whole-tumour components are removed with all their labels; a small stray cavity (often CSF mistaken for a
    resection cavity) is removed on its own, which decides the RC score of pre-operative cases.
    """
    return _remove_small(seg, float(np.prod(spacing)), min_volume_mm3,
                         min_rc_volume_mm3 if min_rc_volume_mm3 is not None else min_volume_mm3)


def _remove_small(seg: np.ndarray, voxel_mm3: float, min_volume_mm3: float, min_rc_volume_mm3: float) -> np.ndarray:
    """:func:`remove_small_components` with the voxel volume given."""
    out = seg.copy()
    for mask, limit in (
        (np.isin(out, REGIONS["WT"]), min_volume_mm3),
        (out == LABELS["RC"], min_rc_volume_mm3),
    ):
        if not mask.any() or limit <= 0:
            continue
        components, sizes = label_components(mask, voxel_mm3)
        small = np.flatnonzero(sizes < limit)
        small = small[small > 0]
        if small.size:
            out[np.isin(components, small)] = 0
    return out


def class_argmax(probs: torch.Tensor) -> torch.Tensor:
    """The most probable class of each voxel of ``K × spatial`` probabilities (the first on a tie, as ``argmax``):
    ``max(0).indices``, which torch computes several times as fast as ``argmax(0)`` over the class axis on a CPU."""
    return probs.max(0).indices


def suppress_small_labels(probs: torch.Tensor, labels: torch.Tensor, voxel_mm3: float,
                          min_volume_mm3: Mapping[str, float]) -> tuple[torch.Tensor, list[str]]:
    """Relabel each tumour label whose whole volume is below its minimum with the next most probable label.

    Args:
        probs: Class probabilities, K × spatial.
        labels: Their argmax, spatial.
        voxel_mm3: Volume of one voxel.
        min_volume_mm3: Minimum volume per label name (labels not named are kept).

    Returns:
        The new label map and the names of the labels that were suppressed.
    """
    counts = torch.bincount(labels.reshape(-1).long(), minlength=probs.shape[0])
    names = [name for name, limit in min_volume_mm3.items()
             if 0 < float(counts[LABELS[name]]) * voxel_mm3 < limit]
    if not names:
        return labels, []
    codes = [LABELS[n] for n in names]
    replace = torch.isin(labels, torch.tensor(codes, device=labels.device))
    runner_up = probs[:, replace]  # K × (voxels of the suppressed labels), a copy
    runner_up[codes] = -1.0
    out = labels.clone()
    out[replace] = class_argmax(runner_up).to(labels.dtype)
    return out, names


def fit_min_label_volumes(cases: Sequence[Mapping[str, Sequence[float]]],
                          caps: Mapping[str, float] | None = None) -> dict[str, float]:
    """Per-label minimum volumes that maximise the mean Dice of validation cases.

    Each case maps a label name to ``(predicted mm³, reference mm³, Dice)``. Suppressing a label in a case turns its
    Dice into 1 when the reference is empty and 0 otherwise (the effect on the label that takes the voxels over is
    not modelled). For each label the smallest set of suppressed cases (ordered by predicted volume) that gives the
    highest mean is kept, and the minimum is put half-way, on a log scale, between the largest suppressed volume and
    the next predicted one, so that it is not fitted to the edge of the largest false positive. Labels that no
    suppression improves are left out.

    ``caps`` bounds each label's minimum (e.g. a low quantile of the training split's lesion volumes,
    :func:`~gliomics.data.cohort.lesion_volume_quantiles`): a few validation cases then cannot set a minimum that
    removes lesions of a common size elsewhere.
    """
    caps = caps or {}
    out: dict[str, float] = {}
    for name in TUMOUR_LABELS:
        rows = np.array([c[name] for c in cases if name in c], dtype=float).reshape(-1, 3)
        if not len(rows):
            continue
        pred, ref, dice = rows.T
        if_suppressed = (ref == 0).astype(float)
        cap = float(caps.get(name, math.inf))
        volumes = np.unique(pred[pred > 0])
        best, best_k = dice.mean(), -1
        for k, v in enumerate(volumes[volumes < cap]):
            score = np.where((pred > 0) & (pred <= v), if_suppressed, dice).mean()
            if score > best + 1e-9:
                best, best_k = score, k
        if best_k >= 0:
            low = volumes[best_k]
            high = volumes[best_k + 1] if best_k + 1 < len(volumes) else 2.0 * low
            out[name] = round(min(math.sqrt(low * high), cap), 1)
    return out


def label_components(mask: np.ndarray, voxel_mm3: float) -> tuple[np.ndarray, np.ndarray]:
    """The 26-connected components of ``mask`` and the volume in mm³ of each (index 0: background)."""
    components, n = ndimage.label(mask, structure=STRUCTURE)
    return components, np.bincount(components.ravel(), minlength=n + 1) * voxel_mm3


def relabel_small_components(probs: torch.Tensor, labels: torch.Tensor, voxel_mm3: float,
                             min_component_mm3: Mapping[str, float],
                             exclude: Sequence[str] = ()) -> tuple[torch.Tensor, dict[str, int]]:
    """Give each component of a tumour label smaller than its minimum to the next most probable label.

    Args:
        probs: Class probabilities, K × spatial.
        labels: Their argmax, spatial.
        voxel_mm3: Volume of one voxel.
        min_component_mm3: Minimum component volume per label name (labels not named are kept).
        exclude: Labels never given (those already suppressed in the case).

    Returns:
        The new label map and, per label, how many components it lost.
    """
    out = labels.clone()
    lost: dict[str, int] = {}
    array = labels.cpu().numpy()
    for name, limit in min_component_mm3.items():
        code = LABELS[name]
        mask = array == code
        if limit <= 0 or not mask.any():
            continue
        components, sizes = label_components(mask, voxel_mm3)
        small = np.flatnonzero(sizes < limit)
        small = small[small > 0]
        if not small.size:
            continue
        where = torch.from_numpy(np.isin(components, small)).to(labels.device)
        runner_up = probs[:, where]  # K × (voxels of the small components), a copy
        runner_up[[code, *(LABELS[x] for x in exclude)]] = -1.0
        out[where] = class_argmax(runner_up).to(labels.dtype)
        lost[name] = int(small.size)
    return out, lost


def without_small_components(mask: np.ndarray, voxel_mm3: float,
                             limits: Sequence[float] = COMPONENT_CANDIDATES_MM3) -> list[np.ndarray]:
    """``mask`` without its components below each limit, one mask per limit (for fitting the minimums)."""
    if not mask.any():
        return [mask] * len(limits)
    components, sizes = label_components(mask, voxel_mm3)
    return [np.isin(components, np.flatnonzero(sizes >= limit)) & mask for limit in limits]


def fit_min_component_volumes(cases: Sequence[Mapping[str, Sequence[float]]],
                              caps: Mapping[str, float] | None = None,
                              limits: Sequence[float] = COMPONENT_CANDIDATES_MM3) -> dict[str, float]:
    """Per-label minimum component volumes that maximise the mean lesion-wise Dice of validation cases.

    Each case maps a label name to its lesion-wise Dice with the components below each of ``limits`` removed
    (:func:`without_small_components`); the voxels' new label is not modelled. The smallest limit that reaches the
    highest mean is kept; ``caps`` bounds each label's limit as in :func:`fit_min_label_volumes`. Labels whose best
    limit is 0 are left out.
    """
    caps = caps or {}
    out: dict[str, float] = {}
    for name in TUMOUR_LABELS:
        rows = np.array([c[name] for c in cases if name in c], dtype=float).reshape(-1, len(limits))
        if not len(rows):
            continue
        allowed = [k for k, limit in enumerate(limits) if limit <= caps.get(name, math.inf)]
        means = rows.mean(0)
        best = max(allowed, key=lambda k: (round(float(means[k]), 9), -k))
        if limits[best] > 0:
            out[name] = float(limits[best])
    return out


def relabel_detached_cavities(labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Make each RC component that touches no tumour label (NETC, SNFH, ET; 26-connectivity) background, when the
    case has a tumour: it is CSF taken for a cavity. A case without a tumour keeps its cavity (a gross-total
    resection).

    Args:
        labels: The label map, spatial.

    Returns:
        The new label map and the number of components relabelled.
    """
    array = labels.cpu().numpy()
    cavity = array == LABELS["RC"]
    tumour = np.isin(array, [LABELS[name] for name in TUMOUR_LABELS if name != "RC"])
    if not cavity.any() or not tumour.any():
        return labels, 0
    components, n = ndimage.label(cavity, structure=STRUCTURE)
    touching = np.unique(components[ndimage.binary_dilation(tumour, structure=STRUCTURE) & cavity])
    detached = np.setdiff1d(np.arange(1, n + 1), touching)
    if not detached.size:
        return labels, 0
    out = labels.clone()
    out[torch.from_numpy(np.isin(components, detached)).to(labels.device)] = 0
    return out, int(detached.size)


def postprocess_labels(probs: torch.Tensor, labels: torch.Tensor, voxel_mm3: float, *,
                       min_component_mm3: Mapping[str, float] | None = None,
                       min_label_mm3: Mapping[str, float] | None = None,
                       detached_cavities: bool = True,
                       min_volume_mm3: float = 0.0) -> tuple[torch.Tensor, dict[str, Any]]:
    """A prediction's label map after post-processing, on the grid it is written on, and what was done (the
    record's ``postprocessing``; empty when nothing applied). Prediction and validation alike call it once.

    In order: components below their label's minimum (:func:`relabel_small_components`), cavities apart from the
    tumour (:func:`relabel_detached_cavities`), labels below their minimum volume (:func:`suppress_small_labels`),
    and, where a label was suppressed, the component minimums again, so that they hold for the map written (never
    giving a fragment back to a suppressed label); last, whole-tumour and cavity components below
    ``min_volume_mm3`` (:func:`remove_small_components`).

    Args:
        probs: Class probabilities, K × spatial.
        labels: Their argmax, spatial.
        voxel_mm3: Volume of one voxel.
        min_component_mm3: The run's minimum component volume per label, or None (not applied).
        min_label_mm3: The run's minimum volume per label, or None (not applied).
        detached_cavities: Apply :func:`relabel_detached_cavities`.
        min_volume_mm3: Whole-tumour and cavity components smaller than this are removed (0: none).

    Every rule only relabels labelled voxels, so the rules run on the bounding box of the labelled voxels, which
    makes them cheap on a fine grid (a 1 mm input whose probabilities were resampled to it).
    """
    box = ndimage.find_objects((labels > 0).cpu().numpy().astype(np.uint8))
    if box and box[0] is not None:
        out = torch.zeros_like(labels)
        out[box[0]], post = _postprocess_labels(probs[(slice(None), *box[0])], labels[box[0]], voxel_mm3,
                                                min_component_mm3, min_label_mm3, detached_cavities)
    else:
        out, post = _postprocess_labels(probs, labels, voxel_mm3, min_component_mm3, min_label_mm3,
                                        detached_cavities)
    if min_volume_mm3 > 0:
        kept = _remove_small(out.cpu().numpy(), voxel_mm3, min_volume_mm3, min_volume_mm3)
        out = torch.from_numpy(kept).to(out.device)
    return out, post


def _postprocess_labels(probs: torch.Tensor, labels: torch.Tensor, voxel_mm3: float,
                        min_component_mm3: Mapping[str, float] | None, min_label_mm3: Mapping[str, float] | None,
                        detached_cavities: bool) -> tuple[torch.Tensor, dict[str, Any]]:
    """:func:`postprocess_labels` on the whole of ``labels``."""
    post: dict[str, Any] = {}
    lost: dict[str, int] = {}
    if min_component_mm3:
        labels, lost = relabel_small_components(probs, labels, voxel_mm3, min_component_mm3)
    if detached_cavities:
        labels, detached = relabel_detached_cavities(labels)
        if detached:
            post["detached_cavities_relabelled"] = detached
    if min_label_mm3:
        labels, suppressed = suppress_small_labels(probs, labels, voxel_mm3, min_label_mm3)
        post.update(min_label_volume_ml={k: round(v / 1000.0, 4) for k, v in min_label_mm3.items()},
                    suppressed=suppressed)
        if min_component_mm3 and suppressed:
            labels, more = relabel_small_components(probs, labels, voxel_mm3, min_component_mm3, exclude=suppressed)
            lost = {k: lost.get(k, 0) + more.get(k, 0) for k in sorted({*lost, *more})}
    if min_component_mm3:
        post.update(min_component_volume_ml={k: round(v / 1000.0, 4) for k, v in min_component_mm3.items()},
                    components_relabelled=lost)
    return labels, post
