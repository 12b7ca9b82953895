"""The ROI slices of a cohort for one marker (:func:`collect_slices`) and their export (:func:`write_slices`).

Per case: T1ce and the VOI (a mask file, or labels of the segmentation) are read, the ``k`` axial slices with the
largest VOI area are taken, each is cropped to the VOI's square bounding box plus a margin and denoised. Cases are
grouped into patients (time points ``-000``/``-100`` of one patient share a patient id). Cases whose marker is
unknown, that have no segmentation or mask, or whose VOI is empty are skipped, each with a warning and a reason.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from gliomics.constants import REFERENCE_SEQUENCE, SEQUENCES
from gliomics.errors import InputError
from gliomics.io.delimited import write_rows
from gliomics.provenance import versions
from gliomics.slices.extraction import axial_spacing, axial_stack, crop_box, roi_box, select_slices
from gliomics.slices.preprocessing import denoise_slice, finish_slice
from gliomics.slices.settings import SliceSettings

logger = logging.getLogger(__name__)

__all__ = ["PatientInfo", "SliceRecord", "SliceSet", "collect_slices", "find_voi_mask", "write_slices"]

INDEX_FILE = "index.csv"


@dataclass
class PatientInfo:
    """A patient of the slice set: the marker label and the clinical columns of the markers table."""

    patient: str
    label: int
    cases: list[str] = field(default_factory=list)
    age: float | None = None
    sex: str | None = None
    site: str | None = None


@dataclass
class SliceRecord:
    """One ROI slice.

    Attributes:
        patient: Patient id.
        case_id: Case the slice comes from.
        label: Marker label of the patient (1 altered, 0 not).
        z: Index of the axial slice in RAS+ order (0 = most inferior).
        rank: 1 for the slice of largest VOI area in its case, 2 for the next...
        area: VOI pixels in the slice.
        box: The crop ``(row0, row1, col0, col1)`` in the axial slice (may reach outside it).
    """

    patient: str
    case_id: str
    label: int
    z: int
    rank: int
    area: int
    box: tuple[int, int, int, int]


@dataclass
class SliceSet:
    """The denoised ROI crops of a cohort with their records, patients and skipped cases."""

    settings: SliceSettings
    records: list[SliceRecord]
    crops: list[np.ndarray]
    patients: dict[str, PatientInfo]
    skipped: list[dict[str, str]]

    @property
    def labels(self) -> np.ndarray:
        """Slice labels (int64)."""
        return np.array([r.label for r in self.records], dtype=np.int64)

    @property
    def slice_patients(self) -> np.ndarray:
        """Patient id of every slice."""
        return np.array([r.patient for r in self.records], dtype=object)

    def images(self, edge_weight: float | None = None, size: int | None = None) -> np.ndarray:
        """All slices finished (edge enhancement, [0, 1], resize) as float32 N×size×size; the settings' edge weight
        and size unless given."""
        w = self.settings.edge_weight if edge_weight is None else edge_weight
        s = self.settings.size if size is None else size
        out = np.empty((len(self.crops), s, s), dtype=np.float32)
        for i, crop in enumerate(self.crops):
            out[i] = finish_slice(crop, edge_weight=w, size=s)
        return out


def find_voi_mask(folder: Path, case_id: str) -> Path | None:
    """The VOI mask of a case in ``folder``: ``<case_id>.nii.gz`` or ``<case_id>.nii``, else None."""
    for suffix in (".nii.gz", ".nii"):
        path = folder / f"{case_id}{suffix}"
        if path.is_file():
            return path
    return None


def _voi(case, loaded, settings: SliceSettings, voi_masks: Path | None) -> tuple[np.ndarray | None, str]:
    """The VOI of a loaded case in its voxel grid, or None with the reason."""
    from gliomics.io import Image, check_same_geometry, load_image

    if voi_masks is None:
        if loaded.seg is None:
            return None, "no segmentation to take the VOI from"
        return np.isin(loaded.seg, settings.voi_labels), ""
    path = find_voi_mask(voi_masks, case.case_id)
    if path is None:
        return None, f"no VOI mask {case.case_id}.nii.gz in {voi_masks}"
    mask = load_image(path)
    t1c = loaded.image[SEQUENCES.index(REFERENCE_SEQUENCE)]
    check_same_geometry({REFERENCE_SEQUENCE: Image(t1c, loaded.affine, loaded.header,
                                                   loaded.paths.get(REFERENCE_SEQUENCE)), "voi": mask})
    return mask.array > 0, ""


def _case_slices(case, loaded, voi: np.ndarray, settings: SliceSettings) -> tuple[list[tuple[int, int, tuple]],
                                                                                    list[np.ndarray]]:
    """(z, area, box) and denoised crops of the k largest-VOI slices of one case."""
    image = axial_stack(loaded.image[SEQUENCES.index(REFERENCE_SEQUENCE)], loaded.affine)
    mask = axial_stack(voi, loaded.affine)
    row_mm, col_mm = axial_spacing(loaded.spacing, loaded.affine)
    margin = (int(round(settings.margin_mm / row_mm)), int(round(settings.margin_mm / col_mm)))
    found, crops = [], []
    for z in select_slices(mask, settings.k):
        box = roi_box(mask[z], margin, square=True)
        # fill outside the image with the slice's background (its minimum), not with the crop's own minimum
        crop = crop_box(image[z], box, fill=float(image[z].min()))
        crops.append(denoise_slice(crop, h_factor=settings.nlm_h) if settings.denoise else crop.astype(np.float32))
        found.append((z, int(np.count_nonzero(mask[z])), box))
    return found, crops


def _open_cohort(data: Path, markers: Path | str | None, voi_masks: Path | str | None,
                 layout: str) -> tuple[list, Path | str, Path | None]:
    """Check the inputs of :func:`collect_slices` and build the cohort: its cases, the markers table used and the
    VOI mask folder (None for the segmentation labels)."""
    from gliomics.data.cohort import build_cohort

    if not data.exists():
        raise InputError(f"{data}: not found")
    if markers is None:
        if not (data.is_dir() and (data / "markers.csv").is_file()):
            raise InputError(f"{data}: no markers.csv beside the cases; give the markers table (--markers)")
        markers = data / "markers.csv"
    cohort = build_cohort(data, markers, layout=layout, allow_missing=True)
    no_t1c = [c.case_id for c in cohort if REFERENCE_SEQUENCE not in c.case.images]
    if no_t1c:
        raise InputError(f"{data}: case {no_t1c[0]!r} has no T1ce (t1c) image"
                         f"{f' (and {len(no_t1c) - 1} more cases)' if len(no_t1c) > 1 else ''}; "
                         "the slice benchmark reads T1ce")
    masks_dir = Path(voi_masks) if voi_masks is not None else None
    if masks_dir is not None and not masks_dir.is_dir():
        raise InputError(f"{masks_dir}: VOI mask folder not found")
    return cohort, markers, masks_dir


def _case_rois(item, settings: SliceSettings,
               masks_dir: Path | None) -> tuple[int | None, list[tuple[int, int, tuple]], list[np.ndarray], str]:
    """The marker label, the ROI slices (z, area, box) and their crops of one cohort item; no slices and the reason
    when the case has to be skipped."""
    from gliomics.io import load_case

    marker = settings.marker
    label = item.markers.label(marker) if item.markers is not None else None
    if label is None:
        return label, [], [], f"{marker} status unknown"
    if masks_dir is None and item.case.seg is None:
        return label, [], [], "no segmentation to take the VOI from"
    loaded = load_case(item.case, sequences=(REFERENCE_SEQUENCE,), load_seg=masks_dir is None)
    voi, reason = _voi(item.case, loaded, settings, masks_dir)
    if voi is None:
        return label, [], [], reason
    found, case_crops = _case_slices(item.case, loaded, voi, settings)
    if not found:
        return label, [], [], "empty VOI"
    return label, found, case_crops, ""


def _add_case(patients: dict[str, PatientInfo], item, label: int, markers: Path | str, marker: str) -> str:
    """Add a cohort item's case to its patient in ``patients`` (created on its first case) and return the patient id;
    refuse a label that differs from the patient's earlier cases."""
    from gliomics.data.cohort import patient_id

    patient = patient_id(item.case_id)
    info = patients.get(patient)
    if info is None:
        rec = item.markers
        info = patients[patient] = PatientInfo(patient, label, age=rec.age, sex=rec.sex, site=rec.site)
    elif info.label != label:
        raise InputError(f"{markers}: patient {patient!r} has {marker} {info.label} in case {info.cases[0]!r} "
                         f"but {label} in case {item.case_id!r}")
    info.cases.append(item.case_id)
    return patient


