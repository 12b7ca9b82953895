"""Read the metadata tables of the datasets (CSV or tab-separated), with columns found by any of several names."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gliomics.errors import InputError
from gliomics.io.delimited import read_delimited


def read_table(path: Path | str) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The lower-cased header and the rows ``(line number, {header: cell})`` of a CSV/TSV file (BOM accepted).

    Raises:
        InputError: Missing, unreadable or empty file.
    """
    header, rows = read_delimited(path)
    return header, [(line, dict(zip(header, [c.strip() for c in cells], strict=False))) for line, cells in rows]


def column(path: Path, header: Sequence[str], names: Sequence[str], *, required: bool = True) -> str | None:
    """The first of ``names`` (lower-case) present in ``header``.

    Raises:
        InputError: None is present and the column is ``required``.
    """
    found = next((n for n in names if n in header), None)
    if found is None and required:
        raise InputError(f"{path}: missing column {names[0]!r} (columns: {', '.join(header)})")
    return found
