"""A cohort: the imaging cases of a dataset joined with their markers table."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gliomics.constants import MARKERS
from gliomics.errors import InputError, MarkerTableError
from gliomics.io import Case, MarkerRecord, discover_cases, read_markers, voxel_spacing

logger = logging.getLogger(__name__)

#: The kinds of supervision a training case may carry: subregion labels, a whole-tumour mask, marker labels.
SUPERVISION: tuple[str, ...] = ("subregions", "wt_mask", "markers")

#: BraTS-style ids end in a 3-digit time point (``BraTS-GLI-00001-000``, ``PHANTOM-A-00001-100``).
_TIMEPOINT = re.compile(r"^(?P<patient>.+)-(?P<timepoint>\d{3})$")


def patient_id(case_id: str) -> str:
    """The patient a case belongs to: the case id without a trailing time point, so time points share a patient."""
    match = _TIMEPOINT.match(case_id)
    return match.group("patient") if match else case_id


@dataclass
class CohortCase:
    """One case with its markers (None when the table has no row for it) and the position of its cohort among a
    run's ``--data`` sources (``source``)."""

    case: Case
    markers: MarkerRecord | None
    source: int = 0

    @property
    def case_id(self) -> str:
        return self.case.case_id

    @property
    def patient(self) -> str:
        return patient_id(self.case.case_id)

    @property
    def site(self) -> str | None:
        return self.markers.site if self.markers is not None else None

    @property
    def has_subregions(self) -> bool:
        """The case has a subregion segmentation."""
        return self.case.seg is not None

    @property
    def has_wt_mask(self) -> bool:
        """The case has a whole-tumour mask and no subregions (a segmentation already holds the whole tumour)."""
        return self.case.seg is None and self.case.wt_mask is not None

    @property
    def has_markers(self) -> bool:
        """At least one marker label is known."""
        return bool(np.isfinite(self.marker_vector()).any())

    @property
    def supervision(self) -> str:
        """What the case can teach: ``subregions``, ``wt_mask`` and/or ``markers`` joined by ``+``, or ``none``."""
        kinds = [k for k, has in zip(SUPERVISION, (self.has_subregions, self.has_wt_mask, self.has_markers),
                                      strict=True) if has]
        return "+".join(kinds) or "none"

    def marker_vector(self) -> np.ndarray:
        """Markers in :data:`MARKERS` order as float32 with NaN for unknown."""
        if self.markers is None:
            return np.full(len(MARKERS), np.nan, dtype=np.float32)
        values = [self.markers.label(m) for m in MARKERS]
        return np.array([np.nan if v is None else v for v in values], dtype=np.float32)


def build_cohort(data: Path | str, markers: Path | str | None = None, *, layout: str = "auto",
                 allow_missing: bool = False, require_seg: bool = False,
                 require_supervision: bool = False) -> list[CohortCase]:
    """Discover the cases under ``data`` and attach the rows of the ``markers`` CSV.

    Cases without a row get unknown markers. Rows that match no case are reported; if no row matches any case the
    table is the wrong one and that is an error. With ``require_supervision`` every case must carry a segmentation,
    a whole-tumour mask or a known marker (training), and the first that has none is an error naming it.
    """
    cases = discover_cases(data, layout=layout, allow_missing=allow_missing, require_seg=require_seg)
    cohort = _attach_markers(cases, data, markers)
    if require_supervision:
        for c in cohort:
            if c.supervision == "none":
                where = next(iter(c.case.images.values())).parent
                table = f" and no known marker in {markers}" if markers is not None else " and no markers table"
                raise InputError(f"{where}: case {c.case_id!r} has no supervision: no segmentation, no whole-tumour "
                                 f"mask{table}")
    return cohort


def build_cohorts(sources: Sequence[tuple[Path | str, Path | str | None]], **kwargs) -> list[CohortCase]:
    """The cases of several cohorts (``(data, markers)`` pairs, e.g. BraTS for subregions and EGD for markers), as
    one cohort, each case with its source's position; keyword arguments go to :func:`build_cohort`.

    Raises:
        InputError: a case id found in two cohorts (it would be one patient in two places).
    """
    joined: list[CohortCase] = []
    where: dict[str, Path | str] = {}
    for index, (data, markers) in enumerate(sources):
        for c in build_cohort(data, markers, **kwargs):
            c.source = index
            if c.case_id in where:
                raise InputError(f"{data}: case id {c.case_id!r} is also in {where[c.case_id]}; case ids must be "
                                 "unique across the cohorts of one run")
            where[c.case_id] = data
            joined.append(c)
    return joined


def _attach_markers(cases: list[Case], data: Path | str, markers: Path | str | None) -> list[CohortCase]:
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


def supervision_counts(cohort: list[CohortCase]) -> dict:
    """How many cases carry each kind of supervision: ``cases``, ``subregions``, ``wt_mask`` (whole-tumour mask
    without subregions), ``markers`` (known labels per marker) and ``kinds`` (cases per combination, e.g.
    ``"wt_mask+markers": 12``)."""
    vectors = np.stack([c.marker_vector() for c in cohort]) if cohort else np.zeros((0, len(MARKERS)))
    kinds: dict[str, int] = {}
    for c in cohort:
        kinds[c.supervision] = kinds.get(c.supervision, 0) + 1
    return {"cases": len(cohort), "subregions": sum(c.has_subregions for c in cohort),
            "wt_mask": sum(c.has_wt_mask for c in cohort),
            "markers": {m: int(np.isfinite(vectors[:, k]).sum()) for k, m in enumerate(MARKERS)},
            "kinds": dict(sorted(kinds.items()))}


def marker_prevalence(cohort: list[CohortCase]) -> dict[str, float | None]:
    """Fraction of altered cases per marker among cases whose label is known."""
    vectors = np.stack([c.marker_vector() for c in cohort]) if cohort else np.zeros((0, len(MARKERS)))
    out: dict[str, float | None] = {}
    for k, m in enumerate(MARKERS):
        known = vectors[:, k][~np.isnan(vectors[:, k])]
        out[m] = float(known.mean()) if known.size else None
    return out


def median_spacing(cases: list[CohortCase] | list[Case]) -> list[float]:
    """The median voxel size (mm) of ``cases`` along the RAS axes, read from the affines of their first image.

    This is the working resolution a run adopts when its config leaves ``data.working_spacing`` unset (nnU-Net's target
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
        zooms = np.asarray(voxel_spacing(img.affine), dtype=float)
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
