"""``torchrun --nproc_per_node=N -m gliomics.predict -i … -o … -m …``: the predict command, one process per rank,
each predicting its own part of the cases."""

from __future__ import annotations

import typer

from gliomics.cli.predict import predict


def main() -> None:
    typer.run(predict)


if __name__ == "__main__":
    main()
