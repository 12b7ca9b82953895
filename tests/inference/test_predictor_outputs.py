"""The Predictor's outputs pinned on hand-made cases: the record's keys and values, volumes in mL, labels mapped
back to the input grid, missing sequences, loading runs and ensembles, marker records and folder summaries."""

from __future__ import annotations

import copy
import functools
import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from gliomics.config import DegradeOptions, PredictOptions
from gliomics.constants import MARKERS, SEQUENCES
from gliomics.errors import CheckpointError, InputError, OutputError
from gliomics.inference.calibration import OPERATING_POINTS, apply_calibration
from gliomics.inference.marker_readout import FEATURE_NAMES
from gliomics.inference.marker_validation import FLAG, WHO_WITHHELD
from gliomics.inference.predictor import CAVEAT, Predictor, _mean_alpha
from gliomics.inference.uncertainty import entropy_map
from gliomics.inference.who import who_cns5_suggestion
from gliomics.io import Case
from gliomics.provenance import config_digest, versions
from gliomics.runtime.checkpoint import save_checkpoint
from gliomics.runtime.fitted import FITTED_FILE, FittedArtefacts, ensemble_fitted, write_fitted
from gliomics.runtime.hardware import describe, resolve_device
from gliomics_testing import tiny_config

#: The network's voxel size: anisotropic, 6.25 mm³ a voxel, so that 8 voxels are exactly 50 mm³.
SPACING = (1.0, 2.5, 2.5)
SHAPE = (12, 10, 8)
#: Marker logits of the stub network: probabilities 0.5, 0.7311 and 0.2689.
LOGITS = {"idh": 0.0, "codel_1p19q": 1.0, "tert": -1.0}
ALPHA = (0.1, 0.2, 0.3, 0.4)


def _tumour() -> np.ndarray:
    """One tumour (1 NETC, 19 SNFH, 4 ET voxels) with an 8-voxel cavity against it."""
    seg = np.zeros(SHAPE, np.uint8)
    seg[3:7, 3:6, 2:4] = 2
    seg[4, 4, 2] = 1
    seg[5:7, 4:6, 3] = 3
    seg[7:9, 3:5, 2:4] = 4
    return seg


def _with_stray(seg: np.ndarray) -> np.ndarray:
    """``seg`` with a 7-voxel SNFH component apart from the tumour (43.75 mm³, below the default 50 mm³)."""
    out = seg.copy()
    out[10, 1:8, 6] = 2
    return out


def _affine(spacing, origin=(10.0, 20.0, -5.0)) -> np.ndarray:
    """An LPS-flipped voxel-to-world matrix with the given voxel size."""
    aff = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    aff[:3, 3] = origin
    return aff


def _write_case(root: Path, case_id: str, seg: np.ndarray, spacing=SPACING, missing=()) -> Case:
    """Four sequences whose channel ``k`` is bright (200) where the label is ``k + 1`` and 100 elsewhere."""
    folder = root / case_id
    folder.mkdir(parents=True, exist_ok=True)
    images = {}
    for k, s in enumerate(SEQUENCES):
        if s in missing:
            continue
        vol = np.full(seg.shape, 100.0, np.float32)
        vol[seg == k + 1] = 200.0
        path = folder / f"{case_id}-{s}.nii.gz"
        nib.save(nib.Nifti1Image(vol, _affine(spacing)), path)
        images[s] = path
    return Case(case_id, images)


def _stub(x, present=None, idh=0.0):
    """Class ``k`` wins where channel ``k - 1`` is bright; constant CMAF weights and marker logits (the IDH logit
    ``idh``)."""
    logits = torch.zeros(x.shape[0], 5, *x.shape[2:])
    logits[:, 1:] = 10.0 * x.float()
    alpha = torch.tensor(ALPHA).view(1, 4, 1, 1, 1).expand(x.shape[0], 4, *x.shape[2:]).clone()
    markers = {m: torch.full((x.shape[0],), v) for m, v in {**LOGITS, "idh": idh}.items()}
    pool = torch.full((x.shape[0], 1, 2, 2, 2), 0.5)
    return {"seg": logits, "markers": markers, "alpha": alpha, "pool_weights": pool}


