"""Accuracy across training seeds and unseen sites at the demo's work budget, against stock MONAI networks.

Usage::

    .venv/bin/python benchmarks/studies/bench_recipe.py --work /tmp/recipe [--epochs 50] [--seeds 1 3 5] \
        [--baseline-seeds 1 3] [--recipes mgmtnet_cpu segresnet dynunet] [--parallel 2] \
        [--write benchmarks/results/segmentation.md]   # with --readout: benchmarks/results/markers.md

For each training seed S it draws the demo's training cohort (``gliomics phantom --cases 96 --spacing 3 --sites 6
--seed S``, sites A-F of seed S) and trains each recipe with ``gliomics train --preset mgmtnet_cpu --epochs E
--seed S [--set …]``: the same cases, split, patch, augmentation, loss and number of optimizer steps for every
network. Every run then predicts (``gliomics predict --tta``) and is evaluated (``gliomics evaluate``) on a panel
of unseen sites, each drawn under another seed, one of them given at 2 mm (prediction resamples it to the run's
working spacing). Each job is pinned to one core, ``--parallel`` at a time; finished jobs are kept, so an
interrupted benchmark resumes.

The table gives, per recipe, the BraTS 2024 lesion-wise Dice per region and the marker AUCs as mean ± sd over the
(seed, site) pairs, the worst site (its mean over seeds), and the Bayes-optimal AUCs of the same cases; a second
table gives every run on every site with 95 % CIs and the DeLong p-value of its IDH AUC against ``mgmtnet_cpu``
of the same seed on the same cases.
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
from results_md import publish  # noqa: E402

SECTION = "## Across seeds and unseen sites: `mgmtnet_cpu` against stock MONAI at the demo's work budget"
SECTION_COMPONENTS = ("## Across seeds and unseen sites, with minimum component volumes fitted on each run's "
                      "validation split")
SECTION_READOUT = ("## Across seeds and unseen sites, with the marker readout and the minimum component volumes")
REGIONS = ("ET", "NETC", "SNFH", "RC")
MARKERS = (("idh", "IDH"), ("codel_1p19q", "1p/19q"), ("tert", "TERT"))
#: The demo's training cohort: cases, spacing (mm), sites.
TRAIN_COHORT = (96, 3.0, 6)
#: Unseen sites: name -> (seed, site index, spacing in mm); 30 cases each.
PANEL = {"G_s2": (2, 6, 3.0), "G_s4": (4, 6, 3.0), "H_s7_2mm": (7, 7, 2.0)}
PANEL_CASES = 30
#: Recipe name -> ``--set`` overrides of the mgmtnet_cpu preset, and the steps factor of its budget.
RECIPES: dict[str, tuple[list[str], float]] = {
    "mgmtnet_cpu": ([], 1.0),
    "segresnet": (["model.name=segresnet"], 1.0),
    "dynunet": (["model.name=dynunet"], 1.0),
}


def phantom_cmd(out: Path, *, cases: int, spacing: float, sites: int, seed: int, site_start: int = 0) -> list[str]:
    return [_gliomics(), "phantom", "--out", str(out), "--cases", str(cases), "--spacing", f"{spacing:g}",
            "--sites", str(sites), "--seed", str(seed), "--site-start", str(site_start)]


def parse_recipe(text: str) -> tuple[str, tuple[list[str], float]]:
    """``NAME=OVERRIDE;OVERRIDE[@FACTOR]``: an extra recipe, its overrides and its budget as a factor of the steps."""
    name, _, rest = text.partition("=")
    rest, _, factor = rest.partition("@")
    return name, ([o for o in rest.split(";") if o], float(factor or 1.0))


def cohort_jobs(work: Path, train_seeds: set[int], train_cases: int = TRAIN_COHORT[0]) -> dict:
    """The training cohort of each seed (``train_cases`` cases) and the panel of unseen sites, each
    ``name -> (command, done file)``."""
    coh = work / "cohorts"
    _, spacing, sites = TRAIN_COHORT
    cases = train_cases
    jobs = {}
    for s in sorted(train_seeds):
        d = coh / f"train_s{s}"
        jobs[d.name] = (phantom_cmd(d, cases=cases, spacing=spacing, sites=sites, seed=s), d / "markers.csv")
    for site, (seed, start, sp) in PANEL.items():
        d = coh / site
        jobs[site] = (phantom_cmd(d, cases=PANEL_CASES, spacing=sp, sites=1, seed=seed, site_start=start),
                      d / "markers.csv")
    return jobs


def build_jobs(work: Path, *, recipes: dict, seeds: dict[str, list[int]], epochs: int,
               components: bool = False, steps: int | None = None, readout: bool = False) -> dict:
    """Each run's training job, then its prediction+evaluation jobs, which wait for the run:
    ``name -> (command, done[, needs])``. With ``components`` the predictions apply the minimum component volumes
    that the trainer fitted on the run's validation split, into ``pred_components/`` and ``eval_components/``;
    otherwise they are not applied. With ``readout`` (which implies ``components``) the predictions also take their
    markers from the marker readout that the trainer fitted on the run's training split, into ``pred_readout/`` and
    ``eval_readout/``; otherwise they take them from the network's heads.
    The budget is ``epochs``, or ``steps`` optimizer steps where given (times each recipe's factor)."""
    coh = work / "cohorts"
    jobs = {}
    components = components or readout
    pred_root, eval_root = (("pred_readout", "eval_readout") if readout else
                            ("pred_components", "eval_components") if components else ("pred", "eval"))
    steps_per_epoch = None
    for recipe, (overrides, factor) in recipes.items():
        for s in seeds[recipe]:
            run = work / "runs" / f"{recipe}_s{s}"
            data = coh / f"train_s{s}"
            cmd = [_gliomics(), "train", "--data", str(data), "--markers", str(data / "markers.csv"),
                   "--preset", "mgmtnet_cpu", "--out", str(run), "--seed", str(s), "--no-progress"]
            if steps is not None:
                cmd += ["--steps", str(round(steps * factor))]
            elif factor == 1.0:
                cmd += ["--epochs", str(epochs)]
            else:  # an equal-minutes run: the steps of the others times the factor
                steps_per_epoch = steps_per_epoch or _steps_per_epoch(work, recipes, seeds)
                cmd += ["--steps", str(round(epochs * steps_per_epoch * factor))]
            for o in overrides:
                cmd += ["--set", o]
            if (run / "last.pt").is_file():
                cmd.append("--resume")
            jobs[run.name] = (cmd, run / "train_summary.json")
            ready = run / "train_summary.json"
            for site in PANEL:
                pred, ev, ref = work / pred_root / run.name / site, work / eval_root / run.name / site, coh / site
                script = (f"'{_gliomics()}' predict -m '{run}' -i '{ref}' -o '{pred}' --tta --no-progress"
                          f"{'' if components else ' --no-component-minimums'}"
                          f"{'' if readout else ' --no-marker-readout'} && "
                          f"'{_gliomics()}' evaluate -p '{pred}' -r '{ref}' -k '{ref}/markers.csv' -o '{ev}' "
                          f"--n-boot 500")
                suffix = "__readout" if readout else "__components" if components else ""
                jobs[f"{run.name}__{site}{suffix}"] = (
                    ["sh", "-c", script], ev / "summary.json", ready)
    return jobs


def _steps_per_epoch(work: Path, recipes: dict, seeds: dict[str, list[int]]) -> int:
    for recipe, (_, factor) in recipes.items():
        for s in seeds[recipe]:
            f = work / "runs" / f"{recipe}_s{s}" / "train_summary.json"
            if factor == 1.0 and f.is_file():
                d = json.loads(f.read_text())
                return round(d["steps_run"] / d["epochs_run"])
    raise SystemExit("an equal-minutes recipe needs a finished run at the epoch budget first")


def _fmt(values: list[float]) -> str:
    vals = [v for v in values if v == v]
    if not vals:
        return "–"
    sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{statistics.mean(vals):.3f} ± {sd:.3f}"


def _lesion(summary: dict, region: str) -> float:
    return summary["segmentation"][region]["lesion_dice"]["mean"]


def _auc(summary: dict, marker: str) -> float:
    m = summary.get("markers", {}).get(marker) or {}
    return float("nan") if m.get("auc") is None else m["auc"]


def _idh_delong(ref_eval: Path, other_eval: Path) -> float:
    """DeLong p of two runs' IDH AUCs on the same cases."""
    from gliomics.evaluation.classification import delong_test
    from gliomics.evaluation.compare import _paired, _per_case

    paired = _paired(_per_case(ref_eval), _per_case(other_eval), "idh")
    if paired is None:
        return float("nan")
    y, pa, pb, _, _ = paired
    return delong_test(y, pa, pb)["p_value"]


def tables(work: Path, recipes: dict, seeds: dict[str, list[int]], *, speed: dict[str, float],
           eval_root: str = "eval") -> str:
    summaries = {}
    for recipe in recipes:
        for s in seeds[recipe]:
            for site in PANEL:
                f = work / eval_root / f"{recipe}_s{s}" / site / "summary.json"
                if f.is_file():
                    summaries[recipe, s, site] = json.loads(f.read_text())
    bayes = {site: next((v["bayes_optimal_auc"] for (_, _, st), v in summaries.items() if st == site), {})
             for site in PANEL}
    head = ("| recipe | seeds | steps | s per step | " + " | ".join(f"{r} lesion-wise" for r in REGIONS)
            + " | lesion-wise mean | worst site | whole-volume mean | "
            + " | ".join(f"{label} AUC" for _, label in MARKERS) + " |")
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for recipe in recipes:
        keys = [k for k in summaries if k[0] == recipe]
        if not keys:
            continue
        runs_steps = sorted({json.loads((work / "runs" / f"{recipe}_s{s}" / "train_summary.json").read_text())
                             ["steps_run"] for _, s, _ in keys})
        per_site = {site: statistics.mean(summaries[k]["mean_lesion_dice"]["mean"] for k in keys if k[2] == site)
                    for site in PANEL if any(k[2] == site for k in keys)}
        worst = min(per_site, key=per_site.get)
        rows.append(
            f"| {recipe} | {', '.join(str(s) for s in sorted({k[1] for k in keys}))} | "
            f"{'/'.join(str(x) for x in runs_steps)} | {speed.get(recipe, float('nan')):.2f} | "
            + " | ".join(_fmt([_lesion(summaries[k], r) for k in keys]) for r in REGIONS) + " | "
            f"**{_fmt([summaries[k]['mean_lesion_dice']['mean'] for k in keys])}** | {worst} {per_site[worst]:.3f} | "
            f"{_fmt([summaries[k]['mean_dice']['mean'] for k in keys])} | "
            + " | ".join(_fmt([_auc(summaries[k], m) for k in keys]) for m, _ in MARKERS) + " |")
    rows.append("| Bayes-optimal AUC of the same cases | | | | | | | | | | | "
                + " | ".join(_fmt([bayes[site].get(m, float("nan")) for site in PANEL]) for m, _ in MARKERS) + " |")
    detail = ["| run | site | lesion-wise mean [95% CI] | " + " | ".join(REGIONS)
              + " | whole-volume mean | IDH AUC [95% CI] | 1p/19q AUC | TERT AUC | DeLong p (IDH) vs mgmtnet_cpu |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (recipe, s, site), d in sorted(summaries.items(), key=lambda kv: (kv[0][2], kv[0][1], kv[0][0])):
        lm = d["mean_lesion_dice"]
        idh = d.get("markers", {}).get("idh") or {}
        ci = idh.get("auc_ci_delong") or [float("nan")] * 2
        ref = work / eval_root / f"mgmtnet_cpu_s{s}" / site
        p = (_idh_delong(ref, work / eval_root / f"{recipe}_s{s}" / site)
             if recipe != "mgmtnet_cpu" and (ref / "per_case.csv").is_file() else float("nan"))
        detail.append(
            f"| {recipe} s{s} | {site} | {lm['mean']:.3f} [{lm['lo']:.3f}, {lm['hi']:.3f}] | "
            + " | ".join(f"{_lesion(d, r):.3f}" for r in REGIONS)
            + f" | {d['mean_dice']['mean']:.3f} | {_auc(d, 'idh'):.3f} [{ci[0]:.2f}, {ci[1]:.2f}] | "
            f"{_auc(d, 'codel_1p19q'):.3f} | {_auc(d, 'tert'):.3f} | "
            + ("ref." if recipe == "mgmtnet_cpu" else f"{p:.3f}") + " |")
    return "\n".join(rows) + "\n\n" + "\n".join(detail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=50, help="The work budget (the demo's: 50).")
    parser.add_argument("--steps", type=int, help="The work budget in optimizer steps instead (the demo's 50 epochs "
                                                   "of its 76 training cases: 1900).")
    parser.add_argument("--train-cases", type=int, default=TRAIN_COHORT[0],
                        help="Cases of each training cohort (training + validation; the demo's: 96).")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 3, 5], help="Training seeds of mgmtnet_cpu.")
    parser.add_argument("--baseline-seeds", type=int, nargs="+", default=[1, 3],
                        help="Training seeds of every other recipe.")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), help="Recipes to run, of " + ", ".join(RECIPES))
    parser.add_argument("--extra", action="append", default=[], metavar="NAME=SET;SET[@FACTOR]",
                        help="Another recipe: --set overrides separated by ';', and optionally '@F' for a budget "
                             "of F times the steps (e.g. the steps that take the minutes of mgmtnet_cpu).")
    parser.add_argument("--speed", action="append", default=[], metavar="RECIPE=S",
                        help="Seconds per optimizer step of a recipe on one core, measured alone, for the table.")
    parser.add_argument("--parallel", type=int, default=2, help="Jobs at a time, one core each.")
    parser.add_argument("--components", action="store_true",
                        help="Predict with the minimum component volumes each run fitted on its validation split "
                             "(pred_components/, eval_components/); without, they are not applied.")
    parser.add_argument("--readout", action="store_true",
                        help="Also take the markers from the marker readout each run fitted on its training split "
                             "(pred_readout/, eval_readout/; implies --components).")
    parser.add_argument("--tables-only", action="store_true",
                        help="Run nothing: tabulate the runs and sites that have finished.")
    parser.add_argument("--write", type=Path,
                        help="Results file to update (benchmarks/results/segmentation.md; with --readout, markers.md).")
    args = parser.parse_args(argv)
    recipes = {name: RECIPES[name] for name in args.recipes}
    recipes.update(parse_recipe(e) for e in args.extra)
    seeds = {r: (args.seeds if r == "mgmtnet_cpu" else args.baseline_seeds) for r in recipes}
    speed = {k: float(v) for k, v in (s.split("=") for s in args.speed)}
    args.work.mkdir(parents=True, exist_ok=True)
    logs = args.work / "logs"
    if not args.tables_only:
        run_pinned(cohort_jobs(args.work, {s for v in seeds.values() for s in v}, args.train_cases), logs=logs,
                   parallel=args.parallel)
        # equal-minutes recipes need a finished epoch-budget run for their step count, so they train last
        plain = {k: v for k, v in recipes.items() if v[1] == 1.0}
        for batch in ([plain, recipes] if len(plain) < len(recipes) else [recipes]):
            run_pinned(build_jobs(args.work, recipes=batch, seeds=seeds, epochs=args.epochs,
                                  components=args.components, steps=args.steps, readout=args.readout),
                       logs=logs, parallel=args.parallel)
    from gliomics.runtime.hardware import cpu_model_name

    command = " ".join(a for a in (sys.argv[1:] if argv is None else argv) if a != "--tables-only")
    components = args.components or args.readout
    n_val = round(args.train_cases * 0.2)
    budget = f"--steps {args.steps}" if args.steps else f"--epochs {args.epochs}"
    setup = (
        f"Training: for each seed S, a training cohort of `gliomics phantom --cases {args.train_cases} --spacing 3 "
        f"--sites 6 --seed S` (sites A–F of seed S, {args.train_cases - n_val} training and {n_val} validation "
        f"cases; the demo's has 96) and `gliomics train --preset mgmtnet_cpu {budget} --seed S`, the demo's work "
        "budget of 1,900 optimizer steps; the MONAI networks "
        "(`--set model.name=…`, with a GAP marker head) train with the same recipe (patch, augmentation, loss, "
        "schedule, number of optimizer steps), and a recipe marked `@F` trains F times those steps. Unseen sites, "
        f"{PANEL_CASES} cases each: " + ", ".join(f"{n} (`--seed {sd} --site-start {st} --spacing {sp:g}`)"
                                                 for n, (sd, st, sp) in PANEL.items())
        + ". Every run predicts them with flip TTA" + (" and the minimum component volumes fitted on its validation "
                                                      "split" if components else
                                                      ", without minimum component volumes")
        + ("; markers from the marker readout fitted on its training split" if args.readout else
           "; markers from the network's heads")
        + "; BraTS 2024 lesion-wise Dice from `gliomics evaluate`. Mean ± sd over the (seed, site) pairs; the worst "
        "site is the one with the lowest mean over seeds; s per step: one core, measured alone. "
        f"CPU: {cpu_model_name()}, one core per job, {args.parallel} jobs at a time.")
    section = SECTION_READOUT if args.readout else SECTION_COMPONENTS if components else SECTION
    if args.train_cases != TRAIN_COHORT[0]:
        section += f", {args.train_cases} training cases"
    body = "\n".join([section, "", "```bash", f".venv/bin/python benchmarks/studies/bench_recipe.py {command}",
                      "```", "",
                      setup, "",
                      tables(args.work, recipes, seeds, speed=speed,
                             eval_root=("eval_readout" if args.readout else
                                        "eval_components" if components else "eval")), ""])
    publish(body, args.write, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
