"""Fit a run's marker readout (:mod:`gliomics.inference.marker_readout`) once its network is trained.

The best checkpoint predicts every case of the training split once, as ``gliomics predict`` would without TTA; the
tumour features of those predictions and the cases' marker labels fit the readout. The validation split, predicted
alike, then gives the readout's marker thresholds and calibration in place of the heads', and the held-out
predictions of ``validation_predictions.json``; a ``calibration.json`` fitted before on the heads' probabilities
is removed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gliomics.data.cohort import CohortCase, build_cohorts
from gliomics.inference.engine import marker_probabilities
from gliomics.inference.marker_readout import MarkerReadout, fit_marker_readout
from gliomics.inference.predictor import Predictor
from gliomics.inference.tumour_features import tumour_features
from gliomics.io import voxel_spacing
from gliomics.io.atomic import write_text_atomic
from gliomics.runtime.checkpoint import BEST, CALIBRATION_FILE, VAL_PREDICTIONS, load_checkpoint, save_checkpoint

logger = logging.getLogger(__name__)

__all__ = ["fit_run_readout", "refit_readout"]


def _features(predictor: Predictor, cases: Sequence[CohortCase]) -> tuple[np.ndarray, list[dict[str, float]]] | None:
    """Each case's tumour features and its heads' marker probabilities; None for a network without segmentation."""
    rows, heads = [], []
    for c in cases:
        data, res = predictor.forward(c.case)
        labels = res["passes"]["labels"]
        if labels is None:
            return None
        image = data["image"]
        rows.append(tumour_features(image.as_tensor().float().numpy(), labels[0].numpy(),
                                    float(np.prod(voxel_spacing(image.affine)))))
        heads.append(marker_probabilities(res["markers"]))
    return np.asarray(rows), heads


def _probabilities(readout: MarkerReadout, features: np.ndarray, heads: list[dict[str, float]]) -> list[dict]:
    """The readout's marker probabilities, the heads' for a marker the readout lacks."""
    return [{**h, **readout.probabilities(f)} for f, h in zip(features, heads)]


def fit_run_readout(run: Path | str, train: Sequence[CohortCase], val: Sequence[CohortCase], *, device: str = "cpu",
                    precision: str = "auto", seed: int = 0) -> dict[str, Any] | None:
    """Fit the marker readout of ``run``'s best checkpoint on the ``train`` cases and store it there, with the
    thresholds and calibration it has on the ``val`` cases. Returns what was fitted (cases, ``C`` and
    cross-validated AUC per marker, validation AUCs), or None when the run's network does not segment or too few
    cases know a marker."""
    from gliomics.training.validation import summarise

    run = Path(run)
    if not train:
        return None
    # the threads the caller set (the trainer's share of the cores), not every core
    predictor = Predictor(device, precision=precision, marker_readout=False, threads=torch.get_num_threads()).load(run)
    fitted = _features(predictor, train)
    if fitted is None:
        return None
    features, _ = fitted
    readout = fit_marker_readout(features, np.stack([c.marker_vector() for c in train]), seed=seed)
    if readout is None:
        logger.info("%s: too few cases of each class for a marker readout", run)
        return None
    state = load_checkpoint(run / BEST)
    state["marker_readout"] = readout.to_dict()
    summary: dict[str, Any] = {**readout.info, "n_features": len(readout.features)}
    held_out = _features(predictor, val) if val else None
    if held_out is not None:
        rows = [{"case_id": c.case_id, "markers": c.marker_vector().tolist(), "prob": p}
                for c, p in zip(val, _probabilities(readout, *held_out))]
        metrics = summarise(rows)
        state["thresholds"] = {**state.get("thresholds", {}), **metrics["thresholds"]}
        state["calibration"] = metrics["calibration"]
        summary["val_auc"] = {m: metrics[f"auc_{m}"] for m in readout.coef if f"auc_{m}" in metrics}
        summary["thresholds"], summary["calibration"] = state["thresholds"], state["calibration"]
        write_text_atomic(run / VAL_PREDICTIONS, json.dumps(rows))
    save_checkpoint(state, run / BEST)
    if (run / CALIBRATION_FILE).is_file():
        # `gliomics calibrate` fitted it on the probabilities before this readout; it no longer applies
        (run / CALIBRATION_FILE).unlink()
        logger.warning("%s: removed %s, fitted on the marker probabilities before this readout; run "
                       "`gliomics calibrate` again", run, CALIBRATION_FILE)
    logger.info("%s: marker readout fitted on %d training cases (cross-validated AUC %s)", run, len(train),
                {m: round(v, 3) for m, v in readout.info["cv_auc"].items()})
    return summary


def refit_readout(run: Path | str, extra: Sequence[tuple[Path | str, Path | str | None]] = (), *,
                  device: str = "cpu", precision: str = "auto") -> dict[str, Any]:
    """Fit ``run``'s marker readout again on its training split and the marker-labelled cases of ``extra``
    (``(data, markers)`` pairs, ``DATA/markers.csv`` when the markers are None) that its own cohort lacks: more cases
    for the readout than the network trained on, without training it again (no ``extra``: the training split alone,
    as the trainer fits it). The thresholds and calibration come from the run's validation split, as after
    training.

    Returns:
        What :func:`fit_run_readout` fitted, with ``train_cases`` and ``extra_cases``.

    Raises:
        InputError: ``extra`` given but none of its cases knows a marker, or the run's cohort cannot be found again.
        ConfigError: the run's network does not segment, or too few cases know a marker.
    """
    from gliomics.data.splits import run_cohort
    from gliomics.errors import ConfigError, InputError
    from gliomics.runtime.checkpoint import load_network

    run = Path(run)
    _, cfg, _ = load_network(run / BEST)
    cohort, splits, _ = run_cohort(run)
    train = [cohort[c] for c in splits["train"] if c in cohort]
    val = [cohort[c] for c in splits["val"] if c in cohort]
    pairs = [(Path(d), Path(m) if m else Path(d) / "markers.csv") for d, m in extra]
    more = [c for c in build_cohorts(pairs) if c.case_id not in cohort]
    more = [c for c in more if not np.isnan(c.marker_vector()).all()]
    if pairs and not more:
        raise InputError(f"{', '.join(str(d) for d, _ in pairs)}: no case with a known marker that the run's own "
                         "cohort lacks (case ids already in it are taken to be the same cases)")
    fitted = fit_run_readout(run, train + more, val, device=device, precision=precision, seed=cfg.train.seed)
    if fitted is None:
        raise ConfigError(f"{run}: no marker readout fitted (a network without segmentation, or too few cases of "
                          "each class)")
    return {**fitted, "train_cases": len(train), "extra_cases": len(more)}
