"""The CNN branch of the hybrid encoder: residual conv stages with strided downsampling."""

from __future__ import annotations

import torch
from monai.networks.blocks import Convolution
from torch import nn

from gliomics.models.blocks.layers import DEFAULT_ACT, DEFAULT_NORM, residual_block

__all__ = ["CNNBranch", "DeepCNNBranch"]


def _residual_stage(
    spatial_dims: int, in_channels: int, num_blocks: int, norm_name: str | tuple, dropout_prob: float
) -> nn.Sequential:
    """One encoder stage: a strided 2x2x2 conv-norm-leaky-ReLU that halves the resolution and doubles the channels, then
    ``num_blocks`` residual blocks (:func:`~gliomics.models.blocks.layers.residual_block`).

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: channels of the input; the stage outputs twice as many.
        num_blocks: residual blocks after the downsampling.
        norm_name: normalisation, in MONAI's ``(name, args)`` form.
        dropout_prob: dropout inside the residual blocks.
    """
    channels = in_channels * 2
    down = Convolution(
        spatial_dims, in_channels, channels, strides=2, kernel_size=2, padding=0, act=DEFAULT_ACT, norm=norm_name
    )
    blocks = [residual_block(spatial_dims, channels, channels, norm_name, dropout_prob) for _ in range(num_blocks)]
    return nn.Sequential(down, *blocks)


class CNNBranch(nn.Module):
    """CNN branch of the MGMT-Net hybrid encoder, section 3.2 of Abdusalomov et al., Bioengineering 2025,
    <https://doi.org/10.3390/bioengineering12090979>.

    A conv-norm-leaky-ReLU stem at full resolution, then ``num_stages`` stages. Each stage halves the resolution with a
    strided 2x2x2 convolution that doubles the channels, followed by ``blocks_per_stage`` residual 3x3x3
    conv-norm-leaky-ReLU blocks (MONAI ``UnetResBlock``). With three stages the skips are at /1, /2 and /4 and the
    output is at /8 with ``feature_size * 8`` channels.

    The ``encoder="cnn"`` ablation of MGMT-Net wraps a second, deeper instance in :class:`DeepCNNBranch`.

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: channels of the input (the fused CMAF features).
        feature_size: channels of the stem; stage ``i`` has ``feature_size * 2**i``.
        num_stages: number of downsampling stages.
        blocks_per_stage: residual blocks in every stage (2 in the paper).
        norm_name: normalisation, in MONAI's ``(name, args)`` form.
        dropout_prob: dropout inside the residual blocks.
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = 16,
        feature_size: int = 16,
        num_stages: int = 3,
        blocks_per_stage: int = 2,
        norm_name: str | tuple = DEFAULT_NORM,
        dropout_prob: float = 0.0,
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("feature_size", feature_size)):
            if value < 1:
                raise ValueError(f"{name} must be positive, got {value}.")
        if num_stages < 1 or blocks_per_stage < 1:
            raise ValueError(
                f"num_stages and blocks_per_stage must be positive, got {num_stages} and {blocks_per_stage}."
            )
        self.stem = Convolution(spatial_dims, in_channels, feature_size, kernel_size=3, act=DEFAULT_ACT, norm=norm_name)
        #: channels of every skip, from full resolution down (/1, /2, ...).
        self.skip_channels: list[int] = [feature_size * 2**i for i in range(num_stages)]
        self.stages = nn.ModuleList(
            _residual_stage(spatial_dims, c, blocks_per_stage, norm_name, dropout_prob) for c in self.skip_channels
        )
        self.out_channels = feature_size * 2**num_stages
        self.downsampling = 2**num_stages

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Return the skips (full resolution first, ``len == num_stages``) and the deepest features."""
        skips = []
        x = self.stem(x)
        for stage in self.stages:
            skips.append(x)
            x = stage(x)
        return skips, x


class DeepCNNBranch(nn.Module):
    """The ``encoder="cnn"`` ablation of MGMT-Net: a deeper CNN in place of the Swin branch.

    Its stages have the widths of the Swin stages it replaces (``feature_size * 2**i`` at ``/2**(i+1)``, so the stem
    has ``feature_size // 2`` channels) but more residual blocks per stage, and its /8 output is projected to
    ``out_channels`` by a 1x1x1 conv-norm-leaky-ReLU, as the Swin output is. The ablation thus swaps attention for
    convolution at equal widths; its skips are not used.

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: channels of the input (the fused CMAF features).
        out_channels: channels of the output at /8.
        feature_size: the embedding dimension of the Swin branch it replaces.
        blocks_per_stage: residual blocks in every stage.
        norm_name: normalisation, in MONAI's ``(name, args)`` form.
        dropout_prob: dropout inside the residual blocks.
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = 16,
        out_channels: int = 128,
        feature_size: int = 24,
        blocks_per_stage: int = 3,
        norm_name: str | tuple = DEFAULT_NORM,
        dropout_prob: float = 0.0,
    ) -> None:
        super().__init__()
        self.cnn = CNNBranch(
            spatial_dims, in_channels, max(feature_size // 2, 1), 3, blocks_per_stage, norm_name, dropout_prob
        )
        self.proj = Convolution(
            spatial_dims, self.cnn.out_channels, out_channels, kernel_size=1, act=DEFAULT_ACT, norm=norm_name
        )
        self.out_channels = out_channels
        self.downsampling = self.cnn.downsampling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the features at /8, ``B x out_channels x spatial/8``."""
        return self.proj(self.cnn(x)[1])
