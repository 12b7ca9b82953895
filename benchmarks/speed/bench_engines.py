"""Prediction engines side by side on BraTS-size cases: torch fp32, torch bf16 autocast and ONNX Runtime (CPU),
the same weights, runs alternating.

Usage::

    .venv/bin/python benchmarks/speed/bench_engines.py --run RUN --data COHORT [--cases 10] [--rounds 2]
        [--json OUT.json]

``RUN`` gets its ``model.onnx`` from ``gliomics export-onnx`` if it has none. Per round, each engine (in rotating
order) predicts the first ``--cases`` cases of ``COHORT`` in its own process (``gliomics predict --overwrite``; one
process per engine and round, so every engine pays its start-up once), and the seconds per case are read from the
records (``timings``: ``network_s`` and ``total_s``; the first case of each process is left out as warm-up).
Agreement with torch fp32: the mean Dice of the four labels between the label maps, and the largest marker
probability difference. Run it with nothing else on the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

ENGINES = {"torch fp32": ["--engine", "torch", "--precision", "fp32"],
           "torch bf16": ["--engine", "torch", "--precision", "bf16"],
           "onnxruntime fp32": ["--engine", "onnx"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, type=Path)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from gliomics.constants import TUMOUR_LABELS
    from gliomics.io import discover_cases
    from gliomics.labels import dice_per_region
    from gliomics.runtime.hardware import cpu_model_name, usable_cores

    gliomics = [sys.executable, "-m", "gliomics.cli.main"]
    if not (args.run / "model.onnx").is_file():
        subprocess.run([*gliomics, "export-onnx", str(args.run)], check=True, capture_output=True)
    cases = sorted(discover_cases(args.data), key=lambda c: c.case_id)[: args.cases]
    ids = [c.case_id for c in cases]
    network: dict[str, list[float]] = {e: [] for e in ENGINES}
    total: dict[str, list[float]] = {e: [] for e in ENGINES}
    with tempfile.TemporaryDirectory() as tmp:
        subset = Path(tmp) / "cases.csv"  # a manifest of the first cases
        subset.write_text("case_id,t1n,t1c,t2w,t2f\n" + "".join(
            f"{c.case_id}," + ",".join(str(c.images[s]) for s in ("t1n", "t1c", "t2w", "t2f")) + "\n" for c in cases))
        outs = {}
        for r in range(args.rounds):
            names = list(ENGINES)
            order = names[r % len(names):] + names[: r % len(names)]
            for engine in order:
                out = Path(tmp) / f"{engine.replace(' ', '_')}_{r}"
                subprocess.run([*gliomics, "predict", "-i", str(subset), "-o", str(out), "-m", str(args.run),
                                "--device", "cpu", "--no-progress", *ENGINES[engine]],
                               check=True, capture_output=True)
                records = [json.loads((out / f"{i}.json").read_text()) for i in sorted(ids)]
                network[engine] += [rec["timings"]["network_s"] for rec in records[1:]]
                total[engine] += [rec["timings"]["total_s"] for rec in records[1:]]
                outs[engine] = out
                print(f"round {r} {engine}: network {statistics.median(network[engine]):.2f} s", flush=True)
        ref = outs["torch fp32"]
        agreement = {}
        for engine, out in outs.items():
            dices, diffs = [], []
            for i in ids:
                a = np.asarray(nib.load(ref / f"{i}_seg.nii.gz").dataobj)
                b = np.asarray(nib.load(out / f"{i}_seg.nii.gz").dataobj)
                d = dice_per_region(b, a, TUMOUR_LABELS)
                dices.append(float(np.mean(list(d.values()))))
                ra, rb = (json.loads((o / f"{i}.json").read_text())["markers"] for o in (ref, out))
                diffs.append(max(abs(ra[m]["probability_raw" if "probability_raw" in ra[m] else "probability"]
                                     - rb[m]["probability_raw" if "probability_raw" in rb[m] else "probability"])
                                 for m in ra))
            agreement[engine] = {"mean_dice_vs_fp32": float(np.mean(dices)), "min_dice_vs_fp32": float(np.min(dices)),
                                 "max_prob_diff_vs_fp32": float(np.max(diffs))}
    shape = nib.load(next((args.data / ids[0]).glob("*.nii.gz"))).shape
    result = {"cpu": cpu_model_name(), "cores": usable_cores(), "cases": len(ids), "shape": list(shape),
              "engines": {e: {"network_s_median": statistics.median(network[e]),
                              "total_s_median": statistics.median(total[e]), **agreement[e]} for e in ENGINES}}
    lines = ["| engine | network s per case (median) | total s per case (median) | mean Dice vs torch fp32 (lowest) "
             "| largest probability difference |", "|---|---:|---:|---|---:|"]
    for e, v in result["engines"].items():
        lines.append(f"| {e} | {v['network_s_median']:.3f} | {v['total_s_median']:.3f} | "
                     f"{v['mean_dice_vs_fp32']:.4f} ({v['min_dice_vs_fp32']:.4f}) | {v['max_prob_diff_vs_fp32']:.1e} |")
    print(f"{len(ids)} cases of shape {tuple(shape)}, {result['cores']} cores, {result['cpu']}\n" + "\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
