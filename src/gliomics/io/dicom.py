"""DICOM in: find the series of a study, read their headers and convert a chosen series to a 3D image.

A study folder holds several series (any depth of sub-folders). :func:`scan_series` groups the files by
SeriesInstanceUID, sorts each series along its slice normal, checks that it forms one regular volume, and keeps the
header attributes that tell what a series is (:class:`SeriesHeader`); :mod:`gliomics.io.dicom_sequences` weighs them
to choose one series per sequence. A file that claims to be DICOM (the ``DICM`` marker) but cannot be parsed is an
error that names it; other files (a DICOMDIR's notes, thumbnails) are skipped.

``dicom_sources.json``, written next to the NIfTI files by the importer, remembers where each sequence came from
(series UID, files) and why it was chosen, so that ``gliomics predict --dicom-seg`` can reference the source series.
It holds no patient attributes (name, ID, birth date, …): only UIDs, series descriptions and numbers, acquisition
parameters and times, the geometry and the file paths.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gliomics.errors import ImageError, InputError

logger = logging.getLogger(__name__)

SOURCES_JSON = "dicom_sources.json"
#: Files never read as DICOM.
_SKIP_SUFFIXES = (".json", ".nii", ".gz", ".csv", ".txt", ".xml", ".jpg", ".png", ".pdf", ".zip")
_MIN_SLICES = 3
#: Standard attributes that record a contrast injection (any non-empty value but "none"/"no" counts).
CONTRAST_ATTRIBUTES: tuple[str, ...] = ("ContrastBolusAgent", "ContrastBolusRoute", "ContrastBolusVolume",
                                        "ContrastBolusStartTime", "ContrastBolusTotalDose",
                                        "ContrastBolusIngredient", "ContrastBolusIngredientConcentration")
#: Names of gadolinium agents (generic and brand), searched in private text elements.
CONTRAST_AGENTS: tuple[str, ...] = (
    "gadolin", "gadobutrol", "gadoterate", "gadoteridol", "gadopentetate", "gadobenate", "gadodiamide",
    "gadoxetate", "gadopiclenol", "gd-dtpa", "gd-dota", "gd-bt-do3a", "gadovist", "gadavist", "dotarem", "clariscan",
    "magnevist", "multihance", "prohance", "omniscan", "elucirem", "vueway", "primovist", "eovist", "contrast agent",
)
_NO_VALUE = frozenset({"", "none", "no", "n/a", "na", "0", "0.0"})


def _number(header, name: str) -> float | None:
    value = getattr(header, name, None)
    if isinstance(value, (list, tuple)) or (hasattr(value, "__len__") and not isinstance(value, str)):
        value = value[0] if len(value) else None
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _codes(header, name: str) -> list[str]:
    value = getattr(header, name, None)
    if value is None or value == "":
        return []
    items = [value] if isinstance(value, str) else list(value)
    return [str(v).strip().upper() for v in items if str(v).strip()]


def _seconds(time_text: str) -> float | None:
    """HHMMSS.frac (DICOM TM) as seconds after midnight."""
    text = time_text.strip().replace(":", "")
    try:
        hours, minutes = int(text[0:2]), int(text[2:4] or 0)
        return hours * 3600 + minutes * 60 + float(text[4:] or 0)
    except (ValueError, IndexError):
        return None


def acquisition_time(header) -> tuple[str, float] | None:
    """When an instance was acquired: ``("YYYYMMDD HHMMSS", sortable seconds)``, from the acquisition, series or
    content date and time (the first present), or None."""
    for date_name, time_name in (("AcquisitionDate", "AcquisitionTime"), ("SeriesDate", "SeriesTime"),
                                 ("ContentDate", "ContentTime")):
        time_text = str(getattr(header, time_name, "") or "")
        seconds = _seconds(time_text) if time_text else None
        if seconds is None:
            continue
        date = str(getattr(header, date_name, "") or getattr(header, "StudyDate", "") or "")
        days = int(date) if date.isdigit() else 0
        return f"{date} {time_text.split('.')[0]}".strip(), days * 86400.0 + seconds
    return None


#: Private b-value elements: Philips (2001,1003), Siemens (0019,100C).
_PRIVATE_B_VALUES: tuple[tuple[int, int], ...] = ((0x2001, 0x1003), (0x0019, 0x100C))


def _b_value(header) -> float | None:
    """DiffusionBValue, or a vendor's private b-value, where present."""
    value = _number(header, "DiffusionBValue")
    for tag in _PRIVATE_B_VALUES:
        if value is None and tag in header:
            try:
                value = float(header[tag].value)
            except (TypeError, ValueError):
                value = None
    return value


