"""A run's length and the progress it carries: work budgets in epochs or steps, the time budget, the best epoch."""

from __future__ import annotations

import math

from gliomics.presets import apply_overrides, load_preset
from gliomics.training.state import TrainState, budget


def test_a_step_budget_sets_the_epochs_that_hold_it():
    cfg = load_preset("mgmtnet_cpu", check_model=False)
    assert budget(cfg, None, 1900, None, 38) == (50, 1900, cfg.train.minutes)
    assert budget(cfg, None, 100, 5.0, 38) == (3, 100, 5.0)  # the last epoch is partial
    assert budget(cfg, 7, None, None, 38) == (7, None, cfg.train.minutes)
    assert budget(cfg, None, None, None, 38)[0] == cfg.train.epochs
    stepped = apply_overrides(cfg, ["train.steps=20"], check_model=False)
    assert budget(stepped, 7, None, None, 8) == (3, 20, stepped.train.minutes)  # the config's steps win over epochs


def test_selecting_an_epoch_keeps_its_thresholds_volumes_and_calibration():
    state = TrainState(total_epochs=10, total_steps=None, stale=3)
    assert state.best_score == -math.inf
    state.select(4, 0.8, {"thresholds": {"idh": 0.4}, "min_label_mm3": {"ET": 10.0},
                          "min_component_mm3": {"SNFH": 50.0}, "calibration": {"idh": {"temperature": 1.2}}})
    assert (state.best_epoch, state.best_score, state.stale) == (4, 0.8, 0)
    assert state.thresholds == {"idh": 0.4} and state.min_component_mm3 == {"SNFH": 50.0}
    assert state.min_label_mm3 == {"ET": 10.0} and state.calibration == {"idh": {"temperature": 1.2}}
