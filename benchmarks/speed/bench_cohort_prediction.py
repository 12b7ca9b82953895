"""Cohort prediction on 1 process against N ``torchrun`` ranks on the same machine, runs alternating.

Usage::

    .venv/bin/python benchmarks/speed/bench_cohort_prediction.py --model RUN --data COHORT [--ranks 2] [--rounds 2]
        [--tta] [--json OUT.json]

Per round, in the order 1 process, N ranks (then N ranks, 1 process in the next round, so that neither always runs
first): ``gliomics predict -i COHORT -o OUT -m RUN --no-progress`` (every core to one process) and ``torchrun
--nproc_per_node=N -m gliomics.predict`` with the same arguments (gloo; each rank gets its share of the cores), each
into a fresh folder. Reported: the wall time of the whole command (start-up, imports, every case, the summary) and
the cases per hour, per hour and core. Run it with nothing else on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _run(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tta", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from gliomics.io import discover_cases
    from gliomics.runtime.hardware import cpu_model_name, usable_cores

    cases = len(discover_cases(args.data))
    cores = usable_cores()
    common = ["-i", args.data, "-m", args.model, "--device", "cpu", "--no-progress"] + (["--tta"] if args.tta else [])
    times: dict[str, list[float]] = {"1 process": [], f"{args.ranks} ranks": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = list(times) if r % 2 == 0 else list(reversed(times))
            for name in order:
                out = Path(tmp) / f"{name.replace(' ', '_')}_{r}"
                if name == "1 process":
                    cmd = [sys.executable, "-m", "gliomics.cli.main", "predict", "-o", str(out), *common]
                else:
                    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={args.ranks}",
                           "--master_port=29541", "-m", "gliomics.predict", "-o", str(out), *common]
                seconds = _run(cmd)
                summary = json.loads((out / "predict_summary.json").read_text())
                assert summary["predicted"] == cases, summary
                times[name].append(seconds)
                print(f"round {r} {name}: {seconds:.1f} s", flush=True)
    result = {"cpu": cpu_model_name(), "cores": cores, "cases": cases, "tta": args.tta,
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "runs": times}
    lines = ["| command | wall time (median) | cases per hour | cases per hour and core |", "|---|---:|---:|---:|"]
    for name, values in times.items():
        med = statistics.median(values)
        result[name] = {"median_s": med, "cases_per_hour": 3600 * cases / med,
                        "cases_per_hour_per_core": 3600 * cases / med / cores}
        lines.append(f"| {name} | {med:.1f} s | {3600 * cases / med:.0f} | {3600 * cases / med / cores:.0f} |")
    print(f"{cases} cases, {cores} cores, {result['cpu']}\n" + "\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
