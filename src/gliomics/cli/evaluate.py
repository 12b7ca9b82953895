"""``gliomics evaluate``."""

from __future__ import annotations

from pathlib import Path

import typer

from gliomics.cli.common import handle_errors, precision_option, setup_logging
from gliomics.errors import InputError


@handle_errors
def evaluate(
    pred: Path | None = typer.Option(None, "--pred", "-p", help="Prediction folder written by `gliomics predict`."),
    ref: Path | None = typer.Option(None, "--ref", "-r", help="Reference cases with segmentations (any layout)."),
    markers: Path | None = typer.Option(None, "--markers", "-k", help="Markers CSV with the true labels."),
    out: Path = typer.Option(..., "--out", "-o", help="Evaluation folder."),
    run: Path | None = typer.Option(None, "--run", help="Instead of --pred/--ref: a run folder whose own held-out "
                                    "split (--split) is predicted into OUT/predictions and scored."),
    split: str = typer.Option("val", "--split", help="With --run: val | test."),
    tta: bool = typer.Option(False, "--tta", help="With --run: predict with flip TTA, as `gliomics predict --tta`."),
    device: str = typer.Option("auto", "--device", help="With --run: auto | cpu | cuda."),
    precision: str = precision_option(),
    against: Path | None = typer.Option(None, "--against", help="Another evaluation folder of the same model (e.g. an "
                                        "external cohort): also write OUT/side_by_side.md with both, and the "
                                        "difference with its 95% CI."),
    rule: str = typer.Option("both", "--rule", help="Lesion-wise scoring rule: brats2024 (3-dilation merge, "
                             "minimum lesion size), brats2025 (panoptica: one-to-one matching, NSD) or both."),
    by: str | None = typer.Option(None, "--by", help="Also tabulate by this column: site."),
    n_boot: int = typer.Option(2000, "--n-boot", min=100, help="Bootstrap resamples for the CIs."),
    report: bool = typer.Option(False, "--report", help="Also write report.html: Dice, ROC, calibration, confusion."),
    montage: bool = typer.Option(False, "--montage", help="With --pred/--ref: also write montage.png, each case's "
                                 "prediction against its reference on the slice where its tumour is largest."),
    tables: list[Path] | None = typer.Option(None, "--tables", help="With --report: extra Markdown tables "
                                             "(ablations, baselines) or `gliomics compare` folders (repeatable)."),
    explain: Path | None = typer.Option(None, "--explain", help="The run that made the predictions (with --run: the "
                                        "same run): also give the share of each marker's Grad-CAM energy in each "
                                        "predicted region over the cohort, with CIs."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Score predictions: Dice/HD95 (whole-volume and lesion-wise by the BraTS 2024 and/or 2025 rule) and marker AUC
    with 95% CIs.

    Either a prediction folder against reference cases (--pred, --ref, --markers), or a run's own held-out split
    (--run, --split), predicted here."""
    setup_logging(verbose)
    from gliomics.evaluation.evaluate import check_rule, evaluate_predictions

    check_rule(rule)
    _check_inputs(pred, ref, markers, out, run, against, report, tables, explain)
    if run is not None:
        from gliomics.evaluation.split_evaluation import evaluate_split

        summary = evaluate_split(run, split, out, tta=tta, device=device, precision=precision, by=by, n_boot=n_boot,
                                 rule=rule)
        ref = Path(summary["data"][0])  # the cohort the split came from, for the report
    else:
        summary = evaluate_predictions(pred, ref, markers=markers, out=out, by=by, n_boot=n_boot, rule=rule,
                                       montage=montage)
    typer.echo(summary["text"])
    typer.echo(f"per-case CSV, summary.json and tables.md in {out}")
    if against is not None:
        _side_by_side(out, against, f"{split} split" if run is not None else out.name, n_boot)
    if explain is not None:
        from gliomics.evaluation.interpretability import explain_cohort, gradcam_share_table
        from gliomics.evaluation.split_evaluation import PREDICTIONS

        pred_dir = out / PREDICTIONS if run is not None else pred
        shares = explain_cohort(explain, pred_dir, ref, out, device=device, n_boot=n_boot)
        typer.echo(gradcam_share_table(shares))
    if report:
        from gliomics.report.cohort_report import write_cohort_report

        typer.echo(f"cohort report: {write_cohort_report(out, ref=ref, tables=tables or ())}")


def _check_inputs(pred: Path | None, ref: Path | None, markers: Path | None, out: Path, run: Path | None,
                  against: Path | None, report: bool, tables: list[Path] | None, explain: Path | None) -> None:
    """Refuse conflicting or missing options, and missing report tables, explanation run or comparison folder,
    before anything is predicted or scored."""
    if run is not None and (pred is not None or ref is not None or markers is not None):
        raise InputError(f"{run}: --run predicts its own split; leave out --pred, --ref and --markers")
    if run is None and (pred is None or ref is None):
        raise InputError(f"{out}: give --pred and --ref, or --run (a run's held-out split)")
    if report:
        from gliomics.report.cohort_report import resolve_tables

        resolve_tables(tables or ())  # a missing table fails before the evaluation, not after
    if explain is not None:
        from gliomics.runtime.checkpoint import checkpoint_file

        if not checkpoint_file(explain).is_file():  # not a run: fail before scoring
            raise InputError(f"{explain}: no checkpoint (best.pt or last.pt) to explain the predictions with")
    if against is not None:
        from gliomics.evaluation.side_by_side import load_evaluation

        load_evaluation(against)  # not an evaluation folder: fail before predicting or scoring


def _side_by_side(out: Path, against: Path, name: str, n_boot: int) -> None:
    """Write ``OUT/side_by_side.md``, this evaluation (called ``name``) against the evaluation folder ``against``,
    and echo its table."""
    from gliomics.evaluation.side_by_side import SIDE_BY_SIDE, compare_evaluations, side_by_side_table
    from gliomics.io.atomic import write_text_atomic

    table = side_by_side_table(compare_evaluations(out, against, n_boot), name, against.name)
    write_text_atomic(out / SIDE_BY_SIDE, f"# {name} against {against.name}\n\n{table}")
    typer.echo(table)
