"""Read and write the markers table: one row per case with IDH, 1p/19q and TERT status and optional clinical columns.

Format (CSV, UTF-8, a BOM is accepted)::

    case_id,idh,codel_1p19q,tert,age,sex,site
    PHANTOM-A-00001-000,1,0,,54,F,A

Marker cells hold 1/0 or a synonym (``mutant``, ``wildtype``, ``codeleted``, ``intact``…); an empty cell means the
status is unknown (its loss is masked, it is never imputed). Row numbers in messages are line numbers of the file
(the header is row 1).
"""

from __future__ import annotations

import csv
import logging
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from gliomics.constants import CLINICAL_COLUMNS, MARKERS
from gliomics.errors import MarkerTableError, OutputError
from gliomics.io.atomic import atomic_path
from gliomics.io.delimited import read_delimited

logger = logging.getLogger(__name__)

COLUMNS: tuple[str, ...] = ("case_id", *MARKERS, *CLINICAL_COLUMNS)

_UNKNOWN = frozenset({"", "nan", "na", "n/a", "unknown"})
# Keys are lower-cased with spaces, hyphens and underscores removed ("wild-type" -> "wildtype").
_COMMON = {"true": 1, "false": 0, "yes": 1, "no": 0, "positive": 1, "negative": 0}
_MUTATION = {
    **dict.fromkeys(("mutant", "mutated", "mut"), 1),
    **dict.fromkeys(("wildtype", "wt"), 0),
}
_CODELETION = {
    **dict.fromkeys(("codeleted", "codeletion", "deleted"), 1),
    **dict.fromkeys(("intact", "noncodeleted", "notcodeleted", "nocodeletion"), 0),
}
_SYNONYMS: dict[str, dict[str, int]] = {
    "idh": {**_COMMON, **_MUTATION},
    "tert": {**_COMMON, **_MUTATION},
    "codel_1p19q": {**_COMMON, **_CODELETION},
}
# WHO CNS5-style prefixes ("IDH-mutant", "TERTp-wildtype", "1p/19q-codeleted") name the marker itself.
_PREFIXES: dict[str, tuple[str, ...]] = {"idh": ("idh",), "tert": ("tertp", "tert"), "codel_1p19q": ("1p/19q", "1p19q")}
_SEXES = {"m": "M", "male": "M", "man": "M", "f": "F", "female": "F", "woman": "F"}


def _check_marker(marker: str) -> None:
    if marker not in MARKERS:
        raise ValueError(f"unknown marker {marker!r}; expected one of {', '.join(MARKERS)}")


def parse_marker_value(raw: str | None, *, marker: str) -> int | None:
    """Parse one cell of a marker column.

    Args:
        raw: The cell text.
        marker: One of :data:`~gliomics.constants.MARKERS`; the accepted words depend on it (``mutant`` for IDH
            and TERT, ``codeleted`` for 1p/19q).

    Returns:
        1 (altered), 0 (not altered) or None (unknown: blank, ``nan``, ``na``, ``n/a``, ``unknown``).

    Raises:
        ValueError: The value is not recognised for this marker.
    """
    _check_marker(marker)
    text = "" if raw is None else str(raw).strip().lower()
    if text in _UNKNOWN:
        return None
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if number in (0.0, 1.0):
            return int(number)
        raise ValueError(f"unknown {marker} value {raw!r}")
    key = re.sub(r"[\s_\-]+", "", text)
    for prefix in _PREFIXES[marker]:
        if key.startswith(prefix) and len(key) > len(prefix):
            key = key[len(prefix) :]
            break
    value = _SYNONYMS[marker].get(key)
    if value is None:
        raise ValueError(f"unknown {marker} value {raw!r}")
    return value


@dataclass
class MarkerRecord:
    """Molecular markers and clinical data of one case (None = unknown).

    Attributes:
        case_id: Identifier matching the imaging case.
        idh: IDH mutation (1 mutant, 0 wild type).
        codel_1p19q: 1p/19q codeletion (1 codeleted, 0 intact).
        tert: TERT promoter mutation (1 mutant, 0 wild type).
        age: Age in years.
        sex: ``"M"``, ``"F"`` or the text given.
        site: Acquisition site or centre (for site-wise splits and external validation).
    """

    case_id: str
    idh: int | None
    codel_1p19q: int | None
    tert: int | None
    age: float | None = None
    sex: str | None = None
    site: str | None = None

    def __post_init__(self) -> None:
        for marker in MARKERS:
            if getattr(self, marker) not in (None, 0, 1):
                raise ValueError(f"case {self.case_id!r}: {marker} must be 0, 1 or None, got {getattr(self, marker)!r}")

    def label(self, marker: str) -> int | None:
        """The status of ``marker`` (one of :data:`~gliomics.constants.MARKERS`): 1, 0 or None if unknown."""
        _check_marker(marker)
        return getattr(self, marker)

    def to_dict(self) -> dict[str, str | int | float | None]:
        """The record as a plain dict keyed like the table's columns."""
        return asdict(self)


