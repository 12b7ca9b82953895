"""Attention pooling and the tumour gate: exact pooled values with hand-set weights, gating, fallbacks, exporting."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gliomics.models.blocks.attention_pool import POOLING_MODES, AttentionPooling, tumour_gate


@pytest.fixture
def exporting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend that ``torch.onnx.export`` is tracing."""
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)


def _hand_set(pool: AttentionPooling) -> AttentionPooling:
    """Fixed, distinct weights of ``W_f`` (3 -> 2) and ``W_a`` (2 -> 1)."""
    with torch.no_grad():
        pool.w_f.weight.copy_(torch.tensor([[0.5, -1.0, 0.25], [1.5, 0.2, -0.7]]).view(2, 3, 1, 1, 1))
        pool.w_f.bias.copy_(torch.tensor([0.1, -0.3]))
        pool.w_a.weight.copy_(torch.tensor([2.0, -1.2]).view(1, 2, 1, 1, 1))
        pool.w_a.bias.copy_(torch.tensor([0.7]))
    return pool


def _reference(x: torch.Tensor, gate: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The pooling formula of :func:`_hand_set`'s weights, written out in float64."""
    x = x.double() if gate is None else (x * gate).double()
    w_f = torch.tensor([[0.5, -1.0, 0.25], [1.5, 0.2, -0.7]], dtype=torch.float64)
    hidden = torch.tanh(torch.einsum("hc,bcv->bhv", w_f, x.flatten(2)) + torch.tensor([0.1, -0.3]).double()[:, None])
    scores = torch.einsum("h,bhv->bv", torch.tensor([2.0, -1.2], dtype=torch.float64), hidden) + 0.7
    w = torch.exp(scores) / torch.exp(scores).sum(-1, keepdim=True)
    z = (w[:, None] * x.flatten(2)).sum(-1)
    return z.float(), w.view(x.shape[0], 1, *x.shape[2:]).float()


def test_pooling_modes() -> None:
    """The two modes, attention first."""
    assert POOLING_MODES == ("attention", "gap")


def test_attention_pooling_exact_values_with_hand_set_weights() -> None:
    """z and w equal softmax_voxels(W_a tanh(W_f x)) and sum_voxels w x, per case."""
    torch.manual_seed(1)
    x = torch.randn(2, 3, 3, 4, 5)
    pool = _hand_set(AttentionPooling(3, 3, hidden_channels=2)).eval()
    z, w = pool(x)
    z_ref, w_ref = _reference(x)
    assert z.shape == (2, 3) and w.shape == (2, 1, 3, 4, 5)
    torch.testing.assert_close(w, w_ref)
    torch.testing.assert_close(z, z_ref)
    torch.testing.assert_close(w.flatten(1).sum(1), torch.ones(2))


def test_attention_pooling_single_case_batch() -> None:
    """A batch of one case pools over its own voxels only."""
    torch.manual_seed(2)
    x = torch.randn(1, 3, 2, 3, 4)
    z, w = _hand_set(AttentionPooling(3, 3, hidden_channels=2))(x)
    z_ref, w_ref = _reference(x)
    torch.testing.assert_close(w, w_ref)
    torch.testing.assert_close(z, z_ref)


def test_gate_multiplies_the_features_before_pooling() -> None:
    """A soft gate scales the features voxel-wise; the weights are computed from the gated features."""
    torch.manual_seed(3)
    x = torch.randn(2, 3, 2, 3, 4)
    gate = torch.rand(2, 1, 2, 3, 4)
    pool = _hand_set(AttentionPooling(3, 3, hidden_channels=2))
    z, w = pool(x, gate)
    z_ref, w_ref = _reference(x, gate)
    torch.testing.assert_close(w, w_ref)
    torch.testing.assert_close(z, z_ref)
    assert not torch.allclose(z, pool(x)[0])


def test_binary_gate_ignores_features_outside_the_mask() -> None:
    """With a 0/1 tumour mask, the features outside it cannot change the pooled vector."""
    torch.manual_seed(4)
    x = torch.randn(1, 3, 4, 4, 4)
    gate = torch.zeros(1, 1, 4, 4, 4)
    gate[..., 1:3, 1:3, 1:3] = 1.0
    pool = _hand_set(AttentionPooling(3, 3, hidden_channels=2))
    changed = x.clone()
    changed[..., 0, :, :] = 50.0
    torch.testing.assert_close(pool(changed, gate)[0], pool(x, gate)[0])


def test_empty_gate_falls_back_to_uniform_weights_and_zero_vector() -> None:
    """An all-zero gate (no tumour) leaves constant scores: uniform weights and a zero pooled vector, no NaN."""
    torch.manual_seed(5)
    x = torch.randn(2, 3, 2, 2, 4)
    z, w = _hand_set(AttentionPooling(3, 3, hidden_channels=2))(x, torch.zeros(2, 1, 2, 2, 4))
    torch.testing.assert_close(w, torch.full((2, 1, 2, 2, 4), 1 / 16))
    torch.testing.assert_close(z, torch.zeros(2, 3))


def test_gap_mode_is_the_uniform_average() -> None:
    """``gap``: uniform weights 1/N and the plain spatial mean, also for a batch of one and a gated input."""
    torch.manual_seed(6)
    x = torch.randn(1, 5, 2, 3, 4)
    pool = AttentionPooling(3, 5, mode="gap")
    z, w = pool(x)
    assert w.shape == (1, 1, 2, 3, 4)
    torch.testing.assert_close(w, torch.full((1, 1, 2, 3, 4), 1 / 24))
    torch.testing.assert_close(z, x.mean(dim=(2, 3, 4)))
    gate = torch.rand(1, 1, 2, 3, 4)
    torch.testing.assert_close(pool(x, gate)[0], (x * gate).mean(dim=(2, 3, 4)))
    assert not hasattr(pool, "w_f") and not hasattr(pool, "w_a")
    assert pool.mode == "gap" and pool.out_channels == 5


def test_attention_layers_and_default_hidden_width() -> None:
    """W_f is a 1x1x1 conv C -> max(C // 2, 1), W_a a 1x1x1 conv to one score; the default mode is attention."""
    pool = AttentionPooling(3, 6)
    assert pool.mode == "attention" and pool.out_channels == 6
    assert pool.w_f.weight.shape == (3, 6, 1, 1, 1)
    assert pool.w_a.weight.shape == (1, 3, 1, 1, 1)
    assert AttentionPooling(3, 7).w_f.out_channels == 3
    assert AttentionPooling(3, 2).w_f.out_channels == 1
    assert AttentionPooling(3, 1).w_f.out_channels == 1
    explicit = AttentionPooling(3, 6, hidden_channels=5)
    assert explicit.w_f.weight.shape == (5, 6, 1, 1, 1) and explicit.w_a.weight.shape == (1, 5, 1, 1, 1)
    flat = AttentionPooling(2, 4)
    assert isinstance(flat.w_f, torch.nn.Conv2d) and flat.w_f.weight.shape == (2, 4, 1, 1)
    z, w = flat(torch.randn(2, 4, 3, 5))
    assert z.shape == (2, 4) and w.shape == (2, 1, 3, 5)


def test_argument_checks() -> None:
    """Unknown modes and non-positive channel counts are refused."""
    with pytest.raises(ValueError, match=r"pooling mode must be one of \('attention', 'gap'\), got 'max'"):
        AttentionPooling(3, 6, mode="max")
    with pytest.raises(ValueError, match="in_channels must be positive, got 0"):
        AttentionPooling(3, 0)


def test_tumour_gate_exact_values() -> None:
    """The gate is 1 - softmax(logits)[background], adaptively average-pooled to the requested size."""
    torch.manual_seed(7)
    logits = torch.randn(2, 5, 8, 6, 4) * 3
    gate = tumour_gate(logits, torch.Size((4, 3, 2)))
    expected = F.adaptive_avg_pool3d(1.0 - torch.softmax(logits, dim=1)[:, :1], (4, 3, 2))
    assert gate.shape == (2, 1, 4, 3, 2)
    torch.testing.assert_close(gate, expected)
    # the background probability of the first voxel, written out
    p = torch.softmax(logits[0, :, :2, :2, :2].double(), dim=0)[0].mean()
    torch.testing.assert_close(gate[0, 0, 0, 0, 0].double(), 1.0 - p)


def test_tumour_gate_uneven_sizes_and_other_dimensions() -> None:
    """Sizes that do not divide the input use adaptive windows; 2D and 1D logits pool over their own axes."""
    torch.manual_seed(8)
    logits = torch.randn(1, 3, 7, 5, 6)
    torch.testing.assert_close(
        tumour_gate(logits, (3, 2, 4)), F.adaptive_avg_pool3d(1 - torch.softmax(logits, 1)[:, :1], (3, 2, 4))
    )
    flat = torch.randn(2, 3, 6, 4)
    torch.testing.assert_close(
        tumour_gate(flat, (3, 2)), F.adaptive_avg_pool2d(1 - torch.softmax(flat, 1)[:, :1], (3, 2))
    )
    line = torch.randn(2, 3, 9)
    torch.testing.assert_close(tumour_gate(line, (3,)), F.adaptive_avg_pool1d(1 - torch.softmax(line, 1)[:, :1], 3))


@pytest.mark.usefixtures("exporting")
def test_tumour_gate_while_exporting_gives_the_same_values() -> None:
    """While exporting, divisible sizes use a plain average pool and others the adaptive one: the same values."""
    torch.manual_seed(9)
    logits = torch.randn(2, 5, 8, 6, 4)
    tumour = 1.0 - torch.softmax(logits, dim=1)[:, :1]
    torch.testing.assert_close(tumour_gate(logits, (4, 3, 2)), F.adaptive_avg_pool3d(tumour, (4, 3, 2)))
    torch.testing.assert_close(tumour_gate(logits, (2, 3, 1)), F.adaptive_avg_pool3d(tumour, (2, 3, 1)))
    uneven = tumour_gate(logits, (3, 4, 3))
    assert uneven.shape == (2, 1, 3, 4, 3)
    torch.testing.assert_close(uneven, F.adaptive_avg_pool3d(tumour, (3, 4, 3)))
    flat = torch.randn(1, 3, 6, 4)
    torch.testing.assert_close(
        tumour_gate(flat, (3, 2)), F.adaptive_avg_pool2d(1 - torch.softmax(flat, 1)[:, :1], (3, 2))
    )
    line = torch.randn(2, 3, 8)
    torch.testing.assert_close(tumour_gate(line, (4,)), F.adaptive_avg_pool1d(1 - torch.softmax(line, 1)[:, :1], 4))
