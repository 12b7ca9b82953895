"""How far to trust one prediction: a voxel-wise uncertainty map, a case-level disagreement score, and the review rule.

A prediction made of several passes (the flips of ``--tta``, the members of a fold ensemble, or both) carries its
own evidence of doubt: where the passes disagree, none of them is reliable.

- **The map** is the entropy of the averaged softmax, divided by ``log K`` so that it runs from 0 (every pass sure
  of one label) to 1 (all labels equally likely). With one pass it is that pass's own entropy.
- **The case score** is the passes' disagreement: one minus the Dice between two passes' label maps, averaged over
  the BraTS regions (ET, NETC, SNFH, RC, TC, WT; two empty masks agree) and over every pair of passes. It needs at
  least two passes; it is 0 where the passes agree voxel for voxel.
- **The review rule**: a case needs review when its score is above the ``quantile`` (default 0.9) of the scores of
  the calibration set, predicted the same way (same number of passes), so that about one held-out case in ten is
  flagged for its segmentation; or when a marker's conformal set is undetermined
  (:mod:`~gliomics.inference.calibration`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from gliomics.constants import MARKERS, REGIONS
from gliomics.labels import dice_per_region

__all__ = ["REVIEW_QUANTILE", "case_uncertainty", "entropy_map", "fit_review_threshold", "review_reason"]

#: Cases whose score is above this quantile of the calibration set's scores are flagged for review.
REVIEW_QUANTILE = 0.9


def entropy_map(probs: torch.Tensor) -> torch.Tensor:
    """Normalised entropy (0–1) of a ``K × spatial`` softmax, per voxel."""
    k = probs.shape[0]
    return torch.special.entr(probs.float().clamp(0.0, 1.0)).sum(0) / math.log(k)


def disagreement(labels: Sequence[np.ndarray]) -> float:
    """One minus the Dice between two label maps, averaged over the BraTS regions and every pair of maps."""
    if len(labels) < 2:
        raise ValueError("disagreement needs at least two label maps")
    scores = [1.0 - float(np.mean(list(dice_per_region(a, b).values())))
              for a, b in itertools.combinations(labels, 2)]
    return float(np.mean(scores))


def case_uncertainty(pass_labels: torch.Tensor | np.ndarray, pass_markers: dict[str, Sequence[float]] | None,
                     source: str) -> dict[str, Any] | None:
    """The uncertainty part of a prediction record, from its passes: the score (segmentation disagreement) and the
    standard deviation of each marker's probability over the passes; None with a single pass.

    Args:
        pass_labels: ``P × spatial`` label maps of the ``P`` passes (at the network's working resolution).
        pass_markers: Per marker, the ``P`` probabilities of the passes.
        source: What the passes are (e.g. ``"flip TTA"``), recorded with the score.
    """
    labels = np.asarray(pass_labels.cpu() if isinstance(pass_labels, torch.Tensor) else pass_labels)
    if labels.shape[0] < 2:
        return None
    out: dict[str, Any] = {"passes": int(labels.shape[0]), "source": source,
                           "score": round(disagreement(list(labels)), 5), "score_name": "segmentation disagreement",
                           "regions": list(REGIONS)}
    if pass_markers:
        out["marker_sd"] = {m: round(float(np.std(np.asarray(pass_markers[m], dtype=float))), 5)
                            for m in MARKERS if m in pass_markers}
    return out


def fit_review_threshold(scores: Sequence[float], passes: int, quantile: float = REVIEW_QUANTILE) -> dict[str, Any]:
    """The review threshold: the ``quantile`` of the calibration set's scores (NumPy's default linear
    interpolation), with the number of passes they were computed from."""
    values = np.asarray([s for s in scores if s is not None and math.isfinite(s)], dtype=float)
    if values.size == 0:
        raise ValueError("no uncertainty score to fit the review threshold on")
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"review quantile {quantile} is not in (0, 1)")
    return {"threshold": float(np.quantile(values, quantile)), "quantile": quantile, "n": int(values.size),
            "passes": int(passes), "score_name": "segmentation disagreement",
            "rule": f"needs review when the segmentation disagreement of the passes is above the {quantile:.0%} "
                    f"quantile of the {values.size} calibration cases' scores"}


def review_reason(uncertainty: dict[str, Any] | None, review: dict[str, Any] | None) -> tuple[dict[str, Any] | None,
                                                                                           str | None]:
    """Apply the run's review threshold to a record's uncertainty: the uncertainty part with the threshold and its
    rule added (or why it does not apply), and the reason to review the case, if any."""
    if uncertainty is None:
        return None, None
    out = dict(uncertainty)
    if not review:
        out["review_threshold"] = None
        out["review_note"] = "the run has no review threshold (fit one with `gliomics calibrate`)"
        return out, None
    if int(review["passes"]) != out["passes"]:
        out["review_threshold"] = None
        out["review_note"] = (f"the review threshold was fitted on {review['passes']} passes per case and this "
                              f"prediction has {out['passes']}: predict as the calibration set was predicted")
        return out, None
    out["review_threshold"] = review["threshold"]
    out["review_rule"] = review["rule"]
    if out["score"] > review["threshold"]:
        return out, (f"uncertainty: the passes' segmentation disagreement {out['score']:.3f} is above "
                     f"{review['threshold']:.3f}, the {review['quantile']:.0%} quantile of the calibration set")
    return out, None
