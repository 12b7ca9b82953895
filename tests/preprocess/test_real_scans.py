"""Real scans (``../shared/real`` beside the repository): their intensity quirks are flagged, and raw thick-slice
studies come out of ``preprocess`` with the brain that a careful pipeline found in them.

The raw TCIA series of TCGA-FG-6692 (not skull-stripped, 5.5 mm slices) and the natively stripped series of
TCGA-DU-7294 are preprocessed with the atlas set to their own preprocessed T1 from ``cases/`` (SRI24 space,
skull-stripped by HD-BET there); our brain mask is then compared, on our output grid, with that case's non-zero
voxels resampled by physical position (nearest neighbour). The registration is ours, so the figure measures
registration and skull stripping together.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from gliomics.io import discover_cases
from gliomics.io.sitk_images import read_image
from gliomics.preprocess import PreprocessSettings, preprocess_case
from gliomics.preprocess.intensity import intensity_flags, stored_dtype
from gliomics.preprocess.quality import coverage

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "real"


@pytest.fixture(scope="module")
def real() -> Path:
    assert (REAL / "README.md").is_file(), f"{REAL}: the real scans are missing (expected ../shared/real)"
    return REAL


def _nonzero(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(read_image(path)) != 0


def test_quirks_of_the_real_cases_are_flagged(real):
    cases = real / "cases"
    bright = intensity_flags(sitk.GetArrayFromImage(read_image(cases / "Brats18_TCIA10_639_1" /
                                                               "Brats18_TCIA10_639_1-t1c.nii.gz")))
    assert bright["saturated"] and bright["large_values"]
    assert stored_dtype(cases / "BrainLesionBraTS-preprocessed_case" /
                        "BrainLesionBraTS-preprocessed_case-t1n.nii.gz") == "float64"
    assert stored_dtype(cases / "TCGA-FG-6692" / "TCGA-FG-6692-t2f.nii.gz") == "int16"
    negative = intensity_flags(sitk.GetArrayFromImage(read_image(cases / "TCGA-FG-6692" / "TCGA-FG-6692-t2f.nii.gz")))
    assert 0 < negative["negative_share"] < 0.05 and negative["min"] < 0
    partial = cases / "Brats18_2013_20_1"
    brain = _nonzero(partial / "Brats18_2013_20_1-t1n.nii.gz")
    assert coverage(_nonzero(partial / "Brats18_2013_20_1-t2f.nii.gz"), brain) < 0.9
    assert coverage(_nonzero(partial / "Brats18_2013_20_1-t2w.nii.gz"), brain) > 0.95


def _reference_brain(case_dir: Path) -> sitk.Image:
    brain = None
    for path in sorted(case_dir.glob("*-t[12]*.nii.gz")):
        nonzero = sitk.Cast(sitk.NotEqual(read_image(path), 0.0), sitk.sitkUInt8)
        brain = nonzero if brain is None else sitk.Or(brain, nonzero)
    return brain


@pytest.mark.slow
@pytest.mark.parametrize(("raw", "reference"), [("TCGA-FG-6692", "TCGA-FG-6692"),
                                                 ("TCGA-DU-7294-native", "TCGA-DU-7294")])
def test_raw_scans_give_the_reference_brain(real, tmp_path, raw, reference):
    case = discover_cases(real / "raw" / raw)[0]
    atlas = real / "cases" / reference / f"{reference}-t1n.nii.gz"
    out = tmp_path / case.case_id
    record = preprocess_case(case, out, PreprocessSettings(atlas=atlas))  # deepbet, on the T1
    assert record["steps"]["brain_mask"]["method"] == "deepbet"
    ours = sitk.ReadImage(str(out / "preprocess" / "brain_mask.nii.gz"), sitk.sitkUInt8)
    theirs = sitk.Resample(_reference_brain(real / "cases" / reference), ours, sitk.Transform(),
                           sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    a, b = sitk.GetArrayFromImage(ours) > 0, sitk.GetArrayFromImage(theirs) > 0
    dice = 2 * (a & b).sum() / (a.sum() + b.sum())
    outside_ml = (a & ~b).sum() / 1000.0  # 1 mm voxels
    assert dice >= 0.93, f"Dice {dice:.4f}"
    assert outside_ml <= 100.0, f"{outside_ml:.1f} mL of our mask outside the reference brain"
    assert 800.0 <= record["steps"]["brain_mask"]["volume_ml"] <= 2000.0
