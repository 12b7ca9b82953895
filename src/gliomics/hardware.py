"""The CPU cores this process may use: its affinity mask (``taskset``, cgroup cpusets), not the machine's count."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """Number of cores the process may run on (at least 1)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)
