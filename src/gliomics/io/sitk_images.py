"""SimpleITK images ↔ NIfTI arrays and affines, and reading any 3D image with SimpleITK.

SimpleITK works in LPS physical coordinates (DICOM) and NIfTI/nibabel in RAS; the two differ by a flip of the first two
axes, so one physical point has the same meaning in both once converted. Voxel order: nibabel's (i, j, k) = (x, y, z).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from gliomics.errors import ImageError, InputError
from gliomics.io.nifti import voxel_spacing

__all__ = ["LPS_TO_RAS", "array_of", "image_from_array", "nifti_affine", "read_image"]

#: LPS ↔ RAS: negate x and y.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def nifti_affine(image: sitk.Image) -> np.ndarray:
    """The 4×4 RAS voxel-to-world affine of a SimpleITK image (voxel index order i, j, k = x, y, z)."""
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = LPS_TO_RAS @ direction @ np.diag(image.GetSpacing())
    affine[:3, 3] = LPS_TO_RAS @ np.asarray(image.GetOrigin(), dtype=np.float64)
    return affine


def image_from_array(array: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """A SimpleITK image from a nibabel-style array (i, j, k) and its RAS affine."""
    affine = np.asarray(affine, dtype=np.float64)
    linear = LPS_TO_RAS @ affine[:3, :3]
    spacing = np.asarray(voxel_spacing(affine))
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(array, (2, 1, 0))))
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetDirection(tuple(float(v) for v in (linear / spacing).ravel()))
    image.SetOrigin(tuple(float(v) for v in LPS_TO_RAS @ affine[:3, 3]))
    return image


def image_like(array: np.ndarray, like: sitk.Image) -> sitk.Image:
    """A SimpleITK image on ``like``'s grid from a nibabel-style array (i, j, k) of that grid's shape."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(array, (2, 1, 0))))
    image.CopyInformation(like)
    return image


def array_of(image: sitk.Image) -> np.ndarray:
    """Voxels of a SimpleITK image in nibabel order (i, j, k), matching :func:`nifti_affine`."""
    return np.transpose(sitk.GetArrayFromImage(image), (2, 1, 0))


def read_image(path: Path | str, pixel_type: int = sitk.sitkFloat32) -> sitk.Image:
    """Read a 3D image with SimpleITK (NIfTI, NRRD, MHA…), checking that it is 3D and finite.

    Raises:
        InputError: The file does not exist.
        ImageError: The file cannot be read, is not 3D, or has NaN/infinite voxels.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {'not a file' if path.exists() else 'not found'}")
    try:
        image = sitk.ReadImage(str(path), pixel_type)
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else type(exc).__name__
        raise ImageError(f"{path}: cannot read image ({reason})") from exc
    if image.GetDimension() != 3:
        raise ImageError(f"{path}: expected a 3D image, got {image.GetDimension()}D")
    if pixel_type in (sitk.sitkFloat32, sitk.sitkFloat64):
        bad = int(np.count_nonzero(~np.isfinite(sitk.GetArrayViewFromImage(image)))) or _nifti_non_finite(path)
        if bad:
            raise ImageError(f"{path}: {bad} voxels are NaN or infinite")
    return image


def _nifti_non_finite(path: Path) -> int:
    """NaN or infinite voxels of a floating-point NIfTI file, counted by nibabel: ITK's NIfTI reader silently
    turns NaN into 0, which would hide a damaged scan."""
    if not path.name.lower().endswith((".nii", ".nii.gz")):
        return 0
    import nibabel as nib

    try:
        img = nib.load(path)
        if not np.issubdtype(img.get_data_dtype(), np.floating):
            return 0
        data = np.asanyarray(img.dataobj)
    except Exception:  # SimpleITK read the file; this is only a second look at its voxels
        return 0
    return int(data.size - np.count_nonzero(np.isfinite(data)))
