"""What the working grid costs on a finer input grid: the reference segmentation of a cohort drawn at the working
spacing, mapped to the same cases drawn at a finer spacing and scored there by ``gliomics evaluate``, the best a
network on that grid could score.

Usage::

    .venv/bin/python benchmarks/studies/grid_ceiling.py --coarse /tmp/r23/cohorts/K_s17_3mm \
        --fine /tmp/r23/cohorts/K_s17_1mm --work /tmp/grid_ceiling

The phantom draws the same cases under one seed and site whatever the spacing (``phantom_truth.csv`` says so; the
script checks that the case ids and latents agree), so the coarse cohort's reference is a perfect segmentation in the
coarse grid. It is mapped to the fine grid both ways prediction can (:class:`~gliomics.inference.predictor.Predictor`):
``probabilities``, each label's indicator resampled linearly and the argmax taken in the fine grid (the default), and
``nearest``, the labels copied by nearest neighbour (``--nearest-labels``). Prints the BraTS 2024 lesion-wise Dice of
each region and their mean for both.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tools")]  # the other studies, and results_md
from bench_compare import _gliomics  # noqa: E402
from bench_recipe import REGIONS  # noqa: E402


def _same_cases(coarse: Path, fine: Path) -> list[str]:
    from gliomics.phantom.latents import IMAGE_LATENTS

    def rows(root: Path) -> dict[str, tuple]:
        with open(root / "phantom_truth.csv", newline="") as f:
            return {r["case_id"]: tuple(r[k] for k in IMAGE_LATENTS) for r in csv.DictReader(f)}

    a, b = rows(coarse), rows(fine)
    if a != b:
        raise SystemExit(f"{coarse} and {fine} do not hold the same cases (draw both with one seed and site)")
    return sorted(a)


def map_reference(coarse_seg: Path, fine_seg: Path, mode: str) -> nib.Nifti1Image:
    """The coarse reference in the fine reference's grid, by label indicators resampled linearly then the argmax
    (``probabilities``), or by nearest neighbour (``nearest``)."""
    coarse, fine = nib.load(coarse_seg), nib.load(fine_seg)
    to_coarse = np.linalg.inv(coarse.affine) @ fine.affine  # fine voxel -> coarse voxel
    labels = np.asarray(coarse.dataobj).astype(np.uint8)

    def resample(volume: np.ndarray, order: int) -> np.ndarray:
        return ndimage.affine_transform(volume, to_coarse[:3, :3], to_coarse[:3, 3], output_shape=fine.shape,
                                        order=order)

    if mode == "nearest":
        out = resample(labels, 0)
    else:
        out = np.argmax(np.stack([resample((labels == k).astype(np.float32), 1) for k in range(5)]), 0)
    return nib.Nifti1Image(out.astype(np.uint8), fine.affine)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--coarse", type=Path, required=True, help="the cohort at the working spacing")
    ap.add_argument("--fine", type=Path, required=True, help="the same cases at a finer spacing")
    ap.add_argument("--work", type=Path, required=True)
    args = ap.parse_args(argv)
    cases = _same_cases(args.coarse, args.fine)
    print(f"| mapping | {' | '.join(REGIONS)} | mean |\n|---|{'---|' * (len(REGIONS) + 1)}")
    for mode in ("nearest", "probabilities"):
        pred, ev = args.work / mode, args.work / f"eval_{mode}"
        pred.mkdir(parents=True, exist_ok=True)
        for cid in cases:
            nib.save(map_reference(args.coarse / cid / f"{cid}-seg.nii.gz", args.fine / cid / f"{cid}-seg.nii.gz",
                                   mode), pred / f"{cid}_seg.nii.gz")
        subprocess.run([_gliomics(), "evaluate", "-p", str(pred), "-r", str(args.fine), "-o", str(ev), "--n-boot",
                        "200", "--rule", "brats2024"], check=True, stdout=subprocess.DEVNULL)
        seg = json.loads((ev / "summary.json").read_text())["segmentation"]
        lesion = {r: seg[r]["lesion_dice"]["mean"] for r in REGIONS}
        print(f"| {mode} | " + " | ".join(f"{lesion[r]:.3f}" for r in REGIONS)
              + f" | {statistics.mean(lesion.values()):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
