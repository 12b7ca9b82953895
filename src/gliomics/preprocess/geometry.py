"""Image geometry for preprocessing: reorientation to RAS, output grids and resampling (SimpleITK images, read and
converted by :mod:`gliomics.io.sitk_images`). A :class:`Grid` is the geometry of a volume
(size, spacing, origin, direction) without its voxels; it is what ``geometry.json`` stores to map results back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk

from gliomics.io.sitk_images import LPS_TO_RAS, nifti_affine


def reorient_to_ras(image: sitk.Image) -> sitk.Image:
    """Permute and flip the voxel axes so that they increase towards Right, Anterior and Superior.

    Only the voxel order changes: every voxel keeps its physical position, so no interpolation happens.
    """
    return sitk.DICOMOrient(image, "RAS")


@dataclass(frozen=True)
class Grid:
    """The geometry of a volume without its voxels (SimpleITK conventions: LPS, x-y-z index order).

    Attributes:
        size: Voxels along x, y, z.
        spacing: Voxel size in mm.
        origin: Physical position (LPS mm) of voxel (0, 0, 0).
        direction: Row-major 3×3 direction cosines.
    """

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]

    @classmethod
    def of(cls, image: sitk.Image) -> Grid:
        """The grid of an image."""
        return cls(tuple(int(s) for s in image.GetSize()), tuple(float(s) for s in image.GetSpacing()),
                   tuple(float(v) for v in image.GetOrigin()), tuple(float(v) for v in image.GetDirection()))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Grid:
        """Read the grid back from :meth:`to_dict`."""
        return cls(tuple(int(v) for v in data["size"]), tuple(float(v) for v in data["spacing"]),
                   tuple(float(v) for v in data["origin"]), tuple(float(v) for v in data["direction"]))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready geometry, with the equivalent NIfTI (RAS) affine for readers that use nibabel."""
        data: dict[str, Any] = {k: list(v) for k, v in asdict(self).items()}
        data["nifti_affine"] = nifti_affine(self.reference()).round(6).tolist()
        return data

    def reference(self, pixel_type: int = sitk.sitkUInt8) -> sitk.Image:
        """An empty image on this grid (the reference of a resampling)."""
        image = sitk.Image(list(self.size), pixel_type)
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image

    def centre(self) -> np.ndarray:
        """Physical position of the grid's centre."""
        index = (np.asarray(self.size, dtype=np.float64) - 1.0) / 2.0
        return self.origin_array + self.matrix @ index

    @property
    def matrix(self) -> np.ndarray:
        """Direction × spacing: index offsets to physical offsets."""
        return np.asarray(self.direction).reshape(3, 3) @ np.diag(self.spacing)

    @property
    def origin_array(self) -> np.ndarray:
        """The origin as an array."""
        return np.asarray(self.origin, dtype=np.float64)


def centred_grid(centre: Sequence[float], shape: Sequence[int], spacing: float,
                 direction: Sequence[float] | None = None) -> Grid:
    """A grid of ``shape`` voxels of ``spacing`` mm whose centre lies at the physical point ``centre``.

    Args:
        centre: LPS position of the centre.
        shape: Voxels along x, y, z (e.g. 240, 240, 155).
        spacing: Isotropic voxel size in mm.
        direction: Row-major direction cosines; RAS voxel order by default.
    """
    direction = tuple(float(v) for v in (direction if direction is not None else LPS_TO_RAS.ravel()))
    matrix = np.asarray(direction).reshape(3, 3) * spacing
    origin = np.asarray(centre, dtype=np.float64) - matrix @ ((np.asarray(shape, dtype=np.float64) - 1.0) / 2.0)
    return Grid(tuple(int(s) for s in shape), (float(spacing),) * 3, tuple(float(v) for v in origin), direction)


def foreground_centre(image: sitk.Image, threshold: float = 0.0) -> np.ndarray:
    """Physical centre of the bounding box of the voxels above ``threshold`` (the image centre if there are none)."""
    array = sitk.GetArrayViewFromImage(image)
    index = np.argwhere(array > threshold)
    grid = Grid.of(image)
    if index.size == 0:
        return grid.centre()
    middle = (index.min(axis=0) + index.max(axis=0))[::-1] / 2.0  # z-y-x array order → x-y-z index
    return grid.origin_array + grid.matrix @ middle


def resample(image: sitk.Image, grid: Grid, transform: sitk.Transform | None = None, *, nearest: bool = False,
             default: float = 0.0) -> sitk.Image:
    """Resample ``image`` onto ``grid``.

    Args:
        image: The moving image.
        grid: The output geometry.
        transform: Maps points of ``grid`` to points of ``image`` (ITK's convention); identity if None.
        nearest: Nearest-neighbour interpolation (labels, masks); linear otherwise.
        default: Value outside ``image``.
    """
    interpolator = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    return sitk.Resample(image, grid.reference(image.GetPixelID()), transform or sitk.Transform(3, sitk.sitkIdentity),
                         interpolator, default, image.GetPixelID())
