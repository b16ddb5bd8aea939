"""The invariance stays exact to float32 round-off when the two views nearly coincide.

Late in training ``z2 ≈ z1``: forms such as ``‖x‖² + ‖y‖² − 2xᵀy`` or ``x − y`` of rounded unit
vectors cancel catastrophically there (the official code's ``F.mse_loss`` of the normalised views
loses 3 digits at ε = 1e-6). Every fast path works from ``d = z1 − z2`` instead. Reference: the
same float32 inputs in float64.
"""

import distributed_scenarios as scenarios
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sfrik_plugin import sfrik_loss_func, sfrik_multicrop_loss_func

TOLERANCE = 1e-5  # relative, value and gradient (the bound; measured ~1e-7)


def relative_error(ours, reference):
    ours, reference = torch.as_tensor(ours, dtype=torch.float64), torch.as_tensor(reference, dtype=torch.float64)
    return float((ours - reference).norm() / reference.norm())


def near_views(epsilon, rows=64, dim=2048, views=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(rows, dim, generator=generator)
    return [z] + [z + epsilon * torch.randn(rows, dim, generator=generator) for _ in range(views - 1)]


def invariance(views, dtype, method, large=2, **kwargs):
    leaves = [v.to(dtype).clone().requires_grad_() for v in views]
    if len(leaves) == 2:
        out = sfrik_loss_func(*leaves, sim_coeff=1.0, mmd_coeff=0.0, method=method, **kwargs)
    else:
        out = sfrik_multicrop_loss_func(leaves[:large], leaves[large:], sim_coeff=1.0, mmd_coeff=0.0, method=method)
    grads = torch.autograd.grad(out.loss, leaves)
    return out.invariance.detach(), torch.cat(grads)


@pytest.mark.parametrize("epsilon", [1e-3, 1e-4, 1e-6])
@pytest.mark.parametrize(
    "method, kwargs",
    [("gram", {}), ("blocked", {"block_size": 16}), ("feature", {"weights": (1.0, 40.0)})],
)
def test_every_path_is_exact_to_float32_round_off_for_near_identical_views(method, kwargs, epsilon):
    views = near_views(epsilon)
    value32, grad32 = invariance(views, torch.float32, method, **kwargs)
    value64, grad64 = invariance(views, torch.float64, method, **kwargs)
    assert relative_error(value32, value64) < TOLERANCE
    assert relative_error(grad32, grad64) < TOLERANCE


@pytest.mark.parametrize("epsilon", [1e-4, 1e-6])
def test_multicrop_is_exact_for_near_identical_views(epsilon):
    views = near_views(epsilon, views=5)  # 2 large + 3 small crops
    value32, grad32 = invariance(views, torch.float32, "gram")
    value64, grad64 = invariance(views, torch.float64, "gram")
    assert relative_error(value32, value64) < TOLERANCE
    assert relative_error(grad32, grad64) < TOLERANCE


def test_the_official_formula_is_not_and_the_check_sees_it():
    # the reference path is the official composition: this documents why the fast paths differ
    views = near_views(1e-6)
    value32, grad32 = invariance(views, torch.float32, "reference")
    value64, grad64 = invariance(views, torch.float64, "reference")
    assert relative_error(value32, value64) > 1e-4 and relative_error(grad32, grad64) > 1e-3


def test_zero_rows_still_give_the_reference_loss_and_gradients():
    # rows with a zero view take the plain formula: value and gradients as F.normalize's
    z1, z2 = near_views(1e-2, rows=12, dim=16)
    z1[3] = 0
    z2[5] = 0
    for method in ("gram", "blocked", "feature"):
        weights = (1.0, 40.0) if method == "feature" else (1.0, 40.0, 40.0)
        ours = invariance([z1, z2], torch.float64, method, weights=weights, block_size=5)
        reference = invariance([z1, z2], torch.float64, "reference", weights=weights)
        assert relative_error(ours[0], reference[0]) < 1e-12, method
        assert relative_error(ours[1], reference[1]) < 1e-10, method


@pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(), reason="torch.distributed with gloo is not available"
)
def test_sharded_invariance_is_exact_for_near_identical_views(tmp_path):
    world_size = 2
    mp.start_processes(
        scenarios.precision_worker,
        args=(world_size, str(tmp_path / "init"), str(tmp_path)),
        nprocs=world_size,
        join=True,
        start_method="spawn",
    )
    ranks = [torch.load(tmp_path / f"precision{rank}.pt") for rank in range(world_size)]
    for epsilon in scenarios.PRECISION_EPSILONS:
        z1, z2 = scenarios.precision_inputs(epsilon)
        value64, grads64 = scenarios.invariance_and_gradients(z1.double(), z2.double(), "none")
        for rank_results in ranks:
            assert relative_error(rank_results[epsilon][0], value64) < TOLERANCE
        # each rank's gradient is that of the sum of the W ranks' (equal) losses: DDP's average
        # over ranks divides by W, which is what makes it the single-process gradient
        grads32 = [torch.cat([r[epsilon][1][view] for r in ranks]) / world_size for view in (0, 1)]
        assert relative_error(torch.cat(grads32), torch.cat(grads64)) < TOLERANCE
