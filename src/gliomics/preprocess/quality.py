"""Quality control of a preprocessed case: the brain volume, how much of the brain each sequence covers, how similar
the sequences are after registration (to each other and to the atlas), and the warnings these raise; gathered with
the intensity flags of :mod:`gliomics.preprocess.intensity` into ``preprocess/qc.json``.

The record holds no timings, so that a case preprocessed twice gives the same file.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from gliomics.constants import SEQUENCES
from gliomics.io.atomic import write_text_atomic
from gliomics.io.sitk_images import array_of
from gliomics.preprocess.geometry import Grid, resample

logger = logging.getLogger(__name__)

QC_JSON = "qc.json"
QC_PNG = "qc.png"
#: Plausible adult brain volumes (mL); a mask outside this range is warned about.
BRAIN_VOLUME_ML: tuple[float, float] = (800.0, 2000.0)
#: A sequence covering less than this share of the brain mask is warned about.
MIN_COVERAGE = 0.9
NMI_BINS = 64
#: Percentiles each image is clipped to before its joint histogram (a few extreme voxels would squeeze the bins).
NMI_PERCENTILES = (0.5, 99.5)
SIMILARITY_MEASURE = ("normalised mutual information (Studholme et al. 1999; scikit-image, 64 bins, intensities "
                      "clipped to their 0.5-99.5th percentiles): 1 = independent, 2 = identical")


def data_on_grid(image: sitk.Image, grid: Grid, transform: sitk.Transform | None = None) -> np.ndarray:
    """Output-grid voxels where ``image`` has data: inside its field of view and not exactly 0 (a sequence that
    was cut or stripped to part of the brain is 0 elsewhere). Boolean array in nibabel order (x, y, z)."""
    indicator = sitk.Cast(sitk.NotEqual(image, 0.0), sitk.sitkFloat32)
    return array_of(resample(indicator, grid, transform)) > 0.5


def coverage(data: np.ndarray, brain: np.ndarray) -> float:
    """Share of the brain-mask voxels where a sequence has data (1.0 for an empty mask)."""
    total = int(np.count_nonzero(brain))
    return round(float(np.count_nonzero(data & brain)) / total, 4) if total else 1.0


def similarity(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float | None:
    """Normalised mutual information of two images inside ``mask`` (None with fewer than 100 voxels there)."""
    from skimage.metrics import normalized_mutual_information

    if int(np.count_nonzero(mask)) < 100:
        return None
    values = []
    for image in (a, b):
        x = np.asarray(image[mask], dtype=np.float64)
        low, high = np.percentile(x, NMI_PERCENTILES)
        values.append(np.clip(x, low, high))
    return round(float(normalized_mutual_information(values[0], values[1], bins=NMI_BINS)), 4)


def brain_volume_ml(mask: np.ndarray, spacing: float | tuple[float, ...]) -> float:
    """Volume of a mask in mL."""
    voxel = float(np.prod(np.broadcast_to(np.asarray(spacing, dtype=np.float64), (3,))))
    return round(float(np.count_nonzero(mask)) * voxel / 1000.0, 2)


def volume_warning(volume_ml: float, method: str) -> str | None:
    """The warning of a brain mask outside :data:`BRAIN_VOLUME_ML` (none for ``--skull-strip none``: a head)."""
    low, high = BRAIN_VOLUME_ML
    if method == "none" or low <= volume_ml <= high:
        return None
    return (f"brain mask ({method}) is {volume_ml:.0f} mL, outside the plausible {low:.0f}-{high:.0f} mL: check "
            "the skull stripping in qc.png")


def coverage_warnings(covered: dict[str, float]) -> list[str]:
    """One warning per sequence covering less than :data:`MIN_COVERAGE` of the brain."""
    return [f"{s}: covers {c:.0%} of the brain mask (field of view or data cut short)"
            for s, c in covered.items() if c < MIN_COVERAGE]


def qc_record(case_id: str, *, brain: dict[str, Any], similarity_to_reference: dict[str, float | None],
              similarity_to_atlas: float | None, covered: dict[str, float], flags: dict[str, dict[str, Any]],
              dtypes: dict[str, str], warnings: list[str]) -> dict[str, Any]:
    """The ``qc.json`` record.

    Args:
        case_id: The case.
        brain: ``method``, ``source``, ``sequence`` (what the extractor ran on, or None), ``volume_ml`` (in the
            patient's scale: the output grid's volume times the atlas registration's change of volume) and
            ``volume_ml_output_grid``.
        similarity_to_reference: Per sequence: similarity to the registration reference inside the brain mask.
        similarity_to_atlas: The reference's similarity to the atlas inside the atlas mask (None without one).
        covered: Per sequence: share of the brain mask it covers.
        flags: Per sequence: :func:`~gliomics.preprocess.intensity.intensity_flags`.
        dtypes: Per sequence: the data type the native file stores.
        warnings: Everything worth a look, one line each.
    """
    order = [s for s in SEQUENCES if s in covered]
    return {
        "case_id": case_id,
        "brain_mask": brain,
        "registration_similarity": {
            "measure": SIMILARITY_MEASURE,
            "to_reference": {s: similarity_to_reference.get(s) for s in order},
            "to_atlas": similarity_to_atlas,
        },
        "coverage": {s: covered[s] for s in order},
        "intensity": {s: flags[s] for s in order},
        "stored_dtype": {s: dtypes[s] for s in order},
        "read_as": "float32",
        "warnings": list(warnings),
    }


def write_qc_json(path: Path | str, record: dict[str, Any]) -> Path:
    """Write the record as JSON, logging its warnings."""
    for line in record["warnings"]:
        logger.warning("%s: %s", record["case_id"], line)
    return write_text_atomic(path, json.dumps(record, indent=2) + "\n")
