"""Loss scenarios run under DDP by tests/test_distributed.py (spawned processes import this module).

Each scenario: a Linear layer (float64) maps fixed inputs to embeddings, the loss is computed on
them, and the parameter gradients DDP leaves behind are recorded. The same function runs on one
process with the whole batch, and on W gloo processes with one shard each.
"""

import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from sfrik_plugin import sfrik_loss_func, sfrik_multicrop_loss_func, uniformity_loss_func

IN_FEATURES, OUT_FEATURES, CROPS = 10, 12, 4


def _loss(name, crops, distributed):
    if name == "legendre-gram":
        return sfrik_loss_func(crops[0], crops[1], sim_coeff=5.0, method="gram", distributed=distributed).loss
    if name == "legendre-blocked-u":
        return sfrik_loss_func(
            crops[0], crops[1], sim_coeff=5.0, method="blocked", block_size=3, estimator="u", distributed=distributed
        ).loss
    if name == "legendre-degree2-feature":
        return sfrik_loss_func(crops[0], crops[1], weights=(1.0, 40.0), method="feature", distributed=distributed).loss
    if name == "gaussian-uniformity":
        return uniformity_loss_func(crops[0], crops[1], sim_coeff=5.0, distributed=distributed).loss
    if name == "multicrop":
        return sfrik_multicrop_loss_func(crops[:2], crops[2:], sim_coeff=5.0, distributed=distributed).loss
    raise KeyError(name)


SCENARIOS = [
    ("legendre-gram", "sharded"),
    ("legendre-gram", "replicated"),
    ("legendre-blocked-u", "sharded"),
    ("legendre-blocked-u", "replicated"),
    ("legendre-degree2-feature", "sharded"),
    ("gaussian-uniformity", "sharded"),
    ("gaussian-uniformity", "replicated"),
    ("multicrop", "sharded"),
]


def global_inputs(total_rows):
    generator = torch.Generator().manual_seed(1234)
    base = torch.randn(total_rows, IN_FEATURES, generator=generator, dtype=torch.float64)
    return [
        base + 0.3 * torch.randn(total_rows, IN_FEATURES, generator=generator, dtype=torch.float64)
        for _ in range(CROPS)
    ]


def fresh_layer():
    torch.manual_seed(99)
    return torch.nn.Linear(IN_FEATURES, OUT_FEATURES).double()


def run(name, distributed, inputs, model):
    """Loss value and parameter gradients for one scenario (one forward over all crops, then split)."""
    model.zero_grad()
    rows = inputs[0].shape[0]
    embeddings = model(torch.cat(inputs)).split(rows)
    loss = _loss(name, embeddings, distributed)
    loss.backward()
    module = model.module if isinstance(model, DistributedDataParallel) else model
    return float(loss.detach()), [p.grad.detach().clone() for p in module.parameters()]


def single_process_results(total_rows):
    inputs = global_inputs(total_rows)
    model = fresh_layer()
    return {f"{name}/{mode}": run(name, "none", inputs, model) for name, mode in SCENARIOS}


def worker(rank, world_size, sizes, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        torch.set_num_threads(1)
        start = sum(sizes[:rank])
        inputs = [x[start : start + sizes[rank]] for x in global_inputs(sum(sizes))]
        model = DistributedDataParallel(fresh_layer())
        results = {f"{name}/{mode}": run(name, mode, inputs, model) for name, mode in SCENARIOS}
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()
