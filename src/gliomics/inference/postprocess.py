"""Post-processing of label maps, as the BraTS winners do.

* :func:`remove_small_components` drops tiny whole-tumour and cavity components.
* :func:`suppress_small_labels` relabels a tumour label whose whole predicted volume in a case is below a
  per-label minimum (a few stray ET voxels in a non-enhancing tumour, a small "cavity" in a pre-operative case):
  the BraTS Dice of an absent region is 1 when nothing is predicted and 0 otherwise, so such voxels cost a whole
  case. The minima are fitted on the validation cases of a run by :func:`fit_min_label_volumes` and stored in its
  checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from scipy import ndimage

from gliomics.constants import LABELS, REGIONS, TUMOUR_LABELS

#: 26-connectivity, the connectivity of BraTS lesion-wise scoring.
STRUCTURE = np.ones((3, 3, 3), dtype=bool)


def remove_small_components(seg: np.ndarray, spacing: tuple[float, ...], *, min_volume_mm3: float = 50.0,
                            min_rc_volume_mm3: float | None = None) -> np.ndarray:
    """Drop whole-tumour components and RC components smaller than ``min_volume_mm3``.

    Whole-tumour components are removed with all their labels; a small stray cavity (often CSF mistaken for a
    resection cavity) is removed on its own, which decides the RC score of pre-operative cases.
    """
    voxel_mm3 = float(np.prod(spacing))
    out = seg.copy()
    for mask, limit in (
        (np.isin(out, REGIONS["WT"]), min_volume_mm3),
        (out == LABELS["RC"], min_rc_volume_mm3 if min_rc_volume_mm3 is not None else min_volume_mm3),
    ):
        if not mask.any() or limit <= 0:
            continue
        components, n = ndimage.label(mask, structure=STRUCTURE)
        sizes = np.bincount(components.ravel(), minlength=n + 1) * voxel_mm3
        small = np.flatnonzero(sizes < limit)
        small = small[small > 0]
        if small.size:
            out[np.isin(components, small)] = 0
    return out


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
    masked = probs.clone()
    masked[codes] = -1.0
    replace = torch.isin(labels, torch.tensor(codes, device=labels.device))
    return torch.where(replace, masked.argmax(0).to(labels.dtype), labels), names


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
