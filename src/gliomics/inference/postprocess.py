"""Post-processing of label maps: removal of tiny connected components, as the BraTS 2024 winners do."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from gliomics.constants import LABELS, REGIONS

#: 26-connectivity, the connectivity of BraTS lesion-wise scoring.
STRUCTURE = np.ones((3, 3, 3), dtype=bool)


def remove_small_components(seg: np.ndarray, spacing: tuple[float, ...], *, min_volume_mm3: float = 50.0,
                            min_rc_volume_mm3: float | None = None) -> np.ndarray:
    """Drop whole-tumour components and RC components smaller than ``min_volume_mm3``.

    Whole-tumour components are removed with all their labels; a small stray cavity (often CSF mistaken for a
    resection cavity) is removed on its own, which decides the RC score of pre-operative cases.
    """
    voxel_mm3 = float(np.prod(spacing))
    out = seg.copy()
    for mask, limit in (
        (np.isin(out, REGIONS["WT"]), min_volume_mm3),
        (out == LABELS["RC"], min_rc_volume_mm3 if min_rc_volume_mm3 is not None else min_volume_mm3),
    ):
        if not mask.any() or limit <= 0:
            continue
        components, n = ndimage.label(mask, structure=STRUCTURE)
        sizes = np.bincount(components.ravel(), minlength=n + 1) * voxel_mm3
        small = np.flatnonzero(sizes < limit)
        small = small[small > 0]
        if small.size:
            out[np.isin(components, small)] = 0
    return out
