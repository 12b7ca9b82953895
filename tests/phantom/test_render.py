"""Rendering semantics: label geometry and the spec's intensity orderings, with site effects applied."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from gliomics.constants import LABELS, SEQUENCES
from gliomics.phantom.anatomy import grid_affine, grid_shape, load_template, random_anatomy_transform, sample_anatomy
from gliomics.phantom.latents import sample_latents
from gliomics.phantom.render import render_case
from gliomics.phantom.sites import apply_site, make_site

SPACING = 3.0


def _render(seed: int, **overrides):
    rng = np.random.default_rng(seed)
    lat = dataclasses.replace(sample_latents(rng), **overrides)
    anatomy = sample_anatomy(SPACING, random_anatomy_transform(rng, load_template().brain_centre_mm))
    rendered = render_case(lat, anatomy, SPACING, rng)
    images = apply_site(rendered.images, anatomy.brain, grid_affine(SPACING), make_site("A", seed), rng)
    return lat, anatomy, rendered, images


@pytest.fixture(scope="module")
def preop():
    return _render(3, postop=0, enhancing_fraction=0.5, edema_ratio=2.0, core_radius_mm=20.0, mismatch=0,
                   calcification=0, necrosis=1)


@pytest.fixture(scope="module")
def postop():
    return _render(4, postop=1, enhancing_fraction=0.4, edema_ratio=2.0, core_radius_mm=20.0)


def test_grid_and_labels(preop, postop):
    for _, anatomy, rendered, images in (preop, postop):
        assert rendered.seg.shape == grid_shape(SPACING) == images.shape[1:]
        assert rendered.seg.dtype == np.uint8 and images.dtype == np.float32
        assert set(np.unique(rendered.seg)) <= set(LABELS.values())
        assert not rendered.seg[~anatomy.brain].any()
        assert np.all(images[:, ~anatomy.brain] == 0)  # skull-stripped
    assert grid_shape(1.0) == (240, 240, 155) and grid_shape(2.0) == (120, 120, 78)


def _boundary_neighbours(mask: np.ndarray, seg: np.ndarray) -> np.ndarray:
    shell = ndimage.binary_dilation(mask) & ~mask
    return seg[shell]


def test_et_is_a_shell_around_netc_and_snfh_surrounds_the_core(preop):
    lat, _, rendered, _ = preop
    seg = rendered.seg
    netc, et = seg == LABELS["NETC"], seg == LABELS["ET"]
    assert netc.sum() > 0 and et.sum() > 0
    around_netc = _boundary_neighbours(netc, seg)
    assert np.mean(around_netc == LABELS["ET"]) > 0.9
    core = netc | et
    around_core = _boundary_neighbours(core, seg)
    assert np.mean(around_core == LABELS["SNFH"]) > 0.6
    assert et.sum() / core.sum() == pytest.approx(lat.enhancing_fraction, abs=0.05)
    assert (seg == LABELS["SNFH"]).sum() / core.sum() == pytest.approx(lat.edema_ratio, rel=0.1)


def test_resection_cavity_removes_core(postop):
    lat, _, rendered, _ = postop
    assert (rendered.seg == LABELS["RC"]).any()
    assert rendered.resected_fraction >= 0.3


def _mean(images, seq, mask):
    return float(images[SEQUENCES.index(seq)][mask].mean())


def test_intensity_orderings(preop, postop):
    _, anatomy, rendered, images = preop
    wm = (anatomy.wm > 0.9) & (rendered.seg == 0)
    et, snfh = rendered.seg == LABELS["ET"], rendered.seg == LABELS["SNFH"]
    assert _mean(images, "t1c", et) > 1.15 * _mean(images, "t1c", wm)  # ET enhances
    assert _mean(images, "t2f", snfh) > 1.2 * _mean(images, "t2f", wm)  # oedema is FLAIR-bright
    _, anatomy, rendered, images = postop
    wm = (anatomy.wm > 0.9) & (rendered.seg == 0)
    rc = ndimage.binary_erosion(rendered.seg == LABELS["RC"])
    assert _mean(images, "t2f", rc) < 0.6 * _mean(images, "t2f", wm)  # cavity is FLAIR-dark like CSF
    assert _mean(images, "t2w", rc) > _mean(images, "t2w", wm)


def test_mismatch_renders_t2_bright_flair_dark():
    _, _, rendered, images = _render(5, postop=0, mismatch=1, enhancing_fraction=0.0, core_radius_mm=20.0)
    netc = ndimage.binary_erosion(rendered.seg == LABELS["NETC"], iterations=2)
    assert _mean(images, "t2w", netc) > 1.4 * _mean(images, "t2f", netc) * (1 / 1.25 / 1.25)
    assert not (rendered.seg == LABELS["ET"]).any()  # e < 0.05 leaves ET empty
