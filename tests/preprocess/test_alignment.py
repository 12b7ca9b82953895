"""The second atlas registration, on the brain: it corrects a first registration that settled off."""

from __future__ import annotations

import dataclasses

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from gliomics.io import discover_cases
from gliomics.io.sitk_images import array_of, read_image
from gliomics.preprocess.alignment import refine_on_brain, target_space
from gliomics.preprocess.geometry import reorient_to_ras, resample
from gliomics.preprocess.registration import RegistrationSettings, compose, invert, transform_error_mm
from preprocess_testing import ATLAS_AFFINE, ATLAS_SHAPE, ATLAS_SPACING, write_raw_case

FAST = RegistrationSettings(working_spacing=0.0, sampling=0.5, shrink=(2, 1), smoothing=(1.0, 0.0), iterations=100)


def test_refinement_on_the_brain_corrects_an_offset_registration(tmp_path):
    raw = write_raw_case(tmp_path)
    case = discover_cases(raw.folder.parent, allow_missing=True)[0]
    images = {"t1c": reorient_to_ras(read_image(raw.images["t1c"]))}
    options = {"atlas": raw.atlas, "mask": raw.atlas_mask, "registration": FAST}
    space = target_space(case, images, "t1c", skip_registration=False, shape=ATLAS_SHAPE, spacing=ATLAS_SPACING,
                         **options)
    # a first registration 8 mm and 8 degrees off
    offset = sitk.Euler3DTransform()
    offset.SetCenter(tuple(space.grid.centre()))
    offset.SetRotation(np.deg2rad(8.0), 0.0, 0.0)
    offset.SetTranslation((0.0, 8.0, 0.0))
    off = dataclasses.replace(space, to_native_ref=compose(offset, raw.to_subject))
    # the brain that an extractor finds on that grid: the subject's brain, wherever the offset put it
    to_atlas = compose(off.to_native_ref, invert(raw.to_subject))
    brain = array_of(resample(read_image(raw.atlas_mask, sitk.sitkUInt8), off.grid, to_atlas, nearest=True)) > 0

    atlas_brain = np.argwhere(nib.load(raw.atlas_mask).get_fdata() > 0)[::25]
    points = [tuple(float(v) for v in (ATLAS_AFFINE[:3, :3] @ p + ATLAS_AFFINE[:3, 3]) * (-1, -1, 1))
              for p in atlas_brain]
    assert transform_error_mm(off.to_native_ref, raw.to_subject, points) > 8.0
    refined, correction = refine_on_brain(images, "t1c", off, brain, **options)
    assert correction is not None and refined.refinement["kept"]
    assert refined.refinement["similarity_after"] > refined.refinement["similarity_before"]
    assert transform_error_mm(refined.to_native_ref, raw.to_subject, points) < ATLAS_SPACING
