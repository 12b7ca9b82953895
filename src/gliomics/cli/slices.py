"""``gliomics slices`` and ``gliomics slice-benchmark``: the 2D TERT slice benchmark."""

from __future__ import annotations

from pathlib import Path

import typer

from gliomics.cli.common import handle_errors, setup_logging
from gliomics.errors import ConfigError

_DATA = typer.Option(..., "--data", "-d", help="Cases in any layout (only T1ce and the VOI are read).")
_MARKER = typer.Option("tert", "--marker", help="Binary marker to predict: tert, idh or codel_1p19q.")
_MARKERS = typer.Option(None, "--markers", help="Markers CSV (default: DATA/markers.csv).")
_VOI_LABELS = typer.Option(None, "--voi-labels", help="Segmentation labels forming the VOI (default: ET,NETC).")
_VOI_MASKS = typer.Option(None, "--voi-masks", help="Folder of VOI masks <case_id>.nii.gz (instead of labels).")
_LAYOUT = typer.Option("auto", "--layout", help="auto | brats | nnunet | datalist | manifest.")
_PRESET = typer.Option("paper", "--preset", help="paper (224×224, GPU), cpu (64×64, 3 slices, ≤ 3 min per backbone) "
                                                 "or a YAML file of settings (inherits_from: cpu, ...).")
_K = typer.Option(None, "--k", min=1, help="Axial slices per case, largest VOI area first (paper 5, cpu 3).")
_SIZE = typer.Option(None, "--size", min=16, help="Side of the resized slices (paper 224, cpu 64).")
_MARGIN = typer.Option(None, "--margin-mm", min=0.0, help="Margin around the VOI box in mm (10).")
_EDGE = typer.Option(None, "--edge-weight", min=0.0, help="Laplacian edge-enhancement weight (0.5).")
_NO_DENOISE = typer.Option(False, "--no-denoise", help="Skip the non-local-means denoising.")
_OVERWRITE = typer.Option(False, "--overwrite", help="Replace a non-empty output folder.")
_NO_PROGRESS = typer.Option(False, "--no-progress", help="Hide the progress bars.")
_VERBOSE = typer.Option(False, "--verbose", "-v")


def _settings(preset: str, **values):
    from gliomics.slices.settings import make_settings

    if values.pop("no_denoise", False):
        values["denoise"] = False
    return make_settings(preset, **values)


def parse_weights(values: list[str], backbones: list[str]) -> dict[str, Path]:
    """``--weights`` values: ``NAME=PATH`` each, or a bare ``PATH`` when a single backbone is trained."""
    out: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep:
            if len(backbones) != 1 or len(values) != 1:
                raise ConfigError(f"--weights {value!r}: give NAME=PATH when several backbones are trained")
            name, path = backbones[0], value
        if name in out:
            raise ConfigError(f"--weights: two files for {name!r}")
        out[name.strip()] = Path(path.strip())
    return out


@handle_errors
def slices(
    data: Path = _DATA,
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: slices/, index.csv, slices_summary.json."),
    marker: str = _MARKER,
    markers: Path | None = _MARKERS,
    voi_labels: str | None = _VOI_LABELS,
    voi_masks: Path | None = _VOI_MASKS,
    layout: str = _LAYOUT,
    preset: str = _PRESET,
    k: int | None = _K,
    size: int | None = _SIZE,
    margin_mm: float | None = _MARGIN,
    edge_weight: float | None = _EDGE,
    no_denoise: bool = _NO_DENOISE,
    fmt: str = typer.Option("npy", "--format", help="npy (float32, 0 to 1) or png (16-bit)."),
    overwrite: bool = _OVERWRITE,
    no_progress: bool = _NO_PROGRESS,
    verbose: bool = _VERBOSE,
) -> None:
    """Write the preprocessed ROI slices of a cohort (the k largest-VOI axial T1ce slices per case) with index.csv."""
    setup_logging(verbose)
    from gliomics.io.output_folder import check_output_folder, staged_folder
    from gliomics.slices.slice_set import collect_slices, write_slices

    if fmt not in ("npy", "png"):
        raise ConfigError(f"--format {fmt!r}: expected npy or png")
    settings = _settings(preset, marker=marker, voi_labels=voi_labels, k=k, size=size, margin_mm=margin_mm,
                         edge_weight=edge_weight, no_denoise=no_denoise)
    check_output_folder(out, overwrite)
    slice_set = collect_slices(data, settings, markers=markers, voi_masks=voi_masks, layout=layout,
                               progress=not no_progress)
    with staged_folder(out, overwrite) as tmp:
        summary = write_slices(slice_set, tmp, fmt=fmt)
    typer.echo(f"wrote {summary['slices']} slices of {summary['patients']} patients "
               f"({summary['patients_altered']} {marker} altered) to {out}; {len(summary['skipped'])} cases skipped")
    for item in summary["skipped"]:
        typer.echo(f"  skipped {item['case_id']}: {item['reason']}", err=True)


