"""Marker AUCs of the same runs with their markers from the network's heads and from the marker readout.

Usage::

    .venv/bin/python benchmarks/studies/marker_sources.py --work W [--seeds 1 3 5]
        [--write benchmarks/results/markers.md]

Reads the prediction folders that ``bench_recipe.py`` writes for ``mgmtnet_cpu``: ``W/pred_components`` (markers
from the heads, ``--components``) and ``W/pred_readout`` (from the readout, ``--readout``), the same checkpoints,
segmentations and flip TTA, and the panel's ``markers.csv``. Per run and site: the AUC of each, the paired DeLong
p-value of the difference, and the mean ± sd over the (seed, site) pairs.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tools")]  # the other studies, and results_md
from bench_recipe import MARKERS, PANEL  # noqa: E402
from results_md import publish  # noqa: E402

SECTION = "## Marker readout against marker heads, run by run"


def _probabilities(folder: Path, ids: list[str], marker: str) -> list[float]:
    return [json.loads((folder / f"{c}.json").read_text())["markers"][marker]["probability_raw"] for c in ids]


def table(work: Path, seeds: list[int]) -> str:
    from sklearn.metrics import roc_auc_score

    from gliomics.evaluation.auc import delong_test

    head = "| run | site | " + " | ".join(f"{label} heads → readout (DeLong p)" for _, label in MARKERS) + " |"
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    means: dict[tuple[str, str], list[float]] = {}
    for s in seeds:
        for site in PANEL:
            heads, readout = (work / root / f"mgmtnet_cpu_s{s}" / site for root in ("pred_components", "pred_readout"))
            if not (heads.is_dir() and readout.is_dir()):
                continue
            with open(work / "cohorts" / site / "markers.csv", newline="") as fh:
                labels = {r["case_id"]: r for r in csv.DictReader(fh)}
            ids = sorted(labels)
            cells = []
            for m, _ in MARKERS:
                y = [int(labels[c][m]) for c in ids]
                ph, pr = _probabilities(heads, ids, m), _probabilities(readout, ids, m)
                a, b = roc_auc_score(y, ph), roc_auc_score(y, pr)
                means.setdefault((m, "heads"), []).append(a)
                means.setdefault((m, "readout"), []).append(b)
                cells.append(f"{a:.3f} → {b:.3f} ({delong_test(y, ph, pr)['p_value']:.2f})")
            rows.append(f"| mgmtnet_cpu s{s} | {site} | " + " | ".join(cells) + " |")
    if means:
        cells = []
        for m, _ in MARKERS:
            a, b = means[m, "heads"], means[m, "readout"]
            better = sum(y > x for x, y in zip(a, b))
            cells.append(f"{statistics.mean(a):.3f} ± {statistics.stdev(a):.3f} → **{statistics.mean(b):.3f} ± "
                         f"{statistics.stdev(b):.3f}** (higher in {better} of {len(a)})")
        rows.append("| mean ± sd | | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--title", default="", help="Added to the section's title (e.g. the cohort size).")
    parser.add_argument("--write", type=Path, help="Results file to update (benchmarks/results/markers.md).")
    args = parser.parse_args(argv)
    section = SECTION + (f", {args.title}" if args.title else "")
    body = "\n".join([section, "", "```bash", ".venv/bin/python benchmarks/studies/marker_sources.py "
                      + " ".join(argv if argv is not None else sys.argv[1:]), "```", "",
                      "AUC of the same checkpoints' markers from the heads and from the readout on the same cases "
                      "(flip TTA, the same segmentations); paired DeLong p-value of the difference.", "",
                      table(args.work, args.seeds), ""])
    publish(body, args.write, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
