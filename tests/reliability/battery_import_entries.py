"""Battery entries of ``gliomics import``: public datasets, DICOM studies (the writers of ``dicom_testing``) and the
TCGA marker table."""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from battery_core import BadInput, Invocation, Workspace, write_nifti

from dicom_testing import (
    SeriesSpec,
    canon_study,
    phantom_volume,
    philips_study,
    truncate,
    write_garbage_dicom,
    write_series,
    write_specs,
    write_study,
)
from gliomics.constants import SEQUENCES


def _import(ws: Workspace, fmt: str, source: Path, culprit: str, *extra: str) -> Invocation:
    out = ws.path("imported")
    return Invocation(["import", "--format", fmt, "-i", str(source), "-o", str(out), *extra], culprit, out)


# ---------------------------------------------------------------------------------------------- datasets (NIfTI)


def _import_unknown_format(ws: Workspace) -> Invocation:
    return _import(ws, "adni", ws.cohort(n=1), "adni")


def _import_missing(ws: Workspace) -> Invocation:
    return _import(ws, "brats2024", ws.path("BraTS missing"), "BraTS missing")


def _import_brats2021_label(ws: Workspace) -> Invocation:
    folder = ws.path("BraTS2021")
    case = folder / "BraTS2021_00001"
    case.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for tag in ("t1", "t1ce", "t2", "flair"):
        write_nifti(case / f"BraTS2021_00001_{tag}.nii.gz", rng.normal(100, 5, (16, 16, 12)).astype(np.float32))
    seg = np.zeros((16, 16, 12), np.uint8)
    seg[4:8, 4:8, 4:8] = 3  # BraTS 2021 has no label 3
    write_nifti(case / "BraTS2021_00001_seg.nii.gz", seg)
    return _import(ws, "brats2021", folder, "BraTS2021_00001_seg.nii.gz")


def _import_out_file(ws: Workspace) -> Invocation:
    out = ws.file("imported.csv")
    inv = _import(ws, "brats2024", ws.cohort(n=1, markers=False), out.name)
    inv.args[inv.args.index("-o") + 1] = str(out)
    inv.out = out
    return inv


def _import_unicode(ws: Workspace) -> Invocation:
    inv = _import(ws, "brats2024", ws.cohort("BraTS jeu ç", n=2, markers=False), "")
    inv.out = ws.path("importé 4")
    inv.args[inv.args.index("-o") + 1] = str(inv.out)
    inv.allowed = ("manifest.csv", "markers.csv")
    return inv


# ------------------------------------------------------------------------------------------------------------ DICOM

STUDY = "P001"
_T1 = {"tr": 500, "te": 10, "flip": 90, "scanning_sequence": "SE"}
_T2 = {"tr": 4500, "te": 100, "scanning_sequence": "SE"}
_FLAIR = {"tr": 9000, "te": 100, "ti": 2500, "scanning_sequence": "IR"}
T1CE = "series 6 'T1_SE_AX+C'"


def _dicom(write: Callable[[Path], object], culprit: str, *extra: str, name: str = STUDY
           ) -> Callable[[Workspace], Invocation]:
    """``gliomics import --format dicom`` of the study folder ``name`` that ``write`` fills."""

    def build(ws: Workspace) -> Invocation:
        study = ws.path(name)
        write(study)
        return _import(ws, "dicom", study, culprit, *extra)

    return build


def _t1ce_study(**change) -> Callable[[Path], object]:
    """T1, T2 and a T1ce series (6 'T1_SE_AX+C') written with ``change`` (a missing slice, mixed orientations…)."""

    def write(folder: Path) -> None:
        write_specs(folder, [SeriesSpec(2, "T1_SE_AX", "090300", **_T1), SeriesSpec(3, "T2_FSE_AX", "090600", **_T2),
                             SeriesSpec(6, "T1_SE_AX+C", "092000", **_T1, **change)])

    return write


def _no_t1(folder: Path) -> None:
    write_specs(folder, [SeriesSpec(3, "T2_FSE_AX", "090600", **_T2), SeriesSpec(4, "FLAIR_AX", "091000", **_FLAIR)])


def _pre_contrast_only(folder: Path) -> None:
    write_specs(folder, [SeriesSpec(2, "T1_SE_AX", "090300", **_T1), SeriesSpec(3, "T2_FSE_AX", "090600", **_T2),
                         SeriesSpec(4, "FLAIR_AX", "091000", **_FLAIR)])


