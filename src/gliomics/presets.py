"""Presets and overrides of a run's configuration (:class:`~gliomics.config.RunConfig`): YAML presets with
``inherits_from``, ``a.b=value`` overrides, validation of plain data (a checkpoint's config) and YAML output.

A preset is a YAML file in ``gliomics/configs/`` (or any path)::

    inherits_from: mgmtnet          # a preset name, or a path relative to this file
    model:
      name: mgmtnet_cpu             # a name from gliomics.models.registry.list_models()
      params: {window_size: 4}      # overrides of that model's hyperparameters
    loss: {label_smoothing: 0.1}

Mappings are merged key by key with the parent; other values replace it, except that ``model.params`` is not
inherited when the child names a different model. Unknown keys are refused with a
:class:`~gliomics.errors.ConfigError` that names the file and the key. This module imports no torch; the model
section is checked against the registry (which does) only when a config is loaded or overridden.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gliomics.config import RunConfig, config_error
from gliomics.errors import ConfigError

__all__ = [
    "PRESET_DIR",
    "apply_overrides",
    "available_presets",
    "load_preset",
    "read_preset",
    "to_yaml",
    "validate_config",
]

PRESET_DIR = Path(__file__).parent / "configs"


def available_presets(folder: Path = PRESET_DIR) -> list[str]:
    """Names of the YAML presets shipped in ``folder`` (``gliomics/configs``: the run presets)."""
    return sorted(p.stem for p in folder.glob("*.yaml"))


def _resolve(ref: str | Path, base: Path | None = None, folder: Path = PRESET_DIR) -> Path:
    ref_str = str(ref)
    candidates = []
    if base is not None:
        candidates.append(base / ref_str)
    candidates.append(Path(ref_str).expanduser())
    for cand in candidates:
        if cand.is_file():
            return cand.resolve()
    if ref_str.endswith((".yaml", ".yml")) or "/" in ref_str:
        raise ConfigError(f"{ref_str}: config file not found")
    preset = folder / f"{ref_str}.yaml"
    if preset.is_file():
        return preset
    raise ConfigError(f"{ref_str}: unknown preset; available presets: {', '.join(available_presets(folder))}")


def _merge(parent: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(parent)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _load_raw(path: Path, chain: tuple[Path, ...] = (), folder: Path = PRESET_DIR) -> dict[str, Any]:
    if path in chain:
        cycle = " -> ".join(str(p) for p in (*chain, path))
        raise ConfigError(f"{path}: inherits_from: cycle {cycle}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read YAML: {err}") from err
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    parent_ref = data.pop("inherits_from", None)
    if parent_ref is None:
        return data
    if not isinstance(parent_ref, str):
        raise ConfigError(f"{path}: inherits_from: must be a preset name or a path, got {parent_ref!r}")
    parent = _load_raw(_resolve(parent_ref, base=path.parent, folder=folder), (*chain, path), folder)
    child_model, parent_model = data.get("model"), parent.get("model")
    if isinstance(child_model, dict) and isinstance(parent_model, dict):
        if child_model.get("name", parent_model.get("name")) != parent_model.get("name"):
            # The params belong to the parent's model: a child naming another model starts from its own preset.
            parent = {**parent, "model": {}}
    return _merge(parent, data)


def read_preset(name_or_path: str | Path, folder: Path = PRESET_DIR) -> tuple[Path, dict[str, Any]]:
    """Find a preset (a name in ``folder``, or a YAML path) and read it as plain data, ``inherits_from`` resolved.

    Raises:
        ConfigError: unknown preset, missing file, unreadable YAML, or an ``inherits_from`` cycle.
    """
    path = _resolve(name_or_path, folder=folder)
    return path, _load_raw(path, folder=folder)


def _validate(data: dict[str, Any], source: str, check_model: bool) -> RunConfig:
    try:
        cfg = RunConfig.model_validate(data)
    except ValidationError as err:
        raise config_error(err, source) from err
    if check_model:
        _check_model_section(cfg, source)
    return cfg


def _check_model_section(cfg: RunConfig, source: str) -> None:
    from gliomics.models.registry import list_models, model_defaults  # imports torch: only when needed

    if cfg.model.name not in list_models():
        raise ConfigError(f"{source}: model.name: unknown model {cfg.model.name!r}; valid: {', '.join(list_models())}")
    valid = model_defaults(cfg.model.name)
    unknown = sorted(set(cfg.model.params) - set(valid))
    if unknown:
        raise ConfigError(
            f"{source}: model.params.{unknown[0]}: unknown parameter of {cfg.model.name!r}; valid: {', '.join(valid)}"
        )


def load_preset(name_or_path: str | Path, check_model: bool = True) -> RunConfig:
    """Load a preset by name (``"mgmtnet_cpu"``) or path, resolving ``inherits_from``.

    Args:
        name_or_path: a preset in ``gliomics/configs`` or a YAML file.
        check_model: check ``model.name`` and ``model.params`` against the model registry (imports torch).

    Raises:
        ConfigError: naming the file and the key, for unreadable YAML, unknown keys or wrong types.
    """
    path, data = read_preset(name_or_path)
    return _validate(data, str(path), check_model)


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text


def apply_overrides(cfg: RunConfig, overrides: Sequence[str], check_model: bool = True) -> RunConfig:
    """Return a copy of ``cfg`` with ``"a.b=value"`` overrides applied; values are parsed as YAML (``3`` is an
    int, ``true`` a bool, ``[2, 2]`` a list, ``null`` None).

    Raises:
        ConfigError: naming the override and the key, for malformed overrides, unknown keys or wrong types.
    """
    data = cfg.model_dump()
    for item in overrides:
        key, sep, text = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise ConfigError(f"override {item!r}: expected KEY.PATH=VALUE, e.g. model.params.window_size=4")
        node = data
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {'.'.join(parts[: i + 1])} is not a mapping")
            node = child
        node[parts[-1]] = _parse_value(text)
    return _validate(data, f"overrides {list(overrides)}", check_model)


def validate_config(data: Any, source: str, check_model: bool = True) -> RunConfig:
    """Validate a configuration given as plain data (the ``config`` stored in a checkpoint).

    Raises:
        ConfigError: naming ``source`` and the key, for unknown keys or wrong types.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping, got {type(data).__name__}")
    return _validate(data, source, check_model)


def to_yaml(cfg: RunConfig) -> str:
    """The configuration as YAML, to save next to checkpoints; :func:`load_preset` reads it back."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
