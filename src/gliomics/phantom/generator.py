"""Generate a phantom cohort in the BraTS 2024 layout with markers.csv and phantom_truth.csv."""

from __future__ import annotations

import csv
import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from gliomics.constants import LABEL_NAMES, MARKERS, PHANTOM_TRUTH_FILE, SEQUENCES, TUMOUR_LABELS
from gliomics.errors import OutputError
from gliomics.io.atomic import atomic_path, write_text_atomic
from gliomics.phantom.anatomy import grid_affine, grid_shape, load_template, random_anatomy_transform, sample_anatomy
from gliomics.phantom.latents import bayes_posterior, sample_latents
from gliomics.phantom.render import render_case
from gliomics.phantom.sites import Site, apply_site, make_site, site_name
from gliomics.provenance import versions

logger = logging.getLogger(__name__)

MARKERS_FILE = "markers.csv"
TRUTH_FILE = PHANTOM_TRUTH_FILE
SUMMARY_FILE = "phantom_summary.json"


#: What a case's files give to training, by kind: ``full`` (subregions and markers, as UCSF-PDGM), ``seg``
#: (subregions only, as BraTS), ``wt`` (a whole-tumour mask and markers, as EGD), ``markers`` (markers only, as TCGA).
SUPERVISION_KINDS: tuple[str, ...] = ("full", "seg", "wt", "markers")
#: Folder of the segmentations withheld from the ``wt`` and ``markers`` cases: ``withheld_labels/<case>/<case>-seg``.
WITHHELD_DIR = "withheld_labels"


def parse_supervision(text: str) -> tuple[tuple[str, float], ...]:
    """``"full=0.3,seg=0.2,wt=0.2,markers=0.3"`` as ``(kind, fraction)`` pairs; kinds left out get 0.

    Raises:
        ValueError: an unknown kind, a fraction outside [0, 1], or fractions that do not sum to 1.
    """
    pairs: dict[str, float] = {}
    for item in text.split(","):
        kind, sep, value = item.strip().partition("=")
        kind = kind.strip().lower()
        if not sep or kind not in SUPERVISION_KINDS:
            raise ValueError(f"expected KIND=FRACTION with KIND one of {', '.join(SUPERVISION_KINDS)}, got {item!r}")
        try:
            fraction = float(value)
        except ValueError:
            raise ValueError(f"{item!r}: the fraction is not a number") from None
        if not 0.0 <= fraction <= 1.0 or kind in pairs:
            raise ValueError(f"{item!r}: each kind once, with a fraction in [0, 1]")
        pairs[kind] = fraction
    if abs(sum(pairs.values()) - 1.0) > 1e-6:
        raise ValueError(f"the fractions sum to {sum(pairs.values()):g}, not 1")
    return tuple((k, pairs.get(k, 0.0)) for k in SUPERVISION_KINDS)


@dataclass(frozen=True)
class PhantomSettings:
    """Everything that determines a cohort's voxels, and which labels its files keep.

    ``case_start`` is the index of the first case: a cohort of ``n`` cases from ``case_start = k`` holds cases
    ``k … k + n - 1`` of the same seed, so two cohorts extend each other without sharing a case. ``supervision``
    gives the fraction of cases of each kind of :data:`SUPERVISION_KINDS` (all ``full`` by default); the counts are
    exact (largest remainder) and the cases are drawn by a permutation seeded by ``seed``.
    """

    cases: int
    spacing: float = 2.0
    sites: int = 3
    seed: int = 0
    site_start: int = 0
    case_start: int = 0
    supervision: tuple[tuple[str, float], ...] = (("full", 1.0),)

    def __post_init__(self) -> None:
        if self.cases < 1:
            raise ValueError(f"cases must be at least 1, got {self.cases}")
        if self.case_start < 0:
            raise ValueError(f"case_start must be non-negative, got {self.case_start}")
        kinds = dict(self.supervision)
        if set(kinds) - set(SUPERVISION_KINDS) or abs(sum(kinds.values()) - 1.0) > 1e-6:
            raise ValueError(f"supervision must give fractions of {SUPERVISION_KINDS} summing to 1, "
                             f"got {self.supervision}")
        if not 0.5 <= self.spacing <= 4.0:
            raise ValueError(f"spacing must lie in 0.5–4 mm, got {self.spacing}")
        if self.sites < 1:
            raise ValueError(f"sites must be at least 1, got {self.sites}")
        if self.site_start < 0:
            raise ValueError(f"site_start must be non-negative, got {self.site_start}")

    def site_names(self) -> list[str]:
        return [site_name(self.site_start + k) for k in range(self.sites)]

    def supervision_kinds(self) -> list[str]:
        """The kind of each case, in case order: exactly ``round``-ed fractions (largest remainder), shuffled."""
        fractions = dict(self.supervision)
        raw = np.array([fractions.get(k, 0.0) * self.cases for k in SUPERVISION_KINDS])
        counts = np.floor(raw).astype(int)
        for k in np.argsort(-(raw - counts), kind="stable")[: self.cases - counts.sum()]:
            counts[k] += 1
        kinds = np.repeat(np.array(SUPERVISION_KINDS), counts)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.case_start, 104729]))
        return [str(k) for k in rng.permutation(kinds)]


