"""Single source of truth for sequence order, label values, regions and marker names."""

from __future__ import annotations

import re
from collections.abc import Iterable

#: The order of MRI sequences everywhere in gliomics (BraTS 2024 names).
SEQUENCES: tuple[str, ...] = ("t1n", "t1c", "t2w", "t2f")
#: Human-readable names of the sequences, in the order of :data:`SEQUENCES`.
SEQUENCE_NAMES: dict[str, str] = {"t1n": "T1", "t1c": "T1ce", "t2w": "T2", "t2f": "FLAIR"}
#: Names seen for the four sequences (BraTS 2021/2024, nnU-Net channel_names, MSD, clinical exports), normalised
#: by :func:`normalise_name`; read through :func:`canonical_sequence`.
SEQUENCE_ALIASES: dict[str, str] = {
    **{s: s for s in SEQUENCES},
    **dict.fromkeys(("t1", "t1w", "t1native", "t1pre"), "t1n"),
    **dict.fromkeys(("t1ce", "t1gd", "t1post", "t1wce", "t1contrast", "t1cegd"), "t1c"),
    "t2": "t2w",
    **dict.fromkeys(("flair", "t2flair"), "t2f"),
}


def normalise_name(name: object) -> str:
    """A name as the alias tables hold it: lower case, letters and digits only, "tumour" spelt "tumor"."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower().replace("tumour", "tumor"))


def canonical_sequence(name: str) -> str | None:
    """Map a sequence name or alias (``"T1ce"``, ``"FLAIR"``, ``"t1gd"``…) to its BraTS 2024 name, or None."""
    return SEQUENCE_ALIASES.get(normalise_name(name))


def sequence_flags(names: Iterable[str]) -> tuple[bool, ...]:
    """One flag per sequence of :data:`SEQUENCES`: whether ``names`` (BraTS 2024 names) holds it."""
    names = set(names)
    return tuple(s in names for s in SEQUENCES)


def sequences_of(flags: Iterable[object]) -> list[str]:
    """The BraTS 2024 names of the flagged sequences (``flags``: one truth value per :data:`SEQUENCES` entry, e.g. a
    tensor's ``tolist()``)."""
    return [s for s, flag in zip(SEQUENCES, flags, strict=True) if flag]


#: Order in which the reference sequence is chosen: T1ce, or the first of the others that is present.
REFERENCE_ORDER: tuple[str, ...] = ("t1c", "t1n", "t2f", "t2w")
#: The reference sequence: registration target, the geometry outputs are written in, the series a DICOM-SEG refers
#: to, the slice benchmark's input, the first panel of a report.
REFERENCE_SEQUENCE: str = REFERENCE_ORDER[0]

#: BraTS 2024 label values.
LABELS: dict[str, int] = {"background": 0, "NETC": 1, "SNFH": 2, "ET": 3, "RC": 4}
LABEL_NAMES: dict[int, str] = {v: k for k, v in LABELS.items()}
#: The four tumour labels (without background), in label-value order.
TUMOUR_LABELS: tuple[str, ...] = ("NETC", "SNFH", "ET", "RC")
NUM_CLASSES: int = len(LABELS)
MAX_LABEL: int = max(LABELS.values())

#: Evaluation regions: each a set of label values.
REGIONS: dict[str, tuple[int, ...]] = {
    "ET": (3,),
    "NETC": (1,),
    "SNFH": (2,),
    "RC": (4,),
    "TC": (1, 3),
    "WT": (1, 2, 3),
}

#: BraTS 2021 labels converted to BraTS 2024 at the input boundary (1 NCR -> NETC, 2 ED -> SNFH, 4 ET -> ET).
BRATS2021_TO_2024: dict[int, int] = {0: 0, 1: 1, 2: 2, 4: 3}

#: BraTS overlay colours (RGB 0-1) per label value.
LABEL_COLOURS: dict[int, tuple[float, float, float]] = {
    1: (1.0, 0.0, 0.0),
    2: (0.0, 0.8, 0.0),
    3: (1.0, 1.0, 0.0),
    4: (0.0, 0.5, 1.0),
}

#: Molecular markers, 1 = altered (mutant or codeleted), 0 = not.
MARKERS: tuple[str, ...] = ("idh", "codel_1p19q", "tert")
MARKER_NAMES: dict[str, str] = {
    "idh": "IDH mutation",
    "codel_1p19q": "1p/19q codeletion",
    "tert": "TERT promoter mutation",
}

#: Optional clinical columns of a markers table.
CLINICAL_COLUMNS: tuple[str, ...] = ("age", "sex", "site")

#: Tolerance when checking that the sequences of a case share an affine (mm / direction cosines).
AFFINE_ATOL: float = 1e-3

#: A phantom cohort's table of exact Bayes posteriors, one row per case (``gliomics phantom`` writes it at the root).
PHANTOM_TRUTH_FILE: str = "phantom_truth.csv"

#: A run folder's model card: what the run was trained on and what its marker heads were validated on.
MODEL_CARD_FILE: str = "model_card.json"

#: The ingredients of the domain randomisation of training cases (:mod:`gliomics.data.randomisation`), in the order
#: they act.
RANDOMISATION_INGREDIENTS: tuple[str, ...] = ("oedema", "compartments", "contrast", "bias", "gamma", "slices",
                                             "motion", "ghosts", "ringing", "noise", "stripping")
#: The ingredients of a run that names none (``train.randomisation_ingredients: null``): the seven image ingredients
#: that every run had before the tumour and k-space ones existed, so that an older run's config keeps its recipe.
DEFAULT_RANDOMISATION_INGREDIENTS: tuple[str, ...] = ("contrast", "bias", "gamma", "slices", "ringing", "noise",
                                                     "stripping")