def collect_slices(data: Path | str, settings: SliceSettings, *, markers: Path | str | None = None,
                   voi_masks: Path | str | None = None, layout: str = "auto", progress: bool = False) -> SliceSet:
    """Take the ROI slices of every usable case of a cohort.

    Args:
        data: Cases in any layout of :func:`gliomics.io.discover_cases`; only T1ce (and the VOI) is read.
        settings: Marker, VOI labels, k, margin and preprocessing.
        markers: Markers CSV; ``DATA/markers.csv`` when None and ``data`` is a folder.
        voi_masks: Folder of VOI masks ``<case_id>.nii.gz`` (non-zero = VOI) in the T1ce grid; when None the VOI is
            the ``settings.voi_labels`` of each case's segmentation.
        layout: Layout of ``data`` (``auto`` detects it).
        progress: Show a progress bar on stderr.

    Returns:
        The slice set; skipped cases are listed with their reason.

    Raises:
        InputError: No markers table, a case without T1ce, no VOI mask folder, patients whose cases disagree on the
            label, or no usable case at all. Unreadable images raise :class:`~gliomics.errors.ImageError`.
    """
    from tqdm import tqdm

    data = Path(data)
    cohort, markers, masks_dir = _open_cohort(data, markers, voi_masks, layout)
    marker = settings.marker
    records: list[SliceRecord] = []
    crops: list[np.ndarray] = []
    patients: dict[str, PatientInfo] = {}
    skipped: list[dict[str, str]] = []

    def skip(case_id: str, reason: str) -> None:
        logger.warning("%s: skipped: %s", case_id, reason)
        skipped.append({"case_id": case_id, "reason": reason})

    for item in tqdm(cohort, desc="slices", unit="case", disable=not progress):
        label, found, case_crops, reason = _case_rois(item, settings, masks_dir)
        if not found:
            skip(item.case_id, reason)
            continue
        patient = _add_case(patients, item, label, markers, marker)
        for rank, (z, area, box) in enumerate(found, start=1):
            records.append(SliceRecord(patient, item.case_id, label, z, rank, area, box))
        crops.extend(case_crops)
    if not records:
        reasons = Counter(s["reason"] for s in skipped)
        raise InputError(f"{data}: no usable case for {marker}: all {len(cohort)} cases skipped "
                         f"({'; '.join(f'{n}× {r}' for r, n in reasons.most_common(3))})")
    logger.info("%d slices of %d patients (%d cases skipped)", len(records), len(patients), len(skipped))
    return SliceSet(settings, records, crops, patients, skipped)


