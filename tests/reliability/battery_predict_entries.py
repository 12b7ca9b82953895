"""Battery entries of ``gliomics predict``: missing inputs, damaged images and checkpoints, manifests and
``--keep-going``."""

from __future__ import annotations

import csv
import gzip
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from battery_core import (
    PREDICT,
    BadInput,
    Exploit,
    Invocation,
    Workspace,
    checkpoint_state,
    one_case,
    predict_with,
    random_bytes,
    replace_volume,
    seq_file,
    truncate,
    with_value,
    write_checkpoint,
    write_nifti,
)

from gliomics.constants import SEQUENCES
from gliomics_testing import DEFAULT_AFFINE

# ---------------------------------------------------------------------------------------------------------- predict


def _predict_input_missing(ws: Workspace) -> Invocation:
    return predict_with(ws, ws.path("no-such-cases"), "no-such-cases")


def _predict_input_empty(ws: Workspace) -> Invocation:
    ws.path("empty").mkdir()
    return predict_with(ws, ws.path("empty"), "empty")


def _predict_model_missing(ws: Workspace) -> Invocation:
    cohort, _ = one_case(ws)
    inv = predict_with(ws, cohort, "no-such-run")
    inv.args[inv.args.index("-m") + 1] = str(ws.path("no-such-run"))
    return inv


def _predict_checkpoint(make: Callable[[Workspace, Path], None], culprit: str = "model.pt"
                        ) -> Callable[[Workspace], Invocation]:
    def build(ws: Workspace) -> Invocation:
        cohort, _ = one_case(ws)
        ckpt = ws.path(culprit)
        make(ws, ckpt)
        inv = predict_with(ws, cohort, culprit)
        inv.args[inv.args.index("-m") + 1] = str(ckpt)
        return inv

    return build



def _ckpt_truncated(ws: Workspace, path: Path) -> None:
    shutil.copy(ws.run / "best.pt", path)
    truncate(path, 0.6)


def _ckpt_other_model(ws: Workspace, path: Path) -> None:
    state = checkpoint_state(ws)
    state["config"]["model"]["params"]["feature_size"] = 8  # the weights are of a feature_size-4 network
    write_checkpoint(path, state)


def _ckpt_other_architecture(ws: Workspace, path: Path) -> None:
    state = checkpoint_state(ws)
    state["config"]["model"] = {"name": "segresnet", "params": {}}
    write_checkpoint(path, state)


def _ckpt_pickled(ws: Workspace, path: Path) -> None:
    state = checkpoint_state(ws)
    state["extra"] = Exploit(ws.path("pwned"))
    write_checkpoint(path, state)


def _ckpt_not_gliomics(ws: Workspace, path: Path) -> None:
    write_checkpoint(path, {"state_dict": checkpoint_state(ws)["model"]})


def _predict_out_file(ws: Workspace) -> Invocation:
    cohort, _ = one_case(ws)
    out = ws.file("pred.txt")
    inv = predict_with(ws, cohort, out.name)
    inv.args[inv.args.index("-o") + 1] = str(out)
    inv.out = out
    return inv


def _predict_image(edit: Callable[[Path], Path]) -> Callable[[Workspace], Invocation]:
    """A one-case cohort whose case is damaged by ``edit`` (which returns the culprit file)."""

    def build(ws: Workspace) -> Invocation:
        cohort, case = one_case(ws)
        return predict_with(ws, cohort, edit(case).name)

    return build


def _garbage_gz(case: Path) -> Path:
    path = seq_file(case, "t1n")
    path.write_bytes(gzip.compress(os.urandom(3000)))
    return path


def _not_gzip(case: Path) -> Path:
    path = seq_file(case, "t2w")
    path.write_bytes(b"this is not a NIfTI image\n" * 40)
    return path


def _two_d(case: Path) -> Path:
    return write_nifti(seq_file(case, "t1c"), np.ones((16, 16), np.float32))


def _five_d(case: Path) -> Path:
    return write_nifti(seq_file(case, "t2f"), np.ones((16, 16, 12, 2, 2), np.float32))


