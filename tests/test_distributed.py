"""Multi-process (gloo, CPU) runs against the single-process computation on the whole batch.

Each rank holds a shard (of unequal sizes too) and a DDP-wrapped layer in front of the loss;
the gradients DDP leaves (its average over ranks) must equal those of one process computing
the loss on the concatenated batch, and every rank must report the global loss.
"""

import distributed_scenarios as scenarios
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

pytestmark = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(), reason="torch.distributed with gloo is not available"
)


@pytest.mark.parametrize("sizes", [[9, 9], [8, 5], [4, 4, 3, 3]], ids=["2-equal", "2-unequal", "4-unequal"])
def test_ddp_gradients_equal_the_single_process_gradients(tmp_path, sizes):
    world_size = len(sizes)
    mp.start_processes(
        scenarios.worker,
        args=(world_size, sizes, str(tmp_path / "init"), str(tmp_path)),
        nprocs=world_size,
        join=True,
        start_method="spawn",
    )
    expected = scenarios.single_process_results(sum(sizes))
    for rank in range(world_size):
        results = torch.load(tmp_path / f"rank{rank}.pt")
        assert set(results) == set(expected)
        for key, (loss, grads) in results.items():
            reference_loss, reference_grads = expected[key]
            assert loss == pytest.approx(reference_loss, rel=1e-9), key
            for ours, reference in zip(grads, reference_grads):
                error = float((ours - reference).abs().max() / reference.abs().max())
                assert error < 1e-6, f"{key} rank {rank}: relative gradient error {error:.2e}"


def test_without_a_process_group_every_mode_is_the_local_computation():
    inputs = scenarios.global_inputs(10)
    local = {
        mode: scenarios.run("legendre-gram", mode, inputs, scenarios.fresh_layer())
        for mode in ("none", "auto", "sharded", "replicated")
    }
    for loss, grads in local.values():
        assert loss == local["none"][0]
        for a, b in zip(grads, local["none"][1]):
            torch.testing.assert_close(a, b)
