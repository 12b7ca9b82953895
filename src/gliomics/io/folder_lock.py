"""One writer per output folder: an advisory lock (``filelock``, an OS file lock) held while a command writes.

The lock file lies beside the folder (``.<folder>.<role>.gliomics-lock``), so that it exists before the folder does
and an output folder written whole stays free of it. The operating system releases the lock when its process ends,
however it ends: a lock file left by a killed process holds nothing, and the next writer takes it over.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from gliomics.errors import OutputError

logger = logging.getLogger(__name__)

__all__ = ["lock_path", "writer_lock"]


def lock_path(folder: Path | str, role: str) -> Path:
    """The lock file of ``folder`` for one kind of writer (``train``, ``predict-part0-of1``, …)."""
    folder = Path(folder).absolute()
    return folder.parent / f".{folder.name}.{role}.gliomics-lock"


@contextlib.contextmanager
def writer_lock(folder: Path | str, role: str) -> Iterator[Path]:
    """Hold the lock of ``folder`` for ``role`` while the block runs.

    Raises:
        OutputError: Another process holds it (one line naming the folder and the lock file).
    """
    from filelock import FileLock, Timeout

    path = lock_path(folder, role)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create its parent folder ({exc})") from exc
    lock = FileLock(path, timeout=0, is_singleton=False)
    try:
        lock.acquire()
    except Timeout:
        raise OutputError(f"{folder}: another gliomics process is writing into it ({role}; lock {path} is held); "
                          "wait for it to finish or write elsewhere") from None
    except OSError as exc:
        raise OutputError(f"{path}: cannot create the lock file ({exc})") from exc
    logger.debug("%s: lock taken by pid %d", path, os.getpid())
    try:
        yield path
    finally:
        lock.release()
