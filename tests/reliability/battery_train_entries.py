"""Battery entries of ``gliomics phantom`` and ``gliomics train``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from battery_core import (
    BadInput,
    Invocation,
    Workspace,
    checkpoint_state,
    replace_volume,
    seq_file,
    with_value,
    write_checkpoint,
    write_markers,
    write_nifti,
)

from gliomics_testing import TINY_OVERRIDES

# ---------------------------------------------------------------------------------------------------------- phantom


def _phantom_out_file(ws: Workspace) -> Invocation:
    out = ws.file("cohort.txt")
    return Invocation(["phantom", "--out", str(out), "--cases", "1", "--spacing", "4", "--no-progress"], out.name, out)


def _phantom_out_under_file(ws: Workspace) -> Invocation:
    parent = ws.file("blocker")
    out = parent / "cohort"
    return Invocation(["phantom", "--out", str(out), "--cases", "1", "--spacing", "4", "--no-progress"], "blocker",
                      parent)


def _phantom_read_only(ws: Workspace) -> Invocation:
    out = ws.path("readonly")
    out.mkdir()
    out.chmod(0o555)
    return Invocation(["phantom", "--out", str(out), "--cases", "1", "--spacing", "4", "--no-progress"], "readonly",
                      out)


# ------------------------------------------------------------------------------------------------------------ train


def _train(ws: Workspace, data: Path, culprit: str, *extra: str, markers: Path | None = None) -> Invocation:
    out = ws.path("run")
    args = ["train", "--data", str(data), "--out", str(out), "--epochs", "1", "--device", "cpu", "--no-progress",
            *(["--markers", str(markers)] if markers is not None else []), *extra]
    return Invocation(args, culprit, out)


def _train_data_missing(ws: Workspace) -> Invocation:
    return _train(ws, ws.path("no-such-cohort"), "no-such-cohort")


def _train_data_empty(ws: Workspace) -> Invocation:
    ws.path("empty").mkdir()
    return _train(ws, ws.path("empty"), "empty")


def _train_wrong_layout(ws: Workspace) -> Invocation:
    folder = ws.path("notes")
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "scan.dcm.txt").write_text("x")
    (folder / "readme.txt").write_text("x")
    return _train(ws, folder, "notes")


def _train_no_supervision(ws: Workspace) -> Invocation:
    """A case without segmentation, whole-tumour mask or known marker (without a seg but with markers it trains)."""
    cohort = ws.cohort()
    seq_file(cohort / "CASE-001-000", "seg").unlink()
    return _train(ws, cohort, "CASE-001-000")


def _train_set_unknown(ws: Workspace) -> Invocation:
    cohort = ws.cohort()
    return _train(ws, cohort, "train.bogus_key", "--set", "train.bogus_key=1")


def _train_set_type(ws: Workspace) -> Invocation:
    cohort = ws.cohort()
    return _train(ws, cohort, "train.lr", "--set", "train.lr=fast")


def _train_patch_too_small_for_model(ws: Workspace) -> Invocation:
    cohort = ws.cohort()
    return _train(ws, cohort, "train.patch_size", "--set", "model.name=swinunetr", "--set",
                  "train.patch_size=[32,32,32]")


def _train_preset_unknown_key(ws: Workspace) -> Invocation:
    cohort = ws.cohort()
    preset = ws.file("my preset.yaml", "inherits_from: mgmtnet_cpu\ntrain:\n  learning_rate: 0.1\n")
    return _train(ws, cohort, "my preset.yaml", "--preset", str(preset))


def _train_preset_python_tag(ws: Workspace) -> Invocation:
    cohort = ws.cohort()
    preset = ws.file("evil.yaml", "inherits_from: mgmtnet_cpu\ndescription: !!python/object/apply:os.getcwd []\n")
    return _train(ws, cohort, "evil.yaml", "--preset", str(preset))


def _markers_case(rows: list[tuple], header: tuple[str, ...] | None = None) -> Callable[[Workspace], Invocation]:
    def build(ws: Workspace) -> Invocation:
        cohort = ws.cohort(markers=False)
        table = write_markers(ws.path("table.csv"), rows, *(() if header is None else (header,)))
        return _train(ws, cohort, "table.csv", markers=table)

    return build


def _train_nan(ws: Workspace) -> Invocation:
    cohort = ws.cohort(n=4)
    bad = replace_volume(cohort / "CASE-002-000", "t2w", with_value(np.nan))
    tiny = [arg for override in TINY_OVERRIDES for arg in ("--set", override)]
    return _train(ws, cohort, bad.name, *tiny, markers=cohort / "markers.csv")


def _train_out_file(ws: Workspace) -> Invocation:
    cohort = ws.cohort()
    out = ws.file("run.txt")
    inv = _train(ws, cohort, out.name, markers=cohort / "markers.csv")
    inv.args[inv.args.index("--out") + 1] = str(out)
    inv.out = out
    return inv


def _train_resume_corrupt(ws: Workspace) -> Invocation:
    cohort = ws.cohort()
    ws.path("run").mkdir()
    ws.path("run", "last.pt").write_bytes(os.urandom(4096))
    return _train(ws, cohort, "last.pt", "--resume", markers=cohort / "markers.csv")


def _train_resume_foreign(ws: Workspace) -> Invocation:
    cohort = ws.cohort()
    state = checkpoint_state(ws)
    state["config"]["train"]["warmup_steps"] = 100  # not a key of this version's config
    ws.path("run").mkdir()
    write_checkpoint(ws.path("run", "last.pt"), state)
    return _train(ws, cohort, "warmup_steps", "--resume", markers=cohort / "markers.csv")


def _train_unicode(ws: Workspace) -> Invocation:
    cohort = ws.cohort("données d'entraînement", n=4)
    tiny = [arg for override in TINY_OVERRIDES for arg in ("--set", override)]
    inv = _train(ws, cohort, "", *tiny, markers=cohort / "markers.csv")
    inv.out = ws.path("exécution 1")
    inv.args[inv.args.index("--out") + 1] = str(inv.out)
    inv.allowed = ("config.yaml", "splits.json", "best.pt", "last.pt", "metrics.jsonl", "metrics.csv",
                   "train_summary.json", "validation_predictions.json", "model_card.json", "fitted.json")
    return inv


def _train_seg(edit: Callable[[Path], Path]) -> Callable[[Workspace], Invocation]:
    """Four cases (as the NaN entry) whose third case's segmentation is rewritten by ``edit``."""

    def build(ws: Workspace) -> Invocation:
        cohort = ws.cohort(n=4)
        bad = edit(cohort / "CASE-002-000")
        tiny = [arg for override in TINY_OVERRIDES for arg in ("--set", override)]
        return _train(ws, cohort, bad.name, *tiny, markers=cohort / "markers.csv")

    return build


