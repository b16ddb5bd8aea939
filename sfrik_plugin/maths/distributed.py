"""Autograd-aware collectives for losses computed over the global batch.

Convention used throughout the package: under a process group every rank returns the same,
*global* loss value, and the gradient each rank back-propagates is the gradient of the sum of
all ranks' losses with respect to its local inputs. DDP then averages parameter gradients over
the W ranks, and ``(1/W) · Σ_ranks ∂(W · loss)/∂θ = ∂loss/∂θ``: exactly the gradient of one
process computing the loss on the concatenated batch. Each collective below is written so
that its backward is the adjoint of its forward, which is what makes that hold; the classic
bug this rules out is a plain ``all_reduce`` (no backward) that leaves gradients off by a
factor ``1/W``.

Without an initialised process group (or with one of size 1) every function is the identity.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["world_size_and_rank", "all_reduce_sum", "gather_rows", "all_gather_rows", "row_counts"]


def world_size_and_rank(group: Any = None) -> tuple[int, int]:
    """``(world_size, rank)`` of ``group``, or ``(1, 0)`` when no process group is initialised.

    Example:
        >>> world_size_and_rank()  # no process group here
        (1, 0)
    """
    if not (dist.is_available() and dist.is_initialized()):
        return 1, 0
    return dist.get_world_size(group), dist.get_rank(group)


class _AllReduceSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: Tensor, group: Any) -> Tensor:
        ctx.group = group
        output = tensor.clone()
        dist.all_reduce(output, op=dist.ReduceOp.SUM, group=group)
        return output

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        # every rank's output depends on every rank's input: sum the incoming gradients
        grad = grad_output.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        return grad, None


def all_reduce_sum(tensor: Tensor, group: Any = None) -> Tensor:
    """Sum ``tensor`` over the ranks of ``group``, differentiably (identity without a group).

    Example:
        >>> import torch
        >>> all_reduce_sum(torch.ones(3))  # no process group: unchanged
        tensor([1., 1., 1.])
    """
    world_size, _ = world_size_and_rank(group)
    if world_size == 1:
        return tensor
    return _AllReduceSum.apply(tensor, group)


def all_gather_rows(tensor: Tensor, sizes: list[int], group: Any = None) -> Tensor:
    """Plain (non-differentiable) concatenation of every rank's rows; ``sizes`` = rows per rank.

    Equal sizes (the usual case) gather straight into the output, with no padded copies.
    """
    tensor = tensor.contiguous()
    if all(size == sizes[0] for size in sizes):
        output = tensor.new_empty((sum(sizes),) + tuple(tensor.shape[1:]))
        # all_gather_single (torch >= 2.10) replaces the deprecated all_gather_into_tensor
        gather_into = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
        gather_into(output, tensor, group=group)
        return output
    padded = tensor.new_zeros((max(sizes),) + tuple(tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    pieces = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(pieces, padded, group=group)
    return torch.cat([piece[:size] for piece, size in zip(pieces, sizes)])


def row_counts(local_rows: int, device: torch.device, group: Any = None) -> list[int]:
    """Every rank's row count (one small all-gather)."""
    world_size, _ = world_size_and_rank(group)
    local = torch.tensor([local_rows], device=device, dtype=torch.long)
    counts = [torch.empty_like(local) for _ in range(world_size)]
    dist.all_gather(counts, local, group=group)
    return [int(count.item()) for count in counts]


class _GatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: Tensor, sizes: list[int], rank: int, group: Any) -> Tensor:
        ctx.sizes, ctx.rank, ctx.group = sizes, rank, group
        return all_gather_rows(tensor, sizes, group)

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        grad = grad_output.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]], None, None, None


def gather_rows(tensor: Tensor, group: Any = None, differentiable: bool = True) -> tuple[Tensor, int, list[int]]:
    """Concatenate every rank's ``tensor`` along dim 0 (ranks may hold different row counts).

    Returns ``(gathered, offset, sizes)``: the global tensor, the row at which this rank's rows
    start in it, and every rank's row count. With ``differentiable=True`` the backward sums the
    gradients that all ranks computed for this rank's rows; with ``False`` the result is
    detached (for callers that account for those gradients themselves).

    Example:
        >>> import torch
        >>> gathered, offset, sizes = gather_rows(torch.zeros(4, 2))  # no process group
        >>> gathered.shape, offset, sizes
        (torch.Size([4, 2]), 0, [4])
    """
    world_size, rank = world_size_and_rank(group)
    if world_size == 1:
        return (tensor if differentiable else tensor.detach()), 0, [tensor.shape[0]]
    sizes = row_counts(tensor.shape[0], tensor.device, group)
    offset = sum(sizes[:rank])
    if differentiable:
        return _GatherRows.apply(tensor, sizes, rank, group), offset, sizes
    return _GatherRows.apply(tensor.detach(), sizes, rank, group), offset, sizes
