"""Tumour descriptors: shapes, meaning of the features, and no gradient into the segmentation."""

from __future__ import annotations

import torch

from gliomics.models.blocks.descriptors import TumourDescriptors
from gliomics.models.registry import create_model


def _case(shape=(16, 16, 16)):
    x = torch.zeros(1, 4, *shape)
    x[:, :, 2:14, 2:14, 2:14] = 1.0  # brain
    labels = torch.zeros(shape, dtype=torch.long)
    labels[4:8, 4:8, 4:8] = 3  # ET
    labels[5:7, 5:7, 5:7] = 1  # NETC inside
    logits = torch.nn.functional.one_hot(labels, 5).permute(3, 0, 1, 2)[None].float() * 20.0
    return x, logits


def test_features_reflect_the_segmentation():
    x, logits = _case()
    desc = TumourDescriptors(4, 5)
    out = desc(x, logits, torch.ones(1, 4, dtype=torch.bool))
    assert out.shape == (1, desc.out_features)
    assert torch.isfinite(out).all()
    et_share = out[0, 4]
    assert abs(float(et_share) - 56 / 65) < 0.02  # 56 ET voxels, 8 NETC voxels (+1 in the denominator)
    # the tumour sits off-centre towards low indices: negative offsets on the last two axes, folded on the first
    assert out[0, -7] > 0 and out[0, -6] < 0 and out[0, -5] < 0


def test_descriptors_do_not_backpropagate_into_the_segmentation():
    x, logits = _case()
    logits.requires_grad_(True)
    out = TumourDescriptors(4, 5)(x, logits, None)
    assert not out.requires_grad


def test_mgmtnet_with_descriptors_runs_and_learns_heads():
    model = create_model("mgmtnet_cpu", feature_size=4, embed_channels=4, descriptors=True)
    x = torch.randn(1, 4, 32, 32, 32)
    out = model(x, torch.tensor([[True, True, False, True]]))
    loss = sum(v.sum() for v in out["markers"].values())
    loss.backward()
    first = next(iter(model.marker_heads.heads.values()))[1]
    assert first.in_features == model.pool.out_channels + model.descriptors.out_features
    assert first.weight.grad is not None and torch.isfinite(first.weight.grad).all()