def _seg_label_5(case: Path) -> Path:
    return replace_volume(case, "seg", lambda d: np.where(d == 4, 5, d).astype(np.uint8))


def _seg_fractional(case: Path) -> Path:
    return replace_volume(case, "seg", lambda d: d.astype(np.float32) * 0.75)  # resampled with linear interpolation


def _seg_other_shape(case: Path) -> Path:
    path = seq_file(case, "seg")
    write_nifti(path, np.zeros((16, 16, 10), np.uint8))  # cropped by another tool
    return path


def _train_same_case_two_cohorts(ws: Workspace) -> Invocation:
    first, second = ws.cohort("site A", n=2), ws.cohort("site B", n=2)  # both number their cases from CASE-000-000
    inv = _train(ws, first, "'CASE-000-000' is also in", markers=first / "markers.csv")
    inv.args += ["--data", str(second), "--markers", str(second / "markers.csv")]
    return inv


def _train_preset_not_yaml(ws: Workspace) -> Invocation:
    cohort = ws.cohort()
    preset = ws.file("broken.yaml", "inherits_from: mgmtnet_cpu\ntrain:\n  lr: [0.001\n  epochs: 3\n")
    return _train(ws, cohort, "broken.yaml", "--preset", str(preset))


def _train_markers_empty(ws: Workspace) -> Invocation:
    cohort = ws.cohort(markers=False)
    table = ws.file("table.csv", "")
    return _train(ws, cohort, "table.csv", markers=table)


