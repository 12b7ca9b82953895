"""Atomic writes: a file or folder appears whole or not at all, and no temporary is left behind."""

from __future__ import annotations

import pytest

from gliomics.io.atomic import atomic_path, write_text_atomic


def test_text_is_written_whole_and_replaces_the_old_file(tmp_path):
    path = tmp_path / "sub" / "a.json"
    write_text_atomic(path, "old")
    write_text_atomic(path, "new")
    assert path.read_text() == "new"
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.json"]


def test_a_failure_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.csv"]


def test_nifti_temporaries_keep_their_suffix(tmp_path):
    with atomic_path(tmp_path / "case-t1c.nii.gz") as tmp:
        assert tmp.name.endswith(".nii.gz") and tmp.name.startswith(".case-t1c.tmp-")
        tmp.write_bytes(b"x")
    assert (tmp_path / "case-t1c.nii.gz").read_bytes() == b"x"


def test_a_folder_is_swapped_in_whole(tmp_path):
    final = tmp_path / "case"
    final.mkdir()
    (final / "stale.txt").write_text("stale")
    with atomic_path(final, folder=True) as tmp:
        assert tmp.is_dir() and not any(tmp.iterdir())
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in final.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["case"]
    with pytest.raises(ValueError), atomic_path(final, folder=True) as tmp:
        (tmp / "half.txt").write_text("half")
        raise ValueError("bad input")
    assert [p.name for p in final.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["case"]
    with atomic_path(tmp_path / "made_by_writer", folder=True, create=False) as tmp:
        assert not tmp.exists()
        tmp.mkdir()
    assert (tmp_path / "made_by_writer").is_dir()
