"""Map a result on the preprocessed grid back to a case's original scan geometry, through the saved transforms."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from gliomics.constants import REFERENCE_SEQUENCE
from gliomics.errors import InputError
from gliomics.io.cases import Case
from gliomics.io.nifti import load_label, save_image
from gliomics.io.sitk_images import array_of, image_from_array, nifti_affine
from gliomics.preprocess.geometry import Grid, resample
from gliomics.preprocess.pipeline import GEOMETRY_JSON, TRANSFORM_DIR
from gliomics.preprocess.registration import invert

logger = logging.getLogger(__name__)

#: Suffix of a segmentation mapped back to the native scan by ``gliomics predict --native``.
NATIVE_SEG_SUFFIX = "_seg_native.nii.gz"


def transforms_dir(case_dir: Path | str) -> Path | None:
    """The ``preprocess/`` folder of a preprocessed case folder, or None if the case was not preprocessed here."""
    folder = Path(case_dir) / TRANSFORM_DIR
    return folder if (folder / GEOMETRY_JSON).is_file() else None


def read_geometry(case_dir: Path | str) -> dict[str, Any]:
    """The ``geometry.json`` record of a preprocessed case.

    Raises:
        InputError: The case folder has no readable ``preprocess/geometry.json``.
    """
    path = Path(case_dir) / TRANSFORM_DIR / GEOMETRY_JSON
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: not found (was the case made by `gliomics preprocess`?)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from exc
    if not isinstance(record, dict) or "native" not in record or "output_grid" not in record:
        raise InputError(f"{path}: not a gliomics preprocessing record")
    return record


def labels_to_native(labels: sitk.Image, case_dir: Path | str, sequence: str | None = None) -> sitk.Image:
    """Resample a label image on the preprocessed grid onto a native scan's grid (nearest neighbour).

    Args:
        labels: Labels on the output grid of the case (any integer type).
        case_dir: The preprocessed case folder (holding ``preprocess/``).
        sequence: Whose native grid; the registration reference (T1ce) by default.

    Raises:
        InputError: Missing or unreadable transforms, or an unknown sequence.
    """
    record = read_geometry(case_dir)
    sequence = sequence or record["reference"]
    if sequence not in record["native"]:
        raise InputError(f"{case_dir}: no native geometry for {sequence!r} (has {', '.join(record['native'])})")
    tfm = Path(case_dir) / TRANSFORM_DIR / record["transforms"][sequence]
    try:
        to_native = sitk.ReadTransform(str(tfm))
    except RuntimeError as exc:
        raise InputError(f"{tfm}: cannot read transform ({str(exc).strip().splitlines()[-1][:200]})") from exc
    native = Grid.from_dict(record["native"][sequence]["grid"])
    return resample(sitk.Cast(labels, sitk.sitkUInt8), native, invert(to_native), nearest=True)


def seg_to_native(seg_path: Path | str, case_dir: Path | str, out_path: Path | str,
                  sequence: str | None = None) -> Path:
    """Write a segmentation of the preprocessed case in the geometry of its original scan.

    Args:
        seg_path: Labels on the preprocessed grid (e.g. ``predictions/CASE_seg.nii.gz``).
        case_dir: The preprocessed case folder.
        out_path: The native-space file to write (atomically).
        sequence: Whose native grid; the registration reference (T1ce) by default.

    Returns:
        The written path.

    Raises:
        InputError, ImageError, LabelError: Unreadable inputs, or labels that do not lie on the case's output grid.
    """
    label = load_label(seg_path)
    return labels_array_to_native(label.array, label.affine, case_dir, out_path, sequence, source=seg_path)


def labels_array_to_native(labels: np.ndarray, affine: np.ndarray, case_dir: Path | str, out_path: Path | str,
                           sequence: str | None = None, *, source: Path | str = "the prediction") -> Path:
    """:func:`seg_to_native` for labels in memory (``labels`` with its RAS ``affine``, e.g. a prediction's ``seg``);
    ``source`` names them in errors."""
    record = read_geometry(case_dir)
    expected = Grid.from_dict(record["output_grid"])
    if tuple(labels.shape) != expected.size or not np.allclose(affine, nifti_affine(expected.reference()),
                                                               atol=1e-3):
        raise InputError(f"{source}: not on the preprocessed grid of {case_dir} "
                         f"(shape {tuple(labels.shape)}, expected {expected.size})")
    mapped = labels_to_native(image_from_array(np.asarray(labels, dtype=np.uint8), affine), case_dir, sequence)
    written = save_image(array_of(mapped).astype(np.uint8), nifti_affine(mapped), out_path, dtype=np.uint8)
    logger.debug("%s -> %s (native %s)", source, written, sequence or record["reference"])
    return written


def native_outputs(case: Case, prediction, out_dir: Path | str, *, native: bool = False,
                   dicom_seg: bool = False) -> list[Path]:
    """Map a prediction's labels to the native scan and/or write them as DICOM-SEG.

    ``prediction`` is the case's :class:`~gliomics.inference.prediction.Prediction` (its ``seg`` in the input
    geometry, with its ``affine``). ``native`` writes ``<case>_seg_native.nii.gz`` in the geometry of the case's
    original T1ce (through the inverse of the saved transforms) when the case was made by ``gliomics preprocess``;
    for other cases the segmentation is already in the scan geometry and nothing more is written. ``dicom_seg``
    writes ``<case>_seg.dcm`` on the source series recorded in ``dicom_sources.json`` (``gliomics import --format
    dicom``), mapping back first if needed.

    Returns:
        The files written.

    Raises:
        InputError: ``dicom_seg`` for a case without ``dicom_sources.json``, or missing source files.
    """
    from gliomics.io.dicom_seg import DICOM_SEG_SUFFIX, read_sources, write_dicom_seg

    out_dir = Path(out_dir)
    if prediction.seg is None or not (native or dicom_seg):
        return []
    folder = next(iter(case.images.values())).parent
    preprocessed = transforms_dir(folder) is not None
    written = []
    if native:
        if preprocessed:
            written.append(labels_array_to_native(prediction.seg, prediction.affine, folder,
                                                  out_dir / f"{case.case_id}{NATIVE_SEG_SUFFIX}",
                                                  source=f"the prediction of {case.case_id}"))
        else:
            logger.warning("%s: not made by `gliomics preprocess`; its segmentation is already in the scan geometry",
                           folder)
    if dicom_seg:
        sources = read_sources(folder)
        sequence = (REFERENCE_SEQUENCE if REFERENCE_SEQUENCE in sources["sequences"]
                    else next(iter(sources["sequences"])))
        labels = image_from_array(np.asarray(prediction.seg, dtype=np.uint8), prediction.affine)
        if preprocessed:
            labels = labels_to_native(labels, folder, sequence)
        written.append(write_dicom_seg(labels, sources, out_dir / f"{case.case_id}{DICOM_SEG_SUFFIX}",
                                       sequence=sequence))
    return written
