"""The model-selection score of validation: Dice, AUC and their weighting."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from gliomics.constants import LABELS, TUMOUR_LABELS
from gliomics.inference.postprocess import COMPONENT_CANDIDATES_MM3
from gliomics.training.validation import component_scores, summarise


def _row(case: str, dice: float, idh: float | None, prob: float | None) -> dict:
    row: dict = {"case_id": case, "markers": [math.nan if idh is None else idh, math.nan, math.nan], "prob": {},
                 "dice": dict.fromkeys(TUMOUR_LABELS, dice)}
    if prob is not None:
        row["prob"] = {"idh": prob}
    return row


# IDH AUC 0.75: three of the four positive/negative pairs are ranked right
ROWS = [_row("a", 0.6, 1, 0.9), _row("b", 0.8, 0, 0.2), _row("c", 0.6, 1, 0.3), _row("d", 0.8, 0, 0.4)]


@pytest.mark.parametrize("weight, expected", [(0.5, (0.7 + 0.75) / 2), (0.0, 0.7), (1.0, 0.75), (0.2, 0.71)])
def test_score_weights_dice_and_auc(weight: float, expected: float) -> None:
    out = summarise(ROWS, auc_weight=weight)
    assert out["dice_mean"] == pytest.approx(0.7) and out["auc_idh"] == pytest.approx(0.75)
    assert out["score"] == pytest.approx(expected)
    assert "idh" in out["thresholds"]


def test_score_is_whichever_part_exists() -> None:
    no_auc = [_row("a", 0.6, None, None), _row("b", 0.8, None, None)]
    assert summarise(no_auc, auc_weight=0.5)["score"] == pytest.approx(0.7)
    markers_only = [{k: v for k, v in r.items() if k != "dice"} for r in ROWS]
    assert summarise(markers_only, auc_weight=0.0)["score"] == pytest.approx(0.75)
    assert summarise([], auc_weight=0.5)["score"] == 0.0


def _volume_row(case: str, rc: tuple[float, float, float]) -> dict:
    """A validation row whose RC is (predicted mm³, reference mm³, Dice); the other labels are perfect."""
    row = _row(case, 1.0, None, None)
    row["dice"]["RC"] = rc[2]
    row["volumes_mm3"] = {name: [1000.0, 1000.0] for name in TUMOUR_LABELS}
    row["volumes_mm3"]["RC"] = [rc[0], rc[1]]
    return row


def test_minimum_label_volumes_are_fitted_and_capped() -> None:
    rows = [_volume_row("a", (200.0, 0.0, 0.0)), _volume_row("b", (5000.0, 5200.0, 0.9)),
            _volume_row("c", (0.0, 0.0, 1.0))]
    out = summarise(rows)
    assert out["min_label_mm3"] == {"RC": pytest.approx(1000.0, abs=0.1)}  # √(200 · 5000)
    assert out["dice_RC"] == pytest.approx(1.9 / 3)  # the Dice reported is before the suppression
    assert summarise(rows, volume_caps={"RC": 300.0})["min_label_mm3"] == {"RC": 300.0}
    assert summarise(ROWS)["min_label_mm3"] == {}  # rows without volumes (e.g. older runs)


def test_a_rank_without_validation_cases_validates_nothing() -> None:
    from monai.data import CacheDataset

    from gliomics.runtime.distributed import DistInfo
    from gliomics.training.validation import validate_cases

    empty = CacheDataset([], transform=None, progress=False)  # more ranks than validation cases
    predictor = SimpleNamespace(model=torch.nn.Identity())
    assert validate_cases(predictor, empty, [], info=DistInfo()) == []


def test_component_scores_rise_when_a_stray_component_is_dropped() -> None:
    ref = np.zeros((20, 20, 20), dtype=np.uint8)
    ref[2:8, 2:8, 2:8] = LABELS["NETC"]
    pred = ref.copy()
    pred[15, 15, 15] = LABELS["NETC"]  # one voxel (27 mm³ at 3 mm) touching no lesion
    scores = component_scores(pred, ref, (3.0, 3.0, 3.0))
    netc = scores["NETC"]
    assert len(netc) == len(COMPONENT_CANDIDATES_MM3)
    assert netc[0] == 0.5  # one true lesion (Dice 1) and one false component
    assert netc[1] == 1.0  # below 30 mm³ the stray voxel is gone
    assert scores["ET"] == [1.0] * len(COMPONENT_CANDIDATES_MM3)  # absent in both


def test_component_minimums_are_fitted_from_the_rows() -> None:
    rows = [dict(_row("a", 1.0, None, None), component_dice={"NETC": [0.5] + [1.0] * 7}),
            dict(_row("b", 1.0, None, None), component_dice={"NETC": [1.0] * 8})]
    assert summarise(rows)["min_component_mm3"] == {"NETC": COMPONENT_CANDIDATES_MM3[1]}
    assert summarise(rows, volume_caps={"NETC": 10.0})["min_component_mm3"] == {}
    assert summarise(ROWS)["min_component_mm3"] == {}


@pytest.mark.parametrize("working_mm", [None, 6.0])
def test_validation_fits_on_the_label_map_that_predict_writes(tiny_phantom, tiny_run, tmp_path, working_mm) -> None:
    """Validation scores (and so fits the minimums on) exactly the label map ``gliomics predict`` writes with the
    minimums off, on the input grid, whether or not the working grid differs from it; the fitted minimums are then
    applied to that map."""
    from gliomics.data.cohort import build_cohort
    from gliomics.inference.predictor import Predictor
    from gliomics.io import load_label
    from gliomics.labels import dice_per_region, label_volumes_mm3
    from gliomics.runtime.distributed import DistInfo
    from gliomics.training.validation import VALIDATION_OPTIONS, validate_cases

    loaded = Predictor("cpu").load(tiny_run)
    cfg = loaded.config
    if working_mm is not None:
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"working_spacing": [working_mm] * 3})})
    checker = Predictor.from_network(loaded.model, cfg, options=VALIDATION_OPTIONS)
    cohort = build_cohort(tiny_phantom, tiny_phantom / "markers.csv")
    sample = checker.transform(checker.options)({"case": cohort[0].case})
    [row] = validate_cases(checker, [sample], [cohort[0]], info=DistInfo())

    # the same network through `gliomics predict`'s path, the fitted minimums switched off
    plain = Predictor.from_network(loaded.model, cfg, loaded.fitted,
                                   {"label_minimums": False, "component_minimums": False})
    written = plain.predict_case(cohort[0].case, tmp_path / "plain").seg
    ref = load_label(cohort[0].case.seg, label_map=cohort[0].case.label_map)
    assert written.shape == ref.array.shape
    assert row["dice"] == dice_per_region(written, ref.array)
    volumes = label_volumes_mm3(written, float(np.prod(ref.spacing)))
    assert {k: v[0] for k, v in row["volumes_mm3"].items()} == {k: volumes[k] for k in TUMOUR_LABELS}

    # a minimum fitted from such rows removes, in the written map, the label whose volume it exceeds
    present = [k for k in TUMOUR_LABELS if volumes[k] > 0]
    if present:
        label = present[0]
        fitted = loaded.fitted.model_copy(update={"min_label_mm3": {label: volumes[label] + 1.0},
                                                  "min_component_mm3": {}})
        applied = Predictor.from_network(loaded.model, cfg, fitted).predict(cohort[0].case)
        assert not (applied.seg == LABELS[label]).any()
        assert applied.record["postprocessing"]["suppressed"] == [label]