def _tied(folder: Path) -> None:
    write_specs(folder, [SeriesSpec(3, "Ax T1", "100000", **_T1), SeriesSpec(4, "Ax T2 FSE", "100500", **_T2),
                         SeriesSpec(7, "Ax T1 +C", "101000", **_T1, contrast_agent="MULTIHANCE"),
                         SeriesSpec(8, "Ax T1 +C", "101500", **_T1, contrast_agent="MULTIHANCE")])


def _multiframe(folder: Path) -> None:
    """The T1ce saved as one enhanced (multi-frame) instance, as many scanners export by default."""
    import pydicom

    _t1ce_study()(folder)
    files = sorted((folder / "0006").glob("IM*.dcm"))
    ds = pydicom.dcmread(files[0])
    ds.PixelData = b"".join(pydicom.dcmread(f).PixelData for f in files)
    ds.NumberOfFrames = len(files)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"  # Enhanced MR Image
    for f in files:
        f.unlink()
    ds.save_as(folder / "0006" / "IM0001.dcm", enforce_file_format=True)


def _garbage_among_good(folder: Path) -> None:
    canon_study(folder)
    write_garbage_dicom(folder / "0006" / "IM0099.dcm")


def _header_cut_short(folder: Path) -> None:
    canon_study(folder)
    shutil.copy(folder / "0006" / "IM0004.dcm", folder / "0006" / "IM0099.dcm")
    truncate(folder / "0006" / "IM0099.dcm", 150)  # inside the file meta information


def _pixels_cut_short(folder: Path) -> None:
    canon_study(folder)
    truncate(folder / "0006" / "IM0004.dcm", -100)  # a copy interrupted in the pixel data


def _no_dicom(folder: Path) -> None:
    folder.mkdir()
    (folder / "report.pdf").write_bytes(b"%PDF-1.4\n" + os.urandom(300))
    (folder / "notes.txt").write_text("MRI brain, see PACS\n")
    (folder / "IMG_0001").write_bytes(os.urandom(2000))  # a camera picture without a suffix


def _dicomdir_only(folder: Path) -> None:
    """The DICOMDIR of a CD copied without the image folders it indexes."""
    from pydicom.fileset import FileSet

    images = folder.parent / "cd-images"
    write_study(images, {"AX T1 POST GD": 0, "AX T2 FSE": 2})
    fs = FileSet()
    for path in sorted(images.rglob("*.dcm")):
        fs.add(path)
    fs.write(folder)
    for child in folder.iterdir():
        if child.is_dir():
            shutil.rmtree(child)


def _loose_second_study(folder: Path) -> None:
    """One study in sub-folders and the files of another lying loose next to them."""
    from pydicom.uid import generate_uid

    canon_study(folder / "study A")
    write_series(folder, "AX T1 POST GD", phantom_volume(1), study_uid=generate_uid(), frame_uid=generate_uid(),
                 series_number=5)


def _two_studies(folder: Path) -> None:
    canon_study(folder / "A")
    canon_study(folder / "B")


def _dicom_ok_verify(out: Path) -> list[str]:
    sources = json.loads((out / STUDY / "dicom_sources.json").read_text())
    chosen = {k: v["series_number"] for k, v in sources["sequences"].items()}
    expected = {"t1n": 901, "t1c": 1201, "t2w": 401, "t2f": 701}
    return [] if chosen == expected else [f"series chosen {chosen}, expected {expected}"]


def _dicom_philips_ok(ws: Workspace) -> Invocation:
    inv = _dicom(philips_study, "")(ws)
    inv.allowed = ("manifest.csv", f"{STUDY}/dicom_sources.json", *(f"{STUDY}/{STUDY}-{s}.nii.gz" for s in SEQUENCES))
    inv.verify = _dicom_ok_verify
    return inv


# ------------------------------------------------------------------------------------------------------------- TCGA


def _tcga(name: str, content: str | bytes, culprit: str, *extra: str) -> Callable[[Workspace], Invocation]:
    def build(ws: Workspace) -> Invocation:
        table = ws.path(name)
        table.write_bytes(content if isinstance(content, bytes) else content.encode())
        return _import(ws, "tcga", table, culprit, *extra)

    return build


def _import_tcga_columns(ws: Workspace) -> Invocation:
    table = ws.file("pan_glioma.tsv", "Case\tIDH\nTCGA-02-0001\tMutant\n")
    return _import(ws, "tcga", table, "pan_glioma.tsv")


def _import_tcga_value(ws: Workspace) -> Invocation:
    table = ws.file("tcga.csv", "Case,IDH.status,X1p.19q.codeletion\nTCGA-02-0001,Mutant,codel\n"
                                "TCGA-02-0002,maybe,non-codel\n")
    return _import(ws, "tcga", table, "maybe")


