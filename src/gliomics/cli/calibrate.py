"""``gliomics calibrate``."""

from __future__ import annotations

from pathlib import Path

import typer

from gliomics.cli.common import handle_errors, precision_option, setup_logging


@handle_errors
def calibrate(
    model: Path = typer.Option(..., "--model", "-m", help="Run folder to calibrate."),
    pred: Path | None = typer.Option(None, "--pred", "-p", help="Predictions of held-out cases (e.g. out-of-fold) "
                                     "to fit on; default: predict the run's validation split."),
    markers: Path | None = typer.Option(None, "--markers", "-k", help="Markers CSV of the --pred cases."),
    alpha: float = typer.Option(0.1, "--alpha", min=0.01, max=0.5, help="Conformal miscoverage: the sets hold the "
                                "true class with probability 1 - alpha."),
    tta: bool = typer.Option(True, "--tta/--no-tta", help="Predict the validation split with flip TTA (match how "
                             "you will predict)."),
    review_quantile: float = typer.Option(0.9, "--review-quantile", min=0.5, max=0.99, help="Flag a case for "
                                          "review when its uncertainty is above this quantile of the fitting set's "
                                          "(needs several passes: --tta, or an ensemble's predictions with --pred)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    precision: str = precision_option(),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Fit temperature scaling, operating points and conformal sets of the marker probabilities, and the review
    threshold of the uncertainty score, on held-out predictions and store them with the run; `gliomics predict` then
    applies them."""
    setup_logging(verbose)
    from gliomics.evaluation.calibrate import calibrate_run
    from gliomics.runtime.fitted import FITTED_FILE
    from gliomics.runtime.hardware import check_precision

    check_precision(precision)
    fitted = calibrate_run(model, pred=pred, markers=markers, alpha=alpha, tta=tta, precision=precision,
                           device=device, review_quantile=review_quantile)
    for m, f in fitted["markers"].items():
        t = f["thresholds"]
        typer.echo(f"{m}: temperature {f['temperature']:.3f} ({f['n']} cases, {f['n_pos']} altered); thresholds "
                   f"Youden {t['youden']:.3f}, rule-out {t['rule_out']:.3f}, rule-in {t['rule_in']:.3f}")
    review = fitted.get("review")
    typer.echo(f"review: {review['rule']} ({review['threshold']:.4f}, {review['passes']} passes per case)" if review
               else "review: no threshold (the fitting set was predicted in one pass per case)")
    typer.echo(f"fitted on {fitted['source']}; stored in {model / FITTED_FILE}")
