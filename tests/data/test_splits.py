"""Patient-level splits: no leaks, full coverage, seeded, site hold-out, JSON round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gliomics.data.cohort import CohortCase
from gliomics.data.splits import (
    SPLIT_NAMES,
    check_no_leak,
    load_splits,
    make_splits,
    save_splits,
    stratified_holdout,
)
from gliomics.errors import ConfigError, InputError
from gliomics.io import Case, MarkerRecord


def _case(case_id: str, idh: int | None, codel: int | None, tert: int | None, site: str | None) -> CohortCase:
    case = Case(case_id, images={s: Path(f"/nowhere/{case_id}/{case_id}-{s}.nii.gz") for s in ("t1c", "t2f")})
    return CohortCase(case, MarkerRecord(case_id, idh=idh, codel_1p19q=codel, tert=tert, site=site))


def make_cohort(n_patients: int = 24) -> list[CohortCase]:
    """Patients over three sites; every third patient also has a follow-up time point (-100)."""
    cohort = []
    for p in range(n_patients):
        site = "ABC"[p % 3]
        idh, codel, tert = p % 2, (p // 2) % 2 if p % 2 else 0, None if p % 5 == 0 else (p // 3) % 2
        pid = f"X-{p:05d}"
        cohort.append(_case(f"{pid}-000", idh, codel, tert, site))
        if p % 3 == 0:
            cohort.append(_case(f"{pid}-100", idh, codel, tert, site))
    return cohort


def _patients(ids: list[str], cohort: list[CohortCase]) -> set[str]:
    by_id = {c.case_id: c for c in cohort}
    return {by_id[cid].patient for cid in ids}


@pytest.fixture(scope="module")
def cohort() -> list[CohortCase]:
    return make_cohort()


def test_cohort_has_multi_time_point_patients(cohort: list[CohortCase]) -> None:
    assert len({c.patient for c in cohort}) < len(cohort)


@pytest.mark.parametrize("seed", [0, 1, 7])
@pytest.mark.parametrize(("val", "test"), [(0.2, 0.0), (0.2, 0.2), (0.25, 0.25)])
def test_no_patient_leak_and_full_coverage(cohort: list[CohortCase], seed: int, val: float, test: float) -> None:
    splits = make_splits(cohort, val_fraction=val, test_fraction=test, seed=seed)
    assert set(splits) == set(SPLIT_NAMES)
    all_ids = [cid for name in SPLIT_NAMES for cid in splits[name]]
    assert sorted(all_ids) == sorted(c.case_id for c in cohort)  # every case exactly once
    patients = {name: _patients(splits[name], cohort) for name in SPLIT_NAMES}
    assert not patients["train"] & patients["val"]
    assert not patients["train"] & patients["test"]
    assert not patients["val"] & patients["test"]
    assert splits["train"] and splits["val"]
    assert bool(splits["test"]) == (test > 0)
    for name in SPLIT_NAMES:
        assert splits[name] == sorted(splits[name])


def test_val_fraction_is_roughly_respected(cohort: list[CohortCase]) -> None:
    splits = make_splits(cohort, val_fraction=0.25, test_fraction=0.0, seed=3)
    n_patients = len({c.patient for c in cohort})
    assert 0.1 * n_patients <= len(_patients(splits["val"], cohort)) <= 0.4 * n_patients


def test_same_seed_same_splits(cohort: list[CohortCase]) -> None:
    a = make_splits(cohort, val_fraction=0.2, test_fraction=0.2, seed=5)
    b = make_splits(list(cohort), val_fraction=0.2, test_fraction=0.2, seed=5)
    assert a == b


def test_different_seeds_usually_differ(cohort: list[CohortCase]) -> None:
    results = [make_splits(cohort, val_fraction=0.2, test_fraction=0.2, seed=s) for s in range(4)]
    distinct = {json.dumps(r, sort_keys=True) for r in results}
    assert len(distinct) > 1


def test_holdout_site_goes_to_test(cohort: list[CohortCase]) -> None:
    splits = make_splits(cohort, val_fraction=0.2, holdout_sites=["B"], seed=0)
    site_b = sorted(c.case_id for c in cohort if c.site == "B")
    assert splits["test"] == site_b  # test_fraction 0: the external site is the whole test set
    for name in ("train", "val"):
        assert not set(splits[name]) & set(site_b)
    assert sorted(splits["train"] + splits["val"] + splits["test"]) == sorted(c.case_id for c in cohort)


def test_holdout_site_plus_internal_test(cohort: list[CohortCase]) -> None:
    splits = make_splits(cohort, val_fraction=0.2, test_fraction=0.2, holdout_sites=["A"], seed=1)
    site_a = {c.case_id for c in cohort if c.site == "A"}
    assert site_a < set(splits["test"])  # strictly more: an internal test set from sites B and C as well
    check_no_leak(splits, cohort)


def test_unknown_holdout_site_raises(cohort: list[CohortCase]) -> None:
    with pytest.raises(ConfigError, match="Z"):
        make_splits(cohort, holdout_sites=["Z"])


@pytest.mark.parametrize(("val", "test"), [(-0.1, 0.0), (1.0, 0.0), (0.0, 1.0), (0.6, 0.4)])
def test_bad_fractions_raise(cohort: list[CohortCase], val: float, test: float) -> None:
    with pytest.raises(ConfigError):
        make_splits(cohort, val_fraction=val, test_fraction=test)


def test_cases_without_markers_are_split_too() -> None:
    cohort = [CohortCase(Case(f"Y-{p:05d}-000", images={"t1c": Path("/nowhere.nii.gz")}), None) for p in range(10)]
    splits = make_splits(cohort, val_fraction=0.3, seed=0)
    assert sorted(splits["train"] + splits["val"]) == sorted(c.case_id for c in cohort)
    assert splits["val"] and not splits["test"]


def test_save_load_round_trip(cohort: list[CohortCase], tmp_path: Path) -> None:
    splits = make_splits(cohort, val_fraction=0.2, test_fraction=0.2, seed=2)
    path = save_splits(splits, tmp_path / "run" / "splits.json", seed=2, val_fraction=0.2)
    assert path == tmp_path / "run" / "splits.json"
    assert load_splits(path) == splits
    assert json.loads(path.read_text())["settings"] == {"seed": 2, "val_fraction": 0.2}
    assert sorted(p.name for p in path.parent.iterdir()) == ["splits.json"]  # no temporary file left


def test_load_splits_bad_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        load_splits(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="bad.json"):
        load_splits(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"train": "X-00001-000"}))
    with pytest.raises(InputError, match="expected keys"):
        load_splits(wrong)


def test_check_no_leak_raises_on_leak(cohort: list[CohortCase]) -> None:
    splits = {"train": ["X-00000-000"], "val": ["X-00000-100"], "test": []}
    with pytest.raises(InputError, match="X-00000"):
        check_no_leak(splits, cohort)


def test_check_no_leak_accepts_clean_splits(cohort: list[CohortCase]) -> None:
    check_no_leak({"train": ["X-00000-000", "X-00000-100"], "val": ["X-00001-000"], "test": []}, cohort)


# --- K-fold cross-validation -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("folds", [3, 5])
def test_k_fold_split_puts_each_patient_in_one_fold_and_is_the_same_for_every_fold(cohort, folds):
    per_fold = [make_splits(cohort, seed=4, folds=folds, fold=k, holdout_sites=["C"]) for k in range(folds)]
    assignment = per_fold[0]["folds"]
    assert all(s["folds"] == assignment for s in per_fold)  # stored, and identical across folds
    assert len(assignment) == folds and all(assignment)
    internal = sorted(c.case_id for c in cohort if c.site != "C")
    assert sorted(c for part in assignment for c in part) == internal  # every internal case in exactly one fold
    patients = [_patients(part, cohort) for part in assignment]
    assert all(not a & b for i, a in enumerate(patients) for b in patients[i + 1:])
    for k, s in enumerate(per_fold):
        assert s["val"] == assignment[k] and not _patients(s["train"], cohort) & _patients(s["val"], cohort)
        assert sorted(s["train"] + s["val"]) == internal
        assert {c for c in s["test"]} == {c.case_id for c in cohort if c.site == "C"}
    assert make_splits(cohort, seed=5, folds=folds, fold=0)["folds"] != make_splits(cohort, seed=4, folds=folds,
                                                                                   fold=0)["folds"]


def test_k_fold_needs_enough_patients_and_a_fold_in_range(cohort):
    with pytest.raises(ConfigError, match="folds need at least"):
        make_splits(cohort[:3], folds=5, fold=0)
    with pytest.raises(ConfigError, match="fold must be in"):
        make_splits(cohort, folds=3, fold=3)


PATIENTS = [f"P{i:02d}" for i in range(30)]
LABELS = [1 if i % 3 == 0 else 0 for i in range(30)]


def test_stratified_holdout_is_disjoint_complete_stratified_and_seeded():
    rest, held = stratified_holdout(PATIENTS, LABELS, 0.2, seed=7)
    assert not set(rest) & set(held)
    assert sorted(rest + held) == PATIENTS
    assert len(held) == 6
    label = dict(zip(PATIENTS, LABELS))
    assert sum(label[p] for p in held) == 2  # 10 of 30 positives, a fifth of them held out
    assert stratified_holdout(PATIENTS, LABELS, 0.2, seed=7) == (rest, held)
    others = {tuple(stratified_holdout(PATIENTS, LABELS, 0.2, seed=s)[1]) for s in range(5)}
    assert len(others) > 1


def test_stratified_holdout_needs_two_patients_of_each_class_and_distinct_ids():
    with pytest.raises(InputError, match="each class needs at least 2"):
        stratified_holdout(["a", "b", "c", "d"], [1, 0, 0, 0])
    with pytest.raises(InputError, match="distinct"):
        stratified_holdout(["a", "a", "b", "c"], [1, 1, 0, 0])
