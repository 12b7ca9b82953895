"""DICOM in: find the series of a study, choose one per sequence by its description, convert each to NIfTI.

A study folder holds several series (any depth of sub-folders). Each series is matched against a regular expression
per sequence (case-insensitive, on SeriesDescription, or ProtocolName when that is empty); the patterns are tried in
:data:`MATCH_ORDER` and a series goes to the first that matches. Where several usable series match one sequence, the
one with the most voxels is taken (ties: the lowest SeriesNumber) and the others are listed in ``dicom_sources.json``.

``dicom_sources.json``, written next to the NIfTI files, remembers where each sequence came from (series UID, files)
so that ``gliomics predict --dicom-seg`` can reference the source series. It holds no patient attributes (name, ID,
birth date, …): only UIDs, series descriptions and numbers, the geometry and the file paths.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gliomics.constants import SEQUENCES
from gliomics.errors import ConfigError, ImageError, InputError

logger = logging.getLogger(__name__)

SOURCES_JSON = "dicom_sources.json"
_NOT_AFTER_ALNUM = r"(?<![a-z0-9])"
_CONTRAST = r"(gd|gad|post|contrast|\+c|\bce\b)"
#: Default series-description patterns (Python regular expressions, matched case-insensitively with ``re.search``).
DEFAULT_PATTERNS: dict[str, str] = {
    "t1c": rf"{_NOT_AFTER_ALNUM}t1(?!.*(?<![a-z])pre).*{_CONTRAST}|mprage.*(gd|gad|post)",
    "t2f": rf"^(?!.*{_NOT_AFTER_ALNUM}t1(?![0-9])).*flair",
    "t2w": rf"{_NOT_AFTER_ALNUM}t2(?![0-9])(?!.*(flair|\*|star|swi|gre))",
    "t1n": rf"{_NOT_AFTER_ALNUM}t1(?![0-9])(?=.*(?<![a-z])pre)|{_NOT_AFTER_ALNUM}t1(?![0-9])(?!.*{_CONTRAST})|mprage",
}
#: Order in which the patterns are tried (the contrast-enhanced T1 before the plain one, FLAIR before T2).
MATCH_ORDER: tuple[str, ...] = ("t1c", "t2f", "t2w", "t1n")
#: Files never read as DICOM.
_SKIP_SUFFIXES = (".json", ".nii", ".gz", ".csv", ".txt", ".xml", ".jpg", ".png", ".pdf", ".zip")
_MIN_SLICES = 3


@dataclass
class Series:
    """One DICOM series: its instances sorted along the slice normal."""

    series_uid: str
    study_uid: str
    description: str
    number: int | None
    files: list[Path] = field(default_factory=list)
    problem: str | None = None
    rows: int = 0
    columns: int = 0
    slices: int = 0

    @property
    def voxels(self) -> int:
        """Rows × columns × slices."""
        return self.rows * self.columns * self.slices

    def summary(self) -> dict[str, Any]:
        """UID, description and number, for messages and ``dicom_sources.json``."""
        return {"series_instance_uid": self.series_uid, "series_description": self.description,
                "series_number": self.number, "instances": len(self.files), "problem": self.problem}


def compile_patterns(overrides: Mapping[str, str] | None = None) -> dict[str, re.Pattern]:
    """The series-description patterns, with ``overrides`` (sequence → regex) replacing the defaults.

    Raises:
        ConfigError: An unknown sequence name or an invalid regular expression.
    """
    patterns = dict(DEFAULT_PATTERNS)
    for key, value in (overrides or {}).items():
        if key not in SEQUENCES:
            raise ConfigError(f"series pattern for unknown sequence {key!r}; expected one of {', '.join(SEQUENCES)}")
        patterns[key] = value
    compiled = {}
    for key, value in patterns.items():
        try:
            compiled[key] = re.compile(value, re.IGNORECASE)
        except re.error as exc:
            raise ConfigError(f"series pattern for {key}: invalid regular expression {value!r} ({exc})") from None
    return compiled


def match_sequence(description: str, patterns: Mapping[str, re.Pattern]) -> str | None:
    """The sequence whose pattern first matches a series description (in :data:`MATCH_ORDER`), or None."""
    return next((s for s in MATCH_ORDER if s in patterns and patterns[s].search(description)), None)


def _header(path: Path):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, TypeError, AttributeError, EOFError):
        return None


def _sort_instances(series: Series, headers: list) -> None:
    """Sort the instances along the slice normal and check that they form one regular volume."""
    series.slices = len(headers)
    if int(getattr(headers[0], "NumberOfFrames", 1) or 1) > 1:
        series.problem = "multi-frame (enhanced) images are not supported; export classic single-frame images"
        return
    try:
        orientation = np.array([[float(v) for v in h.ImageOrientationPatient] for h in headers])
        positions = np.array([[float(v) for v in h.ImagePositionPatient] for h in headers])
        shapes = {(int(h.Rows), int(h.Columns)) for h in headers}
    except (AttributeError, TypeError, ValueError):
        series.problem = "instances without image position/orientation"
        return
    if len(shapes) > 1 or np.abs(orientation - orientation[0]).max() > 1e-3:
        series.problem = "instances of different orientation or size (e.g. a localizer)"
        return
    series.rows, series.columns = shapes.pop()
    normal = np.cross(orientation[0][:3], orientation[0][3:])
    depth = positions @ normal
    order = np.argsort(depth, kind="stable")
    series.files = [series.files[i] for i in order]
    if len(headers) < _MIN_SLICES:
        series.problem = f"only {len(headers)} slice(s)"
        return
    gaps = np.diff(depth[order])
    if np.any(gaps < 1e-3):
        series.problem = "several images at one slice position (multi-echo or multi-phase series)"
    elif np.abs(gaps - np.median(gaps)).max() > 0.1 * np.median(gaps):
        series.problem = "irregular slice spacing (missing slices?)"


def scan_series(folder: Path | str) -> list[Series]:
    """Find every DICOM series under ``folder`` (all depths), sorted by study, series number and description.

    Raises:
        InputError: The folder does not exist or holds no DICOM image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: {'not a folder' if folder.exists() else 'not found'}")
    found: dict[str, tuple[Series, list]] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        if path.name.lower().endswith(_SKIP_SUFFIXES):
            continue
        header = _header(path)
        if header is None or "SeriesInstanceUID" not in header or "Rows" not in header:
            continue
        uid = str(header.SeriesInstanceUID)
        if uid not in found:
            description = str(getattr(header, "SeriesDescription", "") or getattr(header, "ProtocolName", "") or "")
            number = getattr(header, "SeriesNumber", None)
            found[uid] = (Series(uid, str(getattr(header, "StudyInstanceUID", "")), description.strip(),
                                 int(number) if number not in (None, "") else None), [])
        found[uid][0].files.append(path)
        found[uid][1].append(header)
    if not found:
        raise InputError(f"{folder}: no DICOM images found")
    for series, headers in found.values():
        _sort_instances(series, headers)
    return sorted((s for s, _ in found.values()),
                  key=lambda s: (s.study_uid, s.number if s.number is not None else 1 << 30, s.description))


