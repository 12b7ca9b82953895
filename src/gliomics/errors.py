"""Error types. Bad input raises a :class:`GliomicsError` subclass whose message names the file and the problem."""

from __future__ import annotations


class GliomicsError(Exception):
    """Base class of every user-facing error; the CLI prints it on one line and exits with status 2."""


class InputError(GliomicsError):
    """A file or folder given as input is missing, unreadable or malformed."""


class ImageError(InputError):
    """An image is corrupt, has the wrong dimensionality, NaN voxels, or does not match its case."""


class LabelError(InputError):
    """A segmentation holds values that are not BraTS 2024 labels."""


class MarkerTableError(InputError):
    """A markers table has unknown values, missing columns or duplicate ids."""


class ConfigError(GliomicsError):
    """A configuration has unknown keys or wrong types."""


class CaseOptionError(ConfigError, ValueError):
    """An option of case discovery or loading is invalid (unknown layout or sequence name)."""


class CheckpointError(GliomicsError):
    """A checkpoint is corrupt, unsafe, or belongs to another model."""


class OutputError(GliomicsError):
    """An output path cannot be written."""


def find_gliomics_error(exc: BaseException | None) -> GliomicsError | None:
    """The :class:`GliomicsError` behind ``exc``: itself, or one it was raised from.

    Libraries that run our code wrap its exceptions in their own (MONAI turns any exception of a transform into
    ``RuntimeError("applying transform …")``); bad input found there is still bad input.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, GliomicsError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__
    return None
