"""Shared CLI plumbing: logging set-up, device and thread choice, and turning GliomicsError into exit status 2."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import TypeVar

import typer

from gliomics.errors import GliomicsError, find_gliomics_error

F = TypeVar("F", bound=Callable)
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 1


def precision_option() -> typer.models.OptionInfo:
    """The ``--precision`` option of train, predict and demo; commands check its value first
    (:func:`gliomics.runtime.hardware.check_precision`)."""
    return typer.Option("auto", "--precision", help="auto | fp32 | bf16; auto is bf16 autocast on CUDA and on CPUs "
                                                    "with native bf16 (AVX512-BF16 or AMX), fp32 elsewhere.")


def parse_sequences(text: str | None) -> list[str] | None:
    """``--sequences``: comma-separated names or aliases (``t1c``, ``T1ce``, ``FLAIR``, ``t1gd``…) as BraTS 2024
    names; None for all. An unknown name is one error line (exit status 2) before anything is read or written."""
    if not text:
        return None
    from gliomics.constants import SEQUENCES
    from gliomics.errors import CaseOptionError
    from gliomics.io import canonical_sequence

    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if canonical_sequence(s) is None]
    if unknown:
        raise CaseOptionError(f"--sequences: unknown sequence(s) {unknown}; use some of {', '.join(SEQUENCES)} "
                              "(or aliases such as T1ce, FLAIR)")
    return list(dict.fromkeys(canonical_sequence(s) for s in names))


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr; INFO by default, DEBUG with ``--verbose``."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")


def handle_errors(func: F) -> F:
    """Run a command; bad input becomes one clear line on stderr and exit status 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except GliomicsError as exc:
            _bad_input(exc)
        except KeyboardInterrupt:
            typer.echo("gliomics: interrupted", err=True)
            raise typer.Exit(130) from None
        except Exception as exc:
            cause = find_gliomics_error(exc)  # bad input wrapped by a library (e.g. a MONAI transform)
            if cause is None:
                raise
            _bad_input(cause)

    return wrapper  # type: ignore[return-value]


def _bad_input(exc: GliomicsError) -> None:
    message = str(exc).replace("\n", " ")
    typer.echo(f"gliomics: error: {message}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT) from None
