"""The Python side of ``benchmarks/gpu/gpu_check.sh``: a case subset, a timed training step, and the final report.

Usage (the shell script calls these; each also runs alone)::

    python benchmarks/gpu/gpu_check_report.py subset COHORT N OUT.csv
    python benchmarks/gpu/gpu_check_report.py model-step RUN --device cuda --precision bf16 --json OUT.json
    python benchmarks/gpu/gpu_check_report.py report OUT

``subset`` writes a manifest CSV of the first N cases of a cohort (sorted by case id), so that a slow device predicts
only those. ``model-step`` times forward + backward + AdamW steps of a run's own network, patch size and batch on
random tensors (no data loading), with the peak GPU memory: set against the trainer's seconds per step it tells
whether training waited for the CPU's data pipeline. ``report`` reads the folder that ``gpu_check.sh`` wrote and
writes ``gpu_check.json`` and ``gpu_check.md`` (a markdown table for ``benchmarks/results/gpu.md``), and prints the
table.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

FOUR_LABELS = ("ET", "NETC", "SNFH", "RC")


def _read_tsv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    rows = (line.split("\t", 1) for line in path.read_text().splitlines() if "\t" in line)
    return {k: v for k, v in rows}


def subset(cohort: Path, n: int, out: Path) -> None:
    from gliomics.io import discover_cases

    cases = sorted(discover_cases(cohort), key=lambda c: c.case_id)[:n]
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["case_id", "t1n", "t1c", "t2w", "t2f"])
        for case in cases:
            writer.writerow([case.case_id, *(Path(case.images[s]).resolve() for s in ("t1n", "t1c", "t2w", "t2f"))])
    print(f"{out}: {len(cases)} cases")


def model_step(run: Path, device: str, precision: str, steps: int, json_out: Path | None) -> dict[str, Any]:
    """Median seconds of a training step (forward, loss, backward, AdamW) of ``run``'s network on random tensors."""
    import torch

    from gliomics.losses import MultiTaskLoss
    from gliomics.models.registry import create_model
    from gliomics.presets import load_preset
    from gliomics.runtime.hardware import autocast, configure_cpu, usable_cores

    cfg = load_preset(run / "config.yaml")
    dev = torch.device(device)
    if dev.type == "cpu":
        configure_cpu(usable_cores())
    batch, patch = cfg.train.batch_size, tuple(cfg.train.patch_size)
    model = create_model(cfg.model.name, **cfg.model.params).to(dev).train()
    criterion = MultiTaskLoss.from_config(cfg.loss, pos_weight={"idh": 1.0, "codel_1p19q": 1.0, "tert": 1.0}).to(dev)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 4, *patch, generator=gen).to(dev)
    targets = {"label": torch.randint(0, 5, (batch, 1, *patch), generator=gen).to(dev),
               "markers": torch.randint(0, 2, (batch, 3), generator=gen).float().to(dev),
               "supervision": torch.ones(batch, 2, device=dev)}
    present = torch.ones(batch, 4, dtype=torch.bool, device=dev)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    warmup, times = 2, []
    for i in range(steps + warmup):
        sync()
        t = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with autocast(dev, precision):
            losses = criterion(model(x, present), targets)
        losses["total"].backward()
        optimizer.step()
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    result = {"model": cfg.model.name, "patch_size": list(patch), "batch_size": batch, "device": dev.type,
              "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None, "precision": precision,
              "steps_timed": steps, "seconds_per_step": statistics.median(times),
              "peak_gpu_memory_gib": torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else None,
              "parameters_m": sum(p.numel() for p in model.parameters()) / 1e6,
              "torch": torch.__version__, "cuda": torch.version.cuda}
    print(json.dumps(result))
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=2))
    return result


