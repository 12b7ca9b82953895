"""The marker and review part of a prediction record: calibrated probabilities, calls, conformal sets, the WHO
CNS5 suggestion and the review flag."""

from __future__ import annotations

from typing import Any

from gliomics.constants import MARKERS
from gliomics.inference.calibration import apply_calibration
from gliomics.inference.uncertainty import review_reason
from gliomics.inference.who import DEFAULT_BAND, who_cns5_suggestion

__all__ = ["marker_record"]


def marker_record(raw: dict[str, float], thresholds: dict[str, float], calibration: dict[str, Any],
                  uncertainty: dict[str, Any] | None = None, *, who_band: float = DEFAULT_BAND) -> dict[str, Any]:
    """The marker and review part of ``<case>.json`` from the network's raw probabilities and the passes'
    uncertainty: per marker the raw and the calibrated probability, the calls at each operating point and the
    conformal set (where ``calibration``, a run's fitted calibration, has the marker,
    :mod:`~gliomics.inference.calibration`); the WHO CNS5 suggestion from the calibrated probabilities,
    indeterminate where a needed marker's set holds both classes; ``uncertainty`` with the calibration's review
    threshold; and ``needs_review`` with its reasons (an undetermined set, or a score above the threshold,
    :mod:`~gliomics.inference.uncertainty`)."""
    fitted = calibration.get("markers", {})
    markers = {m: apply_calibration(m, p, fitted.get(m), thresholds[m]) for m, p in raw.items()}
    out: dict[str, Any] = {"markers": markers}
    if calibration:
        out["calibration"] = {"source": calibration.get("source"), "alpha": calibration.get("alpha"),
                              "calls_use": "the calibrated probability (temperature scaling)"}
    undetermined = [m for m, v in markers.items() if v.get("set_status") == "undetermined"]
    if all(m in markers for m in MARKERS):
        out["who_cns5"] = who_cns5_suggestion({m: v["probability"] for m, v in markers.items()},
                                              {m: v["threshold"] for m, v in markers.items()},
                                              band=who_band, undetermined=undetermined)
    reasons = [f"{m}: the conformal prediction set holds both classes" for m in undetermined]
    out["uncertainty"], reason = review_reason(uncertainty, calibration.get("review"))
    reasons += [reason] if reason else []
    out["needs_review"] = bool(reasons)
    out["review_reasons"] = reasons
    return out
