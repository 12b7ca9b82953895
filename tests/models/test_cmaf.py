"""CMAF: weights sum to 1, missing sequences get exactly 0, any non-empty subset works."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from gliomics.constants import SEQUENCES
from gliomics.models.blocks.cmaf import (
    CMAF,
    ConcatFusion,
    SequenceEmbedding,
    broadcast_present,
    check_present,
    exporting,
)

S = len(SEQUENCES)
SUBSETS = [s for r in range(1, S + 1) for s in itertools.combinations(range(S), r)]


def _present(subset: tuple[int, ...], batch: int = 2) -> torch.Tensor:
    present = torch.zeros(batch, S, dtype=torch.bool)
    present[:, list(subset)] = True
    return present


@pytest.mark.parametrize("subset", SUBSETS, ids=lambda s: "+".join(SEQUENCES[i] for i in s))
def test_cmaf_alpha_on_every_subset(subset: tuple[int, ...], image16: torch.Tensor) -> None:
    torch.manual_seed(0)
    cmaf = CMAF(embed_channels=4).train()
    x = image16.clone()
    missing = [i for i in range(S) if i not in subset]
    x[:, missing] = float("nan")  # whatever a loader leaves in a missing slot must not leak
    fused, alpha = cmaf(x, _present(subset))
    assert fused.shape == (2, 4, 16, 16, 16)
    assert alpha.shape == (2, S, 16, 16, 16)
    assert torch.isfinite(fused).all() and torch.isfinite(alpha).all()
    torch.testing.assert_close(alpha.sum(dim=1), torch.ones(2, 16, 16, 16))
    assert (alpha[:, missing] == 0).all()
    if len(subset) == 1:
        assert (alpha[:, subset[0]] == 1).all()
    fused.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in cmaf.parameters() if p.grad is not None)


def test_cmaf_mixed_presence_per_case(image16: torch.Tensor) -> None:
    present = torch.tensor([[True, True, True, True], [False, True, False, False]])
    _, alpha = CMAF(embed_channels=4)(image16, present)
    assert (alpha[0] > 0).all()
    assert (alpha[1, 1] == 1).all() and (alpha[1, [0, 2, 3]] == 0).all()


def test_cmaf_default_present_is_all(image16: torch.Tensor) -> None:
    cmaf = CMAF(embed_channels=4).eval()
    torch.testing.assert_close(cmaf(image16)[1], cmaf(image16, torch.ones(2, S, dtype=torch.bool))[1])


def test_cmaf_rejects_empty_case_and_bad_mask(image16: torch.Tensor) -> None:
    cmaf = CMAF(embed_channels=4)
    present = torch.ones(2, S, dtype=torch.bool)
    present[1] = False
    with pytest.raises(ValueError, match="at least one present sequence"):
        cmaf(image16, present)
    with pytest.raises(ValueError, match="present must have shape"):
        cmaf(image16, torch.ones(2, S - 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="dropout_prob"):
        CMAF(dropout_prob=1.5)


def test_concat_fusion_zeroes_missing_and_has_no_alpha(image16: torch.Tensor) -> None:
    fusion = ConcatFusion(embed_channels=4).eval()
    present = _present((0, 2))
    fused, alpha = fusion(image16, present)
    assert alpha is None and fused.shape == (2, 4, 16, 16, 16)
    changed = image16.clone()
    changed[:, [1, 3]] = torch.randn_like(changed[:, [1, 3]]) * 100
    torch.testing.assert_close(fusion(changed, present)[0], fused)


def test_cmaf_residual_adds_a_concatenation_path_that_ignores_missing_sequences(image16: torch.Tensor) -> None:
    torch.manual_seed(0)
    plain, residual = CMAF(embed_channels=4).eval(), CMAF(embed_channels=4, residual=True).eval()
    assert plain.mix is None and residual.mix is not None
    residual.load_state_dict(plain.state_dict(), strict=False)  # same embedding and attention, plus the mixer
    present = _present((0, 2))
    fused_plain, alpha_plain = plain(image16, present)
    fused, alpha = residual(image16, present)
    torch.testing.assert_close(alpha, alpha_plain)  # the path leaves the weights alone
    assert not torch.allclose(fused, fused_plain)
    changed = image16.clone()
    changed[:, [1, 3]] = torch.randn_like(changed[:, [1, 3]]) * 100
    torch.testing.assert_close(residual(changed, present)[0], fused)
    fused.sum().backward()
    assert all(p.grad is not None for p in residual.mix.parameters())


@pytest.mark.parametrize("sequence_affine", [True, False])
def test_embedding_keeps_sequence_identity_only_with_sequence_affine(sequence_affine: bool) -> None:
    from gliomics.models.blocks.cmaf import SequenceEmbedding

    torch.manual_seed(0)
    emb = SequenceEmbedding(3, 4, sequence_affine=sequence_affine).eval()
    if sequence_affine:
        with torch.no_grad():  # as after training: each sequence has its own scale and shift
            emb.weight.copy_(torch.rand_like(emb.weight) + 0.5)
            emb.bias.copy_(torch.randn_like(emb.bias))
    same = torch.randn(1, 1, 6, 6, 6).expand(1, len(SEQUENCES), 6, 6, 6).contiguous()
    feats = emb(same, torch.ones(1, len(SEQUENCES), dtype=torch.bool))
    assert feats.shape == (1, len(SEQUENCES), 4, 6, 6, 6)
    identical = torch.allclose(feats[:, 0], feats[:, 1])
    assert identical is not sequence_affine
    assert emb.conv.conv.weight.shape[1] == 1  # one shared convolution for every sequence either way


def test_fused_group_norm_equals_instance_norm_then_per_sequence_affine() -> None:
    # the fast path (one group norm) and the module-by-module path give the same embedding and gradients
    torch.manual_seed(0)
    emb = SequenceEmbedding(3, 4)
    with torch.no_grad():
        emb.weight.uniform_(0.5, 1.5)
        emb.bias.uniform_(-0.5, 0.5)
    x = torch.randn(2, 4, 16, 16, 16)
    present = torch.tensor([[True, True, True, True], [True, False, True, True]])
    assert emb.fused_norm
    fused = emb(x, present)
    fused.square().mean().backward()
    grad_fused = emb.weight.grad.clone()
    emb.zero_grad()
    emb.fused_norm = False
    plain = emb(x, present)
    plain.square().mean().backward()
    torch.testing.assert_close(fused, plain, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grad_fused, emb.weight.grad, rtol=1e-4, atol=1e-6)


@pytest.fixture
def onnx_tracing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend that ``torch.onnx.export`` is tracing."""
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)


