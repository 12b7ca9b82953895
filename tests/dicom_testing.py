"""Test helper: tiny synthetic DICOM MR studies written with pydicom (a few series of 8 slices of 16×16)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import MRImageStorage, generate_uid

PATIENT_NAME = "Testpatient^Jane"
PATIENT_ID = "PID-7731-XZ"
SHAPE = (8, 16, 16)  # slices, rows, columns
PIXEL_SPACING = (1.5, 1.25)  # between rows, between columns (mm)
SLICE_STEP = 2.0


def phantom_volume(seed: int = 0, shape: tuple[int, int, int] = SHAPE) -> np.ndarray:
    """A bright ball in a dimmer box, with noise: int16 (slices, rows, columns)."""
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    ball = (x**2 + y**2 + z**2) < 0.4
    volume = 200 + 300 * ball + np.random.default_rng(seed).normal(0, 10, shape)
    return np.clip(volume, 0, 4000).astype(np.int16)


def write_series(folder: Path, description: str, volume: np.ndarray, *, study_uid: str, frame_uid: str,
                 series_number: int, origin: tuple[float, float, float] = (-10.0, -12.0, 30.0),
                 reverse_files: bool = False) -> str:
    """Write one axial series, one file per slice; returns its SeriesInstanceUID."""
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = generate_uid()
    order = range(volume.shape[0])
    for k in order:
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
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20240101", "120000", "1", "ACC1"
        ds.ReferringPhysicianName = "Doctor^Who"
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = series_number
        ds.SeriesDescription = description
        ds.Modality = "MR"
        ds.Manufacturer = "TestVendor"
        ds.FrameOfReferenceUID = frame_uid
        ds.InstanceNumber = k + 1
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [origin[0], origin[1], origin[2] + SLICE_STEP * k]
        ds.PixelSpacing = list(PIXEL_SPACING)
        ds.SliceThickness = SLICE_STEP
        ds.Rows, ds.Columns = volume.shape[1:]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
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
