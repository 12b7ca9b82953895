"""Figures of the TERT slice benchmark (matplotlib, Agg): patient-level ROC curves of every backbone in one plot,
and their row-normalised confusion matrices side by side (scikit-learn ``ConfusionMatrixDisplay``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["confusion_figure", "roc_figure"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def roc_figure(curves: Mapping[str, tuple[Sequence[int], Sequence[float]]], path: Path, *, title: str = "") -> Path:
    """ROC curves of several models on the same patients.

    Args:
        curves: Legend name → (labels, probabilities).
        path: PNG to write.
        title: Figure title.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5.0), dpi=120)
    for name, (y, p) in curves.items():
        y = np.asarray(y)
        if 0 < y.sum() < y.size:
            fpr, tpr, _ = roc_curve(y, p)
            auc = roc_auc_score(y, p)
        else:
            fpr, tpr, auc = np.array([0.0, 1.0]), np.array([0.0, 1.0]), math.nan
        ax.plot(fpr, tpr, lw=1.8, label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], ls="--", lw=1, color="grey", label="chance")
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel="1 − specificity (false positive rate)",
           ylabel="sensitivity (true positive rate)", title=title or "ROC curves, test patients")
    ax.set_aspect("equal")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def confusion_figure(calls: Mapping[str, tuple[Sequence[int], Sequence[int]]], path: Path, *,
                     display_labels: Sequence[str] = ("not altered", "altered")) -> Path:
    """Confusion matrices normalised over the true class (rows sum to 1), one panel per model.

    Args:
        calls: Panel title → (labels, 0/1 calls).
        path: PNG to write.
        display_labels: Names of class 0 and class 1.
    """
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = _pyplot()
    n = max(1, len(calls))
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.6), dpi=120, squeeze=False)
    for ax, (name, (y, pred)) in zip(axes[0], calls.items()):
        ConfusionMatrixDisplay.from_predictions(y, pred, labels=[0, 1], normalize="true",
                                                display_labels=list(display_labels), ax=ax, colorbar=False,
                                                cmap="Blues", values_format=".0%")
        ax.set_title(name)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
