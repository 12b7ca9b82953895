"""A cohort: the imaging cases of a dataset joined with their markers table."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gliomics.constants import MARKERS
from gliomics.errors import MarkerTableError
from gliomics.io import Case, MarkerRecord, discover_cases, read_markers

logger = logging.getLogger(__name__)

#: BraTS-style ids end in a 3-digit time point (``BraTS-GLI-00001-000``, ``PHANTOM-A-00001-100``).
_TIMEPOINT = re.compile(r"^(?P<patient>.+)-(?P<timepoint>\d{3})$")


def patient_id(case_id: str) -> str:
    """The patient a case belongs to: the case id without a trailing time point, so time points share a patient."""
    match = _TIMEPOINT.match(case_id)
    return match.group("patient") if match else case_id


@dataclass
class CohortCase:
    """One case with its markers (None when the table has no row for it)."""

    case: Case
    markers: MarkerRecord | None

    @property
    def case_id(self) -> str:
        return self.case.case_id

    @property
    def patient(self) -> str:
        return patient_id(self.case.case_id)

    @property
    def site(self) -> str | None:
        return self.markers.site if self.markers is not None else None

    def marker_vector(self) -> np.ndarray:
        """Markers in :data:`MARKERS` order as float32 with NaN for unknown."""
        if self.markers is None:
            return np.full(len(MARKERS), np.nan, dtype=np.float32)
        values = [self.markers.label(m) for m in MARKERS]
        return np.array([np.nan if v is None else v for v in values], dtype=np.float32)


def build_cohort(data: Path | str, markers: Path | str | None = None, *, layout: str = "auto",
                 allow_missing: bool = False, require_seg: bool = False) -> list[CohortCase]:
    """Discover the cases under ``data`` and attach the rows of the ``markers`` CSV.

    Cases without a row get unknown markers. Rows that match no case are reported; if no row matches any case the
    table is the wrong one and that is an error.
    """
    cases = discover_cases(data, layout=layout, allow_missing=allow_missing, require_seg=require_seg)
    if markers is None:
        return [CohortCase(c, None) for c in cases]
    table = read_markers(markers)
    ids = {c.case_id for c in cases}
    unmatched = [cid for cid in table if cid not in ids]
    if table and len(unmatched) == len(table):
        raise MarkerTableError(f"{markers}: none of its {len(table)} case ids matches a case in {data} "
                               f"(e.g. {unmatched[0]!r} vs {cases[0].case_id!r})")
    if unmatched:
        logger.warning("%s: %d rows match no case in %s (e.g. %s)", markers, len(unmatched), data, unmatched[0])
    missing = sum(c.case_id not in table for c in cases)
    if missing:
        logger.warning("%d cases have no row in %s; their markers are unknown", missing, markers)
    return [CohortCase(c, table.get(c.case_id)) for c in cases]


def marker_prevalence(cohort: list[CohortCase]) -> dict[str, float | None]:
    """Fraction of altered cases per marker among cases whose label is known."""
    vectors = np.stack([c.marker_vector() for c in cohort]) if cohort else np.zeros((0, len(MARKERS)))
    out: dict[str, float | None] = {}
    for k, m in enumerate(MARKERS):
        known = vectors[:, k][~np.isnan(vectors[:, k])]
        out[m] = float(known.mean()) if known.size else None
    return out


def median_spacing(cases: list[CohortCase] | list[Case]) -> list[float]:
    """The median voxel size (mm) of ``cases`` along the RAS axes, read from the NIfTI headers of their first image.

    This is the working resolution a run adopts when its config leaves ``data.spacing`` unset (nnU-Net's target
    spacing): inputs of any resolution are then resampled to it at inference.
    """
    import nibabel as nib

    from gliomics.errors import ImageError

    rows = []
    for item in cases:
        case = item.case if isinstance(item, CohortCase) else item
        path = next(iter(case.images.values()))
        try:
            img = nib.load(str(path))
        except Exception as exc:  # nibabel raises many types on a bad header
            raise ImageError(f"{path}: cannot read the NIfTI header ({exc})") from exc
        zooms = np.asarray(img.header.get_zooms()[:3], dtype=float)
        ornt = nib.orientations.io_orientation(img.affine)
        ras = np.empty(3)
        ras[ornt[:, 0].astype(int)] = zooms
        rows.append(ras)
    if not rows:
        raise ValueError("median_spacing needs at least one case")
    return [round(float(v), 4) for v in np.median(np.stack(rows), axis=0)]


def lesion_volume_quantiles(cases: list[CohortCase], q: float = 0.05, *, max_cases: int = 200) -> dict[str, float]:
    """The ``q`` quantile (mm³) of each tumour label's volume over the cases whose reference has that label.

    Read from the segmentations of at most ``max_cases`` cases (evenly spread over the list). A run caps its
    minimum label volumes (:func:`~gliomics.inference.postprocess.fit_min_label_volumes`) with these, so that
    post-processing never removes a lesion the size of the smallest few of its training split. Labels no case has
    are left out.
    """
    from gliomics.constants import TUMOUR_LABELS
    from gliomics.io.nifti import load_label
    from gliomics.labels import label_volumes_mm3

    with_seg = [c.case for c in cases if c.case.seg is not None]
    step = max(1, -(-len(with_seg) // max_cases))
    volumes: dict[str, list[float]] = {name: [] for name in TUMOUR_LABELS}
    for case in with_seg[::step]:
        seg = load_label(case.seg, label_map=case.label_map)
        for name, v in label_volumes_mm3(seg.array, float(np.prod(seg.spacing))).items():
            if v > 0:
                volumes[name].append(v)
    return {name: float(np.quantile(v, q)) for name, v in volumes.items() if v}