def _reference_embedding(
    emb: SequenceEmbedding, x: torch.Tensor, present: torch.Tensor, eps: float = 1e-5
) -> torch.Tensor:
    """Shared conv, instance norm, per-sequence scale and shift, leaky ReLU 0.01, written out in float64."""
    b, s = x.shape[:2]
    x = torch.where(present.view(b, s, 1, 1, 1), x, torch.zeros_like(x)).double()
    conv = emb.conv.conv
    f = F.conv3d(x.reshape(b * s, 1, *x.shape[2:]), conv.weight.double(), conv.bias.double(), padding=1)
    f = F.instance_norm(f, eps=eps).view(b, s, emb.embed_channels, *x.shape[2:])
    f = f * emb.weight[:s].double().view(1, s, -1, 1, 1, 1) + emb.bias[:s].double().view(1, s, -1, 1, 1, 1)
    return F.leaky_relu(f, 0.01).float()


def _hand_set_embedding(emb: SequenceEmbedding, seed: int = 0) -> SequenceEmbedding:
    """Overwrite the conv and the per-sequence scale and shift with seeded values, every one distinct."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        emb.conv.conv.weight.copy_(torch.randn(emb.conv.conv.weight.shape, generator=gen))
        emb.conv.conv.bias.copy_(torch.randn(emb.conv.conv.bias.shape, generator=gen))
        if emb.sequence_affine:
            emb.weight.copy_(torch.rand(emb.weight.shape, generator=gen) + 0.5)
            emb.bias.copy_(torch.randn(emb.bias.shape, generator=gen))
    return emb


def _hand_set_attention(cmaf: CMAF, seed: int = 1) -> CMAF:
    """Overwrite the attention MLP with seeded values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in (cmaf.attention[0], cmaf.attention[3]):
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen))
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=gen))
    return cmaf


