"""SFRIK's sharded path measured per rank: W gloo processes, each timing its own forward + backward.

The loss workers of :mod:`.workers` run one process; the sharded path needs a process group. Here
:func:`profile_sharded` starts ``world_size`` fresh processes (``spawn``) joined by a gloo group
on this machine; rank r holds rows ``r·N/W …`` of a global batch of N embeddings and runs SFRIK's
loss (Gram path, ``distributed="sharded"``, the profiled weights) forward + backward: the first
call under the allocation replay of :func:`~.measure.peak_memory_bytes` (its peak of tensor
bytes above the inputs), then timed repeats, each started after a barrier so that every rank
times the same step. Each rank reports its own figures (``scripts/bench_sharded.py`` measures the
same way, against the replicated scheme). One group serves a list of configurations (starting
W interpreters costs seconds each on a loaded machine); the peak is per call, so a configuration
does not inherit another's.

Example:
    >>> rows = profile_sharded([(32, 16), (64, 16)], world_size=2, repeats=2, timeout=300)
    >>> [(row["N"], row["rank"], row["status"]) for row in rows]
    [(32, 0, 'ok'), (32, 1, 'ok'), (64, 0, 'ok'), (64, 1, 'ok')]
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ..contenders.losses import SFRIK_PROFILE_WEIGHTS
from ..maths.losses import sfrik_loss_func
from .gloo_ranks import gloo_rank
from .isolation import quiet_child
from .measure import peak_memory_bytes, time_call

__all__ = ["sharded_rank_worker", "profile_sharded"]


def _measure_rank(rank: int, world_size: int, n: int, q: int, spec: dict) -> dict[str, Any]:
    local = n // world_size
    generator = torch.Generator().manual_seed(int(spec.get("seed", 0)) * 1000 + rank)
    z1 = torch.randn(local, q, generator=generator).requires_grad_()
    z2 = torch.randn(local, q, generator=generator).requires_grad_()
    losses: list[float] = []

    def step() -> None:
        z1.grad = z2.grad = None
        loss = sfrik_loss_func(z1, z2, distributed="sharded", method="gram", weights=SFRIK_PROFILE_WEIGHTS).loss
        loss.backward()
        losses.append(float(loss.detach()))

    dist.barrier()
    begin = time.perf_counter()
    peak = peak_memory_bytes(step)
    warmup = time.perf_counter() - begin
    samples = []
    for _ in range(max(1, int(spec.get("repeats", 3)))):
        dist.barrier()
        samples.append(time_call(step))
    return {
        "N": n,
        "q": q,
        "status": "ok",
        "samples": samples,
        "warmup_s": [warmup],
        "peak_bytes": peak,
        "loss": losses[-1],
    }


def sharded_rank_worker(rank: int, world_size: int, spec: dict, init_file: str, out_file: str) -> None:
    """One rank of :func:`profile_sharded`: writes its list of results to ``out_file.<rank>``, then
    leaves through :func:`~.gloo_ranks.finish_rank`."""
    quiet_child(spec.get("log"))
    with gloo_rank(rank, world_size, init_file):
        torch.set_num_threads(int(spec.get("threads", 1)))
        results = []
        for n, q in spec["configs"]:
            results.append(_measure_rank(rank, world_size, int(n), int(q), spec))
        with open(f"{out_file}.{rank}", "w") as handle:
            json.dump(results, handle)


def profile_sharded(
    configs: Sequence[tuple[int, int]],
    world_size: int = 2,
    repeats: int = 3,
    threads: int = 1,
    timeout: float = 600.0,
    seed: int = 0,
    log: str | None = None,
) -> list[dict[str, Any]]:
    """Per-rank results of SFRIK's sharded loss for each ``(N, q)`` of ``configs`` (global batch N)
    over ``world_size`` gloo processes: one dict per configuration and rank (``N``, ``q``,
    ``rank``, ``status`` and, when ``ok``, ``samples``, ``warmup_s``, ``peak_bytes``, ``loss``); a
    failure or time-out of the group is one such row per configuration and rank. ``log``: where
    the ranks' stderr goes (library chatter)."""
    for n, _ in configs:
        if n % world_size:
            raise ValueError(f"N ({n}) must be divisible by the world size ({world_size})")
    spec = {"configs": [list(c) for c in configs], "repeats": repeats, "threads": threads, "seed": seed, "log": log}

    def all_rows(status: str, reason: str) -> list[dict[str, Any]]:
        return [
            {"N": n, "q": q, "rank": r, "status": status, "reason": reason}
            for n, q in configs
            for r in range(world_size)
        ]

    with tempfile.TemporaryDirectory() as scratch:
        out_file = os.path.join(scratch, "result")
        try:
            context = mp.start_processes(
                sharded_rank_worker,
                args=(world_size, spec, os.path.join(scratch, "init"), out_file),
                nprocs=world_size,
                join=False,
                start_method="spawn",
            )
            deadline = time.monotonic() + timeout
            while not context.join(timeout=max(0.1, deadline - time.monotonic())):
                if time.monotonic() > deadline:
                    for process in context.processes:
                        process.kill()
                    return all_rows("timeout", f"no result after {timeout:g} s (ranks killed)")
        except Exception as error:  # a rank raised: torch re-raises it here
            return all_rows("failed", f"{type(error).__name__}: {str(error).strip().splitlines()[-1][:200]}")
        per_rank = []
        for rank in range(world_size):
            with open(f"{out_file}.{rank}") as handle:
                per_rank.append(json.load(handle))
    return [{"rank": rank, **per_rank[rank][i]} for i in range(len(configs)) for rank in range(world_size)]
