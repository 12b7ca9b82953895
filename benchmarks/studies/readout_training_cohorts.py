"""What the marker readout gains from a larger or more varied training cohort: more cases, or more scanner sites.

Usage::

    .venv/bin/python benchmarks/studies/readout_training_cohorts.py --work /tmp/readout_cohorts [--seeds 1 3 5]

For each training seed S it draws three training cohorts with ``gliomics phantom --spacing 3 --seed S``: the demo's
(96 cases, 6 sites), the same number of cases spread over 18 sites, and three times the cases on the demo's 6 sites
(288). The phantom's latents do not depend on the site, so the first two differ only in how many scanners render the
same kind of tumours. The tumour features (:mod:`gliomics.inference.tumour_features`) are measured on the
*reference* segmentations (no network: what a readout could learn from a perfect segmentation), the readout
(:func:`~gliomics.inference.marker_readout.fit_marker_readout`) is fitted on every case of the cohort, and its AUC
is taken on the unseen sites of ``bench_recipe.py``'s panel (G of seed 2, G of seed 4, H of seed 7 at 2 mm).
A fourth row pools the three 96-case, 6-site cohorts (288 cases over 18 sites: the three seeds' sites differ).

Prints a markdown table: mean ± sd and the minimum of each marker's AUC over the (seed, site) pairs; then, per
site, the IDH AUC of the spec's Bayes posterior and of the posterior with necrosis unseen on the post-operative cases
(:func:`gliomics.phantom.latents.bayes_posterior` with ``unobserved``): what an image model could reach at most if the
resection leaves nothing of the necrosis to see.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tools")]  # the other studies, and results_md
from bench_recipe import PANEL, PANEL_CASES, phantom_cmd  # noqa: E402
from readout_diagnostics import _auc, measure  # noqa: E402

#: Training cohorts: name -> (cases, sites).
COHORTS = {"96 cases, 6 sites (the demo's)": (96, 6), "96 cases, 18 sites": (96, 18),
           "288 cases, 6 sites": (288, 6)}


def _cohort(work: Path, cases: int, sites: int, seed: int, spacing: float = 3.0, start: int = 0) -> Path:
    out = work / f"c{cases}_sites{sites}_start{start}_sp{spacing:g}_s{seed}"
    if not (out / "markers.csv").is_file():
        subprocess.run([*phantom_cmd(out, cases=cases, spacing=spacing, sites=sites, seed=seed, site_start=start),
                        "--no-progress"], check=True, stdout=subprocess.DEVNULL)
    return out


def _features(cohort: Path) -> dict:
    cache = cohort.with_suffix(".npz")
    if not cache.is_file():
        np.savez(cache, **measure(cohort, 3.0))
    return dict(np.load(cache))


def _latent_design(d: dict) -> np.ndarray:
    """The latents as a linear readout would best take them (the Beta densities' log terms, the log-normal oedema
    ratio's log), necrosis zero on the post-operative cases (``z``: the columns of ``readout_diagnostics.LATENTS``)."""
    z = d["z"]
    e, r = (np.clip(z[:, k], 1e-3, 1 - 1e-3) for k in (0, 4))
    return np.column_stack([e, np.log(e), np.log1p(-e), z[:, 1] * (1 - d["postop"]), d["postop"], z[:, 2], z[:, 3],
                            np.log(r), np.log1p(-r), z[:, 5], z[:, 6]])


def _latent_readout(train: dict):
    """Cross-validated L2 logistic regression of IDH on :func:`_latent_design`; returns its probability function."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    known = ~np.isnan(train["y"][:, 0])
    model = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=list(np.logspace(-3, 1, 9)), cv=5,
                                                                 scoring="neg_log_loss", max_iter=5000))
    model.fit(_latent_design(train)[known], train["y"][known, 0].astype(int))
    return lambda d: model.predict_proba(_latent_design(d))[:, 1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 3, 5])
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    from gliomics.constants import MARKERS
    from gliomics.inference.marker_readout import fit_marker_readout

    args.work.mkdir(parents=True, exist_ok=True)
    test = {name: _features(_cohort(args.work, PANEL_CASES, 1, seed, spacing, start))
            for name, (seed, start, spacing) in PANEL.items()}
    rows: dict[str, list[dict]] = {}
    for label, (cases, sites) in COHORTS.items():
        rows[label] = [_features(_cohort(args.work, cases, sites, s)) for s in args.seeds]
    demo = rows[next(iter(COHORTS))]
    rows[f"{len(demo) * 96} cases, the {len(demo)} demo cohorts pooled ({6 * len(demo)} sites)"] = [
        {k: np.concatenate([d[k] for d in demo]) for k in ("x", "y")}]
    print("| training cohort (reference segmentations) | fits | "
          + " | ".join(f"{m} AUC: mean ± sd (min)" for m in MARKERS) + " |")
    print("|---|---|" + "---|" * len(MARKERS))
    for label, fits in rows.items():
        aucs = {m: [] for m in MARKERS}
        for tr in fits:
            readout = fit_marker_readout(tr["x"], tr["y"])
            for te in test.values():
                probs = [readout.probabilities(f) for f in te["x"]]
                for k, m in enumerate(MARKERS):
                    aucs[m].append(_auc(te["y"][:, k], np.array([p[m] for p in probs])))
        cells = [f"{np.mean(v):.3f} ± {np.std(v, ddof=1):.3f} ({np.min(v):.3f})" for v in aucs.values()]
        print(f"| {label} | {len(fits)} × {len(test)} sites | " + " | ".join(cells) + " |", flush=True)
    # the readout's form given perfect measurements: a logistic regression on the true latents (necrosis unseen after
    # resection), fitted on each 288-case cohort
    oracle = []
    for tr in rows["288 cases, 6 sites"]:
        fit = _latent_readout(tr)
        oracle += [_auc(te["y"][:, 0], fit(te)) for te in test.values()]
    print(f"\nIDH of a logistic regression on the true latents, necrosis unseen after resection (288-case cohorts): "
          f"{np.mean(oracle):.3f} ± {np.std(oracle, ddof=1):.3f} (min {np.min(oracle):.3f})")
    # what an image model could reach at most if necrosis cannot be seen once resected: the Bayes posterior of IDH
    # with necrosis left out on the post-operative cases
    bound = {name: _auc(te["y"][:, 0], np.where(te["postop"] == 1, te["bayes_idh_no_necrosis"], te["bayes_idh"]))
             for name, te in test.items()}
    spec = {name: _auc(te["y"][:, 0], te["bayes_idh"]) for name, te in test.items()}
    print("\nIDH Bayes posterior per site, the spec's / with necrosis unseen after resection: "
          + ", ".join(f"{n} {spec[n]:.3f} / {bound[n]:.3f}" for n in test)
          + f"; mean {np.mean(list(spec.values())):.3f} / {np.mean(list(bound.values())):.3f} "
          f"± {np.std(list(bound.values()), ddof=1):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