def _import_tcga_images_unmatched(ws: Workspace) -> Invocation:
    cohort = ws.cohort("scans", n=2, markers=False)  # ids CASE-000-000…: no barcode in them
    table = ws.file("tcga.csv", "Case,IDH.status,X1p.19q.codeletion\nTCGA-02-0001,Mutant,codel\n")
    return _import(ws, "tcga", table, "scans", "--images", str(cohort))


def _tcga_markers(expected: dict[str, dict[str, str]]) -> Callable[[Path], list[str]]:
    """Check ``markers.csv``: per case, the expected cells."""

    def verify(out: Path) -> list[str]:
        with (out / "markers.csv").open(newline="", encoding="utf-8") as fh:
            rows = {r["case_id"]: r for r in csv.DictReader(fh)}
        wrong = [f"{cid}: {col}={rows.get(cid, {}).get(col)!r}, expected {value!r}"
                 for cid, cells in expected.items() for col, value in cells.items()
                 if rows.get(cid, {}).get(col) != value]
        return wrong

    return verify


def _tcga_usable(name: str, content: bytes, expected: dict[str, dict[str, str]]
                 ) -> Callable[[Workspace], Invocation]:
    def build(ws: Workspace) -> Invocation:
        inv = _tcga(name, content, "")(ws)
        inv.allowed, inv.verify = ("markers.csv",), _tcga_markers(expected)
        return inv

    return build


_BOM_CRLF = ("\ufeffCase,IDH.status,X1p.19q.codeletion\r\nTCGA-02-0001,Mutant,codel\r\n"
             "TCGA-02-0002,WT,non-codel\r\n").encode()
_SEMICOLON = b"Case;IDH.status;X1p.19q.codeletion;TERT.promoter.status\nTCGA-06-0001;Mutant;non-codel;WT\n"


def _import_dicom_garbage(ws: Workspace) -> Invocation:
    study = ws.path("study P001")
    study.mkdir()
    (study / "IM0001.dcm").write_bytes(b"DICM" + os.urandom(600))
    (study / "IM0002.dcm").write_bytes(os.urandom(2000))
    return _import(ws, "dicom", study, "study P001", "--case-id", "P001")


