"""``gliomics calibrate``: fit a run's marker calibration on held-out predictions and store it with the run.

The fitting set is the run's own validation split (predicted here, as ``gliomics predict`` would, from the cohorts
named in ``splits.json``); for a folder of K-fold runs, the out-of-fold predictions of every fold (the whole training
cohort, each case predicted by the fold run that did not train on it); or a folder of predictions of other
held-out cases with their markers table. Never the cases the network trained on: those are refused.

Where the fitting set was predicted in several passes (flip TTA, or an ensemble's members), the review threshold of
:mod:`~gliomics.inference.uncertainty` is fitted on the same cases' uncertainty scores.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from gliomics.constants import MARKERS
from gliomics.errors import InputError
from gliomics.inference.calibration import DEFAULT_ALPHA, fit_run_calibration
from gliomics.inference.uncertainty import REVIEW_QUANTILE, fit_review_threshold
from gliomics.io import read_markers
from gliomics.io.predictions import RECORD_SUFFIX, read_prediction_record, record_paths
from gliomics.runtime.checkpoint import BEST, VAL_PREDICTIONS, fold_runs
from gliomics.runtime.fitted import update_fitted

logger = logging.getLogger(__name__)


def _validation_predictions(run: Path, *, tta: bool, precision: str, device: str,
                            options: dict[str, Any] | None = None) -> tuple[list, list, list]:
    """Labels, raw marker probabilities and uncertainties of the run's validation split, predicted with its best
    checkpoint."""
    from gliomics.data.splits import run_cohort
    from gliomics.inference.predictor import Predictor

    cohort, splits, _ = run_cohort(run)
    val = [cohort[c] for c in splits["val"] if c in cohort]
    if not val:
        raise InputError(f"{run}: the run has no validation cases to calibrate on (give --pred and --markers)")
    predictor = Predictor(device, options={**(options or {}), "tta": tta}, precision=precision).load(run)
    outs = [predictor.forward(c.case)[1] for c in val]
    return [c.marker_vector() for c in val], [o.marker_probabilities for o in outs], [o.uncertainty for o in outs]


def _out_of_fold_predictions(folds: list[Path]) -> tuple[list, list]:
    """Labels and raw marker probabilities of every fold's validation cases (each predicted by the one fold run
    that did not train on it), pooled: the whole cohort of a K-fold ensemble."""
    rows = []
    for run in folds:
        path = run / VAL_PREDICTIONS
        if not path.is_file():
            raise InputError(f"{path}: not found (the fold has not validated yet)")
        rows += json.loads(path.read_text())
    seen = [r["case_id"] for r in rows]
    if len(set(seen)) != len(seen):
        raise InputError(f"{folds[0].parent}: a case is in the validation fold of two runs; these are not the folds "
                         "of one split")
    return [r["markers"] for r in rows], [r["prob"] for r in rows]


def _folder_predictions(run: Path, pred: Path, markers: Path) -> tuple[list, list, list]:
    """Labels, raw marker probabilities and uncertainties of the records in a prediction folder."""
    from gliomics.data.splits import SPLITS_FILE, load_splits

    table = read_markers(markers)
    records = record_paths(pred)
    trained = {c for r in (fold_runs(run) or [run]) if (r / SPLITS_FILE).is_file()
               for c in load_splits(r / SPLITS_FILE)["train"]}
    labels, probs, uncertainties = [], [], []
    for path in records:
        case_id = path.name[: -len(RECORD_SUFFIX)]
        if case_id not in table:
            continue
        if case_id in trained:
            raise InputError(f"{path}: case {case_id!r} is in the run's training split; calibrate on held-out cases")
        record = read_prediction_record(path, case_id)
        labels.append([np.nan if (v := table[case_id].label(m)) is None else v for m in MARKERS])
        probs.append({m: float(v.get("probability_raw", v["probability"])) for m, v in record["markers"].items()})
        uncertainties.append(record.get("uncertainty"))
    if not labels:
        raise InputError(f"{pred}: no prediction record matches a case of {markers}")
    return labels, probs, uncertainties


def calibrate_run(run: Path | str, *, pred: Path | str | None = None, markers: Path | str | None = None,
                  alpha: float = DEFAULT_ALPHA, tta: bool = True, precision: str = "auto",
                  device: str = "auto", review_quantile: float = REVIEW_QUANTILE,
                  options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fit temperature, operating points and conformal sets of ``run`` and store them in its fitted artefacts
    (``fitted.json``, :mod:`~gliomics.runtime.fitted`); returns the fitted calibration. For a folder of fold runs
    (``fold_0``, …) the fit uses their out-of-fold predictions and goes to the folder's own ``fitted.json``, which
    ``gliomics predict`` applies to the ensemble.

    Args:
        run: A run folder, or a folder of fold runs.
        pred: A prediction folder of held-out cases; None predicts the run's validation split.
        markers: The markers table of ``pred`` (required with it).
        alpha: Miscoverage of the conformal sets.
        tta: Predict the validation split with flip TTA (as ``predict --tta``; use what you will predict with).
        precision: As ``gliomics predict --precision``.
        device: As ``gliomics predict --device``.
        options: Prediction options overriding the run's (as ``gliomics predict`` would predict).
        review_quantile: Cases whose uncertainty score is above this quantile of the fitting set's are flagged for
            review (where the fitting set has scores: predicted in several passes).
    """
    run = Path(run)
    folds = fold_runs(run)
    if not folds and not (run / BEST).is_file():
        raise InputError(f"{run}: not a run folder (no {BEST}) nor a folder of fold runs")
    if pred is not None:
        if markers is None:
            raise InputError(f"{pred}: --markers is needed with --pred (the labels of those cases)")
        labels, probs, uncertainties = _folder_predictions(run, Path(pred), Path(markers))
        source = f"held-out predictions {pred}"
    elif folds:  # the fold runs validated without TTA, each case by one fold: no uncertainty scores
        labels, probs = _out_of_fold_predictions(folds)
        uncertainties = []
        source = f"out-of-fold ({len(folds)} folds)"
    else:
        labels, probs, uncertainties = _validation_predictions(run, tta=tta, precision=precision, device=device,
                                                               options=options)
        source = "validation" + (" (flip TTA)" if tta else "")
    fitted = fit_run_calibration(labels, probs, source=source, alpha=alpha)
    fitted["review"] = _review(uncertainties, review_quantile)
    update_fitted(run, calibration=fitted)
    for m, f in fitted["markers"].items():
        logger.info("%s: temperature %.3f on %d cases (%d altered)", m, f["temperature"], f["n"], f["n_pos"])
    if fitted["review"] is None:
        logger.info("no review threshold: the fitting set has no uncertainty scores (predict it with --tta or an "
                    "ensemble, and calibrate with --pred)")
    return fitted


def _review(uncertainties: list[dict | None], quantile: float) -> dict | None:
    """The review threshold on the fitting set's scores, if its cases were all predicted in the same passes."""
    scored = [u for u in uncertainties if u is not None]
    if not scored or len(scored) < len(uncertainties):
        return None
    passes = {u["passes"] for u in scored}
    if len(passes) > 1:
        raise InputError(f"the fitting cases were predicted with different numbers of passes {sorted(passes)}; "
                         "predict them all the same way")
    return fit_review_threshold([u["score"] for u in scored], passes.pop(), quantile)
