"""``gliomics preprocess``."""

from __future__ import annotations

from pathlib import Path

import typer

from gliomics.cli.common import handle_errors, setup_logging


@handle_errors
def preprocess(
    input: Path = typer.Option(..., "--input", "-i", help="Raw cases: a folder or a list of cases (any layout)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (BraTS 2024 layout)."),
    atlas: Path | None = typer.Option(None, "--atlas", help="Template to register to (default: MNI152 2009a)."),
    mask: Path | None = typer.Option(None, "--mask",
                                     help="Brain mask in the atlas's space (with --skip-registration: the scans'): "
                                     "where the atlas registration looks, and the brain mask of --skull-strip atlas."),
    skip_registration: bool = typer.Option(False, "--skip-registration",
                                           help="Inputs are already co-registered: no registration at all."),
    skull_strip: str = typer.Option("deepbet", "--skull-strip",
                                    help="Brain extraction on the T1 on the output grid: deepbet | hd-bet (if "
                                    "installed with its parameters) | atlas (the atlas's mask or --mask) | none "
                                    "(keep the skull; mask = the head)."),
    n4_shrink: int = typer.Option(4, "--n4-shrink", min=1, help="Shrink factor of the N4 field fit (speed)."),
    no_n4: bool = typer.Option(False, "--no-n4", help="Skip N4 bias-field correction."),
    zscore: bool = typer.Option(False, "--zscore", help="Z-score each sequence inside the brain mask (robust: "
                                "clipped to its 0.5-99.5th percentiles there first)."),
    spacing: float = typer.Option(1.0, "--spacing", min=0.2, max=8.0, help="Output voxel size in mm."),
    grid: str = typer.Option("240,240,155", "--grid", help="Output grid size x,y,z (crop/pad around the brain)."),
    workers: int = typer.Option(1, "--workers", "-j", min=1, help="Worker processes."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo cases that are already preprocessed."),
    keep_going: bool = typer.Option(False, "--keep-going", help="Report bad cases and finish the others."),
    num_parts: int = typer.Option(1, "--num-parts", min=1, help="Split the cases into this many parts of about equal "
                                  "work (a job array: one job per part)."),
    part_id: int = typer.Option(0, "--part-id", min=0, help="The part this job preprocesses (0 … num-parts − 1)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Reorient, N4-correct, co-register to T1ce, register to an atlas, resample to 240×240×155 and skull-strip;
    writes per case preprocess/qc.json and qc.png for quality control."""
    setup_logging(verbose)
    from gliomics.errors import ConfigError
    from gliomics.preprocess import PreprocessSettings, preprocess_cohort

    try:
        shape = tuple(int(v) for v in grid.split(","))
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError
    except ValueError:
        raise ConfigError(f"--grid: expected three positive integers x,y,z, got {grid!r}") from None
    settings = PreprocessSettings(atlas=atlas, mask=mask, skip_registration=skip_registration,
                                  skull_strip=skull_strip.strip().lower(), n4=not no_n4, n4_shrink=n4_shrink,
                                  zscore=zscore, shape=shape, spacing=spacing)
    result = preprocess_cohort(input, out, settings, workers=workers, overwrite=overwrite, keep_going=keep_going,
                               progress=not no_progress, num_parts=num_parts, part_id=part_id)
    typer.echo(f"preprocessed {len(result['preprocessed'])} cases, skipped {len(result['skipped'])} already done, "
               f"{len(result['failed'])} failed; outputs in {out}")
    for cid, msg in result["failed"].items():
        typer.echo(f"  failed {cid}: {msg}", err=True)
    if result["failed"]:
        raise typer.Exit(2)
