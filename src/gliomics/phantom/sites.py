"""Scanner (site) effects: intensity scale and gamma, bias field, Rician noise and blur, drawn once per site."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from gliomics.constants import SEQUENCES
from gliomics.phantom.render import TISSUE_MEANS

SCALE_RANGE = (0.8, 1.25)
GAMMA_RANGE = (0.85, 1.15)
MAX_BIAS = 0.20
NOISE_RANGE = (0.01, 0.04)  # Rician sigma as a fraction of WM intensity
BLUR_RANGE_MM = (0.0, 1.0)
BIAS_TERMS = 3
BIAS_MIN_WAVELENGTH_MM = 200.0


@dataclass
class Site:
    """One scanner's parameters, per sequence in SEQUENCES order."""

    name: str
    scale: np.ndarray
    gamma: np.ndarray
    bias_amplitude: np.ndarray
    noise: float
    blur_mm: float
    bias_terms: list = field(repr=False, default_factory=list)  # per sequence: [(weight, wavevector, phase)]

    def describe(self) -> dict:
        return {"site": self.name, "noise": round(self.noise, 4), "blur_mm": round(self.blur_mm, 3),
                **{f"scale_{s}": round(float(v), 4) for s, v in zip(SEQUENCES, self.scale)},
                **{f"gamma_{s}": round(float(v), 4) for s, v in zip(SEQUENCES, self.gamma)},
                **{f"bias_{s}": round(float(v), 4) for s, v in zip(SEQUENCES, self.bias_amplitude)}}


def site_name(index: int) -> str:
    """Spreadsheet-style site letters: 0 → A, 25 → Z, 26 → AA."""
    name = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        name = chr(ord("A") + rem) + name
    return name


def make_site(name: str, seed: int) -> Site:
    """Draw a site's parameters from (seed, name): sites under other seeds stand for other institutions."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5173, *map(ord, name)]))
    n = len(SEQUENCES)
    terms = []
    for _ in range(n):
        seq_terms = []
        for _ in range(BIAS_TERMS):
            k = rng.normal(size=3)
            k *= 2 * np.pi / (BIAS_MIN_WAVELENGTH_MM * rng.uniform(1.0, 2.0) * np.linalg.norm(k))
            seq_terms.append((rng.uniform(0.3, 1.0), k, rng.uniform(0, 2 * np.pi)))
        terms.append(seq_terms)
    return Site(name=name, scale=rng.uniform(*SCALE_RANGE, n), gamma=rng.uniform(*GAMMA_RANGE, n),
                bias_amplitude=rng.uniform(0, MAX_BIAS, n), noise=float(rng.uniform(*NOISE_RANGE)),
                blur_mm=float(rng.uniform(*BLUR_RANGE_MM)), bias_terms=terms)


def apply_site(images: np.ndarray, brain: np.ndarray, affine: np.ndarray, site: Site,
               rng: np.random.Generator) -> np.ndarray:
    """Blur, bias field, scale/gamma and Rician noise; the background stays 0 (skull-stripped)."""
    spacing = float(abs(affine[0, 0]))
    axes = [affine[i, 3] + affine[i, i] * np.arange(n) for i, n in enumerate(brain.shape)]
    out = np.empty_like(images)
    for s in range(images.shape[0]):
        img = images[s]
        if site.blur_mm > 0.05:
            img = ndimage.gaussian_filter(img, site.blur_mm / spacing)
        # cos(k·p + φ) = Re(e^{iφ} e^{ik_x x} e^{ik_y y} e^{ik_z z}): separable, so no full-grid cosine is needed
        bias = np.zeros(brain.shape, dtype=np.complex64)
        weights = sum(w for w, _, _ in site.bias_terms[s])
        for w, k, ph in site.bias_terms[s]:
            ex, ey, ez = (np.exp(1j * k[i] * axes[i]).astype(np.complex64) for i in range(3))
            bias += (w / weights * np.exp(1j * ph)) * ex[:, None, None] * (ey[:, None] * ez[None, :])[None]
        bias = bias.real
        img = img * (1.0 + site.bias_amplitude[s] * bias)
        img = site.scale[s] * np.power(np.maximum(img, 0.0), site.gamma[s])
        sigma = site.noise * site.scale[s] * TISSUE_MEANS["wm"][s] ** site.gamma[s]
        real = img + sigma * rng.standard_normal(img.shape, dtype=np.float32)
        imag = sigma * rng.standard_normal(img.shape, dtype=np.float32)
        img = np.sqrt(real * real + imag * imag)
        img[~brain] = 0.0
        out[s] = img
    return out
