"""CNN and Swin encoder branches and the segmentation decoder: layers, shapes, and outputs by composition."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gliomics.models.blocks.cnn_branch import CNNBranch, DeepCNNBranch, _residual_stage
from gliomics.models.blocks.decoder import SegDecoder, UpBlock
from gliomics.models.blocks.swin_branch import SwinBranch


def _is_leaky(module: nn.Module) -> bool:
    return isinstance(module, nn.LeakyReLU) and module.negative_slope == 0.01


def _conv_norm_act(block: nn.Module, in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> None:
    """Assert a MONAI conv-norm-leaky-ReLU block with the given geometry and an affine instance norm."""
    conv = block.conv
    assert (conv.in_channels, conv.out_channels) == (in_channels, out_channels)
    assert conv.kernel_size == (kernel,) * 3 and conv.stride == (stride,) * 3
    assert isinstance(block.adn.N, nn.InstanceNorm3d) and block.adn.N.affine
    assert _is_leaky(block.adn.A)
    assert not any(isinstance(m, nn.Dropout) for m in block.modules())


# --------------------------------------------------------------------------------------------------- CNN branch


def test_residual_stage_layers_and_resolution() -> None:
    """A stage: strided 2x2x2 conv without padding doubling the channels, then the residual blocks."""
    stage = _residual_stage(3, 3, 2, ("instance", {"affine": True}), 0.0)
    assert len(stage) == 3
    _conv_norm_act(stage[0], 3, 6, kernel=2, stride=2)
    assert stage[0].conv.padding == (0, 0, 0)
    for block in stage[1:]:
        assert block.conv1.conv.in_channels == 6 and block.conv2.conv.out_channels == 6
    assert stage(torch.randn(1, 3, 6, 4, 10)).shape == (1, 6, 3, 2, 5)
    dropped = _residual_stage(3, 2, 1, "instance", 0.4)
    assert [m.p for m in dropped.modules() if isinstance(m, nn.Dropout)] == [0.4, 0.4]


def test_cnn_branch_defaults() -> None:
    """Defaults: 3D, 16 input channels, stem of 16, three stages of two residual blocks, no dropout."""
    branch = CNNBranch()
    _conv_norm_act(branch.stem, 16, 16, kernel=3)
    assert branch.skip_channels == [16, 32, 64] and branch.out_channels == 128 and branch.downsampling == 8
    assert len(branch.stages) == 3 and [len(s) for s in branch.stages] == [3, 3, 3]
    assert [s[0].conv.out_channels for s in branch.stages] == [32, 64, 128]
    assert not any(isinstance(m, nn.Dropout) for m in branch.modules())


@pytest.mark.parametrize("shape", [(16, 16, 16), (8, 24, 16), (32, 8, 40)])
def test_cnn_branch_skip_and_output_shapes(shape: tuple[int, int, int]) -> None:
    """Skips at /1, /2, /4 with feature_size * 2**i channels; the output at /8 with feature_size * 8."""
    branch = CNNBranch(in_channels=2, feature_size=3)
    skips, out = branch(torch.randn(2, 2, *shape))
    expected = [(2, 3 * 2**i, *(n // 2**i for n in shape)) for i in range(3)]
    assert [tuple(s.shape) for s in skips] == expected
    assert out.shape == (2, 24, *(n // 8 for n in shape))


def test_cnn_branch_configurable_depth_and_widths() -> None:
    """num_stages, blocks_per_stage, dropout and the norm change the branch as documented."""
    branch = CNNBranch(in_channels=1, feature_size=1, num_stages=2, blocks_per_stage=1, dropout_prob=0.3)
    assert branch.skip_channels == [1, 2] and branch.out_channels == 4 and branch.downsampling == 4
    assert [len(s) for s in branch.stages] == [2, 2]
    assert {m.p for m in branch.modules() if isinstance(m, nn.Dropout)} == {0.3}
    skips, out = branch(torch.randn(1, 1, 8, 12, 4))
    assert [tuple(s.shape) for s in skips] == [(1, 1, 8, 12, 4), (1, 2, 4, 6, 2)] and out.shape == (1, 4, 2, 3, 1)
    one = CNNBranch(in_channels=2, feature_size=2, num_stages=1)
    assert one.skip_channels == [2] and one.out_channels == 4 and one.downsampling == 2
    four = CNNBranch(in_channels=2, feature_size=2, num_stages=4)
    assert four.skip_channels == [2, 4, 8, 16] and four.out_channels == 32 and four.downsampling == 16
    batch = CNNBranch(in_channels=2, feature_size=2, norm_name="batch")
    assert isinstance(batch.stem.adn.N, nn.BatchNorm3d) and isinstance(batch.stages[0][0].adn.N, nn.BatchNorm3d)
    assert isinstance(batch.stages[0][1].norm1, nn.BatchNorm3d)
    flat = CNNBranch(spatial_dims=2, in_channels=2, feature_size=2)
    assert isinstance(flat.stem.conv, nn.Conv2d)
    assert flat(torch.randn(1, 2, 16, 8))[1].shape == (1, 16, 2, 1)


def test_cnn_branch_argument_checks() -> None:
    """Each non-positive argument is refused by name."""
    with pytest.raises(ValueError, match="in_channels must be positive, got 0"):
        CNNBranch(in_channels=0)
    with pytest.raises(ValueError, match="feature_size must be positive, got 0"):
        CNNBranch(feature_size=0)
    with pytest.raises(ValueError, match="num_stages and blocks_per_stage must be positive, got 0 and 2"):
        CNNBranch(num_stages=0)
    with pytest.raises(ValueError, match="got 3 and 0"):
        CNNBranch(blocks_per_stage=0)


def test_cnn_branch_forward_is_stem_then_stages() -> None:
    """The skips are the stem output and each stage's input; the output is the last stage's output."""
    torch.manual_seed(0)
    branch = CNNBranch(in_channels=2, feature_size=2).eval()
    x = torch.randn(1, 2, 16, 8, 24)
    skips, out = branch(x)
    expected = branch.stem(x)
    for skip, stage in zip(skips, branch.stages, strict=True):
        torch.testing.assert_close(skip, expected)
        expected = stage(expected)
    torch.testing.assert_close(out, expected)


def test_deep_cnn_branch_defaults() -> None:
    """Defaults: stem of 24 // 2 = 12 channels, three stages of three blocks, a 1x1x1 projection 96 -> 128."""
    deep = DeepCNNBranch()
    assert deep.cnn.stem.conv.in_channels == 16
    assert deep.cnn.skip_channels == [12, 24, 48] and deep.cnn.out_channels == 96
    assert [len(s) for s in deep.cnn.stages] == [4, 4, 4]
    _conv_norm_act(deep.proj, 96, 128, kernel=1)
    assert deep.out_channels == 128 and deep.downsampling == 8
    assert not any(isinstance(m, nn.Dropout) for m in deep.modules())


