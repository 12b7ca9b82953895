"""The bad-input battery of issue #10 as one table: each entry builds its inputs in a fresh folder and names the
command line to run, the culprit its one-line message must name, and where nothing may appear.

Shared by ``test_bad_input_battery.py`` and ``benchmarks/reliability_table.py`` (which writes the table of results
into ``benchmarks/RESULTS.md``). The entries run in-process through typer's ``CliRunner``.
"""

from __future__ import annotations

import csv
import fnmatch
import gzip
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from gliomics.constants import SEQUENCES
from gliomics_testing import DEFAULT_AFFINE, TINY_OVERRIDES, make_brats_case

#: Names of files an interrupted or failed write may leave behind.
TEMP_NAME = re.compile(r"\.tmp-\d+|\.tmp$|\.old-\d+|\.part$")
PREDICT = ["--device", "cpu", "--no-progress"]
SLICES = ["--preset", "cpu", "--size", "32", "--k", "2", "--no-progress"]
BENCH = [*SLICES, "--epochs", "1", "--device", "cpu", "--threads", "1", "--backbones", "shufflenet"]


@dataclass
class Workspace:
    """A fresh folder for one entry, and (for the commands that need one) a trained run."""

    root: Path
    run: Path | None = None

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def cohort(self, name: str = "cohort", n: int = 2, *, markers: bool = True, **kwargs) -> Path:
        """``n`` synthetic cases (16×16×12) with a matching markers.csv: one altered case, one not, alternating."""
        folder = self.path(name)
        for i in range(n):
            make_brats_case(folder, f"CASE-{i:03d}-000", seed=i, **kwargs)
        if markers:
            write_markers(folder / "markers.csv", [(f"CASE-{i:03d}-000", i % 2, (i + 1) % 2, i % 2) for i in range(n)])
        return folder

    def file(self, name: str, text: str = "not a folder\n") -> Path:
        path = self.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path


@dataclass
class Invocation:
    """One command line and what must hold after it.

    Attributes:
        args: Arguments of ``gliomics``.
        culprit: Text (a file name, a key, an option) the one-line message must contain.
        out: The output location: no file may appear under it, apart from ``allowed``.
        allowed: Patterns (``fnmatch``, relative to ``out``) of the files that must appear under ``out``: the outputs
            of an input that must work, or of the good cases of a ``--keep-going`` run. Each must match a new file.
    """

    args: list[str]
    culprit: str
    out: Path
    allowed: tuple[str, ...] = ()


@dataclass(frozen=True)
class BadInput:
    """An entry of the battery: ``build`` writes the inputs and returns the invocation."""

    id: str
    command: str
    input: str
    build: Callable[[Workspace], Invocation]
    exit_code: int = 2
    needs_run: bool = False
    needs_unprivileged: bool = False


@dataclass
class Outcome:
    """What a command did: its exit status, its message, and the files it left."""

    exit_code: int
    message: str
    error_lines: list[str]
    stderr: str
    new_files: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    temp_files: list[str] = field(default_factory=list)
    exception: BaseException | None = None


# ---------------------------------------------------------------------------------------------------------- writers


def write_markers(path: Path, rows: list[tuple], header: tuple[str, ...] = ("case_id", "idh", "codel_1p19q", "tert")
                  ) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_nifti(path: Path, array: np.ndarray, affine: np.ndarray = DEFAULT_AFFINE) -> Path:
    nib.save(nib.Nifti1Image(array, affine), path)
    return path


def seq_file(case: Path, sequence: str) -> Path:
    return case / f"{case.name}-{sequence}.nii.gz"


def replace_volume(case: Path, sequence: str, edit: Callable[[np.ndarray], np.ndarray],
                   affine: np.ndarray | None = None) -> Path:
    """Rewrite one image of a case with edited voxels (and optionally another affine)."""
    path = seq_file(case, sequence)
    img = nib.load(path)
    data = edit(np.asarray(img.dataobj).copy())
    return write_nifti(path, data, img.affine if affine is None else affine)


def _with_value(value: float) -> Callable[[np.ndarray], np.ndarray]:
    def edit(data: np.ndarray) -> np.ndarray:
        data = data.astype(np.float32)
        data[3, 4, 5] = value
        return data

    return edit


def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def one_case(ws: Workspace, name: str = "cases") -> tuple[Path, Path]:
    """A cohort folder holding one synthetic case; returns (cohort, case)."""
    cohort = ws.cohort(name, n=1, markers=False)
    return cohort, cohort / "CASE-000-000"


def predict_with(ws: Workspace, source: Path, culprit: str, *extra: str) -> Invocation:
    out = ws.path("pred")
    return Invocation(["predict", "-i", str(source), "-o", str(out), "-m", str(ws.run), *PREDICT, *extra], culprit, out)