MARKER_ROWS_OK = [("CASE-000-000", 1, 0, 1), ("CASE-001-000", 0, 1, 0)]

TRAIN_ENTRIES: list[BadInput] = [
    BadInput("phantom-out-is-file", "phantom", "output path is a file", _phantom_out_file),
    BadInput("phantom-out-under-file", "phantom", "output folder below a file", _phantom_out_under_file),
    BadInput("phantom-out-read-only", "phantom", "read-only output folder", _phantom_read_only,
             needs_unprivileged=True),
    BadInput("train-data-missing", "train", "missing data folder", _train_data_missing),
    BadInput("train-data-empty", "train", "empty data folder", _train_data_empty),
    BadInput("train-wrong-layout", "train", "folder without NIfTI cases", _train_wrong_layout),
    BadInput("train-no-supervision", "train", "training case without segmentation, mask or marker",
             _train_no_supervision),
    BadInput("train-set-unknown-key", "train", "--set with an unknown key", _train_set_unknown),
    BadInput("train-set-wrong-type", "train", "--set with a wrong type", _train_set_type),
    BadInput("train-patch-vs-model", "train", "patch size the model cannot take (SwinUNETR at 32^3)",
             _train_patch_too_small_for_model),
    BadInput("train-preset-unknown-key", "train", "preset YAML with an unknown key", _train_preset_unknown_key),
    BadInput("train-preset-python-tag", "train", "preset YAML with a !!python tag", _train_preset_python_tag),
    BadInput("train-markers-unknown-value", "train", "markers CSV with an unknown value",
             _markers_case([("CASE-000-000", "maybe", 0, 1), ("CASE-001-000", 0, 1, 0)])),
    BadInput("train-markers-missing-columns", "train", "markers CSV without marker columns",
             _markers_case([("CASE-000-000", 54)], ("case_id", "age"))),
    BadInput("train-markers-duplicate-ids", "train", "markers CSV with duplicate ids",
             _markers_case([*MARKER_ROWS_OK, ("CASE-000-000", 1, 0, 1)])),
    BadInput("train-markers-no-matching-ids", "train", "markers CSV whose ids match no case",
             _markers_case([("P-1", 1, 0, 1), ("P-2", 0, 1, 0)])),
    BadInput("train-nan-voxels", "train", "NaN voxels in a training image", _train_nan),
    BadInput("train-out-is-file", "train", "run folder path is a file", _train_out_file),
    BadInput("train-resume-corrupt", "train", "--resume from a corrupt last.pt", _train_resume_corrupt),
    BadInput("train-unicode-path", "train", "paths with spaces and non-ASCII characters (must work)", _train_unicode,
             exit_code=0),
    BadInput("train-resume-foreign-config", "train", "--resume from a last.pt whose config has an unknown key",
             _train_resume_foreign, needs_run=True),
    BadInput("train-seg-label-5", "train", "segmentation with label 5", _train_seg(_seg_label_5)),
    BadInput("train-seg-fractional", "train", "segmentation with fractional labels", _train_seg(_seg_fractional)),
    BadInput("train-seg-other-shape", "train", "segmentation of another shape than its images",
             _train_seg(_seg_other_shape)),
    BadInput("train-same-case-two-cohorts", "train", "two --data folders holding the same case id",
             _train_same_case_two_cohorts),
    BadInput("train-preset-not-yaml", "train", "preset file that is not valid YAML", _train_preset_not_yaml),
    BadInput("train-markers-empty", "train", "empty markers CSV", _train_markers_empty),
    BadInput("train-markers-no-id-column", "train", "markers CSV without case_id",
             _markers_case([("CASE-000-000", 1, 0, 1)], ("patient", "idh", "codel_1p19q", "tert"))),
]
