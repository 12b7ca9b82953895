"""Patient-level stratified splits and the aggregation of slice probabilities to patients."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gliomics.errors import InputError

__all__ = ["average_by_patient", "patient_split"]


def patient_split(patients: Sequence[str], labels: Sequence[int], fraction: float = 0.2, seed: int = 0,
                  what: str = "test") -> tuple[list[str], list[str]]:
    """Split patients into (rest, held) with about ``fraction`` held, stratified by label (scikit-learn's
    ``train_test_split``). Splitting patients, not slices, keeps all slices of a patient on one side.

    Args:
        patients: Distinct patient ids.
        labels: Their 0/1 labels.
        fraction: Share of patients held out (at least one of each class).
        seed: Seed of the shuffle; the same seed gives the same split.
        what: Name of the held-out part, for error messages.

    Returns:
        The two lists of patient ids, each sorted.

    Raises:
        InputError: Repeated ids, or too few patients of a class to put some on both sides.
    """
    from sklearn.model_selection import train_test_split

    patients, labels = list(patients), [int(v) for v in labels]
    if len(set(patients)) != len(patients):
        raise InputError("patient ids must be distinct to split them")
    if len(patients) != len(labels):
        raise ValueError(f"{len(patients)} patients but {len(labels)} labels")
    counts = {c: labels.count(c) for c in (0, 1)}
    if min(counts.values()) < 2:
        rare = min(counts, key=counts.get)
        raise InputError(f"cannot make a stratified {what} split: {counts[rare]} patient(s) with label {rare} "
                         f"({counts[1]} altered, {counts[0]} not); each class needs at least 2")
    n_held = max(2, int(np.ceil(fraction * len(patients))))
    if len(patients) - n_held < 2:
        raise InputError(f"cannot make a {what} split of {len(patients)} patients: too few")
    rest, held = train_test_split(patients, test_size=n_held, stratify=labels, random_state=seed, shuffle=True)
    return sorted(rest), sorted(held)


def average_by_patient(patients: Sequence[str], probabilities: Sequence[float]) -> dict[str, float]:
    """Mean slice probability of every patient, in order of first appearance."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if len(patients) != probabilities.size:
        raise ValueError(f"{len(patients)} patient ids but {probabilities.size} probabilities")
    sums: dict[str, list[float]] = {}
    for patient, p in zip(patients, probabilities):
        sums.setdefault(str(patient), []).append(float(p))
    return {patient: float(np.mean(values)) for patient, values in sums.items()}
