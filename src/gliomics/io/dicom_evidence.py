"""What a DICOM series is: its kind and contrast weighed on the evidence of its headers (and, for the order rule,
its images). :mod:`gliomics.io.dicom_sequences` chooses one series per sequence from this evidence.

Each series gets a kind (``t1``, ``t2``, ``flair`` or ``other``) from three sources of evidence, each with a weight:

- **Image type** (weight 10): derived, reformatted (MPR), projection (MIP), localizer, diffusion maps and
  subtractions are never inputs.
- **Acquisition parameters** (weight 3): TR, TE, TI, ScanningSequence, flip angle and the b-value, read as a
  physicist would (a long TI with a long TR is FLAIR; short TR and TE is T1; long TR and TE is T2; echo-planar or a
  b-value is diffusion or perfusion).
- **Names** (weight 2; 4 for a distractor's name such as DWI or localizer): the series description and protocol
  name in the habits of the main vendors (GE ``Ax T1 +C``,
  ``FSPGR``, ``BRAVO``; Siemens ``t1_se_tra_KM``, ``t2_tirm_tra_dark-fluid``, ``*tir2d1_``; Philips ``T1W_SE``,
  ``T2W_FLAIR``, ``3D_TFE``; Canon ``T1_FLAIR``, ``FLAIR_3D``), and the sequence name (weight 1).

Contrast is weighed apart: the standard contrast attributes or a private element naming an agent (weight 3),
contrast or plain words in the names (weight 2), and, where these are silent, the acquisition order: a series
acquired after a known post-contrast series is post-contrast, and of two T1 series of one protocol (same name,
TR, TE, TI and flip angle) the later is post-contrast, checked against the images (vessels, dura and choroid plexus
brighter after contrast relative to the brain: :func:`enhancement_index`). The decision and its evidence are kept
per series (:class:`SeriesEvidence`) for ``dicom_sources.json`` and the console.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gliomics.io.dicom import Series

logger = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("t1", "t2", "flair", "other")
IMAGE_TYPE_WEIGHT, PARAMETER_WEIGHT, NAME_WEIGHT, SEQUENCE_NAME_WEIGHT = 10.0, 3.0, 2.0, 1.0
#: A name that says what a distractor is (DWI, localizer, SWI, perfusion, …) outweighs the parameters, which for a
#: spin-echo DWI or a gradient-echo localizer look like those of a T2 or a T1.
DISTRACTOR_NAME_WEIGHT = 4.0
CONTRAST_ATTRIBUTE_WEIGHT, CONTRAST_NAME_WEIGHT = 3.0, 2.0
#: Enhancement index (:func:`enhancement_index`) beyond which the images confirm, or contradict, the order rule.
ENHANCEMENT_THRESHOLD = 0.1
#: ImageType values that mark a series that is not an acquired image of one of the four sequences.
NOT_INPUT_IMAGE_TYPES = frozenset({"DERIVED", "SECONDARY", "LOCALIZER", "MPR", "PROJECTION IMAGE", "MIP", "MINIP",
                                   "REFORMATTED", "CSAMPR", "CSAPARALLEL", "ADC", "TRACEW", "FA", "EADC", "SUB",
                                   "SUBTRACTION", "CALC", "COLLAPSE", "MOCO", "PERFUSION", "DIFFUSION", "SCREEN SAVE"})

_WORD = r"(?<![a-z0-9])"
_END = r"(?![a-z0-9])"
_NAMES: dict[str, re.Pattern] = {
    "other": re.compile(
        rf"{_WORD}(localizer|localiser|loc|scout|survey|3 ?pl(ane)?|tri ?pilot|aahead|aascout|ref ?scan|calibration|"
        rf"asset|sense ?ref|coil|dwi|dti|diff\w*|adc|trace\w*|ep2d|resolve|b ?\d{{3,4}}|swi|swan|susc\w*|venobold|"
        rf"hemo\w*|t2 ?\*|t2 ?star|t2 ?ffe|t2 ?gre|t2 ?fl2d|perf\w*|dsc|dce|pwi|asl|pcasl|tof|mra|mrv|angio\w*|"
        rf"spectro\w*|svs|csi|bold|fmri|rest(ing)?|mip|minip|mpr|reformat\w*|sub|subtraction|screen ?save|"
        rf"phoenix\w*|dose ?report|tensor|colfa|fa){_END}"),
    "flair": re.compile(rf"flair|dark ?fluid|{_WORD}(tirm|tir|da ?fl|fluid ?att\w*){_END}"),
    "t1": re.compile(rf"{_WORD}(t1(w|wi)?|mprage|mp ?rage|mp2rage|spgr|fspgr|bravo|tfe|3d ?tfe|t1 ?ffe|vibe|"
                     rf"flash|fl3d|fl2d|bb ?t1|space ?t1|cube ?t1){_END}|{_WORD}t1(?![0-9])"),
    "t2": re.compile(rf"{_WORD}t2(w|wi)?(?![0-9*a-z])|{_WORD}(tse|fse|frfse|propeller|blade){_END}"),
}
_CONTRAST_WORDS = re.compile(
    rf"(\+ ?c{_END}|{_WORD}c ?\+|\+ ?(gd|gad\w*|km|mdc|kontrast\w*){_END}|{_WORD}(post|gd|gad|gado\w*|contrast|km|ce|"
    rf"t1 ?ce|t1 ?c|t1 ?gd|enhanced|mdc|pdc|kontrast\w*|postcontrast|post ?gad|post ?gd|c){_END})")
#: Words that say "without contrast"; a negation takes the contrast word after it ("pre-contrast", "w/o Gd",
#: "ohne KM"), which then says nothing of contrast on its own.
_PLAIN_WORDS = re.compile(
    rf"{_WORD}((pre|without|w ?o|non|no|sin|ohne) ?(contrast\w*|kontrast\w*|gad\w*|gd|km|mdc|c)|precontrast|pre|"
    rf"nativ\w*|without|w ?o|nc|plain|ohne){_END}")


def _text(*names: str) -> str:
    """Names lower-cased, with separators as spaces (``t1_se_tra_KM`` → ``t1 se tra km``)."""
    return " ".join(re.sub(r"[_\-./,()\[\]:;|]+", " ", n.lower()) for n in names if n).strip()


@dataclass
class SeriesEvidence:
    """What one series is, and why.

    Attributes:
        series: The series.
        kind: ``t1``, ``t2``, ``flair`` or ``other``.
        scores: Evidence weight per kind.
        contrast: True post-contrast, False before contrast, None unknown.
        contrast_score: Weight of the contrast evidence (positive: post).
        notes: The evidence, in words.
        chosen_as: The sequence it was chosen for, if any.
    """

    series: Series
    kind: str
    scores: dict[str, float]
    contrast: bool | None
    contrast_score: float
    notes: list[str] = field(default_factory=list)
    chosen_as: str | None = None

    @property
    def usable(self) -> bool:
        """The series forms one regular volume."""
        return self.series.problem is None

    @property
    def protocol_key(self) -> tuple:
        """Series of one protocol share this key: names (without contrast words) and acquisition parameters."""
        h = self.series.header
        rounded = tuple(None if v is None else round(v) for v in (h.tr, h.te, h.ti, h.flip))
        return (_CONTRAST_WORDS.sub("", _text(self.series.description)).strip(), rounded, tuple(h.scanning_sequence))

    def record(self) -> dict[str, Any]:
        """The decision and its evidence for ``dicom_sources.json``."""
        return {**self.series.summary(), **self.series.header.summary(), "kind": self.kind,
                "scores": {k: v for k, v in self.scores.items() if v}, "contrast": self.contrast,
                "evidence": self.notes, "chosen_as": self.chosen_as,
                "voxel_mm": [round(v, 3) for v in self.series.spacing], "axial": self.series.axial}


def parameter_kind(series: Series) -> tuple[str | None, str]:
    """The kind the acquisition parameters say, and why (None where they do not say)."""
    h = series.header
    tr, te, ti, flip, seq = h.tr, h.te, h.ti, h.flip, set(h.scanning_sequence)
    if "EP" in seq or (h.b_value or 0) > 0:
        return "other", "echo-planar or diffusion-weighted (ScanningSequence EP or a b-value)"
    if ti is not None and ti >= 1400 and (tr is None or tr >= 4000):
        return "flair", f"inversion recovery with a long TI ({ti:.0f} ms) and long TR: fluid suppressed"
    if ti is not None and 250 <= ti < 1400 and (te is None or te < 30):
        return "t1", f"inversion-prepared with TI {ti:.0f} ms and a short TE: T1-weighted"
    if tr is None or te is None:
        return None, "TR or TE missing"
    if "GR" in seq and "IR" not in seq:
        if te >= 12 and tr >= 100:
            return "other", f"gradient echo with TE {te:.0f} ms: T2*-weighted"
        if te < 12 and (flip or 0) >= 8 and (tr < 50 or (flip or 0) >= 50):
            return "t1", f"spoiled gradient echo, TR {tr:.0f} ms, TE {te:.1f} ms, flip {flip:.0f}°: T1-weighted"
        return None, "gradient echo of unclear weighting"
    if tr < 1200 and te < 35:
        return "t1", f"short TR ({tr:.0f} ms) and short TE ({te:.0f} ms): T1-weighted"
    if tr >= 1800 and te >= 70:
        return "t2", f"long TR ({tr:.0f} ms) and long TE ({te:.0f} ms): T2-weighted"
    if tr >= 1500 and te < 40:
        return "other", f"long TR ({tr:.0f} ms) and short TE ({te:.0f} ms): proton-density-weighted"
    return None, f"TR {tr:.0f} ms, TE {te:.0f} ms: no clear weighting"


def name_kind(description: str, protocol: str = "") -> str | None:
    """The kind the series description and protocol name say in the vendors' habits, or None."""
    text = _text(description, protocol)
    if not text:
        return None
    if _NAMES["other"].search(text):
        return "other"
    t1 = bool(_NAMES["t1"].search(text))
    if _NAMES["flair"].search(text):
        return "t1" if t1 else "flair"  # GE's and Siemens' T1 FLAIR / T1 TIRM are T1-weighted
    if t1:
        return "t1"
    return "t2" if _NAMES["t2"].search(text) else None


