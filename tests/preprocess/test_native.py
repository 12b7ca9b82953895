"""Mapping a segmentation on the preprocessed grid back to the native scans, through a case folder laid out as
``gliomics preprocess`` writes it (``preprocess/geometry.json`` and one ``.tfm`` per sequence) with known transforms,
checked voxel by voxel against nearest-neighbour sampling computed here."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from gliomics.errors import InputError
from gliomics.io.cases import Case
from gliomics.io.nifti import save_image
from gliomics.io.sitk_images import array_of, image_from_array, nifti_affine
from gliomics.preprocess.geometry import Grid, centred_grid
from gliomics.preprocess.native import (
    NATIVE_SEG_SUFFIX,
    labels_array_to_native,
    labels_to_native,
    native_outputs,
    read_geometry,
    seg_to_native,
    transforms_dir,
)

CASE_ID = "NAT-001"
#: The output grid, as the pipeline makes it: RAS voxel order, isotropic.
OUTPUT = centred_grid((0.5, -0.3, 1.2), (14, 12, 10), 1.0)
#: Native grids in LPS voxel order with anisotropic voxels; the FLAIR's is coarser.
NATIVE = {
    "t1c": Grid((16, 14, 8), (0.9, 1.1, 1.5), (-7.3, -6.8, -5.1), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)),
    "t2f": Grid((10, 9, 6), (1.4, 1.6, 2.2), (-6.9, -7.1, -4.7), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)),
}


def _to_native(sequence: str) -> sitk.AffineTransform:
    """Output-grid points to native points: a shift for the T1ce, a rotation about z and a shift for the FLAIR."""
    transform = sitk.AffineTransform(3)
    if sequence == "t1c":
        transform.SetTranslation((0.37, -0.29, 0.61))
    else:
        angle = np.deg2rad(7.0)
        transform.SetMatrix((np.cos(angle), -np.sin(angle), 0.0, np.sin(angle), np.cos(angle), 0.0, 0.0, 0.0, 1.0))
        transform.SetCenter((0.2, 0.1, 0.0))
        transform.SetTranslation((-0.43, 0.52, 0.33))
    return transform


def _labels() -> np.ndarray:
    """Every label, in touching blocks inside the output grid (two voxels from its faces)."""
    labels = np.zeros(OUTPUT.size, dtype=np.uint8)
    labels[2:7, 2:8, 2:7] = 1
    labels[7:12, 2:8, 2:7] = 4
    labels[2:12, 8:10, 2:8] = 2
    labels[4:10, 3:6, 7:8] = 3
    return labels


def _write_case(root: Path, sequences: tuple[str, ...] = ("t1c", "t2f")) -> Case:
    """A preprocessed case folder: images on the output grid and ``preprocess/`` with the record and transforms."""
    folder = root / CASE_ID
    (folder / "preprocess").mkdir(parents=True)
    affine = nifti_affine(OUTPUT.reference())
    images = {}
    for s in sequences:
        images[s] = save_image(np.zeros(OUTPUT.size, np.float32), affine, folder / f"{CASE_ID}-{s}.nii.gz")
        sitk.WriteTransform(_to_native(s), str(folder / "preprocess" / f"{s}.tfm"))
    record = {
        "case_id": CASE_ID,
        "reference": sequences[0],
        "output_grid": OUTPUT.to_dict(),
        "transforms": {s: f"{s}.tfm" for s in sequences},
        "native": {s: {"file": f"{CASE_ID}-{s}.nii.gz", "grid": NATIVE[s].to_dict(), "stored_dtype": "int16"}
                   for s in sequences},
    }
    (folder / "preprocess" / "geometry.json").write_text(json.dumps(record, indent=2))
    return Case(CASE_ID, images)


def _nearest(labels: np.ndarray, sequence: str) -> np.ndarray:
    """Nearest-neighbour sampling of ``labels`` (output grid) at the centres of the native grid's voxels."""
    grid, transform = NATIVE[sequence], _to_native(sequence)
    index = np.stack(np.meshgrid(*[np.arange(n) for n in grid.size], indexing="ij"), axis=-1).reshape(-1, 3)
    points = grid.origin_array + index @ grid.matrix.T
    matrix = np.asarray(transform.GetMatrix()).reshape(3, 3)
    centre, shift = np.asarray(transform.GetCenter()), np.asarray(transform.GetTranslation())
    on_output = (points - centre - shift) @ np.linalg.inv(matrix).T + centre  # the inverse of the saved transform
    continuous = (on_output - OUTPUT.origin_array) @ np.linalg.inv(OUTPUT.matrix).T
    assert np.abs(continuous - np.round(continuous)).max(initial=0) < 0.5 - 1e-3  # no sample halfway between voxels
    nearest = np.floor(continuous + 0.5).astype(int)
    inside = ((nearest >= 0) & (nearest < np.asarray(OUTPUT.size))).all(axis=1)
    values = np.zeros(len(index), dtype=np.uint8)
    values[inside] = labels[tuple(nearest[inside].T)]
    return values.reshape(grid.size)


