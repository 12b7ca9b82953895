"""``gliomics train``: also the entry point of ``torchrun -m gliomics.train``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from gliomics.cli.common import handle_errors, precision_option, setup_logging
from gliomics.runtime.hardware import check_precision

if TYPE_CHECKING:
    from gliomics.config import RunConfig

#: The preset of ``gliomics train`` without ``--preset`` or ``--init``.
DEFAULT_PRESET = "mgmtnet_cpu"


def _spacing(text: str) -> list[float]:
    """``--working-spacing``: one positive number (isotropic) or three, comma-separated."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) == 1:
        values *= 3
    if len(values) != 3 or any(not v > 0 for v in values):
        from gliomics.errors import ConfigError

        raise ConfigError(f"--working-spacing: expected one positive number or three (x,y,z), got {text!r}")
    return values


def timing_line(summary: dict) -> str:
    """One line with the time per epoch and per step, the machine and the precision of a training summary."""
    hw = summary["hardware"]
    if summary["seconds_per_epoch"] is None:
        return f"no epoch run on {hw['gpu'] or hw['cpu']}"
    return (f"{summary['seconds_per_epoch']:.1f} s per epoch, {summary['seconds_per_step']:.2f} s per step "
            f"(validation excluded) on {hw['gpu'] or hw['cpu']}, {hw['threads']} threads, {hw['precision']}")


def supervision_line(counts: dict) -> str:
    """What the training cases carried, e.g. ``training cases: 296; subregions 96, whole-tumour mask only 100,
    markers known IDH 196, …``."""
    markers = ", ".join(f"{m} {n}" for m, n in counts["markers"].items())
    return (f"training cases: {counts['cases']}; subregions {counts['subregions']}, whole-tumour mask only "
            f"{counts['wt_mask']}, markers known {markers}")