def test_deep_cnn_branch_arguments_and_output() -> None:
    """Every argument reaches the inner CNN; the output is the projection of its deepest features at /8."""
    torch.manual_seed(1)
    deep = DeepCNNBranch(in_channels=2, out_channels=5, feature_size=5, blocks_per_stage=1, dropout_prob=0.2)
    assert deep.cnn.skip_channels == [2, 4, 8] and [len(s) for s in deep.cnn.stages] == [2, 2, 2]
    assert {m.p for m in deep.modules() if isinstance(m, nn.Dropout)} == {0.2}
    deep.eval()
    x = torch.randn(1, 2, 16, 8, 24)
    out = deep(x)
    assert out.shape == (1, 5, 2, 1, 3)
    torch.testing.assert_close(out, deep.proj(deep.cnn(x)[1]))
    assert DeepCNNBranch(in_channels=1, out_channels=2, feature_size=1).cnn.skip_channels == [1, 2, 4]
    batch = DeepCNNBranch(in_channels=1, out_channels=2, feature_size=2, norm_name="batch")
    assert isinstance(batch.proj.adn.N, nn.BatchNorm3d) and isinstance(batch.cnn.stem.adn.N, nn.BatchNorm3d)
    flat = DeepCNNBranch(spatial_dims=2, in_channels=1, out_channels=3, feature_size=2, blocks_per_stage=1)
    assert flat(torch.randn(1, 1, 8, 16)).shape == (1, 3, 1, 2)


