"""How small a calibration error can a test cohort of n cases show? The calibration metrics of `gliomics evaluate`
(expected calibration error over 10 quantile bins, and the calibration slope) for probabilities that are perfectly
calibrated by construction: ``y ~ Bernoulli(p)``, ``p ~ Beta(a, a)``.

Usage::

    .venv/bin/python benchmarks/studies/ece_noise_floor.py [--n 30 60 100 300 1000] [--draws 400] [--beta 0.8]
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

from gliomics.evaluation.calibration_metrics import calibration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[30, 60, 100, 300, 1000])
    parser.add_argument("--draws", type=int, default=400)
    parser.add_argument("--beta", type=float, default=0.8, help="p ~ Beta(beta, beta): spread-out probabilities")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    rng = np.random.default_rng(args.seed)
    print("| cases | ECE median [5th, 95th percentile] | P(ECE ≤ 0.08) | slope median [5th, 95th] "
          "| P(0.7 ≤ slope ≤ 1.4) |")
    print("|---:|---|---:|---|---:|")
    for n in args.n:
        eces, slopes = [], []
        for _ in range(args.draws):
            p = rng.beta(args.beta, args.beta, n)
            y = (rng.random(n) < p).astype(int)
            if y.min() == y.max():
                continue
            cal = calibration(y, p)
            eces.append(cal["ece"])
            slopes.append(cal["slope"])
        e, s = np.asarray(eces), np.asarray(slopes, dtype=float)
        ok = np.isfinite(s)
        print(f"| {n} | {np.median(e):.3f} [{np.quantile(e, 0.05):.3f}, {np.quantile(e, 0.95):.3f}] | "
              f"{np.mean(e <= 0.08):.2f} | {np.median(s[ok]):.2f} [{np.quantile(s[ok], 0.05):.2f}, "
              f"{np.quantile(s[ok], 0.95):.2f}] | {np.mean((s >= 0.7) & (s <= 1.4)):.2f} |")


if __name__ == "__main__":
    main()
