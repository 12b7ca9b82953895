"""Delimited text tables: reading them (CSV, semicolon- or tab-separated, BOM accepted) with errors that name the
file, and writing rows of dicts as one CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gliomics.errors import GliomicsError, InputError
from gliomics.io.atomic import atomic_path


def read_delimited(path: Path | str, *, error: type[GliomicsError] = InputError
                   ) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The lower-cased, stripped header and the non-blank rows ``(line number, cells)`` of a table.

    The delimiter is the one of comma, semicolon and tab that the header line holds most of (comma on a tie).

    Raises:
        error: Missing, unreadable, empty or malformed file (the message names it and the row).
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {'not a file' if path.exists() else 'not found'}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read as UTF-8 text ({exc})") from exc
    if not text.strip():
        raise error(f"{path}: empty file")
    first = text.splitlines()[0]
    delimiter = max((",", ";", "\t"), key=lambda d: (first.count(d), d == ","))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [h.strip().lower() for h in next(reader)]
        rows = [(reader.line_num, cells) for cells in reader if any(c.strip() for c in cells)]
    except csv.Error as exc:
        raise error(f"{path}: row {reader.line_num}: malformed CSV ({exc})") from exc
    return header, rows


def write_rows(path: Path | str, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write rows as a CSV file, atomically: the columns are every key in order of first appearance, and a row
    without a key leaves its cell empty."""
    path = Path(path)
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return path
