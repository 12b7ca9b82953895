"""Markdown tables shaped like the MGMT-Net paper's Tables 1-4, with 95% CIs."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from gliomics.constants import MARKER_NAMES, MARKERS, REGIONS, SEQUENCE_NAMES, SEQUENCES

SHORT_MARKER = {"idh": "IDH", "codel_1p19q": "1p/19q", "tert": "TERT"}


def fmt(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` decimals; ``–`` for None, NaN, infinities and anything that is not a number."""
    return f"{value:.{digits}f}" if isinstance(value, numbers.Real) and math.isfinite(value) else "–"


def fmt_p(value: float | None) -> str:
    """A p-value: ``< 0.001``, three decimals, ``–`` for NaN, and nothing for None (no test)."""
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return "–"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"



def _ci(stat: dict | None, digits: int = 3) -> str:
    if not stat:
        return "–"
    return f"{fmt(stat['mean'], digits)} [{fmt(stat['lo'], digits)}, {fmt(stat['hi'], digits)}]"


def segmentation_table(seg_summary: dict, title: str = "Segmentation", *, lesion_wise: bool = True) -> str:
    """Table 1: Dice and HD95 per region, whole-volume and (unless ``lesion_wise`` is False) lesion-wise under the
    BraTS 2024 rule, mean [95% CI]."""
    if lesion_wise:
        title += ", lesion-wise by the BraTS 2024 rule"
    head = ["region", "Dice", "lesion-wise Dice", "HD95 (mm)", "lesion-wise HD95 (mm)"]
    keys = [("dice", 3), ("lesion_dice", 3), ("hd95", 1), ("lesion_hd95", 1)]
    if not lesion_wise:
        head, keys = [head[0], head[1], head[3]], [keys[0], keys[2]]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for region in REGIONS:
        s = seg_summary.get(region)
        if not s:
            continue
        lines.append(f"| {region} | " + " | ".join(_ci(s.get(k), d) for k, d in keys) + " |")
    return "\n".join(lines) + "\n"


def brats2025_table(summary: dict, title: str = "Segmentation, lesion-wise by the BraTS 2025 rule") -> str:
    """Per region, the BraTS 2025 (``panoptica``) lesion-wise Dice, NSD and HD95 over matched lesions, the lesion
    F1 and the panoptic quality, mean [95% CI] (:mod:`gliomics.evaluation.segmentation_brats2025`)."""
    lines = [f"### {title}", "", "One-to-one matching of connected components; Dice, NSD and HD95 over matched "
             "lesions; F1 of the matching; panoptic quality = Dice × F1. Regions absent from both sides are left "
             "out.", "",
             "| region | lesion-wise Dice | lesion-wise NSD | lesion-wise HD95 (mm) | lesion F1 | panoptic quality |",
             "|---|---|---|---|---|---|"]
    for region in REGIONS:
        s = summary.get(region)
        if not s:
            continue
        lines.append(f"| {region} | {_ci(s.get('lesion_dice'))} | {_ci(s.get('lesion_nsd'))} | "
                     f"{_ci(s.get('lesion_hd95'), 1)} | {_ci(s.get('lesion_f1'))} | {_ci(s.get('panoptic_quality'))} |")
    if summary.get("mean_lesion_dice"):
        lines += ["", f"Mean lesion-wise Dice over NETC, SNFH, ET and RC: {_ci(summary['mean_lesion_dice'])}"]
    return "\n".join(lines) + "\n"


