"""A montage of predictions against references: per case, the axial slice where the reference tumour is largest,
the reference and the prediction drawn over the same image, with the case's whole-tumour Dice."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gliomics.io import Case, load_image, load_label

logger = logging.getLogger(__name__)

__all__ = ["MONTAGE_FILE", "write_montage"]

MONTAGE_FILE = "montage.png"
#: The image under the labels: FLAIR where the case has it, else the first sequence it has.
_BACKGROUND = ("t2f", "t1c", "t2w", "t1n")
#: Label colours (RGBA) of NETC, SNFH, ET and RC.
_COLOURS = {1: (0.85, 0.2, 0.2, 0.55), 2: (0.2, 0.75, 0.3, 0.45), 3: (1.0, 0.85, 0.1, 0.6), 4: (0.3, 0.5, 1.0, 0.5)}


def _overlay(labels: np.ndarray) -> np.ndarray:
    rgba = np.zeros((*labels.shape, 4), np.float32)
    for value, colour in _COLOURS.items():
        rgba[labels == value] = colour
    return rgba


def _panel(case: Case, seg_path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The image, reference and predicted slices of one case (axial: the last array axis), or None without a
    reference tumour."""
    ref = load_label(case.seg, label_map=case.label_map).array
    pred = load_label(seg_path).array
    if ref.shape != pred.shape or not (ref > 0).any():
        return None
    z = int(np.argmax((ref > 0).sum((0, 1))))
    sequence = next(s for s in _BACKGROUND if s in case.images)
    image = load_image(case.images[sequence]).array[..., z]
    inside = image[image > 0]
    top = float(np.percentile(inside, 99.5)) if inside.size else 1.0
    return np.clip(image / max(top, 1e-6), 0, 1).T, ref[..., z].T, pred[..., z].T


def write_montage(pred_dir: Path | str, cases: Sequence[Case], rows: Sequence[Mapping[str, Any]],
                  out: Path | str, *, columns: int = 4) -> Path | None:
    """Write the montage of every case of ``cases`` that has a reference tumour and a prediction in ``pred_dir`` to
    ``out`` (a PNG): reference left, prediction right, titled with the case id and its whole-tumour Dice from
    ``rows`` (the per-case rows of the evaluation). Returns the path, or None when no case qualifies."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gliomics.io.predictions import SEG_SUFFIX

    dice = {r["case_id"]: r.get("WT_dice") for r in rows}
    panels = []
    for case in cases:
        seg = Path(pred_dir) / f"{case.case_id}{SEG_SUFFIX}"
        if case.seg is None or not seg.is_file():
            continue
        panel = _panel(case, seg)
        if panel is not None:
            panels.append((case.case_id, panel))
    if not panels:
        logger.info("no case with a reference tumour and a prediction: no montage")
        return None
    rows_n = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows_n, 2 * columns, figsize=(3.0 * columns, 1.6 * rows_n), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for k, (case_id, (image, ref, pred)) in enumerate(panels):
        r, c = divmod(k, columns)
        for j, (labels, what) in enumerate(((ref, "reference"), (pred, "prediction"))):
            ax = axes[r, 2 * c + j]
            ax.imshow(image, cmap="gray", origin="lower")
            ax.imshow(_overlay(labels), origin="lower")
            score = dice.get(case_id)
            title = f"{case_id[:22]}\n{what}" + (f", WT Dice {float(score):.2f}" if j and score not in (None, "")
                                                  else "")
            ax.set_title(title, fontsize=6)
    fig.suptitle("NETC red, SNFH green, ET yellow, RC blue", fontsize=7)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
