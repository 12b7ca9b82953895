"""The model-parameter randomisation check (Adebayo et al. 2018) of a run's Grad-CAM maps on a few cases.

Usage::

    .venv/bin/python benchmarks/studies/randomisation_check.py RUN COHORT [--cases 5] [--seed 0]

Each case is preprocessed as the run predicts it; per marker, the Spearman rank correlation between the trained
network's Grad-CAM and that of a copy with every parameter re-drawn
(:func:`~gliomics.inference.explanation_maps.randomisation_check`) over the voxels of the whole volume, and for
contrast the same for the FLAIR intensity itself (a "map" that ignores the weights: 1 by construction).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from gliomics.constants import MARKERS, SEQUENCES
    from gliomics.inference.explanation_maps import randomisation_check
    from gliomics.inference.predictor import Predictor
    from gliomics.io import discover_cases
    from gliomics.runtime.hardware import cpu_model_name

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("cohort", type=Path)
    parser.add_argument("--cases", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    predictor = Predictor("cpu", precision="fp32").load(args.run)
    flair = SEQUENCES.index("t2f")
    rows = {m: [] for m in MARKERS}
    control = []
    print("| case | " + " | ".join(f"{m} Grad-CAM ρ" for m in MARKERS) + " | FLAIR intensity ρ |")
    print("|---|" + "---|" * (len(MARKERS) + 1))
    for case in discover_cases(args.cohort)[: args.cases]:
        data = predictor.transform(predictor.options)({"case": case})
        x, present = data["image"].as_tensor()[None].float(), data["present"][None]
        rho = randomisation_check(predictor.model, x, present, seed=args.seed)
        ctrl = randomisation_check(predictor.model, x, present, markers=("idh",), seed=args.seed,
                                   map_fn=lambda net, image, flags, m: image[:, flair : flair + 1])["idh"]
        for m in MARKERS:
            rows[m].append(rho[m])
        control.append(ctrl)
        print(f"| {case.case_id} | " + " | ".join(f"{rho[m]:.3f}" for m in MARKERS) + f" | {ctrl:.3f} |")
    print("| mean | " + " | ".join(f"{statistics.mean(v):.3f}" for v in rows.values())
          + f" | {statistics.mean(control):.3f} |")
    print(f"\nCPU: {cpu_model_name()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
