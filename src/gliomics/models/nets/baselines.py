"""Adapters around MONAI baselines that return the MGMT-Net output dict.

Every adapter's ``forward(x, present=None)`` returns the keys of :class:`~gliomics.models.nets.mgmtnet.MGMTNet`:

- ``seg``: logits ``B x out_channels x spatial``, or ``None`` for the marker-only DenseNet; the trainer and the
  predictor skip the segmentation loss and outputs when it is ``None``.
- ``deep_supervision``: a list of logits, finest first (DynUNet only, in training mode; MONAI gives them at full
  resolution), otherwise empty.
- ``markers``: dict marker -> ``B`` logits. The segmentation baselines pool their bottleneck (global average)
  into the same :class:`~gliomics.models.blocks.marker_head.MarkerHeads` as MGMT-Net, so the comparison differs
  only in what MGMT-Net adds (fusion, hybrid encoder, gated attention pooling). ``marker_head=False`` gives
  ``markers=None`` (a segmentation-only baseline).
- ``alpha`` and ``pool_weights``: ``None``.

The baselines have no notion of a missing sequence: the channels of missing sequences (``present`` False) are set
to zero, which is also what modality dropout does to them in training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from monai.networks.nets import DenseNet121, DynUNet, SegResNet, SwinUNETR
from torch import nn

from gliomics.constants import MARKERS, NUM_CLASSES, SEQUENCES
from gliomics.models.blocks.cmaf import broadcast_present, check_present
from gliomics.models.blocks.marker_head import MarkerHeads
from gliomics.models.nets._base import MultiSequenceNet

__all__ = ["DenseNetMarkers", "DynUNetAdapter", "SegResNetAdapter", "SwinUNETRAdapter"]


class _Adapter(MultiSequenceNet):
    """Missing-sequence zeroing and the optional GAP marker head shared by the adapters; the input checks and the
    output dict come from :class:`~gliomics.models.nets._base.MultiSequenceNet`.

    Args:
        spatial_dims: number of spatial dimensions (2 or 3).
        in_channels: number of input sequences.
    """

    def __init__(self, spatial_dims: int, in_channels: int) -> None:
        super().__init__(spatial_dims, in_channels)
        self.marker_heads: MarkerHeads | None = None

    def _add_marker_head(self, channels: int, markers: Sequence[str], enabled: bool) -> None:
        self.markers = tuple(markers)
        if enabled:
            self.marker_heads = MarkerHeads(channels, min(64, channels), markers=self.markers)

    def _prepare(self, x: torch.Tensor, present: torch.Tensor | None) -> torch.Tensor:
        self.check_input(x)
        if present is None:
            return x
        present = check_present(present, x, self.in_channels)
        return x * broadcast_present(present, x).to(x.dtype)

    def _markers(self, bottleneck: torch.Tensor) -> dict[str, torch.Tensor] | None:
        if self.marker_heads is None:
            return None
        return self.marker_heads(bottleneck.flatten(2).mean(dim=-1))


def _run_capturing(net: nn.Module, tap: nn.Module, x: torch.Tensor) -> tuple[Any, torch.Tensor]:
    """Run ``net`` and return its output and the output of its submodule ``tap``, without a second pass."""
    captured: list[torch.Tensor] = []
    handle = tap.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        out = net(x)
    finally:
        handle.remove()
    return out, captured[-1]


class SwinUNETRAdapter(_Adapter):
    """MONAI ``SwinUNETR`` (Hatamizadeh et al., <https://arxiv.org/abs/2201.01266>) returning the gliomics dict;
    markers from its bottleneck (``16 * feature_size`` channels at /32). Inputs must be multiples of 32 and at
    least 64 per axis.

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: number of input sequences.
        out_channels: number of segmentation classes.
        feature_size: Swin embedding dimension; a multiple of 12 for MONAI.
        depths: Swin blocks per stage (4 stages).
        num_heads: attention heads per stage.
        window_size: attention window.
        dropout_prob: dropout of the transformer blocks.
        drop_path_rate: stochastic depth rate.
        marker_head: add the GAP marker head.
        markers: marker names.
    """

    size_divisor = 32
    # At 32 the bottleneck is 1 voxel, which MONAI's instance normalisation refuses in training.
    min_size = 64

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = len(SEQUENCES),
        out_channels: int = NUM_CLASSES,
        feature_size: int = 48,
        depths: Sequence[int] = (2, 2, 2, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window_size: int = 7,
        dropout_prob: float = 0.0,
        drop_path_rate: float = 0.0,
        marker_head: bool = True,
        markers: Sequence[str] = MARKERS,
    ) -> None:
        super().__init__(spatial_dims, in_channels)
        if feature_size % 12:
            raise ValueError(f"SwinUNETR needs feature_size divisible by 12, got {feature_size}.")
        self.net = SwinUNETR(
            in_channels=in_channels,
            out_channels=out_channels,
            feature_size=feature_size,
            depths=depths,
            num_heads=num_heads,
            window_size=window_size,
            drop_rate=dropout_prob,
            dropout_path_rate=drop_path_rate,
            spatial_dims=spatial_dims,
        )
        self._add_marker_head(16 * feature_size, markers, marker_head)

    def forward(self, x: torch.Tensor, present: torch.Tensor | None = None) -> dict[str, Any]:
        seg, bottleneck = _run_capturing(self.net, self.net.encoder10, self._prepare(x, present))
        return self._output(seg, self._markers(bottleneck))


class SegResNetAdapter(_Adapter):
    """MONAI ``SegResNet`` (Myronenko, <https://arxiv.org/abs/1810.11654>) returning the gliomics dict; markers
    from the deepest encoder features.

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: number of input sequences.
        out_channels: number of segmentation classes.
        init_filters: channels of the first level; doubled at every level.
        blocks_down: residual blocks per encoder level.
        blocks_up: residual blocks per decoder level.
        dropout_prob: dropout after the first convolution.
        marker_head: add the GAP marker head.
        markers: marker names.
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = len(SEQUENCES),
        out_channels: int = NUM_CLASSES,
        init_filters: int = 16,
        blocks_down: Sequence[int] = (1, 2, 2, 4),
        blocks_up: Sequence[int] = (1, 1, 1),
        dropout_prob: float = 0.0,
        marker_head: bool = True,
        markers: Sequence[str] = MARKERS,
    ) -> None:
        super().__init__(spatial_dims, in_channels)
        if len(blocks_up) != len(blocks_down) - 1:
            raise ValueError(f"blocks_up needs len(blocks_down) - 1 entries, got {blocks_down} and {blocks_up}.")
        self.net = SegResNet(
            spatial_dims=spatial_dims,
            init_filters=init_filters,
            in_channels=in_channels,
            out_channels=out_channels,
            dropout_prob=dropout_prob or None,
            blocks_down=tuple(blocks_down),
            blocks_up=tuple(blocks_up),
        )
        self.size_divisor = self.min_size = 2 ** (len(blocks_down) - 1)
        self._add_marker_head(init_filters * self.size_divisor, markers, marker_head)

    def forward(self, x: torch.Tensor, present: torch.Tensor | None = None) -> dict[str, Any]:
        bottleneck, down = self.net.encode(self._prepare(x, present))
        down.reverse()
        seg = self.net.decode(bottleneck, down)
        return self._output(seg, self._markers(bottleneck))


class DynUNetAdapter(_Adapter):
    """MONAI ``DynUNet`` with nnU-Net-like 3x3x3 kernels and stride-2 levels (Isensee et al.,
    <https://arxiv.org/abs/1904.08128>) returning the gliomics dict; markers from the bottleneck.

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: number of input sequences.
        out_channels: number of segmentation classes.
        filters: channels per level, full resolution first; every level after the first halves the size.
        deep_supervision: return auxiliary logits (finest first, at full resolution) in training mode.
        deep_supr_num: number of auxiliary outputs.
        res_block: residual blocks instead of plain conv blocks.
        dropout_prob: dropout of the conv blocks.
        marker_head: add the GAP marker head.
        markers: marker names.
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = len(SEQUENCES),
        out_channels: int = NUM_CLASSES,
        filters: Sequence[int] = (32, 64, 128, 256, 320),
        deep_supervision: bool = True,
        deep_supr_num: int = 2,
        res_block: bool = False,
        dropout_prob: float = 0.0,
        marker_head: bool = True,
        markers: Sequence[str] = MARKERS,
    ) -> None:
        super().__init__(spatial_dims, in_channels)
        levels = len(filters)
        if levels < 3:
            raise ValueError(f"filters needs at least 3 levels, got {tuple(filters)}.")
        if deep_supervision and not 1 <= deep_supr_num <= levels - 2:
            raise ValueError(f"deep_supr_num must be in [1, {levels - 2}] for {levels} levels, got {deep_supr_num}.")
        strides = [1] + [2] * (levels - 1)
        self.net = DynUNet(
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            out_channels=out_channels,
            kernel_size=[3] * levels,
            strides=strides,
            upsample_kernel_size=strides[1:],
            filters=list(filters),
            dropout=dropout_prob or None,
            deep_supervision=deep_supervision,
            deep_supr_num=deep_supr_num,
            res_block=res_block,
        )
        self.size_divisor = self.min_size = 2 ** (levels - 1)
        self._add_marker_head(filters[-1], markers, marker_head)

    def forward(self, x: torch.Tensor, present: torch.Tensor | None = None) -> dict[str, Any]:
        out, bottleneck = _run_capturing(self.net, self.net.bottleneck, self._prepare(x, present))
        aux: list[torch.Tensor] = []
        if out.ndim == x.ndim + 1:  # training with deep supervision: B x (1 + k) x C x spatial
            out, aux = out[:, 0], list(out[:, 1:].unbind(dim=1))
        return self._output(out, self._markers(bottleneck), aux)


class DenseNetMarkers(_Adapter):
    """MONAI ``DenseNet121`` (Huang et al., <https://arxiv.org/abs/1608.06993>), 3D, for the markers only: one
    output per marker, ``seg=None``.

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: number of input sequences.
        init_features: channels after the stem.
        growth_rate: channels added by each dense layer.
        block_config: dense layers per block ((6, 12, 24, 16) for DenseNet-121).
        dropout_prob: dropout inside the dense layers.
        markers: marker names.
    """

    min_size = 32

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = len(SEQUENCES),
        init_features: int = 64,
        growth_rate: int = 32,
        block_config: Sequence[int] = (6, 12, 24, 16),
        dropout_prob: float = 0.0,
        markers: Sequence[str] = MARKERS,
    ) -> None:
        super().__init__(spatial_dims, in_channels)
        self.markers = tuple(markers)
        self.net = DenseNet121(
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            out_channels=len(self.markers),
            init_features=init_features,
            growth_rate=growth_rate,
            block_config=tuple(block_config),
            dropout_prob=dropout_prob,
        )

    def forward(self, x: torch.Tensor, present: torch.Tensor | None = None) -> dict[str, Any]:
        logits = self.net(self._prepare(x, present))
        return self._output(None, dict(zip(self.markers, logits.unbind(dim=1), strict=True)))
