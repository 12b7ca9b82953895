"""Domain randomisation of training cases, after SynthSeg: contrasts, artefacts and resolutions drawn far beyond
the phantom sites', so that what the network learns does not hang on one scanner's look.

Each ingredient acts on the raw (non-negative) intensities of one sequence at a time, before the z-score, and is
drawn independently per case and per sequence:

* ``contrast``: a random non-linear intensity curve (MONAI's :class:`~monai.transforms.RandHistogramShift`), so that
  tissues keep their order within a sequence only by chance of the draw's smoothness;
* ``bias``: a strong smooth bias field (:class:`~monai.transforms.RandBiasField`);
* ``gamma``: a wide gamma (:class:`~monai.transforms.RandAdjustContrast`);
* ``noise``: Rician noise (:class:`~monai.transforms.RandRicianNoise`);
* ``slices``: thick slices along a random axis, 1 to 6 mm, averaged (partial volume) and resampled back
  (:class:`ThickSlices`);
* ``ringing``: Gibbs ringing (:class:`~monai.transforms.RandGibbsNoise`);
* ``stripping``: a skull-stripping error: a slab at the edge of the head cut away in every sequence and the labels
  (:class:`StrippingError`).

:func:`randomisation_transforms` builds the chain for a set of ingredients and one probability.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.transforms import (
    MapTransform,
    RandAdjustContrast,
    RandBiasField,
    RandGibbsNoise,
    RandHistogramShift,
    RandomizableTransform,
    RandRicianNoise,
)

from gliomics.constants import RANDOMISATION_INGREDIENTS

__all__ = ["INGREDIENTS", "PerSequenced", "StrippingError", "ThickSlices", "randomisation_transforms"]

#: Every ingredient, in the order they act.
INGREDIENTS = RANDOMISATION_INGREDIENTS


class PerSequenced(RandomizableTransform, MapTransform):
    """Apply a random MONAI array transform to every sequence (channel) separately, each with its own draw.

    MONAI's ``RandAdjustContrast`` and ``RandBiasField`` draw one gamma and one field for all channels. A scanner's
    sequences differ in gamma and bias independently, and a network that only ever sees them change together can
    learn ratios between sequences that a new site does not keep (e.g. grey matter on FLAIR against T2).
    Zero channels (missing sequences) stay zero, and so does the background (exact zeros) of the others.

    Args:
        transform: a randomizable MONAI array transform (``prob`` is its own, per channel).
        key: the image key.
    """

    def __init__(self, transform: RandomizableTransform, key: str = "image") -> None:
        RandomizableTransform.__init__(self, 1.0)
        MapTransform.__init__(self, keys=[key])
        self.key, self.transform = key, transform

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        self.transform.set_random_state(seed, self.R)
        return self

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        image = d[self.key]
        parts = []
        for c in range(image.shape[0]):
            channel = image[c : c + 1]
            if bool((channel == 0).all()):
                parts.append(channel)
                continue
            # the background (exact zeros, as in skull-stripped volumes) stays zero whatever the transform spreads
            background = torch.as_tensor(channel) == 0
            changed = torch.as_tensor(self.transform(channel.clone())).to(channel.dtype)
            parts.append(changed.masked_fill(background, 0))
        d[self.key] = torch.cat(parts)
        return d


class ThickSlices(RandomizableTransform):
    """Thick slices along one random spatial axis: neighbouring slices averaged over a thickness drawn in
    ``thickness_mm`` and interpolated back to the grid (the partial-volume blur of a 2D acquisition), on a
    ``C × spatial`` image of voxel size ``spacing_mm``."""

    def __init__(self, prob: float = 0.3, thickness_mm: tuple[float, float] = (1.0, 6.0),
                 spacing_mm: Sequence[float] = (1.0, 1.0, 1.0)) -> None:
        RandomizableTransform.__init__(self, prob)
        self.thickness_mm = thickness_mm
        self.spacing_mm = tuple(float(s) for s in spacing_mm)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        self.randomize(None)
        if not self._do_transform:
            return img
        axis = int(self.R.randint(0, 3))
        factor = int(round(self.R.uniform(*self.thickness_mm) / self.spacing_mm[axis]))
        if factor < 2:
            return img
        x = torch.as_tensor(img).float()
        size = x.shape[1 + axis]
        moved = x.movedim(1 + axis, -1)
        flat = moved.reshape(-1, 1, size)
        pooled = torch.nn.functional.avg_pool1d(flat, factor, stride=factor, ceil_mode=True)
        back = torch.nn.functional.interpolate(pooled, size=size, mode="linear", align_corners=False)
        out = back.reshape(moved.shape).movedim(-1, 1 + axis)
        return out.to(torch.as_tensor(img).dtype) if not isinstance(img, np.ndarray) else out.numpy()


class StrippingError(RandomizableTransform, MapTransform):
    """A skull-stripping error: a slab at the edge of the head, a quarter to all of ``max_fraction`` of its extent
    along a random axis and side, set to zero in the image and the labels."""

    def __init__(self, prob: float = 0.1, max_fraction: float = 0.12, keys: Sequence[str] = ("image", "label")) -> None:
        RandomizableTransform.__init__(self, prob)
        MapTransform.__init__(self, keys, allow_missing_keys=True)
        self.max_fraction = max_fraction

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        self.randomize(None)
        if not self._do_transform:
            return d
        image = d["image"]
        head = (torch.as_tensor(image) != 0).any(0)
        if not head.any():
            return d
        axis, side = int(self.R.randint(0, 3)), int(self.R.randint(0, 2))
        index = torch.nonzero(head)[:, axis]
        lo, hi = int(index.min()), int(index.max()) + 1
        depth = int(round(self.R.uniform(self.max_fraction / 4, self.max_fraction) * (hi - lo)))
        if depth < 1:
            return d
        cut = [slice(None)] * 3
        cut[axis] = slice(lo, lo + depth) if side == 0 else slice(hi - depth, hi)
        for key in self.key_iterator(d):
            value = d[key].clone() if isinstance(d[key], torch.Tensor) else np.array(d[key], copy=True)
            value[(slice(None), *cut)] = 0
            d[key] = value
        return d


def randomisation_transforms(prob: float, spacing_mm: Sequence[float],
                             ingredients: Sequence[str] = INGREDIENTS) -> list:
    """The randomisation chain: each of ``ingredients`` applied with probability ``prob`` (per sequence for the
    intensity ingredients), for images of voxel size ``spacing_mm``; empty when ``prob`` is 0.

    Raises:
        ValueError: an unknown ingredient.
    """
    unknown = [i for i in ingredients if i not in INGREDIENTS]
    if unknown:
        raise ValueError(f"unknown randomisation ingredient {unknown[0]!r}; expected some of {', '.join(INGREDIENTS)}")
    if prob <= 0:
        return []
    per_sequence = {
        "contrast": RandHistogramShift(num_control_points=(4, 10), prob=prob),
        "bias": RandBiasField(coeff_range=(0.0, 0.6), prob=prob),
        "gamma": RandAdjustContrast(gamma=(0.5, 2.0), prob=prob),
        "slices": ThickSlices(prob=prob, spacing_mm=spacing_mm),
        "ringing": RandGibbsNoise(prob=prob, alpha=(0.3, 0.7)),
        "noise": RandRicianNoise(prob=prob, std=0.08, relative=True, channel_wise=True, sample_std=True),
    }
    chain = [PerSequenced(per_sequence[i]) for i in INGREDIENTS if i in ingredients and i in per_sequence]
    if "stripping" in ingredients:
        chain.append(StrippingError(prob=prob / 2))
    return chain
