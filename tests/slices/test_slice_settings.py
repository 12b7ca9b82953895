"""The benchmark's settings: presets as YAML files read like the run presets, overrides, one-line errors."""

from __future__ import annotations

import pytest

from gliomics.errors import ConfigError
from gliomics.slices.settings import available_presets, make_settings


def test_shipped_presets_and_overrides():
    assert available_presets() == ["cpu", "paper"]
    cpu = make_settings("cpu", seed=4, size=None)
    assert (cpu.size, cpu.k, cpu.seed, cpu.minutes, cpu.patience) == (64, 3, 4, 3.0, 10)
    assert cpu.lr == make_settings("paper").lr  # inherited from the paper preset
    assert make_settings("paper").size == 224
    with pytest.raises(ConfigError, match=r"settings: marker: unknown marker 'egfr'"):
        make_settings("paper", marker="egfr")
    with pytest.raises(ConfigError, match="gpu: unknown preset; available presets: cpu, paper"):
        make_settings("gpu")
    with pytest.raises(ConfigError, match="unknown backbone"):
        make_settings("paper", backbones="vgg")


def test_a_yaml_file_of_settings_inherits_a_shipped_preset(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("inherits_from: cpu\nsize: 32\nbackbones: [shufflenet]\n")
    settings = make_settings(path, seed=2)
    assert (settings.size, settings.k, settings.backbones, settings.seed) == (32, 3, ["shufflenet"], 2)


@pytest.mark.parametrize(("text", "message"), [
    ("inherits_from: cpu\nsizee: 32\n", r"mine\.yaml: sizee: unknown key"),
    ("size: 8\n", r"mine\.yaml: size: Input should be greater than or equal to 16"),
    ("size: [32\n", r"mine\.yaml: cannot read YAML"),
    ("inherits_from: mine.yaml\n", r"inherits_from: cycle"),
])
def test_a_bad_settings_file_names_the_file_and_the_key(tmp_path, text, message):
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        make_settings(path)
