"""Preprocess a cohort: case discovery, worker processes, skipping finished cases, one atomic folder per case."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from gliomics.errors import GliomicsError, OutputError
from gliomics.io.atomic import atomic_path
from gliomics.io.cases import Case
from gliomics.io.layouts import discover_cases
from gliomics.io.partition import select_part
from gliomics.preprocess.alignment import load_registration_atlas
from gliomics.preprocess.brain_extraction import check_method
from gliomics.preprocess.pipeline import PreprocessSettings, preprocess_case
from gliomics.runtime.hardware import usable_cores

logger = logging.getLogger(__name__)

MARKERS_FILE = "markers.csv"


def _set_threads(threads: int) -> None:
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(max(1, threads))


def run_case(case: Case, out: Path, settings: PreprocessSettings, *, overwrite: bool = False) -> dict[str, Any]:
    """Preprocess one case into ``out / case_id`` through a temporary folder renamed into place.

    Raises:
        GliomicsError: Bad input; nothing is left behind.
    """
    final = out / case.case_id
    with atomic_path(final, folder=True, create=False) as tmp:
        record = preprocess_case(case, tmp, settings)
        if final.exists() and not overwrite:
            raise OutputError(f"{final}: already exists")
    return record


def _worker(case: Case, out: Path, settings: PreprocessSettings, overwrite: bool, threads: int) -> dict[str, Any]:
    _set_threads(threads)
    return run_case(case, out, settings, overwrite=overwrite)


def _copy_markers(source: Path, out: Path) -> None:
    """Carry a ``markers.csv`` that sits beside the input cases over to the output, if the output has none."""
    folder = source if source.is_dir() else source.parent
    src, dst = folder / MARKERS_FILE, out / MARKERS_FILE
    if src.is_file() and not dst.exists():
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)


def _prepare(source: Path, out: Path, settings: PreprocessSettings, layout: str, num_parts: int,
             part_id: int) -> list[Case]:
    """Find this part's cases, check the skull stripping and the atlas before any case runs, and create ``out`` with
    the markers table of ``source``."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: output path exists and is not a folder")
    cases = select_part(discover_cases(source, layout=layout, allow_missing=True), num_parts, part_id)
    check_method(settings.skull_strip)  # a network that cannot run here fails before any case runs
    if not settings.skip_registration:
        load_registration_atlas(settings.atlas, settings.mask)  # a bad atlas or mask fails before any case runs
    out.mkdir(parents=True, exist_ok=True)
    _copy_markers(source, out)
    return cases


def _run_serial(todo: list[Case], out: Path, settings: PreprocessSettings, overwrite: bool,
                finish: Callable[[str, BaseException | None], None]) -> None:
    """Run the cases one after the other in this process, on all usable cores, reporting each to ``finish``."""
    _set_threads(usable_cores())
    for case in todo:
        try:
            run_case(case, out, settings, overwrite=overwrite)
        except GliomicsError as exc:
            finish(case.case_id, exc)
        else:
            finish(case.case_id, None)


def _run_pool(todo: list[Case], out: Path, settings: PreprocessSettings, overwrite: bool, workers: int, threads: int,
              finish: Callable[[str, BaseException | None], None]) -> None:
    """Run the cases in ``workers`` spawned processes of ``threads`` threads each, reporting each to ``finish`` as
    it completes; an error ``finish`` raises cancels the cases not started yet."""
    # spawned, not forked: a worker forked from a process whose torch has started its OpenMP threads (deepbet
    # ran there) hangs at its first parallel region
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(_worker, c, out, settings, overwrite, threads): c.case_id for c in todo}
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                try:
                    finish(futures[future], future.exception())
                except BaseException:
                    for other in pending:
                        other.cancel()
                    raise


def preprocess_cohort(source: Path | str, out: Path | str, settings: PreprocessSettings | None = None, *,
                      workers: int = 1, overwrite: bool = False, keep_going: bool = False, progress: bool = True,
                      layout: str = "auto", num_parts: int = 1, part_id: int = 0) -> dict[str, Any]:
    """Preprocess every case found under ``source`` (or only part ``part_id`` of ``num_parts`` parts of about equal
    work, :func:`~gliomics.io.partition.select_part`) into ``out`` (BraTS 2024 layout).

    Cases whose output folder exists are skipped unless ``overwrite``. Each case is written to a hidden temporary
    folder and renamed into place, so an interrupted run leaves only finished cases.

    Args:
        source: Raw cases in any layout of :func:`~gliomics.io.discover_cases` (sequences may differ in grid).
        out: Output folder.
        settings: Pipeline options.
        workers: Worker processes (a case runs SimpleITK on a fixed number of threads, see
            :data:`~gliomics.preprocess.pipeline.ITK_THREADS`, so that its outputs do not depend on the machine).
        overwrite: Redo finished cases.
        keep_going: Record failing cases and finish the others (otherwise the first bad case stops the run).
        progress: Show a progress bar on stderr.
        layout: Input layout, as in :func:`~gliomics.io.discover_cases`.
        num_parts: Parts of a job array (1: every case).
        part_id: This job's part.

    Returns:
        ``{"preprocessed": [...], "skipped": [...], "failed": {case_id: message}}``.

    Raises:
        GliomicsError: Bad input (unless ``keep_going``), or an output path that is not a folder.
    """
    from tqdm import tqdm

    settings = settings or PreprocessSettings()
    source, out = Path(source), Path(out)
    cases = _prepare(source, out, settings, layout, num_parts, part_id)
    todo = [c for c in cases if overwrite or not (out / c.case_id).is_dir()]
    skipped = [c.case_id for c in cases if c not in todo]
    done: list[str] = []
    failed: dict[str, str] = {}
    bar = tqdm(total=len(cases), initial=len(skipped), desc="preprocess", unit="case", disable=not progress)

    def finish(case_id: str, error: BaseException | None) -> None:
        bar.update(1)
        if error is None:
            done.append(case_id)
        elif isinstance(error, GliomicsError) and keep_going:
            failed[case_id] = str(error)
            logger.error("%s: %s", case_id, error)
        else:
            raise error

    threads = max(1, usable_cores() // max(1, workers))
    try:
        if workers <= 1 or len(todo) <= 1:
            _run_serial(todo, out, settings, overwrite, finish)
        else:
            _run_pool(todo, out, settings, overwrite, workers, threads, finish)
    finally:
        bar.close()
    return {"preprocessed": sorted(done), "skipped": skipped, "failed": failed}
