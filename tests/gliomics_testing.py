"""Test helpers: tiny synthetic BraTS-layout cases (fixed seeds) and a tiny training configuration."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import nibabel as nib
import numpy as np

from gliomics.constants import LABELS, SEQUENCES

#: Default geometry of the synthetic cases: 1 × 1 × 1.5 mm voxels, LPS-flipped like many scanner exports.
DEFAULT_AFFINE = np.array(
    [[-1.0, 0.0, 0.0, 8.0], [0.0, -1.0, 0.0, 8.0], [0.0, 0.0, 1.5, -9.0], [0.0, 0.0, 0.0, 1.0]], dtype=np.float64
)


def synthetic_seg(shape: tuple[int, int, int] = (16, 16, 12)) -> np.ndarray:
    """Nested spheres using every BraTS 2024 label: SNFH shell, ET rim, NETC core, and an RC block."""
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"))
    centre = np.array([(n - 1) / 2 for n in shape]).reshape(3, 1, 1, 1)
    radius = np.sqrt(((grid - centre) ** 2).sum(axis=0))
    size = min(shape)
    seg = np.zeros(shape, dtype=np.uint8)
    seg[radius < 0.40 * size] = LABELS["SNFH"]
    seg[radius < 0.28 * size] = LABELS["ET"]
    seg[radius < 0.15 * size] = LABELS["NETC"]
    seg[:2, :2, :2] = LABELS["RC"]
    return seg


def make_brats_case(
    root: Path | str,
    case_id: str,
    shape: tuple[int, int, int] = (16, 16, 12),
    seed: int = 0,
    affine: np.ndarray | None = None,
    missing: Iterable[str] = (),
    *,
    with_seg: bool = True,
    suffix: str = ".nii.gz",
) -> Path:
    """Write one synthetic case in the BraTS 2024 layout: ``root/CASE/CASE-{t1n,t1c,t2w,t2f,seg}.nii.gz``.

    Args:
        root: Folder that receives the case folder (created if needed).
        case_id: Name of the case folder and file prefix.
        shape: Volume shape.
        seed: Seed of the voxel noise (the segmentation depends only on ``shape``).
        affine: Voxel-to-world matrix; :data:`DEFAULT_AFFINE` if None.
        missing: Sequences not to write.
        with_seg: Also write ``CASE-seg``.
        suffix: ``".nii.gz"`` or ``".nii"``.

    Returns:
        The case folder.
    """
    affine = DEFAULT_AFFINE if affine is None else np.asarray(affine, dtype=np.float64)
    folder = Path(root) / case_id
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    seg = synthetic_seg(shape)
    for index, sequence in enumerate(SEQUENCES):
        if sequence in missing:
            continue
        volume = 100.0 + 20.0 * index + 50.0 * (seg > 0) + rng.normal(0.0, 5.0, size=shape)
        nib.save(nib.Nifti1Image(volume.astype(np.float32), affine), folder / f"{case_id}-{sequence}{suffix}")
    if with_seg:
        nib.save(nib.Nifti1Image(seg, affine), folder / f"{case_id}-seg{suffix}")
    return folder


TINY_OVERRIDES = [
    "model.params.feature_size=4",
    "model.params.embed_channels=4",
    "model.params.swin_heads=[1, 2]",
    "model.params.marker_hidden=8",
    "model.params.descriptors=true",
    "train.patch_size=[32, 32, 32]",
    "train.batch_size=2",
    "train.lr=0.003",
    "train.val_every=1",
    "train.num_workers=0",
    "data.val_fraction=0.25",
]


def tiny_config(*extra: str):
    """The mgmtnet_cpu preset shrunk to train in seconds on 32³ patches."""
    from gliomics.presets import apply_overrides, load_preset

    return apply_overrides(load_preset("mgmtnet_cpu"), [*TINY_OVERRIDES, *extra])
