"""The five 2D backbones of the TERT slice benchmark behind one factory, :func:`create_slice_model`.

The backbones compared in "Deep learning-based prediction of TERT mutation status from MRI for glioma molecular
subtyping", and the libraries that supply them::

    regnet      RegNetX-4.0GF          timm regnetx_040
    ghostnet    GhostNet 1.0           timm ghostnet_100
    mobilenet   MobileNetV3-Large 1.0  timm mobilenetv3_large_100
    resnext     ResNeXt50 32x4d        timm resnext50_32x4d
    shufflenet  ShuffleNetV2 1.0       torchvision shufflenet_v2_x1_0

Every model starts from random weights (``pretrained=False``; nothing is ever downloaded) or from a local weights
file read with ``torch.load(weights_only=True)``. A 1-channel input is native in timm (``in_chans=1``); for
ShuffleNet the first convolution is replaced. Weights trained on 3-channel (RGB) images are adapted by summing the
kernels of the first convolution over its input channels (timm's ``adapt_input_conv``), and an ImageNet classifier
whose shape does not fit is left at its random initialisation.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from gliomics.errors import CheckpointError, ConfigError
from gliomics.io.torch_files import load_torch_file

logger = logging.getLogger(__name__)

__all__ = ["BACKBONES", "SliceBackbone", "create_slice_model", "load_slice_weights", "resolve_backbones"]


@dataclass(frozen=True)
class SliceBackbone:
    """A registered 2D backbone.

    Attributes:
        key: Short name used on the command line (``regnet``).
        title: Name in tables and figures.
        library: ``"timm"`` or ``"torchvision"``.
        arch: The library's model name.
        first_conv: State-dict prefix of the first convolution (its input channels are adapted).
        classifier: State-dict prefix of the final linear layer (left untouched when its shape differs).
    """

    key: str
    title: str
    library: str
    arch: str
    first_conv: str
    classifier: str


BACKBONES: dict[str, SliceBackbone] = {
    b.key: b
    for b in (
        SliceBackbone("regnet", "RegNetX-4.0GF", "timm", "regnetx_040", "stem.conv", "head.fc"),
        SliceBackbone("ghostnet", "GhostNet", "timm", "ghostnet_100", "conv_stem", "classifier"),
        SliceBackbone("mobilenet", "MobileNetV3", "timm", "mobilenetv3_large_100", "conv_stem", "classifier"),
        SliceBackbone("resnext", "ResNeXt50", "timm", "resnext50_32x4d", "conv1", "fc"),
        SliceBackbone("shufflenet", "ShuffleNetV2", "torchvision", "shufflenet_v2_x1_0", "conv1.0", "fc"),
    )
}
#: Other accepted spellings: the library names and a few obvious variants.
_ALIASES: dict[str, str] = {
    **{b.arch: b.key for b in BACKBONES.values()},
    "regnetx": "regnet",
    "resnext50": "resnext",
    "mobilenetv3": "mobilenet",
    "shufflenetv2": "shufflenet",
}


def _backbone(name: str) -> SliceBackbone:
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; expected 'all' or some of {', '.join(BACKBONES)}")
    return BACKBONES[key]


def resolve_backbones(spec: str) -> list[str]:
    """Backbone keys from ``"all"`` or a comma-separated list (library names accepted), in the order given.

    Raises:
        ConfigError: An unknown or repeated name, or an empty list.
    """
    if spec.strip().lower() == "all":
        return list(BACKBONES)
    keys = [_backbone(token).key for token in spec.split(",") if token.strip()]
    if not keys:
        raise ConfigError("no backbone given; expected 'all' or a comma-separated list")
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ConfigError(f"backbone(s) given twice: {', '.join(repeated)}")
    return keys


def create_slice_model(name: str, *, in_channels: int = 1, out_channels: int = 2,
                       weights: Path | str | None = None) -> nn.Module:
    """Build one of the :data:`BACKBONES` for ``in_channels``-channel slices.

    Args:
        name: Key (``regnet``, ``ghostnet``, ``mobilenet``, ``resnext``, ``shufflenet``) or library name.
        in_channels: Input channels (1 for a T1ce slice).
        out_channels: Number of logits (2 for a binary marker with a softmax, or 1 with a sigmoid).
        weights: Optional local weights file (see :func:`load_slice_weights`); random initialisation otherwise.

    Returns:
        The model, in training mode.

    Raises:
        ConfigError: Unknown backbone or non-positive channel counts.
        CheckpointError: The weights file cannot be used.
    """
    backbone = _backbone(name)
    if in_channels < 1 or out_channels < 1:
        raise ConfigError(f"in_channels and out_channels must be positive, got {in_channels}, {out_channels}")
    if backbone.library == "timm":
        import timm

        model = timm.create_model(backbone.arch, pretrained=False, in_chans=in_channels, num_classes=out_channels)
    else:
        import torchvision

        model = getattr(torchvision.models, backbone.arch)(weights=None, num_classes=out_channels)
        if in_channels != 3:
            old = model.conv1[0]
            model.conv1[0] = nn.Conv2d(in_channels, old.out_channels, kernel_size=old.kernel_size, stride=old.stride,
                                       padding=old.padding, bias=False)
    if weights is not None:
        load_slice_weights(model, weights, backbone.key)
    return model


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    state = load_torch_file(path, what="weights file", advice="; save a state dict of tensors instead")
    # Training scripts often nest the state dict under one of these keys.
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
            break
    if not isinstance(state, Mapping) or not state or \
            not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CheckpointError(f"{path}: expected a state dict of tensors (name -> tensor)")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_slice_weights(model: nn.Module, path: Path | str, name: str) -> None:
    """Load a local weights file into a model built by :func:`create_slice_model`.

    The first convolution is adapted to the model's input channels (3-channel kernels are summed for 1 channel)
    and a classifier of another shape (e.g. ImageNet's 1000 classes) is skipped. Every other tensor must match.

    Args:
        model: The model to load into (modified in place).
        path: A ``torch.save`` file holding a state dict (possibly under ``state_dict`` or ``model``).
        name: The backbone the model was built as.

    Raises:
        CheckpointError: Missing or corrupt file, pickled objects, or tensors that do not belong to this backbone.
    """
    from timm.models import adapt_input_conv

    backbone, path = _backbone(name), Path(path)
    state = _read_state_dict(path)
    own = model.state_dict()
    conv_key = f"{backbone.first_conv}.weight"
    if conv_key in state and conv_key in own and state[conv_key].shape[1] != own[conv_key].shape[1]:
        logger.info("%s: adapting %s from %d to %d input channels", path, conv_key, state[conv_key].shape[1],
                    own[conv_key].shape[1])
        state[conv_key] = adapt_input_conv(own[conv_key].shape[1], state[conv_key])
    head = [k for k in state if k.startswith(f"{backbone.classifier}.")]
    if any(k in own and state[k].shape != own[k].shape for k in head):
        logger.info("%s: classifier %s has another shape; it keeps its random initialisation", path,
                    backbone.classifier)
        state = {k: v for k, v in state.items() if k not in head}
        own_head = {k for k in own if k.startswith(f"{backbone.classifier}.")}
    else:
        own_head = set()
    unexpected = sorted(k for k in state if k not in own)
    missing = sorted(k for k in own if k not in state and k not in own_head and not k.endswith("num_batches_tracked"))
    wrong = sorted(k for k in state if k in own and state[k].shape != own[k].shape)
    if unexpected or missing or wrong:
        example = (unexpected or missing or wrong)[0]
        raise CheckpointError(f"{path}: not {backbone.title} weights ({len(missing)} missing, {len(unexpected)} "
                              f"unexpected and {len(wrong)} mis-shaped tensors, e.g. {example!r})")
    merged = {**own, **{k: v.to(own[k].dtype) for k, v in state.items()}}
    model.load_state_dict(merged, strict=True)
