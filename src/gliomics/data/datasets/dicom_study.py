"""DICOM adapter: study folders → BraTS-layout NIfTI cases, with ``dicom_sources.json`` for DICOM-SEG output.

``source`` is one study folder (every series under it, at any depth, shares one StudyInstanceUID) or a folder of
study folders (each sub-folder one study, named after the sub-folder). The series of every study are chosen first
(:func:`gliomics.io.dicom_sequences.select_series`), so that a study that cannot be decided stops the import before
anything is written. Each case then becomes ``OUT/<case>/<case>-<sequence>.nii.gz`` in the scanner geometry of its
series (no resampling), plus ``dicom_sources.json`` (the chosen series, and every series with its evidence);
``OUT/manifest.csv`` lists the cases.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from gliomics.constants import SEQUENCES
from gliomics.data.datasets.common import ManifestRow, write_outputs
from gliomics.errors import InputError
from gliomics.io.atomic import atomic_path
from gliomics.io.dicom import SOURCES_JSON, Series, read_series, scan_series
from gliomics.io.dicom_evidence import enhancement_index
from gliomics.io.dicom_sequences import Selection, decision_lines, select_series
from gliomics.io.nifti import save_image

logger = logging.getLogger(__name__)


def _studies(source: Path, case_id: str | None) -> dict[str, list[Series]]:
    series = scan_series(source)
    studies = {s.study_uid for s in series}
    if len(studies) == 1:
        return {case_id or source.name: series}
    if case_id is not None:
        raise InputError(f"{source}: holds {len(studies)} studies; --case-id names a single study")
    grouped: dict[str, list[Series]] = {}
    for s in series:
        parts = s.files[0].relative_to(source).parts
        if len(parts) < 2:
            raise InputError(f"{s.files[0]}: files of several studies lie directly in {source}; put each study "
                             "in its own sub-folder")
        grouped.setdefault(parts[0], []).append(s)
    for name, members in grouped.items():
        if len({s.study_uid for s in members}) > 1:
            raise InputError(f"{source / name}: holds several studies (StudyInstanceUIDs); one study per sub-folder")
    return grouped


def _record(case_id: str, source: Path, selection: Selection) -> dict[str, Any]:
    root = source.resolve()
    sequences = {}
    for key, s in selection.chosen.items():
        sequences[key] = {**s.summary(), "nifti": f"{case_id}-{key}.nii.gz", "rows": s.rows, "columns": s.columns,
                          "slices": s.slices, "reason": selection.reasons[key],
                          "files": [p.resolve().relative_to(root).as_posix() for p in s.files]}
    return {
        "case_id": case_id,
        "source_root": str(root),
        "study_instance_uid": next(iter(selection.chosen.values())).study_uid,
        "sequences": sequences,
        "series": [e.record() for e in selection.evidence],
    }


class _ImageCache:
    """Series read once, for the image check of the order rule and for the conversion."""

    def __init__(self) -> None:
        self.images: dict[str, Any] = {}

    def read(self, series: Series):
        if series.series_uid not in self.images:
            self.images[series.series_uid] = read_series(series)
        return self.images[series.series_uid]

    def enhancement(self, earlier: Series, later: Series) -> float | None:
        return enhancement_index(self.read(earlier), self.read(later))


def _write_case(case_id: str, source: Path, selection: Selection, images: _ImageCache, out: Path) -> dict[str, Path]:
    from gliomics.io.sitk_images import array_of, nifti_affine

    record = _record(case_id, source, selection)
    final = out / case_id
    with atomic_path(final, folder=True) as tmp:
        for key, s in selection.chosen.items():
            image = images.read(s)
            save_image(array_of(image).astype(np.float32), nifti_affine(image), tmp / f"{case_id}-{key}.nii.gz",
                       dtype=np.float32)
        (tmp / SOURCES_JSON).write_text(json.dumps(record, indent=2))
    return {key: final / f"{case_id}-{key}.nii.gz" for key in selection.chosen}


def import_dicom(source: Path | str, out: Path | str, *, series: Mapping[str, str] | None = None,
                 case_id: str | None = None, overwrite: bool = False, **_: object) -> dict[str, object]:
    """Convert DICOM studies to NIfTI cases (one series per sequence, chosen on the evidence of its headers).

    Args:
        source: A study folder or a folder of study folders.
        out: Output folder.
        series: Sequence → series number or SeriesInstanceUID, taken as given (``--series t1c=1201``).
        case_id: Name of the case when ``source`` is a single study (default: the folder's name).
        overwrite: Convert cases whose folder exists again (otherwise they are kept and listed).

    Returns:
        The outputs written, and ``decisions``: case → one line per sequence (the series chosen and why).

    Raises:
        InputError: No DICOM, a corrupt file, no usable T1ce, candidates equal on the evidence, mixed studies.
        ConfigError: An override for an unknown sequence.
    """
    source, out = Path(source), Path(out)
    studies = _studies(source, case_id)
    if len(studies) > 1 and series:
        raise InputError(f"{source}: holds {len(studies)} studies; --series applies to a single study")
    plans: list[tuple[str, Path, Selection | None, _ImageCache]] = []
    for cid, members in sorted(studies.items()):
        if "/" in cid or cid in ("", ".", ".."):
            raise InputError(f"{source}: invalid case id {cid!r}")
        folder, where = out / cid, source / cid if len(studies) > 1 else source
        if folder.is_dir() and not overwrite:
            logger.info("%s: already imported; kept", folder)
            plans.append((cid, where, None, _ImageCache()))
            continue
        images = _ImageCache()
        plans.append((cid, where, select_series(members, str(where), overrides=series,
                                                enhancement=images.enhancement), images))
    rows, decisions = [], {}
    for cid, where, selection, images in plans:
        if selection is None:
            found = {k: out / cid / f"{cid}-{k}.nii.gz" for k in SEQUENCES}
            rows.append(ManifestRow(cid, {k: p for k, p in found.items() if p.is_file()}))
            continue
        rows.append(ManifestRow(cid, _write_case(cid, where, selection, images, out)))
        decisions[cid] = decision_lines(selection)
        images.images.clear()
    return {**write_outputs(out, rows, []), "decisions": decisions}
