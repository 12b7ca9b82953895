"""`gliomics evaluate --run RUN --split val`: a run's own held-out split, and `--against` side by side."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from gliomics.cli.main import app
from gliomics.errors import InputError
from gliomics.evaluation.side_by_side import compare_evaluations, side_by_side_table

runner = CliRunner()


def test_the_validation_split_is_predicted_and_scored(tiny_run, tmp_path):
    out = tmp_path / "internal"
    result = runner.invoke(app, ["evaluate", "--run", str(tiny_run), "--split", "val", "-o", str(out),
                                 "--device", "cpu", "--n-boot", "100"])
    assert result.exit_code == 0, result.output
    splits = json.loads((tiny_run / "splits.json").read_text())
    predicted = {p.name[: -len(".json")] for p in (out / "predictions").glob("*.json")}
    assert predicted == set(splits["val"])  # the validation cases, and no training case
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cases"] == len(splits["val"]) and summary["cases_without_prediction"] == 0
    assert "bayes_optimal_auc" in summary  # the phantom truth of the run's cohort was found
    assert "the val split of" in (out / "tables.md").read_text()


@pytest.mark.parametrize("args, message", [
    (["--split", "train"], "--split train"),
    (["--split", "test"], "no test cases"),
])
def test_splits_that_cannot_be_evaluated_are_refused(tiny_run, tmp_path, args, message):
    out = tmp_path / "out"
    result = runner.invoke(app, ["evaluate", "--run", str(tiny_run), "-o", str(out), *args])
    assert result.exit_code == 2 and message in result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()


def test_run_and_prediction_folder_exclude_each_other(tiny_run, tiny_phantom, tmp_path):
    result = runner.invoke(app, ["evaluate", "--run", str(tiny_run), "--pred", str(tmp_path), "-o",
                                 str(tmp_path / "out")])
    assert result.exit_code == 2 and "leave out --pred" in result.output
    result = runner.invoke(app, ["evaluate", "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and "--run" in result.output and not (tmp_path / "out").exists()


def _evaluation(tiny_phantom, tmp_path, name, broken_case: str | None = None):
    """An evaluation folder of perfect predictions of the tiny cohort, one case given an empty map if asked."""
    import nibabel as nib
    import numpy as np

    pred = tmp_path / f"pred_{name}"
    pred.mkdir()
    for case in sorted(p for p in tiny_phantom.iterdir() if p.is_dir()):
        shutil.copy(case / f"{case.name}-seg.nii.gz", pred / f"{case.name}_seg.nii.gz")
        probability = 0.9 if int(case.name[-3]) % 2 else 0.1
        (pred / f"{case.name}.json").write_text(json.dumps(
            {"case_id": case.name, "markers": {"idh": {"probability": probability, "threshold": 0.5}}}))
    if broken_case:
        img = nib.load(pred / f"{broken_case}_seg.nii.gz")
        nib.save(nib.Nifti1Image(np.zeros(img.shape, np.uint8), img.affine), pred / f"{broken_case}_seg.nii.gz")
    out = tmp_path / name
    result = runner.invoke(app, ["evaluate", "--pred", str(pred), "--ref", str(tiny_phantom), "--markers",
                                 str(tiny_phantom / "markers.csv"), "-o", str(out), "--n-boot", "100"])
    assert result.exit_code == 0, result.output
    return out


def test_two_evaluations_side_by_side(tiny_phantom, tmp_path):
    first = sorted(p.name for p in tiny_phantom.iterdir() if p.is_dir())[0]
    perfect = _evaluation(tiny_phantom, tmp_path, "perfect")
    worse = _evaluation(tiny_phantom, tmp_path, "worse", broken_case=first)
    same = compare_evaluations(perfect, perfect, n_boot=100)
    assert same["dice"]["mean dice"]["diff"]["mean"] == 0.0
    result = compare_evaluations(perfect, worse, n_boot=100)
    diff = result["dice"]["mean dice"]["diff"]
    assert diff["mean"] > 0 and diff["lo"] <= diff["mean"] <= diff["hi"]
    assert "ET lesion dice" in side_by_side_table(result, "a", "b")

    out = tmp_path / "again"
    res = runner.invoke(app, ["evaluate", "--pred", str(tmp_path / "pred_perfect"), "--ref", str(tiny_phantom),
                              "-o", str(out), "--n-boot", "100", "--against", str(worse)])
    assert res.exit_code == 0, res.output
    text = (out / "side_by_side.md").read_text()
    assert "| again | worse |" in text and "mean lesion dice" in text
    bad = runner.invoke(app, ["evaluate", "--pred", str(tmp_path / "pred_perfect"), "--ref", str(tiny_phantom),
                              "-o", str(tmp_path / "never"), "--against", str(tmp_path)])
    assert bad.exit_code == 2 and "not an evaluation folder" in bad.output and not (tmp_path / "never").exists()


# ---------------------------------------------------------------- split_cases and evaluate_split without a network


def _cohort_case(case_id, markers=None):
    from types import SimpleNamespace

    return SimpleNamespace(case_id=case_id, case=SimpleNamespace(case_id=case_id), markers=markers)


@pytest.fixture
def fake_cohort(monkeypatch, tmp_path):
    """``run_cohort`` replaced: cases A, B and C from two data folders, val = [C, A], test empty; calls recorded."""
    import gliomics.data.splits

    cohort = {c: _cohort_case(c, None if c == "B" else f"markers {c}") for c in ("A", "B", "C")}
    state = {"splits": {"train": ["B"], "val": ["C", "A"], "test": []}, "calls": [],
             "datas": [tmp_path / "d1", tmp_path / "d2"], "cohort": cohort}

    def run_cohort(run):
        state["calls"].append(run)
        return state["cohort"], state["splits"], state["datas"]

    monkeypatch.setattr(gliomics.data.splits, "run_cohort", run_cohort)
    return state


def test_held_out_splits_and_prediction_folder_names():
    """Only the validation and test splits can be evaluated; predictions go to ``predictions``."""
    from gliomics.evaluation.split_evaluation import HELD_OUT_SPLITS, PREDICTIONS

    assert HELD_OUT_SPLITS == ("val", "test") and PREDICTIONS == "predictions"


def test_split_cases_gives_the_cases_in_split_order(fake_cohort, tmp_path):
    """The split's cases in the order of ``splits.json`` and the data folders."""
    from gliomics.evaluation.split_evaluation import split_cases

    fake_cohort["splits"]["test"] = ["B"]
    cases, datas = split_cases(tmp_path / "run", "val")
    assert [c.case_id for c in cases] == ["C", "A"] and cases[0] is fake_cohort["cohort"]["C"]
    assert datas == fake_cohort["datas"] and fake_cohort["calls"] == [tmp_path / "run"]
    assert [c.case_id for c in split_cases(tmp_path / "run", "test")[0]] == ["B"]


