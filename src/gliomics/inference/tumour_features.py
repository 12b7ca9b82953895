"""Tumour features of a predicted segmentation, for the marker readout (:mod:`gliomics.inference.marker_readout`).

The marker phenotypes of gliomas are macroscopic: the enhancing share of the core, necrosis, the T2-FLAIR mismatch,
calcification, the oedema relative to the core, the margin and the location (Patel et al. 2017 for the mismatch
sign; Lasocki et al. 2015 for enhancement and necrosis). These features measure them on the network's label map and
its z-scored input, both in the working grid, so that every site and input resolution is measured alike.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from gliomics.constants import LABELS, SEQUENCES

__all__ = ["FEATURE_NAMES", "tumour_features"]

_INTENSITY_REGIONS = ("NETC", "ET", "SNFH")
_QUANTILES = (10, 50, 90)
_AXES = ("x", "y", "z")


def _names() -> tuple[str, ...]:
    names = [f"log_volume_{r}" for r in ("NETC", "SNFH", "ET", "RC")]
    names += ["enhancing_share", "log_oedema_ratio", "cavity_present"]
    names += [f"{r}_{s}_p{q}" for r in _INTENSITY_REGIONS for s in SEQUENCES for q in _QUANTILES]
    names += ["t2_flair_mismatch", "calcified_share", "necrotic_share", "core_irregularity"]
    names += [f"offset_{a}" for a in _AXES] + [f"offset_{a}_squared" for a in _AXES] + ["offset_yz"]
    return tuple(names)


#: The features, in the order :func:`tumour_features` returns them.
FEATURE_NAMES: tuple[str, ...] = _names()


def tumour_features(image: np.ndarray, labels: np.ndarray, voxel_mm3: float) -> np.ndarray:
    """The :data:`FEATURE_NAMES` of one case.

    Args:
        image: ``C × spatial`` z-scored input in :data:`~gliomics.constants.SEQUENCES` order (a missing sequence is
            all zero; the brain is where any channel is non-zero).
        labels: the predicted BraTS 2024 label map on the same grid.
        voxel_mm3: the volume of one voxel of that grid.
    """
    image = np.asarray(image, dtype=np.float32)
    labels = np.asarray(labels)
    if image.shape[1:] != labels.shape or image.shape[0] != len(SEQUENCES):
        raise ValueError(f"image {image.shape} and labels {labels.shape} do not match")
    masks = {name: labels == LABELS[name] for name in ("NETC", "SNFH", "ET", "RC")}
    voxels = {name: float(m.sum()) for name, m in masks.items()}
    core = voxels["NETC"] + voxels["ET"]
    out = [np.log1p(voxels[n] * voxel_mm3 / 1000.0) for n in ("NETC", "SNFH", "ET", "RC")]
    out += [voxels["ET"] / (core + 1.0), np.log((voxels["SNFH"] + 1.0) / (core + voxels["RC"] + 1.0)),
            float(voxels["RC"] * voxel_mm3 >= 250.0)]
    for region in _INTENSITY_REGIONS:
        for channel in image:
            values = channel[masks[region]]
            out += list(np.percentile(values, _QUANTILES)) if values.size >= 3 else [0.0] * len(_QUANTILES)
    t1c, t2w, t2f = (image[SEQUENCES.index(s)] for s in ("t1c", "t2w", "t2f"))
    netc, tumour_core = masks["NETC"], masks["NETC"] | masks["ET"]
    brain = np.abs(image).sum(0) > 0
    # mismatch: the non-enhancing core bright on T2 and dark on FLAIR
    out.append(float(np.median(t2w[netc]) - np.median(t2f[netc])) if netc.sum() >= 3 else 0.0)
    # calcification: foci dark on both T2 and FLAIR
    out.append(float((tumour_core & (t2w < -1.0) & (t2f < -1.0)).sum() / (tumour_core.sum() + 1.0)))
    # necrosis: the non-enhancing core darker on T1ce than the brain
    dark = np.median(t1c[brain]) - 0.5 if brain.any() else 0.0
    out.append(float((netc & (t1c < dark)).sum() / (netc.sum() + 1.0)))
    # margin: surface voxels of the core over its volume^(2/3) (higher for an irregular core)
    if tumour_core.sum() > 5:
        surface = tumour_core & ~ndimage.binary_erosion(tumour_core)
        out.append(float(surface.sum() / tumour_core.sum() ** (2.0 / 3.0)))
    else:
        out.append(0.0)
    out += _location(labels > 0, brain)
    return np.asarray(out, dtype=np.float64)


def _location(tumour: np.ndarray, brain: np.ndarray) -> list[float]:
    """The tumour's centre relative to the brain's centre, in units of the brain's spread along each axis (the
    left-right offset folded: the side carries no marker), their squares and the y·z product, so that a linear
    readout can single out a lobe."""
    if not brain.any():
        return [0.0] * 7
    grid = np.stack(np.meshgrid(*[np.linspace(-1.0, 1.0, s) for s in brain.shape], indexing="ij"))
    b_centre = np.array([g[brain].mean() for g in grid])
    b_spread = np.array([max(g[brain].std(), 1e-3) for g in grid])
    t_centre = np.array([g[tumour].mean() for g in grid]) if tumour.any() else b_centre
    offset = (t_centre - b_centre) / b_spread
    offset[0] = abs(offset[0])
    return [*offset.tolist(), *(offset**2).tolist(), float(offset[1] * offset[2])]
