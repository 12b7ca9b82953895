import os

import pytest

from gliomics.runtime.hardware import usable_cores


def test_usable_cores_follows_the_affinity_mask(monkeypatch):
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no affinity masks on this platform")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert usable_cores() == 1


def test_usable_cores_is_at_least_one(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert usable_cores() == 1


def _cpuinfo(tmp_path, monkeypatch, flags: str, model: str = "Test CPU 9000"):
    import gliomics.runtime.hardware as hw

    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: {model}\nflags\t\t: fpu sse2 avx2 {flags}\n\n")
    monkeypatch.setattr(hw, "_CPUINFO", path)


def test_cpu_model_name_and_flags_come_from_cpuinfo(tmp_path, monkeypatch):
    from gliomics.runtime.hardware import cpu_flags, cpu_model_name

    _cpuinfo(tmp_path, monkeypatch, "avx512f", model="Intel(R) Xeon(R) Platinum 8480+")
    assert cpu_model_name() == "Intel(R) Xeon(R) Platinum 8480+"
    assert "avx512f" in cpu_flags() and "avx512_bf16" not in cpu_flags()


@pytest.mark.parametrize("flags, expected", [("avx512f", "fp32"), ("avx512f avx512_bf16", "bf16"),
                                             ("amx_bf16 amx_tile", "bf16"), ("", "fp32")])
def test_auto_precision_is_bf16_only_where_the_cpu_has_native_bf16(tmp_path, monkeypatch, flags, expected):
    import torch

    from gliomics.runtime.hardware import resolve_precision

    _cpuinfo(tmp_path, monkeypatch, flags)
    assert resolve_precision("auto", torch.device("cpu")) == expected
    # an explicit choice is kept whatever the CPU
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"


def test_auto_precision_on_cuda_is_bf16_and_unknown_values_are_refused(tmp_path, monkeypatch):
    import torch

    from gliomics.errors import ConfigError
    from gliomics.runtime.hardware import resolve_precision

    _cpuinfo(tmp_path, monkeypatch, "")
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    with pytest.raises(ConfigError, match="fp16"):
        resolve_precision("fp16", torch.device("cpu"))


def test_autocast_runs_convolutions_in_bf16_only_when_asked():
    import torch

    from gliomics.runtime.hardware import autocast

    conv = torch.nn.Conv3d(1, 2, 3)
    x = torch.randn(1, 1, 8, 8, 8)
    with autocast(torch.device("cpu"), "bf16"):
        assert conv(x).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "fp32"):
        assert conv(x).dtype == torch.float32


def test_configure_cpu_sets_the_threads():
    import torch

    from gliomics.runtime.hardware import configure_cpu

    before = torch.get_num_threads()
    try:
        assert configure_cpu(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_threads_follow_the_free_cores(monkeypatch):
    import gliomics.runtime.hardware as hardware

    monkeypatch.setattr(hardware, "usable_cores", lambda: 4)
    for free, expected in ((4.0, 4), (2.6, 3), (1.2, 1), (0.1, 1)):
        monkeypatch.setattr(hardware, "free_cores", lambda free=free: free)
        assert hardware.default_threads() == expected


def test_free_cores_reads_the_idle_share_of_the_usable_cores(tmp_path, monkeypatch):
    import gliomics.runtime.hardware as hardware

    samples = iter([
        "cpu  1 1 1 1 1 1 1 1\ncpu0 100 0 0 100 0 0 0 0\ncpu1 100 0 0 100 0 0 0 0\n",
        # cpu0 busy for the whole sample, cpu1 idle for three quarters of it
        "cpu  1 1 1 1 1 1 1 1\ncpu0 200 0 0 100 0 0 0 0\ncpu1 125 0 0 175 0 0 0 0\n",
    ])
    stat = tmp_path / "stat"
    monkeypatch.setattr(hardware, "_PROC_STAT", stat)
    monkeypatch.setattr(hardware.os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr("time.sleep", lambda s: stat.write_text(next(samples)))
    stat.write_text(next(samples))
    assert hardware.free_cores() == 0.75
