"""Prediction options in the run's config (``inference.predict``): defaults, validation, overrides, and the options
that reproduce a record's prediction."""

from __future__ import annotations

import pytest

from gliomics.config import DegradeOptions, PredictOptions
from gliomics.errors import ConfigError
from gliomics.inference.prediction import record_options
from gliomics.presets import apply_overrides, load_preset


def test_every_preset_carries_the_default_options_and_an_override_reaches_them():
    cfg = load_preset("mgmtnet_cpu")
    assert cfg.inference.predict == PredictOptions()
    cfg = apply_overrides(cfg, ["inference.predict.tta=true", "inference.predict.sequences=[t2f, t1c]"])
    assert cfg.inference.predict.tta is True
    assert cfg.inference.predict.sequences == ["t1c", "t2f"]  # in the BraTS order, whatever the order given


def test_updated_takes_a_mapping_or_the_explicit_fields_of_other_options():
    base = PredictOptions(tta=True, label_minimums=False)
    assert base.updated({"tta": False}) == PredictOptions(tta=False, label_minimums=False)
    # fields left at their defaults in the other options do not override
    assert base.updated(PredictOptions(calibration=False)) == PredictOptions(tta=True, label_minimums=False,
                                                                             calibration=False)
    assert base.updated(None) is base


@pytest.mark.parametrize(("change", "message"), [
    ({"sequences": ["t1c", "dwi"]}, r"prediction options: sequences: .*unknown: dwi"),
    ({"sequences": []}, r"prediction options: sequences: sequences must be a non-empty subset"),
    ({"min_component_mm3": -1}, r"prediction options: min_component_mm3: .*greater than or equal to 0"),
    ({"degrade": {"sequence": "t9", "name": "Gibbs ringing"}}, r"prediction options: degrade.sequence: unknown "),
    ({"surprise": True}, r"prediction options: surprise: unknown key"),
])
def test_invalid_options_are_one_clear_config_error(change, message):
    with pytest.raises(ConfigError, match=message):
        PredictOptions().updated(change)


def test_degrade_options_are_hashable_values():
    a = DegradeOptions(sequence="t2f", name="Gibbs ringing", seed=2)
    assert a == DegradeOptions(sequence="t2f", name="Gibbs ringing", seed=2) and hash(a) == hash(a.model_copy())


def test_record_options_reproduce_the_sequences_and_the_marker_source():
    assert record_options({"sequences_present": ["t1n", "t1c", "t2w", "t2f"], "markers_from": "readout"}) == {
        "sequences": None, "marker_readout": True}
    assert record_options({"sequences_present": ["t1c"], "markers_from": "network heads"}) == {
        "sequences": ["t1c"], "marker_readout": False}
    assert record_options({}) == {"sequences": None}
