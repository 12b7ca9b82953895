"""``gliomics phantom``."""

from __future__ import annotations

from pathlib import Path

import typer

from gliomics.cli.common import handle_errors, setup_logging


@handle_errors
def phantom(
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (BraTS 2024 layout)."),
    cases: int = typer.Option(20, "--cases", "-n", min=1, help="Number of cases."),
    spacing: float = typer.Option(2.0, "--spacing", min=0.5, max=4.0, help="Voxel size in mm (1 = BraTS grid)."),
    sites: int = typer.Option(3, "--sites", min=1, help="Number of scanner sites; cases are spread round-robin."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same arguments give identical voxels."),
    site_start: int = typer.Option(0, "--site-start", min=0,
                                   help="Index of the first site letter (3 → sites D, E, …) for external cohorts."),
    case_start: int = typer.Option(0, "--case-start", min=0,
                                   help="Index of the first case: a second cohort of the same seed with --case-start "
                                   "N extends one of N cases without sharing a case."),
    supervision: str | None = typer.Option(None, "--supervision",
                                           help="Labels the files keep, as fractions of cases: full (subregions + "
                                           "markers), seg (subregions only, BraTS-like), wt (whole-tumour mask + "
                                           "markers, EGD-like), markers (TCGA-like), e.g. "
                                           "full=0.3,seg=0.2,wt=0.2,markers=0.3. Default: all full."),
    workers: int = typer.Option(1, "--workers", "-j", min=1, help="Worker processes."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Generate a phantom glioma cohort with markers.csv and phantom_truth.csv (exact Bayes posteriors)."""
    setup_logging(verbose)
    from gliomics.errors import ConfigError
    from gliomics.phantom import PhantomSettings, generate_cohort, parse_supervision

    try:
        kinds = parse_supervision(supervision) if supervision is not None else (("full", 1.0),)
    except ValueError as exc:
        raise ConfigError(f"--supervision: {exc}") from exc
    settings = PhantomSettings(cases=cases, spacing=spacing, sites=sites, seed=seed, site_start=site_start,
                               case_start=case_start, supervision=kinds)
    summary = generate_cohort(out, settings, workers=workers, progress=not no_progress)
    kinds_text = ", ".join(f"{k} {n}" for k, n in summary["supervision"].items())
    typer.echo(f"wrote {summary['cases']} cases ({'×'.join(map(str, summary['grid']))} at {spacing:g} mm, "
               f"sites {', '.join(summary['sites'])}; {kinds_text}) to {out}")
    typer.echo(f"Bayes-optimal AUC on observed labels: {summary['bayes_auc_observed']}")
