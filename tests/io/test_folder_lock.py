"""One writer per output folder: a second writer fails at once; a lock left by a killed process is taken over."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gliomics.cli.main import app
from gliomics.errors import OutputError
from gliomics.io.folder_lock import lock_path, writer_lock

HOLD = """
import sys, time
from gliomics.io.folder_lock import writer_lock
with writer_lock(sys.argv[1], sys.argv[2]):
    print("held", flush=True)
    time.sleep(120)
"""


def _holder(folder: Path, role: str) -> subprocess.Popen:
    """A process that holds ``folder``'s lock for ``role`` until killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), role], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.fixture
def holders():
    procs: list[subprocess.Popen] = []
    yield lambda folder, role: procs.append(_holder(folder, role)) or procs[-1]
    for proc in procs:
        proc.kill()
        proc.wait()


def test_a_second_writer_fails_at_once_naming_the_folder(tmp_path, holders):
    holders(tmp_path / "run", "train")
    start = time.perf_counter()
    with pytest.raises(OutputError, match="another gliomics process is writing into it") as info:
        with writer_lock(tmp_path / "run", "train"):
            pass
    assert time.perf_counter() - start < 5.0
    assert str(tmp_path / "run") in str(info.value)
    with writer_lock(tmp_path / "run", "predict-part0-of1"):  # another role of the same folder is free
        pass


def test_the_lock_of_a_killed_process_is_taken_over(tmp_path, holders):
    proc = holders(tmp_path / "pred", "predict-part0-of1")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert lock_path(tmp_path / "pred", "predict-part0-of1").is_file()  # the file stays, the lock does not
    with writer_lock(tmp_path / "pred", "predict-part0-of1") as path:
        assert path == lock_path(tmp_path / "pred", "predict-part0-of1")


def test_lock_is_released_after_the_block(tmp_path):
    with writer_lock(tmp_path / "out", "train"):
        pass
    with writer_lock(tmp_path / "out", "train"):
        pass


def test_predict_into_a_folder_another_predict_writes_fails_with_exit_2(tiny_run, tiny_phantom, tmp_path, holders):
    out = tmp_path / "pred"
    holders(out, "predict-part0-of1")
    result = CliRunner().invoke(app, ["predict", "-i", str(tiny_phantom), "-o", str(out), "-m", str(tiny_run),
                                      "--device", "cpu", "--no-progress"])
    assert result.exit_code == 2, result.output
    assert "another gliomics process is writing into it" in result.output and str(out) in result.output
    assert not out.exists()


def test_training_into_a_run_another_process_trains_fails_with_exit_2(tiny_phantom, tmp_path, holders):
    run = tmp_path / "run"
    holders(run, "train")
    result = CliRunner().invoke(app, ["train", "-d", str(tiny_phantom), "-k", str(tiny_phantom / "markers.csv"),
                                      "-o", str(run), "--steps", "1", "--device", "cpu", "--no-progress"])
    assert result.exit_code == 2, result.output
    assert "another gliomics process is writing into it" in result.output
    assert not run.exists()
