"""Choosing one DICOM series per sequence from the evidence of :mod:`gliomics.io.dicom_evidence`.

Choosing one series per sequence (:func:`select_series`): T1ce among the post-contrast T1 series, T1 among the
others, T2 and FLAIR preferring the series acquired before contrast; then the finer voxels, then axial slices.
Where two candidates remain equal the import stops and lists them with the override ``--series SEQ=<number or
SeriesInstanceUID>``: nothing is chosen silently.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gliomics.constants import SEQUENCES
from gliomics.errors import ConfigError, InputError
from gliomics.io.dicom import Series
from gliomics.io.dicom_evidence import SeriesEvidence, apply_order_rules, time_key, weigh_series, when

logger = logging.getLogger(__name__)

#: A voxel volume within this ratio of the finest candidate's counts as the same resolution.
RESOLUTION_TOLERANCE = 1.15


@dataclass
class Selection:
    """The series chosen per sequence, with the evidence of every series."""

    chosen: dict[str, Series]
    evidence: list[SeriesEvidence]
    reasons: dict[str, str]


def _candidates(evidence: list[SeriesEvidence], sequence: str) -> list[SeriesEvidence]:
    wanted = {"t1c": "t1", "t1n": "t1", "t2w": "t2", "t2f": "flair"}[sequence]
    found = [e for e in evidence if e.kind == wanted]
    if sequence == "t1c":
        return [e for e in found if e.contrast]
    if sequence == "t1n":
        return [e for e in found if not e.contrast]
    return found


def _phase(e: SeriesEvidence, sequence: str) -> int:
    return 0 if sequence == "t1c" or not e.contrast else 1


def _finest(candidates: list[SeriesEvidence], sequence: str) -> dict[int, float]:
    """The smallest voxel volume of the candidates, per phase (before / after contrast)."""
    finest: dict[int, float] = {}
    for e in candidates:
        if e.series.voxel_volume > 0:
            phase = _phase(e, sequence)
            finest[phase] = min(finest.get(phase, math.inf), e.series.voxel_volume)
    return finest


def _rank(e: SeriesEvidence, sequence: str, finest: Mapping[int, float]) -> tuple:
    """Lower is better: before contrast (but T1ce), finer voxels (within 15 % of the finest of its phase counts as
    the finest), axial slices."""
    phase = _phase(e, sequence)
    volume = e.series.voxel_volume
    if volume <= 0:
        resolution = math.inf
    else:
        resolution = 0.0 if volume <= finest.get(phase, volume) * RESOLUTION_TOLERANCE else volume
    return (phase, resolution, 0 if e.series.axial else 1)


def _why(e: SeriesEvidence, others: list[SeriesEvidence], sequence: str) -> str:
    reasons = [next((n for n in e.notes if n.startswith("parameters")), e.kind)]
    if e.contrast is not None:
        reasons.append(next((n for n in reversed(e.notes) if "contrast" in n), "post-contrast"))
    if others:
        finest = _finest([e, *others], sequence)
        best = _rank(e, sequence, finest)
        worse = [_rank(o, sequence, finest) for o in others]
        if any(w[0] > best[0] for w in worse):
            reasons.append("acquired before contrast")
        if any(w[0] == best[0] and w[1] > best[1] for w in worse):
            reasons.append("finer voxels")
        if any(w[:2] == best[:2] and w[2] > best[2] for w in worse):
            reasons.append("axial")
        reasons.append(f"over {', '.join(str(o.series.number) for o in others)}")
    return "; ".join(reasons)


def _override(evidence: list[SeriesEvidence], sequence: str, value: str, where: str) -> SeriesEvidence:
    found = [e for e in evidence if value in (e.series.series_uid, str(e.series.number))]
    if not found:
        listed = ", ".join(f"{e.series.number} ({e.series.description!r})" for e in evidence)
        raise InputError(f"{where}: --series {sequence}={value}: no such series number or SeriesInstanceUID "
                         f"(series: {listed})")
    if len(found) > 1:
        raise InputError(f"{where}: --series {sequence}={value}: several series have this number; give the "
                         "SeriesInstanceUID")
    if not found[0].usable:
        raise InputError(f"{where}: --series {sequence}={value}: {found[0].series.label} is unusable "
                         f"({found[0].series.problem})")
    return found[0]


def _listing(candidates: list[SeriesEvidence]) -> str:
    return "; ".join(f"{e.series.label} (SeriesInstanceUID {e.series.series_uid}, acquired {when(e)})"
                     for e in candidates)


def select_series(series: list[Series], where: str, *, overrides: Mapping[str, str] | None = None,
                  enhancement: Callable[[Series, Series], float | None] | None = None) -> Selection:
    """Weigh every series and choose one per sequence.

    Args:
        series: The series of one study (from :func:`gliomics.io.dicom.scan_series`).
        where: The study folder, for messages.
        overrides: Sequence → series number or SeriesInstanceUID (``--series t1c=1201``): taken as given.
        enhancement: Compares two series' images for the order rule (:func:`enhancement_index` on the read
            images); None skips the image check.

    Raises:
        InputError: No usable T1ce; two candidates equal on the evidence; a bad override.
        ConfigError: An override for an unknown sequence.
    """
    overrides = dict(overrides or {})
    for key in overrides:
        if key not in SEQUENCES:
            raise ConfigError(f"--series {key}=…: unknown sequence; expected one of {', '.join(SEQUENCES)}")
    evidence = [weigh_series(s) for s in series]
    forced = {key: _override(evidence, key, value, where) for key, value in overrides.items()}
    for key, e in forced.items():
        if key == "t1c" and not e.contrast:
            e.contrast = True  # the user's word is contrast evidence: what came after it is post-contrast too
            e.notes.append(f"post-contrast: named by --series t1c={overrides[key]}")
    apply_order_rules(evidence, enhancement)
    chosen: dict[str, Series] = {}
    reasons: dict[str, str] = {}
    taken = {id(e) for e in forced.values()}
    for sequence in ("t1c", "t1n", "t2f", "t2w"):
        if sequence in forced:
            pick, reasons[sequence] = forced[sequence], f"--series {sequence}={overrides[sequence]}"
        else:
            usable = [e for e in _candidates(evidence, sequence) if e.usable and id(e) not in taken]
            pick = _pick(usable, sequence, where, evidence)
            if pick is None:
                continue
            reasons[sequence] = _why(pick, [e for e in usable if e is not pick], sequence)
        pick.chosen_as, chosen[sequence] = sequence, pick.series
        taken.add(id(pick))
    missing = [k for k in SEQUENCES if k not in chosen]
    if missing:
        logger.warning("%s: no series for %s", where, ", ".join(missing))
    return Selection({k: chosen[k] for k in SEQUENCES if k in chosen}, evidence, reasons)


def _pick(usable: list[SeriesEvidence], sequence: str, where: str,
          evidence: list[SeriesEvidence]) -> SeriesEvidence | None:
    if not usable:
        if sequence != "t1c":
            return None
        t1 = [e for e in evidence if e.kind == "t1"]
        found = f"T1 series: {_listing(t1)}" if t1 else "no T1 series"
        broken = [e for e in _candidates(evidence, "t1c") if not e.usable]
        if broken:
            found = "; ".join(f"{e.series.label}: {e.series.problem}" for e in broken)
        raise InputError(f"{where}: no usable post-contrast T1 (T1ce) series ({found}); name it with "
                         "--series t1c=<series number or SeriesInstanceUID>")
    finest = _finest(usable, sequence)
    usable.sort(key=lambda e: (_rank(e, sequence, finest), time_key(e)))
    best = _rank(usable[0], sequence, finest)
    tied = [e for e in usable if _rank(e, sequence, finest) == best]
    if len(tied) > 1:
        raise InputError(f"{where}: cannot choose the {sequence} series: {len(tied)} candidates are equal on the "
                         f"evidence ({_listing(tied)}); choose one with --series {sequence}=<series number or "
                         "SeriesInstanceUID>")
    return usable[0]


def decision_lines(selection: Selection) -> list[str]:
    """One console line per sequence: the series chosen and why."""
    lines = []
    for sequence in SEQUENCES:
        s = selection.chosen.get(sequence)
        lines.append(f"{sequence} <- {s.label}: {selection.reasons[sequence]}" if s is not None
                     else f"{sequence}: no series")
    return lines
