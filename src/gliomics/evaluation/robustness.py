"""``gliomics robustness``: one run on one cohort under missing and degraded sequences.

Conditions: the intact case, every other non-empty subset of the four sequences (the others treated as missing,
as ``predict --sequences`` does), and each sequence degraded in turn (:mod:`gliomics.data.degradations`). Each
condition is predicted (``gliomics predict``) and evaluated (``gliomics evaluate``) into its own folder; the table
gives per condition the Dice of each region, the marker AUCs, the mean CMAF weight of each sequence in each
predicted region, and the drop from the intact condition with a paired bootstrap 95% CI over the cases.
"""

from __future__ import annotations

import csv
import itertools
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gliomics.constants import MARKERS, SEQUENCE_NAMES, SEQUENCES, TUMOUR_LABELS
from gliomics.errors import InputError
from gliomics.evaluation.bootstrap import mean_ci, paired_auc_difference_ci
from gliomics.evaluation.tables import fmt
from gliomics.io.atomic import write_text_atomic

logger = logging.getLogger(__name__)

__all__ = ["INTACT", "condition_names", "run_robustness", "robustness_table"]

INTACT = "intact"
_SHORT = {"idh": "IDH", "codel_1p19q": "1p/19q", "tert": "TERT"}


def _subset_name(subset: Sequence[str]) -> str:
    return "only " + " + ".join(SEQUENCE_NAMES[s] for s in subset)


def conditions() -> dict[str, dict[str, Any]]:
    """Every condition, in table order: name -> ``{"sequences": [...] | None, "degradation": Degradation | None}``."""
    from gliomics.data.degradations import DEGRADATIONS, Degradation

    out: dict[str, dict[str, Any]] = {INTACT: {"sequences": None, "degradation": None}}
    for k in range(len(SEQUENCES) - 1, 0, -1):
        for subset in itertools.combinations(SEQUENCES, k):
            out[_subset_name(subset)] = {"sequences": list(subset), "degradation": None}
    for s in SEQUENCES:
        for name in DEGRADATIONS:
            d = Degradation(s, name)
            out[f"{SEQUENCE_NAMES[s]} {name}"] = {"sequences": None, "degradation": d}
    return out


def condition_names() -> list[str]:
    """The names :func:`run_robustness` accepts, in table order."""
    return list(conditions())


def _rows(eval_dir: Path) -> dict[str, dict[str, str]]:
    with open(eval_dir / "per_case.csv", newline="") as fh:
        return {r["case_id"]: r for r in csv.DictReader(fh)}


def _number(value: str | None) -> float:
    return float(value) if value not in (None, "") else float("nan")


def _summarise(name: str, eval_dir: Path, intact: dict[str, dict[str, str]] | None,
               n_boot: int) -> dict[str, Any]:
    summary = json.loads((eval_dir / "summary.json").read_text())
    rows = _rows(eval_dir)
    ids = sorted(rows)
    out: dict[str, Any] = {"condition": name, "cases": len(ids),
                           "dice": {r: summary["segmentation"][r]["dice"] for r in TUMOUR_LABELS
                                    if r in summary.get("segmentation", {})},
                           "mean_dice": summary.get("mean_dice"),
                           "auc": {m: s.get("auc") for m, s in summary.get("markers", {}).items()},
                           # the cohort's mean CMAF weights (gliomics evaluate)
                           "cmaf": {r: {q: w["mean"] for q, w in ws.items()}
                                    for r, ws in summary.get("cmaf", {}).items()}}
    if intact is not None:
        common = [c for c in ids if c in intact]
        drop: dict[str, Any] = {}
        for r in TUMOUR_LABELS:
            drop[r] = mean_ci([_number(intact[c].get(f"{r}_dice")) - _number(rows[c].get(f"{r}_dice"))
                               for c in common], n_boot)
        drop["mean"] = mean_ci([_number(intact[c].get("mean_dice")) - _number(rows[c].get("mean_dice"))
                                for c in common], n_boot)
        for m in MARKERS:
            known = [c for c in common if intact[c].get(f"label_{m}") not in ("", None)
                     and intact[c].get(f"prob_{m}") not in ("", None) and rows[c].get(f"prob_{m}") not in ("", None)]
            if not known:
                continue
            y = [int(float(intact[c][f"label_{m}"])) for c in known]
            drop[f"auc_{m}"] = paired_auc_difference_ci(y, [float(intact[c][f"prob_{m}"]) for c in known],
                                                        [float(rows[c][f"prob_{m}"]) for c in known], n_boot)
        out["drop"] = drop
    return out


