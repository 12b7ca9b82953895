from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from gliomics.constants import AFFINE_ATOL, BRATS2021_TO_2024, MAX_LABEL
from gliomics.errors import ImageError, InputError, LabelError, OutputError
from gliomics.io import Image, check_same_geometry, load_image, load_label, save_image

AFFINE = np.array([[-1.0, 0, 0, 8], [0, -1.0, 0, 8], [0, 0, 1.5, -9], [0, 0, 0, 1]])


def _write(path: Path, array: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    nib.save(nib.Nifti1Image(array, affine), path)
    return path


@pytest.fixture
def volume() -> np.ndarray:
    return np.random.default_rng(0).normal(100.0, 10.0, size=(16, 16, 12)).astype(np.float32)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_round_trip_keeps_affine_shape_dtype(tmp_path: Path, volume: np.ndarray, suffix: str) -> None:
    out = save_image(volume, AFFINE, tmp_path / f"img{suffix}")
    img = load_image(out)
    assert img.path == out
    assert img.shape == volume.shape
    assert img.array.dtype == np.float32
    np.testing.assert_array_equal(img.array, volume)
    np.testing.assert_allclose(img.affine, AFFINE)
    assert img.affine.dtype == np.float64 and img.affine.shape == (4, 4)
    assert img.spacing == pytest.approx((1.0, 1.0, 1.5))
    raw = nib.load(out)
    assert raw.get_data_dtype() == np.float32
    assert int(raw.header["sform_code"]) > 0 and int(raw.header["qform_code"]) > 0
    if suffix == ".nii.gz":
        assert out.read_bytes()[:2] == b"\x1f\x8b"  # gzip magic: nibabel compressed it


def test_save_with_header_keeps_it_and_sets_dtype_and_affine(tmp_path: Path, volume: np.ndarray) -> None:
    src = load_image(save_image(volume, AFFINE, tmp_path / "src.nii.gz"))
    src.header["descrip"] = b"kept"
    new_affine = AFFINE.copy()
    new_affine[:3, 3] += 2.0
    labels = (volume > 100).astype(np.uint8)
    out = save_image(labels, new_affine, tmp_path / "seg.nii.gz", header=src.header)
    raw = nib.load(out)
    assert raw.get_data_dtype() == np.uint8
    assert raw.header["descrip"].tobytes().rstrip(b"\x00") == b"kept"
    np.testing.assert_allclose(raw.header.get_sform(), new_affine)
    np.testing.assert_allclose(raw.header.get_qform(), new_affine, atol=1e-5)
    assert src.header["descrip"].tobytes().rstrip(b"\x00") == b"kept"
    assert src.header.get_data_dtype() == np.float32  # the caller's header was copied, not changed
    np.testing.assert_array_equal(load_label(out).array, labels)


def test_save_dtype_and_int64_bool(tmp_path: Path) -> None:
    data = np.arange(16 * 16 * 12, dtype=np.int64).reshape(16, 16, 12) % 5
    assert nib.load(save_image(data, AFFINE, tmp_path / "a.nii.gz")).get_data_dtype() == np.int32
    assert nib.load(save_image(data > 2, AFFINE, tmp_path / "b.nii.gz")).get_data_dtype() == np.uint8
    out = save_image(data, AFFINE, tmp_path / "c.nii.gz", dtype=np.int16)
    assert nib.load(out).get_data_dtype() == np.int16
    np.testing.assert_array_equal(load_image(out, dtype=np.int16).array, data)


def test_save_is_atomic_and_creates_parents(tmp_path: Path, volume: np.ndarray) -> None:
    out = save_image(volume, AFFINE, tmp_path / "a" / "b" / "img.nii.gz")
    assert out.is_file()
    assert sorted(p.name for p in out.parent.iterdir()) == ["img.nii.gz"]
    save_image(volume + 1, AFFINE, out)  # overwriting replaces in place
    np.testing.assert_allclose(load_image(out).array, volume + 1)
    assert sorted(p.name for p in out.parent.iterdir()) == ["img.nii.gz"]


def test_failing_write_leaves_nothing(tmp_path: Path, volume: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    target = tmp_path / "out" / "img.nii.gz"
    with pytest.raises(OutputError, match=str(target)):
        save_image(volume, AFFINE, target)
    assert list(target.parent.iterdir()) == []


def test_failing_write_keeps_previous_file(tmp_path: Path, volume: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    target = save_image(volume, AFFINE, tmp_path / "img.nii.gz")
    before = target.read_bytes()

    def broken_save(img, filename):
        Path(filename).write_bytes(b"partial")
        raise OSError("no space left on device")

    monkeypatch.setattr(nib, "save", broken_save)
    with pytest.raises(OutputError, match="no space left"):
        save_image(volume * 2, AFFINE, target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["img.nii.gz"]


def test_save_rejects_non_nifti_name_and_unwritable_parent(tmp_path: Path, volume: np.ndarray) -> None:
    with pytest.raises(OutputError, match=r"img\.png"):
        save_image(volume, AFFINE, tmp_path / "img.png")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="file"):
        save_image(volume, AFFINE, tmp_path / "file" / "img.nii.gz")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.nii.gz"
    with pytest.raises(InputError, match=f"^{path}: not found"):
        load_image(path)


def test_corrupt_gzip(tmp_path: Path) -> None:
    path = tmp_path / "random.nii.gz"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ImageError, match=f"^{path}: corrupt or truncated NIfTI"):
        load_image(path)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_truncated_file(tmp_path: Path, volume: np.ndarray, suffix: str) -> None:
    full = _write(tmp_path / f"full{suffix}", volume)
    data = full.read_bytes()
    path = tmp_path / f"half{suffix}"
    path.write_bytes(data[: len(data) // 2])
    assert nib.load(path).shape == volume.shape  # the header survives: the error appears only when reading data
    with pytest.raises(ImageError, match=f"^{path}: corrupt or truncated NIfTI"):
        load_image(path)


def test_2d_and_5d_images_are_rejected(tmp_path: Path) -> None:
    flat = _write(tmp_path / "flat.nii.gz", np.zeros((16, 16), np.float32))
    with pytest.raises(ImageError, match=rf"^{flat}: expected a 3D image, got shape \(16, 16\)"):
        load_image(flat)
    five = _write(tmp_path / "five.nii.gz", np.zeros((16, 16, 12, 1, 3), np.float32))
    with pytest.raises(ImageError, match=rf"^{five}: expected a 3D image, got shape \(16, 16, 12, 1, 3\)"):
        load_image(five)
    four = _write(tmp_path / "four.nii.gz", np.zeros((16, 16, 12, 2), np.float32))
    with pytest.raises(ImageError, match="expected a 3D image"):
        load_image(four)


def test_trailing_singleton_dims_are_squeezed(tmp_path: Path, volume: np.ndarray) -> None:
    path = _write(tmp_path / "4d.nii.gz", volume[..., None, None])
    img = load_image(path)
    assert img.shape == (16, 16, 12)
    np.testing.assert_array_equal(img.array, volume)


def test_nan_voxels(tmp_path: Path, volume: np.ndarray) -> None:
    volume = volume.copy()
    volume.flat[:10] = np.nan
    volume.flat[10:12] = np.inf
    path = _write(tmp_path / "nan.nii.gz", volume)
    with pytest.raises(ImageError, match=f"^{path}: 12 voxels are NaN or infinite"):
        load_image(path)


def test_load_label(tmp_path: Path) -> None:
    seg = np.random.default_rng(1).integers(0, MAX_LABEL + 1, size=(16, 16, 12)).astype(np.int16)
    img = load_label(_write(tmp_path / "seg.nii.gz", seg))
    assert img.array.dtype == np.uint8
    np.testing.assert_array_equal(img.array, seg)
    # integer values stored as float are fine
    np.testing.assert_array_equal(load_label(_write(tmp_path / "f.nii.gz", seg.astype(np.float32))).array, seg)


def test_label_outside_range(tmp_path: Path) -> None:
    seg = np.zeros((16, 16, 12), np.int16)
    seg[0, 0, 0], seg[1, 1, 1] = 5, -1
    path = _write(tmp_path / "seg.nii.gz", seg)
    with pytest.raises(LabelError, match=rf"^{path}: label values -1, 5 are outside 0\.\.{MAX_LABEL}"):
        load_label(path)


def test_label_non_integer(tmp_path: Path) -> None:
    seg = np.zeros((16, 16, 12), np.float32)
    seg[0, 0, 0] = 1.5
    path = _write(tmp_path / "seg.nii.gz", seg)
    with pytest.raises(LabelError, match=f"^{path}: label values must be integers, found 1.5"):
        load_label(path)


def test_label_map_brats2021(tmp_path: Path) -> None:
    seg = np.zeros((16, 16, 12), np.uint8)
    seg[0], seg[1], seg[2] = 1, 2, 4
    img = load_label(_write(tmp_path / "seg.nii.gz", seg), label_map=BRATS2021_TO_2024)
    assert set(np.unique(img.array)) == {0, 1, 2, 3}
    assert (img.array[2] == 3).all()
    seg[3] = 3  # not a BraTS 2021 label
    path = _write(tmp_path / "bad.nii.gz", seg)
    with pytest.raises(LabelError, match=f"^{path}: label values 3 are not in the expected set"):
        load_label(path, label_map=BRATS2021_TO_2024)


def _image(path: str, shape=(4, 4, 4), affine=AFFINE) -> Image:
    return Image(np.zeros(shape, np.float32), np.asarray(affine, float), nib.Nifti1Header(), Path(path))


def test_check_same_geometry() -> None:
    check_same_geometry({"t1n": _image("a.nii.gz"), "t1c": _image("b.nii.gz", affine=AFFINE + AFFINE_ATOL / 2)})
    check_same_geometry({})
    with pytest.raises(ImageError, match=r"^b\.nii\.gz: shape \(4, 4, 5\) differs from a\.nii\.gz shape \(4, 4, 4\)"):
        check_same_geometry({"t1n": _image("a.nii.gz"), "t1c": _image("b.nii.gz", shape=(4, 4, 5))})
    shifted = AFFINE.copy()
    shifted[0, 3] += 1.0
    with pytest.raises(ImageError, match=r"^b\.nii\.gz: affine differs from a\.nii\.gz by up to 1"):
        check_same_geometry({"t1n": _image("a.nii.gz"), "t1c": _image("b.nii.gz", affine=shifted)})


def test_voxel_spacing_of_a_rotated_anisotropic_affine():
    import torch

    from gliomics.io import voxel_spacing

    theta = 0.3
    rotation = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([0.9, 1.2, 3.0])
    affine[:3, 3] = [10, -5, 2]
    assert voxel_spacing(affine) == pytest.approx((0.9, 1.2, 3.0))
    assert voxel_spacing(torch.as_tensor(affine)) == pytest.approx((0.9, 1.2, 3.0))  # a MetaTensor's affine
