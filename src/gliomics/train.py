"""``torchrun --nproc_per_node=N -m gliomics.train --data … --out …``: the train command, one process per rank."""

from __future__ import annotations

import typer

from gliomics.cli.train import train


def main() -> None:
    typer.run(train)


if __name__ == "__main__":
    main()
