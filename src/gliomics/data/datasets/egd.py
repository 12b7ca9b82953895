"""EGD adapter: the Erasmus Glioma Database (van der Voort et al. 2021, https://doi.org/10.1016/j.dib.2021.107191).

Layout: ``DIR/SUBJECTS/EGD-xxxx/{T1,T1GD,T2,FLAIR,MASK}.nii.gz`` and ``metadata.json`` (in ``DIR``, ``DIR/METADATA``
or given), a mapping from subject id to its fields (a list of objects with an ``ID`` field is read too). ``IDH`` and
``1p19q`` are 1 (altered), 0 (not) or -1 (unknown); any other value is an unknown value. EGD has no TERT status.

``MASK`` is a whole-tumour mask (tumour vs. not, no subregions), so it cannot stand in for a BraTS segmentation:
the manifest leaves ``seg`` empty and lists the mask in its ``wt_mask`` column. Training learns from it with the
whole-tumour loss (and from the markers); prediction ignores it; the 2D slice benchmark may use it as the VOI.
Site: ``EGD``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from gliomics.data.datasets.common import ManifestRow, UnknownValues, is_missing, parse_age, parse_sex, write_outputs
from gliomics.errors import InputError
from gliomics.io.cases import sequence_tags
from gliomics.io.markers import MarkerRecord

logger = logging.getLogger(__name__)

SITE = "EGD"
FILES: dict[str, str] = sequence_tags("T1", "T1GD", "T2", "FLAIR")
MASK = "MASK"
#: Metadata value → marker status; -1 is EGD's code for "not known".
STATUS_VALUES: dict[Any, int | None] = {1: 1, 0: 0, -1: None}
_KEYS = {"idh": ("idh",), "codel_1p19q": ("1p19q", "1p/19q", "1p19q_codeletion"), "age": ("age",),
         "sex": ("sex", "gender")}


def _find_metadata(source: Path) -> Path:
    for candidate in (source / "metadata.json", source / "METADATA" / "metadata.json"):
        if candidate.is_file():
            return candidate
    raise InputError(f"{source}: no metadata.json (looked in {source} and {source / 'METADATA'}); "
                     "give it with --metadata")


def _subjects(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot read JSON ({exc})") from exc
    if isinstance(data, list):
        entries = {}
        for i, item in enumerate(data):
            key = next((item[k] for k in ("ID", "id", "Subject", "subject") if isinstance(item, dict) and k in item),
                       None)
            if key is None:
                raise InputError(f"{path}: entry {i} has no ID field")
            entries[str(key)] = item
        return entries
    if isinstance(data, dict) and all(isinstance(v, dict) for v in data.values()):
        return {str(k): v for k, v in data.items()}
    raise InputError(f"{path}: expected an object of subjects (id -> fields) or a list of subjects")


def _field(fields: dict[str, Any], names: tuple[str, ...]) -> tuple[str | None, Any]:
    lowered = {str(k).lower(): k for k in fields}
    key = next((lowered[n] for n in names if n in lowered), None)
    return key, fields.get(key) if key is not None else None


def _status(value: Any, unknown: UnknownValues, path: Path, subject: str, name: str) -> int | None:
    if value is None or (isinstance(value, str) and is_missing(value)):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = None
    if number is not None and number.is_integer() and int(number) in STATUS_VALUES:
        return STATUS_VALUES[int(number)]
    unknown.add(path, f"subject {subject}", name, value)
    return None


def read_metadata(path: Path, unknown: UnknownValues) -> dict[str, MarkerRecord]:
    """Marker records keyed by subject id; values other than 1, 0, -1 go to ``unknown``."""
    records = {}
    for subject, fields in _subjects(path).items():
        values: dict[str, Any] = {}
        for marker in ("idh", "codel_1p19q"):
            key, value = _field(fields, _KEYS[marker])
            values[marker] = _status(value, unknown, path, subject, key or marker)
        age = _field(fields, _KEYS["age"])[1]
        sex = _field(fields, _KEYS["sex"])[1]
        records[subject] = MarkerRecord(subject, values["idh"], values["codel_1p19q"], None,
                                        age=parse_age(age), sex=parse_sex(sex), site=SITE)
    return records


def _file(folder: Path, tag: str) -> Path | None:
    return next((folder / f"{tag}{ext}" for ext in (".nii.gz", ".nii") if (folder / f"{tag}{ext}").is_file()), None)


def import_egd(source: Path | str, out: Path | str, *, metadata: Path | str | None = None,
               unknown_as_missing: bool = False, **_: object) -> dict[str, object]:
    """Write the manifest (with a ``wt_mask`` column) and the markers of an EGD download.

    Raises:
        InputError: Missing ``SUBJECTS`` folder or metadata; unknown values (listed) unless ``unknown_as_missing``.
    """
    source, out = Path(source), Path(out)
    subjects_dir = source / "SUBJECTS" if (source / "SUBJECTS").is_dir() else source
    if not subjects_dir.is_dir():
        raise InputError(f"{source}: {'not a folder' if source.exists() else 'not found'}")
    table = Path(metadata) if metadata is not None else _find_metadata(source)
    unknown = UnknownValues()
    by_subject = read_metadata(table, unknown)
    unknown.check(unknown_as_missing)
    rows, records = [], []
    for folder in sorted(p for p in subjects_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = {seq: p for tag, seq in FILES.items() if (p := _file(folder, tag)) is not None}
        if not images:
            continue
        mask = _file(folder, MASK)
        rows.append(ManifestRow(folder.name, images, None, {"wt_mask": mask} if mask is not None else {}))
        record = by_subject.get(folder.name)
        if record is None:
            logger.warning("%s: %s is not in the metadata; markers unknown", table, folder.name)
            record = MarkerRecord(folder.name, None, None, None, site=SITE)
        records.append(record)
    if not rows:
        raise InputError(f"{subjects_dir}: no subject folders with {', '.join(FILES)}.nii.gz")
    return write_outputs(out, rows, records)
