"""A raw DICOM study to an HTML report, stage by stage: ``import`` → ``preprocess`` → ``predict --report``.

Usage::

    .venv/bin/python benchmarks/speed/bench_dicom_to_report.py --model RUN [--study ../shared/real/dicom/study1]
        [--runs 2] [--skull-strip deepbet] [--write benchmarks/results/preprocessing.md]

Each stage is one ``gliomics`` process, timed from its start to its end (process start, imports and writing
included), as a user runs it; the stages of one run go one after the other into a fresh folder, and the total is
their sum. The figure is the median over ``--runs`` runs. ``RUN`` is any run folder; the network's time depends on
its architecture and working grid, not on its weights. Run it with nothing else on the machine.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # results_md
from results_md import write_section  # noqa: E402

from gliomics.runtime.hardware import cpu_model_name, usable_cores  # noqa: E402

SECTION = "## A raw DICOM study to a report"
ROOT = Path(__file__).resolve().parents[2]
STAGES = ("import", "preprocess", "predict --report")


def _commands(study: Path, model: Path, work: Path, skull_strip: str) -> list[list[str]]:
    gliomics = [sys.executable, "-m", "gliomics.cli.main"]
    return [
        [*gliomics, "import", "--format", "dicom", "-i", str(study), "-o", str(work / "nifti"), "--case-id", "case"],
        [*gliomics, "preprocess", "-i", str(work / "nifti" / "case"), "-o", str(work / "pp"), "--skull-strip",
         skull_strip, "--no-progress"],
        [*gliomics, "predict", "-i", str(work / "pp"), "-o", str(work / "pred"), "-m", str(model), "--report",
         "--no-progress"],
    ]


def run_once(study: Path, model: Path, skull_strip: str) -> list[float]:
    """Seconds per stage of one run in a fresh folder."""
    seconds = []
    with tempfile.TemporaryDirectory(prefix="dicom2report-") as tmp:
        for cmd in _commands(study, model, Path(tmp), skull_strip):
            start = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            seconds.append(time.perf_counter() - start)
            if done.returncode != 0:
                raise SystemExit(f"failed ({done.returncode}): {shlex.join(cmd)}\n{done.stderr[-2000:]}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="Run folder to predict with.")
    parser.add_argument("--study", type=Path, default=ROOT.parent / "shared" / "real" / "dicom" / "study1")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--skull-strip", default="deepbet")
    parser.add_argument("--write", type=Path, help="Write the section into this results file.")
    args = parser.parse_args(argv)
    runs = [run_once(args.study, args.model, args.skull_strip) for _ in range(args.runs)]
    medians = [statistics.median(r[i] for r in runs) for i in range(len(STAGES))]
    totals = [sum(r) for r in runs]
    rows = "\n".join(f"| `{name}` | {m:.1f} |" for name, m in zip(STAGES, medians))
    command = shlex.join(['python', 'benchmarks/speed/bench_dicom_to_report.py', *(argv or sys.argv[1:])])
    text = (f"{SECTION}\n\n`{command}`"
            f"; study `{args.study.name}`; {args.runs} runs; CPU {cpu_model_name()}, {usable_cores()} usable cores; "
            f"skull stripping {args.skull_strip}.\n\n| stage | median seconds |\n|---|---|\n{rows}\n"
            f"| **total** | **{statistics.median(totals):.1f}** (runs: {', '.join(f'{t:.1f}' for t in totals)}) |\n")
    print(text)
    if args.write:
        write_section(args.write, SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
