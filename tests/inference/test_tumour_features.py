"""Tumour features of a predicted segmentation: volumes, shares, intensities, the mismatch sign and the location."""

from __future__ import annotations

import numpy as np
import pytest

from gliomics.constants import LABELS, SEQUENCES
from gliomics.inference.tumour_features import FEATURE_NAMES, tumour_features


def _case(shape=(24, 24, 20), seed=0):
    rng = np.random.default_rng(seed)
    image = rng.normal(0.0, 0.3, size=(len(SEQUENCES), *shape)).astype(np.float32)
    labels = np.zeros(shape, dtype=np.uint8)
    labels[4:12, 8:16, 6:14] = LABELS["SNFH"]
    labels[6:10, 10:14, 8:12] = LABELS["ET"]
    labels[7:9, 11:13, 9:11] = LABELS["NETC"]
    return image, labels


def _value(features, name):
    return float(features[FEATURE_NAMES.index(name)])


def test_one_value_per_name_and_volumes_in_millilitres():
    image, labels = _case()
    f = tumour_features(image, labels, voxel_mm3=27.0)
    assert f.shape == (len(FEATURE_NAMES),) and np.isfinite(f).all()
    n_et = int((labels == LABELS["ET"]).sum())
    assert _value(f, "log_volume_ET") == pytest.approx(np.log1p(n_et * 27.0 / 1000.0))
    n_core = n_et + int((labels == LABELS["NETC"]).sum())
    assert _value(f, "enhancing_share") == pytest.approx(n_et / (n_core + 1.0))
    assert _value(f, "log_volume_RC") == 0.0 and _value(f, "cavity_present") == 0.0


def test_intensity_quantiles_follow_the_region():
    image, labels = _case()
    brighter = image.copy()
    brighter[SEQUENCES.index("t1c")][labels == LABELS["ET"]] += 2.0
    a, b = tumour_features(image, labels, 1.0), tumour_features(brighter, labels, 1.0)
    assert _value(b, "ET_t1c_p50") - _value(a, "ET_t1c_p50") == pytest.approx(2.0, abs=1e-5)
    assert _value(b, "SNFH_t1c_p50") == pytest.approx(_value(a, "SNFH_t1c_p50"))


def test_mismatch_is_t2_over_flair_in_the_non_enhancing_core():
    image, labels = _case()
    netc = labels == LABELS["NETC"]
    image[SEQUENCES.index("t2w")][netc] = 2.0
    image[SEQUENCES.index("t2f")][netc] = -1.0
    assert _value(tumour_features(image, labels, 1.0), "t2_flair_mismatch") == pytest.approx(3.0)


def test_side_carries_no_information_but_the_lobe_does():
    image, labels = _case()
    flipped = tumour_features(image[:, ::-1].copy(), labels[::-1].copy(), 1.0)
    assert np.allclose(flipped, tumour_features(image, labels, 1.0), atol=1e-5)
    moved = np.roll(labels, 6, axis=1)
    assert _value(tumour_features(image, moved, 1.0), "offset_y") > _value(tumour_features(image, labels, 1.0),
                                                                          "offset_y")


def test_an_empty_prediction_gives_zeros_not_nans():
    image, labels = _case()
    f = tumour_features(image, np.zeros_like(labels), 1.0)
    assert np.isfinite(f).all() and _value(f, "ET_t1c_p90") == 0.0


def test_mismatched_grids_are_refused():
    image, labels = _case()
    with pytest.raises(ValueError, match="do not match"):
        tumour_features(image[:, :-1], labels, 1.0)


# ---------------------------------------------------------------- exact values on hand-built masks


def _blank(shape=(10, 10, 10), value=0.5):
    """A brain filling ``[1:9]`` on each axis (every channel ``value``) and an empty label map."""
    image = np.zeros((len(SEQUENCES), *shape), dtype=np.float32)
    image[:, 1:9, 1:9, 1:9] = value
    return image, np.zeros(shape, dtype=np.uint8)


def _channel(image, name):
    return image[SEQUENCES.index(name)]


