"""What this machine offers and how gliomics uses it: the device of a run, the usable CPU cores (the affinity mask,
not the machine's count), the CPU model, whether it computes in bfloat16 natively, the numeric precision of a run,
and the process settings (threads, allocator) that training and prediction start with."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import logging
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

#: Values of ``--precision``: ``auto`` is bf16 autocast where the hardware has native bf16 arithmetic, else fp32.
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")
#: CPU flags (``/proc/cpuinfo``) of native bf16 arithmetic: AVX512-BF16 and AMX-BF16.
BF16_CPU_FLAGS: frozenset[str] = frozenset({"avx512_bf16", "amx_bf16"})

_CPUINFO = Path("/proc/cpuinfo")


def resolve_device(name: str, info_local_rank: int = 0) -> torch.device:
    """``auto`` → CUDA (the local rank's GPU, ``LOCAL_RANK`` under ``torchrun``) when available, else CPU."""
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            from gliomics.errors import ConfigError

            raise ConfigError("--device cuda requested but no CUDA device is available")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", info_local_rank)))
    return torch.device(name)


def usable_cores() -> int:
    """Number of cores the process may run on (at least 1)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


_PROC_STAT = Path("/proc/stat")


def _cpu_times() -> dict[int, tuple[int, int]]:
    """Per core of ``/proc/stat``: (idle + iowait, total) jiffies."""
    times = {}
    for line in _PROC_STAT.read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name[3:].isdigit():
            numbers = [int(v) for v in values[:8]]
            times[int(name[3:])] = (numbers[3] + numbers[4], sum(numbers))
    return times


def free_cores(sample_s: float = 0.25) -> float:
    """How many of the usable cores sat idle over the next ``sample_s`` seconds (from ``/proc/stat``); all usable
    cores where that cannot be read."""
    import time

    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    try:
        before = _cpu_times()
        time.sleep(sample_s)
        after = _cpu_times()
    except (OSError, ValueError, IndexError):
        return float(usable_cores())
    idle = 0.0
    for cpu, (idle_after, total_after) in after.items():
        if (allowed is None or cpu in allowed) and cpu in before:
            total = total_after - before[cpu][1]
            idle += (idle_after - before[cpu][0]) / total if total > 0 else 1.0
    return min(float(usable_cores()), idle)


def default_threads() -> int:
    """Intra-op threads for CPU work: the usable cores that are free now (at least 1). On a machine where other
    processes keep cores busy, threads beyond the free cores only wait for each other."""
    threads = max(1, min(usable_cores(), int(free_cores() + 0.5)))
    if threads < usable_cores():
        logger.info("%d of %d usable cores are busy with other work: %d thread(s) (--threads overrides)",
                    usable_cores() - threads, usable_cores(), threads)
    return threads


@functools.lru_cache(maxsize=4)
def _read_cpuinfo(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _cpuinfo_field(name: str) -> str | None:
    for line in _read_cpuinfo(_CPUINFO).splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def cpu_model_name() -> str:
    """The CPU's model name as ``lscpu`` prints it (``/proc/cpuinfo``), or the platform's processor string."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine() or "unknown"


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (empty where ``/proc/cpuinfo`` is not available)."""
    return frozenset((_cpuinfo_field("flags") or "").split())


def cpu_has_native_bf16() -> bool:
    """True where the CPU does bf16 arithmetic natively (AVX512-BF16 or AMX), so that bf16 autocast pays."""
    return bool(cpu_flags() & BF16_CPU_FLAGS)


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`.

    Raises:
        ConfigError: for any other value (one error line, exit status 2, in the CLI).
    """
    if precision not in PRECISIONS:
        from gliomics.errors import ConfigError

        raise ConfigError(f"--precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
    return precision


def resolve_precision(precision: str, device) -> str:
    """``fp32`` or ``bf16`` for ``--precision`` on ``device`` (a ``torch.device``).

    ``auto`` means bf16 on CUDA and on CPUs with native bf16 (:func:`cpu_has_native_bf16`), fp32 elsewhere: on a CPU
    without it, bf16 is emulated and slower than fp32.

    Raises:
        ConfigError: for a value outside :data:`PRECISIONS`.
    """
    if check_precision(precision) != "auto":
        return precision
    if device.type == "cuda":
        return "bf16"
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"


def describe(device, precision: str) -> dict[str, object]:
    """Where a run computes, as recorded with its timings: device, CPU model, threads, precision and GPU model."""
    import torch

    return {"device": device.type, "cpu": cpu_model_name(), "threads": torch.get_num_threads(),
            "precision": precision, "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}


def autocast(device, precision: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` in bf16 for ``precision == "bf16"``, a no-op context for ``fp32``."""
    import torch

    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


# glibc mallopt parameters
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def tune_allocator() -> bool:
    """Keep freed memory in the process instead of returning it to the kernel after every tensor.

    glibc serves large blocks with ``mmap`` and unmaps them on ``free``; a training step of a 3D network allocates
    and frees hundreds of multi-megabyte activations, and every new block is then faulted in page by page (tens of
    millions of minor page faults in a demo run). Raising the mmap and trim thresholds (``mallopt``) makes the heap
    reuse the blocks. Returns False where glibc is not the allocator (nothing changes then).
    """
    name = ctypes.util.find_library("c")
    if platform.system() != "Linux" or not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = mallopt(_M_MMAP_THRESHOLD, 1 << 30) == 1
    return bool(ok and mallopt(_M_TRIM_THRESHOLD, 1 << 31) == 1)


def configure_cpu(threads: int | None = None) -> int:
    """Set up this process for CPU work: ``threads`` intra-op threads (default: the free usable cores,
    :func:`default_threads`) and the allocator settings of :func:`tune_allocator`. Returns the thread count."""
    import torch

    n = max(1, threads or default_threads())
    torch.set_num_threads(n)
    tune_allocator()
    return n

