"""``benchmarks/gpu/gpu_check.sh --cpu-smoke``: the GPU check's every step, tiny, on the CPU."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # ten gliomics processes and a two-rank torchrun: 2–6 min on a shared 2-core machine
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_gpu_check_cpu_smoke_runs_every_step_and_reports(tmp_path):
    out = tmp_path / "check"
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu" / "gpu_check.sh"), "--cpu-smoke", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    res = json.loads((out / "gpu_check.json").read_text())
    assert res["settings"]["mode"] == "cpu-smoke"
    for key in ("train_1", "train_2"):
        assert res[key]["steps_run"] == 4 and res[key]["steps_per_s"] > 0, key
        assert res[key]["peak_gpu_memory_gib"] is None  # on a CPU
    assert res["train_2"]["world_size"] == 2
    assert res["model_step"]["seconds_per_step"] > 0
    assert res["predict_accel"]["cases"] == 2 and res["predict_cpu"]["cases"] == 1
    assert res["predict_accel"]["hardware"]["precision"] == "bf16"
    assert res["predict_cpu"]["hardware"]["precision"] == "fp32"
    agreement = res["agreement"]
    assert agreement["cases"] == 1 and 0.0 <= agreement["mean_dice_four_labels"] <= 1.0
    assert 0.0 <= agreement["max_marker_probability_raw_diff"] <= 1.0
    table = (out / "gpu_check.md").read_text()
    assert "| step | figure |" in table and table in result.stdout

    again = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu" / "gpu_check.sh"), "--cpu-smoke", str(out)],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "not empty" in again.stderr
