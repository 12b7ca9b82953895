"""Fit a run's marker readout (:mod:`gliomics.inference.marker_readout`) once its network is trained.

The best epoch's network (in memory after training, loaded by ``gliomics readout``) predicts every case of the
training split once through the :class:`~gliomics.inference.predictor.Predictor`, without TTA; the tumour features of
those predictions and the cases' marker labels fit the readout. The validation split, predicted alike, then gives
the readout's marker thresholds and calibration in place of the heads', and the held-out predictions of
``validation_predictions.json``. All of it goes to the run's ``fitted.json``.
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
from gliomics.inference.marker_readout import MarkerReadout, fit_marker_readout
from gliomics.inference.predictor import Predictor
from gliomics.inference.tumour_features import tumour_features
from gliomics.io import voxel_spacing
from gliomics.io.atomic import write_text_atomic
from gliomics.runtime.checkpoint import BEST, VAL_PREDICTIONS
from gliomics.runtime.fitted import read_fitted, update_fitted

logger = logging.getLogger(__name__)

__all__ = ["fit_run_readout", "refit_readout"]


def _features(predictor: Predictor, cases: Sequence[CohortCase],
              samples: Sequence[dict] | None = None) -> tuple[np.ndarray, list[dict[str, float]]] | None:
    """Each case's tumour features and its heads' marker probabilities (from its preprocessed ``samples`` where
    given); None for a network without segmentation."""
    rows, heads = [], []
    for i, c in enumerate(cases):
        data, res = predictor.forward(c.case, data=samples[i] if samples is not None else None)
        labels = res.passes["labels"]
        if labels is None:
            return None
        image = data["image"]
        rows.append(tumour_features(image.as_tensor().float().numpy(), labels[0].numpy(),
                                    float(np.prod(voxel_spacing(image.affine)))))
        heads.append(res.marker_probabilities)
    return np.asarray(rows), heads


def _probabilities(readout: MarkerReadout, features: np.ndarray, heads: list[dict[str, float]]) -> list[dict]:
    """The readout's marker probabilities, the heads' for a marker the readout lacks."""
    return [{**h, **readout.probabilities(f)} for f, h in zip(features, heads)]


def fit_run_readout(predictor: Predictor, run: Path | str, train: Sequence[CohortCase], val: Sequence[CohortCase], *,
                    seed: int = 0, val_data: Sequence[dict] | None = None) -> dict[str, Any] | None:
    """Fit the marker readout of ``predictor``'s network (the run's best epoch, in memory or loaded; its own
    readout unused) on the ``train`` cases and store it in ``run``'s fitted artefacts, with the thresholds and
    calibration it has on the ``val`` cases (``val_data``: their preprocessed inputs, where already built). Returns
    what was fitted (cases, ``C`` and cross-validated AUC per marker, validation AUCs), or None when the network
    does not segment or too few cases know a marker."""
    from gliomics.training.validation import summarise

    run = Path(run)
    if not train:
        return None
    fitted = _features(predictor, train)
    if fitted is None:
        return None
    features, _ = fitted
    readout = fit_marker_readout(features, np.stack([c.marker_vector() for c in train]), seed=seed)
    if readout is None:
        logger.info("%s: too few cases of each class for a marker readout", run)
        return None
    update: dict[str, Any] = {"marker_readout": readout.to_dict()}
    summary: dict[str, Any] = {**readout.info, "n_features": len(readout.features)}
    held_out = _features(predictor, val, val_data) if val else None
    if held_out is not None:
        rows = [{"case_id": c.case_id, "markers": c.marker_vector().tolist(), "prob": p}
                for c, p in zip(val, _probabilities(readout, *held_out))]
        metrics = summarise(rows)
        update["thresholds"] = {**read_fitted(run).thresholds, **metrics["thresholds"]}
        update["calibration"] = metrics["calibration"]
        summary["val_auc"] = {m: metrics[f"auc_{m}"] for m in readout.coef if f"auc_{m}" in metrics}
        summary["thresholds"], summary["calibration"] = update["thresholds"], update["calibration"]
        write_text_atomic(run / VAL_PREDICTIONS, json.dumps(rows))
    before = read_fitted(run).calibration.get("source")
    update_fitted(run, **update)
    if "calibration" in update and before not in (None, "validation"):
        # `gliomics calibrate` fitted it on the probabilities before this readout; it no longer applies
        logger.warning("%s: the calibration fitted on %s was replaced by the readout's on the validation split; run "
                       "`gliomics calibrate` again", run, before)
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
    # the run's best network with its own readout unused, as after training
    predictor = Predictor(device, precision=precision, options={"marker_readout": False, "tta": False},
                          threads=torch.get_num_threads()).load(run)
    fitted = fit_run_readout(predictor, run, train + more, val, seed=cfg.train.seed)
    if fitted is None:
        raise ConfigError(f"{run}: no marker readout fitted (a network without segmentation, or too few cases of "
                          "each class)")
    return {**fitted, "train_cases": len(train), "extra_cases": len(more)}
