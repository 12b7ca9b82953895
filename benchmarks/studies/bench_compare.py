"""Ablation and baseline tables: every model trained with the same CPU budget, then ``gliomics compare``.

Usage::

    .venv/bin/python benchmarks/studies/bench_compare.py --train demo_output/cohort_train \
        --external demo_output/cohort_external --work /tmp/compare [--minutes 10] [--parallel 2] [--seed 1] \
        [--write benchmarks/results/recipe.md]

Trains, with ``gliomics train --preset mgmtnet_cpu --minutes M --seed S`` on the same cases and split:

- the ablation: ``full`` (MGMT-Net as shipped), ``concat`` (``model.params.fusion=concat``), ``cnn``
  (``model.params.encoder=cnn``), ``gap`` (``model.params.pooling=gap``);
- the baselines: ``swinunetr``, ``segresnet``, ``dynunet``, ``densenet3d`` (``model.name=…``, their registry sizes),
  with the recipe of ``mgmtnet_cpu`` (patch, learning rate, schedule, augmentation, loss); SwinUNETR takes no patch
  below 64^3, so it trains on 64^3.

Each run gets one core (its affinity mask), ``--parallel`` runs at a time, and the same wall-time budget, so each
has the same CPU time. Runs already finished in ``--work`` are kept. Then ``gliomics compare`` evaluates the
ablation and the baselines, each against ``full``, on the external cohort, and the tables go to ``--write``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tools")]  # the other studies, and results_md
from results_md import publish  # noqa: E402

SECTION = "## Ablation and baselines"
ABLATION = {"full": [], "concat": ["model.params.fusion=concat"], "cnn": ["model.params.encoder=cnn"],
            "gap": ["model.params.pooling=gap"]}
BASELINES = {name: [f"model.name={name}"] for name in ("swinunetr", "segresnet", "dynunet", "densenet3d")}
BASELINES["swinunetr"].append("train.patch_size=[64,64,64]")  # SwinUNETR needs multiples of 32, at least 64


def _gliomics() -> str:
    return str(Path(sys.executable).with_name("gliomics"))


def run_pinned(jobs: dict[str, tuple], *, logs: Path, parallel: int) -> None:
    """Run each job whose ``done`` file is missing, ``parallel`` at a time, each pinned to its own core.

    ``jobs`` maps a name to (command, done file) or (command, done file, needed file): a job starts once the file
    it needs exists (another job's ``done``). A job's output goes to ``logs/<name>.log``.
    """
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    todo = [n for n, job in jobs.items() if not job[1].is_file()]
    active: dict[int, tuple[str, subprocess.Popen]] = {}
    logs.mkdir(parents=True, exist_ok=True)

    def ready() -> str | None:
        return next((n for n in todo if len(jobs[n]) < 3 or jobs[n][2].is_file()), None)

    while todo or active:
        while todo and len(active) < parallel and (name := ready()) is not None:
            todo.remove(name)
            slot = next(i for i in range(parallel) if i not in active)
            core = cores[slot % len(cores)]
            log = open(logs / f"{name}.log", "a")  # noqa: SIM115 - closed when the process ends
            proc = subprocess.Popen(jobs[name][0], stdout=log, stderr=subprocess.STDOUT,
                                    preexec_fn=(lambda c=core: os.sched_setaffinity(0, {c}))
                                    if hasattr(os, "sched_setaffinity") else None)
            active[slot] = (name, proc)
            print(f"{name} on core {core}", flush=True)
        if not active and todo:
            raise SystemExit(f"{todo[0]} waits for {jobs[todo[0]][2]}, which no job makes")
        time.sleep(5)
        for slot, (name, proc) in list(active.items()):
            if proc.poll() is not None:
                del active[slot]
                if proc.returncode != 0:
                    raise SystemExit(f"{name} exited with {proc.returncode}; see {logs / name}.log")
                print(f"{name} done", flush=True)


def train_all(runs: dict[str, list[str]], *, train: Path, work: Path, minutes: float, seed: int,
              parallel: int) -> None:
    """Train every run not yet finished, ``parallel`` at a time, each pinned to its own core."""
    jobs = {}
    for name, overrides in runs.items():
        cmd = [_gliomics(), "train", "--data", str(train), "--markers", str(train / "markers.csv"),
               "--preset", "mgmtnet_cpu", "--out", str(work / name), "--minutes", str(minutes),
               "--seed", str(seed), "--no-progress"]
        for item in overrides:
            cmd += ["--set", item]
        if (work / name / "last.pt").is_file():
            cmd.append("--resume")
        jobs[name] = (cmd, work / name / "train_summary.json")
    run_pinned(jobs, logs=work, parallel=parallel)


def compare(names: list[str], *, external: Path, work: Path, out: Path) -> str:
    cmd = [_gliomics(), "compare", *[str(work / n) for n in names], "--data", str(external), "--markers",
           str(external / "markers.csv"), "--out", str(out), "--no-progress"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    text = (out / "comparison.md").read_text(encoding="utf-8").strip()
    return text.split("\n", 1)[1].strip() if text.startswith("# ") else text  # the table without its heading


def run_rows(runs: dict[str, list[str]], work: Path) -> list[str]:
    rows = ["| run | overrides | epochs | best epoch | stop | training time (min) |", "|---|---|---|---|---|---|"]
    for n, overrides in runs.items():
        s = json.loads((work / n / "train_summary.json").read_text())
        sets = ", ".join(f"`{o}`" for o in overrides) or "–"
        rows.append(f"| {n} | {sets} | {s['epochs_run']} | {s['best_epoch'] + 1} | {s['stop_reason']} | "
                    f"{s['elapsed_seconds'] / 60:.1f} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, required=True, help="Training cohort (with markers.csv).")
    parser.add_argument("--external", type=Path, required=True, help="External cohort (with markers.csv).")
    parser.add_argument("--work", type=Path, required=True, help="Folder for the runs and comparisons.")
    parser.add_argument("--minutes", type=float, default=10.0, help="Training budget of every run.")
    parser.add_argument("--parallel", type=int, default=2, help="Runs at a time, one core each.")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--write", type=Path, help="Results file to update (benchmarks/results/recipe.md).")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    runs = {**ABLATION, **BASELINES}
    train_all(runs, train=args.train, work=args.work, minutes=args.minutes, seed=args.seed, parallel=args.parallel)
    ablation = compare(list(ABLATION), external=args.external, work=args.work, out=args.work / "cmp_ablation")
    baselines = compare(["full", *BASELINES], external=args.external, work=args.work,
                        out=args.work / "cmp_baselines")
    body = "\n".join([
        SECTION, "",
        "```bash",
        f".venv/bin/python benchmarks/studies/bench_compare.py --train {args.train} --external {args.external} "
        f"--work {args.work} --minutes {args.minutes:g} --parallel {args.parallel} --seed {args.seed}",
        "```", "",
        f"Every model: `gliomics train --preset mgmtnet_cpu --minutes {args.minutes:g} --seed {args.seed}` on the "
        f"same {args.train.name} cases and split, one CPU core each, {args.parallel} runs at a time "
        f"(a run stops at the first epoch end past the budget, so one whose epoch is longer than the budget "
        f"trains one epoch). Evaluated on the external cohort "
        f"{args.external.name} by `gliomics compare`; p-values against `full`.", "",
        *run_rows(runs, args.work), "",
        "### Ablation", "", ablation, "",
        "### Baselines", "", baselines, "",
    ])
    publish(body, args.write, SECTION)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
