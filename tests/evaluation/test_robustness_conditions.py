"""`gliomics robustness` pinned on hand-made inputs: the conditions in table order, each condition's summary and
drops from intact, the folders, predictors and evaluations of a run (with stand-ins for both), and the tables."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

import gliomics.evaluation.evaluate as evaluate_module
import gliomics.inference.predictor as predictor_module
import gliomics.io as io_module
from gliomics.constants import TUMOUR_LABELS
from gliomics.data.degradations import DEGRADATIONS, Degradation
from gliomics.errors import InputError
from gliomics.evaluation import robustness as rb
from gliomics.evaluation.bootstrap import mean_ci, paired_auc_difference_ci

SUBSETS = ["only T1 + T1ce + T2", "only T1 + T1ce + FLAIR", "only T1 + T2 + FLAIR", "only T1ce + T2 + FLAIR",
           "only T1 + T1ce", "only T1 + T2", "only T1 + FLAIR", "only T1ce + T2", "only T1ce + FLAIR",
           "only T2 + FLAIR", "only T1", "only T1ce", "only T2", "only FLAIR"]


def test_conditions_in_table_order():
    """Intact, then the subsets from three sequences down to one, then each sequence with each degradation."""
    every = rb.conditions()
    degraded = [f"{seq} {d}" for seq in ("T1", "T1ce", "T2", "FLAIR") for d in DEGRADATIONS]
    assert list(every) == ["intact", *SUBSETS, *degraded]
    assert rb.condition_names() == list(every) and rb.INTACT == "intact"
    assert every["intact"] == {"sequences": None, "degradation": None}
    assert every["only T1 + T2 + FLAIR"] == {"sequences": ["t1n", "t2w", "t2f"], "degradation": None}
    assert every["only T1ce"] == {"sequences": ["t1c"], "degradation": None}
    assert every["FLAIR Gibbs ringing"] == {"sequences": None, "degradation": Degradation("t2f", "Gibbs ringing")}
    assert every["T1 Rician noise 5%"]["degradation"] == Degradation("t1n", "Rician noise 5%")
    assert rb._subset_name(["t1c", "t2f"]) == "only T1ce + FLAIR"
    assert rb.__all__ == ["INTACT", "condition_names", "run_robustness", "robustness_table"]


def test_number_of_a_csv_cell():
    """Empty and missing cells are NaN; anything else is its float."""
    assert rb._number("0.25") == 0.25 and rb._number("1") == 1.0
    assert math.isnan(rb._number("")) and math.isnan(rb._number(None))


INTACT_ROWS = {
    "c1": {"NETC_dice": 0.9, "SNFH_dice": 0.8, "ET_dice": 0.7, "RC_dice": 1.0, "mean_dice": 0.85,
           "label_idh": 1, "prob_idh": 0.9, "label_tert": "", "prob_tert": 0.4},
    "c2": {"NETC_dice": 0.6, "SNFH_dice": 0.5, "ET_dice": 0.4, "RC_dice": 1.0, "mean_dice": 0.625,
           "label_idh": 0, "prob_idh": 0.2, "label_tert": 1, "prob_tert": 0.7},
    "c3": {"NETC_dice": 0.8, "SNFH_dice": 0.9, "ET_dice": "", "RC_dice": 1.0, "mean_dice": 0.9,
           "label_idh": "1.0", "prob_idh": 0.6, "label_tert": 0, "prob_tert": 0.1},
    "c4": {"NETC_dice": 0.5, "SNFH_dice": 0.7, "ET_dice": 0.2, "RC_dice": 1.0, "mean_dice": 0.6,
           "label_idh": 0, "prob_idh": 0.7, "label_tert": 0, "prob_tert": 0.2},
}
CONDITION_ROWS = {
    "c1": {"NETC_dice": 0.5, "SNFH_dice": 0.8, "ET_dice": 0.5, "RC_dice": 1.0, "mean_dice": 0.7,
           "prob_idh": 0.6, "prob_tert": 0.3},
    "c2": {"NETC_dice": 0.6, "SNFH_dice": 0.3, "ET_dice": 0.4, "RC_dice": 1.0, "mean_dice": 0.575,
           "prob_idh": 0.5, "prob_tert": 0.6},
    "c3": {"NETC_dice": 0.4, "SNFH_dice": 0.9, "ET_dice": 0.1, "RC_dice": 0.5, "mean_dice": 0.5,
           "prob_idh": 0.2, "prob_tert": ""},
    "c4": {"NETC_dice": 0.5, "SNFH_dice": 0.6, "ET_dice": 0.2, "RC_dice": 1.0, "mean_dice": 0.575,
           "prob_idh": 0.3, "prob_tert": 0.1},
    "c5": {"NETC_dice": 0.0, "mean_dice": 0.0, "prob_idh": 0.9},
}


def _write_evaluation(folder: Path, rows: dict[str, dict], summary: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    columns = ["case_id", *dict.fromkeys(k for r in rows.values() for k in r)]
    with open(folder / "per_case.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, restval="")
        writer.writeheader()
        for cid, row in rows.items():
            writer.writerow({"case_id": cid, **row})
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


SUMMARY = {"segmentation": {"ET": {"dice": {"mean": 0.3, "lo": 0.1, "hi": 0.5}},
                            "RC": {"dice": {"mean": 0.9, "lo": 0.8, "hi": 1.0}},
                            "WT": {"dice": {"mean": 0.95, "lo": 0.9, "hi": 1.0}}},
           "mean_dice": {"mean": 0.47, "lo": 0.4, "hi": 0.5},
           "markers": {"idh": {"auc": 0.75, "n": 4}, "tert": {"n": 2}},
           "cmaf": {"ET": {"t1c": {"mean": 0.6, "lo": 0.5, "hi": 0.7}, "t2f": {"mean": 0.4, "lo": 0.3, "hi": 0.5}}}}


def test_rows_of_an_evaluation_by_case(tmp_path):
    """``per_case.csv`` read back as strings, keyed by case."""
    folder = _write_evaluation(tmp_path / "e", {"b": {"mean_dice": 0.5}, "a": {"mean_dice": ""}}, {})
    assert rb._rows(folder) == {"b": {"case_id": "b", "mean_dice": "0.5"}, "a": {"case_id": "a", "mean_dice": ""}}


def test_summary_of_the_intact_condition(tmp_path):
    """Cases, Dice per label the evaluation has, the mean Dice, AUCs and mean CMAF weights; no drop."""
    folder = _write_evaluation(tmp_path / "intact", INTACT_ROWS, SUMMARY)
    out = rb._summarise("intact", folder, None, 50)
    assert out == {"condition": "intact", "cases": 4,
                   "dice": {"ET": {"mean": 0.3, "lo": 0.1, "hi": 0.5}, "RC": {"mean": 0.9, "lo": 0.8, "hi": 1.0}},
                   "mean_dice": {"mean": 0.47, "lo": 0.4, "hi": 0.5},
                   "auc": {"idh": 0.75, "tert": None},
                   "cmaf": {"ET": {"t1c": 0.6, "t2f": 0.4}}}
    bare = rb._summarise("x", _write_evaluation(tmp_path / "bare", {"a": {"mean_dice": 1}}, {"segmentation": {}}),
                         None, 50)
    assert bare == {"condition": "x", "cases": 1, "dice": {}, "mean_dice": None, "auc": {}, "cmaf": {}}


def test_drops_from_intact_are_paired_over_the_common_cases(tmp_path):
    """Per label and for the mean, intact minus the condition over the cases both have, with its bootstrap CI; per
    marker the paired AUC difference over the cases with a label and both probabilities."""
    intact = _write_evaluation(tmp_path / "intact", INTACT_ROWS, SUMMARY)
    cond = _write_evaluation(tmp_path / "cond", CONDITION_ROWS, SUMMARY)
    out = rb._summarise("only T1", cond, rb._rows(intact), 40)
    assert out["cases"] == 5
    drop = out["drop"]
    assert list(drop) == [*TUMOUR_LABELS, "mean", "auc_idh", "auc_tert"]
    assert drop["NETC"] == pytest.approx(mean_ci([0.4, 0.0, 0.4, 0.0], 40))
    assert drop["NETC"]["mean"] == pytest.approx(0.2)
    assert drop["NETC"] != pytest.approx(mean_ci([0.4, 0.0, 0.4, 0.0], 2000))
    assert drop["SNFH"] == pytest.approx(mean_ci([0.0, 0.2, 0.0, 0.1], 40))
    assert drop["ET"] == pytest.approx(mean_ci([0.2, 0.0, 0.0], 40)) and drop["ET"]["n"] == 3
    assert drop["RC"] == pytest.approx(mean_ci([0.0, 0.0, 0.5, 0.0], 40))
    assert drop["mean"] == pytest.approx(mean_ci([0.15, 0.05, 0.4, 0.025], 40))
    assert drop["auc_idh"] == pytest.approx(paired_auc_difference_ci([1, 0, 1, 0], [0.9, 0.2, 0.6, 0.7],
                                                                     [0.6, 0.5, 0.2, 0.3], 40))
    assert drop["auc_idh"]["mean"] == pytest.approx(0.75 - 0.5)
    # TERT over c2 and c4 only: c1's label and c3's probability under the condition are unknown
    assert drop["auc_tert"] == pytest.approx(paired_auc_difference_ci([1, 0], [0.7, 0.2], [0.6, 0.1], 40))
    assert drop["auc_tert"]["n"] == 2 and drop["auc_tert"]["mean"] == 0.0


def test_drops_leave_out_markers_nobody_knows(tmp_path):
    """A marker without a case that has its label and both probabilities has no drop."""
    intact = {"c1": {"mean_dice": "1", "label_idh": "", "prob_idh": "0.5"}}
    cond = _write_evaluation(tmp_path / "cond", {"c1": {"mean_dice": 0.5, "prob_idh": 0.4}}, {})
    drop = rb._summarise("x", cond, intact, 20)["drop"]
    assert list(drop) == [*TUMOUR_LABELS, "mean"]
    assert drop["mean"] == {"mean": 0.5, "lo": 0.5, "hi": 0.5, "n": 1} and drop["ET"] is None


class _FakePredictor:
    """Stands in for the Predictor: records how it was made, what it loaded and each folder it was asked for."""

    made: list[dict] = []
    calls: list[dict] = []

    def __init__(self, device, **kwargs):
        self.made.append({"device": device, **kwargs})

    def load(self, run):
        self.made[-1]["run"] = run
        return self

    def predict_folder(self, data, out, *, progress, options):
        self.calls.append({"data": data, "out": out, "progress": progress, **options})
        Path(out).mkdir(parents=True)
        return {}


@pytest.fixture
def fakes(monkeypatch):
    """Stand-ins for the Predictor, the evaluation (which writes the intact rows to every condition, with one
    probability lowered beyond the intact condition) and the case discovery."""
    _FakePredictor.made, _FakePredictor.calls = [], []
    evaluated = []

    def fake_evaluate(pred_dir, ref, *, markers, out, n_boot, rule):
        evaluated.append({"pred_dir": pred_dir, "ref": ref, "markers": markers, "out": out, "n_boot": n_boot,
                          "rule": rule})
        rows = {c: dict(r) for c, r in fake_evaluate.rows.items()}
        if len(evaluated) > 1:
            rows["c1"]["ET_dice"] = 0.3
        _write_evaluation(out, rows, fake_evaluate.summary)
        return {}

    fake_evaluate.rows, fake_evaluate.summary, fake_evaluate.discovered = INTACT_ROWS, SUMMARY, []
    monkeypatch.setattr(predictor_module, "Predictor", _FakePredictor)
    monkeypatch.setattr(evaluate_module, "evaluate_predictions", fake_evaluate)
    monkeypatch.setattr(io_module, "discover_cases", lambda data: fake_evaluate.discovered.append(data) or [data])
    return _FakePredictor, evaluated, fake_evaluate


def test_run_robustness_folders_predictors_and_evaluations(tmp_path, fakes, caplog):
    """Intact first whatever the order asked; one folder per condition; each predictor gets the condition's
    sequences or seeded degradation; each evaluation the BraTS 2024 rule; drops against intact."""
    made, evaluated, evaluation = fakes
    out = tmp_path / "robust"
    with caplog.at_level("INFO", logger="gliomics.evaluation.robustness"):
        result = rb.run_robustness("RUN", "DATA", markers=None, out=out, names=["FLAIR Rician noise 15%",
                                                                               "only T1 + T2"],
                                   tta=True, n_boot=30, device="cpu", precision="fp32", seed=5, progress=False)
    assert evaluation.discovered == ["DATA"]
    assert "intact: mean Dice 0.470" in caplog.text and "only T1 + T2: mean Dice 0.470" in caplog.text
    assert list(result) == ["run", "data", "tta", "seed", "conditions"]
    assert (result["run"], result["data"], result["tta"], result["seed"]) == ("RUN", "DATA", True, 5)
    names = [c["condition"] for c in result["conditions"]]
    assert names == ["intact", "FLAIR Rician noise 15%", "only T1 + T2"]
    folders = ["00_intact", "01_FLAIR_Rician_noise_15pct", "02_only_T1__T2"]
    assert sorted(p.name for p in (out / "conditions").iterdir()) == folders
    # one predictor, loaded once before anything is written; each condition is a call's options
    assert made.made == [{"device": "cpu", "options": {"tta": True}, "precision": "fp32", "run": "RUN"}]
    calls = made.calls
    for call, folder in zip(calls, folders, strict=True):
        assert call["data"] == "DATA" and call["progress"] is False
        assert call["out"].name == "predictions" and call["out"].parent.name == folder
    assert calls[0]["sequences"] is None and calls[0]["degrade"] is None
    assert calls[1]["degrade"] == {"sequence": "t2f", "name": "Rician noise 15%", "seed": 5}
    assert calls[1]["sequences"] is None
    assert calls[2]["sequences"] == ["t1n", "t2w"] and calls[2]["degrade"] is None
    assert [e["rule"] for e in evaluated] == ["brats2024"] * 3
    assert all(e["n_boot"] == 30 and e["ref"] == "DATA" and e["markers"] is None for e in evaluated)
    assert [e["out"].parent.name for e in evaluated] == folders
    assert [e["pred_dir"].name for e in evaluated] == ["predictions"] * 3
    intact, degraded, _ = result["conditions"]
    assert "drop" not in intact
    assert degraded["drop"]["ET"] == pytest.approx(mean_ci([0.4, 0.0, 0.0], 30))
    assert degraded["drop"]["mean"] == {"mean": 0.0, "lo": 0.0, "hi": 0.0, "n": 4}
    assert json.loads((out / "robustness.json").read_text()) == json.loads(json.dumps(result, default=float))
    assert (out / "robustness.md").read_text() == rb.robustness_table(result)
    assert (out / "robustness_dice_drop.png").stat().st_size > 0


_ORIGINAL_CONDITIONS = rb.conditions


def _two_conditions() -> dict:
    every = _ORIGINAL_CONDITIONS()
    return {n: every[n] for n in list(every)[:2]}


def test_run_robustness_defaults_every_condition_and_reads_the_markers(tmp_path, fakes, monkeypatch, caplog):
    """Without names every condition runs, in table order; the markers table is read before anything is written;
    the defaults are no TTA, 1000 resamples, seed 0, the automatic device and precision, and a progress bar."""
    made, evaluated, evaluation = fakes
    evaluation.rows = {"c1": {"ET_dice": 1.0, "mean_dice": 1.0}}  # nothing to resample: quick at the default 1000
    evaluation.summary = {"segmentation": {}}
    monkeypatch.setattr(rb, "conditions", _two_conditions)
    read = []
    import gliomics.io.markers as markers_module

    monkeypatch.setattr(markers_module, "read_markers", lambda path: read.append(path) or {})
    with caplog.at_level("INFO", logger="gliomics.evaluation.robustness"):
        result = rb.run_robustness("RUN", "DATA", markers="M.csv", out=tmp_path / "r")
    assert read == ["M.csv"]
    assert "intact: mean Dice nan" in caplog.text
    assert [c["condition"] for c in result["conditions"]] == ["intact", "only T1 + T1ce + T2"]
    assert result["tta"] is False and result["seed"] == 0
    assert made.made == [{"device": "auto", "options": {}, "precision": "auto", "run": "RUN"}]
    assert made.calls[0]["progress"] is True and made.calls[0]["sequences"] is None
    assert made.calls[1]["sequences"] == ["t1n", "t1c", "t2w"] and made.calls[1]["degrade"] is None
    assert all(e["n_boot"] == 1000 and e["markers"] == "M.csv" for e in evaluated)


def test_unknown_condition_is_refused_before_anything_runs(tmp_path, fakes):
    """An unknown name is an input error listing the choices; nothing is predicted or written."""
    made, _, _ = fakes
    with pytest.raises(InputError, match=r"^unknown condition 'FLAIR motion'; choose among: intact, only T1 \+ T1ce "):
        rb.run_robustness("RUN", "DATA", markers=None, out=tmp_path / "r", names=["intact", "FLAIR motion"])
    assert made.made == [] and not (tmp_path / "r").exists()


def _result() -> dict:
    stat = {"mean": 0.8, "lo": 0.7, "hi": 0.9}
    intact = {"condition": "intact", "cases": 2, "dice": {"NETC": stat, "ET": {"mean": 0.5}},
              "mean_dice": {"mean": 0.65}, "auc": {"idh": 0.75, "codel_1p19q": None, "tert": 0.5},
              "cmaf": {"ET": {"t1n": 0.1, "t1c": 0.2, "t2w": 0.3, "t2f": 0.4}}}
    drop = {"NETC": {"mean": 0.1, "lo": -0.05, "hi": 0.2}, "mean": {"mean": 0.125, "lo": 0.0, "hi": 0.25},
            "auc_idh": {"mean": -0.25, "lo": -0.5, "hi": 0.0}}
    only = {"condition": "only T1ce", "cases": 2, "dice": {"NETC": {"mean": 0.7}}, "mean_dice": None,
            "auc": {"idh": 1.0}, "cmaf": {"ET": {"t1c": 1.0}, "RC": {}}, "drop": drop}
    return {"conditions": [intact, only]}


def test_robustness_table_text():
    """Dice per label, the mean with its drop, AUCs with their drops (``ref.`` for intact) and the CMAF weights."""
    lines = rb.robustness_table(_result()).splitlines()
    assert lines[:6] == [
        "## Dice and AUC by condition", "",
        "Drop = intact minus the condition, paired bootstrap 95% CI over the cases.", "",
        "| condition | Dice NETC | Dice SNFH | Dice ET | Dice RC | mean Dice | drop [95% CI] | AUC IDH (drop) | "
        "AUC 1p/19q (drop) | AUC TERT (drop) |",
        "|---|---|---|---|---|---|---|---|---|---|"]
    assert lines[6] == "| intact | 0.800 | – | 0.500 | – | 0.650 | ref. | 0.750 (ref.) | – (ref.) | 0.500 (ref.) |"
    assert lines[7] == ("| only T1ce | 0.700 | – | – | – | – | +0.125 [+0.000, +0.250] | 1.000 (-0.250 [-0.500, "
                        "+0.000]) | – (–) | – (–) |")
    assert lines[8:14] == [
        "", "## Mean CMAF weight of each sequence in each predicted region", "",
        "Weights of T1 / T1ce / T2 / FLAIR (– for a missing sequence), averaged over the cases that have the region.",
        "", "| condition | NETC: T1 / T1ce / T2 / FLAIR | SNFH: T1 / T1ce / T2 / FLAIR | ET: T1 / T1ce / T2 / FLAIR | "
            "RC: T1 / T1ce / T2 / FLAIR |"]
    assert lines[14] == "|---|---|---|---|---|"
    assert lines[15] == "| intact | – | – | 0.10 / 0.20 / 0.30 / 0.40 | – |"
    assert lines[16] == "| only T1ce | – | – | – / 1.00 / – / – | – |"
    assert len(lines) == 17 and rb.robustness_table(_result()).endswith("|\n")


def test_drop_cell():
    """A drop with its sign and CI, ``–`` without one."""
    assert rb._drop({"mean": 0.0123, "lo": -0.5, "hi": 1.0}) == "+0.012 [-0.500, +1.000]"
    assert rb._drop(None) == "–" and rb._drop({}) == "–"


def _png_size(path: Path) -> tuple[int, int]:
    import struct

    return struct.unpack(">II", path.read_bytes()[16:24])


def test_heat_map_only_with_drops(tmp_path, monkeypatch):
    """The heat map is drawn for the conditions with a drop, on a symmetric scale of at least ±0.05, with each
    finite drop written in its cell; its size grows with the number of conditions."""
    import matplotlib.axes
    import matplotlib.pyplot as plt

    shown, figures = [], []
    real_imshow, real_close = matplotlib.axes.Axes.imshow, plt.close
    monkeypatch.setattr(matplotlib.axes.Axes, "imshow",
                        lambda self, values, **kw: shown.append((values.tolist(), kw)) or real_imshow(self, values,
                                                                                                      **kw))
    monkeypatch.setattr(plt, "close", lambda fig: figures.append(fig) or real_close(fig))
    rb._heat_map({"conditions": [_result()["conditions"][0]]}, tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists() and shown == []
    rb._heat_map(_result(), tmp_path / "sub" / "map.png")
    assert _png_size(tmp_path / "sub" / "map.png") == (660, 182)  # 5.5 × (0.32 + 1.2) inches at 120 dpi
    values, kw = shown[0]
    assert values[0][0] == 0.1 and values[0][-1] == 0.125 and all(math.isnan(v) for v in values[0][1:4])
    assert (kw["vmin"], kw["vmax"], kw["cmap"], kw["aspect"]) == (-0.125, 0.125, "RdBu_r", "auto")
    ax, bar = figures[0].axes
    assert ax.get_title() == "Dice drop by condition" and bar.get_ylabel() == "Dice drop from intact"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["NETC", "SNFH", "ET", "RC", "mean"]
    assert [(t.get_text(), t.get_fontsize()) for t in ax.get_yticklabels()] == [("only T1ce", 7.0)]
    assert [(t.get_text(), t.get_position(), t.get_fontsize(), t.get_ha(), t.get_va()) for t in ax.texts] == [
        ("0.10", (0, 0), 6.0, "center", "center"), ("0.12", (4, 0), 6.0, "center", "center")]
    small = _result()
    small["conditions"][1]["drop"] = {"mean": {"mean": 0.01}}
    small["conditions"].append({**small["conditions"][1], "condition": "only T2", "drop": {"NETC": None}})
    rb._heat_map(small, tmp_path / "small.png")
    assert (shown[1][1]["vmin"], shown[1][1]["vmax"]) == (-0.05, 0.05)
    assert _png_size(tmp_path / "small.png") == (660, 220)
    blank = _result()
    blank["conditions"][1]["drop"] = {"NETC": None}
    rb._heat_map(blank, tmp_path / "blank.png")
    assert (shown[2][1]["vmin"], shown[2][1]["vmax"]) == (-0.05, 0.05)