def _seg_file(root: Path, labels: np.ndarray | None = None) -> Path:
    labels = _labels() if labels is None else labels
    return save_image(labels, nifti_affine(OUTPUT.reference()), root / "pred" / f"{CASE_ID}_seg.nii.gz")


# ---------------------------------------------------------------- the preprocessing record


def test_transforms_dir_needs_the_geometry_record(tmp_path: Path) -> None:
    """Only a folder with ``preprocess/geometry.json`` counts as preprocessed here."""
    case = _write_case(tmp_path)
    folder = case.images["t1c"].parent
    assert transforms_dir(folder) == folder / "preprocess"
    assert transforms_dir(str(folder)) == folder / "preprocess"
    (folder / "preprocess" / "geometry.json").unlink()
    assert transforms_dir(folder) is None
    assert transforms_dir(tmp_path / "nowhere") is None


def test_read_geometry_returns_the_record(tmp_path: Path) -> None:
    """The record is returned as written."""
    folder = _write_case(tmp_path).images["t1c"].parent
    record = read_geometry(folder)
    assert record["reference"] == "t1c" and set(record["native"]) == {"t1c", "t2f"}
    assert Grid.from_dict(record["output_grid"]) == OUTPUT


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, r"geometry\.json: not found \(was the case made by `gliomics preprocess`\?\)$"),
        ("{not json", r"geometry\.json: cannot read \("),
        ("[1, 2]", r"geometry\.json: not a gliomics preprocessing record$"),
        ('{"output_grid": {}}', r"geometry\.json: not a gliomics preprocessing record$"),
        ('{"native": {}}', r"geometry\.json: not a gliomics preprocessing record$"),
    ],
)
def test_read_geometry_refuses_what_is_not_a_record(tmp_path: Path, text: str | None, message: str) -> None:
    """A missing, unreadable or foreign ``geometry.json`` is an input error that names the file."""
    (tmp_path / "preprocess").mkdir()
    if text is not None:
        (tmp_path / "preprocess" / "geometry.json").write_text(text)
    with pytest.raises(InputError, match=message) as info:
        read_geometry(tmp_path)
    assert str(info.value).startswith(str(tmp_path / "preprocess" / "geometry.json"))


def test_a_geometry_folder_is_not_readable_as_a_record(tmp_path: Path) -> None:
    """An OS error while reading (here a folder in place of the file) is reported as unreadable."""
    (tmp_path / "preprocess" / "geometry.json").mkdir(parents=True)
    with pytest.raises(InputError, match=r"geometry\.json: cannot read \(") as info:
        read_geometry(tmp_path)
    assert isinstance(info.value.__cause__, OSError)


# ---------------------------------------------------------------- label maps to the native grids


@pytest.mark.parametrize("sequence", ["t1c", "t2f"])
def test_labels_go_to_the_native_grid_by_nearest_neighbour(tmp_path: Path, sequence: str) -> None:
    """Every native voxel takes the label of the output voxel nearest to where the inverse transform sends it."""
    folder = _write_case(tmp_path).images["t1c"].parent
    labels = _labels()
    mapped = labels_to_native(image_from_array(labels, nifti_affine(OUTPUT.reference())), folder, sequence)
    assert Grid.of(mapped) == NATIVE[sequence]
    assert mapped.GetPixelID() == sitk.sitkUInt8
    expected = _nearest(labels, sequence)
    assert set(np.unique(expected)) == {0, 1, 2, 3, 4}
    np.testing.assert_array_equal(array_of(mapped), expected)


