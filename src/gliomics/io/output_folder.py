"""Output folders written as a whole: filled under a hidden temporary name, renamed into place on success, removed
on failure, so that bad input or an interruption never leaves a partial folder."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from gliomics.errors import OutputError
from gliomics.io.atomic import atomic_path

__all__ = ["check_output_folder", "staged_folder"]


def check_output_folder(out: Path | str, overwrite: bool = False) -> Path:
    """Refuse an output path that is a file, or a non-empty folder unless ``overwrite``.

    Raises:
        OutputError: The path cannot receive the output folder.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputError(f"{out}: folder exists and is not empty (use --overwrite to replace it)")
    return out


@contextlib.contextmanager
def staged_folder(out: Path | str, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; on normal exit it replaces ``out``, on an exception it is deleted.

    Raises:
        OutputError: ``out`` cannot be written (see :func:`check_output_folder`).
    """
    out = check_output_folder(out, overwrite)
    created = False
    try:
        with atomic_path(out, folder=True) as tmp:
            created = True
            yield tmp
    except OSError as exc:
        if created:
            raise
        raise OutputError(f"{out}: cannot create the output folder ({exc})") from exc
