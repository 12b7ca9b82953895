"""The machinery of the bad-input battery: a workspace per entry, the invocation it builds, how it is run in-process
through typer's ``CliRunner`` and checked, and the writers of damaged inputs the entries share."""

from __future__ import annotations

import csv
import fnmatch
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from gliomics_testing import DEFAULT_AFFINE, make_brats_case

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
        verify: For an input that must work: a further check of what was written under ``out``; returns the ways
            the outputs fall short (empty when they are right).
    """

    args: list[str]
    culprit: str
    out: Path
    allowed: tuple[str, ...] = ()
    verify: Callable[[Path], list[str]] | None = None


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


def zero_affine(path: Path) -> Path:
    """Rewrite an image as a broken converter exports it: the sform all zeros and no qform (no voxel size, no
    orientation)."""
    img = nib.Nifti1Image(np.asarray(nib.load(path).dataobj), None)
    img.set_sform(np.zeros((4, 4)), code=1)
    img.set_qform(None, code=0)
    nib.save(img, path)
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


def with_value(value: float) -> Callable[[np.ndarray], np.ndarray]:
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


def random_bytes(ws: Workspace, path: Path) -> None:
    path.write_bytes(os.urandom(20000))


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
    elif inv.verify is not None and outcome.exit_code == 0:
        problems += inv.verify(inv.out)
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
