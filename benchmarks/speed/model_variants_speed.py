"""Seconds per optimizer step of ``mgmtnet_cpu`` and of variants with one hyperparameter changed: where the training
time of the model goes, variant by variant.

Usage::

    .venv/bin/python benchmarks/speed/model_variants_speed.py [--precision bf16] [--threads 2] [--steps 9]
        [--variant NAME=PARAM=VALUE ...]

Each step is the network's forward pass on a random batch of the preset's shape (2 × 4 × 48³), a loss touching every
output (segmentation, deep supervision, markers), the backward pass and AdamW, under the trainer's autocast; the
median of the steps after the first two. The data pipeline and the real loss are left out (``profile_cpu.py`` has
them). Run it with nothing else on the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

#: Variants measured by default: name -> parameter overrides of the preset.
VARIANTS: dict[str, dict] = {
    "mgmtnet_cpu": {},
    "no attention gates": {"attention_gate": False},
    "no deep supervision": {"deep_supervision": False},
    "Swin depths (1, 1)": {"swin_depths": (1, 1)},
    "no CMAF residual path": {"fusion_residual": False},
    "no tumour descriptors": {"descriptors": False},
    "feature size 8": {"feature_size": 8},
    "embedding channels 4": {"embed_channels": 4},
}


def step_seconds(params: dict, *, precision: str, steps: int, batch: int = 2, size: int = 48) -> float:
    from gliomics.models.registry import create_model
    from gliomics.runtime.hardware import autocast

    torch.manual_seed(0)
    x = torch.randn(batch, 4, size, size, size)
    model = create_model("mgmtnet_cpu", **params).train()
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        with autocast(torch.device("cpu"), precision):
            out = model(x)
            loss = (out["seg"].float().mean() + sum(a.float().mean() for a in out["deep_supervision"])
                    + sum(v.float().mean() for v in out["markers"].values()))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times[2:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=9)
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=PARAM=VALUE",
                        help="measure only these (VALUE is JSON); default: the built-in list")
    args = parser.parse_args()

    from gliomics.models.registry import create_model
    from gliomics.runtime.hardware import configure_cpu, cpu_model_name, resolve_precision

    configure_cpu(args.threads)
    precision = resolve_precision(args.precision, torch.device("cpu"))
    variants = VARIANTS
    if args.variant:
        variants = {}
        for text in args.variant:
            name, param, value = text.split("=", 2)
            variants[name] = {param: json.loads(value)}
    base = None
    print(f"CPU: {cpu_model_name()}, {args.threads} threads, {precision}\n")
    print("| variant | parameters (M) | s per step | against mgmtnet_cpu |\n|---|---:|---:|---:|")
    for name, params in variants.items():
        seconds = step_seconds(params, precision=precision, steps=args.steps)
        base = base or seconds
        n = sum(p.numel() for p in create_model("mgmtnet_cpu", **params).parameters()) / 1e6
        print(f"| {name} | {n:.2f} | {seconds:.3f} | {base / seconds:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
