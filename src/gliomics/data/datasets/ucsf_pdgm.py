"""UCSF-PDGM adapter (Calabrese et al. 2022, https://doi.org/10.1148/ryai.220058).

Layout: ``DIR/UCSF-PDGM-0004_nifti/UCSF-PDGM-0004_{T1,T1c,T2,FLAIR,tumor_segmentation}.nii.gz`` (the ``_bias``
variants of the images are used when the plain ones are absent) and a metadata CSV whose ``ID`` column writes the
same case as ``UCSF-PDGM-004`` (three digits): ids are matched on their number. The segmentation has BraTS 2021
labels (1 necrotic core, 2 oedema, 4 enhancing), converted to BraTS 2024 into ``labels/``. The IDH and 1p/19q cells
are free text, mapped by the explicit tables below; there is no TERT column, so TERT is unknown. Site: ``UCSF``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from gliomics.constants import BRATS2021_TO_2024
from gliomics.data.datasets.common import (
    ManifestRow,
    UnknownValues,
    convert_labels,
    map_value,
    parse_age,
    parse_sex,
    write_outputs,
)
from gliomics.data.datasets.tables import column, read_table
from gliomics.errors import InputError
from gliomics.io.cases import sequence_tags
from gliomics.io.markers import MarkerRecord

logger = logging.getLogger(__name__)

SITE = "UCSF"
#: File tag → sequence.
FILES: dict[str, str] = sequence_tags("T1", "T1c", "T2", "FLAIR")
SEG_TAG = "tumor_segmentation"
#: IDH cell (lower-cased) → 1 mutant / 0 wild type. Named hotspot variants are mutant.
IDH_VALUES: dict[str, int] = {
    "wildtype": 0,
    "wild-type": 0,
    "wild type": 0,
    "mutated (nos)": 1,
    "mutated": 1,
    "mutant": 1,
    **dict.fromkeys([f"idh1 p.r132{aa}" for aa in "hcgsl"], 1),
    **dict.fromkeys([f"idh2 p.r172{aa}" for aa in "kmwsg"], 1),
}
#: 1p/19q cell (lower-cased) → 1 codeleted / 0 intact. "Relative co-deletion" (1p and 19q lost relative to the
#: tumour's ploidy) is counted as codeleted.
CODEL_VALUES: dict[str, int] = {
    "co-deletion": 1,
    "codeletion": 1,
    "codeleted": 1,
    "relative co-deletion": 1,
    "intact": 0,
    "not codeleted": 0,
    "no co-deletion": 0,
}
_FOLDER = re.compile(r"^(?P<id>UCSF-PDGM-(?P<number>\d+))(_nifti)?$", re.IGNORECASE)
_CSV_ID = re.compile(r"^UCSF-PDGM-(?P<number>\d+)$", re.IGNORECASE)


def _find_metadata(source: Path) -> Path:
    tables = sorted(p for p in source.glob("*.csv") if "pdgm" in p.name.lower() or "metadata" in p.name.lower())
    if len(tables) != 1:
        found = ", ".join(p.name for p in tables) or "none"
        raise InputError(f"{source}: expected one UCSF-PDGM metadata CSV (found: {found}); give it with --metadata")
    return tables[0]


def _image(folder: Path, case_id: str, tag: str) -> Path | None:
    for name in (f"{case_id}_{tag}", f"{case_id}_{tag}_bias"):
        for ext in (".nii.gz", ".nii"):
            if (folder / f"{name}{ext}").is_file():
                return folder / f"{name}{ext}"
    return None


def read_metadata(path: Path, unknown: UnknownValues) -> dict[int, MarkerRecord]:
    """Marker records keyed by case number (``UCSF-PDGM-004`` → 4); unknown cells go to ``unknown``.

    Raises:
        InputError: Missing columns, malformed or duplicate ids.
    """
    header, rows = read_table(path)
    id_col = column(path, header, ["id"])
    idh_col = column(path, header, ["idh", "idh status"])
    codel_col = column(path, header, ["1p/19q", "1p19q", "1p/19q status"])
    age_col = column(path, header, ["age at mri", "age"], required=False)
    sex_col = column(path, header, ["sex", "gender"], required=False)
    records: dict[int, MarkerRecord] = {}
    for line, row in rows:
        match = _CSV_ID.match(row.get(id_col, ""))
        if not match:
            raise InputError(f"{path}: row {line}: unexpected ID {row.get(id_col, '')!r} (expected UCSF-PDGM-<number>)")
        number = int(match["number"])
        if number in records:
            raise InputError(f"{path}: row {line}: duplicate ID {row[id_col]!r}")
        where = f"row {line} ({row[id_col]})"
        records[number] = MarkerRecord(
            row[id_col],
            idh=map_value(row.get(idh_col), IDH_VALUES, unknown, path, where, "IDH"),
            codel_1p19q=map_value(row.get(codel_col), CODEL_VALUES, unknown, path, where, "1p/19q"),
            tert=None,
            age=parse_age(row.get(age_col)) if age_col else None,
            sex=parse_sex(row.get(sex_col)) if sex_col else None,
            site=SITE,
        )
    return records


def import_ucsf_pdgm(source: Path | str, out: Path | str, *, metadata: Path | str | None = None,
                     unknown_as_missing: bool = False, overwrite: bool = False, **_: object) -> dict[str, object]:
    """Write the manifest, markers and converted segmentations of a UCSF-PDGM download.

    Args:
        source: The folder holding the ``UCSF-PDGM-xxxx_nifti`` folders (and the metadata CSV).
        out: Output folder.
        metadata: The metadata CSV, if it is not the one ``*.csv`` in ``source`` named after the dataset.
        unknown_as_missing: Leave unrecognised IDH / 1p/19q values blank instead of failing.
        overwrite: Convert segmentations again even when ``labels/`` has them.

    Raises:
        InputError: Missing folder, metadata or columns; unknown values (listed) unless ``unknown_as_missing``.
        LabelError: A segmentation holds values other than 0, 1, 2, 4.
    """
    source, out = Path(source), Path(out)
    if not source.is_dir():
        raise InputError(f"{source}: {'not a folder' if source.exists() else 'not found'}")
    table = Path(metadata) if metadata is not None else _find_metadata(source)
    unknown = UnknownValues()
    by_number = read_metadata(table, unknown)
    unknown.check(unknown_as_missing)
    rows: list[ManifestRow] = []
    records: list[MarkerRecord] = []
    matched = 0
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        match = _FOLDER.match(folder.name)
        if not match:
            continue
        case_id = match["id"]
        images = {seq: p for tag, seq in FILES.items() if (p := _image(folder, case_id, tag)) is not None}
        if not images:
            logger.warning("%s: no image files named %s_<T1|T1c|T2|FLAIR>.nii.gz; skipped", folder, case_id)
            continue
        rows.append(ManifestRow(case_id, images, _image(folder, case_id, SEG_TAG)))
        record = by_number.get(int(match["number"]))
        if record is None:
            logger.warning("%s: %s is not in the metadata; markers unknown", table, case_id)
            record = MarkerRecord(case_id, None, None, None, site=SITE)
        else:
            matched += 1
        record.case_id = case_id
        records.append(record)
    if not rows:
        raise InputError(f"{source}: no UCSF-PDGM-<number>_nifti case folders")
    if len(by_number) > matched:
        logger.info("%s: %d rows without images", table, len(by_number) - matched)
    for row in rows:
        if row.seg is not None:
            row.seg = convert_labels(row.seg, out, row.case_id, BRATS2021_TO_2024, overwrite=overwrite)
    return write_outputs(out, rows, records)
