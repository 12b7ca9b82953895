"""The bad-input battery (issue #10): every entry of ``reliability_battery.BATTERY`` through the CLI.

Each bad input must give one ``gliomics: error:`` line naming the culprit, exit status 2, no new file in the output
location and no temporary file anywhere; the entries that must work (paths with spaces and non-ASCII characters)
must exit 0 with their outputs.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from reliability_battery import BATTERY, PREDICT, Workspace, check, permissions_ignored, replace_volume, run_entry
from typer.testing import CliRunner

from gliomics.cli.main import app

COMMANDS = {"phantom", "train", "predict", "evaluate", "slices", "slice-benchmark", "preprocess", "import"}


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """Some commands set torch's thread count; give the other tests their own back."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("entry", BATTERY, ids=[entry.id for entry in BATTERY])
def test_bad_input_is_handled(entry, tmp_path, request):
    if entry.needs_unprivileged and permissions_ignored(tmp_path):
        pytest.skip(f"running as uid {os.geteuid()}: chmod does not block writes here, so no read-only folder")
    run = request.getfixturevalue("tiny_run") if entry.needs_run else None
    ws = Workspace(tmp_path / "ws", run)
    ws.root.mkdir()
    inv, outcome = run_entry(entry, ws)
    problems = check(entry, inv, ws, outcome)
    assert not problems, f"{entry.id} ({' '.join(inv.args)}):\n" + "\n".join(problems) + "\n" + outcome.stderr[-3000:]


def test_battery_covers_every_command_with_a_hundred_and_twenty_inputs():
    assert len(BATTERY) >= 120
    assert len({entry.id for entry in BATTERY}) == len(BATTERY)
    assert {entry.command for entry in BATTERY} == COMMANDS
    assert any(entry.exit_code == 0 for entry in BATTERY)  # inputs that must work, not fail


def test_one_all_zero_sequence_is_treated_as_missing(tiny_run, tmp_path):
    ws = Workspace(tmp_path, tiny_run)
    cohort = ws.cohort("cases", n=1, markers=False)
    replace_volume(cohort / "CASE-000-000", "t2w", np.zeros_like)
    out = tmp_path / "pred"
    result = CliRunner().invoke(app, ["predict", "-i", str(cohort), "-o", str(out), "-m", str(tiny_run), *PREDICT])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "CASE-000-000.json").read_text())
    assert record["sequences_missing"] == ["t2w"]
    assert "t2w" not in record["sequences_present"]


def test_a_missing_sequence_file_is_said_on_the_console(tiny_run, tmp_path, caplog):
    ws = Workspace(tmp_path, tiny_run)
    cohort = ws.cohort("cases", n=1, markers=False)
    (cohort / "CASE-000-000" / "CASE-000-000-t2f.nii.gz").unlink()
    out = tmp_path / "pred"
    with caplog.at_level("WARNING", logger="gliomics.inference.predictor"):
        result = CliRunner().invoke(app, ["predict", "-i", str(cohort), "-o", str(out), "-m", str(tiny_run),
                                          *PREDICT])
    assert result.exit_code == 0, result.output
    assert any("CASE-000-000: t2f missing" in r.getMessage() for r in caplog.records)
    assert json.loads((out / "CASE-000-000.json").read_text())["sequences_missing"] == ["t2f"]
