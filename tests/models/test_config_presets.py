"""Config: presets load, unknown keys name the file and key, inherits_from, typed overrides."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest
import yaml

from gliomics.config import LossConfig, RunConfig
from gliomics.constants import MARKERS
from gliomics.errors import ConfigError
from gliomics.models.registry import create_model, model_defaults
from gliomics.presets import apply_overrides, available_presets, load_preset, to_yaml


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.mark.parametrize("name", ["mgmtnet", "mgmtnet_cpu"])
def test_shipped_presets_load_and_match_the_registry(name: str) -> None:
    assert name in available_presets()
    cfg = load_preset(name)
    assert cfg.model.name == name
    defaults = model_defaults(name)
    for key, value in cfg.model.params.items():
        expected = defaults[key]
        assert (list(expected) if isinstance(expected, tuple) else expected) == value, key
    assert cfg.loss.label_smoothing == 0.1 and set(cfg.loss.marker_weights) == set(MARKERS)


def test_randomised_presets_name_their_ingredients() -> None:
    """The shipped model's preset keeps its seven ingredients whatever is added later; ``_all`` takes every one."""
    from gliomics.constants import RANDOMISATION_INGREDIENTS
    from gliomics.data.randomisation import randomisation_transforms

    seven = load_preset("mgmtnet_cpu_randomised").train
    assert seven.randomisation == 0.25
    assert seven.randomisation_ingredients == ["contrast", "bias", "gamma", "slices", "ringing", "noise", "stripping"]
    every = load_preset("mgmtnet_cpu_randomised_all").train
    assert every.randomisation == 0.25 and every.randomisation_ingredients == list(RANDOMISATION_INGREDIENTS)
    assert {"oedema", "compartments", "motion", "ghosts"} <= set(RANDOMISATION_INGREDIENTS)
    assert len(randomisation_transforms(0.25, (3.0, 3.0, 3.0), every.randomisation_ingredients)) == 11


def test_a_run_naming_no_ingredients_keeps_the_seven_image_ones() -> None:
    """An older run's config (``randomisation_ingredients: null``) trains with the ingredients it had: the seven."""
    from gliomics.data.randomisation import CompartmentContrast, KSpaceArtefact, OedemaGrowth, PerSequenced
    from gliomics.data.transforms import train_transforms

    chain = train_transforms((16, 16, 16), randomisation=0.25).transforms
    inner = [t.transform if isinstance(t, PerSequenced) else t for t in chain]
    assert not any(isinstance(t, (CompartmentContrast, OedemaGrowth, KSpaceArtefact)) for t in inner)
    names = {type(t).__name__ for t in inner}
    assert {"RandHistogramShift", "ThickSlices", "RandGibbsNoise", "StrippingError"} <= names


def test_cpu_preset_inherits_the_loss_but_not_the_paper_params() -> None:
    cfg = load_preset("mgmtnet_cpu")
    paper = load_preset("mgmtnet")
    assert cfg.loss == paper.loss
    assert cfg.model.params == {} and cfg.train.patch_size == [48, 48, 48]


def test_inherits_from_a_relative_path_merges_mappings(tmp_path: Path) -> None:
    _write(tmp_path / "base.yaml", {"inherits_from": "mgmtnet_cpu", "loss": {"lambda_ce": 2.0}})
    child = _write(
        tmp_path / "child.yaml",
        {"inherits_from": "base.yaml", "model": {"params": {"window_size": 2}}, "loss": {"focal": True}},
    )
    cfg = load_preset(child)
    assert cfg.model.name == "mgmtnet_cpu"
    assert cfg.model.params["window_size"] == 2 and "feature_size" not in cfg.model.params
    assert cfg.loss.lambda_ce == 2.0 and cfg.loss.focal is True


def test_unknown_keys_name_the_file_and_the_key(tmp_path: Path) -> None:
    bad = _write(tmp_path / "bad.yaml", {"inherits_from": "mgmtnet_cpu", "loss": {"lamda_dice": 1.0}})
    with pytest.raises(ConfigError, match=r"bad\.yaml: loss\.lamda_dice: unknown key"):
        load_preset(bad)
    bad_param = _write(tmp_path / "p.yaml", {"model": {"name": "mgmtnet_cpu", "params": {"window": 4}}})
    with pytest.raises(ConfigError, match=r"p\.yaml: model\.params\.window: unknown parameter"):
        load_preset(bad_param)
    bad_model = _write(tmp_path / "m.yaml", {"model": {"name": "unet3000"}})
    with pytest.raises(ConfigError, match=r"m\.yaml: model\.name: unknown model 'unet3000'"):
        load_preset(bad_model)
    bad_type = _write(tmp_path / "t.yaml", {"model": {"name": "segresnet"}, "loss": {"label_smoothing": "lots"}})
    with pytest.raises(ConfigError, match=r"t\.yaml: loss\.label_smoothing"):
        load_preset(bad_type)
    bad_marker = _write(tmp_path / "k.yaml", {"model": {"name": "segresnet"}, "loss": {"marker_weights": {"x": 1}}})
    with pytest.raises(ConfigError, match=r"k\.yaml: loss\.marker_weights: .*unknown marker"):
        load_preset(bad_marker)