def run_robustness(run: Path | str, data: Path | str, *, markers: Path | str | None, out: Path | str,
                   names: Sequence[str] | None = None, tta: bool = False, n_boot: int = 1000, device: str = "auto",
                   precision: str = "auto", seed: int = 0, progress: bool = True,
                   options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Predict and evaluate ``data`` under each condition (all of :func:`condition_names` unless ``names``; the
    intact condition is always first) and write into ``out``, as one folder (nothing is left of it on an error),
    ``robustness.json``, ``robustness.md`` and ``robustness_dice_drop.png``, with each condition's predictions and
    evaluation under ``out/conditions/<n>_<name>/``."""
    from gliomics.inference.predictor import Predictor
    from gliomics.io import discover_cases
    from gliomics.io.markers import read_markers
    from gliomics.io.output_folder import staged_folder

    every = conditions()
    chosen = [INTACT] + [n for n in (names or every) if n != INTACT]
    unknown = [n for n in chosen if n not in every]
    if unknown:
        raise InputError(f"unknown condition {unknown[0]!r}; choose among: {', '.join(every)}")
    # bad input fails here, before anything is written; the run is loaded once, the conditions are options
    predictor = Predictor(device, options={**(options or {}), **({"tta": True} if tta else {})},
                          precision=precision).load(run)
    discover_cases(data)
    if markers is not None:
        read_markers(markers)
    with staged_folder(out) as staged:
        result = _run_conditions(predictor, run, data, markers, staged, every, chosen, tta=tta, n_boot=n_boot,
                                 seed=seed, progress=progress)
    return result


def _run_conditions(predictor, run, data, markers, out: Path, every: dict, chosen: list[str], *, tta: bool,
                    n_boot: int, seed: int, progress: bool) -> dict[str, Any]:
    from gliomics.evaluation.evaluate import evaluate_predictions

    results, intact_rows = [], None
    for i, name in enumerate(chosen):
        spec = every[name]
        folder = out / "conditions" / f"{i:02d}_{name.replace(' ', '_').replace('+', '').replace('%', 'pct')}"
        d = spec["degradation"]
        degrade = {"sequence": d.sequence, "name": d.name, "seed": seed} if d else None
        predictor.predict_folder(data, folder / "predictions", progress=progress,
                                 options={"sequences": spec["sequences"], "degrade": degrade})
        evaluate_predictions(folder / "predictions", data, markers=markers, out=folder / "evaluation", n_boot=n_boot,
                             rule="brats2024")
        results.append(_summarise(name, folder / "evaluation", intact_rows, n_boot))
        if name == INTACT:
            intact_rows = _rows(folder / "evaluation")
        logger.info("%s: mean Dice %.3f", name, results[-1]["mean_dice"]["mean"] if results[-1]["mean_dice"]
                    else float("nan"))
    result = {"run": str(run), "data": str(data), "tta": tta, "seed": seed, "conditions": results}
    write_text_atomic(out / "robustness.json", json.dumps(result, indent=2, default=float))
    write_text_atomic(out / "robustness.md", robustness_table(result))
    _heat_map(result, out / "robustness_dice_drop.png")
    return result


def _drop(stat: dict | None) -> str:
    return "–" if not stat else f"{stat['mean']:+.3f} [{stat['lo']:+.3f}, {stat['hi']:+.3f}]"


def robustness_table(result: dict[str, Any]) -> str:
    """Markdown: per condition, Dice per region and the mean with its drop from intact (95% CI), marker AUCs with
    their drops, and the mean CMAF weight of each sequence in each region."""
    head = ("| condition | " + " | ".join(f"Dice {r}" for r in TUMOUR_LABELS) + " | mean Dice | drop [95% CI] | "
            + " | ".join(f"AUC {_SHORT[m]} (drop)" for m in MARKERS) + " |")
    lines = ["## Dice and AUC by condition", "",
             "Drop = intact minus the condition, paired bootstrap 95% CI over the cases.", "", head,
             "|" + "---|" * (head.count("|") - 1)]
    for c in result["conditions"]:
        dice = " | ".join(fmt((c["dice"].get(r) or {}).get("mean")) for r in TUMOUR_LABELS)
        drop = c.get("drop", {})
        aucs = " | ".join(f"{fmt(c['auc'].get(m))} ({_drop(drop.get(f'auc_{m}')) if drop else 'ref.'})"
                          for m in MARKERS)
        mean = (c.get("mean_dice") or {}).get("mean")
        lines.append(f"| {c['condition']} | {dice} | {fmt(mean)} | {_drop(drop.get('mean')) if drop else 'ref.'} | "
                     f"{aucs} |")
    head = "| condition | " + " | ".join(f"{r}: " + " / ".join(SEQUENCE_NAMES[s] for s in SEQUENCES)
                                         for r in TUMOUR_LABELS) + " |"
    lines += ["", "## Mean CMAF weight of each sequence in each predicted region", "",
              "Weights of T1 / T1ce / T2 / FLAIR (– for a missing sequence), averaged over the cases that have the "
              "region.", "", head, "|" + "---|" * (head.count("|") - 1)]
    for c in result["conditions"]:
        cells = []
        for r in TUMOUR_LABELS:
            w = c["cmaf"].get(r, {})
            cells.append(" / ".join(fmt(w.get(s), 2) for s in SEQUENCES) if w else "–")
        lines.append(f"| {c['condition']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _heat_map(result: dict[str, Any], path: Path) -> None:
    """Dice drop by condition (rows) and region (columns)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [c for c in result["conditions"] if c.get("drop")]
    if not rows:
        return
    cols = [*TUMOUR_LABELS, "mean"]
    values = np.array([[(c["drop"].get(k) or {}).get("mean", np.nan) for k in cols] for c in rows], dtype=float)
    fig, ax = plt.subplots(figsize=(5.5, 0.32 * len(rows) + 1.2))
    limit = max(0.05, float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 0.05)
    im = ax.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), [c["condition"] for c in rows], fontsize=7)
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6)
    fig.colorbar(im, ax=ax, label="Dice drop from intact")
    ax.set_title("Dice drop by condition")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
