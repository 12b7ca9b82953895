"""The per-case report: self-contained HTML with the JSON's numbers and the caveat, Grad-CAM maps, clear errors."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from html import escape

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from gliomics.cli.main import app
from gliomics.constants import MARKER_NAMES, MARKERS
from gliomics.inference.explanation_maps import compute_case_maps
from gliomics.inference.predictor import Predictor
from gliomics.inference.who import CATEGORIES, INDETERMINATE
from gliomics.io import discover_cases
from gliomics.io.cases import Case
from gliomics.report.case_report import CAVEAT, build_case_html, preprocess_qc_png
from gliomics.runtime.checkpoint import load_checkpoint, save_checkpoint

runner = CliRunner()
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


def _images(html: str) -> list[str]:
    return re.findall(r"""<img[^>]*\ssrc="([^"]*)\"""", html)


def test_predict_report_is_self_contained_with_the_json_numbers(predicted_with_report, report_case,
                                                                 identifying_text):
    cid = report_case.name
    html = (predicted_with_report / f"{cid}.html").read_text(encoding="utf-8")
    record = json.loads((predicted_with_report / f"{cid}.json").read_text())

    assert not EXTERNAL.search(html), "the report must not load anything from the network"
    assert "<script" not in html and "<link" not in html
    images = _images(html)
    assert len(images) == 4  # overlay, CMAF, pooling, Grad-CAM
    for src in images:
        assert src.startswith("data:image/png;base64,")
        png = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert png.format == "PNG" and min(png.size) > 100

    assert escape(CAVEAT) in html and "not a diagnosis" in html
    for m in MARKERS:
        assert f"{record['markers'][m]['probability']:.4f}" in html
        assert f"{record['markers'][m]['threshold']:.4f}" in html
    for region, ml in record["volumes_ml"].items():
        assert re.search(rf"<td>{region}</td><td class=\"num\">{ml:.3f}</td>", html)
    who = record["who_cns5"]
    assert who["category"] in (*CATEGORIES.values(), INDETERMINATE)
    assert escape(who["category"]) in html and escape(who["caveat"]) in html
    assert who["band"] == 0.1
    assert "Grad-CAM" in html and "CMAF" in html

    # nothing identifying: no header text, no input paths
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]*", "", html)
    assert identifying_text not in text and "Doe" not in text
    assert str(report_case) not in text and str(report_case.parent) not in text


def test_report_escapes_text():
    record = {"case_id": "<script>alert(1)</script>", "markers": {m: {"probability": 0.7, "threshold": 0.5}
                                                                   for m in MARKERS}}
    html = build_case_html(record)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Research tool, not a diagnosis" in html


def test_the_preprocessing_qc_picture_is_embedded_when_the_case_has_one(tmp_path):
    folder = tmp_path / "C1"
    (folder / "preprocess").mkdir(parents=True)
    case = Case("C1", {"t1c": folder / "C1-t1c.nii.gz", "t2f": folder / "C1-t2f.nii.gz"})
    assert preprocess_qc_png(case) is None
    qc = folder / "preprocess" / "qc.png"
    Image.new("RGB", (30, 20), "green").save(qc)
    assert preprocess_qc_png(case) == qc
    record = {"case_id": "C1", "markers": {m: {"probability": 0.7, "threshold": 0.5} for m in MARKERS}}
    html = build_case_html(record, qc_png=qc)
    images = _images(html)
    assert len(images) == 1 and base64.b64decode(images[0].split(",", 1)[1]) == qc.read_bytes()
    assert "Preprocessing quality control" in html and str(folder) not in html
    assert _images(build_case_html(record)) == []


def test_case_maps_live_in_the_image_grid(tiny_run, report_case):
    predictor = Predictor("cpu", precision="fp32").load(tiny_run)
    inference = predictor.config.inference.model_copy(update={"whole_volume_factor": 0.5})  # a window, not whole
    predictor.config = predictor.config.model_copy(update={"inference": inference})
    case = discover_cases(report_case)[0]
    maps = compute_case_maps(predictor, case)
    spatial = maps.image.shape[1:]
    assert maps.seg is not None and maps.seg.shape == spatial
    assert set(maps.gradcam) == set(MARKERS) and maps.gradcam_layer == "encoder_fusion"
    inside = np.zeros(spatial, dtype=bool)
    inside[maps.window] = True
    assert not inside.all()
    for cam in maps.gradcam.values():
        assert cam.shape == spatial
        assert np.isfinite(cam[inside]).all() and np.isnan(cam[~inside]).all()
        assert 0.0 <= np.nanmin(cam) and np.nanmax(cam) <= 1.0 + 1e-6
    alpha = maps.alpha[(slice(None), *maps.window)]
    np.testing.assert_allclose(alpha.sum(0), 1.0, atol=1e-4)
    assert np.nanmax(maps.pool_weights) == pytest.approx(1.0)
    assert set(maps.window_markers) == set(MARKERS)
    assert all(0.0 <= p <= 1.0 for p in maps.window_markers.values())


def test_a_head_explained_whole_takes_the_predictions_own_pass(tiny_run, report_case):
    # the run's whole-volume factor decides, as in prediction: a head that the predictor segments in one pass is
    # explained by that same pass, so the report's CMAF weights are the prediction's
    predictor = Predictor("cpu", precision="fp32").load(tiny_run)
    inference = predictor.config.inference.model_copy(update={"whole_volume_factor": 100.0})
    predictor.config = predictor.config.model_copy(update={"inference": inference})
    case = discover_cases(report_case)[0]
    prediction = predictor.predict(case)
    maps = compute_case_maps(predictor, case, prediction)
    assert maps.window == tuple(slice(0, s) for s in maps.image.shape[1:])
    assert maps.from_prediction and maps.window_markers == {}
    np.testing.assert_array_equal(maps.alpha, prediction.alpha.numpy())


def test_report_command_writes_one_case(predicted_with_report, report_case, tiny_run, tmp_path):
    out = tmp_path / "sub" / "custom.html"
    result = runner.invoke(app, ["report", str(predicted_with_report / f"{report_case.name}.json"), "-i",
                                 str(report_case), "-m", str(tiny_run), "--device", "cpu", "-o", str(out),
                                 "--who-band", "0.45"])
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert report_case.name in html and "±0.45" in html
    # the report's marker table is the prediction's: every probability as the record holds it
    record = json.loads((predicted_with_report / f"{report_case.name}.json").read_text())
    table = html[html.index('<table id="markers">'):]
    table = table[: table.index("</table>")]
    for m in MARKERS:
        assert f'<td>{MARKER_NAMES[m]}</td><td class="num">{record["markers"][m]["probability"]:.4f}</td>' in table


def _assert_one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("gliomics: error:"), result.output
    for f in fragments:
        assert f in lines[0]


def test_report_on_missing_or_incomplete_predictions_is_one_line(predicted_with_report, report_case, tiny_run,
                                                                  tmp_path):
    cid = report_case.name
    args = ["-i", str(report_case), "-m", str(tiny_run), "--device", "cpu"]
    _assert_one_line_error(runner.invoke(app, ["report", str(tmp_path / "nope"), *args]), "not found")

    empty = tmp_path / "empty"
    empty.mkdir()
    _assert_one_line_error(runner.invoke(app, ["report", str(empty), *args]), "no <case>.json")

    no_seg = tmp_path / "no_seg"
    no_seg.mkdir()
    shutil.copy(predicted_with_report / f"{cid}.json", no_seg)
    _assert_one_line_error(runner.invoke(app, ["report", str(no_seg), *args]), "segmentation missing")

    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(predicted_with_report / f"{cid}_seg.nii.gz", broken)
    (broken / f"{cid}.json").write_text('{"case_id": "' + cid + '", "markers": ')
    _assert_one_line_error(runner.invoke(app, ["report", str(broken), *args]), "not valid JSON")

    _assert_one_line_error(runner.invoke(app, ["report", str(predicted_with_report)]), "--input", "--model")
    _assert_one_line_error(runner.invoke(app, ["report", str(predicted_with_report), *args, "--case", "OTHER"]),
                           "OTHER")
    for folder in (empty, no_seg, broken):
        assert not [p for p in folder.iterdir() if p.suffix == ".html" or ".tmp" in p.name]


def test_with_a_marker_readout_the_explained_pass_gives_the_readouts_probabilities(tiny_run, report_case, tmp_path):
    from gliomics.inference.marker_readout import fit_marker_readout
    from gliomics.inference.tumour_features import FEATURE_NAMES
    from gliomics.runtime.fitted import update_fitted

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, len(FEATURE_NAMES)))
    y = np.stack([x[:, 0] > 0, x[:, 1] > 0, x[:, 2] > 0], 1).astype(float)
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    update_fitted(run, marker_readout=fit_marker_readout(x, y).to_dict())
    case = discover_cases(report_case)[0]
    maps = {}
    for readout in (True, False):
        predictor = Predictor("cpu", precision="fp32", marker_readout=readout).load(run)
        inference = predictor.config.inference.model_copy(update={"whole_volume_factor": 0.5})  # a window pass
        predictor.config = predictor.config.model_copy(update={"inference": inference})
        prediction = predictor.predict(case)
        assert prediction.record["markers_from"] == ("readout" if readout else "network heads")
        maps[readout] = compute_case_maps(predictor, case, prediction)
        assert not maps[readout].from_prediction
    assert any(abs(maps[True].window_markers[m] - maps[False].window_markers[m]) > 1e-3 for m in MARKERS)


def test_an_ensembles_maps_are_its_members_mean(tiny_run, report_case, tmp_path):
    """Two fold runs: the report's Grad-CAM is the mean of the members' maps (scaled to [0, 1]), not fold 0's."""
    import torch

    from gliomics.inference.explanation_maps import grad_cam

    folder = tmp_path / "ensemble"
    for k in range(2):
        shutil.copytree(tiny_run, folder / f"fold_{k}")
    state = load_checkpoint(folder / "fold_1" / "best.pt")
    generator = torch.Generator().manual_seed(0)
    state["model"] = {k: v + 0.05 * torch.randn(v.shape, generator=generator) if v.is_floating_point() else v
                      for k, v in state["model"].items()}
    save_checkpoint(state, folder / "fold_1" / "best.pt")
    ensemble = Predictor("cpu", precision="fp32").load(folder)
    case = discover_cases(report_case)[0]
    maps = compute_case_maps(ensemble, case)
    x = maps.image[(None, slice(None), *maps.window)]
    x, flags = torch.from_numpy(x), torch.tensor([maps.present])
    for m in MARKERS:
        cams = [grad_cam(module, x, flags, m, module.encoder_fusion)[0, 0].numpy() for module in ensemble.modules]
        mean = (cams[0] + cams[1]) / 2
        np.testing.assert_allclose(maps.gradcam[m][maps.window], mean / mean.max(), atol=1e-5)
        assert not np.allclose(cams[0], cams[1], atol=1e-3)


