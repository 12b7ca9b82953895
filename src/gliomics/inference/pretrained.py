"""The model that ships with gliomics: ``gliomics predict -m pretrained`` (and ``predict`` without ``-m``).

Its run folder lives inside the package (``gliomics/pretrained/<name>/``: ``best.pt`` with the weights alone,
``fitted.json``, ``config.yaml`` and the model card ``model_card.json`` with ``MODEL_CARD.md``), so nothing is
downloaded at run time. ``gliomics package-model`` writes it from a trained run and its measured evaluations;
``make pretrained`` trains and packages it.
"""

from __future__ import annotations

from pathlib import Path

from gliomics.errors import CheckpointError

__all__ = ["PRETRAINED", "PRETRAINED_NAME", "pretrained_dir", "resolve_model"]

#: The name that stands for the shipped model wherever a run folder is asked for.
PRETRAINED = "pretrained"
#: The shipped model's folder name inside ``gliomics/pretrained``.
PRETRAINED_NAME = "glioma_v2"


def pretrained_dir(name: str = PRETRAINED_NAME) -> Path:
    """Where the shipped model ``name`` lives inside the installed package (whether or not it is there)."""
    return Path(__file__).resolve().parents[1] / "pretrained" / name


def resolve_model(model: Path | str | None) -> Path:
    """A run folder, checkpoint or ensemble folder as given, or the shipped model's folder for ``pretrained`` or
    None.

    Raises:
        CheckpointError: ``pretrained`` asked for, but this installation has no shipped model.
    """
    if model is not None and str(model) != PRETRAINED:
        return Path(model)
    folder = pretrained_dir()
    if not (folder / "best.pt").is_file():
        raise CheckpointError(f"{folder}: this installation has no pretrained model; train and package it with "
                              "`make pretrained`, or give a run folder with --model")
    return folder