def _state(model, cfg, **extra) -> dict:
    return {"model": model.state_dict(), "config": cfg.model_dump(mode="json"), **extra}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Untrained tiny networks at :data:`SPACING`: a plain run, one with stored thresholds and minimums, one with a
    marker readout, a three-fold ensemble and a mismatched two-fold ensemble, all written as runs before
    ``fitted.json`` were (the fitted artefacts as keys of the checkpoint, the ensemble's calibration in
    ``calibration.json``); and one run with a ``fitted.json`` beside a checkpoint that still holds old keys."""
    from gliomics.models.registry import create_model

    root = tmp_path_factory.mktemp("runs")
    # the z-score: the robust normalisation clips at the 99.5th percentile, which flattens the one bright NETC voxel
    # (and the four ET voxels) that the stub network reads its labels from
    cfg = tiny_config(f"data.working_spacing={list(SPACING)}", "inference.whole_volume_factor=1000000.0",
                      "train.seed=7", "data.normalisation=zscore")
    model = create_model(cfg.model.name, **cfg.model.params)
    save_checkpoint(_state(model, cfg), root / "plain" / "best.pt")
    save_checkpoint(_state(model, cfg, thresholds={"idh": 0.3}, calibration={"source": "val"},
                           min_label_mm3={"ET": 20}, min_component_mm3={"NETC": 5}), root / "stored" / "best.pt")
    save_checkpoint(_state(model, cfg, thresholds={"idh": 0.7}), root / "stored" / "last.pt")
    (root / "stored" / "model_card.json").write_text(json.dumps(
        {"markers": {"validated_on_real_patients": True, "evidence": "cohort X, AUC 0.8"}}))
    readout = {"features": list(FEATURE_NAMES), "mean": [0.0] * len(FEATURE_NAMES),
               "scale": [1.0] * len(FEATURE_NAMES), "coef": {"idh": [0.0] * len(FEATURE_NAMES)},
               "intercept": {"idh": 2.0}}
    save_checkpoint(_state(model, cfg, marker_readout=readout), root / "readout" / "best.pt")
    save_checkpoint(_state(model, cfg, marker_readout={"features": ["x"]}), root / "bad_readout" / "best.pt")
    # fitted.json wins over the keys of an older checkpoint in the same folder, for best.pt and last.pt alike
    save_checkpoint(_state(model, cfg, thresholds={"idh": 0.3}, min_label_mm3={"ET": 20}), root / "fitted" / "best.pt")
    save_checkpoint(_state(model, cfg, thresholds={"idh": 0.7}), root / "fitted" / "last.pt")
    write_fitted(root / "fitted", FittedArtefacts(thresholds={"idh": 0.8, "tert": 0.4}, min_label_mm3={"NETC": 12.0},
                                                  min_component_mm3={"ET": 7.0}, calibration={"source": "fitted"},
                                                  marker_readout=readout))
    folds = [({"idh": 0.2, "codel_1p19q": 0.5, "tert": 0.1}, {"ET": 10.0}, {"NETC": 3.0}),
             ({"idh": 0.4, "codel_1p19q": 0.5, "tert": 0.2}, {"ET": 30.0, "NETC": 4.0}, {}),
             ({"idh": 0.9, "codel_1p19q": 0.8, "tert": 0.6}, {}, {"NETC": 9.0})]
    for k, (thr, mins, comps) in enumerate(folds):
        save_checkpoint(_state(model, cfg, thresholds=thr, min_label_mm3=mins, min_component_mm3=comps),
                        root / "ensemble" / f"fold_{k}" / "best.pt")
    (root / "ensemble" / "calibration.json").write_text(json.dumps({"source": "out of fold", "alpha": 0.1}))
    other = tiny_config("data.working_spacing=[2.0, 2.0, 2.0]")
    save_checkpoint(_state(model, cfg), root / "mixed" / "fold_0" / "best.pt")
    save_checkpoint(_state(model, other), root / "mixed" / "fold_1" / "best.pt")
    return {"root": root, "cfg": cfg, **{p.name: p for p in root.iterdir()}}


def _predictor(run: Path, **kwargs) -> Predictor:
    predictor = Predictor("cpu", precision="fp32", **kwargs).load(run)
    for member in predictor.members:
        member.forward = _stub
    return predictor


def _with(predictor: Predictor, **settings) -> Predictor:
    """A copy of a loaded predictor (sharing its network) with other prediction options (fields of
    :class:`PredictOptions`, validated) and other predictor settings (existing attributes such as ``overlap``)."""
    out = copy.copy(predictor)
    fields = {k: v for k, v in settings.items() if k in PredictOptions.model_fields}
    out.options = predictor.options.updated(fields)
    for name, value in settings.items():
        if name not in fields:
            assert hasattr(out, name), name
            setattr(out, name, value)
    return out


@pytest.fixture(scope="module")
def plain(runs) -> Predictor:
    """The plain run, loaded once, with the stub network."""
    return _predictor(runs["plain"])


@pytest.fixture(scope="module")
def ensemble(runs) -> Predictor:
    """The three-fold ensemble, loaded once, with the stub network in each member; member ``k`` gives IDH the
    logit ``k``."""
    predictor = _predictor(runs["ensemble"])
    for k, member in enumerate(predictor.members):
        member.forward = functools.partial(_stub, idh=float(k))
    return predictor


def test_defaults_of_a_new_predictor():
    """Every option's default and the empty state before ``load``."""
    p = Predictor("cpu")
    o = p.options
    assert (o.tta, p.overlap, p.save_probabilities, p.save_uncertainty, o.sequences) == (False, None, False, False,
                                                                                         None)
    assert (o.min_component_mm3, o.label_minimums, o.component_minimums, o.detached_cavities) == (50.0, True, True,
                                                                                                  True)
    assert (o.resample_probabilities, o.marker_readout, o.calibration, p.who_band, p.crop) == (True, True, True, 0.1,
                                                                                                True)
    assert (p.threads, p.engine, o.degrade) == (None, "torch", None)
    assert o == PredictOptions()
    assert p.model is None and p.config is None and p.checkpoint is None and p._transforms == {}
    assert p.members == [] and p.readouts == [] and p.modules == []
    assert p.thresholds == {} and p.fitted == FittedArtefacts()
    assert p.fitted.calibration == {} and p.fitted.min_label_mm3 == {} and p.fitted.min_component_mm3 == {}
    assert p.fitted.marker_readout is None
    assert p.marker_validation == {"validated_on_real_patients": False, "evidence": None}
    assert p.device.type == "cpu" and p.precision in ("fp32", "bf16")
    assert Predictor("cpu", precision="fp32").precision == "fp32"
    assert Predictor().device == resolve_device("auto")
    # keyword overrides and ``options`` set the fields they name, the rest keep their defaults
    q = Predictor("cpu", tta=True, sequences=["t2f", "t1c"], options={"min_component_mm3": 5.0})
    assert q.options == PredictOptions(tta=True, sequences=["t1c", "t2f"], min_component_mm3=5.0)


def test_predict_and_forward_need_a_loaded_run():
    """Before ``load`` both refuse with one clear message."""
    with pytest.raises(RuntimeError, match=r"^call load\(\) before predict\(\)$"):
        Predictor("cpu").predict(Case("x", {}))
    with pytest.raises(RuntimeError, match=r"^call load\(\) before forward\(\)$"):
        Predictor("cpu").forward(Case("x", {}))


def test_load_reads_a_run_without_stored_thresholds(runs):
    """Thresholds default to 0.5, nothing else is stored; one member, no readout, the network in eval mode."""
    p = Predictor("cpu", precision="fp32").load(runs["plain"])
    assert p.thresholds == {"idh": 0.5, "codel_1p19q": 0.5, "tert": 0.5}
    assert p.fitted == FittedArtefacts()
    assert p.fitted.calibration == {} and p.fitted.min_label_mm3 == {} and p.fitted.min_component_mm3 == {}
    assert p.marker_validation == {"validated_on_real_patients": False, "evidence": None}
    assert p.checkpoint == runs["plain"] / "best.pt"
    assert not (runs["plain"] / FITTED_FILE).exists()
    assert p.members == [p.model] and p.modules == [p.model] and p.readouts == [None]
    assert p.model.training is False
    assert p.config.data.working_spacing == list(SPACING)
    # the run's own options (the config's defaults here)
    assert p.options == p.config.inference.predict == PredictOptions()
    transform = p.transform(p.options)
    assert callable(transform) and p.transform(p.options) is transform


