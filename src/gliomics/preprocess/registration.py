"""Rigid co-registration and affine atlas registration with SimpleITK (Mattes mutual information, multi-resolution).

Transforms follow ITK's convention: a registration with ``fixed`` and ``moving`` returns the transform that maps points
of the fixed image to points of the moving image, which is what resampling the moving image onto the fixed grid needs.
Every transform here is affine, so a chain of them is stored as one :class:`SimpleITK.AffineTransform`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import SimpleITK as sitk

from gliomics.errors import ImageError

logger = logging.getLogger(__name__)

#: Seed of the random metric sampling: fixed, so that a case registers the same way every time.
DEFAULT_SEED = 1
#: ITK threads of a registration. Mattes mutual information summed over several threads differs in its last bits
#: from run to run (the threads' partial sums meet in whatever order they finish), and the optimiser amplifies that;
#: one thread makes a registration repeatable to the bit. The images registered are small 2 mm copies.
REGISTRATION_THREADS = 1


@contextlib.contextmanager
def itk_threads(count: int) -> Iterator[None]:
    """ITK's default thread count set to ``count`` for the duration (filters and registrations made meanwhile use
    it; the registration's metric takes it from there), then put back."""
    previous = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(count)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(previous)


class RegistrationError(ImageError):
    """The optimiser failed (typically: the two images do not overlap in physical space)."""


@dataclass(frozen=True)
class RegistrationSettings:
    """Optimisation settings shared by the rigid and the affine registration.

    Both images are first averaged down to about ``working_spacing`` mm (block averaging, which also removes
    aliasing); the pyramid then runs on these small copies. The transforms live in physical space, so they apply to the
    full-resolution images unchanged. On 1 mm scans this is several times faster than a pyramid built by the
    registration itself from the full images, at a fraction of a voxel of accuracy (see
    ``benchmarks/results/preprocessing.md``).

    Attributes:
        working_spacing: Voxel size (mm) of the copies registered; 0 registers the images as they are.
        bins: Histogram bins of the Mattes mutual information.
        sampling: Fraction of the (masked) fixed voxels sampled randomly, with ``seed``, per iteration.
        shrink: Shrink factor of each resolution level, coarse to fine, relative to the working copies.
        smoothing: Gaussian sigma (voxels) of each level.
        iterations: Maximum iterations per level.
        learning_rate: Initial step of the regular-step gradient descent, in mm of physical shift (the largest
            shift of any point in the first step of each level).
        min_step: The step at which a level stops (in units of the scaled parameters); the step halves whenever the
            gradient changes direction.
        seed: Seed of the metric sampling (non-zero: ITK takes 0 to mean "seed from the wall clock").
    """

    working_spacing: float = 2.0
    bins: int = 32
    sampling: float = 0.1
    shrink: tuple[int, ...] = (4, 2, 1)
    smoothing: tuple[float, ...] = (2.0, 1.0, 0.0)
    iterations: int = 200
    learning_rate: float = 2.0
    min_step: float = 0.001
    seed: int = DEFAULT_SEED

    def __post_init__(self) -> None:
        if not 0.0 < self.sampling <= 1.0:
            raise ValueError(f"sampling must be in (0, 1], got {self.sampling}")
        if len(self.shrink) != len(self.smoothing) or not self.shrink:
            raise ValueError("shrink and smoothing need one entry per resolution level")
        if self.bins < 4 or self.iterations < 1 or self.working_spacing < 0:
            raise ValueError("bins must be >= 4, iterations >= 1 and working_spacing >= 0")
        if self.seed < 1:
            raise ValueError(f"seed must be >= 1 (ITK seeds 0 from the wall clock, which is not repeatable), got "
                             f"{self.seed}")

    def levels(self, count: int) -> RegistrationSettings:
        """The same settings restricted to the first (coarsest) ``count`` levels."""
        return replace(self, shrink=self.shrink[:count], smoothing=self.smoothing[:count])


