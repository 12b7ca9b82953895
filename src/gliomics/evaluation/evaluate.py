"""``gliomics evaluate``: score a prediction folder against reference segmentations and a markers table.

Writes ``per_case.csv``, ``summary.json`` and ``tables.md`` (segmentation per region, markers with CIs, sites).
Segmentations are scored by the whole-volume metrics and by the lesion-wise rule of BraTS 2024
(:mod:`~gliomics.evaluation.segmentation`), of BraTS 2025 (:mod:`~gliomics.evaluation.segmentation_brats2025`), or
both (:data:`RULES`).
"""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from gliomics.constants import MARKERS, REGIONS, SEQUENCES, TUMOUR_LABELS
from gliomics.errors import ImageError, InputError, MarkerTableError, OutputError
from gliomics.evaluation.bootstrap import mean_ci
from gliomics.evaluation.classification import evaluate_marker
from gliomics.evaluation.decisions import conformal_summary, operating_point_summary, raw_calibration, review_summary
from gliomics.evaluation.segmentation import segmentation_metrics
from gliomics.evaluation.segmentation_brats2025 import brats2025_metrics
from gliomics.evaluation.tables import (
    brats2025_table,
    cmaf_table,
    decision_table,
    marker_table,
    review_table,
    segmentation_table,
    site_table,
)
from gliomics.inference.calibration import OPERATING_POINTS
from gliomics.io import discover_cases, load_label, read_markers
from gliomics.io.atomic import write_text_atomic
from gliomics.io.delimited import write_rows
from gliomics.io.predictions import RECORD_SUFFIX, SEG_SUFFIX, read_prediction_record
from gliomics.phantom.generator import TRUTH_FILE
from gliomics.provenance import versions

logger = logging.getLogger(__name__)
PHANTOM_TRUTH = TRUTH_FILE  # the phantom generator's exact Bayes posteriors
#: Values of ``--rule``: the lesion-wise scoring rule(s) of BraTS applied besides the whole-volume metrics.
RULES: tuple[str, ...] = ("brats2024", "brats2025", "both")
#: Prefix of the BraTS 2025 columns of ``per_case.csv`` (after the region: ``ET_brats2025_lesion_dice``).
BRATS2025 = "brats2025"


def check_rule(rule: str) -> str:
    """``rule`` if it is one of :data:`RULES`."""
    if rule not in RULES:
        raise InputError(f"--rule {rule}: expected one of {', '.join(RULES)}")
    return rule


def _load_prediction(pred_dir: Path, case_id: str) -> tuple[Path | None, dict | None]:
    seg = pred_dir / f"{case_id}{SEG_SUFFIX}"
    if not seg.is_file():  # nnU-Net's name for the same file (`gliomics export-nnunet`)
        seg = pred_dir / f"{case_id}.nii.gz"
    js = pred_dir / f"{case_id}{RECORD_SUFFIX}"
    record = read_prediction_record(js, case_id) if js.is_file() else None
    return (seg if seg.is_file() else None), record


