"""bf16 against fp32 on the same validation cases: one trained run, its validation split, both precisions.

Usage::

    .venv/bin/python benchmarks/speed/bench_precision.py --run demo_output/run [--external demo_output/cohort_external]
        [--json OUT.json]

Loads ``best.pt`` of the run, preprocesses the validation cases of its ``splits.json`` exactly as the trainer does,
and runs the trainer's validation (one pass per case, ``inference.whole_volume_factor``) under fp32 and under bf16
autocast. Reports the validation Dice per label and mean, the AUC per marker, and the largest per-case differences
between the two. With ``--external``, also the cases of that cohort (labels and markers from its ``markers.csv``).
The acceptance rule of ``--precision auto``: mean Dice within 0.01 and every AUC within 0.02 of fp32.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def _cases(run: Path, cfg, cohort: Path | None) -> list:
    """The run's validation cases (or every case of ``cohort``) with a segmentation."""
    from gliomics.data.cohort import build_cohort
    from gliomics.data.splits import load_splits

    if cohort is None:
        splits = load_splits(run / "splits.json")
        source = json.loads((run / "splits.json").read_text())
        data, markers = Path(source["settings"]["data"]), source["settings"].get("markers")
        ids = set(splits["val"])
    else:
        data, markers, ids = cohort, cohort / "markers.csv", None
    cases = build_cohort(data, Path(markers) if markers else None, layout=cfg.data.layout, require_seg=True)
    return [c for c in cases if ids is None or c.case_id in ids]


def _validate(model, cases, cfg, precision: str) -> tuple[list[dict], dict, float]:
    """Validation of ``cases`` as the trainer runs it (its Predictor of the network, in ``precision``)."""
    from gliomics.inference.predictor import Predictor
    from gliomics.runtime.distributed import DistInfo
    from gliomics.training.validation import VALIDATION_OPTIONS, summarise, validate_cases

    predictor = Predictor.from_network(model, cfg, options=VALIDATION_OPTIONS, precision=precision)
    transform = predictor.transform(predictor.options)
    samples = [transform({"case": c.case}) for c in cases]
    t = time.perf_counter()
    rows = validate_cases(predictor, samples, cases, info=DistInfo())
    seconds = time.perf_counter() - t
    summary = {k: v for k, v in summarise(rows, auc_weight=0.0).items() if not isinstance(v, dict)}
    return rows, summary, seconds


def compare(run: Path, cohort: Path | None) -> dict:
    from gliomics.models.registry import create_model
    from gliomics.presets import validate_config
    from gliomics.runtime.checkpoint import BEST, load_checkpoint
    from gliomics.runtime.hardware import configure_cpu, cpu_model_name

    configure_cpu()
    state = load_checkpoint(run / BEST)
    cfg = validate_config(state["config"], "its config")
    model = create_model(cfg.model.name, **cfg.model.params)
    model.load_state_dict(state["model"])
    model.eval()
    cases = _cases(run, cfg, cohort)
    out: dict = {"run": str(run), "cohort": str(cohort) if cohort else "validation split", "cases": len(cases),
                 "cpu": cpu_model_name()}
    rows = {}
    for precision in ("fp32", "bf16"):
        rows[precision], out[precision], out[f"{precision}_seconds"] = _validate(model, cases, cfg, precision)
    a, b = rows["fp32"], rows["bf16"]
    out["max_case_dice_diff"] = max(abs(x["dice"][k] - y["dice"][k]) for x, y in zip(a, b) for k in x["dice"])
    out["max_probability_diff"] = max(abs(x["prob"][m] - y["prob"][m]) for x, y in zip(a, b) for m in x["prob"])
    out["diff"] = {k: out["bf16"][k] - out["fp32"][k] for k in out["fp32"] if k in out["bf16"]}
    out["within_rule"] = bool(abs(out["diff"].get("dice_mean", 0.0)) < 0.01 and all(
        abs(v) < 0.02 for k, v in out["diff"].items() if k.startswith("auc_")))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--external", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = [compare(args.run, None)]
    if args.external:
        results.append(compare(args.run, args.external))
    for r in results:
        keys = [k for k in r["fp32"] if k.startswith(("dice_", "auc_"))]
        print(f"{r['cohort']} ({r['cases']} cases, {r['cpu']}): fp32 {r['fp32_seconds']:.1f} s, "
              f"bf16 {r['bf16_seconds']:.1f} s; within the rule: {r['within_rule']}")
        for k in keys:
            print(f"  {k:18s} fp32 {r['fp32'][k]:.4f}  bf16 {r['bf16'][k]:.4f}  diff {r['diff'][k]:+.4f}")
        print(f"  largest per-case Dice difference {r['max_case_dice_diff']:.4f}, "
              f"probability difference {r['max_probability_diff']:.4f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
