"""What every dataset adapter shares: manifest rows and the manifest CSV, unknown-value bookkeeping, label conversion.

An adapter reads a public dataset as distributed and writes, into its output folder,

- ``manifest.csv``: ``case_id,t1n,t1c,t2w,t2f,seg`` (the manifest layout of :mod:`gliomics.io.layouts`) plus any
  adapter-specific columns, which readers ignore. Paths inside the output folder are relative, others absolute:
  images are referenced where they are, not copied;
- ``markers.csv``: the markers table of :mod:`gliomics.io.markers`;
- ``labels/<case>-seg.nii.gz``: segmentations converted to BraTS 2024 values where the dataset uses another scheme.

Nothing is written before the metadata have been read and every value is known (or ``unknown_as_missing``).
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gliomics.constants import SEQUENCES
from gliomics.errors import MarkerTableError, OutputError
from gliomics.io.atomic import atomic_path
from gliomics.io.markers import MarkerRecord, write_markers
from gliomics.io.nifti import load_label, save_image

logger = logging.getLogger(__name__)

MANIFEST = "manifest.csv"
MARKERS = "markers.csv"
LABELS_DIR = "labels"
#: Cells that mean "not known" in every dataset table (compared lower-cased and stripped).
MISSING_TEXT = frozenset({"", "na", "n/a", "nan", "unknown", "not available", "none", "-"})
_MAX_LISTED = 20
_SEXES = {"m": "M", "male": "M", "f": "F", "female": "F"}


@dataclass
class ManifestRow:
    """One case of a manifest.

    Attributes:
        case_id: Identifier.
        images: Sequence name → file (missing sequences absent).
        seg: Segmentation with BraTS 2024 values, if any.
        extra: Adapter-specific columns (e.g. ``wt_mask``) → file or text.
    """

    case_id: str
    images: dict[str, Path]
    seg: Path | None = None
    extra: dict[str, Path | str] = field(default_factory=dict)


class UnknownValues:
    """Collects values that an explicit mapping table does not know, to report them all at once."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, str, str]] = []

    def add(self, file: Path | str, where: str, column: str, value: object) -> None:
        """Record one unknown ``value`` of ``column`` at ``where`` (a row or subject) of ``file``."""
        self.items.append((str(file), where, column, str(value)))

    def check(self, unknown_as_missing: bool) -> None:
        """Raise listing every unknown value, or (with ``unknown_as_missing``) log them; they are then left blank.

        Raises:
            MarkerTableError: Unknown values were found and ``unknown_as_missing`` is False.
        """
        if not self.items:
            return
        listed = "; ".join(f"{file}: {where} {column} {value!r}" for file, where, column, value in
                           self.items[:_MAX_LISTED])
        more = f" … ({len(self.items)} in all)" if len(self.items) > _MAX_LISTED else ""
        if not unknown_as_missing:
            raise MarkerTableError(f"unknown values (add --unknown-as-missing to leave them blank): {listed}{more}")
        logger.warning("unknown values left blank: %s%s", listed, more)


def is_missing(value: object) -> bool:
    """True for None, NaN and the texts of :data:`MISSING_TEXT`."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return str(value).strip().lower() in MISSING_TEXT


def map_value(value: object, table: Mapping[str, int], unknown: UnknownValues, file: Path | str, where: str,
              column: str) -> int | None:
    """Look ``value`` up (lower-cased, stripped) in an explicit table; missing → None, anything else is recorded."""
    if is_missing(value):
        return None
    key = str(value).strip().lower()
    if key in table:
        return table[key]
    unknown.add(file, where, column, value)
    return None


def parse_age(value: object) -> float | None:
    """Age in years, or None when missing, negative (a missing-value code) or not a number."""
    if is_missing(value):
        return None
    try:
        age = float(str(value).strip())
    except ValueError:
        return None
    return age if age >= 0 and math.isfinite(age) else None


def parse_sex(value: object) -> str | None:
    """``"M"``/``"F"`` for the usual spellings, the text otherwise, None when missing."""
    if is_missing(value):
        return None
    text = str(value).strip()
    return _SEXES.get(text.lower(), text)


def convert_labels(src: Path, out: Path, case_id: str, label_map: Mapping[int, int], *, overwrite: bool = False
                   ) -> Path:
    """Write ``src`` converted to BraTS 2024 values as ``out/labels/<case>-seg.nii.gz`` (geometry kept).

    Raises:
        LabelError: ``src`` holds values outside ``label_map`` (the values are listed).
    """
    dst = out / LABELS_DIR / f"{case_id}-seg.nii.gz"
    if dst.is_file() and not overwrite:
        return dst
    label = load_label(src, label_map=label_map)
    return save_image(label.array.astype(np.uint8), label.affine, dst, header=label.header, dtype=np.uint8)


def _cell(path: Path | str | None, root: Path) -> str:
    if path is None:
        return ""
    if isinstance(path, str):
        return path
    path = Path(os.path.abspath(path))
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def write_manifest(rows: Iterable[ManifestRow], path: Path | str) -> Path:
    """Write a manifest CSV atomically; paths under its folder are written relative to it.

    Raises:
        OutputError: The file cannot be written.
    """
    path = Path(path)
    rows = sorted(rows, key=lambda r: r.case_id)
    root = Path(os.path.abspath(path.parent))
    extra = sorted({k for r in rows for k in r.extra})
    try:
        with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["case_id", *SEQUENCES, "seg", *extra])
            for r in rows:
                writer.writerow([r.case_id, *(_cell(r.images.get(s), root) for s in SEQUENCES), _cell(r.seg, root),
                                 *(_cell(r.extra.get(k), root) for k in extra)])
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc})") from exc
    return path


def write_outputs(out: Path, rows: list[ManifestRow], records: list[MarkerRecord]) -> dict[str, object]:
    """Write ``manifest.csv`` (if there are rows) and ``markers.csv`` (if there are records) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, object] = {"cases": len(rows), "markers": len(records)}
    if rows:
        written["manifest"] = write_manifest(rows, out / MANIFEST)
    if records:
        written["markers_csv"] = write_markers(sorted(records, key=lambda r: r.case_id), out / MARKERS)
    return written
