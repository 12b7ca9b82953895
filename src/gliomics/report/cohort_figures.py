"""Figures of the cohort report: Dice box plots, bar charts of Dice and AUC with CIs, ROC curves, calibration
curves and confusion matrices.

Each function takes what ``gliomics evaluate`` wrote (the rows of ``per_case.csv`` and ``summary.json``) and returns a
``data:image/png;base64`` URI, or None when there is nothing to draw.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from gliomics.constants import MARKER_NAMES, MARKERS, REGIONS
from gliomics.report.figures import to_data_uri


def column(rows: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    """A numeric column of ``per_case.csv`` rows; empty cells and text become NaN."""
    out = []
    for r in rows:
        try:
            out.append(float(r.get(key)))
        except (TypeError, ValueError):
            out.append(math.nan)
    return np.asarray(out, dtype=float)


def _finite(values: np.ndarray) -> np.ndarray:
    return values[np.isfinite(values)]


def dice_figure(rows: Sequence[Mapping[str, Any]]) -> str | None:
    """Box plots of the per-case whole-volume and lesion-wise Dice of every region."""
    regions = [r for r in REGIONS if _finite(column(rows, f"{r}_dice")).size]
    if not regions:
        return None
    fig = Figure(figsize=(1.4 * len(regions) + 2, 4.2), layout="constrained")
    ax = fig.subplots()
    for offset, (key, colour, name) in enumerate((("dice", "#4477aa", "whole-volume"),
                                                  ("lesion_dice", "#ee6677", "lesion-wise (BraTS 2024)"))):
        data = [_finite(column(rows, f"{r}_{key}")) for r in regions]
        positions = np.arange(len(regions)) * 3 + offset
        box = ax.boxplot(data, positions=positions, widths=0.8, patch_artist=True, showfliers=False)
        for patch in box["boxes"]:
            patch.set(facecolor=colour, alpha=0.45)
        rng = np.random.default_rng(0)
        for pos, values in zip(positions, data):
            ax.scatter(pos + rng.uniform(-0.25, 0.25, values.size), values, s=9, color=colour, zorder=3)
        ax.plot([], [], color=colour, lw=6, alpha=0.45, label=name)
    ax.set_xticks(np.arange(len(regions)) * 3 + 0.5, regions)
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel("Dice")
    ax.set_title(f"Dice per region ({len(rows)} cases)")
    fig.legend(loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return to_data_uri(fig)


def bar_figure(summary: Mapping[str, Any]) -> str | None:
    """Bar charts with 95% CIs, as the MGMT-Net paper's figures 3-4: the mean Dice of each region (whole-volume and
    BraTS 2024 lesion-wise, bootstrap CIs) and the AUC of each marker (DeLong CIs)."""
    seg, markers = summary.get("segmentation") or {}, summary.get("markers") or {}
    regions = [r for r in REGIONS if (seg.get(r) or {}).get("dice")]
    names = [m for m in MARKERS if m in markers and math.isfinite(markers[m].get("auc", math.nan))]
    if not regions and not names:
        return None
    fig = Figure(figsize=(1.1 * len(regions) + 0.9 * len(names) + 3, 4.0), layout="constrained")
    axes = fig.subplots(1, 2, width_ratios=[max(len(regions), 1), max(len(names), 1)])

    def bars(ax, x, stats, colour, label):
        means = np.array([s["mean"] for s in stats])
        err = np.array([[s["mean"] - s["lo"], s["hi"] - s["mean"]] for s in stats]).T
        ax.bar(x, means, width=0.38, color=colour, alpha=0.8, label=label)
        ax.errorbar(x, means, yerr=np.clip(err, 0, None), fmt="none", ecolor="black", capsize=3, lw=1)

    if regions:
        x = np.arange(len(regions))
        bars(axes[0], x - 0.2, [seg[r]["dice"] for r in regions], "#4477aa", "whole-volume")
        lesion = [seg[r].get("lesion_dice") for r in regions]
        if all(lesion):
            bars(axes[0], x + 0.2, lesion, "#ee6677", "lesion-wise (BraTS 2024)")
        axes[0].set_xticks(x, regions)
        axes[0].set_ylabel("mean Dice [95% CI]")
        axes[0].legend(fontsize=8, frameon=False, loc="lower left")
    axes[0].set_title("Segmentation")
    if names:
        x = np.arange(len(names))
        stats = [{"mean": markers[m]["auc"], "lo": markers[m].get("auc_ci_delong", [math.nan] * 2)[0],
                  "hi": markers[m].get("auc_ci_delong", [math.nan] * 2)[1]} for m in names]
        stats = [{k: (s["mean"] if not math.isfinite(v) else v) for k, v in s.items()} for s in stats]
        bars(axes[1], x, stats, "#228833", "AUC")
        bayes = summary.get("bayes_optimal_auc") or {}
        if any(m in bayes for m in names):
            axes[1].scatter(x, [bayes.get(m, math.nan) for m in names], marker="_", s=400, color="black",
                            zorder=4, label="Bayes-optimal")
            axes[1].legend(fontsize=8, frameon=False, loc="lower left")
        axes[1].axhline(0.5, color="grey", lw=0.8, ls=":")
        axes[1].set_xticks(x, [MARKER_NAMES.get(m, m) for m in names], fontsize=8)
        axes[1].set_ylabel("AUC [95% DeLong CI]")
    axes[1].set_title("Markers")
    for ax in axes:
        ax.set_ylim(0, 1.03)
        ax.grid(axis="y", alpha=0.3)
    return to_data_uri(fig)


def _labelled(rows: Sequence[Mapping[str, Any]], marker: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, probabilities and the indices of the rows where both are known."""
    y, p = column(rows, f"label_{marker}"), column(rows, f"prob_{marker}")
    keep = np.flatnonzero(np.isfinite(y) & np.isfinite(p))
    return y[keep].astype(int), p[keep], keep