def working_copy(image: sitk.Image, spacing: float, *, binary: bool = False) -> sitk.Image:
    """Average ``image`` down by whole voxel blocks to about ``spacing`` mm (no axis below 16 voxels).

    Returns float32, or uint8 0/1 for a ``binary`` mask.
    """
    factors = [max(1, min(int(round(spacing / sp)), size // 16)) if spacing > 0 else 1
               for sp, size in zip(image.GetSpacing(), image.GetSize())]
    small = sitk.Cast(image, sitk.sitkFloat32)
    if factors != [1, 1, 1]:
        small = sitk.BinShrink(small, factors)
    return sitk.Cast(small > 0.5, sitk.sitkUInt8) if binary else small


def _method(settings: RegistrationSettings, fixed_mask: sitk.Image | None) -> sitk.ImageRegistrationMethod:
    reg = sitk.ImageRegistrationMethod()
    reg.SetNumberOfThreads(REGISTRATION_THREADS)
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=settings.bins)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(settings.sampling, settings.seed)
    if fixed_mask is not None:
        reg.SetMetricFixedMask(fixed_mask)
    reg.SetInterpolator(sitk.sitkLinear)
    # The first step is sized so that no point moves more than learning_rate mm (estimated once per level from the
    # parameter scales); without it a step of the affine stage can double the matrix at once, a fall from which a
    # fixed sample set never recovers.
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=settings.learning_rate, minStep=settings.min_step,
                                                 numberOfIterations=settings.iterations, relaxationFactor=0.5,
                                                 estimateLearningRate=reg.Once,
                                                 maximumStepSizeInPhysicalUnits=settings.learning_rate)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel(list(settings.shrink))
    reg.SetSmoothingSigmasPerLevel(list(settings.smoothing))
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    return reg


def _run(reg: sitk.ImageRegistrationMethod, fixed: sitk.Image, moving: sitk.Image) -> tuple[sitk.Transform, float]:
    try:
        with itk_threads(REGISTRATION_THREADS):
            result = reg.Execute(fixed, moving)
    except RuntimeError as exc:
        # e.g. "All samples map outside moving image buffer": the images do not overlap at all.
        lines = str(exc).strip().splitlines()
        raise RegistrationError(f"registration failed ({lines[-1][:200] if lines else type(exc).__name__})") from exc
    metric = float(reg.GetMetricValue())
    logger.debug("registration: %s, metric %.4f, %d iterations", reg.GetOptimizerStopConditionDescription(),
                 metric, reg.GetOptimizerIteration())
    return result, metric


def _centre(image: sitk.Image) -> tuple[float, ...]:
    size = np.asarray(image.GetSize(), dtype=np.float64)
    return image.TransformContinuousIndexToPhysicalPoint(tuple((size - 1.0) / 2.0))


def rigid_register(fixed: sitk.Image, moving: sitk.Image, settings: RegistrationSettings | None = None, *,
                   fixed_mask: sitk.Image | None = None) -> tuple[sitk.AffineTransform, float]:
    """Rigidly align ``moving`` to ``fixed`` (two sequences of one session, e.g. FLAIR to T1ce).

    The optimisation starts from the scanner geometry (identity), not from aligned image centres: sequences of one
    session share the scanner's coordinates even when their fields of view differ.

    Args:
        fixed: The reference sequence.
        moving: The sequence to align.
        settings: Optimisation settings.
        fixed_mask: Fixed voxels where the metric is computed (e.g. the head), or None for all.

    Returns:
        The transform (fixed points → moving points) and the final metric value (lower is better).
    """
    settings = settings or RegistrationSettings()
    fixed_w = working_copy(fixed, settings.working_spacing)
    moving_w = working_copy(moving, settings.working_spacing)
    mask_w = working_copy(fixed_mask, settings.working_spacing, binary=True) if fixed_mask is not None else None
    initial = sitk.Euler3DTransform()
    initial.SetCenter(_centre(fixed))
    reg = _method(settings, mask_w)
    reg.SetInitialTransform(initial, inPlace=False)
    transform, metric = _run(reg, fixed_w, moving_w)
    return as_affine(transform), metric


