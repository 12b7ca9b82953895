"""``gliomics readout``: fit a finished run's marker readout again, on more cases than the network trained on."""

from __future__ import annotations

from pathlib import Path

import typer

from gliomics.cli.common import handle_errors, precision_option, setup_logging


@handle_errors
def readout(
    model: Path = typer.Option(..., "--model", "-m", help="Run folder (its best checkpoint and splits.json)."),
    data: list[Path] = typer.Option(..., "--data", "-d", help="Cases with marker labels to add (any layout; "
                                    "repeatable)."),
    markers: list[Path] = typer.Option([], "--markers", "-k", help="Markers CSV of each --data (default: "
                                       "DATA/markers.csv)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    precision: str = precision_option(),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Fit the run's marker readout again on its training split plus the marker-labelled cases of --data that its
    cohort lacks (the network predicts them once; it is not trained again); the thresholds and calibration are
    fitted on its validation split, and `gliomics predict` then uses the new readout."""
    setup_logging(verbose)
    from gliomics.errors import ConfigError
    from gliomics.runtime.hardware import check_precision
    from gliomics.training.readout import refit_readout

    check_precision(precision)
    if markers and len(markers) != len(data):
        raise ConfigError(f"give one --markers per --data ({len(data)} --data, {len(markers)} --markers), or none")
    fitted = refit_readout(model, list(zip(data, markers or [None] * len(data))), device=device,
                           precision=precision)
    cv = ", ".join(f"{m} {v:.3f}" for m, v in fitted["cv_auc"].items())
    val = ", ".join(f"{m} {v:.3f}" for m, v in (fitted.get("val_auc") or {}).items())
    typer.echo(f"marker readout of {model} fitted on {fitted['train_cases']} training + {fitted['extra_cases']} "
               f"extra cases; cross-validated AUC {cv}" + (f"; validation AUC {val}" if val else ""))
