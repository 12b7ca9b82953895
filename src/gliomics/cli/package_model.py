"""``gliomics package-model``."""

from __future__ import annotations

from pathlib import Path

import typer

from gliomics.cli.common import handle_errors, setup_logging


@handle_errors
def package_model(
    model: Path = typer.Option(..., "--model", "-m", help="A finished run folder."),
    evaluation: list[str] = typer.Option(..., "--evaluation", "-e", help="NAME=FOLDER=SOURCE: an evaluation folder "
                                         "of `gliomics evaluate` and what its cases are, e.g. \"real cases=ev=11 "
                                         "manual BraTS references\" (repeatable); its figures go into the card."),
    out: Path | None = typer.Option(None, "--out", "-o", help="The packaged model's folder (default: the shipped "
                                    "model's place inside the installed package)."),
    name: str | None = typer.Option(None, "--name", help="The model's name in its card (default: the shipped "
                                    "model's name)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Package a trained run as a model that ships with gliomics: its weights, fitted artefacts, config and a model
    card with the training data, budget, measured results with CIs, intended use and limitations."""
    setup_logging(verbose)
    from gliomics.errors import InputError
    from gliomics.evaluation.packaging import package_model as package
    from gliomics.inference.pretrained import PRETRAINED_NAME, pretrained_dir

    name = name or PRETRAINED_NAME
    evaluations = {}
    for item in evaluation:
        parts = item.split("=", 2)
        if len(parts) != 3 or not all(p.strip() for p in parts):
            raise InputError(f"--evaluation {item!r}: expected NAME=FOLDER=SOURCE")
        evaluations[parts[0].strip()] = (Path(parts[1].strip()), parts[2].strip())
    folder = package(model, out or pretrained_dir(name), evaluations=evaluations, name=name)
    typer.echo(f"packaged {model} as {name} in {folder} (model card: {folder / 'MODEL_CARD.md'})")
