"""Preprocess one case: RAS reorientation, intensity checks, N4, co-registration to T1ce, atlas registration,
resampling to the BraTS grid, brain extraction, optional z-score, quality control; the transforms and the native
geometry are saved so results map back to the scans.

Output (a BraTS 2024 case folder)::

    CASE/CASE-t1n.nii.gz … CASE-t2f.nii.gz   float32 on the output grid (240×240×155 at 1 mm by default)
    CASE/CASE-seg.nii.gz                     the case's segmentation, if it had one (nearest neighbour)
    CASE/preprocess/geometry.json            output grid, native grids, steps, metrics, timings
    CASE/preprocess/<sequence>.tfm           affine: output-grid points → native scan points (ITK convention)
    CASE/preprocess/brain_mask.nii.gz        the brain mask on the output grid
    CASE/preprocess/qc.json                  brain volume, similarity, coverage, intensity flags, warnings
    CASE/preprocess/qc.png                   every sequence in three planes with the brain and atlas outlines

Everything but the timings in ``geometry.json`` is the same, byte for byte, when a case is preprocessed again: the
registrations sample with a fixed seed on one thread, N4 runs on a fixed number of threads, deepbet runs
deterministically and the NIfTI files are compressed without a time stamp.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from gliomics import __version__
from gliomics.constants import REFERENCE_ORDER, SEQUENCES
from gliomics.errors import ConfigError, OutputError
from gliomics.io.cases import Case
from gliomics.io.nifti import load_label, save_image
from gliomics.io.sitk_images import array_of, image_from_array, image_like, nifti_affine, read_image
from gliomics.preprocess.alignment import TargetSpace, coregister, refine_on_brain, target_space
from gliomics.preprocess.bias import N4_THREADS, n4_correct
from gliomics.preprocess.brain_extraction import (
    NETWORK_METHODS,
    SKULL_STRIP_METHODS,
    BrainMask,
    brain_mask,
)
from gliomics.preprocess.geometry import Grid, reorient_to_ras, resample
from gliomics.preprocess.intensity import (
    clip_negatives,
    flag_relative_scale,
    intensity_flags,
    intensity_warnings,
    robust_zscore,
    stored_dtype,
)
from gliomics.preprocess.quality import (
    QC_JSON,
    QC_PNG,
    brain_volume_ml,
    coverage,
    coverage_warnings,
    data_on_grid,
    qc_record,
    similarity,
    volume_warning,
    write_qc_json,
)
from gliomics.preprocess.registration import RegistrationSettings, affine_matrix, compose, itk_threads

logger = logging.getLogger(__name__)

#: BraTS output grid at 1 mm.
BRATS_SHAPE: tuple[int, int, int] = (240, 240, 155)
TRANSFORM_DIR = "preprocess"
GEOMETRY_JSON = "geometry.json"
BRAIN_MASK = "brain_mask.nii.gz"
#: Sidecar files carried from the input case folder to the output (e.g. where DICOM series came from).
SIDECARS: tuple[str, ...] = ("dicom_sources.json",)
#: ITK threads while a case is preprocessed: fixed, so that the outputs do not depend on the machine's cores.
ITK_THREADS = N4_THREADS


@dataclass(frozen=True)
class PreprocessSettings:
    """Options of the preprocessing pipeline.

    Attributes:
        atlas: Template file to register to; the MNI152 2009a template of nilearn if None.
        mask: Brain mask in the atlas's space (with ``skip_registration``: in the scans' space): the metric region of
            the atlas registration, and the brain mask itself with ``skull_strip="atlas"``; default: the atlas's
            mask, or the non-zero voxels of the reference scan when registration is skipped.
        skip_registration: The scans are already co-registered (and in a common space): no co-registration and no
            atlas registration, only reorientation, N4, resampling and masking.
        skull_strip: ``deepbet`` (default), ``hd-bet``, ``atlas`` (the atlas's mask, or ``mask``) or ``none`` (the
            head's foreground: no skull stripping); see :mod:`gliomics.preprocess.brain_extraction`.
        n4: Run N4 bias-field correction.
        n4_shrink: Shrink factor of the N4 field estimation.
        zscore: Standardise each sequence inside the brain mask (mean 0, s.d. 1 after clipping to the 0.5–99.5th
            percentiles there; 0 outside).
        shape: Output grid size (x, y, z).
        spacing: Output voxel size in mm.
        registration: Optimiser settings of both registrations.
    """

    atlas: Path | None = None
    mask: Path | None = None
    skip_registration: bool = False
    skull_strip: str = "deepbet"
    n4: bool = True
    n4_shrink: int = 4
    zscore: bool = False
    shape: tuple[int, int, int] = BRATS_SHAPE
    spacing: float = 1.0
    registration: RegistrationSettings = field(default_factory=RegistrationSettings)

    def __post_init__(self) -> None:
        if self.n4_shrink < 1:
            raise ValueError(f"n4_shrink must be >= 1, got {self.n4_shrink}")
        if self.spacing <= 0 or len(self.shape) != 3 or min(self.shape) < 1:
            raise ValueError(f"invalid output grid {self.shape} at {self.spacing} mm")
        if self.skull_strip not in SKULL_STRIP_METHODS:
            raise ConfigError(f"--skull-strip: expected one of {', '.join(SKULL_STRIP_METHODS)}, "
                              f"got {self.skull_strip!r}")


def reference_sequence(case: Case) -> str:
    """The sequence everything is registered to: T1ce, or the first present of :data:`REFERENCE_ORDER`."""
    return next(s for s in REFERENCE_ORDER if s in case.images)


@dataclass
class Scan:
    """One native scan as read: its grid, stored type, intensity flags and the RAS image (negatives clipped)."""

    grid: Grid
    dtype: str
    flags: dict[str, Any]
    image: sitk.Image


def read_scans(case: Case) -> dict[str, Scan]:
    """Read every sequence as float32, record its stored type and intensity flags, clip small negative values and
    reorient it to RAS."""
    scans: dict[str, Scan] = {}
    for s, path in case.images.items():
        image = read_image(path)
        flags = intensity_flags(sitk.GetArrayViewFromImage(image))
        scans[s] = Scan(Grid.of(image), stored_dtype(path), flags, image)
    flag_relative_scale({s: scan.flags for s, scan in scans.items()})
    for scan in scans.values():
        scan.image = reorient_to_ras(clip_negatives(scan.image, scan.flags))
    return scans


@contextlib.contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = time.perf_counter() - start


def preprocess_case(case: Case, out_dir: Path | str, settings: PreprocessSettings | None = None) -> dict[str, Any]:
    """Preprocess one case and write it into ``out_dir / case.case_id`` (the folder must not exist yet).

    ITK runs on :data:`ITK_THREADS` threads meanwhile (the registrations on one), whatever the machine: several
    ITK filters sum in per-thread parts, so their last bits depend on the thread count.

    Args:
        case: From :func:`~gliomics.io.discover_cases`; sequences may have different grids.
        out_dir: The case folder to create.
        settings: Pipeline options.

    Returns:
        The record written to ``preprocess/geometry.json``.

    Raises:
        InputError, ImageError, LabelError: An unreadable scan or segmentation, or a bad atlas/mask file.
        ConfigError: The skull-stripping network cannot run here.
    """
    with itk_threads(ITK_THREADS):
        return _preprocess_case(case, Path(out_dir), settings or PreprocessSettings())


def _preprocess_case(case: Case, out_dir: Path, settings: PreprocessSettings) -> dict[str, Any]:
    timings: dict[str, float] = {}
    ref = reference_sequence(case)
    with _timed(timings, "read_reorient"):
        scans = read_scans(case)
    with _timed(timings, "n4"):
        images = {s: n4_correct(scan.image, shrink=settings.n4_shrink)[0] if settings.n4 else scan.image
                  for s, scan in scans.items()}
    with _timed(timings, "coregistration"):
        to_ref, metrics = coregister(case, images, ref, settings.registration, skip=settings.skip_registration)
    with _timed(timings, "atlas_registration"):
        space = target_space(case, images, ref, atlas=settings.atlas, mask=settings.mask,
                             skip_registration=settings.skip_registration, shape=settings.shape,
                             spacing=settings.spacing, registration=settings.registration)
    with _timed(timings, "resample"):
        transforms, moved, data = _onto_grid(scans, images, to_ref, space)
    with _timed(timings, "brain_extraction"):
        mask = brain_mask(settings.skull_strip, moved, space.mask, space.mask_source)
    if mask.method in NETWORK_METHODS and not settings.skip_registration:
        with _timed(timings, "atlas_refinement"):
            space, correction = refine_on_brain(images, ref, space, mask.array, atlas=settings.atlas,
                                                mask=settings.mask, registration=settings.registration)
            if correction is not None:
                before = image_like(mask.array.astype(np.uint8), space.grid.reference())
                carried = resample(before, space.grid, correction, nearest=True)
                mask = replace(mask, array=array_of(carried) > 0)
                transforms, moved, data = _onto_grid(scans, images, to_ref, space)
    arrays = {s: array_of(img) for s, img in moved.items()}
    with _timed(timings, "quality_control"):
        qc = _quality(case, scans, arrays, data, mask, space, ref)
    outputs = {s: robust_zscore(a, mask.array) if settings.zscore else a * mask.array for s, a in arrays.items()}
    seg = None
    if case.seg is not None:
        label = load_label(case.seg, label_map=case.label_map)
        seg = array_of(resample(image_from_array(label.array, label.affine), space.grid, transforms[ref],
                                nearest=True))
    record = _geometry_record(case, ref, scans, space, metrics, qc, mask, settings)
    from gliomics.preprocess.qc_figure import draw_qc  # matplotlib: only once a case is written

    with _timed(timings, "write"):
        _write_case(case, out_dir, space.grid, outputs, seg, mask.array, transforms, record, qc)
        draw_qc(arrays, mask.array, space.atlas_mask, out_dir / TRANSFORM_DIR / QC_PNG,
                title=f"{case.case_id}: brain mask {mask.describe()}, {qc['brain_mask']['volume_ml']:.0f} mL",
                brain_label=f"brain mask ({settings.skull_strip})")
    record["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
    (out_dir / TRANSFORM_DIR / GEOMETRY_JSON).write_text(json.dumps(record, indent=2))
    return record


def _onto_grid(scans: dict[str, Scan], images: dict[str, sitk.Image], to_ref: dict[str, sitk.Transform],
               space: TargetSpace) -> tuple[dict[str, sitk.Transform], dict[str, sitk.Image], dict[str, np.ndarray]]:
    """Each sequence's transform (output grid → native scan), its image on the output grid and where it has data."""
    transforms = {s: compose(space.to_native_ref, to_ref[s]) for s in images}
    moved = {s: resample(img, space.grid, transforms[s]) for s, img in images.items()}
    data = {s: data_on_grid(scans[s].image, space.grid, transforms[s]) for s in images}
    return transforms, moved, data


def _quality(case: Case, scans: dict[str, Scan], arrays: dict[str, np.ndarray], data: dict[str, np.ndarray],
             mask: BrainMask, space: TargetSpace, ref: str) -> dict[str, Any]:
    """The ``qc.json`` record: similarity after registration, coverage, brain volume, intensity flags, warnings."""
    brain = mask.array
    to_reference = {s: similarity(arrays[ref], arrays[s], brain & data[ref] & data[s]) for s in arrays if s != ref}
    to_atlas = None
    if space.atlas_image is not None:
        to_atlas = similarity(space.atlas_image, arrays[ref], space.atlas_mask & data[ref])
    covered = {s: coverage(data[s], brain) for s in arrays}
    on_grid = brain_volume_ml(brain, space.grid.spacing)
    # in the patient's own scale: an output-grid mm³ is |det| mm³ of the scan (the atlas registration scales)
    volume = round(on_grid * abs(float(np.linalg.det(affine_matrix(space.to_native_ref)[:3, :3]))), 2)
    warnings = [line for s in SEQUENCES if s in scans for line in intensity_warnings(s, scans[s].flags)]
    warnings += coverage_warnings(covered)
    too = volume_warning(volume, mask.method)
    if too is not None:
        warnings.append(too)
    return qc_record(case.case_id, brain={"method": mask.method, "source": mask.source, "sequence": mask.sequence,
                                          "volume_ml": volume, "volume_ml_output_grid": on_grid},
                     similarity_to_reference=to_reference, similarity_to_atlas=to_atlas, covered=covered,
                     flags={s: scan.flags for s, scan in scans.items()},
                     dtypes={s: scan.dtype for s, scan in scans.items()}, warnings=warnings)


def _geometry_record(case: Case, ref: str, scans: dict[str, Scan], space: TargetSpace, metrics: dict[str, float],
                     qc: dict[str, Any], mask: BrainMask, settings: PreprocessSettings) -> dict[str, Any]:
    to_reference = qc["registration_similarity"]["to_reference"]
    atlas = None
    if space.atlas_name is not None:
        atlas = {"name": space.atlas_name, "metric": round(space.metric, 5),
                 "similarity": qc["registration_similarity"]["to_atlas"], "refined_on_brain": space.refinement}
    return {
        "case_id": case.case_id,
        "gliomics_version": __version__,
        "reference": ref,
        "output_grid": space.grid.to_dict(),
        "transforms": {s: f"{s}.tfm" for s in scans},
        "transform_convention": "each .tfm maps points of the output grid to points of the native scan (LPS mm)",
        "native": {s: {"file": case.images[s].name, "grid": scans[s].grid.to_dict(), "stored_dtype": scans[s].dtype}
                   for s in SEQUENCES if s in scans},
        "segmentation": case.seg.name if case.seg is not None else None,
        "steps": {
            "reorient": "RAS",
            "negatives_clipped": [s for s in SEQUENCES if s in scans and scans[s].flags["clipped_negatives"]],
            "n4": {"shrink": settings.n4_shrink} if settings.n4 else None,
            "coregistration": None if settings.skip_registration else
            {s: {"to": ref, "metric": round(m, 5), "similarity": to_reference.get(s)} for s, m in metrics.items()},
            "atlas": atlas,
            "brain_mask": {"method": mask.method, "source": mask.source, "sequence": mask.sequence,
                           "volume_ml": qc["brain_mask"]["volume_ml"]},
            "zscore": {"clip_percentiles": [0.5, 99.5]} if settings.zscore else None,
            "registration": None if settings.skip_registration else asdict(settings.registration),
        },
        "similarity_measure": qc["registration_similarity"]["measure"],
        "timings_s": {},
    }


def _write_case(case: Case, out_dir: Path, grid: Grid, outputs: dict[str, np.ndarray], seg: np.ndarray | None,
                mask: np.ndarray, transforms: dict[str, sitk.Transform], record: dict[str, Any],
                qc: dict[str, Any]) -> None:
    affine = nifti_affine(grid.reference())
    if out_dir.exists():
        raise OutputError(f"{out_dir}: already exists")
    out_dir.mkdir(parents=True)
    for s, array in outputs.items():
        save_image(array.astype(np.float32), affine, out_dir / f"{case.case_id}-{s}.nii.gz", dtype=np.float32)
    if seg is not None:
        save_image(seg.astype(np.uint8), affine, out_dir / f"{case.case_id}-seg.nii.gz", dtype=np.uint8)
    extra = out_dir / TRANSFORM_DIR
    extra.mkdir()
    save_image(mask.astype(np.uint8), affine, extra / BRAIN_MASK, dtype=np.uint8)
    for s, transform in transforms.items():
        sitk.WriteTransform(transform, str(extra / f"{s}.tfm"))
    write_qc_json(extra / QC_JSON, qc)
    source_dir = case.images[record["reference"]].parent
    for name in SIDECARS:
        if (source_dir / name).is_file():
            shutil.copy2(source_dir / name, out_dir / name)