def _score_case(case, seg_path: Path | None, record: dict | None, rule: str = "both") -> dict[str, Any]:
    row: dict[str, Any] = {"case_id": case.case_id}
    if seg_path is not None and case.seg is not None:
        pred = load_label(seg_path)
        ref = load_label(case.seg, label_map=case.label_map)
        if pred.shape != ref.shape or not np.allclose(pred.affine, ref.affine, atol=1e-3):
            raise ImageError(f"{seg_path}: prediction shape/affine {pred.shape} does not match the reference "
                             f"{case.seg} {ref.shape}")
        metrics = segmentation_metrics(pred.array, ref.array, ref.spacing,
                                       with_lesion_wise=rule != "brats2025")
        for region, vals in metrics.items():
            for k, v in vals.items():
                row[f"{region}_{k}"] = v
        row["mean_dice"] = float(np.mean([row[f"{lab}_dice"] for lab in TUMOUR_LABELS]))
        if rule != "brats2024":
            for region, vals in brats2025_metrics(pred.array, ref.array, ref.spacing).items():
                for k, v in vals.items():
                    row[f"{region}_{BRATS2025}_{k}"] = v
    if record is not None:
        source = (record.get("calibration") or {}).get("source")
        for m, v in (record.get("markers") or {}).items():
            row[f"prob_{m}"] = v.get("probability")
            row[f"threshold_{m}"] = v.get("threshold")
            if v.get("calibrated"):
                row[f"prob_raw_{m}"] = v.get("probability_raw")
                row[f"set_{m}"] = v.get("set_status")
                row[f"alpha_{m}"] = v.get("alpha")
                row[f"fitted_on_{m}"] = source
                for op, t in (v.get("thresholds") or {}).items():
                    row[f"threshold_{m}_{op}"] = t
        _review_columns(row, record)
        for region, weights in (record.get("mean_cmaf_weight") or {}).items():
            for seq, w in weights.items():
                row[f"cmaf_{region}_{seq}"] = w
    return row


def _review_columns(row: dict, record: dict) -> None:
    """The review flag of a record, its uncertainty score and whether the score alone raised the flag."""
    if "needs_review" not in record:
        return
    row["needs_review"] = bool(record["needs_review"])
    unc = record.get("uncertainty") or {}
    row["uncertainty_score"] = unc.get("score")
    threshold = unc.get("review_threshold")
    row["flag_uncertainty"] = None if threshold is None or unc.get("score") is None else unc["score"] > threshold
    row["review_rule"] = unc.get("review_rule")


def _seg_summary(rows: list[dict], n_boot: int) -> dict:
    out = {}
    scored = [r for r in rows if "WT_dice" in r]  # cases with a prediction and a reference segmentation
    if not scored:
        return out
    for region in REGIONS:
        out[region] = {k: mean_ci([r.get(f"{region}_{k}", math.nan) for r in scored], n_boot)
                       for k in ("dice", "lesion_dice", "hd95", "lesion_hd95", "sensitivity")}
    return out


def _brats2025_summary(rows: list[dict], n_boot: int) -> dict:
    """Per region, the mean over cases of each BraTS 2025 metric with its CI (NaN, i.e. no lesion on either side,
    left out), and the case mean of the lesion-wise Dice over the four labels."""
    scored = [r for r in rows if f"WT_{BRATS2025}_lesion_dice" in r]
    if not scored:
        return {}
    out: dict = {region: {k: mean_ci([r.get(f"{region}_{BRATS2025}_{k}", math.nan) for r in scored], n_boot)
                          for k in ("lesion_dice", "lesion_nsd", "lesion_hd95", "lesion_f1", "panoptic_quality",
                                    "global_dice", "global_nsd")}
                 for region in REGIONS}
    out["mean_lesion_dice"] = mean_ci(_brats2025_case_means(scored), n_boot)
    return out


def _brats2025_case_means(rows: list[dict]) -> list[float]:
    """Per case, the BraTS 2025 lesion-wise Dice averaged over the labels either side has (NaN when neither has
    any)."""
    out = []
    for r in rows:
        vals = np.array([r.get(f"{lab}_{BRATS2025}_lesion_dice", math.nan) for lab in TUMOUR_LABELS], dtype=float)
        out.append(float(np.nanmean(vals)) if not np.all(np.isnan(vals)) else math.nan)
    return out


def _cmaf_summary(rows: list[dict], n_boot: int) -> dict[str, dict[str, dict]]:
    """Per predicted region and sequence, the mean CMAF weight over the cases that have the region, with its CI."""
    out: dict[str, dict[str, dict]] = {}
    for region in TUMOUR_LABELS:
        for seq in SEQUENCES:
            stat = mean_ci([r[f"cmaf_{region}_{seq}"] for r in rows if r.get(f"cmaf_{region}_{seq}") is not None],
                           n_boot)
            if stat is not None:
                out.setdefault(region, {})[seq] = stat
    return out