@handle_errors
def slice_benchmark(
    data: Path = _DATA,
    out: Path = typer.Option(..., "--out", "-o", help="Benchmark folder: tables, figures, results.json, summary.md."),
    marker: str = _MARKER,
    markers: Path | None = _MARKERS,
    backbones: str = typer.Option("all", "--backbones", "-b",
                                  help="all, or some of regnet,ghostnet,mobilenet,resnext,shufflenet."),
    preset: str = _PRESET,
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Maximum epochs (paper 100, cpu 50)."),
    minutes: float | None = typer.Option(None, "--minutes", min=0.01, help="Wall-time budget per backbone."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the split, initialisation and augmentation (0)."),
    k: int | None = _K,
    size: int | None = _SIZE,
    margin_mm: float | None = _MARGIN,
    edge_weight: float | None = _EDGE,
    no_denoise: bool = _NO_DENOISE,
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Slices per batch (16)."),
    lr: float | None = typer.Option(None, "--lr", help="Adam learning rate (1e-3)."),
    weight_decay: float | None = typer.Option(None, "--weight-decay", help="Adam weight decay (0)."),
    patience: int | None = typer.Option(None, "--patience", min=1, help="Early-stopping patience in epochs."),
    search: int | None = typer.Option(None, "--search", min=0,
                                      help="Random settings of lr, weight decay and edge weight to try (0)."),
    test_fraction: float | None = typer.Option(None, "--test-fraction", help="Share of test patients (0.2)."),
    splits: Path | None = typer.Option(None, "--splits",
                                       help="A splits.json (a training run's or a benchmark's): its train, val and "
                                            "test cases give the training, early-stopping and test patients."),
    weights: list[str] = typer.Option([], "--weights", help="Local initial weights: NAME=PATH (repeatable)."),
    voi_labels: str | None = _VOI_LABELS,
    voi_masks: Path | None = _VOI_MASKS,
    layout: str = _LAYOUT,
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    save_models: bool = typer.Option(False, "--save-models", help="Also write models/<backbone>.pt."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads for torch (all allowed cores)."),
    overwrite: bool = _OVERWRITE,
    no_progress: bool = _NO_PROGRESS,
    verbose: bool = _VERBOSE,
) -> None:
    """Train and compare the five 2D backbones of the TERT paper on ROI slices; patient-level Tables 1 and 2."""
    setup_logging(verbose)
    from gliomics.slices.benchmark import run_benchmark

    settings = _settings(preset, marker=marker, backbones=backbones, epochs=epochs, minutes=minutes, seed=seed, k=k,
                         size=size, margin_mm=margin_mm, edge_weight=edge_weight, no_denoise=no_denoise,
                         batch_size=batch_size, lr=lr, weight_decay=weight_decay, patience=patience, search=search,
                         test_fraction=test_fraction, voi_labels=voi_labels)
    results = run_benchmark(data, out, settings, markers=markers, voi_masks=voi_masks, layout=layout,
                            splits=splits, weights=parse_weights(weights, settings.backbones), device=device,
                            overwrite=overwrite, save_models=save_models, threads=threads, progress=not no_progress)
    for key, row in results["table2"].items():
        auc = row["auc"]
        typer.echo(f"{key:>10}: AUC {'–' if auc is None else f'{auc:.3f}'}, accuracy {row['accuracy']:.3f} "
                   f"on {row['n']} test patients")
    typer.echo(f"tables, figures, results.json and summary.md in {out}")
