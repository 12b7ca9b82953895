"""``gliomics compare``."""

from __future__ import annotations

from pathlib import Path

import typer

from gliomics.cli.common import handle_errors, setup_logging


@handle_errors
def compare(
    runs: list[Path] = typer.Argument(..., help="Two or more run folders or checkpoints; the first is the reference."),
    data: Path = typer.Option(..., "--data", "-d", help="Cases with reference segmentations."),
    markers: Path | None = typer.Option(None, "--markers", "-k", help="Markers CSV with the true labels."),
    out: Path = typer.Option(..., "--out", "-o", help="Comparison folder."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    n_boot: int = typer.Option(1000, "--n-boot", min=100, help="Bootstrap resamples for the CIs."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Evaluate finished runs on the same cases: Dice per region, mean marker AUC, DeLong and McNemar p-values."""
    setup_logging(verbose)
    from gliomics.evaluation.compare import compare_runs

    result = compare_runs(runs, data, markers=markers, out=out, device=device, n_boot=n_boot,
                          progress=not no_progress)
    typer.echo(result["table"])
    typer.echo(f"comparison.md and comparison.json in {out}")
