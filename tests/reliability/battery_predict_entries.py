"""Battery entries of ``gliomics predict``: missing inputs, damaged images and checkpoints, manifests and
``--keep-going``."""

from __future__ import annotations

import csv
import gzip
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
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
    zero_affine,
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


def _four_d(case: Path) -> Path:
    return write_nifti(seq_file(case, "t1n"), np.ones((16, 16, 12, 2), np.float32))  # two volumes (e.g. a DWI)


def _zero_bytes(case: Path) -> Path:
    path = seq_file(case, "t2f")
    path.write_bytes(b"")  # a copy that failed on a full disk
    return path


def _zero_affine(case: Path) -> Path:
    """Every sequence exported by a broken converter (:func:`zero_affine`)."""
    for sequence in SEQUENCES:
        zero_affine(seq_file(case, sequence))
    return seq_file(case, SEQUENCES[0])


def _dangling_link(case: Path) -> Path:
    path = seq_file(case, "t2w")
    path.unlink()
    path.symlink_to(Path("..", "..", "archive", path.name))  # the archive is not mounted
    return path


def _link_loop(case: Path) -> Path:
    path = seq_file(case, "t1n")
    path.unlink()
    path.symlink_to(path.name)  # points at itself
    return path


def _sequence_record(out: Path) -> list[str]:
    """The case was predicted from its four sequences, in its own grid."""
    record = json.loads((out / "CASE-000-000.json").read_text())
    problems = [] if record.get("sequences_present") == list(SEQUENCES) else [
        f"sequences_present {record.get('sequences_present')}, expected {list(SEQUENCES)}"]
    shape = nib.load(out / "CASE-000-000_seg.nii.gz").shape
    return problems + ([] if shape == (16, 16, 12) else [f"segmentation of shape {shape}, expected (16, 16, 12)"])


def _predict_usable(edit: Callable[[np.ndarray], np.ndarray]) -> Callable[[Workspace], Invocation]:
    """A one-case cohort whose four images are rewritten by ``edit``, which must be predicted as any other."""

    def build(ws: Workspace) -> Invocation:
        cohort, case = one_case(ws)
        for s in SEQUENCES:
            replace_volume(case, s, edit)
        inv = predict_with(ws, cohort, "")
        inv.allowed = ("CASE-000-000.json", "CASE-000-000_seg.nii.gz", "predict_summary.json")
        inv.verify = _sequence_record
        return inv

    return build


def _int16_full_range(data: np.ndarray) -> np.ndarray:
    return np.round(data / data.max() * np.iinfo(np.int16).max).astype(np.int16)


def _predict_other_case_file(ws: Workspace) -> Invocation:
    """A case folder holding another case's T2 in place of its own (a copy gone wrong)."""
    cohort = ws.cohort("cases", n=2, markers=False)
    seq_file(cohort / "CASE-000-000", "t2w").unlink()
    shutil.copy(seq_file(cohort / "CASE-001-000", "t2w"), cohort / "CASE-000-000" / "CASE-001-000-t2w.nii.gz")
    return predict_with(ws, cohort, "CASE-001-000-t2w.nii.gz")


def _predict_manifest_duplicate(ws: Workspace) -> Invocation:
    cohort = ws.cohort("cases", n=2, markers=False)
    rows = [{"case_id": "P1", **{s: str(seq_file(cohort / c, s)) for s in SEQUENCES}}
            for c in ("CASE-000-000", "CASE-001-000")]
    return predict_with(ws, _manifest(ws, rows), "duplicate case id 'P1'")


def _predict_run(make: Callable[[Workspace, Path], None], culprit: str) -> Callable[[Workspace], Invocation]:
    """``-m`` a run folder that ``make`` fills."""

    def build(ws: Workspace) -> Invocation:
        cohort, _ = one_case(ws)
        run = ws.path("old run")
        run.mkdir()
        make(ws, run)
        inv = predict_with(ws, cohort, culprit)
        inv.args[inv.args.index("-m") + 1] = str(run)
        return inv

    return build


def _run_foreign_config(ws: Workspace, run: Path) -> None:
    state = checkpoint_state(ws)
    state["config"]["train"]["warmup_steps"] = 100  # a key of another version's config
    write_checkpoint(run / "best.pt", state)


def _ckpt_no_model_section(ws: Workspace, path: Path) -> None:
    state = checkpoint_state(ws)
    del state["config"]["model"]
    write_checkpoint(path, state)


def _ckpt_unknown_model_name(ws: Workspace, path: Path) -> None:
    state = checkpoint_state(ws)
    state["config"]["model"]["name"] = "unetr_v9"
    write_checkpoint(path, state)


def _predict_last_only(ws: Workspace) -> Invocation:
    """A run stopped before its first validation: last.pt and no best.pt."""
    cohort, _ = one_case(ws)
    run = ws.path("interrupted run")
    shutil.copytree(ws.run, run, ignore=shutil.ignore_patterns("best.pt"))
    inv = predict_with(ws, cohort, "")
    inv.args[inv.args.index("-m") + 1] = str(run)
    inv.allowed = ("CASE-000-000.json", "CASE-000-000_seg.nii.gz", "predict_summary.json")
    inv.verify = _sequence_record
    return inv


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
    BadInput("predict-float64-images", "predict", "float64 images (must work)",
             _predict_usable(lambda d: d.astype(np.float64)), exit_code=0, needs_run=True),
    BadInput("predict-int16-full-range", "predict", "int16 images up to 32767 (must work)",
             _predict_usable(_int16_full_range), exit_code=0, needs_run=True),
    BadInput("predict-4d-two-volumes", "predict", "4D image of two volumes", _predict_image(_four_d), needs_run=True),
    BadInput("predict-zero-byte-file", "predict", "zero-byte image file", _predict_image(_zero_bytes), needs_run=True),
    BadInput("predict-zero-affine", "predict", "images whose affine is all zeros", _predict_image(_zero_affine),
             needs_run=True),
    BadInput("predict-dangling-symlink", "predict", "sequence file that is a dangling symbolic link",
             _predict_image(_dangling_link), needs_run=True),
    BadInput("predict-symlink-loop", "predict", "sequence file that is a symbolic link to itself",
             _predict_image(_link_loop), needs_run=True),
    BadInput("predict-file-of-other-case", "predict", "a case folder holding another case's sequence file",
             _predict_other_case_file, needs_run=True),
    BadInput("predict-manifest-duplicate-id", "predict", "manifest with one case id on two rows (two folders)",
             _predict_manifest_duplicate, needs_run=True),
    BadInput("predict-run-empty", "predict", "empty run folder", _predict_run(lambda ws, run: None, "old run"),
             needs_run=True),
    BadInput("predict-run-other-version", "predict", "run folder whose best.pt config has another version's key",
             _predict_run(_run_foreign_config, "warmup_steps"), needs_run=True),
    BadInput("predict-checkpoint-config-no-model", "predict", "checkpoint whose config lacks the model section",
             _predict_checkpoint(_ckpt_no_model_section, "old-version.pt"), needs_run=True),
    BadInput("predict-checkpoint-unknown-model-name", "predict", "checkpoint naming a model this version lacks",
             _predict_checkpoint(_ckpt_unknown_model_name), needs_run=True),
    BadInput("predict-run-last-only", "predict", "run folder with last.pt and no best.pt (must work)",
             _predict_last_only, exit_code=0, needs_run=True),
]