def _private_contrast(header) -> str | None:
    """The first private text element that names a contrast agent, as ``"(gggg,eeee): value"``, or None."""
    for element in header.iterall():
        if element.tag.is_private and element.VR in ("LO", "SH", "ST", "LT", "UT", "CS"):
            text = str(element.value).lower()
            if any(agent in text for agent in CONTRAST_AGENTS):
                return f"{element.tag}: {str(element.value)[:64]}"
    return None


@dataclass
class SeriesHeader:
    """What a series' headers say about its contrast (from its first instance; times from all instances).

    Attributes:
        protocol: ProtocolName.
        sequence_name: SequenceName (Siemens ``*tir2d1_16``, ``*tfl3d1``, …).
        tr, te, ti: RepetitionTime, EchoTime, InversionTime (ms).
        flip: FlipAngle (degrees).
        scanning_sequence, sequence_variant, scan_options, image_type: the coded values, upper case.
        acquisition_type: MRAcquisitionType (2D or 3D).
        b_value: DiffusionBValue where present.
        contrast: The standard contrast attributes present, name → value.
        private_contrast: A private element naming a contrast agent.
        acquired, acquired_s: Date and time of the earliest instance, and the same as sortable seconds.
        manufacturer: Manufacturer.
    """

    protocol: str = ""
    sequence_name: str = ""
    tr: float | None = None
    te: float | None = None
    ti: float | None = None
    flip: float | None = None
    scanning_sequence: list[str] = field(default_factory=list)
    sequence_variant: list[str] = field(default_factory=list)
    scan_options: list[str] = field(default_factory=list)
    image_type: list[str] = field(default_factory=list)
    acquisition_type: str = ""
    b_value: float | None = None
    contrast: dict[str, str] = field(default_factory=dict)
    private_contrast: str | None = None
    acquired: str | None = None
    acquired_s: float | None = None
    manufacturer: str = ""

    @classmethod
    def read(cls, headers: list) -> SeriesHeader:
        """The attributes of a series from its instances' headers."""
        first = headers[0]
        contrast = {name: str(getattr(first, name)) for name in CONTRAST_ATTRIBUTES
                    if str(getattr(first, name, "") or "").strip().lower() not in _NO_VALUE}
        times = [t for t in (acquisition_time(h) for h in headers) if t is not None]
        earliest = min(times, key=lambda t: t[1]) if times else None
        return cls(
            protocol=str(getattr(first, "ProtocolName", "") or "").strip(),
            sequence_name=str(getattr(first, "SequenceName", "") or "").strip(),
            tr=_number(first, "RepetitionTime"), te=_number(first, "EchoTime"), ti=_number(first, "InversionTime"),
            flip=_number(first, "FlipAngle"), scanning_sequence=_codes(first, "ScanningSequence"),
            sequence_variant=_codes(first, "SequenceVariant"), scan_options=_codes(first, "ScanOptions"),
            image_type=_codes(first, "ImageType"), acquisition_type=str(getattr(first, "MRAcquisitionType", "") or ""),
            b_value=_b_value(first), contrast=contrast, private_contrast=_private_contrast(first),
            acquired=earliest[0] if earliest else None, acquired_s=earliest[1] if earliest else None,
            manufacturer=str(getattr(first, "Manufacturer", "") or "").strip())

    def summary(self) -> dict[str, Any]:
        """The attributes for ``dicom_sources.json`` (no patient data)."""
        return {"protocol_name": self.protocol, "sequence_name": self.sequence_name, "tr_ms": self.tr,
                "te_ms": self.te, "ti_ms": self.ti, "flip_deg": self.flip,
                "scanning_sequence": self.scanning_sequence, "sequence_variant": self.sequence_variant,
                "scan_options": self.scan_options, "image_type": self.image_type,
                "acquisition_type": self.acquisition_type, "contrast_attributes": self.contrast,
                "private_contrast": self.private_contrast, "acquired": self.acquired,
                "manufacturer": self.manufacturer}


