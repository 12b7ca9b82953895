"""Two evaluations of one model side by side (internal vs external, the paper's Table 3): Dice per region and marker
AUCs of each with their 95% CIs, and the difference with its CI.

The two evaluations hold different cases, so the Dice difference is bootstrapped with each group resampled on its own
(:func:`~gliomics.evaluation.bootstrap.mean_difference_ci`) and the AUC difference uses the two DeLong standard
errors as independent (``se = sqrt(se_a² + se_b²)``).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from scipy import stats

from gliomics.constants import MARKERS, TUMOUR_LABELS
from gliomics.errors import InputError
from gliomics.evaluation.bootstrap import mean_difference_ci

SIDE_BY_SIDE = "side_by_side.md"
_Z95 = float(stats.norm.ppf(0.975))


def load_evaluation(folder: Path) -> tuple[dict, list[dict]]:
    summary, per_case = folder / "summary.json", folder / "per_case.csv"
    if not summary.is_file() or not per_case.is_file():
        raise InputError(f"{folder}: not an evaluation folder (needs summary.json and per_case.csv from "
                         "`gliomics evaluate`)")
    with open(per_case, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return json.loads(summary.read_text()), rows


def _column(rows: list[dict], key: str) -> list[float]:
    return [float(r[key]) for r in rows if r.get(key) not in (None, "")]


def _ci(stat: dict | None) -> str:
    return "–" if not stat else f"{stat['mean']:.3f} [{stat['lo']:.3f}, {stat['hi']:.3f}]"


def compare_evaluations(a: Path | str, b: Path | str, n_boot: int = 2000) -> dict[str, Any]:
    """Per region (whole-volume and lesion-wise Dice, and their mean over the four labels) and per marker (AUC):
    ``a``, ``b`` and ``a − b`` with 95% CIs."""
    (sa, ra), (sb, rb) = load_evaluation(Path(a)), load_evaluation(Path(b))
    out: dict[str, Any] = {"dice": {}, "auc": {}}
    for kind, suffix, mean_key in (("dice", "dice", "mean_dice"), ("lesion_dice", "lesion_dice", "mean_lesion_dice")):
        for region in TUMOUR_LABELS:
            seg_a, seg_b = sa.get("segmentation", {}).get(region), sb.get("segmentation", {}).get(region)
            if not seg_a or not seg_b:
                continue
            out["dice"][f"{region} {kind}"] = {
                "a": seg_a[kind], "b": seg_b[kind],
                "diff": mean_difference_ci(_column(ra, f"{region}_{suffix}"), _column(rb, f"{region}_{suffix}"),
                                           n_boot)}
        case_means = [[sum(float(r[f"{lab}_{suffix}"]) for lab in TUMOUR_LABELS) / len(TUMOUR_LABELS)
                       for r in rows if all(r.get(f"{lab}_{suffix}") not in (None, "") for lab in TUMOUR_LABELS)]
                      for rows in (ra, rb)]
        if sa.get(mean_key) and sb.get(mean_key):
            out["dice"][f"mean {kind}"] = {"a": sa[mean_key], "b": sb[mean_key],
                                           "diff": mean_difference_ci(*case_means, n_boot)}
    for m in MARKERS:
        ma, mb = sa.get("markers", {}).get(m), sb.get("markers", {}).get(m)
        if not ma or not mb or ma.get("auc") is None or mb.get("auc") is None:
            continue
        diff = ma["auc"] - mb["auc"]
        se = math.sqrt(ma.get("auc_se", math.nan) ** 2 + mb.get("auc_se", math.nan) ** 2)
        out["auc"][m] = {"a": ma, "b": mb, "diff": {"mean": diff, "lo": diff - _Z95 * se, "hi": diff + _Z95 * se}}
    return out


def side_by_side_table(result: dict[str, Any], name_a: str, name_b: str) -> str:
    """Markdown of :func:`compare_evaluations`."""
    lines = [f"| | {name_a} | {name_b} | difference [95% CI] |", "|---|---|---|---|"]
    for key, v in result["dice"].items():
        lines.append(f"| {key.replace('_', ' ')} | {_ci(v['a'])} | {_ci(v['b'])} | {_ci(v['diff'])} |")
    for m, v in result["auc"].items():
        a, b = v["a"], v["b"]
        ca = a.get("auc_ci_delong") or [math.nan, math.nan]
        cb = b.get("auc_ci_delong") or [math.nan, math.nan]
        lines.append(f"| {m} AUC | {a['auc']:.3f} [{ca[0]:.3f}, {ca[1]:.3f}] | {b['auc']:.3f} "
                     f"[{cb[0]:.3f}, {cb[1]:.3f}] | {_ci(v['diff'])} |")
    return "\n".join(lines) + "\n"
