"""``gliomics predict``."""

from __future__ import annotations

from pathlib import Path

import typer

from gliomics.cli.common import handle_errors, setup_logging


@handle_errors
def predict(
    input: Path = typer.Option(..., "--input", "-i", help="A case folder or a folder/list of cases (any layout)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    model: Path = typer.Option(..., "--model", "-m", help="Run folder (uses best.pt) or a checkpoint file."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    save_probabilities: bool = typer.Option(False, "--save-probabilities", help="Also write the softmax."),
    tta: bool = typer.Option(False, "--tta", help="Average with a left-right flip (slower, steadier)."),
    sequences: str | None = typer.Option(None, "--sequences", help="Use only these, e.g. t1c,t2f."),
    overlap: float = typer.Option(0.25, "--overlap", min=0.0, max=0.9, help="Sliding-window overlap."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo cases that already have outputs."),
    keep_going: bool = typer.Option(False, "--keep-going", help="Report bad cases and finish the others."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Segment the tumour subregions and predict IDH, 1p/19q and TERT for each case."""
    setup_logging(verbose)
    from gliomics.inference.predictor import Predictor

    seqs = [s.strip() for s in sequences.split(",") if s.strip()] if sequences else None
    predictor = Predictor(device, tta=tta, overlap=overlap, save_probabilities=save_probabilities, sequences=seqs)
    predictor.load(model)
    result = predictor.predict_folder(input, out, overwrite=overwrite, keep_going=keep_going,
                                      progress=not no_progress)
    typer.echo(f"predicted {len(result['predicted'])} cases, skipped {len(result['skipped'])} already done, "
               f"{len(result['failed'])} failed; outputs in {out}")
    for cid, msg in result["failed"].items():
        typer.echo(f"  failed {cid}: {msg}", err=True)
    if result["failed"]:
        raise typer.Exit(2)
