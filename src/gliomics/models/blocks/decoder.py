"""The segmentation decoder of MGMT-Net: up-blocks with skips, SE in the last stage, deep-supervision heads."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import ChannelSELayer, Convolution
from monai.networks.layers import Conv
from monai.networks.nets.attentionunet import AttentionBlock
from torch import nn

from gliomics.models.blocks.layers import DEFAULT_ACT, DEFAULT_NORM, residual_block

__all__ = ["SegDecoder", "UpBlock"]
_INTERP = {1: "linear", 2: "bilinear", 3: "trilinear"}


class UpBlock(nn.Module):
    """One decoder stage: interpolate x2, 3x3x3 conv-norm-leaky-ReLU, concatenate the (optionally gated) skip, then a
    residual conv-norm-leaky-ReLU block (MONAI ``UnetResBlock``, whose 1x1x1 projection carries the residual).

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: channels of the coarser input.
        skip_channels: channels of the encoder skip at the target resolution.
        out_channels: channels of the output.
        attention_gate: gate the skip with MONAI's Attention U-Net ``AttentionBlock`` (Oktay et al., 2018).
        norm_name: normalisation, in MONAI's ``(name, args)`` form.
        dropout_prob: dropout inside the residual block.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        skip_channels: int,
        out_channels: int,
        attention_gate: bool = True,
        norm_name: str | tuple = DEFAULT_NORM,
        dropout_prob: float = 0.0,
    ) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode=_INTERP[spatial_dims], align_corners=False)
        self.conv = Convolution(spatial_dims, in_channels, out_channels, kernel_size=3, act=DEFAULT_ACT, norm=norm_name)
        self.gate = (
            AttentionBlock(spatial_dims, f_int=max(out_channels // 2, 1), f_g=out_channels, f_l=skip_channels)
            if attention_gate
            else None
        )
        self.res = residual_block(spatial_dims, out_channels + skip_channels, out_channels, norm_name, dropout_prob)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.up(x))
        if self.gate is not None:
            skip = self.gate(g=x, x=skip)
        return self.res(torch.cat([x, skip], dim=1))


class SegDecoder(nn.Module):
    """Segmentation decoder of MGMT-Net, section 3.3 of Abdusalomov et al., Bioengineering 2025,
    <https://doi.org/10.3390/bioengineering12090979>.

    One :class:`UpBlock` per skip (three for skips at /4, /2, /1), a squeeze-and-excitation block (MONAI
    ``ChannelSELayer``) in the last stage and a final 1x1x1 conv to the class logits. Deep-supervision heads
    (1x1x1 convs) read the outputs of every up-block but the last, i.e. /4 and /2; they are computed only in
    training mode and returned at their native resolution, finest first (/2, /4). The loss resizes the target.

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: channels of the encoder output at the coarsest resolution.
        skip_channels: channels of the skips, full resolution first.
        out_channels: number of classes.
        attention_gate: gate the skips (see :class:`UpBlock`).
        deep_supervision: build and run the auxiliary heads in training mode.
        se_reduction: reduction ratio of the SE block.
        norm_name: normalisation, in MONAI's ``(name, args)`` form.
        dropout_prob: dropout inside the residual blocks.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        skip_channels: Sequence[int],
        out_channels: int,
        attention_gate: bool = True,
        deep_supervision: bool = True,
        se_reduction: int = 2,
        norm_name: str | tuple = DEFAULT_NORM,
        dropout_prob: float = 0.0,
    ) -> None:
        super().__init__()
        if not skip_channels:
            raise ValueError("skip_channels must name at least one skip.")
        conv = Conv[Conv.CONV, spatial_dims]
        self.blocks = nn.ModuleList()
        channels = in_channels
        for skip in reversed(skip_channels):
            self.blocks.append(
                UpBlock(spatial_dims, channels, skip, skip, attention_gate, norm_name, dropout_prob=dropout_prob)
            )
            channels = skip
        self.se = ChannelSELayer(spatial_dims, channels, r=se_reduction)
        self.head = conv(channels, out_channels, kernel_size=1)
        self.deep_supervision = deep_supervision
        # One head per up-block output except the last, coarsest first, e.g. /4 then /2.
        self.ds_heads = (
            nn.ModuleList(conv(c, out_channels, kernel_size=1) for c in list(reversed(skip_channels))[:-1])
            if deep_supervision
            else nn.ModuleList()
        )

    def forward(self, x: torch.Tensor, skips: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Decode.

        Args:
            x: the encoder output at the coarsest resolution.
            skips: the skips, full resolution first.

        Returns:
            the logits at full resolution and the deep-supervision logits, finest first (empty in eval mode).
        """
        aux = []
        run_ds = self.training and self.deep_supervision
        for i, (block, skip) in enumerate(zip(self.blocks, reversed(skips), strict=True)):
            x = block(x, skip)
            if run_ds and i < len(self.ds_heads):
                aux.append(self.ds_heads[i](x))
        return self.head(self.se(x)), aux[::-1]
