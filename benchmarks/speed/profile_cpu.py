"""Where the CPU time of training and prediction goes: ``torch.profiler`` tables and a split of one training step.

Usage::

    .venv/bin/python benchmarks/speed/profile_cpu.py --data COHORT [--steps 12] [--preset mgmtnet_cpu]
        [--precision fp32|bf16|auto] [--threads 2] [--rows 15] [--json OUT.json]

``COHORT`` is a phantom cohort with segmentations (``gliomics phantom --out COHORT --cases 24 --spacing 3``). The
script builds the trainer's own loader (the preset's augmentation, patch size and batch size), then

1. times ``--steps`` batches of the loader alone (decoding is cached, so this is the augmentation on the main
   thread),
2. times ``--steps`` optimizer steps on batches drawn before the clock starts (forward, loss, backward, step),
3. profiles ``--steps`` steps, loader included, with ``torch.profiler`` and prints the top ops by self CPU time,
4. profiles the predictor's forward pass on the first case (whole head at the working spacing, flip TTA as
   ``gliomics predict`` does) and prints its top ops.

Run it with nothing else on the machine; the tables go to stdout in Markdown.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch


def _table(prof, rows: int) -> list[dict]:
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    return [{"op": e.key, "self_ms": e.self_cpu_time_total / 1000.0, "share": e.self_cpu_time_total / total,
             "calls": e.count} for e in events[:rows]]


def _markdown(title: str, rows: list[dict]) -> str:
    lines = [f"**{title}**", "", "| op | self CPU (ms) | share | calls |", "|---|---:|---:|---:|"]
    lines += [f"| `{r['op']}` | {r['self_ms']:.0f} | {100 * r['share']:.1f} % | {r['calls']} |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--preset", default="mgmtnet_cpu")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", type=int, default=15)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from torch.profiler import ProfilerActivity, profile

    from gliomics.data.cohort import build_cohort, median_spacing
    from gliomics.data.transforms import inference_transforms
    from gliomics.inference.engine import forward_with_tta, pad_multiple
    from gliomics.losses import MultiTaskLoss
    from gliomics.models.registry import create_model
    from gliomics.presets import load_preset
    from gliomics.runtime.distributed import DistInfo
    try:
        from gliomics.training.data import make_loader as _loader
        from gliomics.training.data import marker_pos_weight as _pos_weight
    except ImportError:  # a commit from before the training data had a module of its own
        from gliomics.training.trainer import _loader, _pos_weight

    try:
        from gliomics.runtime.hardware import autocast, configure_cpu, cpu_model_name, resolve_precision
    except ImportError:  # a commit from before --precision, profiled for the "before" table: fp32, plain threads
        import contextlib

        def autocast(device, precision):
            return contextlib.nullcontext()

        def configure_cpu(threads):
            torch.set_num_threads(threads)

        def cpu_model_name():
            return platform.processor() or platform.machine()

        def resolve_precision(precision, device):
            return "fp32"

    configure_cpu(args.threads)
    precision = resolve_precision(args.precision, torch.device("cpu"))
    cfg = load_preset(args.preset)
    cases = build_cohort(args.data, args.data / "markers.csv", layout=cfg.data.layout, require_seg=True)
    field = "working_spacing" if hasattr(cfg.data, "working_spacing") else "spacing"  # older commits: data.spacing
    if getattr(cfg.data, field) is None:
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={field: median_spacing(cases)})})
    loader = _loader(cfg, cases, DistInfo(), cfg.train.seed)
    model = create_model(cfg.model.name, **cfg.model.params)
    criterion = MultiTaskLoss.from_config(cfg.loss, pos_weight=_pos_weight(cfg, cases))
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr)

    def batches():
        while True:
            yield from loader

    stream = batches()
    next(stream)  # fills the cache

    def step(batch) -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(torch.device("cpu"), precision):
            out = model(batch["image"], batch["present"])
            loss = criterion(out, {"label": batch["label"], "markers": batch["markers"]})["total"]
        loss.backward()
        optimizer.step()

    model.train()
    t_load = []
    for _ in range(args.steps):
        t = time.perf_counter()
        next(stream)
        t_load.append(time.perf_counter() - t)
    held = [next(stream) for _ in range(args.steps)]
    step(held[0])
    t_step = []
    for batch in held:
        t = time.perf_counter()
        step(batch)
        t_step.append(time.perf_counter() - t)
    with profile(activities=[ProfilerActivity.CPU]) as prof_train:
        for _ in range(args.steps):
            step(next(stream))

    model.eval()
    transform = inference_transforms(spacing=getattr(cfg.data, field), divisible=pad_multiple(model))
    sample = transform({"case": cases[0].case})
    image, present = sample["image"].as_tensor()[None], sample["present"][None]
    settings = getattr(cfg, "inference", cfg.train)  # a commit from before the inference section kept it in train
    kwargs = {"roi_size": cfg.train.patch_size, "whole_volume_factor": settings.whole_volume_factor,
              "divisor": pad_multiple(model)}
    with autocast(torch.device("cpu"), precision):
        forward_with_tta(model, image, present, **kwargs)
        t_pred = []
        for _ in range(3):
            t = time.perf_counter()
            forward_with_tta(model, image, present, **kwargs)
            t_pred.append(time.perf_counter() - t)
        with profile(activities=[ProfilerActivity.CPU]) as prof_pred:
            forward_with_tta(model, image, present, **kwargs)

    result = {
        "cpu": cpu_model_name(), "machine": platform.machine(), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "precision": precision, "preset": args.preset, "steps": args.steps,
        "batch_size": cfg.train.batch_size, "patch_size": cfg.train.patch_size,
        "loader_s_per_batch": statistics.median(t_load), "step_s": statistics.median(t_step),
        "predict_volume": list(image.shape[2:]), "predict_forward_tta_s": statistics.median(t_pred),
        "train_ops": _table(prof_train, args.rows), "predict_ops": _table(prof_pred, args.rows),
    }
    print(f"CPU {result['cpu']}, {result['threads']} threads, torch {result['torch']}, precision {precision}")
    print(f"loader: {result['loader_s_per_batch']:.3f} s/batch; optimizer step (forward+loss+backward+AdamW): "
          f"{result['step_s']:.3f} s (median of {args.steps}); prediction forward with flip TTA on "
          f"{'x'.join(map(str, result['predict_volume']))}: {result['predict_forward_tta_s']:.3f} s\n")
    print(_markdown(f"Training, {args.steps} steps, loader included", result["train_ops"]) + "\n")
    print(_markdown("Prediction, one case, flip TTA", result["predict_ops"]))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
