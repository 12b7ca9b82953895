"""Output folders written as a whole (the slice benchmark, the nnU-Net export) appear whole or not at all."""

from __future__ import annotations

import pytest

from gliomics.errors import OutputError
from gliomics.io.output_folder import staged_folder


def test_staged_folder_renames_into_place_on_success(tmp_path):
    out = tmp_path / "out"
    with staged_folder(out) as tmp:
        (tmp / "a.txt").write_text("a")
        assert not out.exists()
    assert (out / "a.txt").read_text() == "a"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_staged_folder_leaves_nothing_on_failure_and_keeps_old_output(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), staged_folder(out) as tmp:
        (tmp / "partial.txt").write_text("x")
        raise RuntimeError("boom")
    assert not list(tmp_path.iterdir())
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(OutputError, match="--overwrite"), staged_folder(out):
        pass
    with staged_folder(out, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="not a folder"), staged_folder(tmp_path / "file"):
        pass
