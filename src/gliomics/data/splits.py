"""Patient-level splits: stratified by kind of supervision and markers, optionally holding out whole sites, seeded,
saved as JSON."""

from __future__ import annotations

import json
import logging
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from gliomics.data.cohort import CohortCase, build_cohorts, marker_prevalence, supervision_counts
from gliomics.errors import ConfigError, InputError
from gliomics.io.atomic import write_text_atomic

logger = logging.getLogger(__name__)
SPLITS_FILE = "splits.json"
SPLIT_NAMES = ("train", "val", "test")


def _pattern(case: CohortCase) -> str:
    """The marker pattern of a case (``?`` = unknown), e.g. ``10?``."""
    return "".join("?" if np.isnan(v) else str(int(v)) for v in case.marker_vector())


def _strata(cases: list[CohortCase], n_splits: int) -> list[str]:
    """What is known of each case, as coarse as the fold count needs: the marker pattern within the kind of
    supervision; a pattern rarer than ``n_splits`` falls back to its kind, and a kind rarer than that to ``rare``.
    A cohort of one kind is stratified by marker pattern alone."""
    kinds = [c.supervision for c in cases]
    fine = [_pattern(c) if len(set(kinds)) == 1 else f"{k}:{_pattern(c)}" for c, k in zip(cases, kinds, strict=True)]
    fine_n, kind_n = Counter(fine), Counter(kinds)
    return [f if fine_n[f] >= n_splits else k if len(kind_n) > 1 and kind_n[k] >= n_splits else "rare"
            for f, k in zip(fine, kinds, strict=True)]


def _split_groups(cases: list[CohortCase], fraction: float, seed: int) -> tuple[list[CohortCase], list[CohortCase]]:
    """Split into (rest, held) with about ``fraction`` of patients held, stratified by what is known (kind of
    supervision and marker pattern)."""
    if fraction <= 0 or len(cases) < 2:
        return cases, []
    n_splits = max(2, int(round(1.0 / fraction)))
    groups = [c.patient for c in cases]
    n_patients = len(set(groups))
    n_splits = min(n_splits, n_patients)
    if n_splits < 2:
        return cases, []
    # strata rarer than the number of folds cannot be stratified; they are pooled so StratifiedGroupKFold stays quiet
    strata = _strata(cases, n_splits)
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # small strata are expected in small cohorts; the split is still grouped
        warnings.simplefilter("ignore", UserWarning)
        rest_idx, held_idx = next(splitter.split(np.zeros(len(cases)), strata, groups))
    return [cases[i] for i in rest_idx], [cases[i] for i in held_idx]


def stratified_holdout(ids: Sequence[str], labels: Sequence[int], fraction: float = 0.2, seed: int = 0,
                       what: str = "test") -> tuple[list[str], list[str]]:
    """Split distinct ids (one per patient) into (rest, held) with about ``fraction`` held, stratified by a 0/1
    label (scikit-learn's ``train_test_split``), at least one of each class on each side. For a cohort with one
    row per patient and one binary target, as the 2D slice benchmark has; :func:`make_splits` splits cases with
    several markers and kinds of supervision.

    Args:
        ids: Distinct patient ids.
        labels: Their 0/1 labels.
        fraction: Share of ids held out (at least two).
        seed: Seed of the shuffle; the same seed gives the same split.
        what: Name of the held-out part, for error messages.

    Returns:
        The two lists of ids, each sorted.

    Raises:
        InputError: Repeated ids, or too few ids of a class to put some on both sides.
    """
    from sklearn.model_selection import train_test_split

    ids, labels = list(ids), [int(v) for v in labels]
    if len(set(ids)) != len(ids):
        raise InputError("patient ids must be distinct to split them")
    if len(ids) != len(labels):
        raise ValueError(f"{len(ids)} patients but {len(labels)} labels")
    counts = {c: labels.count(c) for c in (0, 1)}
    if min(counts.values()) < 2:
        rare = min(counts, key=counts.get)
        raise InputError(f"cannot make a stratified {what} split: {counts[rare]} patient(s) with label {rare} "
                         f"({counts[1]} altered, {counts[0]} not); each class needs at least 2")
    n_held = max(2, int(np.ceil(fraction * len(ids))))
    if len(ids) - n_held < 2:
        raise InputError(f"cannot make a {what} split of {len(ids)} patients: too few")
    rest, held = train_test_split(ids, test_size=n_held, stratify=labels, random_state=seed, shuffle=True)
    return sorted(rest), sorted(held)


def fold_assignment(cases: list[CohortCase], folds: int, seed: int) -> list[list[str]]:
    """A patient-level K-fold split, stratified by what is known: the case ids of each fold, sorted. The same
    cases, ``folds`` and ``seed`` give the same folds."""
    groups = [c.patient for c in cases]
    if len(set(groups)) < folds:
        raise ConfigError(f"{folds} folds need at least {folds} patients, the cohort has {len(set(groups))}")
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        parts = [held for _, held in splitter.split(np.zeros(len(cases)), _strata(cases, folds), groups)]
    return [sorted(cases[i].case_id for i in held) for held in parts]


