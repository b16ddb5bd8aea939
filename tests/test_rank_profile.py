"""The sharded per-rank profiler: a rank whose results are written reports them, whatever its
interpreter does on the way out (the profiler's native threads sometimes abort there)."""

from __future__ import annotations

import atexit
import json
import os

import torch.multiprocessing as mp

from sfrik_plugin.profiler.rank_profile import sharded_rank_worker


def _rank_whose_exit_aborts(rank: int, world_size: int, spec: dict, init_file: str, out_file: str) -> None:
    # stands in for kineto's destructor: anything that runs at interpreter exit aborts this process
    atexit.register(os.abort)
    sharded_rank_worker(rank, world_size, spec, init_file, out_file)


def test_a_rank_that_finished_its_work_exits_cleanly_even_if_finalisation_would_abort(tmp_path):
    spec = {"configs": [[16, 8]], "repeats": 1, "threads": 1, "seed": 0, "log": str(tmp_path / "ranks.log")}
    out_file = str(tmp_path / "result")
    # raises ProcessExitedException (SIGABRT) when a rank returns to the interpreter's exit path
    mp.start_processes(
        _rank_whose_exit_aborts,
        args=(2, spec, str(tmp_path / "init"), out_file),
        nprocs=2,
        join=True,
        start_method="spawn",
    )
    for rank in range(2):
        with open(f"{out_file}.{rank}") as handle:
            (row,) = json.load(handle)
        assert (row["N"], row["q"], row["status"]) == (16, 8, "ok")
        assert len(row["samples"]) == 1 and row["peak_bytes"] > 0