def _sequence_name_kind(sequence_name: str) -> str | None:
    """Siemens sequence names: ``*tir…`` inversion recovery, ``*tfl…`` MPRAGE, ``*ep…`` echo-planar."""
    name = sequence_name.lower().lstrip("*")
    if name.startswith(("ep", "re_", "swi")):
        return "other"
    if name.startswith("tfl"):
        return "t1"
    return "flair" if name.startswith("tir") else None


def _contrast_evidence(series: Series) -> tuple[float, list[str]]:
    h, score, notes = series.header, 0.0, []
    if h.contrast:
        score += CONTRAST_ATTRIBUTE_WEIGHT
        notes.append("contrast attributes: " + ", ".join(f"{k}={v}" for k, v in h.contrast.items()))
    if h.private_contrast:
        score += CONTRAST_ATTRIBUTE_WEIGHT
        notes.append(f"private element names a contrast agent ({h.private_contrast})")
    text = _text(series.description, h.protocol)
    plain = _PLAIN_WORDS.search(text)
    post = _CONTRAST_WORDS.search(_PLAIN_WORDS.sub(" ", text))  # "pre-contrast" says no contrast
    if post:
        score += CONTRAST_NAME_WEIGHT
        notes.append(f"name says post-contrast ({post.group(0).strip()!r})")
    elif plain:
        score -= CONTRAST_NAME_WEIGHT
        notes.append(f"name says without contrast ({plain.group(0).strip()!r})")
    return score, notes