def draw_roc(ax, y: Sequence[int], p: Sequence[float], label: str, *, colour: str | None = None, lw: float = 1.8,
             ls: str = "-") -> None:
    """One ROC curve on ``ax`` (the diagonal when ``y`` holds one class)."""
    y = np.asarray(y)
    if 0 < y.sum() < y.size:
        fpr, tpr, _ = roc_curve(y, p)
    else:
        fpr, tpr = np.array([0.0, 1.0]), np.array([0.0, 1.0])
    ax.plot(fpr, tpr, color=colour, lw=lw, ls=ls, label=label)


def _roc_frame(ax, title: str) -> None:
    """The chance line, axes, title and legend of a ROC panel."""
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":", label="chance")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="1 − specificity", ylabel="sensitivity", title=title)
    ax.set_aspect("equal")
    ax.legend(loc="lower right", fontsize=8)


def roc_comparison_figure(curves: Mapping[str, tuple[Sequence[int], Sequence[float]]], title: str) -> Figure:
    """ROC curves of several models on the same cases, in one panel, each labelled with its AUC.

    Args:
        curves: Legend name → (labels, probabilities).
        title: Panel title.
    """
    from gliomics.evaluation.auc import auc_delong

    fig = Figure(figsize=(5.5, 5.0), layout="constrained")
    ax = fig.subplots()
    for name, (y, p) in curves.items():
        y = np.asarray(y)
        auc = auc_delong(y, p)[0] if 0 < y.sum() < y.size else math.nan
        draw_roc(ax, y, p, f"{name} (AUC {auc:.3f})")
    _roc_frame(ax, title)
    return fig


def draw_confusion(ax, counts: np.ndarray, title: str,
                   names: Sequence[str] = ("not altered", "altered")) -> None:
    """A 2×2 confusion matrix (rows: true class) on ``ax``, normalised per true class, with the counts."""
    counts = np.asarray(counts, dtype=float)
    totals = counts.sum(1, keepdims=True)
    norm = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(2):
        for j in range(2):
            ax.text(j, i, f"{norm[i, j]:.2f}\n({int(counts[i, j])})", ha="center", va="center",
                    color="white" if norm[i, j] > 0.6 else "black", fontsize=10)
    ax.set_xticks([0, 1], list(names))
    ax.set_yticks([0, 1], list(names))
    ax.set(xlabel="predicted", ylabel="true", title=title)


def confusion_comparison_figure(calls: Mapping[str, tuple[Sequence[int], Sequence[int]]],
                                names: Sequence[str] = ("not altered", "altered")) -> Figure:
    """Confusion matrices of several models' 0/1 calls on the same cases, one panel per model.

    Args:
        calls: Panel title → (labels, calls).
        names: Names of class 0 and class 1.
    """
    from sklearn.metrics import confusion_matrix

    n = max(1, len(calls))
    fig = Figure(figsize=(3.6 * n, 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, n))
    for ax, (name, (y, pred)) in zip(axes, calls.items()):
        draw_confusion(ax, confusion_matrix(y, pred, labels=[0, 1]), name, names)
    fig.suptitle("Confusion matrices (row-normalised; counts in brackets)")
    return fig


