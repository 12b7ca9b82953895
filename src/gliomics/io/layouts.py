"""Find the cases of a cohort (BraTS folders, nnU-Net raw datasets, MONAI datalists, manifest CSVs).

Every problem with the input raises an :class:`~gliomics.errors.InputError` whose message starts with the offending
path (the folder, file, JSON or CSV row), before any image is read.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from gliomics.constants import BRATS2021_TO_2024, SEQUENCES, canonical_sequence, normalise_name
from gliomics.errors import CaseOptionError, InputError
from gliomics.io.cases import Case

logger = logging.getLogger(__name__)

LAYOUTS: tuple[str, ...] = ("auto", "brats", "nnunet", "datalist", "manifest")

#: BraTS 2021 file tags; a case named this way has BraTS 2021 labels (1, 2, 4), converted on load.
_BRATS2021_TAGS = frozenset({"t1", "t1ce", "t2", "flair"})
#: nnU-Net dataset.json label names mapped to BraTS 2024 values.
_LABEL_ALIASES: dict[str, int] = {
    "background": 0,
    **dict.fromkeys(("netc", "ncr", "necrosis", "necrotic", "necroticcore", "nonenhancing", "nonenhancingtumor"), 1),
    **dict.fromkeys(("snfh", "ed", "edema", "oedema", "peritumoraledema"), 2),
    **dict.fromkeys(("et", "enhancing", "enhancingtumor"), 3),
    **dict.fromkeys(("rc", "resectioncavity", "cavity"), 4),
}
#: File tag of a whole-tumour mask in a BraTS-layout case folder (``<case>-wt.nii.gz``).
WT_MASK_TAG = "wt"
_NII = re.compile(r"\.nii(\.gz)?$", re.IGNORECASE)
_BRATS_FILE = re.compile(r"^(?P<prefix>.*)[-_](?P<tag>[A-Za-z0-9]+)\.nii(\.gz)?$", re.IGNORECASE)
_NNUNET_FILE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})\.nii(\.gz)?$")


def _check_case_id(case_id: Any, where: str) -> str:
    text = str(case_id).strip() if case_id is not None else ""
    if not text or text in (".", "..") or "/" in text or "\\" in text:
        raise InputError(f"{where}: invalid case id {case_id!r} (it names output files: no slashes, not empty)")
    return text


def _case_id_from_file(name: str) -> str:
    stem = _NII.sub("", name)
    match = re.match(r"^(.+)[-_]([A-Za-z0-9]+)$", stem)
    if match and (canonical_sequence(match[2]) or re.fullmatch(r"\d{4}", match[2])):
        return match[1]
    return stem


def _finish(found: list[tuple[Case, str]], source: Path, allow_missing: bool, require_seg: bool) -> list[Case]:
    if not found:
        raise InputError(f"{source}: no cases found")
    seen: dict[str, str] = {}
    for case, where in found:
        if case.case_id in seen:
            raise InputError(f"{where}: duplicate case id {case.case_id!r} (also in {seen[case.case_id]})")
        seen[case.case_id] = where
        if not case.images:
            raise InputError(f"{where}: case {case.case_id!r} has no sequence files (expected {', '.join(SEQUENCES)})")
        if case.missing and not allow_missing:
            raise InputError(
                f"{where}: case {case.case_id!r} is missing {', '.join(case.missing)} "
                "(allow missing sequences to accept incomplete cases)"
            )
        if require_seg and case.seg is None:
            raise InputError(f"{where}: case {case.case_id!r} has no segmentation")
    return sorted((case for case, _ in found), key=lambda c: c.case_id)


def _brats_case(folder: Path) -> tuple[Case, str] | None:
    images: dict[str, Path] = {}
    seg: Path | None = None
    wt_mask: Path | None = None
    legacy = False
    for path in sorted(p for p in folder.iterdir() if not p.name.startswith(".")):
        match = _BRATS_FILE.match(path.name)
        if not match:
            continue
        if not path.is_file():
            what = ("a folder" if path.is_dir() else f"a symbolic link to {os.readlink(path)!r} that leads to no file"
                    if path.is_symlink() else "not a file")
            raise InputError(f"{path}: named like an image but is {what}")
        tag = match["tag"].lower()
        key = tag if tag in ("seg", WT_MASK_TAG) else canonical_sequence(tag)
        if key is None:
            continue
        other = {"seg": seg, WT_MASK_TAG: wt_mask}.get(key, images.get(key))
        if other is not None:
            raise InputError(f"{path}: more than one {key} file in the case folder (also {other.name})")
        if key == "seg":
            seg = path
        elif key == WT_MASK_TAG:
            wt_mask = path
        else:
            images[key] = path
            legacy |= tag in _BRATS2021_TAGS
    if not images and seg is None and wt_mask is None:
        return None
    if legacy:
        logger.info("%s: BraTS 2021 file names; labels 1, 2, 4 are converted to BraTS 2024", folder)
    label_map = dict(BRATS2021_TO_2024) if legacy else None
    return Case(_check_case_id(folder.name, str(folder)), images, seg, label_map, wt_mask), str(folder)


def _check_own_files(found: list[tuple[Case, str]]) -> None:
    """A case folder must not hold a file named after another case of the cohort (a copy gone wrong would otherwise
    be read silently as this case's scan)."""
    ids = {case.case_id for case, _ in found}
    for case, _ in found:
        for path in (*case.images.values(), case.seg, case.wt_mask):
            match = _BRATS_FILE.match(path.name) if path is not None else None
            if match and match["prefix"] != case.case_id and match["prefix"] in ids:
                raise InputError(f"{path}: a file of case {match['prefix']!r} in the folder of case {case.case_id!r}")


def _discover_brats(source: Path) -> list[tuple[Case, str]]:
    folders = sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))
    found = [case for case in map(_brats_case, folders) if case is not None]
    if found:
        _check_own_files(found)
        return found
    single = _brats_case(source)  # the folder is itself one case
    if single is None and folders:
        shown = ", ".join(str(f) for f in folders[:5]) + (f", … ({len(folders)} folders)" if len(folders) > 5 else "")
        raise InputError(f"{source}: no cases found: its folders hold no image files named <case>-<sequence>.nii.gz "
                         f"({shown})")
    return [single] if single is not None else []


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot read JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object at the top level")
    return data


