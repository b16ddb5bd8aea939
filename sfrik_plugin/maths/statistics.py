"""The engine under the MMD and the losses: distances between views and kernel means, over the
global batch, by the computation path and distributed mode of :class:`~.options.MMDOptions`.

:func:`sphere_statistics` takes a list of same-shape views, the pairs whose mean squared distance
is wanted (the invariance) and the views whose kernel mean is wanted (the MMD), and returns a
:class:`SphereStatistics`. It checks the options, upcasts half precision to float32 (everything
runs in float32 at least, even under autocast), resolves the distributed mode, picks the path and
dispatches to :mod:`.fused` (``gram``, ``blocked``), :mod:`.feature_space` or :mod:`.reference`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from .distributed import gather_rows, row_counts, world_size_and_rank
from .feature_space import feature_space_statistics
from .fused import FusedPlan, fused_statistics
from .kernels import RotationInvariantKernel
from .options import GRAM_BLOCK_ELEMENTS, MMDOptions, auto_block_size
from .reference import reference_statistics

__all__ = ["SphereStatistics", "check_embeddings", "resolve_distributed", "choose_method", "sphere_statistics"]


class SphereStatistics(NamedTuple):
    """``distances[p]``: mean over the global batch and the q coordinates of ``(x_i − x_j)²`` for
    pair p = (i, j); ``kernel_means[r]``: mean of φ over the global Gram matrix of the r-th
    regularised view. ``x`` are the (normalised) rows."""

    distances: Tensor
    kernel_means: Tensor


def check_embeddings(z: Any, name: str = "z", check_finite: bool = True) -> None:
    """Raise a ``ValueError``/``TypeError`` naming what is wrong with a batch of embeddings."""
    if not isinstance(z, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(z).__name__}")
    if z.dim() != 2:
        raise ValueError(f"{name} must be 2-D (batch, dim), got shape {tuple(z.shape)}")
    if not z.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype, got {z.dtype}")
    if z.shape[1] < 2:
        raise ValueError(
            f"{name} has dimension q = {z.shape[1]}; the sphere S^(q-1) needs q >= 2 (shape {tuple(z.shape)})"
        )
    if z.shape[0] < 1:
        raise ValueError(f"{name} is an empty batch (shape {tuple(z.shape)})")
    if check_finite and not bool(torch.isfinite(z).all()):
        bad = int((~torch.isfinite(z)).sum())
        raise ValueError(f"{name} holds {bad} non-finite value(s) (NaN or inf)")


def resolve_distributed(distributed: str, group: Any = None) -> tuple[str, Any, int, int]:
    """``(mode, group, world_size, rank)`` with ``mode`` in sharded / replicated / none."""
    world_size, rank = world_size_and_rank(group)
    if world_size == 1 or distributed == "none":
        return "none", None, 1, 0
    if distributed == "auto":
        distributed = "sharded"
    if group is None:
        group = torch.distributed.group.WORLD
    return distributed, group, world_size, rank


def choose_method(method: str, has_feature_form: bool, dim: int, local_rows: int, total_rows: int) -> str:
    """What ``"auto"`` means for this batch: ``feature`` when the kernel has a degree ≤ 2 form and
    q < N (O(N q²) beats O(N² q)), else ``blocked`` when the local Gram block would exceed
    :data:`GRAM_BLOCK_ELEMENTS`, else ``gram``. Other methods are returned unchanged.

    Example:
        >>> choose_method("auto", True, dim=64, local_rows=256, total_rows=256)
        'feature'
        >>> choose_method("auto", False, dim=64, local_rows=16384, total_rows=16384)
        'blocked'
    """
    if method != "auto":
        return method
    if has_feature_form and dim < total_rows:
        return "feature"
    if local_rows * total_rows > GRAM_BLOCK_ELEMENTS:
        return "blocked"
    return "gram"


def _float32_at_least(z: Tensor) -> Tensor:
    return z.float() if z.dtype in (torch.float16, torch.bfloat16) else z


def sphere_statistics(
    views: Sequence[Tensor],
    pairs: Sequence[tuple[int, int]],
    regularized: Sequence[int],
    kernel: RotationInvariantKernel,
    *,
    normalize: bool,
    options: MMDOptions,
) -> SphereStatistics:
    """Distances of ``pairs`` of views and kernel means of the ``regularized`` views (inputs
    already checked with :func:`check_embeddings`, all of one shape)."""
    dim = views[0].shape[1]
    coefficients = kernel.feature_space_coefficients(dim)
    if options.method == "feature" and coefficients is None:
        raise ValueError(
            f"method='feature' needs a kernel of degree <= 2; {kernel!r} has none. Use 'gram', 'blocked', "
            "'reference' or 'auto'."
        )
    distributed = (
        "replicated" if options.method == "reference" and options.distributed != "none" else options.distributed
    )
    mode, group, _, rank = resolve_distributed(distributed, options.group)
    pairs = tuple((int(i), int(j)) for i, j in pairs)
    regularized = tuple(int(v) for v in regularized)

    device_type = views[0].device.type if views[0].device.type in ("cuda", "cpu", "xpu", "mps") else "cpu"
    with torch.autocast(device_type=device_type, enabled=False):
        tensors = [_float32_at_least(v) for v in views]
        if mode == "replicated":  # the official scheme: every rank holds the whole global batch
            tensors = [gather_rows(v, group, differentiable=True)[0] for v in tensors]
            mode, group = "none", None
        local_rows = tensors[0].shape[0]
        sizes = row_counts(local_rows, tensors[0].device, group) if mode == "sharded" else [local_rows]
        total_rows = sum(sizes)
        if total_rows < 2:
            raise ValueError(f"the MMD needs at least 2 embeddings in the (global) batch, got {total_rows}")
        method = choose_method(options.method, coefficients is not None, dim, local_rows, total_rows)
        if method == "reference":
            distances, means = reference_statistics(tensors, pairs, regularized, kernel, normalize, options.unbiased)
        elif method == "feature":
            assert coefficients is not None
            distances, means = feature_space_statistics(
                tensors,
                pairs,
                regularized,
                coefficients,
                normalize,
                options.unbiased,
                group if mode == "sharded" else None,  # None: these rows are the whole batch
                total_rows,
            )
        else:
            block_size = options.block_size
            if method == "blocked" and block_size is None:
                block_size = auto_block_size(total_rows)
            plan = FusedPlan(
                kernel=kernel,
                dim=dim,
                normalize=normalize,
                pairs=pairs,
                regularized=regularized,
                unbiased=options.unbiased,
                block_size=block_size if method == "blocked" else None,
                group=group if mode == "sharded" else None,
                offset=sum(sizes[:rank]) if mode == "sharded" else 0,
                sizes=tuple(sizes),
            )
            distances, means = fused_statistics(plan, tensors)
    return SphereStatistics(distances, means)
