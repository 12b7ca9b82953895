"""Test helper: tiny synthetic DICOM MR studies written with pydicom (a few series of 8 slices of 16×16 or 32×32).

:func:`write_series` writes one series, with any header attributes (acquisition parameters, image type, contrast
attributes, private elements, times), in any orientation and spacing; :func:`write_study` writes a study of series
named by description only. :class:`SeriesSpec` and :func:`write_specs` describe a study series by series; the
vendor builders (:func:`ge_study`, :func:`siemens_study`, :func:`philips_study`, :func:`canon_study`,
:func:`flair_contrast_study`) write realistic protocol lists, with their distractors, in each vendor's naming habits.

:func:`head_volume` is a head (brain in a scalp, in air) of 32×32 pixels; with ``vessels=2.5`` a few vessel-like
spots are 2.5 times as bright as the brain (the same noise elsewhere for the same seed), which is what
:func:`gliomics.io.dicom_evidence.enhancement_index` sees as enhancement after contrast.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import MRImageStorage, generate_uid

PATIENT_NAME = "Testpatient^Jane"
PATIENT_ID = "PID-7731-XZ"
SHAPE = (8, 16, 16)  # slices, rows, columns
HEAD_SHAPE = (8, 32, 32)
PIXEL_SPACING = (1.5, 1.25)  # between rows, between columns (mm)
SLICE_STEP = 2.0
STUDY_DATE = "20240101"
#: ImageOrientationPatient (row direction, column direction) per orientation.
ORIENTATIONS: dict[str, tuple[int, ...]] = {
    "axial": (1, 0, 0, 0, 1, 0), "sagittal": (0, 1, 0, 0, 0, -1), "coronal": (1, 0, 0, 0, 0, -1)}
#: A private element: (group, private creator, element offset 0x00–0xFF, VR, value).
PrivateElement = tuple[int, str, int, str, object]
BRAIN = 500.0


def phantom_volume(seed: int = 0, shape: tuple[int, int, int] = SHAPE) -> np.ndarray:
    """A bright ball in a dimmer box, with noise: int16 (slices, rows, columns)."""
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    ball = (x**2 + y**2 + z**2) < 0.4
    volume = 200 + 300 * ball + np.random.default_rng(seed).normal(0, 10, shape)
    return np.clip(volume, 0, 4000).astype(np.int16)


def vessel_mask(shape: tuple[int, int, int] = HEAD_SHAPE) -> np.ndarray:
    """Eight thin vessels running through every slice, inside the brain of :func:`head_volume` (~1.5 % of it)."""
    mask = np.zeros(shape, bool)
    rows, columns = shape[1:]
    for fy, fx in ((0.35, 0.35), (0.35, 0.65), (0.65, 0.35), (0.65, 0.65), (0.5, 0.3), (0.5, 0.7), (0.3, 0.5),
                   (0.7, 0.5)):
        mask[:, round(fy * (rows - 1)), round(fx * (columns - 1))] = True
    return mask


def head_volume(seed: int = 0, shape: tuple[int, int, int] = HEAD_SHAPE, *, vessels: float | None = None) -> np.ndarray:
    """A head: brain (~500) in a scalp (~250) in air (~5), with noise from ``seed``: int16 (slices, rows, columns).

    Args:
        vessels: The vessels of :func:`vessel_mask` at this multiple of the brain's value (2.5: enhancing after
            contrast; 0.4: dimmer than the brain); None leaves them as brain. The rest of the volume is the same
            for one seed whatever ``vessels`` is.
    """
    _, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    radius = np.sqrt(x**2 + y**2)
    volume = np.where(radius < 0.75, BRAIN, np.where(radius < 0.9, 250.0, 5.0))
    volume = volume + np.random.default_rng(seed).normal(0, 8, shape)
    if vessels is not None:
        mask = vessel_mask(shape)
        volume[mask] += (vessels - 1.0) * BRAIN
    return np.clip(volume, 0, 4000).astype(np.int16)


def _orientation(orientation: str, k: int) -> tuple[int, ...]:
    if orientation == "mixed":  # a localizer: axial, sagittal and coronal slices in one series
        return list(ORIENTATIONS.values())[k % 3]
    return ORIENTATIONS[orientation]


def write_series(folder: Path, description: str, volume: np.ndarray, *, study_uid: str, frame_uid: str,
                 series_number: int, origin: tuple[float, float, float] = (-10.0, -12.0, 30.0),
                 reverse_files: bool = False, attributes: Mapping[str, object] | None = None,
                 private: Iterable[PrivateElement] = (), orientation: str = "axial",
                 pixel_spacing: tuple[float, float] = PIXEL_SPACING, slice_step: float = SLICE_STEP,
                 skip_slices: Iterable[int] = (), manufacturer: str = "TestVendor") -> str:
    """Write one series, one file per slice; returns its SeriesInstanceUID.

    Args:
        attributes: DICOM keyword → value, set on every instance (``RepetitionTime``, ``ImageType``, …); they
            replace the defaults written here. A multi-valued string may be given as ``"SE\\IR"``.
        private: Private elements, set on every instance.
        orientation: ``axial``, ``sagittal``, ``coronal`` or ``mixed`` (each slice another orientation).
        pixel_spacing, slice_step: Between rows and columns, and between slices (mm).
        skip_slices: Slice indices not written (a missing slice).
    """
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = generate_uid()
    skipped = set(skip_slices)
    for k in range(volume.shape[0]):
        if k in skipped:
            continue
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
        name = folder / f"IM{(volume.shape[0] - k if reverse_files else k + 1):04d}.dcm"
        ds = FileDataset(str(name), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.PatientName = PATIENT_NAME
        ds.PatientID = PATIENT_ID
        ds.PatientBirthDate = "19700101"
        ds.PatientSex = "F"
        ds.StudyInstanceUID = study_uid
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = STUDY_DATE, "120000", "1", "ACC1"
        ds.ReferringPhysicianName = "Doctor^Who"
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = series_number
        ds.SeriesDescription = description
        ds.Modality = "MR"
        ds.Manufacturer = manufacturer
        ds.FrameOfReferenceUID = frame_uid
        ds.InstanceNumber = k + 1
        iop = _orientation(orientation, k)
        normal = np.cross(iop[:3], iop[3:])
        ds.ImageOrientationPatient = list(iop)
        ds.ImagePositionPatient = [float(o + slice_step * k * n) for o, n in zip(origin, normal, strict=True)]
        ds.PixelSpacing = list(pixel_spacing)
        ds.SliceThickness = slice_step
        ds.Rows, ds.Columns = volume.shape[1:]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        for keyword, value in (attributes or {}).items():
            setattr(ds, keyword, value.split("\\") if isinstance(value, str) and "\\" in value else value)
        for group, creator, offset, vr, value in private:
            ds.private_block(group, creator, create=True).add_new(offset, vr, value)
        ds.PixelData = np.ascontiguousarray(volume[k]).tobytes()
        ds.save_as(name, enforce_file_format=True)
    return series_uid


DEFAULT_SERIES: dict[str, int] = {"AX T1 POST GD": 0, "Ax T2 FLAIR": 1, "AX T2 FSE": 2, "AX T1 PRE": 3}


def write_study(folder: Path, series: Mapping[str, int] | None = None, **kwargs) -> dict[str, str]:
    """Write a study with one series per description (value = noise seed) under ``folder/<n>``.

    Returns:
        SeriesInstanceUID per description.
    """
    study_uid, frame_uid = generate_uid(), generate_uid()
    uids = {}
    for number, (description, seed) in enumerate((series or DEFAULT_SERIES).items(), start=1):
        uids[description] = write_series(folder / f"{number:03d}", description, phantom_volume(seed),
                                         study_uid=study_uid, frame_uid=frame_uid, series_number=number, **kwargs)
    return uids


@dataclass
class SeriesSpec:
    """One series of a synthetic study: what its headers say and what its pixels hold.

    ``time`` (HHMMSS) is written as SeriesTime and AcquisitionTime (with the study date); ``volume`` defaults to
    :func:`phantom_volume` of the series number. ``attributes`` adds or replaces any DICOM keyword.
    """

    number: int
    description: str
    time: str | None = None
    tr: float | None = None
    te: float | None = None
    ti: float | None = None
    flip: float | None = None
    scanning_sequence: str | None = None
    sequence_variant: str | None = None
    scan_options: str | None = None
    sequence_name: str | None = None
    image_type: str = "ORIGINAL\\PRIMARY\\M\\ND"
    acquisition_type: str = "2D"
    protocol: str | None = None
    contrast_agent: str | None = None
    b_value: float | None = None
    orientation: str = "axial"
    pixel_spacing: tuple[float, float] = PIXEL_SPACING
    slice_step: float = SLICE_STEP
    volume: np.ndarray | None = None
    attributes: dict[str, object] = field(default_factory=dict)
    private: Sequence[PrivateElement] = ()
    skip_slices: Sequence[int] = ()

    def header(self) -> dict[str, object]:
        """DICOM keyword → value for :func:`write_series`."""
        values: dict[str, object] = {
            "ProtocolName": self.protocol if self.protocol is not None else self.description,
            "RepetitionTime": self.tr, "EchoTime": self.te, "InversionTime": self.ti, "FlipAngle": self.flip,
            "ScanningSequence": self.scanning_sequence, "SequenceVariant": self.sequence_variant,
            "ScanOptions": self.scan_options, "SequenceName": self.sequence_name, "ImageType": self.image_type,
            "MRAcquisitionType": self.acquisition_type, "ContrastBolusAgent": self.contrast_agent,
            "DiffusionBValue": self.b_value}
        if self.time is not None:
            values.update(SeriesDate=STUDY_DATE, SeriesTime=self.time, AcquisitionDate=STUDY_DATE,
                          AcquisitionTime=self.time)
        return {k: v for k, v in {**values, **self.attributes}.items() if v is not None}


def write_specs(folder: Path, specs: Iterable[SeriesSpec], *, manufacturer: str = "TestVendor") -> dict[int, str]:
    """Write a study of these series under ``folder/<number>``; returns SeriesInstanceUID per series number."""
    study_uid, frame_uid = generate_uid(), generate_uid()
    uids = {}
    for spec in specs:
        volume = spec.volume if spec.volume is not None else phantom_volume(spec.number)
        uids[spec.number] = write_series(
            folder / f"{spec.number:04d}", spec.description, volume, study_uid=study_uid, frame_uid=frame_uid,
            series_number=spec.number, attributes=spec.header(), private=spec.private, orientation=spec.orientation,
            pixel_spacing=spec.pixel_spacing, slice_step=spec.slice_step, skip_slices=spec.skip_slices,
            manufacturer=manufacturer)
    return uids


# Building blocks in the vendors' habits: localizers, 2D spin echo, FLAIR, diffusion, 3D T1 and reformats.

def localizer(number: int, description: str, time: str | None = None, **kwargs) -> SeriesSpec:
    """A three-plane localizer (gradient echo, mixed orientations, ImageType LOCALIZER)."""
    values: dict[str, object] = {"tr": 8.6, "te": 4.0, "flip": 20, "scanning_sequence": "GR",
                                 "sequence_variant": "SP", "image_type": "ORIGINAL\\PRIMARY\\LOCALIZER",
                                 "orientation": "mixed"}
    return SeriesSpec(number, description, time, **{**values, **kwargs})


def _axial_2d(**kwargs) -> dict[str, object]:
    return {"pixel_spacing": (0.9, 0.9), "slice_step": 5.0, **kwargs}


def _iso_3d(**kwargs) -> dict[str, object]:
    return {"pixel_spacing": (1.0, 1.0), "slice_step": 1.0, "acquisition_type": "3D", **kwargs}


def ge_study(folder: Path, *, contrast_attribute: bool = True) -> dict[int, str]:
    """GE Signa: localizer, ASSET calibration, T1 FLAIR (a T1), T2 FSE, T2 FLAIR, DWI, Ax T1 +C, a sagittal 3D
    BRAVO +C at 1 mm and its coronal MPR.

    Choices: t1n 3 (Ax T1 FLAIR), t1c 8 (the finer BRAVO), t2w 4, t2f 5.
    """
    agent = {"contrast_agent": "GADAVIST 7.5ML"} if contrast_attribute else {}
    return write_specs(folder, [
        localizer(1, "3-Plane Loc", "100100", tr=5.5, te=1.6, flip=30),
        SeriesSpec(2, "ASSET cal", "100200", tr=150, te=1.3, flip=75, scanning_sequence="GR",
                   sequence_variant="SS\\SP", image_type="ORIGINAL\\PRIMARY\\OTHER", orientation="coronal",
                   pixel_spacing=(4.0, 4.0), slice_step=6.0),
        SeriesSpec(3, "Ax T1 FLAIR", "100500", tr=2000, te=10, ti=800, flip=90, scanning_sequence="SE\\IR",
                   sequence_variant="SK\\SS", scan_options="FAST_GEMS\\IR_GEMS", **_axial_2d()),
        SeriesSpec(4, "Ax T2 FSE", "101000", tr=4000, te=100, flip=90, scanning_sequence="SE",
                   sequence_variant="SK", scan_options="FAST_GEMS", **_axial_2d()),
        SeriesSpec(5, "Ax T2 FLAIR", "101400", tr=9000, te=140, ti=2250, flip=90, scanning_sequence="SE\\IR",
                   sequence_variant="SK\\SS", scan_options="FAST_GEMS\\IR_GEMS", **_axial_2d()),
        SeriesSpec(6, "Ax DWI", "101900", tr=6000, te=80, flip=90, scanning_sequence="EP\\SE",
                   sequence_variant="SK\\SS", scan_options="EPI_GEMS", b_value=1000, **_axial_2d()),
        SeriesSpec(7, "Ax T1 +C", "102500", tr=500, te=10, flip=90, scanning_sequence="SE", sequence_variant="SK",
                   **_axial_2d(), **agent),
        SeriesSpec(8, "Sag 3D T1 BRAVO +C", "103000", tr=8, te=3, ti=450, flip=12, scanning_sequence="GR",
                   sequence_variant="SS\\SK", scan_options="FAST_GEMS\\EDR_GEMS", orientation="sagittal",
                   **_iso_3d(), **agent),
        SeriesSpec(9, "Cor T1 +C MPR", "103000", tr=8, te=3, ti=450, flip=12, scanning_sequence="GR",
                   image_type="DERIVED\\SECONDARY\\REFORMATTED\\MPR", orientation="coronal", **_iso_3d(), **agent),
    ], manufacturer="GE MEDICAL SYSTEMS")


def siemens_study(folder: Path, *, agent: str | None = "Gadovist") -> dict[int, str]:
    """Siemens: localizer, T2 TSE, T2 TIRM dark-fluid, DWI trace, T1 SE pre, MPRAGE pre, T1 SE KM (with
    ContrastBolusAgent ``agent``), MPRAGE post (same name as the pre; decided by the order and the images) and its
    axial MPR.

    Choices: t1n 6 (MPRAGE, finer than 5), t1c 8 (MPRAGE post, finer than 7), t2w 2, t2f 3.
    """
    mprage = {"tr": 2300, "te": 3, "ti": 900, "flip": 8, "scanning_sequence": "GR\\IR",
              "sequence_variant": "SP\\MP", "scan_options": "IR", "sequence_name": "*tfl3d1_16ns",
              "orientation": "sagittal", "image_type": "ORIGINAL\\PRIMARY\\M\\ND\\NORM", **_iso_3d()}
    t1_se = {"tr": 600, "te": 12, "flip": 90, "scanning_sequence": "SE", "sequence_variant": "SK\\SP",
             "sequence_name": "*se2d1", **_axial_2d()}
    return write_specs(folder, [
        localizer(1, "localizer", "081500", sequence_name="*fl2d1"),
        SeriesSpec(2, "t2_tse_tra", "082000", tr=5000, te=100, flip=150, scanning_sequence="SE",
                   sequence_variant="SK\\SP\\OSP", sequence_name="*tse2d1_15", **_axial_2d()),
        SeriesSpec(3, "t2_tirm_tra_dark-fluid", "082400", tr=9000, te=90, ti=2500, flip=150,
                   scanning_sequence="SE\\IR", sequence_variant="SK\\SP\\MP\\OSP", scan_options="IR",
                   sequence_name="*tir2d1_16", **_axial_2d()),
        SeriesSpec(4, "ep2d_diff_3scan_trace", "082800", tr=5800, te=90, flip=90, scanning_sequence="EP",
                   sequence_variant="SK\\SP", sequence_name="*ep_b1000t",
                   image_type="ORIGINAL\\PRIMARY\\DIFFUSION\\NONE", **_axial_2d()),
        SeriesSpec(5, "t1_se_tra", "083200", **t1_se),
        SeriesSpec(6, "t1_mprage_sag_p2_iso", "083600", volume=head_volume(6), **mprage),
        SeriesSpec(7, "t1_se_tra_KM", "084500", contrast_agent=agent, **t1_se),
        SeriesSpec(8, "t1_mprage_sag_p2_iso", "085000", volume=head_volume(6, vessels=2.5), **mprage),
        SeriesSpec(9, "t1_mprage_sag_p2_iso_MPR_tra", "085000",
                   **{**mprage, "image_type": "DERIVED\\PRIMARY\\MPR\\ND\\NORM", "orientation": "axial"}),
    ], manufacturer="SIEMENS")


def philips_study(folder: Path, *, t1: str = "se", vessels: float | None = 2.5,
                  later_first: bool = False) -> dict[int, str]:
    """Philips, as the real study: Survey, DWI (spin echo, long TR and TE), T2W TSE, T2W FLAIR, T1W SE (FS), the
    same T1W SE again after contrast (no contrast attribute: only the order and the images tell), T2W FLAIR again.

    Args:
        t1: ``se`` (2D T1W_SE-TRA_FS) or ``tfe`` (sagittal T1W_3D_TFE) for both T1 series.
        vessels: The vessels of the later T1 (2.5 enhancing; None as the earlier).
        later_first: The earlier T1 has enhancing vessels and the later not (the later one dimmer).

    Choices: t1n 901, t1c 1201, t2w 401, t2f 701.
    """
    if t1 == "se":
        name, params = "T1W_SE-TRA_FS", {"tr": 626, "te": 15, "flip": 69, "scanning_sequence": "SE",
                                         "sequence_variant": "SS", "scan_options": "FS", **_axial_2d()}
    else:
        name, params = "T1W_3D_TFE", {"tr": 8.1, "te": 3.7, "flip": 8, "scanning_sequence": "GR",
                                      "sequence_variant": "SP", "scan_options": "OTHER", "orientation": "sagittal",
                                      **_iso_3d()}
    early, late = (head_volume(9, vessels=2.5), head_volume(9)) if later_first else \
        (head_volume(9), head_volume(9, vessels=vessels))
    flair = {"tr": 6000, "te": 120, "ti": 2000, "flip": 90, "scanning_sequence": "IR", "sequence_variant": "SK",
             "scan_options": "FC", "image_type": "ORIGINAL\\PRIMARY\\M_IR\\M\\IR", **_axial_2d()}
    return write_specs(folder, [
        localizer(101, "Survey", "142339", image_type="ORIGINAL\\PRIMARY\\M_FFE\\M\\FFE", protocol="Survey__head_only"),
        SeriesSpec(301, "DWI", "142521", tr=3594, te=88, flip=90, scanning_sequence="SE", sequence_variant="SK",
                   scan_options="FS", protocol="DWI HR SENSE", image_type="ORIGINAL\\PRIMARY\\M_SE\\M\\SE",
                   **_axial_2d()),
        SeriesSpec(401, "T2W_TSE_TRA", "142657", tr=5227, te=100, flip=90, scanning_sequence="SE",
                   sequence_variant="SK", protocol="T2W_TSE_TRA CLEAR",
                   image_type="ORIGINAL\\PRIMARY\\M_SE\\M\\SE", **_axial_2d()),
        SeriesSpec(701, "T2W_FLAIR_TRA", "143803", protocol="T2W_FLAIR_TRA CLEAR", **flair),
        SeriesSpec(901, name, "144224", protocol=f"{name} CLEAR", volume=early, **params),
        SeriesSpec(1201, name, "145406", protocol=f"{name} CLEAR", volume=late, **params),
        SeriesSpec(1301, "T2W_FLAIR_TRA", "145909", protocol="T2W_FLAIR_TRA CLEAR", **flair),
    ], manufacturer="Philips Medical Systems")


def canon_study(folder: Path, *, post_name: str = "T1_SE_AX+C") -> dict[int, str]:
    """Canon (Toshiba): Survey, T1 SE, T2 FSE, FLAIR (IR), DWI, and the T1 SE after contrast named ``post_name``
    (no contrast attribute).

    Choices: t1n 2, t1c 6, t2w 3, t2f 4.
    """
    t1 = {"tr": 500, "te": 10, "flip": 90, "scanning_sequence": "SE", "sequence_variant": "NONE", **_axial_2d()}
    return write_specs(folder, [
        localizer(1, "Survey", "090000"),
        SeriesSpec(2, "T1_SE_AX", "090300", **t1),
        SeriesSpec(3, "T2_FSE_AX", "090600", tr=4500, te=100, flip=90, scanning_sequence="SE",
                   sequence_variant="NONE", **_axial_2d()),
        SeriesSpec(4, "FLAIR_AX", "091000", tr=9000, te=100, ti=2500, flip=90, scanning_sequence="IR",
                   sequence_variant="NONE", **_axial_2d()),
        SeriesSpec(5, "DWI_AX", "091400", tr=5000, te=90, flip=90, scanning_sequence="EP", sequence_variant="NONE",
                   b_value=1000, **_axial_2d()),
        SeriesSpec(6, post_name, "092000", **t1),
    ], manufacturer="TOSHIBA")


def flair_contrast_study(folder: Path, *, pre_flair: bool = True) -> dict[int, str]:
    """A GE-like study whose FLAIR after contrast carries ContrastBolusAgent (a post-contrast FLAIR), with or
    without a FLAIR before contrast; the T1 series are Ax T1 (plain) and Ax T1 +C.

    Choices: t1n 2, t1c 5, t2w 3, t2f 4 (the FLAIR before contrast), or 6 (the post-contrast FLAIR) without 4.
    """
    flair = {"tr": 9000, "te": 140, "ti": 2250, "flip": 90, "scanning_sequence": "SE\\IR",
             "sequence_variant": "SK\\SS", **_axial_2d()}
    t1 = {"tr": 500, "te": 10, "flip": 90, "scanning_sequence": "SE", **_axial_2d()}
    specs = [
        localizer(1, "3-Plane Loc", "100000"),
        SeriesSpec(2, "Ax T1", "100300", **t1),
        SeriesSpec(3, "Ax T2 FSE", "100600", tr=4000, te=100, flip=90, scanning_sequence="SE", **_axial_2d()),
        SeriesSpec(4, "Ax T2 FLAIR", "101000", **flair),
        SeriesSpec(5, "Ax T1 +C", "101500", contrast_agent="DOTAREM", **t1),
        SeriesSpec(6, "Ax T2 FLAIR", "102000", contrast_agent="DOTAREM", **flair),
    ]
    return write_specs(folder, [s for s in specs if pre_flair or s.number != 4], manufacturer="GE MEDICAL SYSTEMS")


def truncate(path: Path, keep: int) -> Path:
    """Cut a file to its first ``keep`` bytes (negative: all but the last ``-keep``)."""
    data = path.read_bytes()
    path.write_bytes(data[:keep])
    return path


def write_garbage_dicom(path: Path, size: int = 60, seed: int = 0) -> Path:
    """A file with the 128-byte preamble and the ``DICM`` marker, then ``size`` bytes of garbage."""
    garbage = np.random.default_rng(seed).integers(0, 256, size).astype(np.uint8).tobytes()
    path.write_bytes(b"\0" * 128 + b"DICM" + garbage)
    return path
