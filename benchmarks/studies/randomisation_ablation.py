"""Domain-randomisation recipes compared over seeds, on the real cases and on an unseen phantom site.

Each run is ``gliomics demo --seed S --preset PRESET`` (96 phantoms of sites A-F, 50 epochs, then site G predicted
and evaluated), then ``benchmarks/studies/real_cases.py --run RUN --tta`` on ``../shared/real/cases``. The seed
draws the cohorts and the initialisation, the same for every recipe, so recipes pair by seed.

Usage::

    # train one recipe at one seed (about an hour on one core), score it, and record it
    .venv/bin/python benchmarks/studies/randomisation_ablation.py run --recipe all \\
        --preset mgmtnet_cpu_randomised_all --seed 1 --work /tmp/ablation
    # the recipe between the seven and all eleven: a preset file
    .venv/bin/python benchmarks/studies/randomisation_ablation.py run --recipe tumour \
        --preset benchmarks/studies/presets/randomised_tumour.yaml --seed 1 --work /tmp/ablation
    # record a run trained before (its demo folder and its real-case folder)
    .venv/bin/python benchmarks/studies/randomisation_ablation.py add --recipe off --seed 1 \\
        --demo /tmp/demoA --real /tmp/realA
    # the table, from benchmarks/results/randomisation_ablation.csv
    .venv/bin/python benchmarks/studies/randomisation_ablation.py report [--write]

Every run adds its per-case Dice on the 11 manual real references and its site-G lesion-wise mean to
``benchmarks/results/randomisation_ablation.csv``, so that the table can be rebuilt and recipes compared case by
case. ``report --write`` puts the section into ``benchmarks/results/real.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from results_md import publish  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
TABLE = RESULTS / "randomisation_ablation.csv"
SECTION = "## Domain randomisation: recipes over seeds"
REGIONS = ("WT", "TC", "ET")
FIELDS = ("recipe", "seed", "case_id", "WT_dice", "TC_dice", "ET_dice", "WT_volume_pred_ml", "WT_volume_ref_ml",
          "site_g_lesion_wise")
#: What each recipe is, for the table's legend.
RECIPES = {
    "off": "`mgmtnet_cpu`: no randomisation",
    "seven": "`mgmtnet_cpu_randomised`: contrast, bias, gamma, slices, ringing, noise, stripping",
    "tumour": "`benchmarks/studies/presets/randomised_tumour.yaml`: the seven plus the tumour's own, oedema growth "
              "and compartment contrasts",
    "all": "`mgmtnet_cpu_randomised_all`: the seven, oedema growth, compartment contrasts, motion, ghosts",
}


def _gliomics() -> list[str]:
    return [sys.executable, "-c", "from gliomics.cli.main import main; main()"]


def _rows(recipe: str, seed: int, demo: Path, real: Path) -> list[dict]:
    """The per-case rows of one run: its manual real cases and its site-G lesion-wise mean."""
    summary = json.loads((demo / "demo_summary.json").read_text())
    site_g = float(summary["mean_lesion_dice"]["mean"])
    cases = json.loads((real / "real_cases.json").read_text())["rows"]
    rows = [{"recipe": recipe, "seed": seed, "case_id": r["case_id"],
             **{k: r[k] for k in FIELDS[3:8]}, "site_g_lesion_wise": site_g}
            for r in cases if r["case_id"].startswith("Brats18_")]
    if not rows:
        raise SystemExit(f"{real / 'real_cases.json'}: no case with a manual reference")
    return rows


def _record(rows: list[dict]) -> None:
    """Add (or replace) one run's rows in the CSV."""
    key = (rows[0]["recipe"], str(rows[0]["seed"]))
    kept = [r for r in _read() if (r["recipe"], r["seed"]) != key]
    TABLE.parent.mkdir(parents=True, exist_ok=True)
    with TABLE.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(kept + [{k: str(v) for k, v in r.items()} for r in rows])


def _read() -> list[dict]:
    if not TABLE.is_file():
        return []
    with TABLE.open(newline="") as f:
        return list(csv.DictReader(f))


def run(args: argparse.Namespace) -> None:
    out = Path(args.work) / f"{args.recipe}_s{args.seed}"
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    subprocess.run([*_gliomics(), "demo", "--out", str(out), "--seed", str(args.seed), "--preset", args.preset,
                    "--no-progress"], check=True, env=env)
    subprocess.run([sys.executable, str(Path(__file__).with_name("real_cases.py")), "--run", str(out / "run"),
                    "--name", f"{args.recipe} seed {args.seed}", "--work", str(out / "realeval"), "--tta",
                    "--cases", args.cases], check=True, env=env)
    _record(_rows(args.recipe, args.seed, out, out / "realeval"))


