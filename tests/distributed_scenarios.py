"""Loss scenarios run under DDP by tests/test_distributed.py (spawned processes import this module).

Each scenario: a Linear layer (float64) maps fixed inputs to embeddings, the loss is computed on
them, and the parameter gradients DDP leaves behind are recorded. The same function runs on one
process with the whole batch, and on W gloo processes with one shard each.
"""

import os

import torch
from torch.nn.parallel import DistributedDataParallel

from sfrik_plugin import (
    BandlimitedKernel,
    HeatKernel,
    mmd_to_uniform,
    sfrik_loss_func,
    sfrik_multicrop_loss_func,
    uniformity_loss_func,
)
from sfrik_plugin.profiler.gloo_ranks import gloo_rank

IN_FEATURES, OUT_FEATURES, CROPS = 10, 12, 4

#: the sphere's spectral kernels (Legendre series with other weights): heat of automatic degree
#: (8 at q = 12, the recurrence path), band-limited at degree 2 (feature path) and 5
SPECTRAL = {
    "heat": HeatKernel(tau=HeatKernel.tau_for(OUT_FEATURES, rate=2.0)),
    "bandlimited2": BandlimitedKernel(degree=2),
    "bandlimited5": BandlimitedKernel(degree=5),
}


def _spectral_mmd(kernel_name, crops, distributed, **options):
    """The MMD to the uniform law of two views under a spectral kernel (rows normalised first)."""
    kernel = SPECTRAL[kernel_name]
    return sum(mmd_to_uniform(c, kernel, normalize=True, distributed=distributed, **options) for c in crops[:2])


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
    if name == "reference":
        return sfrik_loss_func(crops[0], crops[1], sim_coeff=5.0, method="reference", distributed=distributed).loss
    if name == "heat-gram":
        return _spectral_mmd("heat", crops, distributed, method="gram")
    if name == "bandlimited-degree2-feature":
        return _spectral_mmd("bandlimited2", crops, distributed, method="feature")
    if name == "bandlimited-blocked-u":
        return _spectral_mmd("bandlimited5", crops, distributed, method="blocked", block_size=3, estimator="u")
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
    ("reference", "auto"),
    ("heat-gram", "sharded"),
    ("heat-gram", "replicated"),
    ("bandlimited-degree2-feature", "sharded"),
    ("bandlimited-blocked-u", "sharded"),
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
    with gloo_rank(rank, world_size, init_file):
        torch.set_num_threads(1)
        start = sum(sizes[:rank])
        inputs = [x[start : start + sizes[rank]] for x in global_inputs(sum(sizes))]
        model = DistributedDataParallel(fresh_layer())
        results = {f"{name}/{mode}": run(name, mode, inputs, model) for name, mode in SCENARIOS}
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))


# ---- precision when the views nearly coincide (float32 shards against one float64 process) ----

PRECISION_ROWS, PRECISION_DIM, PRECISION_EPSILONS = 48, 512, (1e-3, 1e-6)


def precision_inputs(epsilon):
    """float32 views with z2 = z1 + epsilon * noise (z2 rounded to float32 once, here)."""
    generator = torch.Generator().manual_seed(7)
    z1 = torch.randn(PRECISION_ROWS, PRECISION_DIM, generator=generator)
    z2 = z1 + epsilon * torch.randn(PRECISION_ROWS, PRECISION_DIM, generator=generator)
    return z1, z2


def invariance_and_gradients(z1, z2, distributed, method="gram"):
    """The invariance term alone (sim_coeff 1, mmd_coeff 0), in the dtype of the inputs."""
    a, b = z1.clone().requires_grad_(), z2.clone().requires_grad_()
    loss = sfrik_loss_func(a, b, sim_coeff=1.0, mmd_coeff=0.0, method=method, distributed=distributed).loss
    grads = torch.autograd.grad(loss, (a, b))
    return float(loss.detach()), [g.detach() for g in grads]


def precision_worker(rank, world_size, init_file, out_dir):
    with gloo_rank(rank, world_size, init_file):
        torch.set_num_threads(1)
        shard = slice(rank * PRECISION_ROWS // world_size, (rank + 1) * PRECISION_ROWS // world_size)
        results = {}
        for epsilon in PRECISION_EPSILONS:
            z1, z2 = precision_inputs(epsilon)
            results[epsilon] = invariance_and_gradients(z1[shard], z2[shard], "sharded")
        torch.save(results, os.path.join(out_dir, f"precision{rank}.pt"))
