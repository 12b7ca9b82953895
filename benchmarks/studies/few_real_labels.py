"""Few real labels: a learning curve of 0, 3, 6 and 11 real labelled cases added to the phantoms, cross-validated so
that no real case is scored by a model that trained on it.

The 11 cases of ``../shared/real/cases`` with manual references are split into ``--folds`` folds (seeded). For each
fold, the training pool is the other manual cases and the 4 cases with algorithm references; each size ``n`` takes
the first ``n`` of the pool in a seeded order (so the sizes are nested). Every run fine-tunes the starting model
(``--init``, the shipped phantom model by default) with ``gliomics train --init`` on the phantoms (with their markers)
and the ``n`` real cases (no markers), half of the patches from each (``train.cohort_shares``), validating on
phantoms only (``data.val_cohorts=[0]``), for the same number of optimizer steps. ``n = 0`` fine-tunes on the
phantoms alone: the control for the extra training. The held-out fold is predicted (flip TTA) and scored by
``gliomics evaluate`` (BraTS 2024 rule); each manual case is thus scored once per size.

Usage::

    .venv/bin/python benchmarks/studies/few_real_labels.py run --phantoms pretrained_work/cohort_train \
        --work /tmp/few_real [--init pretrained] [--steps 300] [--folds 3] [--sizes 0 3 6 11] [--seed 0]
    .venv/bin/python benchmarks/studies/few_real_labels.py report --work /tmp/few_real [--write]
    .venv/bin/python benchmarks/studies/few_real_labels.py pool --work /tmp/few_real --size 11
    .venv/bin/python benchmarks/studies/few_real_labels.py fit-all --phantoms pretrained_work/cohort_train \
        --out pretrained_work/tuned [--init pretrained_work/run]

``run`` skips what ``WORK`` already holds (a run with ``train_summary.json``, an evaluation with ``summary.json``),
so it continues where it stopped; ``--shard I/N`` shares the runs among N processes (pin each to its own core with
``taskset -c I``: on 2 cores two one-thread runs finish sooner than one two-thread run). ``report --write`` puts the
section into ``benchmarks/results/real.md``; ``pool`` evaluates one size's held-out predictions together, the
cross-validated figures of a model card.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from results_md import publish  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
REAL = ROOT.parent / "shared" / "real" / "cases"
GLIOMICS = str(Path(sys.executable).with_name("gliomics"))
REGIONS = ("WT", "TC", "ET")
HEADING = "## Few real labels: a cross-validated learning curve"
#: Fixed before any run: a quarter of the from-scratch learning rate, half of the patches from the real cases.
FINE_TUNE_SETTINGS = ("train.lr=5e-4", "train.cohort_shares=[0.5, 0.5]", "data.val_cohorts=[0]",
                      "train.marker_readout=false")
#: The curve's runs skip the marker readout (they are scored on segmentation); a model to ship keeps its own.
SHIP_SETTINGS = FINE_TUNE_SETTINGS[:3]


def real_cases(cases: Path) -> tuple[list[str], list[str]]:
    """The case ids with manual references (``Brats18_*``) and the others (algorithm references)."""
    ids = sorted(p.name for p in cases.iterdir() if p.is_dir())
    return [c for c in ids if c.startswith("Brats18_")], [c for c in ids if not c.startswith("Brats18_")]


def plan(cases: Path, folds: int, sizes: list[int], seed: int) -> list[dict]:
    """Every run of the curve: its name, its real training cases and the manual cases it scores."""
    manual, algorithm = real_cases(cases)
    rng = np.random.default_rng(seed)
    order = list(rng.permutation(manual))
    held = [sorted(order[k::folds]) for k in range(folds)]
    runs = []
    if 0 in sizes:  # no real case: one run scores all the manual cases
        runs.append({"name": "n0", "size": 0, "train": [], "test": sorted(manual)})
    for k, test in enumerate(held):
        pool = [c for c in manual if c not in test] + algorithm
        pool = [str(c) for c in np.random.default_rng(seed + 1 + k).permutation(pool)]
        for n in sizes:
            if n == 0:
                continue
            if n > len(pool):
                raise SystemExit(f"size {n}: fold {k} has only {len(pool)} real training cases")
            runs.append({"name": f"fold{k}_n{n}", "size": n, "train": sorted(pool[:n]), "test": test})
    return runs


def _link_folder(folder: Path, cases: Path, ids: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for cid in ids:
        link = folder / cid
        if not link.exists():
            link.symlink_to((cases / cid).resolve(), target_is_directory=True)
    return folder


def _call(args: list[str], log: Path) -> None:
    with open(log, "a") as fh:
        fh.write("$ " + " ".join(args) + "\n")
        fh.flush()
        subprocess.run(args, check=True, stdout=fh, stderr=subprocess.STDOUT)


def run(args: argparse.Namespace) -> None:
    cases, work, phantoms = Path(args.cases), Path(args.work), Path(args.phantoms)
    work.mkdir(parents=True, exist_ok=True)
    runs = plan(cases, args.folds, args.sizes, args.seed)
    (work / "plan.json").write_text(json.dumps({"runs": runs, "settings": vars(args)}, indent=2, default=str))
    shard, shards = (int(v) for v in args.shard.split("/"))
    log = work / f"log_{shard}.txt"
    if shard == 0:  # the starting model itself, not fine-tuned: scored on every manual case
        manual, _ = real_cases(cases)
        _score(args.init, _link_folder(work / "data" / "test_all", cases, manual), work / "start", args, log)
    for r in runs[shard::shards]:
        out = work / "runs" / r["name"]
        if not (out / "train_summary.json").is_file():
            data = ["-d", str(phantoms), "-k", str(phantoms / "markers.csv")]
            if r["train"]:
                data += ["-d", str(_link_folder(work / "data" / r["name"], cases, r["train"])), "-k", "none"]
            settings = FINE_TUNE_SETTINGS if r["train"] else [s for s in FINE_TUNE_SETTINGS if "cohort" not in s]
            _call([GLIOMICS, "train", "--init", args.init, *data, "-o", str(out), "--steps", str(args.steps),
                   "--seed", str(args.seed), "--no-progress", *sum((["--set", s] for s in settings), [])], log)
        test = _link_folder(work / "data" / f"test_{r['name']}", cases, r["test"])
        _score(str(out), test, work / "scores" / r["name"], args, log)


def fit_all(args: argparse.Namespace) -> None:
    """The model to ship: ``--init`` fine-tuned on the phantoms and every real case, with the curve's settings (and the
    starting model's marker readout)."""
    phantoms = Path(args.phantoms)
    _call([GLIOMICS, "train", "--init", args.init, "-d", str(phantoms), "-k", str(phantoms / "markers.csv"),
           "-d", str(args.cases), "-k", "none", "-o", str(args.out), "--steps", str(args.steps), "--seed",
           str(args.seed), "--no-progress", *sum((["--set", s] for s in SHIP_SETTINGS), [])],
           Path(args.out).parent / "log_fit_all.txt")


