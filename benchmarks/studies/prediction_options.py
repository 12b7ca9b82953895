"""A prediction option measured on finished runs: the same checkpoints predict each unseen site with the option at
its default and switched off, and ``gliomics evaluate`` scores both.

Usage::

    .venv/bin/python benchmarks/studies/prediction_options.py --option cavity --work /tmp/r23 \
        [--extra-sites I_s11=11,8,3 J_s13_2mm=13,9,2] [--sites H_s7_2mm J_s13_2mm] [--runs RUN ...] [--parallel 2]

Options (:data:`OPTIONS`): ``cavity``, the detached-cavity rule (``gliomics predict --tta`` against ``--tta
--keep-detached-cavities``); ``resampling``, the class probabilities resampled to the input grid before the argmax
(against ``--nearest-labels``; only sites whose voxels differ from the working grid's can differ).

``--work`` is a ``bench_recipe.py`` folder (its ``runs/`` and the panel under ``cohorts/``); ``--extra-sites`` adds
unseen sites, ``NAME=SEED,SITE_INDEX,SPACING``, drawn as the panel is (30 cases each) into ``cohorts/``; ``--sites``
keeps only the named sites, ``--runs`` only the named runs. Predictions and evaluations go to
``pred_OPTION/{VARIANT}/RUN/SITE`` and ``eval_OPTION/…``. Prints, per run and site, the BraTS 2024 lesion-wise Dice
of each region and their mean (ET, NETC, SNFH and RC) without and with the option, and the mean ± sd over the
(run, site) pairs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tools")]  # the other studies, and results_md
from bench_compare import _gliomics, run_pinned  # noqa: E402
from bench_recipe import PANEL, PANEL_CASES, REGIONS, phantom_cmd  # noqa: E402

#: Option -> (its variant at the default, the variant without it): variant name -> extra ``predict`` flags.
OPTIONS: dict[str, dict[str, str]] = {
    "cavity": {"rule": "", "keep": " --keep-detached-cavities"},
    "resampling": {"probabilities": "", "nearest": " --nearest-labels"},
}


def _lesion(summary: Path) -> dict[str, float]:
    seg = json.loads(summary.read_text())["segmentation"]
    out = {r: seg[r]["lesion_dice"]["mean"] for r in REGIONS}
    out["mean"] = statistics.mean(out[r] for r in REGIONS)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--option", choices=sorted(OPTIONS), required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--extra-sites", nargs="*", default=[], metavar="NAME=SEED,SITE_INDEX,SPACING")
    ap.add_argument("--sites", nargs="*", default=None, help="only these sites (default: every one)")
    ap.add_argument("--runs", nargs="*", default=None, help="only these runs of WORK/runs (default: every one)")
    ap.add_argument("--parallel", type=int, default=2)
    args = ap.parse_args(argv)
    coh = args.work / "cohorts"
    sites = dict(PANEL)
    jobs: dict[str, tuple] = {}
    for item in args.extra_sites:
        name, _, spec = item.partition("=")
        seed, start, spacing = spec.split(",")
        sites[name] = (int(seed), int(start), float(spacing))
        jobs[name] = (phantom_cmd(coh / name, cases=PANEL_CASES, spacing=float(spacing), sites=1, seed=int(seed),
                                  site_start=int(start)), coh / name / "markers.csv")
    run_pinned(jobs, logs=args.work / "logs", parallel=args.parallel)
    if args.sites:
        sites = {k: v for k, v in sites.items() if k in args.sites}
    variants = OPTIONS[args.option]
    on, off = variants
    runs = sorted(p for p in (args.work / "runs").iterdir() if (p / "best.pt").is_file()
                  and (not args.runs or p.name in args.runs))
    jobs = {}
    for run in runs:
        for site in sites:
            for variant, flag in variants.items():
                pred = args.work / f"pred_{args.option}" / variant / run.name / site
                ev = args.work / f"eval_{args.option}" / variant / run.name / site
                ref = coh / site
                script = (f"'{_gliomics()}' predict -m '{run}' -i '{ref}' -o '{pred}' --tta --no-progress{flag} && "
                          f"'{_gliomics()}' evaluate -p '{pred}' -r '{ref}' -k '{ref}/markers.csv' -o '{ev}' "
                          "--n-boot 200 --rule brats2024")
                jobs[f"{args.option}_{variant}_{run.name}_{site}"] = (["sh", "-c", script], ev / "summary.json")
    run_pinned(jobs, logs=args.work / "logs", parallel=args.parallel)
    print(f"| run | site | {' | '.join(REGIONS)} | mean |\n|---|---|{'---|' * (len(REGIONS) + 1)}")
    pairs: dict[str, list] = {k: [] for k in (*REGIONS, "mean")}
    for run in runs:
        for site in sites:
            without = _lesion(args.work / f"eval_{args.option}" / off / run.name / site / "summary.json")
            with_ = _lesion(args.work / f"eval_{args.option}" / on / run.name / site / "summary.json")
            for k in pairs:
                pairs[k].append((without[k], with_[k]))
            print(f"| {run.name} | {site} | " + " | ".join(f"{without[k]:.3f} → {with_[k]:.3f}" for k in pairs) + " |")
    print(f"\n{off} → {on}:")
    for k, values in pairs.items():
        before, after = zip(*values)
        print(f"{k}: {statistics.mean(before):.3f} ± {statistics.stdev(before):.3f} → "
              f"{statistics.mean(after):.3f} ± {statistics.stdev(after):.3f}; higher in "
              f"{sum(a > b + 1e-9 for b, a in values)}, lower in {sum(a < b - 1e-9 for b, a in values)} of "
              f"{len(values)} pairs; worst {min(before):.3f} → {min(after):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
