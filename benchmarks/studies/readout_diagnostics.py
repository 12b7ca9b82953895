"""Where the marker readout loses against the Bayes bound: segmentation, features or fit.

Usage::

    .venv/bin/python benchmarks/studies/readout_diagnostics.py --train COHORT [COHORT ...] --test COHORT [COHORT ...]
        [--spacing 3]

Phantom cohorts only (their ``phantom_truth.csv`` holds every latent). The tumour features of
:mod:`gliomics.inference.tumour_features` are measured on the *reference* segmentations, preprocessed as a run
with working spacing ``--spacing`` would, so that nothing depends on a network. It prints:

1. the readout (:func:`~gliomics.inference.marker_readout.fit_marker_readout`) fitted on each training cohort, its
   AUC on each test cohort (compare with a run's readout on predicted segmentations: if they agree, the segmentation
   is not what limits the markers);
2. the same with other penalties of scikit-learn's ``LogisticRegressionCV`` (is the fit the limit?);
3. how well the features read each image latent of the phantom (R² or AUC on the test cohorts, a ridge or logistic
   regression fitted on the training cohorts);
4. the IDH AUC of a logistic regression on the *true* latents, then with one latent at a time replaced by its
   estimate from the features: the latent whose estimate costs most is where better features would pay;
5. the readout's IDH AUC and the Bayes posterior's, on the pre-operative and the post-operative test cases apart
   (the resection removes part of the core, and with it what some latents looked like), beside the posterior of an
   observer who cannot see necrosis (:func:`gliomics.phantom.latents.bayes_posterior` with ``unobserved``).

Case ids repeat across cohorts of one site letter drawn under other seeds, so every table is kept per cohort.
"""

from __future__ import annotations

import argparse
import csv
import warnings
from pathlib import Path

import numpy as np

LATENTS = ("enhancing_fraction", "necrosis", "mismatch", "calcification", "margin_sharpness", "edema_ratio",
           "frontal")


def measure(cohort: Path, spacing: float) -> dict:
    from gliomics.constants import MARKERS
    from gliomics.data.transforms import inference_transforms
    from gliomics.inference.tumour_features import tumour_features
    from gliomics.io import discover_cases, read_markers, voxel_spacing

    transform = inference_transforms(spacing=[spacing] * 3, load_seg=True, divisible=16)
    table = read_markers(cohort / "markers.csv")
    truth = {r["case_id"]: r for r in csv.DictReader(open(cohort / "phantom_truth.csv", newline=""))}
    from gliomics.phantom.latents import IMAGE_LATENTS, bayes_posterior

    x, y, z, post, bayes, blind = [], [], [], [], [], []
    for case in discover_cases(cohort):
        d = transform({"case": case})
        labels = np.asarray(d["label"][0]).astype(np.uint8)
        x.append(tumour_features(np.asarray(d["image"]), labels, float(np.prod(voxel_spacing(d["image"].affine)))))
        rec = table[case.case_id]
        y.append([np.nan if rec.label(m) is None else rec.label(m) for m in MARKERS])
        t = truth[case.case_id]
        z.append([float(t["lobe"] == "frontal") if k == "frontal" else
                  np.log(float(t[k])) if k == "edema_ratio" else float(t[k]) for k in LATENTS])
        post.append(int(t["postop"]))
        bayes.append(float(t["posterior_idh"]))
        latents = {k: t[k] if k == "lobe" else float(t[k]) for k in IMAGE_LATENTS}
        blind.append(bayes_posterior(latents, unobserved=("necrosis",))["idh"])
    return {"x": np.array(x), "y": np.array(y, dtype=float), "z": np.array(z), "postop": np.array(post),
            "bayes_idh": np.array(bayes), "bayes_idh_no_necrosis": np.array(blind)}


