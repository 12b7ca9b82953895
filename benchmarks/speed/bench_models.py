"""Parameter count and CPU speed of every registered model at its preset patch size.

Usage::

    .venv/bin/python benchmarks/speed/bench_models.py [--models mgmtnet_cpu segresnet] [--runs 5] [--threads 2]
        [--backward-large] [--write benchmarks/results/speed.md]

Each model runs in its own subprocess (a 128^3 model leaves the allocator in a state that slows the next one down).
Batch 1, ``torch.set_num_threads(threads)``, one warm-up run, then the median of ``runs`` runs (3 for presets
with patches of 128^3 or more). Forward is timed in eval mode under ``torch.no_grad()``; forward+backward in
training mode on the sum of all outputs. At 128^3 the backward pass needs many GB of memory and minutes per run, so
it is skipped unless ``--backward-large`` is given. ``--write`` replaces the section "Model size and speed" of the
given Markdown file (other sections are kept).
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
import time
from pathlib import Path
from typing import Any

import torch

from gliomics.models.registry import default_patch_size, get_model_entry, list_models

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # results_md
from results_md import write_section  # noqa: E402

SECTION = "## Model size and speed"
LARGE = 128**3


def _scalar(out: dict[str, Any]) -> torch.Tensor:
    total = torch.zeros(())
    for key in ("seg", "deep_supervision", "markers"):
        value = out.get(key)
        if value is None:
            continue
        items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else [value]
        for t in items:
            total = total + t.float().mean()
    return total


def _median_time(fn: Any, runs: int) -> float:
    fn()  # warm-up: allocator, oneDNN kernel selection
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(name: str, runs: int, backward_large: bool) -> dict[str, Any]:
    from gliomics.models.registry import create_model

    torch.manual_seed(0)
    model = create_model(name)
    size = default_patch_size(name)
    x = torch.randn(1, model.in_channels, *size)
    voxels = x[0, 0].numel()
    n_runs = 3 if voxels >= LARGE else runs
    params = sum(p.numel() for p in model.parameters())

    model.eval()

    def forward() -> None:
        with torch.no_grad():
            model(x)

    fwd = _median_time(forward, n_runs)
    fwd_bwd = None
    if voxels < LARGE or backward_large:
        model.train()

        def step() -> None:
            model.zero_grad(set_to_none=True)
            _scalar(model(x)).backward()

        fwd_bwd = _median_time(step, n_runs)
    return {"name": name, "params": params, "patch": size, "runs": n_runs, "forward": fwd, "forward_backward": fwd_bwd}


def _table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| model | parameters | patch | runs | forward (s) | forward+backward (s) |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        fb = f"{r['forward_backward']:.2f}" if r["forward_backward"] is not None else "not measured"
        patch = "x".join(str(s) for s in r["patch"])
        lines.append(
            f"| `{r['name']}` | {r['params'] / 1e6:.2f} M | {patch} | {r['runs']} | {r['forward']:.2f} | {fb} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=None, help="presets to measure (default: all)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs after one warm-up (3 at 128^3)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backward-large", action="store_true", help="also time forward+backward at 128^3")
    parser.add_argument("--write", type=Path, default=None, help="Markdown file whose section to replace")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: measure one model, print JSON
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    if args.one is not None:
        print(json.dumps(bench(args.one, args.runs, args.backward_large)))
        return 0
    names = args.models or list_models()
    for n in names:
        get_model_entry(n)  # fail early on a typo
    rows = []
    for n in names:
        cmd = [sys.executable, __file__, "--one", n, "--runs", str(args.runs), "--threads", str(args.threads)]
        if args.backward_large:
            cmd.append("--backward-large")
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(_table([row]).splitlines()[-1], flush=True)

    python = os.path.relpath(sys.executable)
    python = python if not python.startswith("..") else "python"
    command = " ".join(shlex.quote(a) for a in [python, Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    machine = (
        f"{platform.machine()}, nproc {os.cpu_count()}, torch.set_num_threads({args.threads}), "
        f"torch {torch.__version__}, Python {platform.python_version()}, CPU only, batch 1"
    )
    body = (
        f"{SECTION}\n\n"
        f"Command: `{command}`\n\n"
        f"Machine: {machine}. Median of the timed runs after one warm-up; forward in eval mode without gradients, "
        f"forward+backward in training mode (deep supervision on); at 128^3 it is skipped unless "
        f"`--backward-large` is given (many GB of memory, minutes per step). Each model runs in its own process; "
        f"the machine may be shared with other jobs, so treat the figures as +-20%.\n\n"
        f"{_table(rows)}\n"
    )
    print()
    print(body)
    if args.write is not None:
        write_section(args.write, SECTION, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
