"""Atomic writes: every output file or folder is written under a temporary sibling name and renamed into place, so
that a crash or a kill never leaves half a file, and readers never see one."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "write_text_atomic"]

#: Suffixes kept at the end of the temporary name, for writers that choose the format by the file name.
_KEPT_SUFFIXES = (".nii.gz", ".nii")


def _temporary(path: Path, tag: str) -> Path:
    suffix = next((s for s in _KEPT_SUFFIXES if path.name.endswith(s)), "")
    stem = path.name[: len(path.name) - len(suffix)]
    return path.with_name(f".{stem}.{tag}-{os.getpid()}{suffix}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: Path | str, *, folder: bool = False, create: bool = True) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write to; on success it is renamed over ``path``.

    With ``folder=True`` the temporary path is created as an empty folder (unless ``create=False``, for writers that
    make the folder themselves), and an existing folder at ``path`` is swapped out and removed after the new one is
    in place. On an exception the temporary file or folder is removed
    and the exception propagates; ``path`` is then untouched. The parent folder is created if needed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path, "tmp")
    _remove(tmp)
    if folder and create:
        tmp.mkdir()
    try:
        yield tmp
        if folder and path.exists():
            old = _temporary(path, "old")
            os.replace(path, old)
            os.replace(tmp, path)
            _remove(old)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            _remove(tmp)


def write_text_atomic(path: Path | str, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; returns ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)
    return path
