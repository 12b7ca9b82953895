"""The one safe reader of torch.save files."""

from __future__ import annotations

import gzip

import pytest
import torch

from gliomics.errors import CheckpointError
from gliomics.io.torch_files import load_torch_file


class _Payload:
    def __reduce__(self):  # what a malicious file would carry
        return (print, ("ran",))


def test_reads_tensors_and_plain_containers(tmp_path):
    path = tmp_path / "ok.pt"
    torch.save({"w": torch.arange(3), "meta": {"epoch": 2}}, path)
    state = load_torch_file(path)
    assert torch.equal(state["w"], torch.arange(3)) and state["meta"] == {"epoch": 2}


def test_missing_file_names_what_it_is(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope\.pt: weights file not found"):
        load_torch_file(tmp_path / "nope.pt", what="weights file")


def test_not_a_zip_archive(tmp_path):
    path = tmp_path / "x.pt"
    path.write_bytes(gzip.compress(b"not torch"))
    with pytest.raises(CheckpointError, match=r"x\.pt: corrupt or truncated checkpoint \(not a torch.save zip"):
        load_torch_file(path)


def test_pickled_objects_are_refused_with_the_advice(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"x": _Payload()}, path)
    with pytest.raises(CheckpointError, match=r"evil\.pt: refused to load: the weights file carries pickled objects, "
                                              r"which could run code; save a state dict"):
        load_torch_file(path, what="weights file", advice="; save a state dict of tensors instead")


def test_truncated_archive(tmp_path):
    path = tmp_path / "cut.pt"
    torch.save({"w": torch.zeros(1000)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] + data[-200:])
    with pytest.raises(CheckpointError, match=r"cut\.pt: corrupt or truncated checkpoint"):
        load_torch_file(path)
