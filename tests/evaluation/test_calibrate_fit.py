"""`calibrate_run` on hand-built runs: which cases it fits on, what it stores where, its source and review fields."""

from __future__ import annotations

import json
import logging
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from gliomics.errors import InputError
from gliomics.evaluation.calibrate import _review, calibrate_run
from gliomics.inference.calibration import fit_run_calibration
from gliomics.inference.uncertainty import fit_review_threshold
from gliomics.runtime.checkpoint import load_checkpoint, save_checkpoint
from gliomics.runtime.fitted import FITTED_FILE, LEGACY_CALIBRATION_FILE, FittedArtefacts, read_fitted, write_fitted

NAN = float("nan")
MARKER_COLUMNS = ("idh", "codel_1p19q", "tert")


def _run(folder: Path, *, last: bool = True, train: list[str] | None = None) -> Path:
    """A run folder with minimal checkpoints (and a ``splits.json`` when ``train`` is given)."""
    folder.mkdir(parents=True, exist_ok=True)
    save_checkpoint({"model": {}, "config": {"name": folder.name}}, folder / "best.pt")
    if last:
        save_checkpoint({"model": {}, "config": {"name": folder.name}, "epoch": 3}, folder / "last.pt")
    if train is not None:
        (folder / "splits.json").write_text(json.dumps({"train": train, "val": [], "test": []}))
    return folder


