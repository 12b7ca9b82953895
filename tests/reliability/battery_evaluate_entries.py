"""Battery entries of ``gliomics evaluate``: predictions and references with bad labels or shapes, and markers
tables."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from battery_core import BadInput, Invocation, Workspace, replace_volume, seq_file, write_markers, write_nifti

from gliomics_testing import DEFAULT_AFFINE, synthetic_seg

# --------------------------------------------------------------------------------------------------------- evaluate


def _fake_prediction(ws: Workspace, cohort: Path, name: str = "pred") -> Path:
    pred = ws.path(name)
    pred.mkdir()
    for case in sorted(p for p in cohort.iterdir() if p.is_dir()):
        shutil.copy(seq_file(case, "seg"), pred / f"{case.name}_seg.nii.gz")
        markers = {"idh": {"probability": 0.7, "threshold": 0.5}}
        (pred / f"{case.name}.json").write_text(json.dumps({"case_id": case.name, "markers": markers}))
    return pred


def _evaluate(ws: Workspace, pred: Path, ref: Path, culprit: str, *extra: str) -> Invocation:
    out = ws.path("eval")
    return Invocation(["evaluate", "--pred", str(pred), "--ref", str(ref), "-o", str(out), "--n-boot", "100", *extra],
                      culprit, out)


def _evaluate_pred_missing(ws: Workspace) -> Invocation:
    return _evaluate(ws, ws.path("no-such-pred"), ws.cohort(), "no-such-pred")


def _evaluate_edit_pred(edit: Callable[[Path], Path]) -> Callable[[Workspace], Invocation]:
    def build(ws: Workspace) -> Invocation:
        cohort = ws.cohort()
        pred = _fake_prediction(ws, cohort)
        return _evaluate(ws, pred, cohort, edit(pred).name)

    return build


def _pred_fractional(pred: Path) -> Path:
    return write_nifti(pred / "CASE-001-000_seg.nii.gz", np.full((16, 16, 12), 1.5, np.float32))


def _pred_shape(pred: Path) -> Path:
    return write_nifti(pred / "CASE-000-000_seg.nii.gz", np.zeros((16, 16, 8), np.uint8))


def _pred_json(pred: Path) -> Path:
    path = pred / "CASE-001-000.json"
    path.write_text('{"case_id": "CASE-001-000", "markers": {')
    return path


def _evaluate_ref_label(ws: Workspace) -> Invocation:
    cohort = ws.cohort()
    pred = _fake_prediction(ws, cohort)
    bad = replace_volume(cohort / "CASE-000-000", "seg", lambda d: np.where(d == 4, 7, d).astype(np.uint8))
    return _evaluate(ws, pred, cohort, bad.name)


def _evaluate_markers(rows: list[tuple]) -> Callable[[Workspace], Invocation]:
    def build(ws: Workspace) -> Invocation:
        cohort = ws.cohort(markers=False)
        pred = _fake_prediction(ws, cohort)
        table = write_markers(ws.path("labels.csv"), rows)
        return _evaluate(ws, pred, cohort, "labels.csv", "--markers", str(table))

    return build


def _evaluate_out_file(ws: Workspace) -> Invocation:
    cohort = ws.cohort()
    out = ws.file("eval.txt")
    inv = _evaluate(ws, _fake_prediction(ws, cohort), cohort, out.name)
    inv.args[inv.args.index("-o") + 1] = str(out)
    inv.out = out
    return inv


def _evaluate_unicode(ws: Workspace) -> Invocation:
    cohort = ws.cohort("référence ß", markers=True)
    pred = _fake_prediction(ws, cohort, "prédit 2")
    inv = _evaluate(ws, pred, cohort, "", "--markers", str(cohort / "markers.csv"))
    inv.out = ws.path("évaluation 3")
    inv.args[inv.args.index("-o") + 1] = str(inv.out)
    inv.allowed = ("per_case.csv", "summary.json", "tables.md")
    return inv


def _pred_label_5(pred: Path) -> Path:
    seg = synthetic_seg()
    seg[seg == 4] = 5  # an exporter's own label
    return write_nifti(pred / "CASE-000-000_seg.nii.gz", seg)


def _pred_negative(pred: Path) -> Path:
    seg = synthetic_seg().astype(np.int16)
    seg[0, 0, :] = -1  # "ignore" voxels of a training tool
    return write_nifti(pred / "CASE-001-000_seg.nii.gz", seg)


def _evaluate_ref_fractional(ws: Workspace) -> Invocation:
    cohort = ws.cohort()
    pred = _fake_prediction(ws, cohort)
    bad = replace_volume(cohort / "CASE-001-000", "seg", lambda d: d.astype(np.float32) * 0.5)  # resampled linearly
    return _evaluate(ws, pred, cohort, bad.name)


def _evaluate_ref_empty(ws: Workspace) -> Invocation:
    pred = _fake_prediction(ws, ws.cohort())
    ws.path("reference").mkdir()
    return _evaluate(ws, pred, ws.path("reference"), "reference")


def _summary_says(**expected: object) -> Callable[[Path], list[str]]:
    def verify(out: Path) -> list[str]:
        summary = json.loads((out / "summary.json").read_text())
        return [f"summary.json {k}={summary.get(k)!r}, expected {v!r}" for k, v in expected.items()
                if summary.get(k) != v]

    return verify


EVAL_OUTPUTS = ("per_case.csv", "summary.json", "tables.md")


def _evaluate_pred_missing_case(ws: Workspace) -> Invocation:
    cohort = ws.cohort()
    pred = _fake_prediction(ws, cohort)
    for path in pred.glob("CASE-001-000*"):
        path.unlink()
    inv = _evaluate(ws, pred, cohort, "")
    inv.allowed, inv.verify = EVAL_OUTPUTS, _summary_says(cases=1, cases_without_prediction=1)
    return inv


def _per_case(expected: dict[str, dict[str, str]]) -> Callable[[Path], list[str]]:
    """Check cells of ``per_case.csv``: case → column → text (numbers compared as floats)."""

    def verify(out: Path) -> list[str]:
        with (out / "per_case.csv").open(newline="") as fh:
            rows = {r["case_id"]: r for r in csv.DictReader(fh)}
        wrong = []
        for cid, cells in expected.items():
            for col, value in cells.items():
                got = rows.get(cid, {}).get(col)
                if got in (None, "") or not np.isclose(float(got), float(value)):
                    wrong.append(f"per_case.csv {cid} {col}={got!r}, expected {value}")
        return wrong

    return verify


def _evaluate_ref_brats2018(ws: Workspace) -> Invocation:
    """A reference in the BraTS 2018–2021 layout (labels 1, 2, 4) against a BraTS 2024 prediction (ET = 3)."""
    seg = synthetic_seg()
    seg[seg == 4] = 0  # no resection cavity before 2024
    ref, pred = ws.path("BraTS2018"), ws.path("pred")
    case = ref / "Brats18_2013_2_1"
    case.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for tag in ("t1", "t1ce", "t2", "flair"):
        write_nifti(case / f"{case.name}_{tag}.nii.gz", rng.normal(100, 5, seg.shape).astype(np.float32))
    write_nifti(case / f"{case.name}_seg.nii.gz", np.where(seg == 3, 4, seg).astype(np.uint8), DEFAULT_AFFINE)
    pred.mkdir()
    write_nifti(pred / f"{case.name}_seg.nii.gz", seg, DEFAULT_AFFINE)
    inv = _evaluate(ws, pred, ref, "")
    inv.allowed, inv.verify = EVAL_OUTPUTS, _per_case({case.name: {"ET_dice": "1", "NETC_dice": "1"}})
    return inv


def _evaluate_table(content: bytes, culprit: str, labels: dict[str, dict[str, str]] | None = None
                    ) -> Callable[[Workspace], Invocation]:
    """``--markers labels.csv`` holding ``content``; with ``labels`` it must work and give these label cells."""

    def build(ws: Workspace) -> Invocation:
        cohort = ws.cohort(markers=False)
        pred = _fake_prediction(ws, cohort)
        table = ws.path("labels.csv")
        table.write_bytes(content)
        inv = _evaluate(ws, pred, cohort, culprit, "--markers", str(table))
        if labels is not None:
            inv.allowed, inv.verify = EVAL_OUTPUTS, _per_case(labels)
        return inv

    return build


_LABELS = {"CASE-000-000": {"label_idh": "1", "label_codel_1p19q": "0"},
           "CASE-001-000": {"label_idh": "0", "label_codel_1p19q": "1"}}


EVALUATE_ENTRIES: list[BadInput] = [
    BadInput("evaluate-pred-missing", "evaluate", "missing prediction folder", _evaluate_pred_missing),
    BadInput("evaluate-fractional-labels", "evaluate", "prediction with non-integer labels",
             _evaluate_edit_pred(_pred_fractional)),
    BadInput("evaluate-label-out-of-range", "evaluate", "reference with label 7", _evaluate_ref_label),
    BadInput("evaluate-shape-mismatch", "evaluate", "prediction of another shape than the reference",
             _evaluate_edit_pred(_pred_shape)),
    BadInput("evaluate-invalid-json", "evaluate", "truncated <case>.json", _evaluate_edit_pred(_pred_json)),
    BadInput("evaluate-markers-unknown-value", "evaluate", "markers CSV with an unknown value",
             _evaluate_markers([("CASE-000-000", 1, "deleted-ish", 1), ("CASE-001-000", 0, 1, 0)])),
    BadInput("evaluate-markers-no-matching-ids", "evaluate", "markers CSV whose ids match no case",
             _evaluate_markers([("P-1", 1, 0, 1), ("P-2", 0, 1, 0)])),
    BadInput("evaluate-out-is-file", "evaluate", "output path is a file", _evaluate_out_file),
    BadInput("evaluate-unicode-path", "evaluate", "paths with spaces and non-ASCII characters (must work)",
             _evaluate_unicode, exit_code=0),
    BadInput("evaluate-pred-label-5", "evaluate", "prediction with label 5", _evaluate_edit_pred(_pred_label_5)),
    BadInput("evaluate-pred-negative-labels", "evaluate", "prediction with label -1",
             _evaluate_edit_pred(_pred_negative)),
    BadInput("evaluate-ref-fractional-labels", "evaluate", "reference resampled with linear interpolation",
             _evaluate_ref_fractional),
    BadInput("evaluate-ref-empty", "evaluate", "empty reference folder", _evaluate_ref_empty),
    BadInput("evaluate-pred-missing-case", "evaluate", "prediction folder missing a case (must work)",
             _evaluate_pred_missing_case, exit_code=0),
    BadInput("evaluate-ref-brats2018-labels", "evaluate", "BraTS 2018 reference with label 4 as ET (must work)",
             _evaluate_ref_brats2018, exit_code=0),
    BadInput("evaluate-markers-duplicate-ids", "evaluate", "markers CSV with a case twice",
             _evaluate_table(b"case_id,idh,codel_1p19q,tert\nCASE-000-000,1,0,1\nCASE-001-000,0,1,0\n"
                             b"CASE-000-000,0,0,0\n", "duplicate case_id 'CASE-000-000'")),
    BadInput("evaluate-markers-empty", "evaluate", "empty markers CSV", _evaluate_table(b"", "labels.csv")),
    BadInput("evaluate-markers-no-id-column", "evaluate", "markers CSV without case_id",
             _evaluate_table(b"patient,idh,codel_1p19q\nCASE-000-000,1,0\n", "missing column 'case_id'")),
    BadInput("evaluate-markers-bom-crlf", "evaluate", "markers CSV with a BOM and Windows line endings (must work)",
             _evaluate_table("\ufeffcase_id,idh,codel_1p19q\r\nCASE-000-000,1,0\r\nCASE-001-000,0,1\r\n".encode(),
                             "", _LABELS), exit_code=0),
    BadInput("evaluate-markers-semicolon", "evaluate", "semicolon-separated markers CSV (must work)",
             _evaluate_table(b"case_id;idh;codel_1p19q\nCASE-000-000;mutant;intact\nCASE-001-000;wildtype;codeleted\n",
                             "", _LABELS), exit_code=0),
]
