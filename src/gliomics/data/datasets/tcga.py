"""TCGA adapter: the pan-glioma molecular table (Ceccarelli et al. 2016, https://doi.org/10.1016/j.cell.2015.12.028).

The table (CSV or tab-separated, as exported by R, hence the column names) has one row per patient: ``Case``
(``TCGA-02-0001``), ``IDH.status`` (``Mutant``/``WT``), ``X1p.19q.codeletion`` (``codel``/``non-codel``) and
``TERT.promoter.status`` (``Mutant``/``WT``); ``NA`` or an empty cell is unknown. Age and gender are read when
present. The site is the tissue-source-site code of the barcode (``TCGA-02-…`` → ``02``), for site-wise splits.

Images are optional (``images=``): a folder in any layout of :func:`~gliomics.io.discover_cases` whose case ids
contain the patient barcode (``TCGA-02-0001``, or with underscores, ``TCGA_02_0001``). The matched cases go into the
manifest and take the imaging case id in ``markers.csv``; BraTS 2021-style segmentations are converted.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

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
from gliomics.io.layouts import discover_cases
from gliomics.io.markers import MarkerRecord

logger = logging.getLogger(__name__)

MUTATION_VALUES: dict[str, int] = {"mutant": 1, "wt": 0}
CODEL_VALUES: dict[str, int] = {"codel": 1, "non-codel": 0}
_BARCODE = re.compile(r"TCGA[-_](?P<site>[A-Z0-9]{2})[-_](?P<patient>[A-Z0-9]{4})", re.IGNORECASE)


def _barcode(match: re.Match) -> str:
    return f"TCGA-{match['site']}-{match['patient']}".upper()


def read_table_records(path: Path, unknown: UnknownValues) -> dict[str, MarkerRecord]:
    """Marker records keyed by patient barcode (upper case); unknown cells go to ``unknown``.

    Raises:
        InputError: Missing columns, malformed or duplicate barcodes.
    """
    header, rows = read_table(path)
    case_col = column(path, header, ["case", "patient", "case_id"])
    idh_col = column(path, header, ["idh.status", "idh status", "idh"])
    codel_col = column(path, header, ["x1p.19q.codeletion", "1p/19q codeletion", "1p19q"])
    tert_col = column(path, header, ["tert.promoter.status", "tert promoter status", "tert"], required=False)
    age_col = column(path, header, ["age..years.at.diagnosis.", "age (years at diagnosis)", "age"], required=False)
    sex_col = column(path, header, ["gender", "sex"], required=False)
    records: dict[str, MarkerRecord] = {}
    for line, row in rows:
        match = _BARCODE.fullmatch(row.get(case_col, ""))
        if not match:
            raise InputError(f"{path}: row {line}: {row.get(case_col, '')!r} is not a TCGA patient barcode "
                             "(TCGA-XX-XXXX)")
        barcode = _barcode(match)
        if barcode in records:
            raise InputError(f"{path}: row {line}: duplicate case {barcode}")
        where = f"row {line} ({barcode})"
        records[barcode] = MarkerRecord(
            barcode,
            idh=map_value(row.get(idh_col), MUTATION_VALUES, unknown, path, where, "IDH.status"),
            codel_1p19q=map_value(row.get(codel_col), CODEL_VALUES, unknown, path, where, "X1p.19q.codeletion"),
            tert=map_value(row.get(tert_col), MUTATION_VALUES, unknown, path, where, "TERT.promoter.status")
            if tert_col else None,
            age=parse_age(row.get(age_col)) if age_col else None,
            sex=parse_sex(row.get(sex_col)) if sex_col else None,
            site=match["site"].upper(),
        )
    return records


def import_tcga(source: Path | str, out: Path | str, *, images: Path | str | None = None,
                unknown_as_missing: bool = False, **_: object) -> dict[str, object]:
    """Write ``markers.csv`` from the TCGA pan-glioma table, and a manifest of the matching image cases if given.

    Args:
        source: The table (CSV or TSV).
        out: Output folder.
        images: Image cases whose ids contain the patient barcodes (any layout), or None for markers only.
        unknown_as_missing: Leave unrecognised values blank instead of failing.

    Raises:
        InputError: Missing columns, bad barcodes, unknown values (listed) unless ``unknown_as_missing``, or image
            cases of which none matches the table.
    """
    source, out = Path(source), Path(out)
    unknown = UnknownValues()
    records = read_table_records(source, unknown)
    unknown.check(unknown_as_missing)
    rows: list[ManifestRow] = []
    if images is not None:
        for case in discover_cases(images, allow_missing=True):
            match = _BARCODE.search(case.case_id)
            record = records.get(_barcode(match)) if match else None
            if record is None:
                logger.warning("%s: case %s matches no patient of %s; left out", images, case.case_id, source)
                continue
            seg = case.seg
            if seg is not None and case.label_map is not None:
                seg = convert_labels(seg, out, case.case_id, case.label_map)
            rows.append(ManifestRow(case.case_id, dict(case.images), seg))
            record.case_id = case.case_id
        if not rows:
            raise InputError(f"{images}: no case id contains a patient barcode of {source}")
        logger.info("%s: %d of %d patients have images", source, len(rows), len(records))
    return write_outputs(out, rows, list(records.values()))
