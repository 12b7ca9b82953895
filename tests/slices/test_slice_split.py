"""Patient-level stratified split and the averaging of slice probabilities per patient."""

from __future__ import annotations

import pytest

from gliomics.errors import InputError
from gliomics.slices.split import average_by_patient, patient_split

PATIENTS = [f"P{i:02d}" for i in range(30)]
LABELS = [1 if i % 3 == 0 else 0 for i in range(30)]


def test_split_is_disjoint_complete_stratified_and_seeded():
    train, test = patient_split(PATIENTS, LABELS, 0.2, seed=7)
    assert not set(train) & set(test)
    assert sorted(train + test) == PATIENTS
    assert len(test) == 6
    label = dict(zip(PATIENTS, LABELS))
    assert sum(label[p] for p in test) == 2  # 10 of 30 positives, a fifth of them held out
    assert patient_split(PATIENTS, LABELS, 0.2, seed=7) == (train, test)
    others = {tuple(patient_split(PATIENTS, LABELS, 0.2, seed=s)[1]) for s in range(5)}
    assert len(others) > 1


def test_split_needs_two_patients_of_each_class():
    with pytest.raises(InputError, match="each class needs at least 2"):
        patient_split(["a", "b", "c", "d"], [1, 0, 0, 0])
    with pytest.raises(InputError, match="distinct"):
        patient_split(["a", "a", "b", "c"], [1, 1, 0, 0])


def test_average_by_patient_means_the_slices_of_each_patient():
    result = average_by_patient(["b", "a", "b", "a", "b"], [0.2, 0.9, 0.4, 0.7, 0.9])
    assert list(result) == ["b", "a"]
    assert result["b"] == pytest.approx(0.5) and result["a"] == pytest.approx(0.8)
    with pytest.raises(ValueError):
        average_by_patient(["a"], [0.1, 0.2])