def _case_mean(rows: list[dict], key: str) -> list[float]:
    out = []
    for r in rows:
        vals = [r.get(f"{lab}_{key}") for lab in TUMOUR_LABELS]
        if all(v is not None for v in vals):
            out.append(float(np.mean(vals)))
    return out


def _marker_summary(rows: list[dict], n_boot: int) -> dict:
    out = {}
    for m in MARKERS:
        pairs = [(r.get(f"label_{m}"), r.get(f"prob_{m}"), r.get(f"threshold_{m}")) for r in rows]
        pairs = [(y, p, t) for y, p, t in pairs if p is not None]
        if not pairs:
            continue
        y = np.array([np.nan if y is None else y for y, _, _ in pairs], dtype=float)
        p = np.array([p for _, p, _ in pairs], dtype=float)
        thresholds = {t for _, _, t in pairs if t is not None}
        threshold = thresholds.pop() if len(thresholds) == 1 else None
        out[m] = evaluate_marker(y, p, threshold=threshold, n_boot=n_boot)
        out[m].update(_decisions(m, [r for r in rows if r.get(f"prob_{m}") is not None], y))
    return out


def _decisions(m: str, rows: list[dict], y: np.ndarray) -> dict:
    """Operating points, conformal coverage and raw calibration of one marker, where the records carry a fitted
    calibration (one set of thresholds shared by every case; else nothing)."""
    if not rows or not all(r.get(f"prob_raw_{m}") is not None for r in rows):
        return {}
    known = ~np.isnan(y)
    p = np.array([r[f"prob_{m}"] for r in rows], dtype=float)
    out: dict = {"fitted_on": rows[0].get(f"fitted_on_{m}"),
                 "calibration_raw": raw_calibration(y, np.array([r[f"prob_raw_{m}"] for r in rows], dtype=float)),
                 "conformal": conformal_summary(m, y, [r.get(f"set_{m}") for r in rows], rows[0].get(f"alpha_{m}"))}
    shared = {op: {r.get(f"threshold_{m}_{op}") for r in rows} for op in OPERATING_POINTS}
    if all(len(v) == 1 and None not in v for v in shared.values()):
        out["operating_points"] = operating_point_summary(y[known].astype(int), p[known],
                                                          {op: v.pop() for op, v in shared.items()})
    return out


def truth_file(ref: Path) -> Path:
    """Where a phantom cohort keeps its exact Bayes posteriors (:data:`PHANTOM_TRUTH`)."""
    return ref / PHANTOM_TRUTH if ref.is_dir() else ref.parent / PHANTOM_TRUTH


def _bayes_auc(truth_files: list[Path], rows: list[dict]) -> dict[str, float] | None:
    """AUC of the phantom's exact Bayes posteriors on the same cases: the ceiling no image model can beat."""
    truth: dict[str, dict] = {}
    for path in truth_files:
        if path.is_file():
            with open(path, newline="") as fh:
                truth.update({r["case_id"]: r for r in csv.DictReader(fh)})
    if not truth:
        return None
    from gliomics.evaluation.classification import auc_delong

    out = {}
    for m in MARKERS:
        pairs = [(r.get(f"label_{m}"), float(truth[r["case_id"]][f"posterior_{m}"])) for r in rows
                 if r["case_id"] in truth and r.get(f"label_{m}") is not None]
        if pairs:
            y, p = np.array(pairs).T
            out[m] = auc_delong(y.astype(int), p)[0] if 0 < y.sum() < len(y) else math.nan
    return out


