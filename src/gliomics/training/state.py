"""A training run's length (a work budget in epochs or optimizer steps, or a time budget) and the progress it carries
from epoch to epoch and, through ``last.pt``, across a resume."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from gliomics.config import RunConfig

__all__ = ["TrainState", "budget"]


def budget(cfg: RunConfig, epochs: int | None, steps: int | None, minutes: float | None,
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


@dataclass
class TrainState:
    """What changes from epoch to epoch and what ``last.pt`` carries over to a resumed run."""

    total_epochs: int
    total_steps: int | None
    epoch: int = -1  # the last epoch run
    global_step: int = 0
    best_score: float = -math.inf
    best_epoch: int = -1
    stale: int = 0  # validations since the best
    elapsed_before: float = 0.0  # seconds spent by the runs this one resumes
    thresholds: dict[str, float] = field(default_factory=dict)
    min_label_mm3: dict[str, float] = field(default_factory=dict)
    min_component_mm3: dict[str, float] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    val_metrics: dict[str, Any] = field(default_factory=dict)
    stop_reason: str = "epochs"
    epoch_times: list[float] = field(default_factory=list)

    def select(self, epoch: int, score: float, metrics: dict[str, Any]) -> None:
        """Make ``epoch`` the best one, with the thresholds, minimum volumes and calibration of ``metrics``."""
        self.best_score, self.best_epoch, self.stale = score, epoch, 0
        self.thresholds, self.min_label_mm3 = metrics.get("thresholds", {}), metrics.get("min_label_mm3", {})
        self.min_component_mm3 = metrics.get("min_component_mm3", {})
        self.calibration = metrics.get("calibration", {})
