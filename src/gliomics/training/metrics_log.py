"""The metrics log of a run: one JSON line per epoch, mirrored to a CSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from gliomics.io.atomic import atomic_path, write_text_atomic


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
        write_text_atomic(self.jsonl, "".join(json.dumps(r) + "\n" for r in rows))
        columns: list[str] = []
        for r in rows:
            columns += [k for k in r if k not in columns]
        with atomic_path(self.csv) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)


def scalars(metrics: dict[str, Any]) -> dict[str, Any]:
    """The scalar entries of a validation summary, for the log and the summary (its thresholds, minimum volumes and
    calibration go to ``fitted.json``)."""
    return {k: v for k, v in metrics.items() if not isinstance(v, dict)}
