"""Bootstrap intervals: the F1 score's, seeded and covering the point estimate."""

from __future__ import annotations

import math

from sklearn.metrics import f1_score

from gliomics.evaluation.bootstrap import f1_ci_bootstrap


def test_f1_bootstrap_interval_is_seeded_and_covers_the_estimate():
    y, pred = [1, 0, 1, 1, 0, 0, 1, 1, 0, 1], [1, 0, 0, 1, 1, 0, 1, 1, 0, 0]
    lo, hi = f1_ci_bootstrap(y, pred, seed=3)
    assert (lo, hi) == f1_ci_bootstrap(y, pred, seed=3)
    assert lo < f1_score(y, pred) < hi
    assert f1_ci_bootstrap(y, pred, n_boot=200, seed=4) != f1_ci_bootstrap(y, pred, n_boot=200, seed=5)
    assert f1_ci_bootstrap(y, y) == (1.0, 1.0)
    assert all(math.isnan(v) for v in f1_ci_bootstrap([], []))
