"""Preprocess one case: RAS reorientation, N4, co-registration to T1ce, atlas registration, brain mask, resampling to
the BraTS grid, optional z-score; the transforms and the native geometry are saved so results map back to the scans.

Output (a BraTS 2024 case folder)::

    CASE/CASE-t1n.nii.gz … CASE-t2f.nii.gz   float32 on the output grid (240×240×155 at 1 mm by default)
    CASE/CASE-seg.nii.gz                     the case's segmentation, if it had one (nearest neighbour)
    CASE/preprocess/geometry.json            output grid, native grids, steps, metrics, timings
    CASE/preprocess/<sequence>.tfm           affine: output-grid points → native scan points (ITK convention)
    CASE/preprocess/brain_mask.nii.gz        the brain mask on the output grid
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from gliomics import __version__
from gliomics.constants import REFERENCE_ORDER, SEQUENCES
from gliomics.errors import OutputError
from gliomics.io.cases import Case
from gliomics.io.nifti import load_label, save_image
from gliomics.io.sitk_images import array_of, image_from_array, nifti_affine, read_image
from gliomics.preprocess.atlas import Atlas, load_atlas
from gliomics.preprocess.bias import head_mask, n4_correct
from gliomics.preprocess.geometry import Grid, centred_grid, foreground_centre, reorient_to_ras, resample
from gliomics.preprocess.registration import (
    RegistrationError,
    RegistrationSettings,
    affine_register,
    compose,
    rigid_register,
)

logger = logging.getLogger(__name__)

#: BraTS output grid at 1 mm.
BRATS_SHAPE: tuple[int, int, int] = (240, 240, 155)
TRANSFORM_DIR = "preprocess"
GEOMETRY_JSON = "geometry.json"
BRAIN_MASK = "brain_mask.nii.gz"
#: Sidecar files carried from the input case folder to the output (e.g. where DICOM series came from).
SIDECARS: tuple[str, ...] = ("dicom_sources.json",)


@dataclass(frozen=True)
class PreprocessSettings:
    """Options of the preprocessing pipeline.

    Attributes:
        atlas: Template file to register to; the MNI152 2009a template of nilearn if None.
        mask: Brain mask in the atlas's space (with ``skip_registration``: in the scans' space); default: the
            atlas's mask, or the non-zero voxels of the reference scan when registration is skipped.
        skip_registration: The scans are already co-registered (and in a common space): no co-registration and no
            atlas registration, only reorientation, N4, resampling and masking.
        n4: Run N4 bias-field correction.
        n4_shrink: Shrink factor of the N4 field estimation.
        zscore: Standardise each sequence inside the brain mask (mean 0, s.d. 1; 0 outside).
        shape: Output grid size (x, y, z).
        spacing: Output voxel size in mm.
        registration: Optimiser settings of both registrations.
    """

    atlas: Path | None = None
    mask: Path | None = None
    skip_registration: bool = False
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


@functools.lru_cache(maxsize=2)
def load_registration_atlas(path: Path | None, mask: Path | None) -> tuple[Atlas, sitk.Image]:
    """The atlas and its dilated brain mask (the metric region: a margin keeps the brain's edge in view)."""
    atlas = load_atlas(path, mask)
    return atlas, sitk.BinaryDilate(atlas.mask, [5, 5, 5])


def reference_sequence(case: Case) -> str:
    """The sequence everything is registered to: T1ce, or the first present of :data:`REFERENCE_ORDER`."""
    return next(s for s in REFERENCE_ORDER if s in case.images)


def _zscore(image: sitk.Image, mask: np.ndarray) -> np.ndarray:
    array = array_of(image).astype(np.float32)
    inside = array[mask]
    if inside.size < 2 or float(inside.std()) == 0.0:
        return np.zeros_like(array)
    out = (array - float(inside.mean())) / float(inside.std())
    out[~mask] = 0.0
    return out


def preprocess_case(case: Case, out_dir: Path | str, settings: PreprocessSettings | None = None) -> dict[str, Any]:
    """Preprocess one case and write it into ``out_dir / case.case_id`` (the folder must not exist yet).

    Args:
        case: From :func:`~gliomics.io.discover_cases`; sequences may have different grids.
        out_dir: The case folder to create.
        settings: Pipeline options.

    Returns:
        The record written to ``preprocess/geometry.json``.

    Raises:
        InputError, ImageError, LabelError: An unreadable scan or segmentation, or a bad atlas/mask file.
    """
    settings = settings or PreprocessSettings()
    out_dir = Path(out_dir)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    ref = reference_sequence(case)
    native = {s: read_image(p) for s, p in case.images.items()}
    grids = {s: Grid.of(img) for s, img in native.items()}
    images = {s: reorient_to_ras(img) for s, img in native.items()}
    timings["read_reorient"] = time.perf_counter() - t

    t = time.perf_counter()
    if settings.n4:
        images = {s: n4_correct(img, shrink=settings.n4_shrink)[0] for s, img in images.items()}
    timings["n4"] = time.perf_counter() - t

    t = time.perf_counter()
    identity = sitk.AffineTransform(3)
    to_ref: dict[str, sitk.Transform] = {ref: identity}
    metrics: dict[str, float] = {}
    if not settings.skip_registration:
        head = head_mask(images[ref])
        for s, img in images.items():
            if s != ref:
                try:
                    to_ref[s], metrics[s] = rigid_register(images[ref], img, settings.registration, fixed_mask=head)
                except RegistrationError as exc:
                    raise RegistrationError(f"{case.images[s]}: to {ref}: {exc}") from exc
    else:
        to_ref.update({s: identity for s in images})
    timings["coregistration"] = time.perf_counter() - t

    t = time.perf_counter()
    if settings.skip_registration:
        to_native_ref: sitk.Transform = identity
        if settings.mask is not None:
            mask_native = sitk.Cast(read_image(settings.mask, sitk.sitkUInt8) > 0, sitk.sitkUInt8)
            mask_source = "file"
        else:
            mask_native = sitk.Cast(native[ref] != 0, sitk.sitkUInt8)
            mask_source = "nonzero"
        grid = centred_grid(foreground_centre(mask_native), settings.shape, settings.spacing)
        mask = resample(mask_native, grid, nearest=True)
        atlas_record = None
    else:
        atlas, metric_mask = load_registration_atlas(settings.atlas, settings.mask)
        try:
            to_native_ref, metrics["atlas"] = affine_register(atlas.image, images[ref], settings.registration,
                                                              fixed_mask=metric_mask)
        except RegistrationError as exc:
            raise RegistrationError(f"{case.images[ref]}: to the atlas {atlas.name}: {exc}") from exc
        grid = centred_grid(foreground_centre(atlas.mask), settings.shape, settings.spacing)
        mask = resample(atlas.mask, grid, nearest=True)
        mask_source = "file" if settings.mask is not None else "atlas"
        atlas_record = {"name": atlas.name, "metric": round(metrics["atlas"], 5)}
    timings["atlas_registration"] = time.perf_counter() - t

    t = time.perf_counter()
    transforms = {s: compose(to_native_ref, to_ref[s]) for s in images}
    brain = array_of(mask).astype(bool)
    outputs: dict[str, np.ndarray] = {}
    for s, img in images.items():
        moved = resample(img, grid, transforms[s])
        outputs[s] = _zscore(moved, brain) if settings.zscore else array_of(moved) * brain
    seg = None
    if case.seg is not None:
        label = load_label(case.seg, label_map=case.label_map)
        seg = array_of(resample(image_from_array(label.array, label.affine), grid, transforms[ref], nearest=True))
    timings["resample_write"] = time.perf_counter() - t

    record: dict[str, Any] = {
        "case_id": case.case_id,
        "gliomics_version": __version__,
        "reference": ref,
        "output_grid": grid.to_dict(),
        "transforms": {s: f"{s}.tfm" for s in images},
        "transform_convention": "each .tfm maps points of the output grid to points of the native scan (LPS mm)",
        "native": {s: {"file": case.images[s].name, "grid": grids[s].to_dict()} for s in SEQUENCES if s in grids},
        "segmentation": case.seg.name if case.seg is not None else None,
        "steps": {
            "reorient": "RAS",
            "n4": {"shrink": settings.n4_shrink} if settings.n4 else None,
            "coregistration": None if settings.skip_registration else
            {s: {"to": ref, "metric": round(m, 5)} for s, m in metrics.items() if s != "atlas"},
            "atlas": atlas_record,
            "brain_mask": mask_source,
            "zscore": settings.zscore,
            "registration": None if settings.skip_registration else asdict(settings.registration),
        },
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }
    _write_case(case, out_dir, grid, outputs, seg, array_of(mask), transforms, record)
    return record


def _write_case(case: Case, out_dir: Path, grid: Grid, outputs: dict[str, np.ndarray], seg: np.ndarray | None,
                mask: np.ndarray, transforms: dict[str, sitk.Transform], record: dict[str, Any]) -> None:
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
    (extra / GEOMETRY_JSON).write_text(json.dumps(record, indent=2))
    source_dir = case.images[record["reference"]].parent
    for name in SIDECARS:
        if (source_dir / name).is_file():
            shutil.copy2(source_dir / name, out_dir / name)
