"""BraTS adapters: BraTS 2024 GLI (labels as they are) and BraTS 2021 (labels 1, 2, 4 converted to 1, 2, 3).

BraTS 2024: ``DIR/BraTS-GLI-xxxxx-yyy/BraTS-GLI-xxxxx-yyy-{t1n,t1c,t2w,t2f,seg}.nii.gz``.
BraTS 2021: ``DIR/BraTS2021_xxxxx/BraTS2021_xxxxx_{t1,t1ce,t2,flair,seg}.nii.gz``; the segmentation is converted
explicitly (:data:`~gliomics.constants.BRATS2021_TO_2024`: 1 NCR → NETC 1, 2 ED → SNFH 2, 4 ET → ET 3) into
``labels/``. BraTS ships no molecular markers, so ``markers.csv`` lists the cases with every marker unknown.
"""

from __future__ import annotations

import logging
from pathlib import Path

from gliomics.constants import BRATS2021_TO_2024, SEQUENCES
from gliomics.data.datasets.common import ManifestRow, convert_labels, write_outputs
from gliomics.errors import InputError
from gliomics.io.cases import sequence_tags
from gliomics.io.markers import MarkerRecord

logger = logging.getLogger(__name__)

#: File tag → sequence (``"seg"`` for the segmentation), per release; the separator before the tag differs.
BRATS2024_FILES: dict[str, str] = {**sequence_tags(*SEQUENCES), "seg": "seg"}
BRATS2021_FILES: dict[str, str] = {**sequence_tags("t1", "t1ce", "t2", "flair"), "seg": "seg"}


def _find(folder: Path, case_id: str, separator: str, tag: str) -> Path | None:
    for ext in (".nii.gz", ".nii"):
        path = folder / f"{case_id}{separator}{tag}{ext}"
        if path.is_file():
            return path
    return None


def _import(source: Path, out: Path, files: dict[str, str], separator: str, label_map: dict[int, int] | None,
            overwrite: bool) -> dict[str, object]:
    source, out = Path(source), Path(out)
    if not source.is_dir():
        raise InputError(f"{source}: {'not a folder' if source.exists() else 'not found'}")
    rows: list[ManifestRow] = []
    for folder in sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith(".")):
        found = {key: _find(folder, folder.name, separator, tag) for tag, key in files.items()}
        images = {k: p for k, p in found.items() if k != "seg" and p is not None}
        if not images:
            logger.debug("%s: no BraTS files named %s%s<tag>.nii.gz; skipped", folder, folder.name, separator)
            continue
        rows.append(ManifestRow(folder.name, images, found["seg"]))
    if not rows:
        tags = ", ".join(files)
        raise InputError(f"{source}: no case folders with files named <case>{separator}<tag>.nii.gz ({tags})")
    if label_map is not None:  # conversions last: nothing is written if a folder above was malformed
        for row in rows:
            if row.seg is not None:
                row.seg = convert_labels(row.seg, out, row.case_id, label_map, overwrite=overwrite)
    records = [MarkerRecord(r.case_id, None, None, None) for r in rows]
    return write_outputs(out, rows, records)


def import_brats2024(source: Path | str, out: Path | str, *, overwrite: bool = False, **_: object
                     ) -> dict[str, object]:
    """Write the manifest and markers of a BraTS 2024 GLI folder (segmentations referenced as they are).

    Raises:
        InputError: No case folder with BraTS 2024 file names.
    """
    return _import(Path(source), Path(out), BRATS2024_FILES, "-", None, overwrite)


def import_brats2021(source: Path | str, out: Path | str, *, overwrite: bool = False, **_: object
                     ) -> dict[str, object]:
    """Write the manifest and markers of a BraTS 2021 folder, converting the segmentations to BraTS 2024 labels.

    Raises:
        InputError: No case folder with BraTS 2021 file names.
        LabelError: A segmentation holds values other than 0, 1, 2, 4 (listed).
    """
    return _import(Path(source), Path(out), BRATS2021_FILES, "_", dict(BRATS2021_TO_2024), overwrite)
