"""Measuring one call: time, peak tensor memory, process memory, and the machine it ran on.

Timing uses CUDA events on GPU and ``perf_counter`` on CPU. Peak memory uses
``torch.cuda.max_memory_allocated`` on GPU and, on CPU, the allocation events torch's profiler
records (the peak of live tensor bytes the measured call allocated, not the process's resident
size, which :func:`process_memory_bytes` reports).

Example:
    >>> import torch
    >>> seconds = time_call(lambda: torch.ones(1000).sum())
    >>> peak_memory_bytes(lambda: torch.empty(1024, 1024)) >= 4 * 2**20
    True
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence

import torch

from ..contenders.memory import GIB, memory_available_bytes, read_meminfo

__all__ = [
    "time_call",
    "peak_memory_bytes",
    "summarize",
    "process_memory_bytes",
    "reset_peak_rss",
    "machine_info",
    "describe_machine",
]


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(function: Callable[[], object], device: str | torch.device = "cpu") -> float:
    """Seconds one call of ``function`` takes (CUDA events on GPU, wall clock on CPU).

    Example:
        >>> time_call(lambda: None) >= 0
        True
    """
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


def _cpu_allocations(profiler: torch.profiler.profile) -> list[tuple[int, int, int]]:
    """``(time_ns, size, address)`` of every CPU allocation (size > 0) and free (size < 0) the
    profiler recorded, in the order they happened."""
    from torch._C._profiler import _EventType

    events = []
    pending = list(profiler.profiler.kineto_results.experimental_event_tree())  # type: ignore[union-attr]
    while pending:
        node = pending.pop()
        pending.extend(node.children)
        if node.tag == _EventType.Allocation and node.extra_fields.device.type == "cpu":
            # at equal times an allocation sorts before a free: never under-reports
            events.append((node.start_time_ns, -node.extra_fields.alloc_size, node.extra_fields.ptr))
    return [(when, -negated, address) for when, negated, address in sorted(events)]


def peak_memory_bytes(function: Callable[[], object], device: str | torch.device = "cpu") -> int:
    """Peak bytes of tensors allocated while ``function`` runs and still live, above what was live
    before it (tensors freed by the call that existed before it are not credited).

    On CPU the live bytes are replayed from the profiler's allocation events, matched by address.
    Why not the profiler's per-operator memory columns: they net an operator's allocations and
    frees at its start, missing its temporaries, and the profiler sizes a free by a table of
    addresses that outlives profiling sessions, so freeing an older tensor that reused the address
    of one freed while profiling was off subtracts a stale size: the result then depends on what
    ran before in the process.

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
    live = peak = 0
    allocated: dict[int, int] = {}
    for _, size, address in _cpu_allocations(profiler):
        if size > 0:
            allocated[address] = size
            live += size
        elif address in allocated:
            live -= allocated.pop(address)
        peak = max(peak, live)
    return int(peak)


def summarize(samples: Sequence[float]) -> dict:
    """Median and spread of repeated measurements.

    Example:
        >>> summarize([3.0, 1.0, 2.0])
        {'median': 2.0, 'min': 1.0, 'max': 3.0, 'repeats': 3}
    """
    if not samples:
        raise ValueError("summarize needs at least one sample, got none")
    ordered = sorted(samples)
    return {"median": statistics.median(ordered), "min": ordered[0], "max": ordered[-1], "repeats": len(ordered)}


def process_memory_bytes() -> dict[str, int]:
    """Resident size of this process now (``rss``) and its high-water mark (``peak_rss``), in bytes.

    Linux reads ``/proc/self/status`` (VmRSS, VmHWM); elsewhere only ``peak_rss`` comes from
    ``getrusage``.

    Example:
        >>> process_memory_bytes()["peak_rss"] > 0
        True
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

    Example:
        >>> reset_peak_rss() in (True, False)
        True
    """
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


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
        "memory_total_gib": round(meminfo["MemTotal"] / GIB, 1) if "MemTotal" in meminfo else None,
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "device": str(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def describe_machine(device: str | torch.device = "cpu") -> dict:
    """:func:`machine_info` plus the memory available now (GiB).

    Example:
        >>> "memory_available_gib" in describe_machine()
        True
    """
    info = machine_info(device)
    available = memory_available_bytes(device)
    info["memory_available_gib"] = round(available / GIB, 1) if available is not None else None
    return info
