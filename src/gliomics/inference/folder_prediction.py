"""A folder of cases predicted one by one by a :class:`~gliomics.inference.predictor.Predictor`
(:meth:`Predictor.predict_folder <gliomics.inference.predictor.Predictor.predict_folder>`): finished cases skipped,
bad cases reported or raised, the throughput summed."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from gliomics.config import PredictOptions
from gliomics.errors import GliomicsError, OutputError
from gliomics.inference.prediction import Prediction
from gliomics.io import Case, discover_cases
from gliomics.io.partition import select_part
from gliomics.io.predictions import RECORD_SUFFIX

logger = logging.getLogger(__name__)

__all__ = ["predict_folder"]


def predict_folder(predictor, source: Path | str, out_dir: Path | str, *, overwrite: bool = False,
                   keep_going: bool = False, progress: bool = True, layout: str = "auto",
                   on_case: Callable[[Case, Prediction], None] | None = None, num_parts: int = 1, part_id: int = 0,
                   options: PredictOptions | Mapping[str, Any] | None = None) -> dict[str, Any]:
    """:meth:`Predictor.predict_folder <gliomics.inference.predictor.Predictor.predict_folder>`."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir}: output path exists and is not a folder")
    cases = select_part(discover_cases(source, layout=layout, allow_missing=True), num_parts, part_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    done, skipped, failed, seconds = [], [], {}, []
    for case in tqdm(cases, desc="predict", unit="case", disable=not progress):
        if not overwrite and (out_dir / f"{case.case_id}{RECORD_SUFFIX}").is_file():
            skipped.append(case.case_id)
            continue
        if case.missing:
            logger.warning("%s: %s missing; predicted from %s only", case.case_id, ", ".join(case.missing),
                           ", ".join(case.images))
        try:
            prediction = predictor.predict_case(case, out_dir, options=options)
            seconds.append(prediction.record["timings"]["total_s"])
            if on_case is not None:
                on_case(case, prediction)
            done.append(case.case_id)
        except GliomicsError as exc:
            if not keep_going:
                raise
            failed[case.case_id] = str(exc)
            logger.error("%s: %s", case.case_id, exc)
    return {"predicted": done, "skipped": skipped, "failed": failed, "seconds": float(np.sum(seconds)),
            "seconds_per_case": float(np.mean(seconds)) if seconds else None, "hardware": predictor.hardware()}
