"""Where a run's marker signal lies: its marker heads against logistic regressions on the heads' own inputs.

Usage::

    .venv/bin/python benchmarks/studies/marker_signal.py RUN --site NAME=COHORT [--site NAME=COHORT …]
        [--features F.json]

Every case of the run's training cohort and of each unseen site is predicted once (no TTA) and the input of the
marker heads is recorded: the tumour-gated, attention-pooled deep features and, for ``mgmtnet_cpu``, the 25 tumour
descriptors (:class:`~gliomics.models.blocks.descriptors.TumourDescriptors`). Then, per group of cases (training
split, validation split, each site):

- the AUC of the run's own marker heads, next to the Bayes-optimal AUC of the same cases: the training-split AUC
  against the unseen ones tells under-fitting from over-fitting;
- the AUC of a logistic regression (standardised inputs, scikit-learn, ``C`` 1 and 0.05) fitted on the training
  split's recorded inputs: descriptors only, deep features only, both.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import torch

MARKERS = ("idh", "codel_1p19q", "tert")


def record_inputs(run: Path, cohorts: dict[str, Path], threads: int = 1) -> dict[str, dict[str, list[float]]]:
    """``{cohort name: {case id: marker-head input}}`` of every case of each cohort."""
    from gliomics.inference.predictor import Predictor
    from gliomics.io.layouts import discover_cases

    predictor = Predictor("cpu", threads=threads).load(run)
    captured: list[torch.Tensor] = []
    predictor.model.marker_heads.register_forward_pre_hook(lambda _, args: captured.append(args[0].detach().float()))
    out: dict[str, dict[str, list[float]]] = {}
    for name, folder in cohorts.items():
        out[name] = {}
        for case in discover_cases(folder, allow_missing=True):
            captured.clear()
            predictor.forward(case)
            out[name][case.case_id] = torch.cat(captured).mean(0).tolist()  # windows of one case, if any
    return out


def _table(folder: Path, name: str) -> dict[str, dict[str, str]]:
    with open(folder / name, newline="") as fh:
        return {r["case_id"]: r for r in csv.DictReader(fh)}


def analyse(run: Path, inputs: dict, cohorts: dict[str, Path]) -> str:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from gliomics.runtime.checkpoint import BEST, load_network

    model, _, _ = load_network(run / BEST)
    n_desc = model.descriptors.out_features if getattr(model, "descriptors", None) is not None else 0
    splits = json.loads((run / "splits.json").read_text())
    groups: dict[str, tuple[str, list[str]]] = {"train split": ("train", splits["train"]),
                                                "validation split": ("train", splits["val"])}
    groups.update({name: (name, list(inputs[name])) for name in cohorts if name != "train"})
    X, Y, bayes = {}, {}, {}
    for g, (cohort, ids) in groups.items():
        labels, truth = _table(cohorts[cohort], "markers.csv"), _table(cohorts[cohort], "phantom_truth.csv")
        X[g] = np.array([inputs[cohort][c] for c in ids])
        Y[g] = {m: np.array([int(labels[c][m]) for c in ids]) for m in MARKERS}
        bayes[g] = {m: roc_auc_score(Y[g][m], [float(truth[c][f"posterior_{m}"]) for c in ids]) for m in MARKERS}
    with torch.no_grad():
        heads = {g: {m: torch.sigmoid(v).numpy() for m, v in
                     model.marker_heads(torch.tensor(X[g], dtype=torch.float32)).items()} for g in groups}
    lines = ["| inputs | fitted by | " + " | ".join(f"{g} (IDH / 1p/19q / TERT)" for g in groups) + " |",
             "|---|---|" + "---|" * len(groups)]

    def row(name: str, fitter: str, scores: dict[str, dict[str, np.ndarray]]) -> None:
        lines.append(f"| {name} | {fitter} | " + " | ".join(
            " / ".join(f"{roc_auc_score(Y[g][m], scores[g][m]):.2f}" for m in MARKERS) for g in groups) + " |")

    lines.append("| – | Bayes-optimal AUC | " + " | ".join(" / ".join(f"{bayes[g][m]:.2f}" for m in MARKERS)
                                                       for g in groups) + " |")
    row("pooled features + descriptors", "the run's marker heads", heads)
    width = X["train split"].shape[1]
    parts = {"descriptors": slice(width - n_desc, width), "pooled features": slice(0, width - n_desc),
             "pooled features + descriptors": slice(0, width)}
    for part, sl in parts.items():
        if sl.stop - (sl.start or 0) <= 0:
            continue
        for c in (1.0, 0.05):
            fits = {m: make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000)).fit(
                X["train split"][:, sl], Y["train split"][m]) for m in MARKERS}
            row(part, f"logistic regression, C {c:g}",
                {g: {m: fits[m].predict_proba(X[g][:, sl])[:, 1] for m in MARKERS} for g in groups})
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--site", action="append", default=[], metavar="NAME=COHORT", help="An unseen site.")
    parser.add_argument("--features", type=Path, help="JSON of recorded inputs: read if it exists, else written.")
    args = parser.parse_args(argv)
    settings = json.loads((args.run / "splits.json").read_text())["settings"]["data"]
    cohorts = {"train": Path(settings[0] if isinstance(settings, list) else settings)}
    cohorts.update({n: Path(p) for n, p in (s.split("=", 1) for s in args.site)})
    if args.features is not None and args.features.is_file():
        inputs = json.loads(args.features.read_text())
    else:
        inputs = record_inputs(args.run, cohorts)
        if args.features is not None:
            args.features.write_text(json.dumps(inputs))
    print(analyse(args.run, inputs, cohorts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
