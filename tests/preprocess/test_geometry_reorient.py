"""Reorientation to RAS and output grids."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from gliomics.io.sitk_images import nifti_affine
from gliomics.preprocess.geometry import Grid, centred_grid, reorient_to_ras


def _lps_volume() -> sitk.Image:
    array = np.zeros((6, 7, 5), dtype=np.float32)  # z, y, x
    array[1, 2, 3] = 5.0
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((1.0, 2.0, 3.0))
    image.SetOrigin((10.0, -20.0, 30.0))
    return image  # identity direction: voxel axes increase towards Left, Posterior, Superior


def test_lps_volume_is_reoriented_to_ras_without_moving_any_voxel(tmp_path):
    lps = _lps_volume()
    assert nib.aff2axcodes(nifti_affine(lps)) == ("L", "P", "S")
    ras = reorient_to_ras(lps)
    assert nib.aff2axcodes(nifti_affine(ras)) == ("R", "A", "S")
    sitk.WriteImage(ras, str(tmp_path / "ras.nii.gz"))
    assert nib.aff2axcodes(nib.load(tmp_path / "ras.nii.gz").affine) == ("R", "A", "S")
    # The marked voxel stays at the same physical point.
    before = lps.TransformIndexToPhysicalPoint((3, 2, 1))
    index = np.argwhere(sitk.GetArrayViewFromImage(ras) == 5.0)[0][::-1]
    np.testing.assert_allclose(ras.TransformIndexToPhysicalPoint(tuple(int(i) for i in index)), before)
    assert ras.GetSize() == lps.GetSize() and ras.GetSpacing() == lps.GetSpacing()


def test_centred_grid_is_centred_and_round_trips_through_json():
    grid = centred_grid((1.0, 2.0, 3.0), (240, 240, 155), 1.0)
    np.testing.assert_allclose(grid.centre(), (1.0, 2.0, 3.0))
    assert nib.aff2axcodes(nifti_affine(grid.reference())) == ("R", "A", "S")
    assert Grid.from_dict(grid.to_dict()) == grid
