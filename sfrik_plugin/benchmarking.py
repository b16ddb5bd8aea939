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
from collections.abc import Callable

import torch

__all__ = [
    "machine_info",
    "time_call",
    "peak_memory_bytes",
    "summarize",
    "read_meminfo",
    "memory_available_bytes",
    "process_memory_bytes",
    "reset_peak_rss",
]


def machine_info(device: str | torch.device = "cpu") -> dict:
    """Facts to print next to every figure: CPU/GPU model, threads, versions.

    Example:
        >>> sorted(machine_info())[:3]
        ['cpu', 'cpu_count', 'device']
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
    meminfo = read_meminfo()
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "memory_total_gib": round(meminfo["MemTotal"] / 2**30, 1) if "MemTotal" in meminfo else None,
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


def read_meminfo(path: str | os.PathLike = "/proc/meminfo") -> dict[str, int]:
    """``/proc/meminfo`` as ``{field: bytes}`` (``{}`` where the file does not exist, e.g. macOS).

    Example:
        >>> info = read_meminfo()
        >>> not info or info["MemTotal"] > 0
        True
    """
    values: dict[str, int] = {}
    try:
        with open(path) as handle:
            for line in handle:
                key, _, rest = line.partition(":")
                fields = rest.split()
                if not fields:
                    continue
                try:
                    number = int(fields[0])
                except ValueError:
                    continue
                scale = 1024 if len(fields) > 1 and fields[1].lower() == "kb" else 1
                values[key.strip()] = number * scale
    except OSError:
        return {}
    return values


def memory_available_bytes(device: str | torch.device = "cpu") -> int | None:
    """Memory a new allocation can use now: free device memory on GPU, ``MemAvailable`` on CPU.

    ``None`` when the platform does not tell (no ``/proc/meminfo``).
    """
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    info = read_meminfo()
    if "MemAvailable" in info:
        return info["MemAvailable"]
    if "MemFree" in info:
        return info["MemFree"]
    return None


def process_memory_bytes() -> dict[str, int]:
    """Resident size of this process now (``rss``) and its high-water mark (``peak_rss``), in bytes.

    Linux reads ``/proc/self/status`` (VmRSS, VmHWM); elsewhere only ``peak_rss`` comes from
    ``getrusage``.
    """
    values: dict[str, int] = {}
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key = "rss" if line.startswith("VmRSS") else "peak_rss"
                    values[key] = int(line.split()[1]) * 1024
    except OSError:
        pass
    if "peak_rss" not in values:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        values["peak_rss"] = int(peak if platform.system() == "Darwin" else peak * 1024)
    return values


def reset_peak_rss() -> bool:
    """Resets this process's resident high-water mark to its current resident size (Linux >= 4.0).

    Returns False where that is not possible; the peak then covers the whole process lifetime.
    """
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False
