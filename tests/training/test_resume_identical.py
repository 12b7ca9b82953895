"""A run killed with SIGKILL and resumed with ``--resume`` ends with the weights of the run that was never stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gliomics.runtime.checkpoint import load_checkpoint
from gliomics_testing import TINY_OVERRIDES

EPOCHS = 3
# augmentation on, so that the transforms' random state matters
AUGMENT = ["train.affine_prob=0.5", "train.contrast_prob=0.5", "train.blur_noise_prob=0.5", "train.elastic_prob=0.0"]


def _command(cohort: Path, run: Path, *extra: str) -> list[str]:
    sets = [a for item in [*TINY_OVERRIDES, *AUGMENT] for a in ("--set", item)]
    return [sys.executable, "-m", "gliomics.cli.main", "train", "-d", str(cohort), "-k", str(cohort / "markers.csv"),
            "-o", str(run), "--epochs", str(EPOCHS), "--device", "cpu", "--no-progress", "--seed", "7",
            "--threads", "1", *sets, *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "last.pt")["model"]


def _kill_when(proc: subprocess.Popen, ready, delay: float, timeout: float = 300.0) -> None:
    """SIGKILL ``proc`` ``delay`` seconds after ``ready()`` first holds."""
    start = time.monotonic()
    while not ready() and proc.poll() is None and time.monotonic() - start < timeout:
        time.sleep(0.02)
    time.sleep(delay)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.6], ids=["at-the-first-checkpoint", "into-the-second-epoch"])
def test_sigkill_then_resume_gives_the_weights_of_the_uninterrupted_run(tiny_phantom, tmp_path, delay):
    straight = tmp_path / "straight"
    subprocess.run(_command(tiny_phantom, straight), check=True, env=_env(), capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_command(tiny_phantom, killed), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _kill_when(proc, lambda: (killed / "last.pt").is_file(), delay)
    assert load_checkpoint(killed / "last.pt")["epoch"] < EPOCHS - 1
    done = subprocess.run(_command(tiny_phantom, killed, "--resume"), env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    a, b = _weights(straight), _weights(killed)
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} of {len(a)} tensors differ, e.g. {different[:3]}"
