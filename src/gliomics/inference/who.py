"""A WHO CNS5 (2021) integrated-category suggestion from the three predicted marker probabilities.

The rules follow the molecular criteria of the 5th edition of the WHO Classification of Tumours of the Central
Nervous System for adult-type diffuse gliomas (Louis et al., Neuro-Oncology 23(8):1231-1251, 2021,
<https://doi.org/10.1093/neuonc/noab106>):

- IDH-mutant and 1p/19q-codeleted: oligodendroglioma, IDH-mutant and 1p/19q-codeleted;
- IDH-mutant, not codeleted: astrocytoma, IDH-mutant;
- IDH-wildtype with a TERT promoter mutation: glioblastoma, IDH-wildtype, by its molecular criterion;
- IDH-wildtype without it: not decidable from these markers (EGFR amplification and +7/−10 decide).

Only the markers a branch needs are used: 1p/19q after an IDH mutation, TERT after IDH-wildtype. A needed
probability inside the band around its threshold makes the suggestion indeterminate.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

from gliomics.constants import MARKER_NAMES

__all__ = ["CATEGORIES", "DEFAULT_BAND", "INDETERMINATE", "WHO_CAVEAT", "who_cns5_suggestion"]

#: Half-width of the band around a threshold inside which a marker is too uncertain to decide a branch.
DEFAULT_BAND: float = 0.1
INDETERMINATE = "Indeterminate"
#: The four categories, keyed by a short name, in the order of the decision tree.
CATEGORIES: dict[str, str] = {
    "oligodendroglioma": "Oligodendroglioma, IDH-mutant and 1p/19q-codeleted",
    "astrocytoma": "Astrocytoma, IDH-mutant",
    "glioblastoma": "Glioblastoma, IDH-wildtype (molecular criterion)",
    "idh_wildtype_other": "IDH-wildtype diffuse glioma, further testing needed (EGFR, +7/−10)",
}
WHO_CAVEAT = (
    "Research suggestion, not a diagnosis: it applies the WHO CNS5 (2021) molecular rules for adult-type diffuse "
    "gliomas to marker probabilities predicted from MRI alone. An integrated diagnosis needs histology and molecular "
    "testing of tissue (e.g. IDH sequencing, 1p/19q, TERT promoter, EGFR, +7/−10, CDKN2A/B for grading). "
    "Category probabilities multiply the marker probabilities as if the markers were independent, which they are not "
    "(1p/19q codeletion practically occurs only with an IDH mutation)."
)


def _check_probability(name: str, value: Any) -> float:
    try:
        p = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: probability must be a number, got {value!r}") from None
    if math.isnan(p) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}: probability must be in [0, 1], got {value!r}")
    return p


def category_probabilities(p_idh: float, p_codel: float, p_tert: float) -> dict[str, float]:
    """Probability of each category, treating the three markers as independent; they sum to 1."""
    return {
        "oligodendroglioma": p_idh * p_codel,
        "astrocytoma": p_idh * (1.0 - p_codel),
        "glioblastoma": (1.0 - p_idh) * p_tert,
        "idh_wildtype_other": (1.0 - p_idh) * (1.0 - p_tert),
    }


def _checked_inputs(probabilities: Mapping[str, float], thresholds: Mapping[str, float],
                    names: tuple[str, ...]) -> tuple[dict[str, float], dict[str, float]]:
    """Check that every marker of ``names`` has a probability; return the probabilities and the thresholds (0.5
    for any not given) as checked floats."""
    missing = [m for m in names if m not in probabilities or probabilities[m] is None]
    if missing:
        raise ValueError(f"the WHO CNS5 suggestion needs the probabilities of {', '.join(missing)}")
    p = {m: _check_probability(m, probabilities[m]) for m in names}
    t = {m: _check_probability(f"threshold of {m}", thresholds.get(m, 0.5)) for m in names}
    return p, t


def _decision_tree(p: dict[str, float], t: dict[str, float], band: float,
                   undetermined: Collection[str]) -> tuple[list[str], list[str], str]:
    """Walk the decision tree, IDH first and then the one marker its branch needs: the category keys still
    possible, the uncertain markers the decision needed, and the reason in words."""
    altered = {m: p[m] >= t[m] for m in p}
    uncertain = {m: abs(p[m] - t[m]) < band or m in undetermined for m in p}

    def word(m: str) -> str:
        return f"{MARKER_NAMES[m]} p={p[m]:.2f}, threshold {t[m]:.2f}"

    def why(m: str) -> str:
        return ("its conformal prediction set holds both classes" if m in undetermined else
                f"it lies within ±{band:g} of its threshold")

    def branch(mutant: bool) -> tuple[str, list[str]]:
        """The marker an IDH branch needs and the categories it leaves possible."""
        marker, (yes, no) = (("codel_1p19q", ("oligodendroglioma", "astrocytoma")) if mutant
                             else ("tert", ("glioblastoma", "idh_wildtype_other")))
        return marker, [yes, no] if uncertain[marker] else [yes if altered[marker] else no]

    if uncertain["idh"]:
        (m_mut, keys_mut), (m_wt, keys_wt) = branch(True), branch(False)
        keys = keys_mut + keys_wt
        needed = ["idh", *(m for m in (m_mut, m_wt) if uncertain[m])]
        reason = f"{word('idh')}: {why('idh')}"
    else:
        marker, keys = branch(altered["idh"])
        needed = [marker] if uncertain[marker] else []
        status = {"codel_1p19q": ("codeleted", "not codeleted"), "tert": ("TERT promoter mutant", "TERT wild-type")}
        idh = f"IDH-{'mutant' if altered['idh'] else 'wildtype'} ({word('idh')})"
        reason = (f"{idh}, but {word(marker)}: {why(marker)}" if needed else
                  f"{idh}, {status[marker][0 if altered[marker] else 1]} ({word(marker)})")
    return keys, needed, reason


def who_cns5_suggestion(probabilities: Mapping[str, float], thresholds: Mapping[str, float] | None = None, *,
                        band: float = DEFAULT_BAND, undetermined: Collection[str] = ()) -> dict[str, Any]:
    """Suggest the WHO CNS5 integrated category of an adult-type diffuse glioma from marker probabilities.

    A marker is called altered when its probability reaches its threshold (``p >= t``, as the predictor's calls).
    It is *uncertain* when ``|p − t| < band``; the suggestion is then ``"Indeterminate"`` if the branch needs that
    marker, and ``candidates`` lists the categories still possible.

    Args:
        probabilities: ``idh``, ``codel_1p19q`` and ``tert`` probabilities (1 = altered).
        thresholds: Decision threshold per marker; 0.5 for any not given.
        band: Half-width of the indeterminate band around each threshold; 0 disables it.
        undetermined: Markers whose conformal prediction set holds both classes: uncertain whatever their
            distance to the threshold.

    Returns:
        A JSON-serialisable dict: ``category`` (the full WHO name or ``"Indeterminate"``), ``key`` (a key of
        :data:`CATEGORIES` or ``"indeterminate"``), ``probability`` (of the suggested category, or of the most
        probable candidate when indeterminate), ``most_probable_candidate`` (when indeterminate), ``candidates``,
        ``category_probabilities`` (all four), ``uncertain_markers``, ``reason``, ``band``, ``thresholds``,
        ``assumption`` and ``caveat``.

    Raises:
        ValueError: a marker is missing, a probability is outside [0, 1] or NaN, or ``band`` is outside [0, 1).
    """
    if not 0.0 <= band < 1.0:
        raise ValueError(f"band must be in [0, 1), got {band}")
    names = ("idh", "codel_1p19q", "tert")
    p, t = _checked_inputs(probabilities, thresholds or {}, names)
    probs = category_probabilities(p["idh"], p["codel_1p19q"], p["tert"])
    keys, needed, reason = _decision_tree(p, t, band, undetermined)
    key = keys[0] if len(keys) == 1 else None
    best = key if key is not None else max(keys, key=lambda k: probs[k])
    return {
        "category": CATEGORIES[key] if key is not None else INDETERMINATE,
        "key": key or "indeterminate",
        "probability": round(probs[best], 4),
        "most_probable_candidate": None if key is not None else CATEGORIES[best],
        "category_probabilities": {CATEGORIES[k]: round(v, 4) for k, v in probs.items()},
        "candidates": [CATEGORIES[k] for k in keys],
        "uncertain_markers": needed,
        "reason": reason,
        "band": band,
        "thresholds": {m: round(t[m], 4) for m in names},
        "assumption": "category probabilities treat IDH, 1p/19q and TERT as independent",
        "caveat": WHO_CAVEAT,
    }