def _training(run: Path) -> dict[str, Any] | None:
    """The speed figures of a run folder: the trainer's own, and the same without the first epoch (warm-up)."""
    path = run / "train_summary.json"
    if not path.is_file():
        return None
    import yaml

    summary = json.loads(path.read_text())
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    later = rows[1:]
    later_steps = sum(r["steps_in_epoch"] for r in later)
    world = summary["hardware"].get("world_size", 1)
    batch = cfg["train"]["batch_size"]
    s_step = summary["seconds_per_step"]
    return {"steps_run": summary["steps_run"], "epochs_run": summary["epochs_run"],
            "elapsed_seconds": summary["elapsed_seconds"], "seconds_per_step": s_step,
            "steps_per_s": 1.0 / s_step if s_step else None,
            "steps_per_s_after_first_epoch": (later_steps / sum(r["epoch_seconds"] for r in later)
                                              if later_steps else None),
            "samples_per_s": batch * world / s_step if s_step else None,
            "peak_gpu_memory_gib": summary.get("peak_gpu_memory_gib"),
            "world_size": world, "batch_size_per_rank": batch, "patch_size": cfg["train"]["patch_size"],
            "model": cfg["model"]["name"],
            "working_spacing_mm": cfg["data"].get("working_spacing", cfg["data"].get("spacing")),
            "loader_workers_per_rank": cfg["train"]["num_workers"], "hardware": summary["hardware"],
            "val_dice_mean": summary["val"].get("dice_mean"), "val_n_dice": summary["val"].get("n_dice"),
            "versions": summary.get("versions", {})}


def _records(folder: Path) -> dict[str, dict]:
    from gliomics.io.predictions import read_prediction_record

    if not folder.is_dir():
        return {}
    # the cases with a label map: the folder also holds predict_summary.json
    ids = sorted(p.name[:-len("_seg.nii.gz")] for p in folder.glob("*_seg.nii.gz"))
    return {cid: read_prediction_record(folder / f"{cid}.json", cid) for cid in ids}


def _timings(records: dict[str, dict]) -> dict[str, Any] | None:
    if not records:
        return None
    total = [r["timings"]["total_s"] for r in records.values()]
    network = [r["timings"].get("network_s", float("nan")) for r in records.values()]
    first = min(records)
    return {"cases": len(records), "median_total_s": statistics.median(total), "mean_total_s": float(np.mean(total)),
            "first_case_total_s": records[first]["timings"]["total_s"], "median_network_s": statistics.median(network),
            "hardware": records[first]["hardware"]}


def _agreement(a_dir: Path, b_dir: Path, a: dict[str, dict], b: dict[str, dict]) -> dict[str, Any] | None:
    """Label-map Dice and marker probability differences between two prediction folders, on their common cases."""
    from gliomics.constants import REGIONS
    from gliomics.io import load_label
    from gliomics.labels import dice_per_region

    common = sorted(set(a) & set(b))
    if not common:
        return None
    dice, agree, dp_raw, dp_cal = [], [], [], []
    per_region: dict[str, list[float]] = {r: [] for r in REGIONS}
    for cid in common:
        la = np.asarray(load_label(a_dir / f"{cid}_seg.nii.gz").array)
        lb = np.asarray(load_label(b_dir / f"{cid}_seg.nii.gz").array)
        d = dice_per_region(la, lb)
        for r, v in d.items():
            per_region[r].append(v)
        dice.append(float(np.mean([d[r] for r in FOUR_LABELS])))
        agree.append(float(np.mean(la == lb)))
        for m, va in a[cid]["markers"].items():
            vb = b[cid]["markers"][m]
            dp_raw.append(abs(va["probability_raw"] - vb["probability_raw"]))
            dp_cal.append(abs(va["probability"] - vb["probability"]))
    return {"cases": len(common), "mean_dice_four_labels": float(np.mean(dice)),
            "min_dice_four_labels": float(np.min(dice)),
            "dice_per_region": {r: float(np.mean(v)) for r, v in per_region.items()},
            "voxel_agreement_min": float(np.min(agree)),
            "max_marker_probability_raw_diff": float(np.max(dp_raw)),
            "max_marker_probability_diff": float(np.max(dp_cal))}


