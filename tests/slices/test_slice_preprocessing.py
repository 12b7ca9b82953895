"""Preprocessing of ROI slices: NLM denoising, Laplacian edge enhancement, [0, 1] scaling, bicubic resize."""

from __future__ import annotations

import numpy as np
import pytest

from gliomics.slices.preprocessing import (
    denoise_slice,
    enhance_edges,
    noise_sigma,
    preprocess_slice,
    resize_bicubic,
    scale_unit,
)


def _noisy_disc(side: int = 48, sigma: float = 10.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:side, :side]
    clean = np.where((yy - side / 2) ** 2 + (xx - side / 2) ** 2 < (side / 4) ** 2, 300.0, 100.0)
    return clean + np.random.default_rng(seed).normal(0, sigma, clean.shape), clean


@pytest.mark.parametrize("size", [32, 224])
def test_preprocess_gives_a_square_float_image_in_unit_range(size):
    image, _ = _noisy_disc(40)
    out = preprocess_slice(image[:40, :30], edge_weight=0.7, size=size)
    assert out.shape == (size, size) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0 and out.max() > 0.5


def test_noise_sigma_estimates_gaussian_noise():
    flat = np.random.default_rng(1).normal(50.0, 4.0, (64, 64))
    assert noise_sigma(flat) == pytest.approx(4.0, rel=0.1)
    assert noise_sigma(np.ones((2, 9))) == 0.0


def test_denoising_lowers_the_error_against_the_clean_image():
    noisy, clean = _noisy_disc()
    denoised = denoise_slice(noisy)
    assert denoised.shape == noisy.shape and denoised.dtype == np.float32
    assert np.abs(denoised - clean).mean() < 0.6 * np.abs(noisy - clean).mean()


def test_edge_enhancement_raises_the_contrast_at_an_edge_only():
    step = np.zeros((8, 8), dtype=np.float32)
    step[:, 4:] = 1.0
    np.testing.assert_array_equal(enhance_edges(step, 0.0), step)
    sharp = enhance_edges(step, 0.5)
    assert sharp[:, 3].max() < 0 and sharp[:, 4].min() > 1  # over- and undershoot on both sides of the edge
    np.testing.assert_allclose(sharp[:, [0, 1, 6, 7]], step[:, [0, 1, 6, 7]])
    with pytest.raises(ValueError):
        enhance_edges(step, -1.0)


def test_scale_unit_and_resize():
    image = np.linspace(-3, 7, 100, dtype=np.float32).reshape(10, 10)
    scaled = scale_unit(image, (0.0, 100.0))
    assert scaled.min() == 0.0 and scaled.max() == 1.0
    assert (scale_unit(np.full((4, 4), 3.0)) == 0).all()
    assert resize_bicubic(scaled, 7).shape == (7, 7)
    big = resize_bicubic(scaled, 50)
    assert big.shape == (50, 50) and 0.0 <= big.min() and big.max() <= 1.0
