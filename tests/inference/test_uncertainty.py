"""The uncertainty of a prediction: the entropy map, the passes' disagreement, the review threshold and rule, and
what `predict --tta --save-uncertainty` writes."""

from __future__ import annotations

import json
import math

import nibabel as nib
import numpy as np
import pytest
import torch

from gliomics.inference.engine import forward_with_tta
from gliomics.inference.predictor import Predictor
from gliomics.inference.uncertainty import (
    case_uncertainty,
    disagreement,
    entropy_map,
    fit_review_threshold,
    review_reason,
)
from gliomics.io import discover_cases


def test_entropy_map_is_zero_when_sure_and_one_when_undecided():
    sure = torch.zeros(5, 4, 4, 4)
    sure[2] = 1.0
    assert float(entropy_map(sure).max()) == pytest.approx(0.0, abs=1e-6)
    assert float(entropy_map(torch.full((5, 4, 4, 4), 0.2)).min()) == pytest.approx(1.0, abs=1e-6)
    half = torch.zeros(5, 2, 2, 2)
    half[0], half[3] = 0.5, 0.5
    assert float(entropy_map(half).mean()) == pytest.approx(math.log(2) / math.log(5), abs=1e-6)


def test_disagreement_is_zero_for_identical_passes_and_grows_with_their_difference():
    a = np.zeros((8, 8, 8), np.uint8)
    a[2:6, 2:6, 2:6] = 2
    a[3:5, 3:5, 3:5] = 3
    assert disagreement([a, a.copy()]) == 0.0
    shifted = np.roll(a, 1, axis=0)
    far = np.roll(a, 3, axis=0)
    assert 0.0 < disagreement([a, shifted]) < disagreement([a, far]) <= 1.0
    # both empty agree; one empty and one not disagree completely on the regions the other has
    empty = np.zeros_like(a)
    assert disagreement([empty, empty]) == 0.0
    assert disagreement([a, empty]) > 0.5
    # averaged over every pair of three passes
    assert disagreement([a, a, far]) == pytest.approx(2 / 3 * disagreement([a, far]))
    with pytest.raises(ValueError):
        disagreement([a])


def test_case_uncertainty_needs_two_passes():
    labels = np.zeros((1, 4, 4, 4), np.uint8)
    assert case_uncertainty(labels, {"idh": [0.3]}, "one pass") is None
    two = np.stack([labels[0], labels[0]])
    two[1, 0, 0, 0] = 3
    out = case_uncertainty(torch.from_numpy(two), {"idh": [0.2, 0.6], "tert": [0.5, 0.5]}, "flip TTA")
    assert out["passes"] == 2 and out["source"] == "flip TTA" and out["score"] > 0
    assert out["marker_sd"] == {"idh": pytest.approx(0.2), "tert": 0.0}


def test_review_threshold_flags_about_the_stated_share_of_exchangeable_cases():
    rng = np.random.default_rng(0)
    fitted = fit_review_threshold(list(range(10)), passes=2)
    assert fitted["threshold"] == pytest.approx(8.1) and fitted["passes"] == 2 and "90%" in fitted["rule"]
    shares = []
    for _ in range(200):
        fit = fit_review_threshold(rng.gamma(2.0, size=200), passes=2)
        shares.append(np.mean(rng.gamma(2.0, size=200) > fit["threshold"]))
    assert np.mean(shares) == pytest.approx(0.1, abs=0.01)
    with pytest.raises(ValueError):
        fit_review_threshold([], passes=2)
    with pytest.raises(ValueError):
        fit_review_threshold([0.1, 0.2], passes=2, quantile=1.0)


def test_review_reason_applies_the_threshold_only_to_predictions_made_the_same_way():
    review = fit_review_threshold([0.0, 0.1, 0.2, 0.3], passes=2, quantile=0.5)
    low, high = ({"passes": 2, "score": s} for s in (0.1, 0.2))
    out, reason = review_reason(high, review)
    assert reason and "above" in reason and out["review_threshold"] == pytest.approx(0.15)
    assert review_reason(low, review)[1] is None
    out, reason = review_reason({"passes": 10, "score": 0.9}, review)
    assert reason is None and out["review_threshold"] is None and "2 passes" in out["review_note"]
    out, reason = review_reason(high, None)
    assert reason is None and "calibrate" in out["review_note"]
    assert review_reason(None, review) == (None, None)


def test_marker_record_raises_needs_review_from_the_score(tiny_run):
    predictor = Predictor("cpu").load(tiny_run)
    review = fit_review_threshold([0.0, 0.01, 0.02], passes=2)
    predictor.fitted = predictor.fitted.model_copy(update={"calibration": {"review": review}})
    raw = {"idh": 0.6, "codel_1p19q": 0.2, "tert": 0.4}
    flagged = predictor.marker_record(raw, {"passes": 2, "score": 0.5})
    assert flagged["needs_review"] and flagged["review_reasons"][0].startswith("uncertainty:")
    calm = predictor.marker_record(raw, {"passes": 2, "score": 0.0})
    assert not calm["needs_review"] and calm["review_reasons"] == []


def test_tta_passes_are_the_identity_and_the_flip(tiny_run, tiny_phantom):
    predictor = Predictor("cpu", tta=True).load(tiny_run)
    case = discover_cases(tiny_phantom)[0]
    data, res = predictor.forward(case)
    labels = res.passes["labels"]
    assert labels.shape == (2, *data["image"].shape[1:]) and labels.dtype == torch.uint8
    assert all(len(v) == 2 for v in res.passes["markers"].values())
    single = Predictor("cpu").load(tiny_run).forward(case)[1]
    assert single.uncertainty is None and single.passes["labels"].shape[0] == 1
    assert torch.equal(single.passes["labels"][0], single.probs[0].argmax(0).to(torch.uint8))
    x, p = data["image"].as_tensor()[None], data["present"][None]
    kwargs = {"roi_size": predictor.config.train.patch_size, "whole_volume_factor": 0.01}  # the windowed branch
    windowed = forward_with_tta(predictor.model, x, p, **kwargs)
    assert windowed["passes"]["labels"].shape[0] == 2
    assert res.uncertainty["passes"] == 2 and res.uncertainty["source"] == "flip TTA"


def test_predict_writes_the_uncertainty_map_and_score(tiny_run, tiny_phantom, tmp_path):
    out = tmp_path / "pred"
    case = discover_cases(tiny_phantom)[0]
    record = Predictor("cpu", tta=True, save_uncertainty=True).load(tiny_run).predict_case(case, out).record
    unc = nib.load(out / f"{case.case_id}_uncertainty.nii.gz")
    seg = nib.load(out / f"{case.case_id}_seg.nii.gz")
    assert unc.shape == seg.shape and np.allclose(unc.affine, seg.affine)
    values = np.asarray(unc.dataobj)
    assert values.min() >= -1e-5 and values.max() <= 1 + 1e-5 and values.max() > 0
    stored = json.loads((out / f"{case.case_id}.json").read_text())
    assert stored["uncertainty"] == record["uncertainty"] and stored["uncertainty"]["passes"] == 2
    assert stored["uncertainty"]["review_threshold"] is None  # the tiny run was not calibrated
