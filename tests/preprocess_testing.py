"""Test helper: a tiny synthetic atlas and "raw" scans made from it by known transforms (preprocessing tests)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from gliomics.io.sitk_images import image_from_array
from gliomics.preprocess.geometry import Grid, centred_grid, resample

ATLAS_SHAPE = (40, 44, 36)
ATLAS_SPACING = 2.0


def _ellipsoid(shape, centre, radii) -> np.ndarray:
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij"))
    return (((grid - np.reshape(centre, (3, 1, 1, 1))) / np.reshape(radii, (3, 1, 1, 1))) ** 2).sum(0) <= 1.0


def atlas_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A brain-like template (asymmetric, so registration has one answer), its mask and a lesion label map."""
    c = np.array(ATLAS_SHAPE) / 2.0 - 0.5
    brain = _ellipsoid(ATLAS_SHAPE, c, (15, 18, 13))
    image = 100.0 * brain
    image[_ellipsoid(ATLAS_SHAPE, c + (-4, 2, 1), (2.5, 6, 3))] = 30.0  # ventricles
    image[_ellipsoid(ATLAS_SHAPE, c + (4, 2, 1), (2.5, 6, 3))] = 30.0
    image[_ellipsoid(ATLAS_SHAPE, c + (-7, -9, 5), (3, 3, 3))] = 160.0  # a bright nucleus, left-front
    image[_ellipsoid(ATLAS_SHAPE, c + (6, 10, -6), (4, 2, 2))] = 60.0
    lesion = _ellipsoid(ATLAS_SHAPE, c + (7, -5, 3), (4, 4, 3)).astype(np.uint8)
    texture = ndimage.gaussian_filter(np.random.default_rng(7).normal(size=ATLAS_SHAPE), 1.5)  # gyri-like detail
    image += brain * 25.0 * texture / texture.std()
    return ndimage.gaussian_filter(image, 0.8).astype(np.float32), brain.astype(np.uint8), lesion


ATLAS_AFFINE = np.diag([ATLAS_SPACING] * 3 + [1.0])
ATLAS_AFFINE[:3, 3] = (-40.0, -44.0, -36.0)


@dataclass
class RawCase:
    """A raw case made from the tiny atlas."""

    folder: Path
    images: dict[str, Path]
    seg: Path
    atlas: Path
    atlas_mask: Path
    to_subject: sitk.AffineTransform
    to_flair: sitk.AffineTransform
    atlas_lesion: np.ndarray


def _affine(degrees, shift, scale, centre) -> sitk.AffineTransform:
    euler = sitk.Euler3DTransform()
    euler.SetCenter(tuple(float(v) for v in centre))
    euler.SetRotation(*(float(a) for a in np.deg2rad(degrees)))
    euler.SetTranslation(tuple(float(v) for v in shift))
    affine = sitk.AffineTransform(3)
    affine.SetCenter(euler.GetCenter())
    affine.SetMatrix(tuple((np.asarray(euler.GetMatrix()).reshape(3, 3) * scale).ravel()))
    affine.SetTranslation(euler.GetTranslation())
    return affine