def _auc(y, p) -> float:
    from sklearn.metrics import roc_auc_score

    ok = ~np.isnan(y)
    return float(roc_auc_score(y[ok], p[ok])) if 0 < np.nansum(y) < ok.sum() else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=Path, nargs="+", required=True)
    ap.add_argument("--test", type=Path, nargs="+", required=True)
    ap.add_argument("--spacing", type=float, default=3.0)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, RidgeCV
    from sklearn.metrics import r2_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from gliomics.constants import MARKERS
    from gliomics.inference.marker_readout import fit_marker_readout

    train = {p.name: measure(p, args.spacing) for p in args.train}
    test = {p.name: measure(p, args.spacing) for p in args.test}

    print("1. The readout on features of the reference segmentations\n")
    print("| trained on | tested on | " + " | ".join(MARKERS) + " |\n|---|---|" + "---|" * len(MARKERS))
    for tn, tr in train.items():
        readout = fit_marker_readout(tr["x"], tr["y"])
        for sn, te in test.items():
            probs = [readout.probabilities(f) for f in te["x"]]
            row = [_auc(te["y"][:, k], np.array([p[m] for p in probs])) for k, m in enumerate(MARKERS)]
            print(f"| {tn} | {sn} | " + " | ".join(f"{a:.3f}" for a in row) + " |")

    print("\n2. Other penalties (mean ± sd of the AUC over training × test cohorts)\n")
    print("| penalty | " + " | ".join(MARKERS) + " |\n|---|" + "---|" * len(MARKERS))
    cs = list(np.logspace(-2, 1, 9))
    for name, kw in (("L2 (the readout's)", {"penalty": "l2", "Cs": list(np.logspace(-3, 1, 9))}),
                     ("L1", {"penalty": "l1", "solver": "saga", "Cs": cs}),
                     ("elastic net, l1 ratio 0.5", {"penalty": "elasticnet", "solver": "saga", "l1_ratios": [0.5],
                                                    "Cs": cs})):
        aucs = {m: [] for m in MARKERS}
        for tr in train.values():
            sc = StandardScaler().fit(tr["x"])
            for k, m in enumerate(MARKERS):
                ok = ~np.isnan(tr["y"][:, k])
                clf = LogisticRegressionCV(cv=5, scoring="neg_log_loss", max_iter=5000, random_state=0, **kw).fit(
                    sc.transform(tr["x"][ok]), tr["y"][ok, k].astype(int))
                aucs[m] += [_auc(te["y"][:, k], clf.predict_proba(sc.transform(te["x"]))[:, 1]) for te in test.values()]
        print(f"| {name} | " + " | ".join(f"{np.mean(v):.3f} ± {np.std(v, ddof=1):.3f}" for v in aucs.values()) + " |")

    xtr = np.concatenate([t["x"] for t in train.values()])
    ztr = np.concatenate([t["z"] for t in train.values()])
    xte = np.concatenate([t["x"] for t in test.values()])
    zte = np.concatenate([t["z"] for t in test.values()])
    estimate = zte.copy()
    print("\n3. Each latent read from the features (all training cohorts → all test cohorts)\n")
    print("| latent | how well |\n|---|---|")
    for k, name in enumerate(LATENTS):
        if set(np.unique(ztr[:, k])) <= {0.0, 1.0}:
            model = make_pipeline(StandardScaler(), LogisticRegression(C=0.3, max_iter=5000)).fit(xtr, ztr[:, k])
            estimate[:, k] = model.predict_proba(xte)[:, 1]
            print(f"| {name} | AUC {_auc(zte[:, k], estimate[:, k]):.3f} (prevalence {zte[:, k].mean():.2f}) |")
        else:
            model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 3, 12))).fit(xtr, ztr[:, k])
            estimate[:, k] = model.predict(xte)
            print(f"| {name} | R² {r2_score(zte[:, k], estimate[:, k]):.3f} |")

    ytr = np.concatenate([t["y"][:, 0] for t in train.values()])
    yte = np.concatenate([t["y"][:, 0] for t in test.values()])
    ok = ~np.isnan(ytr)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(ztr[ok], ytr[ok])
    print("\n4. IDH from the true latents, and with one latent replaced by its estimate (all test cohorts pooled)\n")
    print(f"| latents | IDH AUC |\n|---|---|\n| all true | {_auc(yte, clf.predict_proba(zte)[:, 1]):.3f} |")
    for k, name in enumerate(LATENTS):
        z = zte.copy()
        z[:, k] = estimate[:, k]
        print(f"| {name} estimated | {_auc(yte, clf.predict_proba(z)[:, 1]):.3f} |")
    print(f"| all estimated | {_auc(yte, clf.predict_proba(estimate)[:, 1]):.3f} |")
    readout = fit_marker_readout(xtr, np.concatenate([t["y"] for t in train.values()]))
    pooled = _auc(yte, np.array([readout.probabilities(f)["idh"] for f in xte]))
    print(f"| the readout on the features, all training cohorts | {pooled:.3f} |")

    post = np.concatenate([t["postop"] for t in test.values()])
    bayes = np.concatenate([t["bayes_idh"] for t in test.values()])
    blind = np.concatenate([t["bayes_idh_no_necrosis"] for t in test.values()])
    p = np.array([readout.probabilities(f)["idh"] for f in xte])
    print("\n5. IDH before and after resection (all test cohorts pooled; the readout of all training cohorts)\n")
    k = LATENTS.index("necrosis")
    print("| test cases | n | readout IDH AUC | Bayes posterior IDH AUC | the same, necrosis unseen | necrosis read "
          "from the features (AUC) |\n|---|---:|---:|---:|---:|---:|")
    for name, keep in (("pre-operative", post == 0), ("post-operative", post == 1), ("all", post >= 0)):
        print(f"| {name} | {int(keep.sum())} | {_auc(yte[keep], p[keep]):.3f} | {_auc(yte[keep], bayes[keep]):.3f} | "
              f"{_auc(yte[keep], blind[keep]):.3f} | {_auc(zte[keep, k], estimate[keep, k]):.3f} |")


if __name__ == "__main__":
    main()