@dataclass
class Series:
    """One DICOM series: its instances sorted along the slice normal, and what its headers say."""

    series_uid: str
    study_uid: str
    description: str
    number: int | None
    files: list[Path] = field(default_factory=list)
    problem: str | None = None
    rows: int = 0
    columns: int = 0
    slices: int = 0
    header: SeriesHeader = field(default_factory=SeriesHeader)
    spacing: tuple[float, float, float] = (0.0, 0.0, 0.0)
    normal: tuple[float, float, float] = (0.0, 0.0, 1.0)

    @property
    def voxels(self) -> int:
        """Rows × columns × slices."""
        return self.rows * self.columns * self.slices

    @property
    def voxel_volume(self) -> float:
        """Volume of one voxel in mm³ (row spacing × column spacing × slice step); 0 where unknown."""
        return float(np.prod(self.spacing))

    @property
    def axial(self) -> bool:
        """The slices are axial (the slice normal is closest to the head-foot axis)."""
        return int(np.argmax(np.abs(self.normal))) == 2

    @property
    def label(self) -> str:
        """``series 1201 'T1W_SE-TRA_FS'`` for messages."""
        return f"series {self.number if self.number is not None else '?'} {self.description!r}"

    def summary(self) -> dict[str, Any]:
        """UID, description and number, for messages and ``dicom_sources.json``."""
        return {"series_instance_uid": self.series_uid, "series_description": self.description,
                "series_number": self.number, "instances": len(self.files), "problem": self.problem}


