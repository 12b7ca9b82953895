"""The TERT slice benchmark end to end (:func:`run_benchmark`): ROI slices of a cohort, one patient-level
stratified split shared by every backbone, training, patient-level test predictions, Table 1, Table 2, figures.

Everything is written into a temporary folder that replaces ``out`` only when the run succeeds.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gliomics.constants import MARKER_NAMES
from gliomics.data.splits import SPLIT_NAMES, load_splits, save_splits, stratified_holdout
from gliomics.errors import ConfigError, InputError
from gliomics.io.delimited import write_rows
from gliomics.io.output_folder import check_output_folder, staged_folder
from gliomics.provenance import versions
from gliomics.runtime.hardware import configure_cpu
from gliomics.slices.settings import BenchmarkSettings
from gliomics.slices.slice_set import SliceSet, collect_slices
from gliomics.slices.tables import baseline_markdown, baseline_table, performance_markdown, performance_row

logger = logging.getLogger(__name__)

__all__ = ["OUTPUT_FILES", "run_benchmark"]

#: Files every benchmark folder holds.
OUTPUT_FILES: tuple[str, ...] = (
    "table1_baseline.csv", "table2_performance.csv", "predictions.csv", "split.csv", "training_history.csv",
    "splits.json", "roc_curves.png", "confusion_matrices.png", "results.json", "summary.md",
)


def _plain(value: Any) -> Any:
    """NumPy scalars and tuples to JSON-friendly values; NaN to None."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _flat(row: Mapping[str, Any]) -> dict[str, Any]:
    """A CSV row: ``[lo, hi]`` intervals become ``_lo``/``_hi`` columns, None an empty cell."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, (list, tuple)) and len(value) == 2:
            out[f"{key}_lo"], out[f"{key}_hi"] = ("" if v is None else v for v in value)
        else:
            out[key] = "" if value is None else value
    return out


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    write_rows(path, [_flat(r) for r in rows])


def _check_weights(weights: Mapping[str, Path] | None, settings: BenchmarkSettings) -> dict[str, Path]:
    """Resolve backbone names, check the files exist and load each once, so a bad file fails before training."""
    from gliomics.models.slice2d import create_slice_model, resolve_backbones

    out: dict[str, Path] = {}
    for name, path in (weights or {}).items():
        key = resolve_backbones(name)[0]
        if key not in settings.backbones:
            raise ConfigError(f"weights given for {name!r}, which is not among the backbones "
                              f"({', '.join(settings.backbones)})")
        create_slice_model(key, weights=path)
        out[key] = Path(path)
    return out


def _split(slice_set: SliceSet, settings: BenchmarkSettings, splits: Path | None = None) -> dict[str, list[str]]:
    """Patients for training (``fit``), early stopping (``val``) and test, and ``train`` = fit + val: drawn with
    :func:`~gliomics.data.splits.stratified_holdout` (stratified by the marker), or taken from a ``splits.json``."""
    patients = list(slice_set.patients)
    labels = [slice_set.patients[p].label for p in patients]
    n_pos = sum(labels)
    marker = settings.marker
    if n_pos == 0 or n_pos == len(labels):
        missing = "altered (1)" if n_pos == 0 else "not altered (0)"
        raise InputError(f"no patient with {marker} {missing} among the {len(labels)} usable patients; "
                         "the benchmark needs both classes")
    if splits is not None:
        return _split_from_file(slice_set, Path(splits), marker)
    train, test = stratified_holdout(patients, labels, settings.test_fraction, settings.seed, "test")
    train_labels = [slice_set.patients[p].label for p in train]
    fit, val = stratified_holdout(train, train_labels, settings.val_fraction, settings.seed + 1, "validation")
    return {"train": train, "fit": fit, "val": val, "test": test}


def _split_from_file(slice_set: SliceSet, path: Path, marker: str) -> dict[str, list[str]]:
    """The patients of a ``splits.json`` (a training run's, or another benchmark's): its train, val and test cases
    give the training, early-stopping and test patients, so that both models are tested on the same patients."""
    roles = load_splits(path)
    part = {case: name for name in SPLIT_NAMES for case in roles[name]}
    out: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for patient, info in slice_set.patients.items():
        names = {part.get(case) for case in info.cases}
        if None in names:
            case = next(c for c in info.cases if c not in part)
            raise InputError(f"{path}: case {case} of the cohort is in none of its splits")
        if len(names) > 1:
            raise InputError(f"{path}: the cases of patient {patient} are in more than one split")
        out[names.pop()].append(patient)
    for name, what in (("train", "training"), ("val", "validation"), ("test", "test")):
        classes = {slice_set.patients[p].label for p in out[name]}
        if classes != {0, 1} and (name != "val" or not classes):
            raise InputError(f"{path}: its {what} cases hold {len(out[name])} usable patient(s) of "
                             f"{'one class' if classes else 'no class'} of {marker}; "
                             f"the benchmark needs {'both classes' if name != 'val' else 'at least one patient'}")
    return {"train": sorted(out["train"] + out["val"]), "fit": sorted(out["train"]), "val": sorted(out["val"]),
            "test": sorted(out["test"])}


def _summary_markdown(results: dict, titles: dict[str, str]) -> str:
    s = results["settings"]
    c = results["cohort"]
    marker = MARKER_NAMES.get(s["marker"], s["marker"])
    budget = f"{s['minutes']:g} min per backbone, " if s.get("minutes") else ""
    lines = [
        f"# 2D slice benchmark: {marker}", "",
        f"Cohort `{c['data']}`: {c['patients']} usable patients ({c['patients_altered']} altered), "
        f"{c['slices']} slices; {len(c['skipped'])} cases skipped.",
        f"Split (seed {s['seed']}, stratified by patient): {len(results['split']['train'])} train "
        f"({len(results['split']['fit'])} fit + {len(results['split']['val'])} validation for early stopping), "
        f"{len(results['split']['test'])} test. The same split for every backbone.",
        f"Slices: {s['k']} per case (largest VOI area), margin {s['margin_mm']:g} mm, {s['size']}×{s['size']}, "
        f"NLM {'on' if s['denoise'] else 'off'}, edge weight {s['edge_weight']:g}. Training: Adam, {budget}"
        f"≤ {s['epochs']} epochs, batch {s['batch_size']}, patience {s['patience']}, "
        f"{s['search']} random-search trials besides the defaults.",
        f"Patient probability = mean of its slice probabilities; call = probability ≥ {s['threshold']:g}.", "",
        "## Table 1. Baseline characteristics", "", baseline_markdown(results["table1"]),
        "## Table 2. Test patients", "", performance_markdown(results["table2"], titles),
        "Accuracy, recall and precision with Wilson 95% CIs, F1 with a bootstrap CI, AUC with the DeLong CI.", "",
        "## Training", "",
        "| model | trial kept | lr | weight decay | edge weight | best epoch | epochs run | stopped by | minutes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, t in results["training"].items():
        kept = t["trials"][t["chosen_trial"]]
        p = kept["params"]
        minutes = sum(tr["seconds"] for tr in t["trials"]) / 60.0
        lines.append(f"| {titles[key]} | {t['chosen_trial']} | {p['lr']:.2g} | {p['weight_decay']:.2g} | "
                     f"{p['edge_weight']:.2f} | {kept['best_epoch']} | {kept['epochs_run']} | {kept['stop_reason']} | "
                     f"{minutes:.1f} |")
    if c["skipped"]:
        lines += ["", "## Skipped cases", ""] + [f"- {x['case_id']}: {x['reason']}" for x in c["skipped"]]
    lines += ["", "Figures: `roc_curves.png`, `confusion_matrices.png`. All numbers: `results.json`.",
              f"Wall time {results['seconds'] / 60:.1f} min. Research use only; a small test set gives wide CIs.", ""]
    return "\n".join(lines)


def run_benchmark(data: Path | str, out: Path | str, settings: BenchmarkSettings, *,
                  markers: Path | str | None = None, voi_masks: Path | str | None = None, layout: str = "auto",
                  splits: Path | str | None = None, weights: Mapping[str, Path] | None = None,
                  device: str = "auto", overwrite: bool = False,
                  save_models: bool = False, threads: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Run the benchmark and write the folder ``out`` (see :data:`OUTPUT_FILES`).

    Args:
        data: Cohort (any layout of :func:`gliomics.io.discover_cases`).
        out: Output folder; refused if it exists and is not empty, unless ``overwrite``.
        settings: See :class:`~gliomics.slices.settings.BenchmarkSettings`.
        markers: Markers CSV (``DATA/markers.csv`` when None).
        voi_masks: Folder of VOI masks ``<case_id>.nii.gz``; the segmentation labels when None.
        layout: Layout of ``data``.
        splits: A ``splits.json`` (a training run's) whose train, val and test cases give the training,
            early-stopping and test patients; drawn from ``settings`` (seed, fractions) when None.
        weights: Backbone → local initial weights.
        device: ``auto``, ``cpu`` or ``cuda``.
        overwrite: Replace an existing non-empty ``out``.
        save_models: Also write ``models/<backbone>.pt`` (state dict of the trial kept).
        threads: CPU threads for torch (all allowed cores when None).
        progress: Progress bars on stderr.

    Returns:
        The content of ``results.json``.
    """
    from gliomics.models.slice2d import BACKBONES

    start = time.monotonic()
    out = check_output_folder(out, overwrite)
    dev = _prepare_device(device, threads)
    weights = _check_weights(weights, settings)
    slice_set = collect_slices(data, settings, markers=markers, voi_masks=voi_masks, layout=layout,
                               progress=progress)
    split = _split(slice_set, settings, splits)
    patients = slice_set.slice_patients
    index_of = {name: np.flatnonzero(np.isin(patients, split[name])) for name in ("fit", "val", "test")}
    logger.info("split: %d fit, %d validation, %d test patients", *(len(split[n]) for n in ("fit", "val", "test")))
    images_for = _image_cache(slice_set)
    titles = {key: BACKBONES[key].title for key in settings.backbones}
    test_patients = split["test"]
    y_test = np.array([slice_set.patients[p].label for p in test_patients], dtype=np.int64)
    table1 = baseline_table([slice_set.patients[p] for p in split["train"]],
                            [slice_set.patients[p] for p in test_patients], settings.marker)
    with staged_folder(out, overwrite) as tmp:
        table2: dict[str, dict] = {}
        training: dict[str, dict] = {}
        probs: dict[str, np.ndarray] = {}
        for key in settings.backbones:
            probs[key], table2[key], training[key] = _run_backbone(
                key, titles[key], images_for, slice_set, index_of, test_patients, y_test, settings, dev,
                weights.get(key), tmp if save_models else None, progress,
            )
        results = _results(data, markers, splits, settings, slice_set, split, table1, table2, training, probs,
                           y_test, dev, start)
        _write_outputs(tmp, results, titles, slice_set)
        _write_figures(tmp, titles, y_test, probs, settings)
    return results


