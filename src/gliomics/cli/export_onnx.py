"""``gliomics export-onnx``."""

from __future__ import annotations

from pathlib import Path

import typer

from gliomics.cli.common import handle_errors, setup_logging


@handle_errors
def export_onnx(
    run: Path = typer.Argument(..., help="Run folder (uses best.pt), a checkpoint file, or a folder of K-fold runs "
                               "(each fold's network is written into its own folder)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="The .onnx file to write; default model.onnx next to "
                                    "the checkpoint, where `gliomics predict --engine onnx` reads it."),
    check: bool = typer.Option(True, "--check/--no-check", help="Compare the graph with the network at two input "
                               "sizes before writing it."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Export a run's network (segmentation, marker logits, CMAF weights) as an ONNX graph with dynamic batch and
    spatial sizes, for `gliomics predict --engine onnx` (onnxruntime on the CPU)."""
    setup_logging(verbose)
    from gliomics.inference.onnx_engine import export_onnx as export

    for r in export(run, out, check=check):
        checked = "; ".join(f"{'×'.join(str(s) for s in c['shape'][2:])} (batch {c['shape'][0]}): "
                            f"{c['max_difference']:.1g}" for c in r["checked"])
        typer.echo(f"wrote {r['path']} from {r['checkpoint']} ({r['model']}; outputs {', '.join(r['outputs'])}; "
                   f"spatial sizes: multiples of {r['size_multiple']} from {r['min_size']}) in {r['seconds']:.0f} s")
        if checked:
            typer.echo(f"  largest difference from the torch network (probabilities and weights): {checked}")
