"""Fit the marker readout of finished runs, as the trainer now does at the end of training.

Usage::

    .venv/bin/python benchmarks/refit_readout.py RUN [RUN …] [--precision auto]

For runs trained before the trainer fitted a marker readout
(:func:`~gliomics.training.readout.fit_run_readout`): the best checkpoint predicts its training split (the readout's
fitting cases) and its validation split (the readout's thresholds and calibration), and ``best.pt`` gains the
readout. Prints what was fitted.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def refit(run: Path, precision: str) -> dict:
    from gliomics.errors import ConfigError
    from gliomics.training.readout import refit_readout

    try:
        fitted = refit_readout(run, device="cpu", precision=precision)
    except ConfigError:  # a network without segmentation, or too few cases: no readout, as the trainer leaves it
        fitted = None
    return {"run": str(run), "marker_readout": fitted}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args(argv)
    for run in args.runs:
        print(json.dumps(refit(run, args.precision), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
