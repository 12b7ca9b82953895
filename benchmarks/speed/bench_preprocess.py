"""Preprocessing speed and accuracy per case at 1 mm: N4, rigid co-registration and atlas registration.

Each phantom case is turned into a "raw" case first: T1ce is kept, and T1, T2 and FLAIR are moved by a known rigid
transform (a few degrees and millimetres), so co-registration has work to do and its error can be measured. Then
``preprocess_case`` runs on it with the default settings but the atlas's brain mask (``skull_strip="atlas"``), and the
timings it records are collected. A case runs ITK on a fixed number of threads (``pipeline.ITK_THREADS``, the
registrations on one), so ``--threads`` only sets them for the steps outside it.

Usage:
    gliomics phantom --out /tmp/pp --cases 3 --spacing 1 --seed 5
    python benchmarks/speed/bench_preprocess.py --data /tmp/pp --runs 3 --threads 2
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from gliomics.constants import SEQUENCES
from gliomics.io import discover_cases
from gliomics.io.cases import Case
from gliomics.io.sitk_images import read_image
from gliomics.preprocess import PreprocessSettings, RegistrationSettings, preprocess_case
from gliomics.preprocess.geometry import Grid, resample
from gliomics.preprocess.native import read_geometry
from gliomics.preprocess.registration import affine_from_matrix, transform_error_mm

STEPS = ("n4", "coregistration", "atlas_registration", "read_reorient", "resample", "quality_control", "write")


def _rigid(rng: np.random.Generator, centre: np.ndarray, degrees: float, mm: float) -> sitk.Euler3DTransform:
    transform = sitk.Euler3DTransform()
    transform.SetCenter(tuple(float(c) for c in centre))
    transform.SetRotation(*(float(a) for a in np.deg2rad(rng.uniform(-degrees, degrees, 3))))
    transform.SetTranslation(tuple(float(t) for t in rng.uniform(-mm, mm, 3)))
    return transform


def make_raw_case(case: Case, out: Path, rng: np.random.Generator) -> tuple[Case, dict[str, sitk.Transform]]:
    """Move every sequence but T1ce by a known rigid transform; return the raw case and the true t1c → s maps."""
    folder = out / case.case_id
    folder.mkdir(parents=True)
    images, truth = {}, {}
    for s, path in case.images.items():
        image = read_image(path)
        dst = folder / f"{case.case_id}-{s}.nii.gz"
        if s == "t1c":
            sitk.WriteImage(image, str(dst))
        else:
            truth[s] = _rigid(rng, Grid.of(image).centre(), 5.0, 5.0)
            # The scan "acquired" in a moved head: sample the image at T^-1 so that truth[s] maps t1c → s points.
            sitk.WriteImage(resample(image, Grid.of(image), truth[s].GetInverse()), str(dst))
        images[s] = dst
    return Case(case.case_id, images), truth


def coregistration_error(out_case: Path, truth: dict[str, sitk.Transform], brain_points: np.ndarray) -> float:
    """Largest error (mm) at brain points of the recovered t1c → s transform, over the moved sequences."""
    record = read_geometry(out_case)
    to_t1c = sitk.ReadTransform(str(out_case / "preprocess" / "t1c.tfm"))
    m_t1c = np.linalg.inv(_matrix(to_t1c))
    errors = []
    for s, true in truth.items():
        to_s = sitk.ReadTransform(str(out_case / "preprocess" / record["transforms"][s]))
        found = affine_from_matrix(_matrix(to_s) @ m_t1c)
        errors.append(transform_error_mm(found, true, brain_points))
    return max(errors)


def brain_dice(out_case: Path, raw_t1c: Path) -> float:
    """Dice of the case's brain (non-zero T1ce voxels) carried to the output grid and the atlas brain mask there."""
    record = read_geometry(out_case)
    grid = Grid.from_dict(record["output_grid"])
    to_t1c = sitk.ReadTransform(str(out_case / "preprocess" / "t1c.tfm"))
    brain = sitk.GetArrayFromImage(resample(sitk.Cast(read_image(raw_t1c) > 0, sitk.sitkUInt8), grid, to_t1c,
                                            nearest=True)) > 0
    atlas = sitk.GetArrayFromImage(read_image(out_case / "preprocess" / "brain_mask.nii.gz", sitk.sitkUInt8)) > 0
    return float(2 * (brain & atlas).sum() / (brain.sum() + atlas.sum()))