def _nnunet_channels(dataset_json: Path | None) -> tuple[dict[int, str], dict[int, int] | None]:
    """Channel index → sequence, and a label conversion, from an nnU-Net dataset.json (defaults without one)."""
    default = dict(enumerate(SEQUENCES))
    if dataset_json is None:
        return default, None
    data = _read_json(dataset_json)
    names = data.get("channel_names") or data.get("modality") or {}
    mapped = {int(k) if str(k).isdigit() else -1: canonical_sequence(v) for k, v in names.items()}
    if mapped and -1 not in mapped and None not in mapped.values() and len(set(mapped.values())) == len(mapped):
        channels: dict[int, str] = mapped  # type: ignore[assignment]
    elif not names or len(names) == len(SEQUENCES):
        logger.warning("%s: channel_names %s not recognised; assuming %s order", dataset_json, names, SEQUENCES)
        channels = default
    else:
        raise InputError(f"{dataset_json}: cannot map channel_names {names} to the sequences {list(SEQUENCES)}")
    labels = data.get("labels") or {}
    # nnU-Net v2 writes {name: value}, v1 {"value": name}; region-based entries (lists) cannot be mapped.
    pairs = [(v, k) for k, v in labels.items()] if all(isinstance(v, int) for v in labels.values()) else []
    if not pairs and all(str(k).isdigit() for k in labels):
        pairs = [(int(k), v) for k, v in labels.items()]
    norm = {value: _LABEL_ALIASES.get(normalise_name(name)) for value, name in pairs}
    label_map = None
    if norm and None not in norm.values():
        label_map = None if all(k == v for k, v in norm.items()) else norm
    elif labels:
        logger.warning("%s: labels %s not recognised; assuming BraTS 2024 values", dataset_json, labels)
    return channels, label_map  # type: ignore[return-value]


