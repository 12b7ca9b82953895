"""The files of a prediction folder: ``<case>_seg.nii.gz``, ``<case>_probabilities.nii.gz``,
``<case>_uncertainty.nii.gz`` and the record ``<case>.json``, with the one reader of that record that evaluation
and reports share."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from gliomics.errors import InputError

__all__ = ["PROB_SUFFIX", "RECORD_SUFFIX", "SEG_SUFFIX", "SUMMARY_PREFIX", "UNCERTAINTY_SUFFIX", "is_number",
           "read_prediction_record", "record_paths"]

SEG_SUFFIX = "_seg.nii.gz"
PROB_SUFFIX = "_probabilities.nii.gz"
UNCERTAINTY_SUFFIX = "_uncertainty.nii.gz"
#: The summary of a prediction run (``predict_summary.json``, or ``predict_summary_part<k>of<P>.json`` for one part of
#: a job array): a JSON file of the folder that is not a case's record.
SUMMARY_PREFIX = "predict_summary"


def record_paths(folder: Path | str) -> list[Path]:
    """The case records ``<case>.json`` of a prediction folder, sorted (hidden files and run summaries left out)."""
    return sorted(p for p in Path(folder).glob(f"*{RECORD_SUFFIX}")
                  if not p.name.startswith((".", SUMMARY_PREFIX)))
RECORD_SUFFIX = ".json"


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_prediction_record(path: Path | str, case_id: str) -> dict[str, Any]:
    """Read and check the record ``<case>.json`` of ``case_id``.

    Raises:
        InputError: the JSON is invalid, is not the record of ``case_id``, or a marker lacks a finite probability or
            threshold.
    """
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot read the prediction record ({exc.strerror})") from exc
    markers = record.get("markers") if isinstance(record, dict) else None
    if not isinstance(markers, dict):
        raise InputError(f"{path}: incomplete prediction record (no marker results)")
    for m, v in markers.items():
        if not isinstance(v, dict) or not all(is_number(v.get(k)) for k in ("probability", "threshold")):
            raise InputError(f"{path}: incomplete prediction record (marker {m!r} lacks probability or threshold)")
    if record.get("case_id") != case_id:
        raise InputError(f"{path}: the record is of case {record.get('case_id')!r}, not {case_id!r}")
    return record
