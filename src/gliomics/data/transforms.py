"""MONAI dictionary transforms: loading through gliomics.io, training augmentation and inference preprocessing.

A sample is a dict with ``image`` (4×D×H×W MetaTensor), ``label`` (1×D×H×W), ``markers`` (NaN = unknown),
``present`` (which sequences exist) and ``case_id``; the MetaTensors carry the affine for inversion.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import (
    Compose,
    CropForegroundd,
    DivisiblePadd,
    EnsureTyped,
    MapTransform,
    NormalizeIntensity,
    NormalizeIntensityd,
    Orientationd,
    RandAdjustContrast,
    RandAffined,
    RandBiasField,
    RandCropByPosNegLabeld,
    RandFlipd,
    RandGaussianNoise,
    RandGaussianSmooth,
    RandomizableTransform,
    RandScaleIntensityd,
    RandShiftIntensityd,
    Spacingd,
    SpatialPadd,
)

from gliomics.constants import MARKERS, sequences_of
from gliomics.data.randomisation import PerSequenced, randomisation_transforms
from gliomics.errors import find_gliomics_error
from gliomics.io import Case, load_case


class LoadCased(MapTransform):
    """Read a :class:`~gliomics.io.Case` (validated: geometry, NaNs, label values) into MetaTensors.

    The input dict holds ``case`` (a Case) and optionally ``markers`` (floats, NaN = unknown).

    With ``targets=True`` (training) every sample gets a ``label`` and a ``supervision`` flag pair
    ``[subregions, whole_tumour]``: the segmentation where the case has one (``[1, 0]``), else its whole-tumour mask
    as label 1 (``[0, 1]``), else an all-background label (``[0, 0]``, a marker-only case). The loss reads the flags
    to mask what a case lacks; the patch sampler centres on the label's tumour, or anywhere in the head when the
    label is empty.
    """

    def __init__(self, sequences: Sequence[str] | None = None, load_seg: bool = True, targets: bool = False) -> None:
        super().__init__(keys=["case"])
        self.sequences = sequences
        self.load_seg = load_seg or targets
        self.targets = targets

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        case: Case = data["case"]  # type: ignore[assignment]
        loaded = load_case(case, sequences=self.sequences, load_seg=self.load_seg,
                           load_wt_mask=self.targets and case.seg is None)
        affine = torch.as_tensor(loaded.affine, dtype=torch.float64)
        meta = {"filename_or_obj": str(next(iter(loaded.paths.values()))), "original_affine": loaded.affine,
                "spatial_shape": np.array(loaded.shape)}
        out = {k: v for k, v in data.items() if k != "case"}
        out["case_id"] = case.case_id
        out["image"] = MetaTensor(torch.from_numpy(loaded.image), affine=affine, meta=dict(meta))
        out["present"] = torch.from_numpy(loaded.present.copy())
        label, flags = loaded.seg, [1.0, 0.0]
        if label is None and self.targets:
            label, flags = loaded.wt_mask, [0.0, 1.0]
            if label is None:
                label, flags = np.zeros(loaded.shape, np.uint8), [0.0, 0.0]
        if label is not None:
            out["label"] = MetaTensor(torch.from_numpy(label[None].astype(np.uint8)), affine=affine.clone(),
                                      meta=dict(meta))
        if self.targets:
            out["supervision"] = torch.tensor(flags)
        markers = out.get("markers")
        out["markers"] = torch.as_tensor(
            np.full(len(MARKERS), np.nan, np.float32) if markers is None else np.asarray(markers, np.float32))
        return out


class Chain(Compose):
    """A MONAI ``Compose`` that lets bad input through as it is.

    MONAI wraps any exception of a transform in ``RuntimeError("applying transform …")``; a corrupt file found by
    :class:`LoadCased` would then look like an internal error and escape ``--keep-going``.
    """

    def __call__(self, input_, *args, **kwargs):
        try:
            return super().__call__(input_, *args, **kwargs)
        except RuntimeError as exc:
            cause = find_gliomics_error(exc)
            if cause is None:
                raise
            raise cause from cause.__cause__


class ModalityDropoutd(RandomizableTransform, MapTransform):
    """With probability ``prob``, drop a random non-empty proper subset of the present sequences.

    Dropped channels become zeros and their ``present`` flag False, so CMAF learns to work on any subset.
    """

    def __init__(self, prob: float = 0.2, image_key: str = "image", present_key: str = "present") -> None:
        RandomizableTransform.__init__(self, prob)
        MapTransform.__init__(self, keys=[image_key])
        self.image_key, self.present_key = image_key, present_key

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        self.randomize(None)
        present = torch.as_tensor(d[self.present_key]).clone().bool()
        available = torch.nonzero(present).flatten().tolist()
        if not self._do_transform or len(available) < 2:
            d[self.present_key] = present
            return d
        n_drop = int(self.R.randint(1, len(available)))  # self.R is a legacy RandomState (no .integers)
        drop = self.R.choice(available, size=n_drop, replace=False)
        image = d[self.image_key].clone()
        for k in drop:
            image[int(k)] = 0
            present[int(k)] = False
        d[self.image_key], d[self.present_key] = image, present
        return d


class RobustNormalized(MapTransform):
    """Raw intensities to z-scores, robust to what real scans store: per channel, negative values (interpolation
    ringing of magnitude images) set to zero, values above the ``upper`` percentile of the channel's non-zero voxels
    clipped to it (a few voxels at an int16 maximum; nnU-Net clips CT at the same percentile), then MONAI's z-score
    over the non-zero voxels (``NormalizeIntensity(nonzero=True, channel_wise=True)``). A channel that covers part
    of the head (a partial FLAIR) is normalised over what it covers; a missing (all-zero) channel stays zero.

    Args:
        keys: the image key.
        upper: the percentile that clips bright outliers; None clips nothing (the plain z-score, after the negatives).
    """

    def __init__(self, keys: str = "image", upper: float | None = 99.5) -> None:
        MapTransform.__init__(self, keys=[keys])
        self.upper = upper
        self.zscore = NormalizeIntensity(nonzero=True, channel_wise=True)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            x = torch.as_tensor(image).float().clamp(min=0)
            if self.upper is not None:
                for c in range(x.shape[0]):
                    values = x[c][x[c] > 0]
                    if values.numel():
                        x[c].clamp_(max=float(np.percentile(values.numpy(), self.upper)))
            if isinstance(image, MetaTensor):
                x = MetaTensor(x, meta=image.meta, applied_operations=image.applied_operations)
            d[key] = self.zscore(x)
        return d


#: How raw intensities become the network's input (``data.normalisation``).
NORMALISATIONS = ("robust", "zscore")


def normaliser(normalisation: str = "robust") -> MapTransform:
    """The intensity normalisation of a run: ``robust`` (:class:`RobustNormalized`) or ``zscore`` (MONAI's z-score
    over the non-zero voxels alone, as the MGMT-Net paper and nnU-Net's MRI scheme do)."""
    if normalisation == "robust":
        return RobustNormalized("image")
    if normalisation == "zscore":
        return NormalizeIntensityd(keys="image", nonzero=True, channel_wise=True)
    raise ValueError(f"unknown normalisation {normalisation!r}; expected one of {', '.join(NORMALISATIONS)}")


class ScannerBlurNoised(RandomizableTransform, MapTransform):
    """Scanner-like blur and noise inside the head: MONAI's ``RandGaussianSmooth`` then ``RandGaussianNoise`` on
    every channel, with the background (exact zeros, as in skull-stripped BraTS volumes) kept at zero.

    Sites differ in their blur and noise as much as in their gain; these are the two that the gain, gamma and
    bias-field augmentations do not imitate. Noise added to the background would teach the network to expect a
    noisy background that skull-stripped data never have, hence the mask.

    Args:
        prob: probability of each of the two, drawn independently.
        max_sigma: largest blur, in voxels (the sigma is drawn from ``[0, max_sigma]`` per axis).
        max_std: largest noise standard deviation, in the units of the image (z-scores when it runs after
            normalisation); the standard deviation is drawn from ``[0, max_std]``.
        key: the image key.
    """

    def __init__(self, prob: float = 0.2, max_sigma: float = 0.5, max_std: float = 0.1, key: str = "image") -> None:
        RandomizableTransform.__init__(self, 1.0)
        MapTransform.__init__(self, keys=[key])
        self.key = key
        sigma = (0.0, max_sigma)
        self.blur = RandGaussianSmooth(sigma_x=sigma, sigma_y=sigma, sigma_z=sigma, prob=prob)
        self.noise = RandGaussianNoise(prob=prob, mean=0.0, std=max_std)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        self.blur.set_random_state(seed, self.R)
        self.noise.set_random_state(seed, self.R)
        return self

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        image = torch.as_tensor(d[self.key])
        background = image == 0
        image = self.noise(self.blur(image))
        d[self.key] = image.masked_fill(background, 0)
        return d


def _spatial(keys: list[str], spacing: Sequence[float] | None, allow_missing: bool = False) -> list:
    out: list = [Orientationd(keys=keys, axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S")),
                              allow_missing_keys=allow_missing)]
    if spacing is not None:
        modes = ["bilinear" if k == "image" else "nearest" for k in keys]
        out.append(Spacingd(keys=keys, pixdim=tuple(spacing), mode=modes, allow_missing_keys=allow_missing))
    return out


def train_transforms(patch_size: Sequence[int], *, spacing: Sequence[float] | None = None,
                     modality_dropout: float = 0.2, elastic_prob: float = 0.0, affine_prob: float = 0.2,
                     blur_noise_prob: float = 0.3, contrast_prob: float = 0.3, bias_field_max: float = 0.15,
                     normalisation: str = "robust", randomisation: float = 0.0,
                     randomisation_ingredients: Sequence[str] | None = None) -> Compose:
    """Training chain; everything up to the crop to the brain is deterministic and cached.

    Patches centre on the tumour (2 in 3) or anywhere else in the head's bounding box (1 in 3); a marker-only
    case has no tumour label, so its patches centre anywhere in the head's bounding box (see :class:`LoadCased`).
    ``randomisation`` > 0 adds the domain randomisation of :mod:`gliomics.data.randomisation` (its
    ``randomisation_ingredients``, the seven image ingredients by default), each ingredient with that probability,
    before the normalisation.
    """

    keys = ["image", "label"]
    chain = [
        LoadCased(targets=True),
        *_spatial(keys, spacing),
        CropForegroundd(keys=keys, source_key="image", margin=2, allow_smaller=True),
        # intensity augmentation on raw (positive) intensities: scanner-like gain, gamma and bias field
        RandScaleIntensityd(keys="image", factors=0.15, prob=0.5, channel_wise=True),
        PerSequenced(RandAdjustContrast(gamma=(0.75, 1.35), prob=contrast_prob)),
        PerSequenced(RandBiasField(coeff_range=(0.0, bias_field_max), prob=contrast_prob)),
        *randomisation_transforms(randomisation, spacing or (1.0, 1.0, 1.0), randomisation_ingredients),
        normaliser(normalisation),
        RandShiftIntensityd(keys="image", offsets=0.1, prob=0.3, channel_wise=True),
        ModalityDropoutd(prob=modality_dropout),
        SpatialPadd(keys=keys, spatial_size=tuple(patch_size)),
        RandCropByPosNegLabeld(keys=keys, label_key="label", spatial_size=tuple(patch_size), pos=2, neg=1,
                               num_samples=1, allow_smaller=True),
        # left-right flips only: anterior/posterior and up/down carry the tumour's lobe, which informs markers
        RandFlipd(keys=keys, prob=0.5, spatial_axis=0),
        RandAffined(keys=keys, prob=affine_prob, rotate_range=(0.15, 0.15, 0.15), scale_range=(0.1, 0.1, 0.1),
                    mode=("bilinear", "nearest"), padding_mode="zeros"),
    ]
    if blur_noise_prob > 0:
        chain.append(ScannerBlurNoised(prob=blur_noise_prob))
    if elastic_prob > 0:
        from monai.transforms import Rand3DElasticd

        chain.append(Rand3DElasticd(keys=keys, prob=elastic_prob, sigma_range=(5, 8), magnitude_range=(50, 150),
                                    mode=("bilinear", "nearest"), padding_mode="zeros"))
    chain.append(EnsureTyped(keys=keys, track_meta=False))
    return Chain(chain)


def inference_transforms(*, spacing: Sequence[float] | None = None, divisible: int = 16,
                         sequences: Sequence[str] | None = None, load_seg: bool = False, crop: bool = True,
                         degrade: Callable[[dict], dict] | None = None, normalisation: str = "robust") -> Compose:
    """Deterministic, invertible preprocessing: orientation, spacing, crop to the head (unless ``crop=False``),
    the run's intensity normalisation (:func:`normaliser`), pad to a multiple of ``divisible``. ``degrade`` (e.g. a
    :class:`~gliomics.data.degradations.DegradeSequenced`) acts on the raw intensities just before the
    normalisation."""
    keys = ["image", "label"] if load_seg else ["image"]
    # with load_seg, a case without a segmentation (e.g. a marker-only validation case) has no label
    chain = [LoadCased(sequences=sequences, load_seg=load_seg), *_spatial(keys, spacing, allow_missing=load_seg)]
    if crop:
        chain.append(CropForegroundd(keys=keys, source_key="image", margin=2, allow_smaller=True,
                                     allow_missing_keys=load_seg))
    if degrade is not None:
        chain.append(degrade)
    chain += [normaliser(normalisation),
              DivisiblePadd(keys=keys, k=divisible, allow_missing_keys=load_seg)]
    return Chain(chain)


def sequences_present(present: torch.Tensor) -> list[str]:
    """Names of the present sequences of a sample's ``present`` flags."""
    return sequences_of(present.tolist())