def marker_table(marker_summary: dict, bayes: dict | None = None, title: str = "Molecular markers") -> str:
    """Table 2: AUC with DeLong and bootstrap CIs, accuracy, sensitivity, specificity, precision, F1, calibration."""
    head = ("| marker | n (pos) | AUC [DeLong 95% CI] | AUC bootstrap CI | accuracy | sensitivity | specificity "
            "| precision | F1 | Brier | cal. slope | ECE |")
    if bayes:
        head += " Bayes-optimal AUC |"
    lines = [f"### {title}", "", head, "|" + "---|" * (head.count("|") - 1)]
    for m in MARKERS:
        s = marker_summary.get(m)
        if not s:
            continue
        met, cal = s.get("metrics", {}), s.get("calibration", {})
        d_lo, d_hi = s.get("auc_ci_delong", [math.nan, math.nan])
        b_lo, b_hi = s.get("auc_ci_bootstrap", [math.nan, math.nan])
        row = (f"| {MARKER_NAMES[m]} | {s.get('n', 0)} ({s.get('n_pos', 0)}) | {fmt(s.get('auc'))} [{fmt(d_lo)}, "
               f"{fmt(d_hi)}] | [{fmt(b_lo)}, {fmt(b_hi)}] | {fmt(met.get('accuracy'))} | "
               f"{fmt(met.get('sensitivity'))} | "
               f"{fmt(met.get('specificity'))} | {fmt(met.get('precision'))} | {fmt(met.get('f1'))} | "
               f"{fmt(met.get('brier'))} | "
               f"{fmt(cal.get('slope'), 2)} | {fmt(cal.get('ece'))} |")
        if bayes:
            row += f" {fmt(bayes.get(m))} |"
        lines.append(row)
    return "\n".join(lines) + "\n"


def _rate(value: float | None, ci: Sequence[float] | None) -> str:
    lo, hi = ci or (math.nan, math.nan)
    return f"{fmt(value, 2)} [{fmt(lo, 2)}, {fmt(hi, 2)}]"


def decision_table(marker_summary: dict) -> str:
    """Calibration before and after, the calls at each operating point and the conformal sets, for the markers whose
    predictions carry a fitted calibration; empty when none does."""
    rows = [(m, marker_summary[m]) for m in MARKERS if marker_summary.get(m, {}).get("conformal")]
    if not rows:
        return ""
    lines = [f"### Calibrated calls (thresholds and conformal sets fitted on: {rows[0][1].get('fitted_on')})", "",
             "| marker | slope raw → calibrated | ECE raw → calibrated | coverage (target) | undetermined |",
             "|---|---|---|---|---|"]
    for m, s in rows:
        raw, cal, conf = s.get("calibration_raw", {}), s.get("calibration", {}), s["conformal"]
        lines.append(f"| {MARKER_NAMES[m]} | {fmt(raw.get('slope'), 2)} → {fmt(cal.get('slope'), 2)} | "
                     f"{fmt(raw.get('ece'))} → {fmt(cal.get('ece'))} | "
                     f"{_rate(conf.get('coverage'), conf.get('coverage_ci'))} ({fmt(conf.get('target'), 2)}) | "
                     f"{fmt(conf.get('undetermined'), 2)} |")
    lines += ["", "| marker | operating point | threshold | sensitivity | specificity | PPV | NPV |",
              "|---|---|---|---|---|---|---|"]
    for m, s in rows:
        for op in (s.get("operating_points") or {}).values():
            lines.append(f"| {MARKER_NAMES[m]} | {op['rule']} | {fmt(op['threshold'])} | "
                         f"{_rate(op['sensitivity'], op['sensitivity_ci'])} | "
                         f"{_rate(op['specificity'], op['specificity_ci'])} | {_rate(op['ppv'], op['ppv_ci'])} | "
                         f"{_rate(op['npv'], op['npv_ci'])} |")
    return "\n".join(lines) + "\n"


def review_table(review: dict) -> str:
    """The cases flagged for review against the others: mean Dice and marker Brier score of each group, and the rank
    correlation of the uncertainty score with Dice; empty when no record carries a flag."""
    if not review:
        return ""
    lines = [f"### Review flags ({review['needs_review']} of {review['n']} cases flagged)", "",
             f"Rule: {review.get('rule') or 'an undetermined conformal set (no uncertainty threshold)'}.", "",
             "| flag | group | cases | mean Dice | marker Brier |", "|---|---|---|---|---|"]
    for key, name in (("any_reason", "needs_review"), ("uncertainty", "uncertainty above threshold")):
        split = review.get(key)
        if not split:
            continue
        for group, g in split["groups"].items():
            lines.append(f"| {name} | {group} | {g['n']} | {_ci(g['mean_dice'])} | {_ci(g['brier'])} |")
        lines.append(f"| {name} | difference | | {_ci(split['dice_drop'])} lower | {_ci(split['brier_rise'])} higher |")
    rho = review.get("spearman_score_vs_dice")
    if rho:
        lines += ["", f"Spearman correlation of the uncertainty score with the case's mean Dice: {rho['rho']:.3f} "
                      f"[{rho['lo']:.3f}, {rho['hi']:.3f}] (p = {rho['p']:.3g}, {rho['n']} cases)."]
    return "\n".join(lines) + "\n"