def weigh_series(series: Series) -> SeriesEvidence:
    """The kind and contrast of one series from its own headers (the order rules come later)."""
    scores = dict.fromkeys(KINDS, 0.0)
    notes: list[str] = []
    marks = sorted(NOT_INPUT_IMAGE_TYPES.intersection(series.header.image_type))
    if marks:
        scores["other"] += IMAGE_TYPE_WEIGHT
        notes.append(f"ImageType {'/'.join(marks)}: not an acquired input")
    kind, why = parameter_kind(series)
    if kind is not None:
        scores[kind] += PARAMETER_WEIGHT
    notes.append(f"parameters: {why}")
    kind = name_kind(series.description, series.header.protocol)
    if kind is not None:
        scores[kind] += DISTRACTOR_NAME_WEIGHT if kind == "other" else NAME_WEIGHT
        notes.append(f"name {series.description!r} says {kind}")
    kind = _sequence_name_kind(series.header.sequence_name)
    if kind is not None:
        scores[kind] += SEQUENCE_NAME_WEIGHT
        notes.append(f"sequence name {series.header.sequence_name!r} says {kind}")
    best = max(scores.values())
    leaders = [k for k in KINDS if scores[k] == best]
    decided = leaders[0] if best > 0 and len(leaders) == 1 else "other"
    if best > 0 and len(leaders) > 1:
        notes.append(f"evidence split between {' and '.join(leaders)}: not used")
    if series.problem:
        notes.append(f"unusable: {series.problem}")
    contrast_score, contrast_notes = _contrast_evidence(series)
    contrast = True if contrast_score > 0 else False if contrast_score < 0 else None
    return SeriesEvidence(series, decided, scores, contrast, contrast_score, notes + contrast_notes)