def test_feature_names_in_order():
    """Volumes, shares, the region x sequence x quantile intensities, the shape features and the location."""
    intensities = [f"{r}_{s}_p{q}" for r in ("NETC", "ET", "SNFH") for s in ("t1n", "t1c", "t2w", "t2f")
                   for q in (10, 50, 90)]
    assert FEATURE_NAMES == ("log_volume_NETC", "log_volume_SNFH", "log_volume_ET", "log_volume_RC",
                             "enhancing_share", "log_oedema_ratio", "cavity_present", *intensities,
                             "t2_flair_mismatch", "calcified_share", "necrotic_share", "core_irregularity",
                             "offset_x", "offset_y", "offset_z", "offset_x_squared", "offset_y_squared",
                             "offset_z_squared", "offset_yz")
    assert FEATURE_NAMES[7:11] == ("NETC_t1n_p10", "NETC_t1n_p50", "NETC_t1n_p90", "NETC_t1c_p10")
    assert len(FEATURE_NAMES) == 54


def test_volumes_shares_and_oedema_ratio_exact():
    """Each label's log volume in millilitres scales with the voxel size; shares and ratio count voxels."""
    image, labels = _blank()
    labels[2, 2, 2:6] = LABELS["NETC"]  # 4
    labels[3, 2, 2:8] = LABELS["ET"]  # 6
    labels[4, 2:7, 2:4] = LABELS["SNFH"]  # 10
    labels[6, 6, 6:8] = LABELS["RC"]  # 2
    f = tumour_features(image, labels, voxel_mm3=2.5)
    assert _value(f, "log_volume_NETC") == pytest.approx(np.log1p(4 * 2.5 / 1000.0), rel=1e-12)
    assert _value(f, "log_volume_ET") == pytest.approx(np.log1p(6 * 2.5 / 1000.0), rel=1e-12)
    assert _value(f, "log_volume_SNFH") == pytest.approx(np.log1p(10 * 2.5 / 1000.0), rel=1e-12)
    assert _value(f, "log_volume_RC") == pytest.approx(np.log1p(2 * 2.5 / 1000.0), rel=1e-12)
    assert _value(f, "enhancing_share") == pytest.approx(6 / 11, rel=1e-12)
    assert _value(f, "log_oedema_ratio") == pytest.approx(np.log(11 / 13), rel=1e-12)
    assert _value(f, "cavity_present") == 0.0
    assert f.dtype == np.float64 and f.shape == (54,)


def test_cavity_is_present_from_250_cubic_millimetres():
    """The resection cavity counts when its volume reaches 250 mm^3 exactly."""
    image, labels = _blank()
    labels[2, 2:7, 2:4] = LABELS["RC"]  # 10 voxels
    assert _value(tumour_features(image, labels, 25.0), "cavity_present") == 1.0
    assert _value(tumour_features(image, labels, 24.99), "cavity_present") == 0.0
    assert _value(tumour_features(image, labels, 25.0), "log_volume_RC") == pytest.approx(np.log1p(0.25))


def test_intensity_quantiles_need_three_voxels_per_region():
    """The 10th, 50th and 90th percentiles of each sequence in a region of three voxels; a region of two gives
    zeros."""
    image, labels = _blank()
    et = [(2, 2, 2), (2, 2, 3), (2, 2, 4)]
    for k, s in enumerate(SEQUENCES):
        for v, idx in zip((1.0, 2.0, 6.0), et, strict=True):
            _channel(image, s)[idx] = v + k
    for idx in et:
        labels[idx] = LABELS["ET"]
    labels[5, 5, 5:7] = LABELS["NETC"]
    f = tumour_features(image, labels, 1.0)
    for k, s in enumerate(SEQUENCES):
        # sorted (1, 2, 6) + k: p10 at position 0.2, p50 the middle, p90 at position 1.8
        assert _value(f, f"ET_{s}_p10") == pytest.approx(1.2 + k, rel=1e-6)
        assert _value(f, f"ET_{s}_p50") == pytest.approx(2.0 + k, rel=1e-6)
        assert _value(f, f"ET_{s}_p90") == pytest.approx(5.2 + k, rel=1e-6)
        assert [_value(f, f"NETC_{s}_p{q}") for q in (10, 50, 90)] == [0.0, 0.0, 0.0]
        assert [_value(f, f"SNFH_{s}_p{q}") for q in (10, 50, 90)] == [0.0, 0.0, 0.0]
    # a double-precision image is measured in single precision
    double = image.astype(np.float64)
    for idx, v in zip(et, (0.0, 0.1, 0.2), strict=True):
        double[SEQUENCES.index("t1c")][idx] = v
    g = tumour_features(double, labels, 1.0)
    assert _value(g, "ET_t1c_p50") == float(np.float32(0.1))


