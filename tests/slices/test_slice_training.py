"""Augmentation, class weights, the random search and one short training run of the slice benchmark."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gliomics.slices.augment import RandomGamma, train_augmentation
from gliomics.slices.settings import make_settings
from gliomics.slices.training import (
    SEARCH_EDGE_WEIGHT,
    SEARCH_LR,
    average_by_patient,
    class_weights,
    predict_probabilities,
    search_space,
    train_trial,
)


def test_augmentation_keeps_shape_and_range():
    torch.manual_seed(0)
    image = torch.rand(1, 32, 32)
    out = train_augmentation()(image)
    assert out.shape == image.shape and out.dtype == torch.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    gamma = RandomGamma((2.0, 2.0), p=1.0)(image)
    assert torch.allclose(gamma, image**2, atol=1e-6)
    with pytest.raises(ValueError):
        RandomGamma((0.0, 1.0))


def test_average_by_patient_means_the_slices_of_each_patient():
    result = average_by_patient(["b", "a", "b", "a", "b"], [0.2, 0.9, 0.4, 0.7, 0.9])
    assert list(result) == ["b", "a"]
    assert result == pytest.approx({"b": 0.5, "a": 0.8})
    with pytest.raises(ValueError):
        average_by_patient(["a"], [0.1, 0.2])


def test_class_weights_are_inverse_frequencies():
    weights = class_weights([0, 0, 0, 1])
    assert weights.tolist() == pytest.approx([4 / 6, 2.0])
    with pytest.raises(ValueError):
        class_weights([1, 1])


def test_search_space_starts_with_the_defaults_and_is_seeded():
    settings = make_settings("paper", search=4, lr=2e-3, edge_weight=0.3)
    trials = search_space(settings, seed=5)
    assert len(trials) == 5 and trials[0] == {"lr": 2e-3, "weight_decay": 0.0, "edge_weight": 0.3}
    assert trials == search_space(settings, seed=5)
    for t in trials[1:]:
        assert SEARCH_LR[0] <= t["lr"] <= SEARCH_LR[1] and SEARCH_EDGE_WEIGHT[0] <= t["edge_weight"] <= 1.0


@pytest.fixture
def one_thread():
    """One torch thread: on a machine busy with other jobs, torch's threads waiting for each other slow this a lot."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_one_training_run_keeps_the_best_epoch_and_predicts_probabilities(one_thread):
    rng = np.random.default_rng(0)
    labels = np.array([0, 1] * 8)
    images = rng.random((16, 32, 32)).astype(np.float32) * 0.5
    images[labels == 1, 8:24, 8:24] += 0.5  # a bright square marks the altered class
    patients = np.array([f"P{i // 2}" for i in range(16)])
    settings = make_settings("cpu", size=32, epochs=2, batch_size=8, patience=1)
    result = train_trial("shufflenet", (images[:12], labels[:12]), (images[12:], labels[12:], patients[12:]),
                         settings, lr=1e-3, weight_decay=0.0, seed=0, device=torch.device("cpu"))
    assert 1 <= result.best_epoch <= result.epochs_run <= 2
    assert len(result.history) == result.epochs_run
    assert math.isfinite(result.best_val_loss)
    assert result.best_val_loss == min(h["val_loss"] for h in result.history)
    probs = predict_probabilities(result.model, images[12:])
    assert probs.shape == (4,) and ((probs >= 0) & (probs <= 1)).all()
