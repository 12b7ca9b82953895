"""The QC picture of a preprocessed case (``preprocess/qc.png``): every sequence on the output grid before masking,
in three planes through the centre of the brain mask, with the brain-mask outline and the registered atlas's brain
outline. Drawn with matplotlib's Agg canvas (no pyplot state); views in the radiological convention.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from gliomics.constants import SEQUENCE_NAMES, SEQUENCES

#: name, the fixed axis, and whether the horizontal axis is flipped (patient's right on the left); arrays are RAS.
VIEWS: tuple[tuple[str, int, bool], ...] = (("axial", 2, True), ("coronal", 1, True), ("sagittal", 0, False))
BRAIN_COLOUR = "#39ff14"
ATLAS_COLOUR = "#ff3df2"
PANEL_INCHES = 2.6
DPI = 80


def mask_centre(mask: np.ndarray) -> tuple[int, int, int]:
    """Voxel at the centre of the mask's bounding box (the volume's centre for an empty mask)."""
    index = np.argwhere(mask)
    if index.size == 0:
        return tuple(s // 2 for s in mask.shape)
    return tuple(int(v) for v in (index.min(0) + index.max(0)) // 2)


def _plane(volume: np.ndarray, axis: int, flip: bool, centre: tuple[int, ...]) -> np.ndarray:
    plane = np.take(volume, centre[axis], axis=axis).T  # rows: the vertical axis, for origin="lower"
    return plane[:, ::-1] if flip else plane


def _window(image: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    values = image[mask & (image != 0)]
    if values.size == 0:
        values = image[image != 0]
    if values.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(values, [1, 99.5])
    return float(low), float(high if high > low else low + 1.0)


def _outline(ax, mask: np.ndarray | None, axis: int, flip: bool, centre: tuple[int, ...], colour: str) -> None:
    if mask is None:
        return
    plane = _plane(mask, axis, flip, centre).astype(np.float32)
    if plane.any() and not plane.all():
        ax.contour(plane, levels=[0.5], colors=colour, linewidths=0.9)


def draw_qc(images: Mapping[str, np.ndarray], brain: np.ndarray, atlas: np.ndarray | None, path: Path | str, *,
            title: str, brain_label: str) -> Path:
    """Write the QC picture.

    Args:
        images: Sequence → volume on the output grid (RAS voxel order, before masking).
        brain: The brain mask on the same grid.
        atlas: The atlas's brain mask on the same grid, or None (no atlas registration).
        path: The PNG file.
        title: Title line (case, extractor, volume).
        brain_label: Legend text of the brain-mask outline.
    """
    rows = [s for s in SEQUENCES if s in images]
    centre = mask_centre(brain)
    fig = Figure(figsize=(3 * PANEL_INCHES, len(rows) * PANEL_INCHES + 0.7), layout="constrained")
    axes = fig.subplots(len(rows), 3, squeeze=False)
    fig.suptitle(title, fontsize=10)
    for r, s in enumerate(rows):
        low, high = _window(images[s], brain)
        for c, (view, axis, flip) in enumerate(VIEWS):
            ax = axes[r, c]
            ax.imshow(_plane(images[s], axis, flip, centre), cmap="gray", vmin=low, vmax=high, origin="lower",
                      interpolation="nearest", aspect="equal")
            _outline(ax, brain, axis, flip, centre, BRAIN_COLOUR)
            _outline(ax, atlas, axis, flip, centre, ATLAS_COLOUR)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_facecolor("black")
            if r == 0:
                ax.set_title(view, fontsize=9)
            if c == 0:
                ax.set_ylabel(SEQUENCE_NAMES.get(s, s), fontsize=9)
    handles = [Line2D([], [], color=BRAIN_COLOUR, label=brain_label)]
    if atlas is not None:
        handles.append(Line2D([], [], color=ATLAS_COLOUR, label="atlas brain, after registration"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8, frameon=False)
    path = Path(path)
    fig.savefig(path, format="png", dpi=DPI, facecolor="white")
    return path
