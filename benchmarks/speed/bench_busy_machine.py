"""Training on a machine that something else keeps busy: seconds per optimizer step, quiet and beside one CPU-bound
process, with the thread settings of before (OpenMP threads spinning, one thread per usable core) and of now
(as many threads as cores are free when the run starts, and OpenMP threads that wait passively), and with a short
OpenMP spin (``GOMP_SPINCOUNT=10000``) instead.

Usage::

    .venv/bin/python benchmarks/speed/bench_busy_machine.py [--steps 12] [--rounds 2]
        [--write benchmarks/results/speed.md]

Each measurement is one ``gliomics train`` process of the demo's preset (``mgmtnet_cpu``) on a phantom cohort at
3 mm (generated once, seed 5), for ``--steps`` optimizer steps; its seconds per step (validation excluded) come from
the run's own summary. The competitor is ``python -c "while True: pass"``, started before the run and killed after
it. The four conditions alternate, ``--rounds`` times; the table gives the median per condition and the ratio of
busy to quiet. Run it with nothing else on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # results_md
from results_md import write_section  # noqa: E402

from gliomics.runtime.hardware import cpu_model_name, usable_cores  # noqa: E402

SECTION = "## Training on a busy machine"
SETTINGS = {
    "OpenMP's default wait, all cores (before)": {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": None, "threads": "all"},
    "OpenMP's default wait, free cores": {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": None, "threads": None},
    "passive wait, free cores (default)": {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": None, "threads": None},
    "short spin, free cores": {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": "10000", "threads": None},
}
#: quiet; a competitor running before the run starts; one that starts LATE_S seconds after it (after the threads
#: were chosen)
CONDITIONS = ("quiet", "busy", "busy later")
LATE_S = 12.0


def _cohort(root: Path) -> Path:
    cohort = root / "cohort"
    if not (cohort / "markers.csv").is_file():
        subprocess.run([sys.executable, "-m", "gliomics.cli.main", "phantom", "-o", str(cohort), "-n", "12",
                        "--spacing", "3", "--sites", "2", "--seed", "5"], check=True, capture_output=True)
    return cohort


def seconds_per_step(cohort: Path, out: Path, setting: dict, steps: int, condition: str) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    if setting["OMP_WAIT_POLICY"]:
        env["OMP_WAIT_POLICY"] = setting["OMP_WAIT_POLICY"]
    if setting["GOMP_SPINCOUNT"]:
        env["GOMP_SPINCOUNT"] = setting["GOMP_SPINCOUNT"]
    # gliomics sets OMP_WAIT_POLICY=PASSIVE unless it is set: libgomp's default wait is asked for with an empty
    # value, which libgomp reads as unset (and warns about)
    env.setdefault("OMP_WAIT_POLICY", "")
    cmd = [sys.executable, "-m", "gliomics.cli.main", "train", "-d", str(cohort), "-k", str(cohort / "markers.csv"),
           "-o", str(out), "--steps", str(steps), "--device", "cpu", "--no-progress", "--set", "train.val_every=1000"]
    if setting["threads"] == "all":
        cmd += ["--threads", str(usable_cores())]
    spin = [sys.executable, "-c", "while True: pass"]
    competitor = subprocess.Popen(spin) if condition == "busy" else None
    try:
        run = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if condition == "busy later":
            try:
                run.wait(timeout=LATE_S)
            except subprocess.TimeoutExpired:
                competitor = subprocess.Popen(spin)
        _, err = run.communicate()
        if run.returncode != 0:
            raise SystemExit(f"train failed: {err[-2000:]}")
    finally:
        if competitor is not None:
            competitor.kill()
            competitor.wait()
    summary = json.loads((out / "train_summary.json").read_text())
    return float(summary["seconds_per_step"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--write", type=Path)
    parser.add_argument("--only", nargs="*", help="Measure only the settings whose names start with these words.")
    args = parser.parse_args(argv)
    results: dict[tuple[str, bool], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="busy-") as tmp:
        cohort = _cohort(Path(tmp))
        for r in range(args.rounds):
            for name, setting in SETTINGS.items():
                if args.only and not any(name.startswith(w) for w in args.only):
                    continue
                for condition in CONDITIONS:
                    out = Path(tmp) / f"run-{r}-{len(results)}-{condition.replace(' ', '-')}"
                    value = seconds_per_step(cohort, out, setting, args.steps, condition)
                    results.setdefault((name, condition), []).append(value)
                    print(f"round {r}: {name}, {condition}: {value:.2f} s/step", flush=True)
    rows = []
    for name in SETTINGS:
        if (name, CONDITIONS[0]) not in results:
            continue
        quiet, busy, late = (statistics.median(results[(name, c)]) for c in CONDITIONS)
        rows.append(f"| {name} | {quiet:.2f} | {busy:.2f} ({busy / quiet:.2f}×) | {late:.2f} ({late / quiet:.2f}×) |")
    text = (f"{SECTION}\n\n`python benchmarks/speed/bench_busy_machine.py --steps {args.steps} "
            f"--rounds {args.rounds}`; "
            f"CPU {cpu_model_name()}, {usable_cores()} usable cores; `mgmtnet_cpu`, 12 phantom cases at "
            f"3 mm; competitor `python -c \"while True: pass\"`, running before the run starts (busy) or started "
            f"{LATE_S:.0f} s after it, once the threads are chosen (busy later); medians of {args.rounds} "
            "alternating rounds; in brackets, against the same setting's quiet figure.\n\n"
            "| threads | quiet s/step | busy s/step | busy later s/step |\n|---|---|---|---|\n"
            + "\n".join(rows) + "\n")
    print(text)
    if args.write:
        write_section(args.write, SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