IMPORT_ENTRIES: list[BadInput] = [
    BadInput("import-unknown-format", "import", "unknown --format", _import_unknown_format),
    BadInput("import-missing-input", "import", "missing dataset folder", _import_missing),
    BadInput("import-brats2021-label", "import", "BraTS 2021 segmentation with label 3", _import_brats2021_label),
    BadInput("import-out-is-file", "import", "output path is a file", _import_out_file),
    BadInput("import-unicode-path", "import", "paths with spaces and non-ASCII characters (must work)",
             _import_unicode, exit_code=0),
    BadInput("import-dicom-garbage", "import", "DICOM study folder of unreadable files", _import_dicom_garbage),
    BadInput("import-tcga-missing-column", "import", "TCGA table without the 1p/19q column", _import_tcga_columns),
    BadInput("import-tcga-unknown-value", "import", "TCGA table with an unknown IDH value", _import_tcga_value),
    # DICOM studies
    BadInput("import-dicom-no-t1", "import", "DICOM study without any T1 series", _dicom(_no_t1, "no T1 series")),
    BadInput("import-dicom-pre-contrast-only", "import", "DICOM study whose only T1 is pre-contrast",
             _dicom(_pre_contrast_only, "series 2 'T1_SE_AX'")),
    BadInput("import-dicom-t1ce-missing-slice", "import", "T1ce series with a missing slice",
             _dicom(_t1ce_study(skip_slices=(4,)), f"{T1CE}: irregular slice spacing")),
    BadInput("import-dicom-t1ce-mixed-orientation", "import", "T1ce series mixing orientations",
             _dicom(_t1ce_study(orientation="mixed"), f"{T1CE}: instances of different orientation")),
    BadInput("import-dicom-t1ce-two-slices", "import", "T1ce series of two slices (an aborted acquisition)",
             _dicom(_t1ce_study(skip_slices=range(2, 8)), f"{T1CE}: only 2 slice(s)")),
    BadInput("import-dicom-t1ce-one-position", "import", "T1ce series with every image at one position (multi-echo)",
             _dicom(_t1ce_study(slice_step=0.0), f"{T1CE}: several images at one slice position")),
    BadInput("import-dicom-multiframe", "import", "T1ce saved as one enhanced multi-frame image",
             _dicom(_multiframe, f"{T1CE}: multi-frame")),
    BadInput("import-dicom-garbage-after-dicm", "import", "a file of garbage after DICM among good files",
             _dicom(_garbage_among_good, "IM0099.dcm")),
    BadInput("import-dicom-header-cut-short", "import", "a file cut short in its header (no data set)",
             _dicom(_header_cut_short, "IM0099.dcm")),
    BadInput("import-dicom-truncated-pixels", "import", "a file whose pixel data are cut short",
             _dicom(_pixels_cut_short, "IM0004.dcm")),
    BadInput("import-dicom-t1ce-tie", "import", "two T1ce series equal on the evidence",
             _dicom(_tied, "series 7 'Ax T1 +C'")),
    BadInput("import-dicom-series-no-such", "import", "--series naming a series the study lacks",
             _dicom(_tied, "--series t1c=99", "--series", "t1c=99")),
    BadInput("import-dicom-series-unknown-sequence", "import", "--series for an unknown sequence",
             _dicom(_tied, "--series t9", "--series", "t9=7")),
    BadInput("import-dicom-series-malformed", "import", "--series without =",
             _dicom(_tied, "--series 't1c'", "--series", "t1c")),
    BadInput("import-dicom-series-unusable", "import", "--series naming a series with a missing slice",
             _dicom(_t1ce_study(skip_slices=(4,)), f"{T1CE} is unusable", "--series", "t1c=6")),
    BadInput("import-dicom-series-several-studies", "import", "--series over a folder of two studies",
             _dicom(_two_studies, "holds 2 studies; --series", "--series", "t1c=6")),
    BadInput("import-dicom-case-id-several-studies", "import", "--case-id over a folder of two studies",
             _dicom(_two_studies, "holds 2 studies; --case-id", "--case-id", "P9")),
    BadInput("import-dicom-no-dicom", "import", "a study folder with no DICOM file (PDF, text, picture)",
             _dicom(_no_dicom, STUDY)),
    BadInput("import-dicom-dicomdir-only", "import", "a DICOMDIR copied without its image folders",
             _dicom(_dicomdir_only, STUDY)),
    BadInput("import-dicom-images-contradict-order", "import", "a later T1 dimmer than the earlier (no enhancement)",
             _dicom(lambda f: philips_study(f, later_first=True), "series 1201 'T1W_SE-TRA_FS'")),
    BadInput("import-dicom-loose-second-study", "import", "files of a second study loose beside a study folder",
             _dicom(_loose_second_study, "IM0001.dcm")),
    BadInput("import-dicom-philips-order", "import", "Philips study without contrast attributes (must work)",
             _dicom_philips_ok, exit_code=0),
    # the TCGA table
    BadInput("import-tcga-not-a-barcode", "import", "TCGA table whose ids are not barcodes",
             _tcga("tcga.csv", "Case,IDH.status,X1p.19q.codeletion\nPT-0001,Mutant,codel\n", "'PT-0001'")),
    BadInput("import-tcga-duplicate-barcode", "import", "TCGA table with a patient twice",
             _tcga("tcga.csv", "Case,IDH.status,X1p.19q.codeletion\nTCGA-02-0001,Mutant,codel\n"
                               "TCGA-02-0001,WT,non-codel\n", "duplicate case TCGA-02-0001")),
    BadInput("import-tcga-missing-id-column", "import", "TCGA table without the Case column",
             _tcga("clinical.csv", "Sample_ID,IDH.status,X1p.19q.codeletion\nTCGA-02-0001,Mutant,codel\n",
                   "clinical.csv")),
    BadInput("import-tcga-empty", "import", "empty TCGA table", _tcga("tcga.csv", b"", "tcga.csv")),
    BadInput("import-tcga-latin1", "import", "TCGA table saved as Windows-1252 (not UTF-8)",
             _tcga("tcga.csv", "Case,IDH.status,X1p.19q.codeletion,Gender\nTCGA-02-0001,Mutant,codel,féminin\n"
                   .encode("cp1252"), "tcga.csv")),
    BadInput("import-tcga-images-unmatched", "import", "--images whose case ids hold no barcode of the table",
             _import_tcga_images_unmatched),
    BadInput("import-tcga-bom-crlf", "import", "TCGA table with a BOM and Windows line endings (must work)",
             _tcga_usable("tcga.csv", _BOM_CRLF, {"TCGA-02-0001": {"idh": "1", "codel_1p19q": "1"},
                                                  "TCGA-02-0002": {"idh": "0", "codel_1p19q": "0"}}), exit_code=0),
    BadInput("import-tcga-semicolon", "import", "semicolon-separated TCGA table (must work)",
             _tcga_usable("tcga.csv", _SEMICOLON, {"TCGA-06-0001": {"idh": "1", "codel_1p19q": "0", "tert": "0"}}),
             exit_code=0),
]
