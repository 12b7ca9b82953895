"""Mask-gated attention pooling of the encoder features into one vector per case."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.layers import Conv
from torch import nn

from gliomics.models.blocks.cmaf import exporting

__all__ = ["POOLING_MODES", "AttentionPooling", "tumour_gate"]

POOLING_MODES: tuple[str, ...] = ("attention", "gap")
_ADAPTIVE_AVG = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}
_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def tumour_gate(seg_logits: torch.Tensor, size: torch.Size | tuple[int, ...]) -> torch.Tensor:
    """Soft tumour probability ``1 - p_background`` average-pooled to ``size``: the gate of the marker branch.

    Args:
        seg_logits: segmentation logits ``B x K x spatial``, channel 0 the background.
        size: spatial size of the features to gate (e.g. the encoder output at /8).

    Returns:
        ``B x 1 x size`` with values in [0, 1].
    """
    tumour = 1.0 - torch.softmax(seg_logits, dim=1)[:, :1]
    size = tuple(size)
    if exporting() and all(n % s == 0 for n, s in zip(tumour.shape[2:], size)):
        # the same windows as a plain average pool (ONNX has no adaptive pooling to sizes that vary with the input)
        return _AVG[seg_logits.ndim - 2](tumour, tuple(n // s for n, s in zip(tumour.shape[2:], size)))
    return _ADAPTIVE_AVG[seg_logits.ndim - 2](tumour, size)


class AttentionPooling(nn.Module):
    """Attention-based global pooling (AGP) of MGMT-Net, section 3.4 of Abdusalomov et al., Bioengineering 2025,
    <https://doi.org/10.3390/bioengineering12090979>::

        w = softmax_voxels(W_a tanh(W_f F)),    z = sum_voxels w * F

    with ``W_f`` (C -> hidden) and ``W_a`` (hidden -> 1) as 1x1x1 convolutions. With ``mode="gap"`` (the ablation)
    ``z`` is the global average and ``w`` is uniform, so that callers can treat both modes alike.

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: C, the channels of the features to pool.
        hidden_channels: width of ``W_f``; defaults to ``max(C // 2, 1)``.
        mode: ``"attention"`` or ``"gap"``.
    """

    def __init__(
        self, spatial_dims: int, in_channels: int, hidden_channels: int | None = None, mode: str = "attention"
    ) -> None:
        super().__init__()
        if mode not in POOLING_MODES:
            raise ValueError(f"pooling mode must be one of {POOLING_MODES}, got {mode!r}.")
        if in_channels < 1:
            raise ValueError(f"in_channels must be positive, got {in_channels}.")
        self.mode = mode
        self.out_channels = in_channels
        if mode == "attention":
            hidden_channels = max(in_channels // 2, 1) if hidden_channels is None else hidden_channels
            conv = Conv[Conv.CONV, spatial_dims]
            self.w_f = conv(in_channels, hidden_channels, kernel_size=1)
            self.w_a = conv(hidden_channels, 1, kernel_size=1)

    def forward(self, x: torch.Tensor, gate: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Pool.

        Args:
            x: features ``B x C x spatial``.
            gate: optional ``B x 1 x spatial`` multiplier applied to the features first (mask gating).

        Returns:
            ``z``, ``B x C``, and the pooling weights ``w``, ``B x 1 x spatial``, which sum to 1 per case.
        """
        if gate is not None:
            x = x * gate
        if self.mode == "gap":
            w = torch.full_like(x[:, :1], 1.0 / x[0, 0].numel())
        else:
            scores = self.w_a(torch.tanh(self.w_f(x)))
            w = torch.softmax(scores.flatten(2), dim=-1).view_as(scores)
        z = (w * x).flatten(2).sum(dim=-1)
        return z, w
