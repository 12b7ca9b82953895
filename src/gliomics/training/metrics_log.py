"""The metrics log of a run: one JSON line per epoch, mirrored to a CSV."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any


class MetricsLog:
    """Appends rows to ``metrics.jsonl`` and rewrites ``metrics.csv`` (atomically) from it."""

    def __init__(self, run_dir: Path | str) -> None:
        self.jsonl = Path(run_dir) / "metrics.jsonl"
        self.csv = Path(run_dir) / "metrics.csv"

    def rows(self) -> list[dict[str, Any]]:
        if not self.jsonl.is_file():
            return []
        out = []
        for line in self.jsonl.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a kill: skip it
                continue
        return out

    def append(self, row: dict[str, Any]) -> None:
        clean = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()}
        # drop rows of epochs that a resumed run repeats
        rows = [r for r in self.rows() if r.get("epoch", -1) < clean.get("epoch", 0)] + [clean]
        tmp = self.jsonl.with_name(f".{self.jsonl.name}.tmp-{os.getpid()}")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
        os.replace(tmp, self.jsonl)
        columns: list[str] = []
        for r in rows:
            columns += [k for k in r if k not in columns]
        tmp = self.csv.with_name(f".{self.csv.name}.tmp-{os.getpid()}")
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.csv)
