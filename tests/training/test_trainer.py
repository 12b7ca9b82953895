"""The trainer end to end on a tiny phantom cohort: checkpoints, log, resume, determinism, DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from gliomics.models.registry import model_defaults
from gliomics.runtime.checkpoint import load_checkpoint
from gliomics.runtime.fitted import read_fitted
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
    assert state["config"]["data"]["working_spacing"] == [4.0, 4.0, 4.0]  # unset: the cohort's median voxel size
    fitted = read_fitted(run)  # apart from the weights, in fitted.json
    assert not {"thresholds", "min_label_mm3", "min_component_mm3", "calibration"} & set(state)
    assert set(fitted.thresholds) == {"idh", "codel_1p19q", "tert"}
    assert all(0.0 < t < 1.0 for t in fitted.thresholds.values()), fitted.thresholds
    assert set(fitted.min_label_mm3) <= {"NETC", "SNFH", "ET", "RC"}
    assert set(fitted.min_component_mm3) <= {"NETC", "SNFH", "ET", "RC"} and "min_component_mm3" in summary
    assert fitted.thresholds == summary["thresholds"] and fitted.min_label_mm3 == summary["min_label_mm3"]
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
                     device="cpu", progress=False, threads=1)  # the same threads: the same sums
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
    from gliomics.presets import apply_overrides, load_preset

    cfg = apply_overrides(load_preset("mgmtnet_cpu"), [
        "model.name=swinunetr", "model.params.feature_size=12", "model.params.depths=[1,1,1,1]",
        "model.params.num_heads=[1,1,1,1]", "train.patch_size=[64,64,64]", "train.batch_size=1",
        "inference.whole_volume_factor=8", "data.val_fraction=0.25"])
    summary = run_training(cfg, data=tiny_phantom, markers=tiny_phantom / "markers.csv", out=tmp_path / "run",
                           epochs=1, device="cpu", progress=False)
    assert "dice_mean" in summary["val"]


def _train_steps(tiny_phantom, run, steps, threads, monkeypatch):
    before = torch.get_num_threads()
    try:
        summary = run_training(tiny_config(), data=tiny_phantom, markers=tiny_phantom / "markers.csv", out=run,
                               steps=steps, device="cpu", precision="fp32", progress=False, threads=threads)
        assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)
    return summary


def _flat(run):
    state = load_checkpoint(run / "last.pt")["model"]
    return state, torch.cat([v.float().flatten() for v in state.values() if v.is_floating_point()])


def test_step_budget_gives_the_same_steps_and_weights_with_one_and_two_threads(tiny_phantom, tmp_path, monkeypatch):
    # 6 training cases in batches of 2: 3 steps per epoch, so 4 steps end inside the second epoch
    runs = {name: tmp_path / name for name in ("t1a", "t1b", "t2")}
    summaries = {name: _train_steps(tiny_phantom, run, 4, 1 if name.startswith("t1") else 2, monkeypatch)
                 for name, run in runs.items()}
    _train_steps(tiny_phantom, tmp_path / "three", 3, 1, monkeypatch)
    for name, run in runs.items():
        assert summaries[name]["steps_run"] == 4 and summaries[name]["stop_reason"] == "steps"
        state = load_checkpoint(run / "last.pt")
        assert int(state["optimizer"]["state"][0]["step"]) == 4
        rows = _rows(run)
        assert [r["steps_in_epoch"] for r in rows] == [3, 1]
        assert "val_score" in rows[-1]  # the budget's last (partial) epoch is validated
        # the cosine schedule is fitted to the 4 steps: it has reached its end
        assert rows[-1]["lr"] == pytest.approx(tiny_config().train.lr * 0.01, rel=1e-3)
    # the same seed and thread count: identical weights, bit for bit
    a, flat_a = _flat(runs["t1a"])
    b, _ = _flat(runs["t1b"])
    assert all(torch.equal(a[k], b[k]) for k in a)
    # another thread count sums in another order: the same model up to floating-point differences. (The largest are
    # in the biases of convolutions followed by instance norm, whose exact gradient is zero, so that AdamW turns
    # rounding noise into steps of the learning rate's size.)
    _, flat_c = _flat(runs["t2"])
    _, flat_three = _flat(tmp_path / "three")
    threads_apart = float((flat_a - flat_c).norm())
    one_step_apart = float((flat_a - flat_three).norm())  # what one optimizer step more or less changes
    assert threads_apart < 0.5 * one_step_apart, (threads_apart, one_step_apart)
    assert [r["lr"] for r in _rows(runs["t1a"])] == [r["lr"] for r in _rows(runs["t2"])]


def test_summary_records_time_per_epoch_and_step_with_the_machine(tiny_phantom, tmp_path):
    summary = run_training(tiny_config(), data=tiny_phantom, markers=tiny_phantom / "markers.csv",
                           out=tmp_path / "run", epochs=2, device="cpu", precision="fp32", progress=False)
    assert summary["seconds_per_epoch"] > 0 and 0 < summary["seconds_per_step"] < summary["seconds_per_epoch"]
    hw = summary["hardware"]
    assert hw["precision"] == "fp32" and hw["device"] == "cpu" and hw["cpu"] and hw["threads"] >= 1
    written = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert written["hardware"] == hw and written["steps_run"] == 2 * 3
    assert written["peak_gpu_memory_gib"] is None  # recorded on a GPU only


def test_bf16_trains_one_epoch_and_predicts(tiny_phantom, tmp_path):
    from gliomics.inference.predictor import Predictor
    from gliomics.io import discover_cases

    run = tmp_path / "run"
    summary = run_training(tiny_config(), data=tiny_phantom, markers=tiny_phantom / "markers.csv", out=run,
                           epochs=1, device="cpu", precision="bf16", progress=False)
    assert summary["hardware"]["precision"] == "bf16"
    assert all(torch.isfinite(v).all() for v in load_checkpoint(run / "last.pt")["model"].values())
    case = discover_cases(tiny_phantom)[0]
    record = Predictor("cpu", precision="bf16").load(run).predict_case(case, tmp_path / "pred").record
    assert record["hardware"]["precision"] == "bf16"
    assert (tmp_path / "pred" / f"{case.case_id}_seg.nii.gz").is_file()
    assert all(0.0 <= v["probability"] <= 1.0 for v in record["markers"].values())
    assert record["timings"]["total_s"] >= record["timings"]["network_s"] > 0
