"""Axial ROI slices of a volume: the VOI from a segmentation, the k slices of largest VOI area, the ROI crop.

Volumes are first brought to the closest RAS+ voxel order (:func:`axial_stack`), so that whatever the orientation
of the file, slices are axial and shown the radiological way: anterior at the top, the patient's right on the left.
"""

from __future__ import annotations

from collections.abc import Sequence

import nibabel as nib
import numpy as np

from gliomics.constants import LABELS, REGIONS
from gliomics.errors import ConfigError

__all__ = ["DEFAULT_VOI", "axial_spacing", "axial_stack", "crop_box", "parse_voi_labels", "roi_box", "select_slices"]

#: The default VOI: the tumour core seen on T1ce, enhancing tumour plus the necrotic core inside it.
DEFAULT_VOI: tuple[str, ...] = ("ET", "NETC")


def parse_voi_labels(spec: str | Sequence[str | int]) -> tuple[int, ...]:
    """Label values of a VOI given by label names (``ET``, ``NETC``, ``SNFH``, ``RC``), regions (``TC``, ``WT``)
    or values 1-4, as a comma-separated string or a sequence.

    Raises:
        ConfigError: An unknown name or value, or an empty list.
    """
    tokens = [t.strip() for t in spec.split(",")] if isinstance(spec, str) else [str(t).strip() for t in spec]
    values: set[int] = set()
    for token in filter(None, tokens):
        name = token.upper()
        if name in REGIONS:
            values.update(REGIONS[name])
        elif token.isdigit() and 0 < int(token) <= max(LABELS.values()):
            values.add(int(token))
        else:
            raise ConfigError(f"unknown VOI label {token!r}; expected label names ({', '.join(REGIONS)}) "
                              f"or values 1-{max(LABELS.values())}")
    if not values:
        raise ConfigError("empty VOI label list")
    return tuple(sorted(values))


def axial_stack(volume: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """The axial slices of a 3D volume, as an array Z×rows×columns.

    The voxel axes are reordered and flipped to the closest RAS+ orientation; slice 0 is the most inferior, rows run
    from anterior to posterior and columns from the patient's right to left (radiological view).
    """
    ras = nib.orientations.apply_orientation(volume, nib.orientations.io_orientation(affine))
    return np.ascontiguousarray(np.flip(np.transpose(ras, (2, 1, 0)), axis=(1, 2)))


def axial_spacing(spacing: Sequence[float], affine: np.ndarray) -> tuple[float, float]:
    """Voxel size in mm along the rows and columns of :func:`axial_stack` slices (the A-P and R-L axes)."""
    ornt = nib.orientations.io_orientation(affine)
    by_world = {int(world): float(spacing[voxel]) for voxel, (world, _) in enumerate(ornt)}
    return by_world[1], by_world[0]


def select_slices(mask: np.ndarray, k: int) -> list[int]:
    """Indices of the ``k`` slices (first axis) with the largest mask area, largest first.

    Ties go to the lower index; slices with an empty mask are never selected, so fewer than ``k`` indices come back
    when fewer slices hold the mask.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if mask.ndim != 3:
        raise ValueError(f"expected a 3D mask (slices first), got shape {mask.shape}")
    areas = np.count_nonzero(mask.reshape(mask.shape[0], -1), axis=1)
    order = np.argsort(-areas, kind="stable")
    return [int(i) for i in order[:k] if areas[i] > 0]


def roi_box(mask: np.ndarray, margin: int | tuple[int, int] = 0, *, square: bool = True) -> tuple[int, int, int, int]:
    """Bounding box of a 2D mask, grown by ``margin`` pixels on every side.

    Args:
        mask: 2D mask with at least one pixel set.
        margin: Pixels added on each side, or ``(rows, columns)``.
        square: Grow the shorter side symmetrically so that the box is square (the crop is then resized without
            distorting the lesion).

    Returns:
        ``(row0, row1, col0, col1)``, half-open; it may reach beyond the image (see :func:`crop_box`).
    """
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        raise ValueError("empty mask: no bounding box")
    m_row, m_col = (margin, margin) if isinstance(margin, int) else margin
    if min(m_row, m_col) < 0:
        raise ValueError(f"margin must be non-negative, got {margin}")
    r0, r1 = int(rows.min()) - m_row, int(rows.max()) + 1 + m_row
    c0, c1 = int(cols.min()) - m_col, int(cols.max()) + 1 + m_col
    if square:
        side = max(r1 - r0, c1 - c0)
        r0 -= (side - (r1 - r0)) // 2
        c0 -= (side - (c1 - c0)) // 2
        r1, c1 = r0 + side, c0 + side
    return r0, r1, c0, c1


def crop_box(image: np.ndarray, box: tuple[int, int, int, int], fill: float | None = None) -> np.ndarray:
    """Crop a 2D image to ``box``; parts of the box outside the image are filled with ``fill`` (the image minimum
    when None, i.e. background)."""
    r0, r1, c0, c1 = box
    if r1 <= r0 or c1 <= c0:
        raise ValueError(f"empty box {box}")
    fill = float(image.min()) if fill is None else float(fill)
    out = np.full((r1 - r0, c1 - c0), fill, dtype=image.dtype)
    h, w = image.shape
    sr0, sr1, sc0, sc1 = max(r0, 0), min(r1, h), max(c0, 0), min(c1, w)
    if sr1 > sr0 and sc1 > sc0:
        out[sr0 - r0 : sr1 - r0, sc0 - c0 : sc1 - c0] = image[sr0:sr1, sc0:sc1]
    return out