def _truth_dice(pred_dir: Path, cohort: Path, records: dict[str, dict]) -> dict[str, Any] | None:
    """Mean Dice of the four labels against the phantom's own segmentations (what a short run has learnt)."""
    from gliomics.io import load_label
    from gliomics.labels import dice_per_region

    scores = []
    for cid in records:
        ref = cohort / cid / f"{cid}-seg.nii.gz"
        if not ref.is_file():
            continue
        d = dice_per_region(np.asarray(load_label(pred_dir / f"{cid}_seg.nii.gz").array),
                            np.asarray(load_label(ref).array), FOUR_LABELS)
        scores.append(float(np.mean(list(d.values()))))
    return {"cases": len(scores), "mean_dice_four_labels": float(np.mean(scores))} if scores else None


def _fmt(value: Any, spec: str = ".3f", missing: str = "n/a") -> str:
    return missing if value is None else format(value, spec)


def _cases(n: int) -> str:
    return f"{n} case" if n == 1 else f"{n} cases"


def _peak(gib: float | None) -> str:
    return "" if gib is None else f"; peak GPU memory {gib:.1f} GiB"


def _markdown(res: dict[str, Any]) -> str:
    s, m = res["settings"], res["machine"]
    mode = "CPU smoke run (tiny model, not a measurement)" if s.get("mode") == "cpu-smoke" else "GPU check"
    lines = [f"**{mode}**: `bash benchmarks/gpu/gpu_check.sh` ({res['date']})", "",
             f"GPU: {m.get('gpu') or 'none'}; CPU: {m.get('cpu_model') or '?'}, {m.get('nproc')} cores; "
             f"torch {m.get('torch') or '?'} (CUDA {m.get('cuda') or 'none'})", "",
             "| step | figure |", "|---|---|"]
    stages = res["stages_s"]
    lines.append(f"| phantom: {s.get('train_cases')} training cases + {s.get('test_cases')} test cases (unseen site) "
                 f"at {s.get('spacing_mm')} mm, {s.get('phantom_workers')} workers | "
                 f"{_fmt(stages.get('phantom'), '.0f')} s |")
    for key, label in (("train_1", "1 rank"), ("train_2", "2 ranks (torchrun, DDP)")):
        t = res.get(key)
        if t is None:
            note = res.get(f"{key}_note", "not run")
            lines.append(f"| train `{s.get('preset')}`, {label} | {note} |")
            continue
        hw = t["hardware"]
        lines.append(
            f"| train `{t['model']}` {'×'.join(map(str, t['patch_size']))} patches, batch {t['batch_size_per_rank']} "
            f"per rank, {hw['precision']}, {label} on {hw.get('gpu') or hw['device']}, "
            f"{t['loader_workers_per_rank']} loader worker{'' if t['loader_workers_per_rank'] == 1 else 's'} per "
            f"rank | {t['steps_run']} steps: "
            f"{_fmt(t['seconds_per_step'])} s per step, {_fmt(t['steps_per_s'], '.2f')} steps/s "
            f"({_fmt(t['steps_per_s_after_first_epoch'], '.2f')} after the first epoch), "
            f"{_fmt(t['samples_per_s'], '.1f')} samples/s{_peak(t['peak_gpu_memory_gib'])}"
            f"{' (rank 0)' if t['world_size'] > 1 and t['peak_gpu_memory_gib'] is not None else ''}; "
            f"wall {_fmt(stages.get(key), '.0f')} s |")
    ms = res.get("model_step")
    if ms:
        lines.append(f"| the same network's step on random tensors (no data loading), {ms['precision']} | "
                     f"{_fmt(ms['seconds_per_step'])} s per step{_peak(ms['peak_gpu_memory_gib'])} |")
    for key in ("predict_accel", "predict_cpu"):
        p = res.get(key)
        if p is None:
            continue
        hw = p["hardware"]
        lines.append(f"| predict {_cases(p['cases'])} of the test site ({s.get('spacing_mm')} mm phantoms, no TTA) on "
                     f"{hw.get('gpu') or hw['device']}, {hw['precision']}, {hw['threads']} threads | "
                     f"median {_fmt(p['median_total_s'], '.2f')} s per case (network "
                     f"{_fmt(p['median_network_s'], '.2f')} s; first case {_fmt(p['first_case_total_s'], '.2f')} s) |")
    t = res.get("truth_dice_accel")
    if t:
        lines.append(f"| mean Dice of the four labels against the phantom's truth ({_cases(t['cases'])}; a short "
                     "run, not a result) | "
                     f"{_fmt(t['mean_dice_four_labels'])} |")
    a = res.get("agreement")
    if a:
        hw = res["predict_accel"]["hardware"]
        lines.append(f"| {hw['precision']} on {hw.get('gpu') or hw['device']} against fp32 on the CPU, same weights, "
                     f"{_cases(a['cases'])} | "
                     f"label maps: mean Dice {_fmt(a['mean_dice_four_labels'])} (lowest "
                     f"{_fmt(a['min_dice_four_labels'])}), voxels equal ≥ {_fmt(a['voxel_agreement_min'], '.4f')}; "
                     f"largest marker probability difference {_fmt(a['max_marker_probability_raw_diff'], '.4f')} "
                     f"(raw), {_fmt(a['max_marker_probability_diff'], '.4f')} (calibrated) |")
    lines.append(f"| whole check | {_fmt(stages.get('total'), '.0f')} s |")
    return "\n".join(lines) + "\n"