def _reference_fusion(cmaf: CMAF, feats: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``alpha = softmax_S(W2 relu(W1 [F_1..F_S]))`` with -inf for missing sequences, and ``sum_m alpha_m F_m``."""
    b, s, c = feats.shape[:3]
    w1, b1 = cmaf.attention[0].weight.flatten(1).double(), cmaf.attention[0].bias.double()
    w2, b2 = cmaf.attention[3].weight.flatten(1).double(), cmaf.attention[3].bias.double()
    cat = feats.double().flatten(1, 2)
    hidden = torch.relu(torch.einsum("hk,bkxyz->bhxyz", w1, cat) + b1.view(1, -1, 1, 1, 1))
    logits = torch.einsum("sh,bhxyz->bsxyz", w2, hidden) + b2.view(1, -1, 1, 1, 1)
    logits = logits.masked_fill(~present.view(b, s, 1, 1, 1), float("-inf"))
    alpha = torch.exp(logits - logits.amax(1, keepdim=True))
    alpha = alpha / alpha.sum(1, keepdim=True)
    return (alpha.unsqueeze(2) * feats.double()).sum(1).float(), alpha.float()


def _reference_mixer(mixer: torch.nn.Module, feats: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """1x1x1 conv of the concatenated embeddings (missing ones zeroed), instance norm, leaky ReLU 0.01."""
    b, s = feats.shape[:2]
    cat = (feats * present.view(b, s, 1, 1, 1, 1)).flatten(1, 2)
    conv, norm = mixer.conv, mixer.adn.N
    f = F.conv3d(cat, conv.weight, conv.bias)
    return F.leaky_relu(F.instance_norm(f, weight=norm.weight, bias=norm.bias, eps=1e-5), 0.01)


def test_exporting_follows_torch_onnx(monkeypatch: pytest.MonkeyPatch) -> None:
    """``exporting`` is True exactly while ``torch.onnx`` says that it traces."""
    assert exporting() is False
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
    assert exporting() is True


def test_check_present_defaults_and_conversion() -> None:
    """None means every sequence; 0/1 masks become bool; the mask lives on the input's device."""
    x = torch.zeros(3, S, 2, 2, 2)
    everything = check_present(None, x, S)
    assert everything.dtype == torch.bool and everything.shape == (3, S) and bool(everything.all())
    mask = check_present([[1, 0, 1, 0], [0, 0, 0, 1], [1, 1, 1, 1]], x, S)
    assert mask.dtype == torch.bool
    assert mask.tolist() == [[True, False, True, False], [False, False, False, True], [True] * 4]
    meta = check_present(None, torch.zeros(2, 3, 4, device="meta"), 3)
    assert meta.device.type == "meta" and meta.shape == (2, 3)


def test_check_present_errors() -> None:
    """A wrong shape names the expected shape; cases without any sequence are listed."""
    x = torch.zeros(3, S, 2, 2, 2)
    with pytest.raises(ValueError, match=r"shape \(batch, 4\) = \(3, 4\) .* got \(3, 3\)"):
        check_present(torch.ones(3, S - 1), x, S)
    with pytest.raises(ValueError, match=r"got \(2, 4\)"):
        check_present(torch.ones(2, S), x, S)
    empty = torch.tensor([[0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    with pytest.raises(ValueError, match=r"cases \[0, 2\] in the batch have none"):
        check_present(empty, x, S)
    with pytest.raises(ValueError, match=r"cases \[1\] in the batch have none"):
        check_present(torch.tensor([[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]]), x, S)


@pytest.mark.usefixtures("onnx_tracing")
def test_check_present_while_exporting() -> None:
    """While exporting, the empty-case check is left to the caller and the mask moves to the input's device."""
    empty = torch.tensor([[0, 0], [1, 0]])
    out = check_present(empty, torch.zeros(2, 2, 3), 2)
    assert out.tolist() == [[False, False], [True, False]]
    assert check_present(empty, torch.zeros(2, 2, 3, device="meta"), 2).device.type == "meta"


def test_broadcast_present_shapes() -> None:
    """The ``B x S`` mask gains one singleton axis per axis of ``like`` after the second."""
    present = torch.tensor([[True, False, True]])
    assert broadcast_present(present, torch.zeros(1, 3, 4, 5, 6)).shape == (1, 3, 1, 1, 1)
    assert broadcast_present(present, torch.zeros(1, 3, 2, 4, 5, 6)).shape == (1, 3, 1, 1, 1, 1)
    assert broadcast_present(present, torch.zeros(1, 3)).shape == (1, 3)
    assert broadcast_present(present, torch.zeros(1, 3, 7))[0, :, 0].tolist() == [True, False, True]


def test_sequence_embedding_layers() -> None:
    """Defaults: a shared 3x3x3 conv from one channel, a norm without affine, per-sequence scale 1 and shift 0;
    the instance norm takes the fused group-norm path with its eps."""
    emb = SequenceEmbedding(3, 4)
    assert emb.sequence_affine is True and emb.fused_norm is True and emb.embed_channels == 4
    assert emb.conv.conv.weight.shape == (4, 1, 3, 3, 3)
    norm = emb.conv.adn.N
    assert isinstance(norm, torch.nn.InstanceNorm3d) and norm.affine is False and norm.eps == 1e-5
    assert emb.norm_eps == 1e-5 and not hasattr(emb.conv.adn, "A")
    torch.testing.assert_close(emb.weight.detach(), torch.ones(S, 4))
    torch.testing.assert_close(emb.bias.detach(), torch.zeros(S, 4))
    assert SequenceEmbedding(3, 2, kernel_size=5, num_sequences=3).conv.conv.weight.shape == (2, 1, 5, 5, 5)
    assert SequenceEmbedding(3, 2, num_sequences=3).weight.shape == (3, 2)
    custom = SequenceEmbedding(3, 1, norm_name=("instance", {"eps": 0.1, "affine": True}))
    assert custom.norm_eps == 0.1 and custom.conv.adn.N.eps == 0.1 and custom.conv.adn.N.affine is False
    assert SequenceEmbedding(3, 2, norm_name="INSTANCE").fused_norm is True
    batch = SequenceEmbedding(3, 2, norm_name="batch")
    assert batch.fused_norm is False and isinstance(batch.conv.adn.N, torch.nn.BatchNorm3d)
    assert batch.conv.adn.N.affine is False
    with pytest.raises(ValueError, match="embed_channels must be positive, got 0"):
        SequenceEmbedding(3, 0)


def test_sequence_embedding_without_sequence_affine_layers() -> None:
    """``sequence_affine=False``: the paper's conv, affine instance norm and leaky ReLU 0.01, no per-sequence
    parameters."""
    emb = SequenceEmbedding(3, 4, sequence_affine=False)
    assert emb.sequence_affine is False and emb.fused_norm is False
    assert not hasattr(emb, "weight") and not hasattr(emb, "bias")
    assert emb.conv.adn.N.affine is True
    assert isinstance(emb.conv.adn.A, torch.nn.LeakyReLU) and emb.conv.adn.A.negative_slope == 0.01
    assert list(emb.conv.adn) == [emb.conv.adn.N, emb.conv.adn.A]


def test_sequence_embedding_exact_values_fused_norm() -> None:
    """The group-norm path equals conv, instance norm with the configured eps, per-sequence scale and shift and
    leaky ReLU; missing sequences (NaN in their slots) give exactly the activated shift."""
    torch.manual_seed(0)
    emb = _hand_set_embedding(SequenceEmbedding(3, 3, norm_name=("instance", {"eps": 0.5})))
    x = torch.randn(2, S, 5, 4, 6) * 2 + 1
    present = torch.tensor([[True, True, True, True], [True, False, True, False]])
    x[1, 1], x[1, 3] = float("nan"), float("nan")
    out = emb(x, present)
    assert out.shape == (2, S, 3, 5, 4, 6)
    torch.testing.assert_close(out, _reference_embedding(emb, x, present, eps=0.5), rtol=1e-4, atol=1e-5)
    missing = F.leaky_relu(emb.bias[1].detach(), 0.01).view(3, 1, 1, 1).expand(3, 5, 4, 6)
    torch.testing.assert_close(out[1, 1], missing)
    full = emb(x[:1], present[:1])
    torch.testing.assert_close(full, _reference_embedding(emb, x[:1], present[:1], eps=0.5), rtol=1e-4, atol=1e-5)


@pytest.mark.usefixtures("onnx_tracing")
def test_sequence_embedding_exact_values_while_exporting() -> None:
    """While exporting, missing sequences take the shift directly; the values are those of the plain path."""
    emb = _hand_set_embedding(SequenceEmbedding(3, 2))
    torch.manual_seed(1)
    x = torch.randn(2, S, 4, 4, 4)
    present = torch.tensor([[True, False, True, True], [False, True, True, False]])
    x[~present] = float("nan")
    out = emb(x, present)
    assert out.shape == (2, S, 2, 4, 4, 4)
    torch.testing.assert_close(out, _reference_embedding(emb, x, present), rtol=1e-4, atol=1e-5)


def test_sequence_embedding_exact_values_unfused_norm() -> None:
    """With a batch norm (eval: running mean 0, variance 1) the per-sequence affine follows the module's norm."""
    emb = _hand_set_embedding(SequenceEmbedding(3, 2, norm_name="batch")).eval()
    torch.manual_seed(2)
    x = torch.randn(2, S, 3, 4, 5)
    present = torch.tensor([[True, True, True, True], [True, True, False, True]])
    x[1, 2] = float("nan")
    out = emb(x, present)
    xz = torch.where(present.view(2, S, 1, 1, 1), x, torch.zeros_like(x))
    conv = emb.conv.conv
    f = F.conv3d(xz.reshape(2 * S, 1, 3, 4, 5), conv.weight, conv.bias, padding=1) / (1.0 + 1e-5) ** 0.5
    f = f.view(2, S, 2, 3, 4, 5) * emb.weight.view(1, S, 2, 1, 1, 1) + emb.bias.view(1, S, 2, 1, 1, 1)
    torch.testing.assert_close(out, F.leaky_relu(f, 0.01))


def test_sequence_embedding_exact_values_shared() -> None:
    """``sequence_affine=False``: conv, instance norm with its own affine, leaky ReLU; zeroes missing sequences."""
    emb = _hand_set_embedding(SequenceEmbedding(3, 2, sequence_affine=False))
    with torch.no_grad():
        emb.conv.adn.N.weight.copy_(torch.tensor([1.5, -0.5]))
        emb.conv.adn.N.bias.copy_(torch.tensor([0.3, -0.2]))
    torch.manual_seed(3)
    x = torch.randn(1, S, 4, 3, 5)
    present = torch.tensor([[False, True, True, True]])
    x[0, 0] = float("nan")
    out = emb(x, present)
    conv = emb.conv.conv
    xz = torch.where(present.view(1, S, 1, 1, 1), x, torch.zeros_like(x))
    f = F.conv3d(xz.reshape(S, 1, 4, 3, 5), conv.weight, conv.bias, padding=1)
    f = F.instance_norm(f, weight=emb.conv.adn.N.weight, bias=emb.conv.adn.N.bias)
    expected = F.leaky_relu(f, 0.01).view(1, S, 2, 4, 3, 5)
    torch.testing.assert_close(out, expected)
    shift = F.leaky_relu(emb.conv.adn.N.bias, 0.01).view(2, 1, 1, 1).expand(2, 4, 3, 5)
    torch.testing.assert_close(out[0, 0], shift, rtol=0, atol=1e-4)


def test_cmaf_layers_and_defaults() -> None:
    """Defaults: 16 embedding channels, an MLP 64 -> 8 -> 4 with ReLU and dropout 0.2, no residual path."""
    cmaf = CMAF()
    assert cmaf.num_sequences == S and cmaf.out_channels == 16 and cmaf.mix is None
    assert cmaf.embed.sequence_affine is True and cmaf.embed.conv.conv.weight.shape == (16, 1, 3, 3, 3)
    first, relu, drop, last = cmaf.attention
    assert first.weight.shape == (8, S * 16, 1, 1, 1) and last.weight.shape == (S, 8, 1, 1, 1)
    assert isinstance(relu, torch.nn.ReLU) and relu.inplace is True
    assert isinstance(drop, torch.nn.Dropout) and drop.p == 0.2
    assert CMAF(embed_channels=4).attention[0].out_channels == 4  # at least 4 hidden units
    assert CMAF(embed_channels=8).attention[0].out_channels == 4
    assert CMAF(embed_channels=10).attention[0].out_channels == 5
    small = CMAF(spatial_dims=2, num_sequences=1, embed_channels=2, hidden_channels=1, dropout_prob=0.0)
    assert small.attention[0].weight.shape == (1, 2, 1, 1) and small.attention[2].p == 0.0
    assert CMAF(embed_channels=2, sequence_affine=False).embed.sequence_affine is False
    fused, alpha = small(torch.randn(2, 1, 4, 6))
    assert fused.shape == (2, 2, 4, 6) and alpha.shape == (2, 1, 4, 6)
    torch.testing.assert_close(alpha, torch.ones(2, 1, 4, 6))


def test_cmaf_argument_checks() -> None:
    """Non-positive sequence counts and hidden widths and dropout outside [0, 1) are refused."""
    with pytest.raises(ValueError, match="num_sequences must be positive, got 0"):
        CMAF(num_sequences=0)
    with pytest.raises(ValueError, match="hidden_channels must be positive, got 0"):
        CMAF(embed_channels=2, hidden_channels=0)
    with pytest.raises(ValueError, match=r"dropout_prob must be in \[0, 1\), got -0.5"):
        CMAF(embed_channels=2, dropout_prob=-0.5)
    with pytest.raises(ValueError, match="got 1.0"):
        CMAF(embed_channels=2, dropout_prob=1.0)


def test_cmaf_residual_mixer_layers() -> None:
    """The residual path is a 1x1x1 conv S*C' -> C' with the configured norm and leaky ReLU 0.01."""
    mix = CMAF(embed_channels=3, residual=True).mix
    assert mix.conv.weight.shape == (3, S * 3, 1, 1, 1)
    assert isinstance(mix.adn.N, torch.nn.InstanceNorm3d) and mix.adn.N.affine is True
    assert isinstance(mix.adn.A, torch.nn.LeakyReLU) and mix.adn.A.negative_slope == 0.01
    batch = CMAF(embed_channels=3, residual=True, norm_name="batch")
    assert isinstance(batch.mix.adn.N, torch.nn.BatchNorm3d)
    assert isinstance(batch.embed.conv.adn.N, torch.nn.BatchNorm3d)


@pytest.mark.parametrize(
    "present",
    [[[True, True, True, True], [True, True, True, True]], [[True, False, True, True], [False, True, False, False]]],
    ids=["all", "missing"],
)
def test_cmaf_exact_fused_output_with_hand_set_weights(present: list[list[bool]]) -> None:
    """alpha = softmax over the sequences of the attention MLP (-inf for missing ones), fused = sum alpha * F."""
    present = torch.tensor(present)
    cmaf = _hand_set_attention(CMAF(embed_channels=3, hidden_channels=5))
    _hand_set_embedding(cmaf.embed)
    cmaf.eval()
    torch.manual_seed(4)
    x = torch.randn(2, S, 4, 5, 6)
    x[~present] = float("nan")
    fused, alpha = cmaf(x, present)
    feats = _reference_embedding(cmaf.embed, x, present)
    fused_ref, alpha_ref = _reference_fusion(cmaf, feats, present)
    assert fused.shape == (2, 3, 4, 5, 6) and alpha.shape == (2, S, 4, 5, 6)
    torch.testing.assert_close(alpha, alpha_ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fused, fused_ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(alpha.sum(1), torch.ones(2, 4, 5, 6))
    assert (alpha[~present] == 0).all() and (alpha[present] > 0).all()


def test_cmaf_exact_residual_output() -> None:
    """With ``residual=True`` the output adds the mixer of the concatenated embeddings (missing ones zeroed)."""
    present = torch.tensor([[True, True, False, True]])
    cmaf = _hand_set_attention(CMAF(embed_channels=2, hidden_channels=3, residual=True))
    _hand_set_embedding(cmaf.embed, seed=5)
    with torch.no_grad():
        cmaf.mix.conv.weight.copy_(torch.linspace(-1, 1, 16).view(2, 8, 1, 1, 1))
        cmaf.mix.conv.bias.copy_(torch.tensor([0.2, -0.1]))
        cmaf.mix.adn.N.weight.copy_(torch.tensor([1.3, 0.7]))
        cmaf.mix.adn.N.bias.copy_(torch.tensor([0.4, -0.6]))
    cmaf.eval()
    torch.manual_seed(5)
    x = torch.randn(1, S, 3, 4, 5)
    fused, alpha = cmaf(x, present)
    feats = _reference_embedding(cmaf.embed, x, present)
    fused_ref, alpha_ref = _reference_fusion(cmaf, feats, present)
    torch.testing.assert_close(alpha, alpha_ref, rtol=1e-4, atol=1e-5)
    expected = fused_ref + _reference_mixer(cmaf.mix, feats, present)
    torch.testing.assert_close(fused, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.usefixtures("onnx_tracing")
def test_cmaf_while_exporting_gives_the_same_values() -> None:
    """While exporting the masked forms always run: the same alpha and fused features, all present or not."""
    cmaf = _hand_set_attention(CMAF(embed_channels=2, hidden_channels=3, residual=True))
    _hand_set_embedding(cmaf.embed)
    cmaf.eval()
    torch.manual_seed(6)
    x = torch.randn(2, S, 4, 4, 4)
    for present in (torch.ones(2, S, dtype=torch.bool), torch.tensor([[True, False, False, True], [True] * 4])):
        fused, alpha = cmaf(x, present)
        feats = _reference_embedding(cmaf.embed, x, present)
        fused_ref, alpha_ref = _reference_fusion(cmaf, feats, present)
        torch.testing.assert_close(alpha, alpha_ref, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(fused, fused_ref + _reference_mixer(cmaf.mix, feats, present), rtol=1e-4, atol=1e-4)


def test_concat_fusion_exact_values() -> None:
    """ConcatFusion is the mixer of the concatenated embeddings, with those of missing sequences zeroed even when
    their activated shift is not zero."""
    fusion = ConcatFusion(embed_channels=2)
    _hand_set_embedding(fusion.embed, seed=7)
    assert fusion.fuse.conv.weight.shape == (2, S * 2, 1, 1, 1) and fusion.out_channels == 2
    assert isinstance(fusion.fuse.adn.A, torch.nn.LeakyReLU)
    torch.manual_seed(7)
    x = torch.randn(2, S, 3, 4, 5)
    for present in (torch.ones(2, S, dtype=torch.bool), torch.tensor([[True, False, True, True], [True] * 4])):
        fused, alpha = fusion(x, present)
        assert alpha is None
        feats = _reference_embedding(fusion.embed, x, present)
        torch.testing.assert_close(fused, _reference_mixer(fusion.fuse, feats, present), rtol=1e-4, atol=1e-4)


def test_concat_fusion_defaults() -> None:
    """Defaults: 3D, 16 channels, per-sequence affine embedding; ``sequence_affine=False`` reaches the embedding."""
    fusion = ConcatFusion()
    assert fusion.out_channels == 16 and fusion.fuse.conv.weight.shape == (16, S * 16, 1, 1, 1)
    assert fusion.embed.sequence_affine is True
    assert ConcatFusion(embed_channels=2, sequence_affine=False).embed.sequence_affine is False
    flat = ConcatFusion(spatial_dims=2, num_sequences=2, embed_channels=3)
    assert flat.fuse.conv.weight.shape == (3, 6, 1, 1)
    assert flat(torch.randn(1, 2, 4, 4))[0].shape == (1, 3, 4, 4)


@pytest.mark.parametrize("sequence_affine", [True, False])
@pytest.mark.parametrize("kernel_size", [1, 5])
def test_sequence_embedding_takes_its_kernel_size(kernel_size, sequence_affine):
    emb = SequenceEmbedding(3, 4, kernel_size=kernel_size, sequence_affine=sequence_affine)
    assert tuple(emb.conv.conv.weight.shape) == (4, 1, kernel_size, kernel_size, kernel_size)
