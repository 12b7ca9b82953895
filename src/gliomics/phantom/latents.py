"""Marker priors, the phenotype latents drawn given the marker group, and the exact Bayes posterior of the markers
given the latents.

Nothing here renders voxels, so the distributions can be checked on large samples quickly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from gliomics.constants import MARKERS

GROUPS: tuple[str, ...] = ("wt_tm", "wt_tw", "astro", "oligo")
LOBES: tuple[str, ...] = ("frontal", "temporal", "parietal", "deep")
#: Lobe centres in MNI mm (right hemisphere; x is mirrored for left-sided tumours).
LOBE_CENTRES_MM: dict[str, tuple[float, float, float]] = {
    "frontal": (30.0, 35.0, 25.0),
    "temporal": (45.0, -15.0, -15.0),
    "parietal": (30.0, -50.0, 40.0),
    "deep": (20.0, 0.0, 5.0),
}

P_IDH = 0.40
P_CODEL_GIVEN_IDH = 0.35
P_TERT = {"wt": 0.70, "codel": 0.95, "noncodel": 0.10}
LABEL_FLIP = 0.02

#: Per-group latent distributions; each latent is drawn independently given the group.
LOBE_P = {"wt_tm": (.25, .35, .25, .15), "wt_tw": (.25, .35, .25, .15), "astro": (.45, .25, .15, .15),
          "oligo": (.60, .15, .15, .10)}
ENHANCING_BETA = {"wt_tm": (6, 4), "wt_tw": (4, 5), "astro": (2, 5), "oligo": (3, 5)}
P_NECROSIS = {"wt_tm": .85, "wt_tw": .55, "astro": .20, "oligo": .25}
P_MISMATCH = {"wt_tm": .03, "wt_tw": .03, "astro": .35, "oligo": .05}
P_CALCIFICATION = {"wt_tm": .05, "wt_tw": .05, "astro": .10, "oligo": .45}
MARGIN_BETA = {"wt_tm": (4, 4), "wt_tw": (4, 4), "astro": (5, 3), "oligo": (3, 5)}
EDEMA_MEDIAN = {"wt_tm": 2.0, "wt_tw": 1.8, "astro": 1.3, "oligo": 1.2}
EDEMA_SIGMA = 0.5
AGE_MEAN = {"wt_tm": 63, "wt_tw": 57, "astro": 38, "oligo": 46}
AGE_SD = 12.0
P_MALE = 0.58
P_POSTOP = 0.5
CORE_RADIUS_MM = (8.0, 25.0)


@dataclass
class CaseLatents:
    """Everything drawn for one phantom case before rendering."""

    idh: int
    codel_1p19q: int
    tert: int
    group: str
    lobe: str
    enhancing_fraction: float
    necrosis: int
    mismatch: int
    calcification: int
    margin_sharpness: float
    edema_ratio: float
    age: float
    sex: str
    side: str
    core_radius_mm: float
    postop: int
    observed: dict[str, int]

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("observed")
        return d


def group_of(idh: int, codel: int, tert: int) -> str:
    """The phenotype group of a marker combination."""
    if idh:
        return "oligo" if codel else "astro"
    return "wt_tm" if tert else "wt_tw"


def sample_latents(rng: np.random.Generator) -> CaseLatents:
    """Draw markers, the phenotype latents given the group, and the observed (noisy) labels."""
    idh = int(rng.random() < P_IDH)
    codel = int(idh and rng.random() < P_CODEL_GIVEN_IDH)
    p_tert = P_TERT["wt"] if not idh else (P_TERT["codel"] if codel else P_TERT["noncodel"])
    tert = int(rng.random() < p_tert)
    g = group_of(idh, codel, tert)
    lobe = LOBES[int(rng.choice(len(LOBES), p=LOBE_P[g]))]
    e = float(rng.beta(*ENHANCING_BETA[g]))
    necrosis = int(rng.random() < P_NECROSIS[g])
    mismatch = int(rng.random() < P_MISMATCH[g])
    calc = int(rng.random() < P_CALCIFICATION[g])
    r = float(rng.beta(*MARGIN_BETA[g]))
    edema = float(rng.lognormal(np.log(EDEMA_MEDIAN[g]), EDEMA_SIGMA))
    age = float(np.clip(rng.normal(AGE_MEAN[g], AGE_SD), 18, 85))
    side = "L" if rng.random() < 0.5 else "R"
    radius = float(rng.uniform(*CORE_RADIUS_MM))
    postop = int(rng.random() < P_POSTOP)
    sex = "M" if rng.random() < P_MALE else "F"
    truth = {"idh": idh, "codel_1p19q": codel, "tert": tert}
    observed = {m: int(v ^ (rng.random() < LABEL_FLIP)) for m, v in truth.items()}
    return CaseLatents(idh, codel, tert, g, lobe, e, necrosis, mismatch, calc, r, edema, round(age, 1), sex, side,
                       radius, postop, observed)


def _joint_states() -> list[tuple[dict[str, int], str, float]]:
    """All (markers, group, prior) combinations with non-zero prior probability."""
    states = []
    for idh in (0, 1):
        for codel in ((0, 1) if idh else (0,)):
            p_codel = (P_CODEL_GIVEN_IDH if codel else 1 - P_CODEL_GIVEN_IDH) if idh else 1.0
            p_t = P_TERT["wt"] if not idh else (P_TERT["codel"] if codel else P_TERT["noncodel"])
            for tert in (0, 1):
                prior = (P_IDH if idh else 1 - P_IDH) * p_codel * (p_t if tert else 1 - p_t)
                states.append(({"idh": idh, "codel_1p19q": codel, "tert": tert}, group_of(idh, codel, tert), prior))
    return states


#: The image latents of :func:`image_likelihood`, by the names of ``phantom_truth.csv``.
IMAGE_LATENTS: tuple[str, ...] = ("lobe", "enhancing_fraction", "necrosis", "mismatch", "calcification",
                                  "margin_sharpness", "edema_ratio")


def image_likelihood(lat: CaseLatents | dict, group: str, unobserved: Sequence[str] = ()) -> float:
    """p(image latents | group): lobe, e, necrosis, mismatch, calcification, r, edema ratio (age excluded).

    ``unobserved`` names latents to leave out (marginalised: their factor is 1), e.g. what a resection took away."""
    d = lat if isinstance(lat, dict) else lat.to_dict()
    unknown = set(unobserved) - set(IMAGE_LATENTS)
    if unknown:
        raise ValueError(f"unknown latents {sorted(unknown)}; expected some of {list(IMAGE_LATENTS)}")

    def bern(p: float, x: int) -> float:
        return p if x else 1 - p

    factors = {
        "lobe": lambda: LOBE_P[group][LOBES.index(d["lobe"])],
        "enhancing_fraction": lambda: stats.beta.pdf(d["enhancing_fraction"], *ENHANCING_BETA[group]),
        "necrosis": lambda: bern(P_NECROSIS[group], d["necrosis"]),
        "mismatch": lambda: bern(P_MISMATCH[group], d["mismatch"]),
        "calcification": lambda: bern(P_CALCIFICATION[group], d["calcification"]),
        "margin_sharpness": lambda: stats.beta.pdf(d["margin_sharpness"], *MARGIN_BETA[group]),
        "edema_ratio": lambda: stats.lognorm.pdf(d["edema_ratio"], s=EDEMA_SIGMA, scale=EDEMA_MEDIAN[group]),
    }
    return float(np.prod([f() for name, f in factors.items() if name not in unobserved]))


def bayes_posterior(lat: CaseLatents | dict, unobserved: Sequence[str] = ()) -> dict[str, float]:
    """Exact P(marker = 1 | image latents): prior(group, TERT) × Π p(latent | group), normalised; the latents of
    ``unobserved`` left out (the posterior of an observer who cannot see them)."""
    lik = {g: image_likelihood(lat, g, unobserved) for g in GROUPS}
    weights = [(m, prior * lik[g]) for m, g, prior in _joint_states()]
    total = sum(w for _, w in weights)
    return {k: float(sum(w for m, w in weights if m[k]) / total) for k in MARKERS}