def evaluate_predictions(pred_dir: Path | str, ref: Path | str, *, markers: Path | str | None = None,
                         out: Path | str, by: str | None = None, n_boot: int = 2000,
                         layout: str = "auto", rule: str = "both", montage: bool = False) -> dict[str, Any]:
    """Score every reference case that has a prediction; returns the summary (also written to ``out``). With
    ``montage``, ``out/montage.png`` draws each case's prediction against its reference
    (:func:`~gliomics.evaluation.montage.write_montage`)."""
    pred_dir, ref, out = Path(pred_dir), Path(ref), Path(out)
    check_rule(rule)
    if not pred_dir.is_dir():
        raise InputError(f"{pred_dir}: prediction folder not found")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: output path exists and is not a folder")
    cases = discover_cases(ref, layout=layout, allow_missing=True)
    table = read_markers(markers) if markers is not None else {}
    if table and not any(case.case_id in table for case in cases):
        # the wrong table: every marker would silently be unknown and the marker metrics left out
        raise MarkerTableError(f"{markers}: none of its {len(table)} case ids matches a case in {ref} "
                               f"(e.g. {next(iter(table))!r} vs {cases[0].case_id!r})")
    summary = score_cases(pred_dir, cases, table, out=out, by=by, n_boot=n_boot, truth_files=[truth_file(ref)],
                          title=f"{pred_dir} against {ref}", rule=rule)
    if montage:
        from gliomics.evaluation.montage import MONTAGE_FILE, write_montage

        with open(out / "per_case.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        if write_montage(pred_dir, cases, rows, out / MONTAGE_FILE) is not None:
            summary["montage"] = MONTAGE_FILE
    return summary


def _site_summary(rows: list[dict], n_boot: int, *, brats2025: bool) -> dict[str, dict]:
    """Per site (``unknown`` where a case has none): its cases, mean Dice, mean lesion-wise Dice and markers."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(str(r.get("site") or "unknown"), []).append(r)
    return {site: {"cases": len(g), "mean_dice": mean_ci(_case_mean(g, "dice"), n_boot),
                   "mean_lesion_dice": mean_ci(_case_mean(g, "lesion_dice"), n_boot),
                   **({"mean_lesion_dice_brats2025": mean_ci(_brats2025_case_means(g), n_boot)} if brats2025 else {}),
                   "markers": _marker_summary(g, n_boot)}
            for site, g in sorted(groups.items())}


def _tables(summary: dict[str, Any], title: str, rule: str) -> list[str]:
    """The Markdown tables of an evaluation summary (``tables.md``), in page order."""
    md = [f"# Evaluation of {title} ({summary['cases']} cases)", "",
          segmentation_table(summary["segmentation"], lesion_wise=rule != "brats2025")]
    if "segmentation_brats2025" in summary:
        md.append(brats2025_table(summary["segmentation_brats2025"]))
    md += [marker_table(summary["markers"], summary.get("bayes_optimal_auc")),
           decision_table(summary["markers"]), review_table(summary["review"])]
    if "cmaf" in summary:
        md.append(cmaf_table(summary["cmaf"]))
    if "by_site" in summary:
        md.append(site_table(summary["by_site"]))
    return md


def score_cases(pred_dir: Path, cases: list, table: dict, *, out: Path, by: str | None = None, n_boot: int = 2000,
                truth_files: list[Path] = (), title: str = "", rule: str = "both") -> dict[str, Any]:
    """Score the predictions in ``pred_dir`` of ``cases`` (with reference segmentations where they have them) and
    the markers of ``table`` (case id -> marker record); writes ``per_case.csv``, ``summary.json`` and ``tables.md``
    to ``out`` and returns the summary. ``truth_files`` are phantom truths that give the Bayes-optimal AUCs;
    ``rule`` is one of :data:`RULES`."""
    check_rule(rule)
    rows = []
    models: dict[str, dict] = {}  # the runs behind the predictions (name, checkpoint, config digest, seed)
    for case in cases:
        seg_path, record = _load_prediction(pred_dir, case.case_id)
        if seg_path is None and record is None:
            continue
        if record is not None and isinstance(record.get("model"), dict):
            models.setdefault(json.dumps(record["model"], sort_keys=True), record["model"])
        row = _score_case(case, seg_path, record, rule)
        rec = table.get(case.case_id)
        row["site"] = rec.site if rec is not None else None
        for m in MARKERS:
            row[f"label_{m}"] = rec.label(m) if rec is not None else None
        rows.append(row)
    if not rows:
        raise InputError(f"{pred_dir}: no predictions match the cases ({title})")
    missing = len(cases) - len(rows)
    if missing:
        logger.warning("%d reference cases have no prediction in %s", missing, pred_dir)

    summary: dict[str, Any] = {"cases": len(rows), "cases_without_prediction": missing,
                               "segmentation": _seg_summary(rows, n_boot),
                               "mean_dice": mean_ci(_case_mean(rows, "dice"), n_boot),
                               "mean_lesion_dice": mean_ci(_case_mean(rows, "lesion_dice"), n_boot),
                               "rule": rule,
                               "markers": _marker_summary(rows, n_boot),
                               "review": review_summary(rows, n_boot),
                               "provenance": {"versions": versions(), "bootstrap_seed": 0, "n_boot": n_boot,
                                              "models": list(models.values())}}
    brats2025 = _brats2025_summary(rows, n_boot)
    if brats2025:
        summary["segmentation_brats2025"] = brats2025
    cmaf = _cmaf_summary(rows, n_boot)
    if cmaf:
        summary["cmaf"] = cmaf
    bayes = _bayes_auc(list(truth_files), rows)
    if bayes:
        summary["bayes_optimal_auc"] = bayes
    if by:
        if by != "site":
            raise InputError(f"--by {by}: only 'site' is supported")
        summary["by_site"] = _site_summary(rows, n_boot, brats2025=bool(brats2025))
    md = _tables(summary, title, rule)
    out.mkdir(parents=True, exist_ok=True)
    write_rows(out / "per_case.csv", rows)
    for name, text in (("summary.json", json.dumps(summary, indent=2, default=float)), ("tables.md", "\n".join(md))):
        write_text_atomic(out / name, text)
    summary["text"] = _headline(summary)
    return summary


def _headline(summary: dict) -> str:
    seg = summary["segmentation"]
    b25 = summary.get("segmentation_brats2025", {})
    lesion = b25 if summary.get("rule") == "brats2025" else seg  # whose lesion-wise Dice the first line quotes
    name = "BraTS 2025" if lesion is b25 else "BraTS 2024"

    def lesion_dice(region: str) -> str:
        stat = (lesion.get(region) or {}).get("lesion_dice")
        return f"{stat['mean']:.3f}" if stat else "–"

    parts = [f"{r} {seg[r]['dice']['mean']:.3f} ({name} lesion-wise {lesion_dice(r)})"
             for r in TUMOUR_LABELS if r in seg and seg[r].get("dice")]
    lines = [f"{summary['cases']} cases. Dice: " + ", ".join(parts)]
    if summary.get("mean_dice"):
        lines.append(f"mean Dice over ET/NETC/SNFH/RC: {summary['mean_dice']['mean']:.3f} "
                     f"[{summary['mean_dice']['lo']:.3f}, {summary['mean_dice']['hi']:.3f}]")
    for name, stat in (("BraTS 2024", summary.get("mean_lesion_dice")), ("BraTS 2025", b25.get("mean_lesion_dice"))):
        if stat:
            lines.append(f"mean lesion-wise Dice, {name} rule: {stat['mean']:.3f} [{stat['lo']:.3f}, {stat['hi']:.3f}]")
    for m, s in summary["markers"].items():
        lo, hi = s.get("auc_ci_delong", [math.nan, math.nan])
        bayes = summary.get("bayes_optimal_auc", {}).get(m)
        extra = f" (Bayes-optimal {bayes:.3f})" if bayes is not None and not math.isnan(bayes) else ""
        lines.append(f"{m}: AUC {s.get('auc', math.nan):.3f} [{lo:.3f}, {hi:.3f}]{extra}")
    return "\n".join(lines)