@pytest.mark.parametrize("split", ["train", "VAL", "all"])
def test_split_cases_refuses_the_training_split(fake_cohort, tmp_path, split):
    """A split other than val or test is refused before the run is read."""
    from gliomics.evaluation.split_evaluation import split_cases

    with pytest.raises(InputError) as err:
        split_cases(tmp_path, split)
    assert str(err.value) == (f"--split {split}: choose one of val, test (the network trained on the training "
                              "split)")
    assert fake_cohort["calls"] == []


@pytest.mark.parametrize("splits", [{"val": ["A"], "test": []}, {"val": ["A"]}])
def test_split_cases_refuses_an_empty_split(fake_cohort, tmp_path, splits):
    """A split without cases, or not in ``splits.json``, is refused."""
    from gliomics.evaluation.split_evaluation import split_cases

    fake_cohort["splits"] = splits
    with pytest.raises(InputError) as err:
        split_cases(tmp_path / "run", "test")
    assert str(err.value) == f"{tmp_path / 'run'}: the run has no test cases"


def test_split_cases_refuses_cases_that_left_the_cohort(fake_cohort, tmp_path):
    """Split cases no longer in the data folders are counted, with the first one named."""
    from gliomics.evaluation.split_evaluation import split_cases

    fake_cohort["splits"]["val"] = ["A", "X", "B", "Y"]
    with pytest.raises(InputError) as err:
        split_cases(tmp_path / "run", "val")
    assert str(err.value) == (f"{tmp_path / 'run'}: 2 val cases are no longer in {tmp_path / 'd1'}, "
                              f"{tmp_path / 'd2'} (e.g. 'X')")


class _SplitPredictor:
    """Stands in for the Predictor: records how it was made and which cases it predicted."""

    made: list = []

    def __init__(self, device, *, options, precision):
        self.made.append({"device": device, "options": options, "precision": precision})
        self.predicted = self.made[-1]["predicted"] = []

    def load(self, run):
        self.made[-1]["run"] = run
        return self

    def predict_case(self, case, out):
        self.predicted.append((case.case_id, out))


