"""A short check of gliomics on one CUDA GPU: bf16 against fp32 training and prediction, and the paper preset's speed.

Usage (on a machine with a GPU, from the repository root)::

    PYTHONPATH=src python benchmarks/gpu/gpu_check.py --out /tmp/gpucheck [--epochs 6] [--json OUT.json]

1. Generates a phantom cohort (48 cases at 3 mm, six sites) and an unseen site (16 cases), trains ``mgmtnet_cpu`` for
   ``--epochs`` epochs with ``--precision fp32`` and again with ``--precision bf16`` (``auto`` on CUDA), seed 1, and
   records the seconds per epoch of each.
2. Predicts the unseen site with the bf16 run twice, in fp32 and in bf16, and reports the largest difference of the
   marker probabilities and the Dice between the two label maps (the inference side of the bf16 check).
3. Times the paper preset ``mgmtnet`` (128^3 patches, batch 2) for forward + backward + AdamW steps in fp32 and bf16
   autocast, with the peak GPU memory of each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch


def _train(cohort: Path, out: Path, epochs: int, precision: str) -> dict:
    from gliomics.presets import apply_overrides, load_preset
    from gliomics.training.trainer import run_training

    cfg = apply_overrides(load_preset("mgmtnet_cpu"), ["train.seed=1", "train.num_workers=2"])
    return run_training(cfg, data=cohort, markers=cohort / "markers.csv", out=out, epochs=epochs, device="cuda",
                        precision=precision, progress=False)


def _predict(run: Path, cohort: Path, out: Path, precision: str) -> dict[str, dict]:
    from gliomics.inference.predictor import Predictor

    Predictor("cuda", tta=True, precision=precision).load(run).predict_folder(cohort, out, progress=False,
                                                                               overwrite=True)
    return {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}


def _paper_preset_steps(precision: str, steps: int = 5) -> dict:
    from gliomics.losses import MultiTaskLoss
    from gliomics.models.registry import create_model
    from gliomics.presets import load_preset
    from gliomics.runtime.hardware import autocast

    dev = torch.device("cuda")
    cfg = load_preset("mgmtnet")
    model = create_model("mgmtnet").to(dev).train()
    criterion = MultiTaskLoss.from_config(cfg.loss, pos_weight={"idh": 1.0, "codel_1p19q": 1.0, "tert": 1.0}).to(dev)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(2, 4, 128, 128, 128, device=dev)
    label = torch.randint(0, 5, (2, 1, 128, 128, 128), device=dev)
    markers = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]], device=dev)
    torch.cuda.reset_peak_memory_stats(dev)
    times = []
    for i in range(steps + 2):
        torch.cuda.synchronize(dev)
        t = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with autocast(dev, precision):
            losses = criterion(model(x), {"label": label, "markers": markers})
        losses["total"].backward()
        optimizer.step()
        torch.cuda.synchronize(dev)
        if i >= 2:
            times.append(time.perf_counter() - t)
    return {"step_s": statistics.median(times), "peak_gb": torch.cuda.max_memory_allocated(dev) / 2**30,
            "parameters_m": sum(p.numel() for p in model.parameters()) / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from gliomics.io import load_label
    from gliomics.labels import dice_per_region
    from gliomics.phantom import PhantomSettings, generate_cohort

    train, ext = args.out / "train", args.out / "external"
    generate_cohort(train, PhantomSettings(cases=48, spacing=3.0, sites=6, seed=1), workers=8, progress=False)
    generate_cohort(ext, PhantomSettings(cases=16, spacing=3.0, sites=1, seed=2, site_start=6), workers=8,
                    progress=False)
    result: dict = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}
    for precision in ("fp32", "bf16"):
        summary = _train(train, args.out / f"run_{precision}", args.epochs, precision)
        result[f"train_{precision}"] = {k: summary[k] for k in ("seconds_per_epoch", "seconds_per_step",
                                                                "epochs_run", "hardware")}
        result[f"train_{precision}"]["val"] = summary["val"]
        print(precision, json.dumps(result[f"train_{precision}"]), flush=True)
    run = args.out / "run_bf16"
    fp32 = _predict(run, ext, args.out / "pred_fp32", "fp32")
    bf16 = _predict(run, ext, args.out / "pred_bf16", "bf16")
    diffs, dice = [], []
    for cid, rec in fp32.items():
        other = bf16[cid]
        diffs += [abs(rec["markers"][m]["probability"] - other["markers"][m]["probability"]) for m in rec["markers"]]
        a = np.asarray(load_label(args.out / "pred_fp32" / f"{cid}_seg.nii.gz").array)
        b = np.asarray(load_label(args.out / "pred_bf16" / f"{cid}_seg.nii.gz").array)
        dice.append(float(np.nanmean(list(dice_per_region(a, b).values()))))
    result["predict_bf16_vs_fp32"] = {"cases": len(fp32), "max_marker_probability_diff": max(diffs),
                                      "mean_label_dice": float(np.mean(dice)), "min_label_dice": float(np.min(dice)),
                                      "seconds_per_case_fp32": float(np.mean([r["timings"]["total_s"]
                                                                              for r in fp32.values()])),
                                      "seconds_per_case_bf16": float(np.mean([r["timings"]["total_s"]
                                                                              for r in bf16.values()]))}
    print(json.dumps(result["predict_bf16_vs_fp32"]), flush=True)
    for precision in ("fp32", "bf16"):
        result[f"mgmtnet_128_{precision}"] = _paper_preset_steps(precision)
        print(precision, json.dumps(result[f"mgmtnet_128_{precision}"]), flush=True)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
