"""The trainer: AdamW, warm-up + cosine schedule fitted to a work budget (epochs or optimizer steps) or a time budget,
bf16 autocast where the hardware has it (``--precision``), gradient clipping, validation, early stopping, atomic
``best``/``last`` checkpoints with the resolved config, a metrics log, and DDP under ``torchrun``."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gliomics.config import RunConfig, to_yaml, validate_config
from gliomics.errors import CheckpointError, ConfigError, InputError
from gliomics.io.atomic import write_text_atomic
from gliomics.provenance import config_digest, versions
from gliomics.runtime.checkpoint import (
    BEST,
    LAST,
    VAL_PREDICTIONS,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from gliomics.runtime.distributed import barrier, cleanup, init_distributed
from gliomics.runtime.hardware import (
    autocast,
    configure_cpu,
    describe,
    resolve_device,
    resolve_precision,
    usable_cores,
)
from gliomics.training.data import data_sources, make_dataset, make_loader, marker_pos_weight, prepare_data
from gliomics.training.metrics_log import MetricsLog

logger = logging.getLogger(__name__)
CONFIG_FILE = "config.yaml"
def _scalars(metrics: dict[str, Any]) -> dict[str, Any]:
    """The scalar entries of a validation summary (its thresholds and minimum volumes go to the checkpoint)."""
    return {k: v for k, v in metrics.items() if not isinstance(v, dict)}


def _budget(cfg: RunConfig, epochs: int | None, steps: int | None, minutes: float | None,
            steps_per_epoch: int) -> tuple[int, int | None, float | None]:
    """The run's length: ``(epochs, steps, minutes)``.

    A budget in optimizer steps (``steps``, else ``train.steps``) sets the epochs to as many as hold that many steps
    (the last may be partial); otherwise the epochs are ``epochs``, else ``train.epochs``. A time budget
    (``minutes``, else ``train.minutes``) may end the run sooner; it is a property of the machine, the others are not.
    """
    m = minutes if minutes is not None else cfg.train.minutes
    n_steps = steps if steps is not None else cfg.train.steps
    if n_steps is not None:
        return max(1, math.ceil(n_steps / steps_per_epoch)), int(n_steps), m
    return epochs if epochs is not None else cfg.train.epochs, None, m


def run_training(cfg: RunConfig, *, data: Path | str | Sequence[Path | str],
                 markers: Path | str | Sequence[Path | str] | None, out: Path | str,
                 epochs: int | None = None, steps: int | None = None, minutes: float | None = None,
                 resume: bool = False, device: str = "auto", precision: str = "auto",
                 progress: bool = True) -> dict[str, Any]:
    """Train ``cfg`` on the cases in ``data`` and write the run folder ``out``.

    ``data`` and ``markers`` may be lists, one markers table per cohort (or none): the cohorts are trained on as
    one. A case may carry subregion labels, a whole-tumour mask and/or marker labels (at least one); the losses mask
    what it lacks.

    The budget is ``steps`` optimizer steps, else ``epochs``, else the config's (``train.steps``, ``train.epochs``);
    ``minutes`` adds a wall-clock limit. ``precision`` is ``auto``, ``fp32`` or ``bf16``
    (:func:`~gliomics.runtime.hardware.resolve_precision`).

    Returns a summary: best score and epoch, epochs and steps run, elapsed seconds, seconds per epoch and per step,
    the CPU model and precision, and the last validation metrics.
    """
    from monai.optimizers import WarmupCosineSchedule
    from monai.utils import set_determinism
    from tqdm import tqdm

    from gliomics.data.cohort import lesion_volume_quantiles
    from gliomics.data.transforms import inference_transforms
    from gliomics.inference.engine import pad_multiple
    from gliomics.losses import MultiTaskLoss
    from gliomics.models.registry import create_model, model_defaults
    from gliomics.training.validation import summarise, validate_cases

    sources = data_sources(data, markers)
    out = Path(out)
    dev = resolve_device(device)
    info = init_distributed(dev)
    if dev.type == "cpu":
        configure_cpu(max(1, usable_cores() // info.world_size))
    precision = resolve_precision(precision, dev)
    state: dict[str, Any] | None = None
    if resume:
        if not (out / LAST).is_file():
            raise CheckpointError(f"{out / LAST}: nothing to resume from")
        state = load_checkpoint(out / LAST)
        try:
            cfg = validate_config(state["config"], "its config")
        except ConfigError as exc:
            raise CheckpointError(f"{out / LAST}: cannot resume from it ({exc})") from exc
    elif info.is_main:
        if out.exists() and not out.is_dir():
            raise InputError(f"{out}: output path exists and is not a folder")
    seed = cfg.train.seed
    set_determinism(seed=seed + info.rank)

    train, val, save_splits, supervision = prepare_data(cfg, sources, out, info, resume)
    if cfg.data.spacing is None:
        # adopt the training cohort's median voxel size, so that inputs of any resolution are resampled to it
        from gliomics.data.cohort import median_spacing

        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"spacing": median_spacing(train)})})
        logger.info("working spacing: %s mm (median of the training cases)", cfg.data.spacing)
    loader = make_loader(cfg, train, info, seed)
    model = create_model(cfg.model.name, **cfg.model.params).to(dev)
    # record every hyperparameter, not only the overrides: the run then rebuilds the same network after a
    # preset's defaults change
    params = {**model_defaults(cfg.model.name), **cfg.model.params}
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"params": params})})
    problem = model.size_problem(cfg.train.patch_size)
    if problem:
        raise ConfigError(f"train.patch_size: {cfg.model.name}: {problem}")
    # this rank's share of the validation cases, preprocessed once for the whole run as the predictor will
    val_data = make_dataset(val[info.rank::info.world_size], inference_transforms(
        spacing=cfg.data.spacing, load_seg=True, divisible=pad_multiple(model)), cfg.data.cache)
    if info.is_main:
        # the run folder is made once the cases have been read: bad input leaves nothing behind
        out.mkdir(parents=True, exist_ok=True)
        if save_splits is not None:
            save_splits()
        if state is None:
            write_text_atomic(out / CONFIG_FILE, to_yaml(cfg))
    barrier(info)

    net = model
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None,
                                      find_unused_parameters=True)
    pos_weight = marker_pos_weight(cfg, train) if state is None else state["pos_weight"]
    # the label minimums fitted on validation may not exceed the 5th percentile of the training split's lesion volumes
    volume_caps = lesion_volume_quantiles(train, 0.05) if val else {}
    criterion = MultiTaskLoss.from_config(cfg.loss, pos_weight=pos_weight).to(dev)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    steps_per_epoch = max(1, len(loader))
    n_epochs, total_steps, budget_min = _budget(cfg, epochs, steps, minutes, steps_per_epoch)
    # on resume the saved length holds unless --epochs or --steps asks for another
    if state is not None and epochs is None and steps is None:
        total_epochs, total_steps = int(state["total_epochs"]), state.get("total_steps")
    else:
        total_epochs = n_epochs
    scheduler = WarmupCosineSchedule(optimizer, warmup_steps=max(1, int(cfg.train.warmup_epochs * steps_per_epoch)),
                                     t_total=max(2, total_steps or total_epochs * steps_per_epoch),
                                     end_lr=cfg.train.lr * 0.01, warmup_multiplier=0.1)
    # mixed precision is bf16 autocast (CPU and CUDA alike), which needs no loss scaling; the disabled scaler keeps
    # the checkpoint's layout
    scaler = torch.amp.GradScaler("cuda", enabled=False)

    start_epoch, best_score, best_epoch, stale, elapsed_before, global_step = 0, -math.inf, -1, 0, 0.0, 0
    thresholds: dict[str, float] = {}
    min_label_mm3: dict[str, float] = {}
    min_component_mm3: dict[str, float] = {}
    calibration: dict[str, Any] = {}
    val_metrics: dict[str, Any] = {}
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        start_epoch, best_score, best_epoch = int(state["epoch"]) + 1, float(state["best_score"]), int(
            state["best_epoch"])
        stale, elapsed_before = int(state["stale"]), float(state["elapsed"])
        global_step = int(state.get("global_step", start_epoch * steps_per_epoch))
        thresholds, val_metrics = dict(state.get("thresholds", {})), dict(state.get("val_metrics", {}))
        min_label_mm3 = dict(state.get("min_label_mm3", {}))
        min_component_mm3 = dict(state.get("min_component_mm3", {}))
        calibration = dict(state.get("calibration", {}))
        logger.info("resuming %s at epoch %d", out, start_epoch)
    log = MetricsLog(out) if info.is_main else None

    t0 = time.perf_counter()
    deadline = None if budget_min is None else budget_min * 60.0 - elapsed_before
    bar = tqdm(total=total_epochs, initial=start_epoch, desc="train", unit="epoch",
               disable=not (progress and info.is_main))
    epoch = start_epoch - 1
    start_step = global_step
    stop_reason = "epochs" if total_steps is None else "steps"
    epoch_times: list[float] = []
    for epoch in range(start_epoch, total_epochs):
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        net.train()
        sums: dict[str, float] = {}
        n_batches = 0
        te = time.perf_counter()
        for batch in loader:
            if total_steps is not None and global_step >= total_steps:
                break
            image = batch["image"].to(dev)
            targets = {"label": batch["label"].to(dev), "markers": batch["markers"].to(dev),
                       "supervision": batch["supervision"].to(dev)}
            optimizer.zero_grad(set_to_none=True)
            with autocast(dev, precision):
                outputs = net(image, batch["present"].to(dev))
                losses = criterion(outputs, targets)
            losses["total"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
            optimizer.step()
            scheduler.step()
            global_step += 1
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            n_batches += 1
        epoch_time = time.perf_counter() - te
        epoch_times.append(epoch_time)
        row: dict[str, Any] = {"epoch": epoch, "step": global_step, "lr": optimizer.param_groups[0]["lr"],
                               "epoch_seconds": epoch_time, "steps_in_epoch": n_batches,
                               **{f"train_{k}": v / max(1, n_batches) for k, v in sums.items()}}
        if deadline is not None:
            # a time budget: refit the schedule's length to the time left, validation included, so that the
            # cosine reaches its end when the budget does
            spent = time.perf_counter() - t0
            per_epoch = spent / (epoch - start_epoch + 1)
            fit = epoch + 1 + max(0, int((deadline - spent) / max(per_epoch, 1e-3)))
            total_epochs = max(epoch + 1, min(n_epochs, fit))
            scheduler.t_total = max(2, min(total_epochs * steps_per_epoch, total_steps or math.inf))
            bar.total = total_epochs
        last_epoch = epoch == total_epochs - 1 or (total_steps is not None and global_step >= total_steps)
        if val and ((epoch + 1) % cfg.train.val_every == 0 or last_epoch):
            with autocast(dev, precision):
                rows = validate_cases(model, val_data, roi_size=cfg.train.patch_size, device=dev, info=info,
                                      overlap=cfg.train.val_overlap,
                                      whole_volume_factor=cfg.train.whole_volume_factor)
            val_metrics = summarise(rows,
                                    auc_weight=cfg.train.selection_auc_weight, volume_caps=volume_caps)
            row.update({f"val_{k}": v for k, v in _scalars(val_metrics).items()})
            if val_metrics["score"] > best_score:
                best_score, best_epoch, stale = val_metrics["score"], epoch, 0
                thresholds, min_label_mm3 = val_metrics["thresholds"], val_metrics["min_label_mm3"]
                min_component_mm3 = val_metrics["min_component_mm3"]
                calibration = val_metrics["calibration"]
                if info.is_main:
                    # the held-out predictions of the best epoch: the out-of-fold set of a K-fold ensemble
                    write_text_atomic(out / VAL_PREDICTIONS, json.dumps(
                        [{"case_id": r["case_id"], "markers": r["markers"], "prob": r["prob"]} for r in rows]))
            else:
                stale += 1
        elif not val:
            best_score, best_epoch, thresholds, min_label_mm3 = -float(row.get("train_total", 0.0)), epoch, {}, {}
            min_component_mm3 = {}
            calibration = {}
        elapsed = elapsed_before + time.perf_counter() - t0
        row["elapsed_seconds"] = elapsed
        if info.is_main:
            ckpt = {"model": model.state_dict(), "config": cfg.model_dump(mode="json"), "epoch": epoch,
                    "total_epochs": total_epochs, "total_steps": total_steps, "global_step": global_step,
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "rng": rng_state(),
                    "best_score": best_score, "best_epoch": best_epoch, "stale": stale, "elapsed": elapsed,
                    "thresholds": thresholds, "min_label_mm3": min_label_mm3,
                    "min_component_mm3": min_component_mm3, "val_metrics": _scalars(val_metrics),
                    "pos_weight": pos_weight, "calibration": calibration}
            # the log row first: a kill between the two leaves a row that the resumed run rewrites, never a
            # checkpointed epoch without its row
            log.append(row)
            if best_epoch == epoch:
                save_checkpoint({k: ckpt[k] for k in ("model", "config", "epoch", "best_score", "thresholds",
                                                      "min_label_mm3", "min_component_mm3", "val_metrics",
                                                      "pos_weight", "calibration")},
                                out / BEST)
            save_checkpoint(ckpt, out / LAST)
        bar.update()
        bar.set_postfix(loss=f"{row.get('train_total', float('nan')):.3f}",
                        score=f"{val_metrics.get('score', float('nan')):.3f}")
        if stale >= cfg.train.patience:
            stop_reason = "early stopping"
            break
        if total_steps is not None and global_step >= total_steps:
            break
        if deadline is not None and (last_epoch or time.perf_counter() - t0 >= deadline):
            # the schedule fitted to the budget has ended: further epochs would run at the final learning rate and,
            # each being "the last", validate every time
            stop_reason = "time budget"
            break
    bar.close()
    barrier(info)
    cleanup(info)
    summary = {"run": str(out), "epochs_run": epoch + 1, "steps_run": global_step, "stop_reason": stop_reason,
               "best_epoch": best_epoch, "best_score": best_score,
               "elapsed_seconds": elapsed_before + time.perf_counter() - t0,
               # training epochs only (validation excluded); the median, so that a resumed run's first epoch and
               # the occasional stall do not decide it
               "seconds_per_epoch": float(np.median(epoch_times)) if epoch_times else None,
               "seconds_per_step": (float(np.sum(epoch_times)) / max(1, global_step - start_step)
                                    if epoch_times else None),
               "hardware": {**describe(dev, precision), "world_size": info.world_size},
               # the most GPU memory this process held in tensors (training and validation); None on a CPU
               "peak_gpu_memory_gib": (torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else None),
               "supervision": supervision,
               "val": _scalars(val_metrics), "thresholds": thresholds, "min_label_mm3": min_label_mm3,
               "min_component_mm3": min_component_mm3,
               "calibration": calibration,
               "seed": seed, "config_sha256": config_digest(cfg), "versions": versions()}
    if info.is_main and cfg.train.marker_readout and (out / BEST).is_file():
        from gliomics.training.readout import fit_run_readout

        readout = fit_run_readout(out, train, val, device=str(dev), precision=precision, seed=seed)
        if readout is not None:
            summary["marker_readout"] = readout
            summary["thresholds"] = readout.get("thresholds", summary["thresholds"])
            summary["calibration"] = readout.get("calibration", summary["calibration"])
    if info.is_main:
        write_text_atomic(out / "train_summary.json", json.dumps(summary, indent=2))
    return summary
