"""Checkpoints (atomic save, weights_only load, RNG state) and the metrics log."""

from __future__ import annotations

import csv
import json
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from gliomics.errors import CheckpointError, GliomicsError
from gliomics.runtime.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from gliomics.training.metrics_log import MetricsLog


class SomeClass:
    """A custom object: pickling it into a checkpoint makes the file unsafe to load."""

    value = 3


def _state() -> dict:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv3d(2, 3, 3), torch.nn.BatchNorm3d(3))
    return {
        "model": model.state_dict(),
        "config": {"name": "tiny", "lr": 1e-3, "patch": [16, 16, 16], "nested": {"flag": True, "none": None}},
        "epoch": 4,
        "best_score": 0.75,
        "rng": rng_state(),
    }


def _only(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------- save / load


def test_round_trip(tmp_path: Path) -> None:
    state = _state()
    path = save_checkpoint(state, tmp_path / "run" / "last.pt")
    assert path == tmp_path / "run" / "last.pt"
    assert _only(path.parent) == ["last.pt"]  # no temporary file left behind
    loaded = load_checkpoint(path)
    assert loaded["config"] == state["config"]
    assert loaded["epoch"] == 4 and loaded["best_score"] == 0.75
    assert list(loaded["model"]) == list(state["model"])
    for key, tensor in state["model"].items():
        assert torch.equal(loaded["model"][key], tensor), key
    model = torch.nn.Sequential(torch.nn.Conv3d(2, 3, 3), torch.nn.BatchNorm3d(3))
    model.load_state_dict(loaded["model"])
    torch.testing.assert_close(loaded["rng"]["torch"], state["rng"]["torch"])


def test_save_overwrites_atomically(tmp_path: Path) -> None:
    path = tmp_path / "best.pt"
    save_checkpoint({"model": {}, "config": {"v": 1}}, path)
    save_checkpoint({"model": {}, "config": {"v": 2}}, path)
    assert load_checkpoint(path)["config"] == {"v": 2}
    assert _only(tmp_path) == ["best.pt"]


def test_save_failure_leaves_no_temp_file(tmp_path: Path) -> None:
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        save_checkpoint({"model": {}, "config": {}, "bad": lambda: None}, tmp_path / "x.pt")
    assert _only(tmp_path) == []


def test_refuses_pickled_objects(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "config": {}, "x": SomeClass()}, path)
    with pytest.raises(CheckpointError, match="pickled objects") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("keep", [0.5, 0.9, 10, 0])
def test_truncated_file_is_corrupt(tmp_path: Path, keep: float) -> None:
    good = save_checkpoint(_state(), tmp_path / "good.pt")
    data = good.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: int(len(data) * keep) if keep < 1 else int(keep)])
    with pytest.raises(CheckpointError, match="corrupt") as info:
        load_checkpoint(cut)
    assert str(cut) in str(info.value)


def test_text_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.pt"
    path.write_text("hello world not a checkpoint")
    with pytest.raises(CheckpointError, match=str(path)):
        load_checkpoint(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "absent.pt")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path)  # a folder is not a checkpoint either


@pytest.mark.parametrize("state", [{"model": {}}, {"config": {}}, {"weights": torch.ones(2)}, [1, 2], torch.ones(3)])
def test_not_a_gliomics_checkpoint(tmp_path: Path, state: object) -> None:
    path = tmp_path / "other.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="expected keys 'model' and 'config'"):
        load_checkpoint(path)


def test_checkpoint_error_is_a_gliomics_error() -> None:
    assert issubclass(CheckpointError, GliomicsError)


# ---------------------------------------------------------------- RNG state


def _draws() -> tuple[list[float], np.ndarray, torch.Tensor]:
    return ([random.random(), random.gauss(0, 1), random.randint(0, 10**9)],
            np.r_[np.random.rand(3), np.random.standard_normal(3)],
            torch.rand(5))


@pytest.mark.parametrize("through_file", [False, True])
def test_rng_state_restores_every_stream(tmp_path: Path, through_file: bool) -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    # leave a cached Gaussian in Python's and NumPy's generators: it is part of their state
    random.gauss(0, 1)
    np.random.standard_normal()
    state = rng_state()
    if through_file:
        save_checkpoint({"model": {}, "config": {}, "rng": state}, tmp_path / "rng.pt")
        state = load_checkpoint(tmp_path / "rng.pt")["rng"]
    first = _draws()
    _draws()  # move every stream on
    set_rng_state(state)
    second = _draws()
    assert first[0] == second[0]
    np.testing.assert_array_equal(first[1], second[1])
    assert torch.equal(first[2], second[2])


# ---------------------------------------------------------------- MetricsLog


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_metrics_log_append(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path)
    assert log.rows() == []
    log.append({"epoch": 0, "loss": 1.23456789, "dice": 0.5})
    log.append({"epoch": 1, "loss": 0.9, "dice": 0.6, "auc_idh": 0.7})  # a new column appears
    rows = log.rows()
    assert rows == [{"epoch": 0, "loss": 1.234568, "dice": 0.5}, {"epoch": 1, "loss": 0.9, "dice": 0.6, "auc_idh": 0.7}]
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == rows
    table = _csv_rows(tmp_path / "metrics.csv")
    assert list(table[0]) == ["epoch", "loss", "dice", "auc_idh"]
    assert [r["epoch"] for r in table] == ["0", "1"]
    assert table[0]["auc_idh"] == "" and table[1]["auc_idh"] == "0.7"
    assert _only(tmp_path) == ["metrics.csv", "metrics.jsonl"]  # no temporary files


def test_metrics_log_resume_replaces_later_rows(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path)
    for epoch in range(4):
        log.append({"epoch": epoch, "loss": 1.0 / (epoch + 1)})
    # a run resumed from the checkpoint of epoch 1 repeats epoch 2: rows 2 and 3 are dropped
    log.append({"epoch": 2, "loss": 0.25})
    assert [(r["epoch"], r["loss"]) for r in log.rows()] == [(0, 1.0), (1, 0.5), (2, 0.25)]
    assert [r["epoch"] for r in _csv_rows(tmp_path / "metrics.csv")] == ["0", "1", "2"]
    # a fresh MetricsLog on the same folder (a new process) sees the same rows
    assert MetricsLog(tmp_path).rows() == log.rows()


def test_metrics_log_skips_corrupt_trailing_line(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path)
    log.append({"epoch": 0, "loss": 1.0})
    log.append({"epoch": 1, "loss": 0.5})
    with (tmp_path / "metrics.jsonl").open("a") as fh:
        fh.write('{"epoch": 2, "lo')  # cut by a kill mid-write
    assert [r["epoch"] for r in log.rows()] == [0, 1]
    log.append({"epoch": 2, "loss": 0.4})
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [0, 1, 2]
    assert [r["epoch"] for r in _csv_rows(tmp_path / "metrics.csv")] == ["0", "1", "2"]