def checkpoint_state(ws: Workspace) -> dict:
    import torch

    return torch.load(ws.run / "best.pt", map_location="cpu", weights_only=True)


class Exploit:
    """Unpickling this creates a folder: proof that code ran. ``weights_only`` loading must refuse it."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = str(sentinel)

    def __reduce__(self):
        return os.mkdir, (self.sentinel,)


def write_checkpoint(path: Path, state: dict) -> Path:
    import torch

    torch.save(state, path)
    return path


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


def _train_missing_seg(ws: Workspace) -> Invocation:
    cohort = ws.cohort()
    seq_file(cohort / "CASE-001-000", "seg").unlink()
    return _train(ws, cohort, "CASE-001-000", markers=cohort / "markers.csv")


def _train_set_unknown(ws: Workspace) -> Invocation:
    cohort = ws.cohort()
    return _train(ws, cohort, "train.bogus_key", "--set", "train.bogus_key=1")


def _train_set_type(ws: Workspace) -> Invocation:
    cohort = ws.cohort()
    return _train(ws, cohort, "train.lr", "--set", "train.lr=fast")


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
    bad = replace_volume(cohort / "CASE-002-000", "t2w", _with_value(np.nan))
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
                   "train_summary.json")
    return inv


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


def _ckpt_garbage(ws: Workspace, path: Path) -> None:
    path.write_bytes(os.urandom(20000))


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
    replace_volume(cohort / "CASE-001-000", "t1c", _with_value(np.inf))
    inv = predict_with(ws, cohort, "CASE-001-000-t1c.nii.gz", "--keep-going")
    inv.allowed = tuple(f"CASE-{i:03d}-000{suffix}" for i in (0, 2) for suffix in (".json", "_seg.nii.gz"))
    return inv


def _predict_unicode(ws: Workspace) -> Invocation:
    cohort = ws.cohort("cas à l'étude ü", n=1, markers=False)
    out = ws.path("prédictions 1")
    args = ["predict", "-i", str(cohort), "-o", str(out), "-m", str(ws.run), *PREDICT]
    return Invocation(args, "", out, ("CASE-000-000.json", "CASE-000-000_seg.nii.gz"))


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
    inv.allowed = ("index.csv", "slices_summary.json", "slices/CASE-000-000_z*.npy", "slices/CASE-003-000_z*.npy")
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
                       "--spacing", "2", "--grid", "8,8,8", "--no-progress", *extra], culprit, out)


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
    bad = replace_volume(cohort / "CASE-000-000", "t1n", _with_value(np.nan))
    return _preprocess(ws, cohort, bad.name)


def _preprocess_keep_going(ws: Workspace) -> Invocation:
    cohort = ws.cohort("raw", n=2, markers=False)
    replace_volume(cohort / "CASE-001-000", "t2f", _with_value(np.nan))
    inv = _preprocess(ws, cohort, "CASE-001-000-t2f.nii.gz", "--keep-going")
    inv.allowed = tuple(f"CASE-000-000/CASE-000-000-{s}.nii.gz" for s in (*SEQUENCES, "seg")) + (
        "CASE-000-000/preprocess/geometry.json", "CASE-000-000/preprocess/brain_mask.nii.gz")
    return inv


def _preprocess_unicode(ws: Workspace) -> Invocation:
    inv = _preprocess(ws, ws.cohort("scans bruts é", n=1, markers=False), "")
    inv.out = ws.path("prétraité ø")
    inv.args[inv.args.index("-o") + 1] = str(inv.out)
    inv.allowed = ("CASE-000-000/CASE-000-000-t1c.nii.gz", "CASE-000-000/preprocess/geometry.json")
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


def _import_tcga_columns(ws: Workspace) -> Invocation:
    table = ws.file("pan_glioma.tsv", "Case\tIDH\nTCGA-02-0001\tMutant\n")
    return _import(ws, "tcga", table, "pan_glioma.tsv")


def _import_tcga_value(ws: Workspace) -> Invocation:
    table = ws.file("tcga.csv", "Case,IDH.status,X1p.19q.codeletion\nTCGA-02-0001,Mutant,codel\n"
                                "TCGA-02-0002,maybe,non-codel\n")
    return _import(ws, "tcga", table, "maybe")


# ------------------------------------------------------------------------------------------------------------ table

MARKER_ROWS_OK = [("CASE-000-000", 1, 0, 1), ("CASE-001-000", 0, 1, 0)]

BATTERY: list[BadInput] = [
    BadInput("phantom-out-is-file", "phantom", "output path is a file", _phantom_out_file),
    BadInput("phantom-out-under-file", "phantom", "output folder below a file", _phantom_out_under_file),
    BadInput("phantom-out-read-only", "phantom", "read-only output folder", _phantom_read_only,
             needs_unprivileged=True),
    BadInput("train-data-missing", "train", "missing data folder", _train_data_missing),
    BadInput("train-data-empty", "train", "empty data folder", _train_data_empty),
    BadInput("train-wrong-layout", "train", "folder without NIfTI cases", _train_wrong_layout),
    BadInput("train-missing-seg", "train", "training case without segmentation", _train_missing_seg),
    BadInput("train-set-unknown-key", "train", "--set with an unknown key", _train_set_unknown),
    BadInput("train-set-wrong-type", "train", "--set with a wrong type", _train_set_type),
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
    BadInput("predict-input-missing", "predict", "missing input folder", _predict_input_missing, needs_run=True),
    BadInput("predict-input-empty", "predict", "empty input folder", _predict_input_empty, needs_run=True),
    BadInput("predict-model-missing", "predict", "missing run folder", _predict_model_missing),
    BadInput("predict-checkpoint-garbage", "predict", "corrupt checkpoint (random bytes)",
             _predict_checkpoint(_ckpt_garbage), needs_run=True),
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
             _predict_image(lambda c: replace_volume(c, "t1n", _with_value(np.nan))), needs_run=True),
    BadInput("predict-inf-voxels", "predict", "infinite voxels",
             _predict_image(lambda c: replace_volume(c, "t2f", _with_value(-np.inf))), needs_run=True),
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
             _bench_weights(_ckpt_garbage)),
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
    BadInput("import-tcga-missing-column", "import", "TCGA table without the 1p/19q column", _import_tcga_columns),
    BadInput("import-tcga-unknown-value", "import", "TCGA table with an unknown IDH value", _import_tcga_value),
]


# -------------------------------------------------------------------------------------------------------- execution


def permissions_ignored(folder: Path) -> bool:
    """True when a folder without write permission can still be written to (root, some containers)."""
    probe = folder / ".probe"
    probe.mkdir()
    probe.chmod(0o555)
    try:
        (probe / "x").write_text("x")
    except PermissionError:
        return False
    else:
        (probe / "x").unlink()
        return True
    finally:
        probe.chmod(0o755)
        probe.rmdir()



def _files(folder: Path) -> set[str]:
    if folder.is_file():
        return {folder.name}
    if not folder.is_dir():
        return set()
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def run_entry(entry: BadInput, ws: Workspace) -> tuple[Invocation, Outcome]:
    """Build the entry's inputs in ``ws``, run the command in-process, and collect what it did."""
    from typer.testing import CliRunner

    from gliomics.cli.main import app

    inv = entry.build(ws)
    before = _files(inv.out)
    result = CliRunner().invoke(app, inv.args)
    stderr = result.stderr or ""
    lines = [line for line in stderr.splitlines()
             if line.startswith("gliomics: error:") or line.startswith("  failed ")]
    new = sorted(_files(inv.out) - before)
    temps = sorted(str(p.relative_to(ws.root)) for p in ws.root.rglob("*") if TEMP_NAME.search(p.name))
    exception = result.exception if not isinstance(result.exception, SystemExit) else None
    outcome = Outcome(result.exit_code, lines[0].strip() if lines else "", lines, stderr, new,
                      [f for f in new if not any(fnmatch.fnmatchcase(f, p) for p in inv.allowed)], temps, exception)
    return inv, outcome


