"""A cohort predicted by the parts of a job array and by torchrun ranks: the union equals one process's run, no case
is predicted twice, a re-queued part resumes, and the summary is written once."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from gliomics.cli.main import app
from gliomics.io import discover_cases
from gliomics.io.predictions import record_paths
from gliomics.runtime.hardware import usable_cores

runner = CliRunner()


def _predict(tiny_run, data, out, *extra):
    # fp32: bf16 sums differ between thread counts by ~1e-3, which the comparisons below would see
    result = runner.invoke(app, ["predict", "-i", str(data), "-o", str(out), "-m", str(tiny_run), "--device", "cpu",
                                 "--no-progress", "--precision", "fp32", *extra])
    return result


@pytest.fixture(scope="module")
def single(tiny_run, tiny_phantom, tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    result = _predict(tiny_run, tiny_phantom, out)
    assert result.exit_code == 0, result.output
    return out


def _records(folder):
    return {p.stem: json.loads(p.read_text()) for p in record_paths(folder)}


def test_three_parts_cover_every_case_once_and_equal_one_run(tiny_run, tiny_phantom, single, tmp_path):
    out = tmp_path / "parts"
    predicted = []
    for k in range(3):
        result = _predict(tiny_run, tiny_phantom, out, "--num-parts", "3", "--part-id", str(k))
        assert result.exit_code == 0, result.output
        summary = json.loads((out / f"predict_summary_part{k}of3.json").read_text())
        predicted += summary["parts"][0]["predicted"]
    assert sorted(predicted) == sorted(c.case_id for c in discover_cases(tiny_phantom))
    assert len(predicted) == len(set(predicted))
    ref, got = _records(single), _records(out)
    assert set(ref) == set(got)
    for cid in ref:
        assert got[cid]["markers"]["idh"]["probability"] == pytest.approx(ref[cid]["markers"]["idh"]["probability"])
        assert got[cid]["volumes_ml"] == ref[cid]["volumes_ml"]
    # a re-queued part skips what it finished
    result = _predict(tiny_run, tiny_phantom, out, "--num-parts", "3", "--part-id", "1")
    assert result.exit_code == 0 and "predicted 0 cases (part 1 of 3)" in result.output
    # the summaries are not mistaken for case records
    assert not any(p.name.startswith("predict_summary") for p in record_paths(out))


def test_a_part_out_of_range_is_one_clear_error(tiny_run, tiny_phantom, tmp_path):
    result = _predict(tiny_run, tiny_phantom, tmp_path / "x", "--num-parts", "2", "--part-id", "2")
    assert result.exit_code == 2 and "--part-id 2" in result.output
    assert not (tmp_path / "x").exists()


def test_torchrun_two_ranks_predict_the_union_of_one_run(tiny_run, tiny_phantom, single, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
           "-m", "gliomics.predict", "-i", str(tiny_phantom), "-o", str(out), "-m", str(tiny_run), "--device", "cpu",
           "--no-progress", "--precision", "fp32"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ,
                                                                                   "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "predict_summary.json").read_text())
    assert summary["ranks"] == 2 and len(summary["parts"]) == 2
    per_rank = [set(p["predicted"]) for p in summary["parts"]]
    assert per_rank[0] and per_rank[1] and not per_rank[0] & per_rank[1]
    assert per_rank[0] | per_rank[1] == set(_records(single))
    # each rank gets its share of the cores
    assert [p["hardware"]["threads"] for p in summary["parts"]] == [max(1, usable_cores() // 2)] * 2
    ref, got = _records(single), _records(out)
    for cid in ref:
        # one thread per rank against two in one process: fp32 sums in another order, then rounded to 4 decimals
        assert got[cid]["markers"]["tert"]["probability"] == pytest.approx(ref[cid]["markers"]["tert"]["probability"],
                                                                          abs=2e-4)
    assert result.stdout.count("predicted 8 cases") == 1  # rank 0 reports once


def test_threads_option_fixes_the_cpu_threads(tiny_run, tiny_phantom, tmp_path, monkeypatch):
    import torch

    import gliomics.runtime.hardware as hardware

    monkeypatch.setattr(hardware, "free_cores", lambda: 2.0)  # without --threads: 2 threads where 2 cores are usable
    before = torch.get_num_threads()
    try:
        case = next(p for p in sorted(tiny_phantom.iterdir()) if p.is_dir())
        result = _predict(tiny_run, case, tmp_path / "one", "--threads", "1")
        assert result.exit_code == 0, result.output
        assert [r["hardware"]["threads"] for r in _records(tmp_path / "one").values()] == [1]
    finally:
        torch.set_num_threads(before)
