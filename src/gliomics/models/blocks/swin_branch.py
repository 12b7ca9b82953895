"""The Swin Transformer branch of the hybrid encoder, built on MONAI's ``SwinTransformer``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import Convolution
from monai.networks.nets.swin_unetr import SwinTransformer, compute_mask, get_window_size
from monai.utils import ensure_tuple_rep
from torch import nn

from gliomics.models.blocks.cmaf import exporting
from gliomics.models.blocks.layers import DEFAULT_ACT, DEFAULT_NORM

__all__ = ["SwinBranch"]


class SwinBranch(nn.Module):
    """Transformer branch of the MGMT-Net hybrid encoder, section 3.2 of Abdusalomov et al., Bioengineering 2025,
    <https://doi.org/10.3390/bioengineering12090979>, on MONAI's ``SwinTransformer`` (Liu et al.,
    <https://arxiv.org/abs/2103.14030>): patch size 2, windowed and shifted-window attention, patch merging.

    Only the stages needed to reach /8 are built: stage 1 attends at /2 and stage 2 at /4, each followed by patch
    merging, which brings the features to /8. An optional third stage attends at /8 (its patch merging is disabled,
    since /16 is not used). MONAI's ``SwinTransformer.forward`` runs all four stages, so this module calls its
    submodules directly. MONAI pads to whole windows internally and shrinks a window to the feature map when the
    map is smaller, so the only constraint on the input is divisibility by 8. The features at /8
    (``feature_size * 4`` channels, layer-normalised as in SwinUNETR) are projected to ``out_channels`` by a
    1x1x1 conv-norm-leaky-ReLU.

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: channels of the input (the fused CMAF features).
        out_channels: channels of the output at /8.
        feature_size: Swin embedding dimension; stage ``i`` has ``feature_size * 2**i`` channels.
        depths: Swin blocks per stage; length 2 (/2, /4) or 3 (/2, /4, /8).
        num_heads: attention heads per stage; ``feature_size * 2**i`` must be divisible by ``num_heads[i]``.
        window_size: attention window (8 in the paper).
        mlp_ratio: hidden size of the transformer MLPs relative to their input.
        dropout_prob: dropout inside the transformer blocks.
        attn_dropout_prob: dropout of the attention weights.
        drop_path_rate: stochastic depth rate, increasing linearly over the blocks.
        norm_name: normalisation of the output projection, in MONAI's ``(name, args)`` form.
    """

    patch_size: int = 2

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = 16,
        out_channels: int = 128,
        feature_size: int = 24,
        depths: Sequence[int] = (2, 2),
        num_heads: Sequence[int] = (3, 6),
        window_size: Sequence[int] | int = 7,
        mlp_ratio: float = 4.0,
        dropout_prob: float = 0.0,
        attn_dropout_prob: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_name: str | tuple = DEFAULT_NORM,
    ) -> None:
        super().__init__()
        depths, num_heads = tuple(depths), tuple(num_heads)
        if len(depths) not in (2, 3):
            raise ValueError(f"depths must have 2 or 3 stages (the deepest used stage is /8), got {depths}.")
        if len(num_heads) != len(depths):
            raise ValueError(f"num_heads needs one entry per stage of depths {depths}, got {num_heads}.")
        if any(d < 1 for d in depths) or any(h < 1 for h in num_heads):
            raise ValueError(f"depths and num_heads must be positive, got {depths} and {num_heads}.")
        for i, heads in enumerate(num_heads):
            dim = feature_size * 2 ** min(i, 2)
            if dim % heads:
                raise ValueError(
                    f"Swin stage {i} has {dim} channels (feature_size={feature_size} * {2 ** min(i, 2)}), "
                    f"which is not divisible by its num_heads={heads}."
                )
        windows = ensure_tuple_rep(window_size, spatial_dims)
        if any(w < 1 for w in windows):
            raise ValueError(f"window_size must be positive, got {window_size}.")
        self.swin = SwinTransformer(
            in_chans=in_channels,
            embed_dim=feature_size,
            window_size=windows,
            patch_size=ensure_tuple_rep(self.patch_size, spatial_dims),
            depths=depths,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            drop_rate=dropout_prob,
            attn_drop_rate=attn_dropout_prob,
            drop_path_rate=drop_path_rate,
            spatial_dims=spatial_dims,
        )
        self.stages: list[nn.Module] = [self.swin.layers1[0], self.swin.layers2[0]]
        if len(depths) == 3:
            self.swin.layers3[0].downsample = None
            self.stages.append(self.swin.layers3[0])
        self.proj = Convolution(spatial_dims, feature_size * 4, out_channels, kernel_size=1, act=DEFAULT_ACT,
                                norm=norm_name)
        self.out_channels = out_channels
        self.downsampling = 8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the global-context features at /8, ``B x out_channels x spatial/8``."""
        x = self.swin.pos_drop(self.swin.patch_embed(x))
        for stage in self.stages:
            x = _export_stage(stage, x.contiguous()) if exporting() else stage(x.contiguous())
        return self.proj(self.swin.proj_out(x, normalize=True))


def _export_stage(stage: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """MONAI's ``BasicLayer.forward`` (the same values) with the padded sizes of the attention mask computed in
    integer arithmetic: its ``int(np.ceil(d / window))`` fixes them at the example's size under ``torch.export``, and
    an ONNX graph exported that way mixes up the windows of every other input size."""
    b, _, *spatial = x.shape
    window, shift = get_window_size(tuple(spatial), stage.window_size, stage.shift_size)
    x = x.movedim(1, -1)
    padded = [(n + w - 1) // w * w for n, w in zip(spatial, window)]  # not -(-n // w): exported, it truncates
    mask = compute_mask(padded, window, shift, x.device)
    for block in stage.blocks:
        x = block(x, mask)
    x = x.view(b, *spatial, -1)
    if stage.downsample is not None:
        x = stage.downsample(x)
    return x.movedim(-1, 1)
