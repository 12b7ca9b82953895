"""The registration target: MNI152 2009a from nilearn's package data, or a template file."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from gliomics.errors import InputError
from gliomics.io import discover_cases
from gliomics.io.sitk_images import image_from_array
from gliomics.preprocess import PreprocessSettings, load_atlas, preprocess_case
from preprocess_testing import ATLAS_AFFINE, atlas_arrays


def test_default_atlas_is_mni152_with_its_brain_mask():
    atlas = load_atlas()
    assert atlas.name.startswith("MNI152 2009a")
    assert atlas.image.GetSize() == (197, 233, 189) and atlas.image.GetSpacing() == (1.0, 1.0, 1.0)
    brain = sitk.GetArrayViewFromImage(atlas.mask)
    assert 1.5e6 < int(brain.sum()) < 2.2e6  # about 1.9 L of brain at 1 mm


def test_template_file_without_mask_gets_its_foreground(tmp_path):
    image, mask, _ = atlas_arrays()
    sitk.WriteImage(image_from_array(image, ATLAS_AFFINE), str(tmp_path / "t.nii.gz"))
    atlas = load_atlas(tmp_path / "t.nii.gz")
    found = sitk.GetArrayFromImage(atlas.mask).transpose(2, 1, 0) > 0
    assert 2 * (found & (mask > 0)).sum() / (found.sum() + mask.sum()) > 0.9
    with pytest.raises(InputError, match="missing.nii.gz: not found"):
        load_atlas(tmp_path / "missing.nii.gz")


def test_phantom_case_registers_to_mni(tiny_phantom, tmp_path):
    case = discover_cases(tiny_phantom)[0]
    record = preprocess_case(case, tmp_path / case.case_id, PreprocessSettings(n4_shrink=2, skull_strip="atlas"))
    mask = nib.load(tmp_path / case.case_id / "preprocess" / "brain_mask.nii.gz").get_fdata() > 0
    t1c = nib.load(tmp_path / case.case_id / f"{case.case_id}-t1c.nii.gz")
    assert t1c.shape == (240, 240, 155)
    # The phantom's brain (non-zero voxels), carried to MNI space, fills the atlas's brain mask.
    inside = np.asarray(t1c.dataobj)[mask] != 0
    assert inside.mean() > 0.9
    assert record["steps"]["atlas"]["name"].startswith("MNI152")
