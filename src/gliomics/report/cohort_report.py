"""The cohort HTML report of an evaluation folder (``report.html`` beside ``summary.json``).

It reads what :func:`gliomics.evaluation.evaluate.evaluate_predictions` wrote (``per_case.csv``, ``summary.json``,
``tables.md``), draws the figures of :mod:`gliomics.report.cohort_figures`, shows the phantom's Bayes-optimal AUC
next to the measured one when the reference cohort is a phantom, and appends other Markdown tables (ablations,
baselines, ``gliomics compare`` output).
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt
from markupsafe import Markup

from gliomics import __version__
from gliomics.constants import MARKER_NAMES, MARKERS
from gliomics.errors import InputError
from gliomics.evaluation.evaluate import PHANTOM_TRUTH
from gliomics.evaluation.montage import MONTAGE_FILE
from gliomics.evaluation.tables import fmt
from gliomics.report.case_report import write_html
from gliomics.report.templates import COHORT_TEMPLATE, render

EVALUATION_FILES: tuple[str, ...] = ("per_case.csv", "summary.json", "tables.md")
REPORT_NAME = "report.html"
PHANTOM_SUMMARY = "phantom_summary.json"
COMPARISON_MD = "comparison.md"
CAVEAT = ("Research tool, not a diagnosis. These figures describe a model's agreement with reference labels on this "
          "cohort; they do not license clinical use.")


def render_markdown(text: str) -> Markup:
    """Markdown (with GFM tables) to HTML; raw HTML in the source is escaped, not passed through."""
    return Markup(MarkdownIt("commonmark", {"html": False}).enable("table").render(text))


def resolve_tables(paths: Sequence[Path | str]) -> list[tuple[str, Path]]:
    """Check the extra tables: Markdown files, or ``gliomics compare`` folders (their ``comparison.md``).

    Returns:
        ``(title, file)`` pairs, in the order given.

    Raises:
        InputError: a path is missing, or a folder has no ``comparison.md``.
    """
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            if not (p / COMPARISON_MD).is_file():
                raise InputError(f"{p}: folder has no {COMPARISON_MD} (expected a `gliomics compare` output folder)")
            out.append((f"Comparison: {p.name}", p / COMPARISON_MD))
        elif p.is_file():
            out.append((p.stem.replace("_", " "), p))
        else:
            raise InputError(f"{p}: table file not found")
    return out


def read_evaluation(eval_dir: Path | str) -> tuple[dict[str, Any], list[dict[str, str]], str]:
    """``summary.json``, the rows of ``per_case.csv`` and ``tables.md`` of an evaluation folder."""
    eval_dir = Path(eval_dir)
    if not eval_dir.is_dir():
        raise InputError(f"{eval_dir}: evaluation folder not found")
    missing = [n for n in EVALUATION_FILES if not (eval_dir / n).is_file()]
    if missing:
        raise InputError(f"{eval_dir}: not a complete `gliomics evaluate` folder (missing {', '.join(missing)})")
    try:
        summary = json.loads((eval_dir / "summary.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{eval_dir / 'summary.json'}: not valid JSON ({exc})") from exc
    if not isinstance(summary, dict) or "cases" not in summary:
        raise InputError(f"{eval_dir / 'summary.json'}: not an evaluation summary (no 'cases')")
    with open(eval_dir / "per_case.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return summary, rows, (eval_dir / "tables.md").read_text(encoding="utf-8")


def _phantom(ref: Path | None) -> tuple[dict[str, dict[str, float]] | None, dict[str, Any] | None]:
    """Bayes posteriors per marker and case (``phantom_truth.csv``) and ``phantom_summary.json``, when present."""
    if ref is None:
        return None, None
    folder = ref if ref.is_dir() else ref.parent
    posteriors = None
    if (folder / PHANTOM_TRUTH).is_file():
        with open(folder / PHANTOM_TRUTH, newline="", encoding="utf-8") as fh:
            truth = list(csv.DictReader(fh))
        posteriors = {m: {r["case_id"]: float(r[f"posterior_{m}"]) for r in truth if r.get(f"posterior_{m}")}
                      for m in MARKERS if truth and f"posterior_{m}" in truth[0]}
    cohort = None
    if (folder / PHANTOM_SUMMARY).is_file():
        try:
            cohort = json.loads((folder / PHANTOM_SUMMARY).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(f"{folder / PHANTOM_SUMMARY}: not valid JSON ({exc.msg})") from exc
    return posteriors, cohort


def _auc_rows(summary: Mapping[str, Any], cohort: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    rows = []
    bayes = summary.get("bayes_optimal_auc") or {}
    observed = (cohort or {}).get("bayes_auc_observed") or {}
    for m in MARKERS:
        s = summary.get("markers", {}).get(m)
        if not s:
            continue
        d_lo, d_hi = s.get("auc_ci_delong", [None, None])
        b_lo, b_hi = s.get("auc_ci_bootstrap", [None, None])
        rows.append({"name": MARKER_NAMES[m], "n": s.get("n", 0), "n_pos": s.get("n_pos", 0),
                     "auc": f"{fmt(s.get('auc'))} [{fmt(d_lo)}, {fmt(d_hi)}]", "boot": f"[{fmt(b_lo)}, {fmt(b_hi)}]",
                     "bayes": fmt(bayes.get(m)), "bayes_cohort": fmt(observed.get(m))})
    return rows


def _headline(summary: Mapping[str, Any]) -> str:
    parts = []
    stats = (("Mean Dice over ET, NETC, SNFH and RC", summary.get("mean_dice")),
             ("lesion-wise (BraTS 2024 rule)", summary.get("mean_lesion_dice")),
             ("lesion-wise (BraTS 2025 rule)", (summary.get("segmentation_brats2025") or {}).get("mean_lesion_dice")))
    for name, s in stats:
        if s:
            parts.append(f"{name}: {fmt(s['mean'])} [{fmt(s['lo'])}, {fmt(s['hi'])}] "
                         f"(95% bootstrap CI, {s['n']} cases)")
    return "; ".join(parts) + ("." if parts else "")


def build_cohort_html(summary: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], tables_md: str, *,
                      ref: Path | None = None, tables: Sequence[tuple[str, Path]] = (),
                      montage: Path | None = None) -> str:
    """The cohort report as a self-contained HTML page (see :func:`write_cohort_report`); ``montage``: the
    evaluation's ``montage.png``, embedded where given."""
    from gliomics.report.cohort_figures import (
        bar_figure,
        calibration_figure,
        confusion_figure,
        dice_figure,
        roc_figure,
    )

    posteriors, cohort = _phantom(ref)
    figures = []
    for title, src, caption in (
        ("Dice", dice_figure(rows), "Per-case Dice of each region, whole-volume and BraTS 2024 lesion-wise; boxes "
         "show the quartiles, dots the cases. TC = NETC + ET, WT = NETC + SNFH + ET."),
        ("Means with 95% CIs", bar_figure(summary), "Mean Dice of each region (whole-volume and BraTS 2024 "
         "lesion-wise, bootstrap CIs over cases) and AUC of each marker (DeLong CIs; black bars: the phantom's "
         "Bayes-optimal AUC on the same cases, when the cohort is a phantom), as the MGMT-Net paper's figures 3-4."),
        ("ROC", roc_figure(rows, summary, posteriors), "ROC curve of each marker on the cases with a known label; "
         "dashed: the phantom's exact Bayes posteriors on the same cases, when the cohort is a phantom."),
        ("Calibration", calibration_figure(summary), "Reliability curves: observed rate of the altered state against "
         "the mean predicted probability in quantile bins; the diagonal is perfect calibration. For a calibrated run "
         "the dashed curve shows the raw probabilities of the same cases."),
        ("Confusion", confusion_figure(summary), "Calls at the threshold stored with the model (chosen on "
         "validation); rows are the true classes."),
    ):
        if src is not None:
            figures.append({"title": title, "src": src, "caption": caption})
    if montage is not None:
        figures.append({"title": "Predictions against references",
                        "src": "data:image/png;base64," + base64.b64encode(montage.read_bytes()).decode("ascii"),
                        "caption": "Each case on the axial slice where its reference tumour is largest: the reference "
                        "on the left, the prediction on the right (gliomics evaluate --montage)."})
    has_bayes = bool(summary.get("bayes_optimal_auc")) or bool((cohort or {}).get("bayes_auc_observed"))
    extra = [{"title": title, "html": render_markdown(path.read_text(encoding="utf-8"))} for title, path in tables]
    # the first line of tables.md is a title naming local folders; the report has its own title
    body = "\n".join(line for line in tables_md.splitlines() if not line.startswith("# "))
    return render(COHORT_TEMPLATE, summary={"cases": summary["cases"],
                                            "cases_without_prediction": summary.get("cases_without_prediction", 0)},
                  version=__version__, generated=_dt.datetime.now().strftime("%Y-%m-%d %H:%M"), caveat=CAVEAT,
                  headline=_headline(summary), markers=_auc_rows(summary, cohort), has_bayes=has_bayes,
                  figures=figures, tables_html=render_markdown(body), extra_tables=extra)


def write_cohort_report(eval_dir: Path | str, *, ref: Path | str | None = None,
                        tables: Sequence[Path | str] = (), out: Path | str | None = None) -> Path:
    """Write the cohort report of an evaluation folder; returns its path.

    Args:
        eval_dir: The folder written by ``gliomics evaluate``.
        ref: The reference cases it was evaluated against; a phantom cohort there (``phantom_truth.csv``,
            ``phantom_summary.json``) adds the Bayes-optimal curves and AUCs.
        tables: Extra Markdown tables (ablations, baselines) or ``gliomics compare`` folders.
        out: The HTML file; defaults to ``eval_dir/report.html``.
    """
    extra = resolve_tables(tables)
    summary, rows, tables_md = read_evaluation(eval_dir)
    montage = Path(eval_dir) / MONTAGE_FILE
    html = build_cohort_html(summary, rows, tables_md, ref=Path(ref) if ref is not None else None, tables=extra,
                             montage=montage if montage.is_file() else None)
    return write_html(html, Path(out) if out is not None else Path(eval_dir) / REPORT_NAME)
