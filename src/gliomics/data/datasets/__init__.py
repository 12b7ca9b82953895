"""Adapters for public glioma datasets and DICOM studies: each writes a manifest CSV and a markers CSV.

============  ===========================================================================================
format        reads
============  ===========================================================================================
brats2024     BraTS 2024 GLI case folders (labels as they are)
brats2021     BraTS 2021 case folders (labels 1, 2, 4 converted to 1, 2, 3 into ``labels/``)
ucsf-pdgm     UCSF-PDGM ``*_nifti`` folders and the metadata CSV (free-text IDH, 1p/19q mapped explicitly)
egd           EGD ``SUBJECTS/`` and ``metadata.json`` (−1 = unknown; MASK is whole-tumour only)
tcga          the TCGA pan-glioma table (``IDH.status``, ``X1p.19q.codeletion``, ``TERT.promoter.status``)
dicom         DICOM study folders (series chosen by description) → NIfTI + ``dicom_sources.json``
============  ===========================================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gliomics.errors import ConfigError, OutputError


def _registry() -> dict[str, Callable[..., dict[str, object]]]:
    from gliomics.data.datasets.brats import import_brats2021, import_brats2024
    from gliomics.data.datasets.dicom_study import import_dicom
    from gliomics.data.datasets.egd import import_egd
    from gliomics.data.datasets.tcga import import_tcga
    from gliomics.data.datasets.ucsf_pdgm import import_ucsf_pdgm

    return {"brats2024": import_brats2024, "brats2021": import_brats2021, "ucsf-pdgm": import_ucsf_pdgm,
            "egd": import_egd, "tcga": import_tcga, "dicom": import_dicom}


FORMATS: tuple[str, ...] = ("brats2024", "brats2021", "ucsf-pdgm", "egd", "tcga", "dicom")


def import_dataset(format: str, source: Path | str, out: Path | str, **options: object) -> dict[str, object]:
    """Run the adapter of ``format`` (one of :data:`FORMATS`) on ``source``, writing into ``out``.

    Options an adapter does not use are ignored (e.g. ``metadata`` for BraTS).

    Raises:
        ConfigError: Unknown format.
        OutputError: ``out`` is a file.
        GliomicsError: Whatever the adapter finds wrong with the input.
    """
    adapters = _registry()
    if format not in adapters:
        raise ConfigError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    if Path(out).exists() and not Path(out).is_dir():  # found before any input is read
        raise OutputError(f"{out}: output path exists and is not a folder")
    return adapters[format](source, out, **options)


__all__ = ["FORMATS", "import_dataset"]
