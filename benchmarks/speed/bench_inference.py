"""CPU inference on one BraTS-size case: ``gliomics predict`` against MONAI SwinUNETR and SegResNet, side by side.

Usage::

    .venv/bin/python benchmarks/speed/bench_inference.py --run demo_output/run [--runs 3] [--dice-cohort DIR]
        [--skip swinunetr] [--nearest-too] [--write benchmarks/results/speed.md]

On one 1 mm phantom case (240x240x155, four sequences; generated with ``--seed 11`` unless ``--case`` is given):

- (a) ``gliomics predict -i CASE -o OUT -m RUN --overwrite`` with the default settings, end to end (process start,
  NIfTI reading, preprocessing, network, resampling back, writing), one process per run; with ``--nearest-too``
  also with ``--nearest-labels`` (the labels mapped back by nearest neighbour instead of the class probabilities
  resampled to the input grid), the two alternating;
- (b) MONAI ``SwinUNETR(feature_size=48)`` with ``sliding_window_inference`` at 128^3, overlap 0.5, Gaussian
  blending, on the z-scored volume (network time only: reading and writing are not counted, which favours it);
- (c) MONAI ``SegResNet(init_filters=16)`` likewise.

Wall time is the median of ``--runs`` runs after one warm-up (for (b) and (c) the warm-up is one 128^3 window);
peak resident memory is the largest ``ru_maxrss`` of the process that ran them (``os.wait4``). (b) and (c) use random
weights: their speed does not depend on the weights.

``--dice-cohort DIR`` (cases with segmentations) also predicts every case twice with the run's weights, by the fast
path (crop to the head, overlap 0.25: the defaults) and the slow path (no crop, overlap 0.5), and reports the mean
Dice per region of each and their largest difference.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # results_md
from results_md import write_section  # noqa: E402

SECTION = "## CPU inference"
ROI = (128, 128, 128)


def _phantom_case(root: Path, seed: int) -> Path:
    from gliomics.phantom import PhantomSettings, generate_cohort

    if not (root / "markers.csv").is_file():
        generate_cohort(root, PhantomSettings(cases=1, spacing=1.0, sites=1, seed=seed), workers=1, progress=False)
    return next(p for p in sorted(root.iterdir()) if p.is_dir())


def _peak_rss_of(cmd: list[str]) -> tuple[float, float, str]:
    """Run ``cmd`` and return wall seconds, its own peak RSS (MB, from ``os.wait4``) and its stdout."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0), err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{shlex.join(cmd)} failed: {err.read().strip()[-500:]}")
        return wall, usage.ru_maxrss / 1024.0, out.read()


