"""The trainer end to end on a tiny phantom cohort: checkpoints, log, resume, determinism, DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from gliomics.models.registry import model_defaults
from gliomics.training.checkpoint import load_checkpoint
from gliomics.training.trainer import run_training
from gliomics_testing import TINY_OVERRIDES, tiny_config


def _rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_training_writes_run_folder_and_loss_decreases(tiny_phantom, tmp_path):
    run = tmp_path / "run"
    summary = run_training(tiny_config("train.lr=0.005"), data=tiny_phantom, markers=tiny_phantom / "markers.csv",
                           out=run, epochs=4, device="cpu", progress=False)
    for name in ("best.pt", "last.pt", "config.yaml", "splits.json", "metrics.csv", "metrics.jsonl",
                 "train_summary.json"):
        assert (run / name).is_file(), name
    rows = _rows(run)
    assert [r["epoch"] for r in rows] == [0, 1, 2, 3]
    assert rows[-1]["train_seg"] < rows[0]["train_seg"]
    assert "val_dice_ET" in rows[0] and "val_score" in rows[0]
    state = load_checkpoint(run / "best.pt")
    assert state["config"]["model"]["name"] == "mgmtnet_cpu"
    # every hyperparameter is recorded, so the run does not depend on the preset's defaults staying the same
    params = state["config"]["model"]["params"]
    assert set(params) == set(model_defaults("mgmtnet_cpu"))
    assert params["feature_size"] == 4 and params["window_size"] == model_defaults("mgmtnet_cpu")["window_size"]
    assert state["config"]["data"]["spacing"] == [4.0, 4.0, 4.0]  # unset: the cohort's median voxel size
    assert set(state["thresholds"]) <= {"idh", "codel_1p19q", "tert"}
    assert set(state["min_label_mm3"]) <= {"NETC", "SNFH", "ET", "RC"}
    assert summary["epochs_run"] == 4
    splits = json.loads((run / "splits.json").read_text())
    assert not set(splits["train"]) & set(splits["val"])


def test_resume_continues_at_the_next_epoch_with_optimizer_state(tiny_phantom, tmp_path):
    run = tmp_path / "run"
    cfg = tiny_config()
    run_training(cfg, data=tiny_phantom, markers=tiny_phantom / "markers.csv", out=run, epochs=1, device="cpu",
                 progress=False)
    first = load_checkpoint(run / "last.pt")
    steps = int(first["optimizer"]["state"][0]["step"])
    run_training(cfg, data=tiny_phantom, markers=tiny_phantom / "markers.csv", out=run, epochs=2, resume=True,
                 device="cpu", progress=False)
    second = load_checkpoint(run / "last.pt")
    assert second["epoch"] == 1
    assert int(second["optimizer"]["state"][0]["step"]) == 2 * steps
    assert [r["epoch"] for r in _rows(run)] == [0, 1]


def test_same_seed_gives_same_metrics(tiny_phantom, tmp_path):
    def losses(name):
        run = tmp_path / name
        run_training(tiny_config(), data=tiny_phantom, markers=tiny_phantom / "markers.csv", out=run, epochs=1,
                     device="cpu", progress=False)
        return {k: v for k, v in _rows(run)[0].items() if "seconds" not in k}

    assert losses("a") == losses("b")


def test_resume_without_checkpoint_is_a_clear_error(tiny_phantom, tmp_path):
    from gliomics.errors import CheckpointError

    with pytest.raises(CheckpointError, match="nothing to resume"):
        run_training(tiny_config(), data=tiny_phantom, markers=tiny_phantom / "markers.csv", out=tmp_path / "x",
                     resume=True, device="cpu", progress=False)


def test_torchrun_two_processes_on_cpu(tiny_phantom, tmp_path):
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29531",
           "-m", "gliomics.train", "--data", str(tiny_phantom), "--markers", str(tiny_phantom / "markers.csv"),
           "--out", str(run), "--epochs", "1", "--device", "cpu", "--no-progress"]
    for item in TINY_OVERRIDES:
        cmd += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    state = load_checkpoint(run / "last.pt")
    from gliomics.models.registry import create_model

    model = create_model(state["config"]["model"]["name"], **state["config"]["model"]["params"])
    model.load_state_dict(state["model"])  # rank 0 wrote an unwrapped state dict
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_split_seed_fixes_the_split_across_training_seeds(tiny_phantom, tmp_path):
    def split(seed):
        run = tmp_path / f"s{seed}"
        run_training(tiny_config("data.split_seed=5", f"train.seed={seed}"), data=tiny_phantom,
                     markers=tiny_phantom / "markers.csv", out=run, epochs=1, device="cpu", progress=False)
        return json.loads((run / "splits.json").read_text())

    a, b = split(0), split(1)
    assert a["train"] == b["train"] and a["val"] == b["val"]
    assert a["settings"]["seed"] == 5


def test_time_budget_ends_with_one_validated_last_epoch(tiny_phantom, tmp_path):
    run = tmp_path / "run"
    summary = run_training(tiny_config(), data=tiny_phantom, markers=tiny_phantom / "markers.csv", out=run,
                           minutes=0.01, device="cpu", progress=False)
    rows = _rows(run)
    assert summary["stop_reason"] == "time budget"
    assert summary["epochs_run"] == len(rows) == 1  # the budget is spent by the first epoch: it is the last
    assert "val_score" in rows[-1]


@pytest.mark.slow  # a SwinUNETR epoch at 64^3: 30-70 s on 2 cores
def test_validation_pads_volumes_to_what_the_model_takes(tiny_phantom, tmp_path):
    # SwinUNETR takes multiples of 32: the 4 mm brains (about 40x48x40) must be padded for it, not to 16
    from gliomics.config import apply_overrides, load_preset

    cfg = apply_overrides(load_preset("mgmtnet_cpu"), [
        "model.name=swinunetr", "model.params.feature_size=12", "model.params.depths=[1,1,1,1]",
        "model.params.num_heads=[1,1,1,1]", "train.patch_size=[64,64,64]", "train.batch_size=1",
        "train.whole_volume_factor=8", "data.val_fraction=0.25"])
    summary = run_training(cfg, data=tiny_phantom, markers=tiny_phantom / "markers.csv", out=tmp_path / "run",
                           epochs=1, device="cpu", progress=False)
    assert "dice_mean" in summary["val"]
