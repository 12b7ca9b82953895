"""The Predictor and `gliomics predict`: outputs in the input geometry, JSON record, missing sequences, resume."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import torch
from scipy import ndimage
from typer.testing import CliRunner

from gliomics.cli.main import app
from gliomics.constants import MARKERS, SEQUENCES
from gliomics.inference.predictor import Predictor
from gliomics.io import discover_cases

runner = CliRunner()


def _first_case(root):
    return sorted(p for p in root.iterdir() if p.is_dir())[0]


def test_prediction_has_input_geometry_and_valid_json(tiny_phantom, tiny_run, tmp_path):
    src = _first_case(tiny_phantom)
    out = tmp_path / "pred"
    result = runner.invoke(app, ["predict", "-i", str(src), "-o", str(out), "-m", str(tiny_run), "--device", "cpu",
                                 "--no-progress", "--save-probabilities"])
    assert result.exit_code == 0, result.output
    cid = src.name
    ref = nib.load(src / f"{cid}-t1c.nii.gz")
    seg = nib.load(out / f"{cid}_seg.nii.gz")
    assert seg.shape == ref.shape
    np.testing.assert_allclose(seg.affine, ref.affine, atol=1e-4)
    assert set(np.unique(np.asarray(seg.dataobj))) <= {0, 1, 2, 3, 4}
    probs = nib.load(out / f"{cid}_probabilities.nii.gz")
    assert probs.shape == (*ref.shape, 5)
    record = json.loads((out / f"{cid}.json").read_text())
    assert set(record["markers"]) == set(MARKERS)
    for m in MARKERS:
        assert 0.0 <= record["markers"][m]["probability"] <= 1.0
        assert record["markers"][m]["call"] in (0, 1)
    assert set(record["volumes_ml"]) >= {"ET", "NETC", "SNFH", "RC", "TC", "WT"}
    assert record["sequences_missing"] == []
    assert "not a diagnosis" in record["caveat"]
    # the time of the case, with the machine and precision it ran on, so that machines can be compared
    assert record["hardware"]["device"] == "cpu" and record["hardware"]["precision"] in ("fp32", "bf16")
    assert record["timings"]["total_s"] >= record["timings"]["network_s"] > 0
    assert "s per case on" in result.output


def test_missing_sequence_runs_and_is_reported(tiny_phantom, tiny_run, tmp_path):
    src = _first_case(tiny_phantom)
    case = tmp_path / "cases" / src.name
    shutil.copytree(src, case)
    (case / f"{src.name}-t2w.nii.gz").unlink()
    out = tmp_path / "pred"
    summary = Predictor("cpu").load(tiny_run).predict_folder(tmp_path / "cases", out, progress=False)
    assert summary["predicted"] == [src.name]
    record = json.loads((out / f"{src.name}.json").read_text())
    assert record["sequences_missing"] == ["t2w"]
    assert "t2w" not in record["sequences_present"]


def test_sequences_option_and_skipping_finished_cases(tiny_phantom, tiny_run, tmp_path):
    out = tmp_path / "pred"
    predictor = Predictor("cpu", sequences=["t1c", "t2f"]).load(tiny_run)
    first = predictor.predict_folder(tiny_phantom, out, progress=False)
    assert len(first["predicted"]) == len(discover_cases(tiny_phantom))
    record = json.loads((out / f"{first['predicted'][0]}.json").read_text())
    assert record["sequences_present"] == ["t1c", "t2f"]
    again = predictor.predict_folder(tiny_phantom, out, progress=False)
    assert again["predicted"] == [] and len(again["skipped"]) == len(first["predicted"])
    redo = predictor.predict_folder(tiny_phantom, out, overwrite=True, progress=False)
    assert len(redo["predicted"]) == len(first["predicted"])


def test_other_orientation_maps_back_to_input_geometry(tiny_phantom, tiny_run, tmp_path):
    """A case stored LPS (flipped axes) still gets its segmentation in its own voxel grid."""
    src = _first_case(tiny_phantom)
    case = tmp_path / "lps" / src.name
    case.mkdir(parents=True)
    for key in (*SEQUENCES, "seg"):
        img = nib.load(src / f"{src.name}-{key}.nii.gz")
        data = np.asarray(img.dataobj)[::-1, ::-1, :]
        shape = np.array(data.shape)
        aff = img.affine @ np.array([[-1, 0, 0, shape[0] - 1], [0, -1, 0, shape[1] - 1], [0, 0, 1, 0], [0, 0, 0, 1]])
        assert nib.aff2axcodes(aff) == ("L", "P", "S")
        nib.save(nib.Nifti1Image(np.ascontiguousarray(data), aff), case / f"{src.name}-{key}.nii.gz")
    out_ras, out_lps = tmp_path / "ras", tmp_path / "lps_pred"
    predictor = Predictor("cpu").load(tiny_run)
    predictor.predict_folder(src.parent, out_ras, progress=False)
    predictor.predict_folder(case.parent, out_lps, progress=False)
    ras = np.asarray(nib.load(out_ras / f"{src.name}_seg.nii.gz").dataobj)
    lps_img = nib.load(out_lps / f"{src.name}_seg.nii.gz")
    assert nib.aff2axcodes(lps_img.affine) == ("L", "P", "S")
    np.testing.assert_array_equal(np.asarray(lps_img.dataobj)[::-1, ::-1, :], ras)


def test_bad_model_path_is_one_clear_line(tiny_phantom, tmp_path):
    result = runner.invoke(app, ["predict", "-i", str(tiny_phantom), "-o", str(tmp_path / "p"), "-m",
                                 str(tmp_path / "nope"), "--no-progress"])
    assert result.exit_code == 2
    assert "checkpoint not found" in result.output
    assert not (tmp_path / "p").exists()


def _voxelwise_segmentation(predictor: Predictor) -> Predictor:
    """Give the loaded network a fixed voxel-wise segmentation head, so that the labels depend on each voxel's
    normalised intensities only (a one-epoch network's labels also depend on the field of view, through its
    instance normalisation, which would hide the geometry under test)."""
    torch.manual_seed(0)
    head = torch.nn.Conv3d(len(SEQUENCES), 5, kernel_size=1)
    forward = predictor.model.forward
    predictor.model.forward = lambda x, present=None: {**forward(x, present), "seg": head(x)}
    return predictor


def test_fast_and_slow_paths_give_the_same_labels(tiny_phantom, tiny_run, tmp_path):
    """Cropping to the head (fast path) and running the whole volume in windows (slow path) must place the same
    labels: the crop, the padding, the windows and the mapping back to the input geometry are what differ."""
    cases = discover_cases(tiny_phantom)[:2]
    fast = _voxelwise_segmentation(Predictor("cpu").load(tiny_run))
    slow = _voxelwise_segmentation(Predictor("cpu", crop=False, overlap=0.5).load(tiny_run))
    for case in cases:
        fast.predict_case(case, tmp_path / "fast")
        slow.predict_case(case, tmp_path / "slow")
        a = np.asarray(nib.load(tmp_path / "fast" / f"{case.case_id}_seg.nii.gz").dataobj)
        b = np.asarray(nib.load(tmp_path / "slow" / f"{case.case_id}_seg.nii.gz").dataobj)
        assert a.shape == b.shape
        # outside the head the fast path writes background without running the network; compare the head
        head = np.asarray(nib.load(case.images["t1c"]).dataobj) > 0
        assert len(np.unique(a[head])) > 2  # the stub segments: agreement is not all-background
        assert (a[head] == b[head]).mean() > 0.95


def test_whole_volume_factor_of_the_run_decides_one_pass_or_windows(tiny_phantom, tiny_run, tmp_path, monkeypatch):
    import gliomics.inference.engine as engine

    calls = []
    real = engine.sliding_window_inference
    monkeypatch.setattr(engine, "sliding_window_inference", lambda *a, **k: calls.append(1) or real(*a, **k))
    case = discover_cases(_first_case(tiny_phantom))[0]
    predictor = Predictor("cpu").load(tiny_run)
    roi = predictor.config.train.patch_size
    predictor.config.inference.whole_volume_factor = 1e-3  # every volume is larger than that: sliding windows
    predictor.predict_case(case, tmp_path / "windows")
    assert calls, f"expected sliding windows with patch {roi}"
    calls.clear()
    predictor.config.inference.whole_volume_factor = 1e6  # any volume fits: one pass
    predictor.predict_case(case, tmp_path / "whole")
    assert not calls


def test_labels_below_the_runs_minimum_volume_are_suppressed(tiny_phantom, tiny_run, tmp_path):
    case = discover_cases(tiny_phantom)[0]
    kept = _voxelwise_segmentation(Predictor("cpu", label_minimums=False, component_minimums=False).load(tiny_run))
    kept.fitted = kept.fitted.model_copy(update={"min_label_mm3": {"ET": 1e12}})
    record = kept.predict_case(case, tmp_path / "kept").record
    assert "postprocessing" not in record
    seg = np.asarray(nib.load(tmp_path / "kept" / f"{case.case_id}_seg.nii.gz").dataobj)
    assert (seg == 3).any()

    suppressed = _voxelwise_segmentation(Predictor("cpu", component_minimums=False).load(tiny_run))
    # as if fitted on validation: any ET is too small
    suppressed.fitted = suppressed.fitted.model_copy(update={"min_label_mm3": {"ET": 1e12}})
    record = suppressed.predict_case(case, tmp_path / "suppressed").record
    assert record["postprocessing"] == {"min_label_volume_ml": {"ET": 1e9}, "suppressed": ["ET"]}
    assert record["volumes_ml"]["ET"] == 0.0
    out = np.asarray(nib.load(tmp_path / "suppressed" / f"{case.case_id}_seg.nii.gz").dataobj)
    assert not (out == 3).any()
    # the ET voxels took other labels; the rest of the map is as before
    assert np.array_equal(out[seg != 3], seg[seg != 3])
    assert (out[seg == 3] > 0).mean() > 0.5


def test_components_below_the_runs_minimum_are_relabelled(tiny_phantom, tiny_run, tmp_path):
    case = discover_cases(tiny_phantom)[0]
    kept = _voxelwise_segmentation(Predictor("cpu", component_minimums=False).load(tiny_run))
    kept.fitted = kept.fitted.model_copy(update={"min_component_mm3": {"ET": 1e12}})
    record = kept.predict_case(case, tmp_path / "kept").record
    assert "components_relabelled" not in record.get("postprocessing", {})
    seg = np.asarray(nib.load(tmp_path / "kept" / f"{case.case_id}_seg.nii.gz").dataobj)
    assert (seg == 3).any()

    relabelled = _voxelwise_segmentation(Predictor("cpu", label_minimums=False).load(tiny_run))
    # as if fitted on validation: every ET component is too small
    relabelled.fitted = relabelled.fitted.model_copy(update={"min_component_mm3": {"ET": 1e12}})
    record = relabelled.predict_case(case, tmp_path / "relabelled").record
    assert record["postprocessing"]["min_component_volume_ml"] == {"ET": 1e9}
    assert record["postprocessing"]["components_relabelled"]["ET"] >= 1
    out = np.asarray(nib.load(tmp_path / "relabelled" / f"{case.case_id}_seg.nii.gz").dataobj)
    assert not (out == 3).any() and np.array_equal(out[seg != 3], seg[seg != 3])


def _drawn_segmentation(predictor: Predictor, draw) -> Predictor:
    """Make the loaded network segment a fixed drawing in its input grid, in one pass over the whole volume:
    ``draw(logits, centre)`` paints class logits (batch × 5 × spatial, background 1 everywhere)."""
    forward = predictor.model.forward

    def drawn(x, present=None):
        out = forward(x, present)
        logits = torch.zeros(x.shape[0], 5, *x.shape[2:])
        logits[:, 0] = 1.0
        draw(logits, [s // 2 for s in x.shape[2:]])
        return {**out, "seg": logits}

    predictor.model.forward = drawn
    predictor.config.inference.whole_volume_factor = 1e6  # one pass over the whole volume: one drawing
    return predictor


def _two_cavities(logits, c) -> None:
    """Oedema in the middle, a cavity against it, and a second cavity apart from it."""
    logits[:, 2, c[0] - 3:c[0] + 3, c[1] - 3:c[1] + 3, c[2] - 3:c[2] + 3] = 5.0
    logits[:, 4, c[0] + 3:c[0] + 6, c[1] - 2:c[1] + 2, c[2] - 2:c[2] + 2] = 5.0
    logits[:, 4, c[0] - 12:c[0] - 8, c[1] - 12:c[1] - 8, c[2] - 2:c[2] + 2] = 5.0


def test_cavities_apart_from_the_tumour_are_relabelled(tiny_phantom, tiny_run, tmp_path):
    case = discover_cases(tiny_phantom)[0]
    kept = _drawn_segmentation(Predictor("cpu", label_minimums=False, component_minimums=False,
                                         detached_cavities=False).load(tiny_run), _two_cavities)
    assert "postprocessing" not in kept.predict_case(case, tmp_path / "kept").record
    seg = np.asarray(nib.load(tmp_path / "kept" / f"{case.case_id}_seg.nii.gz").dataobj)

    rule = _drawn_segmentation(Predictor("cpu", label_minimums=False, component_minimums=False).load(tiny_run),
                               _two_cavities)
    record = rule.predict_case(case, tmp_path / "rule").record
    assert record["postprocessing"]["detached_cavities_relabelled"] == 1
    out = np.asarray(nib.load(tmp_path / "rule" / f"{case.case_id}_seg.nii.gz").dataobj)
    assert 0 < (out == 4).sum() < (seg == 4).sum() and np.array_equal(out[seg != 4], seg[seg != 4])
    assert set(np.unique(out[seg == 4])) == {0, 4} and (out == 2).sum() == (seg == 2).sum()

    result = runner.invoke(app, ["predict", "-i", str(case.images["t1c"].parent), "-o", str(tmp_path / "cli"), "-m",
                                 str(tiny_run), "--device", "cpu", "--no-progress", "--keep-detached-cavities"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cli" / f"{case.case_id}.json").is_file()


def test_the_component_minimums_hold_after_a_label_is_suppressed(tiny_phantom, tiny_run, tmp_path):
    # a small ET blob apart from the tumour, NETC its runner-up: suppressing ET leaves a NETC fragment below the
    # NETC minimum, which then goes to its next label other than ET
    def blob_apart(logits, c):
        logits[:, 2, c[0] - 4:c[0] + 4, c[1] - 4:c[1] + 4, c[2] - 4:c[2] + 4] = 5.0
        logits[:, 1, c[0] - 2:c[0] + 2, c[1] - 2:c[1] + 2, c[2] - 2:c[2] + 2] = 6.0
        blob = (slice(None), slice(c[0] - 12, c[0] - 10), slice(c[1] - 12, c[1] - 10), slice(c[2] - 1, c[2] + 1))
        logits[(blob[0], 3, *blob[1:])] = 5.0
        logits[(blob[0], 1, *blob[1:])] = 4.0
        logits[(blob[0], 0, *blob[1:])] = 3.0

    case = discover_cases(tiny_phantom)[0]
    predictor = _drawn_segmentation(Predictor("cpu").load(tiny_run), blob_apart)
    predictor.fitted = predictor.fitted.model_copy(update={"min_label_mm3": {"ET": 1e12}})
    netc = 4 * float(np.prod(predictor.config.data.working_spacing)) * 5
    predictor.fitted = predictor.fitted.model_copy(update={"min_component_mm3": {"NETC": netc}})
    record = predictor.predict_case(case, tmp_path).record
    assert record["postprocessing"]["suppressed"] == ["ET"]
    assert record["postprocessing"]["components_relabelled"] == {"NETC": 1}
    seg = np.asarray(nib.load(tmp_path / f"{case.case_id}_seg.nii.gz").dataobj)
    assert (seg == 1).any() and not (seg == 3).any()
    lab, n = ndimage.label(seg == 1, np.ones((3, 3, 3), bool))
    assert n == 1  # the fragment went to background, its next label other than the suppressed ET


def test_sequences_option_takes_aliases_and_refuses_unknown_names(tiny_phantom, tiny_run, tmp_path):
    src = _first_case(tiny_phantom)
    out = tmp_path / "pred"
    result = runner.invoke(app, ["predict", "-i", str(src), "-o", str(out), "-m", str(tiny_run), "--device", "cpu",
                                 "--no-progress", "--sequences", "T1ce, FLAIR"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / f"{src.name}.json").read_text())["sequences_present"] == ["t1c", "t2f"]
    bad = tmp_path / "bad"
    result = runner.invoke(app, ["predict", "-i", str(src), "-o", str(bad), "-m", str(tiny_run), "--device", "cpu",
                                 "--no-progress", "--sequences", "t1c,dwi"])
    assert result.exit_code == 2 and "dwi" in result.output
    assert not bad.exists()


def _case_at_half_the_spacing(src, root):
    """A copy of a 4 mm case whose header says 2 mm: the network's 4 mm grid then holds half its voxels per axis."""
    case = root / src.name
    case.mkdir(parents=True)
    for path in src.glob("*.nii.gz"):
        img = nib.load(path)
        affine = img.affine.copy()
        affine[:3, :3] /= 2.0
        nib.save(nib.Nifti1Image(np.asarray(img.dataobj), affine), case / path.name)
    return discover_cases(root)[0]