def _optional(text: str) -> str | None:
    text = text.strip()
    return None if text.lower() in _UNKNOWN else text


def _parse_age(text: str) -> float | None:
    if _optional(text) is None:
        return None
    age = float(text)  # ValueError is reported with the row by the caller
    if not math.isfinite(age) or age < 0:
        raise ValueError(text)
    return age


def read_markers(path: Path | str) -> dict[str, MarkerRecord]:
    """Read a markers table.

    The ``case_id`` column and at least one of the marker columns are required; a missing marker column means
    unknown for every case. ``age``, ``sex`` and ``site`` are optional; other columns are ignored.

    Args:
        path: CSV file (comma-separated; semicolon- or tab-separated files are detected).

    Returns:
        Records keyed by case id, in file order.

    Raises:
        MarkerTableError: Missing or empty file, missing columns, unknown values, bad age, duplicate case ids.
    """
    path = Path(path)
    header, table_rows = read_delimited(path, error=MarkerTableError)
    if "case_id" not in header:
        raise MarkerTableError(f"{path}: missing column 'case_id' (columns: {', '.join(header)})")
    repeated = sorted({h for h in header if h and header.count(h) > 1})
    if repeated:
        raise MarkerTableError(f"{path}: repeated column(s) {', '.join(repeated)}")
    if not any(m in header for m in MARKERS):
        raise MarkerTableError(f"{path}: none of the marker columns {', '.join(MARKERS)} found")
    ignored = [h for h in header if h not in COLUMNS]
    if ignored:
        logger.debug("%s: ignoring columns %s", path, ignored)
    records: dict[str, MarkerRecord] = {}
    rows: dict[str, int] = {}
    for row, cells in table_rows:
        if len(cells) > len(header) and any(c.strip() for c in cells[len(header) :]):
            raise MarkerTableError(f"{path}: row {row} has {len(cells)} cells but the header has {len(header)}")
        values = dict(zip(header, cells + [""] * (len(header) - len(cells)), strict=False))
        case_id = values["case_id"].strip()
        if not case_id:
            raise MarkerTableError(f"{path}: row {row}: empty case_id")
        if case_id in rows:
            raise MarkerTableError(f"{path}: duplicate case_id {case_id!r} in rows {rows[case_id]} and {row}")
        where = f"{path}: row {row} (case {case_id})"
        markers: dict[str, int | None] = {}
        for marker in MARKERS:
            raw = values.get(marker, "")
            try:
                markers[marker] = parse_marker_value(raw, marker=marker)
            except ValueError:
                raise MarkerTableError(f"{where}: unknown {marker} value {raw.strip()!r}") from None
        try:
            age = _parse_age(values.get("age", ""))
        except ValueError:
            raise MarkerTableError(f"{where}: unparseable age {values['age'].strip()!r}") from None
        sex = _optional(values.get("sex", ""))
        sex = _SEXES.get(sex.lower(), sex) if sex else None
        site = _optional(values.get("site", ""))
        records[case_id] = MarkerRecord(case_id, **markers, age=age, sex=sex, site=site)
        rows[case_id] = row
    if not records:
        logger.warning("%s: no rows", path)
    return records


def _cell(value: str | int | float | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def write_markers(records: Mapping[str, MarkerRecord] | Iterable[MarkerRecord], path: Path | str) -> Path:
    """Write a markers table atomically (temporary file in the same folder, then rename); unknown values are blank.

    Args:
        records: Records, or a mapping of them (as returned by :func:`read_markers`).
        path: Destination CSV; parent folders are created.

    Returns:
        The written path.

    Raises:
        ValueError: Two records share a case id.
        OutputError: The file cannot be written; no partial file is left behind.
    """
    path = Path(path)
    items = list(records.values()) if isinstance(records, Mapping) else list(records)
    seen: set[str] = set()
    for record in items:
        if record.case_id in seen:
            raise ValueError(f"duplicate case_id {record.case_id!r}")
        seen.add(record.case_id)
    try:
        with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(COLUMNS)
            for record in items:
                row = record.to_dict()
                writer.writerow([_cell(row[c]) for c in COLUMNS])
    except BaseException as exc:
        if isinstance(exc, OSError):
            raise OutputError(f"{path}: cannot write ({exc})") from exc
        raise
    return path
