"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

A checkpoint holds plain containers and tensors only (state dicts, the resolved config as a dict, counters and
RNG states as tensors/lists), so nothing needs unpickling beyond what ``weights_only`` allows.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gliomics.errors import CheckpointError
from gliomics.io.atomic import atomic_path
from gliomics.io.torch_files import load_torch_file

BEST = "best.pt"
LAST = "last.pt"
#: Labels and raw marker probabilities of a run's validation cases at its best epoch (NaN labels are unknown): the
#: out-of-fold set of a K-fold ensemble.
VAL_PREDICTIONS = "validation_predictions.json"
#: The fold runs of a K-fold ensemble folder are ``fold_0``, ``fold_1``, ….
FOLD_PREFIX = "fold_"


def fold_runs(folder: Path | str) -> list[Path]:
    """The fold runs of an ensemble folder (sub-folders ``fold_<k>`` holding a checkpoint), in fold order; empty
    for a single run."""
    folder = Path(folder)
    if not folder.is_dir() or (folder / BEST).is_file() or (folder / LAST).is_file():
        return []
    runs = [p for p in folder.glob(f"{FOLD_PREFIX}*") if p.is_dir() and p.name[len(FOLD_PREFIX):].isdigit()
            and ((p / BEST).is_file() or (p / LAST).is_file())]
    return sorted(runs, key=lambda p: int(p.name[len(FOLD_PREFIX):]))


def save_checkpoint(state: dict[str, Any], path: Path | str) -> Path:
    """Write ``state`` to ``path`` via a temporary file and an atomic rename (a kill never leaves half a file)."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(state, fh)
        fh.flush()
        os.fsync(fh.fileno())
    return path


def load_checkpoint(path: Path | str, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely; a corrupt file or one that carries pickled objects is refused."""
    state = load_torch_file(path, what="checkpoint", map_location=map_location)
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise CheckpointError(f"{path}: not a gliomics checkpoint (expected keys 'model' and 'config')")
    return state


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states as weights_only-safe containers."""
    py = random.getstate()
    np_state = np.random.get_state()
    return {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(float, np_state[2:])],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    np_state = state["numpy"]
    np.random.set_state((np_state[0], np_state[1].numpy().astype(np.uint32), int(np_state[2]), int(np_state[3]),
                         float(np_state[4])))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_file(run: Path | str, checkpoint: str = "best") -> Path:
    """The checkpoint of a run folder (``best.pt``, else ``last.pt`` when the run has no best yet, or ``last.pt`` when
    ``checkpoint`` is ``"last"``), or a checkpoint file given directly."""
    run = Path(run)
    if run.is_file():
        return run
    path = run / (BEST if checkpoint == "best" else LAST)
    if not path.is_file() and checkpoint == "best" and (run / LAST).is_file():
        path = run / LAST
    return path


def load_network(path: Path | str) -> tuple[torch.nn.Module, Any, dict[str, Any]]:
    """The network of checkpoint ``path`` (on the CPU, in eval mode), its run's validated config and the checkpoint.

    Raises:
        CheckpointError: the file is not a gliomics checkpoint, or its weights do not fit its config's model.
    """
    from gliomics.errors import GliomicsError
    from gliomics.models.registry import create_model
    from gliomics.presets import validate_config

    state = load_checkpoint(path)
    try:
        config = validate_config(state["config"], "its config")
        model = create_model(config.model.name, **config.model.params)
        model.load_state_dict(state["model"])
    except (GliomicsError, ValueError, RuntimeError, KeyError) as exc:
        raise CheckpointError(f"{path}: does not match its model ({' '.join(str(exc).split())[:240]})") from exc
    return model.eval(), config, state

