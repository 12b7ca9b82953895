"""``gliomics package-model`` and the shipped model: a run made into a package folder that predicts alone, with a
model card that carries the measured results; ``pretrained`` resolves to it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from gliomics.cli.main import app
from gliomics.errors import CheckpointError
from gliomics.inference import pretrained
from gliomics.inference.predictor import Predictor
from gliomics.runtime.checkpoint import load_checkpoint
from gliomics.runtime.fitted import read_fitted

runner = CliRunner()


def _evaluation(folder: Path, dice: float) -> Path:
    """An evaluation summary of 4 cases: WT, TC and ET at ``dice``; RC in no reference (Dice 1 by the empty rule)."""
    folder.mkdir(parents=True)
    stats = {"mean": dice, "lo": dice - 0.1, "hi": dice + 0.05, "n": 4}
    segmentation = {r: {"dice": stats, "lesion_dice": stats, "sensitivity": stats} for r in ("WT", "TC", "ET")}
    empty = {"mean": 1.0, "lo": 1.0, "hi": 1.0, "n": 4}
    segmentation["RC"] = {"dice": empty, "lesion_dice": empty, "sensitivity": None}
    (folder / "summary.json").write_text(json.dumps({"cases": 4, "segmentation": segmentation}))
    return folder


def test_package_model_writes_a_folder_that_predicts_with_its_card(tiny_run, tiny_phantom, tmp_path, monkeypatch):
    real = _evaluation(tmp_path / "ev_real", 0.8)
    out = tmp_path / "pkg" / "glioma_test"
    result = runner.invoke(app, ["package-model", "-m", str(tiny_run), "-o", str(out), "--name", "glioma_test",
                                 "-e", f"real cases={real}=4 manual references"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["MODEL_CARD.md", "best.pt", "config.yaml", "fitted.json",
                                                      "model_card.json"]
    state = load_checkpoint(out / "best.pt")
    assert sorted(state) == ["best_score", "config", "epoch", "model", "pos_weight", "val_metrics"]
    assert read_fitted(out) == read_fitted(tiny_run)
    card = json.loads((out / "model_card.json").read_text())
    assert card["name"] == "glioma_test" and card["markers"]["validated_on_real_patients"] is False
    assert card["results"]["real cases"]["regions"]["WT"]["dice"]["mean"] == 0.8
    assert card["results"]["real cases"]["source"] == "4 manual references"
    assert "epochs" in card["training"]["budget"] and card["intended_use"]
    assert card["limitations"].startswith("Trained on phantoms only") and card["training"]["started_from"] is None
    text = (out / "MODEL_CARD.md").read_text()
    assert "| WT | 0.800 [0.700, 0.850] | 0.800 [0.700, 0.850] |" in text
    assert "| RC | – (in no reference) | – |" in text and "| RC | 1.000" not in text
    assert card["results"]["real cases"]["regions"]["RC"]["in_no_reference"] is True

    # the shipped model is what `pretrained` (and predict without -m) loads
    monkeypatch.setattr(pretrained, "pretrained_dir", lambda name=pretrained.PRETRAINED_NAME: out)
    predictor = Predictor("cpu").load("pretrained")
    original = Predictor("cpu").load(tiny_run)
    for a, b in zip(predictor.model.state_dict().values(), original.model.state_dict().values()):
        assert torch.equal(a, b)
    pred = tmp_path / "pred"
    result = runner.invoke(app, ["predict", "-i", str(tiny_phantom), "-o", str(pred), "--device", "cpu",
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    assert len(list(pred.glob("*_seg.nii.gz"))) == 8


def test_a_missing_shipped_model_and_a_bad_evaluation_are_one_clear_line(tiny_run, tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "pretrained_dir", lambda name=pretrained.PRETRAINED_NAME: tmp_path / "none")
    with pytest.raises(CheckpointError, match=r"none: this installation has no pretrained model; .*make pretrained"):
        pretrained.resolve_model(None)
    assert pretrained.resolve_model(tmp_path / "run") == tmp_path / "run"
    result = runner.invoke(app, ["package-model", "-m", str(tiny_run), "-o", str(tmp_path / "pkg"),
                                 "-e", "no-equals-sign"])
    assert result.exit_code == 2 and "expected NAME=FOLDER=SOURCE" in result.output
    result = runner.invoke(app, ["package-model", "-m", str(tiny_run), "-o", str(tmp_path / "pkg"),
                                 "-e", f"x={tmp_path / 'nothing'}=y"])
    assert result.exit_code == 2 and "summary.json: not found" in result.output
    assert not (tmp_path / "pkg").exists()