def test_load_reads_the_stored_thresholds_calibration_and_minimums(runs):
    """Stored values override the defaults, as floats; ``checkpoint="last"`` picks ``last.pt``."""
    p = Predictor("cpu", precision="fp32").load(runs["stored"])
    assert p.thresholds == {"idh": 0.3, "codel_1p19q": 0.5, "tert": 0.5}
    assert p.fitted.thresholds == {"idh": 0.3}
    assert p.fitted.calibration == {"source": "val"}
    assert p.fitted.min_label_mm3 == {"ET": 20.0} and isinstance(p.fitted.min_label_mm3["ET"], float)
    assert p.fitted.min_component_mm3 == {"NETC": 5.0} and isinstance(p.fitted.min_component_mm3["NETC"], float)
    assert p.checkpoint.name == "best.pt"
    assert p.marker_validation == {"validated_on_real_patients": True, "evidence": "cohort X, AUC 0.8"}
    last = Predictor("cpu", precision="fp32").load(runs["stored"], checkpoint="last")
    assert last.checkpoint.name == "last.pt" and last.thresholds["idh"] == 0.7
    # loading an old run reads its keys and writes nothing
    assert not (runs["stored"] / FITTED_FILE).exists()


def test_load_reads_fitted_json_before_the_checkpoint_keys(runs):
    """A run with ``fitted.json``: its thresholds, minimums, calibration and readout, not the checkpoint's old keys
    (nor last.pt's), whichever checkpoint is loaded."""
    for checkpoint in ("best", "last"):
        p = Predictor("cpu", precision="fp32").load(runs["fitted"], checkpoint=checkpoint)
        assert p.checkpoint.name == f"{checkpoint}.pt"
        assert p.thresholds == {"idh": 0.8, "codel_1p19q": 0.5, "tert": 0.4}
        assert p.fitted.min_label_mm3 == {"NETC": 12.0} and p.fitted.min_component_mm3 == {"ET": 7.0}
        assert p.fitted.calibration == {"source": "fitted"}
        assert p.readouts[0] is not None and p.readouts[0].intercept == {"idh": 2.0}


def test_load_reads_a_marker_readout_and_refuses_a_broken_one(runs):
    """A stored readout is loaded per member; one fitted on other features is a checkpoint error naming the file."""
    p = Predictor("cpu", precision="fp32").load(runs["readout"])
    assert p.readouts[0] is not None and p.readouts[0].intercept == {"idh": 2.0}
    with pytest.raises(CheckpointError, match="bad_readout"):
        Predictor("cpu").load(runs["bad_readout"])


def test_ensemble_averages_thresholds_and_takes_median_minimums(runs, ensemble):
    """Three folds: mean thresholds, median minimums (0 where a fold has none), the folder's calibration."""
    p = ensemble
    assert len(p.members) == 3 and len(p.readouts) == 3 and p.readouts == [None, None, None]
    assert p.model is p.members[0]
    assert p.thresholds == pytest.approx({"idh": 0.5, "codel_1p19q": 0.6, "tert": 0.3})
    assert p.fitted.min_label_mm3 == {"ET": 10.0, "NETC": 0.0}
    assert p.fitted.min_component_mm3 == {"NETC": 3.0}
    assert p.fitted.calibration == {"source": "out of fold", "alpha": 0.1}
    assert p.fitted.marker_readout is None
    assert p.marker_validation == {"validated_on_real_patients": False, "evidence": None}
    assert p.checkpoint == runs["ensemble"]
    assert p.passes_source() == "3 fold models"


def test_ensemble_of_folds_with_other_spacings_is_refused(runs):
    """Folds at different working spacings are refused, naming the fold that differs."""
    with pytest.raises(CheckpointError, match=r"fold_1.*must share them"):
        Predictor("cpu").load(runs["mixed"])


def test_median_minimums_of_the_folds():
    """Per label the median over the folds, a missing label counting 0; an even count averages the middle two."""
    def minimums(*per_fold):
        return ensemble_fitted([FittedArtefacts(min_label_mm3=m) for m in per_fold], FittedArtefacts()).min_label_mm3

    assert minimums({"ET": 10.0}, {"ET": 30.0, "NETC": 4.0}, {}) == {"ET": 10.0, "NETC": 0.0}
    assert minimums({"RC": 1.0}, {"RC": 4.0}) == {"RC": 2.5}
    assert minimums({}, {}) == {}


def test_mean_cmaf_weight_per_region_over_present_sequences():
    """Per predicted tumour label, each present sequence's mean weight inside it, rounded to 4 decimals."""
    labels = torch.tensor([[0, 1, 1, 3, 3, 3]])
    alpha = torch.stack([torch.tensor([[9.0, 0.1, 0.2, 0.3, 0.4, 0.123456]]) * (k + 1) for k in range(4)])
    out = _mean_alpha(alpha, labels, torch.tensor([True, False, True, True]))
    assert out == {"NETC": {"t1n": 0.15, "t2w": 0.45, "t2f": 0.6},
                   "ET": {"t1n": round(0.823456 / 3, 4), "t2w": round(3 * 0.823456 / 3, 4),
                          "t2f": round(4 * 0.823456 / 3, 4)}}
    assert out["ET"]["t1n"] == 0.2745
    assert _mean_alpha(None, labels, torch.ones(4, dtype=torch.bool)) is None
    assert _mean_alpha(alpha, torch.zeros_like(labels), torch.ones(4, dtype=torch.bool)) == {}


