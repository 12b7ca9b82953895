"""DICOM adapter: study folders → BraTS-layout NIfTI cases, with ``dicom_sources.json`` for DICOM-SEG output.

``source`` is one study folder (every series under it, at any depth, shares one StudyInstanceUID) or a folder of
study folders (each sub-folder one study, named after the sub-folder). Each case becomes
``OUT/<case>/<case>-<sequence>.nii.gz`` in the scanner geometry of its series (no resampling), plus
``dicom_sources.json``; ``OUT/manifest.csv`` lists the cases.
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
from gliomics.io.dicom import SOURCES_JSON, Series, compile_patterns, read_series, scan_series, select_series
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


def _record(case_id: str, source: Path, chosen: dict[str, Series], matches: dict[str, list[Series]],
            others: list[Series], patterns: Mapping[str, Any]) -> dict[str, Any]:
    root = source.resolve()
    sequences = {}
    for key in SEQUENCES:
        if key not in chosen:
            continue
        s = chosen[key]
        sequences[key] = {**s.summary(), "nifti": f"{case_id}-{key}.nii.gz", "rows": s.rows, "columns": s.columns,
                          "slices": s.slices, "files": [p.resolve().relative_to(root).as_posix() for p in s.files]}
    return {
        "case_id": case_id,
        "source_root": str(root),
        "study_instance_uid": next(iter(chosen.values())).study_uid,
        "sequences": sequences,
        "other_matches": {k: [s.summary() for s in v if s is not chosen.get(k)] for k, v in matches.items()
                          if len(v) > 1},
        "unmatched_series": [s.summary() for s in others],
        "patterns": {k: p.pattern for k, p in patterns.items()},
    }


def _write_case(case_id: str, source: Path, series: list[Series], patterns, out: Path) -> dict[str, Path]:
    from gliomics.io.sitk_images import array_of, nifti_affine

    chosen, matches = select_series(series, patterns, str(source))
    used = {id(s) for v in matches.values() for s in v}
    record = _record(case_id, source, chosen, matches, [s for s in series if id(s) not in used], patterns)
    final = out / case_id
    with atomic_path(final, folder=True) as tmp:
        for key, s in chosen.items():
            image = read_series(s)
            save_image(array_of(image).astype(np.float32), nifti_affine(image), tmp / f"{case_id}-{key}.nii.gz",
                       dtype=np.float32)
        (tmp / SOURCES_JSON).write_text(json.dumps(record, indent=2))
    return {key: final / f"{case_id}-{key}.nii.gz" for key in chosen}


def import_dicom(source: Path | str, out: Path | str, *, patterns: Mapping[str, str] | None = None,
                 case_id: str | None = None, overwrite: bool = False, **_: object) -> dict[str, object]:
    """Convert DICOM studies to NIfTI cases (one series per sequence, chosen by description).

    Args:
        source: A study folder or a folder of study folders.
        out: Output folder.
        patterns: Sequence → regular expression, replacing the defaults of :data:`gliomics.io.dicom.DEFAULT_PATTERNS`.
        case_id: Name of the case when ``source`` is a single study (default: the folder's name).
        overwrite: Convert cases whose folder exists again (otherwise they are kept and listed).

    Raises:
        InputError: No DICOM, no series matching a pattern, unusable series, mixed studies.
        ConfigError: A bad pattern.
    """
    source, out = Path(source), Path(out)
    compiled = compile_patterns(patterns)
    studies = _studies(source, case_id)
    rows = []
    for cid, series in sorted(studies.items()):
        if "/" in cid or cid in ("", ".", ".."):
            raise InputError(f"{source}: invalid case id {cid!r}")
        folder = out / cid
        if folder.is_dir() and not overwrite:
            logger.info("%s: already imported; kept", folder)
            images = {k: folder / f"{cid}-{k}.nii.gz" for k in SEQUENCES if (folder / f"{cid}-{k}.nii.gz").is_file()}
        else:
            images = _write_case(cid, source / cid if len(studies) > 1 else source, series, compiled, out)
        rows.append(ManifestRow(cid, images))
    return write_outputs(out, rows, [])
