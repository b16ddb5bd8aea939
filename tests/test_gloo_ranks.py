"""The one way in and out of a gloo rank (sfrik_plugin.profiler.gloo_ranks): a rank whose work is
done ends with exit status 0 whatever its interpreter would do on the way out, and a rank whose work
fails ends with its error, not with a hang or a silent success."""

from __future__ import annotations

import atexit
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sfrik_plugin.profiler.gloo_ranks import gloo_rank


def _rank_whose_exit_aborts(rank: int, world_size: int, folder: str) -> None:
    # stands in for gloo's and kineto's native destructors: anything run at interpreter exit aborts
    atexit.register(os.abort)
    with gloo_rank(rank, world_size, os.path.join(folder, "init")):
        total = torch.tensor([float(rank + 1)])
        dist.all_reduce(total)
        with open(os.path.join(folder, f"rank{rank}"), "w") as handle:
            handle.write(str(float(total)))


def _rank_that_fails(rank: int, world_size: int, folder: str) -> None:
    with gloo_rank(rank, world_size, os.path.join(folder, "init")):
        # every rank fails (before any collective): whichever the parent reports first, its error is this one
        raise ValueError(f"rank {rank} found a bad value")


def test_a_rank_whose_work_is_done_exits_0_even_if_finalisation_would_abort(tmp_path):
    # raises ProcessExitedException (SIGABRT) if a rank returns to the interpreter's exit path
    mp.start_processes(_rank_whose_exit_aborts, args=(2, str(tmp_path)), nprocs=2, start_method="spawn")
    assert [(tmp_path / f"rank{r}").read_text() for r in range(2)] == ["3.0", "3.0"]


def test_a_rank_whose_work_fails_ends_with_its_error(tmp_path):
    with pytest.raises(mp.ProcessRaisedException, match=r"rank \d found a bad value"):
        mp.start_processes(_rank_that_fails, args=(2, str(tmp_path)), nprocs=2, start_method="spawn")