def affine_register(fixed: sitk.Image, moving: sitk.Image, settings: RegistrationSettings | None = None, *,
                    fixed_mask: sitk.Image | None = None) -> tuple[sitk.AffineTransform, float]:
    """Affinely align ``moving`` (a subject's scan) to ``fixed`` (an atlas).

    A rigid stage on the coarse levels, started from the centres of mass, is followed by the affine stage on all
    levels; the rigid stage keeps the twelve-parameter search from shearing before the head is in place.

    Args:
        fixed: The atlas.
        moving: The subject's scan.
        settings: Optimisation settings.
        fixed_mask: Atlas voxels where the metric is computed (e.g. the dilated brain mask, so that the skull of an
            unstripped scan does not pull on a stripped template).

    Returns:
        The transform (atlas points → subject points) and the final metric value.
    """
    settings = settings or RegistrationSettings()
    fixed_w = working_copy(fixed, settings.working_spacing)
    moving_w = working_copy(moving, settings.working_spacing)
    mask_w = working_copy(fixed_mask, settings.working_spacing, binary=True) if fixed_mask is not None else None
    centred_on = fixed_w * sitk.Cast(mask_w, sitk.sitkFloat32) if mask_w is not None else fixed_w
    initial = sitk.CenteredTransformInitializer(centred_on, moving_w, sitk.Euler3DTransform(),
                                                sitk.CenteredTransformInitializerFilter.MOMENTS)
    reg = _method(settings.levels(max(1, len(settings.shrink) - 1)), mask_w)
    reg.SetInitialTransform(initial, inPlace=False)
    rigid, _ = _run(reg, fixed_w, moving_w)
    reg = _method(settings, mask_w)
    reg.SetInitialTransform(as_affine(rigid), inPlace=False)
    transform, metric = _run(reg, fixed_w, moving_w)
    return as_affine(transform), metric


def affine_matrix(transform: sitk.Transform) -> np.ndarray:
    """The 4×4 homogeneous matrix (LPS mm) of an affine transform of any SimpleITK type, composites included."""
    origin = np.asarray(transform.TransformPoint((0.0, 0.0, 0.0)))
    matrix = np.eye(4)
    for axis in range(3):
        unit = [0.0, 0.0, 0.0]
        unit[axis] = 1.0
        matrix[:3, axis] = np.asarray(transform.TransformPoint(tuple(unit))) - origin
    matrix[:3, 3] = origin
    return matrix


def affine_from_matrix(matrix: np.ndarray) -> sitk.AffineTransform:
    """A SimpleITK affine transform from a 4×4 homogeneous matrix."""
    matrix = np.asarray(matrix, dtype=np.float64)
    transform = sitk.AffineTransform(3)
    transform.SetMatrix(tuple(float(v) for v in matrix[:3, :3].ravel()))
    transform.SetTranslation(tuple(float(v) for v in matrix[:3, 3]))
    return transform


def as_affine(transform: sitk.Transform) -> sitk.AffineTransform:
    """Any affine SimpleITK transform (Euler, similarity, composite…) as one :class:`SimpleITK.AffineTransform`."""
    return affine_from_matrix(affine_matrix(transform))


def compose(first: sitk.Transform, then: sitk.Transform) -> sitk.AffineTransform:
    """The transform x ↦ then(first(x)), as one affine transform."""
    return affine_from_matrix(affine_matrix(then) @ affine_matrix(first))


def invert(transform: sitk.Transform) -> sitk.AffineTransform:
    """The inverse of an affine transform."""
    return affine_from_matrix(np.linalg.inv(affine_matrix(transform)))


def transform_error_mm(transform: sitk.Transform, expected: sitk.Transform, points: Sequence[Sequence[float]]) -> float:
    """Largest distance (mm) between where two transforms send the given points."""
    return max(float(np.linalg.norm(np.subtract(transform.TransformPoint(tuple(p)), expected.TransformPoint(tuple(p)))))
               for p in points)