# ------------------------------------------------------------------------------------------------------ decoder


def test_up_block_layers() -> None:
    """Trilinear x2 upsampling (align_corners False), a 3x3x3 conv, an attention gate, a residual block."""
    block = UpBlock(3, in_channels=6, skip_channels=3, out_channels=4)
    assert block.up.scale_factor == 2 and block.up.mode == "trilinear" and block.up.align_corners is False
    _conv_norm_act(block.conv, 6, 4, kernel=3)
    gate = block.gate
    assert gate.W_g[0].conv.in_channels == 4 and gate.W_g[0].conv.out_channels == 2
    assert gate.W_x[0].conv.in_channels == 3 and gate.W_x[0].conv.out_channels == 2
    assert block.res.conv1.conv.in_channels == 7 and block.res.conv2.conv.out_channels == 4
    assert not any(isinstance(m, nn.Dropout) for m in block.res.modules())
    assert UpBlock(3, 4, 2, 2).gate.W_g[0].conv.out_channels == 1
    assert UpBlock(3, 4, 2, 1).gate.W_g[0].conv.out_channels == 1
    assert UpBlock(3, 4, 2, 2, attention_gate=False).gate is None
    assert UpBlock(2, 4, 2, 2).up.mode == "bilinear" and UpBlock(1, 4, 2, 2).up.mode == "linear"
    dropped = UpBlock(3, 4, 2, 2, dropout_prob=0.1, norm_name="batch")
    assert {m.p for m in dropped.res.modules() if isinstance(m, nn.Dropout)} == {0.1}
    assert isinstance(dropped.conv.adn.N, nn.BatchNorm3d) and isinstance(dropped.res.norm1, nn.BatchNorm3d)


@pytest.mark.parametrize("attention_gate", [True, False])
def test_up_block_forward_by_composition(attention_gate: bool) -> None:
    """Output = res(cat(conv(up(x)), gate(skip))) at the skip's resolution."""
    torch.manual_seed(2)
    block = UpBlock(3, 4, 2, 3, attention_gate=attention_gate).eval()
    x, skip = torch.randn(1, 4, 3, 2, 4), torch.randn(1, 2, 6, 4, 8)
    out = block(x, skip)
    assert out.shape == (1, 3, 6, 4, 8)
    up = block.conv(F.interpolate(x, scale_factor=2, mode="trilinear", align_corners=False))
    gated = block.gate(g=up, x=skip) if attention_gate else skip
    torch.testing.assert_close(out, block.res(torch.cat([up, gated], dim=1)))


def test_seg_decoder_layers() -> None:
    """One up-block per skip, coarsest first, an SE block (reduction 2 by default), a 1x1x1 head, and one
    deep-supervision head per up-block but the last."""
    dec = SegDecoder(3, in_channels=16, skip_channels=[2, 4, 8], out_channels=5)
    assert len(dec.blocks) == 3
    assert [b.conv.conv.in_channels for b in dec.blocks] == [16, 8, 4]
    assert [b.conv.conv.out_channels for b in dec.blocks] == [8, 4, 2]
    assert all(b.gate is not None for b in dec.blocks)
    assert dec.se.fc[0].in_features == 2 and dec.se.fc[0].out_features == 1
    assert dec.head.weight.shape == (5, 2, 1, 1, 1)
    assert dec.deep_supervision is True
    assert not any(isinstance(m, nn.Dropout) for m in dec.modules())
    assert [tuple(h.weight.shape) for h in dec.ds_heads] == [(5, 8, 1, 1, 1), (5, 4, 1, 1, 1)]
    wide = SegDecoder(3, 16, [12, 4], 3, attention_gate=False, se_reduction=4, dropout_prob=0.2, norm_name="batch")
    assert wide.se.fc[0].in_features == 12 and wide.se.fc[0].out_features == 3
    assert all(b.gate is None for b in wide.blocks) and len(wide.ds_heads) == 1
    assert {m.p for m in wide.modules() if isinstance(m, nn.Dropout)} == {0.2}
    assert isinstance(wide.blocks[0].conv.adn.N, nn.BatchNorm3d)
    assert SegDecoder(3, 16, [8, 12], 3).se.fc[0].out_features == 4  # the finest skip's channels // 2
    assert len(SegDecoder(3, 16, [2, 4, 8], 5, deep_supervision=False).ds_heads) == 0
    with pytest.raises(ValueError, match="skip_channels must name at least one skip"):
        SegDecoder(3, 16, [], 5)


