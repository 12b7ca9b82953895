"""Whether a run's marker probabilities were validated on real patients, and the flag a prediction carries when not.

A run folder's model card (``model_card.json``) records what the run was trained on and what its marker heads were
validated on. A run whose card does not show a validation on real patients (every run ``gliomics train`` makes until
someone measures one and says so with the evidence) has its marker probabilities flagged on every scan that is not a
phantom of gliomics' own generator, and the WHO CNS5 suggestion withheld there: on phantoms the heads are measured,
on real patients nobody knows what they mean.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gliomics.constants import MODEL_CARD_FILE, PHANTOM_TRUTH_FILE
from gliomics.errors import CheckpointError
from gliomics.io import Case
from gliomics.io.atomic import write_text_atomic

CARD_FORMAT = 1
FLAG = "not validated on real patients"
WHO_WITHHELD = ("withheld: the marker probabilities it would rest on were not validated on real patients "
                "(model card)")


def is_phantom_case(case: Case) -> bool:
    """True for a case of a cohort made by ``gliomics phantom`` (its id is in the cohort's ``phantom_truth.csv``)."""
    cohorts = {Path(image).resolve().parent.parent for image in case.images.values()}
    return any(case.case_id in _phantom_ids(cohort / PHANTOM_TRUTH_FILE) for cohort in cohorts)


def _phantom_ids(truth: Path) -> set[str]:
    if not truth.is_file():
        return set()
    with truth.open(newline="") as f:
        return {row.get("case_id", "") for row in csv.DictReader(f)}


def write_model_card(run_dir: Path | str, train_cases: Iterable[Case], *, preset: str,
                     started_from: str | None = None) -> Path:
    """Write the model card of a new run: its training cases (phantom or not, with the ids of those that are not),
    the model whose weights it started from (``train.init_from``), and its marker heads not validated on real
    patients."""
    cases = list(train_cases)
    others = sorted(c.case_id for c in cases if not is_phantom_case(c))
    card = {"format": CARD_FORMAT, "model": preset,
            "training_data": {"cases": len(cases), "phantom_cases": len(cases) - len(others),
                              "other_cases": len(others), "other_case_ids": others, "started_from": started_from},
            "markers": {"validated_on_real_patients": False, "evidence": None}}
    path = Path(run_dir) / MODEL_CARD_FILE
    write_text_atomic(path, json.dumps(card, indent=2))
    return path


def read_marker_validation(folder: Path | str) -> dict[str, Any]:
    """The ``markers`` part of a run folder's model card: ``validated_on_real_patients`` (False without a card) and
    ``evidence``.

    Raises:
        CheckpointError: The card is not JSON, or claims a validation on real patients without saying what it was.
    """
    path = Path(folder) / MODEL_CARD_FILE
    if not path.is_file():
        return {"validated_on_real_patients": False, "evidence": None}
    try:
        markers = dict(json.loads(path.read_text()).get("markers") or {})
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a model card ({exc})") from exc
    validated = markers.get("validated_on_real_patients") is True
    evidence = markers.get("evidence")
    if validated and not (isinstance(evidence, str) and evidence.strip()):
        raise CheckpointError(f"{path}: markers.validated_on_real_patients is true but markers.evidence does not say "
                              "on which patients and with what result")
    return {"validated_on_real_patients": validated, "evidence": evidence if validated else None}


def ensemble_marker_validation(folders: Iterable[Path]) -> dict[str, Any]:
    """Validated only where every fold run's card says so; the evidences joined."""
    cards = [read_marker_validation(f) for f in folders]
    validated = bool(cards) and all(c["validated_on_real_patients"] for c in cards)
    return {"validated_on_real_patients": validated,
            "evidence": "; ".join(sorted({c["evidence"] for c in cards if c["evidence"]})) if validated else None}


def apply_marker_flag(record: dict[str, Any], validation: dict[str, Any], phantom: bool) -> None:
    """Flag the marker probabilities of ``record`` (a ``<case>.json`` in the making) and withhold its WHO CNS5
    suggestion when the run's heads were not validated on real patients and the case is not a phantom; record the
    status in ``marker_validation`` either way."""
    flagged = bool(record.get("markers")) and not validation["validated_on_real_patients"] and not phantom
    record["marker_validation"] = {"validated_on_real_patients": validation["validated_on_real_patients"],
                                   "evidence": validation["evidence"], "input": "phantom" if phantom else "scan",
                                   "flag": FLAG if flagged else None}
    if not flagged:
        return
    for value in record["markers"].values():
        value["flag"] = FLAG
    if "who_cns5" in record:
        record["who_cns5"] = None
        record["who_cns5_withheld"] = WHO_WITHHELD


def flagged(record: dict[str, Any]) -> bool:
    """True when a ``<case>.json`` carries the flag of :func:`apply_marker_flag`."""
    return bool((record.get("marker_validation") or {}).get("flag"))
