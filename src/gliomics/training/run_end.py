"""The end of a training run: the summary, the marker readout fitted on the best epoch's network in memory, and the
files that close the run folder (``train_summary.json``, ``model_card.json``)."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import torch

from gliomics.inference.marker_validation import write_model_card
from gliomics.io.atomic import write_text_atomic
from gliomics.provenance import config_digest, versions
from gliomics.runtime.checkpoint import BEST, load_checkpoint
from gliomics.runtime.hardware import describe
from gliomics.training.metrics_log import scalars

__all__ = ["best_predictor", "finish_run"]


def best_predictor(trainer):
    """A predictor of a :class:`~gliomics.training.trainer.Trainer`'s best epoch's network, in memory (read from
    ``best.pt`` only when this process did not train it, e.g. a resumed run whose best epoch came before), with what
    its validation fitted."""
    from gliomics.inference.predictor import Predictor

    if trainer.best_weights is not None:
        trainer.model.load_state_dict(trainer.best_weights)
    else:
        trainer.model.load_state_dict(load_checkpoint(trainer.out / BEST)["model"])
    return Predictor.from_network(trainer.model, trainer.cfg, trainer.fitted(), {"marker_readout": False, "tta": False},
                                  device=str(trainer.dev), precision=trainer.precision, threads=torch.get_num_threads())


def finish_run(trainer) -> dict[str, Any]:
    """The end of a :class:`~gliomics.training.trainer.Trainer`'s run: its summary; the marker readout, fitted where
    the config asks on the best epoch's weights in memory; ``train_summary.json`` and the model card."""
    st, dev = trainer.state, trainer.dev
    times = st.epoch_times
    summary = {"run": str(trainer.out), "epochs_run": st.epoch + 1, "steps_run": st.global_step,
               "stop_reason": st.stop_reason, "best_epoch": st.best_epoch, "best_score": st.best_score,
               "elapsed_seconds": st.elapsed_before + time.perf_counter() - trainer.t0,
               # training epochs only (validation excluded); the median, so that a resumed run's first epoch
               # and the occasional stall do not decide it
               "seconds_per_epoch": float(np.median(times)) if times else None,
               "seconds_per_step": (float(np.sum(times)) / max(1, st.global_step - trainer.start_step)
                                    if times else None),
               "hardware": {**describe(dev, trainer.precision), "world_size": trainer.info.world_size},
               # the most GPU memory this process held in tensors (training and validation); None on a CPU
               "peak_gpu_memory_gib": (torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda"
                                       else None),
               "supervision": trainer.supervision,
               "val": scalars(st.val_metrics), "thresholds": st.thresholds,
               "min_label_mm3": st.min_label_mm3, "min_component_mm3": st.min_component_mm3,
               "calibration": st.calibration,
               "seed": trainer.seed, "config_sha256": config_digest(trainer.cfg), "versions": versions()}
    if trainer.info.is_main and trainer.cfg.train.marker_readout and (trainer.out / BEST).is_file():
        from gliomics.training.readout import fit_run_readout

        readout = fit_run_readout(best_predictor(trainer), trainer.out, trainer.train, trainer.val, seed=trainer.seed,
                                  val_data=trainer.val_data if trainer.info.world_size == 1 else None)
        if readout is not None:
            summary["marker_readout"] = readout
            summary["thresholds"] = readout.get("thresholds", summary["thresholds"])
            summary["calibration"] = readout.get("calibration", summary["calibration"])
    if trainer.info.is_main:
        write_text_atomic(trainer.out / "train_summary.json", json.dumps(summary, indent=2))
        write_model_card(trainer.out, [c.case for c in trainer.train + trainer.val], preset=trainer.cfg.model.name,
                         started_from=trainer.cfg.train.init_from)
    return summary
