"""The marker readout: per marker, a regularised logistic regression on the tumour features of the predicted
segmentation (:mod:`gliomics.inference.tumour_features`), fitted on a run's training split after training.

The network's own marker heads learn from ~100 cases through features pooled by a network that is still learning
to segment, and they under-fit. A linear readout of a few dozen standardised, physically meaningful features of
the final segmentation generalises to unseen scanners far better (``benchmarks/results/markers.md``). It is
stored with the checkpoint (``marker_readout``) and, where a run has one, replaces the heads' marker logits in
every prediction; ``gliomics predict --no-marker-readout`` restores the heads.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from gliomics.constants import MARKERS
from gliomics.inference.tumour_features import FEATURE_NAMES, tumour_features

__all__ = ["MarkerReadout", "fit_marker_readout", "replace_head_markers", "READOUT_CS"]

#: The inverse regularisation strengths tried, chosen per marker by 5-fold cross-validated log loss.
READOUT_CS: tuple[float, ...] = tuple(float(c) for c in np.logspace(-3, 1, 9))


@dataclass(frozen=True)
class MarkerReadout:
    """A fitted readout: the feature standardisation and, per marker, the coefficients and intercept of its
    logistic regression on the standardised features."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: dict[str, tuple[float, ...]]
    intercept: dict[str, float]
    info: dict[str, Any] = field(default_factory=dict)

    def logits(self, features: np.ndarray) -> dict[str, float]:
        """Marker logits of one case's :func:`~gliomics.inference.tumour_features.tumour_features`."""
        z = (np.asarray(features, dtype=np.float64) - np.asarray(self.mean)) / np.asarray(self.scale)
        return {m: float(z @ np.asarray(self.coef[m]) + self.intercept[m]) for m in MARKERS if m in self.coef}

    def probabilities(self, features: np.ndarray) -> dict[str, float]:
        """Marker probabilities (the sigmoid of :meth:`logits`)."""
        return {m: _sigmoid(v) for m, v in self.logits(features).items()}

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(self.features), "mean": list(self.mean), "scale": list(self.scale),
                "coef": {m: list(v) for m, v in self.coef.items()}, "intercept": dict(self.intercept),
                "info": dict(self.info)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MarkerReadout:
        """The readout stored in a checkpoint; it must measure the features this version computes."""
        features = tuple(data["features"])
        if features != FEATURE_NAMES:
            raise ValueError("the checkpoint's marker readout was fitted on other tumour features than this version "
                             "computes; refit it or predict with --no-marker-readout")
        return cls(features, tuple(map(float, data["mean"])), tuple(map(float, data["scale"])),
                   {m: tuple(map(float, v)) for m, v in data["coef"].items()},
                   {m: float(v) for m, v in data["intercept"].items()}, dict(data.get("info", {})))


def fit_marker_readout(features: np.ndarray, labels: np.ndarray, *, seed: int = 0,
                       cs: Sequence[float] = READOUT_CS) -> MarkerReadout | None:
    """Fit the readout on ``N × F`` features and ``N × len(MARKERS)`` labels (NaN where a case's marker is unknown).

    Per marker, on the cases that know it: L2-regularised logistic regression on standardised features, its ``C``
    chosen among ``cs`` by 5-fold cross-validated log loss (scikit-learn's ``LogisticRegressionCV``). A marker with
    fewer than 5 cases of either class gets no readout (its heads stay); None when no marker has one.
    """
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(features, dtype=np.float64)
    y_all = np.asarray(labels, dtype=np.float64)
    scaler = StandardScaler().fit(x)
    scale = np.where(scaler.scale_ > 1e-8, scaler.scale_, 1.0)
    z = (x - scaler.mean_) / scale
    coef, intercept, info = {}, {}, {"n_cases": {}, "C": {}, "cv_auc": {}}
    for k, m in enumerate(MARKERS):
        known = ~np.isnan(y_all[:, k])
        y = y_all[known, k].astype(int)
        n_pos = int(y.sum())
        if min(n_pos, len(y) - n_pos) < 5:
            continue
        folds = min(5, n_pos, len(y) - n_pos)
        with warnings.catch_warnings():
            # scikit-learn 1.8+ announces new defaults (l1_ratios, its fitted attributes) that do not change an L2 fit
            warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn")
            clf = LogisticRegressionCV(Cs=list(cs), cv=folds, scoring="neg_log_loss", max_iter=5000,
                                       random_state=seed).fit(z[known], y)
        coef[m] = tuple(float(v) for v in clf.coef_[0])
        intercept[m] = float(clf.intercept_[0])
        info["n_cases"][m], info["C"][m] = int(len(y)), float(clf.C_[0])
        info["cv_auc"][m] = _cv_auc(clf, z[known], y, folds, seed)
    if not coef:
        return None
    return MarkerReadout(FEATURE_NAMES, tuple(map(float, scaler.mean_)), tuple(map(float, scale)), coef, intercept,
                         info)


def _cv_auc(clf, z: np.ndarray, y: np.ndarray, folds: int, seed: int) -> float:
    """Cross-validated AUC of the chosen ``C`` on the fitting cases: what the readout is expected to reach."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    model = LogisticRegression(C=float(clf.C_[0]), max_iter=5000)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return float(roc_auc_score(y, cross_val_predict(model, z, y, cv=cv, method="predict_proba")[:, 1]))


def replace_head_markers(readout: MarkerReadout, out: dict, image: torch.Tensor, voxel_mm3: float) -> None:
    """Replace the heads' marker logits of one network's output with its readout's: the readout of each pass's label
    map (the probabilities of the passes), and their mean logit (as flip TTA averages the heads' logits)."""
    array = image.float().cpu().numpy()
    per_pass = [readout.logits(tumour_features(array, labels.numpy(), voxel_mm3)) for labels in out["passes"]["labels"]]
    markers = dict(out["markers"] or {})
    for m in readout.coef:
        logits = [p[m] for p in per_pass]
        markers[m] = torch.tensor([[float(np.mean(logits))]])
        out["passes"]["markers"][m] = [_sigmoid(v) for v in logits]
    out["markers"] = markers


def _sigmoid(value: float) -> float:
    return float(1.0 / (1.0 + np.exp(-value)))
