"""The files of one case (:class:`Case`) and :func:`load_case`; discovery is in :mod:`gliomics.io.layouts`.

Every problem with the input raises an :class:`~gliomics.errors.InputError` whose message starts with the offending
path, before any image is read.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from gliomics.constants import SEQUENCES, canonical_sequence, sequence_flags
from gliomics.errors import CaseOptionError, ImageError
from gliomics.io.nifti import Image, check_same_geometry, load_image, load_label, load_mask

logger = logging.getLogger(__name__)

def sequence_tags(*tags: str) -> dict[str, str]:
    """A dataset's file tags (``"T1GD"``, ``"flair"``…) mapped to BraTS 2024 names through the one alias table.

    Raises:
        ValueError: a tag that is no known alias (a programming error in an importer).
    """
    out = {tag: canonical_sequence(tag) for tag in tags}
    unknown = [tag for tag, name in out.items() if name is None]
    if unknown:
        raise ValueError(f"no sequence is known by {unknown}; add them to the alias table")
    return out  # type: ignore[return-value]


@dataclass
class Case:
    """The files of one case.

    Attributes:
        case_id: Identifier, used to name outputs.
        images: Sequence name → file, in :data:`~gliomics.constants.SEQUENCES` order (missing sequences absent).
        seg: Segmentation file, if any.
        label_map: Explicit conversion of the segmentation's values to BraTS 2024 labels (e.g. BraTS 2021), if any.
        wt_mask: A whole-tumour mask without subregions (0 = outside, 1 = tumour; the EGD kind), if any.
    """

    case_id: str
    images: dict[str, Path]
    seg: Path | None = None
    label_map: dict[int, int] | None = field(default=None, repr=False)
    wt_mask: Path | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.images) - set(SEQUENCES))
        if unknown:
            raise CaseOptionError(f"case {self.case_id!r}: unknown sequence(s) {unknown}; expected {list(SEQUENCES)}")
        self.images = {s: Path(self.images[s]) for s in SEQUENCES if s in self.images}
        self.seg = Path(self.seg) if self.seg is not None else None
        self.wt_mask = Path(self.wt_mask) if self.wt_mask is not None else None

    @property
    def missing(self) -> tuple[str, ...]:
        """Sequences without a file, in :data:`~gliomics.constants.SEQUENCES` order."""
        return tuple(s for s in SEQUENCES if s not in self.images)


@dataclass
class LoadedCase:
    """The voxels of one case, stacked in :data:`~gliomics.constants.SEQUENCES` order.

    Attributes:
        case_id: Identifier.
        image: float32 array C×D×H×W with C = len(SEQUENCES); missing sequences are zeros.
        present: bool array of length C, True where the sequence was loaded.
        affine: 4×4 voxel-to-world matrix shared by the sequences.
        header: Header of the first present sequence (to write outputs in the input geometry).
        spacing: Voxel size in mm.
        seg: uint8 BraTS 2024 labels D×H×W, or None.
        paths: Files that were read, keyed by sequence (and ``"seg"``, ``"wt_mask"``).
        wt_mask: uint8 whole-tumour mask (0/1) D×H×W, or None.
    """

    case_id: str
    image: np.ndarray
    present: np.ndarray
    affine: np.ndarray
    header: nib.Nifti1Header
    spacing: tuple[float, float, float]
    seg: np.ndarray | None
    paths: dict[str, Path]
    wt_mask: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape D×H×W."""
        return tuple(self.image.shape[1:])  # type: ignore[return-value]


def load_case(case: Case, *, sequences: Sequence[str] | None = None, load_seg: bool = True,
              load_wt_mask: bool = False) -> LoadedCase:
    """Read the images (and segmentation, whole-tumour mask) of a case and check that they share one geometry.

    Args:
        case: From :func:`~gliomics.io.layouts.discover_cases`.
        sequences: Load only these sequences (the others are zero channels, ``present`` False).
        load_seg: Also read the segmentation when the case has one.
        load_wt_mask: Also read the whole-tumour mask when the case has one.

    Returns:
        The stacked image, presence flags, geometry and segmentation.

    Raises:
        CaseOptionError: An unknown sequence name.
        ImageError: An unreadable image, images whose shape or affine differ, or only all-zero images (an all-zero
            sequence next to others is treated as missing).
        LabelError: A segmentation with values that are not BraTS 2024 labels, a mask with values other than 0 and 1.
    """
    wanted = tuple(SEQUENCES) if sequences is None else (sequences,) if isinstance(sequences, str) else tuple(sequences)
    unknown = [s for s in wanted if s not in SEQUENCES]
    if unknown:
        raise CaseOptionError(f"unknown sequence(s) {unknown}; expected some of {list(SEQUENCES)}")
    selected = [s for s in SEQUENCES if s in wanted and s in case.images]
    if not selected:
        raise ImageError(f"{case.case_id}: none of the sequences {list(wanted)} is present (has {list(case.images)})")
    loaded: dict[str, Image] = {s: load_image(case.images[s]) for s in selected}
    if load_seg and case.seg is not None:
        loaded["seg"] = load_label(case.seg, label_map=case.label_map)
    if load_wt_mask and case.wt_mask is not None:
        loaded["wt_mask"] = load_mask(case.wt_mask)
    check_same_geometry(loaded)
    # A sequence without one non-zero voxel carries nothing (some exports fill a missing sequence with zeros): it is
    # treated as missing, which CMAF is built for; a case with nothing else cannot be read.
    blank = [s for s in selected if not np.any(loaded[s].array)]
    if blank:
        if len(blank) == len(selected):
            others = f", and so are {', '.join(blank[1:])} of the case" if len(blank) > 1 else ""
            raise ImageError(f"{loaded[blank[0]].name}: every voxel is zero (an empty image){others}")
        for s in blank:
            logger.warning("%s: every voxel is zero; treated as a missing sequence", loaded[s].name)
        selected = [s for s in selected if s not in blank]
    first = loaded[selected[0]]
    image = np.zeros((len(SEQUENCES), *first.shape), dtype=np.float32)
    present = np.array(sequence_flags(selected), dtype=bool)
    for s in selected:
        image[SEQUENCES.index(s)] = loaded[s].array
    seg = loaded["seg"].array if "seg" in loaded else None
    wt_mask = loaded["wt_mask"].array if "wt_mask" in loaded else None
    paths = {key: img.path for key, img in loaded.items() if img.path is not None and key not in blank}
    return LoadedCase(case.case_id, image, present, first.affine, first.header, first.spacing, seg, paths, wt_mask)
