"""The trainer: AdamW, warm-up + cosine schedule fitted to a work budget (epochs or optimizer steps) or a time budget,
bf16 autocast where the hardware has it (``--precision``), gradient clipping, validation, early stopping, atomic
``best``/``last`` checkpoints with the resolved config, a metrics log, and DDP under ``torchrun``."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from gliomics.config import RunConfig
from gliomics.errors import CheckpointError, ConfigError, InputError
from gliomics.io.atomic import write_text_atomic
from gliomics.io.folder_lock import writer_lock
from gliomics.presets import to_yaml, validate_config
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
from gliomics.runtime.fitted import FittedArtefacts, write_fitted
from gliomics.runtime.hardware import (
    autocast,
    configure_cpu,
    default_threads,
    resolve_device,
    resolve_precision,
)
from gliomics.training.data import (
    data_sources,
    loader_random_state,
    make_dataset,
    make_loader,
    marker_pos_weight,
    prepare_data,
    set_loader_random_state,
)
from gliomics.training.metrics_log import MetricsLog, scalars
from gliomics.training.state import TrainState, budget

logger = logging.getLogger(__name__)
CONFIG_FILE = "config.yaml"
#: What ``best.pt`` keeps of a checkpoint: enough to predict, not to resume.
BEST_KEYS: tuple[str, ...] = ("model", "config", "epoch", "best_score", "val_metrics", "pos_weight")
class Trainer:
    """One training run, as hooks that :meth:`run` calls in order: :meth:`setup` (process, data, model, optimisation),
    :meth:`restore` (resume from ``last.pt``), then per epoch :meth:`train_epoch`, :meth:`fit_time_budget`,
    :meth:`validate` and :meth:`save`, and :meth:`finish` (the summary and the marker readout).

    The arguments are those of :func:`run_training`.
    """

    def __init__(self, cfg: RunConfig, *, data: Path | str | Sequence[Path | str],
                 markers: Path | str | Sequence[Path | str] | None, out: Path | str,
                 epochs: int | None = None, steps: int | None = None, minutes: float | None = None,
                 resume: bool = False, device: str = "auto", precision: str = "auto", progress: bool = True,
                 threads: int | None = None) -> None:
        self.cfg, self.out = cfg, Path(out)
        self.threads = threads
        self.sources = data_sources(data, markers)
        self.budget_args = (epochs, steps, minutes)
        self.resume, self.progress = resume, progress
        self.dev = resolve_device(device)
        self.precision_arg = precision
        self.saved: dict[str, Any] | None = None  # the checkpoint resumed from

    # -- setup -------------------------------------------------------------------------------------------------
    def setup(self) -> None:
        """Everything before the first epoch; bad input fails here, before the run folder is made."""
        self._setup_process()
        self._setup_data()
        self._setup_model()
        self._setup_optimisation()

    def _setup_process(self) -> None:
        """Distributed rank, threads, precision; on resume the config of ``last.pt``; the seed."""
        self.info = init_distributed(self.dev)
        if self.dev.type == "cpu":
            configure_cpu(self.threads or max(1, default_threads() // self.info.world_size))
        self.precision = resolve_precision(self.precision_arg, self.dev)
        if self.resume:
            if not (self.out / LAST).is_file():
                raise CheckpointError(f"{self.out / LAST}: nothing to resume from")
            self.saved = load_checkpoint(self.out / LAST)
            try:
                self.cfg = validate_config(self.saved["config"], "its config")
            except ConfigError as exc:
                raise CheckpointError(f"{self.out / LAST}: cannot resume from it ({exc})") from exc
        elif self.info.is_main and self.out.exists() and not self.out.is_dir():
            raise InputError(f"{self.out}: output path exists and is not a folder")
        self.seed = self.cfg.train.seed
        from monai.utils import set_determinism

        set_determinism(seed=self.seed + self.info.rank)

    def _setup_data(self) -> None:
        """The split, the working spacing (the training cases' median unless set) and the training loader."""
        cfg = self.cfg
        self.train, self.val, save_splits, self.supervision = prepare_data(cfg, self.sources, self.out, self.info,
                                                                          self.resume)
        self._save_splits = save_splits
        if cfg.data.working_spacing is None:
            # adopt the training cohort's median voxel size, so that inputs of any resolution are resampled to it
            from gliomics.data.cohort import median_spacing

            spacing = median_spacing(self.train)
            self.cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"working_spacing": spacing})})
            logger.info("working spacing: %s mm (median of the training cases)", self.cfg.data.working_spacing)
        self.loader = make_loader(self.cfg, self.train, self.info, self.seed)

    def _setup_model(self) -> None:
        """The network, its validation cases preprocessed as the predictor will, and the run folder."""
        from gliomics.inference.predictor import Predictor
        from gliomics.models.registry import create_model, model_defaults
        from gliomics.training.validation import VALIDATION_OPTIONS

        cfg = self.cfg
        self.model = create_model(cfg.model.name, **cfg.model.params).to(self.dev)
        # record every hyperparameter, not only the overrides: the run then rebuilds the same network after a
        # preset's defaults change
        params = {**model_defaults(cfg.model.name), **cfg.model.params}
        self.cfg = cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"params": params})})
        problem = self.model.size_problem(cfg.train.patch_size)
        if problem:
            raise ConfigError(f"train.patch_size: {cfg.model.name}: {problem}")
        if cfg.train.init_from is not None and self.saved is None:
            from gliomics.training.fine_tuning import load_initial_weights

            load_initial_weights(self.model, cfg.train.init_from)
        # the validation cases' reference segmentations, read once; the best epoch's weights, once there is one
        self.references: dict[str, Any] = {}
        self.best_weights: dict[str, torch.Tensor] | None = None
        # this rank's share of the validation cases, preprocessed once for the whole run as the predictor will
        # validation predicts through the Predictor of the network being trained (its weights as they are at each
        # validation), and its preprocessing is the one that inverts the samples
        self.val_predictor = Predictor.from_network(self.model, cfg, options=VALIDATION_OPTIONS, device=str(self.dev),
                                                    precision=self.precision)
        self.val_data = make_dataset(self.val[self.info.rank::self.info.world_size],
                                     self.val_predictor.transform(self.val_predictor.options), cfg.data.cache)
        if self.info.is_main:
            # the run folder is made once the cases have been read: bad input leaves nothing behind
            self.out.mkdir(parents=True, exist_ok=True)
            if self._save_splits is not None:
                self._save_splits()
            if self.saved is None:
                write_text_atomic(self.out / CONFIG_FILE, to_yaml(cfg))
        barrier(self.info)
        self.net = self.model
        if self.info.enabled:
            from torch.nn.parallel import DistributedDataParallel

            self.net = DistributedDataParallel(self.model, device_ids=[self.dev.index] if self.dev.type == "cuda"
                                               else None, find_unused_parameters=True)

    def _setup_optimisation(self) -> None:
        """Loss, AdamW, the budget and the warm-up + cosine schedule fitted to it."""
        from monai.optimizers import WarmupCosineSchedule

        from gliomics.data.cohort import lesion_volume_quantiles
        from gliomics.losses import MultiTaskLoss

        cfg = self.cfg
        self.pos_weight = marker_pos_weight(cfg, self.train) if self.saved is None else self.saved["pos_weight"]
        # the label minimums fitted on validation may not exceed the 5th percentile of the training split's lesion
        # volumes
        self.volume_caps = lesion_volume_quantiles(self.train, 0.05) if self.val else {}
        self.criterion = MultiTaskLoss.from_config(cfg.loss, pos_weight=self.pos_weight).to(self.dev)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.train.lr,
                                           weight_decay=cfg.train.weight_decay)
        self.steps_per_epoch = max(1, len(self.loader))
        epochs, steps, minutes = self.budget_args
        self.budget_epochs, total_steps, budget_min = budget(cfg, epochs, steps, minutes, self.steps_per_epoch)
        total_epochs = self.budget_epochs
        # on resume the saved length holds unless --epochs or --steps asks for another
        if self.saved is not None and epochs is None and steps is None:
            total_epochs, total_steps = int(self.saved["total_epochs"]), self.saved.get("total_steps")
        self.state = TrainState(total_epochs=total_epochs, total_steps=total_steps,
                                stop_reason="epochs" if total_steps is None else "steps")
        self.scheduler = WarmupCosineSchedule(
            self.optimizer, warmup_steps=max(1, int(cfg.train.warmup_epochs * self.steps_per_epoch)),
            t_total=max(2, total_steps or total_epochs * self.steps_per_epoch), end_lr=cfg.train.lr * 0.01,
            warmup_multiplier=0.1)
        # mixed precision is bf16 autocast (CPU and CUDA alike), which needs no loss scaling; the disabled scaler
        # keeps the checkpoint's layout
        self.scaler = torch.amp.GradScaler("cuda", enabled=False)
        self.budget_minutes = budget_min

    def restore(self) -> None:
        """Continue from ``last.pt``: weights, optimizer, schedule, random state and the run's progress."""
        saved, st = self.saved, self.state
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.scaler.load_state_dict(saved["scaler"])
        set_rng_state(saved["rng"])
        if "loader_rng" in saved:  # runs written before the loader's state was kept resume as they always did
            set_loader_random_state(self.loader, saved["loader_rng"])
        st.epoch = int(saved["epoch"])
        st.best_score, st.best_epoch = float(saved["best_score"]), int(saved["best_epoch"])
        st.stale, st.elapsed_before = int(saved["stale"]), float(saved["elapsed"])
        st.global_step = int(saved.get("global_step", (st.epoch + 1) * self.steps_per_epoch))
        st.thresholds, st.val_metrics = dict(saved.get("thresholds", {})), dict(saved.get("val_metrics", {}))
        st.min_label_mm3 = dict(saved.get("min_label_mm3", {}))
        st.min_component_mm3 = dict(saved.get("min_component_mm3", {}))
        st.calibration = dict(saved.get("calibration", {}))
        logger.info("resuming %s at epoch %d", self.out, st.epoch + 1)

    # -- one epoch -----------------------------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> dict[str, Any]:
        """The optimizer steps of one epoch (up to the step budget); returns its row of the metrics log."""
        st, dev = self.state, self.dev
        if hasattr(self.loader.sampler, "set_epoch"):
            self.loader.sampler.set_epoch(epoch)
        self.net.train()
        sums: dict[str, float] = {}
        n_batches = 0
        te = time.perf_counter()
        for batch in self.loader:
            if st.total_steps is not None and st.global_step >= st.total_steps:
                break
            image = batch["image"].to(dev)
            targets = {"label": batch["label"].to(dev), "markers": batch["markers"].to(dev),
                       "supervision": batch["supervision"].to(dev)}
            self.optimizer.zero_grad(set_to_none=True)
            with autocast(dev, self.precision):
                outputs = self.net(image, batch["present"].to(dev))
                losses = self.criterion(outputs, targets)
            losses["total"].backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            st.global_step += 1
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            n_batches += 1
        epoch_time = time.perf_counter() - te
        st.epoch_times.append(epoch_time)
        return {"epoch": epoch, "step": st.global_step, "lr": self.optimizer.param_groups[0]["lr"],
                "epoch_seconds": epoch_time, "steps_in_epoch": n_batches,
                **{f"train_{k}": v / max(1, n_batches) for k, v in sums.items()}}

    def fit_time_budget(self, epoch: int) -> None:
        """Under a time budget, refit the schedule's length to the time left, validation included, so that the
        cosine reaches its end when the budget does."""
        if self.deadline is None:
            return
        st = self.state
        spent = time.perf_counter() - self.t0
        per_epoch = spent / (epoch - self.start_epoch + 1)
        fit = epoch + 1 + max(0, int((self.deadline - spent) / max(per_epoch, 1e-3)))
        st.total_epochs = max(epoch + 1, min(self.budget_epochs, fit))
        self.scheduler.t_total = max(2, min(st.total_epochs * self.steps_per_epoch, st.total_steps or math.inf))
        self.bar.total = st.total_epochs

    def is_last_epoch(self, epoch: int) -> bool:
        st = self.state
        return epoch == st.total_epochs - 1 or (st.total_steps is not None and st.global_step >= st.total_steps)

    def validate(self, epoch: int, row: dict[str, Any]) -> None:
        """Every ``val_every`` epochs and at the last: score the validation split, keep the best epoch and write its
        held-out predictions. Without a validation split every epoch is "the best" by its training loss."""
        from gliomics.training.validation import summarise, validate_cases

        st, cfg = self.state, self.cfg
        if not self.val:
            st.select(epoch, -float(row.get("train_total", 0.0)), {})
            return
        if (epoch + 1) % cfg.train.val_every != 0 and not self.is_last_epoch(epoch):
            return
        rows = validate_cases(self.val_predictor, self.val_data, self.val[self.info.rank::self.info.world_size],
                              info=self.info, references=self.references)
        st.val_metrics = summarise(rows, auc_weight=cfg.train.selection_auc_weight, volume_caps=self.volume_caps)
        row.update({f"val_{k}": v for k, v in scalars(st.val_metrics).items()})
        if st.val_metrics["score"] > st.best_score:
            st.select(epoch, st.val_metrics["score"], st.val_metrics)
            if self.info.is_main:
                # the held-out predictions of the best epoch: the out-of-fold set of a K-fold ensemble
                write_text_atomic(self.out / VAL_PREDICTIONS, json.dumps(
                    [{"case_id": r["case_id"], "markers": r["markers"], "prob": r["prob"]} for r in rows]))
        else:
            st.stale += 1

    def save(self, epoch: int, row: dict[str, Any]) -> None:
        """The metrics-log row, ``best.pt`` when this epoch is the best, and ``last.pt`` (on the main rank)."""
        st = self.state
        elapsed = st.elapsed_before + time.perf_counter() - self.t0
        row["elapsed_seconds"] = elapsed
        if not self.info.is_main:
            return
        ckpt = {"model": self.model.state_dict(), "config": self.cfg.model_dump(mode="json"), "epoch": epoch,
                "total_epochs": st.total_epochs, "total_steps": st.total_steps, "global_step": st.global_step,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(), "rng": rng_state(),
                "loader_rng": loader_random_state(self.loader),
                "best_score": st.best_score, "best_epoch": st.best_epoch, "stale": st.stale, "elapsed": elapsed,
                "thresholds": st.thresholds, "min_label_mm3": st.min_label_mm3,
                "min_component_mm3": st.min_component_mm3, "val_metrics": scalars(st.val_metrics),
                "pos_weight": self.pos_weight, "calibration": st.calibration}
        # the log row first: a kill between the two leaves a row that the resumed run rewrites, never a checkpointed
        # epoch without its row
        self.log.append(row)
        if st.best_epoch == epoch:
            save_checkpoint({k: ckpt[k] for k in BEST_KEYS}, self.out / BEST)
            write_fitted(self.out, self.fitted())
            # the best weights stay in memory for what is fitted after training (the marker readout)
            self.best_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        save_checkpoint(ckpt, self.out / LAST)

    def fitted(self) -> FittedArtefacts:
        """What the best epoch's validation fitted: marker thresholds, label and component minimums, calibration."""
        st = self.state
        return FittedArtefacts(thresholds=st.thresholds, min_label_mm3=st.min_label_mm3,
                               min_component_mm3=st.min_component_mm3, calibration=st.calibration)

    def should_stop(self, epoch: int) -> bool:
        """Early stopping, the step budget or the time budget; records why."""
        st = self.state
        if st.stale >= self.cfg.train.patience:
            st.stop_reason = "early stopping"
            return True
        if st.total_steps is not None and st.global_step >= st.total_steps:
            return True
        if self.deadline is not None and (self.is_last_epoch(epoch) or time.perf_counter() - self.t0 >= self.deadline):
            # the schedule fitted to the budget has ended: further epochs would run at the final learning rate and,
            # each being "the last", validate every time
            st.stop_reason = "time budget"
            return True
        return False

    # -- the run -------------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Set up, resume if asked, train epoch by epoch and return the summary, holding the run folder's lock (a
        second writer of the same run fails at once)."""
        main = int(os.environ.get("RANK", "0")) == 0  # known before the process group: only the main rank writes
        with writer_lock(self.out, "train") if main else contextlib.nullcontext():
            return self._train()

    def _train(self) -> dict[str, Any]:
        from tqdm import tqdm

        self.setup()
        if self.saved is not None:
            self.restore()
        st = self.state
        self.start_epoch, self.start_step = st.epoch + 1, st.global_step
        self.log = MetricsLog(self.out) if self.info.is_main else None
        self.t0 = time.perf_counter()
        self.deadline = None if self.budget_minutes is None else self.budget_minutes * 60.0 - st.elapsed_before
        self.bar = tqdm(total=st.total_epochs, initial=self.start_epoch, desc="train", unit="epoch",
                        disable=not (self.progress and self.info.is_main))
        for epoch in range(self.start_epoch, st.total_epochs):
            st.epoch = epoch
            row = self.train_epoch(epoch)
            self.fit_time_budget(epoch)
            self.validate(epoch, row)
            self.save(epoch, row)
            self.bar.update()
            self.bar.set_postfix(loss=f"{row.get('train_total', float('nan')):.3f}",
                                 score=f"{st.val_metrics.get('score', float('nan')):.3f}")
            if self.should_stop(epoch):
                break
        self.bar.close()
        barrier(self.info)
        cleanup(self.info)
        return self.finish()

    def finish(self) -> dict[str, Any]:
        """The run's summary, the marker readout where the config asks, ``train_summary.json`` and the model card
        (:func:`~gliomics.training.run_end.finish_run`)."""
        from gliomics.training.run_end import finish_run

        return finish_run(self)

def run_training(cfg: RunConfig, *, data: Path | str | Sequence[Path | str],
                 markers: Path | str | Sequence[Path | str] | None, out: Path | str,
                 epochs: int | None = None, steps: int | None = None, minutes: float | None = None,
                 resume: bool = False, device: str = "auto", precision: str = "auto",
                 progress: bool = True, threads: int | None = None) -> dict[str, Any]:
    """Train ``cfg`` on the cases in ``data`` and write the run folder ``out`` (:class:`Trainer`).

    ``data`` and ``markers`` may be lists, one markers table per cohort (or none): the cohorts are trained on as
    one. A case may carry subregion labels, a whole-tumour mask and/or marker labels (at least one); the losses mask
    what it lacks.

    The budget is ``steps`` optimizer steps, else ``epochs``, else the config's (``train.steps``, ``train.epochs``);
    ``minutes`` adds a wall-clock limit. ``precision`` is ``auto``, ``fp32`` or ``bf16``
    (:func:`~gliomics.runtime.hardware.resolve_precision`). ``threads`` fixes the CPU threads (default: the free
    usable cores, shared among the ranks).

    Returns a summary: best score and epoch, epochs and steps run, elapsed seconds, seconds per epoch and per step,
    the CPU model and precision, and the last validation metrics.
    """
    return Trainer(cfg, data=data, markers=markers, out=out, epochs=epochs, steps=steps, minutes=minutes,
                   resume=resume, device=device, precision=precision, progress=progress, threads=threads).run()