def case_id(site: str, index: int, postop: int) -> str:
    """``PHANTOM-<SITE>-<NNNNN>-<000|100>``; 100 marks a post-operative case."""
    return f"PHANTOM-{site}-{index + 1:05d}-{'100' if postop else '000'}"


def generate_case(settings: PhantomSettings, index: int, site: Site) -> tuple[str, dict, dict[str, np.ndarray]]:
    """Draw and render case ``index``; returns its id, its truth row and its arrays (sequences + ``seg``)."""
    rng = np.random.default_rng(np.random.SeedSequence([settings.seed, index]))
    lat = sample_latents(rng)
    template = load_template()
    transform = random_anatomy_transform(rng, template.brain_centre_mm)
    anatomy = sample_anatomy(settings.spacing, transform)
    rendered = render_case(lat, anatomy, settings.spacing, rng)
    affine = grid_affine(settings.spacing)
    images = apply_site(rendered.images, anatomy.brain, affine, site, rng)
    cid = case_id(site.name, index, lat.postop)

    voxel_ml = settings.spacing**3 / 1000.0
    row = {"case_id": cid, "site": site.name, **{f"true_{m}": getattr(lat, m) for m in MARKERS},
           **{f"observed_{m}": lat.observed[m] for m in MARKERS}, **lat.to_dict()}
    for m in MARKERS:
        row.pop(m)
    row.update({f"posterior_{m}": round(p, 6) for m, p in bayes_posterior(lat).items()})
    row.update({"centre_x_mm": rendered.centre_mni_mm[0], "centre_y_mm": rendered.centre_mni_mm[1],
                "centre_z_mm": rendered.centre_mni_mm[2], "resected_fraction": round(rendered.resected_fraction, 4)})
    counts = np.bincount(rendered.seg.ravel(), minlength=len(LABEL_NAMES))
    for value, name in LABEL_NAMES.items():
        if name in TUMOUR_LABELS:
            row[f"volume_{name}_ml"] = round(float(counts[value]) * voxel_ml, 4)
    arrays = {s: images[k] for k, s in enumerate(SEQUENCES)}
    arrays["seg"] = rendered.seg
    return cid, row, arrays


def _write_case(out: Path, cid: str, arrays: dict[str, np.ndarray], affine: np.ndarray, kind: str = "full") -> None:
    """Write one case folder atomically (into a hidden temporary folder, then rename) with the labels of its kind:
    the segmentation for ``full`` and ``seg``, a whole-tumour mask ``<case>-wt`` for ``wt``, neither for
    ``markers``. A segmentation kept from training goes to :data:`WITHHELD_DIR`."""
    from gliomics.io.layouts import WT_MASK_TAG
    from gliomics.io.nifti import save_image

    arrays = dict(arrays)
    seg = arrays.pop("seg")
    labels = {"seg": seg} if kind in ("full", "seg") else {WT_MASK_TAG: (seg > 0)} if kind == "wt" else {}
    with atomic_path(out / cid, folder=True) as tmp:
        for key, arr in arrays.items():
            save_image(arr, affine, tmp / f"{cid}-{key}.nii.gz", dtype=np.float32)
        for key, arr in labels.items():
            save_image(arr, affine, tmp / f"{cid}-{key}.nii.gz", dtype=np.uint8)
    if "seg" not in labels:
        (out / WITHHELD_DIR).mkdir(exist_ok=True)
        with atomic_path(out / WITHHELD_DIR / cid, folder=True) as tmp:
            save_image(seg, affine, tmp / f"{cid}-seg.nii.gz", dtype=np.uint8)


