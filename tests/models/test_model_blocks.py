"""Encoder branches, decoder, pooling and marker heads at tiny sizes."""

from __future__ import annotations

import pytest
import torch

from gliomics.constants import MARKERS, NUM_CLASSES
from gliomics.models.blocks.attention_pool import AttentionPooling, tumour_gate
from gliomics.models.blocks.cnn_branch import CNNBranch
from gliomics.models.blocks.decoder import SegDecoder
from gliomics.models.blocks.marker_head import MarkerHeads
from gliomics.models.blocks.swin_branch import SwinBranch


def test_cnn_branch_resolutions() -> None:
    branch = CNNBranch(in_channels=3, feature_size=4)
    skips, out = branch(torch.randn(1, 3, 32, 32, 32))
    assert [tuple(s.shape[1:]) for s in skips] == [(4, 32, 32, 32), (8, 16, 16, 16), (16, 8, 8, 8)]
    assert out.shape == (1, 32, 4, 4, 4) and branch.out_channels == 32
    assert branch.skip_channels == [4, 8, 16]


@pytest.mark.parametrize("depths,heads", [((1, 1), (1, 2)), ((1, 1, 1), (1, 2, 2))])
def test_swin_branch_reaches_one_eighth(depths: tuple[int, ...], heads: tuple[int, ...]) -> None:
    branch = SwinBranch(in_channels=3, out_channels=10, feature_size=4, depths=depths, num_heads=heads, window_size=2)
    # 24 is not a multiple of the window at every stage: MONAI pads windows internally.
    assert branch(torch.randn(1, 3, 24, 32, 16)).shape == (1, 10, 3, 4, 2)


def test_swin_branch_argument_checks() -> None:
    with pytest.raises(ValueError, match="not divisible by its num_heads=3"):
        SwinBranch(feature_size=8, depths=(1, 1), num_heads=(3, 2))
    with pytest.raises(ValueError, match="2 or 3 stages"):
        SwinBranch(feature_size=8, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1))
    with pytest.raises(ValueError, match="one entry per stage"):
        SwinBranch(feature_size=8, depths=(1, 1), num_heads=(1,))


def test_decoder_deep_supervision_only_in_training() -> None:
    dec = SegDecoder(3, in_channels=16, skip_channels=[2, 4, 8], out_channels=NUM_CLASSES)
    skips = [torch.randn(1, c, 32 // 2**i, 32 // 2**i, 32 // 2**i) for i, c in enumerate([2, 4, 8])]
    x = torch.randn(1, 16, 4, 4, 4)
    seg, aux = dec.train()(x, skips)
    assert seg.shape == (1, NUM_CLASSES, 32, 32, 32)
    assert [tuple(a.shape[2:]) for a in aux] == [(16, 16, 16), (8, 8, 8)]  # finest first
    seg_eval, aux_eval = dec.eval()(x, skips)
    assert aux_eval == [] and seg_eval.shape == seg.shape
    no_ds = SegDecoder(3, 16, [2, 4, 8], NUM_CLASSES, deep_supervision=False, attention_gate=False).train()
    assert no_ds(x, skips)[1] == []


def test_attention_pooling_weights() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 6, 4, 4, 4)
    z, w = AttentionPooling(3, 6)(x)
    assert z.shape == (2, 6) and w.shape == (2, 1, 4, 4, 4)
    torch.testing.assert_close(w.flatten(1).sum(1), torch.ones(2))
    torch.testing.assert_close(z, (w * x).flatten(2).sum(-1))
    z_gap, w_gap = AttentionPooling(3, 6, mode="gap")(x)
    torch.testing.assert_close(z_gap, x.mean(dim=(2, 3, 4)))
    assert torch.allclose(w_gap, torch.full_like(w_gap, 1 / 64))
    with pytest.raises(ValueError, match="pooling mode"):
        AttentionPooling(3, 6, mode="max")


def test_tumour_gate_is_pooled_tumour_probability() -> None:
    logits = torch.full((1, NUM_CLASSES, 16, 16, 16), -20.0)
    logits[:, 0] = 20.0
    logits[:, 0, :8], logits[:, 1, :8] = -20.0, 20.0  # the first half is certainly tumour
    gate = tumour_gate(logits, (2, 2, 2))
    assert gate.shape == (1, 1, 2, 2, 2)
    torch.testing.assert_close(gate[0, 0, 0], torch.ones(2, 2), atol=1e-6, rtol=0)
    torch.testing.assert_close(gate[0, 0, 1], torch.zeros(2, 2), atol=1e-6, rtol=0)


def test_marker_heads() -> None:
    out = MarkerHeads(6, 4).eval()(torch.randn(3, 6))
    assert list(out) == list(MARKERS) and all(v.shape == (3,) for v in out.values())
    with pytest.raises(ValueError, match="dropout_prob"):
        MarkerHeads(6, dropout_prob=1.0)