def test_mismatch_needs_three_non_enhancing_voxels():
    """T2 median minus FLAIR median over the NETC; with fewer than three NETC voxels the sign is 0."""
    image, labels = _blank()
    netc = [(3, 3, 3), (3, 3, 4), (3, 3, 5)]
    for idx, t2, fl in zip(netc, (1.0, 2.0, 6.0), (0.0, -1.0, 5.0), strict=True):
        labels[idx] = LABELS["NETC"]
        _channel(image, "t2w")[idx], _channel(image, "t2f")[idx] = t2, fl
    assert _value(tumour_features(image, labels, 1.0), "t2_flair_mismatch") == pytest.approx(2.0)
    labels[netc[2]] = LABELS["ET"]
    assert _value(tumour_features(image, labels, 1.0), "t2_flair_mismatch") == 0.0


def test_calcified_share_counts_core_voxels_dark_on_t2_and_flair():
    """Core voxels below -1 on both T2 and FLAIR (strictly), over the core volume plus one."""
    image, labels = _blank()
    labels[2, 2:6, 2] = LABELS["NETC"]  # 4
    labels[3, 2:5, 2] = LABELS["ET"]  # 3
    labels[4, 2, 2] = LABELS["SNFH"]
    t2, fl = _channel(image, "t2w"), _channel(image, "t2f")
    t2[2, 2, 2], fl[2, 2, 2] = -2.0, -2.0  # calcified NETC
    t2[3, 2, 2], fl[3, 2, 2] = -1.5, -3.0  # calcified ET
    t2[2, 3, 2], fl[2, 3, 2] = -1.0, -2.0  # T2 exactly -1: not
    t2[2, 4, 2], fl[2, 4, 2] = -2.0, 0.5  # bright on FLAIR: not
    t2[4, 2, 2], fl[4, 2, 2] = -2.0, -2.0  # oedema is not core
    assert _value(tumour_features(image, labels, 1.0), "calcified_share") == pytest.approx(2 / 8)


def test_necrotic_share_is_netc_darker_than_the_brain_median_minus_half():
    """NETC voxels with T1ce strictly below (brain median - 0.5), over the NETC volume plus one."""
    image, labels = _blank(value=1.0)
    t1c = _channel(image, "t1c")
    netc = [(2, 2, 2), (2, 2, 3), (2, 2, 4), (2, 2, 5)]
    for idx, v in zip(netc, (0.0, 0.49, 0.5, 2.0), strict=True):
        labels[idx] = LABELS["NETC"]
        t1c[idx] = v
    t1c[5, 5, 5] = 0.2  # an ET voxel below the cut-off does not count
    labels[5, 5, 5] = LABELS["ET"]
    # brain median of T1ce is 1.0: the cut-off is 0.5, exclusive
    assert _value(tumour_features(image, labels, 1.0), "necrotic_share") == pytest.approx(2 / 5)
    # no brain: the cut-off is 0.0
    empty = np.zeros_like(image)
    assert _value(tumour_features(empty, labels, 1.0), "necrotic_share") == 0.0


