"""Training of one 2D backbone on ROI slices: augmentation, Adam, ReduceLROnPlateau, class-weighted cross-entropy,
early stopping on a validation set of training patients, and an optional small random search.

A *trial* is one training run with fixed settings (learning rate, weight decay, edge weight). The validation loss
decides the learning-rate reductions, early stopping (the weights of the best epoch are kept) and, with a search,
which trial is used on the test set. The test set is never seen here.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from gliomics.models.slice2d import create_slice_model
from gliomics.slices.augment import train_augmentation
from gliomics.slices.settings import BenchmarkSettings

logger = logging.getLogger(__name__)

__all__ = ["TrialResult", "average_by_patient", "class_weights", "predict_probabilities", "search_space",
           "train_backbone", "train_trial"]

#: Ranges of the random search: log-uniform learning rate and weight decay, uniform edge weight.
SEARCH_LR = (1e-4, 3e-3)
SEARCH_WEIGHT_DECAY = (1e-6, 1e-3)
SEARCH_EDGE_WEIGHT = (0.0, 1.0)


@dataclass
class TrialResult:
    """One training run: its settings, the model at its best validation epoch, and the epoch history."""

    params: dict[str, float]
    model: nn.Module
    best_epoch: int
    best_val_loss: float
    epochs_run: int
    stop_reason: str
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)

    def summary(self) -> dict:
        """Everything but the model, JSON-friendly."""
        return {"params": self.params, "best_epoch": self.best_epoch, "best_val_loss": self.best_val_loss,
                "epochs_run": self.epochs_run, "stop_reason": self.stop_reason, "seconds": round(self.seconds, 1)}


class _SliceDataset(Dataset):
    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Callable | None) -> None:
        self.images = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).unsqueeze(1)
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[index]
        return (self.transform(image) if self.transform is not None else image), self.labels[index]


def class_weights(labels: Sequence[int]) -> torch.Tensor:
    """Weights ``n / (2 · n_c)`` of the two classes (inverse frequency, mean 1 over the slices)."""
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=2).astype(np.float64)
    if (counts == 0).any():
        raise ValueError(f"both classes are needed to weight the loss, got counts {counts.tolist()}")
    return torch.tensor(labels.size / (2.0 * counts), dtype=torch.float32)


def average_by_patient(patients: Sequence[str], probabilities: Sequence[float]) -> dict[str, float]:
    """Mean slice probability of every patient, in order of first appearance (a patient's probability)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if len(patients) != probabilities.size:
        raise ValueError(f"{len(patients)} patient ids but {probabilities.size} probabilities")
    sums: dict[str, list[float]] = {}
    for patient, p in zip(patients, probabilities):
        sums.setdefault(str(patient), []).append(float(p))
    return {patient: float(np.mean(values)) for patient, values in sums.items()}


def _probabilities(logits: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(logits[:, 0]) if logits.shape[1] == 1 else torch.softmax(logits.float(), dim=1)[:, 1]


@torch.no_grad()
def predict_probabilities(model: nn.Module, images: np.ndarray, device: torch.device | str = "cpu",
                          batch_size: int = 64) -> np.ndarray:
    """Probability of the altered class for every slice (N×H×W in [0, 1]), in evaluation mode."""
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])).unsqueeze(1).to(device)
        out.append(_probabilities(model(batch)).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def _patient_auc(patients: np.ndarray, labels: np.ndarray, probs: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    by_patient = average_by_patient(patients, probs)
    label = dict(zip(patients, labels))
    y = [label[p] for p in by_patient]
    return float(roc_auc_score(y, list(by_patient.values()))) if 0 < sum(y) < len(y) else math.nan


def _trial_setup(
    model: nn.Module, x_train: np.ndarray, y_train: np.ndarray, settings: BenchmarkSettings, lr: float,
    weight_decay: float, seed: int, device: torch.device,
) -> tuple[DataLoader, nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.ReduceLROnPlateau]:
    """The seeded, shuffled and augmented training loader, the class-weighted loss, Adam and its plateau scheduler
    of one trial."""
    dataset = _SliceDataset(x_train, y_train, train_augmentation())
    loader = DataLoader(dataset, batch_size=settings.batch_size, shuffle=True, num_workers=0,
                        generator=torch.Generator().manual_seed(seed), drop_last=len(dataset) > settings.batch_size)
    criterion = nn.CrossEntropyLoss(weight=class_weights(y_train).to(device))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=settings.plateau_factor,
                                                           patience=settings.plateau_patience)
    return loader, criterion, optimizer, scheduler


def _train_epoch(model: nn.Module, loader: DataLoader, criterion: nn.Module, optimizer: torch.optim.Optimizer,
                 scaler: torch.amp.GradScaler, device: torch.device, deadline: float | None, desc: str,
                 progress: bool) -> tuple[list[float], bool]:
    """One pass over the training batches (AMP on CUDA only); the batch losses and whether the deadline cut the
    pass short."""
    from tqdm import tqdm

    amp = device.type == "cuda"
    model.train()
    losses, out_of_time = [], False
    for x, y in tqdm(loader, desc=desc, leave=False, disable=not progress):
        x, y = x.to(device), y.to(device)
        with torch.autocast(device_type=device.type, enabled=amp):
            loss = criterion(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(float(loss.detach()))
        if deadline is not None and time.monotonic() > deadline:
            out_of_time = True
            break
    return losses, out_of_time


def _validate(model: nn.Module, val_x: torch.Tensor, val_y: torch.Tensor, criterion: nn.Module,
              device: torch.device) -> tuple[float, np.ndarray]:
    """The validation loss and the altered-class probability of every validation slice, in evaluation mode."""
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(val_x[i : i + 64].to(device)).float() for i in range(0, len(val_x), 64)])
        val_loss = float(criterion(logits, val_y))
        val_probs = _probabilities(logits).cpu().numpy()
    return val_loss, val_probs


