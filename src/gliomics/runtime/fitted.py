"""What a run fitted after its weights, kept apart from them: ``fitted.json`` in the run folder.

It holds the marker thresholds, the label and component minimums, the marker calibration and the marker readout,
as nnU-Net keeps its post-processing apart from the checkpoint. :func:`write_fitted` is its one writer (the trainer
at each best epoch, the readout fit, ``gliomics calibrate``); :func:`read_fitted` its one reader. Runs written
before the file existed kept these as keys of ``best.pt`` (and an ensemble's calibration in ``calibration.json``);
they are read from there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gliomics.constants import MARKERS
from gliomics.errors import CheckpointError
from gliomics.io.atomic import write_text_atomic

__all__ = ["FITTED_FILE", "FITTED_VERSION", "LEGACY_CALIBRATION_FILE", "FittedArtefacts", "ensemble_fitted",
           "read_fitted", "update_fitted", "write_fitted"]

FITTED_FILE = "fitted.json"
FITTED_VERSION = 1
#: Where runs and ensemble folders written before ``fitted.json`` kept the calibration of ``gliomics calibrate``.
LEGACY_CALIBRATION_FILE = "calibration.json"
#: The keys of ``best.pt`` that held the fitted artefacts before ``fitted.json``.
_LEGACY_KEYS = ("thresholds", "min_label_mm3", "min_component_mm3", "calibration", "marker_readout")
_REFIT = ("refit it: `gliomics calibrate RUN` fits the calibration again and `gliomics readout RUN` the marker "
          "readout; retraining fits the thresholds and minimums")


class FittedArtefacts(BaseModel):
    """A run's fitted artefacts (each empty until fitted).

    Attributes:
        version: The file's format version.
        thresholds: Marker -> decision threshold (Youden's J on validation).
        min_label_mm3: Tumour label -> minimum whole volume
            (:func:`~gliomics.inference.postprocess.fit_min_label_volumes`).
        min_component_mm3: Tumour label -> minimum component volume
            (:func:`~gliomics.inference.postprocess.fit_min_component_volumes`).
        calibration: The marker calibration (:func:`~gliomics.inference.calibration.fit_run_calibration`), with
            the review threshold where fitted.
        marker_readout: The marker readout (:meth:`~gliomics.inference.marker_readout.MarkerReadout.to_dict`), or
            None.
    """

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = FITTED_VERSION
    thresholds: dict[str, float] = Field(default_factory=dict)
    min_label_mm3: dict[str, float] = Field(default_factory=dict)
    min_component_mm3: dict[str, float] = Field(default_factory=dict)
    calibration: dict[str, Any] = Field(default_factory=dict)
    marker_readout: dict[str, Any] | None = None


def write_fitted(folder: Path | str, fitted: FittedArtefacts) -> Path:
    """Write ``folder/fitted.json`` atomically."""
    return write_text_atomic(Path(folder) / FITTED_FILE, fitted.model_dump_json(indent=2))


def update_fitted(folder: Path | str, **fields: Any) -> FittedArtefacts:
    """Replace ``fields`` of ``folder``'s fitted artefacts (read as :func:`read_fitted` does) and write them."""
    fitted = read_fitted(folder).model_copy(update=fields)
    write_fitted(folder, FittedArtefacts.model_validate(fitted.model_dump()))
    return fitted


def read_fitted(folder: Path | str, state: dict[str, Any] | None = None) -> FittedArtefacts:
    """The fitted artefacts of a run (or ensemble) folder: ``fitted.json``; for a run written before it, the keys
    of its checkpoint ``state`` (``best.pt`` read here when None) and ``calibration.json``; empty when none exist.

    Raises:
        CheckpointError: ``fitted.json`` is unreadable, of another version or malformed (the message says how to
            refit).
    """
    folder = Path(folder)
    path = folder / FITTED_FILE
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{path}: unreadable ({exc}); {_REFIT}") from exc
        if isinstance(data, dict) and data.get("version") != FITTED_VERSION:
            raise CheckpointError(f"{path}: version {data.get('version')!r}, this gliomics reads version "
                                  f"{FITTED_VERSION}; {_REFIT}")
        try:
            return FittedArtefacts.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise CheckpointError(f"{path}: {'.'.join(map(str, first['loc'])) or 'the file'}: {first['msg']}; "
                                  f"{_REFIT}") from exc
    return _legacy_fitted(folder, state)


def _legacy_fitted(folder: Path, state: dict[str, Any] | None) -> FittedArtefacts:
    """The fitted artefacts of a run written before ``fitted.json``."""
    if state is None and (folder / "best.pt").is_file():
        from gliomics.runtime.checkpoint import load_checkpoint

        state = load_checkpoint(folder / "best.pt")
    found = {k: state[k] for k in _LEGACY_KEYS if state and state.get(k) is not None}
    calibration = folder / LEGACY_CALIBRATION_FILE
    if calibration.is_file():
        try:
            found["calibration"] = json.loads(calibration.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{calibration}: unreadable ({exc}); {_REFIT}") from exc
    try:
        return FittedArtefacts.model_validate(found)
    except ValidationError as exc:
        raise CheckpointError(f"{folder}: its checkpoint's fitted artefacts are malformed ({exc.errors()[0]['msg']});"
                              f" {_REFIT}") from exc


def ensemble_fitted(members: list[FittedArtefacts], own: FittedArtefacts) -> FittedArtefacts:
    """An ensemble's fitted artefacts: its members' marker thresholds averaged, their label and component minimums'
    median per label (0 where a member fitted none), and the ensemble folder's ``own`` calibration (fitted out of
    fold). Each member keeps its own marker readout."""
    def median(minimums: list[dict[str, float]]) -> dict[str, float]:
        labels = {k for mins in minimums for k in mins}
        return {k: float(np.median([mins.get(k, 0.0) for mins in minimums])) for k in labels}

    return FittedArtefacts(
        thresholds={m: float(np.mean([f.thresholds.get(m, 0.5) for f in members])) for m in MARKERS},
        min_label_mm3=median([f.min_label_mm3 for f in members]),
        min_component_mm3=median([f.min_component_mm3 for f in members]),
        calibration=own.calibration)
