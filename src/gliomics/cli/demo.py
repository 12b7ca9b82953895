"""``gliomics demo`` / ``make demo``: the whole pipeline on the built-in phantom cohort.

Generates a training cohort (six scanner sites, so that the network meets a range of scanners) and an external
cohort (an unseen site drawn under another seed), trains ``mgmtnet_cpu`` for a fixed time budget, predicts the
external site (with flip TTA and the label minimums fitted on validation), evaluates it and prints where everything
is.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from gliomics.cli.common import handle_errors, setup_logging

#: Scanner sites of the training cohort (A-F); the external cohort is the next letter (G).
TRAIN_SITES = 6


def run_demo(out: Path, *, train_cases: int, external_cases: int, spacing: float, minutes: float, seed: int,
             preset: str, progress: bool) -> dict:
    """Run the demo pipeline into ``out``; each step is skipped when its outputs already exist."""
    from gliomics.config import apply_overrides, load_preset
    from gliomics.evaluation.evaluate import evaluate_predictions
    from gliomics.inference.predictor import Predictor
    from gliomics.phantom import PhantomSettings, generate_cohort
    from gliomics.training.checkpoint import BEST
    from gliomics.training.trainer import run_training

    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    train_dir, ext_dir, run_dir = out / "cohort_train", out / "cohort_external", out / "run"
    pred_dir, eval_dir = out / "predictions_external", out / "evaluation_external"

    t = time.perf_counter()
    if not (train_dir / "markers.csv").is_file():
        generate_cohort(train_dir, PhantomSettings(cases=train_cases, spacing=spacing, sites=TRAIN_SITES, seed=seed),
                        workers=2, progress=progress)
    if not (ext_dir / "markers.csv").is_file():
        generate_cohort(ext_dir, PhantomSettings(cases=external_cases, spacing=spacing, sites=1, seed=seed + 1,
                                                 site_start=TRAIN_SITES), workers=2, progress=progress)
    timings["phantom_s"] = time.perf_counter() - t

    t = time.perf_counter()
    if not (run_dir / "train_summary.json").is_file():
        cfg = apply_overrides(load_preset(preset), [f"train.seed={seed}"])
        run_training(cfg, data=train_dir, markers=train_dir / "markers.csv", out=run_dir, minutes=minutes,
                     resume=(run_dir / "last.pt").is_file(), progress=progress)
    timings["train_s"] = time.perf_counter() - t

    t = time.perf_counter()
    predictor = Predictor("auto", tta=True).load(run_dir / BEST)
    predictor.predict_folder(ext_dir, pred_dir, progress=progress)
    timings["predict_s"] = time.perf_counter() - t

    t = time.perf_counter()
    summary = evaluate_predictions(pred_dir, ext_dir, markers=ext_dir / "markers.csv", out=eval_dir, by="site",
                                   n_boot=1000)
    timings["evaluate_s"] = time.perf_counter() - t
    summary["demo_timings"] = {k: round(v, 1) for k, v in timings.items()}
    (out / "demo_summary.json").write_text(json.dumps(summary, indent=2, default=float))
    return summary


@handle_errors
def demo(
    out: Path = typer.Option(Path("demo_output"), "--out", "-o", help="Folder for cohorts, run and results."),
    train_cases: int = typer.Option(96, "--train-cases", min=6, help="Training + validation cases (6 sites)."),
    external_cases: int = typer.Option(30, "--external-cases", min=2, help="Cases of the unseen site."),
    spacing: float = typer.Option(3.0, "--spacing", min=1.0, max=4.0, help="Phantom voxel size in mm."),
    minutes: float = typer.Option(20.0, "--minutes", min=0.1, help="Training time budget."),
    seed: int = typer.Option(1, "--seed", help="Seed of cohorts and training."),
    preset: str = typer.Option("mgmtnet_cpu", "--preset", help="Model preset."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Run the whole pipeline on the built-in phantom cohort: generate, train, predict an unseen site, evaluate."""
    setup_logging(verbose)
    summary = run_demo(out, train_cases=train_cases, external_cases=external_cases, spacing=spacing,
                       minutes=minutes, seed=seed, preset=preset, progress=not no_progress)
    typer.echo(summary.get("text", ""))
    typer.echo(f"demo results in {out}: run {out / 'run'}, predictions {out / 'predictions_external'}, "
               f"evaluation {out / 'evaluation_external'}")


if __name__ == "__main__":
    typer.run(demo)
