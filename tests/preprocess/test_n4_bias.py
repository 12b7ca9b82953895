"""N4 bias-field correction removes a smooth multiplicative field."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from gliomics.preprocess.bias import n4_correct


def _tissue_and_bias(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    shape = (36, 36, 32)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    radius = np.sqrt((grid**2).sum(0))
    tissue = np.where(radius < 0.9, 100.0, 0.0)
    tissue[(radius < 0.45)] = 60.0  # an inner class, so the field is not trivially "make everything equal"
    bias = np.exp(0.35 * grid[0] - 0.25 * grid[2] + 0.15 * grid[1] ** 2)
    noise = np.random.default_rng(seed).normal(0, 1.0, shape)
    return tissue, bias, np.where(tissue > 0, tissue * bias + noise, 0.0)


def _cv(values: np.ndarray) -> float:
    return float(values.std() / values.mean())


@pytest.mark.parametrize("shrink", [2])
def test_n4_reduces_a_synthetic_bias_field(shrink):
    tissue, bias, observed = _tissue_and_bias()
    image = sitk.GetImageFromArray(observed.astype(np.float32))
    corrected, log_field = n4_correct(image, shrink=shrink, iterations=(50, 50, 50))
    out = sitk.GetArrayFromImage(corrected)
    outer = (tissue == 100.0)
    assert _cv(out[outer]) < 0.5 * _cv(observed[outer])
    # The estimated field follows the true one (up to N4's free global scale).
    field = sitk.GetArrayFromImage(log_field)[outer]
    assert np.corrcoef(field, np.log(bias[outer]))[0, 1] > 0.9
    assert np.all(out[tissue == 0] == 0)  # the background stays zero


def test_n4_rejects_bad_shrink():
    with pytest.raises(ValueError, match="shrink"):
        n4_correct(sitk.Image(8, 8, 8, sitk.sitkFloat32), shrink=0)
