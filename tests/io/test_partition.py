"""Cases split into parts of about equal work: every case in exactly one part, deterministic, balanced by size."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from gliomics.errors import CaseOptionError
from gliomics.io.cases import Case
from gliomics.io.partition import case_voxels, partition_cases, select_part


def _case(tmp_path, case_id: str, shape: tuple[int, int, int], sequences=("t1c", "t2f")) -> Case:
    images = {}
    for s in sequences:
        path = tmp_path / f"{case_id}-{s}.nii.gz"
        nib.save(nib.Nifti1Image(np.zeros(shape, np.uint8), np.eye(4)), path)
        images[s] = path
    return Case(case_id, images)


def test_case_voxels_reads_the_headers(tmp_path):
    assert case_voxels(_case(tmp_path, "A", (4, 5, 6))) == 2 * 120
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"not a nifti")
    assert case_voxels(Case("B", {"t1c": bad})) == 0


def test_parts_cover_every_case_once_and_balance_the_work(tmp_path):
    sizes = [(8, 8, 8)] * 6 + [(16, 16, 16)] * 2 + [(4, 4, 4)] * 4
    cases = [_case(tmp_path, f"C{i:02d}", s) for i, s in enumerate(sizes)]
    for n in (1, 2, 3, 5):
        parts = [select_part(cases, n, k) for k in range(n)]
        ids = [c.case_id for p in parts for c in p]
        assert sorted(ids) == sorted(c.case_id for c in cases) and len(ids) == len(set(ids))
    parts = partition_cases(cases, 3)
    work = [sum(case_voxels(c) for c in p) for p in parts]
    # the two large cases go to different parts, and no part holds more than one large case's work: the best split
    assert sum(any(c.case_id in ("C06", "C07") for c in p) for p in parts) == 2
    assert max(work) == case_voxels(cases[6])
    # dealing by count would not be balanced
    assert max(sum(case_voxels(c) for c in cases[k::3]) for k in range(3)) > max(work)
    # the same cases in another order give the same partition
    again = partition_cases(list(reversed(cases)), 3)
    assert [[c.case_id for c in p] for p in again] == [[c.case_id for c in p] for p in parts]


def test_a_part_that_does_not_exist_is_refused(tmp_path):
    cases = [_case(tmp_path, "A", (4, 4, 4))]
    with pytest.raises(CaseOptionError, match="--part-id 3"):
        select_part(cases, 3, 3)
    with pytest.raises(CaseOptionError):
        select_part(cases, 0, 0)
    assert [len(select_part(cases, 4, k)) for k in range(4)] == [1, 0, 0, 0]  # more parts than cases