def test_probabilities_are_resampled_to_the_input_grid_before_the_argmax(tiny_phantom, tiny_run, tmp_path):
    """Where the input's voxels are finer than the network's, the labels written are the argmax of the class
    probabilities resampled to the input grid (smooth borders), not the network grid's labels copied by nearest
    neighbour (``--nearest-labels``); on the network's own grid both ways write the same labels."""
    fine = _case_at_half_the_spacing(_first_case(tiny_phantom), tmp_path / "fine")
    off = {"label_minimums": False, "component_minimums": False, "detached_cavities": False,
           "min_component_mm3": 0.0, "save_probabilities": True}
    soft_predictor = _voxelwise_segmentation(Predictor("cpu", **off).load(tiny_run))
    nearest_predictor = _voxelwise_segmentation(Predictor("cpu", resample_probabilities=False, **off).load(tiny_run))
    soft, nearest = soft_predictor.predict(fine), nearest_predictor.predict(fine)
    assert soft.seg.shape == nearest.seg.shape == nib.load(fine.images["t1c"]).shape
    assert len(np.unique(soft.seg)) > 2
    np.testing.assert_array_equal(soft.seg, soft.probabilities.argmax(-1))
    assert not np.array_equal(nearest.seg, soft.seg)

    same_grid = discover_cases(tiny_phantom)[0]
    np.testing.assert_array_equal(soft_predictor.predict(same_grid).seg, nearest_predictor.predict(same_grid).seg)


def test_nearest_labels_option_of_predict(tiny_phantom, tiny_run, tmp_path):
    fine = _case_at_half_the_spacing(_first_case(tiny_phantom), tmp_path / "fine")
    outs = {}
    for name, flags in {"soft": [], "nearest": ["--nearest-labels"]}.items():
        result = runner.invoke(app, ["predict", "-i", str(tmp_path / "fine"), "-o", str(tmp_path / name), "-m",
                                     str(tiny_run), "--device", "cpu", "--no-progress", *flags])
        assert result.exit_code == 0, result.output
        outs[name] = np.asarray(nib.load(tmp_path / name / f"{fine.case_id}_seg.nii.gz").dataobj)
    assert outs["soft"].shape == outs["nearest"].shape
    assert not np.array_equal(outs["soft"], outs["nearest"])
