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

``--real CASES --spacing S`` does the same for real cases, which exist at one spacing only: each reference is brought
down to an ``S`` mm grid (each label's voxel fraction averaged over the blocks of ``S`` voxels, then the argmax:
the best label map on that grid), mapped back as above and scored (mean Dice and lesion-wise Dice of WT, TC and ET)::

    .venv/bin/python benchmarks/studies/grid_ceiling.py --real ../shared/real/cases --spacing 3 \
        --work /tmp/grid_ceiling_real
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


def coarse_reference(fine_seg: Path, factor: int) -> nib.Nifti1Image:
    """The best label map of a reference on a grid ``factor`` times coarser: every label's fraction of each block of
    ``factor``³ voxels (the volume padded with background to whole blocks), then the argmax; the affine places each
    coarse voxel's centre at its block's centre."""
    fine = nib.load(fine_seg)
    labels = np.asarray(fine.dataobj).astype(np.uint8)
    padded = np.pad(labels, [(0, -n % factor) for n in labels.shape])
    blocks = [n // factor for n in padded.shape]
    fractions = np.stack([(padded == k).reshape(blocks[0], factor, blocks[1], factor, blocks[2], factor).mean((1, 3, 5))
                          for k in range(5)])
    affine = fine.affine @ np.vstack([np.c_[np.eye(3) * factor, np.full(3, (factor - 1) / 2)], [0, 0, 0, 1]])
    return nib.Nifti1Image(np.argmax(fractions, 0).astype(np.uint8), affine)


def real_ceiling(cases: Path, spacing: float, work: Path) -> None:
    """The grid ceiling of real references at ``spacing`` mm (see the module's docstring)."""
    from gliomics.io.layouts import discover_cases

    found = [c for c in discover_cases(cases) if c.seg is not None]
    if not found:
        raise SystemExit(f"{cases}: no case with a reference")
    pred, ev = work / "predictions", work / "evaluation"
    pred.mkdir(parents=True, exist_ok=True)
    for case in found:
        zooms = nib.load(case.seg).header.get_zooms()[:3]
        factor = int(round(spacing / float(min(zooms))))
        coarse = work / "coarse" / f"{case.case_id}_seg.nii.gz"
        coarse.parent.mkdir(parents=True, exist_ok=True)
        nib.save(coarse_reference(case.seg, factor), coarse)
        nib.save(map_reference(coarse, case.seg, "probabilities"), pred / f"{case.case_id}_seg.nii.gz")
    subprocess.run([_gliomics(), "evaluate", "-p", str(pred), "-r", str(cases), "-o", str(ev), "--n-boot", "1000",
                    "--rule", "brats2024"], check=True, stdout=subprocess.DEVNULL)
    seg = json.loads((ev / "summary.json").read_text())["segmentation"]
    print(f"{len(found)} cases, reference on a {spacing:g} mm grid and back (mean [95% CI])\n")
    print("| region | Dice | lesion-wise Dice |\n|---|---|---|")
    for region in ("WT", "TC", "ET"):
        cells = [f"{seg[region][k]['mean']:.3f} [{seg[region][k]['lo']:.3f}, {seg[region][k]['hi']:.3f}]"
                 for k in ("dice", "lesion_dice")]
        print(f"| {region} | {cells[0]} | {cells[1]} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--coarse", type=Path, help="the cohort at the working spacing")
    ap.add_argument("--fine", type=Path, help="the same cases at a finer spacing")
    ap.add_argument("--real", type=Path, help="real cases with references, at one spacing")
    ap.add_argument("--spacing", type=float, default=3.0, help="with --real: the working grid's spacing in mm")
    ap.add_argument("--work", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.real is not None:
        real_ceiling(args.real, args.spacing, args.work)
        return 0
    if args.coarse is None or args.fine is None:
        ap.error("give --coarse and --fine, or --real")
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