def test_labels_go_to_the_reference_by_default_and_any_integer_type_is_accepted(tmp_path: Path) -> None:
    """Without a sequence the record's reference is used; int16 labels come back as uint8."""
    folder = _write_case(tmp_path, ("t2f", "t1c")).images["t1c"].parent
    labels = image_from_array(_labels().astype(np.int16), nifti_affine(OUTPUT.reference()))
    mapped = labels_to_native(labels, folder)
    assert Grid.of(mapped) == NATIVE["t2f"] and mapped.GetPixelID() == sitk.sitkUInt8
    np.testing.assert_array_equal(array_of(mapped), _nearest(_labels(), "t2f"))


def test_unknown_sequence_is_an_input_error(tmp_path: Path) -> None:
    """A sequence without a native grid is refused, listing those the case has."""
    folder = _write_case(tmp_path).images["t1c"].parent
    labels = image_from_array(_labels(), nifti_affine(OUTPUT.reference()))
    with pytest.raises(InputError, match=r": no native geometry for 't2w' \(has t1c, t2f\)$"):
        labels_to_native(labels, folder, "t2w")


def test_unreadable_transform_is_an_input_error(tmp_path: Path) -> None:
    """A corrupt ``.tfm`` is reported with its path and the last line of ITK's message."""
    folder = _write_case(tmp_path).images["t1c"].parent
    (folder / "preprocess" / "t2f.tfm").write_text("not a transform\n")
    labels = image_from_array(_labels(), nifti_affine(OUTPUT.reference()))
    with pytest.raises(InputError) as info:
        labels_to_native(labels, folder, "t2f")
    text = str(info.value)
    assert text.startswith(f"{folder / 'preprocess' / 't2f.tfm'}: cannot read transform (")
    assert text.endswith(")") and "\n" not in text and not text.endswith("()")
    reason = text.split(": cannot read transform (", 1)[1][:-1]
    cause = str(info.value.__cause__).strip().splitlines()
    assert reason == cause[-1][:200] and reason == reason.strip()


def test_missing_transform_reports_the_last_line_cut_to_200_characters(tmp_path: Path) -> None:
    """ITK's message for a missing ``.tfm`` ends with the file name; only its first 200 characters are kept."""
    folder = _write_case(tmp_path / ("deep-" * 30)).images["t1c"].parent
    tfm = folder / "preprocess" / "t2f.tfm"
    tfm.unlink()
    labels = image_from_array(_labels(), nifti_affine(OUTPUT.reference()))
    with pytest.raises(InputError) as info:
        labels_to_native(labels, folder, "t2f")
    reason = str(info.value).split(": cannot read transform (", 1)[1][:-1]
    assert len(reason) == 200 and reason == f'Filename: "{tfm}"'[:200]


# ---------------------------------------------------------------- segmentation files


def test_seg_to_native_writes_the_mapped_labels_in_the_native_geometry(tmp_path: Path) -> None:
    """The written file lies on the native T1ce grid as uint8, and holds the nearest-neighbour labels."""
    folder = _write_case(tmp_path).images["t1c"].parent
    out = tmp_path / "native" / "seg.nii.gz"
    written = seg_to_native(_seg_file(tmp_path), folder, out)
    assert written == out
    image = nib.load(out)
    assert image.get_data_dtype() == np.uint8
    assert image.shape == NATIVE["t1c"].size
    np.testing.assert_allclose(image.affine, nifti_affine(NATIVE["t1c"].reference()), atol=1e-5)
    np.testing.assert_array_equal(np.asarray(image.dataobj), _nearest(_labels(), "t1c"))


def test_seg_to_native_on_another_sequence_keeps_each_label_volume(tmp_path: Path) -> None:
    """Mapped to the FLAIR grid (2.2 mm slices), each label keeps roughly its volume in mL."""
    folder = _write_case(tmp_path).images["t1c"].parent
    out = seg_to_native(_seg_file(tmp_path), folder, tmp_path / "flair_seg.nii.gz", sequence="t2f")
    native = np.asarray(nib.load(out).dataobj)
    np.testing.assert_array_equal(native, _nearest(_labels(), "t2f"))
    voxel_ml = float(np.prod(NATIVE["t2f"].spacing)) / 1000.0
    assert voxel_ml == pytest.approx(1.4 * 1.6 * 2.2 / 1000)
    for label in (1, 2, 4):
        before = float((_labels() == label).sum()) / 1000.0  # 1 mm³ voxels
        after = float((native == label).sum()) * voxel_ml
        assert after == pytest.approx(before, rel=0.35), label


