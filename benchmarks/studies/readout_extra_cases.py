"""The marker readout fitted on more cases than the network trained on: the same checkpoints, their readout refitted
on the training split plus marker-labelled cases the network never saw, then scored on the unseen sites.

Usage::

    .venv/bin/python benchmarks/studies/readout_extra_cases.py --work /tmp/r23 --extra /tmp/r20/cohorts/train_s{seed} \
        --out /tmp/readout_extra [--parallel 2]

``--work`` is a ``bench_recipe.py`` folder (its ``runs/`` and the panel under ``cohorts/``). For each run of seed S,
``--extra`` (with ``{seed}`` replaced by S) is a cohort with marker labels; its cases that are not in the run's own
cohort are the extra cases (a 288-case phantom cohort of seed S holds the 96 cases of the demo cohort of seed S and
192 more of the same six sites). The run folder is copied to ``OUT/runs``, its readout refitted there as
``gliomics readout`` does (:func:`gliomics.training.readout.refit_readout`: training split + extra cases;
thresholds and calibration on its validation split), and each panel site predicted (``--tta``) and evaluated.
Prints the marker
AUCs of the original readout (``eval_cavity/rule`` of ``benchmarks/studies/prediction_options.py --option cavity`` when
present, else ``eval_readout``) and of the refitted one, per run and site, and their mean ± sd.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tools")]  # the other studies, and results_md
from bench_compare import _gliomics, run_pinned  # noqa: E402
from bench_recipe import MARKERS, PANEL  # noqa: E402


def fit(run: Path, extra: Path) -> None:
    """Refit ``run``'s readout on its training split and the cases of ``extra`` that its cohort lacks
    (what ``gliomics readout -m RUN -d EXTRA`` does)."""
    from gliomics.training.readout import refit_readout

    fitted = refit_readout(run, [(extra, None)], device="cpu")
    (run / "readout_extra.json").write_text(json.dumps({"train": fitted["train_cases"],
                                                       "extra": fitted["extra_cases"], **fitted}, default=float))


def _aucs(summary: Path) -> dict[str, float]:
    markers = json.loads(summary.read_text())["markers"]
    return {m: markers[m]["auc"] for m, _ in MARKERS}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path)
    ap.add_argument("--extra", type=str)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--fit-one", nargs=2, type=Path, metavar=("RUN", "EXTRA"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.fit_one:
        fit(*args.fit_one)
        return 0
    runs = sorted(p for p in (args.work / "runs").iterdir() if (p / "best.pt").is_file())
    jobs: dict[str, tuple] = {}
    for run in runs:
        seed = int(run.name.rsplit("_s", 1)[1])
        copy = args.out / "runs" / run.name
        if not copy.is_dir():
            shutil.copytree(run, copy, ignore=shutil.ignore_patterns("last.pt"))
        extra = Path(args.extra.format(seed=seed))
        jobs[f"refit_{run.name}"] = ([sys.executable, __file__, "--fit-one", str(copy), str(extra)],
                                     copy / "readout_extra.json")
        for site in PANEL:
            ref, pred, ev = args.work / "cohorts" / site, args.out / "pred" / run.name / site, args.out / "eval" / \
                run.name / site
            script = (f"'{_gliomics()}' predict -m '{copy}' -i '{ref}' -o '{pred}' --tta --no-progress && "
                      f"'{_gliomics()}' evaluate -p '{pred}' -r '{ref}' -k '{ref}/markers.csv' -o '{ev}' "
                      "--n-boot 200 --rule brats2024")
            jobs[f"extra_{run.name}_{site}"] = (["sh", "-c", script], ev / "summary.json", copy / "readout_extra.json")
    run_pinned(jobs, logs=args.out / "logs", parallel=args.parallel)
    before_root = args.work / "eval_cavity" / "rule"
    if not before_root.is_dir():
        before_root = args.work / "eval_readout"
    print("| run | site | cases (train + extra) | " + " | ".join(f"{n} AUC: original → refitted" for _, n in MARKERS)
          + " |\n|---|---|---|" + "---|" * len(MARKERS))
    pairs: dict[str, list[tuple[float, float]]] = {m: [] for m, _ in MARKERS}
    for run in runs:
        info = json.loads((args.out / "runs" / run.name / "readout_extra.json").read_text())
        for site in PANEL:
            a = _aucs(before_root / run.name / site / "summary.json")
            b = _aucs(args.out / "eval" / run.name / site / "summary.json")
            for m in pairs:
                pairs[m].append((a[m], b[m]))
            print(f"| {run.name} | {site} | {info['train']} + {info['extra']} | "
                  + " | ".join(f"{a[m]:.3f} → {b[m]:.3f}" for m, _ in MARKERS) + " |")
    for m, name in MARKERS:
        before, after = zip(*pairs[m])
        print(f"\n{name}: {statistics.mean(before):.3f} ± {statistics.stdev(before):.3f} → "
              f"{statistics.mean(after):.3f} ± {statistics.stdev(after):.3f}; higher in "
              f"{sum(y > x + 1e-9 for x, y in pairs[m])} of {len(pairs[m])} pairs; worst {min(before):.3f} → "
              f"{min(after):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
