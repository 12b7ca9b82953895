"""The registration target: the MNI152 2009a template from nilearn's package data (never downloaded), or a file."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from gliomics.io.sitk_images import image_from_array, read_image
from gliomics.preprocess.geometry import Grid, resample

logger = logging.getLogger(__name__)

MNI152 = "MNI152 2009a (nilearn)"


@dataclass(frozen=True)
class Atlas:
    """A template and its brain mask on the template's grid.

    Attributes:
        name: ``"MNI152 2009a (nilearn)"`` or the file name.
        image: The template (float32).
        mask: Brain mask (uint8, 0/1) on the template's grid.
    """

    name: str
    image: sitk.Image
    mask: sitk.Image


@functools.lru_cache(maxsize=1)
def _mni152() -> tuple[sitk.Image, sitk.Image]:
    from nilearn import datasets

    template = datasets.load_mni152_template(resolution=1)  # package data: no download
    mask = datasets.load_mni152_brain_mask(resolution=1)
    image = image_from_array(np.asarray(template.dataobj, dtype=np.float32), template.affine)
    brain = image_from_array((np.asarray(mask.dataobj) > 0.5).astype(np.uint8), mask.affine)
    return image, brain


def _mask_from_template(image: sitk.Image) -> sitk.Image:
    """A brain mask for a template given without one: Otsu foreground with holes filled."""
    return sitk.BinaryFillhole(sitk.OtsuThreshold(image, 0, 1, 200))


def load_atlas(path: Path | str | None = None, mask: Path | str | None = None) -> Atlas:
    """Load the registration target.

    Args:
        path: A template file (e.g. SRI24 T1); the MNI152 2009a T1 template of nilearn if None.
        mask: A brain-mask file in the template's space (resampled onto its grid by physical position if needed);
            by default the MNI152 brain mask, or, for a template file, its Otsu foreground.

    Raises:
        InputError, ImageError: A file is missing or unreadable.
    """
    if path is None:
        image, brain = _mni152()
        name = MNI152
    else:
        image = read_image(path)
        brain = None
        name = Path(path).name
    if mask is not None:
        given = read_image(mask, sitk.sitkUInt8)
        brain = resample(sitk.Cast(given > 0, sitk.sitkUInt8), Grid.of(image), nearest=True)
    elif brain is None:
        logger.info("%s: no brain mask given; using the template's Otsu foreground", name)
        brain = _mask_from_template(image)
    return Atlas(name=name, image=image, mask=sitk.Cast(brain, sitk.sitkUInt8))
