"""``gliomics report``."""

from __future__ import annotations

from pathlib import Path

import typer

from gliomics.cli.common import handle_errors, setup_logging
from gliomics.errors import InputError
from gliomics.inference.who import DEFAULT_BAND


@handle_errors
def report(
    target: Path = typer.Argument(..., help="A `gliomics predict` folder or one <case>.json in it (per-case "
                                  "reports), or a `gliomics evaluate` folder (cohort report)."),
    input: Path | None = typer.Option(None, "--input", "-i", help="Per-case: the input cases (a case folder or a "
                                      "folder/list of cases, any layout)."),
    model: Path | None = typer.Option(None, "--model", "-m", help="Per-case: the run (or checkpoint) that made the "
                                      "predictions; it is re-run once per case for the attention maps and Grad-CAM."),
    case: list[str] | None = typer.Option(None, "--case", help="Per-case: only this case id (repeatable)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="The HTML file, for one case or a cohort (default: "
                                    "<case>.html beside <case>.json, report.html in the evaluation folder)."),
    ref: Path | None = typer.Option(None, "--ref", "-r", help="Cohort: the reference cases; a phantom cohort adds "
                                    "the Bayes-optimal bound."),
    tables: list[Path] | None = typer.Option(None, "--tables", help="Cohort: extra Markdown tables (ablations, "
                                             "baselines) or `gliomics compare` folders (repeatable)."),
    who_band: float = typer.Option(DEFAULT_BAND, "--who-band", min=0.0, max=0.49, help="Per-case: the WHO CNS5 "
                                   "suggestion is indeterminate when a needed marker is this close to its threshold."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Write self-contained HTML reports: per case (overlays, CMAF attention, Grad-CAM, WHO CNS5 suggestion) or per
    evaluated cohort (Dice, ROC, calibration, confusion matrices, sites)."""
    setup_logging(verbose)
    if target.is_dir() and (target / "summary.json").is_file():
        from gliomics.report.cohort_report import write_cohort_report

        path = write_cohort_report(target, ref=ref, tables=tables or (), out=out)
        typer.echo(f"cohort report: {path}")
        return

    from gliomics.report.case_report import load_prediction, prediction_case_ids, write_case_report

    pred_dir, ids = prediction_case_ids(target)
    if case:
        unknown = sorted(set(case) - set(ids))
        if unknown:
            raise InputError(f"{pred_dir}: no prediction for case(s) {', '.join(unknown)}")
        ids = [c for c in ids if c in case]
    if input is None or model is None:
        raise InputError("per-case reports need --input (the cases) and --model (the run that predicted them)")
    if out is not None and len(ids) > 1:
        raise InputError(f"--out {out}: names one file but {pred_dir} holds {len(ids)} cases; add --case ID")
    for cid in ids:  # check every prediction before the slow part, so that a bad folder writes nothing
        load_prediction(pred_dir, cid)

    from gliomics.inference.predictor import Predictor
    from gliomics.io import discover_cases

    cases = {c.case_id: c for c in discover_cases(input, allow_missing=True)}
    missing = [cid for cid in ids if cid not in cases]
    if missing:
        raise InputError(f"{input}: no input case {', '.join(missing)}")
    predictor = Predictor(device).load(model)
    for cid in ids:
        path = write_case_report(cases[cid], pred_dir, predictor, out=out, band=who_band)
        typer.echo(f"report: {path}")