def _score(model: str, test: Path, out: Path, args: argparse.Namespace, log: Path) -> None:
    """Predict the held-out cases with flip TTA and score them (BraTS 2024 rule)."""
    if (out / "evaluation" / "summary.json").is_file():
        return
    _call([GLIOMICS, "predict", "-i", str(test), "-o", str(out / "predictions"), "-m", model, "--tta",
           "--no-progress", "--overwrite"], log)
    _call([GLIOMICS, "evaluate", "--pred", str(out / "predictions"), "--ref", str(test), "--out",
           str(out / "evaluation"), "--rule", "brats2024"], log)


def _rows(folder: Path) -> dict[str, dict]:
    with open(folder / "evaluation" / "per_case.csv", newline="") as fh:
        return {r["case_id"]: r for r in csv.DictReader(fh)}


def _value(row: dict, key: str) -> float:
    text = row.get(key)
    return float(text) if text not in (None, "") else float("nan")


def _ci(values: list[float]) -> str:
    from gliomics.evaluation.bootstrap import mean_ci

    stat = mean_ci([v for v in values if np.isfinite(v)], 2000)
    return f"{stat['mean']:.3f} [{stat['lo']:.3f}, {stat['hi']:.3f}]" if stat else "–"


def curve(work: Path) -> dict[str, dict[str, dict]]:
    """Per size (and ``start``, the model before fine-tuning): each manual case's scores from the model that did not
    see it."""
    settings = json.loads((work / "plan.json").read_text())
    by_size: dict[str, dict[str, dict]] = {"start": _rows(work / "start")}
    for r in settings["runs"]:
        scored = _rows(work / "scores" / r["name"])
        assert not set(r["train"]) & set(scored), r["name"]  # no case scored by a model that saw it
        by_size.setdefault(str(r["size"]), {}).update({c: scored[c] for c in r["test"]})
    return by_size