def roc_figure(rows: Sequence[Mapping[str, Any]], summary: Mapping[str, Any],
               posteriors: Mapping[str, Mapping[str, float]] | None = None) -> str | None:
    """ROC curve of each marker with its AUC and DeLong 95% CI; the phantom's Bayes-optimal curve when known.

    Args:
        rows: ``per_case.csv`` rows.
        summary: ``summary.json``.
        posteriors: Marker → case id → exact Bayes posterior (phantom cohorts), or None.
    """
    markers = [m for m in MARKERS if m in summary.get("markers", {}) and len(set(_labelled(rows, m)[0])) == 2]
    if not markers:
        return None
    fig = Figure(figsize=(4.2 * len(markers), 4.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(markers)))
    for ax, m in zip(axes, markers):
        y, p, keep = _labelled(rows, m)
        s = summary["markers"][m]
        lo, hi = s.get("auc_ci_delong", [math.nan, math.nan])
        draw_roc(ax, y, p, f"model: AUC {s['auc']:.3f} [{lo:.3f}, {hi:.3f}]", colour="#4477aa", lw=2)
        if posteriors and m in posteriors:
            ids = [rows[i]["case_id"] for i in keep]
            known = [k for k, cid in enumerate(ids) if cid in posteriors[m]]
            if len(set(y[known])) == 2:
                bayes = summary.get("bayes_optimal_auc", {}).get(m)
                tag = f": AUC {bayes:.3f}" if isinstance(bayes, float) and math.isfinite(bayes) else ""
                draw_roc(ax, y[known], [posteriors[m][ids[k]] for k in known], f"Bayes-optimal{tag}",
                         colour="#228833", lw=1.5, ls="--")
        _roc_frame(ax, f"{MARKER_NAMES[m]} (n = {y.size}, {int(y.sum())} altered)")
    fig.suptitle("ROC curves (AUC with DeLong 95% CI)")
    return to_data_uri(fig)


def calibration_figure(summary: Mapping[str, Any]) -> str | None:
    """Reliability curve of each marker (quantile bins) with ECE, calibration slope and intercept; dashed, the curve
    of the raw probabilities when the predictions were calibrated."""
    markers = [m for m in MARKERS if (summary.get("markers", {}).get(m, {}).get("calibration") or {}).get("prob_pred")]
    if not markers:
        return None
    fig = Figure(figsize=(4.2 * len(markers), 4.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(markers)))
    for ax, m in zip(axes, markers):
        cal = summary["markers"][m]["calibration"]
        counts = np.asarray(cal.get("bin_counts") or [1] * len(cal["prob_pred"]), dtype=float)
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":", label="perfect calibration")
        raw = summary["markers"][m].get("calibration_raw") or {}
        if raw.get("prob_pred"):
            # the same cases before the run's calibration (temperature scaling) was applied
            ax.plot(raw["prob_pred"], raw["prob_true"], color="#999999", lw=1.0, ls="--", marker="o", ms=3,
                    label=f"before calibration (ECE {raw.get('ece', math.nan):.3f}, "
                          f"slope {raw.get('slope', math.nan):.2f})")
        ax.plot(cal["prob_pred"], cal["prob_true"], color="#aa3377", lw=1.5,
                label="calibrated" if raw.get("prob_pred") else None)
        ax.scatter(cal["prob_pred"], cal["prob_true"], s=20 + 80 * counts / counts.max(), color="#aa3377", zorder=3)
        text = [f"ECE {cal.get('ece', math.nan):.3f}", f"slope {cal.get('slope', math.nan):.2f}",
                f"intercept {cal.get('intercept', math.nan):.2f}", f"Brier {cal.get('brier', math.nan):.3f}"]
        ax.text(0.04, 0.96, "\n".join(text), transform=ax.transAxes, va="top", fontsize=8,
                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "#ccc"})
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean predicted probability", ylabel="observed rate",
               title=MARKER_NAMES[m])
        ax.set_aspect("equal")
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle("Calibration (quantile bins; marker size = cases per bin)")
    return to_data_uri(fig)


def confusion_figure(summary: Mapping[str, Any]) -> str | None:
    """Confusion matrix of each marker's calls at its threshold, normalised per true class, with the counts."""
    markers = [m for m in MARKERS if "tp" in (summary.get("markers", {}).get(m, {}).get("metrics") or {})]
    if not markers:
        return None
    fig = Figure(figsize=(3.4 * len(markers), 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(markers)))
    for ax, m in zip(axes, markers):
        met = summary["markers"][m]["metrics"]
        counts = np.array([[met["tn"], met["fp"]], [met["fn"], met["tp"]]], dtype=float)
        draw_confusion(ax, counts,
                       f"{MARKER_NAMES[m]}\nthreshold {summary['markers'][m].get('threshold', math.nan):.3f}")
    fig.suptitle("Confusion matrices (row-normalised; counts in brackets)")
    return to_data_uri(fig)