@pytest.mark.parametrize(("block", "expected"), [
    ((slice(3, 5), slice(3, 5), slice(3, 5)), 8 / 8 ** (2 / 3)),  # a 2-cube erodes away: all surface
    ((slice(3, 6), slice(3, 6), slice(3, 6)), 26 / 27 ** (2 / 3)),  # a 3-cube keeps its centre
    ((slice(3, 4), slice(3, 5), slice(3, 6)), 6 / 6 ** (2 / 3)),  # six voxels: just enough
    ((slice(3, 4), slice(3, 4), slice(3, 8)), 0.0),  # five voxels: too few
])
def test_core_irregularity_is_surface_over_volume_to_two_thirds(block, expected):
    """Surface voxels of the tumour core (NETC and ET) over its voxel count to the power 2/3, above five voxels."""
    image, labels = _blank()
    labels[block] = LABELS["ET"]
    if labels[4, 4, 4]:
        labels[4, 4, 4] = LABELS["NETC"]  # the core holds the NETC too
    assert _value(tumour_features(image, labels, 1.0), "core_irregularity") == pytest.approx(expected, rel=1e-9)


def _reference_offsets(tumour, brain):
    grid = np.stack(np.meshgrid(*[np.linspace(-1.0, 1.0, s) for s in brain.shape], indexing="ij"))
    b = np.array([g[brain].mean() for g in grid])
    spread = np.array([max(g[brain].std(), 1e-3) for g in grid])
    return (np.array([g[tumour].mean() for g in grid]) - b) / spread


def test_location_offsets_squares_and_product():
    """The tumour's centre minus the brain's over the brain's spread, x folded, their squares and the y*z product."""
    image, labels = _blank(shape=(10, 12, 8))
    image[:, 1:9, 1:11, 1:7] = 0.5
    labels[1:3, 8:10, 1:3] = LABELS["SNFH"]  # left, anterior, inferior; oedema alone is tumour too
    labels[2, 9, 2] = LABELS["RC"]
    labels[4, 10, 1] = LABELS["NETC"]  # every label counts as tumour
    f = tumour_features(image, labels, 1.0)
    brain = np.abs(image).sum(0) > 0
    off = _reference_offsets(labels > 0, brain)
    assert off[0] < 0 and off[1] > 0 and off[2] < 0
    names = ["offset_x", "offset_y", "offset_z", "offset_x_squared", "offset_y_squared", "offset_z_squared",
             "offset_yz"]
    expected = [abs(off[0]), off[1], off[2], off[0] ** 2, off[1] ** 2, off[2] ** 2, off[1] * off[2]]
    np.testing.assert_allclose([_value(f, n) for n in names], expected, rtol=1e-9)


def test_location_of_a_flat_brain_uses_the_minimum_spread():
    """A brain one voxel thick along z has its spread floored at 1e-3; the brain is where any channel is non-zero."""
    image = np.zeros((len(SEQUENCES), 6, 6, 5), dtype=np.float32)
    image[SEQUENCES.index("t2f"), 1:5, 1:5, 2] = -0.5
    labels = np.zeros((6, 6, 5), dtype=np.uint8)
    labels[2, 2, 3] = LABELS["ET"]
    f = tumour_features(image, labels, 1.0)
    # z grid: -1, -0.5, 0, 0.5, 1; brain at z = 0, tumour at z = 0.5
    assert _value(f, "offset_z") == pytest.approx(0.5 / 1e-3, rel=1e-6)
    assert _value(f, "offset_x") == pytest.approx(abs(_reference_offsets(labels > 0, image[3] != 0)[0]), rel=1e-9)


def test_location_is_zero_without_tumour_or_without_brain():
    """No tumour: the offsets are zero; no brain at all: all seven location features are zero."""
    image, labels = _blank()
    f = tumour_features(image, labels, 1.0)
    assert [_value(f, n) for n in FEATURE_NAMES[-7:]] == [0.0] * 7
    labels[2, 2, 2] = LABELS["ET"]
    g = tumour_features(np.zeros_like(image), labels, 1.0)
    assert [_value(g, n) for n in FEATURE_NAMES[-7:]] == [0.0] * 7


def test_wrong_number_of_channels_is_refused():
    """The image must have one channel per sequence."""
    image, labels = _blank()
    with pytest.raises(ValueError, match="do not match"):
        tumour_features(image[:3], labels, 1.0)
