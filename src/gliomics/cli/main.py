"""The ``gliomics`` command. Heavy libraries are imported inside each command so ``--help`` is instant."""

from __future__ import annotations

import typer

from gliomics import __version__
from gliomics.cli.calibrate import calibrate
from gliomics.cli.compare import compare
from gliomics.cli.demo import demo
from gliomics.cli.evaluate import evaluate
from gliomics.cli.export_nnunet import export_nnunet
from gliomics.cli.export_onnx import export_onnx
from gliomics.cli.import_ import import_
from gliomics.cli.package_model import package_model
from gliomics.cli.phantom import phantom
from gliomics.cli.predict import predict
from gliomics.cli.preprocess import preprocess
from gliomics.cli.readout import readout
from gliomics.cli.report import report
from gliomics.cli.robustness import robustness
from gliomics.cli.slices import slice_benchmark, slices
from gliomics.cli.train import train

app = typer.Typer(
    name="gliomics",
    help="Glioma subregion segmentation and molecular marker prediction from multi-parametric MRI (research use).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gliomics {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """gliomics command-line interface."""


app.command()(phantom)
app.command()(train)
app.command()(predict)
app.command()(evaluate)
app.command()(calibrate)
app.command()(readout)
app.command()(compare)
app.command()(robustness)
app.command()(report)
app.command()(demo)
app.command()(slices)
app.command(name="slice-benchmark")(slice_benchmark)
app.command()(preprocess)
app.command(name="import")(import_)
app.command(name="export-nnunet")(export_nnunet)
app.command(name="export-onnx")(export_onnx)
app.command(name="package-model")(package_model)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
