"""Battery entries of ``gliomics evaluate``, ``slices``, ``slice-benchmark``, ``preprocess`` and ``import``."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from battery_core import (
    BENCH,
    SLICES,
    BadInput,
    Exploit,
    Invocation,
    Workspace,
    random_bytes,
    replace_volume,
    seq_file,
    truncate,
    with_value,
    write_checkpoint,
    write_markers,
    write_nifti,
)

from gliomics.constants import SEQUENCES

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


# ----------------------------------------------------------------------------------------------------------- slices


def _slices(ws: Workspace, data: Path, culprit: str, *extra: str, command: str = "slices") -> Invocation:
    out = ws.path("slices")
    return Invocation([command, "--data", str(data), "-o", str(out), *(SLICES if command == "slices" else BENCH),
                       *extra], culprit, out)


def _slices_unknown_marker(ws: Workspace) -> Invocation:
    return _slices(ws, ws.cohort(n=4), "egfr", "--marker", "egfr")


def _slices_no_t1c(ws: Workspace) -> Invocation:
    cohort = ws.cohort(n=4)
    seq_file(cohort / "CASE-003-000", "t1c").unlink()
    return _slices(ws, cohort, "CASE-003-000")


def _slices_corrupt_t1c(ws: Workspace) -> Invocation:
    cohort = ws.cohort(n=4)
    return _slices(ws, cohort, truncate(seq_file(cohort / "CASE-002-000", "t1c"), 0.3).name)


def _slices_markers_columns(ws: Workspace) -> Invocation:
    cohort = ws.cohort(n=4, markers=False)
    table = write_markers(ws.path("clinical.csv"), [("CASE-000-000", 54)], ("patient", "age"))
    return _slices(ws, cohort, "clinical.csv", "--markers", str(table))


def _slices_out_file(ws: Workspace) -> Invocation:
    out = ws.file("slices.txt")
    inv = _slices(ws, ws.cohort(n=4), out.name)
    inv.args[inv.args.index("-o") + 1] = str(out)
    inv.out = out
    return inv


def _slices_unicode(ws: Workspace) -> Invocation:
    inv = _slices(ws, ws.cohort("cohorte ü", n=4), "")
    inv.out = ws.path("coupes 2D")
    inv.args[inv.args.index("-o") + 1] = str(inv.out)
    inv.allowed = ("index.csv", "slices_summary.json", "slices/CASE-000-000_z*.npy", "slices/CASE-00?-000_z*.npy")
    return inv


def _bench_one_class(ws: Workspace) -> Invocation:
    cohort = ws.cohort(n=4, markers=False)
    write_markers(cohort / "markers.csv", [(f"CASE-{i:03d}-000", 0, 0, 1) for i in range(4)])
    return _slices(ws, cohort, "tert", command="slice-benchmark")


def _bench_unknown_backbone(ws: Workspace) -> Invocation:
    return _slices(ws, ws.cohort(n=4), "alexnet", "--backbones", "alexnet", command="slice-benchmark")


def _bench_weights(make: Callable[[Workspace, Path], None]) -> Callable[[Workspace], Invocation]:
    def build(ws: Workspace) -> Invocation:
        weights = ws.path("shufflenet weights.pth")
        make(ws, weights)
        return _slices(ws, ws.cohort(n=4), weights.name, "--weights", f"shufflenet={weights}",
                       command="slice-benchmark")

    return build


def _weights_pickled(ws: Workspace, path: Path) -> None:
    import torch

    write_checkpoint(path, {"conv1.weight": torch.zeros(1), "evil": Exploit(ws.path("pwned"))})


# ------------------------------------------------------------------------------------------------------- preprocess


def _preprocess(ws: Workspace, source: Path, culprit: str, *extra: str) -> Invocation:
    out = ws.path("pp")
    return Invocation(["preprocess", "-i", str(source), "-o", str(out), "--skip-registration", "--no-n4",
                       "--spacing", "2", "--grid", "8,8,8", "--skull-strip", "atlas", "--no-progress", *extra],
                      culprit, out)


def _preprocess_empty(ws: Workspace) -> Invocation:
    ws.path("raw").mkdir()
    return _preprocess(ws, ws.path("raw"), "raw")


def _preprocess_grid(ws: Workspace) -> Invocation:
    inv = _preprocess(ws, ws.cohort(n=1), "--grid")
    inv.args[inv.args.index("--grid") + 1] = "240,240"
    return inv


def _preprocess_atlas(ws: Workspace) -> Invocation:
    atlas = ws.path("atlas.nii.gz")
    atlas.write_bytes(b"\x1f\x8b" + os.urandom(500))
    inv = _preprocess(ws, ws.cohort(n=1), "atlas.nii.gz", "--atlas", str(atlas))
    inv.args.remove("--skip-registration")
    return inv


def _preprocess_nan(ws: Workspace) -> Invocation:
    cohort = ws.cohort(n=1, markers=False)
    bad = replace_volume(cohort / "CASE-000-000", "t1n", with_value(np.nan))
    return _preprocess(ws, cohort, bad.name)


def _preprocess_keep_going(ws: Workspace) -> Invocation:
    cohort = ws.cohort("raw", n=2, markers=False)
    replace_volume(cohort / "CASE-001-000", "t2f", with_value(np.nan))
    inv = _preprocess(ws, cohort, "CASE-001-000-t2f.nii.gz", "--keep-going")
    inv.allowed = tuple(f"CASE-000-000/CASE-000-000-{s}.nii.gz" for s in (*SEQUENCES, "seg")) + (
        "CASE-000-000/preprocess/geometry.json", "CASE-000-000/preprocess/*")
    return inv


def _preprocess_unicode(ws: Workspace) -> Invocation:
    inv = _preprocess(ws, ws.cohort("scans bruts é", n=1, markers=False), "")
    inv.out = ws.path("prétraité ø")
    inv.args[inv.args.index("-o") + 1] = str(inv.out)
    inv.allowed = ("CASE-000-000/CASE-000-000-t1c.nii.gz", "CASE-000-000/preprocess/geometry.json", "CASE-000-000/*")
    return inv


def _preprocess_out_file(ws: Workspace) -> Invocation:
    out = ws.file("pp.txt")
    inv = _preprocess(ws, ws.cohort(n=1), out.name)
    inv.args[inv.args.index("-o") + 1] = str(out)
    inv.out = out
    return inv


# ----------------------------------------------------------------------------------------------------------- import


def _import(ws: Workspace, fmt: str, source: Path, culprit: str, *extra: str) -> Invocation:
    out = ws.path("imported")
    return Invocation(["import", "--format", fmt, "-i", str(source), "-o", str(out), *extra], culprit, out)


def _import_unknown_format(ws: Workspace) -> Invocation:
    return _import(ws, "adni", ws.cohort(n=1), "adni")


def _import_missing(ws: Workspace) -> Invocation:
    return _import(ws, "brats2024", ws.path("BraTS missing"), "BraTS missing")


def _import_brats2021_label(ws: Workspace) -> Invocation:
    folder = ws.path("BraTS2021")
    case = folder / "BraTS2021_00001"
    case.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for tag in ("t1", "t1ce", "t2", "flair"):
        write_nifti(case / f"BraTS2021_00001_{tag}.nii.gz", rng.normal(100, 5, (16, 16, 12)).astype(np.float32))
    seg = np.zeros((16, 16, 12), np.uint8)
    seg[4:8, 4:8, 4:8] = 3  # BraTS 2021 has no label 3
    write_nifti(case / "BraTS2021_00001_seg.nii.gz", seg)
    return _import(ws, "brats2021", folder, "BraTS2021_00001_seg.nii.gz")


def _import_out_file(ws: Workspace) -> Invocation:
    out = ws.file("imported.csv")
    inv = _import(ws, "brats2024", ws.cohort(n=1, markers=False), out.name)
    inv.args[inv.args.index("-o") + 1] = str(out)
    inv.out = out
    return inv


def _import_unicode(ws: Workspace) -> Invocation:
    inv = _import(ws, "brats2024", ws.cohort("BraTS jeu ç", n=2, markers=False), "")
    inv.out = ws.path("importé 4")
    inv.args[inv.args.index("-o") + 1] = str(inv.out)
    inv.allowed = ("manifest.csv", "markers.csv")
    return inv


def _import_dicom_garbage(ws: Workspace) -> Invocation:
    study = ws.path("study P001")
    study.mkdir()
    (study / "IM0001.dcm").write_bytes(b"DICM" + os.urandom(600))
    (study / "IM0002.dcm").write_bytes(os.urandom(2000))
    return _import(ws, "dicom", study, "study P001", "--case-id", "P001")


def _import_tcga_columns(ws: Workspace) -> Invocation:
    table = ws.file("pan_glioma.tsv", "Case\tIDH\nTCGA-02-0001\tMutant\n")
    return _import(ws, "tcga", table, "pan_glioma.tsv")


def _import_tcga_value(ws: Workspace) -> Invocation:
    table = ws.file("tcga.csv", "Case,IDH.status,X1p.19q.codeletion\nTCGA-02-0001,Mutant,codel\n"
                                "TCGA-02-0002,maybe,non-codel\n")
    return _import(ws, "tcga", table, "maybe")


DATA_ENTRIES: list[BadInput] = [
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
    BadInput("slices-unknown-marker", "slices", "unknown marker name", _slices_unknown_marker),
    BadInput("slices-no-t1c", "slices", "case without T1ce", _slices_no_t1c),
    BadInput("slices-truncated-t1c", "slices", "truncated T1ce", _slices_corrupt_t1c),
    BadInput("slices-markers-missing-columns", "slices", "markers CSV without case_id", _slices_markers_columns),
    BadInput("slices-out-is-file", "slices", "output path is a file", _slices_out_file),
    BadInput("slices-unicode-path", "slices", "paths with spaces and non-ASCII characters (must work)",
             _slices_unicode, exit_code=0),
    BadInput("slice-benchmark-one-class", "slice-benchmark", "cohort with one marker class only", _bench_one_class),
    BadInput("slice-benchmark-unknown-backbone", "slice-benchmark", "unknown backbone", _bench_unknown_backbone),
    BadInput("slice-benchmark-pickled-weights", "slice-benchmark", "--weights file carrying a pickled object",
             _bench_weights(_weights_pickled)),
    BadInput("slice-benchmark-corrupt-weights", "slice-benchmark", "--weights file of random bytes",
             _bench_weights(random_bytes)),
    BadInput("preprocess-input-empty", "preprocess", "empty input folder", _preprocess_empty),
    BadInput("preprocess-bad-grid", "preprocess", "--grid with two numbers", _preprocess_grid),
    BadInput("preprocess-corrupt-atlas", "preprocess", "corrupt --atlas file", _preprocess_atlas),
    BadInput("preprocess-nan-voxels", "preprocess", "NaN voxels", _preprocess_nan),
    BadInput("preprocess-keep-going", "preprocess", "--keep-going over a folder with one bad case",
             _preprocess_keep_going),
    BadInput("preprocess-unicode-path", "preprocess", "paths with spaces and non-ASCII characters (must work)",
             _preprocess_unicode, exit_code=0),
    BadInput("preprocess-out-is-file", "preprocess", "output path is a file", _preprocess_out_file),
    BadInput("import-unknown-format", "import", "unknown --format", _import_unknown_format),
    BadInput("import-missing-input", "import", "missing dataset folder", _import_missing),
    BadInput("import-brats2021-label", "import", "BraTS 2021 segmentation with label 3", _import_brats2021_label),
    BadInput("import-out-is-file", "import", "output path is a file", _import_out_file),
    BadInput("import-unicode-path", "import", "paths with spaces and non-ASCII characters (must work)",
             _import_unicode, exit_code=0),
    BadInput("import-dicom-garbage", "import", "DICOM study folder of unreadable files", _import_dicom_garbage),
    BadInput("import-tcga-missing-column", "import", "TCGA table without the 1p/19q column", _import_tcga_columns),
    BadInput("import-tcga-unknown-value", "import", "TCGA table with an unknown IDH value", _import_tcga_value),
]
