"""Domain randomisation of training cases, after SynthSeg: contrasts, artefacts and resolutions drawn far beyond
the phantom sites', so that what the network learns does not hang on one scanner's look.

Each ingredient acts on the raw (non-negative) intensities of one sequence at a time, before the z-score, and is
drawn independently per case and per sequence:

* ``oedema``: the oedema grown further into the white matter by up to ``max_mm``, fading as it goes, and labelled
  as far as it still shows (:class:`OedemaGrowth`): the phantoms' oedema is a shell of a few millimetres, real
  oedema often reaches centimetres along the white matter;
* ``compartments``: every tumour compartment's contrast against the normal brain scaled by its own random gain per
  sequence, and the oedema's fading towards its outer edge by a random amount (:class:`CompartmentContrast`): the
  phantoms draw each compartment with one fixed contrast, real tumours do not, and real oedema fades into the
  white matter;
* ``contrast``: a random non-linear intensity curve (MONAI's :class:`~monai.transforms.RandHistogramShift`), so that
  tissues keep their order within a sequence only by chance of the draw's smoothness;
* ``bias``: a strong smooth bias field (:class:`~monai.transforms.RandBiasField`);
* ``gamma``: a wide gamma (:class:`~monai.transforms.RandAdjustContrast`);
* ``noise``: Rician noise (:class:`~monai.transforms.RandRicianNoise`);
* ``slices``: thick slices along a random axis, 1 to 6 mm, averaged (partial volume) and resampled back
  (:class:`ThickSlices`);
* ``motion``: rigid head motion during the acquisition, simulated in k-space (TorchIO's ``Motion``, in
  :class:`KSpaceArtefact`);
* ``ghosts``: ghosts along a phase-encoding axis (TorchIO's ``Ghosting``, in :class:`KSpaceArtefact`);
* ``ringing``: Gibbs ringing (:class:`~monai.transforms.RandGibbsNoise`);
* ``stripping``: a skull-stripping error: a slab at the edge of the head cut away in every sequence and the labels
  (:class:`StrippingError`).

:func:`randomisation_transforms` builds the chain for a set of ingredients (the seven image ones, from ``contrast``
to ``stripping`` without ``motion`` and ``ghosts``, when none are named) and one probability.
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
from scipy import ndimage

from gliomics.constants import (
    DEFAULT_RANDOMISATION_INGREDIENTS,
    LABELS,
    RANDOMISATION_INGREDIENTS,
    SEQUENCES,
    TUMOUR_LABELS,
)

__all__ = ["INGREDIENTS", "CompartmentContrast", "KSpaceArtefact", "OedemaGrowth", "PerSequenced", "StrippingError",
           "ThickSlices", "randomisation_transforms"]

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


class CompartmentContrast(RandomizableTransform, MapTransform):
    """Random contrasts of the tumour compartments, after SynthSeg's random intensity per label.

    For each sequence and each compartment of the label map (NETC, SNFH, ET, RC), the compartment's departure from
    the normal brain's median (the head's unlabelled voxels) is multiplied by a gain drawn in ``gain``; in the
    oedema (SNFH) the gain also falls off towards the outer edge, by a fraction drawn in ``fade`` (0: uniform,
    0.7: the outer edge keeps 30 % of the inner gain), with the position in the oedema measured from the core to the
    normal brain by distance transforms. The gain map is smoothed over ``smooth_voxels`` so no step appears at the
    label borders. The labels do not change; zeros (background, missing sequences) stay zero. A case without a
    tumour label is left alone.

    Args:
        prob: probability per case.
        gain: range of the per-sequence, per-compartment gain.
        fade: range of the oedema's fall-off towards its outer edge.
        smooth_voxels: Gaussian sigma of the gain map, in voxels.
    """

    def __init__(self, prob: float = 0.25, gain: tuple[float, float] = (0.4, 1.6),
                 fade: tuple[float, float] = (0.0, 0.7), smooth_voxels: float = 1.0) -> None:
        RandomizableTransform.__init__(self, prob)
        MapTransform.__init__(self, ("image", "label"), allow_missing_keys=True)
        self.gain, self.fade, self.smooth_voxels = gain, fade, smooth_voxels

    def _oedema_depth(self, label: np.ndarray) -> np.ndarray:
        """Position in the oedema: 0 next to the core (NETC, ET, RC), 1 next to the normal brain."""
        oedema = label == LABELS["SNFH"]
        core = (label > 0) & ~oedema
        to_normal = ndimage.distance_transform_edt(label > 0)
        if not core.any():
            return 1.0 - to_normal / max(float(to_normal[oedema].max()), 1.0)
        to_core = ndimage.distance_transform_edt(~core)
        return to_core / np.maximum(to_core + to_normal, 1e-6)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        self.randomize(None)
        if not self._do_transform or d.get("label") is None:
            return d
        label = np.asarray(torch.as_tensor(d["label"])[0]).astype(np.int64)
        present = [LABELS[name] for name in TUMOUR_LABELS if (label == LABELS[name]).any()]
        if not present:
            return d
        image = torch.as_tensor(d["image"])
        depth = self._oedema_depth(label) if LABELS["SNFH"] in present else None
        parts = []
        for c in range(image.shape[0]):
            channel = image[c].float()
            head = channel != 0
            normal = head & torch.as_tensor(label == 0)
            if not bool(head.any()) or not bool(normal.any()):
                parts.append(image[c : c + 1])
                continue
            gain = np.ones(label.shape, dtype=np.float32)
            for value in present:
                g = self.R.uniform(*self.gain)
                region = label == value
                if value == LABELS["SNFH"]:
                    gain[region] = g * (1.0 - self.R.uniform(*self.fade) * depth[region])
                else:
                    gain[region] = g
            gain = torch.from_numpy(ndimage.gaussian_filter(gain, self.smooth_voxels))
            level = channel[normal].median()
            changed = (level + (channel - level) * gain).clamp_min(0).masked_fill(~head, 0)
            parts.append(changed.to(image.dtype)[None])
        d["image"] = torch.cat(parts)
        return d


class OedemaGrowth(RandomizableTransform, MapTransform):
    """The oedema (SNFH) grown into the white matter around it, voxel layer by voxel layer, by a distance drawn up
    to ``max_mm``.

    The white matter is where T1 is brighter than the ``wm_quantile`` of the head's unlabelled voxels (T1 missing:
    anywhere in the head), so the growth follows it and leaves the cortex and the CSF alone. Each new layer takes
    the oedema's contrast against that white matter (the ratio of their medians, per sequence) times a strength
    that falls linearly from the first layer to the last and starts at a value drawn in ``strength``; the layers
    still carrying at least ``label_from`` of the full contrast are labelled SNFH. The change is smoothed over one
    voxel; zeros stay zero.

    Args:
        prob: probability per case.
        spacing_mm: voxel size (the growth is counted in layers of the smallest spacing).
        max_mm: the largest growth.
        strength: range of the first layer's share of the oedema's contrast.
        label_from: the smallest share still labelled oedema.
        wm_quantile: the quantile of T1 in the unlabelled head above which a voxel counts as white matter.
    """

    def __init__(self, prob: float = 0.25, spacing_mm: Sequence[float] = (1.0, 1.0, 1.0), max_mm: float = 12.0,
                 strength: tuple[float, float] = (0.5, 1.0), label_from: float = 0.3,
                 wm_quantile: float = 0.6) -> None:
        RandomizableTransform.__init__(self, prob)
        MapTransform.__init__(self, ("image", "label"), allow_missing_keys=True)
        self.max_layers = max(1, int(round(max_mm / min(float(v) for v in spacing_mm))))
        self.strength, self.label_from, self.wm_quantile = strength, label_from, wm_quantile

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        self.randomize(None)
        if not self._do_transform or d.get("label") is None:
            return d
        label_t = torch.as_tensor(d["label"])
        label = np.asarray(label_t[0]).astype(np.int64)
        oedema = label == LABELS["SNFH"]
        if not oedema.any():
            return d
        image = np.asarray(torch.as_tensor(d["image"]).float())
        head = (image != 0).any(0)
        normal = head & (label == 0)
        t1 = image[SEQUENCES.index("t1n")]
        wm = normal & (t1 >= np.quantile(t1[normal], self.wm_quantile)) if (t1[normal] > 0).any() else normal
        if not wm.any():
            return d
        layers = int(self.R.randint(1, self.max_layers + 1))
        start = self.R.uniform(*self.strength)
        share = np.zeros(label.shape, dtype=np.float32)
        grown = oedema.copy()
        for k in range(layers):
            ring = ndimage.binary_dilation(grown) & wm & ~grown
            if not ring.any():
                break
            share[ring] = start * (1.0 - k / layers)
            grown |= ring
        if not share.any():
            return d
        smooth = ndimage.gaussian_filter(share, 1.0)
        out = image.copy()
        for c in range(image.shape[0]):
            channel = image[c]
            if not (channel != 0).any():
                continue
            ratio = float(np.median(channel[oedema])) / max(float(np.median(channel[wm])), 1e-6)
            out[c] = np.where(channel != 0, channel * (1.0 + (ratio - 1.0) * smooth), 0.0)
        new_label = label.copy()
        new_label[share >= self.label_from] = LABELS["SNFH"]
        d["image"] = torch.as_tensor(out).to(torch.as_tensor(d["image"]).dtype)
        d["label"] = torch.as_tensor(new_label[None]).to(label_t.dtype)
        return d


class KSpaceArtefact(RandomizableTransform):
    """A k-space artefact of TorchIO on a ``1 × spatial`` image, its parameters drawn from this transform's own
    random state (TorchIO's random transforms draw from torch's global one):

    * ``motion``: rigid motion during the acquisition, ``num_moves`` movements of up to ``degrees`` and
      ``translation_mm`` (TorchIO's ``Motion``);
    * ``ghosts``: 2 to 6 ghosts of 30–80 % intensity along a random axis (TorchIO's ``Ghosting``).
    """

    def __init__(self, kind: str, prob: float = 0.25, spacing_mm: Sequence[float] = (1.0, 1.0, 1.0),
                 degrees: float = 4.0, translation_mm: float = 4.0, num_moves: int = 2) -> None:
        if kind not in ("motion", "ghosts"):
            raise ValueError(f"unknown k-space artefact {kind!r}; expected motion or ghosts")
        RandomizableTransform.__init__(self, prob)
        self.kind, self.spacing_mm = kind, tuple(float(s) for s in spacing_mm)
        self.degrees, self.translation_mm, self.num_moves = degrees, translation_mm, num_moves

    def _artefact(self):
        from torchio.transforms.augmentation.intensity.random_ghosting import Ghosting
        from torchio.transforms.augmentation.intensity.random_motion import Motion

        if self.kind == "ghosts":
            return Ghosting(num_ghosts=int(self.R.randint(2, 7)), axis=int(self.R.randint(0, 3)),
                            intensity=float(self.R.uniform(0.3, 0.8)), restore=0.02)
        n = self.num_moves
        degrees = self.R.uniform(-self.degrees, self.degrees, size=(n, 3))
        # the image carries no affine here: translations in voxels of this grid
        translation = self.R.uniform(-self.translation_mm, self.translation_mm, size=(n, 3)) / self.spacing_mm
        times = np.sort(self.R.uniform(0.1, 0.9, size=n))
        return Motion(degrees=degrees, translation=translation, times=times, image_interpolation="linear")

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        self.randomize(None)
        if not self._do_transform:
            return img
        x = torch.as_tensor(img)
        out = torch.as_tensor(self._artefact()(x.float()))
        return out.clamp_min(0).to(x.dtype)


def randomisation_transforms(prob: float, spacing_mm: Sequence[float],
                             ingredients: Sequence[str] | None = None) -> list:
    """The randomisation chain: each of ``ingredients`` (None: the seven image ones,
    :data:`~gliomics.constants.DEFAULT_RANDOMISATION_INGREDIENTS`) applied with probability ``prob`` (per sequence
    for the intensity ingredients), for images of voxel size ``spacing_mm``; empty when ``prob`` is 0.

    Raises:
        ValueError: an unknown ingredient.
    """
    ingredients = DEFAULT_RANDOMISATION_INGREDIENTS if ingredients is None else ingredients
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
        "motion": KSpaceArtefact("motion", prob=prob, spacing_mm=spacing_mm),
        "ghosts": KSpaceArtefact("ghosts", prob=prob, spacing_mm=spacing_mm),
        "ringing": RandGibbsNoise(prob=prob, alpha=(0.3, 0.7)),
        "noise": RandRicianNoise(prob=prob, std=0.08, relative=True, channel_wise=True, sample_std=True),
    }
    chain = [OedemaGrowth(prob=prob, spacing_mm=spacing_mm)] if "oedema" in ingredients else []
    if "compartments" in ingredients:
        chain.append(CompartmentContrast(prob=prob))
    chain += [PerSequenced(per_sequence[i]) for i in INGREDIENTS if i in ingredients and i in per_sequence]
    if "stripping" in ingredients:
        chain.append(StrippingError(prob=prob / 2))
    return chain