@pytest.fixture
def fake_scoring(monkeypatch, fake_cohort):
    """Predictor and ``score_cases`` replaced; the scoring calls are recorded and give a small summary."""
    import sys
    import types

    import gliomics.evaluation.evaluate

    fake = types.ModuleType("gliomics.inference.predictor")
    fake.Predictor = _SplitPredictor
    monkeypatch.setitem(sys.modules, "gliomics.inference.predictor", fake)
    monkeypatch.setattr(_SplitPredictor, "made", [])
    calls = []

    def score_cases(pred_dir, cases, table, **kwargs):
        calls.append({"pred_dir": pred_dir, "cases": cases, "table": table, **kwargs})
        return {"cases": len(cases), "split": "overwritten"}

    monkeypatch.setattr(gliomics.evaluation.evaluate, "score_cases", score_cases)
    return calls


def test_evaluate_split_predicts_the_split_and_scores_it(fake_scoring, fake_cohort, tmp_path, capsys):
    """Every split case without a record is predicted into ``out/predictions``; the cases, their markers, the
    phantom truth files and the settings reach the scoring; flip TTA and the options reach the predictor; the
    summary names the split, run and data folders."""
    from gliomics.evaluation.evaluate import PHANTOM_TRUTH
    from gliomics.evaluation.split_evaluation import evaluate_split

    (tmp_path / "d1").mkdir()
    out = tmp_path / "eval"
    (out / "predictions").mkdir(parents=True)
    (out / "predictions" / "A.json").write_text("{}")  # already predicted: a re-run resumes
    (out / "predictions" / "C_seg.nii.gz").write_text("")  # a segmentation alone does not count
    summary = evaluate_split(str(tmp_path / "run"), "val", str(out), tta=True, device="cpu", precision="bf16",
                             by="site", n_boot=17, progress=False, rule="brats2025",
                             options={"sequences": ["t1c", "t2f"]})
    assert _SplitPredictor.made == [{"device": "cpu", "options": {"tta": True, "sequences": ["t1c", "t2f"]},
                                     "precision": "bf16", "run": tmp_path / "run",
                                     "predicted": [("C", out / "predictions")]}]
    [call] = fake_scoring
    assert call == {"pred_dir": out / "predictions", "cases": [fake_cohort["cohort"][c].case for c in ("C", "A")],
                    "table": {"C": "markers C", "A": "markers A"}, "out": out, "by": "site", "n_boot": 17,
                    "truth_files": [tmp_path / "d1" / PHANTOM_TRUTH, tmp_path / PHANTOM_TRUTH],
                    "title": f"the val split of {tmp_path / 'run'}", "rule": "brats2025"}
    assert summary == {"cases": 2, "split": "val", "run": str(tmp_path / "run"),
                       "data": [str(tmp_path / "d1"), str(tmp_path / "d2")]}
    assert "predict val" not in capsys.readouterr().err


def test_evaluate_split_defaults(fake_scoring, fake_cohort, tmp_path, capsys):
    """By default: no TTA (no option given), automatic device and precision, 2000 resamples, both rules, a progress
    bar; the output folder and its prediction folder are created; cases without markers stay out of the table."""
    from gliomics.evaluation.split_evaluation import evaluate_split

    fake_cohort["splits"]["test"] = ["B", "C"]
    out = tmp_path / "new" / "eval"
    evaluate_split(tmp_path / "run", "test", out)
    assert (out / "predictions").is_dir()
    assert _SplitPredictor.made == [{"device": "auto", "options": {}, "precision": "auto", "run": tmp_path / "run",
                                     "predicted": [("B", out / "predictions"), ("C", out / "predictions")]}]
    [call] = fake_scoring
    assert call["by"] is None and call["n_boot"] == 2000 and call["rule"] == "both"
    assert call["table"] == {"C": "markers C"} and call["title"] == f"the test split of {tmp_path / 'run'}"
    err = capsys.readouterr().err
    assert "predict test" in err and "2/2" in err and "case/s" in err


def test_evaluate_split_refuses_a_file_as_output(fake_scoring, fake_cohort, tmp_path):
    """An output path that is a file is refused before the run is read or anything predicted."""
    from gliomics.errors import OutputError
    from gliomics.evaluation.split_evaluation import evaluate_split

    out = tmp_path / "file"
    out.write_text("")
    with pytest.raises(OutputError) as err:
        evaluate_split(tmp_path / "run", "val", out)
    assert str(err.value) == f"{out}: output path exists and is not a folder"
    assert fake_cohort["calls"] == [] and _SplitPredictor.made == [] and fake_scoring == []