def _prepare_device(device: str, threads: int | None) -> Any:
    """Resolve ``device`` to a torch device and, on the CPU, set the number of torch threads."""
    from gliomics.runtime.hardware import resolve_device

    dev = resolve_device(device)
    if dev.type == "cpu":  # all allowed cores unless `threads` says fewer (a busy machine can be faster so)
        configure_cpu(threads)
    return dev


def _image_cache(slice_set: SliceSet) -> Callable[[float], np.ndarray]:
    """A function giving the slice images of ``slice_set`` for an edge weight, keeping only the last one made."""
    cache: dict[float, np.ndarray] = {}

    def images_for(edge_weight: float) -> np.ndarray:
        # one edge weight at a time: finishing the slices is cheap, holding many 224×224 sets is not
        if edge_weight not in cache:
            cache.clear()
            cache[edge_weight] = slice_set.images(edge_weight=edge_weight)
        return cache[edge_weight]

    return images_for


def _run_backbone(key: str, title: str, images_for: Callable[[float], np.ndarray], slice_set: SliceSet,
                  index_of: Mapping[str, np.ndarray], test_patients: Sequence[str], y_test: np.ndarray,
                  settings: BenchmarkSettings, dev: Any, weights: Path | None, models_folder: Path | None,
                  progress: bool) -> tuple[np.ndarray, dict, dict]:
    """Train one backbone and score it on the test patients: their probabilities, the Table 2 row and the training
    record; with ``models_folder``, also save the trial kept as ``models/<backbone>.pt`` under it."""
    from gliomics.slices.training import average_by_patient, predict_probabilities, train_backbone

    patients, labels = slice_set.slice_patients, slice_set.labels
    logger.info("training %s", title)
    best, chosen, trials = train_backbone(key, images_for, labels, patients, index_of["fit"],
                                          index_of["val"], settings, device=dev, weights=weights,
                                          progress=progress)
    test_idx = index_of["test"]
    slice_probs = predict_probabilities(best.model, images_for(best.params["edge_weight"])[test_idx], dev)
    by_patient = average_by_patient(patients[test_idx], slice_probs)
    probs = np.array([by_patient[p] for p in test_patients])
    row = performance_row(y_test, probs, threshold=settings.threshold, n_boot=settings.n_boot, seed=settings.seed)
    if models_folder is not None:
        from gliomics.runtime.checkpoint import save_checkpoint

        config = {**settings.model_dump(mode="json"), "backbone": key, **best.params}
        save_checkpoint({"model": best.model.state_dict(), "config": config}, models_folder / "models" / f"{key}.pt")
    logger.info("%s: test AUC %.3f, accuracy %.3f", title, row["auc"], row["accuracy"])
    del best  # free this model before the next backbone is built
    return probs, row, {"chosen_trial": chosen, "trials": trials}