def test_missing_presets_and_cycles(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown preset; available presets: .*mgmtnet_cpu"):
        load_preset("nope")
    with pytest.raises(ConfigError, match="config file not found"):
        load_preset(tmp_path / "absent.yaml")
    _write(tmp_path / "a.yaml", {"inherits_from": "b.yaml"})
    _write(tmp_path / "b.yaml", {"inherits_from": "a.yaml"})
    with pytest.raises(ConfigError, match="cycle"):
        load_preset(tmp_path / "a.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_preset(tmp_path / "list.yaml")


def test_overrides_parse_types() -> None:
    cfg = apply_overrides(
        load_preset("mgmtnet_cpu"),
        [
            "model.params.window_size=2",
            "model.params.mask_gating=false",
            "model.params.swin_depths=[1, 1]",
            "model.params.pooling=gap",
            "loss.label_smoothing=0.05",
            "loss.pos_weight.tert=4",
            "description=a run",
        ],
    )
    params = cfg.model.params
    assert params["window_size"] == 2 and params["mask_gating"] is False and params["swin_depths"] == [1, 1]
    assert params["pooling"] == "gap" and cfg.loss.label_smoothing == 0.05
    assert cfg.loss.pos_weight == {"tert": 4.0} and cfg.description == "a run"
    model = create_model(cfg.model.name, **{**params, "feature_size": 4, "embed_channels": 4, "swin_heads": [1, 1]})
    assert model.pool.mode == "gap"


@pytest.mark.parametrize(
    "override,match",
    [
        ("loss.focal", "expected KEY.PATH=VALUE"),
        ("loss.nope=1", r"loss\.nope: unknown key"),
        ("model.params.featur_size=8", r"model\.params\.featur_size: unknown parameter"),
        ("loss.focal.x=1", r"loss\.focal is not a mapping"),
        ("loss.lambda_ce=-1", r"loss\.lambda_ce"),
    ],
)
def test_bad_overrides(override: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        apply_overrides(load_preset("mgmtnet_cpu"), [override])


def test_yaml_round_trip(tmp_path: Path) -> None:
    cfg = apply_overrides(load_preset("mgmtnet_cpu"), ["loss.focal=true"])
    path = tmp_path / "resolved.yaml"
    path.write_text(to_yaml(cfg), encoding="utf-8")
    assert load_preset(path) == cfg


def test_models_are_plain_pydantic() -> None:
    assert issubclass(RunConfig, pydantic.BaseModel) and issubclass(LossConfig, pydantic.BaseModel)
    assert RunConfig.model_validate({"model": {"name": "mgmtnet"}}).model.name == "mgmtnet"
    with pytest.raises(pydantic.ValidationError) as err:
        RunConfig.model_validate({"model": {"name": "mgmtnet"}, "training": {}})
    assert [(e["type"], e["loc"]) for e in err.value.errors()] == [("extra_forbidden", ("training",))]
    assert LossConfig().deep_supervision_weights == [1.0, 0.5, 0.25]


def test_inference_settings_have_their_own_section_and_older_configs_still_load() -> None:
    cfg = load_preset("mgmtnet_cpu")
    assert cfg.inference.whole_volume_factor == 4.0 and cfg.inference.overlap == 0.25
    assert "whole_volume_factor" not in cfg.train.model_dump()
    # a run written before the section kept the keys under train: they move, and win over the section's
    old = cfg.model_dump(mode="json")
    old["train"].update(whole_volume_factor=2.5, val_overlap=0.5)
    moved = RunConfig.model_validate(old)
    assert (moved.inference.whole_volume_factor, moved.inference.overlap) == (2.5, 0.5)
    assert apply_overrides(cfg, ["train.whole_volume_factor=6"]).inference.whole_volume_factor == 6.0
    assert apply_overrides(cfg, ["inference.overlap=0.5"]).inference.overlap == 0.5
    # the working spacing was data.spacing
    old["data"]["spacing"] = [2.0, 2.0, 2.0]
    assert RunConfig.model_validate(old).data.working_spacing == [2.0, 2.0, 2.0]