def test_predict_record_keys_and_values(runs, plain, tmp_path):
    """Labels map back to the input grid exactly; volumes in mL after the 50 mm³ component rule; the record."""
    seg = _with_stray(_tumour())
    case = _write_case(tmp_path, "c1", seg)
    p = plain
    pred = p.predict(case)
    record = pred.record
    assert list(record) == ["case_id", "sequences_present", "sequences_missing", "mean_cmaf_weight", "volumes_ml",
                            "markers", "who_cns5", "uncertainty", "needs_review", "review_reasons", "markers_from",
                            "marker_validation", "who_cns5_withheld", "timings", "hardware", "model", "versions",
                            "caveat"]
    assert record["case_id"] == "c1" and pred.case_id == "c1"
    assert record["sequences_present"] == list(SEQUENCES) and record["sequences_missing"] == []
    # the stray 7-voxel component (43.75 mm³) is removed, the 8-voxel cavity (exactly 50 mm³) kept
    expected = _tumour()
    np.testing.assert_array_equal(pred.seg, expected)
    assert pred.seg.dtype == np.uint8 and pred.seg.shape == SHAPE
    np.testing.assert_allclose(pred.affine, _affine(SPACING))
    assert record["volumes_ml"] == {"ET": 0.025, "NETC": 0.006, "SNFH": 0.119, "RC": 0.05, "TC": 0.031, "WT": 0.15}
    weights = dict(zip(SEQUENCES, ALPHA, strict=True))
    assert record["mean_cmaf_weight"] == {name: weights for name in ("NETC", "SNFH", "ET", "RC")}
    # a scan (not a phantom) and a run whose model card shows no validation on real patients: flagged, no WHO
    assert record["markers"] == {"idh": {"probability": 0.5, "probability_raw": 0.5, "calibrated": False,
                                         "threshold": 0.5, "call": 1, "flag": FLAG},
                                 "codel_1p19q": {"probability": 0.7311, "probability_raw": 0.7311,
                                                 "calibrated": False, "threshold": 0.5, "call": 1, "flag": FLAG},
                                 "tert": {"probability": 0.2689, "probability_raw": 0.2689, "calibrated": False,
                                          "threshold": 0.5, "call": 0, "flag": FLAG}}
    assert record["marker_validation"] == {"validated_on_real_patients": False, "evidence": None, "input": "scan",
                                           "flag": FLAG}
    assert record["who_cns5"] is None and record["who_cns5_withheld"] == WHO_WITHHELD
    assert record["uncertainty"] is None and record["needs_review"] is False and record["review_reasons"] == []
    assert record["markers_from"] == "network heads"
    assert list(record["timings"]) == ["load_preprocess_s", "network_s", "postprocess_write_s", "total_s"]
    for v in record["timings"].values():
        assert isinstance(v, float) and v == round(v, 3) and v >= 0.0
    parts = sum(record["timings"][k] for k in ("load_preprocess_s", "network_s", "postprocess_write_s"))
    assert record["timings"]["total_s"] == pytest.approx(parts, abs=0.002)
    assert record["hardware"] == {**describe(p.device, "fp32"), "engine": "torch"}
    assert record["model"] == {"name": "mgmtnet_cpu", "checkpoint": "best.pt",
                               "config_sha256": config_digest(runs["cfg"]), "train_seed": 7, "ensemble_members": 1}
    assert record["versions"] == versions()
    assert record["caveat"] == CAVEAT and CAVEAT.startswith("Research tool, not a diagnosis")
    assert "postprocessing" not in record


def test_validated_run_and_phantom_cases_keep_the_who_suggestion(plain, tmp_path):
    """A run whose card shows a validation on real patients, or a phantom case, is not flagged: the markers stand
    as they are and the WHO CNS5 suggestion is given."""
    case = _write_case(tmp_path / "scans", "c1", _tumour())
    probs = {"idh": 0.5, "codel_1p19q": 0.7311, "tert": 0.2689}
    who = who_cns5_suggestion(probs, dict.fromkeys(MARKERS, 0.5), band=0.1)
    validated = _with(plain, marker_validation={"validated_on_real_patients": True, "evidence": "cohort X"})
    record = validated.predict(case).record
    assert record["marker_validation"] == {"validated_on_real_patients": True, "evidence": "cohort X",
                                           "input": "scan", "flag": None}
    assert record["who_cns5"] == who and "who_cns5_withheld" not in record
    assert record["markers"]["idh"] == {"probability": 0.5, "probability_raw": 0.5, "calibrated": False,
                                        "threshold": 0.5, "call": 1}
    cohort = tmp_path / "phantoms"
    phantom = _write_case(cohort, "p1", _tumour())
    (cohort / "phantom_truth.csv").write_text("case_id,posterior_idh\np1,0.5\n")
    record = plain.predict(phantom).record
    assert record["marker_validation"] == {"validated_on_real_patients": False, "evidence": None,
                                           "input": "phantom", "flag": None}
    assert record["who_cns5"] == who and "flag" not in record["markers"]["tert"]


def test_predict_keeps_the_network_grid_arrays(plain, tmp_path):
    """The prediction carries the network-grid probabilities, labels, CMAF and pooling weights; no extra maps."""
    case = _write_case(tmp_path, "c1", _with_stray(_tumour()))
    pred = plain.predict(case)
    assert pred.probs.shape == (5, 16, 16, 16) and pred.probs.dtype == torch.float32
    assert torch.allclose(pred.probs.sum(0), torch.ones(16, 16, 16))
    assert pred.labels.shape == (16, 16, 16) and pred.labels.dtype == torch.uint8
    # the network grid still holds the stray component; only the input-grid map drops it
    assert sorted(np.unique(pred.labels.numpy(), return_counts=True)[1][1:].tolist()) == [1, 4, 8, 26]
    assert pred.alpha.shape == (4, 16, 16, 16) and torch.allclose(pred.alpha[:, 0, 0, 0], torch.tensor(ALPHA))
    assert pred.pool_weights.shape == (1, 2, 2, 2) and bool((pred.pool_weights == 0.5).all())
    assert pred.present.tolist() == [True, True, True, True]
    assert pred.image.shape == (4, 16, 16, 16)
    assert pred.probabilities is None and pred.entropy is None


def test_component_rule_follows_min_component_mm3(plain, tmp_path):
    """With no minimum the stray component stays; a 51 mm³ minimum also removes the 50 mm³ cavity."""
    case = _write_case(tmp_path, "c1", _with_stray(_tumour()))
    kept = _with(plain, min_component_mm3=0.0).predict(case)
    np.testing.assert_array_equal(kept.seg, _with_stray(_tumour()))
    assert kept.record["volumes_ml"]["SNFH"] == 0.163  # 26 voxels: 162.5 mm³
    strict = _with(plain, min_component_mm3=51.0).predict(case)
    assert not (strict.seg == 4).any() and strict.record["volumes_ml"]["RC"] == 0.0


