"""``gliomics demo`` / ``make demo``: the whole pipeline on the built-in phantom cohort.

Generates a training cohort (six scanner sites, so that the network meets a range of scanners) and an external
cohort (an unseen site drawn under another seed), trains ``mgmtnet_cpu`` for a fixed number of epochs (a work
budget: the same seed gives the same model on any machine, only the time differs), predicts the external site (with
flip TTA and the label minimums fitted on validation), evaluates it and prints where everything is, with the time
per epoch and per case on this machine.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from gliomics.cli.common import handle_errors, precision_option, setup_logging
from gliomics.runtime.hardware import check_precision

#: Scanner sites of the training cohort (A-F); the external cohort is the next letter (G).
TRAIN_SITES = 6
#: The demo's work budget in epochs of its 76 training cases (38 optimizer steps each).
DEMO_EPOCHS = 50
#: Marker-labelled cases of the training sites the marker readout is fitted on after training: the training cohort
#: and the cases that follow it under the same seed (``cohort_readout``), which the network never sees.
DEMO_READOUT_CASES = 288
#: What the readout's refit on those cases gave, in the run folder.
READOUT_REFIT = "readout_refit.json"


def run_demo(out: Path, *, train_cases: int, external_cases: int, spacing: float, seed: int, preset: str,
             progress: bool, epochs: int | None = DEMO_EPOCHS, steps: int | None = None,
             minutes: float | None = None, precision: str = "auto", readout_cases: int = DEMO_READOUT_CASES) -> dict:
    """Run the demo pipeline into ``out``; each step is skipped when its outputs already exist.

    The training budget is ``steps`` optimizer steps if given, else ``epochs``; ``minutes`` adds a wall-clock limit.
    With ``readout_cases`` above ``train_cases``, the marker readout is fitted again after training on that many
    cases of the training sites (``gliomics readout``): the network's training cases and the ``readout_cases -
    train_cases`` cases that follow them under the same seed.
    """
    from gliomics.evaluation.calibrate import calibrate_run
    from gliomics.evaluation.evaluate import evaluate_predictions
    from gliomics.inference.predictor import Predictor
    from gliomics.presets import apply_overrides, load_preset
    from gliomics.runtime.checkpoint import BEST
    from gliomics.runtime.fitted import read_fitted
    from gliomics.training.trainer import run_training

    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    train_dir, ext_dir, run_dir = out / "cohort_train", out / "cohort_external", out / "run"
    pred_dir, eval_dir = out / "predictions_external", out / "evaluation_external"

    t = time.perf_counter()
    _generate_cohorts(train_dir, ext_dir, train_cases=train_cases, external_cases=external_cases, spacing=spacing,
                      seed=seed, progress=progress)
    timings["phantom_s"] = time.perf_counter() - t

    t = time.perf_counter()
    if not (run_dir / "train_summary.json").is_file():
        cfg = apply_overrides(load_preset(preset), [f"train.seed={seed}"])
        run_training(cfg, data=train_dir, markers=train_dir / "markers.csv", out=run_dir, epochs=epochs, steps=steps,
                     minutes=minutes, resume=(run_dir / "last.pt").is_file(), precision=precision, progress=progress)
    train_summary = json.loads((run_dir / "train_summary.json").read_text())
    timings["train_s"] = time.perf_counter() - t

    t = time.perf_counter()
    if readout_cases > train_cases and not (run_dir / READOUT_REFIT).is_file():
        _refit_readout(out / "cohort_readout", run_dir, first=train_cases, cases=readout_cases - train_cases,
                       spacing=spacing, seed=seed, precision=precision, progress=progress)
    timings["readout_s"] = time.perf_counter() - t

    t = time.perf_counter()
    # refit on the validation split predicted as below (flip TTA), once
    if not read_fitted(run_dir).calibration.get("source", "").endswith("(flip TTA)"):
        calibrate_run(run_dir, tta=True, precision=precision)
    timings["calibrate_s"] = time.perf_counter() - t

    t = time.perf_counter()
    predictor = Predictor("auto", tta=True, precision=precision).load(run_dir / BEST)
    predicted = predictor.predict_folder(ext_dir, pred_dir, progress=progress)
    timings["predict_s"] = time.perf_counter() - t

    t = time.perf_counter()
    summary = evaluate_predictions(pred_dir, ext_dir, markers=ext_dir / "markers.csv", out=eval_dir, by="site",
                                   n_boot=1000)
    timings["evaluate_s"] = time.perf_counter() - t
    summary.update(_demo_details(timings, train_summary, predicted))
    (out / "demo_summary.json").write_text(json.dumps(summary, indent=2, default=float))
    return summary


def _generate_cohorts(train_dir: Path, ext_dir: Path, *, train_cases: int, external_cases: int, spacing: float,
                      seed: int, progress: bool) -> None:
    """Generate the training cohort (sites A-F, ``seed``) and the external one (the next site, ``seed + 1``), each
    unless its ``markers.csv`` already exists."""
    from gliomics.phantom import PhantomSettings, generate_cohort

    if not (train_dir / "markers.csv").is_file():
        generate_cohort(train_dir, PhantomSettings(cases=train_cases, spacing=spacing, sites=TRAIN_SITES, seed=seed),
                        workers=2, progress=progress)
    if not (ext_dir / "markers.csv").is_file():
        generate_cohort(ext_dir, PhantomSettings(cases=external_cases, spacing=spacing, sites=1, seed=seed + 1,
                                                 site_start=TRAIN_SITES), workers=2, progress=progress)


def _demo_details(timings: dict[str, float], train_summary: dict, predicted: dict) -> dict[str, dict]:
    """The demo's additions to the evaluation summary: step timings, training and prediction figures."""
    return {
        "demo_timings": {k: round(v, 1) for k, v in timings.items()},
        "demo_training": {k: train_summary.get(k) for k in ("epochs_run", "steps_run", "stop_reason", "best_epoch",
                                                            "seconds_per_epoch", "seconds_per_step", "hardware")},
        "demo_prediction": {"seconds_per_case": predicted["seconds_per_case"], "hardware": predicted["hardware"]},
    }


