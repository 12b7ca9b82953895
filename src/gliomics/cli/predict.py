"""``gliomics predict``."""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer

from gliomics.cli.common import handle_errors, parse_sequences, precision_option, setup_logging
from gliomics.inference.who import DEFAULT_BAND
from gliomics.runtime.hardware import check_precision


@handle_errors
def predict(
    input: Path = typer.Option(..., "--input", "-i", help="A case folder or a folder/list of cases (any layout)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    model: str = typer.Option("pretrained", "--model", "-m", help="Run folder (uses best.pt), a checkpoint file, a "
                              "folder of K-fold runs (fold_0, …: their ensemble), or `pretrained`: the model that "
                              "ships with gliomics (see its model card)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    precision: str = precision_option(),
    engine: str = typer.Option("torch", "--engine", help="torch | onnx: the run's network exported by `gliomics "
                               "export-onnx` (RUN/model.onnx), run by onnxruntime on the CPU in fp32."),
    save_probabilities: bool = typer.Option(False, "--save-probabilities", help="Also write the softmax."),
    tta: bool = typer.Option(False, "--tta", help="Average with a left-right flip (slower, steadier; gives each case "
                             "an uncertainty score, as an ensemble does)."),
    save_uncertainty: bool = typer.Option(False, "--save-uncertainty", help="Also write <case>_uncertainty.nii.gz, "
                                          "the normalised entropy of the averaged softmax (0 sure, 1 undecided)."),
    no_label_minimums: bool = typer.Option(False, "--no-label-minimums", help="Keep a tumour label even when its "
                                           "whole volume is below the minimum fitted on the run's validation cases."),
    no_component_minimums: bool = typer.Option(False, "--no-component-minimums", help="Keep every component of a "
                                               "tumour label, even those below the minimum component volume fitted "
                                               "on the run's validation cases."),
    keep_detached_cavities: bool = typer.Option(False, "--keep-detached-cavities", help="Keep resection-cavity "
                                                "components that touch no tumour label (by default they become "
                                                "background: CSF taken for a cavity)."),
    nearest_labels: bool = typer.Option(False, "--nearest-labels", help="Where the input's voxels differ from the "
                                        "working grid's, map the working-grid labels back by nearest neighbour "
                                        "instead of resampling the class probabilities to the input grid."),
    no_marker_readout: bool = typer.Option(False, "--no-marker-readout", help="Take the marker probabilities from "
                                           "the network's heads even where the run has a marker readout (fitted on "
                                           "its training split's tumour features)."),
    sequences: str | None = typer.Option(None, "--sequences", help="Use only these, e.g. t1c,t2f or T1ce,FLAIR."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads (default: the usable cores that "
                                       "are free when the run starts)."),
    overlap: float | None = typer.Option(None, "--overlap", min=0.0, max=0.9, help="Sliding-window overlap "
                                         "(default: the run's inference.overlap)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo cases that already have outputs."),
    keep_going: bool = typer.Option(False, "--keep-going", help="Report bad cases and finish the others."),
    num_parts: int = typer.Option(1, "--num-parts", min=1, help="Split the cases into this many parts of about equal "
                                  "work (a job array: one job per part)."),
    part_id: int = typer.Option(0, "--part-id", min=0, help="The part this job predicts (0 … num-parts − 1)."),
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
    """Segment the tumour subregions and predict IDH, 1p/19q and TERT for each case.

    Under `torchrun --nproc_per_node=N -m gliomics.predict …` each rank predicts its own part of the cases."""
    setup_logging(verbose)
    check_precision(precision)
    from gliomics.inference.predictor import Predictor
    from gliomics.io.partition import check_part
    from gliomics.runtime.distributed import init_distributed, rank_threads
    from gliomics.runtime.hardware import resolve_device

    check_part(num_parts, part_id)
    info = init_distributed(resolve_device(device))
    options = flag_options(tta=tta, no_label_minimums=no_label_minimums, no_component_minimums=no_component_minimums,
                           keep_detached_cavities=keep_detached_cavities, nearest_labels=nearest_labels,
                           no_marker_readout=no_marker_readout, no_calibration=no_calibration,
                           sequences=parse_sequences(sequences))
    predictor = Predictor(device, options=options, overlap=overlap, save_probabilities=save_probabilities,
                          save_uncertainty=save_uncertainty, who_band=who_band, precision=precision,
                          threads=threads or rank_threads(info), engine=engine).load(model)
    on_case = _with_native_outputs(_report_writer(predictor, out) if report else None, out, native, dicom_seg)
    summary = _predict_locked(predictor, info, input, out, num_parts=num_parts, part_id=part_id, overwrite=overwrite,
                              keep_going=keep_going, progress=not no_progress and info.is_main, on_case=on_case)
    if not info.is_main:
        return
    _echo_summary(summary, out, num_parts, part_id, distributed=info.enabled)
    if summary["failed"]:
        raise typer.Exit(2)


def _predict_locked(predictor, info, source: Path, out: Path, *, num_parts: int, part_id: int, **kwargs) -> dict:
    """Predict this rank's part of ``source`` holding the output folder's lock (the main rank), then leave the
    process group."""
    from gliomics.inference.cohort_prediction import predict_cohort
    from gliomics.io.folder_lock import writer_lock
    from gliomics.runtime.distributed import cleanup

    lock = writer_lock(out, f"predict-part{part_id}-of{num_parts}") if info.is_main else contextlib.nullcontext()
    try:
        with lock:
            return predict_cohort(predictor, source, out, num_parts=num_parts, part_id=part_id, info=info, **kwargs)
    finally:
        cleanup(info)


def flag_options(*, tta: bool = False, no_label_minimums: bool = False, no_component_minimums: bool = False,
                 keep_detached_cavities: bool = False, nearest_labels: bool = False, no_marker_readout: bool = False,
                 no_calibration: bool = False, sequences: list[str] | None = None) -> dict:
    """The prediction options the flags ask for: only those given, so that the run's own (its config's
    ``inference.predict``) hold for the rest."""
    asked = {"tta": True if tta else None, "label_minimums": False if no_label_minimums else None,
             "component_minimums": False if no_component_minimums else None,
             "detached_cavities": False if keep_detached_cavities else None,
             "resample_probabilities": False if nearest_labels else None,
             "marker_readout": False if no_marker_readout else None,
             "calibration": False if no_calibration else None, "sequences": sequences}
    return {k: v for k, v in asked.items() if v is not None}


def _report_writer(predictor, out: Path):
    """``on_case`` writing each case's report from its prediction in memory."""
    from gliomics.report.case_report import write_case_report

    def on_case(case, prediction) -> None:
        write_case_report(case, out, predictor, prediction)

    return on_case


def _echo_summary(summary: dict, out: Path, num_parts: int, part_id: int, *, distributed: bool) -> None:
    """What was predicted, skipped and failed, the time per case, and the marker flag."""
    from gliomics.inference.cohort_prediction import summary_name

    part = "" if num_parts == 1 else f" (part {part_id} of {num_parts})"
    typer.echo(f"predicted {summary['predicted']} cases{part}, skipped {summary['skipped']} already done, "
               f"{len(summary['failed'])} failed; outputs in {out}, summary {summary_name(num_parts, part_id)}")
    for r in summary["parts"]:
        if r["seconds_per_case"] is not None:
            hw = r["hardware"]
            typer.echo(f"{r['seconds_per_case']:.1f} s per case on {hw['gpu'] or hw['cpu']} "
                       f"({hw['threads']} threads, {hw['precision']})" + (f", rank part {r['part']}"
                                                                          if distributed else ""))
    _echo_marker_flag(out)
    for cid, msg in summary["failed"].items():
        typer.echo(f"  failed {cid}: {msg}", err=True)


def _echo_marker_flag(out: Path) -> None:
    """One console line when case records in ``out`` carry the flag of unvalidated marker probabilities."""
    import json

    from gliomics.inference.marker_validation import FLAG, flagged
    from gliomics.io.predictions import record_paths

    records = [json.loads(p.read_text()) for p in record_paths(out)]
    n = sum(flagged(r) for r in records)
    if n:
        typer.echo(f"marker probabilities of {n} of the {len(records)} cases in {out} are flagged: {FLAG} (the "
                   "model card shows no such validation); their WHO CNS5 suggestion is withheld")


def _with_native_outputs(on_case, out: Path, native: bool, dicom_seg: bool):
    """Chain the --native / --dicom-seg outputs after ``on_case``."""
    if not (native or dicom_seg):
        return on_case
    from gliomics.preprocess.native import native_outputs

    def chained(case, prediction) -> None:
        if on_case is not None:
            on_case(case, prediction)
        native_outputs(case, prediction, out, native=native, dicom_seg=dicom_seg)

    return chained
