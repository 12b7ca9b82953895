"""One small classification head per molecular marker."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from gliomics.constants import MARKERS

__all__ = ["MarkerHeads"]


class MarkerHeads(nn.Module):
    """Marker heads of MGMT-Net, section 3.4 of Abdusalomov et al., Bioengineering 2025,
    <https://doi.org/10.3390/bioengineering12090979>.

    Each marker has its own head, dropout -> Linear -> ReLU -> Linear -> one logit. The heads return logits; the
    sigmoid belongs to the loss (``BCEWithLogits``) and to inference.

    Args:
        in_channels: length of the pooled feature vector.
        hidden_channels: width of the hidden layer of each head.
        dropout_prob: dropout before the first layer (0.3 in the paper).
        markers: names of the markers, one head each; defaults to ``MARKERS``.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int = 64,
        dropout_prob: float = 0.3,
        markers: Sequence[str] = MARKERS,
    ) -> None:
        super().__init__()
        if in_channels < 1 or hidden_channels < 1:
            raise ValueError(
                f"in_channels and hidden_channels must be positive, got {in_channels} and {hidden_channels}."
            )
        if not 0.0 <= dropout_prob < 1.0:
            raise ValueError(f"dropout_prob must be in [0, 1), got {dropout_prob}.")
        if not markers or len(set(markers)) != len(markers):
            raise ValueError(f"markers must be non-empty and unique, got {tuple(markers)}.")
        self.markers = tuple(markers)
        self.heads = nn.ModuleDict(
            {
                m: nn.Sequential(
                    nn.Dropout(dropout_prob),
                    nn.Linear(in_channels, hidden_channels),
                    nn.ReLU(inplace=True),
                    nn.Linear(hidden_channels, 1),
                )
                for m in self.markers
            }
        )

    def forward(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Map ``B x in_channels`` to a dict marker -> logits of shape ``B``."""
        return {m: head(z).squeeze(-1) for m, head in self.heads.items()}