def _markers_csv(path: Path, rows: dict[str, tuple[str, str, str]]) -> Path:
    lines = ["case_id," + ",".join(MARKER_COLUMNS)] + [f"{c}," + ",".join(v) for c, v in rows.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _record(folder: Path, case_id: str, probs: dict[str, float], *, raw: dict[str, float] | None = None,
            uncertainty: dict | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    markers = {m: {"probability": p, "threshold": 0.5} for m, p in probs.items()}
    for m, p in (raw or {}).items():
        markers[m]["probability_raw"] = p
    record = {"case_id": case_id, "markers": markers}
    if uncertainty is not None:
        record["uncertainty"] = uncertainty
    (folder / f"{case_id}.json").write_text(json.dumps(record))


# 7 cases: C1..C6 labelled, X1 absent from the markers table
_TABLE = {"C1": ("1", "0", "1"), "C2": ("0", "0", "1"), "C3": ("1", "1", ""), "C4": ("0", "", "0"),
          "C5": ("1", "0", "0"), "C6": ("0", "1", "1")}
_PROBS = {"C1": (0.8, 0.2, 0.7), "C2": (0.3, 0.1, 0.6), "C3": (0.9, 0.7, 0.5), "C4": (0.4, 0.3, 0.2),
          "C5": (0.6, 0.4, 0.35), "C6": (0.2, 0.65, 0.75)}


def _folder_case(tmp_path: Path, *, scores: dict[str, float | None]) -> tuple[Path, Path, Path]:
    run = _run(tmp_path / "run", train=["T1", "T2"])
    pred = tmp_path / "pred"
    for case, probs in _PROBS.items():
        stored = dict(zip(MARKER_COLUMNS, probs, strict=True))
        # C1's record holds a rounded, calibrated probability and the raw one: the raw one is fitted on
        raw = {"idh": stored["idh"]} if case == "C1" else None
        if case == "C1":
            stored["idh"] = 0.99
        score = scores.get(case)
        _record(pred, case, stored, raw=raw, uncertainty=None if score is None else {"score": score, "passes": 2})
    _record(pred, "X1", {"idh": 0.5, "codel_1p19q": 0.5, "tert": 0.5})
    (pred / "summary_run.txt").write_text("not a record")
    markers = _markers_csv(tmp_path / "markers.csv", _TABLE)
    return run, pred, markers


def _expected_labels() -> list[list[float]]:
    return [[NAN if v == "" else float(v) for v in _TABLE[c]] for c in _PROBS]


def _expected_probs() -> list[dict[str, float]]:
    return [dict(zip(MARKER_COLUMNS, p, strict=True)) for p in _PROBS.values()]


def test_held_out_folder_is_fitted_and_stored_in_fitted_json(tmp_path: Path) -> None:
    """Labels from the table (empty = unknown), raw probabilities of the records; the fit goes to the run's
    fitted.json only (the checkpoints are left as they were, no calibration.json); the review threshold uses the
    records' scores."""
    scores = {"C1": 0.1, "C2": 0.4, "C3": 0.2, "C4": 0.3, "C5": 0.05, "C6": 0.5}
    run, pred, markers = _folder_case(tmp_path, scores=scores)
    fitted = calibrate_run(run, pred=pred, markers=markers, alpha=0.2, review_quantile=0.75)
    expected = fit_run_calibration(_expected_labels(), _expected_probs(), source=f"held-out predictions {pred}",
                                   alpha=0.2)
    assert {k: fitted[k] for k in ("source", "alpha")} == {"source": f"held-out predictions {pred}", "alpha": 0.2}
    assert json.dumps(fitted["markers"]) == json.dumps(expected["markers"])
    assert fitted["markers"]["idh"]["n"] == 6 and fitted["markers"]["idh"]["n_pos"] == 3
    assert fitted["markers"]["codel_1p19q"]["n"] == 5 and fitted["markers"]["tert"]["n"] == 5
    assert fitted["review"] == fit_review_threshold(list(scores.values()), 2, 0.75)
    assert list(fitted) == ["source", "alpha", "markers", "review"]
    stored = json.loads((run / FITTED_FILE).read_text())
    assert stored == {**FittedArtefacts().model_dump(), "calibration": json.loads(json.dumps(fitted))}
    assert read_fitted(run).calibration == stored["calibration"]
    assert not (run / LEGACY_CALIBRATION_FILE).exists()
    best, last = load_checkpoint(run / "best.pt"), load_checkpoint(run / "last.pt")
    assert "calibration" not in best and "calibration" not in last
    assert best["config"] == {"name": "run"} and last["epoch"] == 3


def test_a_record_without_a_raw_probability_uses_its_probability(tmp_path: Path) -> None:
    """Records written without calibration hold only ``probability``: that is the raw one."""
    run, pred, markers = _folder_case(tmp_path, scores={})
    fitted = calibrate_run(run, pred=pred, markers=markers)
    probs = _expected_probs()
    expected = fit_run_calibration(_expected_labels(), probs, source="x")
    assert json.dumps(fitted["markers"]) == json.dumps(expected["markers"])
    assert fitted["alpha"] == 0.1 and fitted["review"] is None


def test_folder_calibration_logs_each_marker_and_a_missing_review(tmp_path: Path, caplog) -> None:
    """One line per fitted marker with its temperature, case count and altered count; a note without scores."""
    run, pred, markers = _folder_case(tmp_path, scores={"C1": 0.1})
    with caplog.at_level(logging.INFO, logger="gliomics.evaluation.calibrate"):
        fitted = calibrate_run(run, pred=pred, markers=markers)
    assert fitted["review"] is None  # one case scored, the others not
    t = fitted["markers"]["idh"]["temperature"]
    messages = [r.getMessage() for r in caplog.records if r.name == "gliomics.evaluation.calibrate"]
    assert messages[0] == f"idh: temperature {t:.3f} on 6 cases (3 altered)"
    assert messages[1].startswith("codel_1p19q: temperature ") and messages[1].endswith(" on 5 cases (2 altered)")
    assert messages[2].endswith(" on 5 cases (3 altered)")
    assert messages[3] == ("no review threshold: the fitting set has no uncertainty scores (predict it with --tta or "
                           "an ensemble, and calibrate with --pred)")


def test_training_cases_are_refused(tmp_path: Path) -> None:
    """A record of a case in the run's (or a fold's) training split stops the fit."""
    run, pred, markers = _folder_case(tmp_path, scores={})
    (run / "splits.json").write_text(json.dumps({"train": ["C3"], "val": [], "test": []}))
    with pytest.raises(InputError, match=r"C3.json: case 'C3' is in the run's training split; calibrate on held-out"):
        calibrate_run(run, pred=pred, markers=markers)
    ensemble = tmp_path / "ensemble"
    for k, train in enumerate((["C9"], ["C5"])):
        _run(ensemble / f"fold_{k}", train=train)
    with pytest.raises(InputError, match="case 'C5' is in the run's training split"):
        calibrate_run(ensemble, pred=pred, markers=markers)


def test_pred_needs_markers_and_a_matching_record(tmp_path: Path) -> None:
    """--pred without --markers, or with a table that names none of the records, is refused."""
    run, pred, _ = _folder_case(tmp_path, scores={})
    with pytest.raises(InputError, match="--markers is needed with --pred"):
        calibrate_run(run, pred=pred)
    other = _markers_csv(tmp_path / "other.csv", {"Z1": ("1", "0", "1")})
    with pytest.raises(InputError, match="no prediction record matches a case of"):
        calibrate_run(run, pred=pred, markers=other)
    with pytest.raises(InputError, match=r"not a run folder \(no best.pt\) nor a folder of fold runs"):
        calibrate_run(tmp_path / "nothing")


def _fold(folder: Path, rows: list[tuple[str, list[float], dict[str, float]]]) -> Path:
    _run(folder)
    (folder / "validation_predictions.json").write_text(json.dumps(
        [{"case_id": c, "markers": m, "prob": p} for c, m, p in rows]))
    return folder


def _fold_rows() -> tuple[list, list]:
    a = [("A1", [1, 0, 1], {"idh": 0.8, "codel_1p19q": 0.3, "tert": 0.6}),
         ("A2", [0, 1, 0], {"idh": 0.4, "codel_1p19q": 0.7, "tert": 0.3}),
         ("A3", [1, 0, 0], {"idh": 0.7, "codel_1p19q": 0.2, "tert": 0.45})]
    b = [("B1", [0, 0, 1], {"idh": 0.35, "codel_1p19q": 0.25, "tert": 0.55}),
         ("B2", [1, None, 1], {"idh": 0.65, "codel_1p19q": 0.5, "tert": 0.8})]
    return a, b


def test_fold_folder_pools_out_of_fold_predictions(tmp_path: Path) -> None:
    """Every fold's validation rows are pooled; the fit goes to the folder's own fitted.json only: no fold's
    fitted artefacts or checkpoints change."""
    a, b = _fold_rows()
    ensemble = tmp_path / "ensemble"
    _fold(ensemble / "fold_0", a)
    _fold(ensemble / "fold_1", b)
    own = FittedArtefacts(thresholds={"idh": 0.4}, calibration={"source": "fold 0's own"})
    write_fitted(ensemble / "fold_0", own)
    fitted = calibrate_run(ensemble, alpha=0.3)
    rows = a + b
    labels = [[NAN if v is None else v for v in m] for _, m, _ in rows]
    expected = fit_run_calibration(labels, [p for _, _, p in rows], source="out-of-fold (2 folds)", alpha=0.3)
    assert fitted["source"] == "out-of-fold (2 folds)" and fitted["review"] is None
    assert json.dumps(fitted["markers"]) == json.dumps(expected["markers"])
    assert fitted["markers"]["idh"]["n"] == 5 and fitted["markers"]["codel_1p19q"]["n"] == 4
    assert json.loads((ensemble / FITTED_FILE).read_text())["calibration"] == json.loads(json.dumps(fitted))
    assert read_fitted(ensemble).calibration == json.loads(json.dumps(fitted))
    assert not (ensemble / LEGACY_CALIBRATION_FILE).exists()
    assert read_fitted(ensemble / "fold_0") == own
    assert not (ensemble / "fold_1" / FITTED_FILE).exists() and read_fitted(ensemble / "fold_1").calibration == {}
    for k in (0, 1):
        assert "calibration" not in load_checkpoint(ensemble / f"fold_{k}" / "best.pt")
        assert "calibration" not in load_checkpoint(ensemble / f"fold_{k}" / "last.pt")
        assert not (ensemble / f"fold_{k}" / LEGACY_CALIBRATION_FILE).exists()


def test_fold_folder_checks(tmp_path: Path) -> None:
    """A fold without validation predictions, or a case validated by two folds, is refused."""
    a, b = _fold_rows()
    ensemble = tmp_path / "ensemble"
    _fold(ensemble / "fold_0", a)
    _run(ensemble / "fold_1")
    with pytest.raises(InputError, match=r"validation_predictions.json: not found \(the fold has not validated yet\)"):
        calibrate_run(ensemble)
    _fold(ensemble / "fold_1", [*b, a[0]])
    with pytest.raises(InputError, match="a case is in the validation fold of two runs"):
        calibrate_run(ensemble)


class _Case:
    def __init__(self, name: str, labels: list[float]) -> None:
        self.case, self._labels = f"case-{name}", labels

    def marker_vector(self) -> np.ndarray:
        return np.array(self._labels, dtype=np.float32)


def _sigmoid_markers(markers: dict[str, torch.Tensor] | None) -> dict[str, float]:
    return {m: float(torch.sigmoid(markers[m].flatten()[0])) for m in MARKER_COLUMNS if m in markers}


def _patch_validation(monkeypatch, logits: dict[str, tuple[float, float, float]], scores: dict[str, float | None],
                      val: list[str]) -> list:
    """A fake cohort, splits and predictor (the network modules are not loaded): the predictor's ``forward`` returns
    a stand-in for a :class:`~gliomics.inference.engine.NetworkOutput` with the sigmoid of ``logits`` and the
    ``scores`` per case."""
    import gliomics.data.splits

    labels = {"V1": [1, 0, 1], "V2": [0, 1, 0], "V3": [1, 0, 0], "V4": [0, NAN, 1], "V5": [1, 1, 0]}
    cohort = {c: _Case(c, labels[c]) for c in logits}
    calls: list = []

    class FakePredictor:
        def __init__(self, device, *, options, precision) -> None:
            calls.append(("init", device, options, precision))

        def load(self, run):
            calls.append(("load", Path(run).name))
            return self

        def forward(self, case):
            name = case.removeprefix("case-")
            calls.append(("forward", name))
            score = scores.get(name)
            markers = {m: torch.tensor([v]) for m, v in zip(MARKER_COLUMNS, logits[name], strict=True)}
            return None, types.SimpleNamespace(
                markers=markers, marker_probabilities=_sigmoid_markers(markers),
                uncertainty=None if score is None else {"score": score, "passes": 4})

    monkeypatch.setattr(gliomics.data.splits, "run_cohort", lambda run: (cohort, {"train": [], "val": val}, []))
    monkeypatch.setitem(sys.modules, "gliomics.inference.predictor",
                        types.SimpleNamespace(Predictor=FakePredictor))
    return calls


_LOGITS = {"V1": (1.0, -1.0, 0.5), "V2": (-0.5, 0.8, -1.2), "V3": (2.0, -0.3, 0.1), "V4": (-1.5, 0.2, 1.1),
           "V5": (0.3, 0.6, -0.4)}


def test_validation_split_is_predicted_with_the_best_checkpoint(tmp_path: Path, monkeypatch) -> None:
    """The run's validation cases (those still in the cohort) are predicted with flip TTA and automatic precision
    and device by default; their sigmoid probabilities are fitted and their scores give the review threshold."""
    scores = {"V1": 0.3, "V2": 0.1, "V3": 0.2, "V4": 0.6, "V5": 0.4}
    calls = _patch_validation(monkeypatch, _LOGITS, scores, val=["V1", "V2", "GONE", "V3", "V4", "V5"])
    run = _run(tmp_path / "run", last=False)
    fitted = calibrate_run(run)
    assert calls == [("init", "auto", {"tta": True}, "auto"), ("load", "run"),
                     *[("forward", c) for c in ("V1", "V2", "V3", "V4", "V5")]]
    sig = {c: {m: float(torch.sigmoid(torch.tensor(v))) for m, v in zip(MARKER_COLUMNS, z, strict=True)}
           for c, z in _LOGITS.items()}
    labels = [[1, 0, 1], [0, 1, 0], [1, 0, 0], [0, NAN, 1], [1, 1, 0]]
    expected = fit_run_calibration(labels, list(sig.values()), source="validation (flip TTA)")
    assert fitted["source"] == "validation (flip TTA)"
    assert json.dumps(fitted["markers"]) == json.dumps(expected["markers"])
    assert fitted["review"] == fit_review_threshold(list(scores.values()), 4, 0.9)
    assert read_fitted(run).calibration == json.loads(json.dumps(fitted))
    assert "calibration" not in load_checkpoint(run / "best.pt")
    assert not (run / "last.pt").exists()


def test_validation_without_tta_and_with_a_chosen_device(tmp_path: Path, monkeypatch) -> None:
    """tta=False names the source "validation"; precision and device reach the predictor, and the caller's options
    with ``tta`` set by the argument."""
    calls = _patch_validation(monkeypatch, _LOGITS, {}, val=list(_LOGITS))
    fitted = calibrate_run(_run(tmp_path / "run"), tta=False, precision="fp32", device="cpu",
                           options={"tta": True, "sequences": ["t1c", "t2f"]})
    assert calls[0] == ("init", "cpu", {"tta": False, "sequences": ["t1c", "t2f"]}, "fp32")
    assert fitted["source"] == "validation" and fitted["review"] is None


def test_a_run_without_validation_cases_is_refused(tmp_path: Path, monkeypatch) -> None:
    """Validation cases that have all left the cohort leave nothing to calibrate on."""
    _patch_validation(monkeypatch, _LOGITS, {}, val=["GONE"])
    with pytest.raises(InputError, match="the run has no validation cases to calibrate on"):
        calibrate_run(_run(tmp_path / "run"))


def test_review_threshold_needs_every_case_scored_the_same_way() -> None:
    """No scores, or some missing: no threshold; scores of different pass counts are refused; otherwise the
    quantile of the scores."""
    assert _review([], 0.9) is None
    assert _review([None, None], 0.9) is None
    assert _review([{"score": 0.1, "passes": 2}, None], 0.9) is None
    scored = [{"score": s, "passes": 2} for s in (0.1, 0.3, 0.2, 0.5)]
    assert _review(scored, 0.5) == fit_review_threshold([0.1, 0.3, 0.2, 0.5], 2, 0.5)
    assert _review(scored, 0.5)["threshold"] == pytest.approx(0.25)
    with pytest.raises(InputError, match=r"different numbers of passes \[2, 4\]; predict them all the same way"):
        _review([{"score": 0.1, "passes": 4}, {"score": 0.2, "passes": 2}], 0.9)