def make_splits(cohort: list[CohortCase], *, val_fraction: float = 0.2, test_fraction: float = 0.0,
                holdout_sites: list[str] | None = None, seed: int = 0, folds: int | None = None,
                fold: int | None = None) -> dict[str, list[str]]:
    """Assign every case to train, val or test; a patient's cases always share a split.

    Args:
        cohort: Cases with markers (site comes from the markers table).
        val_fraction: Fraction of the non-held-out patients used for validation.
        test_fraction: Fraction of the non-held-out patients used for an internal test set.
        holdout_sites: Sites whose cases all go to test (external validation).
        seed: Seed of the shuffling.
        folds: K-fold cross-validation: the non-held-out patients are split into ``folds`` folds
            (:func:`fold_assignment`), fold ``fold`` validates and the others train; the fractions are unused and
            the splits hold the whole assignment under ``folds``.
        fold: The validation fold, with ``folds``.
    """
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ConfigError(f"split fractions must be in [0, 1) and sum below 1, got val {val_fraction}, "
                          f"test {test_fraction}")
    holdout = set(holdout_sites or [])
    known_sites = {c.site for c in cohort}
    unknown_sites = holdout - known_sites
    if unknown_sites:
        raise ConfigError(f"hold-out site(s) {sorted(unknown_sites)} not in the cohort (sites: "
                          f"{sorted(s for s in known_sites if s)})")
    external = [c for c in cohort if c.site in holdout]
    internal = [c for c in cohort if c.site not in holdout]
    if folds is not None:
        if fold is None or not 0 <= fold < folds:
            raise ConfigError(f"fold must be in 0..{folds - 1}, got {fold}")
        assignment = fold_assignment(internal, folds, seed)
        splits = {"train": sorted(c for k, part in enumerate(assignment) if k != fold for c in part),
                  "val": list(assignment[fold]), "test": sorted(c.case_id for c in external)}
        check_no_leak(splits, cohort)
        return {**splits, "folds": assignment}
    rest, test = _split_groups(internal, test_fraction, seed)
    train, val = _split_groups(rest, val_fraction / max(1e-9, 1 - test_fraction), seed + 1)
    splits = {"train": sorted(c.case_id for c in train), "val": sorted(c.case_id for c in val),
              "test": sorted(c.case_id for c in test + external)}
    check_no_leak(splits, cohort)
    return splits


def check_no_leak(splits: dict[str, list[str]], cohort: list[CohortCase]) -> None:
    """Raise if a patient appears in two splits or a case in none."""
    patient = {c.case_id: c.patient for c in cohort}
    seen: dict[str, str] = {}
    for name in SPLIT_NAMES:
        for cid in splits.get(name, []):
            p = patient.get(cid, cid)
            if p in seen and seen[p] != name:
                raise InputError(f"patient {p!r} appears in both {seen[p]} and {name}")
            seen[p] = name


def save_splits(splits: dict[str, list[str]], path: Path | str, **info) -> Path:
    """Write ``splits.json`` atomically, with the settings that produced it."""
    path = Path(path)
    write_text_atomic(path, json.dumps({**splits, "settings": info}, indent=2))
    return path


def load_splits(path: Path | str) -> dict[str, list[str]]:
    """Read a ``splits.json``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot read splits ({exc})") from exc
    if not isinstance(data, dict) or not all(isinstance(data.get(k, []), list) for k in SPLIT_NAMES):
        raise InputError(f"{path}: expected keys {list(SPLIT_NAMES)} holding lists of case ids")
    return {k: list(data.get(k, [])) for k in SPLIT_NAMES}


def run_cohort(run: Path | str) -> tuple[dict[str, CohortCase], dict[str, list[str]], list[Path]]:
    """The cases of a training run, found again through its ``splits.json``: the cohort by case id (cases that have
    left their folders are absent), the splits, and the data folders named in the file.

    Raises:
        InputError: no readable ``splits.json``, or one that does not name the cohort it split.
    """
    path = Path(run) / SPLITS_FILE
    splits = load_splits(path)
    settings = json.loads(path.read_text()).get("settings", {})
    data, markers = settings.get("data"), settings.get("markers")
    if not data:
        raise InputError(f"{path}: does not name the cohort it split; predict the cases yourself and give the "
                         "prediction folder instead")
    datas = [Path(d) for d in (data if isinstance(data, list) else [data])]
    tables = markers if isinstance(markers, list) else [markers] * len(datas)
    cohort = build_cohorts([(d, Path(m) if m else None) for d, m in zip(datas, tables, strict=True)],
                           allow_missing=True)
    return {c.case_id: c for c in cohort}, splits, datas


def describe_splits(splits: dict[str, list[str]], cohort: list[CohortCase]) -> str:
    """A one-line summary: cases, kinds of supervision (when they differ) and marker prevalence per split."""
    by_id = {c.case_id: c for c in cohort}
    parts = []
    for name in SPLIT_NAMES:
        members = [by_id[c] for c in splits.get(name, []) if c in by_id]
        if not members:
            continue
        prev = ", ".join(f"{m} {p:.2f}" for m, p in marker_prevalence(members).items() if p is not None)
        kinds = supervision_counts(members)["kinds"]
        mix = f"; {', '.join(f'{k} {n}' for k, n in kinds.items())}" if len(kinds) > 1 else ""
        parts.append(f"{name} {len(members)} ({prev}{mix})")
    return "; ".join(parts)