def write_slices(slice_set: SliceSet, out: Path, *, fmt: str = "npy") -> dict:
    """Write the finished slices (``slices/<case>_z<z>.npy`` float32 in [0, 1], or 16-bit ``.png``) into the folder
    ``out`` with ``index.csv`` (patient, slice, label, case_id, z, rank, area) and ``slices_summary.json``.

    Returns:
        The summary written to ``slices_summary.json``.
    """
    if fmt not in ("npy", "png"):
        raise ValueError(f"format must be 'npy' or 'png', got {fmt!r}")
    folder = out / "slices"
    folder.mkdir(parents=True, exist_ok=True)
    images = slice_set.images()
    rows = []
    for record, image in zip(slice_set.records, images):
        name = f"slices/{record.case_id}_z{record.z:03d}.{fmt}"
        if fmt == "npy":
            np.save(out / name, image)
        else:
            from skimage.io import imsave

            imsave(out / name, np.round(image * 65535.0).astype(np.uint16), check_contrast=False)
        rows.append({"patient": record.patient, "slice": name, "label": record.label, "case_id": record.case_id,
                     "z": record.z, "rank": record.rank, "area": record.area})
    write_rows(out / INDEX_FILE, rows)
    labels = [p.label for p in slice_set.patients.values()]
    summary = {
        "marker": slice_set.settings.marker,
        "slices": len(rows),
        "patients": len(labels),
        "patients_altered": int(sum(labels)),
        "patients_not_altered": int(len(labels) - sum(labels)),
        "skipped": slice_set.skipped,
        "settings": slice_set.settings.model_dump(mode="json"),
        "patient_table": [asdict(p) for p in slice_set.patients.values()],
        "versions": versions(),
    }
    (out / "slices_summary.json").write_text(json.dumps(summary, indent=2))
    return summary
