"""Base anatomy of the phantoms: the MNI152 2009a template, resampled per case with a random affine."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

#: BraTS grid extent in mm (240 × 240 × 155 at 1 mm).
GRID_EXTENT_MM: tuple[float, float, float] = (240.0, 240.0, 155.0)
MAX_ROTATION_DEG = 8.0
SCALE_RANGE = (0.92, 1.08)
MAX_TRANSLATION_MM = 5.0


@dataclass(frozen=True)
class Template:
    """Tissue maps on the template grid and the template's voxel-to-MNI affine."""

    gm: np.ndarray
    wm: np.ndarray
    mask: np.ndarray
    affine: np.ndarray
    brain_centre_mm: np.ndarray


@functools.lru_cache(maxsize=1)
def load_template() -> Template:
    """Load the MNI152 2009a maps from nilearn's package data (never downloads)."""
    from nilearn import datasets

    def arr(img) -> np.ndarray:
        return np.asarray(img.dataobj, dtype=np.float32)

    mask_img = datasets.load_mni152_brain_mask(resolution=1)
    mask = (arr(mask_img) > 0.5).astype(np.float32)
    gm = arr(datasets.load_mni152_gm_template(resolution=1)) * mask
    wm = arr(datasets.load_mni152_wm_template(resolution=1)) * mask
    idx = np.argwhere(mask > 0)
    affine = mask_img.affine.astype(np.float64)
    centre_vox = (idx.min(0) + idx.max(0)) / 2.0
    centre_mm = affine[:3, :3] @ centre_vox + affine[:3, 3]
    return Template(gm=gm, wm=wm, mask=mask, affine=affine, brain_centre_mm=centre_mm)


@functools.lru_cache(maxsize=4)
def smoothed_template(spacing: float) -> Template:
    """Template maps low-pass filtered for sampling at ``spacing`` mm, so coarse grids do not alias."""
    t = load_template()
    if spacing <= 1.0:
        return t
    sigma = 0.4 * spacing
    return Template(*(ndimage.gaussian_filter(m, sigma) for m in (t.gm, t.wm, t.mask)), t.affine, t.brain_centre_mm)


def grid_shape(spacing: float) -> tuple[int, int, int]:
    """The BraTS grid at ``spacing`` mm: ceil(240/s) × ceil(240/s) × ceil(155/s)."""
    return tuple(int(math.ceil(e / spacing - 1e-9)) for e in GRID_EXTENT_MM)


def grid_affine(spacing: float) -> np.ndarray:
    """RAS+ voxel-to-world affine of the output grid, centred on the template's brain (world = MNI mm)."""
    shape = np.array(grid_shape(spacing), dtype=np.float64)
    centre = load_template().brain_centre_mm
    aff = np.diag([spacing, spacing, spacing, 1.0])
    aff[:3, 3] = centre - (shape - 1) / 2.0 * spacing
    return aff


def random_anatomy_transform(rng: np.random.Generator, centre_mm: np.ndarray) -> np.ndarray:
    """A 4×4 MNI-to-world affine: rotation ≤ 8° per axis and isotropic scale about the brain centre, then a shift."""
    angles = rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG, size=3)
    scale = rng.uniform(*SCALE_RANGE)
    shift = rng.uniform(-MAX_TRANSLATION_MM, MAX_TRANSLATION_MM, size=3)
    lin = Rotation.from_euler("xyz", angles, degrees=True).as_matrix() * scale
    t = np.eye(4)
    t[:3, :3] = lin
    t[:3, 3] = centre_mm - lin @ centre_mm + shift
    return t


@dataclass
class CaseAnatomy:
    """Tissue probability maps of one case on the output grid."""

    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    brain: np.ndarray  # bool
    mni_to_world: np.ndarray


def sample_anatomy(spacing: float, mni_to_world: np.ndarray) -> CaseAnatomy:
    """Resample the template tissue maps through ``mni_to_world`` onto the output grid."""
    tmpl = smoothed_template(spacing)
    out_aff = grid_affine(spacing)
    # output voxel -> world -> MNI -> template voxel, as one affine for ndimage.affine_transform
    vox_map = np.linalg.inv(tmpl.affine) @ np.linalg.inv(mni_to_world) @ out_aff
    shape = grid_shape(spacing)

    def warp(m: np.ndarray) -> np.ndarray:
        return ndimage.affine_transform(m, vox_map[:3, :3], vox_map[:3, 3], output_shape=shape, order=1,
                                        mode="constant", cval=0.0, output=np.float32)

    mask = warp(tmpl.mask)
    brain = mask > 0.5
    gm = np.clip(warp(tmpl.gm), 0, 1) * brain
    wm = np.clip(warp(tmpl.wm), 0, 1) * brain
    csf = np.clip(brain.astype(np.float32) - gm - wm, 0, 1)
    return CaseAnatomy(gm=gm, wm=wm, csf=csf, brain=brain, mni_to_world=mni_to_world)


def template_mask_at(points_mm: np.ndarray) -> np.ndarray:
    """Brain-mask value of the (unsmoothed) template at MNI points (N×3)."""
    t = load_template()
    vox = (np.linalg.inv(t.affine) @ np.c_[points_mm, np.ones(len(points_mm))].T)[:3]
    return ndimage.map_coordinates(t.mask, vox, order=0, mode="constant", cval=0.0)
