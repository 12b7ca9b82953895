"""Where a case goes: rigid co-registration of its sequences to the reference, affine registration of the reference
to the atlas, and the output grid (centred on the atlas brain, or on the scans when registration is skipped)."""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from gliomics.io.cases import Case
from gliomics.io.sitk_images import array_of, image_like, read_image
from gliomics.preprocess.atlas import Atlas, load_atlas
from gliomics.preprocess.bias import head_mask
from gliomics.preprocess.geometry import Grid, centred_grid, foreground_centre, resample
from gliomics.preprocess.quality import similarity
from gliomics.preprocess.registration import (
    RegistrationError,
    RegistrationSettings,
    affine_register,
    compose,
    rigid_register,
)

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=2)
def load_registration_atlas(path: Path | None, mask: Path | None) -> tuple[Atlas, sitk.Image]:
    """The atlas and its dilated brain mask (the metric region: a margin keeps the brain's edge in view)."""
    atlas = load_atlas(path, mask)
    return atlas, sitk.BinaryDilate(atlas.mask, [5, 5, 5])


@dataclass(frozen=True)
class TargetSpace:
    """The output grid of a case and how it relates to the scans and the atlas.

    Attributes:
        grid: The output grid.
        to_native_ref: Output-grid points → points of the reference scan.
        mask: The brain mask the ``atlas`` skull-strip method uses, on the grid (boolean, x-y-z).
        mask_source: ``atlas``, ``file`` (``--mask``) or ``nonzero`` (the reference's non-zero voxels).
        atlas_name: The atlas registered to, or None when registration was skipped.
        metric: Final metric value of the atlas registration (NaN without one).
        atlas_image: The atlas on the grid (None without registration).
        atlas_mask: The atlas's brain mask on the grid (None without registration).
        refinement: What :func:`refine_on_brain` found (None where it did not run).
    """

    grid: Grid
    to_native_ref: sitk.Transform
    mask: np.ndarray
    mask_source: str
    atlas_name: str | None = None
    metric: float = math.nan
    atlas_image: np.ndarray | None = None
    atlas_mask: np.ndarray | None = None
    refinement: dict[str, Any] | None = None


def coregister(case: Case, images: dict[str, sitk.Image], ref: str, settings: RegistrationSettings, *,
               skip: bool = False) -> tuple[dict[str, sitk.Transform], dict[str, float]]:
    """Rigidly register every sequence to the reference inside the reference's head mask.

    Returns:
        Per sequence the transform (reference points → its points; identity for the reference, and for all with
        ``skip``) and per registered sequence the final metric value.

    Raises:
        RegistrationError: A registration failed; the message names the file.
    """
    identity = sitk.AffineTransform(3)
    to_ref: dict[str, sitk.Transform] = {s: identity for s in images}
    metrics: dict[str, float] = {}
    if skip:
        return to_ref, metrics
    head = head_mask(images[ref])
    for s, img in images.items():
        if s == ref:
            continue
        try:
            to_ref[s], metrics[s] = rigid_register(images[ref], img, settings, fixed_mask=head)
        except RegistrationError as exc:
            raise RegistrationError(f"{case.images[s]}: to {ref}: {exc}") from exc
    return to_ref, metrics


def target_space(case: Case, images: dict[str, sitk.Image], ref: str, *, atlas: Path | None, mask: Path | None,
                 skip_registration: bool, shape: tuple[int, int, int], spacing: float,
                 registration: RegistrationSettings) -> TargetSpace:
    """Register the reference to the atlas and lay the output grid over the atlas brain; with
    ``skip_registration``, lay it over the reference's brain (``mask`` in the scans' space, or its non-zero voxels).

    Raises:
        RegistrationError: The atlas registration failed.
        InputError, ImageError: A bad atlas or mask file.
    """
    if skip_registration:
        if mask is not None:
            native = sitk.Cast(read_image(mask, sitk.sitkUInt8) > 0, sitk.sitkUInt8)
            source = "file"
        else:
            native = sitk.Cast(sitk.NotEqual(read_image(case.images[ref]), 0.0), sitk.sitkUInt8)
            source = "nonzero"
        grid = centred_grid(foreground_centre(native), shape, spacing)
        on_grid = array_of(resample(native, grid, nearest=True)) > 0
        return TargetSpace(grid, sitk.AffineTransform(3), on_grid, source)
    template, metric_mask = load_registration_atlas(atlas, mask)
    try:
        to_native_ref, metric = affine_register(template.image, images[ref], registration, fixed_mask=metric_mask)
    except RegistrationError as exc:
        raise RegistrationError(f"{case.images[ref]}: to the atlas {template.name}: {exc}") from exc
    grid = centred_grid(foreground_centre(template.mask), shape, spacing)
    brain = array_of(resample(template.mask, grid, nearest=True)) > 0
    return TargetSpace(grid, to_native_ref, brain, "file" if mask is not None else "atlas", template.name, metric,
                       array_of(resample(template.image, grid)), brain)


def refine_on_brain(images: dict[str, sitk.Image], ref: str, space: TargetSpace, brain: np.ndarray, *,
                    atlas: Path | None, mask: Path | None,
                    registration: RegistrationSettings) -> tuple[TargetSpace, sitk.Transform | None]:
    """Register the atlas once more, to the reference on the output grid with the brain mask applied.

    The first atlas registration matches a whole head against a skull-stripped template, which can settle several
    degrees and centimetres off (skull, face and neck pull on it, the more so with thick slices); the brain found on
    its output grid makes the second a brain-to-brain match. The correction is kept only where the reference's
    similarity to the atlas inside the atlas mask rises.

    Args:
        images: The sequences in their native space (RAS, N4-corrected).
        ref: The reference sequence.
        space: The first registration's target space.
        brain: The brain mask on ``space.grid``.
        atlas, mask, registration: As for :func:`target_space`.

    Returns:
        The target space (with ``to_native_ref`` corrected if kept, and ``refinement`` filled in) and the correction
        (output-grid points → points of the first registration's grid), or None where it was not kept.
    """
    template, metric_mask = load_registration_atlas(atlas, mask)
    before = resample(images[ref], space.grid, space.to_native_ref)
    stripped = before * image_like(brain.astype(np.float32), before)
    try:
        correction, metric = affine_register(template.image, stripped, registration, fixed_mask=metric_mask)
    except RegistrationError as exc:
        logger.warning("refining the atlas registration on the brain failed (%s); keeping the first", exc)
        return replace(space, refinement={"kept": False, "error": str(exc)}), None
    candidate = compose(correction, space.to_native_ref)
    after = resample(images[ref], space.grid, candidate)
    region = space.atlas_mask
    old = similarity(space.atlas_image, array_of(before), region)
    new = similarity(space.atlas_image, array_of(after), region)
    kept = old is None or (new is not None and new > old)
    record = {"kept": kept, "metric": round(metric, 5), "similarity_before": old, "similarity_after": new}
    if not kept:
        return replace(space, refinement=record), None
    return replace(space, to_native_ref=candidate, metric=metric, refinement=record), correction
