"""A run on the real glioma scans of ``../shared/real/cases``: predicted and scored by ``gliomics evaluate`` (BraTS
2024 rule, montage), per case and in the mean with bootstrap CIs, for the 11 manual references and for all 15.

Usage::

    .venv/bin/python benchmarks/studies/real_cases.py --run demo_output/run --name "demo (phantoms only)" \
        --work /tmp/real_demo [--tta] [--write]

``--reuse`` takes ``WORK/predictions`` and ``WORK/evaluation`` as they are (``make pretrained`` writes them under
``pretrained_work/real``). ``--write`` puts the section ``## <name>`` into ``benchmarks/results/real.md`` and the
montage into ``benchmarks/results/figures/``. The cases are BraTS training patients: a model trained on BraTS has
seen them; a model trained here on phantoms has not. Cases named in ``--trained-on`` (a run's real training cases)
are left out of the per-case table and the means, so that no Dice comes from a case the model saw.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from results_md import publish  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
REAL = ROOT.parent / "shared" / "real" / "cases"
REGIONS = ("WT", "TC", "ET")


def _number(value: str | None) -> float:
    return float(value) if value not in (None, "") else float("nan")


def _manual(case_id: str) -> bool:
    """The 11 BraTS 2018 cases carry manual references; the other 4 an algorithm's."""
    return case_id.startswith("Brats18_")


def _ci(values: list[float]) -> str:
    from gliomics.evaluation.bootstrap import mean_ci

    stat = mean_ci([v for v in values if np.isfinite(v)], 2000)
    return f"{stat['mean']:.3f} [{stat['lo']:.3f}, {stat['hi']:.3f}]" if stat else "–"


def run(args: argparse.Namespace) -> str:
    from gliomics.evaluation.evaluate import evaluate_predictions
    from gliomics.evaluation.montage import MONTAGE_FILE
    from gliomics.inference.predictor import Predictor

    work = Path(args.work)
    pred, ev = work / "predictions", work / "evaluation"
    trained = set(args.trained_on or ())
    if args.reuse and (ev / "summary.json").is_file():  # what `make pretrained` predicted and evaluated
        summary = json.loads((ev / "summary.json").read_text())
    else:
        Predictor("cpu", tta=args.tta).load(args.run).predict_folder(args.cases, pred, progress=False)
        summary = evaluate_predictions(pred, args.cases, markers=Path(args.cases) / "markers.csv", out=ev,
                                       rule="brats2024", montage=True, n_boot=2000)
    with open(ev / "per_case.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["case_id"] not in trained]
    lines = [f"## {args.name}", "",
             f"Command: `.venv/bin/python benchmarks/studies/real_cases.py --run {args.run} --name \"{args.name}\""
             + (" --tta" if args.tta else "") + "`; run `" + Path(args.run).name + "`, "
             + ("flip TTA" if args.tta else "no TTA") + f", CPU. {len(rows)} cases.", "",
             "| case | reference | WT Dice | TC Dice | ET Dice | lesion-wise WT / TC / ET "
             "| WT volume pred / ref (mL) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        vols = f"{_number(r.get('WT_volume_pred_ml')):.0f} / {_number(r.get('WT_volume_ref_ml')):.0f}"
        lesion = " / ".join(f"{_number(r.get(f'{g}_lesion_dice')):.2f}" for g in REGIONS)
        lines.append(f"| {r['case_id']} | {'manual' if _manual(r['case_id']) else 'algorithm'} | "
                     + " | ".join(f"{_number(r.get(f'{g}_dice')):.3f}" for g in REGIONS) + f" | {lesion} | {vols} |")
    lines += ["", "| cases | WT Dice | TC Dice | ET Dice | lesion-wise WT | lesion-wise TC | lesion-wise ET | "
              "median WT volume pred / ref |", "|---|---|---|---|---|---|---|---|"]
    for label, subset in (("11 manual references", [r for r in rows if _manual(r["case_id"])]),
                          (f"all {len(rows)}", rows)):
        if not subset:
            continue
        ratio = [_number(r.get("WT_volume_pred_ml")) / _number(r.get("WT_volume_ref_ml")) for r in subset]
        cells = [_ci([_number(r.get(f"{g}_dice")) for r in subset]) for g in REGIONS]
        cells += [_ci([_number(r.get(f"{g}_lesion_dice")) for r in subset]) for g in REGIONS]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {np.nanmedian(ratio):.2f} |")
    aucs = {m: s.get("auc") for m, s in summary.get("markers", {}).items()}
    lines += ["", "Means with bootstrap 95% CIs over the cases (2,000 resamples). Marker AUCs on the real cases with a "
              "known status (flagged: the marker heads are not validated on real patients): "
              + ", ".join(f"{m} {v:.2f}" for m, v in aucs.items() if v is not None and np.isfinite(v)) + "."]
    slug = re.sub(r"[^a-z0-9]+", "_", args.name.lower()).strip("_")
    figure = RESULTS / "figures" / f"real_{slug}.png"
    if args.write and (ev / MONTAGE_FILE).is_file():
        figure.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ev / MONTAGE_FILE, figure)
        lines += ["", f"![{args.name}: predictions against references](figures/{figure.name})"]
    (work / "real_cases.json").write_text(json.dumps({"rows": rows, "summary_markers": aucs}, indent=2,
                                                     default=float))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a run folder (or an ensemble folder)")
    parser.add_argument("--name", required=True, help="the section's name in benchmarks/results/real.md")
    parser.add_argument("--cases", default=str(REAL))
    parser.add_argument("--work", required=True, help="where the predictions and the evaluation go")
    parser.add_argument("--tta", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="score WORK/predictions and WORK/evaluation as they are "
                        "(e.g. written by `make pretrained`) instead of predicting again")
    parser.add_argument("--trained-on", nargs="*", help="case ids the run trained on: left out of every figure")
    parser.add_argument("--write", action="store_true", help="update benchmarks/results/real.md")
    args = parser.parse_args()
    body = run(args)
    publish(body, RESULTS / "real.md" if args.write else None, f"## {args.name}")


if __name__ == "__main__":
    main()
