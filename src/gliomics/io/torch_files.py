"""Reading ``torch.save`` files safely: one function for run checkpoints and for local 2D backbone weights.

``torch.load(weights_only=True)`` unpickles plain containers and tensors only; a file that carries other pickled
objects (which could run code), one that is not a ``torch.save`` zip archive, and one that is corrupt or truncated
each give one :class:`~gliomics.errors.CheckpointError` that names the file.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from gliomics.errors import CheckpointError

__all__ = ["load_torch_file"]


def load_torch_file(path: Path | str, *, what: str = "checkpoint", advice: str = "",
                    map_location: str | torch.device = "cpu") -> Any:
    """Load a ``torch.save`` file with ``weights_only=True``.

    Args:
        path: The file.
        what: What the file is, for the messages (``checkpoint``, ``weights file``).
        advice: Appended to the refusal of pickled objects (e.g. how to save the file instead).
        map_location: Where the tensors go.

    Raises:
        CheckpointError: Missing file, not a zip archive, pickled objects, or corrupt content.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} not found")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is damaged or foreign
        raise CheckpointError(f"{path}: corrupt or truncated {what} (not a torch.save zip archive)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = (str(exc).splitlines() or [""])[0][:160]
        raise CheckpointError(f"{path}: refused to load: the {what} carries pickled objects, which could run "
                              f"code{advice} ({first})") from exc
    except Exception as exc:  # garbage bytes surface as KeyError, IndexError, struct.error... depending on content
        raise CheckpointError(f"{path}: corrupt or truncated {what} ({type(exc).__name__})") from exc