def _case_job(args: tuple[PhantomSettings, int, Site, str, str]) -> dict:
    settings, index, site, out, kind = args
    cid, row, arrays = generate_case(settings, index, site)
    _write_case(Path(out), cid, arrays, grid_affine(settings.spacing), kind)
    return {**row, "supervision": kind}


def _write_csv_atomic(path: Path, rows: list[dict], columns: list[str]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def bayes_auc(rows: list[dict], *, against: str = "observed") -> dict[str, float | None]:
    """AUC of the exact Bayes posteriors against the observed (noisy) or true labels: the phantom's ceiling."""
    from sklearn.metrics import roc_auc_score

    out: dict[str, float | None] = {}
    for m in MARKERS:
        y = np.array([int(r[f"{against}_{m}"]) for r in rows])
        p = np.array([float(r[f"posterior_{m}"]) for r in rows])
        out[m] = round(float(roc_auc_score(y, p)), 4) if 0 < y.sum() < len(y) else None
    return out


def generate_cohort(out: Path | str, settings: PhantomSettings, *, workers: int = 1, progress: bool = True) -> dict:
    """Generate ``settings.cases`` cases into ``out``; returns the cohort summary (also written as JSON).

    Case ``i`` depends only on (seed, i, spacing, its site), so any number of workers gives identical voxels.
    """
    from tqdm import tqdm

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: output path exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out}: cannot create output folder ({exc.strerror})") from exc
    if not os.access(out, os.W_OK):
        raise OutputError(f"{out}: output folder is not writable")
    names = settings.site_names()
    sites = {n: make_site(n, settings.seed) for n in names}
    kinds = settings.supervision_kinds()
    jobs = [(settings, settings.case_start + k, sites[names[(settings.case_start + k) % len(names)]], str(out),
             kinds[k]) for k in range(settings.cases)]
    load_template()  # load once before forking so workers share it
    bar = tqdm(total=len(jobs), desc="phantom", unit="case", disable=not progress)
    rows: list[dict] = []
    try:
        if workers > 1:
            with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("fork")) as pool:
                for row in pool.map(_case_job, jobs):
                    rows.append(row)
                    bar.update()
        else:
            for job in jobs:
                rows.append(_case_job(job))
                bar.update()
    finally:
        bar.close()

    # a "seg" case (BraTS-like) has no marker labels; the truth file keeps them
    marker_rows = [{"case_id": r["case_id"], "site": r["site"], "age": r["age"], "sex": r["sex"],
                    **{m: "" if r["supervision"] == "seg" else r[f"observed_{m}"] for m in MARKERS}} for r in rows]
    _write_csv_atomic(out / MARKERS_FILE, marker_rows, ["case_id", "site", "age", "sex", *MARKERS])
    _write_csv_atomic(out / TRUTH_FILE, rows, list(rows[0].keys()))
    summary = {
        "cases": settings.cases, "spacing_mm": settings.spacing, "seed": settings.seed, "sites": names,
        "case_start": settings.case_start,
        "supervision": {k: kinds.count(k) for k in SUPERVISION_KINDS if k in kinds},
        "grid": list(grid_shape(settings.spacing)),
        "bayes_auc_observed": bayes_auc(rows, against="observed"),
        "bayes_auc_true": bayes_auc(rows, against="true"),
        "site_parameters": [sites[n].describe() for n in names],
        "versions": versions(),
    }
    write_text_atomic(out / SUMMARY_FILE, json.dumps(summary, indent=2))
    logger.info("wrote %d phantom cases to %s", settings.cases, out)
    return summary
