"""Fit the post-processing minimums of finished runs afresh on their validation split, as the trainer does.

Usage::

    .venv/bin/python benchmarks/refit_minimums.py RUN [RUN …] [--precision auto]

For runs trained before the trainer fitted minimum component volumes: the best checkpoint validates its validation
split with the trainer's code (:func:`~gliomics.training.validation.validate_cases` and
:func:`~gliomics.training.validation.summarise`, the caps from the training split's lesion volumes), and the fitted
``min_component_mm3`` is written into ``best.pt``; nothing else in the checkpoint changes. Prints both minimums.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def refit(run: Path, precision: str) -> dict:
    from gliomics.data.cohort import lesion_volume_quantiles
    from gliomics.data.splits import run_cohort
    from gliomics.data.transforms import inference_transforms
    from gliomics.inference.engine import pad_multiple
    from gliomics.runtime.checkpoint import BEST, load_checkpoint, load_network, save_checkpoint
    from gliomics.runtime.distributed import DistInfo
    from gliomics.runtime.hardware import autocast, resolve_precision
    from gliomics.training.data import make_dataset
    from gliomics.training.validation import summarise, validate_cases

    model, cfg, _ = load_network(run / BEST)
    model.eval()
    cohort, splits, _ = run_cohort(run)
    train = [cohort[c] for c in splits["train"] if c in cohort]
    val = [cohort[c] for c in splits["val"] if c in cohort]
    samples = make_dataset(val, inference_transforms(spacing=cfg.data.working_spacing, load_seg=True,
                                                     divisible=pad_multiple(model)), False)
    dev = torch.device("cpu")
    with torch.no_grad(), autocast(dev, resolve_precision(precision, dev)):
        rows = validate_cases(model, samples, roi_size=cfg.train.patch_size, device=dev, info=DistInfo(),
                              overlap=cfg.inference.overlap, whole_volume_factor=cfg.inference.whole_volume_factor)
    fitted = summarise(rows, auc_weight=cfg.train.selection_auc_weight,
                       volume_caps=lesion_volume_quantiles(train, 0.05))
    state = load_checkpoint(run / BEST)
    state["min_component_mm3"] = fitted["min_component_mm3"]
    save_checkpoint(state, run / BEST)
    return {"run": str(run), "min_component_mm3": fitted["min_component_mm3"],
            "min_label_mm3 (refitted, not written)": fitted["min_label_mm3"],
            "min_label_mm3 (checkpoint)": state.get("min_label_mm3", {})}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args(argv)
    for run in args.runs:
        print(json.dumps(refit(run, args.precision)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
