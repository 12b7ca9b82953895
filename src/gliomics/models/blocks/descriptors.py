"""Tumour descriptors: a compact, hand-crafted summary of the predicted segmentation and the image inside it.

The marker phenotypes of gliomas are largely macroscopic: the enhancing share of the core, necrosis, the
T2-FLAIR mismatch, the oedema relative to the core and the location (e.g. Patel et al. 2017, AJNR, for the
mismatch sign; Lasocki et al. 2015 for enhancement and necrosis). Deep features pooled over ~100 training cases
learn these slowly; the descriptors hand them to the marker heads directly. They are computed from *detached*
soft probabilities, so the marker loss cannot distort the segmentation.
"""

from __future__ import annotations

import torch
from torch import nn

from gliomics.constants import LABELS
from gliomics.models.blocks.cmaf import exporting

__all__ = ["TumourDescriptors"]

# label order of the per-region intensity means
_REGIONS = (LABELS["NETC"], LABELS["ET"], LABELS["SNFH"])


class TumourDescriptors(nn.Module):
    """Per case: log volume fractions of the four labels, the enhancing share of the core, the oedema-to-lesion
    ratio, mean intensity of every sequence in NETC, ET and SNFH, the tumour's offset from the brain's centre
    (left-right folded) and the sequence presence flags.

    Args:
        in_channels: number of input sequences.
        num_classes: number of segmentation classes, background first (labels 1..4 are NETC, SNFH, ET, RC).
    """

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        if num_classes <= max(LABELS.values()):
            raise ValueError(f"descriptors need the BraTS 2024 labels (num_classes >= 5), got {num_classes}.")
        self.in_channels = in_channels
        self.out_features = 4 + 2 + len(_REGIONS) * in_channels + 3 + in_channels

    def forward(self, x: torch.Tensor, seg_logits: torch.Tensor, present: torch.Tensor | None) -> torch.Tensor:
        """``B x out_features`` from the input ``x`` (``B x C x spatial``) and the segmentation logits."""
        b = x.shape[0]
        probs = torch.softmax(seg_logits.detach().float(), dim=1).flatten(2)  # B x K x V
        image = x.detach().float().flatten(2)  # B x C x V
        brain = (image.abs().sum(1) > 0).float()  # B x V
        brain_vol = brain.sum(-1, keepdim=True).clamp(min=1.0)
        vol = probs[:, 1:5].sum(-1)  # NETC, SNFH, ET, RC in voxels
        netc, snfh, et, rc = vol.unbind(1)
        core = netc + et
        features = [
            torch.log1p(1000.0 * vol / brain_vol),
            (et / (core + 1.0)).unsqueeze(1),
            torch.log1p(snfh / (core + rc + 1.0)).unsqueeze(1),
        ]
        weights = probs[:, list(_REGIONS)]  # B x 3 x V
        sums = torch.einsum("brv,bcv->brc", weights, image)
        features.append((sums / (weights.sum(-1, keepdim=True) + 1.0)).reshape(b, -1))
        # tumour centre relative to the brain centre, in units of the brain's spread along each axis
        spatial = x.shape[2:]
        axes = [_axis(s, x.device) for s in spatial]
        grid = torch.stack(torch.meshgrid(*axes, indexing="ij")).flatten(1)  # D x V
        tumour = 1.0 - probs[:, 0]
        t_centre = tumour @ grid.T / (tumour.sum(-1, keepdim=True) + 1e-3)
        b_centre = brain @ grid.T / brain_vol
        b_spread = ((brain @ (grid.T**2)) / brain_vol - b_centre**2).clamp(min=1e-4).sqrt()
        offset = (t_centre - b_centre) / b_spread
        offset = torch.cat([offset[:, :1].abs(), offset[:, 1:]], dim=1)  # fold left-right: side carries no marker
        features.append(offset)
        flags = torch.ones(b, self.in_channels, device=x.device) if present is None else present.float()
        features.append(flags)
        return torch.cat(features, dim=1)


def _axis(size: int, device: torch.device) -> torch.Tensor:
    """``size`` points from -1 to 1. While exporting to ONNX, from ``arange``: ``torch.export`` fixes the length of a
    ``linspace`` at the example's size, so that the graph would refuse every other input size."""
    if exporting():
        return torch.arange(size, device=device, dtype=torch.float32) * (2.0 / max(size - 1, 1)) - 1.0
    return torch.linspace(-1.0, 1.0, size, device=device)