def report(out: Path) -> dict[str, Any]:
    settings = _read_tsv(out / "settings.tsv")
    stages = {k: float(v) for k, v in _read_tsv(out / "stages.tsv").items()}
    machine_dir = out / "machine"
    gpu_csv = (machine_dir / "nvidia_smi.csv").read_text().strip() if (machine_dir / "nvidia_smi.csv").is_file() \
        else ""
    gpus = [line for line in gpu_csv.splitlines()[1:] if line.strip()]
    lscpu = (machine_dir / "lscpu.txt").read_text() if (machine_dir / "lscpu.txt").is_file() else ""
    cpu_model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines()
                      if line.startswith("Model name")), None)
    step = json.loads((out / "model_step.json").read_text()) if (out / "model_step.json").is_file() else None
    res: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "settings": settings, "stages_s": stages}
    res["train_1"] = _training(out / "run_1")
    res["train_2"] = _training(out / "run_2")
    if res["train_2"] is None:
        res["train_2_note"] = settings.get("ddp_note", "not run")
    versions = (res["train_1"] or {}).get("versions", {})
    res["machine"] = {"cpu_model": cpu_model, "nproc": settings.get("nproc"),
                      "gpu": "; ".join(gpus) if gpus else None, "gpu_count": len(gpus),
                      "nvidia_smi": gpu_csv or None, "torch": (step or {}).get("torch") or versions.get("torch"),
                      "cuda": (step or {}).get("cuda"), "python": versions.get("python"),
                      "gliomics": versions.get("gliomics")}
    res["model_step"] = step
    accel, cpu = _records(out / "pred_accel"), _records(out / "pred_cpu")
    res["predict_accel"], res["predict_cpu"] = _timings(accel), _timings(cpu)
    res["truth_dice_accel"] = _truth_dice(out / "pred_accel", out / "cohort_test", accel) if accel else None
    res["agreement"] = _agreement(out / "pred_accel", out / "pred_cpu", accel, cpu)
    (out / "gpu_check.json").write_text(json.dumps(res, indent=2))
    table = _markdown(res)
    (out / "gpu_check.md").write_text(table)
    print(table, end="")
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("subset", help="a manifest CSV of the first N cases of a cohort")
    p.add_argument("cohort", type=Path)
    p.add_argument("n", type=int)
    p.add_argument("out", type=Path)
    p = sub.add_parser("model-step", help="time a run's training step on random tensors")
    p.add_argument("run", type=Path)
    p.add_argument("--device", default="cuda")
    p.add_argument("--precision", default="bf16", choices=("fp32", "bf16"))
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--json", type=Path)
    p = sub.add_parser("report", help="gpu_check.json and the markdown table of a gpu_check.sh folder")
    p.add_argument("out", type=Path)
    args = parser.parse_args()
    if args.command == "subset":
        subset(args.cohort, args.n, args.out)
    elif args.command == "model-step":
        model_step(args.run, args.device, args.precision, args.steps, args.json)
    else:
        report(args.out)


if __name__ == "__main__":
    main()
