"""Intensities of real scans: the data type a file stores, quirks worth a flag (values at the int16 maximum, a scale
far above other scans, negative values), clipping of small negative values, and the robust z-score.

Every scan is read as float32 whatever it stores (int16, float64, …); the stored type is recorded. Quirks are
recorded, and handled where that is safe, rather than refused.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

logger = logging.getLogger(__name__)

INT16_MAX = 32767
#: A 99th percentile above this is flagged ``large_values``: clinical scans mostly store values in the hundreds to
#: a few thousand, and a scan rescaled to fill int16 is ten or more times that.
LARGE_INTENSITY = 10_000.0
#: A 99th percentile this many times the median of the case's other sequences is flagged ``large_vs_others``.
RELATIVE_SCALE = 10.0
#: Negative values are clipped to 0 when they are at most this share of the non-zero voxels (interpolation or
#: filtering undershoot of a magnitude image); more than that suggests signed data, which is kept and flagged.
NEGATIVE_CLIP_SHARE = 0.05
#: Percentiles (inside the brain) that the z-score clips to before taking the mean and s.d.
ZSCORE_PERCENTILES = (0.5, 99.5)

_NUMPY_NAMES = {
    sitk.sitkUInt8: "uint8", sitk.sitkInt8: "int8", sitk.sitkUInt16: "uint16", sitk.sitkInt16: "int16",
    sitk.sitkUInt32: "uint32", sitk.sitkInt32: "int32", sitk.sitkUInt64: "uint64", sitk.sitkInt64: "int64",
    sitk.sitkFloat32: "float32", sitk.sitkFloat64: "float64",
}


def stored_dtype(path: Path | str) -> str:
    """The voxel type a file stores (``int16``, ``float64``, …), from its header only."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return "unknown"
    pixel_id = reader.GetPixelID()
    return _NUMPY_NAMES.get(pixel_id, sitk.GetPixelIDValueAsString(pixel_id))


def intensity_flags(array: np.ndarray) -> dict[str, Any]:
    """Summary and flags of one scan's voxels (as read, float32).

    Returns:
        ``min``, ``max``, ``p99`` (of the non-zero voxels), ``int16_max_voxels`` (voxels at 32767 or above),
        ``saturated`` (any such voxel), ``large_values`` (99th percentile above :data:`LARGE_INTENSITY`),
        ``negative_voxels`` and ``negative_share`` (of the non-zero voxels); ``clipped_negatives`` is False until
        :func:`clip_negatives` clips them.
    """
    values = array[array != 0]
    p99 = float(np.percentile(values, 99)) if values.size else 0.0
    negative = int(np.count_nonzero(values < 0))
    at_max = int(np.count_nonzero(values >= INT16_MAX))
    return {
        "min": round(float(array.min()), 4) if array.size else 0.0,
        "max": round(float(array.max()), 4) if array.size else 0.0,
        "p99": round(p99, 4),
        "int16_max_voxels": at_max,
        "saturated": at_max > 0,
        "large_values": p99 > LARGE_INTENSITY,
        "negative_voxels": negative,
        "negative_share": round(negative / values.size, 6) if values.size else 0.0,
        "clipped_negatives": False,
    }


def flag_relative_scale(flags: dict[str, dict[str, Any]]) -> None:
    """Add ``scale_vs_others`` (99th percentile over the median of the other sequences') and ``large_vs_others``
    to every sequence's flags, in place."""
    for s, own in flags.items():
        others = [f["p99"] for o, f in flags.items() if o != s and f["p99"] > 0]
        ratio = own["p99"] / float(np.median(others)) if others else 1.0
        own["scale_vs_others"] = round(ratio, 3)
        own["large_vs_others"] = ratio > RELATIVE_SCALE


def clip_negatives(image: sitk.Image, flags: dict[str, Any]) -> sitk.Image:
    """Clip negative values to 0 when they are few (:data:`NEGATIVE_CLIP_SHARE`); sets ``clipped_negatives``."""
    if flags["negative_voxels"] == 0 or flags["negative_share"] > NEGATIVE_CLIP_SHARE:
        return image
    flags["clipped_negatives"] = True
    return sitk.Clamp(image, lowerBound=0.0)


def intensity_warnings(sequence: str, flags: dict[str, Any]) -> list[str]:
    """The warnings one sequence's flags raise (clipped small negatives are recorded, not warned about)."""
    warnings = []
    if flags["saturated"]:
        warnings.append(f"{sequence}: {flags['int16_max_voxels']} voxels at the int16 maximum ({INT16_MAX}): "
                        "saturated, or rescaled to fill int16")
    if flags["large_values"]:
        warnings.append(f"{sequence}: unusually large intensities (99th percentile {flags['p99']:g}, above "
                        f"{LARGE_INTENSITY:g})")
    if flags.get("large_vs_others"):
        warnings.append(f"{sequence}: intensities {flags['scale_vs_others']:g} times those of the other sequences "
                        "(99th percentiles)")
    if flags["negative_voxels"] and not flags["clipped_negatives"]:
        warnings.append(f"{sequence}: {flags['negative_share']:.1%} of the non-zero voxels are negative (minimum "
                        f"{flags['min']:g}); kept, as the data look signed")
    return warnings


def robust_zscore(array: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Standardise inside ``mask`` after clipping to the :data:`ZSCORE_PERCENTILES` of the values there, so that a
    saturated region or a few extreme voxels cannot set the scale; 0 outside the mask.

    The clipped values are standardised: inside the mask the result has mean 0 and s.d. 1.
    """
    array = np.asarray(array, dtype=np.float32)
    out = np.zeros_like(array)
    inside = array[mask]
    if inside.size < 2:
        return out
    low, high = np.percentile(inside, ZSCORE_PERCENTILES)
    clipped = np.clip(inside, low, high)
    sd = float(clipped.std())
    if sd == 0.0:
        return out
    out[mask] = (clipped - float(clipped.mean())) / sd
    return out
