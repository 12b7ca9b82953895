"""Model registry: named presets built with ``create_model(name, **overrides)``.

Each preset is a one-line factory that states its hyperparameters, in the manner of timm::

    @register_model("mgmtnet_cpu", MGMTNet, patch_size=48)
    def mgmtnet_cpu() -> dict[str, Any]:
        return dict(feature_size=16, embed_channels=8, ...)

``create_model`` merges the preset with the overrides (unknown keys are refused) and calls the model class.
"""

from __future__ import annotations

import copy
import fnmatch
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from gliomics.models.nets.baselines import DenseNetMarkers, DynUNetAdapter, SegResNetAdapter, SwinUNETRAdapter
from gliomics.models.nets.mgmtnet import MGMTNet

__all__ = [
    "ModelEntry",
    "create_model",
    "default_patch_size",
    "get_model_entry",
    "list_models",
    "model_defaults",
    "register_model",
]


@dataclass(frozen=True)
class ModelEntry:
    """A registered preset: the model class, its preset hyperparameters and the patch size it was sized for."""

    name: str
    model_cls: Callable[..., nn.Module]
    hparams: dict[str, Any]
    patch_size: tuple[int, ...]
    description: str


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str, model_cls: Callable[..., nn.Module], *, patch_size: int | Sequence[int]
) -> Callable[[Callable[[], dict[str, Any]]], Callable[[], dict[str, Any]]]:
    """Register the decorated function, which returns the preset's hyperparameters, under ``name``.

    Args:
        name: the preset name used by :func:`create_model` and in YAML configs.
        model_cls: the class (or any callable with named parameters) that builds the model.
        patch_size: the training patch size the preset was sized for (an int means a cube).

    Raises:
        ValueError: if the name is taken or a hyperparameter is not a parameter of ``model_cls``.
    """

    def decorator(fn: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered.")
        hparams = dict(fn())
        valid = _parameters(model_cls)
        unknown = sorted(set(hparams) - set(valid))
        if unknown:
            raise ValueError(f"preset {name!r} sets {unknown}, which are not parameters of {model_cls.__name__}.")
        size = (patch_size,) * 3 if isinstance(patch_size, int) else tuple(patch_size)
        doc = inspect.getdoc(fn) or ""
        _REGISTRY[name] = ModelEntry(name, model_cls, hparams, size, doc.splitlines()[0] if doc else "")
        return fn

    return decorator


def _parameters(model_cls: Callable[..., nn.Module]) -> dict[str, inspect.Parameter]:
    params = inspect.signature(model_cls).parameters
    return {
        k: p
        for k, p in params.items()
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    }


def list_models(pattern: str | None = None) -> list[str]:
    """Names of the registered models, sorted, optionally filtered by a shell-style ``pattern`` (``"mgmtnet*"``)."""
    names = sorted(_REGISTRY)
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


def get_model_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; ``ValueError`` listing the valid names if unknown."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(list_models())}.") from None


def model_defaults(name: str) -> dict[str, Any]:
    """Every keyword argument of the model with the value the preset uses (class default unless the preset sets it).

    The keys are exactly the valid overrides of :func:`create_model`.
    """
    entry = get_model_entry(name)
    defaults = {
        k: p.default for k, p in _parameters(entry.model_cls).items() if p.default is not inspect.Parameter.empty
    }
    defaults.update(entry.hparams)
    return copy.deepcopy(defaults)


def default_patch_size(name: str) -> tuple[int, ...]:
    """The training patch size the preset was sized for."""
    return get_model_entry(name).patch_size


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build the preset ``name`` with ``overrides`` on top of its hyperparameters.

    Raises:
        ValueError: for an unknown name or override key (the message lists the valid ones), or from the model's
            own argument checks.
    """
    entry = get_model_entry(name)
    valid = _parameters(entry.model_cls)
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for model {name!r}; valid parameters: {', '.join(valid)}.")
    return entry.model_cls(**{**copy.deepcopy(entry.hparams), **overrides})


# --- MGMT-Net -------------------------------------------------------------------------------------------------


@register_model("mgmtnet", MGMTNet, patch_size=128)
def mgmtnet() -> dict[str, Any]:
    """MGMT-Net at the paper's size, for GPUs (128^3 patches, window 8), with the paper's fully shared sequence
    embedding (``sequence_affine=False``)."""
    return dict(feature_size=48, embed_channels=16, swin_depths=(2, 2, 2), swin_heads=(3, 6, 12), window_size=8,
                sequence_affine=False)


@register_model("mgmtnet_cpu", MGMTNet, patch_size=48)
def mgmtnet_cpu() -> dict[str, Any]:
    """MGMT-Net sized so that the demo learns on 2 CPU cores (48^3 patches at 3 mm), with tumour descriptors and
    the residual concatenation path of CMAF (which learns the tumour core several times sooner at this size)."""
    return dict(feature_size=12, embed_channels=8, swin_depths=(2, 2), swin_heads=(2, 4), window_size=4,
                descriptors=True, fusion_residual=True, sequence_affine=True)


@register_model("mgmtnet_cnn", MGMTNet, patch_size=128)
def mgmtnet_cnn() -> dict[str, Any]:
    """Ablation: MGMT-Net at the paper's size with a deeper CNN in place of the Swin branch."""
    return dict(feature_size=48, embed_channels=16, encoder="cnn", deep_cnn_blocks=3, sequence_affine=False)


# --- baselines --------------------------------------------------------------------------------------------------


@register_model("swinunetr", SwinUNETRAdapter, patch_size=128)
def swinunetr() -> dict[str, Any]:
    """MONAI SwinUNETR (feature size 48) with a GAP marker head."""
    return dict(feature_size=48, depths=(2, 2, 2, 2), num_heads=(3, 6, 12, 24), window_size=7)


@register_model("segresnet", SegResNetAdapter, patch_size=128)
def segresnet() -> dict[str, Any]:
    """MONAI SegResNet (BraTS configuration) with a GAP marker head."""
    return dict(init_filters=16, blocks_down=(1, 2, 2, 4), blocks_up=(1, 1, 1))


@register_model("dynunet", DynUNetAdapter, patch_size=128)
def dynunet() -> dict[str, Any]:
    """MONAI DynUNet with nnU-Net-like 3x3x3 kernels, five levels and deep supervision, plus a GAP marker head."""
    return dict(filters=(32, 64, 128, 256, 320), deep_supervision=True, deep_supr_num=2)


@register_model("densenet3d", DenseNetMarkers, patch_size=128)
def densenet3d() -> dict[str, Any]:
    """MONAI DenseNet-121 in 3D for the markers only (seg is None)."""
    return dict(init_features=64, growth_rate=32, block_config=(6, 12, 24, 16))