def write_raw_case(root: Path, case_id: str = "RAW-001") -> RawCase:
    """Write the atlas files and one raw case whose T1ce is the atlas seen through a known affine, in LPS voxel
    order at another spacing; FLAIR has inverted contrast and a further 3 mm / 3° rigid offset."""
    image, mask, lesion = atlas_arrays()
    root.mkdir(parents=True, exist_ok=True)
    atlas_path, mask_path = root / "atlas.nii.gz", root / "atlas_mask.nii.gz"
    atlas = image_from_array(image, ATLAS_AFFINE)
    sitk.WriteImage(atlas, str(atlas_path))
    sitk.WriteImage(image_from_array(mask, ATLAS_AFFINE), str(mask_path))
    centre = Grid.of(atlas).centre()
    to_subject = _affine((6.0, -4.0, 5.0), (5.0, -3.0, 4.0), 1.05, centre)  # atlas points -> subject points
    subject_grid = centred_grid(to_subject.TransformPoint(tuple(centre)), (46, 50, 34), 1.9,
                                direction=(1, 0, 0, 0, 1, 0, 0, 0, 1))  # LPS voxel order
    inverse = to_subject.GetInverse()
    folder = root / "raw" / case_id
    folder.mkdir(parents=True)
    t1c = resample(atlas, subject_grid, inverse)
    flair_in_t1c = sitk.Cast((200.0 - atlas) * sitk.Cast(sitk.Cast(atlas > 5, sitk.sitkUInt8), sitk.sitkFloat32),
                             sitk.sitkFloat32)
    flair_offset = _affine((0.0, 3.0, 0.0), (3.0, 0.0, -2.0), 1.0, to_subject.TransformPoint(tuple(centre)))
    flair_grid = centred_grid(to_subject.TransformPoint(tuple(centre)), (40, 44, 30), 2.2,
                              direction=(1, 0, 0, 0, 1, 0, 0, 0, 1))
    # The tissue at t1c point p appears at FLAIR point flair_offset(p), so co-registration should find flair_offset.
    t2f = resample(resample(flair_in_t1c, subject_grid, inverse), flair_grid, flair_offset.GetInverse())
    seg = resample(image_from_array(lesion * 3, ATLAS_AFFINE), subject_grid, inverse, nearest=True)
    paths = {"t1c": folder / f"{case_id}-t1c.nii.gz", "t2f": folder / f"{case_id}-t2f.nii.gz"}
    sitk.WriteImage(t1c, str(paths["t1c"]))
    sitk.WriteImage(t2f, str(paths["t2f"]))
    sitk.WriteImage(sitk.Cast(seg, sitk.sitkUInt8), str(folder / f"{case_id}-seg.nii.gz"))
    return RawCase(folder, paths, folder / f"{case_id}-seg.nii.gz", atlas_path, mask_path, to_subject, flair_offset,
                   lesion)


QUIRK_SHAPE = (40, 40, 32)
QUIRK_SPACING = 2.0


def write_quirky_case(root: Path, case_id: str = "QRK-001") -> Path:
    """Write a co-registered, skull-stripped case whose files carry real scans' quirks; returns the case folder.

    T1 is stored as float64; T1ce as int16 with a few voxels at 32767; T2 has a few small negative values; FLAIR
    covers only the upper half of the brain (0 below).
    """
    import nibabel as nib

    centre = np.array(QUIRK_SHAPE) / 2.0 - 0.5
    brain = _ellipsoid(QUIRK_SHAPE, centre, (14, 16, 12))
    texture = ndimage.gaussian_filter(np.random.default_rng(3).normal(size=QUIRK_SHAPE), 1.0)
    base = np.where(brain, 300.0 + 40.0 * texture / texture.std(), 0.0)
    affine = np.diag([QUIRK_SPACING] * 3 + [1.0])
    affine[:3, 3] = -QUIRK_SPACING * centre
    t1c = np.round(base * 1.5).astype(np.int16)
    t1c[18:20, 18:20, 14:16] = 32767
    t2w = base.astype(np.float32) * 2.0
    edge = brain & ~ndimage.binary_erosion(brain)
    t2w[tuple(np.argwhere(edge)[::40].T)] = -4.0
    t2f = base.astype(np.float32)
    t2f[:, :, : QUIRK_SHAPE[2] // 2] = 0.0
    folder = root / "quirky" / case_id
    folder.mkdir(parents=True)
    for name, array in {"t1n": base.astype(np.float64), "t1c": t1c, "t2w": t2w, "t2f": t2f}.items():
        image = nib.Nifti1Image(array, affine)
        image.set_data_dtype(array.dtype)
        nib.save(image, folder / f"{case_id}-{name}.nii.gz")
    return folder