def bench_predict(case: Path, run: Path, runs: int, *, nearest_too: bool = False) -> list[dict[str, Any]]:
    """``gliomics predict`` with the default settings; with ``nearest_too`` also with ``--nearest-labels``, the two
    alternating run by run (the order swapped every round)."""
    exe = str(Path(sys.executable).with_name("gliomics"))
    variants = {"gliomics predict (default)": []}
    if nearest_too:
        variants["gliomics predict --nearest-labels"] = ["--nearest-labels"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cmds = {name: [exe, "predict", "-i", str(case), "-o", str(Path(tmp) / str(k)), "-m", str(run), "--overwrite",
                       "--no-progress", *flags] for k, (name, flags) in enumerate(variants.items())}
        for cmd in cmds.values():
            _peak_rss_of(cmd)  # warm-up: page cache, Python bytecode
        walls: dict[str, list[float]] = {name: [] for name in cmds}
        rss: dict[str, list[float]] = {name: [] for name in cmds}
        for i in range(runs):
            for name in (list(cmds) if i % 2 == 0 else list(cmds)[::-1]):
                wall, peak, _ = _peak_rss_of(cmds[name])
                walls[name].append(wall)
                rss[name].append(peak)
        for k, name in enumerate(cmds):
            record = json.loads(next(p for p in sorted((Path(tmp) / str(k)).glob("*.json"))
                                     if p.name != "predict_summary.json").read_text())
            rows.append({"name": name, "wall_s": statistics.median(walls[name]), "walls": walls[name],
                         "peak_rss_mb": max(rss[name]), "timings": record.get("timings", {})})
    return rows


def bench_monai(kind: str, case: Path, runs: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", kind, "--case", str(case), "--runs", str(runs)]
    _, peak, out = _peak_rss_of(cmd)
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_mb"] = peak
    return result


def _worker(kind: str, case: Path, runs: int) -> None:
    """Run in a child process: time sliding-window inference of a MONAI network on the case."""
    import numpy as np
    import torch
    from monai.inferers import sliding_window_inference
    from monai.networks.nets import SegResNet, SwinUNETR

    from gliomics.io import discover_cases, load_case

    torch.set_num_threads(os.cpu_count() or 1)
    loaded = load_case(discover_cases(case)[0], load_seg=False)
    image = loaded.image.astype(np.float32)
    for c in range(image.shape[0]):
        brain = image[c] > 0
        image[c][brain] = (image[c][brain] - image[c][brain].mean()) / (image[c][brain].std() + 1e-8)
    x = torch.from_numpy(image)[None]
    if kind == "swinunetr":
        net = SwinUNETR(in_channels=4, out_channels=5, feature_size=48)
        name = "MONAI SwinUNETR (feature size 48)"
    else:
        net = SegResNet(spatial_dims=3, in_channels=4, out_channels=5, init_filters=16)
        name = "MONAI SegResNet (init filters 16)"
    net.eval()
    with torch.inference_mode():
        net(torch.zeros(1, 4, *ROI))  # warm-up window
        walls = []
        for _ in range(runs):
            start = time.perf_counter()
            sliding_window_inference(x, ROI, 1, net, overlap=0.5, mode="gaussian")
            walls.append(time.perf_counter() - start)
    print(json.dumps({"name": f"{name}, sliding window 128^3, overlap 0.5", "wall_s": statistics.median(walls),
                      "walls": walls, "params_m": sum(p.numel() for p in net.parameters()) / 1e6}))


def dice_fast_vs_slow(run: Path, cohort: Path) -> dict[str, Any]:
    """Mean Dice per region of the fast path (defaults) and the slow path (no crop, overlap 0.5), same weights."""
    import numpy as np

    from gliomics.inference.predictor import SEG_SUFFIX, Predictor
    from gliomics.io import discover_cases, load_label
    from gliomics.labels import dice_per_region

    cases = discover_cases(cohort, require_seg=True)
    out: dict[str, Any] = {"cases": len(cases)}
    with tempfile.TemporaryDirectory() as tmp:
        for label, kwargs in (("fast", {}), ("slow", {"crop": False, "overlap": 0.5})):
            predictor = Predictor("cpu", **kwargs).load(run)
            folder = Path(tmp) / label
            start = time.perf_counter()
            predictor.predict_folder(cohort, folder, progress=False)
            out[f"{label}_seconds_per_case"] = (time.perf_counter() - start) / len(cases)
            rows = [dice_per_region(load_label(folder / f"{c.case_id}{SEG_SUFFIX}").array,
                                    load_label(c.seg, label_map=c.label_map).array) for c in cases]
            out[label] = {r: float(np.mean([row[r] for row in rows])) for r in rows[0]}
    out["max_abs_difference"] = max(abs(out["fast"][r] - out["slow"][r]) for r in out["fast"])
    return out


def _table(rows: list[dict[str, Any]], baseline: dict[str, Any] | None) -> str:
    lines = ["| method | wall per case (s), median | runs (s) | peak RSS (GB) | ratio to SwinUNETR |",
             "|---|---:|---|---:|---:|"]
    for r in rows:
        ratio = f"{baseline['wall_s'] / r['wall_s']:.1f}x faster" if baseline and r is not baseline else "1x"
        runs = ", ".join(f"{w:.1f}" for w in r["walls"])
        lines.append(f"| {r['name']} | {r['wall_s']:.1f} | {runs} | {r['peak_rss_mb'] / 1024:.2f} | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="Run folder of gliomics predict's model (e.g. demo_output/run).")
    parser.add_argument("--case", type=Path, help="A 1 mm case folder; default: a phantom case, seed 11.")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip", nargs="*", default=[], choices=["swinunetr", "segresnet", "predict"])
    parser.add_argument("--nearest-too", action="store_true", help="Also time gliomics predict --nearest-labels, "
                        "alternating with the default.")
    parser.add_argument("--dice-cohort", type=Path, help="Cases with segmentations for the fast/slow Dice check.")
    parser.add_argument("--write", type=Path, help="Replace the section 'CPU inference' of this Markdown file.")
    parser.add_argument("--rows", type=Path, help="JSON lines printed by an earlier run: reuse its timings "
                        "instead of measuring (the table then says so).")
    parser.add_argument("--worker", choices=["swinunetr", "segresnet"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker, args.case, args.runs)
        return 0
    case = args.case or _phantom_case(Path(tempfile.gettempdir()) / "gliomics_bench_case", seed=11)
    rows: list[dict[str, Any]] = []
    if args.rows:
        rows = [json.loads(line) for line in args.rows.read_text().splitlines() if line.strip()]
        args.skip = ["predict", "swinunetr", "segresnet"]
    if "predict" not in args.skip:
        if args.run is None:
            parser.error("--run is required unless --skip predict")
        rows += bench_predict(case, args.run, args.runs, nearest_too=args.nearest_too)
    baseline = None
    for kind in ("swinunetr", "segresnet"):
        if kind not in args.skip:
            rows.append(bench_monai(kind, case, args.runs))
            baseline = rows[-1] if kind == "swinunetr" else baseline
    baseline = next((r for r in rows if "SwinUNETR" in r["name"]), None)
    table = _table(rows, baseline)
    print(table)
    for r in rows:
        print(json.dumps(r))
    dice = dice_fast_vs_slow(args.run, args.dice_cohort) if args.dice_cohort and args.run else None
    if dice:
        print(json.dumps(dice, indent=2))
    if args.write:
        import torch

        command = shlex.join([".venv/bin/python", "benchmarks/speed/bench_inference.py", *(argv or sys.argv[1:])])
        body = (f"{SECTION}\n\nCommand: `{command}`\n\nMachine: {platform.machine()}, nproc {os.cpu_count()}, "
                f"torch {torch.__version__}, Python {platform.python_version()}, CPU only. Case: `{case.name}` "
                f"(240x240x155 at 1 mm, four sequences). Median of {args.runs} runs after a warm-up.\n\n{table}\n")
        if args.rows:
            body += f"\nThe timings come from an earlier run of this script, whose output lines are in `{args.rows}`.\n"
        if rows and "timings" in rows[0]:
            body += f"\nStages of one `gliomics predict` run (from its `<case>.json`): {rows[0]['timings']}.\n"
        if dice:
            fmt = ", ".join(f"{r} {dice['fast'][r]:.3f} vs {dice['slow'][r]:.3f}" for r in dice["fast"])
            body += (f"\nSame weights, fast path (crop to the head, overlap 0.25) vs slow path (no crop, overlap 0.5) "
                     f"on {dice['cases']} cases of `{args.dice_cohort}`: mean Dice {fmt}; largest difference "
                     f"{dice['max_abs_difference']:.4f}. Seconds per case: fast {dice['fast_seconds_per_case']:.2f}, "
                     f"slow {dice['slow_seconds_per_case']:.2f}.\n")
        write_section(args.write, SECTION, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
