"""The cohort report of `gliomics evaluate --report` and `gliomics report EVAL_DIR`."""

from __future__ import annotations

import json
import re
import shutil

from typer.testing import CliRunner

from gliomics.cli.main import app
from gliomics.constants import MARKER_NAMES

runner = CliRunner()
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


def test_evaluate_report_shows_figures_auc_bayes_sites_and_tables(evaluated_with_report):
    out = evaluated_with_report["eval"]
    html = (out / "report.html").read_text(encoding="utf-8")
    summary = json.loads((out / "summary.json").read_text())
    assert not EXTERNAL.search(html) and "<script" not in html
    images = re.findall(r"""<img[^>]*\ssrc="([^"]*)\"""", html)
    # Dice, means with CIs, ROC, calibration, confusion
    assert len(images) == 5 and all(s.startswith("data:image/png;base64,") for s in images)
    assert "Means with 95% CIs" in html and "| precision |" not in html and "<th>precision</th>" in html
    assert "Research tool, not a diagnosis" in html
    assert "lesion-wise (BraTS 2025 rule): " in html and "by the BraTS 2025 rule" in html  # headline and table
    for m, s in summary["markers"].items():
        lo, hi = s["auc_ci_delong"]
        assert f"{s['auc']:.3f} [{lo:.3f}, {hi:.3f}]" in html, MARKER_NAMES[m]
        assert f"{summary['bayes_optimal_auc'][m]:.3f}" in html
    assert "Bayes-optimal AUC, these cases" in html and "whole phantom cohort" in html
    assert "By site" in html and "<td>A</td>" in html and "<td>B</td>" in html
    assert "ABLATION-ROW" in html and "COMPARE-ROW" in html
    assert "<b>raw html</b>" not in html and "&lt;b&gt;raw html&lt;/b&gt;" in html
    assert str(evaluated_with_report["pred"]) not in html  # the title line of tables.md names local folders


def test_report_command_on_an_evaluation_folder(evaluated_with_report, tiny_phantom, tmp_path):
    target = tmp_path / "cohort.html"
    result = runner.invoke(app, ["report", str(evaluated_with_report["eval"]), "--ref", str(tiny_phantom), "-o",
                                 str(target)])
    assert result.exit_code == 0, result.output
    assert "Bayes-optimal" in target.read_text(encoding="utf-8")
    # without the reference folder, the Bayes-optimal AUC from summary.json is still shown
    plain = tmp_path / "plain.html"
    assert runner.invoke(app, ["report", str(evaluated_with_report["eval"]), "-o", str(plain)]).exit_code == 0
    assert "Bayes-optimal AUC, these cases" in plain.read_text(encoding="utf-8")


def test_missing_table_fails_before_evaluating(evaluated_with_report, tiny_phantom, tmp_path):
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", "--pred", str(evaluated_with_report["pred"]), "--ref", str(tiny_phantom),
                                 "-o", str(out), "--report", "--tables", str(tmp_path / "missing.md")])
    assert result.exit_code == 2
    assert "missing.md: table file not found" in result.output
    assert not out.exists()


def test_incomplete_evaluation_folder_is_one_line(evaluated_with_report, tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(evaluated_with_report["eval"] / "summary.json", partial)
    result = runner.invoke(app, ["report", str(partial)])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "missing per_case.csv, tables.md" in result.output
    assert not (partial / "report.html").exists()


def test_bar_figure_draws_what_the_summary_holds_and_nothing_when_empty():
    from gliomics.report.cohort_figures import bar_figure

    ci = {"mean": 0.8, "lo": 0.7, "hi": 0.9}
    summary = {"segmentation": {"ET": {"dice": ci, "lesion_dice": ci}, "WT": {"dice": ci, "lesion_dice": None}},
               "markers": {"idh": {"auc": 0.75, "auc_ci_delong": [0.6, 0.9]}}, "bayes_optimal_auc": {"idh": 0.9}}
    full = bar_figure(summary)
    assert full and full.startswith("data:image/png;base64,")
    markers_only = bar_figure({"segmentation": {}, "markers": summary["markers"]})
    assert markers_only and markers_only != full
    assert bar_figure({"segmentation": {}, "markers": {"idh": {"auc": float("nan")}}}) is None
