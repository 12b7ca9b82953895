"""The SimpleITK ↔ NIfTI bridge: affines and voxel order round trip with nibabel; bad images are one error."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from gliomics.errors import ImageError, InputError
from gliomics.io.sitk_images import array_of, image_from_array, image_like, nifti_affine, read_image


def test_affine_conversion_round_trips_with_nibabel(tmp_path):
    affine = np.array([[-1.0, 0.0, 0.0, 8.0], [0.0, 0.0, 2.0, -5.0], [0.0, 1.5, 0.0, 3.0], [0, 0, 0, 1]])
    array = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    nib.save(nib.Nifti1Image(array, affine), tmp_path / "a.nii.gz")
    image = sitk.ReadImage(str(tmp_path / "a.nii.gz"))
    np.testing.assert_allclose(nifti_affine(image), affine, atol=1e-5)
    np.testing.assert_array_equal(array_of(image), array)
    again = image_from_array(array, affine)
    np.testing.assert_allclose(nifti_affine(again), affine, atol=1e-6)
    np.testing.assert_array_equal(array_of(again), array)


def test_read_image_checks_the_file_the_dimension_and_the_voxels(tmp_path):
    with pytest.raises(InputError, match=r"nope\.nii\.gz: not found"):
        read_image(tmp_path / "nope.nii.gz")
    (tmp_path / "bad.nii.gz").write_bytes(gzip.compress(b"not a nifti")[:10])
    with pytest.raises(ImageError, match=r"bad\.nii\.gz: cannot read image"):
        read_image(tmp_path / "bad.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((4, 4), np.float32), np.eye(4)), tmp_path / "flat.nii.gz")
    with pytest.raises(ImageError, match="expected a 3D image, got 2D"):
        read_image(tmp_path / "flat.nii.gz")
    data = np.ones((4, 4, 4), np.float32)
    data[1, 2, 3] = np.nan
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "nan.nii.gz")
    with pytest.raises(ImageError, match="1 voxels are NaN or infinite"):
        read_image(tmp_path / "nan.nii.gz")
    data[1, 2, 3] = 2.0
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 3.0, 4.0, 1.0])), tmp_path / "ok.nii.gz")
    image = read_image(tmp_path / "ok.nii.gz")
    assert image.GetSpacing() == (2.0, 3.0, 4.0) and array_of(image)[1, 2, 3] == 2.0


def test_image_like_puts_an_array_on_another_images_grid():
    like = sitk.Image([5, 4, 3], sitk.sitkFloat32)
    like.SetSpacing((1.5, 2.0, 3.0))
    like.SetOrigin((10.0, -4.0, 7.0))
    like.SetDirection((-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0))
    array = np.arange(60, dtype=np.uint8).reshape(5, 4, 3)
    image = image_like(array, like)
    np.testing.assert_array_equal(array_of(image), array)
    assert image.GetSpacing() == like.GetSpacing() and image.GetOrigin() == like.GetOrigin()
    assert image.GetDirection() == like.GetDirection()