def check(entry: BadInput, inv: Invocation, ws: Workspace, outcome: Outcome) -> list[str]:
    """The ways ``outcome`` falls short of the issue's rules (empty when the entry is handled)."""
    problems = []
    if outcome.exception is not None:
        problems.append(f"internal error {type(outcome.exception).__name__}: {outcome.exception}")
    if outcome.exit_code != entry.exit_code:
        problems.append(f"exit status {outcome.exit_code}, expected {entry.exit_code}")
    if entry.exit_code != 0:
        if len(outcome.error_lines) != 1:
            problems.append(f"expected one error line, got {outcome.error_lines}")
        if inv.culprit not in outcome.message:
            problems.append(f"the message does not name {inv.culprit!r}: {outcome.message!r}")
    elif outcome.error_lines:
        problems.append(f"unexpected errors: {outcome.error_lines}")
    missing = [p for p in inv.allowed if not any(fnmatch.fnmatchcase(f, p) for f in outcome.new_files)]
    if missing:
        problems.append(f"good outputs missing: {missing}")
    if outcome.unexpected:
        problems.append(f"partial output: {outcome.unexpected}")
    if outcome.temp_files:
        problems.append(f"temporary files left: {outcome.temp_files}")
    if ws.path("pwned").exists():
        problems.append("a pickled object was executed on load")
    return problems
