"""No network at run time, provenance in every output JSON, and reproducibility (issue #10).

``phantom`` → ``train`` (one epoch, tiny) → ``predict`` → ``evaluate`` run in-process with every socket connection
and name lookup refused; a second run with the same seed and data on CPU must give identical metrics, weights,
marker probabilities and predicted labels.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from gliomics.cli.main import app
from gliomics.io.predictions import record_paths
from gliomics.runtime.checkpoint import load_checkpoint
from gliomics_testing import TINY_OVERRIDES

SEED = 7
TINY = [arg for override in TINY_OVERRIDES for arg in ("--set", override)]
#: Keys of the outputs that measure time, the only ones allowed to differ between two runs.
TIMING_KEYS = {"epoch_seconds", "elapsed_seconds", "timings", "seconds_per_epoch", "seconds_per_step"}


def _block_network(mp: pytest.MonkeyPatch) -> list[tuple]:
    """Make every outgoing connection and DNS lookup fail; returns the list of attempts."""
    attempts: list[tuple] = []

    def refuse(*args, **kwargs):
        attempts.append(args[1:] if args and isinstance(args[0], socket.socket) else args)
        raise OSError("network access is blocked in this test")

    for name in ("connect", "connect_ex", "sendto"):
        mp.setattr(socket.socket, name, refuse)
    for name in ("create_connection", "getaddrinfo", "gethostbyname"):
        mp.setattr(socket, name, refuse)
    return attempts


def _invoke(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, f"gliomics {' '.join(args)}\n{result.output}"
    return result.stdout


def _manifest(cohort: Path, n: int) -> Path:
    """A manifest of the first ``n`` cases (paths relative to it), so that prediction stays short."""
    from gliomics.constants import SEQUENCES

    path = cohort.parent / "test_cases.csv"
    ids = sorted(p.name for p in cohort.iterdir() if p.is_dir())[:n]
    rows = [",".join([cid, *(f"{cohort.name}/{cid}/{cid}-{s}.nii.gz" for s in (*SEQUENCES, "seg"))]) for cid in ids]
    path.write_text("\n".join(["case_id," + ",".join(SEQUENCES) + ",seg", *rows]) + "\n")
    return path


def _pipeline(root: Path, cohort: Path, name: str) -> dict[str, Path]:
    run, pred, evaluation = root / f"run{name}", root / f"pred{name}", root / f"eval{name}"
    cases = _manifest(cohort, 2)
    _invoke(["train", "--data", str(cohort), "--markers", str(cohort / "markers.csv"), "--out", str(run), "--epochs",
             "1", "--seed", str(SEED), "--device", "cpu", "--no-progress", *TINY])
    _invoke(["predict", "-i", str(cases), "-o", str(pred), "-m", str(run), "--device", "cpu", "--no-progress"])
    _invoke(["evaluate", "--pred", str(pred), "--ref", str(cases), "--markers", str(cohort / "markers.csv"), "-o",
             str(evaluation), "--n-boot", "200"])
    return {"run": run, "pred": pred, "eval": evaluation}


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    """The whole pipeline with the network blocked: the cohort, the outputs and the connection attempts."""
    import torch

    threads = torch.get_num_threads()
    root = tmp_path_factory.mktemp("offline")
    cohort = root / "cohort"
    with pytest.MonkeyPatch.context() as mp:
        attempts = _block_network(mp)
        _invoke(["phantom", "--out", str(cohort), "--cases", "4", "--spacing", "4", "--sites", "2", "--seed", "5",
                 "--no-progress"])
        paths = _pipeline(root, cohort, "A")
    torch.set_num_threads(threads)
    return {"root": root, "cohort": cohort, "attempts": attempts, **paths}


def _without_timings(value):
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def test_the_pipeline_runs_with_the_network_blocked(offline):
    assert offline["attempts"] == []
    case_ids = sorted(p.name for p in offline["cohort"].iterdir() if p.is_dir())
    assert len(case_ids) == 4 and (offline["run"] / "best.pt").is_file()
    for cid in case_ids[:2]:
        assert (offline["pred"] / f"{cid}.json").is_file() and (offline["pred"] / f"{cid}_seg.nii.gz").is_file()
    assert json.loads((offline["eval"] / "summary.json").read_text())["cases"] == 2


def test_every_output_json_records_seed_versions_and_config(offline):
    train = json.loads((offline["run"] / "train_summary.json").read_text())
    assert train["seed"] == SEED
    assert {"gliomics", "python", "torch", "monai", "numpy"} <= set(train["versions"])
    digest = train["config_sha256"]
    assert len(digest) == 16
    for path in record_paths(offline["pred"]):
        record = json.loads(path.read_text())
        assert record["model"]["config_sha256"] == digest, path.name
        assert record["model"]["train_seed"] == SEED
        assert record["versions"] == train["versions"] | {"torch": torch.__version__}
    evaluation = json.loads((offline["eval"] / "summary.json").read_text())["provenance"]
    assert evaluation["versions"]["gliomics"] == train["versions"]["gliomics"]
    assert evaluation["bootstrap_seed"] == 0 and evaluation["n_boot"] == 200
    assert [m["config_sha256"] for m in evaluation["models"]] == [digest]
    phantom = json.loads((offline["cohort"] / "phantom_summary.json").read_text())
    assert phantom["versions"]["gliomics"] == train["versions"]["gliomics"] and phantom["seed"] == 5


@pytest.mark.slow  # a second training and prediction: 15–30 s on a shared 2-core machine
def test_same_seed_and_data_give_identical_results(offline):
    again = _pipeline(offline["root"], offline["cohort"], "B")
    first, second = offline["run"], again["run"]

    rows_a = [_without_timings(json.loads(line)) for line in (first / "metrics.jsonl").read_text().splitlines()]
    rows_b = [_without_timings(json.loads(line)) for line in (second / "metrics.jsonl").read_text().splitlines()]
    assert rows_a == rows_b
    summary_a = json.loads((first / "train_summary.json").read_text())
    summary_b = json.loads((second / "train_summary.json").read_text())
    assert _without_timings({**summary_a, "run": None}) == _without_timings({**summary_b, "run": None})

    weights_a, weights_b = load_checkpoint(first / "best.pt")["model"], load_checkpoint(second / "best.pt")["model"]
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)

    for path in sorted(offline["pred"].glob("*_seg.nii.gz")):
        labels_a = np.asarray(nib.load(path).dataobj)
        labels_b = np.asarray(nib.load(again["pred"] / path.name).dataobj)
        assert np.array_equal(labels_a, labels_b), path.name
    for path in record_paths(offline["pred"]):
        record_a = _without_timings(json.loads(path.read_text()))
        record_b = _without_timings(json.loads((again["pred"] / path.name).read_text()))
        assert record_a == record_b, path.name

    eval_a = json.loads((offline["eval"] / "summary.json").read_text())
    eval_b = json.loads((again["eval"] / "summary.json").read_text())
    assert eval_a == eval_b
