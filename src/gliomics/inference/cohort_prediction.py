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
import time
from pathlib import Path
from typing import Any

from gliomics.inference.predictor import Predictor
from gliomics.io.atomic import write_text_atomic
from gliomics.io.predictions import SUMMARY_PREFIX
from gliomics.runtime.distributed import DistInfo, all_gather_objects

__all__ = ["predict_cohort", "summary_name"]


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

