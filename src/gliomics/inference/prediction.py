"""A predicted case as one typed object, and the exporter that writes it.

:meth:`~gliomics.inference.predictor.Predictor.predict` returns a :class:`Prediction`, nothing written yet: the
network-grid arrays (input, probabilities, labels, CMAF weights, pooling weights) that the case report draws from,
the label map in the input geometry, and the record that becomes ``<case>.json``. :func:`export_prediction` writes
the files, as nnU-Net's ``export_prediction.py`` does after its predictor; ``<case>.json`` is read back by
:func:`gliomics.io.predictions.read_prediction_record`, the one schema for evaluation and reports.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gliomics.io import save_image
from gliomics.io.atomic import write_text_atomic
from gliomics.io.predictions import PROB_SUFFIX, RECORD_SUFFIX, SEG_SUFFIX, UNCERTAINTY_SUFFIX

__all__ = ["Prediction", "export_prediction"]


@dataclass
class Prediction:
    """One predicted case.

    Attributes:
        case_id: The case.
        record: What ``<case>.json`` holds: sequences used, markers and calls, volumes, mean CMAF weights,
            post-processing, uncertainty and review, timings, hardware, model, versions.
        image: The preprocessed input in the network grid (a MONAI ``MetaTensor``, ``S × X × Y × Z``, RAS at the
            working spacing, padded), missing sequences zero.
        present: Which sequences were used (``S`` booleans in :data:`~gliomics.constants.SEQUENCES` order).
        probs: Class probabilities ``C × X × Y × Z`` in the network grid, averaged over the passes; None for a
            marker-only model.
        labels: Labels in the network grid after the label and component minimums (uint8); None without ``probs``.
        seg: Labels in the input geometry after the whole-tumour and cavity component rule; what
            ``<case>_seg.nii.gz`` holds.
        affine: The affine of the input geometry.
        alpha: CMAF weights ``S × X × Y × Z`` (the passes' mean), or None.
        pool_weights: Attention-pooling weights ``1 × x × y × z`` of the first pass at the encoder's grid, or None.
        probabilities: Class probabilities in the input geometry (``X × Y × Z × C``), when asked for.
        entropy: The voxel entropy in the input geometry, when asked for.
    """

    case_id: str
    record: dict[str, Any]
    image: Any = None
    present: torch.Tensor | None = None
    probs: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    seg: np.ndarray | None = None
    affine: np.ndarray | None = None
    alpha: torch.Tensor | None = None
    pool_weights: torch.Tensor | None = None
    probabilities: np.ndarray | None = None
    entropy: np.ndarray | None = None

    @property
    def markers(self) -> dict[str, dict[str, Any]]:
        """Per marker, the record's probability, threshold, calls and set."""
        return self.record.get("markers") or {}

    @property
    def sequences_present(self) -> list[str]:
        return list(self.record.get("sequences_present", []))


def export_prediction(prediction: Prediction, out_dir: Path | str) -> dict[str, Any]:
    """Write ``<case>_seg.nii.gz`` (and ``<case>_probabilities.nii.gz`` / ``<case>_uncertainty.nii.gz`` where the
    prediction holds them) into ``out_dir``, then ``<case>.json``, last, so that a folder with a record has all of
    the case's files. The writing time is added to the record's ``postprocess_write_s`` and ``total_s``; returns
    the record."""
    out_dir = Path(out_dir)
    cid, record = prediction.case_id, prediction.record
    t = time.perf_counter()
    if prediction.seg is not None:
        save_image(prediction.seg, prediction.affine, out_dir / f"{cid}{SEG_SUFFIX}", dtype=np.uint8)
    if prediction.probabilities is not None:
        save_image(prediction.probabilities, prediction.affine, out_dir / f"{cid}{PROB_SUFFIX}", dtype=np.float32)
    if prediction.entropy is not None:
        save_image(prediction.entropy, prediction.affine, out_dir / f"{cid}{UNCERTAINTY_SUFFIX}", dtype=np.float32)
    timings = record.setdefault("timings", {})
    spent = time.perf_counter() - t
    timings["postprocess_write_s"] = round(timings.get("postprocess_write_s", 0.0) + spent, 3)
    timings["total_s"] = round(timings.get("total_s", 0.0) + spent, 3)
    write_text_atomic(out_dir / f"{cid}{RECORD_SUFFIX}", json.dumps(record, indent=2))
    return record