def _refit_readout(cohort: Path, run: Path, *, first: int, cases: int, spacing: float, seed: int, precision: str,
                   progress: bool) -> None:
    """Draw ``cases`` more cases of the training sites, from case ``first`` on (the training cohort holds the cases
    before it), fit the run's marker readout again on them and its training split, and record what it gave (or why
    it was not refitted) in ``run/READOUT_REFIT``."""
    import logging

    from gliomics.errors import ConfigError
    from gliomics.phantom import PhantomSettings, generate_cohort
    from gliomics.training.readout import refit_readout

    if not (cohort / "markers.csv").is_file():
        generate_cohort(cohort, PhantomSettings(cases=cases, spacing=spacing, sites=TRAIN_SITES, seed=seed,
                                                case_start=first), workers=2, progress=progress)
    try:
        fitted = refit_readout(run, [(cohort, None)], device="auto", precision=precision)
    except ConfigError as exc:  # a run without a readout, or too few cases: the demo goes on with what it has
        logging.getLogger(__name__).warning("marker readout not refitted: %s", exc)
        fitted = {"not_refitted": str(exc)}
    (run / READOUT_REFIT).write_text(json.dumps(fitted, indent=2, default=float))


@handle_errors
def demo(
    out: Path = typer.Option(Path("demo_output"), "--out", "-o", help="Folder for cohorts, run and results."),
    train_cases: int = typer.Option(96, "--train-cases", min=6, help="Training + validation cases (6 sites)."),
    external_cases: int = typer.Option(30, "--external-cases", min=2, help="Cases of the unseen site."),
    spacing: float = typer.Option(3.0, "--spacing", min=1.0, max=4.0, help="Phantom voxel size in mm."),
    epochs: int = typer.Option(DEMO_EPOCHS, "--epochs", min=1, help="Training budget in epochs."),
    readout_cases: int = typer.Option(DEMO_READOUT_CASES, "--readout-cases", min=0, help="Cases of the training "
                                      "sites the marker readout is fitted on after training (the training cases and "
                                      "others the network never sees); at most --train-cases: the training split "
                                      "only."),
    steps: int | None = typer.Option(None, "--steps", min=1, help="Training budget in optimizer steps (replaces "
                                     "--epochs)."),
    minutes: float | None = typer.Option(None, "--minutes", min=0.1, help="Also stop training after this many "
                                         "minutes (the model then depends on the machine's speed)."),
    precision: str = precision_option(),
    seed: int = typer.Option(1, "--seed", help="Seed of cohorts and training."),
    preset: str = typer.Option("mgmtnet_cpu", "--preset", help="Model preset."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Run the whole pipeline on the built-in phantom cohort: generate, train, predict an unseen site, evaluate."""
    setup_logging(verbose)
    check_precision(precision)
    summary = run_demo(out, train_cases=train_cases, external_cases=external_cases, spacing=spacing, seed=seed,
                       preset=preset, progress=not no_progress, epochs=epochs, steps=steps, minutes=minutes,
                       precision=precision, readout_cases=readout_cases)
    typer.echo(summary.get("text", ""))
    tr, pr = summary["demo_training"], summary["demo_prediction"]
    hw = tr["hardware"] or {"gpu": None, "cpu": "an unrecorded machine", "threads": "?", "precision": "?"}
    per_case = (f"{pr['seconds_per_case']:.1f} s per case" if pr["seconds_per_case"] is not None
                else "every case predicted before")
    per_epoch = f"{tr['seconds_per_epoch']:.1f} s per epoch" if tr["seconds_per_epoch"] is not None else "no epoch"
    steps_text = f"{tr['steps_run']} steps" if tr["steps_run"] is not None else "steps not recorded"
    typer.echo(f"training: {tr['epochs_run']} epochs, {steps_text} ({tr['stop_reason']}), {per_epoch}; "
               f"prediction: {per_case}; on {hw['gpu'] or hw['cpu']}, {hw['threads']} threads, {hw['precision']}")
    typer.echo(f"demo results in {out}: run {out / 'run'}, predictions {out / 'predictions_external'}, "
               f"evaluation {out / 'evaluation_external'}")


if __name__ == "__main__":
    typer.run(demo)