@pytest.mark.parametrize("shape", [(16, 16, 16), (8, 16, 24)])
def test_seg_decoder_forward_by_composition(shape: tuple[int, int, int]) -> None:
    """Training mode: the logits are head(se(...)) of the up-block chain and the auxiliary logits are the heads
    of the /4 and /2 outputs, returned finest first."""
    torch.manual_seed(3)
    dec = SegDecoder(3, in_channels=6, skip_channels=[2, 3, 4], out_channels=5).train()
    skips = [torch.randn(2, c, *(n // 2**i for n in shape)) for i, c in enumerate([2, 3, 4])]
    x = torch.randn(2, 6, *(n // 8 for n in shape))
    seg, aux = dec(x, skips)
    h4 = dec.blocks[0](x, skips[2])
    h2 = dec.blocks[1](h4, skips[1])
    h1 = dec.blocks[2](h2, skips[0])
    assert seg.shape == (2, 5, *shape)
    torch.testing.assert_close(seg, dec.head(dec.se(h1)))
    assert len(aux) == 2
    torch.testing.assert_close(aux[0], dec.ds_heads[1](h2))
    torch.testing.assert_close(aux[1], dec.ds_heads[0](h4))
    dec.eval()
    seg_eval, aux_eval = dec(x, skips)
    assert aux_eval == [] and seg_eval.shape == seg.shape


def test_seg_decoder_single_skip_and_skip_count() -> None:
    """One skip: one up-block and no auxiliary head; the number of skips must match the number of blocks."""
    dec = SegDecoder(3, 4, [2], 3).train()
    assert len(dec.blocks) == 1 and len(dec.ds_heads) == 0
    seg, aux = dec(torch.randn(1, 4, 2, 2, 2), [torch.randn(1, 2, 4, 4, 4)])
    assert seg.shape == (1, 3, 4, 4, 4) and aux == []
    three = SegDecoder(3, 4, [2, 2, 2], 3)
    with pytest.raises(ValueError, match="zip"):
        three(torch.randn(1, 4, 2, 2, 2), [torch.randn(1, 2, 8, 8, 8), torch.randn(1, 2, 4, 4, 4)])


def test_seg_decoder_without_deep_supervision_in_training() -> None:
    """``deep_supervision=False`` returns no auxiliary logits even in training mode."""
    dec = SegDecoder(3, 4, [2, 2], 3, deep_supervision=False).train()
    assert dec(torch.randn(1, 4, 2, 2, 2), [torch.randn(1, 2, 8, 8, 8), torch.randn(1, 2, 4, 4, 4)])[1] == []


# ------------------------------------------------------------------------------------------------------- Swin


@pytest.fixture
def onnx_tracing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend that ``torch.onnx.export`` is tracing."""
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)


def test_swin_branch_defaults() -> None:
    """Defaults: embedding 24 from 16 channels with patch 2, windows of 7, two stages of two blocks with 3 and 6
    heads, MLP ratio 4, no dropout, a 1x1x1 projection 96 -> 128."""
    branch = SwinBranch()
    swin = branch.swin
    assert swin.patch_embed.proj.weight.shape == (24, 16, 2, 2, 2) and swin.patch_embed.proj.stride == (2, 2, 2)
    assert swin.num_layers == 2 and len(branch.stages) == 2
    assert branch.stages[0] is swin.layers1[0] and branch.stages[1] is swin.layers2[0]
    assert [len(s.blocks) for s in branch.stages] == [2, 2]
    assert [s.blocks[0].num_heads for s in branch.stages] == [3, 6]
    assert branch.stages[0].window_size == (7, 7, 7)
    assert branch.stages[0].blocks[0].mlp.linear1.out_features == 96
    assert swin.pos_drop.p == 0.0 and branch.stages[0].blocks[0].attn.attn_drop.p == 0.0
    assert isinstance(branch.stages[1].blocks[1].drop_path, nn.Identity)
    _conv_norm_act(branch.proj, 96, 128, kernel=1)
    assert branch.out_channels == 128 and branch.downsampling == 8 and SwinBranch.patch_size == 2


def test_swin_branch_arguments_reach_the_transformer() -> None:
    """Every argument changes the transformer as documented."""
    branch = SwinBranch(
        in_channels=3, out_channels=5, feature_size=4, depths=(1, 2, 1), num_heads=(1, 2, 4), window_size=(2, 3, 4),
        mlp_ratio=2.0, dropout_prob=0.1, attn_dropout_prob=0.2, drop_path_rate=0.3, norm_name="batch",
    )
    swin = branch.swin
    assert swin.patch_embed.proj.weight.shape == (4, 3, 2, 2, 2)
    assert len(branch.stages) == 3 and branch.stages[2] is swin.layers3[0] and swin.layers3[0].downsample is None
    assert branch.stages[1].downsample is not None
    assert [len(s.blocks) for s in branch.stages] == [1, 2, 1]
    assert [s.blocks[0].num_heads for s in branch.stages] == [1, 2, 4]
    assert branch.stages[0].window_size == (2, 3, 4)
    assert branch.stages[0].blocks[0].mlp.linear1.out_features == 8
    assert swin.pos_drop.p == 0.1 and branch.stages[0].blocks[0].mlp.drop1.p == 0.1
    assert branch.stages[0].blocks[0].attn.attn_drop.p == 0.2
    assert branch.stages[2].blocks[0].drop_path.drop_prob == pytest.approx(0.3)
    assert isinstance(branch.proj.adn.N, nn.BatchNorm3d) and branch.proj.conv.in_channels == 16
    assert branch.proj.conv.out_channels == 5
    assert SwinBranch(feature_size=4, num_heads=(1, 1), window_size=1).stages[0].window_size == (1, 1, 1)


@pytest.mark.parametrize("shape", [(16, 16, 16), (24, 32, 16), (8, 40, 24)])
def test_swin_branch_output_shapes(shape: tuple[int, int, int]) -> None:
    """The output is at /8 with out_channels channels for sizes that are not multiples of the window."""
    branch = SwinBranch(in_channels=2, out_channels=3, feature_size=2, depths=(1, 1), num_heads=(1, 1), window_size=4)
    assert branch(torch.randn(1, 2, *shape)).shape == (1, 3, *(n // 8 for n in shape))


def test_swin_branch_two_dimensional() -> None:
    """``spatial_dims=2`` builds a 2D transformer and a 2D projection."""
    branch = SwinBranch(spatial_dims=2, in_channels=2, out_channels=3, feature_size=2, num_heads=(1, 1), window_size=2)
    assert branch.swin.patch_embed.proj.weight.shape == (2, 2, 2, 2) and isinstance(branch.proj.conv, nn.Conv2d)
    assert branch.stages[0].window_size == (2, 2)
    assert branch(torch.randn(1, 2, 16, 24)).shape == (1, 3, 2, 3)


@pytest.mark.parametrize("depths,heads", [((1, 1), (1, 2)), ((1, 1, 1), (1, 2, 2))])
def test_swin_branch_forward_by_composition(depths: tuple[int, ...], heads: tuple[int, ...]) -> None:
    """Output = proj(layer-normalised features after the stages), the stages run on the patch embedding."""
    torch.manual_seed(4)
    branch = SwinBranch(in_channels=2, out_channels=3, feature_size=2, depths=depths, num_heads=heads, window_size=2)
    branch.eval()
    x = torch.randn(1, 2, 16, 24, 8)
    out = branch(x)
    h = branch.swin.patch_embed(x)
    for stage in branch.stages:
        h = stage(h.contiguous())
    assert h.shape == (1, 8, 2, 3, 1)
    normalised = F.layer_norm(h.movedim(1, -1), (8,)).movedim(-1, 1)
    torch.testing.assert_close(out, branch.proj(normalised))


@pytest.mark.parametrize(
    "depths,heads,shape",
    [((1, 1), (1, 2), (24, 40, 8)), ((1, 1, 1), (1, 2, 2), (24, 40, 8)), ((1, 2, 2), (1, 2, 2), (40, 24, 56))],
)
@pytest.mark.usefixtures("onnx_tracing")
def test_swin_branch_while_exporting_gives_the_same_values(
    depths: tuple[int, ...], heads: tuple[int, ...], shape: tuple[int, int, int]
) -> None:
    """The export form of the stages (integer padding of the attention mask) gives MONAI's values, also for maps
    that are not whole windows."""
    torch.manual_seed(5)
    branch = SwinBranch(in_channels=2, out_channels=3, feature_size=2, depths=depths, num_heads=heads, window_size=2)
    branch.eval()
    x = torch.randn(1, 2, *shape)
    out = branch(x)
    h = branch.swin.patch_embed(x)
    for stage in branch.stages:
        h = stage(h.contiguous())
    normalised = F.layer_norm(h.movedim(1, -1), (h.shape[1],)).movedim(-1, 1)
    assert out.shape == (1, 3, *(n // 8 for n in shape))
    torch.testing.assert_close(out, branch.proj(normalised))


def test_swin_branch_argument_checks() -> None:
    """Stage counts, head counts, divisibility and window sizes are checked with precise messages."""
    with pytest.raises(ValueError, match=r"depths must have 2 or 3 stages .*, got \(1,\)"):
        SwinBranch(feature_size=8, depths=(1,), num_heads=(1,))
    with pytest.raises(ValueError, match="2 or 3 stages"):
        SwinBranch(feature_size=8, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1))
    with pytest.raises(ValueError, match=r"num_heads needs one entry per stage of depths \(1, 1, 1\), got \(1, 1\)"):
        SwinBranch(feature_size=8, depths=(1, 1, 1), num_heads=(1, 1))
    with pytest.raises(ValueError, match=r"depths and num_heads must be positive, got \(0, 1\) and \(1, 1\)"):
        SwinBranch(feature_size=8, depths=(0, 1), num_heads=(1, 1))
    with pytest.raises(ValueError, match="must be positive"):
        SwinBranch(feature_size=8, depths=(1, 1), num_heads=(1, 0))
    with pytest.raises(
        ValueError, match=r"Swin stage 0 has 4 channels \(feature_size=4 \* 1\), which is not divisible by its "
        r"num_heads=3\."
    ):
        SwinBranch(feature_size=4, depths=(1, 1), num_heads=(3, 1))
    with pytest.raises(ValueError, match=r"Swin stage 1 has 8 channels \(feature_size=4 \* 2\), .* num_heads=3\."):
        SwinBranch(feature_size=4, depths=(1, 1), num_heads=(1, 3))
    with pytest.raises(ValueError, match=r"Swin stage 2 has 12 channels \(feature_size=3 \* 4\), .* num_heads=8\."):
        SwinBranch(feature_size=3, depths=(1, 1, 1), num_heads=(1, 1, 8))
    with pytest.raises(ValueError, match=r"window_size must be positive, got \(2, 0, 2\)"):
        SwinBranch(feature_size=4, num_heads=(1, 1), window_size=(2, 0, 2))
    with pytest.raises(ValueError, match="window_size must be positive, got 0"):
        SwinBranch(feature_size=4, num_heads=(1, 1), window_size=0)
