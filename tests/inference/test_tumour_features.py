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
