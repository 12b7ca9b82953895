"""Comparison figures shared by the cohort report and the 2D slice benchmark: ROC curves of several models in one
panel, confusion matrices side by side, written as PNG files."""

from __future__ import annotations

import numpy as np
import pytest

from gliomics.report.cohort_figures import confusion_comparison_figure, roc_comparison_figure
from gliomics.report.figures import save_png

Y = [0, 0, 0, 1, 1, 1]


def test_roc_comparison_labels_each_model_with_its_auc(tmp_path):
    fig = roc_comparison_figure({"perfect": (Y, [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]),
                                 "inverted": (Y, [0.9, 0.8, 0.7, 0.3, 0.2, 0.1]),
                                 "one class": ([1, 1], [0.4, 0.6])}, "TERT: test patients")
    (ax,) = fig.axes
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["perfect (AUC 1.000)", "inverted (AUC 0.000)", "one class (AUC nan)", "chance"]
    assert ax.get_title() == "TERT: test patients"
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata()[-1], 1.0)
    path = save_png(fig, tmp_path / "roc.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_confusion_comparison_counts_each_model_per_true_class():
    fig = confusion_comparison_figure({"A": (Y, [0, 0, 1, 1, 1, 1]), "B": (Y, [1, 1, 1, 1, 1, 1])})
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["A", "B"]
    texts = [t.get_text() for t in panels[0].texts]
    assert texts == ["0.67\n(2)", "0.33\n(1)", "0.00\n(0)", "1.00\n(3)"]
    assert [t.get_text() for t in panels[1].texts][:2] == ["0.00\n(0)", "1.00\n(3)"]
    assert np.asarray(panels[0].images[0].get_array()) == pytest.approx(np.array([[2 / 3, 1 / 3], [0.0, 1.0]]))