@handle_errors
def train(
    data: list[Path] = typer.Option(..., "--data", "-d", help="Training cases (BraTS folder, nnU-Net raw, datalist, "
                                    "CSV). Repeat to train on several cohorts together (e.g. BraTS for subregions, "
                                    "EGD for markers)."),
    markers: list[Path] = typer.Option([], "--markers", "-k", help="Markers CSV (case_id, idh, codel_1p19q, tert); "
                                       "with several --data, one per --data in the same order ('none' for a cohort "
                                       "without one)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder: checkpoints, config, splits, metrics."),
    preset: str | None = typer.Option(None, "--preset", "-p", help="Preset name or YAML file (default: mgmtnet_cpu, "
                                      "or with --init the config of the model started from)."),
    init: str | None = typer.Option(None, "--init", help="Fine-tune: start from this model's weights (a run folder, "
                                    "a checkpoint or 'pretrained') with a fresh optimizer and schedule "
                                    "(train.init_from)."),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Epochs (default: the preset's)."),
    steps: int | None = typer.Option(None, "--steps", min=1, help="Optimizer steps, in place of --epochs; the "
                                     "schedule is fitted to them (the last epoch may be partial)."),
    minutes: float | None = typer.Option(None, "--minutes", min=0.01, help="Wall-time budget in minutes (the result "
                                         "then depends on the machine's speed; --epochs or --steps do not)."),
    working_spacing: str | None = typer.Option(None, "--working-spacing", help="The network's voxel size in mm, "
                                               "one number or three (x,y,z): every input is resampled to it "
                                               "(data.working_spacing; default: the training cases' median voxel "
                                               "size)."),
    folds: int | None = typer.Option(None, "--folds", min=2, help="K-fold cross-validation: split the cohort "
                                     "into K patient-level, stratified folds (the same split for every fold)."),
    fold: str | None = typer.Option(None, "--fold", help="With --folds: the fold to train (0..K-1) into "
                                    "OUT/fold_<k>, or 'all' to train every fold in turn and fit the ensemble's "
                                    "calibration on their out-of-fold predictions."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/last.pt."),
    overrides: list[str] = typer.Option([], "--set", help="Override a config value: --set train.lr=1e-3."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    precision: str = precision_option(),
    seed: int | None = typer.Option(None, "--seed", help="Seed (default: the preset's train.seed)."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads (default: the usable cores that "
                                       "are free when the run starts)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Train a model (MGMT-Net by default). Under torchrun, every process trains with DDP.

    A training case needs subregion labels, a whole-tumour mask (``<case>-wt.nii.gz``, a ``wt_mask`` column) or a
    known marker; each loss term is masked on the cases that lack its label."""
    setup_logging(verbose)
    check_precision(precision)
    from gliomics.presets import apply_overrides
    from gliomics.runtime.checkpoint import FOLD_PREFIX
    from gliomics.training.trainer import run_training

    cfg = _config(preset, overrides, seed, working_spacing, init)
    for k in _folds_to_train(folds, fold):
        run_cfg, run_out = cfg, out
        if k is not None:
            run_cfg = apply_overrides(cfg, [f"data.folds={folds}", f"data.fold={k}"])
            run_out = out / f"{FOLD_PREFIX}{k}"
            typer.echo(f"fold {k} of {folds}: {run_out}")
        summary = run_training(run_cfg, data=data, markers=markers or None, out=run_out, epochs=epochs, steps=steps,
                               minutes=minutes, resume=resume, device=device, precision=precision, threads=threads,
                               progress=not no_progress)
        _report(summary, run_out)
    if fold == "all":
        _calibrate_ensemble(out, folds)


def _config(preset: str | None, overrides: list[str], seed: int | None, working_spacing: str | None,
            init: str | None = None) -> RunConfig:
    """The preset (or, with ``--init`` and no preset, the config of the model started from) with the ``--set``
    overrides, then the seed and the working spacing when given."""
    from gliomics.presets import apply_overrides, load_preset

    if init is not None and preset is None:
        from gliomics.training.fine_tuning import source_config

        cfg = source_config(init)
    else:
        cfg = load_preset(preset or DEFAULT_PRESET)
    sets = list(overrides) + ([f"train.seed={seed}"] if seed is not None else [])
    if working_spacing is not None:
        sets.append(f"data.working_spacing={_spacing(working_spacing)}")
    if sets:
        cfg = apply_overrides(cfg, sets)
    if init is not None:  # set, not parsed as YAML: a path stays a string
        from gliomics.inference.pretrained import PRETRAINED

        source = init if init == PRETRAINED else str(Path(init).absolute())
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"init_from": source})})
    return cfg


def _calibrate_ensemble(out: Path, folds: int | None) -> None:
    """Fit the marker calibration of the fold ensemble in ``out`` on its out-of-fold predictions and echo it."""
    from gliomics.evaluation.calibrate import calibrate_run

    fitted = calibrate_run(out)
    typer.echo(f"ensemble of {folds} folds in {out}; marker calibration fitted on {fitted['source']}: "
               + ", ".join(f"{m} temperature {f['temperature']:.2f}" for m, f in fitted["markers"].items()))


def _folds_to_train(folds: int | None, fold: str | None) -> list[int | None]:
    """The folds ``--folds/--fold`` ask for: ``[None]`` for a single run."""
    from gliomics.errors import ConfigError

    if folds is None and fold is None:
        return [None]
    if folds is None or fold is None:
        raise ConfigError("--folds and --fold go together (e.g. --folds 5 --fold 0, or --fold all)")
    if fold == "all":
        return list(range(folds))
    if not fold.isdigit() or int(fold) >= folds:
        raise ConfigError(f"--fold: expected 0..{folds - 1} or 'all', got {fold!r}")
    return [int(fold)]


def _report(summary: dict, out: Path) -> None:
    val = summary["val"]
    dice = f"mean Dice {val['dice_mean']:.3f} ({val['n_dice']} cases)" if "dice_mean" in val else "no validation Dice"
    auc = f", mean AUC {val['auc_mean']:.3f}" if "auc_mean" in val else ""
    typer.echo(supervision_line(summary["supervision"]["train"]))
    typer.echo(f"trained {summary['epochs_run']} epochs ({summary['steps_run']} steps) in "
               f"{summary['elapsed_seconds'] / 60:.1f} min ({summary['stop_reason']}); best epoch "
               f"{summary['best_epoch']}; last validation: {dice}{auc}; run folder {out}")
    typer.echo(timing_line(summary))