def _shape_mismatch(case: Path) -> Path:
    return write_nifti(seq_file(case, "t2w"), np.ones((16, 16, 10), np.float32))


def _affine_mismatch(case: Path) -> Path:
    shifted = DEFAULT_AFFINE.copy()
    shifted[:3, 3] += 5.0
    return replace_volume(case, "t2f", lambda d: d, affine=shifted)


def _all_zero(case: Path) -> Path:
    for sequence in SEQUENCES:
        replace_volume(case, sequence, np.zeros_like)
    return seq_file(case, SEQUENCES[0])


def _predict_unknown_sequence(ws: Workspace) -> Invocation:
    cohort, _ = one_case(ws)
    return predict_with(ws, cohort, "dwi", "--sequences", "t1c,dwi")


def _manifest(ws: Workspace, rows: list[dict], columns: tuple[str, ...] = ("case_id", *SEQUENCES, "seg")) -> Path:
    path = ws.path("lists", "manifest.csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _predict_manifest_escape(ws: Workspace) -> Invocation:
    _, case = one_case(ws, "outside")
    row = {"case_id": "ESC-1", **{s: f"../outside/{case.name}/{seq_file(case, s).name}" for s in SEQUENCES}}
    return predict_with(ws, _manifest(ws, [row]), "../outside")


def _predict_manifest_columns(ws: Workspace) -> Invocation:
    _, case = one_case(ws, "cases")
    row = {"case_id": "C1", **{s: str(seq_file(case, s)) for s in SEQUENCES}}
    return predict_with(ws, _manifest(ws, [row], ("case_id", "t1n", "t1c", "flair")), "manifest.csv")


def _predict_keep_going(ws: Workspace) -> Invocation:
    cohort = ws.cohort("cases", n=3, markers=False)
    replace_volume(cohort / "CASE-001-000", "t1c", with_value(np.inf))
    inv = predict_with(ws, cohort, "CASE-001-000-t1c.nii.gz", "--keep-going")
    inv.allowed = (*(f"CASE-{i:03d}-000{suffix}" for i in (0, 2) for suffix in (".json", "_seg.nii.gz")),
                   "predict_summary.json")  # the run's summary names the failed case
    return inv


def _predict_unicode(ws: Workspace) -> Invocation:
    cohort = ws.cohort("cas à l'étude ü", n=1, markers=False)
    out = ws.path("prédictions 1")
    args = ["predict", "-i", str(cohort), "-o", str(out), "-m", str(ws.run), *PREDICT]
    return Invocation(args, "", out, ("CASE-000-000.json", "CASE-000-000_seg.nii.gz", "predict_summary.json"))


def _predict_tiny_volume(ws: Workspace) -> Invocation:
    cohort, case = one_case(ws)
    for s in SEQUENCES:
        write_nifti(seq_file(case, s), np.ones((6, 6, 6), np.float32))
    return predict_with(ws, cohort, "CASE-000-000-t1n.nii.gz")


def _predict_complex_voxels(ws: Workspace) -> Invocation:
    cohort, case = one_case(ws)
    replace_volume(case, "t2w", lambda a: a.astype(np.complex64) * (1 + 1j))
    return predict_with(ws, cohort, "CASE-000-000-t2w.nii.gz")


def _predict_folder_named_like_image(ws: Workspace) -> Invocation:
    cohort, case = one_case(ws)
    seq_file(case, "t1c").unlink()
    seq_file(case, "t1c").mkdir()
    return predict_with(ws, cohort, "CASE-000-000-t1c.nii.gz")


def _predict_empty_case_through_parent(ws: Workspace) -> Invocation:
    ws.path("cohort", "CASE-000-000").mkdir(parents=True)
    return predict_with(ws, ws.path("cohort"), "CASE-000-000")


PREDICT_ENTRIES: list[BadInput] = [
    BadInput("predict-tiny-volume", "predict", "a 6×6×6 volume", _predict_tiny_volume, needs_run=True),
    BadInput("predict-complex-voxels", "predict", "complex-valued voxels", _predict_complex_voxels, needs_run=True),
    BadInput("predict-folder-named-like-image", "predict", "a folder named t1c.nii.gz",
             _predict_folder_named_like_image, needs_run=True),
    BadInput("predict-empty-case-through-parent", "predict", "an empty case folder reached through its parent",
             _predict_empty_case_through_parent, needs_run=True),
    BadInput("predict-input-missing", "predict", "missing input folder", _predict_input_missing, needs_run=True),
    BadInput("predict-input-empty", "predict", "empty input folder", _predict_input_empty, needs_run=True),
    BadInput("predict-model-missing", "predict", "missing run folder", _predict_model_missing),
    BadInput("predict-checkpoint-garbage", "predict", "corrupt checkpoint (random bytes)",
             _predict_checkpoint(random_bytes), needs_run=True),
    BadInput("predict-checkpoint-truncated", "predict", "truncated checkpoint", _predict_checkpoint(_ckpt_truncated),
             needs_run=True),
    BadInput("predict-checkpoint-other-size", "predict", "checkpoint whose weights are of another model size",
             _predict_checkpoint(_ckpt_other_model), needs_run=True),
    BadInput("predict-checkpoint-other-model", "predict", "checkpoint of another architecture",
             _predict_checkpoint(_ckpt_other_architecture), needs_run=True),
    BadInput("predict-checkpoint-pickled-object", "predict", "checkpoint carrying a pickled object",
             _predict_checkpoint(_ckpt_pickled), needs_run=True),
    BadInput("predict-checkpoint-foreign", "predict", "a torch file that is not a gliomics checkpoint",
             _predict_checkpoint(_ckpt_not_gliomics), needs_run=True),
    BadInput("predict-out-is-file", "predict", "output path is a file", _predict_out_file, needs_run=True),
    BadInput("predict-nan-voxels", "predict", "NaN voxels",
             _predict_image(lambda c: replace_volume(c, "t1n", with_value(np.nan))), needs_run=True),
    BadInput("predict-inf-voxels", "predict", "infinite voxels",
             _predict_image(lambda c: replace_volume(c, "t2f", with_value(-np.inf))), needs_run=True),
    BadInput("predict-truncated-gz", "predict", "truncated .nii.gz",
             _predict_image(lambda c: truncate(seq_file(c, "t1c"))), needs_run=True),
    BadInput("predict-corrupt-gz", "predict", "gzip of random bytes named .nii.gz", _predict_image(_garbage_gz),
             needs_run=True),
    BadInput("predict-not-gzip", "predict", "text file named .nii.gz", _predict_image(_not_gzip), needs_run=True),
    BadInput("predict-2d-image", "predict", "2D image", _predict_image(_two_d), needs_run=True),
    BadInput("predict-5d-image", "predict", "5D image", _predict_image(_five_d), needs_run=True),
    BadInput("predict-shape-mismatch", "predict", "sequences of different shapes", _predict_image(_shape_mismatch),
             needs_run=True),
    BadInput("predict-affine-mismatch", "predict", "sequences with different affines",
             _predict_image(_affine_mismatch), needs_run=True),
    BadInput("predict-all-zero", "predict", "all-zero volumes", _predict_image(_all_zero), needs_run=True),
    BadInput("predict-unknown-sequence", "predict", "--sequences with an unknown name", _predict_unknown_sequence,
             needs_run=True),
    BadInput("predict-manifest-escape", "predict", "manifest path escaping its folder (../)", _predict_manifest_escape,
             needs_run=True),
    BadInput("predict-manifest-columns", "predict", "manifest without the sequence columns",
             _predict_manifest_columns, needs_run=True),
    BadInput("predict-keep-going", "predict", "--keep-going over a folder with one bad case", _predict_keep_going,
             needs_run=True),
    BadInput("predict-unicode-path", "predict", "paths with spaces and non-ASCII characters (must work)",
             _predict_unicode, exit_code=0, needs_run=True),
]