def _claims_dicom(path: Path) -> bool:
    """The file carries the DICOM Part 10 marker ``DICM`` after its 128-byte preamble."""
    try:
        with path.open("rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def _header(path: Path):
    """The file's header without pixels; None for a file that is not DICOM.

    Raises:
        InputError: The file carries the DICOM marker but cannot be parsed (truncated or corrupt).
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        header = pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, TypeError, AttributeError, EOFError, KeyError) as exc:
        if _claims_dicom(path):
            raise InputError(f"{path}: corrupt DICOM file ({type(exc).__name__}: {str(exc)[:120]})") from None
        return None
    damage = _damage(header)
    if damage and _claims_dicom(path):
        raise InputError(f"{path}: corrupt DICOM file ({damage})")
    return header


def _damage(header) -> str | None:
    """What shows that a file was cut short or holds garbage after its ``DICM`` marker (pydicom reads both without
    an error), or None."""
    if len(header.file_meta) == 0:
        return "no file meta information after the DICM marker"
    if len(header) == 0:
        return "no data set after the file meta information (truncated?)"
    last = header.get_item(max(header.keys()))  # the raw element as read, not converted
    length, value = getattr(last, "length", None), getattr(last, "value", None)
    if isinstance(value, bytes) and isinstance(length, int) and length != 0xFFFFFFFF and len(value) < length:
        return f"truncated in element {last.tag}: {len(value)} of {length} bytes"
    return None


def _sort_instances(series: Series, headers: list) -> None:
    """Sort the instances along the slice normal and check that they form one regular volume."""
    series.slices = len(headers)
    if int(getattr(headers[0], "NumberOfFrames", 1) or 1) > 1:
        series.problem = "multi-frame (enhanced) images are not supported; export classic single-frame images"
        return
    try:
        orientation = np.array([[float(v) for v in h.ImageOrientationPatient] for h in headers])
        positions = np.array([[float(v) for v in h.ImagePositionPatient] for h in headers])
        shapes = {(int(h.Rows), int(h.Columns)) for h in headers}
    except (AttributeError, TypeError, ValueError):
        series.problem = "instances without image position/orientation"
        return
    if len(shapes) > 1 or np.abs(orientation - orientation[0]).max() > 1e-3:
        series.problem = "instances of different orientation or size (e.g. a localizer)"
        return
    series.rows, series.columns = shapes.pop()
    normal = np.cross(orientation[0][:3], orientation[0][3:])
    series.normal = tuple(float(v) for v in normal)
    depth = positions @ normal
    order = np.argsort(depth, kind="stable")
    series.files = [series.files[i] for i in order]
    if len(headers) < _MIN_SLICES:
        series.problem = f"only {len(headers)} slice(s)"
        return
    gaps = np.diff(depth[order])
    pixel = _number(headers[0], "PixelSpacing")
    column = float(headers[0].PixelSpacing[1]) if pixel is not None and len(headers[0].PixelSpacing) > 1 else pixel
    series.spacing = (pixel or 0.0, column or 0.0, float(np.median(gaps)))
    if np.any(gaps < 1e-3):
        series.problem = "several images at one slice position (multi-echo or multi-phase series)"
    elif np.abs(gaps - np.median(gaps)).max() > 0.1 * np.median(gaps):
        series.problem = "irregular slice spacing (missing slices?)"


def scan_series(folder: Path | str) -> list[Series]:
    """Find every DICOM series under ``folder`` (all depths), sorted by study, series number and description.

    Raises:
        InputError: The folder does not exist or holds no DICOM image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: {'not a folder' if folder.exists() else 'not found'}")
    found: dict[str, tuple[Series, list]] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        if path.name.lower().endswith(_SKIP_SUFFIXES):
            continue
        header = _header(path)
        if header is None or "SeriesInstanceUID" not in header or "Rows" not in header:
            continue
        uid = str(header.SeriesInstanceUID)
        if uid not in found:
            description = str(getattr(header, "SeriesDescription", "") or getattr(header, "ProtocolName", "") or "")
            number = getattr(header, "SeriesNumber", None)
            found[uid] = (Series(uid, str(getattr(header, "StudyInstanceUID", "")), description.strip(),
                                 int(number) if number not in (None, "") else None), [])
        found[uid][0].files.append(path)
        found[uid][1].append(header)
    if not found:
        raise InputError(f"{folder}: no DICOM images found")
    for series, headers in found.values():
        series.header = SeriesHeader.read(headers)
        _sort_instances(series, headers)
    return sorted((s for s, _ in found.values()),
                  key=lambda s: (s.study_uid, s.number if s.number is not None else 1 << 30, s.description))


def read_series(series: Series):
    """Read a series as a SimpleITK image (float32), in the scanner's patient coordinates.

    Raises:
        ImageError: GDCM cannot read the files.
    """
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(p) for p in series.files])
    reader.SetOutputPixelType(sitk.sitkFloat32)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        lines = str(exc).strip().splitlines()
        culprit = _unreadable_file(series.files)
        where = f"{culprit}: cannot read this file of" if culprit else f"{series.files[0].parent}: cannot read"
        raise ImageError(f"{where} {series.label} ({lines[-1][:200] if lines else type(exc).__name__})") from exc
    if image.GetDimension() != 3:
        raise ImageError(f"{series.files[0].parent}: {series.label} is not a 3D volume")
    return image


def _unreadable_file(files: list[Path]) -> Path | None:
    """The first file of a series that cannot be read on its own (the one that broke the series), or None."""
    import SimpleITK as sitk

    for path in files:
        try:
            sitk.ReadImage(str(path))
        except RuntimeError:
            return path
    return None
