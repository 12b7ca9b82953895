"""Preprocessing of an ROI slice as in the TERT paper: non-local-means denoising, Laplacian edge enhancement,
scaling to [0, 1] and a bicubic resize to a square (224×224 in the paper).

Denoising is the slow step and does not depend on the settings searched, so it is separate from
:func:`finish_slice`, which the benchmark reruns for every edge weight it tries.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

__all__ = ["denoise_slice", "enhance_edges", "finish_slice", "noise_sigma", "preprocess_slice", "resize_bicubic",
           "scale_unit"]

#: Intensities below/above these percentiles are clipped before scaling to [0, 1], so that a few extreme pixels
#: (often overshoot of the edge enhancement) do not squeeze the contrast of the rest.
SCALE_PERCENTILES: tuple[float, float] = (0.5, 99.5)
# Immerkær's noise-estimation kernel: the difference of two Laplacians, which cancels image structure to first order.
_IMMERKAER = np.array([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])


def noise_sigma(image: np.ndarray) -> float:
    """Standard deviation of Gaussian noise in a 2D image.

    J. Immerkær, "Fast noise variance estimation", Computer Vision and Image Understanding 64(2):300-302, 1996.
    (scikit-image's ``estimate_sigma`` needs PyWavelets, which gliomics does not depend on.)
    """
    image = np.asarray(image, dtype=np.float64)
    h, w = image.shape
    if h < 3 or w < 3:
        return 0.0
    response = ndimage.convolve(image, _IMMERKAER, mode="nearest")[1:-1, 1:-1]
    return float(math.sqrt(math.pi / 2.0) * np.abs(response).sum() / (6.0 * (w - 2) * (h - 2)))


def denoise_slice(image: np.ndarray, *, h_factor: float = 0.8, patch_size: int = 5,
                  patch_distance: int = 6) -> np.ndarray:
    """Non-local-means denoising (scikit-image ``denoise_nl_means``, fast mode) with the filter strength
    ``h = h_factor · σ``, σ estimated by :func:`noise_sigma`.

    Returns:
        float32 image of the same shape; unchanged when no noise is found.
    """
    from skimage.restoration import denoise_nl_means

    image = np.asarray(image, dtype=np.float32)
    sigma = noise_sigma(image)
    if sigma <= 0.0 or h_factor <= 0.0:
        return image.copy()
    out = denoise_nl_means(image, h=h_factor * sigma, sigma=sigma, patch_size=patch_size,
                           patch_distance=patch_distance, fast_mode=True)
    return np.asarray(out, dtype=np.float32)


def enhance_edges(image: np.ndarray, weight: float) -> np.ndarray:
    """Laplacian sharpening ``image − weight · ∇²image`` (SciPy's 5-point Laplacian); ``weight`` 0 is a no-op."""
    if weight < 0:
        raise ValueError(f"edge weight must be non-negative, got {weight}")
    image = np.asarray(image, dtype=np.float32)
    if weight == 0:
        return image.copy()
    return (image - weight * ndimage.laplace(image, mode="nearest")).astype(np.float32)


def scale_unit(image: np.ndarray, percentiles: tuple[float, float] = SCALE_PERCENTILES) -> np.ndarray:
    """Clip to the given percentiles and scale linearly to [0, 1]; a constant image becomes zeros."""
    image = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(image, percentiles)
    if not hi > lo:
        return np.zeros_like(image)
    return ((np.clip(image, lo, hi) - lo) / (hi - lo)).astype(np.float32)


def resize_bicubic(image: np.ndarray, size: int) -> np.ndarray:
    """Bicubic resize (scikit-image, order 3) to ``size``×``size``, anti-aliased when shrinking, clipped to [0, 1]
    because bicubic interpolation overshoots at edges."""
    from skimage.transform import resize

    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    shrinking = min(image.shape) > size
    out = resize(np.asarray(image, dtype=np.float32), (size, size), order=3, mode="edge",
                 anti_aliasing=shrinking, preserve_range=True)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def finish_slice(denoised: np.ndarray, *, edge_weight: float, size: int) -> np.ndarray:
    """Edge enhancement, scaling to [0, 1] and bicubic resize of an already denoised ROI crop."""
    return resize_bicubic(scale_unit(enhance_edges(denoised, edge_weight)), size)


def preprocess_slice(crop: np.ndarray, *, edge_weight: float = 0.5, size: int = 224, h_factor: float = 0.8,
                     denoise: bool = True) -> np.ndarray:
    """The whole chain on one ROI crop: NLM denoising (optional), Laplacian edge enhancement, [0, 1], resize.

    Returns:
        float32 ``size``×``size`` image with values in [0, 1].
    """
    denoised = denoise_slice(crop, h_factor=h_factor) if denoise else np.asarray(crop, dtype=np.float32)
    return finish_slice(denoised, edge_weight=edge_weight, size=size)