def test_seg_to_native_logs_what_it_wrote(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A debug line names the source, the written file and the sequence (the reference when none is given)."""
    folder = _write_case(tmp_path).images["t1c"].parent
    seg = _seg_file(tmp_path)
    with caplog.at_level(logging.DEBUG, logger="gliomics.preprocess.native"):
        out = seg_to_native(seg, folder, tmp_path / "a.nii.gz")
        seg_to_native(seg, folder, tmp_path / "b.nii.gz", sequence="t2f")
    messages = [r.getMessage() for r in caplog.records if r.name == "gliomics.preprocess.native"]
    assert messages == [f"{seg} -> {out} (native t1c)", f"{seg} -> {tmp_path / 'b.nii.gz'} (native t2f)"]


@pytest.mark.parametrize("shift", [0.0, 0.0009])
def test_seg_within_a_micrometre_of_the_grid_is_accepted(tmp_path: Path, shift: float) -> None:
    """An affine within 1e-3 mm of the output grid's still counts as that grid."""
    folder = _write_case(tmp_path).images["t1c"].parent
    affine = nifti_affine(OUTPUT.reference())
    affine[0, 3] += shift
    seg = save_image(_labels(), affine, tmp_path / "seg.nii.gz")
    out = seg_to_native(seg, folder, tmp_path / "native.nii.gz")
    assert np.asarray(nib.load(out).dataobj).max() == 4


@pytest.mark.parametrize("where", ["shape", "offset", "spacing"])
def test_seg_off_the_output_grid_is_refused(tmp_path: Path, where: str) -> None:
    """Labels of another shape, or offset by 0.01 mm, or at another spacing, are not on the case's output grid."""
    folder = _write_case(tmp_path).images["t1c"].parent
    affine, labels = nifti_affine(OUTPUT.reference()), _labels()
    if where == "shape":
        labels = labels[:, :, :-1]
    elif where == "offset":
        affine[2, 3] += 0.01
    else:
        affine[:3, :3] *= 1.002
    seg = save_image(labels, affine, tmp_path / "seg.nii.gz")
    expected_shape = tuple(labels.shape)
    with pytest.raises(InputError, match=r"not on the preprocessed grid of ") as info:
        seg_to_native(seg, folder, tmp_path / "native.nii.gz")
    assert str(info.value) == (f"{seg}: not on the preprocessed grid of {folder} (shape {expected_shape}, "
                               f"expected {OUTPUT.size})")
    assert not (tmp_path / "native.nii.gz").exists()


# ---------------------------------------------------------------- after prediction


def _prediction(labels: np.ndarray | None = None, affine: np.ndarray | None = None) -> SimpleNamespace:
    """A stand-in for a :class:`~gliomics.inference.prediction.Prediction`: its ``seg`` (the labels on the output
    grid by default) and their ``affine``."""
    return SimpleNamespace(seg=_labels() if labels is None else labels,
                           affine=nifti_affine(OUTPUT.reference()) if affine is None else affine)


def test_native_outputs_writes_the_native_seg_of_a_preprocessed_case(tmp_path: Path) -> None:
    """``native=True`` writes ``<case>_seg_native.nii.gz`` on the reference's native grid."""
    case = _write_case(tmp_path)
    out = tmp_path / "pred"
    written = native_outputs(case, _prediction(), out, native=True)
    assert NATIVE_SEG_SUFFIX == "_seg_native.nii.gz"
    assert written == [out / f"{CASE_ID}_seg_native.nii.gz"]
    image = nib.load(written[0])
    assert image.get_data_dtype() == np.uint8 and image.shape == NATIVE["t1c"].size
    np.testing.assert_array_equal(np.asarray(image.dataobj), _nearest(_labels(), "t1c"))


def test_native_outputs_does_nothing_without_a_request_or_a_seg(tmp_path: Path) -> None:
    """Nothing asked, or a prediction without a ``seg``: nothing written."""
    case = _write_case(tmp_path)
    out = tmp_path / "pred"
    assert native_outputs(case, _prediction(), out) == []
    assert native_outputs(case, SimpleNamespace(seg=None, affine=nifti_affine(OUTPUT.reference())), out,
                          native=True, dicom_seg=True) == []
    assert not out.exists()


def test_native_outputs_of_a_case_not_preprocessed_here_only_warns(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """A case without ``preprocess/`` is already in its scan geometry: a warning, no file."""
    case = _write_case(tmp_path)
    folder = case.images["t1c"].parent
    (folder / "preprocess" / "geometry.json").unlink()
    out = tmp_path / "pred"
    out.mkdir()
    with caplog.at_level(logging.WARNING, logger="gliomics.preprocess.native"):
        assert native_outputs(case, _prediction(), out, native=True) == []
    assert [r.getMessage() for r in caplog.records] == [
        f"{folder}: not made by `gliomics preprocess`; its segmentation is already in the scan geometry"]
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("where", ["shape", "offset"])
def test_labels_array_off_the_output_grid_is_refused_naming_the_source(tmp_path: Path, where: str) -> None:
    """Labels in memory of another shape, or offset by 0.01 mm, are refused with an input error naming ``source``."""
    folder = _write_case(tmp_path).images["t1c"].parent
    affine, labels = nifti_affine(OUTPUT.reference()), _labels()
    if where == "shape":
        labels = labels[:-1]
    else:
        affine[0, 3] += 0.01
    out = tmp_path / "native.nii.gz"
    with pytest.raises(InputError) as info:
        labels_array_to_native(labels, affine, folder, out, source="the prediction of NAT-001")
    assert str(info.value) == (f"the prediction of NAT-001: not on the preprocessed grid of {folder} "
                               f"(shape {tuple(labels.shape)}, expected {OUTPUT.size})")
    assert not out.exists()


def _spy_dicom_seg(monkeypatch: pytest.MonkeyPatch, sequences: dict) -> list:
    """Replace the DICOM-SEG reader and writer by recorders (the labels given, the sequence asked for)."""
    import gliomics.io.dicom_seg as dicom_seg

    calls = []

    def write(labels, sources, out_path, *, sequence=None):
        calls.append((labels, sources, Path(out_path), sequence))
        return Path(out_path)

    monkeypatch.setattr(dicom_seg, "read_sources", lambda folder: {"folder": Path(folder), "sequences": sequences})
    monkeypatch.setattr(dicom_seg, "write_dicom_seg", write)
    return calls


def test_dicom_seg_of_a_preprocessed_case_is_written_from_the_native_labels(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The DICOM-SEG is made on the T1ce source series, from the labels mapped to the T1ce's native grid."""
    calls = _spy_dicom_seg(monkeypatch, {"t2f": ["b"], "t1c": ["a"]})
    case = _write_case(tmp_path)
    out = tmp_path / "pred"
    written = native_outputs(case, _prediction(), out, dicom_seg=True)
    assert written == [out / f"{CASE_ID}_seg.dcm"]
    ((labels, sources, out_path, sequence),) = calls
    assert sequence == "t1c" and out_path == written[0] and sources["folder"] == case.images["t1c"].parent
    assert Grid.of(labels) == NATIVE["t1c"] and labels.GetPixelID() == sitk.sitkUInt8
    np.testing.assert_array_equal(array_of(labels), _nearest(_labels(), "t1c"))


def test_dicom_seg_without_a_t1ce_source_uses_the_first_series(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a T1ce series the first recorded one is used, on its own native grid; both outputs are listed."""
    calls = _spy_dicom_seg(monkeypatch, {"t2f": ["b"], "t2w": ["c"]})
    case = _write_case(tmp_path)
    written = native_outputs(case, _prediction(), tmp_path / "pred", native=True, dicom_seg=True)
    assert [p.name for p in written] == [f"{CASE_ID}_seg_native.nii.gz", f"{CASE_ID}_seg.dcm"]
    ((labels, _, _, sequence),) = calls
    assert sequence == "t2f" and Grid.of(labels) == NATIVE["t2f"]
    np.testing.assert_array_equal(array_of(labels), _nearest(_labels(), "t2f"))


def test_dicom_seg_of_a_case_not_preprocessed_uses_the_seg_as_it_is(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Without transforms the labels go to the DICOM-SEG unchanged, cast to uint8."""
    calls = _spy_dicom_seg(monkeypatch, {"t1c": ["a"]})
    case = _write_case(tmp_path)
    (case.images["t1c"].parent / "preprocess" / "geometry.json").unlink()
    out = tmp_path / "pred"
    assert native_outputs(case, _prediction(_labels().astype(np.int16)), out, dicom_seg=True) == [
        out / f"{CASE_ID}_seg.dcm"]
    ((labels, _, _, sequence),) = calls
    assert sequence == "t1c" and labels.GetPixelID() == sitk.sitkUInt8 and Grid.of(labels).size == OUTPUT.size
    np.testing.assert_allclose(Grid.of(labels).origin, OUTPUT.origin, atol=1e-5)
    np.testing.assert_array_equal(array_of(labels), _labels())
