"""Figures of the per-case report: orthogonal views through the tumour with the segmentation and the maps overlaid.

Figures are drawn on :class:`matplotlib.figure.Figure` objects (the Agg canvas, no pyplot state) and returned as
``data:image/png;base64`` URIs for a self-contained HTML page. Volumes are in RAS voxel order (the network grid of
:mod:`gliomics.inference.explanation_maps`); views follow the radiological convention (patient's right on the left
of the image).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from gliomics.constants import (
    LABEL_COLOURS,
    LABELS,
    MARKER_NAMES,
    REFERENCE_SEQUENCE,
    SEQUENCE_NAMES,
    SEQUENCES,
    TUMOUR_LABELS,
)

#: The three views: name, the fixed axis, the (horizontal, vertical) axes, and the orientation letters at the
#: (left, right, bottom, top) edges. Flipping the horizontal axis puts the patient's right on the left.
VIEWS: tuple[tuple[str, int, tuple[int, int], bool, tuple[str, str, str, str]], ...] = (
    ("axial", 2, (0, 1), True, ("R", "L", "P", "A")),
    ("coronal", 1, (0, 2), True, ("R", "L", "I", "S")),
    ("sagittal", 0, (1, 2), False, ("P", "A", "I", "S")),
)
LABEL_DESCRIPTIONS: dict[str, str] = {
    "NETC": "NETC: non-enhancing tumour core",
    "SNFH": "SNFH: surrounding FLAIR hyperintensity",
    "ET": "ET: enhancing tumour",
    "RC": "RC: resection cavity",
}
PANEL_INCHES = 3.0
DPI = 90


def to_data_uri(fig: Figure) -> str:
    """The figure as a base64 PNG ``data:`` URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def save_png(fig: Figure, path: Path | str, dpi: int = 120) -> Path:
    """Write the figure as a PNG file (for folders of results rather than an HTML page)."""
    path = Path(path)
    fig.savefig(path, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    return path


def tumour_centre(seg: np.ndarray | None, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Voxel at the centroid of the predicted tumour (any label), or the volume's centre without one."""
    if seg is not None and (seg > 0).any():
        return tuple(int(round(c)) for c in np.argwhere(seg > 0).mean(0))
    return tuple(s // 2 for s in shape)


def _slice(volume: np.ndarray, view: tuple, centre: tuple[int, ...]) -> np.ndarray:
    """The 2D plane of ``volume`` through ``centre``, rows = vertical axis (for ``origin="lower"``), columns
    reversed for the views shown in the radiological convention."""
    _, axis, _, flip, _ = view
    plane = np.take(volume, centre[axis], axis=axis).T
    return plane[:, ::-1] if flip else plane


def _extent(view: tuple, shape: tuple[int, ...], spacing: tuple[float, ...]) -> tuple[float, float, float, float]:
    _, _, (h, v), _, _ = view
    return 0.0, shape[h] * spacing[h], 0.0, shape[v] * spacing[v]


def _window_grey(image: np.ndarray) -> tuple[float, float]:
    """Display range: 1st-99th percentile of the non-zero voxels."""
    values = image[image != 0]
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(values, [1, 99])
    return float(lo), float(hi if hi > lo else lo + 1.0)


def _seg_rgba(plane: np.ndarray, opacity: float = 0.45) -> np.ndarray:
    rgba = np.zeros((*plane.shape, 4), dtype=np.float32)
    for value, colour in LABEL_COLOURS.items():
        rgba[plane == value] = (*colour, opacity)
    return rgba


def _letters(ax, letters: tuple[str, str, str, str]) -> None:
    style = {"color": "white", "fontsize": 8, "fontweight": "bold", "transform": ax.transAxes}
    left, right, bottom, top = letters
    ax.text(0.02, 0.5, left, ha="left", va="center", **style)
    ax.text(0.98, 0.5, right, ha="right", va="center", **style)
    ax.text(0.5, 0.02, bottom, ha="center", va="bottom", **style)
    ax.text(0.5, 0.98, top, ha="center", va="top", **style)


def _legend(fig: Figure, seg: np.ndarray | None) -> None:
    handles = [Patch(facecolor=LABEL_COLOURS[LABELS[name]], label=LABEL_DESCRIPTIONS[name]) for name in TUMOUR_LABELS]
    if seg is not None:
        fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=9, frameon=False)


def _grid(rows: int, title: str) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(3 * PANEL_INCHES + 0.8, rows * PANEL_INCHES + 0.6), layout="constrained")
    axes = fig.subplots(rows, 3, squeeze=False)
    fig.suptitle(title, fontsize=11)
    return fig, axes


def _background(ax, image: np.ndarray, view: tuple, centre: tuple[int, ...], spacing: tuple[float, ...]) -> None:
    lo, hi = _window_grey(image)
    # outside the brain the normalised image is exactly 0: show it black, not as mid-grey
    ax.imshow(np.ma.masked_equal(_slice(image, view, centre), 0.0), cmap="gray", vmin=lo, vmax=hi, origin="lower",
              extent=_extent(view, image.shape, spacing), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_facecolor("black")


def _contour(ax, seg: np.ndarray | None, view: tuple, centre: tuple[int, ...], spacing: tuple[float, ...]) -> None:
    if seg is None:
        return
    plane = (_slice(seg, view, centre) > 0).astype(float)
    if plane.any() and not plane.all():
        x0, x1, y0, y1 = _extent(view, seg.shape, spacing)
        xs = np.linspace(x0, x1, plane.shape[1], endpoint=False) + (x1 - x0) / plane.shape[1] / 2
        ys = np.linspace(y0, y1, plane.shape[0], endpoint=False) + (y1 - y0) / plane.shape[0] / 2
        ax.contour(xs, ys, plane, levels=[0.5], colors="white", linewidths=0.8)


def overlay_figure(image: np.ndarray, present: tuple[bool, ...], seg: np.ndarray | None,
                   spacing: tuple[float, ...]) -> str:
    """Each present sequence in three views through the tumour, with the segmentation in BraTS colours."""
    rows = [k for k, p in enumerate(present) if p]
    centre = tumour_centre(seg, image.shape[1:])
    fig, axes = _grid(len(rows), "Sequences with the predicted segmentation")
    for r, k in enumerate(rows):
        for c, view in enumerate(VIEWS):
            ax = axes[r, c]
            _background(ax, image[k], view, centre, spacing)
            if seg is not None:
                ax.imshow(_seg_rgba(_slice(seg, view, centre)), origin="lower",
                          extent=_extent(view, seg.shape, spacing), interpolation="nearest")
            _letters(ax, view[4])
            if r == 0:
                ax.set_title(view[0], fontsize=9)
            if c == 0:
                ax.set_ylabel(SEQUENCE_NAMES[SEQUENCES[k]], fontsize=9)
    _legend(fig, seg)
    return to_data_uri(fig)


def _reference(image: np.ndarray, present: tuple[bool, ...]) -> np.ndarray:
    """The background of the heat maps: T1ce when present, otherwise the first present sequence."""
    order = [SEQUENCES.index(REFERENCE_SEQUENCE), *range(len(SEQUENCES))]
    return image[next(k for k in order if present[k])]


def heatmap_figure(image: np.ndarray, present: tuple[bool, ...], seg: np.ndarray | None, spacing: tuple[float, ...],
                   maps: Mapping[str, np.ndarray], title: str, *, cmap: str = "inferno", vmax: float = 1.0,
                   overlay: bool = True, colorbar_label: str = "") -> str:
    """One row per map, three views through the tumour; NaN (outside the analysed window) is left transparent.

    Args:
        image: ``C × X × Y × Z`` intensities.
        present: Present sequences.
        seg: Predicted labels (drawn as a white tumour outline), or None.
        spacing: Voxel size in mm.
        maps: Row label → ``X × Y × Z`` map.
        title: Figure title.
        cmap: Colour map of the maps.
        vmax: Upper end of the colour scale (the lower end is 0).
        overlay: Blend the map over the reference sequence (T1ce if present) rather than draw it opaque.
        colorbar_label: Label of the colour bar.
    """
    centre = tumour_centre(seg, image.shape[1:])
    reference = _reference(image, present)
    fig, axes = _grid(len(maps), title)
    mappable = None
    for r, (label, volume) in enumerate(maps.items()):
        for c, view in enumerate(VIEWS):
            ax = axes[r, c]
            _background(ax, reference, view, centre, spacing)
            plane = np.ma.masked_invalid(_slice(volume, view, centre))
            mappable = ax.imshow(plane, cmap=cmap, vmin=0.0, vmax=vmax, alpha=0.55 if overlay else 1.0,
                                 origin="lower", extent=_extent(view, volume.shape, spacing), interpolation="bilinear")
            _contour(ax, seg, view, centre, spacing)
            _letters(ax, view[4])
            if r == 0:
                ax.set_title(view[0], fontsize=9)
            if c == 0:
                ax.set_ylabel(label, fontsize=9)
    if mappable is not None:
        fig.colorbar(mappable, ax=axes, shrink=min(0.8, 0.5 + 0.1 * len(maps))).set_label(colorbar_label, fontsize=9)
    return to_data_uri(fig)


def case_figures(maps) -> dict[str, str | None]:
    """Every figure of a :class:`~gliomics.inference.explanation_maps.CaseMaps`: ``overlay``, ``cmaf``, ``pooling``,
    ``gradcam``."""
    args = (maps.image, maps.present, maps.seg, maps.spacing)
    out: dict[str, str | None] = {"overlay": overlay_figure(*args), "cmaf": None, "pooling": None, "gradcam": None}
    if maps.alpha is not None:
        rows = {SEQUENCE_NAMES[s]: maps.alpha[k] for k, s in enumerate(SEQUENCES) if maps.present[k]}
        out["cmaf"] = heatmap_figure(*args, rows, "CMAF attention weight of each sequence", cmap="viridis",
                                     overlay=False, colorbar_label="weight α (sums to 1 over sequences)")
    if maps.pool_weights is not None:
        out["pooling"] = heatmap_figure(*args, {"pooling w": maps.pool_weights},
                                        "Marker attention-pooling weights (shared by the three markers)",
                                        colorbar_label="weight / maximum")
    if maps.gradcam:
        rows = {MARKER_NAMES[m].replace(" ", "\n", 1): v for m, v in maps.gradcam.items()}
        out["gradcam"] = heatmap_figure(*args, rows, f"Grad-CAM of each marker logit at {maps.gradcam_layer} (F_ENC)",
                                        cmap="jet", colorbar_label="Grad-CAM / maximum")
    return out
