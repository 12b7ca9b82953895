"""Battery entries of ``gliomics slices``, ``slice-benchmark`` and ``preprocess``."""

from __future__ import annotations

import json
import os
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
    zero_affine,
)

from gliomics.constants import SEQUENCES
from gliomics_testing import DEFAULT_AFFINE

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


def _preprocess_edit(edit: Callable[[Path], Path]) -> Callable[[Workspace], Invocation]:
    def build(ws: Workspace) -> Invocation:
        cohort = ws.cohort(n=1, markers=False)
        return _preprocess(ws, cohort, edit(cohort / "CASE-000-000").name)

    return build


def _zero_bytes(case: Path) -> Path:
    path = seq_file(case, "t2w")
    path.write_bytes(b"")
    return path


def _preprocess_grid_letters(ws: Workspace) -> Invocation:
    inv = _preprocess(ws, ws.cohort(n=1), "--grid")
    inv.args[inv.args.index("--grid") + 1] = "8x8x8"
    return inv


def _preprocess_with_atlas(make: Callable[[Path], None]) -> Callable[[Workspace], Invocation]:
    def build(ws: Workspace) -> Invocation:
        atlas = ws.path("atlases", "sri24_t1.nii.gz")
        atlas.parent.mkdir()
        make(atlas)
        inv = _preprocess(ws, ws.cohort(n=1), atlas.name, "--atlas", str(atlas))
        inv.args.remove("--skip-registration")
        return inv

    return build


def _atlas_2d(path: Path) -> None:
    write_nifti(path, np.ones((64, 64), np.float32))  # one slice of a template


def _preprocess_geometry(reference: str) -> Callable[[Path], list[str]]:
    def verify(out: Path) -> list[str]:
        record = json.loads((out / "CASE-000-000" / "preprocess" / "geometry.json").read_text())
        found = record.get("reference")
        return [] if found == reference else [f"geometry.json reference {found!r}, expected {reference!r}"]

    return verify


def _preprocess_no_t1(ws: Workspace) -> Invocation:
    """A case of T2 and FLAIR only: no T1 or T1ce to register to."""
    inv = _preprocess(ws, ws.cohort("raw", n=1, markers=False, missing=("t1n", "t1c")), "")
    inv.allowed = ("CASE-000-000/CASE-000-000-t2w.nii.gz", "CASE-000-000/CASE-000-000-t2f.nii.gz",
                   "CASE-000-000/preprocess/geometry.json", "CASE-000-000/*")
    inv.verify = _preprocess_geometry("t2f")
    return inv


def _preprocess_other_grids(ws: Workspace) -> Invocation:
    """The FLAIR on its own grid (finer voxels, shifted origin), as scanners write it: usable."""
    cohort = ws.cohort("raw", n=1, markers=False)
    affine = DEFAULT_AFFINE.copy()
    affine[:3, :3] *= 0.8
    affine[:3, 3] += (1.0, -2.0, 1.5)
    write_nifti(seq_file(cohort / "CASE-000-000", "t2f"),
                np.random.default_rng(1).normal(150, 5, (20, 20, 15)).astype(np.float32), affine)
    inv = _preprocess(ws, cohort, "")
    inv.allowed = (*(f"CASE-000-000/CASE-000-000-{s}.nii.gz" for s in SEQUENCES),
                   "CASE-000-000/preprocess/geometry.json", "CASE-000-000/*")
    inv.verify = _preprocess_geometry("t1c")
    return inv


DATA_ENTRIES: list[BadInput] = [
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
    BadInput("preprocess-no-t1", "preprocess", "case of T2 and FLAIR only (must work)", _preprocess_no_t1,
             exit_code=0),
    BadInput("preprocess-sequences-other-grids", "preprocess", "FLAIR on its own grid (must work)",
             _preprocess_other_grids, exit_code=0),
    BadInput("preprocess-grid-letters", "preprocess", "--grid 8x8x8", _preprocess_grid_letters),
    BadInput("preprocess-atlas-missing", "preprocess", "--atlas file that does not exist",
             _preprocess_with_atlas(lambda path: None)),
    BadInput("preprocess-atlas-2d", "preprocess", "2D --atlas image",
             _preprocess_with_atlas(_atlas_2d)),
    BadInput("preprocess-inf-voxels", "preprocess", "infinite voxels",
             _preprocess_edit(lambda c: replace_volume(c, "t1c", with_value(np.inf)))),
    BadInput("preprocess-zero-byte-file", "preprocess", "zero-byte image file", _preprocess_edit(_zero_bytes)),
    BadInput("preprocess-zero-affine", "preprocess", "image whose affine is all zeros",
             _preprocess_edit(lambda c: zero_affine(seq_file(c, "t1c")))),
]
