"""CMAF: weights sum to 1, missing sequences get exactly 0, any non-empty subset works."""

from __future__ import annotations

import itertools

import pytest
import torch

from gliomics.constants import SEQUENCES
from gliomics.models.blocks.cmaf import CMAF, ConcatFusion, SequenceEmbedding

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
