"""Encoder branches, decoder, pooling and marker heads at tiny sizes."""

from __future__ import annotations

import pytest
import torch

from gliomics.constants import MARKERS, NUM_CLASSES
from gliomics.models.blocks.attention_pool import AttentionPooling, tumour_gate
from gliomics.models.blocks.cnn_branch import CNNBranch
from gliomics.models.blocks.decoder import SegDecoder
from gliomics.models.blocks.layers import residual_block
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


def _hand_set_heads(heads: MarkerHeads) -> MarkerHeads:
    """Give every head fixed, distinct weights (2 -> 3 -> 1), scaled by the head's position."""
    with torch.no_grad():
        for k, head in enumerate(heads.heads.values()):
            head[1].weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 0.5], [-1.0, 0.25]]) * (k + 1))
            head[1].bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
            head[3].weight.copy_(torch.tensor([[1.5, -0.5, 2.0]]))
            head[3].bias.copy_(torch.tensor([-0.25 * k]))
    return heads


def test_marker_heads_exact_logits_with_hand_set_weights() -> None:
    """Each head computes Linear -> ReLU -> Linear on the pooled vector; eval mode disables the dropout."""
    heads = _hand_set_heads(MarkerHeads(2, 3, dropout_prob=0.5, markers=("a", "b"))).eval()
    z = torch.tensor([[1.0, 2.0], [-1.0, 0.5], [0.0, -3.0]])
    out = heads(z)
    assert list(out) == ["a", "b"]
    for k, name in enumerate(("a", "b")):
        w1 = torch.tensor([[1.0, -2.0], [0.5, 0.5], [-1.0, 0.25]]) * (k + 1)
        hidden = torch.relu(z @ w1.T + torch.tensor([0.1, -0.2, 0.3]))
        expected = hidden @ torch.tensor([1.5, -0.5, 2.0]) - 0.25 * k
        assert out[name].shape == (3,)
        torch.testing.assert_close(out[name], expected)
    # hand check of one logit: z = (1, 2), head a: hidden = relu(-2.9, 1.3, -0.2) -> 1.5 * 0 - 0.5 * 1.3 + 0 = -0.65
    torch.testing.assert_close(out["a"][0], torch.tensor(-0.65))
    torch.testing.assert_close(heads(z[:1])["b"], expected[:1])


def test_marker_heads_dropout_only_in_training() -> None:
    """Dropout with the given probability sits first in every head and acts in training mode only."""
    heads = _hand_set_heads(MarkerHeads(2, 3, dropout_prob=0.5, markers=("a", "b")))
    assert all(isinstance(h[0], torch.nn.Dropout) and h[0].p == 0.5 for h in heads.heads.values())
    z = torch.randn(64, 2)
    torch.manual_seed(0)
    train = heads.train()(z)["a"]
    evaluated = heads.eval()(z)["a"]
    assert not torch.allclose(train, evaluated)
    torch.testing.assert_close(heads(z)["a"], evaluated)


def test_marker_heads_defaults_and_layers() -> None:
    """Defaults: one head per marker of MARKERS, 64 hidden units, dropout 0.3, an in-place ReLU and one logit."""
    heads = MarkerHeads(6)
    assert heads.markers == tuple(MARKERS) and list(heads.heads) == list(MARKERS)
    for head in heads.heads.values():
        assert [type(m) for m in head] == [torch.nn.Dropout, torch.nn.Linear, torch.nn.ReLU, torch.nn.Linear]
        assert head[0].p == 0.3
        assert (head[1].in_features, head[1].out_features) == (6, 64)
        assert head[2].inplace is True
        assert (head[3].in_features, head[3].out_features) == (64, 1)
    heads_a, heads_b = MarkerHeads(1, 1, markers=("x",)).heads["x"], MarkerHeads(1, 1, dropout_prob=0.0).heads
    assert heads_a[1].weight.shape == (1, 1) and all(h[0].p == 0.0 for h in heads_b.values())
    assert MarkerHeads(3, 2, markers=["m"]).markers == ("m",)


def test_marker_heads_argument_checks() -> None:
    """Non-positive widths, dropout outside [0, 1) and empty or repeated marker names are refused."""
    with pytest.raises(ValueError, match="in_channels and hidden_channels must be positive, got 0 and 4"):
        MarkerHeads(0, 4)
    with pytest.raises(ValueError, match="got 3 and 0"):
        MarkerHeads(3, 0)
    with pytest.raises(ValueError, match=r"dropout_prob must be in \[0, 1\), got -0.1"):
        MarkerHeads(3, dropout_prob=-0.1)
    with pytest.raises(ValueError, match="got 1.0"):
        MarkerHeads(3, dropout_prob=1.0)
    with pytest.raises(ValueError, match=r"markers must be non-empty and unique, got \(\)"):
        MarkerHeads(3, markers=())
    with pytest.raises(ValueError, match=r"got \('a', 'a'\)"):
        MarkerHeads(3, markers=("a", "a"))


def test_residual_block_layers() -> None:
    """The shared residual block: 3x3x3 convs at stride 1, affine instance norm, leaky ReLU 0.01, no dropout by
    default; a 1x1x1 projection only when the channels change; dropout when asked."""
    block = residual_block(3, 2, 4)
    assert block.conv1.conv.kernel_size == (3, 3, 3) and block.conv1.conv.stride == (1, 1, 1)
    assert block.conv1.conv.in_channels == 2 and block.conv2.conv.out_channels == 4
    assert isinstance(block.norm1, torch.nn.InstanceNorm3d) and block.norm1.affine
    assert isinstance(block.lrelu, torch.nn.LeakyReLU) and block.lrelu.negative_slope == 0.01
    assert block.conv3.conv.kernel_size == (1, 1, 1)
    assert not any(isinstance(m, torch.nn.Dropout) for m in block.modules())
    assert not hasattr(residual_block(3, 4, 4), "conv3")
    dropped = residual_block(3, 4, 4, dropout_prob=0.25)
    assert [m.p for m in dropped.modules() if isinstance(m, torch.nn.Dropout)] == [0.25, 0.25]
    batch = residual_block(2, 3, 3, norm_name="batch")
    assert isinstance(batch.norm1, torch.nn.BatchNorm2d) and isinstance(batch.conv1.conv, torch.nn.Conv2d)
    x = torch.randn(1, 2, 5, 6, 7)
    assert block(x).shape == (1, 4, 5, 6, 7)
