"""Read and write NIfTI images while keeping their geometry (affine, header, voxel size).

Every reader error is an :class:`~gliomics.errors.ImageError` (or :class:`~gliomics.errors.LabelError`) whose message
starts with the offending file, and every write goes through a temporary file that is renamed into place, so an
interrupted run never leaves a half-written image behind.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError

from gliomics.constants import AFFINE_ATOL, MAX_LABEL
from gliomics.errors import ImageError, InputError, LabelError, OutputError
from gliomics.io.atomic import atomic_path

logger = logging.getLogger(__name__)

#: Exceptions nibabel, gzip and numpy raise on a damaged file, at load time or (lazily) when the data are read.
_READ_ERRORS = (OSError, EOFError, zlib.error, ImageFileError, HeaderDataError, ValueError)
_NIFTI_SUFFIXES = (".nii.gz", ".nii")
#: At most this many offending values are listed in an error message.
_MAX_LISTED = 8
#: Fewer voxels than this along any axis is not a brain scan (a 2D image, a thumbnail, a crop gone wrong).
MIN_AXIS_VOXELS = 8


def voxel_spacing(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel size in mm along the three voxel axes of a 4x4 (or 3x3) affine: the length of each column of its linear
    part (MONAI's ``affine_to_spacing``). The one place gliomics derives a voxel size from an affine."""
    from monai.data.utils import affine_to_spacing

    spacing = affine_to_spacing(np.asarray(affine, dtype=np.float64), r=3)
    return tuple(float(v) for v in spacing)  # type: ignore[return-value]


@dataclass
class Image:
    """A volume with its geometry.

    Attributes:
        array: Voxel data, in the file's voxel order (no reorientation).
        affine: 4×4 voxel-to-world (RAS+ mm) matrix, float64.
        header: The NIfTI header the image was read with (or built for it).
        path: The file the image came from, if any.
    """

    array: np.ndarray
    affine: np.ndarray
    header: nib.Nifti1Header
    path: Path | None = None

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along the three spatial axes, from the affine (:func:`voxel_spacing`)."""
        return voxel_spacing(self.affine)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of :attr:`array`."""
        return tuple(self.array.shape)

    @property
    def name(self) -> str:
        """The file path as text, or ``"<in memory>"``; used in error messages."""
        return str(self.path) if self.path is not None else "<in memory>"


def _nifti_suffix(path: Path) -> str | None:
    lower = path.name.lower()
    return next((s for s in _NIFTI_SUFFIXES if lower.endswith(s)), None)


