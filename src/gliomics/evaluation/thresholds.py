"""Decision thresholds chosen on validation data."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_curve


def youden_threshold(y_true: np.ndarray, prob: np.ndarray) -> float:
    """The probability threshold maximising Youden's J (sensitivity + specificity − 1); 0.5 when undefined."""
    y_true, prob = np.asarray(y_true), np.asarray(prob)
    if y_true.size == 0 or y_true.min() == y_true.max():
        return 0.5
    fpr, tpr, thr = roc_curve(y_true, prob)
    best = int(np.argmax(tpr - fpr))
    return float(np.clip(thr[best], 0.0, 1.0))
