"""Read the metadata tables of the datasets (CSV or tab-separated), with columns found by any of several names."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from gliomics.errors import InputError


def read_table(path: Path | str) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The lower-cased header and the rows ``(line number, {header: cell})`` of a CSV/TSV file (BOM accepted).

    Raises:
        InputError: Missing, unreadable or empty file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {'not a file' if path.exists() else 'not found'}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read as UTF-8 text ({exc})") from exc
    if not text.strip():
        raise InputError(f"{path}: empty file")
    first = text.splitlines()[0]
    delimiter = "\t" if first.count("\t") > first.count(",") else ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [h.strip().lower() for h in next(reader)]
        rows = []
        for cells in reader:
            if any(c.strip() for c in cells):
                rows.append((reader.line_num, dict(zip(header, [c.strip() for c in cells], strict=False))))
    except csv.Error as exc:
        raise InputError(f"{path}: row {reader.line_num}: malformed CSV ({exc})") from exc
    return header, rows


def column(path: Path, header: Sequence[str], names: Sequence[str], *, required: bool = True) -> str | None:
    """The first of ``names`` (lower-case) present in ``header``.

    Raises:
        InputError: None is present and the column is ``required``.
    """
    found = next((n for n in names if n in header), None)
    if found is None and required:
        raise InputError(f"{path}: missing column {names[0]!r} (columns: {', '.join(header)})")
    return found