def _read(path: Path | str) -> tuple[nib.Nifti1Image, np.ndarray, Path]:
    """Load the file and its voxels (as stored, scaling applied), squeezing trailing singleton dimensions."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: not found")
    if not path.is_file():
        raise InputError(f"{path}: not a file")
    try:
        img = nib.load(path, mmap=False)  # own the voxels: no open file handle behind the array
    except _READ_ERRORS as exc:
        raise ImageError(f"{path}: corrupt or truncated NIfTI ({type(exc).__name__}: {exc})") from exc
    shape = tuple(int(s) for s in img.shape)
    if len(shape) > 3 and all(s == 1 for s in shape[3:]):
        shape = shape[:3]
    if len(shape) != 3:
        raise ImageError(f"{path}: expected a 3D image, got shape {tuple(img.shape)}")
    if min(shape) < MIN_AXIS_VOXELS:
        raise ImageError(f"{path}: {'×'.join(map(str, shape))} voxels is far too small for a brain scan "
                         f"(at least {MIN_AXIS_VOXELS} voxels per axis)")
    linear = np.asarray(img.affine, dtype=np.float64)[:3, :3]
    if not np.all(np.isfinite(linear)) or abs(float(np.linalg.det(linear))) < 1e-12:
        raise ImageError(f"{path}: unusable voxel-to-world matrix (affine {linear.tolist()}): no voxel size or "
                         "orientation; the header's sform/qform is broken (re-export the scan)")
    if np.issubdtype(img.get_data_dtype(), np.complexfloating):
        raise ImageError(f"{path}: complex-valued voxels ({img.get_data_dtype()}); give the magnitude image")
    try:
        # nibabel is lazy: a truncated gzip stream often fails only here.
        data = np.asanyarray(img.dataobj)
    except _READ_ERRORS as exc:
        raise ImageError(f"{path}: corrupt or truncated NIfTI ({type(exc).__name__}: {exc})") from exc
    data = np.asarray(data).reshape(shape)
    return img, data, path


def _header_of(img: nib.Nifti1Image) -> nib.Nifti1Header:
    header = img.header
    if isinstance(header, nib.Nifti1Header):
        return header.copy()
    return nib.Nifti1Header.from_header(header)


def _check_finite(data: np.ndarray, path: Path) -> None:
    if np.issubdtype(data.dtype, np.floating):
        bad = int(data.size - np.count_nonzero(np.isfinite(data)))
        if bad:
            raise ImageError(f"{path}: {bad} voxels are NaN or infinite")


def load_image(path: Path | str, *, dtype: np.dtype | type = np.float32) -> Image:
    """Read a 3D NIfTI image.

    A 4D (or higher) image whose trailing dimensions are all 1 is squeezed to 3D.

    Args:
        path: A ``.nii`` or ``.nii.gz`` file.
        dtype: Data type of the returned array.

    Returns:
        The image with its affine and a copy of its header.

    Raises:
        InputError: The file does not exist.
        ImageError: The file is corrupt or truncated, not 3D, has a singular affine, or has NaN/infinite voxels.
    """
    img, data, path = _read(path)
    _check_finite(data, path)
    array = np.asarray(data, dtype=dtype)
    _check_finite(array, path)  # a float64 value can overflow to inf in float32
    return Image(array=array, affine=np.asarray(img.affine, dtype=np.float64), header=_header_of(img), path=path)


def _listed(values: np.ndarray) -> str:
    shown = ", ".join(f"{v:g}" for v in values[:_MAX_LISTED].tolist())
    return shown + (f", … ({len(values)} distinct)" if len(values) > _MAX_LISTED else "")


def load_label(path: Path | str, *, label_map: Mapping[int, int] | None = None) -> Image:
    """Read a segmentation as uint8 BraTS 2024 labels (0..MAX_LABEL).

    Args:
        path: A ``.nii`` or ``.nii.gz`` file.
        label_map: Explicit conversion from another label scheme, e.g.
            :data:`~gliomics.constants.BRATS2021_TO_2024`; values not in its keys are an error.

    Returns:
        The label image (uint8).

    Raises:
        LabelError: Non-integer values, or values outside 0..MAX_LABEL (or outside ``label_map``).
        ImageError: As in :func:`load_image`.
    """
    img, data, path = _read(path)
    _check_finite(data, path)
    values = np.unique(data)
    fractional = values[values != np.round(values)] if np.issubdtype(values.dtype, np.floating) else values[:0]
    if fractional.size:
        raise LabelError(f"{path}: label values must be integers, found {_listed(fractional)}")
    if label_map is not None:
        unknown = values[~np.isin(values, list(label_map))]
        if unknown.size:
            raise LabelError(f"{path}: label values {_listed(unknown)} are not in the expected set {sorted(label_map)}")
        lut = np.zeros(int(values.max()) + 1 if values.size else 1, dtype=np.uint8)
        for src, dst in label_map.items():
            if 0 <= src < lut.size:
                lut[int(src)] = dst
        array = lut[data.astype(np.int64)]
    else:
        outside = values[(values < 0) | (values > MAX_LABEL)]
        if outside.size:
            raise LabelError(f"{path}: label values {_listed(outside)} are outside 0..{MAX_LABEL}")
        array = data.astype(np.uint8)
    return Image(array=array, affine=np.asarray(img.affine, dtype=np.float64), header=_header_of(img), path=path)


def load_mask(path: Path | str) -> Image:
    """Read a binary mask (a whole-tumour outline without subregions) as uint8 0/1.

    Raises:
        LabelError: Values other than 0 and 1.
        ImageError: As in :func:`load_image`.
    """
    return load_label(path, label_map={0: 0, 1: 1})


def _output_dtype(array: np.ndarray, dtype: np.dtype | type | None) -> np.dtype:
    if dtype is not None:
        return np.dtype(dtype)
    kind = array.dtype
    if kind == np.bool_:
        return np.dtype(np.uint8)
    if kind == np.float16:
        return np.dtype(np.float32)
    if kind in (np.int64, np.uint64):
        # int64 NIfTI files are poorly supported by other tools; narrow when the values allow it.
        info = np.iinfo(np.int32)
        if array.size == 0 or (array.min() >= info.min and array.max() <= info.max):
            return np.dtype(np.int32)
    return kind


def save_image(
    array: np.ndarray,
    affine: np.ndarray,
    path: Path | str,
    *,
    header: nib.Nifti1Header | None = None,
    dtype: np.dtype | type | None = None,
) -> Path:
    """Write a NIfTI image atomically (temporary file in the same folder, then rename).

    Args:
        array: Voxel data.
        affine: 4×4 voxel-to-world matrix; written to both the sform and the qform.
        path: Destination ending in ``.nii.gz`` (compressed) or ``.nii``. Parent folders are created.
        header: A header to keep (e.g. the input's, so units and descriptions survive); it is copied, and its
            data type and sform/qform are set from ``dtype`` and ``affine``.
        dtype: On-disk data type; by default the array's (bool → uint8, float16 → float32, int64 → int32).

    Returns:
        The written path.

    Raises:
        OutputError: The path is not a NIfTI name or cannot be written; no partial file is left behind.
    """
    path = Path(path)
    suffix = _nifti_suffix(path)
    if suffix is None:
        raise OutputError(f"{path}: expected a file name ending in .nii.gz or .nii")
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise ValueError(f"affine must be a finite 4x4 matrix, got shape {affine.shape}")
    array = np.asarray(array)
    out_dtype = _output_dtype(array, dtype)

    if header is not None:
        hdr = header.copy() if isinstance(header, nib.Nifti1Header) else nib.Nifti1Header.from_header(header)
        sform_code = int(hdr["sform_code"]) or 1
        qform_code = int(hdr["qform_code"]) or 1
    else:
        hdr = nib.Nifti1Header()
        hdr.set_xyzt_units("mm", "sec")
        sform_code = qform_code = 1
    hdr.set_data_dtype(out_dtype)
    hdr.set_slope_inter(None, None)  # the input's scaling does not apply to new data
    img = nib.Nifti1Image(array.astype(out_dtype, copy=False), affine, header=hdr)
    img.set_sform(affine, code=sform_code)
    img.set_qform(affine, code=qform_code)

    try:
        with atomic_path(path) as tmp:
            nib.save(img, tmp)
    except BaseException as exc:
        if isinstance(exc, (OSError, ValueError, HeaderDataError, ImageFileError)):
            raise OutputError(f"{path}: cannot write ({type(exc).__name__}: {exc})") from exc
        raise
    logger.debug("wrote %s %s %s", path, array.shape, out_dtype)
    return path


def check_same_geometry(images: Mapping[str, Image], *, atol: float = AFFINE_ATOL) -> None:
    """Check that images share the same shape and affine (e.g. the sequences and the segmentation of a case).

    Args:
        images: Images keyed by a name (the sequence); the file paths are used in messages when known.
        atol: Absolute tolerance on the affine entries (mm and direction cosines).

    Raises:
        ImageError: Naming both files, if a shape or an affine differs from the first image's.
    """
    items = list(images.items())
    if not items:
        return
    ref_key, ref = items[0]
    ref_name = ref.name if ref.path is not None else ref_key
    for key, img in items[1:]:
        name = img.name if img.path is not None else key
        if img.shape != ref.shape:
            raise ImageError(f"{name}: shape {img.shape} differs from {ref_name} shape {ref.shape}")
        diff = np.abs(np.asarray(img.affine) - np.asarray(ref.affine))
        if not np.all(diff <= atol):
            raise ImageError(
                f"{name}: affine differs from {ref_name} by up to {float(diff.max()):.4g} (tolerance {atol:g}); "
                f"origin {_fmt(img.affine[:3, 3])} vs {_fmt(ref.affine[:3, 3])}, "
                f"spacing {_fmt(img.spacing)} vs {_fmt(ref.spacing)}"
            )


def _fmt(values: np.ndarray | tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{float(v):.4g}" for v in values) + ")"
