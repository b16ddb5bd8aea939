"""Small measurement helpers shared by the benchmark scripts (timing, peak memory, machine facts).

Timing uses CUDA events on GPU and ``perf_counter`` on CPU; peak memory uses
``torch.cuda.max_memory_allocated`` on GPU and the profiler's allocation record on CPU (the
peak of live tensor bytes allocated by the measured call, not the process's resident size).
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Callable

import torch

__all__ = ["machine_info", "time_call", "peak_memory_bytes", "summarize"]


def machine_info(device: str | torch.device = "cpu") -> dict:
    """Facts to print next to every figure: CPU/GPU model, threads, versions.

    Example:
        >>> sorted(machine_info())[:3]
        ['cpu', 'device', 'gpu']
    """
    device = torch.device(device)
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "device": str(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(function: Callable[[], object], device: str | torch.device = "cpu") -> float:
    """Seconds one call of ``function`` takes (CUDA events on GPU, wall clock on CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        _synchronize(device)
        start.record()
        function()
        stop.record()
        _synchronize(device)
        return start.elapsed_time(stop) / 1000.0
    begin = time.perf_counter()
    function()
    return time.perf_counter() - begin


def peak_memory_bytes(function: Callable[[], object], device: str | torch.device = "cpu") -> int:
    """Peak bytes of tensors allocated while ``function`` runs, above what was live before it.

    Example:
        >>> peak_memory_bytes(lambda: torch.empty(1024, 1024)) >= 4 * 1024 * 1024
        True
    """
    device = torch.device(device)
    if device.type == "cuda":
        _synchronize(device)
        baseline = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        function()
        _synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - baseline)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        function()
    changes = sorted(
        (event.time_range.start, event.self_cpu_memory_usage)
        for event in profiler.events()
        if event.self_cpu_memory_usage
    )
    live = peak = 0
    for _, change in changes:
        live += change
        peak = max(peak, live)
    return int(peak)


def summarize(samples: list[float]) -> dict:
    """Median and spread of repeated measurements."""
    ordered = sorted(samples)
    return {
        "median": statistics.median(ordered),
        "min": ordered[0],
        "max": ordered[-1],
        "repeats": len(ordered),
    }