def _results(data: Path | str, markers: Path | str | None, splits: Path | str | None, settings: BenchmarkSettings,
             slice_set: SliceSet, split: Mapping[str, list[str]], table1: Any, table2: dict[str, dict],
             training: dict[str, dict], probs: Mapping[str, np.ndarray], y_test: np.ndarray, dev: Any,
             start: float) -> dict[str, Any]:
    """The content of ``results.json``, in JSON-friendly values; ``start`` is the run's :func:`time.monotonic`."""
    import torch

    return _plain({
        "settings": settings.model_dump(mode="json"),
        "cohort": {"data": str(data), "markers": str(markers) if markers else None, "slices": len(slice_set.labels),
                   "patients": len(slice_set.patients),
                   "patients_altered": int(sum(p.label for p in slice_set.patients.values())),
                   "skipped": slice_set.skipped},
        "split": {name: split[name] for name in ("train", "fit", "val", "test")},
        "split_source": str(splits) if splits is not None else "drawn",
        "table1": table1,
        "table2": table2,
        "training": training,
        "test_predictions": {"patients": split["test"], "labels": y_test.tolist(),
                             "probabilities": {k: v.tolist() for k, v in probs.items()}},
        "device": str(dev),
        "torch_threads": torch.get_num_threads(),
        "seconds": round(time.monotonic() - start, 1),
    })


