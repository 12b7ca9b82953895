"""Quality control: coverage of the brain by a sequence, similarity after registration, brain volume, warnings, and
the QC picture."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from gliomics.preprocess.geometry import centred_grid
from gliomics.preprocess.qc_figure import draw_qc, mask_centre
from gliomics.preprocess.quality import (
    brain_volume_ml,
    coverage,
    coverage_warnings,
    data_on_grid,
    qc_record,
    similarity,
    volume_warning,
)


def _textured(shape=(24, 24, 20), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    from scipy import ndimage

    return ndimage.gaussian_filter(rng.normal(size=shape), 1.5).astype(np.float32)


def test_data_on_grid_maps_a_partial_field_of_view():
    grid = centred_grid((0.0, 0.0, 0.0), (20, 20, 20), 2.0)
    # a scan covering only the upper 20 mm of the grid's 40 mm (z from 0 to 20 mm)
    scan = sitk.Image([40, 40, 10], sitk.sitkFloat32) + 1.0
    scan.SetOrigin((-20.0, -20.0, 1.0))
    scan.SetSpacing((1.0, 1.0, 2.0))
    data = data_on_grid(scan, grid)
    assert 0.4 < data.mean() < 0.6
    assert data[:, :, -1].all() and not data[:, :, 0].any()  # RAS grid: the last z index is superior
    brain = np.ones(data.shape, dtype=bool)
    share = coverage(data, brain)
    assert 0.4 < share < 0.6
    assert coverage_warnings({"t2f": share, "t1n": 1.0}) == [
        f"t2f: covers {share:.0%} of the brain mask (field of view or data cut short)"]
    assert coverage(data, np.zeros_like(brain)) == 1.0


def test_similarity_is_highest_when_aligned():
    a = _textured()
    mask = np.ones(a.shape, dtype=bool)
    aligned = similarity(a, 2.0 * a + 5.0, mask)  # any monotone intensity change: still identical information
    shifted = similarity(a, np.roll(a, 3, axis=0), mask)
    unrelated = similarity(a, _textured(seed=1), mask)
    assert aligned > 1.9 and unrelated < shifted < aligned
    assert similarity(a, a, np.zeros_like(mask)) is None


def test_brain_volume_and_its_warning():
    mask = np.zeros((20, 20, 20), dtype=bool)
    mask[:10, :10, :10] = True
    assert brain_volume_ml(mask, 1.0) == 1.0 and brain_volume_ml(mask, (2.0, 2.0, 2.0)) == 8.0
    assert volume_warning(1400.0, "deepbet") is None
    low = volume_warning(120.0, "deepbet")
    assert low is not None and "120 mL" in low and "800-2000" in low
    assert volume_warning(2400.0, "atlas") is not None
    assert volume_warning(2400.0, "none") is None  # a head, not a brain


def test_qc_record_keys():
    record = qc_record("C1", brain={"method": "atlas", "source": "atlas", "sequence": None, "volume_ml": 1200.0},
                       similarity_to_reference={"t2f": 1.1}, similarity_to_atlas=1.05,
                       covered={"t2f": 0.5, "t1c": 1.0}, flags={"t1c": {}, "t2f": {}},
                       dtypes={"t1c": "int16", "t2f": "float64"}, warnings=["w"])
    assert set(record) == {"case_id", "brain_mask", "registration_similarity", "coverage", "intensity",
                           "stored_dtype", "read_as", "warnings"}
    assert list(record["coverage"]) == ["t1c", "t2f"]  # BraTS order, whatever order they came in
    assert record["registration_similarity"]["to_reference"] == {"t1c": None, "t2f": 1.1}


@pytest.mark.parametrize("with_atlas", [True, False])
def test_qc_picture(tmp_path, with_atlas):
    images = {s: _textured(seed=k) for k, s in enumerate(("t1n", "t1c", "t2f"))}
    brain = np.zeros((24, 24, 20), dtype=bool)
    brain[4:18, 6:20, 3:15] = True
    atlas = np.roll(brain, 2, axis=0) if with_atlas else None
    assert mask_centre(brain) == (10, 12, 8)
    path = draw_qc(images, brain, atlas, tmp_path / "qc.png", title="C1", brain_label="brain mask (atlas)")
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size[1] > png.size[0] > 200  # three rows of three planes
