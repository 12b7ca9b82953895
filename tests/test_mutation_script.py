"""``benchmarks/tools/mutation.py`` (``make mutation``): which files are mutated, the stratified draw and the report."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mutation():
    spec = importlib.util.spec_from_file_location("mutation_script", ROOT / "benchmarks" / "tools" / "mutation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_configured_files_are_mutated_and_named_as_mutmut_names_them(mutation, monkeypatch):
    files = {str(f) for f in mutation.mutated_files()}
    assert {"src/gliomics/losses.py", "src/gliomics/evaluation/auc.py", "src/gliomics/preprocess/native.py",
            "src/gliomics/models/blocks/cmaf.py", "src/gliomics/inference/predictor.py"} <= files
    assert not any(f.startswith(("src/gliomics/cli/", "src/gliomics/training/")) for f in files)
    assert "src/gliomics/inference/engine.py" not in files
    monkeypatch.chdir(ROOT)
    names = mutation.mutant_names(Path("src/gliomics/models/blocks/layers.py"))
    assert len(names) >= 5 and len(set(names)) == len(names)
    assert all(n.startswith("gliomics.models.blocks.layers.") and "__mutmut_" in n for n in names)


def test_the_draw_takes_the_same_share_of_every_file_and_is_seeded(mutation):
    names = {Path("a.py"): [f"a.x_f__mutmut_{i}" for i in range(1, 41)],
             Path("b.py"): [f"b.x_g__mutmut_{i}" for i in range(1, 11)],
             Path("c.py"): ["c.x_h__mutmut_1"], Path("d.py"): []}
    drawn = mutation.draw(names, 0.25, seed=0)
    assert sum(n.startswith("a.") for n in drawn) == 10
    assert sum(n.startswith("b.") for n in drawn) == 2  # round(2.5) in Python's rounding
    assert [n for n in drawn if n.startswith("c.")] == ["c.x_h__mutmut_1"]  # at least one of every file
    assert drawn == mutation.draw(names, 0.25, seed=0)
    assert drawn != mutation.draw(names, 0.25, seed=1)
    assert len(mutation.draw(names, 1.0, seed=3)) == 51


def test_wilson_interval_matches_the_closed_form(mutation):
    lo, hi = mutation.wilson(3, 10)
    assert lo == pytest.approx(0.10779, abs=1e-4) and hi == pytest.approx(0.60322, abs=1e-4)


def test_the_report_counts_each_module_and_lists_the_survivors(mutation, tmp_path, monkeypatch):
    last = tmp_path / "last.json"
    names = ["gliomics.losses.x_f__mutmut_1", "gliomics.losses.x_f__mutmut_2", "gliomics.losses.xǁLǁg__mutmut_1",
             "gliomics.evaluation.auc.x_h__mutmut_1", "gliomics.evaluation.auc.x_h__mutmut_2"]
    last.write_text(json.dumps({"fraction": 0.1, "seed": 0, "total": 50, "names": names, "wall_s": 12}))
    verdicts = dict(zip(names, ["killed", "survived", "timeout", "killed", "survived"]))
    monkeypatch.setattr(mutation, "LAST_RUN", last)
    monkeypatch.setattr(mutation, "statuses", lambda ns: {n: verdicts[n] for n in ns})
    monkeypatch.setattr(mutation, "diff_of", lambda n: f"-a = 1\n+a = 2  # {n}")
    monkeypatch.setattr(mutation, "EQUIVALENT", {"gliomics.evaluation.auc.x_h__mutmut_2": "same on every input"})
    out = tmp_path / "mutation.md"
    mutation.report(out)
    text = out.read_text()
    assert "5 of the 50 mutants" in text and "; 12 s." in text
    assert "| gliomics.losses | 3 | 1 | 1 | 0 | 1 | 0 | 0 | 33.3% (" in text
    assert "| gliomics.evaluation.auc | 2 | 1 | 0 | 1 | 0 | 0 | 0 | 0.0% (" in text
    assert "| **all** | 5 | 2 | 1 | 1 | 1 | 0 | 0 | 25.0% (" in text
    assert "## Survivors (1)" in text and "`gliomics.losses.x_f__mutmut_2` (survived)" in text
    assert "+a = 2  # gliomics.losses.x_f__mutmut_2" in text
    assert "- `gliomics.evaluation.auc.x_h__mutmut_2`: same on every input" in text