def _discover_nnunet(source: Path) -> list[tuple[Case, str]]:
    if (source / "dataset.json").is_file():
        dataset_json: Path | None = source / "dataset.json"
        images_dir, labels_dir = source / "imagesTr", source / "labelsTr"
        if not images_dir.is_dir():
            raise InputError(f"{images_dir}: not found (expected next to {dataset_json})")
    else:  # a bare images folder (imagesTs-style); labels and dataset.json are looked for next to it
        images_dir = source
        dataset_json = source.parent / "dataset.json" if (source.parent / "dataset.json").is_file() else None
        labels_dir = source.parent / ("labels" + source.name[6:]) if source.name.startswith("images") else None
    channels, label_map = _nnunet_channels(dataset_json)
    grouped: dict[str, dict[str, Path]] = {}
    for path in sorted(images_dir.iterdir()):
        match = _NNUNET_FILE.match(path.name)
        if not match or not path.is_file():
            continue
        channel = int(match["channel"])
        if channel not in channels:
            raise InputError(f"{path}: channel {channel} is not one of {sorted(channels)}")
        grouped.setdefault(match["case"], {})[channels[channel]] = path
    found = []
    for case_id, images in grouped.items():
        segs = [labels_dir / f"{case_id}{ext}" for ext in (".nii.gz", ".nii")] if labels_dir is not None else []
        seg = next((p for p in segs if p.is_file()), None)
        case = Case(_check_case_id(case_id, str(images_dir)), images, seg, label_map)
        found.append((case, f"{images_dir}/{case_id}"))
    return found


def _referenced(raw: Any, root: Path, where: str, *, confine: bool = False) -> Path | None:
    if raw is None or not str(raw).strip():
        return None
    text = str(raw).strip()
    path = Path(text)
    if not path.is_absolute():
        path = Path(os.path.normpath(root / path))
        if confine and os.path.commonpath([path, root]) != str(root):
            raise InputError(f"{where}: path {text!r} points outside {root} (relative paths stay below it; give an "
                             "absolute path to read a file elsewhere)")
    if not path.is_file():
        raise InputError(f"{path}: not found (referenced by {where})")
    return path


def _discover_datalist(source: Path) -> list[tuple[Case, str]]:
    data = _read_json(source)
    root = Path(data["dataroot"]) if data.get("dataroot") else Path()
    root = Path(os.path.normpath(root if root.is_absolute() else source.absolute().parent / root))
    sections = [k for k in ("training", "validation", "testing") if k in data]
    if not sections:
        raise InputError(f"{source}: no 'training', 'validation' or 'testing' list")
    found = []
    for section in sections:
        for i, entry in enumerate(data[section]):
            where = f"{source} {section}[{i}]"
            raw = entry.get("image") if isinstance(entry, dict) else None
            if isinstance(raw, list) and len(raw) == len(SEQUENCES):
                named = dict(zip(SEQUENCES, raw, strict=True))
            elif isinstance(raw, dict):
                named = {}
                for key, value in raw.items():
                    seq = canonical_sequence(key)
                    if seq is None:
                        raise InputError(f"{where}: unknown sequence {key!r} in 'image'")
                    named[seq] = value
            else:
                expected = f"a list of {len(SEQUENCES)} paths or a mapping {{sequence: path}}"
                raise InputError(f"{where}: 'image' must be {expected}")
            images = {s: p for s, v in named.items() if (p := _referenced(v, root, where, confine=True)) is not None}
            seg = _referenced(entry.get("label"), root, where, confine=True)
            wt_mask = _referenced(entry.get("wt_mask"), root, where, confine=True)
            first = next(iter(images.values()), None)
            case_id = entry.get("case_id") or (_case_id_from_file(first.name) if first else None)
            found.append((Case(_check_case_id(case_id, where), images, seg, wt_mask=wt_mask), where))
    return found


