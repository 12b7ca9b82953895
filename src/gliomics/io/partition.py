"""Cases split into parts of about equal work, for job arrays (``--num-parts P --part-id k``) and ``torchrun`` ranks.

The work of a case is the number of voxels of its images, read from the NIfTI headers (no voxel data is loaded).
Cases are dealt largest first, each to the part with the least work so far (longest-processing-time first), ties
broken by case id and part index: the partition depends only on the cases, so every job of an array, and a
re-queued one, computes the same split, and no case is in two parts.
"""

from __future__ import annotations

import math

import nibabel as nib

from gliomics.errors import CaseOptionError
from gliomics.io.cases import Case

__all__ = ["case_voxels", "check_part", "partition_cases", "select_part"]


def case_voxels(case: Case) -> int:
    """Voxels of every image of ``case`` together (0 for an image whose header cannot be read: loading the case will
    report it)."""
    total = 0
    for path in case.images.values():
        try:
            total += math.prod(nib.load(path).shape[:3])
        except Exception:  # noqa: BLE001 - a bad file is reported, with its name, where the case is loaded
            continue
    return total


def check_part(num_parts: int, part_id: int) -> None:
    """Refuse a part that does not exist."""
    if num_parts < 1 or not 0 <= part_id < num_parts:
        raise CaseOptionError(f"--part-id {part_id} with --num-parts {num_parts}: the part id must be in "
                              f"0..{num_parts - 1}")


def partition_cases(cases: list[Case], num_parts: int) -> list[list[Case]]:
    """``cases`` dealt into ``num_parts`` parts of about equal work; each part in case-id order."""
    check_part(num_parts, 0)
    loads = [0] * num_parts
    parts: list[list[Case]] = [[] for _ in range(num_parts)]
    for size, case in sorted(((case_voxels(c), c) for c in cases), key=lambda sc: (-sc[0], sc[1].case_id)):
        k = min(range(num_parts), key=lambda i: (loads[i], i))
        parts[k].append(case)
        loads[k] += max(size, 1)
    return [sorted(p, key=lambda c: c.case_id) for p in parts]


def select_part(cases: list[Case], num_parts: int, part_id: int) -> list[Case]:
    """Part ``part_id`` of :func:`partition_cases` (all cases when ``num_parts`` is 1)."""
    check_part(num_parts, part_id)
    return cases if num_parts == 1 else partition_cases(cases, num_parts)[part_id]
