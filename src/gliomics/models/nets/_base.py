"""What MGMT-Net and the baseline adapters share: argument and input checks, and the output dict."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from gliomics.constants import SEQUENCES

__all__ = ["MultiSequenceNet"]


class MultiSequenceNet(nn.Module):
    """Base of the gliomics networks, which take ``B x in_channels x spatial`` inputs with one channel per sequence
    (in the order of ``SEQUENCES``) and return the dict described in :class:`~gliomics.models.nets.mgmtnet.MGMTNet`.

    Subclasses set ``size_divisor`` and ``min_size`` (class or instance attributes) to the spatial sizes they accept.

    Args:
        spatial_dims: number of spatial dimensions (2 or 3).
        in_channels: number of input sequences.
    """

    #: Every spatial size of the input must be a multiple of this.
    size_divisor: int = 1
    #: Smallest spatial size of the input.
    min_size: int = 1

    def __init__(self, spatial_dims: int, in_channels: int) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        if in_channels < 1:
            raise ValueError(f"in_channels (number of sequences) must be positive, got {in_channels}.")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` is ``B x in_channels x spatial`` with a usable spatial size."""
        if x.ndim != self.spatial_dims + 2:
            raise ValueError(
                f"expected a {self.spatial_dims + 2}D input (batch, sequence, {self.spatial_dims} spatial axes), "
                f"got shape {tuple(x.shape)}."
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected {self.in_channels} input channels, one per sequence {SEQUENCES[: self.in_channels]}, "
                f"got {x.shape[1]} (shape {tuple(x.shape)})."
            )
        problem = self.size_problem(x.shape[2:])
        if problem:
            raise ValueError(problem)

    def size_problem(self, size: Sequence[int]) -> str | None:
        """Why the network cannot take inputs of spatial ``size`` (e.g. a training patch), or ``None`` if it can."""
        size = tuple(int(s) for s in size)
        if any(s % self.size_divisor or s < self.min_size for s in size):
            return self._size_error(size)
        return None

    def _size_error(self, size: tuple[int, ...]) -> str:
        """The message of :meth:`check_input` for an input of unusable spatial ``size``."""
        return (
            f"{type(self).__name__} needs every spatial size to be a multiple of {self.size_divisor} and at least "
            f"{self.min_size}, got {size}."
        )

    @staticmethod
    def _output(
        seg: torch.Tensor | None,
        markers: dict[str, torch.Tensor] | None,
        aux: list[torch.Tensor] | None = None,
        alpha: torch.Tensor | None = None,
        pool_weights: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """The output dict: ``seg``, ``deep_supervision`` (a list, empty without ``aux``), ``markers``, ``alpha``
        and ``pool_weights``."""
        return {
            "seg": seg,
            "deep_supervision": aux or [],
            "markers": markers,
            "alpha": alpha,
            "pool_weights": pool_weights,
        }
