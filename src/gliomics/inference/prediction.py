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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gliomics.io import save_image
from gliomics.io.atomic import write_text_atomic
from gliomics.io.predictions import PROB_SUFFIX, RECORD_SUFFIX, SEG_SUFFIX, UNCERTAINTY_SUFFIX, check_record

__all__ = ["Prediction", "export_prediction", "record_options"]


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
        labels: The argmax of ``probs`` in the network grid, before post-processing (uint8); None without ``probs``.
        seg: Labels in the input geometry after the post-processing
            (:func:`~gliomics.inference.postprocess.postprocess_labels`); what ``<case>_seg.nii.gz`` holds.
        affine: The affine of the input geometry.
        alpha: CMAF weights ``S × X × Y × Z`` (the passes' mean), or None.
        pool_weights: Attention-pooling weights ``1 × x × y × z`` of the first pass at the encoder's grid, or None.
        probabilities: Class probabilities in the input geometry (``X × Y × Z × C``), when asked for.
        entropy: The voxel entropy in the input geometry, when asked for.
        raw_markers: The network's (or readout's) marker probabilities before calibration.
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
    raw_markers: dict[str, float] = field(default_factory=dict)

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
    check_record(record, f"the record of {cid}")
    write_text_atomic(out_dir / f"{cid}{RECORD_SUFFIX}", json.dumps(record, indent=2))
    return record


def record_options(record: dict[str, Any]) -> dict[str, Any]:
    """The prediction options that reproduce a record's prediction where they show in it: the sequences it used and
    where its marker probabilities came from."""
    from gliomics.constants import SEQUENCES

    used = record.get("sequences_present") or None
    options: dict[str, Any] = {"sequences": used if used and list(used) != list(SEQUENCES) else None}
    if record.get("markers_from"):
        options["marker_readout"] = record["markers_from"] == "readout"
    return options
