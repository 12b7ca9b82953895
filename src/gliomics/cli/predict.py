"""``gliomics predict``."""

from __future__ import annotations

from pathlib import Path

import typer

from gliomics.cli.common import handle_errors, parse_sequences, precision_option, setup_logging
from gliomics.inference.who import DEFAULT_BAND
from gliomics.runtime.hardware import check_precision


@handle_errors
def predict(
    input: Path = typer.Option(..., "--input", "-i", help="A case folder or a folder/list of cases (any layout)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    model: Path = typer.Option(..., "--model", "-m", help="Run folder (uses best.pt), a checkpoint file, or a "
                               "folder of K-fold runs (fold_0, …: their ensemble)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    precision: str = precision_option(),
    save_probabilities: bool = typer.Option(False, "--save-probabilities", help="Also write the softmax."),
    tta: bool = typer.Option(False, "--tta", help="Average with a left-right flip (slower, steadier; gives each case "
                             "an uncertainty score, as an ensemble does)."),
    save_uncertainty: bool = typer.Option(False, "--save-uncertainty", help="Also write <case>_uncertainty.nii.gz, "
                                          "the normalised entropy of the averaged softmax (0 sure, 1 undecided)."),
    no_label_minimums: bool = typer.Option(False, "--no-label-minimums", help="Keep a tumour label even when its "
                                           "whole volume is below the minimum fitted on the run's validation cases."),
    sequences: str | None = typer.Option(None, "--sequences", help="Use only these, e.g. t1c,t2f or T1ce,FLAIR."),
    overlap: float = typer.Option(0.25, "--overlap", min=0.0, max=0.9, help="Sliding-window overlap."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo cases that already have outputs."),
    keep_going: bool = typer.Option(False, "--keep-going", help="Report bad cases and finish the others."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
    report: bool = typer.Option(False, "--report", help="Also write <case>.html: overlays, attention maps, Grad-CAM."),
    no_calibration: bool = typer.Option(False, "--no-calibration", help="Report the network's raw marker "
                                        "probabilities with the validation Youden thresholds, as the paper does, "
                                        "instead of the run's calibration (no conformal sets)."),
    who_band: float = typer.Option(DEFAULT_BAND, "--who-band", min=0.0, max=0.49,
                                   help="WHO CNS5 suggestion: indeterminate this close to a marker's threshold."),
    native: bool = typer.Option(False, "--native", help="Also write <case>_seg_native.nii.gz in the original scan "
                                "geometry (cases made by `gliomics preprocess`)."),
    dicom_seg: bool = typer.Option(False, "--dicom-seg", help="Also write <case>_seg.dcm, a DICOM-SEG on the source "
                                   "series (cases made by `gliomics import --format dicom`)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Segment the tumour subregions and predict IDH, 1p/19q and TERT for each case."""
    setup_logging(verbose)
    check_precision(precision)
    from gliomics.inference.predictor import Predictor

    seqs = parse_sequences(sequences)
    predictor = Predictor(device, tta=tta, overlap=overlap, save_probabilities=save_probabilities,
                          save_uncertainty=save_uncertainty, sequences=seqs,
                          label_minimums=not no_label_minimums, who_band=who_band, precision=precision)
    predictor.load(model)
    if no_calibration:
        predictor.calibration = {}
    on_case = None
    if report:
        from gliomics.report.case_report import write_case_report

        def on_case(case, record) -> None:
            write_case_report(case, out, model=predictor.model, config=predictor.config, device=predictor.device,
                              band=who_band)

    result = predictor.predict_folder(input, out, overwrite=overwrite, keep_going=keep_going,
                                      progress=not no_progress, on_case=_with_native_outputs(on_case, out, native,
                                                                                            dicom_seg))
    typer.echo(f"predicted {len(result['predicted'])} cases, skipped {len(result['skipped'])} already done, "
               f"{len(result['failed'])} failed; outputs in {out}")
    if result["seconds_per_case"] is not None:
        hw = result["hardware"]
        typer.echo(f"{result['seconds_per_case']:.1f} s per case on {hw['gpu'] or hw['cpu']} "
                   f"({hw['threads']} threads, {hw['precision']})")
    for cid, msg in result["failed"].items():
        typer.echo(f"  failed {cid}: {msg}", err=True)
    if result["failed"]:
        raise typer.Exit(2)


def _with_native_outputs(on_case, out: Path, native: bool, dicom_seg: bool):
    """Chain the --native / --dicom-seg outputs after ``on_case``."""
    if not (native or dicom_seg):
        return on_case
    from gliomics.preprocess.native import native_outputs

    def chained(case, record) -> None:
        if on_case is not None:
            on_case(case, record)
        native_outputs(case, out, native=native, dicom_seg=dicom_seg)

    return chained
