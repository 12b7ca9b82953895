"""Training and prediction speed of two commits, side by side on one machine, runs alternating.

Usage::

    .venv/bin/python benchmarks/speed/bench_speed_ab.py --old REV --new REV --data COHORT --case CASE_DIR
        [--rounds 3] [--epochs 2] [--new-precision auto] [--json OUT.json]

Each commit is checked out into its own git worktree (under a temporary folder) and run with this virtual
environment's Python, its ``src`` first on ``PYTHONPATH``. Per round, in the order old, new (then new, old in the next
round, so that neither always runs first):

- ``gliomics train --data COHORT --epochs E --set train.val_every=1000`` (the preset ``mgmtnet_cpu``, seed 1): the
  training seconds of every epoch come from the run's ``metrics.jsonl`` (``epoch_seconds``: loader, forward, loss,
  backward and optimizer steps; validation excluded). The first epoch of each run is dropped (allocator and
  oneDNN warm-up).
- ``gliomics predict -i CASE -o OUT -m RUN --tta --overwrite`` with the run the *old* commit trained (the same weights
  for both): the wall time of the whole process and the per-stage seconds of its ``<case>.json``.

The ratio is old / new of the medians. ``--new-precision`` is passed to the new commit's train and predict (the old
one has no such option). Run it with nothing else on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _worktree(repo: Path, rev: str, root: Path) -> Path:
    path = root / rev.replace("/", "_")
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", "-f", str(path), rev], check=True,
                   capture_output=True)
    return path


def _run(tree: Path, args: list[str]) -> float:
    env = dict(os.environ, PYTHONPATH=str(tree / "src"))
    cmd = [sys.executable, "-m", "gliomics.cli.main", *args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed: {proc.stderr[-2000:]}")
    return time.perf_counter() - start


def _epoch_seconds(run: Path) -> list[float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [float(r["epoch_seconds"]) for r in rows][1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", required=True)
    parser.add_argument("--new", required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--case", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--new-precision", default="auto")
    parser.add_argument("--skip-train", action="store_true", help="Only prediction (needs --model).")
    parser.add_argument("--model", type=Path, help="Run folder for prediction (default: the old commit's run).")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    repo = Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(repo / "src"))
    from gliomics.runtime.hardware import cpu_model_name

    root = Path(tempfile.mkdtemp(prefix="ab-"))
    trees = {"old": _worktree(repo, args.old, root), "new": _worktree(repo, args.new, root)}
    extra = {"old": [], "new": ["--precision", args.new_precision]}
    epochs: dict[str, list[float]] = {"old": [], "new": []}
    predict_wall: dict[str, list[float]] = {"old": [], "new": []}
    predict_case: dict[str, list[float]] = {"old": [], "new": []}
    network: dict[str, list[float]] = {"old": [], "new": []}
    model = args.model
    try:
        for r in range(args.rounds):
            order = ["old", "new"] if r % 2 == 0 else ["new", "old"]
            if not args.skip_train:
                for which in order:
                    run = root / f"run_{which}_{r}"
                    _run(trees[which], ["train", "--data", str(args.data), "--markers", str(args.data / "markers.csv"),
                                        "--out", str(run), "--epochs", str(args.epochs), "--seed", "1",
                                        "--set", "train.val_every=1000", "--no-progress", *extra[which]])
                    epochs[which] += _epoch_seconds(run)
                    if model is None and which == "old":
                        model = run
                    print(f"round {r} {which}: epochs {epochs[which][-(args.epochs - 1):]}", flush=True)
            for which in order:
                out = root / f"pred_{which}"
                predict_wall[which].append(_run(trees[which], [
                    "predict", "-i", str(args.case), "-o", str(out), "-m", str(model), "--tta", "--overwrite",
                    "--no-progress", *extra[which]]))
                record = json.loads(next(out.glob("*.json")).read_text())
                timings = record["timings"]
                predict_case[which].append(sum(v for k, v in timings.items() if k != "total_s"))
                network[which].append(timings["network_s"])
                print(f"round {r} {which}: predict wall {predict_wall[which][-1]:.2f} s, case "
                      f"{predict_case[which][-1]:.2f} s (network {network[which][-1]:.2f} s)", flush=True)
    finally:
        for tree in trees.values():
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)], capture_output=True)

    def med(values: list[float]) -> float | None:
        return statistics.median(values) if values else None

    result = {"cpu": cpu_model_name(), "old": args.old, "new": args.new, "new_precision": args.new_precision,
              "rounds": args.rounds,
              "epoch_s": {k: med(v) for k, v in epochs.items()}, "epoch_runs": epochs,
              "predict_wall_s": {k: med(v) for k, v in predict_wall.items()}, "predict_wall_runs": predict_wall,
              "predict_case_s": {k: med(v) for k, v in predict_case.items()}, "predict_case_runs": predict_case,
              "network_s": {k: med(v) for k, v in network.items()}}
    for key in ("epoch_s", "predict_wall_s", "predict_case_s", "network_s"):
        old, new = result[key]["old"], result[key]["new"]
        result[key]["ratio"] = old / new if old and new else None
    print(json.dumps({k: v for k, v in result.items() if not k.endswith("_runs")}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
