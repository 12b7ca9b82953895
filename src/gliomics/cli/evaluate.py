"""``gliomics evaluate``."""

from __future__ import annotations

from pathlib import Path

import typer

from gliomics.cli.common import handle_errors, setup_logging


@handle_errors
def evaluate(
    pred: Path = typer.Option(..., "--pred", "-p", help="Prediction folder written by `gliomics predict`."),
    ref: Path = typer.Option(..., "--ref", "-r", help="Reference cases with segmentations (any layout)."),
    markers: Path | None = typer.Option(None, "--markers", "-k", help="Markers CSV with the true labels."),
    out: Path = typer.Option(..., "--out", "-o", help="Evaluation folder."),
    by: str | None = typer.Option(None, "--by", help="Also tabulate by this column: site."),
    n_boot: int = typer.Option(2000, "--n-boot", min=100, help="Bootstrap resamples for the CIs."),
    report: bool = typer.Option(False, "--report", help="Also write report.html: Dice, ROC, calibration, confusion."),
    tables: list[Path] | None = typer.Option(None, "--tables", help="With --report: extra Markdown tables "
                                             "(ablations, baselines) or `gliomics compare` folders (repeatable)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Score predictions: Dice/HD95 (whole-volume and BraTS 2024 lesion-wise) and marker AUC with 95% CIs."""
    setup_logging(verbose)
    from gliomics.evaluation.evaluate import evaluate_predictions

    if report:
        from gliomics.report.cohort_report import resolve_tables, write_cohort_report

        resolve_tables(tables or ())  # a missing table fails before the evaluation, not after
    summary = evaluate_predictions(pred, ref, markers=markers, out=out, by=by, n_boot=n_boot)
    typer.echo(summary["text"])
    typer.echo(f"per-case CSV, summary.json and tables.md in {out}")
    if report:
        typer.echo(f"cohort report: {write_cohort_report(out, ref=ref, tables=tables or ())}")
