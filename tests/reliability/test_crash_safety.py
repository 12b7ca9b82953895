"""Crash safety (issue #10): a real ``gliomics`` process killed with SIGKILL mid-run, then resumed.

Training resumes with ``--resume`` from the last complete checkpoint (model, optimizer, scheduler and RNG states);
prediction resumes without redoing or touching finished cases. Temporary files a kill leaves behind are hidden and
never count as outputs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from reliability_battery import TEMP_NAME, write_markers
from typer.testing import CliRunner

from gliomics.cli.main import app
from gliomics.io.predictions import record_paths
from gliomics.runtime.checkpoint import load_checkpoint
from gliomics_testing import TINY_OVERRIDES, make_brats_case

GLIOMICS = Path(sys.executable).with_name("gliomics")
TINY = [arg for override in TINY_OVERRIDES for arg in ("--set", override)]


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _kill_when(args: list[str], ready: Callable[[], bool], log: Path, timeout: float = 300.0) -> int:
    """Start ``gliomics ARGS``, SIGKILL it as soon as ``ready()`` holds; returns the killed process id."""
    with log.open("w") as err:
        proc = subprocess.Popen([str(GLIOMICS), *args], stdout=subprocess.DEVNULL, stderr=err,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + timeout
        try:
            while not ready():
                if proc.poll() is not None:
                    pytest.fail(f"gliomics exited ({proc.returncode}) before it could be killed:\n{log.read_text()}")
                if time.monotonic() > deadline:
                    pytest.fail(f"gliomics did not reach the kill point in {timeout:.0f} s:\n{log.read_text()}")
                time.sleep(0.01)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return proc.pid


def _visible(folder: Path) -> set[str]:
    """Files that count as outputs: temporary files are hidden (a leading dot)."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")}


def _temps(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if TEMP_NAME.search(p.name)]


def _epochs(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow  # a training process of its own: 20–40 s on a shared 2-core machine
def test_training_killed_mid_run_resumes_from_the_last_checkpoint(tmp_path):
    data = tmp_path / "cohort"
    ids = [f"CASE-{i:03d}-000" for i in range(4)]
    for i, cid in enumerate(ids):
        make_brats_case(data, cid, seed=i)
    write_markers(data / "markers.csv", [(cid, i % 2, (i + 1) % 2, i % 2) for i, cid in enumerate(ids)])
    run = tmp_path / "run"
    args = ["train", "--data", str(data), "--markers", str(data / "markers.csv"), "--out", str(run), "--device", "cpu",
            "--no-progress", *TINY]

    pid = _kill_when([*args, "--epochs", "200"], lambda: (run / "last.pt").is_file(), tmp_path / "train.log")

    state = load_checkpoint(run / "last.pt")  # complete and loadable despite the kill
    killed_at = int(state["epoch"])
    assert {"optimizer", "scheduler", "rng", "model"} <= set(state)
    assert load_checkpoint(run / "best.pt")["epoch"] <= killed_at
    before = {row["epoch"]: row for row in _epochs(run)}
    assert set(range(killed_at + 1)) <= set(before)  # every checkpointed epoch has its metrics row
    assert {p.name for p in _temps(run)} <= {f".{n}.tmp-{pid}" for n in ("last.pt", "best.pt", "metrics.jsonl",
                                                                      "metrics.csv")}
    assert "train_summary.json" not in _visible(run)

    total = killed_at + 3
    result = CliRunner().invoke(app, [*args, "--resume", "--epochs", str(total)])
    assert result.exit_code == 0, result.output

    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["epochs_run"] == total
    rows = _epochs(run)
    assert [row["epoch"] for row in rows] == list(range(total))  # each epoch once: nothing redone twice, none lost
    for epoch in range(killed_at + 1):  # epochs of the killed run are kept, not trained again
        assert rows[epoch] == before[epoch]
    assert rows[killed_at + 1]["elapsed_seconds"] > rows[killed_at]["elapsed_seconds"]
    assert int(load_checkpoint(run / "last.pt")["epoch"]) == total - 1
    assert not _temps(run) or all(str(pid) in p.name for p in _temps(run))  # only the killed process's leftovers
    assert {"config.yaml", "splits.json", "best.pt", "last.pt", "metrics.jsonl", "metrics.csv",
            "validation_predictions.json", "train_summary.json"} == _visible(run)


@pytest.mark.slow  # a prediction process of its own (imports alone take ~10 s): 20–40 s on a shared 2-core machine
def test_prediction_killed_mid_folder_resumes_without_redoing_finished_cases(tiny_phantom, tiny_run, tmp_path):
    cases = tmp_path / "cases"
    ids = sorted(p.name for p in tiny_phantom.iterdir() if p.is_dir())[:3]
    for cid in ids:
        shutil.copytree(tiny_phantom / cid, cases / cid)
    out = tmp_path / "pred"
    args = ["predict", "-i", str(cases), "-o", str(out), "-m", str(tiny_run), "--device", "cpu", "--no-progress"]

    _kill_when(args, lambda: out.is_dir() and any(out.glob("*.json")), tmp_path / "predict.log")

    finished = sorted(p.stem for p in record_paths(out))
    assert finished and len(finished) < len(ids), "the kill came after the last case: nothing left to resume"
    kept = {}
    for cid in finished:
        for name in (f"{cid}.json", f"{cid}_seg.nii.gz"):
            kept[name] = ((out / name).read_bytes(), (out / name).stat().st_mtime_ns)

    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"skipped {len(finished)} already done" in result.stdout

    for name, (data, mtime) in kept.items():  # finished cases were neither redone nor touched
        assert (out / name).read_bytes() == data and (out / name).stat().st_mtime_ns == mtime, name
    assert _visible(out) == {f"{cid}{suffix}" for cid in ids for suffix in (".json", "_seg.nii.gz")} | {
        "predict_summary.json"}
    for cid in ids:
        record = json.loads((out / f"{cid}.json").read_text())
        assert record["case_id"] == cid
        seg = nib.load(out / f"{cid}_seg.nii.gz")
        assert seg.shape == nib.load(cases / cid / f"{cid}-t1c.nii.gz").shape
        assert set(np.unique(np.asarray(seg.dataobj))) <= {0, 1, 2, 3, 4}

    # downstream, leftovers of the kill are not predictions
    result = CliRunner().invoke(app, ["evaluate", "--pred", str(out), "--ref", str(cases), "-o",
                                      str(tmp_path / "eval"), "--n-boot", "100"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "eval" / "summary.json").read_text())["cases"] == len(ids)