def add(args: argparse.Namespace) -> None:
    _record(_rows(args.recipe, args.seed, Path(args.demo), Path(args.real)))


def _ci(values: list[float], seed: int = 0) -> str:
    from gliomics.evaluation.bootstrap import mean_ci

    s = mean_ci(values, 2000, seed=seed)
    return f"{s['mean']:.3f} [{s['lo']:.3f}, {s['hi']:.3f}]"


def report(args: argparse.Namespace) -> str:
    rows = _read()
    if not rows:
        raise SystemExit(f"{TABLE}: no run recorded yet")
    runs: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        runs.setdefault((r["recipe"], r["seed"]), []).append(r)
    order = [k for k in RECIPES if any(recipe == k for recipe, _ in runs)]
    order += sorted({recipe for recipe, _ in runs} - set(order))
    seeds = sorted({seed for _, seed in runs}, key=int)
    lines = [SECTION, "",
             "Command: `.venv/bin/python benchmarks/studies/randomisation_ablation.py run --recipe R --preset P "
             "--seed S` per row (`gliomics demo --seed S --preset P`: 96 phantoms, 50 epochs, CPU, one core per "
             "run; then `real_cases.py --tta`), `report`. Real cases: the 11 with manual references, mean Dice with "
             "bootstrap 95 % CIs over the cases; site G: `gliomics demo`'s lesion-wise mean on 30 cases of the "
             "unseen phantom site. Recipes pair by seed (same cohorts, same initialisation). Per-case values: "
             "`benchmarks/results/randomisation_ablation.csv`.", "",
             "| recipe | seed | WT Dice | TC Dice | ET Dice | median WT volume ratio | phantom site G lesion-wise |",
             "|---|---|---|---|---|---|---|"]
    for recipe in order:
        for seed in seeds:
            cases = runs.get((recipe, seed))
            if not cases:
                continue
            ratio = np.median([float(c["WT_volume_pred_ml"]) / float(c["WT_volume_ref_ml"]) for c in cases])
            lines.append(f"| {recipe} | {seed} | " + " | ".join(_ci([float(c[f"{g}_dice"]) for c in cases])
                                                                 for g in REGIONS)
                         + f" | {ratio:.2f} | {float(cases[0]['site_g_lesion_wise']):.3f} |")
    lines += ["", "Each recipe against the one before it (off → seven → tumour → all: what each group of ingredients "
              "added), seed by seed: the mean over the 11 cases of the paired per-case Dice differences, and the "
              "difference of the site-G lesion-wise means:", "",
              "| recipe | against | seed | WT | TC | ET | site G lesion-wise |", "|---|---|---|---|---|---|---|"]
    for before, recipe in zip(order, order[1:]):
        for seed in seeds:
            base, cases = runs.get((before, seed)), runs.get((recipe, seed))
            if not base or not cases:
                continue
            by_case = {c["case_id"]: c for c in base}
            diffs = [" {:+.3f}".format(np.mean([float(c[f"{g}_dice"]) - float(by_case[c["case_id"]][f"{g}_dice"])
                                                for c in cases])) for g in REGIONS]
            site = float(cases[0]["site_g_lesion_wise"]) - float(base[0]["site_g_lesion_wise"])
            lines.append(f"| {recipe} | {before} | {seed} |" + " |".join(diffs) + f" | {site:+.3f} |")
    lines += ["", "Recipes:", ""] + [f"- `{k}`: {v}" for k, v in RECIPES.items() if k in order]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="train, score and record one recipe at one seed")
    p.add_argument("--recipe", required=True)
    p.add_argument("--preset", required=True, help="a preset name or YAML file")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--cases", default=str(ROOT.parent / "shared" / "real" / "cases"))
    p = sub.add_parser("add", help="record a run trained before")
    p.add_argument("--recipe", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--demo", required=True, help="the demo folder (with demo_summary.json)")
    p.add_argument("--real", required=True, help="real_cases.py's work folder (with real_cases.json)")
    p = sub.add_parser("report", help="the table")
    p.add_argument("--write", action="store_true", help="update benchmarks/results/real.md")
    args = parser.parse_args()
    if args.command == "run":
        run(args)
    elif args.command == "add":
        add(args)
    else:
        body = report(args)
        publish(body, RESULTS / "real.md" if args.write else None, SECTION)


if __name__ == "__main__":
    main()