def test_missing_sequence_is_reported_and_left_out_of_the_weights(plain, tmp_path):
    """Without T2 (the channel that marks ET here) no ET is predicted and T2 has no CMAF weight."""
    case = _write_case(tmp_path, "c2", _tumour(), missing=("t2w",))
    pred = _with(plain, min_component_mm3=0.0).predict(case)
    assert pred.record["sequences_present"] == ["t1n", "t1c", "t2f"]
    assert pred.record["sequences_missing"] == ["t2w"]
    assert pred.present.tolist() == [True, True, False, True]
    assert set(pred.record["mean_cmaf_weight"]) == {"NETC", "SNFH", "RC"}
    assert pred.record["mean_cmaf_weight"]["NETC"] == {"t1n": 0.1, "t1c": 0.2, "t2f": 0.4}
    assert pred.record["volumes_ml"]["ET"] == 0.0


def test_sequences_option_treats_the_others_as_missing(runs, tmp_path):
    """``sequences=["t1c", "t2f"]``: T1 and T2 are missing in the record."""
    case = _write_case(tmp_path, "c3", _tumour())
    record = _predictor(runs["plain"], sequences=["t1c", "t2f"]).predict(case).record
    assert record["sequences_present"] == ["t1c", "t2f"] and record["sequences_missing"] == ["t1n", "t2w"]


