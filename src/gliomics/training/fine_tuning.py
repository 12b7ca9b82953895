"""Fine-tuning: a run that starts from another model's weights (``train.init_from``, ``gliomics train --init``), e.g.
the shipped phantom-trained model taught a few real labelled cases next to its phantoms."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from gliomics.config import RunConfig
from gliomics.errors import CheckpointError, ConfigError
from gliomics.runtime.checkpoint import checkpoint_file, load_checkpoint

logger = logging.getLogger(__name__)


def source_checkpoint(source: str) -> Path:
    """The checkpoint that ``source`` names (a run folder, a checkpoint file or ``pretrained``).

    Raises:
        CheckpointError: there is none.
    """
    from gliomics.inference.pretrained import resolve_model

    path = checkpoint_file(resolve_model(source))
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint to start from (give a run folder, a checkpoint file or "
                              "'pretrained')")
    return path


def source_config(source: str) -> RunConfig:
    """The config of the model ``source``: the base of a fine-tuning run, so that it builds the same network on the
    same working grid with the same normalisation."""
    from gliomics.presets import validate_config

    path = source_checkpoint(source)
    try:
        return validate_config(load_checkpoint(path)["config"], "its config")
    except ConfigError as exc:
        raise CheckpointError(f"{path}: cannot start from it ({exc})") from exc


def load_initial_weights(model: torch.nn.Module, source: str) -> Path:
    """Start ``model`` from the weights of ``source``; returns the checkpoint read.

    Raises:
        CheckpointError: no checkpoint there, or it is not a gliomics checkpoint.
        ConfigError: its weights do not fit the network this run builds.
    """
    path = source_checkpoint(source)
    try:
        model.load_state_dict(load_checkpoint(path)["model"])
    except RuntimeError as exc:
        raise ConfigError(f"{path}: train.init_from: its weights do not fit this run's network "
                          f"({' '.join(str(exc).split())[:200]}); start from the model's own config "
                          "(gliomics train --init without --preset)") from exc
    logger.info("initial weights from %s", path)
    return path