def _discover_manifest(source: Path) -> list[tuple[Case, str]]:
    try:
        with source.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = [c.strip().lower() for c in reader.fieldnames or []]
            missing = [c for c in ("case_id", *SEQUENCES) if c not in columns]
            if missing:
                raise InputError(
                    f"{source}: missing column(s) {', '.join(missing)} "
                    f"(expected case_id,{','.join(SEQUENCES)}[,seg][,wt_mask])"
                )
            reader.fieldnames = columns
            rows = [(reader.line_num, row) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{source}: cannot read CSV ({exc})") from exc
    root = Path(os.path.normpath(source.absolute().parent))
    found = []
    for line, row in rows:
        if not any((v or "").strip() for k, v in row.items() if isinstance(v, str)):
            continue
        where = f"{source}: row {line}"
        case_id = _check_case_id(row.get("case_id"), where)
        where = f"{where} (case {case_id})"
        images = {s: p for s in SEQUENCES if (p := _referenced(row.get(s), root, where, confine=True))}
        found.append((Case(case_id, images, _referenced(row.get("seg"), root, where, confine=True),
                            wt_mask=_referenced(row.get("wt_mask"), root, where, confine=True)), where))
    return found


def discover_cases(
    source: Path | str, *, layout: str = "auto", allow_missing: bool = False, require_seg: bool = False
) -> list[Case]:
    """Find the cases of a cohort.

    Args:
        source: A BraTS folder (of case folders, or one case folder), an nnU-Net raw dataset folder (or a folder
            of ``CASE_000X.nii.gz`` files), a MONAI datalist ``.json`` or a manifest ``.csv``
            (``case_id,t1n,t1c,t2w,t2f[,seg][,wt_mask]``, paths relative to the CSV's folder). A whole-tumour mask
            is a ``<case>-wt.nii.gz`` file in a BraTS case folder, a ``wt_mask`` column or a datalist's ``wt_mask``.
        layout: ``"auto"``, ``"brats"``, ``"nnunet"``, ``"datalist"`` or ``"manifest"``.
        allow_missing: Accept cases with some (not all) sequences missing.
        require_seg: Every case must have a segmentation.

    Returns:
        The cases, sorted by case id.

    Raises:
        InputError: Missing source, no cases, missing files or columns, duplicate case ids.
        CaseOptionError: Unknown layout.
    """
    source = Path(source)
    if layout not in LAYOUTS:
        raise CaseOptionError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    if not source.exists():
        raise InputError(f"{source}: not found")
    if layout == "auto":
        if source.is_file():
            by_suffix = {".json": "datalist", ".csv": "manifest"}
            if source.suffix.lower() not in by_suffix:
                raise InputError(f"{source}: expected a folder, a datalist .json or a manifest .csv")
            layout = by_suffix[source.suffix.lower()]
        elif (source / "dataset.json").is_file() or any(_NNUNET_FILE.match(p.name) for p in source.glob("*_0000.nii*")):
            layout = "nnunet"
        else:
            layout = "brats"
        logger.debug("%s: layout %s", source, layout)
    wants_file = layout in ("datalist", "manifest")
    if wants_file != source.is_file():
        raise InputError(f"{source}: layout {layout!r} expects a {'file' if wants_file else 'folder'}")
    readers = {"brats": _discover_brats, "nnunet": _discover_nnunet, "datalist": _discover_datalist}
    found = {**readers, "manifest": _discover_manifest}[layout](source)
    cases = _finish(found, source, allow_missing, require_seg)
    logger.info("%s: %d cases (%s layout)", source, len(cases), layout)
    return cases
