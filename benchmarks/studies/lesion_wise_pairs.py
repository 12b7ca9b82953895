"""Two models' lesion-wise Dice on the same cases, paired by case: the mean difference with a bootstrap 95% CI
(``gliomics.evaluation.bootstrap.mean_ci`` of the per-case differences) and the Wilcoxon signed-rank p-value (SciPy).

Usage::

    .venv/bin/python benchmarks/studies/lesion_wise_pairs.py \
        --a /tmp/r23/eval_resampling/probabilities/mgmtnet_cpu_s{seed} \
        --b /tmp/r19/eval_resampling/probabilities/dynunet_s{seed} --seeds 1 3 --sites G_s2 G_s4 H_s7_2mm

``--a`` and ``--b`` are ``gliomics evaluate`` folders per site (``{seed}`` filled from ``--seeds``); each case's score
is the mean of its BraTS 2024 lesion-wise Dice over ET, NETC, SNFH and RC (``per_case.csv``). Every (seed, site, case)
is one pair; the seeds pair the runs trained under the same seed.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

import numpy as np
from scipy import stats

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tools")]  # the other studies, and results_md
from bench_recipe import REGIONS  # noqa: E402


def _per_case(folder: Path) -> dict[str, float]:
    with open(folder / "per_case.csv", newline="") as f:
        return {r["case_id"]: statistics.mean(float(r[f"{g}_lesion_dice"]) for g in REGIONS) for r in csv.DictReader(f)}


def main(argv: list[str] | None = None) -> int:
    from gliomics.evaluation.bootstrap import mean_ci

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", required=True, help="evaluation folders of model A, with {seed}")
    ap.add_argument("--b", required=True, help="evaluation folders of model B, with {seed}")
    ap.add_argument("--seeds", type=int, nargs="+", required=True)
    ap.add_argument("--sites", nargs="+", required=True)
    args = ap.parse_args(argv)
    a, b = [], []
    for seed in args.seeds:
        for site in args.sites:
            sa = _per_case(Path(args.a.format(seed=seed)) / site)
            sb = _per_case(Path(args.b.format(seed=seed)) / site)
            if sa.keys() != sb.keys():
                raise SystemExit(f"seed {seed}, site {site}: the two evaluations hold different cases")
            a += [sa[c] for c in sorted(sa)]
            b += [sb[c] for c in sorted(sa)]
    diff = np.asarray(a) - np.asarray(b)
    ci = mean_ci(diff.tolist())
    print(f"{len(diff)} case pairs: A {np.mean(a):.3f}, B {np.mean(b):.3f}, A − B {ci['mean']:.3f} "
          f"[{ci['lo']:.3f}, {ci['hi']:.3f}]; A higher in {int((diff > 1e-9).sum())}, lower in "
          f"{int((diff < -1e-9).sum())}; Wilcoxon signed-rank p = {stats.wilcoxon(diff).pvalue:.2g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
