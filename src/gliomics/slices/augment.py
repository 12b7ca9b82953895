"""Training augmentation of the TERT paper (torchvision.transforms.v2): random affine (±15°, scale 0.8-1.2),
horizontal flip and gamma, on 1×H×W float slices in [0, 1]."""

from __future__ import annotations

import math
from typing import Any

import torch
from torchvision.transforms import v2

__all__ = ["RandomGamma", "train_augmentation"]


class RandomGamma(v2.Transform):
    """Gamma correction ``x ** γ`` of an image in [0, 1], γ drawn log-uniformly from ``gamma_range``.

    Args:
        gamma_range: Smallest and largest γ; 1 leaves the image unchanged.
        p: Probability of applying the correction.
    """

    def __init__(self, gamma_range: tuple[float, float] = (0.7, 1.5), p: float = 0.5) -> None:
        super().__init__()
        lo, hi = gamma_range
        if not 0 < lo <= hi:
            raise ValueError(f"gamma_range must satisfy 0 < low <= high, got {gamma_range}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.log_range = (math.log(lo), math.log(hi))
        self.p = p

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        if torch.rand(()) >= self.p:
            return {"gamma": 1.0}
        lo, hi = self.log_range
        return {"gamma": math.exp(lo + (hi - lo) * float(torch.rand(())))}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if params["gamma"] == 1.0:
            return inpt
        return v2.functional.adjust_gamma(inpt.clamp(0.0, 1.0), params["gamma"])


def train_augmentation(degrees: float = 15.0, scale: tuple[float, float] = (0.8, 1.2), flip_p: float = 0.5,
                       gamma_range: tuple[float, float] = (0.7, 1.5), gamma_p: float = 0.5) -> v2.Compose:
    """The augmentation pipeline for one slice tensor (1×H×W, values in [0, 1]); randomness from torch's RNG."""
    return v2.Compose([
        v2.RandomAffine(degrees=degrees, scale=scale, interpolation=v2.InterpolationMode.BILINEAR, fill=0.0),
        v2.RandomHorizontalFlip(p=flip_p),
        RandomGamma(gamma_range, p=gamma_p),
    ])
