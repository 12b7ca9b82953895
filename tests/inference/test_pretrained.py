"""The model that ships with gliomics (``-m pretrained``): it is in the package, its card says what it was trained
on, and it segments a real scan (``../shared/real`` beside the repository) with its marker probabilities flagged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gliomics.constants import MODEL_CARD_FILE
from gliomics.inference.marker_validation import FLAG
from gliomics.inference.predictor import Predictor
from gliomics.inference.pretrained import PRETRAINED, pretrained_dir, resolve_model
from gliomics.io import discover_cases
from gliomics.io.nifti import load_label

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "real" / "cases"


@pytest.fixture(scope="module")
def real_cases() -> Path:
    assert REAL.is_dir(), f"{REAL}: the real scans are missing (expected ../shared/real)"
    return REAL


def test_the_shipped_model_is_in_the_package_with_its_card():
    folder = resolve_model(PRETRAINED)
    assert folder == pretrained_dir() and resolve_model(None) == folder
    assert {p.name for p in folder.iterdir()} >= {"best.pt", "fitted.json", "config.yaml", MODEL_CARD_FILE,
                                                   "MODEL_CARD.md"}
    card = json.loads((folder / MODEL_CARD_FILE).read_text())
    data = card["training_data"]
    assert data["other_cases"] == len(data["other_case_ids"]) > 0 and data["phantom_cases"] > 0
    assert card["markers"]["validated_on_real_patients"] is False
    # its real-case figures are cross-validated: the results name them so
    assert any("cross-validated" in name for name in card["results"])


def test_the_shipped_model_segments_a_real_scan_and_flags_its_markers(real_cases):
    case = next(c for c in discover_cases(real_cases) if c.case_id == "TCGA-FG-6692")
    prediction = Predictor("cpu").load(PRETRAINED).predict(case)
    record = prediction.record
    assert all(m.get("flag") == FLAG for m in record["markers"].values())
    assert record["who_cns5"] is None
    # a case it was fine-tuned on: this checks that the package predicts as trained (weights, normalisation, grid),
    # not its accuracy, which the model card gives cross-validated
    reference = load_label(case.seg).array > 0
    assert prediction.seg.shape == reference.shape
    predicted = prediction.seg > 0
    dice = 2 * (predicted & reference).sum() / (predicted.sum() + reference.sum())
    assert dice > 0.6, dice