def report(args: argparse.Namespace) -> str:
    work = Path(args.work)
    settings = json.loads((work / "plan.json").read_text())["settings"]
    by_size = curve(work)
    sizes = ["start"] + sorted((k for k in by_size if k != "start"), key=int)
    cases = sorted(by_size["start"])
    lines = [HEADING, "",
             f"Command: `.venv/bin/python benchmarks/studies/few_real_labels.py run --phantoms {settings['phantoms']} "
             f"--init {settings['init']} --steps {settings['steps']} --folds {settings['folds']} --sizes "
             f"{' '.join(map(str, settings['sizes']))} --seed {settings['seed']}`, then `report`. Each fine-tuning "
             f"run: `gliomics train --init {settings['init']}`, {settings['steps']} optimizer steps, "
             + ", ".join(f"`{s}`" for s in FINE_TUNE_SETTINGS) + "; flip TTA, BraTS 2024 rule, CPU. "
             f"{len(cases)} cases with manual references in {settings['folds']} folds; each case is scored by the "
             "run of its fold, which never saw it. `start` is the starting model, not fine-tuned; `0` fine-tunes "
             "on the phantoms alone for the same steps. One seed.", "",
             "| real training cases | WT Dice | TC Dice | ET Dice | lesion-wise WT / TC / ET | median WT volume "
             "pred / ref | WT Dice change against 0 (paired) |", "|---|---|---|---|---|---|---|"]
    base = by_size.get("0", by_size["start"])
    for size in sizes:
        rows = [by_size[size][c] for c in cases if c in by_size[size]]
        cells = [_ci([_value(r, f"{g}_dice") for r in rows]) for g in REGIONS]
        lesion = " / ".join(f"{np.nanmean([_value(r, f'{g}_lesion_dice') for r in rows]):.3f}" for g in REGIONS)
        ratio = np.nanmedian([_value(r, "WT_volume_pred_ml") / _value(r, "WT_volume_ref_ml") for r in rows])
        diff = [_value(by_size[size][c], "WT_dice") - _value(base[c], "WT_dice") for c in cases
                if c in by_size[size] and c in base]
        lines.append(f"| {size} ({len(rows)} scored) | " + " | ".join(cells) + f" | {lesion} | {ratio:.2f} | "
                     + (_ci(diff) if size not in ("0", "start") else "–") + " |")
    lines += ["", "Per case (WT / TC / ET Dice):", "",
              "| case | " + " | ".join(sizes) + " |", "|---|" + "---|" * len(sizes)]
    for c in cases:
        cells = []
        for size in sizes:
            r = by_size[size].get(c)
            cells.append(" / ".join(f"{_value(r, f'{g}_dice'):.2f}" for g in REGIONS) if r else "–")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    lines += ["", "Means with bootstrap 95% CIs over the cases (2,000 resamples); the change against 0 is the mean "
              "of the per-case differences with its bootstrap CI."]
    return "\n".join(lines) + "\n"


def pool(args: argparse.Namespace) -> Path:
    """One evaluation of size ``--size``'s held-out predictions together (each case predicted by the run of its fold):
    the cross-validated figures a model card can quote (``gliomics package-model -e``)."""
    work, cases = Path(args.work), Path(args.cases)
    runs = [r for r in json.loads((work / "plan.json").read_text())["runs"] if r["size"] == args.size]
    out = work / f"cv_n{args.size}"
    predictions = out / "predictions"
    predictions.mkdir(parents=True, exist_ok=True)
    tested: list[str] = []
    for r in runs:
        for path in (work / "scores" / r["name"] / "predictions").iterdir():
            if any(path.name.startswith(c) for c in r["test"]) and not (predictions / path.name).exists():
                (predictions / path.name).symlink_to(path.resolve())
        tested += r["test"]
    refs = _link_folder(out / "references", cases, sorted(tested))
    _call([GLIOMICS, "evaluate", "--pred", str(predictions), "--ref", str(refs), "--out", str(out / "evaluation"),
           "--rule", "brats2024", "--montage"], work / "log_pool.txt")
    return out / "evaluation"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    go = sub.add_parser("run")
    go.add_argument("--phantoms", required=True, help="the phantom training cohort (with markers.csv)")
    go.add_argument("--work", required=True)
    go.add_argument("--cases", default=str(REAL))
    go.add_argument("--init", default="pretrained", help="the model every run starts from")
    go.add_argument("--steps", type=int, default=300)
    go.add_argument("--folds", type=int, default=3)
    go.add_argument("--sizes", type=int, nargs="+", default=[0, 3, 6, 11])
    go.add_argument("--seed", type=int, default=0)
    go.add_argument("--shard", default="0/1", help="I/N: run every N-th run from the I-th (N processes, each pinned "
                    "to its own core with taskset, share the curve)")
    both = sub.add_parser("pool", help="evaluate one size's held-out predictions together (WORK/cv_n<SIZE>)")
    both.add_argument("--work", required=True)
    both.add_argument("--cases", default=str(REAL))
    both.add_argument("--size", type=int, required=True)
    ship = sub.add_parser("fit-all", help="fine-tune on the phantoms and every real case: the model to ship")
    ship.add_argument("--phantoms", required=True)
    ship.add_argument("--out", required=True)
    ship.add_argument("--cases", default=str(REAL))
    ship.add_argument("--init", default="pretrained")
    ship.add_argument("--steps", type=int, default=300)
    ship.add_argument("--seed", type=int, default=0)
    rep = sub.add_parser("report")
    rep.add_argument("--work", required=True)
    rep.add_argument("--write", action="store_true", help="update benchmarks/results/real.md")
    args = parser.parse_args()
    if args.command == "run":
        run(args)
    elif args.command == "pool":
        print(pool(args))
    elif args.command == "fit-all":
        fit_all(args)
    else:
        publish(report(args), RESULTS / "real.md" if args.write else None, HEADING)


if __name__ == "__main__":
    main()
