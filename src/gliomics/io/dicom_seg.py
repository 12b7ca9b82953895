"""DICOM out: a segmentation as a DICOM-SEG object (highdicom) that references the source series it was made on.

The labels are sampled (nearest neighbour) on the plane of every source instance, so the SEG frames line up with the
source images whatever grid the labels were computed on; the source instances are read with pydicom from the paths
recorded in ``dicom_sources.json`` at import.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from gliomics import __version__
from gliomics.constants import LABELS, REFERENCE_SEQUENCE, TUMOUR_LABELS
from gliomics.errors import InputError, OutputError
from gliomics.io.atomic import atomic_path
from gliomics.io.dicom import SOURCES_JSON

logger = logging.getLogger(__name__)

DICOM_SEG_SUFFIX = "_seg.dcm"
#: Segment label and SNOMED CT property type per BraTS 2024 label (category: morphologically abnormal structure).
_SEGMENTS: dict[str, tuple[str, str]] = {
    "NETC": ("NETC non-enhancing tumour core", "Necrosis"),
    "SNFH": ("SNFH surrounding FLAIR hyperintensity", "Edema"),
    "ET": ("ET enhancing tumour", "Neoplasm"),
    "RC": ("RC resection cavity", "PostSurgicalAnatomy"),
}


def read_sources(folder: Path | str) -> dict[str, Any]:
    """The ``dicom_sources.json`` of an imported case folder.

    Raises:
        InputError: The file is missing (the case was not imported from DICOM) or unreadable.
    """
    path = Path(folder) / SOURCES_JSON
    if not path.is_file():
        raise InputError(f"{folder}: no {SOURCES_JSON} (DICOM-SEG needs a case imported with "
                         "`gliomics import --format dicom`)")
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from exc
    if not isinstance(record, dict) or not record.get("sequences"):
        raise InputError(f"{path}: no source series recorded")
    return record


def source_files(sources: dict[str, Any], sequence: str) -> list[Path]:
    """The source instance files of one sequence, in slice order.

    Raises:
        InputError: The sequence was not imported, or a file has moved.
    """
    entry = sources["sequences"].get(sequence)
    if entry is None:
        raise InputError(f"no DICOM source recorded for {sequence} (has {', '.join(sources['sequences'])})")
    root = Path(sources["source_root"])
    files = [root / f for f in entry["files"]]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise InputError(f"{missing[0]}: source DICOM file not found ({len(missing)} of {len(files)} missing; "
                         "was the DICOM folder moved?)")
    return files


def _plane(dataset):
    """A one-slice SimpleITK reference image on the plane of a DICOM instance."""
    import SimpleITK as sitk

    row_dir = np.asarray([float(v) for v in dataset.ImageOrientationPatient[:3]])
    col_dir = np.asarray([float(v) for v in dataset.ImageOrientationPatient[3:]])
    spacing_rows, spacing_cols = (float(v) for v in dataset.PixelSpacing)
    plane = sitk.Image([int(dataset.Columns), int(dataset.Rows), 1], sitk.sitkUInt8)
    plane.SetSpacing((spacing_cols, spacing_rows, 1.0))
    plane.SetOrigin(tuple(float(v) for v in dataset.ImagePositionPatient))
    plane.SetDirection(tuple(np.column_stack([row_dir, col_dir, np.cross(row_dir, col_dir)]).ravel()))
    return plane


def frames_on_sources(labels, datasets: list) -> np.ndarray:
    """Sample a SimpleITK label image on every source instance's plane: an array (instances, rows, columns)."""
    import SimpleITK as sitk

    frames = []
    for dataset in datasets:
        sampled = sitk.Resample(sitk.Cast(labels, sitk.sitkUInt8), _plane(dataset), sitk.Transform(),
                                sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        frames.append(sitk.GetArrayFromImage(sampled)[0])
    return np.stack(frames)


def _descriptions():
    import highdicom as hd
    from pydicom.sr.codedict import codes

    algorithm = hd.AlgorithmIdentificationSequence(name="gliomics", version=__version__,
                                                   family=codes.cid7162.ArtificialIntelligence)
    return [hd.seg.SegmentDescription(segment_number=LABELS[name], segment_label=label,
                                      segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
                                      segmented_property_type=getattr(codes.SCT, prop),
                                      algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                                      algorithm_identification=algorithm)
            for name, (label, prop) in _SEGMENTS.items() if name in TUMOUR_LABELS]


def write_dicom_seg(labels, sources: dict[str, Any], out_path: Path | str, *, sequence: str | None = None) -> Path:
    """Write labels (BraTS 2024 values, a SimpleITK image in patient space) as a DICOM-SEG of a source series.

    Args:
        labels: The segmentation, on any grid that covers the source series (e.g. the native T1ce).
        sources: The case's ``dicom_sources.json`` record.
        out_path: Destination ``.dcm`` (written atomically).
        sequence: The series the SEG refers to; the T1ce series by default, else the first imported.

    Returns:
        The written path.

    Raises:
        InputError: Source files are missing.
        OutputError: The file cannot be written.
    """
    import highdicom as hd
    import pydicom

    seqs = sources["sequences"]
    sequence = sequence or (REFERENCE_SEQUENCE if REFERENCE_SEQUENCE in seqs else next(iter(seqs)))
    datasets = [pydicom.dcmread(f, stop_before_pixels=True) for f in source_files(sources, sequence)]
    frames = frames_on_sources(labels, datasets)
    if frames.max(initial=0) > max(LABELS.values()):
        raise InputError(f"labels above {max(LABELS.values())} cannot be written as BraTS segments")
    seg = hd.seg.Segmentation(
        source_images=datasets, pixel_array=frames, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=_descriptions(), series_instance_uid=hd.UID(), series_number=9900,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="gliomics", manufacturer_model_name="gliomics",
        software_versions=__version__, device_serial_number="none", series_description="gliomics segmentation",
        omit_empty_frames=False,
    )
    out_path = Path(out_path)
    try:
        with atomic_path(out_path) as tmp:
            seg.save_as(tmp)
    except OSError as exc:
        raise OutputError(f"{out_path}: cannot write ({exc})") from exc
    logger.debug("%s: DICOM-SEG of %s (%d frames)", out_path, sequence, len(frames))
    return out_path