def _write_figures(folder: Path, titles: dict[str, str], y_test: np.ndarray, probs: Mapping[str, np.ndarray],
                   settings: BenchmarkSettings) -> None:
    """Write the ROC curves and the confusion matrices of every backbone on the test patients."""
    from gliomics.report.cohort_figures import confusion_comparison_figure, roc_comparison_figure
    from gliomics.report.figures import save_png

    save_png(roc_comparison_figure({titles[k]: (y_test, probs[k]) for k in settings.backbones},
                                   f"{MARKER_NAMES.get(settings.marker, settings.marker)}: test patients"),
             folder / "roc_curves.png")
    calls = {titles[k]: (y_test, (probs[k] >= settings.threshold).astype(int)) for k in settings.backbones}
    save_png(confusion_comparison_figure(calls), folder / "confusion_matrices.png")


def _write_outputs(folder: Path, results: dict, titles: dict[str, str], slice_set: SliceSet) -> None:
    """Tables as CSV, predictions, split, training history, results.json and summary.md."""
    _write_csv(folder / "table1_baseline.csv", results["table1"])
    _write_csv(folder / "table2_performance.csv", [{"backbone": k, "model": titles[k], **row}
                                                     for k, row in results["table2"].items()])
    pred = results["test_predictions"]
    rows = [{"patient": p, "label": y, **{f"prob_{k}": pred["probabilities"][k][i] for k in pred["probabilities"]}}
            for i, (p, y) in enumerate(zip(pred["patients"], pred["labels"]))]
    _write_csv(folder / "predictions.csv", rows)
    part = {p: name for name in ("fit", "val", "test") for p in results["split"][name]}
    _write_csv(folder / "split.csv", [{"patient": p, "split": "test" if part[p] == "test" else "train",
                                       "role": {"fit": "training", "val": "early stopping", "test": "test"}[part[p]],
                                       "label": info.label, "age": info.age, "sex": info.sex, "site": info.site,
                                       "cases": ";".join(info.cases)}
                                      for p, info in slice_set.patients.items()])
    history = [{"backbone": k, "trial": t["trial"], **h} for k, tr in results["training"].items()
               for t in tr["trials"] for h in t["history"]]
    _write_csv(folder / "training_history.csv", history)
    # the same file as a training run's: `--splits` of another benchmark reads it back
    cases = {name: sorted(c for p in results["split"][role] for c in slice_set.patients[p].cases)
             for name, role in (("train", "fit"), ("val", "val"), ("test", "test"))}
    save_splits(cases, folder / "splits.json", marker=results["settings"]["marker"], seed=results["settings"]["seed"],
                source=results["split_source"])
    (folder / "results.json").write_text(json.dumps({**results, "versions": versions()}, indent=2,
                                                  ensure_ascii=False))
    (folder / "summary.md").write_text(_summary_markdown(results, titles), encoding="utf-8")
