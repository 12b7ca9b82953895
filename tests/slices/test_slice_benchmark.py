"""The benchmark's patients: drawn with the shared stratified hold-out, or read from a splits.json."""

from __future__ import annotations

import pytest

from gliomics.data.splits import save_splits
from gliomics.errors import InputError
from gliomics.slices.benchmark import _split
from gliomics.slices.settings import make_settings
from gliomics.slices.slice_set import PatientInfo, SliceSet


def _slice_set(n: int = 20) -> SliceSet:
    """Patients P00… with every other one altered; P00 has two time points."""
    patients = {f"P{i:02d}": PatientInfo(f"P{i:02d}", label=i % 2, cases=[f"P{i:02d}-000"]) for i in range(n)}
    patients["P00"].cases.append("P00-100")
    return SliceSet(make_settings("cpu"), records=[], crops=[], patients=patients, skipped=[])


def test_drawn_split_is_disjoint_stratified_and_seeded():
    slice_set, settings = _slice_set(), make_settings("cpu", seed=3)
    split = _split(slice_set, settings)
    assert sorted(split["train"] + split["test"]) == sorted(slice_set.patients)
    assert sorted(split["fit"] + split["val"]) == split["train"]
    assert {slice_set.patients[p].label for p in split["test"]} == {0, 1}
    assert _split(slice_set, settings) == split
    assert _split(slice_set, make_settings("cpu", seed=4))["test"] != split["test"]


def test_split_from_a_splits_file_keeps_its_roles(tmp_path):
    slice_set = _slice_set()
    roles = {"train": [f"P{i:02d}-000" for i in range(2, 14)] + ["P00-000", "P00-100"],
             "val": [f"P{i:02d}-000" for i in (14, 15, 16)], "test": [f"P{i:02d}-000" for i in (1, 17, 18, 19)]}
    path = save_splits({**roles, "test": roles["test"] + ["gone-000"]}, tmp_path / "splits.json")
    split = _split(slice_set, make_settings("cpu"), path)
    assert split["test"] == ["P01", "P17", "P18", "P19"]
    assert split["val"] == ["P14", "P15", "P16"]
    assert "P00" in split["fit"] and sorted(split["fit"] + split["val"]) == split["train"]


@pytest.mark.parametrize(("roles", "message"), [
    ({"train": [f"P{i:02d}-000" for i in range(19)], "val": [], "test": ["P19-000"]}, "case P00-100 of the cohort"),
    ({"train": ["P00-000"] + [f"P{i:02d}-000" for i in range(2, 16)], "val": ["P00-100"],
      "test": [f"P{i:02d}-000" for i in (1, 16, 17, 18, 19)]}, "patient P00 are in more than one split"),
    ({"train": ["P00-000", "P00-100"] + [f"P{i:02d}-000" for i in range(2, 19)], "val": ["P19-000"],
      "test": ["P01-000"]},
     "test cases hold 1 usable patient"),
    ({"train": ["P00-000", "P00-100"] + [f"P{i:02d}-000" for i in range(1, 18)], "val": [],
      "test": ["P18-000", "P19-000"]}, "validation cases hold 0"),
])
def test_a_splits_file_that_does_not_fit_the_cohort_is_refused(tmp_path, roles, message):
    path = save_splits(roles, tmp_path / "splits.json")
    with pytest.raises(InputError, match=message):
        _split(_slice_set(), make_settings("cpu"), path)
