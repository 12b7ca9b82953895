"""``gliomics compare`` without a network: the pairing of per-case rows, the p-values against the reference run,
the rows of the comparison and the files written."""

from __future__ import annotations

import csv
import json
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from gliomics.constants import MARKERS
from gliomics.errors import InputError
from gliomics.evaluation import compare as compare_module
from gliomics.evaluation.classification import delong_test, mcnemar_test
from gliomics.evaluation.compare import _paired, _per_case, compare_runs
from gliomics.evaluation.tables import comparison_table


def _write_per_case(folder: Path, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "per_case.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_per_case_reads_the_rows_by_case_id(tmp_path):
    """``per_case.csv`` comes back as strings keyed by case id, in file order."""
    _write_per_case(tmp_path, [{"case_id": "B", "prob_idh": "0.25", "label_idh": ""},
                               {"case_id": "A", "prob_idh": "0.5", "label_idh": "1"}])
    rows = _per_case(tmp_path)
    assert list(rows) == ["B", "A"]
    assert rows["A"] == {"case_id": "A", "prob_idh": "0.5", "label_idh": "1"}
    assert rows["B"]["label_idh"] == ""


def _row(label, prob, threshold="0.7"):
    return {"label_idh": label, "prob_idh": prob, "threshold_idh": threshold}


def test_paired_keeps_the_cases_known_on_both_sides():
    """Cases missing from the other run, without label or with a missing probability on either side are dropped;
    the thresholds are the first kept case's."""
    ref = {"gone": _row("1", "0.1", "0.9"), "nolabel": _row("", "0.2"), "nolabel2": _row(None, "0.2"),
           "C1": _row("1", "0.8", "0.65"), "noprob": _row("0", ""), "noprob2": _row("0", None),
           "C2": _row("0.0", "0.3", "0.1"), "otherprob": _row("1", "0.4"), "otherprob2": _row("1", "0.4"),
           "C3": _row("1.0", "0.55")}
    other = {c: _row("", "0.5", "") for c in ref if c != "gone"}
    other["C2"] = _row("", "0.25", "0.35")
    other["otherprob"] = _row("1", "")
    other["otherprob2"] = _row("1", None)
    y, pa, pb, ta, tb = _paired(ref, other, "idh")
    assert y.tolist() == [1, 0, 1] and y.dtype.kind == "i"
    assert pa.tolist() == [0.8, 0.3, 0.55] and pb.tolist() == [0.5, 0.25, 0.5]
    assert (ta, tb) == (0.65, 0.5)


def test_paired_takes_the_thresholds_of_the_first_case_and_defaults_to_one_half():
    """A threshold recorded for the first case is used for both runs; an empty or absent one means 0.5."""
    ref = {"A": {"label_tert": "0", "prob_tert": "0.1"}, "B": {"label_tert": "1", "prob_tert": "0.9",
                                                              "threshold_tert": "0.8"}}
    other = {"A": {"prob_tert": "0.2", "threshold_tert": "0.3"}, "B": {"prob_tert": "0.7"}}
    y, pa, pb, ta, tb = _paired(ref, other, "tert")
    assert (ta, tb) == (0.5, 0.3)
    assert _paired(ref, other, "idh") is None
    assert _paired(ref, {}, "tert") is None


class _FakePredictor:
    """Stands in for the Predictor: records its device, options, run and the folders it was asked to predict."""

    calls: list = []

    def __init__(self, device, *, options):
        self.device, self.options = device, options

    def load(self, run):
        self.run = run
        return self

    def predict_folder(self, data, pred_dir, progress):
        self.calls.append({"device": self.device, "options": self.options, "run": self.run, "data": data,
                           "pred_dir": pred_dir, "progress": progress})


# Reference run A at threshold 0.6, other run B at the default 0.5 (its threshold column is empty).
# C1, C2 (A exactly at its threshold), C3 (B exactly at its threshold) and C4: A right and B wrong; C5, C6: both right.
_Y = [1, 1, 0, 0, 1, 0]
_PA = [0.9, 0.6, 0.1, 0.3, 0.95, 0.55]
_PB = [0.2, 0.1, 0.5, 0.8, 0.9, 0.45]


def _per_case_rows(probs, threshold, with_labels):
    rows = []
    for i, p in enumerate(probs):
        rows.append({"case_id": f"C{i + 1}", "label_idh": _Y[i] if with_labels else "", "prob_idh": p,
                     "threshold_idh": threshold, "label_codel_1p19q": 0 if with_labels else "",
                     "prob_codel_1p19q": 0.5, "label_tert": "", "prob_tert": 0.5})
    return rows


_SUMMARIES = {
    "alpha": {"segmentation": {"ET": {"dice": {"mean": 0.8, "lo": 0.7, "hi": 0.9}}},
              "mean_lesion_dice": {"mean": 0.6, "lo": 0.5, "hi": 0.7},
              "mean_dice": {"mean": np.float32(0.75), "lo": 0.6, "hi": 0.8},
              "markers": {"idh": {"auc": 0.9}, "codel_1p19q": {"auc": math.nan}, "tert": {"auc": 0.6}},
              "bayes_optimal_auc": {"idh": 0.95, "codel_1p19q": 0.8, "tert": 0.7}},
    "beta": {"segmentation": {}, "mean_lesion_dice": None, "mean_dice": None,
             "markers": {"idh": {"auc": 0.5}, "tert": {"n": 3}}},
}


@pytest.fixture
def fake_runs(monkeypatch):
    """Predictor and evaluation replaced: each evaluation writes the per-case rows of its run and returns its
    summary; the calls are recorded."""
    fake = types.ModuleType("gliomics.inference.predictor")
    fake.Predictor = _FakePredictor
    monkeypatch.setitem(sys.modules, "gliomics.inference.predictor", fake)
    monkeypatch.setattr(_FakePredictor, "calls", [])
    evaluations = []

    def evaluate(pred_dir, data, *, markers, out, n_boot):
        evaluations.append({"pred_dir": pred_dir, "data": data, "markers": markers, "out": out, "n_boot": n_boot})
        name = out.parent.name.split("_")[-1]
        rows = (_per_case_rows(_PA, 0.6, True) if name == "alpha" else _per_case_rows(_PB, "", False))
        _write_per_case(out, rows)
        return _SUMMARIES[name]

    monkeypatch.setattr(compare_module, "evaluate_predictions", evaluate)
    return evaluations


def test_compare_runs_tests_every_marker_against_the_first_run(fake_runs, tmp_path):
    """Rows per run (names from folders or a checkpoint's folder), DeLong and McNemar p-values of the markers with
    both classes, the Bayes-optimal AUCs of the last summary that has them, and both files written."""
    (tmp_path / "alpha").mkdir()
    (tmp_path / "beta").mkdir()
    (tmp_path / "beta" / "last.pt").write_text("")
    out, data = tmp_path / "cmp", tmp_path / "cohort"
    result = compare_runs([tmp_path / "alpha", str(tmp_path / "beta" / "last.pt")], data, markers="m.csv", out=out)

    assert [c["run"] for c in _FakePredictor.calls] == [tmp_path / "alpha", tmp_path / "beta" / "last.pt"]
    assert [c["pred_dir"] for c in _FakePredictor.calls] == [out / "alpha" / "predictions",
                                                             out / "beta" / "predictions"]
    assert all(c["device"] == "auto" and c["options"] is None and c["progress"] is True and c["data"] == data
               for c in _FakePredictor.calls)
    assert fake_runs == [
        {"pred_dir": out / n / "predictions", "data": data, "markers": "m.csv", "out": out / n / "evaluation",
         "n_boot": 1000} for n in ("alpha", "beta")]

    assert list(result) == ["reference", "data", "models", "bayes_optimal_auc", "table"]
    assert result["reference"] == "alpha" and result["data"] == str(data)
    assert result["bayes_optimal_auc"] == {"idh": 0.95, "codel_1p19q": 0.8, "tert": 0.7}
    ref, other = result["models"]
    assert ref == {"name": "alpha", "run": str(tmp_path / "alpha"), "seg": _SUMMARIES["alpha"]["segmentation"],
                   "mean_lesion_dice": _SUMMARIES["alpha"]["mean_lesion_dice"],
                   "mean_dice": _SUMMARIES["alpha"]["mean_dice"], "mean_auc": pytest.approx(0.75),
                   "auc": {"idh": 0.9, "codel_1p19q": ref["auc"]["codel_1p19q"], "tert": 0.6}}
    assert math.isnan(ref["auc"]["codel_1p19q"])

    y, pa, pb = np.array(_Y), np.array(_PA), np.array(_PB)
    calls_a, calls_b = [1, 1, 0, 0, 1, 0], [0, 0, 1, 1, 1, 0]
    assert (pa >= 0.6).astype(int).tolist() == calls_a and (pb >= 0.5).astype(int).tolist() == calls_b
    expected_mcnemar = mcnemar_test(y, calls_a, calls_b)["p_value"]
    assert expected_mcnemar == pytest.approx(0.125)  # four discordant cases, all for the reference
    assert other == {"name": "beta", "run": str(tmp_path / "beta" / "last.pt"), "seg": {}, "mean_lesion_dice": None,
                     "mean_dice": None, "mean_auc": 0.5, "auc": {"idh": 0.5, "tert": None},
                     "delong_p_idh": delong_test(y, pa, pb)["p_value"], "mcnemar_p_idh": expected_mcnemar}

    assert result["table"] == comparison_table(result["models"], "alpha", result["bayes_optimal_auc"])
    assert (out / "comparison.md").read_text() == f"# Comparison on {data}\n\n{result['table']}"
    text = (out / "comparison.json").read_text()
    assert text == json.dumps(result, indent=2, default=float) and '"mean": 0.75,' in text
    written = json.loads(text)
    assert written["reference"] == "alpha" and written["models"][1]["mcnemar_p_idh"] == pytest.approx(0.125)
    assert written["table"] == result["table"] and written["bayes_optimal_auc"] == result["bayes_optimal_auc"]


def test_compare_runs_numbers_runs_with_the_same_name(fake_runs, tmp_path):
    """Runs whose folders share a name are told apart by their position; the arguments reach the predictor and
    the evaluation; a run without any finite AUC has a NaN mean AUC."""
    for parent in ("x", "y"):
        (tmp_path / parent / "alpha").mkdir(parents=True)
    out = tmp_path / "cmp"
    result = compare_runs([tmp_path / "x" / "alpha", tmp_path / "y" / "alpha"], "data", markers=None, out=out,
                          device="cpu", n_boot=7, progress=False, options={"tta": True, "sequences": ["t1c"]})
    assert [m["name"] for m in result["models"]] == ["0_alpha", "1_alpha"] and result["reference"] == "0_alpha"
    assert all(c["device"] == "cpu" and c["options"] == {"tta": True, "sequences": ["t1c"]} and c["progress"] is False
               for c in _FakePredictor.calls)
    assert [e["n_boot"] for e in fake_runs] == [7, 7] and fake_runs[0]["markers"] is None
    assert fake_runs[1]["out"] == out / "1_alpha" / "evaluation"
    assert "delong_p_idh" in result["models"][1] and "delong_p_codel_1p19q" not in result["models"][1]
    assert not any(f"mcnemar_p_{m}" in result["models"][0] for m in MARKERS)


def test_compare_runs_gives_a_nan_mean_auc_without_any_auc(fake_runs, tmp_path, monkeypatch):
    """Markers without a finite AUC leave the mean AUC NaN; a run without Bayes-optimal AUCs keeps None."""
    monkeypatch.setitem(_SUMMARIES, "alpha", {**_SUMMARIES["alpha"], "markers": {"idh": {"auc": math.nan}},
                                              "bayes_optimal_auc": None})
    monkeypatch.setitem(_SUMMARIES, "beta", {**_SUMMARIES["beta"], "markers": {}})
    (tmp_path / "alpha").mkdir()
    (tmp_path / "beta").mkdir()
    result = compare_runs([tmp_path / "alpha", tmp_path / "beta"], "d", markers=None, out=tmp_path / "o")
    assert all(math.isnan(m["mean_auc"]) for m in result["models"])
    assert result["bayes_optimal_auc"] is None


def test_compare_runs_needs_two_runs(fake_runs, tmp_path):
    """One run is refused before anything is predicted."""
    with pytest.raises(InputError, match="^compare needs at least two runs$"):
        compare_runs([tmp_path], tmp_path, markers=None, out=tmp_path / "out")
    assert not (tmp_path / "out").exists() and fake_runs == [] and _FakePredictor.calls == []
