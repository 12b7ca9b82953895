"""The ONNX engine: `gliomics export-onnx`, `predict --engine onnx` and the onnxruntime network in the forward passes.

The export of the tiny run takes about a minute on two cores (``torch.export``, decompositions, graph optimisation),
so the tests that need it are slow; a toy network exported in seconds covers the engine in the default run.
"""

from __future__ import annotations

import json
import shutil
import sys

import nibabel as nib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

from gliomics.cli.main import app
from gliomics.constants import MARKERS, SEQUENCES
from gliomics.inference.engine import forward_volume, forward_with_tta
from gliomics.labels import dice_per_region

runner = CliRunner()
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def _error_lines(result) -> list[str]:
    return [line for line in (result.stderr or "").splitlines() if line.strip()]


class ToyNet(nn.Module):
    """A network with MGMT-Net's inputs and outputs, exported in seconds: a shared embedding, CMAF-like weights
    over the present sequences, a segmentation head, pooled marker logits."""

    size_divisor = 4
    in_channels = len(SEQUENCES)

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Conv3d(1, 3, 3, padding=1)
        self.attention = nn.Conv3d(3 * self.in_channels, self.in_channels, 1)
        self.seg = nn.Conv3d(3, 5, 3, padding=1)
        self.head = nn.Linear(3, len(MARKERS))

    def forward(self, x: torch.Tensor, present: torch.Tensor | None = None) -> dict:
        b, s, *spatial = x.shape
        present = torch.ones(b, s, dtype=torch.bool) if present is None else present.bool()
        mask = present.view(b, s, 1, 1, 1)
        x = torch.where(mask, x, torch.zeros_like(x))
        feats = self.embed(x.reshape(b * s, 1, *spatial)).view(b, s, 3, *spatial)
        alpha = self.attention(feats.flatten(1, 2)).masked_fill(~mask, float("-inf")).softmax(1)
        fused = (alpha.unsqueeze(2) * feats).sum(1)
        pooled = F.avg_pool3d(fused, 4)
        weights = pooled.mean(1, keepdim=True).flatten(2).softmax(-1).view(b, 1, *pooled.shape[2:])
        logits = self.head((weights * pooled).flatten(2).sum(-1))
        return {"seg": self.seg(fused), "deep_supervision": [], "alpha": alpha, "pool_weights": weights,
                "markers": {m: logits[:, i] for i, m in enumerate(MARKERS)}}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    from gliomics.inference.onnx_engine import OnnxNetwork, export_network

    torch.manual_seed(0)
    model = ToyNet().eval()
    path = tmp_path_factory.mktemp("toy") / "toy.onnx"
    result = export_network(model, path)
    assert result["outputs"] == ["seg", *MARKERS, "alpha", "pool_weights"]
    assert len(result["checked"]) == 2 and all(c["max_difference"] < 1e-4 for c in result["checked"])
    return model, OnnxNetwork(path, threads=1)


def _assert_same(a: dict, b: dict, atol: float = 1e-4) -> None:
    torch.testing.assert_close(b["probs"], a["probs"], atol=atol, rtol=0)
    torch.testing.assert_close(b["alpha"], a["alpha"], atol=atol, rtol=0)
    for m in MARKERS:
        torch.testing.assert_close(torch.sigmoid(b["markers"][m]), torch.sigmoid(a["markers"][m]), atol=atol, rtol=0)


def test_onnx_network_runs_the_forward_passes_as_torch(toy):
    """One pass with flip TTA (a batch of two) and sliding windows, at sizes other than the export's, one sequence
    missing: the graph gives the network's probabilities, CMAF weights and marker logits."""
    model, network = toy
    torch.manual_seed(1)
    present = torch.tensor([[True, True, False, True]])
    for spatial, kwargs in (((24, 16, 32), {"roi_size": (16, 16, 16), "whole_volume_factor": 8.0}),
                            ((40, 32, 24), {"roi_size": (16, 16, 16), "whole_volume_factor": 1.5,
                                            "sw_batch_size": 2})):
        image = torch.randn(1, len(SEQUENCES), *spatial)
        _assert_same(forward_with_tta(model, image, present, flip_axes=(0,), **kwargs),
                     forward_with_tta(network, image, present, flip_axes=(0,), **kwargs))
        _assert_same(forward_volume(model, image, present, **kwargs), forward_volume(network, image, present,
                                                                                      **kwargs))
    assert network.hardware()["engine"].startswith("onnxruntime ") and network.hardware()["threads"] == 1


