"""The five 2D backbones of the slice benchmark: 1-channel input, 2 logits, local weights, refused pickles."""

from __future__ import annotations

import pytest
import torch

from gliomics.errors import CheckpointError, ConfigError
from gliomics.models.slice2d import BACKBONES, create_slice_model, resolve_backbones


@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_backbone_takes_one_channel_and_gives_two_logits(name):
    torch.manual_seed(0)
    model = create_slice_model(name).eval()
    with torch.no_grad():
        logits = model(torch.rand(2, 1, 32, 32))
    assert logits.shape == (2, 2) and torch.isfinite(logits).all()


def test_a_single_logit_and_three_channels_are_possible():
    model = create_slice_model("mobilenet", in_channels=3, out_channels=1).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 32, 32)).shape == (1, 1)
    with pytest.raises(ConfigError):
        create_slice_model("mobilenet", in_channels=0)


def test_resolve_backbones():
    assert resolve_backbones("all") == ["regnet", "ghostnet", "mobilenet", "resnext", "shufflenet"]
    assert resolve_backbones("shufflenet, RegNet") == ["shufflenet", "regnet"]
    with pytest.raises(ConfigError, match="unknown backbone"):
        resolve_backbones("vgg16")
    with pytest.raises(ConfigError, match="twice"):
        resolve_backbones("resnext50_32x4d,resnext")


def test_local_weights_are_loaded(tmp_path):
    torch.manual_seed(1)
    source = create_slice_model("shufflenet")
    torch.save(source.state_dict(), tmp_path / "w.pt")
    torch.save({"state_dict": source.state_dict()}, tmp_path / "nested.pth")
    for file in ("w.pt", "nested.pth"):
        loaded = create_slice_model("shufflenet", weights=tmp_path / file)
        for (key, a), b in zip(source.state_dict().items(), loaded.state_dict().values()):
            assert torch.equal(a, b), key


def test_rgb_weights_are_summed_into_one_channel_and_a_foreign_head_is_skipped(tmp_path):
    torch.manual_seed(2)
    rgb = create_slice_model("shufflenet", in_channels=3, out_channels=1000)
    torch.save(rgb.state_dict(), tmp_path / "imagenet.pt")
    model = create_slice_model("shufflenet", weights=tmp_path / "imagenet.pt")
    conv = rgb.state_dict()["conv1.0.weight"]
    assert torch.allclose(model.state_dict()["conv1.0.weight"], conv.sum(dim=1, keepdim=True))
    assert model.fc.out_features == 2
    assert torch.equal(model.state_dict()["stage2.0.branch1.0.weight"], rgb.state_dict()["stage2.0.branch1.0.weight"])


class _NotATensor:
    value = 3


def test_pickled_objects_corrupt_files_and_foreign_weights_are_refused(tmp_path):
    torch.save({"model": _NotATensor()}, tmp_path / "pickled.pt")
    with pytest.raises(CheckpointError, match="pickled objects"):
        create_slice_model("shufflenet", weights=tmp_path / "pickled.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match=r"weights file \(not a torch.save zip archive\)"):
        create_slice_model("shufflenet", weights=tmp_path / "junk.pt")
    torch.save({"epoch": 3}, tmp_path / "no_tensors.pt")
    with pytest.raises(CheckpointError, match="state dict of tensors"):
        create_slice_model("shufflenet", weights=tmp_path / "no_tensors.pt")
    torch.save(create_slice_model("mobilenet").state_dict(), tmp_path / "mobilenet.pt")
    with pytest.raises(CheckpointError, match="not ShuffleNetV2 weights"):
        create_slice_model("shufflenet", weights=tmp_path / "mobilenet.pt")
    with pytest.raises(CheckpointError, match="not found"):
        create_slice_model("shufflenet", weights=tmp_path / "missing.pt")
