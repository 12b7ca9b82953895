"""Agreement of ``gliomics evaluate --rule brats2025`` with the official BraTS 2025 scorer on the same predictions.

The official scorer (``brats-evaluation``, AGPL-3.0) is never a dependency of gliomics: install it in a separate
environment and point ``--official`` at that environment's ``brats-evaluate`` script::

    python3 -m venv /tmp/bevenv && /tmp/bevenv/bin/pip install brats-evaluation==0.0.10
    .venv/bin/python benchmarks/studies/brats2025_agreement.py --official /tmp/bevenv/bin/brats-evaluate \\
        --pred PRED_DIR --ref COHORT [--pred PRED_DIR2 --ref COHORT2 ...] --out /tmp/agreement

For each (prediction folder, cohort) pair it runs ``gliomics evaluate --rule brats2025`` in this process and the
official scorer (``--config gli``) in a subprocess on the same label maps, and compares every value of every case
and region. Prints a Markdown table: per metric, the values compared, the largest absolute difference and the share
that agree to 3 decimals. An infinite HD95 of the official scorer counts as the penalty gliomics writes (373).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

from gliomics.constants import REGIONS
from gliomics.evaluation.evaluate import BRATS2025, evaluate_predictions
from gliomics.evaluation.segmentation_brats2025 import HD95_PENALTY_MM, PANOPTICA_KEYS
from gliomics.io import discover_cases
from gliomics.io.predictions import SEG_SUFFIX


def official_scores(official: Path, pred_dir: Path, ref: Path, work: Path) -> dict[str, dict]:
    """Run the official scorer on the pairs of ``pred_dir`` and ``ref``; {case id: {group: panoptica's dict}}."""
    refs, preds = work / "ref", work / "pred"
    refs.mkdir(parents=True)
    preds.mkdir()
    for case in discover_cases(ref, allow_missing=True):
        seg = pred_dir / f"{case.case_id}{SEG_SUFFIX}"
        if case.seg is not None and seg.is_file():
            (refs / f"{case.case_id}.nii.gz").symlink_to(Path(case.seg).resolve())
            (preds / f"{case.case_id}.nii.gz").symlink_to(seg.resolve())
    summary = work / "official.json"
    subprocess.run([str(official), "--ref_path", str(refs), "--pred_path", str(preds), "--config", "gli",
                    "--summary_json", str(summary)], check=True, stdout=subprocess.DEVNULL)
    data = json.loads(summary.read_text())
    if data.get("missings"):
        raise SystemExit(f"the official scorer skipped {data['missings']}")
    return {m["subject_name"].removesuffix(".nii.gz"): m for m in data["metrics"]}


def _number(value) -> float:
    if value is None:
        return math.nan
    value = float(value)
    return HD95_PENALTY_MM if math.isinf(value) else value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--official", type=Path, required=True, help="brats-evaluate of a separate environment")
    ap.add_argument("--pred", type=Path, action="append", required=True)
    ap.add_argument("--ref", type=Path, action="append", required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if len(args.pred) != len(args.ref):
        raise SystemExit("give one --ref per --pred")
    diffs: dict[str, list[float]] = {k: [] for k in PANOPTICA_KEYS}
    both_nan: dict[str, int] = {k: 0 for k in PANOPTICA_KEYS}
    cases = 0
    for i, (pred_dir, ref) in enumerate(zip(args.pred, args.ref)):
        out = args.out / f"pair{i}"
        evaluate_predictions(pred_dir, ref, out=out / "evaluation", n_boot=100, rule="brats2025")
        with open(out / "evaluation" / "per_case.csv", newline="") as fh:
            ours = {r["case_id"]: r for r in csv.DictReader(fh)}
        with tempfile.TemporaryDirectory() as tmp:
            theirs = official_scores(args.official, pred_dir, ref, Path(tmp))
        if set(theirs) != set(ours):
            raise SystemExit(f"{pred_dir}: the two scorers saw different cases")
        cases += len(ours)
        for case_id, row in ours.items():
            for region in REGIONS:
                official = theirs[case_id][region.lower()]
                for key, theirs_key in PANOPTICA_KEYS.items():
                    a, b = _number(row[f"{region}_{BRATS2025}_{key}"] or math.nan), _number(official.get(theirs_key))
                    if math.isnan(a) and math.isnan(b):
                        both_nan[key] += 1
                    else:
                        diffs[key].append(abs(a - b) if not (math.isnan(a) or math.isnan(b)) else math.inf)
        print(f"{pred_dir} against {ref}: {len(ours)} cases", file=sys.stderr)
    lines = [f"{cases} cases × {len(REGIONS)} regions", "",
             "| metric | gliomics column | values compared | both undefined | largest difference "
             "| agree to 3 decimals |",
             "|---|---|---:|---:|---:|---:|"]
    for key, theirs_key in PANOPTICA_KEYS.items():
        d = diffs[key]
        agree = sum(x < 5e-4 for x in d)
        lines.append(f"| `{theirs_key}` | `{key}` | {len(d)} | {both_nan[key]} | {max(d, default=0):.2e} | "
                     f"{agree}/{len(d)} |")
    text = "\n".join(lines)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "agreement.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
