"""One rank of a CPU process group (gloo, joined through a file): in, work, out — one way for all.

The profiler's sharded ranks, ``scripts/bench_sharded.py``, ``scripts/ddp_exactness.py`` and the
DDP tests all start W fresh processes that join a gloo group, write their results and end. How a
rank ends matters: a rank that tears the group down while another is still in its last collective
aborts in gloo's thread, and a gloo rank whose work is done sometimes aborts in a native destructor
at interpreter exit ("terminate called without an active exception", SIGABRT), which made a
finished rank read as failed (2 groups in 40 of the sharded profiler's doctest loop here, 0 in 40
with torch's profiler left out; once in CI in a plain gloo test). :func:`gloo_rank` is the one way
in and out: on success it leaves through :func:`finish_rank`; on an error it tears the group down
and lets the error end the process as usual (the parent sees the traceback and the exit status).

Example (a rank's body; the block's end never returns, so it runs in a process of its own):
    >>> import pathlib, tempfile
    >>> import torch.multiprocessing as mp
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = mp.start_processes(_example_rank, args=(2, str(folder)), nprocs=2, start_method="spawn")
    >>> sorted(p.read_text() for p in folder.glob("rank*.txt"))
    ['rank 0 of 2: sum 3.0', 'rank 1 of 2: sum 3.0']
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import torch
import torch.distributed as dist

__all__ = ["gloo_rank", "finish_rank"]


@contextmanager
def gloo_rank(rank: int, world_size: int, init_file: str) -> Iterator[None]:
    """Joins rank ``rank`` of a ``world_size``-process gloo group through ``init_file`` (a path
    that does not exist yet, the same for every rank) for the ``with`` block. If the block ends
    normally the process ends there, through :func:`finish_rank` (exit status 0): write results
    inside the block. If it raises, the group is torn down and the error goes on."""
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        yield
    except BaseException:
        dist.destroy_process_group()
        raise
    finish_rank()


def finish_rank() -> NoReturn:
    """Ends a rank whose results are on disk: meets the other ranks at a barrier, tears the group
    down, and leaves the process with exit status 0 *without* the interpreter's finalisation (where
    gloo ranks sometimes abort: see the module docstring). Nothing is left to run: the results are
    written and the streams are flushed before ``os._exit``."""
    dist.barrier()
    dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _example_rank(rank: int, world_size: int, folder: str) -> None:
    """The module example's rank: all-reduces its rank + 1 and writes what it got."""
    with gloo_rank(rank, world_size, os.path.join(folder, "init")):
        total = torch.tensor([rank + 1.0])
        dist.all_reduce(total)
        with open(os.path.join(folder, f"rank{rank}.txt"), "w") as handle:
            handle.write(f"rank {rank} of {world_size}: sum {float(total)}")