def site_table(by_site: dict) -> str:
    """Table 3: internal vs external, per site: mean Dice of the four labels and AUC per marker."""
    conformal = any(s["markers"].get(m, {}).get("conformal") for s in by_site.values() for m in MARKERS)
    head = "| site | cases | mean Dice (ET, NETC, SNFH, RC) | lesion-wise mean Dice | " + \
        " | ".join(f"AUC {MARKER_NAMES[m]}" for m in MARKERS) + " |"
    if conformal:
        head += " " + " | ".join(f"coverage {MARKER_NAMES[m]}" for m in MARKERS) + " |"
    lines = ["### By site", "", head, "|" + "---|" * (head.count("|") - 1)]
    for site, s in by_site.items():
        aucs = " | ".join(fmt(s["markers"].get(m, {}).get("auc")) for m in MARKERS)
        row = f"| {site} | {s['cases']} | {_ci(s.get('mean_dice'))} | {_ci(s.get('mean_lesion_dice'))} | {aucs} |"
        if conformal:
            row += " " + " | ".join(fmt(s["markers"].get(m, {}).get("conformal", {}).get("coverage"), 2)
                                    for m in MARKERS) + " |"
        lines.append(row)
    return "\n".join(lines) + "\n"


def cmaf_table(cmaf: dict) -> str:
    """The mean CMAF weight of each sequence in each predicted region over the cohort, mean [95% CI]: where the
    fusion looks, per region (the MGMT-Net paper's figure 5, over a cohort instead of one case)."""
    lines = ["### Mean CMAF weight by region", "",
             "| region | " + " | ".join(SEQUENCE_NAMES[s] for s in SEQUENCES) + " | cases |",
             "|---|" + "---|" * (len(SEQUENCES) + 1)]
    for region, weights in cmaf.items():
        n = max((w["n"] for w in weights.values()), default=0)
        lines.append(f"| {region} | " + " | ".join(_ci(weights.get(s), 2) for s in SEQUENCES) + f" | {n} |")
    return "\n".join(lines) + "\n"


def comparison_table(rows: Sequence[dict], reference: str, bayes: dict[str, float] | None = None) -> str:
    """Table 4: Dice per region, AUC per marker and their mean per model, with the DeLong (AUC) and McNemar (calls)
    p-values of every marker against ``reference``;
    for phantom cohorts a last row with the Bayes-optimal AUC on the same cases."""
    head = "| model | " + " | ".join(f"Dice {r}" for r in ("ET", "NETC", "SNFH", "RC")) + \
        " | mean lesion-wise Dice | " + " | ".join(f"AUC {SHORT_MARKER[m]}" for m in MARKERS) + \
        " | mean AUC | DeLong p (" + " / ".join(SHORT_MARKER[m] for m in MARKERS) + ") | McNemar p (" + \
        " / ".join(SHORT_MARKER[m] for m in MARKERS) + ") |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        dice = " | ".join(_ci(r["seg"].get(k, {}).get("dice")) for k in ("ET", "NETC", "SNFH", "RC"))
        aucs = " | ".join(fmt(r.get("auc", {}).get(m)) for m in MARKERS)
        p_d = "ref." if r["name"] == reference else " / ".join(fmt(r.get(f"delong_p_{m}"), 3) for m in MARKERS)
        p_m = "ref." if r["name"] == reference else " / ".join(fmt(r.get(f"mcnemar_p_{m}"), 3) for m in MARKERS)
        lines.append(f"| {r['name']} | {dice} | {_ci(r.get('mean_lesion_dice'))} | {aucs} | {fmt(r.get('mean_auc'))} "
                     f"| {p_d} | {p_m} |")
    if bayes:
        values = [bayes.get(m) for m in MARKERS]
        known = [v for v in values if v is not None and not math.isnan(v)]
        lines.append("| Bayes-optimal (phantom truth) | – | – | – | – | – | " + " | ".join(fmt(v) for v in values)
                     + f" | {fmt(sum(known) / len(known)) if known else '–'} | | |")
    return "\n".join(lines) + "\n"