def select_series(series: list[Series], patterns: Mapping[str, re.Pattern], where: str
                  ) -> tuple[dict[str, Series], dict[str, list[Series]]]:
    """Choose one series per sequence.

    Returns:
        The chosen series per sequence, and every matching series per sequence (chosen first).

    Raises:
        InputError: No series matches any pattern (the descriptions found are listed), or every series matching a
            sequence is unusable (the reasons are listed).
    """
    matches: dict[str, list[Series]] = {}
    for s in series:
        key = match_sequence(s.description, patterns)
        if key is not None:
            matches.setdefault(key, []).append(s)
    if not matches:
        listed = "; ".join(f"{s.number}: {s.description!r}" for s in series)
        raise InputError(f"{where}: no series description matches the sequence patterns (series found: {listed}); "
                         "give patterns with --match SEQUENCE=REGEX")
    chosen: dict[str, Series] = {}
    for key in SEQUENCES:
        candidates = matches.get(key, [])
        usable = [s for s in candidates if s.problem is None]
        if candidates and not usable:
            reasons = "; ".join(f"{s.description!r}: {s.problem}" for s in candidates)
            raise InputError(f"{where}: no usable series for {key} ({reasons})")
        if usable:
            usable.sort(key=lambda s: (-s.voxels, s.number if s.number is not None else 1 << 30))
            chosen[key] = usable[0]
            matches[key] = usable + [s for s in candidates if s.problem is not None]
            if len(usable) > 1:
                logger.warning("%s: %d series match %s; using %r (the largest)", where, len(usable), key,
                               usable[0].description)
    missing = [k for k in SEQUENCES if k not in chosen]
    if missing:
        logger.warning("%s: no series for %s", where, ", ".join(missing))
    return chosen, matches


def read_series(series: Series):
    """Read a series as a SimpleITK image (float32), in the scanner's patient coordinates.

    Raises:
        ImageError: GDCM cannot read the files.
    """
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(p) for p in series.files])
    reader.SetOutputPixelType(sitk.sitkFloat32)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        lines = str(exc).strip().splitlines()
        raise ImageError(f"{series.files[0].parent}: cannot read series {series.description!r} "
                         f"({lines[-1][:200] if lines else type(exc).__name__})") from exc
    if image.GetDimension() != 3:
        raise ImageError(f"{series.files[0].parent}: series {series.description!r} is not a 3D volume")
    return image