def test_probabilities_and_uncertainty_on_the_same_grid(plain, tmp_path):
    """Asked for, the probabilities (input grid, class last) and the voxel entropy come with the prediction."""
    case = _write_case(tmp_path, "c4", _tumour())
    pred = _with(plain, min_component_mm3=0.0, save_probabilities=True,
                      save_uncertainty=True).predict(case)
    assert pred.probabilities.shape == (*SHAPE, 5) and pred.probabilities.dtype == np.float32
    np.testing.assert_allclose(pred.probabilities.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(pred.probabilities.argmax(-1), _tumour())
    assert pred.entropy.shape == SHAPE and pred.entropy.dtype == np.float32
    reference = entropy_map(torch.from_numpy(np.moveaxis(pred.probabilities, -1, 0))).numpy()
    np.testing.assert_allclose(pred.entropy, reference, atol=1e-5)


def _fine_case(root: Path) -> Case:
    """A case at 0.8 × 2 × 2 mm (finer than the network's grid, not a multiple of it) with all four labels."""
    seg = np.zeros((15, 12, 10), np.uint8)
    seg[3:11, 2:9, 2:8] = 2
    seg[5:8, 4:7, 3:6] = 3
    seg[6, 5, 4] = 1
    seg[8:12, 6:9, 6:9] = 4
    return _write_case(root, "fine", seg, spacing=(0.8, 2.0, 2.0))


def _nearest_reference(labels: np.ndarray, network_affine: np.ndarray, shape, affine: np.ndarray) -> np.ndarray:
    """Each input voxel takes the label of the network voxel nearest its centre."""
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
    pos = (np.linalg.inv(network_affine) @ affine @ np.c_[ijk, np.ones(len(ijk))].T)[:3].T
    idx = np.floor(pos + 0.5).astype(int)
    return labels[idx[:, 0], idx[:, 1], idx[:, 2]].reshape(shape)


def test_nearest_labels_map_back_by_nearest_neighbour(plain, tmp_path):
    """``resample_probabilities=False`` on a finer input: every input voxel copies the nearest network voxel."""
    case = _fine_case(tmp_path)
    pred = _with(plain, min_component_mm3=0.0, detached_cavities=False,
                      resample_probabilities=False).predict(case)
    reference = _nearest_reference(pred.labels.numpy(), np.asarray(pred.image.affine, dtype=float), (15, 12, 10),
                                   _affine((0.8, 2.0, 2.0)))
    np.testing.assert_array_equal(pred.seg, reference)
    assert set(np.unique(pred.seg).tolist()) == {0, 1, 2, 3, 4}


def test_soft_labels_are_the_argmax_of_resampled_probabilities(plain, tmp_path):
    """By default, on a finer input the labels are the argmax of the probabilities resampled (linearly) to it,
    which differs from copying the nearest network voxel and holds values the network grid never had."""
    case = _fine_case(tmp_path)
    off = {"min_component_mm3": 0.0, "detached_cavities": False}
    soft = _with(plain, save_probabilities=True, save_uncertainty=True, **off).predict(case)
    default = _with(plain, **off).predict(case)
    nearest = _with(plain, resample_probabilities=False, **off).predict(case)
    np.testing.assert_array_equal(soft.seg, soft.probabilities.argmax(-1))
    np.testing.assert_array_equal(default.seg, soft.seg)
    assert not np.array_equal(soft.seg, nearest.seg)
    assert soft.probabilities.shape == (15, 12, 10, 5)
    assert len(np.unique(soft.probabilities)) > len(np.unique(soft.probs.numpy()))
    assert len(np.unique(soft.entropy)) > len(np.unique(entropy_map(soft.probs).numpy()))
    # volumes are counted at the input grid's 3.2 mm³ voxels
    assert soft.record["volumes_ml"]["RC"] == round(int((soft.seg == 4).sum()) * 0.0032, 3)


def test_component_minimum_on_the_input_grid(plain, tmp_path):
    """On the input grid the run's component minimums use the input's voxel volume (3.2 mm³)."""
    case = _fine_case(tmp_path)
    p = _with(plain, min_component_mm3=0.0, detached_cavities=False, label_minimums=False)
    kept = p.predict(case)
    netc = int((kept.seg == 1).sum())
    assert netc == 2
    # two voxels are 6.4 mm³
    p.fitted = p.fitted.model_copy(update={"min_component_mm3": {"NETC": 6.5}})
    record = p.predict(case).record
    assert record["postprocessing"] == {"min_component_volume_ml": {"NETC": 0.0065}, "components_relabelled":
                                        {"NETC": 1}}
    assert record["volumes_ml"]["NETC"] == 0.0


def test_detached_cavity_is_relabelled_unless_kept(plain, tmp_path):
    """A cavity apart from the tumour becomes background and is recorded; ``detached_cavities=False`` keeps it."""
    seg = _tumour()
    seg[0:2, 7:9, 5:7] = 4
    case = _write_case(tmp_path, "c5", seg)
    pred = _with(plain, min_component_mm3=0.0).predict(case)
    assert pred.record["postprocessing"] == {"detached_cavities_relabelled": 1}
    np.testing.assert_array_equal(pred.seg, _tumour())
    kept = _with(plain, min_component_mm3=0.0, detached_cavities=False).predict(case)
    assert "postprocessing" not in kept.record
    np.testing.assert_array_equal(kept.seg, seg)
    assert kept.record["volumes_ml"]["RC"] == 0.1


def test_label_and_component_minimums_follow_their_switches(plain, tmp_path):
    """The run's label minimum suppresses ET only with ``label_minimums``; the component minimum relabels the
    one-voxel NETC (6.25 mm³) only with ``component_minimums``."""
    case = _write_case(tmp_path, "c6", _tumour())
    p = _with(plain, min_component_mm3=0.0, component_minimums=False)
    # ET is 25 mm³
    p.fitted = p.fitted.model_copy(update={"min_label_mm3": {"ET": 30.0}})
    p.fitted = p.fitted.model_copy(update={"min_component_mm3": {"NETC": 6.5}})
    record = p.predict(case).record
    assert record["postprocessing"] == {"min_label_volume_ml": {"ET": 0.03}, "suppressed": ["ET"]}
    assert record["volumes_ml"]["ET"] == 0.0 and record["volumes_ml"]["NETC"] == 0.006
    p.options = p.options.updated({"label_minimums": False, "component_minimums": True})
    record = p.predict(case).record
    assert record["postprocessing"] == {"min_component_volume_ml": {"NETC": 0.0065},
                                        "components_relabelled": {"NETC": 1}}
    assert record["volumes_ml"]["ET"] == 0.025 and record["volumes_ml"]["NETC"] == 0.0
    assert "postprocessing" not in p.predict(case, options={"component_minimums": False}).record


def test_marker_readout_replaces_the_heads(runs, tmp_path):
    """With a readout its marker (IDH logit 2) replaces the head's; ``marker_readout=False`` keeps the heads."""
    case = _write_case(tmp_path, "c7", _tumour())
    readout = _predictor(runs["readout"])
    record = readout.predict(case).record
    assert record["markers_from"] == "readout"
    assert record["markers"]["idh"]["probability"] == 0.8808
    assert record["markers"]["tert"]["probability"] == 0.2689
    heads = _with(readout, marker_readout=False).predict(case).record
    assert heads["markers_from"] == "network heads" and heads["markers"]["idh"]["probability"] == 0.5


def test_flip_tta_gives_two_passes_and_an_uncertainty(plain, tmp_path):
    """With flip TTA the record's uncertainty comes from two passes, described as such."""
    case = _write_case(tmp_path, "c8", _tumour())
    p = _with(plain, tta=True)
    timings = {}
    data, res = p.forward(case, timings)
    assert list(timings) == ["load_preprocess_s", "network_s"]
    assert res.passes["labels"].shape == (2, 16, 16, 16)
    assert all(len(v) == 2 for v in res.passes["markers"].values())
    assert res.uncertainty["passes"] == 2 and res.uncertainty["source"] == "flip TTA"
    record = p.predict(case).record
    assert record["uncertainty"]["passes"] == 2 and record["uncertainty"]["review_threshold"] is None
    _, single = plain.forward(case)
    assert single.uncertainty is None and single.passes["labels"].shape == (1, 16, 16, 16)
    # the same per call
    _, per_call = plain.forward(case, options={"tta": True})
    assert per_call.passes["labels"].shape == (2, 16, 16, 16) and per_call.uncertainty["passes"] == 2


def test_ensemble_prediction_names_the_folder_and_its_members(ensemble, tmp_path):
    """An ensemble's record names the ensemble folder and its three members; the passes are the folds."""
    case = _write_case(tmp_path, "c9", _tumour())
    p = _with(ensemble, min_component_mm3=0.0, label_minimums=False, component_minimums=False)
    pred = p.predict(case)
    assert pred.record["model"]["checkpoint"] == "ensemble" and pred.record["model"]["ensemble_members"] == 3
    assert pred.record["uncertainty"]["passes"] == 3 and pred.record["uncertainty"]["source"] == "3 fold models"
    # the members' IDH probabilities 0.5, 0.7311 and 0.8808 are averaged
    assert pred.record["markers"]["idh"]["probability"] == 0.704
    assert pred.record["uncertainty"]["marker_sd"]["idh"] == 0.15664
    assert pred.record["markers"]["idh"]["threshold"] == 0.5 and pred.record["markers"]["tert"]["call"] == 0
    np.testing.assert_array_equal(pred.seg, _tumour())


def test_markers_from_and_passes_source():
    """Where the markers come from and what the passes are, in words."""
    p = Predictor("cpu")
    p.readouts = [None]
    assert p.markers_from() == "network heads"
    p.readouts = [None, object()]
    assert p.markers_from() == "readout"
    assert p.markers_from(PredictOptions(marker_readout=False)) == "network heads"
    p.options = p.options.updated({"marker_readout": False})
    assert p.markers_from() == "network heads"
    p.members = [object()]
    assert p.passes_source() == "one pass"
    assert p.passes_source(PredictOptions(tta=True)) == "flip TTA"
    p.options = p.options.updated({"tta": True})
    assert p.passes_source() == "flip TTA"
    p.members = [object(), object()]
    assert p.passes_source() == "2 fold models × flip TTA"
    p.options = p.options.updated({"tta": False})
    assert p.passes_source() == "2 fold models"


def test_hardware_of_torch_and_onnx_engines():
    """The torch engine names itself; an ONNX member reports its own hardware."""
    p = Predictor("cpu", precision="fp32")
    assert p.hardware() == {**describe(p.device, "fp32"), "engine": "torch"}

    class Member:
        def hardware(self):
            return {"engine": "onnx", "providers": ["CPU"]}

    p.engine = "onnx"
    assert p.hardware() == {**describe(p.device, "fp32"), "engine": "onnx"}
    p.members = [Member()]
    assert p.hardware() == {**describe(p.device, "fp32"), "engine": "onnx", "providers": ["CPU"]}
    p.engine = "torch"
    assert p.hardware()["engine"] == "torch"


def _calibrated(q0: float, q1: float) -> dict:
    return {"temperature": 1.0, "thresholds": dict.fromkeys(OPERATING_POINTS, 0.7), "conformal_q": [q0, q1],
            "alpha": 0.1}


def test_marker_record_without_calibration():
    """Raw probabilities with the run's thresholds; the WHO suggestion uses the predictor's band."""
    p = Predictor("cpu", who_band=0.2)
    p.thresholds = {"idh": 0.6, "codel_1p19q": 0.5, "tert": 0.5}
    raw = {"idh": 0.7, "codel_1p19q": 0.2, "tert": 0.55}
    out = p.marker_record(raw)
    assert list(out) == ["markers", "who_cns5", "uncertainty", "needs_review", "review_reasons"]
    assert out["markers"]["idh"] == {"probability": 0.7, "probability_raw": 0.7, "calibrated": False,
                                     "threshold": 0.6, "call": 1}
    assert out["markers"]["codel_1p19q"]["call"] == 0
    assert out["who_cns5"] == who_cns5_suggestion(raw, p.thresholds, band=0.2)
    assert out["who_cns5"]["band"] == 0.2
    assert out["uncertainty"] is None and out["needs_review"] is False and out["review_reasons"] == []
    partial = p.marker_record({"idh": 0.7})
    assert "who_cns5" not in partial and list(partial["markers"]) == ["idh"]


def test_marker_record_with_calibration_and_review():
    """A set holding both classes and an uncertainty above the review threshold both ask for review."""
    p = Predictor("cpu")
    p.thresholds = dict.fromkeys(MARKERS, 0.5)
    calibration = {"source": "validation", "alpha": 0.1,
                   "markers": {"idh": _calibrated(0.9, 0.9), "tert": _calibrated(0.9, 0.1)},
                   "review": {"passes": 2, "threshold": 0.2, "rule": "q95", "quantile": 0.95}}
    p.fitted = p.fitted.model_copy(update={"calibration": calibration})
    raw = {"idh": 0.5, "codel_1p19q": 0.3, "tert": 0.8}
    unc = {"passes": 2, "score": 0.25, "source": "flip TTA"}
    out = p.marker_record(raw, unc)
    assert out["markers"]["idh"] == apply_calibration("idh", 0.5, _calibrated(0.9, 0.9), 0.5)
    assert out["markers"]["idh"]["set_status"] == "undetermined"
    assert out["markers"]["codel_1p19q"]["calibrated"] is False
    assert out["calibration"] == {"source": "validation", "alpha": 0.1,
                                  "calls_use": "the calibrated probability (temperature scaling)"}
    assert "idh" in out["who_cns5"]["uncertain_markers"]
    assert out["who_cns5"] == who_cns5_suggestion({m: v["probability"] for m, v in out["markers"].items()},
                                                  {m: v["threshold"] for m, v in out["markers"].items()},
                                                  band=0.1, undetermined=["idh"])
    assert out["who_cns5"] != who_cns5_suggestion({m: v["probability"] for m, v in out["markers"].items()},
                                                  {m: v["threshold"] for m, v in out["markers"].items()}, band=0.1)
    assert out["uncertainty"]["review_threshold"] == 0.2 and out["uncertainty"]["review_rule"] == "q95"
    assert out["needs_review"] is True
    assert out["review_reasons"] == [
        "idh: the conformal prediction set holds both classes",
        "uncertainty: the passes' segmentation disagreement 0.250 is above 0.200, the 95% quantile of the "
        "calibration set"]
    calm = p.marker_record({"tert": 0.8}, {"passes": 2, "score": 0.2})
    assert calm["needs_review"] is False and calm["review_reasons"] == []
    assert calm["uncertainty"]["review_threshold"] == 0.2


def _cohort(root: Path) -> Path:
    cohort = root / "cohort"
    _write_case(cohort, "a1", _tumour())
    _write_case(cohort, "a2", _with_stray(_tumour()))
    _write_case(cohort, "a3", _tumour(), missing=("t1n",))
    return cohort


def test_predict_folder_summary_skips_and_overwrites(plain, tmp_path, caplog):
    """Every case is predicted and written; a second run skips them; ``overwrite`` predicts them again."""
    cohort, out = _cohort(tmp_path), tmp_path / "pred"
    p = plain
    seen = []
    with caplog.at_level(logging.WARNING, logger="gliomics.inference.predictor"):
        summary = p.predict_folder(cohort, out, progress=False, on_case=lambda c, pr: seen.append((c.case_id,
                                                                                                    pr.case_id)))
    assert "a3: t1n missing; predicted from t1c, t2w, t2f only" in caplog.text
    assert list(summary) == ["predicted", "skipped", "failed", "seconds", "seconds_per_case", "hardware"]
    assert summary["predicted"] == ["a1", "a2", "a3"] and summary["skipped"] == [] and summary["failed"] == {}
    assert seen == [("a1", "a1"), ("a2", "a2"), ("a3", "a3")]
    totals = [json.loads((out / f"{c}.json").read_text())["timings"]["total_s"] for c in ("a1", "a2", "a3")]
    assert summary["seconds"] == pytest.approx(sum(totals), abs=1e-9)
    assert summary["seconds_per_case"] == pytest.approx(sum(totals) / 3, abs=1e-9)
    assert summary["hardware"] == p.hardware()
    written = np.asarray(nib.load(out / "a2_seg.nii.gz").dataobj)
    np.testing.assert_array_equal(written, _tumour())
    again = p.predict_folder(cohort, out, progress=False)
    assert again["predicted"] == [] and again["skipped"] == ["a1", "a2", "a3"]
    assert again["seconds"] == 0.0 and again["seconds_per_case"] is None
    redo = p.predict_folder(cohort, out, overwrite=True, progress=False)
    assert redo["predicted"] == ["a1", "a2", "a3"] and redo["skipped"] == []


def test_predict_folder_parts_progress_and_refusals(plain, tmp_path, capsys):
    """Two parts split the cases; progress goes to stderr by default; a file as output folder is refused."""
    cohort = _cohort(tmp_path)
    p = plain
    first = p.predict_folder(cohort, tmp_path / "p0", num_parts=2, part_id=0)
    assert "predict" in capsys.readouterr().err
    second = p.predict_folder(cohort, tmp_path / "p1", num_parts=2, part_id=1, progress=False)
    assert capsys.readouterr().err == ""
    assert sorted(first["predicted"] + second["predicted"]) == ["a1", "a2", "a3"]
    assert first["predicted"] and second["predicted"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        p.predict_folder(cohort, tmp_path / "file", progress=False)


def test_predict_folder_keeps_going_past_a_broken_case(plain, tmp_path):
    """A case whose image cannot be read stops the folder, unless ``keep_going`` records it as failed."""
    cohort = _cohort(tmp_path)
    (cohort / "a2" / "a2-t1c.nii.gz").write_bytes(b"not a nifti")
    p = plain
    summary = p.predict_folder(cohort, tmp_path / "kg", keep_going=True, progress=False)
    assert summary["predicted"] == ["a1", "a3"] and list(summary["failed"]) == ["a2"]
    assert summary["failed"]["a2"]
    from gliomics.errors import GliomicsError

    with pytest.raises(GliomicsError):
        p.predict_folder(cohort, tmp_path / "stop", progress=False)


def test_crop_to_the_head_and_degradation_of_the_input(runs, plain, tmp_path, monkeypatch):
    """The network sees the head's bounding box (with a 2-voxel margin) unless ``crop=False``; ``degrade`` acts on
    each loaded case; both ways the labels come back to the same input grid."""
    from gliomics.data.degradations import DegradeSequenced

    seg = np.zeros((40, 10, 8), np.uint8)
    seg[:12] = _tumour()
    case = _write_case(tmp_path, "wide", seg)
    for s in SEQUENCES:  # zero (outside the head) beyond the first 12 slices
        img = nib.load(case.images[s])
        data = np.asarray(img.dataobj).copy()
        data[12:] = 0.0
        nib.save(nib.Nifti1Image(data, img.affine), case.images[s])
    cropped = _with(plain, min_component_mm3=0.0).predict(case)
    assert tuple(cropped.image.shape) == (4, 16, 16, 16)
    calls = []

    def degrade(self, sample: dict) -> dict:
        calls.append((self.degradation.sequence, self.degradation.name, self.seed, tuple(sample["image"].shape)))
        return sample

    spec = DegradeOptions(sequence="t1c", name="Gibbs ringing", seed=3)
    with monkeypatch.context() as patch:
        patch.setattr(DegradeSequenced, "__call__", degrade)
        whole = _predictor(runs["plain"], min_component_mm3=0.0, crop=False, degrade=spec).predict(case)
    assert tuple(whole.image.shape) == (4, 48, 16, 16)
    assert calls == [("t1c", "Gibbs ringing", 3, (4, 40, 10, 8))]
    np.testing.assert_array_equal(cropped.seg, seg)
    np.testing.assert_array_equal(whole.seg, seg)
    # the real degradation changes T1c alone: the other channels are those of the same prediction without it
    clean = _predictor(runs["plain"], min_component_mm3=0.0, crop=False).predict(case)
    degraded = _predictor(runs["plain"], min_component_mm3=0.0, crop=False, degrade=spec).predict(case)
    changed = [not torch.equal(degraded.image[k], clean.image[k]) for k in range(len(SEQUENCES))]
    assert changed == [s == "t1c" for s in SEQUENCES]
    assert len(calls) == 1


def test_sliding_windows_get_the_patch_size_and_overlap(plain, tmp_path, monkeypatch):
    """A volume larger than the run's whole-volume factor runs in windows of the patch size (clipped to the volume)
    with the predictor's overlap; the stub network's labels are those of one pass."""
    import gliomics.inference.engine as engine

    calls = []
    real = engine.sliding_window_inference
    monkeypatch.setattr(engine, "sliding_window_inference",
                        lambda image, roi, n, fn, **kw: calls.append((list(roi), kw["overlap"])) or
                        real(image, roi, n, fn, **kw))
    p = _with(plain, overlap=0.4, min_component_mm3=0.0)
    p.config = plain.config.model_copy(deep=True)
    p.config.inference.whole_volume_factor = 1e-3
    pred = p.predict(_write_case(tmp_path, "sw", _tumour()))
    assert calls == [([16, 16, 16], 0.4)]
    np.testing.assert_array_equal(pred.seg, _tumour())


def test_threads_option_sets_the_torch_threads(runs):
    """``threads`` sets the CPU threads when the run is loaded."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        Predictor("cpu", threads=2).load(runs["plain"])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def _stub_without_cmaf(x, present=None):
    """A network without CMAF weights or pooling maps (a baseline): the stub's segmentation and markers only."""
    out = _stub(x, present)
    return {"seg": out["seg"], "markers": out["markers"]}


def test_a_network_without_cmaf_weights_predicts_without_them(runs, tmp_path):
    predictor = _predictor(runs["plain"])
    for member in predictor.members:
        member.forward = _stub_without_cmaf
    pred = predictor.predict(_write_case(tmp_path, "b1", _tumour()))
    assert pred.alpha is None and pred.pool_weights is None
    assert pred.record["mean_cmaf_weight"] is None
    np.testing.assert_array_equal(pred.seg, _tumour())


def test_timings_are_durations_of_this_prediction(plain, tmp_path):
    timings = plain.predict(_write_case(tmp_path, "t1", _tumour())).record["timings"]
    assert list(timings) == ["load_preprocess_s", "network_s", "postprocess_write_s", "total_s"]
    assert all(0.0 <= v < 300.0 for v in timings.values()), timings
    assert timings["total_s"] == pytest.approx(sum(v for k, v in timings.items() if k != "total_s"), abs=2e-3)


def test_predict_folder_makes_the_output_folder_and_its_parents_and_follows_the_layout(plain, tmp_path):
    cohort, out = _cohort(tmp_path), tmp_path / "new" / "nested" / "pred"
    assert plain.predict_folder(cohort, out, progress=False, layout="brats")["predicted"] == ["a1", "a2", "a3"]
    assert (out / "a1_seg.nii.gz").is_file()
    with pytest.raises(InputError, match="cohort: no cases found$"):
        plain.predict_folder(cohort, tmp_path / "other", progress=False, layout="nnunet")