def test_a_report_from_the_prediction_in_memory_reads_nothing_and_runs_only_grad_cam(tiny_run, report_case, tmp_path,
                                                                                      monkeypatch):
    import gliomics.data.transforms as transforms
    from gliomics.report.case_report import write_case_report

    predictor = Predictor("cpu", tta=True, precision="fp32").load(tiny_run)
    inference = predictor.config.inference.model_copy(update={"whole_volume_factor": 100.0})  # one pass, whole
    predictor.config = predictor.config.model_copy(update={"inference": inference})
    case = discover_cases(report_case)[0]
    prediction = predictor.predict_case(case, tmp_path)

    calls = []
    handle = predictor.model.register_forward_hook(lambda *_: calls.append(1))
    monkeypatch.setattr(transforms, "inference_transforms", lambda **_: pytest.fail("the case was read again"))
    try:
        path = write_case_report(case, tmp_path, predictor, prediction)
        maps = compute_case_maps(predictor, case, prediction)
    finally:
        handle.remove()
    assert len(calls) == 2 * len(MARKERS)  # one Grad-CAM pass per marker, per call; no other forward pass
    assert maps.from_prediction and maps.window_markers == {}
    np.testing.assert_array_equal(maps.alpha, prediction.alpha.numpy())  # the prediction's own CMAF weights
    np.testing.assert_array_equal(maps.seg, prediction.labels.numpy())
    html = path.read_text(encoding="utf-8")
    record = json.loads((tmp_path / f"{case.case_id}.json").read_text())
    assert record["markers"] == prediction.record["markers"]
    for m in MARKERS:  # the report's marker probabilities are the prediction's
        assert f"{record['markers'][m]['probability']:.4f}" in html
    assert "The CMAF and pooling maps are the prediction" in html and len(_images(html)) == 4
