"""Phantom generation speed: cases per second at 2 mm and 1 mm on one core, end to end (render + write).

Usage: python benchmarks/speed/bench_phantom.py [--repeats 3] [--cases-2mm 8] [--cases-1mm 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time

from gliomics.phantom import PhantomSettings, generate_cohort
from gliomics.phantom.anatomy import load_template, smoothed_template


def measure(spacing: float, cases: int, repeats: int) -> list[float]:
    smoothed_template(spacing)  # template loading is a one-off per process; keep it out of the rate
    rates = []
    for r in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            generate_cohort(tmp, PhantomSettings(cases=cases, spacing=spacing, sites=2, seed=100 + r), progress=False)
            rates.append(cases / (time.perf_counter() - t0))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases-2mm", type=int, default=8)
    parser.add_argument("--cases-1mm", type=int, default=3)
    args = parser.parse_args()
    t0 = time.perf_counter()
    load_template()
    print(f"template load: {time.perf_counter() - t0:.2f} s (once per process)")
    print(f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, workers=1")
    for spacing, n in ((2.0, args.cases_2mm), (1.0, args.cases_1mm)):
        rates = measure(spacing, n, args.repeats)
        print(f"{spacing:g} mm: median {statistics.median(rates):.2f} cases/s "
              f"({1 / statistics.median(rates):.2f} s/case) over {args.repeats} runs of {n} cases: "
              + ", ".join(f"{r:.2f}" for r in rates))


if __name__ == "__main__":
    main()
