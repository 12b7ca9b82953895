"""A cohort predicted by one process, by the parts of a job array, or by the ranks of ``torchrun``.

``gliomics predict --num-parts P --part-id k`` predicts part ``k`` of ``P`` parts of about equal work
(:mod:`~gliomics.io.partition`), as nnU-Net's job-array convention does; under ``torchrun`` each rank predicts its own
part of the job's part (``P × world size`` parts in all, rank ``r`` of part ``k`` taking part ``k × world + r``),
on its own GPU (NCCL) or its share of the CPU cores (gloo). Finished cases are skipped, so a re-queued job resumes.
When every rank has finished, rank 0 writes the run's summary: ``predict_summary.json`` (or
``predict_summary_part<k>of<P>.json`` for one part of an array), with what each part predicted, skipped and failed,
and the throughput. ``gliomics evaluate`` then scores the folder: the union of the parts.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from gliomics.config import PredictOptions
from gliomics.errors import GliomicsError, OutputError
from gliomics.inference.prediction import Prediction
from gliomics.inference.predictor import Predictor
from gliomics.io import Case, discover_cases
from gliomics.io.atomic import write_text_atomic
from gliomics.io.partition import select_part
from gliomics.io.predictions import RECORD_SUFFIX, SUMMARY_PREFIX
from gliomics.runtime.distributed import DistInfo, all_gather_objects

logger = logging.getLogger(__name__)

__all__ = ["predict_cohort", "predict_folder", "summary_name"]


def summary_name(num_parts: int, part_id: int) -> str:
    """The file name of a prediction run's summary."""
    return f"{SUMMARY_PREFIX}.json" if num_parts == 1 else f"{SUMMARY_PREFIX}_part{part_id}of{num_parts}.json"


def predict_cohort(predictor: Predictor, source: Path | str, out_dir: Path | str, *, num_parts: int = 1,
                   part_id: int = 0, info: DistInfo | None = None, **kwargs: Any) -> dict[str, Any]:
    """Predict this process's part of the cases under ``source`` into ``out_dir`` and, once every rank has
    finished, write the summary from rank 0; returns the summary (on every rank).

    Args:
        predictor: A loaded :class:`~gliomics.inference.predictor.Predictor`.
        num_parts: Parts of the job array (1: the whole cohort).
        part_id: This job's part.
        info: This process's place under ``torchrun`` (default: a single process).
        **kwargs: Passed to :meth:`~gliomics.inference.predictor.Predictor.predict_folder`.
    """
    info = info or DistInfo()
    parts = num_parts * info.world_size
    part = part_id * info.world_size + info.rank
    start = time.perf_counter()
    result = predictor.predict_folder(source, out_dir, num_parts=parts, part_id=part, **kwargs)
    result["part"], result["wall_s"] = part, round(time.perf_counter() - start, 3)
    results = all_gather_objects(result, info)  # every rank has finished past this point
    wall = max(r["wall_s"] for r in results)
    predicted = sum(len(r["predicted"]) for r in results)
    summary = {"predicted": predicted, "skipped": sum(len(r["skipped"]) for r in results),
               "failed": {k: v for r in results for k, v in r["failed"].items()},
               "num_parts": num_parts, "part_id": part_id, "ranks": info.world_size, "wall_s": wall,
               "cases_per_hour": round(3600.0 * predicted / wall, 2) if predicted and wall > 0 else None,
               "parts": [{k: r[k] for k in ("part", "predicted", "skipped", "failed", "seconds", "seconds_per_case",
                                             "wall_s", "hardware")} for r in results]}
    if info.is_main:
        write_text_atomic(Path(out_dir) / summary_name(num_parts, part_id), json.dumps(summary, indent=2))
    return summary


def predict_folder(predictor: Predictor, source: Path | str, out_dir: Path | str, *, overwrite: bool = False,
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