def test_onnx_network_refuses_sizes_outside_the_graph(toy):
    from gliomics.errors import InputError

    _, network = toy
    with pytest.raises(InputError, match="multiples of 8"):
        network(torch.zeros(1, 4, 8, 8, 12), torch.ones(1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="at least one present sequence"):
        network(torch.zeros(1, 4, 8, 8, 8), torch.zeros(1, 4, dtype=torch.bool))


def test_export_onnx_bad_path_is_one_line(tmp_path):
    missing = tmp_path / "no_run"
    result = runner.invoke(app, ["export-onnx", str(missing)])
    assert result.exit_code == 2, result.output
    lines = _error_lines(result)
    assert len(lines) == 1 and str(missing) in lines[0], lines
    result = runner.invoke(app, ["export-onnx", str(tmp_path)])  # a folder without a checkpoint
    assert result.exit_code == 2 and len(_error_lines(result)) == 1
    assert str(tmp_path / "best.pt") in result.stderr and "not found" in result.stderr


def test_engine_onnx_without_export_is_one_line(tiny_phantom, tiny_run, tmp_path):
    out = tmp_path / "pred"
    result = runner.invoke(app, ["predict", "-i", str(tiny_phantom), "-o", str(out), "-m", str(tiny_run),
                                 "--engine", "onnx", "--no-progress"])
    assert result.exit_code == 2, result.output
    lines = _error_lines(result)
    assert len(lines) == 1 and str(tiny_run / "model.onnx") in lines[0] and "export-onnx" in lines[0], lines
    assert not out.exists() or not list(out.glob("*.json"))


def test_engine_onnx_without_onnxruntime_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime raises ImportError
    result = runner.invoke(app, ["predict", "-i", str(tmp_path), "-o", str(tmp_path / "p"), "-m", str(tmp_path),
                                 "--engine", "onnx", "--no-progress"])
    assert result.exit_code == 2, result.output
    assert _error_lines(result) == ["gliomics: error: onnxruntime is not installed: pip install 'gliomics[onnx]'"]
    result = runner.invoke(app, ["predict", "-i", str(tmp_path), "-o", str(tmp_path / "p"), "-m", str(tmp_path),
                                 "--engine", "tensorrt", "--no-progress"])
    assert result.exit_code == 2 and "--engine" in result.stderr and "torch, onnx" in result.stderr


# --- the tiny run, exported (slow: about a minute for the export) ------------------------------------------------


@pytest.fixture(scope="module")
def exported_run(tiny_run, tmp_path_factory):
    """A copy of the tiny run with its network exported by `gliomics export-onnx` (model.onnx in the run)."""
    run = tmp_path_factory.mktemp("onnx") / "run"
    shutil.copytree(tiny_run, run)
    result = runner.invoke(app, ["export-onnx", str(run)])
    assert result.exit_code == 0, result.output
    assert (run / "model.onnx").is_file() and "largest difference" in result.output
    return run


def _cases(tiny_phantom, root, n_per_site: int = 2):
    """The first cases of each site of the tiny cohort, copied under ``root``."""
    folders = sorted(p for p in tiny_phantom.iterdir() if p.is_dir())
    for site in {p.name.split("-")[1] for p in folders}:
        for folder in [p for p in folders if p.name.split("-")[1] == site][:n_per_site]:
            shutil.copytree(folder, root / folder.name)
    return root


@pytest.mark.slow
def test_predict_with_both_engines_agrees(tiny_phantom, exported_run, tmp_path):
    """`predict --engine onnx` on the tiny cohort (sliding windows): the label maps of the torch engine (fp32) with
    Dice ≥ 0.99 in every region, marker probabilities within 1e-3, and a record that names the engine."""
    cases = _cases(tiny_phantom, tmp_path / "cases")
    outs = {}
    for engine in ("torch", "onnx"):
        outs[engine] = tmp_path / engine
        result = runner.invoke(app, ["predict", "-i", str(cases), "-o", str(outs[engine]), "-m", str(exported_run),
                                     "--device", "cpu", "--precision", "fp32", "--engine", engine, "--no-progress"])
        assert result.exit_code == 0, result.output
    ids = sorted(p.name for p in cases.iterdir())
    for cid in ids:
        seg = {e: np.asarray(nib.load(outs[e] / f"{cid}_seg.nii.gz").dataobj) for e in outs}
        assert min(dice_per_region(seg["onnx"], seg["torch"]).values()) >= 0.99, cid
        rec = {e: json.loads((outs[e] / f"{cid}.json").read_text()) for e in outs}
        for m in MARKERS:
            assert abs(rec["onnx"]["markers"][m]["probability_raw"]
                       - rec["torch"]["markers"][m]["probability_raw"]) <= 1e-3, (cid, m)
        hw = rec["onnx"]["hardware"]
        assert hw["engine"].startswith("onnxruntime") and hw["precision"] == "fp32" and hw["device"] == "cpu"
        assert rec["torch"]["hardware"]["engine"] == "torch"


@pytest.mark.slow
def test_engines_agree_at_another_size_and_in_an_ensemble(tiny_phantom, exported_run, tmp_path):
    """The whole volume in one pass with flip TTA (a batch of two, a size the export never saw), and a folder of two
    fold runs (their ensemble): the onnxruntime outputs are the torch network's."""
    from gliomics.inference.predictor import Predictor
    from gliomics.io import discover_cases

    case = discover_cases(tiny_phantom)[0]
    folds = tmp_path / "cv"
    for k in range(2):
        shutil.copytree(exported_run, folds / f"fold_{k}")
    for source in (exported_run, folds):
        res = {}
        for engine in ("torch", "onnx"):
            predictor = Predictor("cpu", tta=True, precision="fp32", engine=engine).load(source)
            predictor.config.inference.whole_volume_factor = 1e6  # one pass over the whole volume
            data, res[engine] = predictor.forward(case)
        assert res["onnx"]["probs"].shape[2:] == data["image"].shape[1:]
        assert data["image"].shape[1:] != tuple(predictor.config.train.patch_size)
        assert len(predictor.members) == (2 if source == folds else 1)
        assert float((res["onnx"]["probs"] - res["torch"]["probs"]).abs().max()) < 1e-3
        assert float((res["onnx"]["alpha"] - res["torch"]["alpha"]).abs().max()) < 1e-3
        for m in MARKERS:
            probs = {e: float(torch.sigmoid(res[e]["markers"][m]).flatten()[0]) for e in res}
            assert abs(probs["onnx"] - probs["torch"]) < 1e-3, m


@pytest.mark.slow
def test_export_of_changed_weights_is_refused(exported_run, tmp_path):
    from gliomics.runtime.checkpoint import load_checkpoint, save_checkpoint

    run = tmp_path / "run"
    shutil.copytree(exported_run, run)
    state = load_checkpoint(run / "best.pt")
    key = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][key] = state["model"][key] + 0.1
    save_checkpoint(state, run / "best.pt")
    result = runner.invoke(app, ["predict", "-i", str(tmp_path), "-o", str(tmp_path / "p"), "-m", str(run),
                                 "--engine", "onnx", "--no-progress"])
    assert result.exit_code == 2, result.output
    lines = _error_lines(result)
    assert len(lines) == 1 and "other weights" in lines[0] and f"gliomics export-onnx {run}" in lines[0], lines