def train_trial(backbone: str, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray, np.ndarray],
                settings: BenchmarkSettings, *, lr: float, weight_decay: float, seed: int,
                device: torch.device, weights: Path | None = None, deadline: float | None = None,
                progress: bool = False) -> TrialResult:
    """Train one backbone once.

    Args:
        backbone: Key of :data:`gliomics.models.slice2d.BACKBONES`.
        train: Training slices (N×H×W) and labels.
        val: Validation slices, labels and patient ids.
        settings: Epochs, batch size, patience and scheduler settings.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        seed: Seeds initialisation, batch order and augmentation.
        device: Where to train; AMP is used on CUDA only.
        weights: Local initial weights, else random initialisation.
        deadline: ``time.monotonic()`` value after which training stops (after validating the current epoch).
        progress: Show a progress bar per epoch.
    """
    start = time.monotonic()
    torch.manual_seed(seed)
    model = create_slice_model(backbone, in_channels=1, out_channels=2, weights=weights).to(device)
    x_train, y_train = train
    x_val, y_val, p_val = val
    loader, criterion, optimizer, scheduler = _trial_setup(model, x_train, y_train, settings, lr, weight_decay, seed,
                                                           device)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    val_x = torch.from_numpy(np.ascontiguousarray(x_val)).unsqueeze(1)
    val_y = torch.from_numpy(np.asarray(y_val, dtype=np.int64)).to(device)
    best_loss, best_epoch, best_state, stale = math.inf, 0, None, 0
    history: list[dict[str, float]] = []
    reason = "max epochs"
    epoch = 0
    for epoch in range(1, settings.epochs + 1):
        losses, out_of_time = _train_epoch(model, loader, criterion, optimizer, scaler, device, deadline,
                                           f"{backbone} epoch {epoch}", progress)
        val_loss, val_probs = _validate(model, val_x, val_y, criterion, device)
        scheduler.step(val_loss)
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else math.nan,
                        "val_loss": val_loss, "val_auc": _patient_auc(p_val, np.asarray(y_val), val_probs),
                        "lr": optimizer.param_groups[0]["lr"], "seconds": round(time.monotonic() - start, 1)})
        logger.debug("%s epoch %d: %s", backbone, epoch, history[-1])
        if val_loss < best_loss - 1e-6:
            best_loss, best_epoch, stale = val_loss, epoch, 0
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
        if out_of_time or (deadline is not None and time.monotonic() > deadline):
            reason = "time budget"
            break
        if stale >= settings.patience:
            reason = "early stopping"
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    params = {"lr": lr, "weight_decay": weight_decay}
    return TrialResult(params, model, best_epoch, best_loss, epoch, reason, time.monotonic() - start, history)


def search_space(settings: BenchmarkSettings, seed: int) -> list[dict[str, float]]:
    """The trial settings: the defaults first, then ``settings.search`` random draws (seeded)."""
    trials = [{"lr": settings.lr, "weight_decay": settings.weight_decay, "edge_weight": settings.edge_weight}]
    rng = np.random.default_rng(seed)
    for _ in range(settings.search):
        trials.append({
            "lr": float(math.exp(rng.uniform(*np.log(SEARCH_LR)))),
            "weight_decay": float(math.exp(rng.uniform(*np.log(SEARCH_WEIGHT_DECAY)))),
            "edge_weight": float(rng.uniform(*SEARCH_EDGE_WEIGHT)),
        })
    return trials


def train_backbone(backbone: str, images_for: Callable[[float], np.ndarray], labels: np.ndarray,
                   patients: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray, settings: BenchmarkSettings, *,
                   device: torch.device, weights: Path | None = None,
                   progress: bool = False) -> tuple[TrialResult, int, list[dict]]:
    """Train a backbone once per setting of :func:`search_space` and keep the trial of lowest validation loss.

    Args:
        backbone: Key of :data:`gliomics.models.slice2d.BACKBONES`.
        images_for: Returns all slices (N×H×W) finished with a given edge weight.
        labels: Slice labels.
        patients: Patient id of every slice.
        train_idx: Slices to train on.
        val_idx: Slices of the validation patients.
        settings: Benchmark settings; ``minutes`` is shared equally by the trials.
        device: Where to train.
        weights: Local initial weights.
        progress: Progress bars.

    Returns:
        The chosen trial (its ``params`` include the edge weight), its number, and the summaries of all trials.
    """
    trials = search_space(settings, settings.seed)
    best: TrialResult | None = None
    chosen = 0
    summaries = []
    per_trial = settings.minutes * 60.0 / len(trials) if settings.minutes is not None else None
    for number, params in enumerate(trials):
        images = images_for(params["edge_weight"])
        deadline = time.monotonic() + per_trial if per_trial is not None else None
        result = train_trial(backbone, (images[train_idx], labels[train_idx]),
                             (images[val_idx], labels[val_idx], patients[val_idx]), settings, lr=params["lr"],
                             weight_decay=params["weight_decay"], seed=settings.seed + number, device=device,
                             weights=weights, deadline=deadline, progress=progress)
        result.params["edge_weight"] = params["edge_weight"]
        summaries.append({"trial": number, **result.summary(), "history": result.history})
        logger.info("%s trial %d %s: best validation loss %.4f at epoch %d of %d (%s, %.0f s)", backbone, number,
                    params, result.best_val_loss, result.best_epoch, result.epochs_run, result.stop_reason,
                    result.seconds)
        if best is None or result.best_val_loss < best.best_val_loss:
            best, chosen = result, number
    return best, chosen, summaries
