"""Cohort-level interpretability: where each marker's Grad-CAM energy lies, region by region, over a cohort.

The MGMT-Net paper's figures 5-6 make cohort-level claims ("IDH attention on the non-enhancing core; TERT on the
enhancing rim"). Per case, the map of :func:`~gliomics.inference.explanation_maps.compute_case_maps` (the pass a
case report explains) is split by the predicted segmentation: the share of the marker's Grad-CAM energy inside NETC,
SNFH, ET, RC and outside the tumour. Over the cohort: the mean share with a bootstrap 95% CI.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from gliomics.constants import LABELS, MARKERS, TUMOUR_LABELS
from gliomics.evaluation.bootstrap import mean_ci
from gliomics.io.atomic import write_text_atomic

__all__ = ["SHARE_REGIONS", "gradcam_shares", "explain_cohort", "gradcam_share_table"]

#: The parts of a case its Grad-CAM energy is split into.
SHARE_REGIONS: tuple[str, ...] = (*TUMOUR_LABELS, "outside")


def gradcam_shares(cam: np.ndarray, seg: np.ndarray) -> dict[str, float] | None:
    """Share of the map's energy (its sum over the voxels where it is defined) in each of :data:`SHARE_REGIONS`;
    None for a map without energy."""
    defined = np.isfinite(cam)
    total = float(cam[defined].sum())
    if total <= 0:
        return None
    out = {name: float(cam[defined & (seg == LABELS[name])].sum()) / total for name in TUMOUR_LABELS}
    out["outside"] = float(cam[defined & (seg == 0)].sum()) / total
    return out


def explain_cohort(run: Path | str, pred_dir: Path | str, ref: Path | str, out: Path | str, *, device: str = "cpu",
                   n_boot: int = 1000) -> dict[str, Any]:
    """Grad-CAM shares of every predicted case of ``ref`` with ``run`` (the run that made ``pred_dir``), added to the
    evaluation folder ``out``: ``gradcam_share`` in ``summary.json`` and a table in ``tables.md``."""
    from gliomics.inference.explanation_maps import compute_case_maps
    from gliomics.inference.prediction import record_options
    from gliomics.inference.predictor import Predictor
    from gliomics.io import discover_cases
    from gliomics.io.predictions import read_prediction_record

    pred_dir, out = Path(pred_dir), Path(out)
    predictor = Predictor(device).load(run)
    per_marker: dict[str, list[dict[str, float]]] = {m: [] for m in MARKERS}
    for case in discover_cases(ref, allow_missing=True):
        seg_path = pred_dir / f"{case.case_id}_seg.nii.gz"
        if not (pred_dir / f"{case.case_id}.json").is_file() or not seg_path.is_file():
            continue
        record = read_prediction_record(pred_dir / f"{case.case_id}.json", case.case_id)
        maps = compute_case_maps(predictor, case, predictor.predict(case, options=record_options(record)))
        for m, cam in maps.gradcam.items():
            shares = gradcam_shares(cam, maps.seg)
            if shares is not None:
                per_marker[m].append(shares)
    result = {m: {r: mean_ci([s[r] for s in rows], n_boot) for r in SHARE_REGIONS}
              for m, rows in per_marker.items() if rows}
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary["gradcam_share"] = result
    write_text_atomic(summary_path, json.dumps(summary, indent=2, default=float))
    tables = out / "tables.md"
    write_text_atomic(tables, tables.read_text().rstrip("\n") + "\n\n" + gradcam_share_table(result))
    return result


def gradcam_share_table(result: dict[str, Any]) -> str:
    """Markdown: per marker, the mean share of its Grad-CAM energy in each region [95% CI] and the cases."""
    lines = ["### Share of each marker's Grad-CAM energy by predicted region", "",
             "| marker | " + " | ".join(SHARE_REGIONS) + " | cases |", "|---|" + "---|" * (len(SHARE_REGIONS) + 1)]
    for m, shares in result.items():
        cells = [("–" if not s else f"{s['mean']:.2f} [{s['lo']:.2f}, {s['hi']:.2f}]") for s in shares.values()]
        n = max((s["n"] for s in shares.values() if s), default=0)
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {n} |")
    return "\n".join(lines) + "\n"