def time_key(e: SeriesEvidence) -> tuple[float, float]:
    """Sort key of acquisition: the acquisition time, then the series number."""
    t = e.series.header.acquired_s
    return (t if t is not None else math.inf, e.series.number if e.series.number is not None else math.inf)


def when(e: SeriesEvidence) -> str:
    """When a series was acquired, for messages (its number where the headers carry no time)."""
    return e.series.header.acquired or f"number {e.series.number}"


def apply_order_rules(evidence: list[SeriesEvidence],
                      enhancement: Callable[[Series, Series], float | None] | None = None) -> None:
    """Settle unknown contrast by acquisition order (in place).

    Of two or more T1 series of one protocol whose headers and names say nothing of contrast, the first is taken
    as pre-contrast and the later ones as post-contrast, where ``enhancement(earlier, later)`` (the images) does not
    contradict it; a contradiction leaves them unknown. Then every series acquired after the first post-contrast
    series is post-contrast.
    """
    groups: dict[tuple, list[SeriesEvidence]] = {}
    for e in evidence:
        if e.kind == "t1" and e.usable and e.contrast is None:
            groups.setdefault(e.protocol_key, []).append(e)
    for members in groups.values():
        if len(members) < 2:
            continue
        members.sort(key=time_key)
        first = members[0]
        for later in members[1:]:
            index = enhancement(first.series, later.series) if enhancement is not None else None
            verdict = _order_verdict(first, later, index)
            if verdict is None:
                continue
            later.contrast, first.contrast = True, False
            later.notes.append(verdict)
            first.notes.append(f"acquired before {later.series.label} of the same protocol: taken as pre-contrast")
            logger.info("%s acquired after %s with the same protocol: taken as post-contrast (%s)",
                        later.series.label, first.series.label, verdict)
    posts = [e for e in evidence if e.contrast and e.series.header.acquired_s is not None]
    if not posts:
        return
    first_post = min(posts, key=time_key)
    for e in evidence:
        if e.contrast is None and e.series.header.acquired_s is not None and time_key(e) > time_key(first_post):
            e.contrast = True
            e.notes.append(f"acquired after the post-contrast {first_post.series.label} ({when(e)})")


def _order_verdict(first: SeriesEvidence, later: SeriesEvidence, index: float | None) -> str | None:
    order = (f"acquired after {first.series.label} of the same protocol ({when(later)} after {when(first)}): "
             "post-contrast")
    if index is None:
        return f"{order}; the images could not be compared"
    if index >= ENHANCEMENT_THRESHOLD:
        return f"{order}; the images agree (enhancement index {index:+.2f})"
    if index > -ENHANCEMENT_THRESHOLD:
        return f"{order}; the images are inconclusive (enhancement index {index:+.2f})"
    message = (f"acquired after {first.series.label} of the same protocol, but the images show no enhancement "
               f"(index {index:+.2f}): contrast unknown")
    later.notes.append(message)
    logger.warning("%s: %s", later.series.label, message)
    return None


def enhancement_index(earlier, later) -> float | None:
    """How much brighter the bright tail of ``later`` is than that of ``earlier`` (SimpleITK images of one session).

    ``later`` is resampled onto ``earlier``'s grid in scanner coordinates; each is divided by its median inside the
    head (Otsu) where both have data, and the index is the sum of the 99.5th and 0.5th percentiles of the
    difference: noise and small motion give a symmetric difference (index near 0), enhancing vessels, dura and
    choroid plexus a long bright tail (index > 0). None where the two barely overlap.
    """
    import SimpleITK as sitk

    earlier = sitk.Cast(earlier, sitk.sitkFloat32)
    moved = sitk.Resample(sitk.Cast(later, sitk.sitkFloat32), earlier, sitk.Transform(), sitk.sitkLinear, -1.0)
    a = sitk.GetArrayFromImage(earlier)
    b = sitk.GetArrayFromImage(moved)
    head = sitk.GetArrayFromImage(sitk.OtsuThreshold(earlier, 0, 1, 128)) > 0
    both = head & (b >= 0)
    if both.sum() < 1000 or both.sum() < 0.2 * head.sum():
        return None
    a_med, b_med = float(np.median(a[both])), float(np.median(b[both]))
    if a_med <= 0 or b_med <= 0:
        return None
    difference = b[both] / b_med - a[both] / a_med
    low, high = np.percentile(difference, [0.5, 99.5])
    return float(high + low)
