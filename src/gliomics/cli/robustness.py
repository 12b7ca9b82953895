"""``gliomics robustness``."""

from __future__ import annotations

from pathlib import Path

import typer

from gliomics.cli.common import handle_errors, setup_logging


@handle_errors
def robustness(
    model: Path = typer.Option(..., "--model", "-m", help="Run folder (or checkpoint) to test."),
    data: Path = typer.Option(..., "--data", "-d", help="Cases with reference segmentations (any layout)."),
    markers: Path | None = typer.Option(None, "--markers", "-k", help="Markers CSV with the true labels."),
    out: Path = typer.Option(..., "--out", "-o", help="Robustness folder (must not exist or be empty)."),
    conditions: str | None = typer.Option(None, "--conditions", help="Only these conditions, comma-separated (the "
                                          "intact one is always run); default: all 35. `--list-conditions` names "
                                          "them."),
    list_conditions: bool = typer.Option(False, "--list-conditions", help="Print the conditions and exit."),
    tta: bool = typer.Option(False, "--tta", help="Predict with flip TTA, as `gliomics predict --tta`."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    precision: str = typer.Option("auto", "--precision", help="auto | fp32 | bf16 (as for `gliomics predict`)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the noise and bias-field draws."),
    n_boot: int = typer.Option(1000, "--n-boot", min=100, help="Bootstrap resamples for the CIs."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Evaluate a run with every subset of the sequences and with each sequence degraded (Rician noise, bias field,
    Gibbs ringing, 5 mm slices): Dice, marker AUCs, CMAF weights and the drop from intact, with CIs."""
    setup_logging(verbose)
    from gliomics.evaluation.robustness import condition_names, run_robustness

    if list_conditions:
        typer.echo("\n".join(condition_names()))
        return
    names = [c.strip() for c in conditions.split(",") if c.strip()] if conditions else None
    result = run_robustness(model, data, markers=markers, out=out, names=names, tta=tta, n_boot=n_boot,
                            device=device, precision=precision, seed=seed, progress=not no_progress)
    typer.echo((out / "robustness.md").read_text())
    typer.echo(f"{len(result['conditions'])} conditions; robustness.md, robustness.json and robustness_dice_drop.png "
               f"in {out}")
