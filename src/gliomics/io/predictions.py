"""The files of a prediction folder: ``<case>_seg.nii.gz``, ``<case>_probabilities.nii.gz``,
``<case>_uncertainty.nii.gz`` and the record ``<case>.json``, with the one reader of that record that evaluation
and reports share."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gliomics.errors import InputError

__all__ = ["PROB_SUFFIX", "RECORD_SUFFIX", "SEG_SUFFIX", "SUMMARY_PREFIX", "UNCERTAINTY_SUFFIX", "MarkerResult",
           "PredictionRecord", "check_record", "is_number", "read_prediction_record", "record_paths"]

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


class MarkerResult(BaseModel):
    """One marker of a record: ``probability`` and ``threshold`` always; the calls, the calibration, the conformal
    set and the flag where they apply (``docs/reference/prediction-record.md``)."""

    model_config = ConfigDict(extra="allow")

    probability: float = Field(allow_inf_nan=False)
    threshold: float = Field(allow_inf_nan=False)
    probability_raw: float | None = None
    calibrated: bool | None = None
    call: Any = None
    flag: str | None = None


class PredictionRecord(BaseModel):
    """``<case>.json``: what ``Predictor.predict`` records of one case. The exporter checks a record against it
    before writing, and :func:`read_prediction_record` after reading; evaluation and reports read records only
    through that reader. Its JSON schema is published with the documentation."""

    model_config = ConfigDict(extra="forbid")

    case_id: str
    sequences_present: list[str] = Field(default_factory=list)
    sequences_missing: list[str] = Field(default_factory=list)
    mean_cmaf_weight: dict[str, dict[str, float]] | None = None
    postprocessing: dict[str, Any] | None = None
    volumes_ml: dict[str, float] | None = None
    markers: dict[str, MarkerResult]
    markers_from: Literal["readout", "network heads"] | None = None
    calibration: dict[str, Any] | None = None
    who_cns5: dict[str, Any] | None = None
    who_cns5_withheld: str | None = None
    marker_validation: dict[str, Any] | None = None
    uncertainty: dict[str, Any] | None = None
    needs_review: bool = False
    review_reasons: list[str] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)
    hardware: dict[str, Any] | None = None
    model: dict[str, Any] | None = None
    versions: dict[str, Any] | None = None
    caveat: str | None = None


def check_record(record: dict[str, Any], source: Path | str) -> dict[str, Any]:
    """``record`` checked against :class:`PredictionRecord` (returned as it is).

    Raises:
        InputError: a field is missing, unknown or of the wrong type; the message names ``source`` and the field.
    """
    try:
        PredictionRecord.model_validate(record)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "the record"
        if first["loc"][:1] == ("markers",):
            raise InputError(f"{source}: incomplete prediction record (marker {first['loc'][1]!r} lacks probability "
                             f"or threshold: {field}: {first['msg']})") from None
        raise InputError(f"{source}: not a prediction record ({field}: {first['msg']})") from None
    return record


def read_prediction_record(path: Path | str, case_id: str) -> dict[str, Any]:
    """Read and check the record ``<case>.json`` of ``case_id`` (:class:`PredictionRecord`).

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
    return check_record(record, path)
