"""N4 bias-field correction (Tustison et al. 2010, https://doi.org/10.1109/TMI.2010.2046908) with SimpleITK.

The field is estimated on a copy shrunk by ``shrink`` along every axis (the field is smooth, so little is lost and it is
many times faster) and then evaluated at full resolution, as in SimpleITK's own N4 example.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import SimpleITK as sitk

logger = logging.getLogger(__name__)

#: Fitting iterations per B-spline level (coarse to fine).
N4_ITERATIONS: tuple[int, ...] = (50, 40, 30)
N4_CONVERGENCE = 1e-3
#: ITK threads of the field fit: the fit is repeatable for a given thread count but differs in its last bits between
#: counts, so the count is fixed rather than taken from the machine (outputs do not depend on the cores).
N4_THREADS = 4


def head_mask(image: sitk.Image) -> sitk.Image:
    """Foreground (head or brain) by Otsu's threshold, holes filled: where N4 fits the field."""
    mask = sitk.OtsuThreshold(image, 0, 1, 200)
    return sitk.BinaryFillhole(sitk.BinaryDilate(mask, [2, 2, 2]))


def n4_correct(image: sitk.Image, *, shrink: int = 4, mask: sitk.Image | None = None,
               iterations: Sequence[int] = N4_ITERATIONS) -> tuple[sitk.Image, sitk.Image]:
    """Remove a smooth multiplicative bias field.

    Args:
        image: A scalar volume (float32 is used internally).
        shrink: Shrink factor for the field estimation (1 = full resolution).
        mask: Voxels used to fit the field; :func:`head_mask` if None.
        iterations: Fitting iterations per resolution level of the B-spline field.

    Returns:
        The corrected image (float32, same grid) and the estimated log bias field on the full grid.

    Raises:
        ValueError: ``shrink`` is below 1.
    """
    if shrink < 1:
        raise ValueError(f"shrink must be >= 1, got {shrink}")
    image = sitk.Cast(image, sitk.sitkFloat32)
    # N4 works on log intensities: shift negative images to start at 0 and fit only on positive voxels.
    low = min(float(sitk.GetArrayViewFromImage(image).min()), 0.0)
    work = image - low if low < 0.0 else image
    mask = head_mask(work) if mask is None else sitk.Cast(mask > 0, sitk.sitkUInt8)
    mask = sitk.And(mask, sitk.Cast(work > 0, sitk.sitkUInt8))
    factors = [shrink if size >= 4 * shrink else 1 for size in image.GetSize()]
    small = sitk.Shrink(work, factors) if shrink > 1 else work
    small_mask = sitk.Shrink(mask, factors) if shrink > 1 else mask
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetNumberOfThreads(N4_THREADS)
    n4.SetMaximumNumberOfIterations([int(i) for i in iterations])
    n4.SetConvergenceThreshold(N4_CONVERGENCE)
    n4.Execute(small, small_mask)
    log_field = n4.GetLogBiasFieldAsImage(work)
    corrected = work / sitk.Exp(log_field)  # zero stays zero: background is not lifted
    if low < 0.0:
        corrected = corrected + low
    logger.debug("N4: shrink %s, %s iterations per level", factors, list(iterations))
    return sitk.Cast(corrected, sitk.sitkFloat32), log_field
