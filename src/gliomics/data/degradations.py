"""Degraded sequences, for measuring how a model copes with them (``gliomics robustness``).

Each degradation acts on one sequence of a loaded case, in the working grid and before the z-score, as a scanner
would: MONAI's Rician noise, bias field and Gibbs ringing, and thick slices (the slice axis resampled to a coarser
spacing and back). The head's mask of that sequence is kept (inputs are skull-stripped), so that noise does not
fill the background.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from monai.transforms import GibbsNoise, RandBiasField, RandRicianNoise, Resize

from gliomics.constants import SEQUENCES
from gliomics.io import voxel_spacing

__all__ = ["DEGRADATIONS", "Degradation", "DegradeSequenced"]

#: Degradation name -> (kind, level): Rician noise of 5 % and 15 % of the sequence's intensity spread, a strong
#: bias field (polynomial of degree 3, every coefficient 0.4), Gibbs ringing (MONAI's alpha 0.65, the share of
#: k-space removed), slices 5 mm thick.
DEGRADATIONS: dict[str, tuple[str, float]] = {
    "Rician noise 5%": ("rician", 0.05),
    "Rician noise 15%": ("rician", 0.15),
    "bias field": ("bias", 0.4),
    "Gibbs ringing": ("gibbs", 0.65),
    "5 mm slices": ("thick", 5.0),
}


@dataclass(frozen=True)
class Degradation:
    """One of :data:`DEGRADATIONS` applied to one sequence."""

    sequence: str
    name: str

    def __post_init__(self) -> None:
        if self.sequence not in SEQUENCES:
            raise ValueError(f"unknown sequence {self.sequence!r}; expected one of {', '.join(SEQUENCES)}")
        if self.name not in DEGRADATIONS:
            raise ValueError(f"unknown degradation {self.name!r}; expected one of {', '.join(DEGRADATIONS)}")

    @property
    def label(self) -> str:
        return f"{self.sequence} {self.name}"


class DegradeSequenced:
    """Degrade one sequence of ``data["image"]`` (``C × spatial``, raw intensities); a missing sequence stays as it
    is. Seeded: every case gets the same draw of the noise for the same seed."""

    def __init__(self, degradation: Degradation, seed: int = 0) -> None:
        self.degradation = degradation
        self.seed = seed

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        image = d["image"]
        channel = SEQUENCES.index(self.degradation.sequence)
        present = d.get("present")
        if present is not None and not bool(present[channel]):
            return d
        x = image[channel : channel + 1]
        mask = x != 0
        kind, level = DEGRADATIONS[self.degradation.name]
        if kind == "rician":
            t = RandRicianNoise(prob=1.0, std=level, relative=True, channel_wise=True, sample_std=False)
            t.set_random_state(self.seed)
            y = t(x)
        elif kind == "bias":
            t = RandBiasField(degree=3, coeff_range=(level, level), prob=1.0)
            t.set_random_state(self.seed)
            y = t(x)
        elif kind == "gibbs":
            y = GibbsNoise(alpha=level)(x)
        else:  # thick slices along the last (inferior-superior) axis of the RAS working grid
            spacing = float(voxel_spacing(np.asarray(image.affine))[-1])
            depth = x.shape[-1]
            thick = max(1, round(depth * spacing / level))
            y = Resize((*x.shape[1:-1], thick), mode="area")(x)
            y = Resize(tuple(x.shape[1:]), mode="trilinear")(y)
        y = torch.as_tensor(y, dtype=x.dtype) * mask
        out = image.clone()
        out[channel : channel + 1] = y
        d["image"] = out
        return d