def _matrix(transform: sitk.Transform) -> np.ndarray:
    from gliomics.preprocess.registration import affine_matrix

    return affine_matrix(transform)


def brain_points(path: Path, n: int = 200, seed: int = 0) -> np.ndarray:
    image = read_image(path)
    index = np.argwhere(sitk.GetArrayViewFromImage(image) > 0)[:, ::-1]
    pick = index[np.random.default_rng(seed).choice(len(index), size=n, replace=False)]
    return np.array([image.TransformIndexToPhysicalPoint(tuple(int(v) for v in p)) for p in pick])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="A 1 mm phantom cohort (BraTS layout).")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="SimpleITK threads.")
    parser.add_argument("--n4-shrink", type=int, default=4)
    parser.add_argument("--sampling", type=float, default=RegistrationSettings().sampling)
    parser.add_argument("--iterations", type=int, default=RegistrationSettings().iterations)
    parser.add_argument("--shrink", default=",".join(map(str, RegistrationSettings().shrink)))
    parser.add_argument("--smoothing", default=",".join(map(str, RegistrationSettings().smoothing)))
    args = parser.parse_args()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)
    registration = RegistrationSettings(sampling=args.sampling, iterations=args.iterations,
                                        shrink=tuple(int(v) for v in args.shrink.split(",")),
                                        smoothing=tuple(float(v) for v in args.smoothing.split(",")))
    # the atlas's brain mask: what this benchmark's Dice measures (skull stripping on real scans: tests/preprocess)
    settings = PreprocessSettings(n4_shrink=args.n4_shrink, registration=registration, skull_strip="atlas")
    cases = discover_cases(args.data)
    print(f"machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), SimpleITK threads "
          f"{args.threads}, SimpleITK {sitk.Version.VersionString()}; {len(cases)} cases x {args.runs} runs")
    print(f"settings: N4 shrink {args.n4_shrink}; {registration}")
    per_step: dict[str, list[float]] = {k: [] for k in (*STEPS, "total", "cpu (all threads)")}
    errors: list[float] = []
    dices: list[float] = []
    rng = np.random.default_rng(5)
    for run in range(args.runs):
        for case in cases:
            with tempfile.TemporaryDirectory() as tmp:
                raw, truth = make_raw_case(case, Path(tmp) / "raw", rng)
                t0, c0 = time.perf_counter(), time.process_time()
                record = preprocess_case(raw, Path(tmp) / "out" / case.case_id, settings)
                total, cpu = time.perf_counter() - t0, time.process_time() - c0
                error = coregistration_error(Path(tmp) / "out" / case.case_id, truth, brain_points(case.images["t1c"]))
                dice = brain_dice(Path(tmp) / "out" / case.case_id, raw.images["t1c"])
            for step in STEPS:
                per_step[step].append(record["timings_s"][step])
            per_step["total"].append(total)
            per_step["cpu (all threads)"].append(cpu)
            errors.append(error)
            dices.append(dice)
            print(f"run {run + 1} {case.case_id}: total {total:.1f} s (CPU {cpu:.1f} s), "
                  + ", ".join(f"{s} {record['timings_s'][s]:.1f}" for s in STEPS)
                  + f"; co-registration error {error:.2f} mm; brain Dice with the atlas mask {dice:.3f}")
    print(f"sequences per case: {len(SEQUENCES)}; load average at the end: {os.getloadavg()[0]:.1f}")
    for step, values in per_step.items():
        print(f"{step}: median {statistics.median(values):.1f} s (min {min(values):.1f}, max {max(values):.1f})")
    print(f"co-registration error at 200 brain points: median {statistics.median(errors):.2f} mm, "
          f"max {max(errors):.2f} mm")
    print(f"brain Dice with the atlas mask: median {statistics.median(dices):.3f}, min {min(dices):.3f}")


if __name__ == "__main__":
    main()
