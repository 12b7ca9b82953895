"""``gliomics compare``: evaluate finished runs on the same cases and tabulate them (the paper's Table 4 shape),
with DeLong (AUC) and McNemar (calls) p-values against the first run."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from gliomics.constants import MARKERS
from gliomics.errors import InputError
from gliomics.evaluation.classification import delong_test, mcnemar_test
from gliomics.evaluation.evaluate import evaluate_predictions
from gliomics.evaluation.tables import comparison_table
from gliomics.io.atomic import write_text_atomic


def _per_case(eval_dir: Path) -> dict[str, dict[str, str]]:
    with open(eval_dir / "per_case.csv", newline="") as fh:
        return {r["case_id"]: r for r in csv.DictReader(fh)}


def _paired(ref: dict, other: dict, marker: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float] | None:
    """Labels and both models' probabilities on the cases where all three are known."""
    ids = [c for c in ref if c in other and ref[c].get(f"label_{marker}") not in ("", None)
           and ref[c].get(f"prob_{marker}") not in ("", None) and other[c].get(f"prob_{marker}") not in ("", None)]
    if not ids:
        return None
    y = np.array([int(float(ref[c][f"label_{marker}"])) for c in ids])
    pa = np.array([float(ref[c][f"prob_{marker}"]) for c in ids])
    pb = np.array([float(other[c][f"prob_{marker}"]) for c in ids])
    ta = float(ref[ids[0]].get(f"threshold_{marker}") or 0.5)
    tb = float(other[ids[0]].get(f"threshold_{marker}") or 0.5)
    return y, pa, pb, ta, tb


def compare_runs(runs: list[Path | str], data: Path | str, *, markers: Path | str | None, out: Path | str,
                 device: str = "auto", n_boot: int = 1000, progress: bool = True,
                 options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Predict ``data`` with every run (each with its own prediction options, ``options`` overriding them),
    evaluate each, and compare them with the first run as reference."""
    from gliomics.inference.predictor import Predictor

    runs = [Path(r) for r in runs]
    if len(runs) < 2:
        raise InputError("compare needs at least two runs")
    names = [r.name if r.is_dir() else r.parent.name for r in runs]
    if len(set(names)) != len(names):
        names = [f"{i}_{n}" for i, n in enumerate(names)]
    out = Path(out)
    rows, per_case, bayes = [], {}, None
    for run, name in zip(runs, names):
        pred_dir, eval_dir = out / name / "predictions", out / name / "evaluation"
        Predictor(device, options=options).load(run).predict_folder(data, pred_dir, progress=progress)
        summary = evaluate_predictions(pred_dir, data, markers=markers, out=eval_dir, n_boot=n_boot)
        per_case[name] = _per_case(eval_dir)
        bayes = summary.get("bayes_optimal_auc", bayes)  # the same cases for every run
        aucs = [s["auc"] for s in summary["markers"].values() if not math.isnan(s.get("auc", math.nan))]
        rows.append({"name": name, "run": str(run), "seg": summary["segmentation"],
                     "mean_lesion_dice": summary["mean_lesion_dice"], "mean_dice": summary["mean_dice"],
                     "mean_auc": float(np.mean(aucs)) if aucs else math.nan,
                     "auc": {m: s.get("auc") for m, s in summary["markers"].items()}})
    reference = names[0]
    for row in rows[1:]:
        for m in MARKERS:
            paired = _paired(per_case[reference], per_case[row["name"]], m)
            if paired is None or len(set(paired[0])) < 2:
                continue
            y, pa, pb, ta, tb = paired
            row[f"delong_p_{m}"] = delong_test(y, pa, pb)["p_value"]
            row[f"mcnemar_p_{m}"] = mcnemar_test(y, (pa >= ta).astype(int), (pb >= tb).astype(int))["p_value"]
    table = comparison_table(rows, reference, bayes)
    result = {"reference": reference, "data": str(data), "models": rows, "bayes_optimal_auc": bayes, "table": table}
    out.mkdir(parents=True, exist_ok=True)
    for fname, text in (("comparison.json", json.dumps(result, indent=2, default=float)),
                        ("comparison.md", f"# Comparison on {data}\n\n{table}")):
        write_text_atomic(out / fname, text)
    return result
